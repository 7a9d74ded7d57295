import textwrap

from kubelb.ir import proxy
from kubelb.sources import file
from kubelb.standalone import engine, state


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


def make(tmp_path, pool=None):
    return engine.Engine(store=state.StateStore(tmp_path / "state"), pool=pool)


def reconcile(eng, config_dir):
    return eng.reconcile(file.FileSource(config_dir).load())


def by_name(outcome):
    return {lb.name: lb for lb in outcome.loadbalancers}


def test_serves_lbs_on_pool_addresses(tmp_path):
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    (cfg / "a.yaml").write_text(lb_yaml("a", 8080) + "---\n" + lb_yaml("b", 8080))
    outcome = reconcile(make(tmp_path, pool=["127.0.0.1", "127.0.0.2"]), cfg)
    lbs = by_name(outcome)
    assert (lbs["a"].address, lbs["b"].address) == ("127.0.0.1", "127.0.0.2")
    assert all(lb.ready for lb in lbs.values())
    assert sorted((li.address, li.port) for li in outcome.config.listeners) == [
        ("127.0.0.1", 8080),
        ("127.0.0.2", 8080),
    ]
    assert outcome.config.node_id == "standalone"
    assert outcome.config.validate() == []


def test_port_conflict_reports_and_others_keep_serving(tmp_path):
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    (cfg / "a.yaml").write_text(lb_yaml("a", 8080))
    eng = make(tmp_path)
    reconcile(eng, cfg)
    (cfg / "b.yaml").write_text(lb_yaml("b", 8080) + "---\n" + lb_yaml("c", 9090))
    lbs = by_name(reconcile(eng, cfg))
    assert lbs["a"].ready
    assert lbs["c"].ready
    assert not lbs["b"].ready
    (cond,) = lbs["b"].conditions
    assert cond.reason == "PortConflict"
    assert "demo/a" in cond.message


def test_invalid_lb_keeps_last_valid_version_and_says_why(tmp_path):
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    (cfg / "a.yaml").write_text(lb_yaml("a", 8080))
    eng = make(tmp_path)
    first = reconcile(eng, cfg)
    (cfg / "a.yaml").write_text(
        lb_yaml("a", 8080).replace("port: 18080", "port: 18080, protocol: SCTP")
    )
    second = reconcile(eng, cfg)
    assert second.config.listeners == first.config.listeners
    (cond,) = by_name(second)["a"].conditions
    assert cond.reason == "InvalidSpec"
    assert "spec.endpoints[0].ports[0].protocol" in cond.message
    assert "serving the last valid version" in cond.message


def test_new_invalid_lb_is_reported_not_served(tmp_path):
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    (cfg / "a.yaml").write_text(lb_yaml("a", 8080) + "---\n" + lb_yaml("bad", 0))
    outcome = reconcile(make(tmp_path), cfg)
    lbs = by_name(outcome)
    assert lbs["a"].ready
    assert not lbs["bad"].ready
    assert lbs["bad"].conditions[0].reason == "InvalidSpec"
    assert (
        "spec.ports[0].port: Invalid value: 0: should be >= 1" in lbs["bad"].conditions[0].message
    )
    assert [li.port for li in outcome.config.listeners] == [8080]


def test_malformed_file_and_unknown_kind_are_errors_not_crashes(tmp_path):
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    (cfg / "a.yaml").write_text(lb_yaml("a", 8080))
    (cfg / "broken.yaml").write_text("kind: [oops\n")
    (cfg / "svc.yaml").write_text("apiVersion: v1\nkind: Service\nmetadata: {name: x}\n")
    outcome = reconcile(make(tmp_path), cfg)
    assert by_name(outcome)["a"].ready
    assert any("broken.yaml" in e for e in outcome.errors)
    assert any("svc.yaml" in e for e in outcome.errors)


def test_duplicate_objects_are_reported(tmp_path):
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    (cfg / "a.yaml").write_text(lb_yaml("a", 8080))
    (cfg / "b.yaml").write_text(lb_yaml("a", 9090))
    outcome = reconcile(make(tmp_path), cfg)
    assert any("duplicate LoadBalancer/demo/a" in e for e in outcome.errors)
    assert [li.port for li in outcome.config.listeners] == [8080]


def test_assignments_survive_a_restart(tmp_path):
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    (cfg / "z.yaml").write_text(lb_yaml("z", 8080))
    pool = ["127.0.0.1", "127.0.0.2"]
    assert by_name(reconcile(make(tmp_path, pool), cfg))["z"].address == "127.0.0.1"
    # After a restart a newcomer that sorts first must not take z's address.
    (cfg / "a.yaml").write_text(lb_yaml("a", 8080))
    lbs = by_name(reconcile(make(tmp_path, pool), cfg))
    assert (lbs["z"].address, lbs["a"].address) == ("127.0.0.1", "127.0.0.2")


def test_pool_from_config_annotation_and_addresses_objects(tmp_path):
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    (cfg / "all.yaml").write_text(
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
    outcome = reconcile(make(tmp_path), cfg)
    assert by_name(outcome)["a"].address == "127.0.0.9"
    (cluster,) = outcome.config.clusters
    assert [e.address for e in cluster.endpoints] == ["127.0.0.21", "127.0.0.22"]
    assert cluster.endpoints[0] == proxy.Endpoint(address="127.0.0.21", port=31000)
