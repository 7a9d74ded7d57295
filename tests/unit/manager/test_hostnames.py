"""LoadBalancer hostnames: settings precedence, validation, allowed-domain globs, the decision,
and the objects that serve it. Seeded random inputs stand in for upstream's Go fuzz tests: each
checks a property against an independent statement of it."""

from __future__ import annotations

import random
import re
import string
from typing import Any

import pytest

from kubelb.api import (
    conditions,
    config as api_config,
    loadbalancer as api_lb,
    registry,
    route as api_route,
    tenant as api_tenant,
)
from kubelb.irbuild import routes as irroutes
from kubelb.manager import hostnames

SEEDS = range(400)


def lb(
    *,
    hostname: str | None = None,
    wildcard: bool = False,
    recorded: str | None = None,
    ports: tuple[int, ...] = (8080,),
    reference: bool = False,
) -> api_lb.LoadBalancer:
    raw: dict[str, Any] = {
        "apiVersion": "kubelb.k8c.io/v1alpha1",
        "kind": "LoadBalancer",
        "metadata": {"name": "web", "namespace": "tenant-a", "uid": "u-1",
                     "creationTimestamp": "2026-01-01T00:00:00Z",
                     "annotations": {"kubelb.k8c.io/request-wildcard-domain": "true"}
                     if wildcard else {}},
        "spec": {"endpoints": [{"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}],
                                "ports": [{"name": "http", "port": 30080}]}],
                 "ports": [{"name": "http", "port": p} for p in ports]},
    }  # fmt: skip
    if reference:  # the agent's form: the tenant's Addresses `default`
        raw["spec"]["endpoints"][0].pop("addresses")
        raw["spec"]["endpoints"][0]["addressesReference"] = {"name": "default"}
    if hostname is not None:
        raw["spec"]["hostname"] = hostname
    if recorded is not None:
        raw["status"] = {"hostname": {"hostname": recorded}}
    return registry.parse_as(api_lb.LoadBalancer, raw)


def config(**dns: Any) -> api_config.Config:
    return registry.parse_as(api_config.Config, {
        "apiVersion": "kubelb.k8c.io/v1alpha1", "kind": "Config",
        "metadata": {"name": "default", "namespace": "kubelb"},
        "spec": {"dns": dns, "certificates": {"defaultClusterIssuer": "config-issuer"}},
    })  # fmt: skip


def tenant(dns: dict[str, Any], issuer: str | None = None) -> api_tenant.Tenant:
    spec: dict[str, Any] = {"dns": dns}
    if issuer:
        spec["certificates"] = {"defaultClusterIssuer": issuer}
    return registry.parse_as(api_tenant.Tenant, {
        "apiVersion": "kubelb.k8c.io/v1alpha1", "kind": "Tenant",
        "metadata": {"name": "a"}, "spec": spec,
    })  # fmt: skip


# --- settings ---
def test_tenant_overrides_config_field_by_field() -> None:
    cfg = config(wildcardDomain="*.lb.example.com", allowExplicitHostnames=True,
                 useDNSAnnotations=True, allowedDomains=["**.example.com"])  # fmt: skip
    ten = tenant({"allowExplicitHostnames": False, "allowedDomains": ["*.a.example.com"]},
                 issuer="tenant-issuer")  # fmt: skip
    got = hostnames.settings(cfg, ten)
    assert got == hostnames.Settings(wildcard_domain="*.lb.example.com", allow_explicit=False,
                                     dns=True, certificates=False, cluster_issuer="tenant-issuer",
                                     allowed_domains=("*.a.example.com",))  # fmt: skip


def test_without_config_or_tenant_nothing_is_allowed_but_any_domain() -> None:
    assert hostnames.settings(None, None) == hostnames.Settings()
    assert hostnames.Settings().allowed_domains == ("**",)


# --- globs ---
@pytest.mark.parametrize(
    ("pattern", "hostname", "expected"),
    [
        ("**", "a.b", True),
        ("*.example.com", "a.example.com", True),
        ("*.example.com", "a.b.example.com", False),
        ("*.example.com", "example.com", False),
        ("**.example.com", "a.b.example.com", True),
        ("**.example.com", "example.com", False),
        ("example.com", "EXAMPLE.com.", True),
        ("a.*.example.com", "a.x.example.com", True),
        ("a.*.example.com", "b.x.example.com", False),
        ("", "a.example.com", False),
    ],
)
def test_domain_globs(pattern: str, hostname: str, expected: bool) -> None:
    assert hostnames.domain_matches(pattern, hostname) is expected


def _glob_regex(pattern: str) -> re.Pattern[str]:
    """The same glob stated as a regular expression over dotted names."""
    one = {"**": r"[^.]+(?:\.[^.]+)*", "*": r"[^.]+"}
    return re.compile(r"\.".join(one.get(label, re.escape(label)) for label in pattern.split(".")))


def _random_name(rng: random.Random, labels: int) -> str:
    alphabet = "ab" if rng.random() < 0.5 else string.ascii_lowercase[:4]
    return ".".join("".join(rng.choices(alphabet, k=rng.randint(1, 2))) for _ in range(labels))


