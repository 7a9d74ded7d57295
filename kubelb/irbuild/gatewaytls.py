"""TLS of the served Gateway's listeners. Pure.

HTTPS (`tls.mode: Terminate`, the default): the first of `certificateRefs` (a core Secret,
namespace defaulting to the Gateway's) resolves as Ingress TLS does (`routetls`). A reference
that does not resolve, or a Secret that cannot serve, sets the listener's ResolvedRefs False
(InvalidCertificateRef), leaves it unprogrammed and is reported on the Gateway's Route; the
Gateway's other listeners, on the same port too, keep serving.

TLS (`tls.mode: Passthrough`): TLSRoutes attach as HTTPRoutes do (parentRef, hostnames); each
becomes an SNI route to its Services (TCP clusters, by weight), matched by its hostnames (else
its listener's); TLS is not terminated. A server name goes to the oldest route naming it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from kubelb.ir import proxy
from kubelb.irbuild import gatewayroutes, routebackends, routecontext
from kubelb.util import naming


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


PASSTHROUGH = "Passthrough"
TLS_ROUTE = "TLSRoute"


def passthrough(gateway: routecontext.Report, li: Listener, tls: Any) -> bool:
    """A TLS listener serves `tls.mode: Passthrough` only; says why not otherwise."""
    settings: Mapping[str, Any] = tls if isinstance(tls, Mapping) else {}
    mode = settings.get("mode") or "Terminate"
    if mode == PASSTHROUGH:
        return True
    why = f"a TLS listener passes TLS through (tls.mode {mode!r} is not supported)"
    li.accepted = (False, INVALID_MODE, why)
    gateway.problem(f"listener {li.name!r}: {why}: not served")
    return False


def route_backends(
    rep: routecontext.Report, tenant: routecontext.Tenant
) -> tuple[tuple[proxy.WeightedCluster, ...], gatewayroutes.Findings]:
    """A TLSRoute's weighted Services (its one rule), as TCP clusters, and what went wrong."""
    findings = gatewayroutes.Findings()
    rules: list[Any] = list((rep.resource.get("spec") or {}).get("rules") or ())
    if len(rules) != 1:
        message = f"a TLSRoute needs exactly one rule, not {len(rules)}"
        findings.unsupported.append(message)
        rep.problem(f"{message}: not served")
        return (), findings
    shares: list[proxy.WeightedCluster] = []
    for ref in rules[0].get("backendRefs") or ():
        weight = ref.get("weight", 1)
        if not isinstance(weight, int) or weight <= 0:
            continue
        name = str(ref.get("name") or "")
        if (ref.get("group") or "") != "" or (ref.get("kind") or "Service") != "Service":
            message = f"backendRef {name!r}: only Services are supported"
            findings.refs.append((gatewayroutes.INVALID_KIND, message))
            rep.problem(message)
            continue
        port = ref.get("port")
        namespace = str(ref.get("namespace") or rep.source_namespace)
        backend = routebackends.BackendRef(namespace, name, port if isinstance(port, int) else None)
        resolved = rep.resolve(backend, tenant=tenant, tcp=True)
        if resolved.cluster is None:
            message = f"backendRef {resolved.problem}"
            findings.refs.append((resolved.reason, message))
            rep.problem(message)
            continue
        shares.append(proxy.WeightedCluster(cluster=resolved.cluster, weight=weight))
    if not shares:
        rep.problem("no backendRef resolves: not served")
    return tuple(shares), findings


# (listener hostname, the route's hostnames there, backends, route report)
Candidate = tuple[
    str | None, tuple[str, ...], tuple[proxy.WeightedCluster, ...], routecontext.Report
]


def sni_routes(candidates: list[Candidate]) -> tuple[proxy.SNIRoute, ...]:
    """One SNI route per attached TLSRoute (oldest first): its hostnames, else its listener's,
    else the default; a server name an older route holds is reported, not taken."""
    holders: dict[str, str] = {}
    out: list[proxy.SNIRoute] = []
    for listener_hostname, hostnames, backends, rep in sorted(candidates, key=lambda c: c[3].age):
        if not backends:
            continue
        wanted = hostnames or ((listener_hostname,) if listener_hostname else ("",))
        names = [n for n in wanted if n not in holders]
        for n in set(wanted) - set(names):
            shown = f"hostname {n!r}" if n else "every other hostname"
            rep.problem(f"{shown} is already routed by TLSRoute {holders[n]}")
        if not names:
            continue
        holders.update((n, rep.source_id) for n in names)
        out.append(proxy.SNIRoute(
            name=naming.join("tlsroute", rep.source_namespace, rep.source_name,
                             listener_hostname or "*"),
            server_names=tuple(sorted(n for n in names if n)),
            backends=backends,
        ))  # fmt: skip
    return tuple(out)
