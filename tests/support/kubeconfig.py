"""Kubeconfigs that tests write for ServiceAccounts (token from the TokenRequest API), and a
kubeconfig's server and CA read back; with `kubelb.localcluster.kubeconfig`'s admin kubeconfigs
and `write`, so tests need one module."""

from __future__ import annotations

import base64
from typing import Any

from kubernetes_asyncio import client

from kubelb.localcluster import kubeconfig as local
from kubelb.localcluster.kubeconfig import admin_config, write

__all__ = [
    "admin_config",
    "server_and_ca",
    "service_account_config",
    "token_config",
    "write",
]


def token_config(
    *, cluster: str, server: str, ca_pem: bytes, user: str, token: str, namespace: str
) -> dict[str, Any]:
    """A kubeconfig authenticating with a bearer token, defaulting to `namespace`."""
    return local.build(
        cluster=cluster,
        server=server,
        ca_pem=ca_pem,
        user=user,
        credentials={"token": token},
        namespace=namespace,
    )


def server_and_ca(config: dict[str, Any]) -> tuple[str, bytes]:
    """The server URL and CA PEM of a kubeconfig's current context."""
    context = _named(config["contexts"], config["current-context"])["context"]
    cluster = _named(config["clusters"], context["cluster"])["cluster"]
    return cluster["server"], base64.b64decode(cluster["certificate-authority-data"])


async def service_account_config(
    api: client.ApiClient,
    *,
    cluster: str,
    server: str,
    ca_pem: bytes,
    namespace: str,
    name: str,
    expiration_seconds: int = 3600,
    create: bool = True,
) -> dict[str, Any]:
    """A kubeconfig for ServiceAccount `namespace/name`, with a token from the TokenRequest API.

    `api` must be allowed to create `serviceaccounts/token` (admin is). With `create`, the
    ServiceAccount is created first if it does not exist. What the account may do is up to the
    Roles bound to it.
    """
    core = client.CoreV1Api(api)
    if create:
        await _ensure_service_account(core, namespace, name)
    request = client.AuthenticationV1TokenRequest(
        spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=expiration_seconds)
    )
    response = await core.create_namespaced_service_account_token(name, namespace, request)
    return token_config(
        cluster=cluster,
        server=server,
        ca_pem=ca_pem,
        user=f"system:serviceaccount:{namespace}:{name}",
        token=response.status.token,
        namespace=namespace,
    )


async def _ensure_service_account(core: client.CoreV1Api, namespace: str, name: str) -> None:
    body = client.V1ServiceAccount(metadata=client.V1ObjectMeta(name=name))
    try:
        await core.create_namespaced_service_account(namespace, body)
    except client.ApiException as exc:
        if exc.status != 409:
            raise


def _named(items: list[dict[str, Any]], name: str) -> dict[str, Any]:
    for item in items:
        if item["name"] == name:
            return item
    raise KeyError(f"kubeconfig has no entry named {name!r}")
