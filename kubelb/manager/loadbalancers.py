"""LoadBalancer controller (leader only): ports, the management Service, status.

Reads: LoadBalancers in tenant namespaces (labelled managed-by=kubelb), the tenant's Addresses,
Tenant and Config, and the management Services `envoy-<lb>` (their status carries the external
address). Writes: the finalizer `kubelb.k8c.io/cleanup`, Service `envoy-<lb>` (owned by the
LoadBalancer; targetPort = the allocated Envoy listener port; NodePorts and a selector for the
tenant's Envoy pods as the manager's `infrastructure.Infra` says), and the LoadBalancer's status:
`service.ports` (the persisted port allocation, with `upstreamTargetPort`), `loadBalancer`
copied from the Service, and a `Ready` condition whose reason says why it is pending:
EndpointRefused (an endpoint names an address the tenant's endpoint policy refuses; the other
endpoints are served, and a Warning Event on the LoadBalancer says so too; a LoadBalancer that
is not served for one of the reasons below as well names it after the refusal), InvalidSpec,
AddressesNotFound, NoAddress (or the infrastructure's own reason, such as the
address pool's PortConflict / AddressPoolExhausted), ServiceTypeNotServed (a spec.type the
infrastructure gives no address, so nothing would ever bind it), EnvoyNotReady,
RejectedByDataplane (the tenant's Envoy NACKed a configuration that holds this LoadBalancer, or
one that names none: Envoy's error detail is the message), TenantDisabled, ConfigDisabled;
Reconciled when served. The agent copies `loadBalancer` into the tenant's
Service. Hostnames (`kubelb.manager.hostnames`): `status.hostname`, a `Hostname` condition, the
finalizer `kubelb.k8c.io/cleanup-hostname` and the hostname's cert-manager Certificate.

When the infrastructure places Services itself (`Requeue.address_wait`, the address pool), a
LoadBalancer whose Service was just created is not reported NoAddress at once: the pool's status
write reconciles it again within moments, so its first status is usually the final one (one API
write fewer per LoadBalancer in a burst); a requeue reports NoAddress if the address is slow
after all.

Ports are allocated per tenant namespace, deterministically and from what the statuses record
(`kubelb.manager.ports`), so a restart changes nothing (KubeLB #409). Every write is skipped when
the live object already says the same. Deleting a LoadBalancer, or disabling load balancing for
its tenant, deletes its Service and so frees its ports.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kubelb.api import (
    conditions,
    config as api_config,
    finalizers,
    loadbalancer as api_lb,
    meta,
    ports as api_ports,
    tenant as api_tenant,
)
from kubelb.irbuild import loadbalancers as irbuild
from kubelb.kube import (
    controller,
    errors,
    events as kevents,
    objects,
    resources,
    watches,
    writer as kwriter,
)
from kubelb.manager import (
    common,
    effective as tenant_effective,
    hostnames,
    infrastructure,
    lbservice,
    ports,
    propagation,
)
from kubelb.observe import manager_metrics
from kubelb.util import logsafe

logger = logging.getLogger(__name__)

ListenPorts = Mapping[api_ports.PortKey, int]


@dataclass(frozen=True, slots=True)
class Rejection:
    """The tenant's Envoy rejected its configuration (an xDS NACK that still stands)."""

    detail: str  # Envoy's error detail
    # Listener and cluster names the detail mentions; empty when it names none we know.
    names: frozenset[str] = frozenset()

    def affects(self, piece: irbuild.Piece | None) -> bool:
        """Whether a LoadBalancer with `piece` is concerned (all are when nothing is named)."""
        if not self.names or piece is None:
            return True
        mine = {li.name for li in piece.listeners} | {c.name for c in piece.clusters}
        return bool(self.names & mine)


# Tenant namespace -> its standing Rejection, if any (the composition root reads the xDS cache).
Rejections = Callable[[str], Rejection | None]


@dataclass(frozen=True, slots=True)
class Verdict:
    """The `Ready` condition to set."""

    ready: bool
    reason: str
    message: str
    # EndpointRefused only: the refusal alone (what the Warning Event says), and the reason the
    # LoadBalancer is not served besides, when it is not (its message says both).
    refusal: str | None = None
    unserved: str | None = None


