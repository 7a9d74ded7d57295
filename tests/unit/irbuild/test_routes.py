import itertools
import random
from pathlib import Path

import pydantic
import pytest
import yaml

from kubelb.api import addresses as api_addresses, config as api_config, route as api_route
from kubelb.ir import proxy
from kubelb.irbuild import endpointpolicy, gatewayroutes, routes

GOLDEN_INPUTS = Path(__file__).parents[2] / "golden" / "ir" / "in"
NS = "tenant-a"


def svc(name, ns="default", port=80, node_port=30080):
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"type": "NodePort", "ports": [{"port": port, "nodePort": node_port}]},
    }


def ingress_route(uid, name, rules=(), *, created=None, services=(), endpoints=None, default=None):
    metadata = {"name": name, "namespace": "default"}
    if created:
        metadata["creationTimestamp"] = created
    spec: dict[str, object] = {"rules": list(rules)}
    if default:
        spec["defaultBackend"] = {"service": {"name": default, "port": {"number": 80}}}
    return api_route.Route.model_validate(
        {
            "metadata": {"name": uid, "namespace": NS},
            "spec": {
                "endpoints": endpoints or [{"addresses": [{"ip": "10.0.0.1"}]}],
                "source": {
                    "kubernetes": {
                        "resource": {
                            "apiVersion": "networking.k8s.io/v1",
                            "kind": "Ingress",
                            "metadata": metadata,
                            "spec": spec,
                        },
                        "services": list(services),
                    }
                },
            },
        }
    )


def rule(host, path, service, path_type="Prefix"):
    backend = {"service": {"name": service, "port": {"number": 80}}}
    return {
        "host": host,
        "http": {"paths": [{"path": path, "pathType": path_type, "backend": backend}]},
    }


def build(rs, addresses=None, **kwargs):
    kwargs.setdefault("address", "10.1.0.1")
    return routes.build_tenant_routes(NS, rs, addresses or {}, **kwargs)


def config(built):
    return proxy.ProxyConfig(
        node_id=NS, listeners=built.piece.listeners, clusters=built.piece.clusters
    )


def golden_routes(case):
    """The Routes and Addresses of a golden case, as the manager would hand them over."""
    objects = yaml.safe_load((GOLDEN_INPUTS / f"{case}.yaml").read_text())["objects"]
    rs = [api_route.Route.model_validate(o) for o in objects if o["kind"] == "Route"]
    addresses = {
        f"{NS}/{o['metadata']['name']}": api_addresses.Addresses.model_validate(o)
        for o in objects
        if o["kind"] == "Addresses"
    }
    return rs, addresses


ROUTE_CASES = sorted(
    p.stem
    for p in GOLDEN_INPUTS.glob("*.yaml")
    if p.stem.startswith(("ingress-", "gateway-", "httproute-", "grpcroute-"))
)


@pytest.mark.parametrize("case", ROUTE_CASES)
def test_any_order_of_routes_and_services_gives_the_same_result(case):
    rs, addresses = golden_routes(case)
    expected = build(rs, addresses)
    assert config(expected).validate() == []
    shuffler = random.Random(case)
    for _ in range(5):
        shuffled = []
        for r in shuffler.sample(rs, len(rs)):
            services = list(r.spec.source.kubernetes.services)
            shuffler.shuffle(services)
            source = r.spec.source.kubernetes.model_copy(update={"services": tuple(services)})
            spec = r.spec.model_copy(update={"source": api_route.RouteSource(kubernetes=source)})
            shuffled.append(r.model_copy(update={"spec": spec}))
        assert build(shuffled, addresses) == expected


def test_a_conflict_goes_to_the_older_ingress_then_to_the_source_name():
    services = [svc("web")]
    older = ingress_route(
        "z",
        "older",
        [rule("a.example", "/", "web")],
        created="2026-01-01T00:00:00Z",
        services=services,
    )
    newer = ingress_route(
        "a",
        "newer",
        [rule("a.example", "/", "web")],
        created="2026-02-01T00:00:00Z",
        services=services,
    )
    built = build([newer, older])
    assert built.outcomes["z"].problems == ()
    assert built.outcomes["a"].problems == (
        "host 'a.example' path '/' (PathPrefix) is already served by Ingress default/older: "
        "not served",
    )
    (listener,) = built.piece.listeners
    assert [r.name for r in listener.routes] == ["ingress/default/older/a.example/PathPrefix/%2F"]
    # Without timestamps the source name decides, whatever the Route names.
    left = ingress_route("z", "b-ingress", [rule("a.example", "/", "web")], services=services)
    right = ingress_route("a", "c-ingress", [rule("a.example", "/", "web")], services=services)
    tied = build([right, left])
    assert tied.outcomes["z"].problems == ()
    assert tied.outcomes["a"].problems != ()


