"""A tenant's Gateway and the HTTPRoutes and GRPCRoutes attached to it -> HTTP listeners, and
the status of each. Pure.

Only a Gateway named `kubelb` is served, one per tenant (the oldest; its tenant-cluster
namespace does not matter, as upstream's manager moves them all into the tenant namespace).
Each of its HTTP and HTTPS listeners is served (an HTTPS listener terminates TLS with the
certificate its `certificateRefs` name, `gatewaytls`); listeners sharing a port share one IR
listener, in which a request goes to the listener with the most specific hostname covering its
host. A route attaches
by a parentRef naming `kubelb` (the ref's namespace is not checked, as upstream clears it),
optionally narrowed by `sectionName` and `port`, to every listener whose protocol, allowed
kinds and hostname admit it. `allowedRoutes.namespaces` is not evaluated: upstream serves every
route of the tenant from one namespace. When two Routes make the same match on the same host,
Gateway API's precedence gives it to the older; the newer one is told in its problems (its
Gateway API status stays Accepted: the rest of it is served).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kubelb.ir import proxy
from kubelb.irbuild import gatewayroutes, gatewaytls, routechecks, routecontext, routeprecedence

GATEWAY_NAME = "kubelb"
CONTROLLER_NAME = "kubelb.k8c.io/gateway-controller"
ROUTE_KINDS = ("HTTPRoute", "GRPCRoute")
TLS_KINDS = (gatewaytls.TLS_ROUTE,)
SERVED_PROTOCOLS = ("HTTP", "HTTPS", "TLS")
condition = routecontext.condition


@dataclass
class Listener:
    """One listener of the served Gateway and what its status will say."""

    name: str
    port: int
    hostname: str | None
    kinds: tuple[str, ...]
    # (status, reason, message) of Accepted, ResolvedRefs, Conflicted
    accepted: tuple[bool, str, str] = (True, "Accepted", "Listener is accepted")
    resolved: tuple[bool, str, str] = (True, "ResolvedRefs", "All references are resolved")
    conflicted: tuple[bool, str, str] = (False, "NoConflicts", "No conflicts")
    attached: set[str] = field(default_factory=set)
    protocol: str = "HTTP"
    # HTTPS: the IR secret its certificate resolved to; None when it did not (not served).
    secret: str | None = None

    @property
    def served(self) -> bool:
        certified = self.protocol != "HTTPS" or self.secret is not None
        return self.accepted[0] and not self.conflicted[0] and certified

    def status(self) -> dict[str, Any]:
        programmed = (
            condition("Programmed", True, "Programmed", "Listener is programmed")
            if self.served
            else condition("Programmed", False, "Invalid", "Listener is not served")
        )
        return {
            "name": self.name,
            "supportedKinds": [
                {"group": gatewayroutes.GATEWAY_GROUP, "kind": k} for k in self.kinds
            ],
            "attachedRoutes": len(self.attached),
            "conditions": [
                condition("Accepted", *self.accepted),
                programmed,
                condition("ResolvedRefs", *self.resolved),
                condition("Conflicted", *self.conflicted),
            ],
        }


def served_gateway(
    gateways: Sequence[routecontext.Report],
) -> routecontext.Report | None:
    """The oldest Gateway named `kubelb` (`gateways` come oldest first)."""
    return next((g for g in gateways if g.source_name == GATEWAY_NAME), None)


def http_ports(gateway: routecontext.Report) -> set[int]:
    """The ports of the Gateway's HTTP and HTTPS listeners, before any conflict is looked at."""
    try:
        return {
            port
            for li in (gateway.resource.get("spec") or {}).get("listeners") or ()
            if li.get("protocol") in SERVED_PROTOCOLS and isinstance(port := li.get("port"), int)
        }
    except routecontext.MALFORMED:
        return set()  # `build` reports it


@dataclass(frozen=True, slots=True)
class Built:
    listeners: tuple[proxy.Listener, ...]
    # listener name -> the Routes it serves
    listener_routes: Mapping[str, tuple[str, ...]]