def verdict(
    lb: api_lb.LoadBalancer,
    *,
    missing_addresses: Sequence[str],
    problems: Sequence[str],
    refused: Sequence[str] = (),
    service: Mapping[str, Any] | None,
    address_problem: tuple[str, str] | None,
    envoy_ready: bool,
    placed: bool = True,
    rejected: str | None = None,
    envoy_problem: str | None = None,
) -> Verdict:
    """Why the LoadBalancer is or is not served, the most fundamental reason first. Pure.

    Refused endpoints outrank every later reason, whose verdict is then appended to the message:
    a LoadBalancer the pool could not place, say, says so even while it also names a hub
    socket."""
    if missing_addresses:
        names = ", ".join(sorted(missing_addresses))
        return Verdict(False, conditions.ADDRESSES_NOT_FOUND,
                       f"Addresses {names} not found in the tenant namespace (the agent writes "
                       "Addresses/default from the tenant's Ready nodes)")  # fmt: skip
    if refused:
        refusal = "; ".join((*refused, *problems))
        rest = verdict(lb, missing_addresses=(), problems=(), service=service,
                       address_problem=address_problem, envoy_ready=envoy_ready, placed=placed,
                       rejected=rejected, envoy_problem=envoy_problem)  # fmt: skip
        if rest.ready:
            return Verdict(False, conditions.ENDPOINT_REFUSED, refusal, refusal=refusal)
        return Verdict(False, conditions.ENDPOINT_REFUSED,
                       f"{refusal}; not served: {rest.reason}: {rest.message}", refusal=refusal,
                       unserved=rest.reason)  # fmt: skip
    if problems:
        return Verdict(False, conditions.INVALID_SPEC, "; ".join(problems))
    name = lbservice.service_name(lb.name)
    if lb.spec.type == "LoadBalancer" and not _ingress(service):
        if address_problem is not None:
            return Verdict(False, address_problem[0], f"Service {name}: {address_problem[1]}")
        return Verdict(False, conditions.NO_ADDRESS,
                       f"waiting for an external address on Service {name} (from MetalLB, a "
                       "cloud load balancer, or the manager's address pool)")  # fmt: skip
    if not placed and lb.spec.type != "LoadBalancer":
        # Only an external address places such an infrastructure's listeners, and only
        # type LoadBalancer gets one: waiting would never end.
        return Verdict(False, conditions.SERVICE_TYPE_NOT_SERVED,
                       f"spec.type {lb.spec.type}: the data plane binds a LoadBalancer at the "
                       f"external address of Service {name}, which the address pool (process "
                       "and standalone mode) gives to spec.type LoadBalancer only; set "
                       "spec.type: LoadBalancer")  # fmt: skip
    if not envoy_ready:
        return Verdict(False, conditions.ENVOY_NOT_READY,
                       f"the tenant's Envoy (envoy-{lb.namespace}) is not ready"
                       + (f": {envoy_problem}" if envoy_problem else ""))  # fmt: skip
    if rejected is not None:
        return Verdict(False, conditions.REJECTED_BY_DATAPLANE,
                       f"the tenant's Envoy rejected its configuration and serves its last good "
                       f"one: {rejected}")  # fmt: skip
    where = ", ".join(_ingress(service)) or f"Service {name} ({lb.spec.type})"
    return Verdict(True, conditions.RECONCILED, f"served at {where}")


def with_ready(
    current: Any, v: Verdict, generation: int | None, now: str | None = None
) -> list[dict[str, Any]]:
    """`status.conditions` with Ready set to `v` (lastTransitionTime kept unless it flips)."""
    parsed = []
    for item in current or ():
        try:
            parsed.append(meta.Condition.model_validate(item))
        except ValueError:
            continue  # a malformed condition someone else wrote: replaced, not fatal
    status = meta.ConditionStatus.TRUE if v.ready else meta.ConditionStatus.FALSE
    updated = meta.set_condition(parsed, type=conditions.READY, status=status, reason=v.reason,
                                 message=v.message[:32768], observed_generation=generation,
                                 now=now)  # fmt: skip
    return [c.model_dump(by_alias=True, exclude_none=True, mode="json") for c in updated]


