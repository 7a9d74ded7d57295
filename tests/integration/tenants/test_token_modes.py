"""`--tenant-token=long-lived` (upstream's token): the kubeconfig carries the never-expiring token
of a `kubernetes.io/service-account-token` Secret that the token controller fills in, and the
tenant gets no TokenRequest. Switching back to bound tokens deletes that Secret, which revokes
the token."""

from __future__ import annotations

import dataclasses

import pytest

from kubelb.kube import errors, objects, resources, satokens
from kubelb.manager import kubeconfigs, tenantobjects, tenants
from tests.integration.tenants.conftest import find, until

pytestmark = pytest.mark.integration

Key = objects.ObjectKey
CCM = "kubelb-ccm"


@pytest.fixture
def tenant_settings(management_namespace):
    return tenants.TenantControllerOptions(namespace=management_namespace, pending_interval=0.5,
                                           token_mode=kubeconfigs.TokenMode.LONG_LIVED)  # fmt: skip


def token_of(text: str) -> str:
    parts = kubeconfigs.parse_kubeconfig(text)
    assert parts is not None
    return parts.token


async def test_long_lived_token_and_back_to_bound(harness):
    kube = harness.kube
    name = await harness.create_tenant()
    tenant = await harness.ready(name)
    ns = f"tenant-{name}"

    secret = await kube.get(resources.SECRETS, CCM, namespace=ns)
    assert secret["type"] == "kubernetes.io/service-account-token"
    assert [r["uid"] for r in objects.owner_references(secret)] == [objects.uid(tenant)]
    long_lived = tenantobjects.secret_value(secret, "token")
    assert long_lived
    assert token_of(await harness.kubeconfig_text(name)) == long_lived
    read = satokens.claims(long_lived)
    assert read is not None
    assert (read.subject, read.expires_at) == (f"system:serviceaccount:{ns}:{CCM}", None)
    role = await kube.get(resources.ROLES, CCM, namespace=ns)
    assert role["rules"] == tenantobjects.role_rules(renew_token=False)
    # Nothing to rotate: not requeued.
    assert (await harness.reconciler.reconcile(Key("", name))).requeue_after is None
    assert harness.reconciler.tokens_issued == 0

    async with harness.tenant_client(name) as agent:
        await agent.list(resources.LOAD_BALANCERS, namespace=ns)
        with pytest.raises(errors.ForbiddenError):
            await agent.create_token(ns, CCM, expiration_seconds=600)

        harness.reconciler.options = dataclasses.replace(
            harness.settings, token_mode=kubeconfigs.TokenMode.BOUND
        )
        await harness.reconciler.reconcile(Key("", name))
        assert await find(kube, resources.SECRETS, CCM, ns) is None
        bound = token_of(await harness.kubeconfig_text(name))
        bound_claims = satokens.claims(bound)
        assert bound_claims is not None
        assert bound_claims.expires_at is not None
        role = await kube.get(resources.ROLES, CCM, namespace=ns)
        assert role["rules"] == tenantobjects.role_rules(renew_token=True)

        # The deleted Secret revokes the long-lived token (once the API server's token cache
        # has let go of it).
        async def revoked():
            try:
                await agent.list(resources.LOAD_BALANCERS, namespace=ns)
            except errors.UnauthorizedError:
                return True
            return False

        await until(revoked, what="the long-lived token to be rejected")
    async with harness.tenant_client(name) as agent:
        await agent.list(resources.LOAD_BALANCERS, namespace=ns)
        await agent.create_token(ns, CCM, expiration_seconds=600)
