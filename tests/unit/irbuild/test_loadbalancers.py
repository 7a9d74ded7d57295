from kubelb.api import addresses as api_addresses, loadbalancer as api_lb
from kubelb.ir import proxy
from kubelb.irbuild import loadbalancers as irbuild


def make_lb(name="web", namespace="demo", *, ports, endpoints, annotations=None, persistence=None):
    spec = {"ports": ports, "endpoints": endpoints}
    if persistence:
        spec["persistence"] = {"type": persistence}
    meta = {"name": name, "namespace": namespace}
    if annotations:
        meta["annotations"] = annotations
    return api_lb.LoadBalancer.model_validate({"metadata": meta, "spec": spec})


def build(*lbs, address="127.0.0.1", addresses=None, listen_ports=None):
    placement = irbuild.Placement(address=address, listen_ports=listen_ports)
    return irbuild.build_proxy_config("node", [(lb, placement) for lb in lbs], addresses or {})


def test_named_ports_pair_by_name_not_position():
    lb = make_lb(
        ports=[{"name": "https", "port": 443}, {"name": "http", "port": 80}],
        endpoints=[
            {
                "addresses": [{"ip": "10.0.0.2"}, {"ip": "10.0.0.1"}],
                "ports": [{"name": "http", "port": 30080}, {"name": "https", "port": 30443}],
            }
        ],
    )
    built = build(lb)
    assert built.problems == {"demo/web": ()}
    by_port = {li.port: li for li in built.config.listeners}
    https = built.config.cluster(by_port[443].clusters[0])
    assert https.endpoints == (
        proxy.Endpoint(address="10.0.0.1", port=30443),
        proxy.Endpoint(address="10.0.0.2", port=30443),
    )
    assert by_port[80].name == "demo/web/http/tcp"
    assert https.name == "demo/web/ep/#0/port/30443/tcp"
    assert https.health_check == proxy.HealthCheck()
    assert built.config.validate() == []


def test_unnamed_ports_pair_by_position_and_udp_has_no_health_check():
    lb = make_lb(
        ports=[{"port": 53, "protocol": "UDP"}, {"port": 54, "protocol": "UDP"}],
        endpoints=[
            {
                "addresses": [{"ip": "10.0.0.1"}],
                "ports": [{"port": 30053, "protocol": "UDP"}, {"port": 30054, "protocol": "UDP"}],
            }
        ],
    )
    built = build(lb)
    (c53,) = [c for c in built.config.clusters if c.endpoints[0].port == 30053]
    assert c53.protocol is proxy.Protocol.UDP
    assert c53.health_check is None
    assert [li.name for li in built.config.listeners] == ["demo/web/53/udp", "demo/web/54/udp"]


def test_several_endpoint_entries_make_one_cluster_each():
    lb = make_lb(
        ports=[{"name": "p", "port": 80}],
        endpoints=[
            {"name": "a", "addresses": [{"ip": "10.0.0.1"}], "ports": [{"name": "p", "port": 1}]},
            {
                "name": "b",
                "addresses": [{"hostname": "b.example"}],
                "ports": [{"name": "p", "port": 2}],
            },
        ],
    )
    (listener,) = build(lb).config.listeners
    assert listener.clusters == ("demo/web/ep/a/port/1/tcp", "demo/web/ep/b/port/2/tcp")


def test_persistence_proxy_protocol_and_hostname_endpoints():
    lb = make_lb(
        ports=[{"name": "p", "port": 80}, {"name": "u", "port": 81, "protocol": "UDP"}],
        endpoints=[
            {
                "addresses": [{"hostname": "node.example"}, {"ip": "10.0.0.9", "hostname": "x"}],
                "ports": [
                    {"name": "p", "port": 30080},
                    {"name": "u", "port": 30081, "protocol": "UDP"},
                ],
            }
        ],
        annotations={"kubelb.k8c.io/proxy-protocol": "v2"},
        persistence="SourceIP",
    )
    config = build(lb).config
    tcp = next(c for c in config.clusters if c.protocol is proxy.Protocol.TCP)
    udp = next(c for c in config.clusters if c.protocol is proxy.Protocol.UDP)
    assert tcp.proxy_protocol is proxy.ProxyProtocol.V2
    assert udp.proxy_protocol is None  # PROXY protocol is TCP only
    assert all(li.source_ip_persistence for li in config.listeners)
    assert {e.address for e in tcp.endpoints} == {
        "node.example",
        "10.0.0.9",
    }  # ip wins over hostname
    assert tcp.uses_dns


