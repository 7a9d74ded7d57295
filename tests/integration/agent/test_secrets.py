"""Secret sync on two real API servers, with the tenant's restricted management credentials
(upstream's `features/syncsecret` scenarios): a labelled Secret becomes a tenant SyncSecret
(`--enable-secret-synchronizer`), every tenant SyncSecret a management SyncSecret named by its
UID with origin labels; changes and deletion propagate; unlabelled Secrets stay put."""

from __future__ import annotations

import base64
import contextlib
from pathlib import Path

import aiohttp
import pytest

from kubelb.api import finalizers
from kubelb.kube import errors, objects, resources
from tests.integration.agent.conftest import provision_tenant
from tests.integration.agent.helpers import find, wait_for
from tests.integration.agent.test_lifecycle import metric_value

pytestmark = pytest.mark.integration

SS = resources.SYNC_SECRETS
MANAGED = {"kubelb.k8c.io/managed-by": "kubelb"}
DEPLOY = Path(__file__).parents[3] / "configs" / "deploy"
# The shipped agent RBAC plus the Secrets it needs with --enable-secret-synchronizer.
AGENT_MANIFESTS = (DEPLOY / "agent.yaml", DEPLOY / "agent-secret-sync.yaml")


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def secret(name: str, data: dict[str, str], *, labelled: bool = True, **extra):
    metadata = {"name": name, **({"labels": {**MANAGED, "app": "shop"}} if labelled else {})}
    return {"metadata": metadata, "data": {k: b64(v) for k, v in data.items()}, **extra}


async def copy_of(mgmt, namespace: str, tenant_ss, data: dict[str, str]):
    """Wait for the management SyncSecret named by `tenant_ss`'s UID carrying `data`."""

    async def found():
        copy = await find(mgmt, SS, namespace, objects.uid(tenant_ss))
        wanted = {k: b64(v) for k, v in data.items()}
        return copy if copy is not None and copy.get("data") == wanted else None

    return await wait_for(found, what=f"the management copy of {objects.name(tenant_ss)}")


