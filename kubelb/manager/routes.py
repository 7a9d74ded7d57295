"""Route controller (leader only); the Routes' read side (every replica) is `routereads`.

A tenant's Ingress, Gateway, HTTPRoute or GRPCRoute arrives embedded in a `Route` in its
namespace. kubelb's own realisation serves it in the tenant's Envoy: per tenant,
`irbuild.routes.build_tenant_routes` turns its Routes, its Addresses (or the endpoints inline in
standalone files), the settings of Config and Tenant (`ingress.disable`, `gatewayAPI.disable`,
Tenant over Config: either disables) and the endpoint policy L4 uses into one IR piece, which
envoycp assembles beside the tenant's LoadBalancers into the same snapshot. (Upstream hands
copies of the objects to a third-party controller in the management cluster instead: that would
be a second `Realisation`, behind the same reconciler.)

The L7 entry point: every tenant with something to serve gets the management Service
`envoy-<tenant-ns>-l7`, type LoadBalancer, on the requested ports (80 for Ingress, each listener
port of the Gateway `kubelb`). It gets its address as the LoadBalancers' Services do (the
address pool with the process deployer and in standalone mode, MetalLB or a cloud on a
cluster); the infrastructure (`Infra.route_listen_ports`, `Infra.route_entry`) says which ports
Envoy binds for it and where. Ports that other management Services already hold at its address
are left out of it (`taken_ports`: the builder reports them on the Route that wants them, and
the LoadBalancer that had them first keeps them).

What the Routes ask of the entry, and the entry Service itself (its ports, and its annotations:
those the Config's and Tenant's settings propagate from the Routes' sources): `l7entry`. Writes,
per Route: the finalizer `kubelb.k8c.io/cleanup` (kubelb's agent creates Routes with it; an
upstream agent does not); `status.resources.route` (the served object's kind and name, its
status as upstream's controllers would write it, and a `ResourceAppliedSuccessfully` condition:
True `InstallationSuccessful` "Success", or False `InstallationFailed` with what kept it from
being served) and `status.resources.services` (one entry per embedded Service), as `routestatus`
shapes them. Every write is skipped when the live object already says the same; a Gateway's new
attachedRoutes waits until the tenant's Routes have been still for a second (at most 10 s: one
status write per burst, not one per reconcile).
A Route being deleted keeps its finalizer until the tenant's published snapshot no longer holds
it (its listeners are gone), then is let go. The reconcile key is the tenant namespace: one
build per tenant serves every status.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from kubelb.api import (
    conditions,
    finalizers,
    tenant as api_tenant,
)
from kubelb.kube import (
    controller,
    errors,
    events as kevents,
    informer,
    objects,
    resources,
    watches,
    writer as kwriter,
)
from kubelb.manager import (
    common,
    hostnames,
    infrastructure,
    l7entry,
    loadbalancers,
    propagation,
    routereads,
    routestatus,
)
from kubelb.observe import manager_metrics
from kubelb.util import logsafe

logger = logging.getLogger(__name__)

# A Route being deleted waits for the snapshot without it this long between looks.
DELETE_RECHECK = 0.2
# A tenant whose entry has no address yet looks again after this long at the latest (the
# Service's status write reconciles it sooner).
ADDRESS_RECHECK = 2.0
STATUS_CONCURRENCY = 16
# A Gateway's new attachedRoutes is written once its tenant's Routes have been still this long,
# or after waiting this long at most.
COUNTS_QUIET = 1.0
COUNTS_CAP = 10.0


@dataclass(frozen=True, slots=True)
class Realised:
    verdicts: Mapping[str, routestatus.RouteVerdict]  # by Route name
    requeue_after: float | None = None  # look again although no event may say so


class Realisation(Protocol):
    """How a tenant's Routes are served. kubelb's own: its Envoy routes the requests itself
    (`EnvoyRealisation`); upstream's would hand copies to a controller in the management
    cluster."""

    async def realise(self, namespace: str, raws: Sequence[objects.RawObject]) -> Realised:
        """Serve the tenant's live Routes; the verdict of each."""

    def released(self, namespace: str) -> bool:
        """Whatever served the tenant's deleted Routes is gone (their finalizers may go)."""


