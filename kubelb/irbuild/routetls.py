"""TLS of a tenant's Routes: the Secret a reference names, whether it can be served, and the
certificates of an HTTPS listener. Pure: the clock is the caller's (`now`).

Resolution: an Ingress `tls[].secretName` or a Gateway listener's
`certificateRefs` names a Secret in the tenant cluster; the agent syncs it (as a SyncSecret) and
the manager writes it into the tenant namespace under the SyncSecret's UID, labelled
`kubelb.k8c.io/origin-ns` and `kubelb.k8c.io/origin-name` after the original. A reference
resolves to the Secret of the tenant namespace whose labels name its namespace and name. A
Secret labelled with an origin name only (as standalone files give them: written straight into
the tenant namespace) answers references by that name from any namespace.

A Secret serves when its `tls.crt` and `tls.key` parse, the key belongs to the certificate and
the certificate is valid now (`ir.tls.secret_problems`). The IR secret is named
`<tenant namespace>/<Secret name>`: stable while the Secret's content rotates.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kubelb.api import labels
from kubelb.ir import proxy, tls


@dataclass(frozen=True, slots=True)
class Certificates:
    """The Secrets a tenant's TLS references may name, indexed, and the time to judge them."""

    by_origin: Mapping[tuple[str, str], Mapping[str, Any]] = field(default_factory=dict)
    by_name: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    namespace: str = ""
    now: float = 0.0

    def resolve(self, namespace: str, name: str) -> tls.TLSSecret | str:
        """The IR secret a reference from source namespace `namespace` names, or why it
        cannot be served."""
        raw = self.by_origin.get((namespace, name)) or self.by_name.get(name)
        if raw is None:
            return f"Secret {namespace}/{name} is not synced to the management cluster"
        secret = to_ir(self.namespace, raw)
        problems = tls.secret_problems(secret, self.now)
        if problems:
            return f"Secret {namespace}/{name}: {'; '.join(problems)}"
        return secret


NONE = Certificates()


def index(namespace: str, secrets: Iterable[Mapping[str, Any]], now: float) -> Certificates:
    """`secrets`: raw Secret objects of tenant namespace `namespace` (others are ignored)."""
    by_origin: dict[tuple[str, str], Mapping[str, Any]] = {}
    by_name: dict[str, Mapping[str, Any]] = {}
    for raw in sorted(secrets, key=_name):
        metadata = raw.get("metadata") or {}
        if metadata.get("namespace") != namespace or metadata.get("deletionTimestamp"):
            continue
        found = metadata.get("labels") or {}
        origin_name = found.get(labels.ORIGIN_NAME)
        if not origin_name:
            continue
        origin_ns = found.get(labels.ORIGIN_NAMESPACE)
        if origin_ns:
            by_origin.setdefault((str(origin_ns), str(origin_name)), raw)
        else:
            by_name.setdefault(str(origin_name), raw)
    return Certificates(by_origin, by_name, namespace, now)


def next_change(namespace: str, secrets: Iterable[Mapping[str, Any]], now: float) -> float | None:
    """The first moment after `now` when one of `secrets` becomes valid or expires (a build
    judged at `now` is stale from then on); None when none will."""
    moments: list[float] = []
    for raw in secrets:
        secret = to_ir(namespace, raw)
        info = tls.inspect(secret.certificate_chain, secret.private_key)
        if not isinstance(info, str):
            moments.extend(t for t in (info.not_before, info.not_after) if t > now)
    return min(moments, default=None)


def to_ir(namespace: str, raw: Mapping[str, Any]) -> tls.TLSSecret:
    """The IR form of a raw Secret (missing or undecodable keys become empty text, which
    validation reports)."""
    data = raw.get("data") or {}
    return tls.TLSSecret(
        name=f"{namespace}/{_name(raw)}",
        certificate_chain=_decoded(data.get(tls.CERT_KEY)),
        private_key=_decoded(data.get(tls.PRIVATE_KEY_KEY)),
    )


def covers(server_name: str, host: str) -> bool:
    """A certificate for `server_name` serves requests for virtual host domain `host`: the
    same name, or a `*.suffix` covering it (a wildcard host only by the same wildcard)."""
    if server_name == host:
        return True
    return server_name.startswith("*.") and (
        not host.startswith("*") and host.endswith(server_name[1:])
    )


def https_hosts(
    virtual_hosts: Iterable[proxy.VirtualHost], certificates: Iterable[proxy.ServerCertificate]
) -> tuple[proxy.VirtualHost, ...]:
    """The virtual hosts an HTTPS listener with `certificates` serves: those some certificate
    covers (all of them under a default certificate)."""
    certs = list(certificates)
    if any(not c.server_names for c in certs):
        return tuple(virtual_hosts)
    names = [n for c in certs for n in c.server_names]
    return tuple(vh for vh in virtual_hosts if any(covers(n, d) for n in names for d in vh.domains))


def _name(raw: Mapping[str, Any]) -> str:
    return str((raw.get("metadata") or {}).get("name") or "")


def _decoded(value: Any) -> str:
    if not isinstance(value, str):
        return ""
    try:
        return base64.b64decode(value, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return ""