async def test_labelled_secret_reaches_the_management_cluster(
    agent, tenant, tenant_setup, services_ns, tkube, mgmt, tmp_path
):
    ns = tenant_setup.namespace
    manifest = "\n---\n".join(p.read_text() for p in AGENT_MANIFESTS)
    identity = await tenant.deployed_identity(manifest, tmp_path / "identity")
    try:
        async with agent(kubeconfig=identity, enable_secret_synchronizer=True) as running, \
                aiohttp.ClientSession() as http:  # fmt: skip
            tls = secret("web-tls", {"tls.crt": "c1", "tls.key": "k1"}, type="kubernetes.io/tls")
            await tkube.create(resources.SECRETS, tls, namespace=services_ns)
            await tkube.create(resources.SECRETS, secret("plain", {"k": "v"}, labelled=False),
                               namespace=services_ns)  # fmt: skip

            async def tenant_ss():
                return await find(tkube, SS, services_ns, "web-tls")

            ss = await wait_for(tenant_ss, what="the tenant SyncSecret")
            assert ss["type"] == "kubernetes.io/tls"
            assert objects.labels(ss) == {**MANAGED, "app": "shop",
                                          "kubelb.k8c.io/origin-name": "web-tls",
                                          "kubelb.k8c.io/origin-ns": services_ns}  # fmt: skip
            copy = await copy_of(mgmt, ns, ss, {"tls.crt": "c1", "tls.key": "k1"})
            assert copy["type"] == "kubernetes.io/tls"
            assert objects.labels(copy)["kubelb.k8c.io/origin-name"] == "web-tls"
            assert objects.labels(copy)["kubelb.k8c.io/origin-ns"] == services_ns
            assert objects.labels(copy)["kubelb.k8c.io/managed-by"] == "kubelb"
            src = await tkube.get(resources.SECRETS, "web-tls", namespace=services_ns)
            assert finalizers.CLEANUP in objects.finalizers(src)

            async def finalized():
                current = await find(tkube, SS, services_ns, "web-tls")
                return current if finalizers.CLEANUP in objects.finalizers(current or {}) else None

            ss = await wait_for(finalized, what="the finalizer on the tenant SyncSecret")

            # Rotation: the new data reaches the management copy.
            src["data"] = {"tls.crt": b64("c2"), "tls.key": b64("k2")}
            await tkube.replace(resources.SECRETS, src)
            await copy_of(mgmt, ns, ss, {"tls.crt": "c2", "tls.key": "k2"})

            # Never synced without the label.
            assert await find(tkube, SS, services_ns, "plain") is None
            copies = (await mgmt.list(SS, namespace=ns)).items
            origins = [objects.labels(c).get("kubelb.k8c.io/origin-name") for c in copies]
            assert "plain" not in origins

            async with http.get(f"http://127.0.0.1:{running.metrics.port}/metrics") as response:
                text = await response.text()
            assert (metric_value(text, "kubelb_ccm_sync_secret_reconcile_total",
                                 namespace=services_ns, result="success") or 0) > 0  # fmt: skip

            # The label removed: the SyncSecret and its copy go, the Secret keeps no finalizer.
            await tkube.create(resources.SECRETS, secret("unlabel-me", {"k": "v"}),
                               namespace=services_ns)  # fmt: skip
            later = await wait_for(lambda: find(tkube, SS, services_ns, "unlabel-me"),
                                   what="the SyncSecret of unlabel-me")  # fmt: skip
            assert later is not None
            await copy_of(mgmt, ns, later, {"k": "v"})
            await tkube.patch(resources.SECRETS, "unlabel-me",
                              {"metadata": {"labels": {"kubelb.k8c.io/managed-by": None}}},
                              namespace=services_ns)  # fmt: skip

            async def unsynced():
                kept = await tkube.get(resources.SECRETS, "unlabel-me", namespace=services_ns)
                return (not objects.finalizers(kept)
                        and await find(tkube, SS, services_ns, "unlabel-me") is None
                        and await find(mgmt, SS, ns, objects.uid(later)) is None)  # fmt: skip

            await wait_for(unsynced, what="the unlabelled Secret's SyncSecret and copy gone")

            # Deletion propagates: Secret -> tenant SyncSecret -> management copy.
            await tkube.delete(resources.SECRETS, "web-tls", namespace=services_ns)

            async def all_gone():
                return (await find(tkube, resources.SECRETS, services_ns, "web-tls") is None
                        and await find(tkube, SS, services_ns, "web-tls") is None
                        and await find(mgmt, SS, ns, objects.uid(ss)) is None)  # fmt: skip

            await wait_for(all_gone, what="the Secret, its SyncSecret and the copy gone")

    finally:
        # Cluster-wide, and other tests assert the shipped agent.yaml alone reads no Secret.
        for resource in (resources.CLUSTER_ROLE_BINDINGS, resources.CLUSTER_ROLES):
            with contextlib.suppress(errors.NotFoundError):
                await tkube.delete(resource, "kubelb-agent-secret-sync")


async def test_sync_secrets_of_two_tenants_land_in_their_namespaces(
    agent, management, tenant_setup, services_ns, tkube, mgmt, tmp_path
):
    """A SyncSecret written directly (no synchronizer needed), same name on two tenants."""
    body = {"metadata": {"name": "shared"}, "data": {"k": b64("one")}}
    async with provision_tenant(management, mgmt, tmp_path) as other, agent(), agent(other):
        ss = await tkube.create(SS, body, namespace=services_ns)
        first = await copy_of(mgmt, tenant_setup.namespace, ss, {"k": "one"})
        second = await copy_of(mgmt, other.namespace, ss, {"k": "one"})
        assert objects.namespace(first) != objects.namespace(second)
        await tkube.delete(SS, "shared", namespace=services_ns)

        async def gone():
            return (await find(mgmt, SS, tenant_setup.namespace, objects.uid(ss)) is None
                    and await find(mgmt, SS, other.namespace, objects.uid(ss)) is None
                    and await find(tkube, SS, services_ns, "shared") is None)  # fmt: skip

        await wait_for(gone, what="both copies and the SyncSecret gone")


async def test_copy_of_a_sync_secret_deleted_while_no_agent_ran_is_removed(
    agent, tenant_setup, services_ns, tkube, mgmt
):
    async with agent():
        ss = await tkube.create(SS, {"metadata": {"name": "gone-later"},
                                     "data": {"k": b64("v")}}, namespace=services_ns)  # fmt: skip
        await copy_of(mgmt, tenant_setup.namespace, ss, {"k": "v"})
    # Forced away while the agent is down: its finalizer never ran.
    await tkube.patch(SS, "gone-later", {"metadata": {"finalizers": None}}, namespace=services_ns)
    await tkube.delete(SS, "gone-later", namespace=services_ns)
    async with agent():

        async def removed():
            return await find(mgmt, SS, tenant_setup.namespace, objects.uid(ss)) is None

        await wait_for(removed, what="the orphaned copy to be deleted")
