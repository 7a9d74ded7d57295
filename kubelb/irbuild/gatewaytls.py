"""TLS of the served Gateway's listeners. Pure.

HTTPS (`tls.mode: Terminate`, the default): the first of `certificateRefs` (a core Secret,
namespace defaulting to the Gateway's) resolves as Ingress TLS does (`routetls`). A reference
that does not resolve, or a Secret that cannot serve, sets the listener's ResolvedRefs False
(InvalidCertificateRef), leaves it unprogrammed and is reported on the Gateway's Route; the
Gateway's other listeners, on the same port too, keep serving.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from kubelb.irbuild import routecontext


class Listener(Protocol):
    """What this module reads and sets of a `gatewayapi.Listener`."""

    name: str
    accepted: tuple[bool, str, str]
    resolved: tuple[bool, str, str]
    secret: str | None


INVALID_CERTIFICATE_REF = "InvalidCertificateRef"
INVALID_MODE = "UnsupportedValue"


def certify(
    tenant: routecontext.Tenant,
    gateway: routecontext.Report,
    li: Listener,
    tls: Any,
) -> None:
    """Give HTTPS listener `li` its certificate (`li.secret`), or say why it has none."""
    where = f"listener {li.name!r}"
    settings: Mapping[str, Any] = tls if isinstance(tls, Mapping) else {}
    mode = settings.get("mode") or "Terminate"
    if mode != "Terminate":
        why = f"an HTTPS listener terminates TLS (tls.mode {mode!r})"
        li.accepted = (False, INVALID_MODE, why)
        gateway.problem(f"{where}: {why}: not served")
        return
    refs = [r for r in settings.get("certificateRefs") or () if isinstance(r, Mapping)]
    if not refs:
        _refuse(gateway, li, "no certificateRefs")
        return
    ref = refs[0]
    if (ref.get("group") or "") != "" or (ref.get("kind") or "Secret") != "Secret":
        _refuse(gateway, li, "a certificateRef must name a core Secret")
        return
    namespace = str(ref.get("namespace") or gateway.source_namespace)
    resolved = tenant.certificate(namespace, str(ref.get("name") or ""))
    if isinstance(resolved, str):
        _refuse(gateway, li, resolved)
        return
    li.secret = resolved.name


def _refuse(gateway: routecontext.Report, li: Listener, why: str) -> None:
    li.resolved = (False, INVALID_CERTIFICATE_REF, why)
    gateway.problem(f"listener {li.name!r}: {why}: not served")