def test_exact_and_prefix_of_one_path_are_different_claims():
    services = [svc("web")]
    first = ingress_route("1", "one", [rule("h", "/p", "web", "Exact")], services=services)
    second = ingress_route("2", "two", [rule("h", "/p", "web", "Prefix")], services=services)
    built = build([first, second])
    assert all(o.problems == () for o in built.outcomes.values())
    (listener,) = built.piece.listeners
    assert [r.match.path.kind for r in listener.routes] == [
        proxy.PathMatchKind.EXACT,
        proxy.PathMatchKind.PREFIX,
    ]


def test_listen_ports_map_port_80_and_an_unbindable_one_is_reported():
    r = ingress_route("1", "web", default="web", services=[svc("web")])
    (listener,) = build([r], listen_ports={80: 30123}).piece.listeners
    assert (listener.port, listener.name) == (30123, "tenant-a/L7/80/http")
    blocked = build([r], listen_ports={80: 70000})
    assert blocked.piece.listeners == ()
    assert blocked.outcomes["1"].problems == (
        "port 80: 70000 is outside 1-65535: the Ingress is not served",
    )
    assert blocked.outcomes["1"].served_status == {"loadBalancer": {}}
    taken = build([r], taken_ports={80})
    assert taken.piece.listeners == ()
    assert "port 80 is used by a LoadBalancer of this tenant" in taken.outcomes["1"].problems[0]


def test_the_policy_refuses_endpoints_as_for_layer_4():
    r = ingress_route(
        "1",
        "web",
        default="web",
        services=[svc("web")],
        endpoints=[{"addresses": [{"ip": "10.0.0.1"}, {"ip": "192.168.0.1"}]}],
    )
    policy = endpointpolicy.EndpointPolicy(denied=endpointpolicy.parse_networks(["10.0.0.0/8"]))
    built = build([r], policy=policy)
    (cluster,) = built.piece.clusters
    assert cluster.endpoints == (proxy.Endpoint(address="192.168.0.1", port=30080),)
    refusal = "endpoint 10.0.0.1:30080 is refused: 10.0.0.1 is in denied CIDR 10.0.0.0/8"
    assert built.outcomes["1"].refused == (refusal,)
    assert built.piece.refused == (refusal,)


def test_routes_sharing_a_service_share_its_cluster_with_every_endpoint():
    a = ingress_route(
        "1",
        "a",
        [rule("a", "/", "web")],
        services=[svc("web")],
        endpoints=[{"addresses": [{"ip": "10.0.0.2"}]}],
    )
    b = ingress_route(
        "2",
        "b",
        [rule("b", "/", "web")],
        services=[svc("web")],
        endpoints=[{"addresses": [{"ip": "10.0.0.1"}]}],
    )
    (cluster,) = build([a, b]).piece.clusters
    assert cluster.name == "tenant-a/L7/default/web/80/http1"
    assert [e.address for e in cluster.endpoints] == ["10.0.0.1", "10.0.0.2"]
    assert cluster.health_check == proxy.HealthCheck()


def test_a_missing_addresses_object_is_reported_and_the_status_names_a_hostname():
    r = ingress_route(
        "1",
        "web",
        default="web",
        services=[svc("web")],
        endpoints=[{"addressesReference": {"name": "default"}}],
    )
    built = build([r], status_address="lb.example.net")
    assert built.outcomes["1"].problems == ("endpoints '0': Addresses 'default' not found",)
    assert built.outcomes["1"].served_status == {
        "loadBalancer": {"ingress": [{"hostname": "lb.example.net"}]}
    }
    (cluster,) = built.piece.clusters
    assert cluster.endpoints == ()


def test_disabled_ingress_builds_nothing_and_says_why():
    r = ingress_route("1", "web", default="web", services=[svc("web")])
    built = build([r], settings=routes.RouteSettings(ingress_enabled=False))
    assert built.piece.listeners == ()
    assert built.piece.clusters == ()
    assert built.outcomes["1"].problems == (routes.INGRESS_DISABLED,)


def test_piece_key_and_names_never_meet_a_load_balancers():
    # LoadBalancer names are lower-case Kubernetes names; `L7` is not one.
    assert routes.piece_key(NS) == "tenant-a/L7"
    assert routes.listener_name(NS, 80) == "tenant-a/L7/80/http"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("10s", 10.0), ("500ms", 0.5), ("1h", 3600.0), ("1m30s", 90.0), ("0s", 0.0)],
)
def test_gateway_durations(text, seconds):
    assert gatewayroutes.parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "10", "1.5s", "-1s", "1d", "1h1h1h1h1h", "123456s"])