class EnvoyRealisation:
    """The tenant's Envoy serves its Routes: the entry Service is kept and the Routes built
    (envoycp publishes the same build)."""

    def __init__(
        self,
        inputs: common.Inputs,
        reads: routereads.RouteReads,
        writer: kwriter.Writer,
        infra: infrastructure.Infra,
        listeners_gone: Callable[[str], bool],
        rejections: loadbalancers.Rejections | None = None,
    ) -> None:
        """`listeners_gone(namespace)`: the tenant's published snapshot holds nothing of its
        deleted Routes; `rejections`: what the tenants' Envoys NACKed (None: nothing reports
        it)."""
        self.inputs = inputs
        self.reads = reads
        self.writer = writer
        self.infra = infra
        self._listeners_gone = listeners_gone
        self.rejections = rejections
        # Tenant namespace -> when its entry Service was created (until it has an address).
        self._created: dict[str, float] = {}
        # Tenant namespace -> the entry Service written last, until the informer shows it.
        self._written: dict[str, objects.RawObject] = {}
        inputs.services.add_handler(self._service_seen)

    def released(self, namespace: str) -> bool:
        return self._listeners_gone(namespace)

    async def realise(self, namespace: str, raws: Sequence[objects.RawObject]) -> Realised:
        existed = self._entry(namespace) is not None
        state = self.reads.tenant(namespace, self._entry(namespace))
        notes = self._annotations(namespace, state)
        service = await self._ensure_entry(namespace, state, notes.annotations)
        state = self.reads.tenant(namespace, self._entry(namespace))
        wait = self.infra.requeue.address_wait
        now = time.monotonic()
        if not existed and service is not routereads.FROM_INFORMER and service is not None:
            self._created[namespace] = now
        created = self._created.get(namespace)
        ready = self.infra.ready(namespace)
        pending = state.entry is None or not ready
        if pending and wait and created is not None and now - created < wait:
            # The manager's own pool places a Service it has just seen within moments (and a
            # new tenant's Envoy starts), and its status write reconciles the tenant again: a
            # "waiting" status now would be overwritten at once (one API write per Route fewer).
            return Realised({}, min(created + wait - now, self.infra.requeue.not_ready or wait))
        self._created.pop(namespace, None)
        config, tenant = self.inputs.config(), self.inputs.tenant(namespace)
        waiting = self._waiting(namespace)
        rejected = self._rejected(namespace, state)
        if not ready:  # served only by a running Envoy, never one that is going away
            cause = self.infra.not_ready_message(namespace)
            rejected = (f"the tenant's Envoy (envoy-{namespace}) is not ready"
                        + (f": {cause}" if cause else ""), *rejected)  # fmt: skip
        verdicts = {}
        for raw in raws:
            parsed = self.reads.parse(raw)
            name = objects.name(raw)
            if isinstance(parsed, str):
                invalid = f"the Route does not validate: {parsed}"
                verdicts[name] = routestatus.RouteVerdict({}, (invalid,))
                continue
            kind = str(l7entry.source_of(parsed).get("kind") or "")
            why = l7entry.disabled_by(kind, config, tenant)
            outcome = state.built.outcomes.get(name) if state.built is not None else None
            if why is not None:
                disabled = f"{kind} Routes are disabled by {why}"
                verdicts[name] = routestatus.RouteVerdict({}, (disabled,))
            elif outcome is not None:
                problems = (*outcome.refused, *outcome.problems,
                            *notes.problems.get(name, ()), *rejected)  # fmt: skip
                verdicts[name] = routestatus.RouteVerdict(outcome.served_status, problems)
            elif state.ports:
                verdicts[name] = routestatus.RouteVerdict({}, (waiting,))
            elif kind in ("HTTPRoute", "GRPCRoute"):
                gateway = l7entry.GATEWAY_NAME
                lacking = f"no Gateway {gateway!r} with a listener in the tenant namespace"
                verdicts[name] = routestatus.RouteVerdict({}, (lacking,))
            else:
                unknown = f"source kind {kind!r} is not served"
                verdicts[name] = routestatus.RouteVerdict({}, (unknown,))
        recheck = ADDRESS_RECHECK if state.ports and state.entry is None else None
        if (stale := state.stale_in()) is not None:  # a certificate expires or becomes valid
            recheck = stale if recheck is None else min(recheck, stale)
        if not ready and state.built is not None and self.infra.requeue.not_ready:
            recheck = min(recheck or self.infra.requeue.not_ready, self.infra.requeue.not_ready)
        return Realised(verdicts, recheck)

    def _rejected(self, namespace: str, state: routereads.TenantRoutes) -> tuple[str, ...]:
        """Why the tenant's Envoy refused the configuration holding its Routes, if it did."""
        rejection = self.rejections(namespace) if self.rejections is not None else None
        if rejection is None or state.built is None or not rejection.affects(state.built.piece):
            return ()
        return (f"the tenant's Envoy rejected its configuration and serves its last good one: "
                f"{rejection.detail}",)  # fmt: skip

    def _waiting(self, namespace: str) -> str:
        name = l7entry.entry_service_name(namespace)
        problem = self.infra.address_problem(namespace, name)
        if problem is not None:
            return f"the tenant's L7 entry (Service {name}) has no address: {problem[1]}"
        return (f"waiting for an external address on the tenant's L7 entry (Service {name}), "
                "from the address pool, MetalLB or a cloud load balancer")  # fmt: skip

    def _entry(self, namespace: str) -> objects.RawObject | None:
        """The entry Service: the informer's, or the one just written while the informer has
        not seen it yet (a reconcile in between must not create it again)."""
        return self.reads.entry_service(namespace) or self._written.get(namespace)

    def _service_seen(self, change: informer.Change) -> None:
        if objects.labels(change.obj).get(l7entry.ENTRY_LABEL):
            self._written.pop(objects.namespace(change.obj), None)  # the informer caught up

    def _annotations(
        self, namespace: str, state: routereads.TenantRoutes
    ) -> l7entry.EntryAnnotations:
        """The entry Service's annotations: external-dns's for the LoadBalancer hostnames it
        serves, and what the tenant's own Routes propagate."""
        own = [r for r in state.routes if not hostnames.is_hostname_route(r)]
        dns = hostnames.dns_annotations(hostnames.served_hostnames(state.routes))
        policy = self.inputs.effective(namespace).annotations
        recorded = propagation.recorded(self._entry(namespace))
        return l7entry.entry_annotations(namespace, own, state.settings, policy, dns, recorded)

    async def _ensure_entry(
        self, namespace: str, state: routereads.TenantRoutes, annotations: Mapping[str, str]
    ) -> Any:
        """The entry Service after the write (`routereads.FROM_INFORMER`: unchanged)."""
        live = self._entry(namespace)
        key = objects.ObjectKey(namespace, l7entry.entry_service_name(namespace))
        if not state.ports:
            self._written.pop(namespace, None)
            if live is not None and await self.writer.delete(resources.SERVICES, key):
                logger.info("tenant %s: L7 entry Service %s deleted", logsafe.shown(namespace),
                            key.name)  # fmt: skip
                return None
            return routereads.FROM_INFORMER
        # Ports other Services already hold at the entry's address stay theirs.
        wanted = [p for p in state.ports if p not in state.taken] or list(state.ports)
        listen = self.infra.route_listen_ports(namespace, wanted, live)
        effective = self.inputs.effective(namespace)
        desired = l7entry.desired_entry_service(namespace, listen, self.infra.service_shape,
                                                effective.load_balancer_class,
                                                annotations=annotations)  # fmt: skip
        written = await self.writer.ensure(resources.SERVICES, desired, current=live)
        if not written.changed:
            return routereads.FROM_INFORMER
        if written.obj is not None:
            self._written[namespace] = written.obj
        logger.info("tenant %s: L7 entry Service %s %s on ports %s", logsafe.shown(namespace),
                    key.name, "updated" if live is not None else "created",
                    ", ".join(map(str, sorted(listen))))  # fmt: skip
        return written.obj


