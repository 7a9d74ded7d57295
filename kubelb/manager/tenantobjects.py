"""Desired objects and statuses for one Tenant: what the tenant controller writes.

Pure. Input: the raw Tenant (with apiVersion, kind, name and uid) and computed values. Output: raw
objects for `kubelb.kube.writer.Writer.ensure` (namespace `tenant-<name>`, ServiceAccount, Role
and RoleBinding `kubelb-ccm`, Secret `kubelb-ccm-kubeconfig`, the long-lived token Secret
`kubelb-ccm` when asked for, TenantState `default`), each owned by the Tenant, and the new
statuses of the Tenant, the TenantState and the Config.

The Role is upstream's tenant grant: the tenant's own KubeLB objects in its own namespace,
nothing cluster-scoped, no other core resources (not even Secrets or Services). With bound
tokens it also lets the agent renew its own token: `create` on `serviceaccounts/token` for the
ServiceAccount `kubelb-ccm` only (`resourceNames`), so a tenant can mint tokens for no other
account, in its namespace or anywhere else.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping, Sequence
from typing import Any

import kubelb
from kubelb.api import conditions, labels, meta, tenant as api_tenant, tenantstate
from kubelb.kube import objects

CCM_NAME = "kubelb-ccm"
TOKEN_SECRET_NAME = CCM_NAME  # the long-lived token Secret, named as upstream's
TOKEN_SECRET_TYPE = "kubernetes.io/service-account-token"
SERVICE_ACCOUNT_NAME_ANNOTATION = "kubernetes.io/service-account.name"
TOKEN_KEY = "token"
TENANT_STATE_NAME = tenantstate.DEFAULT_NAME
EDITION = "CE"
MAX_NAMESPACE_LENGTH = 63

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")

_TENANT_KINDS = ("loadbalancers", "routes", "addresses", "syncsecrets")
ALL_VERBS = ("create", "update", "get", "list", "delete", "patch", "watch")

ROLE_RULES: tuple[dict[str, Any], ...] = (
    {"apiGroups": [meta.GROUP], "resources": list(_TENANT_KINDS), "verbs": list(ALL_VERBS)},
    {"apiGroups": [meta.GROUP], "resources": [f"{k}/status" for k in _TENANT_KINDS],
     "verbs": ["update", "get", "patch"]},
    {"apiGroups": [meta.GROUP], "resources": ["tenantstates"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": [meta.GROUP], "resources": ["tenantstates/status"], "verbs": ["get"]},
)  # fmt: skip

# The agent renews its own bound token: TokenRequest for exactly its ServiceAccount.
RENEW_OWN_TOKEN_RULE: dict[str, Any] = {
    "apiGroups": [""], "resources": ["serviceaccounts/token"], "verbs": ["create"],
    "resourceNames": [CCM_NAME],
}  # fmt: skip


def role_rules(*, renew_token: bool) -> list[dict[str, Any]]:
    """The tenant Role's rules; `renew_token` (bound tokens) adds RENEW_OWN_TOKEN_RULE."""
    rules = [dict(rule) for rule in ROLE_RULES]
    return [*rules, dict(RENEW_OWN_TOKEN_RULE)] if renew_token else rules


def namespace_problem(tenant_name: str) -> str | None:
    """Why `tenant-<name>` cannot be a namespace, or None when it can."""
    namespace = api_tenant.namespace_for(tenant_name)
    if len(namespace) > MAX_NAMESPACE_LENGTH:
        return (f"metadata.name: namespace {namespace!r} would be {len(namespace)} characters, "
                f"over the limit of {MAX_NAMESPACE_LENGTH}; use a shorter Tenant name")  # fmt: skip
    if not _DNS_LABEL.match(namespace):
        return (f"metadata.name: namespace {namespace!r} is not a DNS label (lower-case letters, "
                "digits and '-'); use a Tenant name without dots")  # fmt: skip
    return None


def version() -> dict[str, str]:
    """This manager's version as TenantState and Config statuses carry it."""
    return {"gitVersion": f"v{kubelb.__version__}", "edition": EDITION}


def _metadata(name: str, namespace: str, owner: Mapping[str, Any]) -> dict[str, Any]:
    return {"name": name, "namespace": namespace,
            "ownerReferences": [objects.owner_reference(owner)]}  # fmt: skip


def desired_namespace(tenant: Mapping[str, Any]) -> objects.RawObject:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": api_tenant.namespace_for(objects.name(tenant)),
            "labels": {labels.MANAGED_BY: labels.MANAGED_BY_VALUE},
            "ownerReferences": [objects.owner_reference(tenant)],
        },
    }