class LoadBalancerReconciler:
    name = "loadbalancers"

    def __init__(
        self,
        inputs: common.Inputs,
        writer: kwriter.Writer,
        infra: infrastructure.Infra,
        rejections: Rejections | None = None,
        events: kevents.EventRecorder | None = None,
    ) -> None:
        """`rejections`: what the tenants' Envoys NACKed (None: nothing reports it); `events`:
        where refused endpoints are also reported (None: the condition only)."""
        self.inputs = inputs
        self.writer = writer
        self.infra = infra
        self.rejections = rejections
        self.events = events
        self.hostnames = hostnames.HostnameStep(writer)
        self.primary = watches.Watch(resource=resources.LOAD_BALANCERS,
                                     predicate=watches.spec_changed)  # fmt: skip
        service_fields = watches.fields_changed("status.loadBalancer", "spec", "metadata.labels",
                                                "metadata.annotations")  # fmt: skip
        self.watches: Sequence[watches.Watch] = (
            inputs.watch_services(watches.label_keys(common.SERVICE_SELECTOR), service_fields),
            inputs.watch_namespaces(inputs.lbs_of_namespace),
            inputs.watch_config(inputs.all_lbs),
            inputs.watch_tenants(inputs.lbs_of_tenant),
            watches.Watch(
                resource=resources.ADDRESSES,
                mapper=inputs.lbs_of_namespace,
                predicate=watches.generation_changed,
            ),
            *infra.lb_watches,
        )
        self._ports_by_namespace: dict[str, tuple[int, int]] = {}
        # Per namespace: the index version and the allocation computed at it. A burst of n
        # creates would otherwise allocate the whole namespace n times over.
        self._allocations: dict[str, tuple[int, ports.Allocation]] = {}

    async def reconcile(self, key: objects.ObjectKey) -> controller.Result:
        raw = self.inputs.load_balancers.store.get(key)
        if raw is None or not self.inputs.managed(key.namespace):
            self._count_namespace(key.namespace)
            return controller.DONE
        if objects.is_deleting(raw):
            await self._clean_up(raw)
            self._count_namespace(key.namespace)
            return controller.DONE
        disabled = self.inputs.disabled_reason(key.namespace)
        if disabled is not None:
            await self._disable(raw, disabled)
            return controller.DONE
        parsed = self.inputs.load_balancer(raw)
        if parsed.model is None:
            logger.warning("LoadBalancer %s is invalid: %s", logsafe.shown(key), parsed.error)
            message = f"the LoadBalancer does not validate: {parsed.error}"
            await self._write_status(raw, Verdict(False, conditions.INVALID_SPEC, message))
            return controller.DONE
        lb = parsed.model
        raw = (await self.writer.add_finalizer(resources.LOAD_BALANCERS, raw,
                                               finalizers.CLEANUP)).obj or raw  # fmt: skip
        for legacy in finalizers.LEGACY:
            raw = (await self.writer.remove_finalizer(resources.LOAD_BALANCERS, raw,
                                                      legacy)).obj or raw  # fmt: skip
        policy = hostnames.settings(self.inputs.config(), self.inputs.tenant(key.namespace))
        raw, named = await self.hostnames.apply(raw, lb, policy)
        listen = self._allocate(lb)
        effective = self.inputs.effective(key.namespace)
        service, created = await self._ensure_service(raw, lb, listen, effective)
        result = self._verdict(lb, listen, service)
        requeue = self.infra.requeue
        pending = (result.reason, result.unserved)
        if created and requeue.address_wait and conditions.NO_ADDRESS in pending:
            # The manager's own pool places a Service it has just seen within moments, and its
            # status write reconciles this LB again: a NoAddress now would be overwritten at
            # once. The requeue reports NoAddress if the address is slow after all.
            self._count_namespace(key.namespace)
            return controller.Result(requeue_after=requeue.address_wait)
        load_balancer = (service.get("status") or {}).get("loadBalancer") or {}
        status_ports = lbservice.desired_status_service_ports(lb, listen)
        await self._write_status(raw, result, load_balancer=load_balancer, ports=status_ports,
                                 hostname=named)  # fmt: skip
        self._count_namespace(key.namespace)
        if conditions.ENVOY_NOT_READY in pending and requeue.not_ready:
            return controller.Result(requeue_after=requeue.not_ready)
        return controller.DONE

    # --- steps ---
    def _allocate(self, lb: api_lb.LoadBalancer) -> ListenPorts:
        """Allocate for the whole tenant; return this LoadBalancer's listener ports."""
        mine = self.inputs.lb_index.keeps_recorded(lb)
        if mine is None:
            mine = self._allocate_all(lb)
        self._ports_by_namespace[lb.namespace] = self.inputs.lb_index.held(lb.namespace)
        manager_metrics.ALLOCATED_PORTS.set(sum(n for n, _ in self._ports_by_namespace.values()))
        manager_metrics.ALLOCATOR_ENDPOINTS.set(
            sum(n for _, n in self._ports_by_namespace.values())
        )
        return mine

    def _allocate_all(self, lb: api_lb.LoadBalancer) -> ListenPorts:
        inputs = self.inputs.lb_index.allocation_inputs(lb.namespace)
        indexed = inputs.models.get(lb.name) is lb
        memo = self._allocations.get(lb.namespace)
        if indexed and memo is not None and memo[0] == inputs.version:
            allocation = memo[1]  # nothing in the namespace changed since
        else:
            wanted: Mapping[str, Iterable[api_ports.PortKey]] = inputs.wanted
            recorded: Mapping[str, Mapping[api_ports.PortKey, int]] = inputs.recorded
            if not indexed:  # a version the index does not hold (yet): allocate with this one
                own = tuple(sorted({api_ports.port_key(p) for p in lb.spec.ports}))
                wanted = {**inputs.wanted, lb.name: own}
                recorded = {**inputs.recorded, lb.name: {
                    k: p for k, p in lbservice.recorded_ports(lb).items() if k in own}}  # fmt: skip
            allocation = ports.allocate(wanted, recorded)
            if indexed:
                self._allocations[lb.namespace] = (inputs.version, allocation)
        mine = allocation.ports[lb.name]
        previous = lbservice.recorded_ports(lb)
        moved = sum(1 for k, port in previous.items() if k in mine and mine[k] != port)
        if moved:
            logger.warning("LoadBalancer %s/%s: %d recorded port(s) collided with another "
                           "LoadBalancer's and were moved", logsafe.shown(lb.namespace),
                           logsafe.shown(lb.name), moved)  # fmt: skip
            manager_metrics.COLLISIONS_HEALED.inc(moved)
        return mine

    async def _ensure_service(
        self,
        raw: objects.RawObject,
        lb: api_lb.LoadBalancer,
        listen: ListenPorts,
        effective: tenant_effective.Effective,
    ) -> tuple[objects.RawObject, bool]:
        """The Service after the write, and whether it was created just now."""
        name = lbservice.service_name(lb.name)
        live = self.inputs.service(lb.namespace, name)
        # Applied without the live object's extras: server-side apply keeps other managers'
        # annotations and allocated nodePorts, and drops annotations we no longer propagate.
        shape = self.infra.service_shape
        desired = lbservice.desired_service(lb, listen, effective, None,
                                            node_ports=shape.node_ports, selector=shape.selector,
                                            recorded=propagation.recorded(live))  # fmt: skip
        desired["metadata"]["ownerReferences"] = [objects.owner_reference(raw)]
        written = await self.writer.ensure(resources.SERVICES, desired, current=live)
        if written.changed:
            logger.info("LoadBalancer %s/%s: Service %s %s", logsafe.shown(lb.namespace),
                        logsafe.shown(lb.name), logsafe.shown(name),
                        "updated" if live is not None else "created")  # fmt: skip
        return written.obj or desired, written.changed and live is None

    def _verdict(
        self, lb: api_lb.LoadBalancer, listen: ListenPorts, service: objects.RawObject
    ) -> Verdict:
        ns = lb.namespace
        missing = sorted({e.addresses_reference.name for e in lb.spec.endpoints
                          if e.addresses_reference is not None and e.addresses_reference.name
                          and objects.ObjectKey(ns, e.addresses_reference.name)
                          not in self.inputs.addresses.store})  # fmt: skip
        problems: tuple[str, ...] = ()
        refused: tuple[str, ...] = ()
        piece: irbuild.Piece | None = None
        placement = self.infra.placement(lb, service, listen)
        if not missing:
            # The piece envoycp serves, when the LoadBalancer is placed: built once for both.
            # Not placed yet (no address): problems do not depend on where it will bind.
            where = placement or irbuild.Placement("0.0.0.0", listen)
            policy = self.inputs.endpoint_policy(ns)
            piece = self.inputs.pieces.get(lb, where, self.inputs.addresses_in(ns), policy)
            problems = irbuild.assemble(ns, [piece]).problems.get(piece.key, ())
            refused = piece.refused
        if not lb.spec.ports:
            problems = (*problems, "spec.ports is empty: nothing to expose")
        problem = self.infra.address_problem(ns, lbservice.service_name(lb.name))
        rejection = self.rejections(ns) if self.rejections is not None else None
        rejected = rejection.detail if rejection and rejection.affects(piece) else None
        return verdict(lb, missing_addresses=missing, problems=problems, refused=refused,
                       service=service, address_problem=problem,
                       envoy_ready=self.infra.ready(ns), placed=placement is not None,
                       rejected=rejected,
                       envoy_problem=self.infra.not_ready_message(ns))  # fmt: skip

    async def _write_status(
        self,
        raw: objects.RawObject,
        result: Verdict,
        *,
        load_balancer: Mapping[str, Any] | None = None,
        ports: Sequence[Mapping[str, Any]] = (),
        hostname: hostnames.Decision | None = None,
    ) -> None:
        """`hostname`: the hostname and its condition to record (None: left as they are)."""
        generation = objects.generation(raw)

        def mutate(status: dict[str, Any]) -> dict[str, Any]:
            status["loadBalancer"] = dict(load_balancer or {})
            status["service"] = {"ports": [dict(p) for p in ports]} if ports else {}
            conditions_ = with_ready(status.get("conditions"), result, generation)
            if hostname is not None:
                status = hostnames.with_hostname(status, hostname)
                conditions_ = hostnames.with_condition(conditions_, hostname, generation)
            status["conditions"] = conditions_
            return status

        written = await self.writer.update_status(resources.LOAD_BALANCERS, objects.key_of(raw),
                                                  mutate, current=raw)  # fmt: skip
        if written.changed:
            logger.info("LoadBalancer %s: Ready=%s %s: %s", objects.key_of(raw), result.ready,
                        result.reason, result.message)  # fmt: skip
            if result.reason == conditions.ENDPOINT_REFUSED and self.events is not None:
                # The refusal alone: the same Event again while the rest changes.
                await self.events.warning(raw, result.reason, result.refusal or result.message)

    async def _delete_service(self, raw: objects.RawObject) -> None:
        key = objects.ObjectKey(objects.namespace(raw), lbservice.service_name(objects.name(raw)))
        if key in self.inputs.services.store and await self.writer.delete(resources.SERVICES, key):
            logger.info(
                "LoadBalancer %s: Service %s deleted", objects.key_of(raw), logsafe.shown(key.name)
            )

    async def _clean_up(self, raw: objects.RawObject) -> None:
        await self._delete_service(raw)
        current: objects.RawObject | None = await self.hostnames.clean_up(raw)
        for finalizer in (finalizers.CLEANUP, *finalizers.LEGACY):
            if current is None:
                return
            current = (await self.writer.remove_finalizer(resources.LOAD_BALANCERS, current,
                                                          finalizer)).obj  # fmt: skip

    async def _disable(self, raw: objects.RawObject, by: str) -> None:
        await self._clean_up(raw)
        reason = conditions.TENANT_DISABLED if by == "Tenant" else conditions.CONFIG_DISABLED
        message = f"load balancing is disabled by the {by} (spec.loadBalancer.disable)"
        try:
            await self._write_status(raw, Verdict(False, reason, message))
        except errors.NotFoundError:
            return  # deleted meanwhile: nothing to report on
        self._count_namespace(objects.namespace(raw))

    def _count_namespace(self, namespace: str) -> None:
        count = self.inputs.lb_index.count(namespace)
        if self.inputs.disabled_reason(namespace) is not None:
            count = 0
        manager_metrics.LOAD_BALANCERS.labels(
            namespace=namespace, tenant=api_tenant.tenant_name_for(namespace),
            topology=api_config.TOPOLOGY,
        ).set(count)  # fmt: skip
        if count == 0:
            self._ports_by_namespace.pop(namespace, None)
            self._allocations.pop(namespace, None)


def observe(name: str, key: objects.ObjectKey, result: str, seconds: float) -> None:
    """`controller.Observer` for the LoadBalancer controller's metrics."""
    manager_metrics.LB_RECONCILES.labels(namespace=key.namespace, result=result).inc()
    manager_metrics.LB_RECONCILE_SECONDS.labels(namespace=key.namespace).observe(seconds)


def _ingress(service: Mapping[str, Any] | None) -> list[str]:
    status = (service or {}).get("status") or {}
    entries = (status.get("loadBalancer") or {}).get("ingress") or []
    return [str(e.get("ip") or e.get("hostname")) for e in entries
            if isinstance(e, dict) and (e.get("ip") or e.get("hostname"))]  # fmt: skip
