"""Secrets named by served objects are synced without a label, on two real API servers with the
shipped agent RBAC (upstream's `features/syncsecret` scenarios and the sync half of
`ingress/tls`): an Ingress's `tls[].secretName` and a Gateway listener's `certificateRefs` reach
the management cluster as SyncSecrets with origin labels; a Secret created after the object is
picked up; rotation propagates; once nothing served names it, its copies go and the Secret is
left as it was. An unreferenced, or only foreign-referenced, unlabelled Secret is never synced."""

from __future__ import annotations

import contextlib

import pytest

from kubelb.agent.secretrefs import REFERENCE_GRANTS
from kubelb.kube import errors, objects, resources
from tests.integration.agent.conftest import release_finalizers
from tests.integration.agent.helpers import (
    backend_service,
    find,
    idle,
    ingress,
    ingress_rule,
    object_events,
    wait_for,
)
from tests.integration.agent.test_secrets import AGENT_MANIFESTS, SS, b64, copy_of, secret

pytestmark = pytest.mark.integration


def tls_ingress(name: str, *secret_names: str, class_name: str = "kubelb"):
    return ingress(
        name,
        ingress_rule("shop.example", ("/", "web", 80)),
        class_name=class_name,
        tls=[{"hosts": ["shop.example"], "secretName": n} for n in secret_names],
    )


@contextlib.asynccontextmanager
async def secret_sync_agent(agent, tenant, tkube, tmp_path, **overrides):
    manifest = "\n---\n".join(p.read_text() for p in AGENT_MANIFESTS)
    identity = await tenant.deployed_identity(manifest, tmp_path / "identity")
    try:
        async with agent(kubeconfig=identity, enable_secret_synchronizer=True, **overrides) as a:
            yield a
    finally:
        for resource in (resources.CLUSTER_ROLE_BINDINGS, resources.CLUSTER_ROLES):
            with contextlib.suppress(errors.NotFoundError):
                # Cluster-wide; other tests assert the shipped agent.yaml alone reads no Secret.
                await tkube.delete(resource, "kubelb-agent-secret-sync")


async def sync_secret(tkube, namespace: str, name: str, what: str) -> objects.RawObject:
    """Wait for the tenant SyncSecret `namespace/name`; return it."""
    found = await wait_for(lambda: find(tkube, SS, namespace, name), what=what)
    assert found is not None
    return found


async def management_origins(mgmt, namespace: str) -> set[str]:
    copies = (await mgmt.list(SS, namespace=namespace)).items
    return {objects.labels(c).get("kubelb.k8c.io/origin-name", "") for c in copies}


async def test_ingress_tls_secret_is_synced_while_a_served_ingress_names_it(
    agent, tenant, tenant_setup, services_ns, tkube, mgmt, tmp_path
):
    ns = tenant_setup.namespace
    async with secret_sync_agent(agent, tenant, tkube, tmp_path) as running:
        # Named before it exists; a foreign-class Ingress names another.
        await tkube.create(resources.INGRESSES, tls_ingress("shop", "web-tls"),
                           namespace=services_ns)  # fmt: skip
        await tkube.create(resources.INGRESSES,
                           tls_ingress("other", "foreign-tls", class_name="nginx"),
                           namespace=services_ns)  # fmt: skip
        for name in ("foreign-tls", "plain"):
            await tkube.create(resources.SECRETS, secret(name, {"k": "v"}, labelled=False),
                               namespace=services_ns)  # fmt: skip
        tls = secret("web-tls", {"tls.crt": "c1", "tls.key": "k1"}, labelled=False,
                     type="kubernetes.io/tls")  # fmt: skip
        await tkube.create(resources.SECRETS, tls, namespace=services_ns)

        ss = await sync_secret(
            tkube, services_ns, "web-tls", "the tenant SyncSecret of the named Secret"
        )
        assert ss["type"] == "kubernetes.io/tls"
        assert objects.labels(ss) == {"kubelb.k8c.io/managed-by": "kubelb",
                                      "kubelb.k8c.io/origin-name": "web-tls",
                                      "kubelb.k8c.io/origin-ns": services_ns}  # fmt: skip
        copy = await copy_of(mgmt, ns, ss, {"tls.crt": "c1", "tls.key": "k1"})
        assert copy["type"] == "kubernetes.io/tls"
        assert objects.labels(copy)["kubelb.k8c.io/origin-ns"] == services_ns
        # The user's Secret is read, never written.
        src = await tkube.get(resources.SECRETS, "web-tls", namespace=services_ns)
        assert not objects.finalizers(src)

        # Rotation.
        src["data"] = {"tls.crt": b64("c2"), "tls.key": b64("k2")}
        await tkube.replace(resources.SECRETS, src)
        await copy_of(mgmt, ns, ss, {"tls.crt": "c2", "tls.key": "k2"})

        # Nothing else was synced: the agent has settled (no reconcile pending) by now.
        await idle(running.secret_controller, what="the secret controller settled")
        for name in ("foreign-tls", "plain"):
            assert await find(tkube, SS, services_ns, name) is None
        assert await management_origins(mgmt, ns) == {"web-tls"}

        # No longer named: the SyncSecret and its copy go, the Secret stays.
        live = await tkube.get(resources.INGRESSES, "shop", namespace=services_ns)
        live["spec"]["tls"] = []
        await tkube.replace(resources.INGRESSES, live)

        async def unsynced():
            return (await find(tkube, SS, services_ns, "web-tls") is None
                    and await find(mgmt, SS, ns, objects.uid(ss)) is None)  # fmt: skip

        await wait_for(unsynced, what="the SyncSecret and copy of the no-longer-named Secret gone")
        assert await find(tkube, resources.SECRETS, services_ns, "web-tls") is not None

        # Named again, then the Ingress deleted: synced, then gone again.
        live = await tkube.get(resources.INGRESSES, "shop", namespace=services_ns)
        live["spec"]["tls"] = [{"secretName": "web-tls"}]
        await tkube.replace(resources.INGRESSES, live)
        again = await sync_secret(tkube, services_ns, "web-tls", "the SyncSecret again")
        await copy_of(mgmt, ns, again, {"tls.crt": "c2", "tls.key": "k2"})
        await tkube.delete(resources.INGRESSES, "shop", namespace=services_ns)

        async def gone():
            return (await find(tkube, SS, services_ns, "web-tls") is None
                    and await find(mgmt, SS, ns, objects.uid(again)) is None)  # fmt: skip

        await wait_for(gone, what="the copies gone with the Ingress")


