"""The file loader syncs YAML files into the in-memory API server as `kubectl apply` would."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubelb.api import labels
from kubelb.kube import errors, informer, memory, objects, resources
from kubelb.sources import file, loader

LBS = resources.LOAD_BALANCERS


def lb(name: str, port: int = 80, namespace: str | None = "shop", extra: str = "") -> str:
    ns = f"\n  namespace: {namespace}" if namespace else ""
    return f"""\
apiVersion: kubelb.k8c.io/v1alpha1
kind: LoadBalancer
metadata:
  name: {name}{ns}{extra}
spec:
  ports: [{{name: http, port: {port}}}]
  endpoints:
    - addresses: [{{ip: 10.0.0.1}}]
      ports: [{{name: http, port: 30080}}]
"""


CONFIG = """\
apiVersion: kubelb.k8c.io/v1alpha1
kind: Config
metadata: {name: default, namespace: kubelb}
spec: {}
"""


@pytest.fixture
def store() -> memory.MemoryClient:
    return memory.MemoryClient(field_manager="kubelb")


def setup(tmp_path: Path, store: memory.MemoryClient) -> tuple[file.FileSource, loader.Loader]:
    return file.FileSource(tmp_path), loader.Loader(store.with_manager("kubelb-files"))


def names(refs: tuple[loader.ObjectRef, ...]) -> list[str]:
    return [str(r) for r in refs]


async def test_first_sync_creates_objects_and_namespaces(tmp_path, store):
    (tmp_path / "a.yaml").write_text(CONFIG + "---\n" + lb("api") + "---\n" + lb("web", 81, None))
    source, load = setup(tmp_path, store)
    result = await load.sync(source.load())
    assert not result.errors
    assert names(result.created) == ["Config kubelb/default", "LoadBalancer shop/api",
                                     "LoadBalancer default/web"]  # fmt: skip
    api = await store.get(LBS, "api", namespace="shop")
    assert objects.generation(api) == 1
    assert "status" not in api
    assert objects.namespace(await store.get(LBS, "web", namespace="default")) == "default"
    shop = await store.get(resources.NAMESPACES, "shop")
    assert objects.labels(shop)[labels.MANAGED_BY] == labels.MANAGED_BY_VALUE
    default = await store.get(resources.NAMESPACES, "default")
    assert objects.labels(default)[labels.MANAGED_BY] == labels.MANAGED_BY_VALUE
    kubelb = await store.get(resources.NAMESPACES, "kubelb")
    assert labels.MANAGED_BY not in objects.labels(kubelb)  # a Config does not make a tenant
    again = await load.sync(source.load())
    assert not again.changed
    assert again.unchanged == 3


async def test_changes_update_prune_and_never_touch_status(tmp_path, store):
    path = tmp_path / "lb.yaml"
    path.write_text(lb("api", extra="\n  annotations: {a: b}"))
    source, load = setup(tmp_path, store)
    await load.sync(source.load())
    live = await store.get(LBS, "api", namespace="shop")
    await store.replace_status(
        LBS, {**live, "status": {"loadBalancer": {"ingress": [{"ip": "1"}]}}}
    )
    path.write_text(lb("api", 90) + "status: {overwritten: true}\n")  # annotation dropped
    result = await load.sync(source.load())
    assert names(result.updated) == ["LoadBalancer shop/api"]
    live = await store.get(LBS, "api", namespace="shop")
    assert live["spec"]["ports"][0]["port"] == 90
    assert objects.generation(live) == 2
    assert "annotations" not in live["metadata"]  # removed from the file, removed here
    assert live["status"] == {"loadBalancer": {"ingress": [{"ip": "1"}]}}
    path.write_text(lb("api", 90, extra="\n  labels: {tier: edge}"))
    await load.sync(source.load())
    live = await store.get(LBS, "api", namespace="shop")
    assert objects.generation(live) == 2  # metadata only


async def test_vanished_documents_are_deleted_once_finalizers_let_go(tmp_path, store):
    path = tmp_path / "lb.yaml"
    path.write_text(lb("api") + "---\n" + lb("web", 81))
    source, load = setup(tmp_path, store)
    await load.sync(source.load())
    await store.patch(LBS, "api", {"metadata": {"finalizers": ["kubelb.k8c.io/cleanup"]}},
                      namespace="shop")  # fmt: skip
    path.write_text(lb("web", 81))
    result = await load.sync(source.load())
    assert names(result.deleted) == ["LoadBalancer shop/api"]
    assert objects.is_deleting(await store.get(LBS, "api", namespace="shop"))
    path.write_text(lb("web", 81) + "---\n" + lb("api", 82))  # back while still deleting
    result = await load.sync(source.load())
    assert names(result.waiting) == ["LoadBalancer shop/api"]
    await store.patch(LBS, "api", {"metadata": {"finalizers": None}}, namespace="shop")
    with pytest.raises(errors.NotFoundError):
        await store.get(LBS, "api", namespace="shop")
    result = await load.sync(source.load())
    assert names(result.created) == ["LoadBalancer shop/api"]
    fresh = await store.get(LBS, "api", namespace="shop")
    assert fresh["spec"]["ports"][0]["port"] == 82
    assert not objects.is_deleting(fresh)


async def test_invalid_versions_never_replace_a_valid_one(tmp_path, store):
    path = tmp_path / "lb.yaml"
    path.write_text(lb("api"))
    source, load = setup(tmp_path, store)
    await load.sync(source.load())
    bad = lb("api", 90).replace("name: http, port: 90", "name: http, port: 90, protocol: SCTP")
    new_bad = lb("new", 91).replace("port: 91", "port: 91, protocol: SCTP")
    path.write_text(bad + "---\n" + new_bad)
    result = await load.sync(source.load())
    kept, stored = result.errors
    assert kept.kept_last_valid
    assert kept.ref == loader.ObjectRef("LoadBalancer", "shop", "api")
    assert load.origins[kept.ref] == kept.origin
    assert "SCTP" in kept.message
    assert kept.origin.endswith("lb.yaml#0")
    live = await store.get(LBS, "api", namespace="shop")
    assert live["spec"]["ports"][0] == {"name": "http", "port": 80}  # the valid version
    # Nothing valid to keep: stored as written, for the manager to report InvalidSpec on.
    assert not stored.kept_last_valid
    invalid = await store.get(LBS, "new", namespace="shop")
    assert invalid["spec"]["ports"][0]["protocol"] == "SCTP"
    path.write_text(lb("api", 92) + "---\n" + lb("new", 91))  # both fixed
    result = await load.sync(source.load())
    assert not result.errors
    assert names(result.updated) == ["LoadBalancer shop/api", "LoadBalancer shop/new"]


async def test_bad_documents_fail_alone(tmp_path, store):
    (tmp_path / "a.yaml").write_text(
        lb("api") + "---\n" + lb("api", 81)  # duplicate
        + "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n"  # not served
        + "---\napiVersion: kubelb.k8c.io/v2\nkind: LoadBalancer\nmetadata: {name: x}\n"
        + "---\napiVersion: kubelb.k8c.io/v1alpha1\nkind: LoadBalancer\nmetadata: {}\n"
        + "---\n" + lb("ok", 82, "Bad_Namespace")
    )  # fmt: skip
    (tmp_path / "b.yaml").write_text(lb("other", 83))
    source, load = setup(tmp_path, store)
    result = await load.sync(source.load())
    messages = {e.origin.rsplit("/", 1)[-1]: e.message for e in result.errors}
    assert sorted(messages) == ["a.yaml#1", "a.yaml#2", "a.yaml#3", "a.yaml#4", "a.yaml#5"]
    assert "duplicate LoadBalancer shop/api, already defined at" in messages["a.yaml#1"]
    assert "kind 'ConfigMap' is not served here" in messages["a.yaml#2"]
    assert "needs apiVersion kubelb.k8c.io/v1alpha1" in messages["a.yaml#3"]
    assert "has no metadata.name" in messages["a.yaml#4"]
    assert "namespace Bad_Namespace:" in messages["a.yaml#5"]
    assert names(result.created) == ["LoadBalancer shop/api", "LoadBalancer shop/other"]
    # A file that stops parsing keeps its last good documents: nothing is deleted.
    (tmp_path / "b.yaml").write_text(lb("other", 83) + "  bad: [unclosed\n")
    result = await load.sync(source.load())
    assert result.file_errors[0].using_last_good
    assert not result.deleted


async def test_watch_feeds_an_informer(tmp_path, store):
    path = tmp_path / "lb.yaml"
    path.write_text(lb("api"))
    source, load = setup(tmp_path, store)
    inf = informer.Informer(store, LBS)
    seen: list[tuple[str, str]] = []
    deleted = asyncio.Event()

    def record(change: informer.Change) -> None:
        seen.append((change.type.value, objects.name(change.obj)))
        if change.type is informer.ChangeType.DELETE:
            deleted.set()

    inf.add_handler(record)
    results = load.watch(source, poll_seconds=0.01)
    task = asyncio.create_task(inf.run())
    try:
        first = await anext(results)
        assert names(first.created) == ["LoadBalancer shop/api"]
        await inf.wait_synced()
        path.write_text(lb("web"))
        second = await anext(results)
        assert names(second.created) == ["LoadBalancer shop/web"]
        assert names(second.deleted) == ["LoadBalancer shop/api"]
        await deleted.wait()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await results.aclose()
    assert seen == [("add", "api"), ("add", "web"), ("delete", "api")]


async def test_watch_recreates_an_object_once_its_deletion_finishes(tmp_path, store):
    path = tmp_path / "lb.yaml"
    path.write_text(lb("api"))
    source, load = setup(tmp_path, store)
    results = load.watch(source, poll_seconds=0.01)
    try:
        await anext(results)
        await store.patch(LBS, "api", {"metadata": {"finalizers": ["x.io/hold"]}}, namespace="shop")
        path.write_text("")
        assert names((await anext(results)).deleted) == ["LoadBalancer shop/api"]
        path.write_text(lb("api", 81))
        assert names((await anext(results)).waiting) == ["LoadBalancer shop/api"]
        await store.patch(LBS, "api", {"metadata": {"finalizers": None}}, namespace="shop")
        back = await anext(results)  # no file changed: the loader retried by itself
        assert names(back.created) == ["LoadBalancer shop/api"]
    finally:
        await results.aclose()
    live = await store.get(LBS, "api", namespace="shop")
    assert live["spec"]["ports"][0]["port"] == 81


async def test_defaults_fill_what_documents_leave_unset(tmp_path, store):
    (tmp_path / "lb.yaml").write_text(lb("api") + "---\n" + lb("web").replace(
        "spec:\n", "spec:\n  type: ClusterIP\n"))  # fmt: skip
    (tmp_path / "config.yaml").write_text(CONFIG.replace(", namespace: kubelb", ""))
    defaults: dict[str, dict[str, Any]] = {
        "LoadBalancer": {"spec": {"type": "LoadBalancer"}, "metadata": {"labels": {"a": "b"}}},
        "Config": {"metadata": {"namespace": "kubelb"}},  # where the manager reads it
    }
    load = loader.Loader(store, defaults=defaults)
    result = await load.sync(file.FileSource(tmp_path).load())
    assert "Config kubelb/default" in names(result.created)
    api = await store.get(LBS, "api", namespace="shop")
    web = await store.get(LBS, "web", namespace="shop")
    assert (api["spec"]["type"], web["spec"]["type"]) == ("LoadBalancer", "ClusterIP")
    assert api["spec"]["ports"] == [{"name": "http", "port": 80}]
    assert objects.labels(web) == {"a": "b"}
    assert objects.name(web) == "web"


async def test_a_duplicate_in_an_earlier_file_never_takes_over(tmp_path, store):
    (tmp_path / "m.yaml").write_text(lb("api", 80))
    source, load = setup(tmp_path, store)
    await load.sync(source.load())
    # The same LoadBalancer appears in a file that sorts first: the original keeps serving.
    (tmp_path / "a.yaml").write_text(lb("api", 81))
    result = await load.sync(source.load())
    (error,) = result.errors
    assert error.origin.endswith("a.yaml#0"), "the duplicate is the one reported"
    assert "m.yaml#0" in error.message
    assert not result.changed
    live = await store.get(LBS, "api", namespace="shop")
    assert live["spec"]["ports"][0]["port"] == 80
    assert load.origins[loader.ObjectRef("LoadBalancer", "shop", "api")].endswith("m.yaml#0")
    # Once the original is gone, the other definition takes over.
    (tmp_path / "m.yaml").unlink()
    result = await load.sync(source.load())
    assert not result.errors
    live = await store.get(LBS, "api", namespace="shop")
    assert live["spec"]["ports"][0]["port"] == 81


async def test_a_first_sync_with_duplicates_keeps_the_first_in_order(tmp_path, store):
    (tmp_path / "a.yaml").write_text(lb("api", 80))
    (tmp_path / "b.yaml").write_text(lb("api", 81))
    source, load = setup(tmp_path, store)
    result = await load.sync(source.load())
    (error,) = result.errors
    assert error.origin.endswith("b.yaml#0")
    live = await store.get(LBS, "api", namespace="shop")
    assert live["spec"]["ports"][0]["port"] == 80


@pytest.mark.parametrize(
    ("old", "new", "why"),
    [
        (
            "port: 90}",
            "port: 70000}",
            "spec.ports[0].port: Invalid value: 70000: should be <= 65535",
        ),
        (
            "port: 30080}",
            "port: 0}",
            "spec.endpoints[0].ports[0].port: Invalid value: 0: should be >= 1",
        ),
        ("{name: http, port: 90}", "{name: web, port: 90}", "has no port named 'web'"),
        ("ip: 10.0.0.1", "ip: 999.1.1.1", "'999.1.1.1' is not an IP address"),
        ("ports: [{name: http, port: 90}]", "ports: []", "spec.ports is empty"),
    ],
)
async def test_a_version_the_reconciler_would_refuse_never_replaces_a_valid_one(
    tmp_path, store, old, new, why
):
    path = tmp_path / "lb.yaml"
    path.write_text(lb("api", 90))
    source, load = setup(tmp_path, store)
    await load.sync(source.load())
    assert old in lb("api", 90)
    path.write_text(lb("api", 90).replace(old, new))
    result = await load.sync(source.load())
    (error,) = result.errors
    assert error.kept_last_valid
    assert why in error.message
    live = await store.get(LBS, "api", namespace="shop")
    assert live["spec"] == yaml.safe_load(lb("api", 90))["spec"]


async def test_a_new_object_the_reconciler_would_refuse_is_stored_for_its_verdict(tmp_path, store):
    (tmp_path / "lb.yaml").write_text(lb("api", 70000))
    source, load = setup(tmp_path, store)
    result = await load.sync(source.load())
    (error,) = result.errors
    assert not error.kept_last_valid
    assert names(result.created) == ["LoadBalancer shop/api"]


async def test_unknown_fields_are_warned_about_and_applied(tmp_path, store):
    typo = (
        lb("api")
        .replace("spec:\n  ports:", "spec:\n  prots: []\n  ports:")
        .replace("{name: http, port: 80}", "{name: http, port: 80, protocl: UDP}")
    )
    (tmp_path / "lb.yaml").write_text(typo + "  colour: blue\n" + "---\n" + lb("web", 81))
    source, load = setup(tmp_path, store)
    result = await load.sync(source.load())
    assert not result.errors
    assert names(result.created) == ["LoadBalancer shop/api", "LoadBalancer shop/web"]
    warned = sorted(w.message for w in result.warnings)
    assert warned == [
        "LoadBalancer shop/api: unknown field 'spec.colour' is ignored",
        "LoadBalancer shop/api: unknown field 'spec.ports[0].protocl' is ignored",
        "LoadBalancer shop/api: unknown field 'spec.prots' is ignored",
    ]
    assert all(w.origin.endswith("lb.yaml#0") for w in result.warnings)


async def test_warnings_and_refusals_stand_on_every_sync_until_fixed(tmp_path, store):
    path = tmp_path / "lb.yaml"
    path.write_text(lb("api"))
    source, load = setup(tmp_path, store)
    await load.sync(source.load())
    path.write_text(lb("api").replace("10.0.0.1", "999.1.1.1") + "  colour: blue\n")
    for _ in range(2):  # the second sync checks nothing anew, and says the same
        result = await load.sync(source.load())
        assert [e.kept_last_valid for e in result.errors] == [True]
        assert len(result.warnings) == 1
    path.write_text(lb("api") + "  colour: blue\n")
    for _ in range(2):
        result = await load.sync(source.load())
        assert not result.errors
        assert [w.message for w in result.warnings] == [
            "LoadBalancer shop/api: unknown field 'spec.colour' is ignored"
        ]