@pytest.mark.parametrize("seed", SEEDS)
def test_glob_matching_agrees_with_a_regular_expression(seed: int) -> None:
    rng = random.Random(seed)
    hostname = _random_name(rng, rng.randint(1, 5))
    labels = [rng.choice(["*", "**", _random_name(rng, 1)]) for _ in range(rng.randint(1, 4))]
    pattern = ".".join(labels)
    expected = _glob_regex(pattern).fullmatch(hostname) is not None
    assert hostnames.domain_matches(pattern, hostname) is expected, (pattern, hostname)


# --- validation and generation ---
@pytest.mark.parametrize(
    ("name", "valid"),
    [
        ("app.example.com", True),
        ("a-1.b", True),
        ("example", False),  # one label
        ("*.example.com", False),
        ("-a.example.com", False),
        ("a-.example.com", False),
        ("A.example.com", False),
        ("a..example.com", False),
        ("a" * 64 + ".com", False),
        (".".join(["a" * 63] * 4), False),  # 255 characters
        (".".join(["a" * 63] * 3 + ["a" * 61]), True),  # 253 characters
    ],
)
def test_hostname_validation(name: str, valid: bool) -> None:
    assert hostnames.valid_hostname(name) is valid


@pytest.mark.parametrize("seed", SEEDS)
def test_validation_agrees_with_the_dns_1123_rules(seed: int) -> None:
    rng = random.Random(seed)
    alphabet = string.ascii_lowercase + string.digits + "-.*A_"
    name = "".join(rng.choices(alphabet, k=rng.randint(1, 30)))
    labels = name.split(".")
    expected = (
        len(labels) >= 2
        and len(name) <= 253
        and all(
            0 < len(label) <= 63
            and set(label) <= set(string.ascii_lowercase + string.digits + "-")
            and label[0] != "-"
            and label[-1] != "-"
            for label in labels
        )
    )
    assert hostnames.valid_hostname(name) is expected, name


@pytest.mark.parametrize("domain", ["*.lb.example.com", "**.lb.example.com", "lb.example.com",
                                    "*lb.example.com", "LB.example.com."])  # fmt: skip
def test_generated_hostnames_are_16_hex_under_the_wildcard_base(domain: str) -> None:
    policy = hostnames.Settings(wildcard_domain=domain)
    got = hostnames.decide(lb(wildcard=True), policy)
    assert got.hostname is not None
    head, _, base = got.hostname.partition(".")
    assert base == "lb.example.com"
    assert re.fullmatch(r"[0-9a-f]{16}", head)
    assert got.reason == conditions.HOSTNAME_ASSIGNED


def test_generated_labels_differ() -> None:
    assert len({hostnames.random_label() for _ in range(50)}) == 50


def test_a_recorded_generated_hostname_is_reused() -> None:
    policy = hostnames.Settings(wildcard_domain="*.lb.example.com")
    recorded = "0123456789abcdef.lb.example.com"
    assert hostnames.decide(lb(wildcard=True, recorded=recorded), policy).hostname == recorded


def test_a_recorded_hostname_under_another_domain_is_replaced() -> None:
    policy = hostnames.Settings(wildcard_domain="*.new.example.com")
    got = hostnames.decide(lb(wildcard=True, recorded="0123456789abcdef.old.example.com"), policy)
    assert got.hostname is not None
    assert got.hostname.endswith(".new.example.com")


# --- decisions ---
def test_no_request_means_no_hostname_and_no_condition() -> None:
    got = hostnames.decide(lb(), hostnames.Settings(allow_explicit=True, wildcard_domain="x.io"))
    assert got == hostnames.NONE
    assert not got.requested


def test_explicit_hostname_needs_the_setting() -> None:
    refused = hostnames.decide(lb(hostname="app.example.com"), hostnames.Settings())
    assert refused.hostname is None
    assert refused.reason == conditions.HOSTNAME_NOT_ALLOWED
    assert "allowExplicitHostnames" in refused.message
    allowed = hostnames.decide(lb(hostname="app.example.com"),
                               hostnames.Settings(allow_explicit=True))  # fmt: skip
    assert allowed.hostname == "app.example.com"


def test_an_explicit_wildcard_hostname_is_refused() -> None:
    # The schema lets `*.` through (upstream's pattern); no certificate or record is made for it.
    got = hostnames.decide(lb(hostname="*.example.com"), hostnames.Settings(allow_explicit=True))
    assert got.hostname is None
    assert got.reason == conditions.HOSTNAME_NOT_ALLOWED
    assert "not a valid DNS name" in got.message


def test_hostnames_outside_the_allowed_domains_are_refused() -> None:
    policy = hostnames.Settings(allow_explicit=True, allowed_domains=("*.apps.example.com",))
    assert hostnames.decide(lb(hostname="x.apps.example.com"), policy).hostname is not None
    refused = hostnames.decide(lb(hostname="x.other.com"), policy)
    assert refused.reason == conditions.HOSTNAME_NOT_ALLOWED
    assert "outside the allowed domains *.apps.example.com" in refused.message
    wildcard = hostnames.Settings(wildcard_domain="*.lb.io", allowed_domains=("*.apps.io",))
    assert hostnames.decide(lb(wildcard=True), wildcard).reason == conditions.HOSTNAME_NOT_ALLOWED


