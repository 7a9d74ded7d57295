"""Kubeconfig files for the local control plane.

Inputs: a server URL, the cluster CA, credentials. Outputs: self-contained kubeconfig files (all
certificates embedded, mode 0600) that kubectl, kubernetes_asyncio and kubelb itself can load.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

import yaml


def admin_config(
    *, cluster: str, server: str, ca_pem: bytes, cert_pem: bytes, key_pem: bytes
) -> dict[str, Any]:
    """A kubeconfig authenticating with a client certificate (admin if O is system:masters)."""
    user = {"client-certificate-data": _b64(cert_pem), "client-key-data": _b64(key_pem)}
    return build(
        cluster=cluster,
        server=server,
        ca_pem=ca_pem,
        user=f"{cluster}-admin",
        credentials=user,
        namespace="default",
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


def build(
    *,
    cluster: str,
    server: str,
    ca_pem: bytes,
    user: str,
    credentials: dict[str, str],
    namespace: str,
) -> dict[str, Any]:
    """A kubeconfig with one cluster, user and context (named `cluster`), current."""
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


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
