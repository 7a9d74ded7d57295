"""The tenant kubeconfig: where the agent reaches the management API server, and with which token.

Pure. Inputs: raw objects (the `kube-public/cluster-info` ConfigMap, the `default/kubernetes`
EndpointSlice, a namespace's `kube-root-ca.crt` ConfigMap), the manager's own server URL and CA,
and ServiceAccount tokens. Outputs: the resolved server URL and CA (`resolve_server`), the
kubeconfig text stored in Secret `kubelb-ccm-kubeconfig` (`desired_kubeconfig`), what an existing
kubeconfig holds (`parse_kubeconfig`), and when its token must be replaced (`token_claims`,
`rotation_time`).

Server URL order (as upstream): an explicit override, then the server of the cluster-info
ConfigMap's kubeconfig, then the https port of the `kubernetes` EndpointSlice, then the server the
manager itself talks to. The CA follows: the override's, cluster-info's own CA when the server came
from there, else the cluster root CA published in the tenant namespace, else the manager's.

Token lifetimes are read from the token itself (a JWT's `iat`/`exp` claims), so nothing is kept
anywhere but the Secret, and a restarted manager knows when to rotate.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import yaml

from kubelb.kube import satokens

logger = logging.getLogger(__name__)

SECRET_NAME = "kubelb-ccm-kubeconfig"
SECRET_KEY = "kubelb"
CLUSTER_NAME = "kubelb"
USER_NAME = "kubelb-ccm"

CLUSTER_INFO_NAMESPACE = "kube-public"
CLUSTER_INFO_NAME = "cluster-info"
KUBERNETES_SLICE_NAMESPACE = "default"
KUBERNETES_SLICE_NAME = "kubernetes"
ROOT_CA_CONFIG_MAP = "kube-root-ca.crt"
ROOT_CA_KEY = "ca.crt"


class TokenMode(StrEnum):
    """Which token a tenant kubeconfig carries (manager flag --tenant-token)."""

    BOUND = "bound"  # TokenRequest: expires, rotated here and renewed by the agent itself
    LONG_LIVED = "long-lived"  # upstream's: a kubernetes.io/service-account-token Secret


class ServerSource(StrEnum):
    OVERRIDE = "override"
    CLUSTER_INFO = "cluster-info"
    ENDPOINT_SLICE = "endpointslice"
    MANAGER = "manager"


@dataclass(frozen=True, slots=True)
class Server:
    url: str
    ca_pem: bytes
    source: ServerSource


@dataclass(frozen=True, slots=True)
class KubeconfigParts:
    """What a tenant kubeconfig (as `desired_kubeconfig` writes it) holds."""

    server: str
    ca_pem: bytes
    token: str
    namespace: str


@dataclass(frozen=True, slots=True)
class TokenClaims:
    issued_at: float  # seconds since the epoch
    expires_at: float
    subject: str  # system:serviceaccount:<namespace>:<name>
    service_account_uid: str


def resolve_server(
    *,
    override: str | None,
    override_ca_pem: bytes | None,
    cluster_info: Mapping[str, Any] | None,
    endpoint_slice: Mapping[str, Any] | None,
    root_ca: Mapping[str, Any] | None,
    manager_url: str,
    manager_ca_pem: bytes,
) -> Server:
    """The server URL and CA to put in a tenant kubeconfig (see the module docstring)."""
    fallback_ca = ca_from_root_ca(root_ca) or manager_ca_pem
    if override:
        return Server(override, override_ca_pem or fallback_ca, ServerSource.OVERRIDE)
    from_info = server_from_cluster_info(cluster_info)
    if from_info is not None:
        url, ca = from_info
        return Server(url, ca or fallback_ca, ServerSource.CLUSTER_INFO)
    from_slice = server_from_endpoint_slice(endpoint_slice)
    if from_slice is not None:
        return Server(from_slice, fallback_ca, ServerSource.ENDPOINT_SLICE)
    return Server(manager_url, fallback_ca, ServerSource.MANAGER)


def server_from_cluster_info(config_map: Mapping[str, Any] | None) -> tuple[str, bytes] | None:
    """(server, CA PEM or b"") from the cluster-info ConfigMap's `kubeconfig`, or None."""
    if config_map is None:
        return None
    text = (config_map.get("data") or {}).get("kubeconfig")
    if not isinstance(text, str):
        return None
    try:
        document = yaml.safe_load(text)
        clusters = document["clusters"]
        cluster = clusters[0]["cluster"]
        server = cluster["server"]
    except (yaml.YAMLError, KeyError, IndexError, TypeError) as exc:
        logger.warning("%s/%s: data.kubeconfig is not a usable kubeconfig (%s); ignoring it",
                       CLUSTER_INFO_NAMESPACE, CLUSTER_INFO_NAME, exc)  # fmt: skip
        return None
    if not isinstance(server, str) or not server:
        return None
    return server, _b64decode(cluster.get("certificate-authority-data"))


