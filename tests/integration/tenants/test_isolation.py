"""Tenant isolation with real RBAC: the issued kubeconfig may manage its own KubeLB objects, read
its TenantState and renew its own token, and gets 403 for everything else (upstream's tenant Role,
plus TokenRequest for its own ServiceAccount only)."""

from __future__ import annotations

import pytest

from kubelb.kube import errors, resources
from kubelb.manager import kubeconfigs
from tests.integration.kube.helpers import load_balancer

pytestmark = pytest.mark.integration

LBS = resources.LOAD_BALANCERS
STATES = resources.TENANT_STATES


async def test_tenant_kubeconfig_is_confined_to_its_own_kubelb_objects(
    harness, management_namespace
):
    name = await harness.create_tenant()
    other = await harness.create_tenant("other")
    await harness.ready(name)
    await harness.ready(other)
    ns, other_ns = f"tenant-{name}", f"tenant-{other}"
    await harness.kube.create(LBS, load_balancer("theirs"), namespace=other_ns)

    async with harness.tenant_client(name) as kube:
        # Allowed: what the agent does (RBAC can grant, so the 403s below are RBAC's).
        created = await kube.create(LBS, load_balancer("mine"), namespace=ns)
        assert created["metadata"]["namespace"] == ns
        assert [o["metadata"]["name"] for o in (await kube.list(LBS, namespace=ns)).items] == [
            "mine"]  # fmt: skip
        await kube.patch_status(LBS, "mine", {"status": {"loadBalancer": {}}}, namespace=ns)
        await kube.create(resources.ADDRESSES, {"metadata": {"name": "default"}, "spec": {
            "addresses": [{"ip": "127.0.0.21"}]}}, namespace=ns)  # fmt: skip
        await kube.create(resources.SYNC_SECRETS, {"metadata": {"name": "s"}, "data": {}},
                          namespace=ns)  # fmt: skip
        renewed = await kube.create_token(ns, "kubelb-ccm", expiration_seconds=600)
        claims = kubeconfigs.token_claims(renewed.token)
        assert claims is not None
        assert claims.subject == f"system:serviceaccount:{ns}:kubelb-ccm"
        state = await kube.get(STATES, "default", namespace=ns)
        assert state["status"]["version"]["edition"] == "CE"
        assert len((await kube.list(STATES, namespace=ns)).items) == 1
        await kube.delete(LBS, "mine", namespace=ns)

        denied = {
            "read Secrets in its namespace": kube.list(resources.SECRETS, namespace=ns),
            "read its own kubeconfig Secret": kube.get(resources.SECRETS, "kubelb-ccm-kubeconfig",
                                                       namespace=ns),
            "read Services in its namespace": kube.list(resources.SERVICES, namespace=ns),
            "create a Service": kube.create(resources.SERVICES, {"metadata": {"name": "x"},
                "spec": {"ports": [{"port": 80}]}}, namespace=ns),
            "read ConfigMaps in its namespace": kube.list(resources.CONFIG_MAPS, namespace=ns),
            "read another tenant's LoadBalancers": kube.list(LBS, namespace=other_ns),
            "read another tenant's LoadBalancer": kube.get(LBS, "theirs", namespace=other_ns),
            "create in another tenant's namespace": kube.create(LBS, load_balancer("x"),
                                                                namespace=other_ns),
            "read another tenant's TenantState": kube.get(STATES, "default", namespace=other_ns),
            "read the manager namespace": kube.list(LBS, namespace=management_namespace),
            "read the Config": kube.get(resources.CONFIGS, "default",
                                        namespace=management_namespace),
            "list LoadBalancers cluster-wide": kube.list(LBS),
            "list Nodes": kube.list(resources.NODES),
            "list Namespaces": kube.list(resources.NAMESPACES),
            "read its own Namespace": kube.get(resources.NAMESPACES, ns),
            "read its Tenant": kube.get(resources.TENANTS, name),
            "list Tenants": kube.list(resources.TENANTS),
            "create a Role": kube.create(resources.ROLES, {"metadata": {"name": "escalate"},
                "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]},
                namespace=ns),
            "create a RoleBinding": kube.create(resources.ROLE_BINDINGS, {
                "metadata": {"name": "escalate"}, "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                    "name": "cluster-admin"},
                "subjects": [{"kind": "ServiceAccount", "name": "kubelb-ccm", "namespace": ns}]},
                namespace=ns),
            # Its own token it may renew (below), no other account's.
            "mint tokens for another account in its namespace": kube.create_token(
                ns, "default", expiration_seconds=600),
            "mint tokens for another tenant's agent": kube.create_token(
                other_ns, "kubelb-ccm", expiration_seconds=600),
            "mint tokens in the manager namespace": kube.create_token(
                management_namespace, "default", expiration_seconds=600),
            "mint tokens for a kube-system account": kube.create_token(
                "kube-system", "default", expiration_seconds=600),
            "create a ServiceAccount": kube.create(resources.SERVICE_ACCOUNTS,
                {"metadata": {"name": "kubelb-ccm-2"}}, namespace=ns),
            "patch its TenantState": kube.patch(STATES, "default",
                {"metadata": {"labels": {"x": "y"}}}, namespace=ns),
            "write its TenantState status": kube.patch_status(STATES, "default",
                {"status": {"loadBalancer": {"disable": False}}}, namespace=ns),
            "create a TenantState": kube.create(STATES, {"metadata": {"name": "mine"}},
                                                namespace=ns),
            "delete its TenantState": kube.delete(STATES, "default", namespace=ns),
        }  # fmt: skip
        not_forbidden = []
        for what, request in denied.items():
            try:
                await request
            except errors.ForbiddenError:
                continue
            except errors.ApiError as exc:  # e.g. 401 or 404 would not prove RBAC
                not_forbidden.append(f"{what}: {exc}")
                continue
            not_forbidden.append(f"{what}: allowed")
        assert not_forbidden == []
    # The other tenant's object is untouched.
    await harness.kube.get(LBS, "theirs", namespace=other_ns)
    await harness.kube.delete(LBS, "theirs", namespace=other_ns)