class RouteReconciler:
    name = "routes"

    def __init__(
        self,
        inputs: common.Inputs,
        reads: routereads.RouteReads,
        writer: kwriter.Writer,
        infra: infrastructure.Infra,
        realisation: Realisation,
        events: kevents.EventRecorder | None = None,
    ) -> None:
        """`events`: where a Route's new problems are also told (a Warning Event)."""
        self.inputs = inputs
        self.reads = reads
        self.writer = writer
        self.infra = infra
        self.realisation = realisation
        self.events = events
        self._counts = CountWrites()
        # Route uid -> (the resourceVersion our last status write replaced, the object it
        # returned), until the informer shows the Route again: a reconcile in between judges it
        # by what we wrote, not by the informer's older copy (a write that meets a conflict on
        # the server is still a write).
        self._ahead: dict[str, tuple[str, objects.RawObject]] = {}
        reads.routes.add_handler(self._route_seen)
        self.primary = inputs.watch_namespaces(common.tenant_of)
        self.watches: Sequence[watches.Watch] = (
            watches.Watch(resource=resources.ROUTES, mapper=common.tenant_of,
                          predicate=watches.spec_changed),
            watches.Watch(resource=resources.ADDRESSES, mapper=common.tenant_of,
                          predicate=watches.generation_changed),
            inputs.watch_services(common.tenant_of,
                                  watches.fields_changed("status.loadBalancer", "spec.ports")),
            inputs.watch_config(common.every_tenant(inputs)),
            inputs.watch_tenants(common.tenant_of_tenant),
            # A hostname recorded or dropped adds or removes its in-memory Route.
            watches.Watch(resource=resources.LOAD_BALANCERS, mapper=common.tenant_of,
                          predicate=watches.fields_changed("status.hostname")),
            inputs.watch_secrets(common.tenant_of),  # certificates of the Routes' TLS
            *infra.proxy_watches,  # the tenant's Envoy workload: its readiness
        )  # fmt: skip

    async def reconcile(self, key: objects.ObjectKey) -> controller.Result:
        namespace = key.name
        started = time.perf_counter()
        try:
            return await self._reconcile(namespace)
        finally:
            manager_metrics.ROUTE_RECONCILE_SECONDS.labels(namespace=namespace).observe(
                time.perf_counter() - started
            )

    async def _reconcile(self, namespace: str) -> controller.Result:
        raws = sorted(self.reads.routes.store.list(namespace), key=objects.name)
        deleting = [r for r in raws if objects.is_deleting(r)]
        live = [r for r in raws if not objects.is_deleting(r)]
        managed = self.inputs.managed(namespace)
        if not managed:
            live = []  # another user's namespace: its Routes are not ours to serve
        served = managed and bool(self.reads.live(namespace))  # hostnames' in-memory Routes too
        if (
            not live
            and not served
            and self.reads.entry_service(namespace) is None
            and (not deleting)
        ):
            self._count(namespace, [])
            self._counts.forget(namespace)
            return controller.DONE
        self._counts.saw(namespace, raws, time.monotonic())
        current = await self._add_finalizers([self._fresh(raw) for raw in live])
        result = controller.DONE
        if managed:
            realised = await self.realisation.realise(namespace, current)
            wait = await self._write_statuses(namespace, current, realised.verdicts, seen=raws)
            later = [t for t in (realised.requeue_after, wait) if t is not None]
            result = controller.Result(requeue_after=min(later) if later else None)
        if deleting:
            if not managed or self.realisation.released(namespace):
                for raw in deleting:
                    await self.writer.remove_finalizer(resources.ROUTES, raw, finalizers.CLEANUP)
                    logger.info("Route %s: listeners gone, finalizer removed",
                                objects.key_of(raw))  # fmt: skip
            else:
                result = controller.Result(requeue_after=DELETE_RECHECK)
        self._count(namespace, current)
        return result

    async def _add_finalizers(self, raws: Sequence[objects.RawObject]) -> list[objects.RawObject]:
        """The Routes after the finalizer is added (concurrently: a burst of new Routes waits
        for a few round trips, not one per Route); those deleted meanwhile left out."""
        gate = asyncio.Semaphore(STATUS_CONCURRENCY)

        async def one(raw: objects.RawObject) -> objects.RawObject | None:
            async with gate:
                return (await self.writer.add_finalizer(resources.ROUTES, raw,
                                                        finalizers.CLEANUP)).obj  # fmt: skip

        return [r for r in await asyncio.gather(*(one(raw) for raw in raws)) if r is not None]

    async def _write_statuses(
        self,
        namespace: str,
        raws: Sequence[objects.RawObject],
        verdicts: Mapping[str, routestatus.RouteVerdict],
        *,
        seen: Sequence[objects.RawObject],
    ) -> float | None:
        """Each Route's status as its verdict says. A status that would change nothing but a
        Gateway's attachedRoutes waits while the tenant's Routes are still changing
        (`CountWrites`; `seen`: the tenant's Routes this reconcile started from): a burst of
        new Routes costs the Gateway one status write, not one per reconcile. The seconds until
        such a status is due (None: nothing waits)."""
        gate = asyncio.Semaphore(STATUS_CONCURRENCY)
        counted: list[objects.RawObject] = []

        async def one(raw: objects.RawObject, *, write: bool = True) -> None:
            verdict = verdicts.get(objects.name(raw))
            if verdict is None:
                return
            kind = _kind_of(raw)
            if write:
                async with gate:
                    try:
                        await self._write_status(raw, verdict)
                    except errors.NotFoundError:
                        return  # deleted meanwhile
                    except Exception:
                        manager_metrics.ROUTE_RECONCILES.labels(
                            namespace=namespace, route_type=kind, result="error").inc()  # fmt: skip
                        raise
            manager_metrics.ROUTE_RECONCILES.labels(namespace=namespace, route_type=kind,
                                                    result="success").inc()  # fmt: skip

        first = []
        for raw in raws:
            verdict = verdicts.get(objects.name(raw))
            if verdict is not None and _counts_only(raw, verdict):
                counted.append(raw)
            else:
                first.append(raw)
        await asyncio.gather(*(one(raw) for raw in first))
        if not counted:
            self._counts.done(namespace)
            return None
        queued = routes_changed(self.reads.routes.store.list(namespace), seen)
        wait = self._counts.wait(namespace, time.monotonic(), queued=queued)
        await asyncio.gather(*(one(raw, write=wait is None) for raw in counted))
        return wait

    async def _write_status(
        self, raw: objects.RawObject, verdict: routestatus.RouteVerdict
    ) -> None:
        def mutate(status: dict[str, Any]) -> dict[str, Any]:
            return _desired_status(raw, verdict, status)

        written = await self.writer.update_status(resources.ROUTES, objects.key_of(raw), mutate,
                                                  current=raw)  # fmt: skip
        if written.changed and written.obj is not None:
            self._ahead[objects.uid(raw)] = (objects.resource_version(raw), written.obj)
        if written.changed:
            logger.info("Route %s: %s", objects.key_of(raw),
                        "; ".join(verdict.problems) or "served")  # fmt: skip
            if verdict.problems and self.events is not None:
                await self.events.warning(raw, conditions.INSTALLATION_FAILED,
                                          "; ".join(verdict.problems))  # fmt: skip

    def _fresh(self, raw: objects.RawObject) -> objects.RawObject:
        """The Route as our last status write left it, while the informer still has the version
        before it; else as the informer has it."""
        uid = objects.uid(raw)
        known = self._ahead.get(uid)
        if known is None:
            return raw
        if objects.resource_version(raw) == known[0]:
            return known[1]
        del self._ahead[uid]  # the informer has caught up (or another writer came after us)
        return raw

    def _route_seen(self, change: informer.Change) -> None:
        uid = objects.uid(change.obj)
        known = self._ahead.get(uid)
        if known is not None and (
            change.new is None or objects.resource_version(change.new) != known[0]
        ):
            del self._ahead[uid]

    def _count(self, namespace: str, raws: Sequence[objects.RawObject]) -> None:
        counts = Counter(_kind_of(raw) for raw in raws)
        tenant = api_tenant.tenant_name_for(namespace)
        for kind in ("Ingress", *sorted(l7entry.GATEWAY_API_KINDS), *counts):
            manager_metrics.ROUTES.labels(namespace=namespace, tenant=tenant,
                                          route_type=kind).set(counts.get(kind, 0))  # fmt: skip


