"""Desired tenant objects: the Role's exact rules, ownership, names, and skip-unchanged statuses."""

from __future__ import annotations

import base64

import pytest

from kubelb.api import tenant as api_tenant
from kubelb.manager import tenantobjects

TENANT = {
    "apiVersion": "kubelb.k8c.io/v1alpha1",
    "kind": "Tenant",
    "metadata": {"name": "acme", "uid": "uid-1", "generation": 3},
}
OWNER = {"apiVersion": "kubelb.k8c.io/v1alpha1", "kind": "Tenant", "name": "acme", "uid": "uid-1",
         "controller": True, "blockOwnerDeletion": True}  # fmt: skip

KINDS = ("loadbalancers", "routes", "addresses", "syncsecrets")


def grants(*, renew_token: bool = False):
    """(resource, verb) pairs the Role grants in the kubelb.k8c.io group (with bound tokens the
    one more rule is checked apart)."""
    pairs: set[tuple[str, str]] = set()
    rules = tenantobjects.desired_role(TENANT, renew_token=renew_token)["rules"]
    for rule in [r for r in rules if r != tenantobjects.RENEW_OWN_TOKEN_RULE]:
        assert rule["apiGroups"] == ["kubelb.k8c.io"]
        assert set(rule) == {"apiGroups", "resources", "verbs"}  # no resourceNames, no URLs
        pairs.update((r, v) for r in rule["resources"] for v in rule["verbs"])
    return pairs


def test_role_grants_exactly_upstreams_tenant_permissions():
    crud = {"create", "update", "get", "list", "delete", "patch", "watch"}
    expected = {(k, v) for k in KINDS for v in crud}
    expected |= {(f"{k}/status", v) for k in KINDS for v in ("update", "get", "patch")}
    expected |= {("tenantstates", v) for v in ("get", "list", "watch")}
    expected |= {("tenantstates/status", "get")}
    assert grants() == expected


@pytest.mark.parametrize(
    "denied",
    [("tenantstates", "update"), ("tenantstates", "create"), ("tenantstates/status", "update"),
     ("tenants", "get"), ("configs", "get"), ("secrets", "get"), ("services", "list"),
     ("loadbalancers", "deletecollection"), ("loadbalancers", "*"), ("*", "get")],
)  # fmt: skip
def test_role_grants_nothing_else(denied):
    assert denied not in grants()
    assert denied not in grants(renew_token=True)


def test_with_bound_tokens_the_role_lets_the_agent_renew_only_its_own_token():
    rules = tenantobjects.desired_role(TENANT, renew_token=True)["rules"]
    assert rules == tenantobjects.desired_role(TENANT)["rules"]  # bound is the default
    (extra,) = [r for r in rules if r["apiGroups"] != ["kubelb.k8c.io"]]
    assert extra == {"apiGroups": [""], "resources": ["serviceaccounts/token"],
                     "verbs": ["create"], "resourceNames": ["kubelb-ccm"]}  # fmt: skip
    assert grants(renew_token=True) == grants()


def test_long_lived_token_secret():
    secret = tenantobjects.desired_token_secret(TENANT)
    assert secret["type"] == "kubernetes.io/service-account-token"
    assert secret["metadata"] == {
        "name": "kubelb-ccm", "namespace": "tenant-acme", "ownerReferences": [OWNER],
        "annotations": {"kubernetes.io/service-account.name": "kubelb-ccm"}}  # fmt: skip
    assert "data" not in secret  # the token controller fills it in


def test_objects_are_named_placed_and_owned():
    namespace = tenantobjects.desired_namespace(TENANT)
    assert namespace["metadata"] == {"name": "tenant-acme",
                                     "labels": {"kubelb.k8c.io/managed-by": "kubelb"},
                                     "ownerReferences": [OWNER]}  # fmt: skip
    for obj, kind in [
        (tenantobjects.desired_service_account(TENANT), "ServiceAccount"),
        (tenantobjects.desired_role(TENANT), "Role"),
        (tenantobjects.desired_role_binding(TENANT), "RoleBinding"),
    ]:
        assert obj["kind"] == kind
        assert obj["metadata"] == {"name": "kubelb-ccm", "namespace": "tenant-acme",
                                   "ownerReferences": [OWNER]}  # fmt: skip
    binding = tenantobjects.desired_role_binding(TENANT)
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                  "name": "kubelb-ccm"}  # fmt: skip
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "kubelb-ccm",
                                    "namespace": "tenant-acme"}]  # fmt: skip
    state = tenantobjects.desired_tenant_state(TENANT)
    assert state["metadata"]["name"] == "default"
    assert "spec" not in state  # an empty spec would never compare equal to the live object


def test_kubeconfig_secret_holds_data_and_reads_back():
    secret = tenantobjects.desired_kubeconfig_secret(TENANT, "kubelb-ccm-kubeconfig", "kubelb",
                                                     "kind: Config\n")  # fmt: skip
    assert secret["type"] == "Opaque"
    assert secret["metadata"]["namespace"] == "tenant-acme"
    assert base64.b64decode(secret["data"]["kubelb"]) == b"kind: Config\n"
    assert "stringData" not in secret
    assert tenantobjects.secret_value(secret, "kubelb") == "kind: Config\n"
    assert tenantobjects.secret_value(secret, "other") is None
    assert tenantobjects.secret_value(None, "kubelb") is None