def test_invalid_gateway_durations(text):
    assert gatewayroutes.parse_duration(text) is None


def test_every_permutation_of_three_ingresses_agrees():
    services = [svc("web")]
    rs = [
        ingress_route(
            str(i), f"ing{i}", [rule("h", "/", "web"), rule(f"h{i}", "/", "web")], services=services
        )
        for i in range(3)
    ]
    results = {repr(build(list(p))) for p in itertools.permutations(rs)}
    assert len(results) == 1


def test_http_options_come_from_the_config_header_limits():
    assert routes.http_options(api_config.EnvoyProxy()) is None
    envoy = api_config.EnvoyProxy.model_validate({"headerLimits": {"maxRequestHeadersCount": 50}})
    options = routes.http_options(envoy)
    assert options == proxy.HTTPOptions(max_request_headers_count=50)
    r = ingress_route("1", "web", default="web", services=[svc("web")])
    (listener,) = build([r], settings=routes.RouteSettings(http=options)).piece.listeners
    assert listener.http == options


_ODD_VALUES: tuple[object, ...] = (
    None,
    "",
    "x y\r\n",
    "*a*.b",
    7,
    -1,
    70000,
    True,
    [],
    ["z"],
    {},
    {"k": "v"},
    "(?=x)",
)


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, (*prefix, i))


def _replaced(node, path, value):
    if not path:
        return value
    head, *rest = path
    copy = dict(node) if isinstance(node, dict) else list(node)
    copy[head] = _replaced(node[head], rest, value)
    return copy


@pytest.mark.parametrize("case", ROUTE_CASES)
def test_a_malformed_embedded_object_is_reported_and_never_breaks_the_tenant(case):
    """Each Route of the tenant's is rewritten at random places with values of the wrong type
    or shape: the build never raises, its IR stays valid, every Route gets an outcome."""
    rs, addresses = golden_routes(case)
    rng = random.Random(case)
    for _ in range(40):
        index = rng.randrange(len(rs))
        source = rs[index].spec.source.kubernetes
        raw = {"resource": source.resource, "services": list(source.services)}
        where = rng.choice([p for p in _paths(raw) if p[:2] != ("resource", "kind")][1:])
        try:
            mutated = api_route.KubernetesSource.model_validate(
                _replaced(raw, where, rng.choice(_ODD_VALUES))
            )
        except pydantic.ValidationError:
            continue  # the API refuses it already
        spec = rs[index].spec.model_copy(
            update={"source": api_route.RouteSource(kubernetes=mutated)}
        )
        changed = [*rs[:index], rs[index].model_copy(update={"spec": spec}), *rs[index + 1 :]]
        built = build(changed, addresses)
        assert config(built).validate() == [], where
        assert set(built.outcomes) == {r.name for r in rs}


def test_requested_ports_are_80_for_ingresses_and_the_served_gateways_http_ports():
    rs, _ = golden_routes("gateway-ingress-port-80")
    assert routes.requested_ports(NS, rs) == {80, 8080}
    assert routes.requested_ports(NS, rs, routes.RouteSettings(ingress_enabled=False)) == {
        80,
        8080,
    }
    only_ingress = routes.RouteSettings(gateway_api_enabled=False)
    assert routes.requested_ports(NS, rs, only_ingress) == {80}
    unsupported, _ = golden_routes("gateway-unsupported-listeners")
    # HTTPS listeners ask for their port (placed before their certificates are looked at);
    # TCP listeners and the Gateways not served ask for nothing.
    assert routes.requested_ports(NS, unsupported) == {8080, 8443}
    assert routes.requested_ports(NS, []) == frozenset()


def test_each_listener_names_its_owner_and_every_route_it_serves():
    rs, addresses = golden_routes("gateway-ingress-port-80")
    built = build(rs, addresses)
    owners = {li.name: li.owner for li in built.piece.listeners}
    assert owners == {
        "tenant-a/L7/80/http": "tenant-a/in000000-0000-4000-8000-000000000001",
        "tenant-a/L7/8080/http": "tenant-a/gw000000-0000-4000-8000-000000000000",
    }
    assert built.listener_routes == {
        "tenant-a/L7/80/http": ("in000000-0000-4000-8000-000000000001",),
        # The route naming port 80 attaches nowhere, so no listener serves it.
        "tenant-a/L7/8080/http": (
            "gw000000-0000-4000-8000-000000000000",
            "rt000000-0000-4000-8000-000000000001",
        ),
    }
    assert built.piece.key == "tenant-a/L7"