def build(
    tenant: routecontext.Tenant,
    gateways: Sequence[routecontext.Report],
    routes: Sequence[routecontext.Report],
    *,
    blocked_ports: Mapping[int, str],
) -> Built:
    """`gateways` and `routes` oldest first; `blocked_ports` are ports the Gateway may not use,
    with the reason (the tenant's Ingresses hold port 80)."""
    gateway = served_gateway(gateways)
    for g in gateways:
        if g.source_name != GATEWAY_NAME:
            g.problem(f"only a Gateway named {GATEWAY_NAME!r} is served")
        elif g is not gateway and gateway is not None:
            message = (
                f"the tenant's Gateway {gateway.source_id} is served; a tenant has at most one"
            )
            g.problem(message)
            g.status = {
                "conditions": [
                    condition("Accepted", False, "Invalid", message),
                    condition("Programmed", False, "Invalid", message),
                ]
            }
    listeners: list[Listener] = []
    if gateway is not None:
        try:
            listeners = _listeners(tenant, gateway, blocked_ports)
        except routecontext.MALFORMED as e:
            gateway.malformed(e)
    # port -> (listener hostname, hostnames, route, tiebreak)
    candidates: dict[int, list[tuple[str | None, tuple[str, ...], proxy.HTTPRoute, Any]]] = {}
    sni: dict[int, list[gatewaytls.Candidate]] = {}  # port -> its TLSRoutes
    for rep in routes:
        grpc = rep.kind == "GRPCRoute"
        backends: tuple[proxy.WeightedCluster, ...] = ()
        try:
            if rep.kind == gatewaytls.TLS_ROUTE:
                backends, findings = gatewaytls.route_backends(rep, tenant)
                built = gatewayroutes.Built((), findings)
            else:
                built = gatewayroutes.build(rep, tenant, grpc=grpc)
            attached = _attach(rep, gateway, listeners, built.findings)
        except routecontext.MALFORMED as e:
            rep.malformed(e)
            rep.status = {"parents": []}
            continue
        seen: set[int] = set()  # two parentRefs may name one listener
        for li, hostnames in attached:
            if id(li) in seen:
                continue
            seen.add(id(li))
            li.attached.add(rep.name)
            if rep.kind == gatewaytls.TLS_ROUTE:
                sni.setdefault(li.port, []).append((li.hostname, hostnames, backends, rep))
            for rr in built.routes:
                candidates.setdefault(li.port, []).append(
                    (li.hostname, hostnames, rr.route, (rr.order, rep.age, rr.position))
                )
    if gateway is None:
        return Built((), {})
    gateway.status = _gateway_status(tenant, listeners)
    out: list[proxy.Listener] = []
    listener_routes: dict[str, tuple[str, ...]] = {}
    for port in sorted({li.port for li in listeners if li.served}):
        on_port = [li for li in listeners if li.served and li.port == port]
        if on_port[0].protocol == "TLS":
            sni_routes = gatewaytls.sni_routes(sni.get(port, []))
            if not sni_routes:
                continue  # nothing routed yet: nothing to bind
            built_listener = tenant.passthrough(port, sni_routes, gateway.key)
        else:
            hosts, shadows = _virtual_hosts([li.hostname for li in on_port],
                                            candidates.get(port, []))  # fmt: skip
            _report_shadowed(routes, port, shadows)
            built_listener = tenant.listener(port, hosts, gateway.key, _tls(on_port))
        out.append(built_listener)
        attached_names = sorted({n for li in on_port for n in li.attached})
        listener_routes[built_listener.name] = (gateway.name, *attached_names)
    return Built(tuple(out), listener_routes)


