"""Token rotation: with a short lifetime and a low rotation threshold the kubeconfig Secret gets a
new, working token; an agent reading the mounted file picks it up without a restart."""

from __future__ import annotations

import pytest

from kubelb.kube import kubeconfig, resources
from kubelb.manager import kubeconfigs, tenants
from tests.integration.kube.helpers import load_balancer
from tests.integration.tenants.conftest import until

pytestmark = pytest.mark.integration


@pytest.fixture
def tenant_settings(management_namespace):
    # TokenRequest's minimum lifetime is 600 s; rotating after 0.5% of it forces a new token
    # about every 3 s.
    return tenants.TenantControllerOptions(namespace=management_namespace,
                                           token_expiration_seconds=600,
                                           token_rotate_fraction=0.005)  # fmt: skip


def token_of(text: str) -> str:
    parts = kubeconfigs.parse_kubeconfig(text)
    assert parts is not None
    return parts.token


async def test_rotated_token_reaches_the_secret_and_works(harness):
    name = await harness.create_tenant()
    await harness.ready(name)
    ns = f"tenant-{name}"
    first = await harness.kubeconfig_text(name)
    old = kubeconfigs.token_claims(token_of(first))
    assert old is not None
    assert old.expires_at - old.issued_at == 600

    async with harness.tenant_client(name) as kube:
        await kube.create(resources.LOAD_BALANCERS, load_balancer("before"), namespace=ns)

        async def rotated():
            text = await harness.kubeconfig_text(name)
            return text if token_of(text) != token_of(first) else None

        second = await until(rotated, what="a new token in the Secret")
        new = kubeconfigs.token_claims(token_of(second))
        assert new is not None
        assert new.issued_at >= old.issued_at
        assert new.service_account_uid == old.service_account_uid
        # Only the token changed.
        assert second.replace(token_of(second), "T") == first.replace(token_of(first), "T")

        # The kubelet updates a mounted Secret in place; the agent's client follows the file.
        source = kube.source
        assert isinstance(source, kubeconfig.KubeconfigFile)
        (harness.tmp_path / f"{name}.kubeconfig").write_text(second)

        async def reloaded():
            await kube.list(resources.LOAD_BALANCERS, namespace=ns)
            return source.reloads >= 1

        await until(reloaded, what="the client to load the new kubeconfig")
        api = await source.api()
        assert api.auth is not None
        assert await api.auth.authorization() == f"Bearer {token_of(second)}"
        await kube.create(resources.LOAD_BALANCERS, load_balancer("after"), namespace=ns)
        await kube.delete(resources.LOAD_BALANCERS, "before", namespace=ns)
        await kube.delete(resources.LOAD_BALANCERS, "after", namespace=ns)

    async def rotation_event():
        events = await harness.kube.list(resources.EVENTS, namespace="default",
                                         field_selector=f"involvedObject.name={name}")  # fmt: skip
        return [e for e in events.items if e["reason"] == "TokenRotated"]

    (event,) = await until(rotation_event, what="a TokenRotated Event on the Tenant")
    assert event["involvedObject"]["kind"] == "Tenant"
    assert harness.reconciler.tokens_issued >= 2
