"""An embedded Ingress (networking.k8s.io/v1) -> the host and path claims it makes. Pure.

Each rule path and the default backend is one `Claim`: an optional host (lower-case; `*.x`
wildcards kept), a path match and a backend reference. pathType Prefix and
ImplementationSpecific (and a missing one) match whole segments, like Gateway API's PathPrefix;
a trailing `/` of a prefix is not significant (`/a/` claims what `/a` does).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kubelb.ir import proxy
from kubelb.irbuild import routebackends, routechecks, routecontext, routetls
from kubelb.util import naming

PORT = 80
# Where an Ingress' `tls` hosts are served over HTTPS.
TLS_PORT = 443
DEFAULT_BACKEND = "defaultBackend"


@dataclass(frozen=True, slots=True)
class Claim:
    host: str | None
    path: proxy.PathMatch
    backend: routebackends.BackendRef | None  # None: not a Service backend
    default: bool = False

    @property
    def key(self) -> tuple[str, str, str, bool]:
        """Two claims with the same key serve the same requests."""
        return (self.host or "", self.path.kind.value, self.path.value, self.default)

    def describe(self) -> str:
        if self.default:
            return DEFAULT_BACKEND
        host = f"host {self.host!r}" if self.host else "any host"
        return f"{host} path {self.path.value!r} ({self.path.kind.value})"


@dataclass(frozen=True, slots=True)
class TLSEntry:
    """One `spec.tls[]` item: its hosts (none: every host) and the Secret it names."""

    index: int
    hosts: tuple[str, ...]
    secret_name: str | None


@dataclass(frozen=True, slots=True)
class Parsed:
    claims: tuple[Claim, ...]
    problems: tuple[str, ...]
    tls: tuple[TLSEntry, ...] = ()


def parse(resource: Mapping[str, Any]) -> Parsed:
    metadata = resource.get("metadata") or {}
    namespace = str(metadata.get("namespace") or "default")
    spec = resource.get("spec") or {}
    claims: list[Claim] = []
    problems: list[str] = []
    for rule in spec.get("rules") or ():
        host = str(rule.get("host") or "").lower().rstrip(".") or None
        bad_host = routechecks.hostname_problem(host) if host else None
        if bad_host is not None:
            problems.append(f"{bad_host}: its rule is not served")
            continue
        for p in (rule.get("http") or {}).get("paths") or ():
            path = _path(str(p.get("pathType") or "ImplementationSpecific"), p.get("path"))
            if isinstance(path, str):
                problems.append(f"{path}: not served")
                continue
            claim = Claim(host, path, _backend(p.get("backend"), namespace))
            if claim.backend is None:
                problems.append(
                    f"{claim.describe()}: only Service backends are supported: not served"
                )
                continue
            claims.append(claim)
    tls_entries = []
    for index, entry in enumerate(spec.get("tls") or ()):
        hosts = []
        for h in entry.get("hosts") or ():
            host = str(h).lower().rstrip(".")
            bad_host = routechecks.hostname_problem(host)
            if bad_host is not None:
                problems.append(f"spec.tls[{index}]: {bad_host}: not served over HTTPS")
            else:
                hosts.append(host)
        if entry.get("hosts") and not hosts:
            continue
        secret = entry.get("secretName")
        tls_entries.append(
            TLSEntry(index, tuple(dict.fromkeys(hosts)), str(secret) if secret else None)
        )
    default = spec.get(DEFAULT_BACKEND)
    if default is not None:
        claim = Claim(None, proxy.PathMatch(), _backend(default, namespace), default=True)
        if claim.backend is None:
            problems.append(f"{DEFAULT_BACKEND}: only Service backends are supported: not served")
        else:
            claims.append(claim)
    return Parsed(tuple(claims), tuple(problems), tuple(tls_entries))


def _path(path_type: str, value: Any) -> proxy.PathMatch | str:
    path = str(value or "/")
    bad = routechecks.path_problem(path)
    if bad is not None:
        return bad
    if path_type == "Exact":
        return proxy.PathMatch(kind=proxy.PathMatchKind.EXACT, value=path)
    if path_type in ("Prefix", "ImplementationSpecific"):
        return proxy.PathMatch(kind=proxy.PathMatchKind.PREFIX, value=path.rstrip("/") or "/")
    return f"path {path!r}: pathType {path_type!r} is not supported"


def _backend(backend: Any, namespace: str) -> routebackends.BackendRef | None:
    service = (backend or {}).get("service") if isinstance(backend, Mapping) else None
    if not isinstance(service, Mapping) or not service.get("name"):
        return None
    port = service.get("port")
    port = port if isinstance(port, Mapping) else {}
    number = port.get("number")
    ref: int | str | None = number if isinstance(number, int) else port.get("name") or None
    return routebackends.BackendRef(namespace, str(service["name"]), ref)


# (order key, hosts, route, its Ingress)
_Entry = tuple[tuple[Any, ...], tuple[str, ...], proxy.HTTPRoute, routecontext.Report]


def listener(
    tenant: routecontext.Tenant,
    reports: Sequence[routecontext.Report],
    blocked: str | None = None,
) -> tuple[proxy.Listener, tuple[str, ...]] | None:
    """The port-80 listener of the tenant's Ingresses (oldest first): a host and path goes to
    the oldest Ingress claiming it; a later claim is reported on its own Ingress. `blocked`:
    why port 80 is not the Ingresses' (else the tenant's `port_problem` decides)."""
    blocked = blocked or tenant.port_problem(PORT)
    owners: dict[tuple[str, str, str, bool], routecontext.Report] = {}
    entries: list[_Entry] = []
    for position, rep in enumerate(reports):
        try:
            parsed = parse(rep.resource)
        except routecontext.MALFORMED as e:
            rep.malformed(e)
            parsed = Parsed((), ())
        for message in parsed.problems:
            rep.problem(message)
        if blocked is not None:
            rep.problem(f"{blocked}: the Ingress is not served")
            rep.status = {"loadBalancer": {}}
            continue
        for index, claim in enumerate(parsed.claims):
            holder = owners.get(claim.key)
            if holder is not None:
                whose = "an earlier rule" if holder is rep else f"Ingress {holder.source_id}"
                rep.problem(f"{claim.describe()} is already served by {whose}: not served")
                continue
            owners[claim.key] = rep
            order = (
                claim.default,
                claim.path.kind is not proxy.PathMatchKind.EXACT,
                -len(claim.path.value),
                position,
                index,
            )
            hosts = (claim.host,) if claim.host else ()
            entries.append((order, hosts, _ingress_route(tenant, rep, claim), rep))
    served = {id(rep) for *_, rep in entries}
    for rep in reports:
        if blocked is None:
            ip = [routecontext.address_status(tenant.status_address)] if id(rep) in served else []
            rep.status = {"loadBalancer": {"ingress": ip}} if ip else {"loadBalancer": {}}
    if not entries:
        return None
    entries.sort(key=lambda e: e[0])
    owner = next(rep for rep in reports if id(rep) in served)
    listener = tenant.listener(
        PORT,
        proxy.group_by_hostname((hosts, route) for _, hosts, route, _ in entries),
        owner.key,
    )
    return listener, tuple(rep.name for rep in reports if id(rep) in served)


def https_listener(
    tenant: routecontext.Tenant,
    reports: Sequence[routecontext.Report],
    http: proxy.Listener,
) -> proxy.Listener | None:
    """The port-443 listener: the port-80 listener's virtual hosts that the Ingresses' `tls`
    entries cover, each host with the certificate of the oldest entry naming it (an entry
    without hosts gives the default certificate). A host whose Secret is missing or unusable is
    reported on its Ingress and left out; the other hosts keep serving."""
    certificates: list[proxy.ServerCertificate] = []
    holders: dict[str, str] = {}  # server name ("" for the default) -> the Ingress holding it
    for rep in reports:
        try:
            entries = parse(rep.resource).tls
        except routecontext.MALFORMED:
            continue  # `listener` reported it
        for entry in entries:
            where = f"spec.tls[{entry.index}]"
            names = [n for n in entry.hosts or ("",) if n not in holders]
            for n in set(entry.hosts or ("",)) - set(names):
                shown = f"host {n!r}" if n else "the default certificate"
                rep.problem(f"{where}: {shown} is already given by Ingress {holders[n]}")
            if not names:
                continue
            if entry.secret_name is None:
                rep.problem(f"{where}: no secretName: not served over HTTPS")
                continue
            problem = tenant.port_problem(TLS_PORT)
            resolved = problem or tenant.certificate(rep.source_namespace, entry.secret_name)
            if isinstance(resolved, str):
                shown_hosts = ", ".join(names) if entry.hosts else "every host"
                rep.problem(f"{where}: {resolved}: {shown_hosts} not served over HTTPS")
                continue
            holders.update((n, rep.source_id) for n in names)
            server_names = tuple(n for n in names if n)
            certificates.append(proxy.ServerCertificate(server_names=server_names,
                                                        secret=resolved.name))  # fmt: skip
    if not certificates:
        return None
    hosts = routetls.https_hosts(http.virtual_hosts, certificates) or (
        proxy.VirtualHost(name=proxy.WILDCARD_HOST, domains=(proxy.WILDCARD_HOST,), routes=()),
    )
    return tenant.listener(TLS_PORT, hosts, http.owner,
                           proxy.ListenerTLS(certificates=tuple(certificates)))  # fmt: skip


def _ingress_route(
    tenant: routecontext.Tenant, rep: routecontext.Report, claim: Claim
) -> proxy.HTTPRoute:
    where = (
        (DEFAULT_BACKEND,)
        if claim.default
        else (claim.host or "*", claim.path.kind.value, claim.path.value)
    )
    name = naming.join("ingress", rep.source_namespace, rep.source_name, *where)
    assert claim.backend is not None  # `parse` keeps only claims with a Service backend
    resolved = rep.resolve(claim.backend, tenant=tenant)
    if resolved.cluster is None:
        rep.problem(f"{claim.describe()}: {resolved.problem}: answers 503")
        return proxy.HTTPRoute(
            name=name, match=proxy.RouteMatch(path=claim.path), direct_status=503
        )
    return proxy.HTTPRoute(
        name=name,
        match=proxy.RouteMatch(path=claim.path),
        backends=(proxy.WeightedCluster(cluster=resolved.cluster),),
    )
