"""Kubeconfig files for the test control plane: admin (client certificate) and ServiceAccount
(token from the TokenRequest API).

Inputs: a server URL, the cluster CA, credentials. Outputs: self-contained kubeconfig files (all
certificates embedded, mode 0600) that kubectl, kubernetes_asyncio and kubelb itself can load.
"""

from __future__ import annotations

import base64
import logging
import os
from pathlib import Path
from typing import Any

import yaml
from kubernetes_asyncio import client

logger = logging.getLogger(__name__)


def admin_config(
    *, cluster: str, server: str, ca_pem: bytes, cert_pem: bytes, key_pem: bytes
) -> dict[str, Any]:
    """A kubeconfig authenticating with a client certificate (admin if O is system:masters)."""
    user = {"client-certificate-data": _b64(cert_pem), "client-key-data": _b64(key_pem)}
    return _config(
        cluster=cluster,
        server=server,
        ca_pem=ca_pem,
        user=f"{cluster}-admin",
        credentials=user,
        namespace="default",
    )


def token_config(
    *, cluster: str, server: str, ca_pem: bytes, user: str, token: str, namespace: str
) -> dict[str, Any]:
    """A kubeconfig authenticating with a bearer token, defaulting to `namespace`."""
    return _config(
        cluster=cluster,
        server=server,
        ca_pem=ca_pem,
        user=user,
        credentials={"token": token},
        namespace=namespace,
    )


def write(path: Path, config: dict[str, Any]) -> Path:
    """Write `config` to `path` atomically (readers never see half a file), mode 0600."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        yaml.safe_dump(config, f, sort_keys=False)
    tmp.replace(path)
    return path


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
    user = f"system:serviceaccount:{namespace}:{name}"
    return token_config(
        cluster=cluster,
        server=server,
        ca_pem=ca_pem,
        user=user,
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
    else:
        logger.debug("created ServiceAccount %s/%s", namespace, name)


def _config(
    *,
    cluster: str,
    server: str,
    ca_pem: bytes,
    user: str,
    credentials: dict[str, str],
    namespace: str,
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": cluster,
                "cluster": {"server": server, "certificate-authority-data": _b64(ca_pem)},
            },
        ],
        "users": [{"name": user, "user": credentials}],
        "contexts": [
            {
                "name": cluster,
                "context": {"cluster": cluster, "user": user, "namespace": namespace},
            },
        ],
        "current-context": cluster,
        "preferences": {},
    }


def _named(items: list[dict[str, Any]], name: str) -> dict[str, Any]:
    for item in items:
        if item["name"] == name:
            return item
    raise KeyError(f"kubeconfig has no entry named {name!r}")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
