"""Service controller: tenant Services of type LoadBalancer -> KubeLB LoadBalancers, and the
address back onto the Service.

Reads: Services (tenant cluster, all namespaces or the one configured), LoadBalancers in the
tenant namespace (management cluster; mapped back to their Service by the origin labels).
Writes: on the management cluster, LoadBalancer `<service uid>` (create, or replace when the
spec, annotations or labels really differ; `kubelb.agent.lbmapping`), and deletes LoadBalancers
whose Service is gone, replaced (same name, new UID) or out of scope. On the tenant Service:
finalizer `kubelb.k8c.io/cleanup` (legacy `kubelb.k8c.io/lb-finalizer` removed),
`status.loadBalancer` copied from the LoadBalancer when it differs (not with
`--enable-cloud-provider=false`: there another implementation owns that status and copying it
would feed our own address back as the endpoint), and Events: why the Service is still pending
(the LoadBalancer's Ready condition), ports that were skipped, the address once assigned.

Out of scope (other types, or another class with `--use-loadbalancer-class`): nothing is done,
unless the Service still carries our finalizer (its type changed): then its LoadBalancer is
deleted, the status we wrote is cleared and the finalizer removed, as on deletion.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from typing import Any

from kubelb.agent import common, lbmapping
from kubelb.api import conditions, finalizers, meta
from kubelb.kube import controller, errors, events, objects, resources, store, watches, writer
from kubelb.observe import agent_metrics
from kubelb.util import logsafe

logger = logging.getLogger(__name__)

ORIGIN_INDEX = "origin"
UPDATE_ATTEMPTS = 5
# LoadBalancer Ready reasons that mean "still on its way", reported as Normal Events.
_WAITING_REASONS = frozenset(
    {conditions.PENDING, conditions.NO_ADDRESS, conditions.ENVOY_NOT_READY}
)


def origin_index(lb: objects.RawObject) -> Iterable[str]:
    key = lbmapping.origin_key(lb)
    return (str(key),) if key is not None else ()


# A Service matters when anything but status changed, or its load-balancer status changed
# (the endpoints without the cloud provider; a status someone else overwrote, otherwise).
SERVICE_PREDICATE = watches.any_of(
    watches.generation_changed,
    watches.fields_changed(
        "metadata.labels",
        "metadata.annotations",
        "metadata.deletionTimestamp",
        "status.loadBalancer",
    ),
)


def service_keys(lb: objects.RawObject) -> Iterable[objects.ObjectKey]:
    """Mapper for the linked LoadBalancer informer."""
    key = lbmapping.origin_key(lb)
    return (key,) if key is not None else ()


class ServiceReconciler:
    name = "services"

    def __init__(
        self,
        *,
        tenant: common.Tenant,
        services: store.Reader,
        loadbalancers: store.Reader,
        management: common.Management,
        tenant_writer: writer.Writer,
        recorder: events.EventRecorder,
        use_loadbalancer_class: bool = False,
        cloud_provider: bool = True,
        namespace: str | None = None,
    ) -> None:
        self.tenant = tenant
        self.services = services
        self.loadbalancers = loadbalancers  # indexed by ORIGIN_INDEX
        self.management = management
        self.writer = tenant_writer
        self.recorder = recorder
        self.use_loadbalancer_class = use_loadbalancer_class
        self.cloud_provider = cloud_provider
        self.primary = watches.Watch(
            resource=resources.SERVICES, namespace=namespace, predicate=SERVICE_PREDICATE
        )
        self.watches: Sequence[watches.Watch] = ()

    async def reconcile(self, key: objects.ObjectKey) -> controller.Result:
        started = time.monotonic()
        try:
            result, outcome = await self._reconcile(key)
        except Exception:
            agent_metrics.SERVICE_RECONCILES.labels(key.namespace, agent_metrics.RESULT_ERROR).inc()
            raise
        finally:
            agent_metrics.SERVICE_RECONCILE_SECONDS.labels(key.namespace).observe(
                time.monotonic() - started
            )
        agent_metrics.SERVICE_RECONCILES.labels(key.namespace, outcome).inc()
        self._count_managed(key.namespace)
        return result

    async def _reconcile(self, key: objects.ObjectKey) -> tuple[controller.Result, str]:
        service = self.services.get(key)
        if service is None:
            # Gone without our finalizer having run (forced, or while the agent was down).
            await self._delete_load_balancers(key, keep_uid="")
            return controller.DONE, agent_metrics.RESULT_SUCCESS
        ours = _has_our_finalizer(service)
        in_scope = lbmapping.in_scope(service, use_loadbalancer_class=self.use_loadbalancer_class)
        if objects.is_deleting(service) or not in_scope:
            if not ours:
                return controller.DONE, agent_metrics.RESULT_SKIPPED
            await self._clean_up(key, service, clear_status=not objects.is_deleting(service))
            return controller.DONE, agent_metrics.RESULT_SUCCESS
        service = await self._ensure_finalizer(service)
        await self._delete_load_balancers(key, keep_uid=objects.uid(service))
        mapping = lbmapping.desired_load_balancer(
            service, namespace=self.tenant.namespace, cloud_provider=self.cloud_provider
        )
        for problem in mapping.skipped:
            await self.recorder.warning(service, problem.reason, problem.message)
        if mapping.lb is None:
            assert mapping.blocker is not None
            await self._delete_load_balancers(key, keep_uid="")
            waiting = mapping.blocker.reason == lbmapping.WAITING_FOR_ADDRESS
            await self.recorder.record(
                service,
                "Normal" if waiting else "Warning",
                mapping.blocker.reason,
                mapping.blocker.message,
            )
            return controller.DONE, agent_metrics.RESULT_SUCCESS
        lb = await self._ensure_load_balancer(service, mapping.lb)
        await self._report(key, service, lb)
        return controller.DONE, agent_metrics.RESULT_SUCCESS

    async def _ensure_finalizer(self, service: objects.RawObject) -> objects.RawObject:
        written = await self.writer.add_finalizer(resources.SERVICES, service, finalizers.CLEANUP)
        current = written.obj if written.obj is not None else service
        if finalizers.LEGACY_LB_FINALIZER in objects.finalizers(current):
            removed = await self.writer.remove_finalizer(
                resources.SERVICES, current, finalizers.LEGACY_LB_FINALIZER
            )
            current = removed.obj if removed.obj is not None else current
        return current

    async def _ensure_load_balancer(
        self, service: objects.RawObject, desired: objects.RawObject
    ) -> objects.RawObject:
        """Create the LoadBalancer or bring it to `desired`; the live object afterwards."""
        lb_key = objects.key_of(desired)
        live = self.loadbalancers.get(lb_key)
        if live is None:
            try:
                created = await self.management.create(resources.LOAD_BALANCERS, desired)
            except errors.AlreadyExistsError:
                live = await self.management.get(resources.LOAD_BALANCERS, lb_key)
            else:
                logger.info("service %s: created LoadBalancer %s", objects.key_of(service), lb_key)
                return created
        for attempt in range(1, UPDATE_ATTEMPTS + 1):
            if not lbmapping.needs_update(live, desired):
                return live
            try:
                replaced = await self.management.replace(
                    resources.LOAD_BALANCERS, lbmapping.updated(live, desired)
                )
            except errors.ConflictError:
                if attempt == UPDATE_ATTEMPTS:
                    raise
                live = await self.management.get(resources.LOAD_BALANCERS, lb_key)
                continue
            logger.info("service %s: updated LoadBalancer %s", objects.key_of(service), lb_key)
            return replaced
        raise AssertionError("unreachable")

    async def _report(
        self, key: objects.ObjectKey, service: objects.RawObject, lb: objects.RawObject
    ) -> None:
        """Copy the LB's address to the Service; say why there is none yet."""
        lb_status = lbmapping.with_hostname(
            objects.lookup(lb, "status.loadBalancer") or {},
            objects.lookup(lb, "status.hostname.hostname"),
        )
        ingress = lbmapping.ingress_of(lb)
        if self.cloud_provider:
            written = await self.writer.update_status(
                resources.SERVICES,
                key,
                lambda s: (
                    s
                    if lbmapping.same_status(s.get("loadBalancer"), lb_status)
                    else {**s, "loadBalancer": lb_status}
                ),
                current=service,
            )
            if written.changed and ingress:
                shown = ", ".join(str(i.get("ip") or i.get("hostname")) for i in ingress)
                await self.recorder.normal(
                    service, conditions.ADDRESS_ASSIGNED, f"load balancer address: {shown}"
                )
        ready = lbmapping.ready_condition(lb)
        lb_name = f"{self.tenant.namespace}/{objects.name(lb)}"
        if ingress:
            # Served, perhaps in part: endpoints the hub refused are news for the Service too.
            if ready is not None and ready.get("reason") == conditions.ENDPOINT_REFUSED:
                message = f"LoadBalancer {lb_name}: {ready.get('message') or ''}"
                await self.recorder.warning(service, conditions.ENDPOINT_REFUSED, message)
            return
        served = ready is not None and ready.get("status") == meta.ConditionStatus.TRUE
        if ready is None or served or not ready.get("reason"):
            await self.recorder.normal(
                service,
                conditions.PENDING,
                f"waiting for KubeLB to assign an address to LoadBalancer {lb_name}",
            )
            return
        reason = str(ready["reason"])
        message = f"LoadBalancer {lb_name}: {ready.get('message') or reason}"
        if reason in _WAITING_REASONS:
            await self.recorder.normal(service, reason, message)
        else:
            await self.recorder.warning(service, reason, message)

    async def _clean_up(
        self, key: objects.ObjectKey, service: objects.RawObject, *, clear_status: bool
    ) -> None:
        await self._delete_load_balancers(key, keep_uid="")
        # The cache may not show a LoadBalancer created moments ago: delete it by name too.
        own = objects.ObjectKey(self.tenant.namespace, objects.uid(service))
        if self.loadbalancers.get(own) is None:
            await self.management.delete(resources.LOAD_BALANCERS, own)
        if clear_status and self.cloud_provider and objects.lookup(service, "status.loadBalancer"):
            written = await self.writer.update_status(
                resources.SERVICES, key, lambda s: {**s, "loadBalancer": {}}, current=service
            )
            service = written.obj if written.obj is not None else service
        for finalizer in (finalizers.LEGACY_LB_FINALIZER, finalizers.CLEANUP):
            if finalizer in objects.finalizers(service):
                removed = await self.writer.remove_finalizer(resources.SERVICES, service, finalizer)
                if removed.obj is None:
                    return
                service = removed.obj
        logger.info("service %s: cleaned up", logsafe.shown(key))

    async def _delete_load_balancers(self, key: objects.ObjectKey, *, keep_uid: str) -> None:
        """Delete the LoadBalancers made from Service `key`, except the one named `keep_uid`."""
        for lb in self.loadbalancers.by_index(ORIGIN_INDEX, str(key)):
            if objects.name(lb) == keep_uid or objects.is_deleting(lb):
                continue
            if await self.management.delete(resources.LOAD_BALANCERS, objects.key_of(lb)):
                logger.info(
                    "service %s: deleted LoadBalancer %s", logsafe.shown(key), objects.key_of(lb)
                )

    def _count_managed(self, namespace: str) -> None:
        count = sum(
            1
            for s in self.services.list(namespace)
            if not objects.is_deleting(s)
            and lbmapping.in_scope(s, use_loadbalancer_class=self.use_loadbalancer_class)
        )
        agent_metrics.MANAGED_SERVICES.labels(namespace).set(count)


def _has_our_finalizer(service: Any) -> bool:
    present = objects.finalizers(service)
    return finalizers.CLEANUP in present or finalizers.LEGACY_LB_FINALIZER in present