def server_from_endpoint_slice(endpoint_slice: Mapping[str, Any] | None) -> str | None:
    """`https://<first ready address>:<port named https>` of the `kubernetes` EndpointSlice."""
    if endpoint_slice is None:
        return None
    port = next((p.get("port") for p in endpoint_slice.get("ports") or ()
                 if p.get("name") == "https" and isinstance(p.get("port"), int)), None)  # fmt: skip
    if port is None:
        return None
    for endpoint in endpoint_slice.get("endpoints") or ():
        if (endpoint.get("conditions") or {}).get("ready") is False:
            continue
        for address in endpoint.get("addresses") or ():
            return f"https://{_host(str(address))}:{port}"
    return None


def ca_from_root_ca(config_map: Mapping[str, Any] | None) -> bytes:
    """The cluster CA a namespace's `kube-root-ca.crt` ConfigMap publishes (b"" if none)."""
    if config_map is None:
        return b""
    value = (config_map.get("data") or {}).get(ROOT_CA_KEY)
    return value.encode() if isinstance(value, str) else b""


def desired_kubeconfig(*, server: str, ca_pem: bytes, token: str, namespace: str) -> str:
    """The kubeconfig text for a tenant (deterministic for the same inputs)."""
    cluster: dict[str, str] = {"server": server}
    if ca_pem:
        cluster["certificate-authority-data"] = base64.b64encode(ca_pem).decode()
    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": CLUSTER_NAME, "cluster": cluster}],
        "users": [{"name": USER_NAME, "user": {"token": token}}],
        "contexts": [{"name": CLUSTER_NAME, "context": {
            "cluster": CLUSTER_NAME, "user": USER_NAME, "namespace": namespace}}],
        "current-context": CLUSTER_NAME,
        "preferences": {},
    }  # fmt: skip
    text: str = yaml.safe_dump(document, sort_keys=False)
    return text


def parse_kubeconfig(text: str) -> KubeconfigParts | None:
    """The parts of a kubeconfig's current context, or None if it is not one we can read."""
    try:
        document = yaml.safe_load(text)
        current = document["current-context"]
        context = _named(document["contexts"], current)["context"]
        cluster = _named(document["clusters"], context["cluster"])["cluster"]
        user = _named(document["users"], context["user"])["user"]
        return KubeconfigParts(
            server=str(cluster["server"]),
            ca_pem=_b64decode(cluster.get("certificate-authority-data")),
            token=str(user["token"]),
            namespace=str(context.get("namespace") or ""),
        )
    except (yaml.YAMLError, KeyError, IndexError, TypeError):
        return None


def token_claims(token: str) -> TokenClaims | None:
    """The claims of a bound ServiceAccount JWT (not verified: the API server does that), or
    None when `token` is not a JWT with `iat`, `exp` and a ServiceAccount subject."""
    read = satokens.claims(token)
    if read is None or read.issued_at is None or read.expires_at is None:
        return None
    return TokenClaims(read.issued_at, read.expires_at, read.subject, read.service_account_uid)


def service_account_subject(namespace: str, name: str) -> str:
    return f"system:serviceaccount:{namespace}:{name}"


def rotation_time(claims: TokenClaims, rotate_fraction: float) -> float:
    """When a token should be replaced: after `rotate_fraction` of its lifetime."""
    return claims.issued_at + rotate_fraction * (claims.expires_at - claims.issued_at)


def _host(address: str) -> str:
    try:
        return f"[{address}]" if ipaddress.ip_address(address).version == 6 else address
    except ValueError:
        return address


def _b64decode(value: object) -> bytes:
    if not isinstance(value, str) or not value:
        return b""
    try:
        return base64.b64decode(value, validate=True)
    except (ValueError, binascii.Error):
        return b""


def _named(items: list[dict[str, Any]], name: str) -> dict[str, Any]:
    for item in items:
        if item["name"] == name:
            return item
    raise KeyError(name)