def _desired_status(
    raw: objects.RawObject, verdict: routestatus.RouteVerdict, status: Any = None
) -> dict[str, Any]:
    """The Route's status as `verdict` says, from `status` (by default its own)."""
    current = copy.deepcopy(raw.get("status") or {}) if status is None else status
    return routestatus.desired_status(current, _embedded(raw), _embedded_services(raw), verdict,
                                      objects.generation(raw))  # fmt: skip


def _counts_only(raw: objects.RawObject, verdict: routestatus.RouteVerdict) -> bool:
    """The verdict changes nothing of the Route's status but a Gateway's attachedRoutes (only a
    Gateway's served status has listeners: cheap to rule the others out)."""
    if not verdict.served_status.get("listeners"):
        return False
    return routestatus.only_counts_differ(raw.get("status") or {}, _desired_status(raw, verdict))


def routes_changed(now: Sequence[objects.RawObject], seen: Sequence[objects.RawObject]) -> bool:
    """The tenant's Routes `now` (the informer's) are others than `seen`: added, changed in
    spec, being deleted or gone. Each such change passed the Route watch's predicate, so the
    tenant is queued again."""
    return _versions(now) != _versions(seen)


def _versions(raws: Sequence[objects.RawObject]) -> set[tuple[str, int | None, bool]]:
    return {(objects.uid(r), objects.generation(r), objects.is_deleting(r)) for r in raws}


