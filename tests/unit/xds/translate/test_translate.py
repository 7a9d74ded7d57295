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
    assert [len(dicts[k]) for k in render.KINDS] == [1, 1, 1]
