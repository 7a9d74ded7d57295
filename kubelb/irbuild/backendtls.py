"""Whether the hub speaks TLS to a Route's backend (HTTPS backends), and how. Pure.

The ask, as users write it:
- the Service's `kubelb.k8c.io/backend-tls-policy: Insecure | Verify` (upstream EE's
  annotation): TLS to every port of the Service, accepting any certificate (Insecure) or
  checking it (Verify) against the CA of the Secret `kubelb.k8c.io/backend-tls-ca-secret`
  names (same namespace, key `ca.crt`; synced to the management cluster like any TLS Secret);
- a Service port's `appProtocol: https` (or `kubernetes.io/https`), or the Ingress's
  `nginx.ingress.kubernetes.io/backend-protocol: HTTPS | GRPCS`: TLS without verification
  unless the Service's policy says Verify. GRPCS (and GRPC) also make the upstream HTTP/2.
`kubelb.k8c.io/backend-tls-sni` on the Service sets the server name sent, which Verify then
also requires the certificate to carry; without it only the chain is checked.

Verify without a usable CA is refused (the backend is not served: 503) rather than weakened.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from kubelb.api import annotations as keys, labels
from kubelb.ir import proxy

INSECURE = "insecure"
VERIFY = "verify"
CA_KEY = "ca.crt"
HTTPS_APP_PROTOCOLS = frozenset({"https", "kubernetes.io/https"})
TLS_BACKEND_PROTOCOLS = frozenset({"HTTPS", "GRPCS"})
HTTP2_BACKEND_PROTOCOLS = frozenset({"GRPC", "GRPCS"})


@dataclass(frozen=True, slots=True)
class Ask:
    tls: proxy.UpstreamTLS | None = None
    http2: bool = False  # the Ingress asks for gRPC: HTTP/2 upstream
    problem: str | None = None  # the backend cannot be served as asked


def ask(
    service: Mapping[str, Any],
    port: Mapping[str, Any],
    namespace: str,
    *,
    backend_protocol: str | None = None,
    ca_bundles: Mapping[str, str],
) -> Ask:
    """What `port` of `service` (in tenant namespace `namespace`) asks for; `backend_protocol`
    is the Ingress's annotation value; `ca_bundles` maps "namespace/name" of a tenant Secret
    to its `ca.crt`."""
    metadata = service.get("metadata")
    found = metadata.get("annotations") if isinstance(metadata, Mapping) else None
    notes = found if isinstance(found, Mapping) else {}
    protocol = (backend_protocol or "").strip().upper()
    http2 = protocol in HTTP2_BACKEND_PROTOCOLS
    policy = str(notes.get(keys.BACKEND_TLS_POLICY) or "").strip().lower()
    if policy not in ("", INSECURE, VERIFY):
        return Ask(http2=http2, problem=(
            f"{keys.BACKEND_TLS_POLICY} {notes.get(keys.BACKEND_TLS_POLICY)!r} "
            "is not Insecure or Verify"))  # fmt: skip
    app_protocol = str(port.get("appProtocol") or "").lower()
    if (
        not policy
        and app_protocol not in HTTPS_APP_PROTOCOLS
        and (protocol not in TLS_BACKEND_PROTOCOLS)
    ):
        return Ask(http2=http2)
    sni = str(notes.get(keys.BACKEND_TLS_SNI) or "").strip().lower().rstrip(".") or None
    if policy != VERIFY:
        return Ask(proxy.UpstreamTLS(sni=sni, verify=False), http2=http2)
    secret = str(notes.get(keys.BACKEND_TLS_CA_SECRET) or "").strip()
    if not secret:
        return Ask(http2=http2, problem=(
            f"{keys.BACKEND_TLS_POLICY} Verify needs "
            f"{keys.BACKEND_TLS_CA_SECRET}"))  # fmt: skip
    bundle = ca_bundles.get(f"{namespace}/{secret}")
    if not bundle or "-----BEGIN CERTIFICATE-----" not in bundle:
        return Ask(http2=http2, problem=(
            f"the CA Secret {namespace}/{secret} has no {CA_KEY} in the management cluster "
            "(is it synced?)"))  # fmt: skip
    return Ask(proxy.UpstreamTLS(sni=sni, ca_pem=bundle), http2=http2)


def ca_bundles(namespace: str, secrets: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """`build_tenant_routes`'s `ca_bundles` from the Secrets of tenant namespace `namespace` in
    the management cluster: each synced one (origin labels) with a `ca.crt`, keyed by its
    origin "namespace/name"; the first by name wins when two claim one origin."""
    out: dict[str, str] = {}
    for raw in sorted(secrets, key=lambda r: str((r.get("metadata") or {}).get("name") or "")):
        metadata = raw.get("metadata") or {}
        if metadata.get("namespace") != namespace or metadata.get("deletionTimestamp"):
            continue
        found = metadata.get("labels") or {}
        origin = (found.get(labels.ORIGIN_NAMESPACE), found.get(labels.ORIGIN_NAME))
        value = (raw.get("data") or {}).get(CA_KEY)
        if not all(origin) or not isinstance(value, str):
            continue
        try:
            bundle = base64.b64decode(value, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            continue
        out.setdefault(f"{origin[0]}/{origin[1]}", bundle)
    return out