def _listeners(
    tenant: routecontext.Tenant,
    gateway: routecontext.Report,
    blocked_ports: Mapping[int, str],
) -> list[Listener]:
    out: list[Listener] = []
    for raw in (gateway.resource.get("spec") or {}).get("listeners") or ():
        name = str(raw.get("name") or "")
        port = raw.get("port")
        protocol = str(raw.get("protocol") or "")
        hostname = raw.get("hostname")
        li = Listener(
            name=name,
            port=port if isinstance(port, int) else 0,
            hostname=routeprecedence.normalize(str(hostname)) if hostname else None,
            kinds=(),
        )
        out.append(li)
        where = f"listener {name!r}"
        bad_hostname = routechecks.hostname_problem(li.hostname) if li.hostname else None
        if bad_hostname is not None:
            li.accepted = (False, "UnsupportedValue", bad_hostname)
            gateway.problem(f"{where}: {bad_hostname}: not served")
            continue
        if protocol not in SERVED_PROTOCOLS:
            why = f"protocol {protocol!r} is not supported"
            li.accepted = (False, "UnsupportedProtocol", why)
            gateway.problem(f"{where}: {why}: not served")
            continue
        li.protocol = protocol
        if protocol == "TLS" and not gatewaytls.passthrough(gateway, li, raw.get("tls")):
            continue
        li.kinds, invalid = _kinds(raw, TLS_KINDS if protocol == "TLS" else ROUTE_KINDS)
        if invalid:
            li.resolved = (
                False,
                "InvalidRouteKinds",
                f"route kinds {', '.join(invalid)} are not supported",
            )
        port_problem = blocked_ports.get(li.port) or tenant.port_problem(li.port)
        if port_problem is not None:
            li.accepted = (False, "PortUnavailable", port_problem)
            li.conflicted = (True, "PortUnavailable", port_problem)
            gateway.problem(f"{where}: {port_problem}: not served")
            continue
        other = next((o for o in out[:-1] if o.served and o.port == li.port
                      and o.protocol != li.protocol), None)  # fmt: skip
        if other is not None:
            message = f"listener {other.name!r} serves {other.protocol} on the same port"
            li.conflicted = (True, "ProtocolConflict", message)
            gateway.problem(f"{where}: {message}: not served")
            continue
        clash = next(
            (o for o in out[:-1] if o.served and o.port == li.port and o.hostname == li.hostname),
            None,
        )
        if clash is not None:
            message = f"listener {clash.name!r} has the same port and hostname"
            li.conflicted = (True, "HostnameConflict", message)
            gateway.problem(f"{where}: {message}: not served")
            continue
        if protocol == "HTTPS":
            gatewaytls.certify(tenant, gateway, li, raw.get("tls"))
    return out


def _tls(on_port: Sequence[Listener]) -> proxy.ListenerTLS | None:
    """The certificates of a port's HTTPS listeners, one per listener hostname."""
    certificates = tuple(
        proxy.ServerCertificate(
            server_names=(li.hostname,) if li.hostname else (), secret=li.secret
        )
        for li in on_port
        if li.secret is not None
    )
    return proxy.ListenerTLS(certificates=certificates) if certificates else None


