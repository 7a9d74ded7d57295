"""Standalone mode in process: files -> loader -> memory API server -> the manager's reconcilers
-> the host's IR, with the offline driver in place of a data plane (the integration tests run
both real ones)."""

import asyncio
import contextlib
import textwrap

from kubelb.app import dataplanes, standalone
from kubelb.ir import proxy


def lb_yaml(name, port, *, namespace="demo", backend_port=18080, extra=""):
    return textwrap.dedent(
        f"""\
        apiVersion: kubelb.k8c.io/v1alpha1
        kind: LoadBalancer
        metadata: {{name: {name}, namespace: {namespace}}}
        spec:
          ports: [{{name: http, port: {port}}}]
          endpoints:
            - addresses: [{{ip: 127.0.0.11}}]
              ports: [{{name: http, port: {backend_port}}}]
        {extra}"""
    )


@contextlib.asynccontextmanager
async def running(tmp_path, pool=None):
    settings = standalone.Settings(
        config=tmp_path / "cfg", dataplane="offline", state_dir=tmp_path / "state",
        admin_address=None, listen_address="127.0.0.1:0", address_pool=pool,
        envoy_binary=None, workers=1, drain_seconds=0.0, xds_delta=False, duration=None,
        log_level="info",
    )  # fmt: skip
    driver = dataplanes.OfflineDriver()
    app = standalone.Standalone(settings, driver)
    task = asyncio.create_task(app.run())
    try:
        yield app
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def settled(app, check=lambda doc: True, *, names=()):
    """The status document once the pipeline has settled, `check` holds and each LoadBalancer
    of `names` has its Ready condition: the pipeline is settled, too, on a store its informer
    has not filled yet. (The limit only bounds a hang on a loaded machine.)"""
    async with asyncio.timeout(60):
        while True:
            if app.settled():
                doc = app.status_document()
                lbs = by_name(doc)
                if check(doc) and all(n in lbs and lbs[n]["conditions"] for n in names):
                    return doc
            await asyncio.sleep(0.01)


def config(app):
    return app.driver.config


def by_name(doc):
    return {lb["name"]: lb for lb in doc["loadBalancers"]}


def reason(lb):
    (ready,) = [c for c in lb["conditions"] if c["type"] == "Ready"]
    return ready["reason"]


def cfg(tmp_path):
    path = tmp_path / "cfg"
    path.mkdir(exist_ok=True)
    return path


async def test_serves_lbs_on_pool_addresses(tmp_path):
    (cfg(tmp_path) / "a.yaml").write_text(lb_yaml("a", 8080) + "---\n" + lb_yaml("b", 8080))
    async with running(tmp_path, pool=("127.0.0.1", "127.0.0.2")) as app:
        lbs = by_name(await settled(app))
        assert (lbs["a"]["address"], lbs["b"]["address"]) == ("127.0.0.1", "127.0.0.2")
        assert all(lb["ready"] and reason(lb) == "Reconciled" for lb in lbs.values())
        assert lbs["a"]["source"].endswith("a.yaml#0")
        assert sorted((li.address, li.port) for li in config(app).listeners) == [
            ("127.0.0.1", 8080),
            ("127.0.0.2", 8080),
        ]
        assert config(app).node_id == "standalone"
        assert config(app).validate() == []


async def test_lbs_of_several_namespaces_share_the_one_data_plane(tmp_path):
    (cfg(tmp_path) / "a.yaml").write_text(lb_yaml("a", 8080) + "---\n"
                                          + lb_yaml("a", 9090, namespace="other"))  # fmt: skip
    async with running(tmp_path) as app:
        lbs = (await settled(app))["loadBalancers"]
        assert [(lb["namespace"], lb["ready"]) for lb in lbs] == [("demo", True), ("other", True)]
        assert sorted(li.port for li in config(app).listeners) == [8080, 9090]
        assert config(app).validate() == []


async def test_port_conflict_reports_and_others_keep_serving(tmp_path):
    (cfg(tmp_path) / "a.yaml").write_text(lb_yaml("a", 8080))
    async with running(tmp_path) as app:
        await settled(app)
        (cfg(tmp_path) / "b.yaml").write_text(lb_yaml("b", 8080) + "---\n" + lb_yaml("c", 9090))
        lbs = by_name(await settled(app, lambda d: len(d["loadBalancers"]) == 3))
        assert lbs["a"]["ready"]
        assert lbs["c"]["ready"]
        assert not lbs["b"]["ready"]
        assert reason(lbs["b"]) == "PortConflict"
        assert "demo/envoy-a" in lbs["b"]["conditions"][0]["message"]
        assert sorted(li.port for li in config(app).listeners) == [8080, 9090]


async def test_invalid_lb_keeps_last_valid_version_and_says_why(tmp_path):
    (cfg(tmp_path) / "a.yaml").write_text(lb_yaml("a", 8080))
    async with running(tmp_path) as app:
        await settled(app)
        first = config(app)
        (cfg(tmp_path) / "a.yaml").write_text(
            lb_yaml("a", 8080).replace("port: 18080", "port: 18080, protocol: SCTP")
        )
        doc = await settled(app, lambda d: d["errors"])
        assert config(app) == first
        a = by_name(doc)["a"]
        assert a["ready"]
        (error,) = a["errors"]
        assert "spec.endpoints[0].ports[0].protocol" in error
        assert "the last valid version stays in place" in error
        assert any("a.yaml#0" in e for e in doc["errors"])


