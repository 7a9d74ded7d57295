"""The Routes' read side (every replica): a tenant's Routes as of the informers, parsed once per
version and built once per change of their inputs, shared by the Route controller (statuses) and
envoycp (the tenant's piece of the snapshot)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubelb.api import errors as api_errors, registry, route as api_route
from kubelb.irbuild import backendtls, routes as irroutes, routetls
from kubelb.kube import informer, objects, resources
from kubelb.manager import common, hostnames, infrastructure, l7entry

# A certificate's validity boundary further away than this is looked at again after it.
CERTIFICATE_RECHECK_CAP = 86400.0


# `RouteReads.tenant`'s default: the entry Service as the informer has it.
FROM_INFORMER: Any = object()


@dataclass(frozen=True, slots=True)
class TenantRoutes:
    """What one tenant's Routes amount to, as of the informers."""

    routes: tuple[api_route.Route, ...]  # valid, not being deleted, by name
    settings: irroutes.RouteSettings
    ports: tuple[int, ...]  # requested of the entry
    entry: infrastructure.RouteEntry | None  # None: nothing requested, or no address yet
    taken: frozenset[int] = frozenset()
    built: irroutes.RoutesBuilt | None = None  # None without an entry
    # When a certificate of the tenant becomes valid or expires (time.time()): build again then.
    stale_at: float | None = None

    def stale_in(self, cap: float = CERTIFICATE_RECHECK_CAP) -> float | None:
        """Seconds until `stale_at` (at most `cap`), None without one."""
        if self.stale_at is None:
            return None
        return max(0.0, min(self.stale_at - time.time(), cap))


class RouteReads:
    """The read side, shared by the Route controller (statuses) and envoycp (the piece): one
    build per change of a tenant's inputs."""

    def __init__(
        self,
        inputs: common.Inputs,
        informers: informer.Informers,
        infra: infrastructure.Infra,
        build: Callable[..., irroutes.RoutesBuilt] = irroutes.build_tenant_routes,
    ) -> None:
        """`build`: `irroutes.build_tenant_routes` (a stand-in in unit tests)."""
        self.inputs = inputs
        self.infra = infra
        self.routes = informers.get(resources.ROUTES)
        self._build = build
        self._parsed: dict[str, tuple[str, api_route.Route | str]] = {}  # uid -> (rv, result)
        # namespace -> (inputs, build, when it goes stale)
        self._built: dict[str, tuple[tuple[Any, ...], irroutes.RoutesBuilt, float | None]] = {}
        self._hostnames = hostnames.HostnameRoutes()
        self.builds = 0
        self.routes.add_handler(self._changed)

    def parse(self, raw: objects.RawObject) -> api_route.Route | str:
        key = objects.uid(raw) or str(objects.key_of(raw))
        version = objects.resource_version(raw)
        cached = self._parsed.get(key)
        if cached is not None and cached[0] == version:
            return cached[1]
        hit: api_route.Route | str
        try:
            hit = registry.parse_as(api_route.Route, raw)
        except api_errors.APIValidationError as exc:
            hit = str(exc)
        self._parsed[key] = (version, hit)
        return hit

    def live(self, namespace: str) -> list[api_route.Route]:
        """The tenant's valid Routes that are not being deleted, by name, then the in-memory
        Routes serving its LoadBalancers' hostnames (`hostnames.hostname_route`)."""
        out = []
        for raw in sorted(self.routes.store.list(namespace), key=objects.name):
            parsed = self.parse(raw)
            if not objects.is_deleting(raw) and not isinstance(parsed, str):
                out.append(parsed)
        if self.inputs.managed(namespace) and self.inputs.disabled_reason(namespace) is None:
            policy = hostnames.settings(self.inputs.config(), self.inputs.tenant(namespace))
            lbs = self.inputs.live_load_balancers_in(namespace)
            out.extend(self._hostnames.of(lbs, policy))
        return out

    def has_routes(self, namespace: str) -> bool:
        """The tenant has Routes its settings let it serve (its Envoy must run)."""
        settings = self.settings(namespace)
        kinds = (l7entry.source_of(r).get("kind") for r in self.live(namespace))
        return any(l7entry.enabled(kind, settings) for kind in kinds)

    def settings(self, namespace: str) -> irroutes.RouteSettings:
        return l7entry.route_settings(self.inputs.config(), self.inputs.tenant(namespace))

    def entry_service(self, namespace: str) -> objects.RawObject | None:
        return self.inputs.service(namespace, l7entry.entry_service_name(namespace))

    def tenant(self, namespace: str, service: Any = FROM_INFORMER) -> TenantRoutes:
        """The tenant's Routes built at its entry (`service`: the entry Service just written,
        None when just deleted; by default the informer's)."""
        routes = tuple(self.live(namespace))
        settings = self.settings(namespace)
        ports = l7entry.requested_ports(namespace, routes, settings)
        if not routes or not ports:
            return TenantRoutes(routes, settings, ports, None)
        live = self.entry_service(namespace) if service is FROM_INFORMER else service
        entry = self.infra.route_entry(namespace, live) if live is not None else None
        name = l7entry.entry_service_name(namespace)
        if entry is None:
            # Not placed yet: where it will be is not known, so the tenant's LoadBalancers keep
            # their ports wherever they are (with one pool address, that is where it goes).
            services = self.inputs.services.store.list(namespace)
            held = l7entry.taken_ports(services, None, name, namespace)
            return TenantRoutes(routes, settings, ports, None, held)
        every = self.inputs.services.store.list()
        taken = l7entry.taken_ports(every, entry.external, name, namespace)
        addresses = self.inputs.addresses_in(namespace)
        policy = self.inputs.endpoint_policy(namespace)
        secrets = self.inputs.secrets.store.list(namespace)
        # A Secret's version says whether its content may differ; the clock is not an input
        # (a certificate expiring is judged at the next build).
        secret_versions = tuple(sorted((objects.name(s), objects.resource_version(s))
                                       for s in secrets))  # fmt: skip
        inputs = (tuple(_identity(r) for r in routes), addresses, entry, taken, settings, policy,
                  secret_versions)  # fmt: skip
        known = self._built.get(namespace)
        now = time.time()
        if known is not None and known[0] == inputs and (known[2] is None or now < known[2]):
            built, stale_at = known[1], known[2]
        else:
            certificates = routetls.index(namespace, secrets, now)
            built = self._build(namespace, routes, addresses, address=entry.bind,
                                listen_ports=entry.listen_ports, taken_ports=taken,
                                settings=settings, policy=policy,
                                status_address=entry.external,
                                ca_bundles=backendtls.ca_bundles(namespace, secrets),
                                certificates=certificates)  # fmt: skip
            stale_at = routetls.next_change(namespace, secrets, now) if secrets else None
            self.builds += 1
            self._built[namespace] = (inputs, built, stale_at)
        return TenantRoutes(routes, settings, ports, entry, taken, built, stale_at)

    def _changed(self, change: informer.Change) -> None:
        if change.new is None:
            self._parsed.pop(objects.uid(change.obj) or str(objects.key_of(change.obj)), None)
            namespace = objects.namespace(change.obj)
            if not self.routes.store.list(namespace):
                self._built.pop(namespace, None)


def _identity(route: api_route.Route) -> Any:
    """What makes a build from `route` valid for another version of it: uid and generation
    (our status writes change neither)."""
    m = route.metadata
    if m.uid is None or m.generation is None:
        return route
    return (m.uid, m.generation, m.name)
