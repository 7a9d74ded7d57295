"""translate() end to end on small configs, and the canonical rendering."""

from __future__ import annotations

import pytest
import yaml

from kubelb.ir import proxy
from kubelb.xds import translate
from kubelb.xds.translate import render


def tcp_config(*endpoints: str) -> proxy.ProxyConfig:
    return proxy.ProxyConfig(
        node_id="n",
        listeners=(
            proxy.Listener(
                name="l",
                address="127.0.0.1",
                port=8080,
                protocol=proxy.Protocol.TCP,
                clusters=("c",),
            ),
        ),
        clusters=(
            proxy.Cluster(
                name="c",
                protocol=proxy.Protocol.TCP,
                endpoints=tuple(proxy.Endpoint(address=a, port=80) for a in endpoints),
            ),
        ),
    )


def test_ip_cluster_is_eds_with_a_separate_assignment() -> None:
    resources = translate.translate(tcp_config("10.0.0.1"))
    (cluster,) = resources.clusters
    assert cluster.type == cluster.EDS
    assert cluster.eds_cluster_config.eds_config.HasField("ads")
    assert [e.cluster_name for e in resources.endpoints] == ["c"]


def test_hostname_cluster_is_strict_dns_without_eds() -> None:
    resources = translate.translate(tcp_config("10.0.0.1", "backend.example"))
    (cluster,) = resources.clusters
    assert cluster.cluster_type.name == "envoy.clusters.dns"
    assert len(cluster.load_assignment.endpoints[0].lb_endpoints) == 2
    assert resources.endpoints == ()


def test_endpoint_change_leaves_cluster_and_listener_untouched() -> None:
    before = translate.translate(tcp_config("10.0.0.1"))
    after = translate.translate(tcp_config("10.0.0.1", "10.0.0.2"))
    assert before.clusters == after.clusters
    assert before.listeners == after.listeners
    assert before.endpoints != after.endpoints


def test_all_errors_are_reported_at_once() -> None:
    config = proxy.ProxyConfig(
        node_id="n",
        listeners=(
            proxy.Listener(
                name="a", address="0.0.0.0", port=0, protocol=proxy.Protocol.TCP, clusters=("x",)
            ),
        ),
    )
    with pytest.raises(translate.TranslateError) as err:
        translate.translate(config)
    assert "port 0 is outside 1-65535" in str(err.value)
    assert "unknown cluster 'x'" in str(err.value)


def test_conflicting_listener_is_dropped_not_an_error() -> None:
    base = tcp_config("10.0.0.1")
    twin = proxy.Listener(
        name="m", address="0.0.0.0", port=8080, protocol=proxy.Protocol.TCP, clusters=("c",)
    )
    config = proxy.ProxyConfig(
        node_id="n", listeners=(*base.listeners, twin), clusters=base.clusters
    )
    assert [li.name for li in translate.translate(config).listeners] == ["l"]


def test_render_uses_camel_case_type_urls_and_omits_empty_kinds() -> None:
    text = render.to_yaml(translate.translate(tcp_config("backend.example")))
    data = yaml.safe_load(text)
    assert sorted(data) == ["clusters", "listeners"]
    filters = data["listeners"][0]["filterChains"][0]["filters"]
    assert filters[0]["typedConfig"]["@type"].endswith("tcp_proxy.v3.TcpProxy")
    assert "connectTimeout" in data["clusters"][0]
    assert text.endswith("\n")
    assert text == render.dump_yaml(data)  # keys sorted, canonical


def test_render_json_dicts_lists_every_kind() -> None:
    dicts = render.to_json_dicts(translate.translate(tcp_config("10.0.0.1")))
    assert [len(dicts[k]) for k in render.KINDS] == [1, 1, 1, 0, 0]
    dicts = render.to_json_dicts(translate.translate(http_config(("a", "/"))))
    assert [len(dicts[k]) for k in render.KINDS] == [1, 1, 1, 1, 0]