async def test_named_secret_deleted_takes_its_copies(
    agent, tenant, tenant_setup, services_ns, tkube, mgmt, tmp_path
):
    ns = tenant_setup.namespace
    async with secret_sync_agent(agent, tenant, tkube, tmp_path):
        await tkube.create(resources.SECRETS, secret("gone-tls", {"k": "v"}, labelled=False),
                           namespace=services_ns)  # fmt: skip
        await tkube.create(resources.INGRESSES, tls_ingress("shop", "gone-tls"),
                           namespace=services_ns)  # fmt: skip
        ss = await sync_secret(tkube, services_ns, "gone-tls", "the SyncSecret")
        await copy_of(mgmt, ns, ss, {"k": "v"})
        await tkube.delete(resources.SECRETS, "gone-tls", namespace=services_ns)

        async def gone():
            return (await find(tkube, SS, services_ns, "gone-tls") is None
                    and await find(mgmt, SS, ns, objects.uid(ss)) is None)  # fmt: skip

        await wait_for(gone, what="the SyncSecret and copy of the deleted Secret gone")


async def test_gateway_certificate_refs_are_synced(
    agent, tenant, tenant_setup, services_ns, tkube, mgmt, tmp_path
):
    ns = tenant_setup.namespace
    listeners = [
        {"name": "https", "port": 443, "protocol": "HTTPS", "hostname": "shop.example",
         "tls": {"mode": "Terminate", "certificateRefs": [{"name": "gw-tls"}]}},
        {"name": "http", "port": 80, "protocol": "HTTP"},
    ]  # fmt: skip
    async with secret_sync_agent(
        agent, tenant, tkube, tmp_path, enable_gateway_api=True
    ) as running:
        await tkube.create(resources.GATEWAYS,
                           {"metadata": {"name": "kubelb"},
                            "spec": {"gatewayClassName": "kubelb", "listeners": listeners}},
                           namespace=services_ns)  # fmt: skip
        # Another Gateway (not served: CE serves the one named kubelb) names another Secret.
        await tkube.create(resources.GATEWAYS,
                           {"metadata": {"name": "elsewhere"},
                            "spec": {"gatewayClassName": "kubelb", "listeners": [
                                {**listeners[0], "tls": {"certificateRefs": [
                                    {"name": "other-tls"}]}}]}},
                           namespace=services_ns)  # fmt: skip
        for name in ("gw-tls", "other-tls"):
            await tkube.create(resources.SECRETS, secret(name, {"tls.crt": "c", "tls.key": "k"},
                                                         labelled=False),
                               namespace=services_ns)  # fmt: skip
        ss = await sync_secret(tkube, services_ns, "gw-tls", "the SyncSecret of the certificateRef")
        await copy_of(mgmt, ns, ss, {"tls.crt": "c", "tls.key": "k"})
        await idle(running.secret_controller, what="the secret controller settled")
        assert await find(tkube, SS, services_ns, "other-tls") is None
        assert await management_origins(mgmt, ns) == {"gw-tls"}

        await tkube.delete(resources.GATEWAYS, "kubelb", namespace=services_ns)

        async def gone():
            return (await find(tkube, SS, services_ns, "gw-tls") is None
                    and await find(mgmt, SS, ns, objects.uid(ss)) is None)  # fmt: skip

        await wait_for(gone, what="the copies gone with the Gateway")


