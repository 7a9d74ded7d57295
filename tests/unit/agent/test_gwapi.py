"""Gateway API sources: scope, backends, problems, and the status the agent writes back."""

from __future__ import annotations

from typing import Any

from kubelb.agent import gwapi, routemapping

T0 = "2025-01-01T00:00:00Z"

ROUTE = {
    "metadata": {"name": "r", "namespace": "apps", "generation": 4},
    "spec": {
        "parentRefs": [{"name": "kubelb"}, {"name": "other", "namespace": "x"}],
        "rules": [
            {
                "filters": [
                    {"type": "RequestMirror",
                     "requestMirror": {"backendRef": {"name": "mirror", "port": 80}}},
                    {"type": "ExtensionRef",
                     "extensionRef": {"group": "x.io", "kind": "F", "name": "f"}},
                ],
                "backendRefs": [
                    {"name": "a", "port": 80},
                    {"name": "b", "namespace": "other", "port": 80, "kind": "Service"},
                    {"name": "bucket", "group": "s3.io", "kind": "Bucket"},
                    {"name": "a", "port": 81,
                     "filters": [{"type": "RequestMirror",
                                  "requestMirror": {"backendRef": {"name": "m2", "port": 1}}}]},
                ],
            }
        ],
    },
}  # fmt: skip


def test_route_scope():
    kind = gwapi.http_route_kind()
    assert kind.in_scope({"spec": {"parentRefs": [{"name": "kubelb"}]}})
    # As upstream CE: one parent only.
    assert not kind.in_scope(ROUTE)
    assert not kind.in_scope({"spec": {"parentRefs": [{"name": "other"}]}})
    assert not kind.in_scope({"spec": {"parentRefs": [{"name": "kubelb", "kind": "Service"}]}})
    assert not kind.in_scope({"spec": {}})


def test_route_backends_include_mirrors_and_other_namespaces():
    kind = gwapi.http_route_kind()
    assert [str(k) for k in kind.backends(ROUTE)] == [
        "apps/a", "other/b", "apps/mirror", "apps/m2"
    ]  # fmt: skip


def test_route_problems():
    http = gwapi.http_route_kind()
    reasons = [(p.reason, p.condition) for p in http.problems(ROUTE)]
    assert reasons == [("UnsupportedValue", "Accepted"), ("InvalidKind", "ResolvedRefs")]
    # GRPCRoute has no URLRewrite.
    grpc = gwapi.grpc_route_kind()
    rewrite = {"spec": {"rules": [{"filters": [{"type": "URLRewrite"}]}]}}
    assert [p.message for p in grpc.problems(rewrite)] == ["filter URLRewrite is not supported"]
    assert http.problems(rewrite) == []


SERVED = {
    "parents": [
        {
            "parentRef": {"name": "kubelb", "namespace": "tenant-a"},
            "controllerName": "kubelb.k8c.io/x",
            "conditions": [
                {"type": "Accepted", "status": "True", "reason": "Accepted", "message": "",
                 "observedGeneration": 1, "lastTransitionTime": T0},
                {"type": "ResolvedRefs", "status": "True", "reason": "ResolvedRefs",
                 "message": "", "observedGeneration": 1, "lastTransitionTime": T0},
            ],
        }
    ]
}  # fmt: skip
FOREIGN = {"parentRef": {"name": "other", "namespace": "x"}, "controllerName": "o.io/c",
           "conditions": []}  # fmt: skip


def test_route_status_from_served_parents():
    kind = gwapi.http_route_kind()
    status = kind.status(ROUTE, SERVED, [])({"parents": [FOREIGN]})
    ours = status["parents"][1]
    assert status["parents"][0] == FOREIGN
    # The parentRef as the tenant wrote it, generations the route's own.
    assert ours["parentRef"] == {"name": "kubelb"}
    assert ours["controllerName"] == "kubelb.k8c.io/x"
    assert [(c["type"], c["status"], c["observedGeneration"]) for c in ours["conditions"]] == [
        ("Accepted", "True", 4), ("ResolvedRefs", "True", 4)
    ]  # fmt: skip
    # Nothing changed: the same status again.
    assert kind.status(ROUTE, SERVED, [])(status) == status


def test_route_problems_turn_conditions_false():
    kind = gwapi.http_route_kind()
    problems = [routemapping.Problem("BackendNotFound", "Service apps/a not found", "ResolvedRefs"),
                routemapping.Problem("BackendNotFound", "Service other/b not found",
                                     "ResolvedRefs")]  # fmt: skip
    status = kind.status(ROUTE, SERVED, problems)({})
    (ours,) = status["parents"]
    resolved = next(c for c in ours["conditions"] if c["type"] == "ResolvedRefs")
    assert resolved["status"] == "False"
    assert resolved["reason"] == "BackendNotFound"
    assert resolved["message"] == "Service apps/a not found; Service other/b not found"
    assert resolved["observedGeneration"] == 4
    # The transition time stays while the problem does (no write when nothing changed).
    again = kind.status(ROUTE, SERVED, problems)(
        {"parents": [{**ours, "conditions": [
            {**c, "lastTransitionTime": T0} for c in ours["conditions"]]}]}
    )  # fmt: skip
    assert all(c["lastTransitionTime"] == T0 for c in again["parents"][0]["conditions"])
    # Before anything was served, problems alone make a parent entry with our controller name.
    (early,) = kind.status(ROUTE, None, problems)({})["parents"]
    assert early["controllerName"] == gwapi.CONTROLLER_NAME
    assert [c["type"] for c in early["conditions"]] == ["ResolvedRefs"]
    # Nothing served and nothing wrong: nothing to say.
    assert kind.status(ROUTE, None, [])({"parents": [FOREIGN]}) == {"parents": [FOREIGN]}


