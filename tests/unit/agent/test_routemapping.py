"""Source -> Route mapping and Service copies: what an upstream agent would write too."""

from __future__ import annotations

import copy
from typing import Any

from kubelb.agent import ingresses, routemapping, servicecopies
from kubelb.kube import objects, resources

INGRESS: dict[str, Any] = {
    "apiVersion": "networking.k8s.io/v1",
    "kind": "Ingress",
    "metadata": {
        "name": "shop",
        "namespace": "web",
        "uid": "u-1",
        "resourceVersion": "7",
        "generation": 2,
        "labels": {"team": "blue"},
        "annotations": {objects.LAST_APPLIED: "{}", "note": "x"},
        "ownerReferences": [{"kind": "X", "name": "y", "uid": "z", "apiVersion": "v1"}],
        "finalizers": ["kubelb.k8c.io/cleanup"],
        "managedFields": [{}],
    },
    "spec": {
        "ingressClassName": "kubelb",
        "defaultBackend": {"service": {"name": "fallback", "port": {"number": 80}}},
        "rules": [{"host": "a", "http": {"paths": [
            {"path": "/", "pathType": "Prefix",
             "backend": {"service": {"name": "front", "port": {"number": 80}}}},
            {"path": "/x", "pathType": "Prefix",
             "backend": {"resource": {"kind": "Bucket", "name": "b", "apiGroup": "s3"}}},
            {"path": "/y", "pathType": "Prefix",
             "backend": {"service": {"name": "front", "port": {"number": 81}}}},
        ]}}],
    },
    "status": {"loadBalancer": {}},
}  # fmt: skip


def test_route_of_an_ingress():
    route = routemapping.desired_route(
        INGRESS, resources.INGRESSES, namespace="tenant-a", services=[{"metadata": {}}]
    )
    assert route["metadata"] == {
        "name": "u-1",
        "namespace": "tenant-a",
        "labels": {
            "kubelb.k8c.io/origin-name": "shop",
            "kubelb.k8c.io/origin-ns": "web",
            "kubelb.k8c.io/origin-resource-kind": "Ingress.networking.k8s.io",
            "kubelb.k8c.io/managed-by": "kubelb",
        },
    }
    assert route["spec"]["endpoints"] == [
        {"name": "default", "addressesReference": {"name": "default"}}
    ]
    assert route["spec"]["source"]["kubernetes"] == {
        "resource": {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": {"name": "shop", "namespace": "web", "uid": "u-1",
                         "labels": {"team": "blue"}, "annotations": {"note": "x"}},
            "spec": INGRESS["spec"],
        },
        "services": [{"metadata": {}}],
    }  # fmt: skip
    assert routemapping.origin_index(route) == ["Ingress.networking.k8s.io/web/shop"]


def test_update_only_on_real_change():
    desired = routemapping.desired_route(
        INGRESS, resources.INGRESSES, namespace="tenant-a", services=()
    )
    live = copy.deepcopy(desired)
    live["metadata"]["labels"]["other"] = "kept"
    live["metadata"]["resourceVersion"] = "3"
    live["status"] = {"resources": {}}
    assert not routemapping.needs_update(live, desired)
    changed = copy.deepcopy(INGRESS)
    changed["spec"]["rules"][0]["host"] = "b"
    again = routemapping.desired_route(
        changed, resources.INGRESSES, namespace="tenant-a", services=()
    )
    assert routemapping.needs_update(live, again)
    updated = routemapping.updated(live, again)
    assert updated["metadata"]["labels"]["other"] == "kept"
    assert updated["metadata"]["resourceVersion"] == "3"
    assert updated["spec"] == again["spec"]


def test_ingress_backends_and_problems():
    kind = ingresses.IngressKind()
    assert [str(k) for k in kind.backends(INGRESS)] == ["web/front", "web/fallback"]
    (problem,) = kind.problems(INGRESS)
    assert problem.reason == "UnsupportedBackend"
    assert "Bucket/b" in problem.message