async def test_https_backend_ca_secret_is_synced_while_a_served_source_uses_the_service(
    agent, tenant, tenant_setup, services_ns, tkube, mgmt, tmp_path
):
    """`kubelb.k8c.io/backend-tls-ca-secret` on a Service a served Ingress routes to."""
    ns = tenant_setup.namespace
    verify = {"kubelb.k8c.io/backend-tls-policy": "Verify",
              "kubelb.k8c.io/backend-tls-ca-secret": "web-ca"}  # fmt: skip
    async with secret_sync_agent(agent, tenant, tkube, tmp_path) as running:
        await tkube.create(resources.SECRETS, secret("web-ca", {"ca.crt": "CA"}, labelled=False),
                           namespace=services_ns)  # fmt: skip
        # Annotated, but no served source uses it yet.
        await tkube.create(resources.SERVICES,
                           backend_service("web", {"port": 443}) | {"metadata": {
                               "name": "web", "annotations": verify}},
                           namespace=services_ns)  # fmt: skip
        await idle(running.secret_controller, what="the secret controller settled")
        assert await find(tkube, SS, services_ns, "web-ca") is None

        await tkube.create(resources.INGRESSES,
                           ingress("shop", ingress_rule("shop.example", ("/", "web", 443))),
                           namespace=services_ns)  # fmt: skip
        ss = await sync_secret(tkube, services_ns, "web-ca", "the SyncSecret of the backend's CA")
        await copy_of(mgmt, ns, ss, {"ca.crt": "CA"})

        # The Service no longer verifies: the CA is no longer named.
        await tkube.patch(resources.SERVICES, "web",
                          {"metadata": {"annotations": dict.fromkeys(verify)}},
                          namespace=services_ns)  # fmt: skip

        async def gone():
            return (await find(tkube, SS, services_ns, "web-ca") is None
                    and await find(mgmt, SS, ns, objects.uid(ss)) is None)  # fmt: skip

        await wait_for(gone, what="the CA's copies gone")


async def test_cross_namespace_certificate_ref_needs_a_reference_grant(
    agent, tenant, tenant_setup, services_ns, tkube, mgmt, tmp_path
):
    """Gateway API's rule on the real API server: refused (RefNotPermitted Event, nothing
    synced) until a ReferenceGrant in the Secret's namespace allows it; synced while it does."""
    ns = tenant_setup.namespace
    certs = await tenant.create_namespace("certs")
    grant = {
        "metadata": {"name": "gateways-of-" + services_ns},
        "spec": {"from": [{"group": "gateway.networking.k8s.io", "kind": "Gateway",
                           "namespace": services_ns}],
                 "to": [{"group": "", "kind": "Secret", "name": "shared-tls"}]},
    }  # fmt: skip
    ref = {"name": "shared-tls", "namespace": certs}
    listener = {"name": "https", "port": 443, "protocol": "HTTPS",
                "tls": {"certificateRefs": [ref]}}  # fmt: skip
    try:
        # Every namespace: the Secret lives outside the Gateway's.
        async with secret_sync_agent(agent, tenant, tkube, tmp_path, enable_gateway_api=True,
                                     service_namespace=None) as running:  # fmt: skip
            gw = await tkube.create(resources.GATEWAYS,
                                    {"metadata": {"name": "kubelb"},
                                     "spec": {"gatewayClassName": "kubelb",
                                              "listeners": [listener]}},
                                    namespace=services_ns)  # fmt: skip
            shared = secret("shared-tls", {"tls.crt": "c"}, labelled=False)
            await tkube.create(resources.SECRETS, shared, namespace=certs)

            async def refused():
                found = await object_events(tkube, gw)
                return any(e["reason"] == "RefNotPermitted" for e in found)

            await wait_for(refused, what="a RefNotPermitted Event on the Gateway")
            await idle(running.secret_controller, what="the secret controller settled")
            assert await find(tkube, SS, certs, "shared-tls") is None

            await tkube.create(REFERENCE_GRANTS, grant, namespace=certs)
            ss = await sync_secret(tkube, certs, "shared-tls", "the SyncSecret once granted")
            copy = await copy_of(mgmt, ns, ss, {"tls.crt": "c"})
            assert objects.labels(copy)["kubelb.k8c.io/origin-ns"] == certs

            await tkube.delete(REFERENCE_GRANTS, objects.name(grant), namespace=certs)

            async def gone():
                return (await find(tkube, SS, certs, "shared-tls") is None
                        and await find(mgmt, SS, ns, objects.uid(ss)) is None)  # fmt: skip

            await wait_for(gone, what="the copies gone with the grant")
            await tkube.delete(resources.GATEWAYS, "kubelb", namespace=services_ns)
    finally:
        await release_finalizers(tkube, certs)
        await tenant.delete_namespace(certs)