def desired_service_account(tenant: Mapping[str, Any]) -> objects.RawObject:
    namespace = api_tenant.namespace_for(objects.name(tenant))
    return {"apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": _metadata(CCM_NAME, namespace, tenant)}  # fmt: skip


def desired_role(tenant: Mapping[str, Any], *, renew_token: bool = True) -> objects.RawObject:
    namespace = api_tenant.namespace_for(objects.name(tenant))
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": _metadata(CCM_NAME, namespace, tenant),
        "rules": role_rules(renew_token=renew_token),
    }


def desired_role_binding(tenant: Mapping[str, Any]) -> objects.RawObject:
    namespace = api_tenant.namespace_for(objects.name(tenant))
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": _metadata(CCM_NAME, namespace, tenant),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": CCM_NAME},
        "subjects": [{"kind": "ServiceAccount", "name": CCM_NAME, "namespace": namespace}],
    }


def desired_kubeconfig_secret(
    tenant: Mapping[str, Any], name: str, key: str, kubeconfig: str
) -> objects.RawObject:
    """The Secret holding the tenant kubeconfig (`data`, the form the server returns)."""
    namespace = api_tenant.namespace_for(objects.name(tenant))
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _metadata(name, namespace, tenant),
        "type": "Opaque",
        "data": {key: base64.b64encode(kubeconfig.encode()).decode()},
    }


def desired_token_secret(tenant: Mapping[str, Any]) -> objects.RawObject:
    """The long-lived token Secret: the token controller fills in `data.token` (and the
    ServiceAccount's uid); the token lasts until the Secret or the ServiceAccount is deleted."""
    namespace = api_tenant.namespace_for(objects.name(tenant))
    metadata = _metadata(TOKEN_SECRET_NAME, namespace, tenant)
    metadata["annotations"] = {SERVICE_ACCOUNT_NAME_ANNOTATION: CCM_NAME}
    return {"apiVersion": "v1", "kind": "Secret", "metadata": metadata,
            "type": TOKEN_SECRET_TYPE}  # fmt: skip


def secret_value(secret: Mapping[str, Any] | None, key: str) -> str | None:
    """The decoded value of `key` in a Secret, or None."""
    if secret is None:
        return None
    value = (secret.get("data") or {}).get(key)
    if not isinstance(value, str):
        return None
    try:
        return base64.b64decode(value).decode()
    except ValueError:
        return None


def desired_tenant_state(tenant: Mapping[str, Any]) -> objects.RawObject:
    namespace = api_tenant.namespace_for(objects.name(tenant))
    return {"apiVersion": meta.API_VERSION, "kind": "TenantState",
            "metadata": _metadata(TENANT_STATE_NAME, namespace, tenant)}  # fmt: skip


def desired_tenant_state_status(
    current: Mapping[str, Any], *, load_balancer_disabled: bool, now: str
) -> dict[str, Any]:
    """TenantState status; `lastUpdated` moves only when something else changed, so an
    unchanged tenant costs no write."""
    wanted = {**current, "version": version(),
              "loadBalancer": {**(current.get("loadBalancer") or {}),
                               "disable": load_balancer_disabled}}  # fmt: skip
    unchanged = {k: v for k, v in current.items() if k != "lastUpdated"}
    if {k: v for k, v in wanted.items() if k != "lastUpdated"} == unchanged:
        return dict(current)
    return {**wanted, "lastUpdated": now}


def desired_config_status(current: Mapping[str, Any]) -> dict[str, Any]:
    return {**current, "version": version()}


def desired_tenant_status(
    current: Mapping[str, Any],
    *,
    generation: int | None,
    phase: api_tenant.TenantPhase,
    ready: bool,
    reason: str,
    message: str,
    not_applied: Sequence[str] | None = None,
    now: str | None = None,
) -> dict[str, Any]:
    """Tenant status with `phase`, `observedGeneration` and the `Ready` condition (its
    lastTransitionTime moves only when its status flips); with `not_applied` (None: leave it as
    it is), the `SettingsApplied` condition too: False naming each setting not honoured."""
    status = meta.phase_status(
        current, phase=str(phase), condition=conditions.READY, ok=ready, reason=reason,
        message=message, generation=generation, now=now,
    )  # fmt: skip
    if not_applied is None:
        return status
    honoured = not not_applied
    return meta.phase_status(
        status, phase=str(phase), condition=conditions.SETTINGS_APPLIED, ok=honoured,
        reason=conditions.SETTINGS_HONOURED if honoured else conditions.SETTINGS_NOT_APPLICABLE,
        message="every Envoy setting is honoured" if honoured else "; ".join(not_applied),
        generation=generation, now=now,
    )  # fmt: skip
