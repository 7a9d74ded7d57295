"""A ServiceAccount kubeconfig minted through TokenRequest is limited by its Role (RBAC is on)."""

from __future__ import annotations

import json

import pytest
import yaml
from kubernetes_asyncio import client, config

pytestmark = pytest.mark.integration


def _message(exc: client.ApiException) -> str:
    message: str = json.loads(exc.body or b"")["message"]
    return message


async def _grant_configmaps(api: client.ApiClient, namespace: str, account: str) -> None:
    rbac = client.RbacAuthorizationV1Api(api)
    role = client.V1Role(
        metadata=client.V1ObjectMeta(name="configmaps"),
        rules=[
            client.V1PolicyRule(
                api_groups=[""], resources=["configmaps"], verbs=["get", "list", "watch", "create"]
            )
        ],
    )
    await rbac.create_namespaced_role(namespace, role)
    binding = client.V1RoleBinding(
        metadata=client.V1ObjectMeta(name="configmaps"),
        role_ref=client.V1RoleRef(
            api_group="rbac.authorization.k8s.io", kind="Role", name="configmaps"
        ),
        subjects=[client.RbacV1Subject(kind="ServiceAccount", name=account, namespace=namespace)],
    )
    await rbac.create_namespaced_role_binding(namespace, binding)


async def test_service_account_is_denied_outside_its_namespace(
    management, management_api, tmp_path
):
    own = await management.create_namespace("rbac-own")
    other = await management.create_namespace("rbac-other")
    try:
        await _grant_configmaps(management_api, own, "agent")
        path = await management.service_account_kubeconfig(
            own, "agent", tmp_path / "agent.kubeconfig"
        )
        kubeconfig = yaml.safe_load(path.read_text())
        assert kubeconfig["users"][0]["name"] == f"system:serviceaccount:{own}:agent"
        assert "token" in kubeconfig["users"][0]["user"]

        settings = client.Configuration()
        await config.load_kube_config(config_file=str(path), client_configuration=settings)
        async with client.ApiClient(settings) as api:
            core = client.CoreV1Api(api)
            # Allowed by the Role, in its namespace (RBAC can grant, so a 403 below means RBAC).
            await core.create_namespaced_config_map(
                own, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="mine"))
            )
            listed = await core.list_namespaced_config_map(own)
            assert "mine" in {cm.metadata.name for cm in listed.items}

            with pytest.raises(client.ApiException) as other_ns:
                await core.list_namespaced_config_map(other)
            assert other_ns.value.status == 403
            assert f'in the namespace "{other}"' in _message(other_ns.value)

            with pytest.raises(client.ApiException) as secrets:
                await core.list_namespaced_secret(own)
            assert secrets.value.status == 403

            with pytest.raises(client.ApiException) as nodes:
                await core.list_node()
            assert nodes.value.status == 403
            assert "at the cluster scope" in _message(nodes.value)
    finally:
        await management.delete_namespace(own)
        await management.delete_namespace(other)


async def test_token_of_one_cluster_is_not_accepted_by_the_other(
    management, tenant, tenant_namespace, tmp_path
):
    path = await tenant.service_account_kubeconfig(tenant_namespace, "probe", tmp_path / "k")
    token = yaml.safe_load(path.read_text())["users"][0]["user"]["token"]
    settings = client.Configuration(host=management.server)
    settings.ssl_ca_cert = str(management.ca_file)
    settings.api_key = {"BearerToken": token}
    settings.api_key_prefix = {"BearerToken": "Bearer"}
    async with client.ApiClient(settings) as api:
        with pytest.raises(client.ApiException) as caught:
            await client.CoreV1Api(api).list_namespaced_config_map("default")
    assert caught.value.status == 401
