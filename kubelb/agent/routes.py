"""The generic L7 source controller: one tenant object of a `SourceKind` -> one Route in the
management cluster, and the served status back onto the object.

Reads: the kind (tenant cluster), tenant Services (a change re-enqueues the sources that
reference the Service or its `-nodeport` twin), Routes in the tenant namespace (management
cluster; mapped back to their source by the origin labels, for the status the manager reports).
Writes: on the management cluster, Route `<source uid>` (created with the manager's clean-up
finalizer, or replaced when its labels or spec really differ; never written when nothing
changed), and deletes Routes whose source is gone, replaced (same name, new UID) or out of scope
(the manager lets each go once nothing serves it: without a manager a deleted Route waits). On
the tenant cluster: finalizer `kubelb.k8c.io/cleanup` on the source, the Service twins
(`kubelb.agent.servicecopies`), the source's status (only when it changes), and Warning Events
for what cannot be served (found here, or reported by the manager in the Route's
ResourceAppliedSuccessfully condition).

Out of scope (another class, another Gateway): nothing is done, unless the object still carries
our finalizer (its class changed away): then its Route is deleted, its twins released, the status
we wrote cleared and the finalizer removed, as on deletion.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence

from kubelb.agent import common, routemapping, servicecopies
from kubelb.api import finalizers, labels
from kubelb.kube import controller, errors, events, objects, resources, store, watches, writer
from kubelb.observe import agent_metrics
from kubelb.util import logsafe

logger = logging.getLogger(__name__)

BACKENDS_INDEX = "backends"
ORIGIN_INDEX = "origin"
UPDATE_ATTEMPTS = 5


def backends_indexer(kind: routemapping.SourceKind) -> store.Indexer:
    """File sources under the `<ns>/<name>` of each Service they reference."""
    return lambda obj: [str(k) for k in kind.backends(obj)]


class Backends:
    """Which sources, of every kind, reference which Service: a twin is deleted only when no
    in-scope source of any kind references its original any more."""

    def __init__(self) -> None:
        self._sources: list[tuple[routemapping.SourceKind, store.Reader]] = []

    def add(self, kind: routemapping.SourceKind, sources: store.Reader) -> None:
        """`sources` must be indexed by BACKENDS_INDEX (`backends_indexer(kind)`)."""
        self._sources.append((kind, sources))

    def referenced(self, service: objects.ObjectKey) -> bool:
        return any(
            not objects.is_deleting(obj) and kind.in_scope(obj)
            for kind, sources in self._sources
            for obj in sources.by_index(BACKENDS_INDEX, str(service))
        )


class SourceReconciler:
    def __init__(
        self,
        *,
        kind: routemapping.SourceKind,
        tenant: common.Tenant,
        sources: store.Reader,
        services: store.Reader,
        routes: store.Reader,
        management: common.Management,
        tenant_writer: writer.Writer,
        recorder: events.EventRecorder,
        copies: servicecopies.ServiceCopies,
        namespace: str | None = None,
    ) -> None:
        self.kind = kind
        self.kind_label = routemapping.kind_label(kind.resource)
        self.name = kind.metric
        self.tenant = tenant
        self.sources = sources  # indexed by BACKENDS_INDEX
        self.services = services
        self.routes = routes  # indexed by ORIGIN_INDEX (routemapping.origin_index)
        self.management = management
        self.writer = tenant_writer
        self.recorder = recorder
        self.copies = copies
        self.primary = watches.Watch(
            resource=kind.resource, namespace=namespace, predicate=watches.spec_changed
        )
        self.watches: Sequence[watches.Watch] = (
            watches.Watch(resource=resources.SERVICES, namespace=namespace,
                          mapper=self.sources_of_service, predicate=watches.spec_changed),
        )  # fmt: skip

    def sources_of_service(self, service: objects.RawObject) -> Iterable[objects.ObjectKey]:
        """Mapper: the sources referencing a Service, or the Service a `-nodeport` name would be
        the twin of (ours, or a user's Service in the way of one)."""
        keys = {objects.key_of(service), servicecopies.original_key(service)}
        name = objects.name(service)
        if name.endswith(servicecopies.TWIN_SUFFIX):
            keys.add(objects.ObjectKey(objects.namespace(service),
                                       name.removesuffix(servicecopies.TWIN_SUFFIX)))  # fmt: skip
        return {objects.key_of(s) for k in keys
                for s in self.sources.by_index(BACKENDS_INDEX, str(k))}  # fmt: skip

    def source_keys(self, route: objects.RawObject) -> Iterable[objects.ObjectKey]:
        """Mapper for the linked Route informer: the source of a Route of this kind."""
        if objects.labels(route).get(labels.ORIGIN_RESOURCE_KIND) != self.kind_label:
            return ()
        key = routemapping.origin_key(route)
        return (key,) if key is not None else ()

    async def reconcile(self, key: objects.ObjectKey) -> controller.Result:
        metric = self.kind.metric
        started = time.monotonic()
        try:
            outcome = await self._reconcile(key)
        except Exception:
            agent_metrics.SOURCE_RECONCILES[metric].labels(
                key.namespace, agent_metrics.RESULT_ERROR
            ).inc()
            raise
        finally:
            agent_metrics.SOURCE_RECONCILE_SECONDS[metric].labels(key.namespace).observe(
                time.monotonic() - started
            )
        agent_metrics.SOURCE_RECONCILES[metric].labels(key.namespace, outcome).inc()
        self._count_managed(key.namespace)
        return controller.DONE

    async def _reconcile(self, key: objects.ObjectKey) -> str:
        obj = self.sources.get(key)
        if obj is None:
            # Gone without our finalizer having run (forced, or while the agent was down).
            await self._delete_routes(key, keep_uid="")
            return agent_metrics.RESULT_SUCCESS
        ours = finalizers.CLEANUP in objects.finalizers(obj)
        if objects.is_deleting(obj) or not self.kind.in_scope(obj):
            if not ours:
                return agent_metrics.RESULT_SKIPPED
            await self._clean_up(key, obj, clear_status=not objects.is_deleting(obj))
            return agent_metrics.RESULT_SUCCESS
        written = await self.writer.add_finalizer(self.kind.resource, obj, finalizers.CLEANUP)
        obj = written.obj if written.obj is not None else obj
        await self._delete_routes(key, keep_uid=objects.uid(obj))
        backends = self.kind.backends(obj)
        copies = await self.copies.replicate(backends)
        problems = [
            *self.kind.problems(obj),
            *(routemapping.Problem(routemapping.BACKEND_NOT_FOUND, f"Service {k} not found",
                                   routemapping.RESOLVED_REFS) for k in copies.missing),
            *(routemapping.Problem(
                routemapping.TWIN_NAME_TAKEN,
                f"Service {k.namespace}/{servicecopies.twin_name(k.name)} is not KubeLB's: "
                f"no NodePort copy of {k} can be made", routemapping.RESOLVED_REFS)
              for k in copies.blocked),
        ]  # fmt: skip
        desired = routemapping.desired_route(
            obj, self.kind.resource, namespace=self.tenant.namespace, services=copies.services
        )
        before = self.routes.get(objects.key_of(desired))
        route = await self._ensure_route(key, desired, before)
        dropped = _originals(before) - set(backends)
        await self.copies.release(sorted(dropped))
        refused = routemapping.refusal(route)
        if refused is not None:
            problems.append(refused)
        for problem in problems:
            await self.recorder.warning(obj, problem.reason, problem.message)
        await self.writer.update_status(
            self.kind.resource,
            key,
            self.kind.status(obj, routemapping.served_status(route), problems),
            current=obj,
        )
        return agent_metrics.RESULT_SUCCESS

    async def _ensure_route(
        self, key: objects.ObjectKey, desired: objects.RawObject, live: objects.RawObject | None
    ) -> objects.RawObject:
        """Create the Route or bring it to `desired`; the live object afterwards."""
        route_key = objects.key_of(desired)
        if live is None:
            try:
                created = await self.management.create(resources.ROUTES, desired)
            except errors.AlreadyExistsError:
                live = await self.management.get(resources.ROUTES, route_key)
            else:
                logger.info("%s %s: created Route %s", self.name, logsafe.shown(key), route_key)
                return created
        for attempt in range(1, UPDATE_ATTEMPTS + 1):
            # A Route being deleted is left to finish; its removal brings us back.
            if objects.is_deleting(live) or not routemapping.needs_update(live, desired):
                return live
            try:
                replaced = await self.management.replace(
                    resources.ROUTES, routemapping.updated(live, desired)
                )
            except errors.ConflictError:
                if attempt == UPDATE_ATTEMPTS:
                    raise
                live = await self.management.get(resources.ROUTES, route_key)
                continue
            logger.info("%s %s: updated Route %s", self.name, logsafe.shown(key), route_key)
            return replaced
        raise AssertionError("unreachable")

    async def _clean_up(
        self, key: objects.ObjectKey, obj: objects.RawObject, *, clear_status: bool
    ) -> None:
        originals = set(self.kind.backends(obj))
        await self._delete_routes(key, keep_uid="", originals=originals)
        await self.copies.release(sorted(originals))
        if clear_status:
            written = await self.writer.update_status(
                self.kind.resource, key, self.kind.cleared, current=obj
            )
            obj = written.obj if written.obj is not None else obj
        await self.writer.remove_finalizer(self.kind.resource, obj, finalizers.CLEANUP)
        logger.info("%s %s: cleaned up", self.name, logsafe.shown(key))

    async def _delete_routes(
        self, key: objects.ObjectKey, *, keep_uid: str,
        originals: set[objects.ObjectKey] | None = None,
    ) -> None:  # fmt: skip
        """Delete the Routes made from `key`, except the one named `keep_uid`; the Services
        they carried are released (or added to `originals` for the caller to release)."""
        released: set[objects.ObjectKey] = set()
        value = routemapping.origin_index_value(self.kind_label, key)
        for route in self.routes.by_index(ORIGIN_INDEX, value):
            if objects.name(route) == keep_uid or objects.is_deleting(route):
                continue
            released |= _originals(route)
            if await self.management.delete(resources.ROUTES, objects.key_of(route)):
                logger.info("%s %s: deleted Route %s", self.name, logsafe.shown(key),
                            objects.key_of(route))  # fmt: skip
        if originals is not None:
            originals |= released
        else:
            await self.copies.release(sorted(released))

    def _count_managed(self, namespace: str) -> None:
        count = sum(1 for obj in self.sources.list(namespace)
                    if not objects.is_deleting(obj) and self.kind.in_scope(obj))  # fmt: skip
        agent_metrics.MANAGED_SOURCES[self.kind.metric].labels(namespace).set(count)


def _originals(route: objects.RawObject | None) -> set[objects.ObjectKey]:
    """The Services (originals, not twins) a Route carries copies of."""
    if route is None:
        return set()
    services = objects.lookup(route, "spec.source.kubernetes.services") or ()
    return {servicecopies.original_key(s) for s in services if isinstance(s, dict)}
