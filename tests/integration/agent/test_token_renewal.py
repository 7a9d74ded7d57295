"""The agent renews its own management token on the real API servers, while a Service keeps
changing and its LoadBalancer keeps being updated in the management cluster.

TokenRequest will not issue a token for less than 10 minutes (a fixed minimum, no API server flag
lowers it), so the renewal cycles run on 600 s tokens renewed when 99.5% of their lifetime is
left: every 3 s. A token that really expires within the test is signed here with the management
cluster's ServiceAccount key, as the API server signs its own; the server honours it until a
minute (its clock-skew leeway) after its `exp`, then answers 401.
"""

from __future__ import annotations

import base64
import contextlib
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils

from kubelb.agent import tokens
from kubelb.kube import (
    client,
    credentials,
    errors,
    kubeconfig,
    objects,
    resources,
    satokens,
    transport,
)
from kubelb.localcluster import controlplane
from kubelb.manager import tenantobjects
from tests.integration.agent.conftest import ACCOUNT
from tests.integration.agent.helpers import find, lb_service, set_lb_status, wait_for
from tests.support import kubeconfig as test_kubeconfig

pytestmark = pytest.mark.integration

SECRET = "kubelb-cluster"


@pytest.fixture
async def renewable(mgmt, tenant_setup) -> str:
    """The tenant's account may renew its own token, as the manager's Role grants it."""
    ns = tenant_setup.namespace
    name = f"{ACCOUNT}-renew"
    await mgmt.create(resources.ROLES, {"metadata": {"name": name},
                                        "rules": [tenantobjects.RENEW_OWN_TOKEN_RULE]},
                      namespace=ns)  # fmt: skip
    await mgmt.create(resources.ROLE_BINDINGS, {
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": ACCOUNT, "namespace": ns}]},
        namespace=ns)  # fmt: skip
    namespace: str = tenant_setup.namespace
    return namespace


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def mint(plane: controlplane.ControlPlane, namespace: str, uid: str, *, iat: float,
         exp: float) -> str:  # fmt: skip
    """A bound token for `namespace/kubelb-ccm` with any lifetime, signed (ES256) with the
    management cluster's ServiceAccount key."""
    assert plane.workdir is not None
    key = serialization.load_pem_private_key(
        (plane.workdir / "pki" / "sa-management.key").read_bytes(), None
    )
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    issuer = controlplane.SERVICE_ACCOUNT_ISSUER
    claims = {"iss": issuer, "aud": [issuer], "sub": f"system:serviceaccount:{namespace}:{ACCOUNT}",
              "iat": int(iat), "nbf": int(iat), "exp": int(exp),
              "kubernetes.io": {"namespace": namespace,
                                "serviceaccount": {"name": ACCOUNT, "uid": uid}}}  # fmt: skip
    signed = f"{_b64(json.dumps({'alg': 'ES256', 'typ': 'JWT'}).encode())}."
    signed += _b64(json.dumps(claims).encode())
    r, s = utils.decode_dss_signature(key.sign(signed.encode(), ec.ECDSA(hashes.SHA256())))
    return f"{signed}.{_b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


def write_config(path: Path, management, namespace: str, token: str) -> Path:
    config = test_kubeconfig.token_config(cluster="kubelb", server=management.server,
                                          ca_pem=management.ca_pem, user=ACCOUNT, token=token,
                                          namespace=namespace)  # fmt: skip
    return test_kubeconfig.write(path, config)


async def create_secret(tkube: client.Client, namespace: str, text: str) -> None:
    """The tenant-cluster Secret the agent's kubeconfig is mounted from (key kubelb)."""
    await tkube.create(resources.SECRETS, {
        "metadata": {"name": SECRET}, "data": {"kubelb": base64.b64encode(text.encode()).decode()}},
        namespace=namespace)  # fmt: skip


async def secret_text(tkube: client.Client, namespace: str) -> str:
    secret = await tkube.get(resources.SECRETS, SECRET, namespace=namespace)
    return base64.b64decode(secret["data"]["kubelb"]).decode()


@contextlib.asynccontextmanager
async def as_token(management, namespace: str, token: str) -> AsyncIterator[client.Client]:
    """A management client that sends exactly `token`."""
    endpoint = credentials.Endpoint(
        server=management.server, ca_pem=management.ca_pem,
        auth=credentials.BearerToken(token), namespace=namespace,
    )  # fmt: skip
    source = kubeconfig.FixedApi(transport.Api.connect(endpoint), owned=True)
    kube = client.Client(source, field_manager="kubelb-test")
    try:
        yield kube
    finally:
        await kube.close()


async def change_round(tkube, mgmt, services_ns, lb_ns, svc, n: int) -> None:
    """One change each way: a Service port (tenant -> management, written with the agent's
    token) and the LoadBalancer's address (management -> tenant, seen through its watch)."""
    ports = [{"name": "http", "port": 80}, {"name": f"p{n}", "port": 1000 + n}]
    await tkube.patch(resources.SERVICES, objects.name(svc), {"spec": {"ports": ports}},
                      namespace=services_ns)  # fmt: skip

    async def spec_updated():
        lb = await find(mgmt, resources.LOAD_BALANCERS, lb_ns, objects.uid(svc))
        return lb if lb and [p["port"] for p in lb["spec"]["ports"]] == [80, 1000 + n] else None

    lb = await wait_for(spec_updated, what=f"port {1000 + n} in the LoadBalancer")
    ip = f"127.0.0.{n % 250 + 1}"
    await set_lb_status(mgmt, lb, {"loadBalancer": {"ingress": [{"ip": ip}]}})

    async def status_back():
        current = await tkube.get(resources.SERVICES, objects.name(svc), namespace=services_ns)
        ingress = objects.lookup(current, "status.loadBalancer.ingress") or []
        return [i.get("ip") for i in ingress] == [ip]

    await wait_for(status_back, what=f"address {ip} in the Service status")


def management_informers_untouched(running) -> None:
    """No watch of the management cluster failed or had to list again: the token was swapped
    under them."""
    for informer in running.management_informers:
        assert (informer.lists, informer.errors) == (1, 0), informer


async def test_renews_its_token_again_and_again_while_changes_flow(
    agent, management, renewable, tenant_setup, services_ns, tkube, mgmt, tmp_path
):
    ns = renewable
    path = await management.service_account_kubeconfig(
        ns, ACCOUNT, tmp_path / "kubelb", expiration_seconds=600, create=False
    )
    original = path.read_text()
    await create_secret(tkube, services_ns, original)
    async with agent(kubelb_kubeconfig=path,
                     kubelb_kubeconfig_secret=tokens.SecretRef(services_ns, SECRET),
                     token_expiration_seconds=600, token_renew_remaining=0.995,
                     token_retry_interval=0.5) as running:  # fmt: skip
        renewer = running.renewer
        source = running.management_client.source
        assert renewer is not None
        assert isinstance(source, kubeconfig.KubeconfigFile)
        first = source.bearer_token()
        assert first is not None
        svc = await tkube.create(resources.SERVICES, lb_service("web"), namespace=services_ns)
        seen = [first]
        rounds = 0
        while renewer.renewals < 4:
            rounds += 1
            assert rounds < 500, "the agent stopped renewing its token"
            await change_round(tkube, mgmt, services_ns, ns, svc, rounds)
            current = source.bearer_token()
            if current is not None and current != seen[-1]:
                seen.append(current)
        assert len(seen) >= 3  # observed between change rounds; each a new, valid token
        claims = [satokens.claims(t) for t in seen]
        assert all(c is not None and c.subject == f"system:serviceaccount:{ns}:{ACCOUNT}"
                   for c in claims)  # fmt: skip
        await change_round(tkube, mgmt, services_ns, ns, svc, rounds + 1)
        management_informers_untouched(running)

        # Requests carry the renewed token; the file is as it was.
        current = source.bearer_token()
        assert current not in (None, first)
        api = await source.api()
        assert api.auth is not None
        assert await api.auth.authorization() == f"Bearer {current}"
        assert path.read_text() == original

        # The tenant-cluster Secret holds a renewed token, the rest of the kubeconfig unchanged.
        async def stored():
            text = await secret_text(tkube, services_ns)
            return text if kubeconfig.user_token(text) == source.bearer_token() else None

        text = await wait_for(stored, what="the renewed token in the Secret")
        assert text == kubeconfig.with_token(original, kubeconfig.user_token(text) or "")
        assert renewer.secret_writes >= 1

        # A renewed token is still only the tenant's: no token for any other account.
        for namespace, account in ((ns, "default"), ("kube-system", "default")):
            with pytest.raises(errors.ForbiddenError):
                await running.management_client.create_token(namespace, account)


async def test_keeps_working_after_its_first_token_really_expired(
    agent, control_plane, management, renewable, tenant_setup, services_ns, tkube, mgmt, tmp_path
):
    ns = renewable
    account = await mgmt.get(resources.SERVICE_ACCOUNTS, ACCOUNT, namespace=ns)
    now = time.time()
    short = mint(control_plane, ns, objects.uid(account), iat=now, exp=now + 10)
    path = write_config(tmp_path / "kubelb", management, ns, short)
    # Renewed 3 s in, as a 24 h token would be after 19.2 h (the default, 0.2 left).
    async with agent(kubelb_kubeconfig=path, token_expiration_seconds=600,
                     token_renew_remaining=0.7, token_retry_interval=0.5) as running:  # fmt: skip
        renewer = running.renewer
        assert renewer is not None
        svc = await tkube.create(resources.SERVICES, lb_service("web"), namespace=services_ns)
        rounds = 0

        async with as_token(management, ns, short) as old:

            async def rejected() -> bool:
                try:
                    await old.list(resources.LOAD_BALANCERS, namespace=ns)
                except errors.UnauthorizedError:
                    return True
                return False

            # Changes keep flowing until the API server refuses the first token.
            while not await rejected():
                rounds += 1
                assert rounds < 2000, "the first token was never rejected"
                await change_round(tkube, mgmt, services_ns, ns, svc, rounds)
        await change_round(tkube, mgmt, services_ns, ns, svc, rounds + 1)
        assert renewer.renewals >= 1
        assert running.management_client.source.bearer_token() != short
        management_informers_untouched(running)


async def test_an_expired_token_fails_the_start_with_what_to_do(
    agent, control_plane, management, renewable, tenant_setup, services_ns, tkube, mgmt, tmp_path
):
    ns = renewable
    account = await mgmt.get(resources.SERVICE_ACCOUNTS, ACCOUNT, namespace=ns)
    now = time.time()
    expired = mint(control_plane, ns, objects.uid(account), iat=now - 700, exp=now - 100)
    path = write_config(tmp_path / "kubelb", management, ns, expired)
    with pytest.raises(kubeconfig.ConfigError) as failed:
        async with agent(kubelb_kubeconfig=path):
            pass
    message = str(failed.value)
    assert "expired at" in message
    assert f"kubectl -n {ns} get secret kubelb-ccm-kubeconfig" in message

    # The Secret the file is mounted from already holds a renewed token (the kubelet has not
    # updated the file yet): the agent starts with that one.
    renewed = await mgmt.create_token(ns, ACCOUNT, expiration_seconds=600)
    text = kubeconfig.with_token(path.read_text(), renewed.token)
    assert text is not None
    await create_secret(tkube, services_ns, text)
    ref = tokens.SecretRef(services_ns, SECRET)
    async with agent(kubelb_kubeconfig=path, kubelb_kubeconfig_secret=ref) as running:
        assert running.management_client.source.bearer_token() == renewed.token
        svc = await tkube.create(resources.SERVICES, lb_service("web"), namespace=services_ns)

        async def created():
            return await find(mgmt, resources.LOAD_BALANCERS, ns, objects.uid(svc))

        await wait_for(created, what="the LoadBalancer, written with the Secret's token")


AGENT_MANIFEST = Path(__file__).parents[3] / "configs" / "deploy" / "agent.yaml"


async def test_the_shipped_rbac_lets_the_agent_store_its_renewed_token(
    agent, tenant, management, renewable, services_ns, tkube, mgmt, tmp_path
):
    """As the Deployment of `configs/deploy/agent.yaml` runs: its ServiceAccount may read and
    patch Secret kubelb/kubelb-cluster, the one named by the shipped
    --kubelb-kubeconfig-secret, and no other Secret."""
    ns = renewable
    manifest = AGENT_MANIFEST.read_text()
    assert "--kubelb-kubeconfig-secret=kubelb/kubelb-cluster" in manifest
    identity = await tenant.deployed_identity(manifest, tmp_path / "agent-identity")
    path = await management.service_account_kubeconfig(
        ns, ACCOUNT, tmp_path / "kubelb", expiration_seconds=600, create=False
    )
    original = kubeconfig.user_token(path.read_text())
    with contextlib.suppress(errors.NotFoundError):
        await tkube.delete(resources.SECRETS, SECRET, namespace="kubelb")
    await create_secret(tkube, "kubelb", path.read_text())
    try:
        async with agent(kubeconfig=identity, kubelb_kubeconfig=path,
                         kubelb_kubeconfig_secret=tokens.SecretRef("kubelb", SECRET),
                         token_expiration_seconds=600, token_renew_remaining=0.995,
                         token_retry_interval=0.5) as running:  # fmt: skip
            source = running.management_client.source
            assert isinstance(source, kubeconfig.KubeconfigFile)

            async def stored():
                held = kubeconfig.user_token(await secret_text(tkube, "kubelb"))
                return held not in (None, original) and held == source.bearer_token()

            await wait_for(stored, what="the renewed token in Secret kubelb/kubelb-cluster")
            svc = await tkube.create(resources.SERVICES, lb_service("web"), namespace=services_ns)

            async def created():
                return await find(mgmt, resources.LOAD_BALANCERS, ns, objects.uid(svc))

            await wait_for(created, what="the LoadBalancer")
            with pytest.raises(errors.ForbiddenError):
                await running.tenant_client.list(resources.SECRETS, namespace="kubelb")
    finally:
        await tkube.delete(resources.SECRETS, SECRET, namespace="kubelb")
