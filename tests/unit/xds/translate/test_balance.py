"""Which Envoy clusters exist and what each TCP/UDP listener forwards to."""

from __future__ import annotations

import pytest

from kubelb.ir import proxy
from kubelb.xds import translate
from kubelb.xds.translate import balance

TCP, UDP = proxy.Protocol.TCP, proxy.Protocol.UDP


def cluster(name: str, protocol: proxy.Protocol = TCP, **kw: object) -> proxy.Cluster:
    eps = (proxy.Endpoint(address=f"10.0.0.{len(name)}", port=80),)
    return proxy.Cluster(name=name, protocol=protocol, endpoints=eps, **kw)  # type: ignore[arg-type]


def listener(
    name: str, clusters: tuple[str, ...], protocol: proxy.Protocol = TCP, *, sticky: bool = False
) -> proxy.Listener:
    return proxy.Listener(
        name=name,
        address="0.0.0.0",
        port=80,
        protocol=protocol,
        clusters=clusters,
        source_ip_persistence=sticky,
    )


def test_single_clusters_map_one_to_one() -> None:
    config = proxy.ProxyConfig(
        node_id="n", listeners=(listener("l", ("a",)),), clusters=(cluster("a"),)
    )
    plan = balance.plan(config)
    assert [b.name for b in plan.backends] == ["a"]
    assert plan.targets == {"l": ("a",)}


def test_tcp_entries_stay_separate_and_sorted() -> None:
    config = proxy.ProxyConfig(
        node_id="n",
        listeners=(listener("l", ("b", "a", "b")),),
        clusters=(cluster("a"), cluster("b")),
    )
    plan = balance.plan(config)
    assert plan.targets == {"l": ("a", "b")}
    assert [b.name for b in plan.backends] == ["a", "b"]


def test_udp_entries_are_merged_and_members_not_emitted() -> None:
    config = proxy.ProxyConfig(
        node_id="n",
        listeners=(listener("l", ("a", "b"), UDP),),
        clusters=(cluster("a", UDP), cluster("b", UDP)),
    )
    plan = balance.plan(config)
    assert plan.targets == {"l": ("l-merged",)}
    assert [b.name for b in plan.backends] == ["l-merged"]
    (merged,) = plan.backends
    assert merged.merged
    assert merged.cluster.protocol is UDP


def test_persistent_tcp_entries_are_merged_with_the_safer_options() -> None:
    hc = proxy.HealthCheck(interval_seconds=2)
    config = proxy.ProxyConfig(
        node_id="n",
        listeners=(listener("l", ("a", "b"), sticky=True),),
        clusters=(
            cluster("a", connect_timeout_seconds=1),
            cluster("b", connect_timeout_seconds=7, health_check=hc),
        ),
    )
    (merged,) = balance.plan(config).backends
    assert merged.persistent
    assert merged.cluster.connect_timeout_seconds == 7
    assert merged.cluster.health_check == hc


def test_clusters_run_maglev_only_behind_a_persistent_listener() -> None:
    config = proxy.ProxyConfig(
        node_id="n",
        listeners=(
            listener("sticky", ("a",), sticky=True),
            listener("plain", ("b",)),
            listener("both", ("a", "b"), UDP),
        ),
        clusters=(cluster("a"), cluster("b"), cluster("orphan")),
    )
    persistent = {b.name: b.persistent for b in balance.plan(config).backends}
    assert persistent == {"a": True, "b": False, "both-merged": False, "orphan": False}


def test_member_also_used_directly_is_still_emitted() -> None:
    config = proxy.ProxyConfig(
        node_id="n",
        listeners=(listener("l", ("a", "b"), UDP), listener("m", ("a",), UDP)),
        clusters=(cluster("a", UDP), cluster("b", UDP)),
    )
    assert [b.name for b in balance.plan(config).backends] == ["a", "l-merged"]


def test_unreferenced_cluster_is_still_emitted() -> None:
    config = proxy.ProxyConfig(node_id="n", clusters=(cluster("orphan"),))
    assert [b.name for b in balance.plan(config).backends] == ["orphan"]


def test_merged_name_colliding_with_an_ir_cluster_is_an_error() -> None:
    config = proxy.ProxyConfig(
        node_id="n",
        listeners=(listener("l", ("a", "b"), UDP),),
        clusters=(cluster("a", UDP), cluster("b", UDP), cluster("l-merged", UDP)),
    )
    with pytest.raises(translate.TranslateError, match="'l-merged' is already an IR cluster"):
        balance.plan(config)