def test_wildcard_without_a_domain_says_so() -> None:
    got = hostnames.decide(lb(wildcard=True), hostnames.Settings())
    assert got.hostname is None
    assert got.reason == conditions.NO_WILDCARD_DOMAIN


def test_a_refused_explicit_hostname_falls_back_to_the_wildcard_annotation() -> None:
    policy = hostnames.Settings(wildcard_domain="*.lb.io")
    got = hostnames.decide(lb(hostname="app.example.com", wildcard=True), policy)
    assert got.hostname is not None
    assert got.hostname.endswith(".lb.io")


# --- what serves it ---
def test_certificate_for_the_hostname() -> None:
    owner = {"apiVersion": "kubelb.k8c.io/v1alpha1", "kind": "LoadBalancer",
             "metadata": {"name": "web", "namespace": "tenant-a", "uid": "u-1"}}  # fmt: skip
    cert = hostnames.desired_certificate(owner, "app.example.com", "letsencrypt")
    assert cert["metadata"]["name"] == "web-ingress-tls"
    assert cert["metadata"]["ownerReferences"][0]["uid"] == "u-1"
    assert cert["spec"] == {
        "secretName": "web-ingress-tls",
        "secretTemplate": {
            "labels": {
                "kubelb.k8c.io/origin-name": "web-ingress-tls",
                "kubelb.k8c.io/managed-by": "kubelb",
            }
        },
        "dnsNames": ["app.example.com"],
        "issuerRef": {"name": "letsencrypt", "kind": "ClusterIssuer", "group": "cert-manager.io"},
    }


def test_dns_annotations() -> None:
    assert hostnames.dns_annotations([]) == {}
    assert hostnames.dns_annotations(["b.io", "a.io", "b.io"]) == {
        "external-dns.alpha.kubernetes.io/hostname": "a.io,b.io",
        "external-dns.alpha.kubernetes.io/ttl": "10",
    }


def test_hostname_route_is_upstreams_ingress_for_the_first_port() -> None:
    policy = hostnames.Settings(dns=True, certificates=True, cluster_issuer="ca")
    route = hostnames.hostname_route(lb(recorded="app.example.com", ports=(8080, 9090)), policy)
    assert route is not None
    assert hostnames.is_hostname_route(route)
    source = route.spec.source.kubernetes
    assert source is not None
    ingress = source.resource
    assert ingress["metadata"]["name"] == "web-ingress"
    assert ingress["metadata"]["annotations"] == {
        "external-dns.alpha.kubernetes.io/hostname": "app.example.com",
        "external-dns.alpha.kubernetes.io/ttl": "10",
        "cert-manager.io/cluster-issuer": "ca",
    }
    assert ingress["spec"]["tls"] == [{"hosts": ["app.example.com"],
                                       "secretName": "web-ingress-tls"}]  # fmt: skip
    assert hostnames.served_hostnames([route]) == ["app.example.com"]
    assert hostnames.hostname_route(lb(), policy) is None


def test_hostname_route_builds_a_virtual_host_to_the_endpoints() -> None:
    route = hostnames.hostname_route(lb(recorded="app.example.com"), hostnames.Settings())
    assert route is not None
    built = irroutes.build_tenant_routes("tenant-a", [route], {}, address="127.0.0.1")
    (listener,) = built.piece.listeners
    assert listener.port == 80
    (vhost,) = listener.virtual_hosts
    assert vhost.domains == ("app.example.com",)
    (cluster,) = built.piece.clusters
    assert sorted((e.address, e.port) for e in cluster.endpoints) == [
        ("10.0.0.1", 30080),
        ("10.0.0.2", 30080),
    ]
    assert built.outcomes[route.metadata.name or ""].problems == ()


def test_hostname_route_keeps_an_addresses_reference() -> None:
    referenced = lb(recorded="app.example.com", reference=True)
    route = hostnames.hostname_route(referenced, hostnames.Settings())
    assert route is not None
    (entry,) = route.spec.endpoints
    assert entry.addresses_reference is not None
    assert entry.addresses_reference.name == "default"


def test_api_routes_are_never_taken_for_hostname_routes() -> None:
    route = hostnames.hostname_route(lb(recorded="app.example.com"), hostnames.Settings(dns=True))
    assert route is not None
    real = route.model_copy(update={"metadata": route.metadata.model_copy(update={"uid": "x"})})
    assert isinstance(real, api_route.Route)
    assert not hostnames.is_hostname_route(real)
    assert hostnames.served_hostnames([real]) == []


def test_routes_are_made_again_only_when_their_inputs_change() -> None:
    made = hostnames.HostnameRoutes()
    one = lb(recorded="app.example.com")
    policy = hostnames.Settings()
    first = made.of([one], policy)
    assert made.of([one], policy)[0] is first[0]
    assert made.of([one], hostnames.Settings(dns=True))[0] is not first[0]
    assert made.of([lb()], policy) == []