@pytest.mark.parametrize(
    ("name", "problem"),
    [("acme", None), ("a" * 56, None), ("a" * 57, "over the limit of 63"),
     ("acme.corp", "not a DNS label"), ("Acme", "not a DNS label")],
)  # fmt: skip
def test_namespace_problem(name, problem):
    found = tenantobjects.namespace_problem(name)
    if problem is None:
        assert found is None
    else:
        assert found is not None
        assert problem in found
        assert found.startswith("metadata.name:")


def test_tenant_state_status_moves_last_updated_only_on_change():
    first = tenantobjects.desired_tenant_state_status({}, load_balancer_disabled=False, now="T1")
    assert first == {"version": tenantobjects.version(), "loadBalancer": {"disable": False},
                     "lastUpdated": "T1"}  # fmt: skip
    again = tenantobjects.desired_tenant_state_status(first, load_balancer_disabled=False,
                                                      now="T2")  # fmt: skip
    assert again == first
    flipped = tenantobjects.desired_tenant_state_status(first, load_balancer_disabled=True,
                                                        now="T3")  # fmt: skip
    assert flipped["loadBalancer"] == {"disable": True}
    assert flipped["lastUpdated"] == "T3"
    assert tenantobjects.version()["edition"] == "CE"
    assert tenantobjects.version()["gitVersion"].startswith("v")


def test_config_status_keeps_other_fields():
    assert tenantobjects.desired_config_status({"x": 1}) == {
        "x": 1,
        "version": tenantobjects.version(),
    }


def test_tenant_status_phase_condition_and_generation():
    phase = api_tenant.TenantPhase
    ready = tenantobjects.desired_tenant_status(
        {}, generation=3, phase=phase.READY, ready=True, reason="Reconciled", message="ok", now="T1"
    )
    assert ready == {
        "phase": "Ready",
        "observedGeneration": 3,
        "conditions": [{"type": "Ready", "status": "True", "reason": "Reconciled",
                        "message": "ok", "observedGeneration": 3, "lastTransitionTime": "T1"}],
    }  # fmt: skip
    # Same outcome later: identical status (the writer then skips the write).
    same = tenantobjects.desired_tenant_status(
        ready,
        generation=3,
        phase=phase.READY,
        ready=True,
        reason="Reconciled",
        message="ok",
        now="T2",
    )
    assert same == ready
    failed = tenantobjects.desired_tenant_status(ready, generation=4, phase=phase.FAILED,
                                                 ready=False, reason="ReconciliationFailed",
                                                 message="boom", now="T3")  # fmt: skip
    (condition,) = failed["conditions"]
    assert failed["phase"] == "Failed"
    assert failed["observedGeneration"] == 4
    assert condition["status"] == "False"
    assert condition["lastTransitionTime"] == "T3"
    assert condition["observedGeneration"] == 4


def test_tenant_status_replaces_an_unreadable_condition():
    current = {"conditions": [{"type": "Ready", "status": "Maybe"}, {"junk": True}]}
    status = tenantobjects.desired_tenant_status(
        current, generation=1, phase=api_tenant.TenantPhase.READY, ready=True,
        reason="Reconciled", message="ok", now="T")  # fmt: skip
    assert [c["type"] for c in status["conditions"]] == ["Ready"]
    assert status["conditions"][0]["status"] == "True"


def test_tenant_status_settings_applied_names_what_is_not_honoured():
    phase = api_tenant.TenantPhase
    kept = {"phase": "Ready", "conditions": [{"type": "SettingsApplied", "status": "True",
                                              "reason": "Honoured", "message": "m",
                                              "lastTransitionTime": "T0"}]}  # fmt: skip
    untouched = tenantobjects.desired_tenant_status(
        kept, generation=1, phase=phase.READY, ready=True, reason="Reconciled", message="ok",
        now="T1",
    )  # fmt: skip
    assert [c["type"] for c in untouched["conditions"]] == ["Ready", "SettingsApplied"]
    assert untouched["conditions"][1]["lastTransitionTime"] == "T0"
    refused = tenantobjects.desired_tenant_status(
        untouched, generation=1, phase=phase.READY, ready=True, reason="Reconciled",
        message="ok", not_applied=["a does not apply: why", "b does not apply: why"], now="T2",
    )  # fmt: skip
    settings = refused["conditions"][1]
    assert (settings["status"], settings["reason"]) == ("False", "NotApplicable")
    assert settings["message"] == "a does not apply: why; b does not apply: why"
    assert settings["lastTransitionTime"] == "T2"
    honoured = tenantobjects.desired_tenant_status(
        refused, generation=1, phase=phase.READY, ready=True, reason="Reconciled", message="ok",
        not_applied=(), now="T3",
    )  # fmt: skip
    assert honoured["conditions"][1]["status"] == "True"
    assert honoured["conditions"][1]["reason"] == "Honoured"
