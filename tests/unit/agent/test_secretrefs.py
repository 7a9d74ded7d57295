"""Which Secrets served Ingresses and Gateways name: scope, deletion, Gateway API's
ReferenceGrant rule for references into another namespace."""

from __future__ import annotations

from kubelb.agent import gwapi, ingresses, secretrefs
from kubelb.kube import objects, resources, store

K = objects.ObjectKey


def ingress(name: str, *secret_names: str, class_name: str = "kubelb", ns: str = "shop"):
    return {
        "metadata": {"name": name, "namespace": ns, "uid": f"u-{name}"},
        "spec": {"ingressClassName": class_name,
                 "tls": [{"hosts": ["a.example"], "secretName": n} for n in secret_names]},
    }  # fmt: skip


def gateway(*refs: dict[str, str], name: str = "kubelb", ns: str = "shop"):
    return {
        "metadata": {"name": name, "namespace": ns, "uid": f"u-{ns}-{name}"},
        "spec": {"gatewayClassName": "kubelb", "listeners": [
            {"name": "https", "port": 443, "protocol": "HTTPS",
             "tls": {"mode": "Terminate", "certificateRefs": list(refs)}},
            {"name": "http", "port": 80, "protocol": "HTTP"},
        ]},
    }  # fmt: skip


def grant(ns: str, from_ns: str, name: str | None = None, kind: str = "Gateway"):
    to = {"group": "", "kind": "Secret", **({"name": name} if name else {})}
    return {
        "metadata": {"name": f"g-{from_ns}", "namespace": ns},
        "spec": {"from": [{"group": "gateway.networking.k8s.io", "kind": kind,
                           "namespace": from_ns}], "to": [to]},
    }  # fmt: skip


def references(*objs, grants=()):
    ing = store.Store({secretrefs.SECRET_REFS_INDEX: secretrefs.indexer(secretrefs.ingress_refs)})
    gws = store.Store({secretrefs.SECRET_REFS_INDEX: secretrefs.indexer(secretrefs.gateway_refs)})
    granted = store.Store()
    for obj in objs:
        (gws if "listeners" in obj["spec"] else ing).upsert(obj)
    for g in grants:
        granted.upsert(g)
    refs = secretrefs.SecretReferences(granted)
    refs.add(secretrefs.Source(resources.INGRESSES, ing, ingresses.IngressKind().in_scope,
                               secretrefs.ingress_refs))  # fmt: skip
    refs.add(secretrefs.Source(resources.GATEWAYS, gws, gwapi.GatewayKind().in_scope,
                               secretrefs.gateway_refs))  # fmt: skip
    return refs


def test_ingress_tls_secrets_in_its_namespace():
    obj = ingress("web", "a-tls", "b-tls", "a-tls")
    assert [r.secret for r in secretrefs.ingress_refs(obj)] == [
        K("shop", "a-tls"),
        K("shop", "b-tls"),
    ]
    assert secretrefs.ingress_refs({"metadata": {"namespace": "x"}, "spec": {}}) == []


def test_only_served_objects_count():
    refs = references(ingress("web", "served"), ingress("other", "foreign", class_name="nginx"))
    assert refs.referenced(K("shop", "served"))
    assert not refs.referenced(K("shop", "foreign"))
    assert not refs.referenced(K("shop", "unnamed"))


def test_an_object_being_deleted_names_nothing():
    obj = ingress("web", "served")
    obj["metadata"]["deletionTimestamp"] = "2025-01-01T00:00:00Z"
    assert not references(obj).referenced(K("shop", "served"))


def test_gateway_refs_default_to_secret_in_the_gateways_namespace():
    obj = gateway(
        {"name": "own"},
        {"name": "explicit", "kind": "Secret", "group": ""},
        {"name": "elsewhere", "namespace": "certs"},
        {"name": "cm", "kind": "ConfigMap"},
        {"name": "other-group", "group": "example.com", "kind": "Secret"},
    )
    assert secretrefs.gateway_refs(obj) == [
        secretrefs.SecretRef(K("shop", "own")),
        secretrefs.SecretRef(K("shop", "explicit")),
        secretrefs.SecretRef(K("certs", "elsewhere"), cross_namespace=True),
    ]


def test_a_gateway_not_served_names_nothing():
    refs = references(gateway({"name": "own"}, name="not-kubelb"))
    assert not refs.referenced(K("shop", "own"))


def test_cross_namespace_needs_a_reference_grant_there():
    gw = gateway({"name": "cert", "namespace": "certs"})
    assert not references(gw).referenced(K("certs", "cert"))
    assert references(gw).refused(K("certs", "cert")) == [gw]
    assert references(gw, grants=[grant("certs", "shop")]).referenced(K("certs", "cert"))
    assert references(gw, grants=[grant("certs", "shop", "cert")]).referenced(K("certs", "cert"))
    for wrong in (
        grant("certs", "shop", "another"),  # for another Secret
        grant("certs", "elsewhere"),  # for Gateways of another namespace
        grant("certs", "shop", kind="HTTPRoute"),  # for another kind
        grant("shop", "shop"),  # in the wrong namespace
    ):
        refs = references(gw, grants=[wrong])
        assert not refs.referenced(K("certs", "cert")), wrong
        assert refs.refused(K("certs", "cert")) == [gw]


def test_a_grant_maps_to_the_secrets_named_into_its_namespace():
    refs = references(gateway({"name": "cert", "namespace": "certs"}, {"name": "own"}))
    assert refs.secrets_of_grant(grant("certs", "shop")) == [K("certs", "cert")]
    assert refs.secrets_of_grant(grant("other", "shop")) == []
