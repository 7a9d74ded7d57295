"""A Tenant gets its namespace, RBAC, kubeconfig Secret and TenantState with the expected spec;
the Config gets its version; settings changes flow to the TenantState; bad names fail clearly;
the kubeconfig's server follows cluster-info; a second reconcile writes nothing."""

from __future__ import annotations

import base64

import pytest
import yaml

from kubelb.api import meta
from kubelb.kube import objects, resources
from kubelb.manager import kubeconfigs, tenantobjects
from tests.integration.tenants.conftest import find, until

pytestmark = pytest.mark.integration

Key = objects.ObjectKey
CCM = "kubelb-ccm"


async def _later_than(stamp: str) -> bool:
    return meta.rfc3339() > stamp


def owned_by(obj, tenant) -> bool:
    return [(r["kind"], r["name"], r["uid"]) for r in objects.owner_references(obj)] == [
        ("Tenant", objects.name(tenant), objects.uid(tenant))]  # fmt: skip


async def test_tenant_gets_every_object(harness, management, management_namespace):
    kube = harness.kube
    await kube.create(resources.CONFIGS, {"metadata": {"name": "default"}, "spec": {}},
                      namespace=management_namespace)  # fmt: skip
    name = await harness.create_tenant()
    tenant = await harness.ready(name)
    ns = f"tenant-{name}"

    assert "kubelb.k8c.io/cleanup" in objects.finalizers(tenant)
    (condition,) = tenant["status"]["conditions"]
    assert (condition["type"], condition["status"], condition["reason"]) == (
        "Ready", "True", "Reconciled")  # fmt: skip
    assert condition["observedGeneration"] == objects.generation(tenant)

    namespace = await kube.get(resources.NAMESPACES, ns)
    assert objects.labels(namespace)["kubelb.k8c.io/managed-by"] == "kubelb"
    assert owned_by(namespace, tenant)

    account = await kube.get(resources.SERVICE_ACCOUNTS, CCM, namespace=ns)
    role = await kube.get(resources.ROLES, CCM, namespace=ns)
    binding = await kube.get(resources.ROLE_BINDINGS, CCM, namespace=ns)
    assert all(owned_by(o, tenant) for o in (account, role, binding))
    assert role["rules"] == tenantobjects.role_rules(renew_token=True)
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                  "name": CCM}  # fmt: skip
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": CCM, "namespace": ns}]
    # TokenRequest, not a legacy token Secret.
    listed = await kube.list(resources.SECRETS, namespace=ns)
    assert [objects.name(s) for s in listed.items] == [kubeconfigs.SECRET_NAME]

    secret = listed.items[0]
    assert owned_by(secret, tenant)
    assert set(secret["data"]) == {"kubelb"}
    parts = kubeconfigs.parse_kubeconfig(base64.b64decode(secret["data"]["kubelb"]).decode())
    assert parts is not None
    # The server cluster-info names (the test control plane publishes it, as kubeadm does).
    assert parts.server == management.server
    assert parts.ca_pem == management.ca_pem
    assert parts.namespace == ns
    claims = kubeconfigs.token_claims(parts.token)
    assert claims is not None
    assert claims.subject == f"system:serviceaccount:{ns}:{CCM}"
    assert claims.service_account_uid == objects.uid(account)
    assert claims.expires_at - claims.issued_at == harness.settings.token_expiration_seconds

    state = await kube.get(resources.TENANT_STATES, "default", namespace=ns)
    assert owned_by(state, tenant)
    assert state["status"]["version"] == tenantobjects.version()
    assert state["status"]["loadBalancer"] == {"disable": False}
    assert state["status"]["lastUpdated"]

    config = await kube.get(resources.CONFIGS, "default", namespace=management_namespace)
    assert config["status"]["version"] == tenantobjects.version()