def test_addresses_reference_resolves_in_own_namespace_only():
    lb = make_lb(
        ports=[{"name": "p", "port": 80}],
        endpoints=[
            {"addressesReference": {"name": "default"}, "ports": [{"name": "p", "port": 31000}]}
        ],
    )
    other = make_lb(
        name="web",
        namespace="other",
        ports=[{"name": "p", "port": 81}],
        endpoints=[
            {"addressesReference": {"name": "default"}, "ports": [{"name": "p", "port": 31000}]}
        ],
    )
    nodes = api_addresses.Addresses.model_validate(
        {
            "metadata": {"name": "default", "namespace": "demo"},
            "spec": {"addresses": [{"ip": "10.1.1.1"}]},
        }
    )
    built = build(lb, other, addresses={"demo/default": nodes}, listen_ports=None)
    assert built.problems["other/web"] == ("endpoints '0': Addresses 'default' not found",)
    demo_cluster = built.config.cluster("demo/web/ep/#0/port/31000/tcp")
    assert demo_cluster.endpoints == (proxy.Endpoint(address="10.1.1.1", port=31000),)
    assert built.config.cluster("other/web/ep/#0/port/31000/tcp").endpoints == ()


def test_problems_for_missing_ports_protocol_mismatch_and_bad_annotation():
    lb = make_lb(
        ports=[{"name": "p", "port": 80}, {"name": "q", "port": 81}, {"name": "r", "port": 82}],
        endpoints=[
            {
                "addresses": [{"ip": "10.0.0.1"}],
                "ports": [{"name": "p", "port": 1}, {"name": "q", "port": 2, "protocol": "UDP"}],
            }
        ],
        annotations={"kubelb.k8c.io/proxy-protocol": "v1"},
    )
    built = build(lb)
    problems = built.problems["demo/web"]
    assert any("proxy-protocol='v1' is not supported" in p for p in problems)
    assert any("port 2 is UDP but port 81 is TCP" in p for p in problems)
    assert any("no port named 'r'" in p for p in problems)
    assert [li.port for li in built.config.listeners] == [80]


def test_allocated_listen_ports_and_conflicts_reported_against_the_loser():
    ep = [{"addresses": [{"ip": "10.0.0.1"}], "ports": [{"name": "p", "port": 1}]}]
    a = make_lb("a", ports=[{"name": "p", "port": 80}], endpoints=ep)
    b = make_lb("b", ports=[{"name": "p", "port": 80}], endpoints=ep)
    built = build(a, b, address="0.0.0.0")
    assert [li.owner for li in built.config.listeners] == ["demo/a"]
    assert "conflicts with another LoadBalancer" in built.problems["demo/b"][0]
    allocated = build(a, listen_ports={("p", "TCP"): 12345}, address="0.0.0.0")
    assert allocated.config.listeners[0].port == 12345


def test_pieces_assembled_in_any_order_equal_the_whole_build():
    endpoints = [{"addresses": [{"ip": "10.0.0.1"}], "ports": [{"name": "p", "port": 30080}]}]
    web = make_lb("web", ports=[{"name": "p", "port": 80}], endpoints=endpoints)
    api = make_lb("api", ports=[{"name": "p", "port": 80}], endpoints=endpoints)
    placement = irbuild.Placement(address="127.0.0.1")
    whole = build(web, api)
    pieces = [irbuild.build_load_balancer(lb, placement, {}) for lb in (web, api)]
    assembled = irbuild.assemble("node", reversed(pieces))
    assert assembled == whole
    # Both bind 127.0.0.1:80: the loser is reported whichever order the pieces come in.
    assert assembled.problems["demo/web"]
    assert assembled.config.dropped_listeners == whole.config.dropped_listeners


def test_names_are_injective_across_namespace_and_name():
    """`a-b/c` and `a/b-c` once shared every listener and cluster name, and then no update
    reached either data plane."""
    endpoints = [{"addresses": [{"ip": "10.0.0.1"}], "ports": [{"port": 30080}]}]
    one = make_lb("c", "a-b", ports=[{"port": 80}], endpoints=endpoints)
    two = make_lb("b-c", "a", ports=[{"port": 80}], endpoints=endpoints)
    built = irbuild.build_proxy_config(
        "node", [(one, irbuild.Placement("127.0.0.1")), (two, irbuild.Placement("127.0.0.2"))], {}
    )
    listeners = {li.name for li in built.config.listeners}
    clusters = {c.name for c in built.config.clusters}
    assert len(listeners) == 2
    assert len(clusters) == 2
    assert built.config.validate() == []


def test_an_entry_named_like_a_position_gets_its_own_cluster():
    lb = make_lb(
        ports=[{"port": 80}],
        endpoints=[
            {"addresses": [{"ip": "10.0.0.1"}], "ports": [{"port": 1}]},
            {"name": "0", "addresses": [{"ip": "10.0.0.2"}], "ports": [{"port": 1}]},
        ],
    )
    built = build(lb)
    assert sorted(c.name for c in built.config.clusters) == [
        "demo/web/ep/#0/port/1/tcp",
        "demo/web/ep/0/port/1/tcp",
    ]