def _kinds(
    raw: Mapping[str, Any], served: tuple[str, ...]
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    given = (raw.get("allowedRoutes") or {}).get("kinds")
    if not given:
        return served, ()
    kinds: list[str] = []
    invalid: list[str] = []
    for k in given:
        kind = str(k.get("kind") or "")
        if k.get("group", gatewayroutes.GATEWAY_GROUP) == gatewayroutes.GATEWAY_GROUP and (
            kind in served
        ):
            kinds.append(kind)
        else:
            invalid.append(kind)
    return tuple(dict.fromkeys(kinds)), tuple(invalid)


def _gateway_status(tenant: routecontext.Tenant, listeners: Sequence[Listener]) -> dict[str, Any]:
    address = tenant.status_address
    served = any(li.served for li in listeners)
    invalid = [li.name for li in listeners if not li.served]
    accepted = (
        condition(
            "Accepted", served, "ListenersNotValid", f"listeners not served: {', '.join(invalid)}"
        )
        if invalid
        else condition("Accepted", True, "Accepted", "Gateway is accepted")
    )
    programmed = (
        condition("Programmed", True, "Programmed", "Gateway is programmed")
        if served
        else condition("Programmed", False, "Invalid", "No listener can be served")
    )
    return {
        "addresses": [
            {"type": "IPAddress" if proxy.is_ip(address) else "Hostname", "value": address}
        ],
        "conditions": [accepted, programmed],
        "listeners": [li.status() for li in listeners],
    }


def parent_refs(rep: routecontext.Report) -> list[Mapping[str, Any]]:
    """The route's parentRefs naming the Gateway `kubelb` (no others get our status)."""
    spec = rep.resource.get("spec")
    refs = spec.get("parentRefs") if isinstance(spec, Mapping) else None
    return [
        ref
        for ref in (refs if isinstance(refs, list) else ())
        if isinstance(ref, Mapping)
        and ref.get("group", gatewayroutes.GATEWAY_GROUP) == gatewayroutes.GATEWAY_GROUP
        and ref.get("kind", "Gateway") == "Gateway"
        and ref.get("name") == GATEWAY_NAME
    ]


def _attach(
    rep: routecontext.Report,
    gateway: routecontext.Report | None,
    listeners: Sequence[Listener],
    findings: gatewayroutes.Findings,
) -> list[tuple[Listener, tuple[str, ...]]]:
    """The listeners `rep` attaches to with its hostnames there; sets its status."""
    refs = parent_refs(rep)
    if not refs:
        rep.problem(f"no parentRef names the Gateway {GATEWAY_NAME!r}")
    given = [
        routeprecedence.normalize(str(h))
        for h in (rep.resource.get("spec") or {}).get("hostnames") or ()
    ]
    hostnames = []
    for h in given:
        problem = routechecks.hostname_problem(h)
        if problem is None:
            hostnames.append(h)
        else:
            rep.problem(f"{problem}: ignored")
    resolved = (
        condition(
            "ResolvedRefs", False, findings.refs[0][0], "; ".join(m for _, m in findings.refs)
        )
        if findings.refs
        else condition("ResolvedRefs", True, "ResolvedRefs", "All references are resolved")
    )
    parents: list[dict[str, Any]] = []
    out: list[tuple[Listener, tuple[str, ...]]] = []
    for ref in refs:
        attached: list[tuple[Listener, tuple[str, ...]]]
        if given and not hostnames:
            attached, reason, message = [], "UnsupportedValue", "no hostname is valid"
        else:
            attached, reason, message = _attach_ref(ref, gateway, listeners, rep.kind, hostnames)
        if not attached:
            rep.problem(f"parentRef {_describe(ref)}: {message}")
        elif findings.unsupported:
            reason, message = gatewayroutes.UNSUPPORTED_VALUE, "; ".join(findings.unsupported)
        out.extend(attached)
        parents.append(
            {
                "parentRef": dict(ref),
                "controllerName": CONTROLLER_NAME,
                "conditions": [
                    condition(
                        "Accepted", bool(attached) and not findings.unsupported, reason, message
                    ),
                    resolved,
                ],
            }
        )
    rep.status = {"parents": parents}
    return out


def _attach_ref(
    ref: Mapping[str, Any],
    gateway: routecontext.Report | None,
    listeners: Sequence[Listener],
    kind: str,
    hostnames: Sequence[str],
) -> tuple[list[tuple[Listener, tuple[str, ...]]], str, str]:
    if gateway is None:
        return [], "NoMatchingParent", f"the tenant serves no Gateway {GATEWAY_NAME!r}"
    chosen = list(listeners)
    section = ref.get("sectionName")
    if section:
        chosen = [li for li in chosen if li.name == section]
    port = ref.get("port")
    if isinstance(port, int):
        chosen = [li for li in chosen if li.port == port]
    if not chosen:
        return [], "NoMatchingParent", "no listener of the Gateway matches the parentRef"
    chosen = [li for li in chosen if li.served]
    if not chosen:
        return [], "NotAllowedByListeners", "the matching listeners are not served"
    chosen = [li for li in chosen if kind in li.kinds]
    if not chosen:
        return [], "NotAllowedByListeners", f"no matching listener allows {kind}"
    out = [
        (li, hosts)
        for li in chosen
        if (hosts := routeprecedence.intersect(li.hostname, hostnames)) is not None
    ]
    if not out:
        return [], "NoMatchingListenerHostname", "no listener hostname matches the route's"
    return out, "Accepted", "Route is accepted"


def _describe(ref: Mapping[str, Any]) -> str:
    parts = [str(ref.get("name"))]
    if ref.get("sectionName"):
        parts.append(f"sectionName {ref['sectionName']!r}")
    if ref.get("port"):
        parts.append(f"port {ref['port']}")
    return " ".join(parts)


# A match no request reaches: (virtual host, its route's tiebreak, the tiebreak of the route that
# takes it first, the match).
Shadow = tuple[str, tuple[Any, ...], tuple[Any, ...], proxy.RouteMatch]


def _owner(tiebreak: tuple[Any, ...]) -> Any:
    """The Route a candidate's tiebreak `(order, rep.age, position)` belongs to."""
    return tiebreak[1]


def _virtual_hosts(
    listener_hostnames: Sequence[str | None],
    candidates: Sequence[tuple[str | None, tuple[str, ...], proxy.HTTPRoute, Any]],
) -> tuple[tuple[proxy.VirtualHost, ...], list[Shadow]]:
    """One virtual host per hostname named on the port (and `*` when a listener takes any
    host): the routes of the most specific listener covering it, in precedence order; and the
    matches of later Routes that an earlier Route's identical match takes on the same host."""
    # (listener hostname, route hostname or None for any) -> its routes with their tiebreaks
    index: dict[tuple[str | None, str | None], list[tuple[proxy.HTTPRoute, Any]]] = {}
    for listener_hostname, hosts, route, tiebreak in candidates:
        for host in hosts or (None,):
            index.setdefault((listener_hostname, host), []).append((route, tiebreak))
    domains = {h for _, hosts, _, _ in candidates for h in hosts}
    domains.update(h for h in listener_hostnames if h)
    if None in listener_hostnames or not domains:
        domains.add(proxy.WILDCARD_HOST)
    out: list[proxy.VirtualHost] = []
    shadows: list[Shadow] = []
    for domain in sorted(domains):
        chosen = routeprecedence.most_specific(listener_hostnames, domain)
        entries: list[tuple[str | None, proxy.HTTPRoute, Any]] = []
        if chosen is not routeprecedence.UNCOVERED:
            patterns: list[str | None] = [None]
            if domain != proxy.WILDCARD_HOST:
                patterns.extend(routeprecedence.covering(domain))
            entries = [
                (pattern, route, tiebreak)
                for pattern in patterns
                for route, tiebreak in index.get((chosen, pattern), ())
            ]
        out.append(
            proxy.VirtualHost(
                name=domain, domains=(domain,), routes=routeprecedence.ordered(entries)
            )
        )
        shadows.extend((domain, *found) for found in routeprecedence.shadowed(entries, _owner))
    # A host without routes answers 404 anyway, unless a less specific host would take it.
    served = {vh.name for vh in out if vh.routes}
    kept = tuple(vh for vh in out if vh.name in served or _shadows(vh.name, served))
    return kept or (
        proxy.VirtualHost(name=proxy.WILDCARD_HOST, domains=(proxy.WILDCARD_HOST,), routes=()),
    ), shadows


def _report_shadowed(
    routes: Sequence[routecontext.Report], port: int, shadows: Sequence[Shadow]
) -> None:
    """Conflicts stay local: a Route whose match an older Route already makes on the same host
    is told on its own status (Gateway API's precedence gives the request to the older one)."""
    by_owner = {rep.age: rep for rep in routes}
    for domain, key, taken, match in shadows:
        later, earlier = by_owner.get(_owner(key)), by_owner.get(_owner(taken))
        if later is None or earlier is None:
            continue
        host = "any host" if domain == proxy.WILDCARD_HOST else f"host {domain!r}"
        later.problem(f"port {port} {host} {_describe_match(match)} is already served by "
                      f"{earlier.kind} {earlier.source_id}: not served")  # fmt: skip


def _describe_match(match: proxy.RouteMatch) -> str:
    out = f"path {match.path.value!r} ({match.path.kind.value})"
    if match.method:
        out += f" method {match.method}"
    if match.headers:
        out += " headers " + ", ".join(h.name for h in match.headers)
    if match.query_params:
        out += " query " + ", ".join(q.name for q in match.query_params)
    return out


def _shadows(domain: str, served: set[str]) -> bool:
    if domain == proxy.WILDCARD_HOST:
        return False
    return proxy.WILDCARD_HOST in served or any(
        p in served for p in routeprecedence.covering(domain) if p != domain
    )