class CountWrites:
    """When a tenant's Gateway status that changes only its attachedRoutes is written: once the
    tenant's Routes have been still for `quiet` seconds (a burst of new Routes costs one write,
    not one per reconcile), or once it has waited `cap` seconds (a tenant whose Routes never
    stop changing still sees its counts)."""

    def __init__(self, quiet: float = COUNTS_QUIET, cap: float = COUNTS_CAP) -> None:
        self.quiet, self.cap = quiet, cap
        # Tenant namespace -> (a digest of its Routes' versions, when it last changed).
        self._routes: dict[str, tuple[int, float]] = {}
        self._since: dict[str, float] = {}  # tenant namespace -> when its counts began to wait

    def saw(self, namespace: str, raws: Sequence[objects.RawObject], now: float) -> None:
        """A reconcile starts from the tenant's Routes `raws`."""
        digest = hash(frozenset(_versions(raws)))
        known = self._routes.get(namespace)
        if known is None or known[0] != digest:
            self._routes[namespace] = (digest, now)

    def wait(self, namespace: str, now: float, *, queued: bool = False) -> float | None:
        """Seconds until the tenant's counts may be written; None: now. `queued`: its Routes
        changed again during this reconcile (still changing)."""
        since = self._since.setdefault(namespace, now)
        changed = now if queued else self._routes.get(namespace, (0, now))[1]
        left = min(changed + self.quiet, since + self.cap) - now
        if left > 0:
            return left
        self.done(namespace)
        return None

    def done(self, namespace: str) -> None:
        """Nothing of the tenant waits any more."""
        self._since.pop(namespace, None)

    def forget(self, namespace: str) -> None:
        """The tenant has no Routes left."""
        self.done(namespace)
        self._routes.pop(namespace, None)


def _source(raw: objects.RawObject) -> Mapping[str, Any]:
    source = ((raw.get("spec") or {}).get("source") or {}).get("kubernetes") or {}
    return source if isinstance(source, dict) else {}


def _embedded(raw: objects.RawObject) -> Mapping[str, Any]:
    resource = _source(raw).get("resource")
    return resource if isinstance(resource, dict) else {}


def _embedded_services(raw: objects.RawObject) -> list[Mapping[str, Any]]:
    return [s for s in _source(raw).get("services") or () if isinstance(s, dict)]


def _kind_of(raw: objects.RawObject) -> str:
    return str(_embedded(raw).get("kind") or "Unknown")