def test_ingress_status_copied_verbatim():
    kind = ingresses.IngressKind()
    served = {"loadBalancer": {"ingress": [{"ip": "1.2.3.4", "ports": [{"port": 80}]}]}}
    assert kind.status(INGRESS, served, [])({"x": 1}) == {"x": 1, **served}
    assert kind.status(INGRESS, None, [])({"x": 1}) == {"x": 1}
    assert kind.cleared({"x": 1, **served}) == {"x": 1}


SERVICE: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "front", "namespace": "web", "uid": "s-1", "resourceVersion": "9",
                 "annotations": {objects.LAST_APPLIED: "{}"}},
    "spec": {"type": "ClusterIP", "clusterIP": "10.0.0.1", "clusterIPs": ["10.0.0.1"],
             "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
             "sessionAffinity": "None", "internalTrafficPolicy": "Cluster",
             "selector": {"app": "front"},
             "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}]},
    "status": {"loadBalancer": {}},
}  # fmt: skip


def test_twin_of_a_cluster_ip_service():
    assert servicecopies.needs_twin(SERVICE)
    twin = servicecopies.desired_twin(SERVICE)
    assert twin["metadata"]["name"] == "front-nodeport"
    assert twin["metadata"]["labels"] == {
        "kubelb.k8c.io/origin-name": "front",
        "kubelb.k8c.io/origin-ns": "web",
        "kubelb.k8c.io/managed-by": "kubelb",
    }
    assert twin["metadata"]["ownerReferences"][0]["uid"] == "s-1"
    assert twin["spec"] == {
        "type": "NodePort",
        "selector": {"app": "front"},
        "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}],
    }
    assert servicecopies.is_twin(twin)
    labelled = copy.deepcopy(SERVICE)
    labelled["metadata"]["labels"] = {"tier": "web"}
    labelled["metadata"]["annotations"]["team"] = "a"
    twin_meta = servicecopies.desired_twin(labelled)["metadata"]
    assert twin_meta["labels"]["tier"] == "web"
    assert twin_meta["annotations"] == {"team": "a"}
    assert str(servicecopies.original_key(twin)) == "web/front"
    assert str(servicecopies.original_key(SERVICE)) == "web/front"
    # A user's Service that merely ends in -nodeport is not ours.
    lookalike = {"metadata": {"name": "x-nodeport", "namespace": "web"}}
    assert not servicecopies.is_twin(lookalike)
    assert str(servicecopies.original_key(lookalike)) == "web/x-nodeport"


def test_cleansed_copy():
    copied = servicecopies.cleansed({**SERVICE, "spec": {**SERVICE["spec"], "type": "NodePort"}})
    assert copied == {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "front", "namespace": "web", "uid": "s-1"},
        "spec": {"type": "NodePort", "selector": {"app": "front"},
                 "ports": SERVICE["spec"]["ports"]},
    }  # fmt: skip


def test_refusal_from_the_route_condition():
    def route(status, reason="TenantDisabled", message="Ingress is disabled for this tenant",
              served=None):  # fmt: skip
        condition = {"type": "ResourceAppliedSuccessfully", "status": status,
                     "reason": reason, "message": message}  # fmt: skip
        return {"status": {"resources": {"route": {"conditions": [condition],
                                                   "status": served or {}}}}}  # fmt: skip

    assert routemapping.refusal(None) is None
    assert routemapping.refusal(route("True")) is None
    # Nothing served: the refusal is the source's Accepted False too.
    refused = routemapping.refusal(route("False"))
    assert refused == routemapping.Problem(
        "TenantDisabled", "Ingress is disabled for this tenant", routemapping.ACCEPTED
    )
    # Something served: its status holds the finer conditions; the refusal is an Event only.
    partly = routemapping.refusal(route("False", served={"parents": [{"conditions": []}]}))
    assert partly == routemapping.Problem("TenantDisabled", "Ingress is disabled for this tenant")