async def test_config_and_tenant_settings_reach_the_tenant_state(harness, management_namespace):
    kube = harness.kube
    name = await harness.create_tenant()
    await harness.ready(name)
    ns = f"tenant-{name}"

    async def lb_disabled(expected):
        state = await kube.get(resources.TENANT_STATES, "default", namespace=ns)
        return state if state["status"]["loadBalancer"]["disable"] is expected else None

    first = await until(lambda: lb_disabled(False), what="L4 enabled without a Config")
    # A Config created later applies to every tenant.
    await kube.create(resources.CONFIGS, {"metadata": {"name": "default"}, "spec": {
        "loadBalancer": {"disable": True}}}, namespace=management_namespace)  # fmt: skip
    state = await until(lambda: lb_disabled(True), what="disabled by the Config")
    assert state["status"]["lastUpdated"] >= first["status"]["lastUpdated"]
    await kube.patch(resources.CONFIGS, "default", {"spec": {"loadBalancer": {"disable": False}}},
                     namespace=management_namespace)  # fmt: skip
    await until(lambda: lb_disabled(False), what="enabled again by the Config")
    # The Tenant's own setting counts too.
    await kube.patch(resources.TENANTS, name, {"spec": {"loadBalancer": {"disable": True}}})
    tenant = await harness.ready(name)
    assert tenant["status"]["observedGeneration"] == 2
    await until(lambda: lb_disabled(True), what="disabled by the Tenant")


@pytest.mark.parametrize(("prefix", "fragment"), [("dotted.name", "not a DNS label"),
                                                  ("x" * 60, "over the limit of 63")])  # fmt: skip
async def test_unusable_tenant_name_fails_with_a_reason(harness, prefix, fragment):
    name = await harness.create_tenant(prefix)

    async def failed():
        tenant = await harness.tenant(name)
        return tenant if (tenant or {}).get("status", {}).get("phase") == "Failed" else None

    tenant = await until(failed, what="Failed status")
    (condition,) = tenant["status"]["conditions"]
    assert condition["reason"] == "ReconciliationFailed"
    assert fragment in condition["message"]
    assert "metadata.name" in condition["message"]
    assert "kubelb.k8c.io/cleanup" not in objects.finalizers(tenant)


async def test_kubeconfig_server_follows_cluster_info(harness, management):
    name = await harness.create_tenant()
    await harness.ready(name)
    # The test control plane's own cluster-info, put back afterwards: later tests read it.
    published = await harness.kube.get(resources.CONFIG_MAPS, "cluster-info",
                                       namespace="kube-public")  # fmt: skip
    # A name that reaches the same API server, so that it is visibly a different choice.
    url = management.server.replace("127.0.0.1", "localhost")
    info = {"apiVersion": "v1", "kind": "Config",
            "clusters": [{"name": "", "cluster": {"server": url}}]}  # fmt: skip

    async def publish(data):
        await harness.kube.patch(resources.CONFIG_MAPS, "cluster-info", {"data": data},
                                 namespace="kube-public")  # fmt: skip

    async def server_is(expected):
        parts = kubeconfigs.parse_kubeconfig(await harness.kubeconfig_text(name))
        return parts is not None and parts.server == expected

    try:
        await publish({"kubeconfig": yaml.safe_dump(info)})
        await until(lambda: server_is(url), what="server from cluster-info")
    finally:
        await publish(published["data"])
    await until(lambda: server_is(management.server), what="server back to the published one")