GATEWAY = {"metadata": {"name": "kubelb", "generation": 3},
           "spec": {"gatewayClassName": "kubelb", "listeners": []}}  # fmt: skip


def test_gateway_scope():
    kind = gwapi.GatewayKind()
    assert kind.in_scope(GATEWAY)
    assert not kind.in_scope({**GATEWAY, "spec": {"gatewayClassName": "eg"}})
    assert not kind.in_scope({**GATEWAY, "metadata": {"name": "gw"}})
    assert gwapi.GatewayKind(use_gateway_class=False).in_scope(
        {**GATEWAY, "spec": {"gatewayClassName": "eg"}}
    )
    assert kind.backends(GATEWAY) == []


def test_gateway_status():
    condition = {"type": "Programmed", "status": "True", "reason": "Programmed", "message": "",
                 "observedGeneration": 1, "lastTransitionTime": T0}  # fmt: skip
    served: dict[str, Any] = {
        "addresses": [{"type": "IPAddress", "value": "10.0.0.9"}],
        "conditions": [condition],
        "listeners": [{"name": "http", "attachedRoutes": 2, "conditions": [condition],
                       "supportedKinds": [{"kind": "HTTPRoute"}]}],
    }  # fmt: skip
    status = gwapi.GatewayKind().status(GATEWAY, served, [])({})
    assert status["addresses"] == served["addresses"]
    assert status["conditions"] == [{**condition, "observedGeneration": 3}]
    rewritten = [{**condition, "observedGeneration": 3}]
    assert status["listeners"] == [{**served["listeners"][0], "conditions": rewritten}]
    assert gwapi.GatewayKind().status(GATEWAY, None, [])({"x": 1}) == {"x": 1}


def test_a_refusal_with_nothing_served_is_said_in_the_conditions():
    """The manager refused the Route and served nothing of it (disabled by Config or Tenant,
    no Gateway `kubelb` served): Accepted False with its reason, at the object's generation."""
    disabled = "HTTPRoute Routes are disabled by the Config (spec.gatewayAPI.disable)"
    refused = routemapping.Problem("InstallationFailed", disabled, routemapping.ACCEPTED)
    kind = gwapi.http_route_kind()
    status = kind.status(ROUTE, None, [refused])({"parents": [FOREIGN]})
    assert status["parents"][0] == FOREIGN
    (condition,) = status["parents"][1]["conditions"]
    assert (condition["type"], condition["status"], condition["reason"]) == (
        "Accepted", "False", "InstallationFailed")  # fmt: skip
    assert condition["message"] == refused.message
    assert condition["observedGeneration"] == 4
    assert kind.status(ROUTE, None, [refused])(status) == status  # no write when unchanged

    served_before = {"addresses": [{"type": "IPAddress", "value": "10.0.0.9"}],
                     "listeners": [{"name": "http", "conditions": []}],
                     "conditions": [{"type": "Accepted", "status": "True"}]}  # fmt: skip
    gateway = gwapi.GatewayKind().status(GATEWAY, None, [refused])(served_before)
    assert "addresses" not in gateway
    assert "listeners" not in gateway
    assert [(c["type"], c["status"], c["reason"], c["observedGeneration"])
            for c in gateway["conditions"]] == [
        ("Accepted", "False", "InstallationFailed", 3),
        ("Programmed", "False", "InstallationFailed", 3),
    ]  # fmt: skip
    assert gwapi.GatewayKind().status(GATEWAY, None, [refused])(gateway) == gateway
    # A problem of another condition (an unknown backend) says nothing on a Gateway.
    other = routemapping.Problem("BackendNotFound", "x", routemapping.RESOLVED_REFS)
    assert gwapi.GatewayKind().status(GATEWAY, None, [other])({"x": 1}) == {"x": 1}


def test_route_cleared_of_our_parents_only():
    ours = {"parentRef": {"name": "kubelb"}, "controllerName": "x/y", "conditions": []}
    kind = gwapi.http_route_kind()
    assert kind.cleared({"parents": [FOREIGN, ours]}) == {"parents": [FOREIGN]}


def test_served_conditions_get_a_transition_time_kept_while_the_status_stays() -> None:
    """Gateway API requires lastTransitionTime; the manager's served status has none."""
    served = [
        {"type": "Accepted", "status": "True", "reason": "Accepted", "message": ""},
        {"type": "Programmed", "status": "True", "reason": "Programmed", "message": ""},
    ]
    first = gwapi.rewritten(served, 3)
    assert all(c["lastTransitionTime"] and c["observedGeneration"] == 3 for c in first)
    before = [
        {**first[0], "lastTransitionTime": "2020-01-01T00:00:00Z"},
        {**first[1], "status": "False", "lastTransitionTime": "2020-01-01T00:00:00Z"},
    ]
    again = gwapi.rewritten(served, 4, before)
    assert again[0]["lastTransitionTime"] == "2020-01-01T00:00:00Z"
    assert again[1]["lastTransitionTime"] != "2020-01-01T00:00:00Z"