async def test_new_invalid_lb_is_reported_not_served(tmp_path):
    (cfg(tmp_path) / "a.yaml").write_text(lb_yaml("a", 8080) + "---\n" + lb_yaml("bad", 0))
    async with running(tmp_path) as app:
        lbs = by_name(await settled(app, names=("a", "bad")))
        assert lbs["a"]["ready"]
        assert not lbs["bad"]["ready"]
        assert reason(lbs["bad"]) == "InvalidSpec"
        assert (
            "spec.ports[0].port: Invalid value: 0: should be >= 1"
            in lbs["bad"]["conditions"][0]["message"]
        )
        assert [li.port for li in config(app).listeners] == [8080]


async def test_malformed_file_unknown_kind_and_unread_config_are_errors(tmp_path):
    (cfg(tmp_path) / "a.yaml").write_text(lb_yaml("a", 8080))
    (cfg(tmp_path) / "broken.yaml").write_text("kind: [oops\n")
    (cfg(tmp_path) / "svc.yaml").write_text("apiVersion: v1\nkind: Service\nmetadata: {name: x}\n")
    (cfg(tmp_path) / "config.yaml").write_text(
        "apiVersion: kubelb.k8c.io/v1alpha1\nkind: Config\nmetadata: {name: default, namespace: "
        "elsewhere}\nspec: {}\n"
    )
    async with running(tmp_path) as app:
        doc = await settled(app)
        assert by_name(doc)["a"]["ready"]
        assert any("broken.yaml" in e for e in doc["errors"])
        assert any("svc.yaml" in e for e in doc["errors"])
        assert any("Config elsewhere/default is not used" in e for e in doc["errors"])


async def test_duplicate_objects_are_reported(tmp_path):
    (cfg(tmp_path) / "a.yaml").write_text(lb_yaml("a", 8080))
    (cfg(tmp_path) / "b.yaml").write_text(lb_yaml("a", 9090))
    async with running(tmp_path) as app:
        doc = await settled(app)
        assert any("duplicate LoadBalancer demo/a" in e for e in doc["errors"])
        assert [li.port for li in config(app).listeners] == [8080]


async def test_addresses_survive_a_restart(tmp_path):
    (cfg(tmp_path) / "z.yaml").write_text(lb_yaml("z", 8080))
    pool = ("127.0.0.1", "127.0.0.2")
    async with running(tmp_path, pool) as app:
        assert by_name(await settled(app))["z"]["address"] == "127.0.0.1"
    # After a restart a newcomer that sorts first must not take z's address.
    (cfg(tmp_path) / "a.yaml").write_text(lb_yaml("a", 8080))
    async with running(tmp_path, pool) as app:
        lbs = by_name(await settled(app))
        assert (lbs["z"]["address"], lbs["a"]["address"]) == ("127.0.0.1", "127.0.0.2")


async def test_addresses_of_the_previous_state_format_are_kept(tmp_path):
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "assignments.json").write_text(
        '{"version": 1, "addresses": {"demo/z": "127.0.0.1", "demo/gone": "127.0.0.2"}}'
    )
    (cfg(tmp_path) / "a.yaml").write_text(lb_yaml("a", 8080) + "---\n" + lb_yaml("z", 8080))
    async with running(tmp_path, ("127.0.0.1", "127.0.0.2")) as app:
        lbs = by_name(await settled(app))
        # Placed afresh, a (sorting first) would take 127.0.0.1.
        assert (lbs["z"]["address"], lbs["a"]["address"]) == ("127.0.0.1", "127.0.0.2")


async def test_a_lb_removed_while_stopped_gives_its_address_back(tmp_path):
    (cfg(tmp_path) / "z.yaml").write_text(lb_yaml("z", 8080))
    pool = ("127.0.0.1", "127.0.0.2")
    async with running(tmp_path, pool) as app:
        assert by_name(await settled(app))["z"]["address"] == "127.0.0.1"
    (cfg(tmp_path) / "z.yaml").write_text(lb_yaml("y", 8080))
    async with running(tmp_path, pool) as app:
        lbs = by_name(await settled(app))
        assert list(lbs) == ["y"]
        assert lbs["y"]["address"] == "127.0.0.1"


async def test_pool_from_config_annotation_and_addresses_objects(tmp_path):
    (cfg(tmp_path) / "all.yaml").write_text(
        textwrap.dedent(
            """\
            apiVersion: kubelb.k8c.io/v1alpha1
            kind: Config
            metadata:
              name: default
              namespace: kubelb
              annotations: {kubelb.k8c.io/address-pool: "127.0.0.9"}
            spec: {}
            ---
            apiVersion: kubelb.k8c.io/v1alpha1
            kind: Addresses
            metadata: {name: default, namespace: demo}
            spec: {addresses: [{ip: 127.0.0.21}, {ip: 127.0.0.22}]}
            ---
            apiVersion: kubelb.k8c.io/v1alpha1
            kind: LoadBalancer
            metadata: {name: a, namespace: demo}
            spec:
              ports: [{name: http, port: 80}]
              endpoints: [{addressesReference: {name: default}, ports: [{name: http, port: 31000}]}]
            """
        )
    )
    async with running(tmp_path) as app:
        doc = await settled(app, lambda d: d["pool"] == ["127.0.0.9"])
        assert by_name(doc)["a"]["address"] == "127.0.0.9"
        (cluster,) = config(app).clusters
        assert [e.address for e in cluster.endpoints] == ["127.0.0.21", "127.0.0.22"]
        assert cluster.endpoints[0] == proxy.Endpoint(address="127.0.0.21", port=31000)


async def test_missing_addresses_object_is_reported_with_the_managers_reason(tmp_path):
    (cfg(tmp_path) / "a.yaml").write_text(
        lb_yaml("a", 8080).replace(
            "- addresses: [{ip: 127.0.0.11}]", "- addressesReference: {name: nodes}"
        )
    )
    async with running(tmp_path) as app:
        a = by_name(await settled(app))["a"]
        assert reason(a) == "AddressesNotFound"
        assert not a["ready"]