async def test_second_reconcile_makes_no_writes(harness, management_namespace):
    kube = harness.kube
    await kube.create(resources.CONFIGS, {"metadata": {"name": "default"}, "spec": {}},
                      namespace=management_namespace)  # fmt: skip
    name = await harness.create_tenant()
    await harness.ready(name)
    await harness.stop_controller()  # from here on only this test reconciles
    ns = f"tenant-{name}"
    watched = [
        (resources.TENANTS, Key("", name), {}),
        (resources.NAMESPACES, Key("", ns), {"label_selector": "kubelb.k8c.io/managed-by=kubelb"}),
        (resources.SERVICE_ACCOUNTS, Key(ns, CCM), {"field_selector": f"metadata.name={CCM}"}),
        (resources.ROLES, Key(ns, CCM), {"field_selector": f"metadata.name={CCM}"}),
        (resources.ROLE_BINDINGS, Key(ns, CCM), {"field_selector": f"metadata.name={CCM}"}),
        (resources.SECRETS, Key(ns, kubeconfigs.SECRET_NAME),
         {"field_selector": f"metadata.name={kubeconfigs.SECRET_NAME}"}),
        (resources.TENANT_STATES, Key(ns, "default"), {"field_selector": "metadata.name=default"}),
        (resources.CONFIGS, Key(management_namespace, "default"),
         {"namespace": management_namespace}),
    ]  # fmt: skip

    async def all_caught_up():
        return all([await harness.caught_up(r, k, **kw) for r, k, kw in watched])

    await until(all_caught_up, what="informers caught up with the server")

    async def versions():
        found = [await find(kube, r, k.name, k.namespace or None) for r, k, _ in watched]
        return [objects.resource_version(obj or {}) for obj in found]

    before = await versions()
    # Let the clock pass the second of the last write, so a timestamp rewritten on every
    # reconcile (lastUpdated, lastTransitionTime) would show up as a write.
    state = await kube.get(resources.TENANT_STATES, "default", namespace=ns)
    await until(lambda: _later_than(state["status"]["lastUpdated"]), what="the next second")
    writes, tokens = harness.writer.writes, harness.reconciler.tokens_issued
    for _ in range(2):
        result = await harness.reconciler.reconcile(Key("", name))
        # Requeued for the token's rotation, 80% into its lifetime.
        assert result.requeue_after is not None
        assert result.requeue_after > 0.5 * harness.settings.token_expiration_seconds
    assert harness.writer.writes == writes
    assert harness.reconciler.tokens_issued == tokens
    assert await versions() == before


async def test_drifted_objects_are_repaired(harness):
    kube = harness.kube
    name = await harness.create_tenant()
    await harness.ready(name)
    ns = f"tenant-{name}"
    widened = [*tenantobjects.role_rules(renew_token=True),
               {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]  # fmt: skip
    await kube.patch(resources.ROLES, CCM, {"rules": widened}, namespace=ns)
    await kube.delete(resources.ROLE_BINDINGS, CCM, namespace=ns)
    await kube.delete(resources.SECRETS, kubeconfigs.SECRET_NAME, namespace=ns)

    async def repaired():
        role = await kube.get(resources.ROLES, CCM, namespace=ns)
        binding = await find(kube, resources.ROLE_BINDINGS, CCM, ns)
        secret = await find(kube, resources.SECRETS, kubeconfigs.SECRET_NAME, ns)
        rules_back = role["rules"] == tenantobjects.role_rules(renew_token=True)
        return rules_back and binding is not None and secret is not None

    await until(repaired, what="Role rules restored, RoleBinding and Secret recreated")
    async with harness.tenant_client(name) as agent:
        await agent.list(resources.LOAD_BALANCERS, namespace=ns)


async def test_api_error_sets_failed_with_the_servers_reason(harness):
    """A namespace `tenant-X` already controlled by something else cannot take the Tenant as its
    controller owner: the API server's refusal ends up in the status and an Event."""
    kube = harness.kube
    owner = await kube.create(resources.CLUSTER_ROLES, {"metadata": {"generateName": "owner-"}})
    name = f"taken-{objects.uid(owner)[:6]}"
    ns = f"tenant-{name}"
    await kube.create(resources.NAMESPACES, {"metadata": {"name": ns, "ownerReferences": [
        objects.owner_reference(owner)]}})  # fmt: skip
    try:
        await kube.create(resources.TENANTS, {"metadata": {"name": name}})
        harness.created.append(name)

        async def failed():
            status = ((await harness.tenant(name)) or {}).get("status") or {}
            return status if status.get("phase") == "Failed" else None

        status = await until(failed, what="Failed status")
        (condition,) = status["conditions"]
        assert condition["reason"] == "ReconciliationFailed"
        assert "controller" in condition["message"].lower()

        async def warning():
            events = await kube.list(resources.EVENTS, namespace="default",
                                     field_selector=f"involvedObject.name={name}")  # fmt: skip
            return [e for e in events.items if e["type"] == "Warning"]

        (event,) = await until(warning, what="a Warning Event on the Tenant")
        assert event["reason"] == "ReconciliationFailed"
        # Fixed by hand: the retry (with backoff) succeeds.
        await kube.patch(resources.NAMESPACES, ns, {"metadata": {"ownerReferences": None}})
        await harness.ready(name)
    finally:
        await kube.delete(resources.CLUSTER_ROLES, objects.name(owner))