def http_config(*routes: tuple[str, str]) -> proxy.ProxyConfig:
    """One HTTP listener "web"; `routes`: (cluster, path prefix)."""
    return proxy.ProxyConfig(
        node_id="n",
        listeners=(
            proxy.Listener(
                name="web", address="127.0.0.1", port=8080, protocol=proxy.Protocol.HTTP,
                virtual_hosts=proxy.group_by_hostname(
                    ((), proxy.HTTPRoute(
                        name=f"r-{c}", match=proxy.RouteMatch(path=proxy.PathMatch(value=prefix)),
                        backends=(proxy.WeightedCluster(cluster=c),),
                    ))
                    for c, prefix in sorted(routes, key=lambda r: -len(r[1]))
                ),
            ),
        ),
        clusters=tuple(
            proxy.Cluster(name=c, protocol=proxy.Protocol.HTTP,
                          endpoints=(proxy.Endpoint(address="10.0.0.1", port=80),))
            for c, _ in routes
        ),
    )  # fmt: skip


def test_http_listener_takes_its_route_table_by_rds_under_its_own_name() -> None:
    resources = translate.translate(http_config(("a", "/"), ("b", "/b")))
    (listener,) = resources.listeners
    (table,) = resources.routes
    hcm = render.to_dict(listener)["filterChains"][0]["filters"][0]["typedConfig"]
    assert "routeConfig" not in hcm
    assert hcm["rds"] == {
        "configSource": {"ads": {}, "resourceApiVersion": "V3"},
        "routeConfigName": "web",
    }
    assert table.name == "web"
    assert [r.route.cluster for r in table.virtual_hosts[0].routes] == ["b", "a"]


def test_route_change_leaves_the_listener_as_it_was() -> None:
    before = translate.sealed(http_config(("a", "/")))
    after = translate.sealed(http_config(("b", "/"), ("c", "/c")))
    assert after.listeners[0] is before.listeners[0]
    assert after.routes[0].value != before.routes[0].value
    translate.clear_cache()
    cold = translate.sealed(http_config(("b", "/"), ("c", "/c")))
    assert cold.listeners[0].value == before.listeners[0].value


def two_listener_config(second_endpoint: str) -> proxy.ProxyConfig:
    def listener(name: str, port: int) -> proxy.Listener:
        return proxy.Listener(name=name, address="127.0.0.1", port=port,
                              protocol=proxy.Protocol.TCP, clusters=(name,))  # fmt: skip

    def cluster(name: str, address: str) -> proxy.Cluster:
        return proxy.Cluster(name=name, protocol=proxy.Protocol.TCP,
                             endpoints=(proxy.Endpoint(address=address, port=80),))  # fmt: skip

    return proxy.ProxyConfig(
        node_id="n",
        listeners=(listener("a", 8080), listener("b", 8081)),
        clusters=(cluster("a", "10.0.0.1"), cluster("b", second_endpoint)),
    )


def serialized(resources: translate.Resources) -> list[bytes]:
    every = (*resources.listeners, *resources.clusters, *resources.endpoints, *resources.routes)
    return [m.SerializeToString(deterministic=True) for m in every]


def test_unchanged_resources_are_the_same_objects_and_output_equals_a_cold_translation():
    before = translate.sealed(two_listener_config("10.0.0.2"))
    after = translate.sealed(two_listener_config("10.0.0.3"))
    assert after.listeners[0] is before.listeners[0]
    assert after.clusters[0] is before.clusters[0]
    assert after.endpoints[0] is before.endpoints[0]
    assert after.endpoints[1] is not before.endpoints[1]
    translate.clear_cache()
    cold = translate.sealed(two_listener_config("10.0.0.3"))
    assert cold.listeners[0] is not before.listeners[0]
    assert [r.value for r in every(cold)] == [r.value for r in every(after)]
    # The messages `translate` hands out are those bytes, parsed.
    assert serialized(translate.translate(two_listener_config("10.0.0.3"))) == [
        r.value for r in every(after)
    ]


def every(resources: translate.Resources) -> tuple[translate.Sealed, ...]:
    return (*resources.listeners, *resources.clusters, *resources.endpoints, *resources.routes)
