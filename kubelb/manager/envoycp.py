"""Envoy control, snapshot half (every replica, not leader-elected; inventory §3.6).

Reads, per tenant namespace (the work-queue key; node id = namespace): its LoadBalancers, its
Addresses, the Tenant and Config (load balancing disabled?) and, for placement, either the
allocated ports recorded in each LoadBalancer's status (`kubernetes_placement`: Envoy binds
0.0.0.0 on the allocated port) or the address in each management Service's status
(`process_placement`: Envoy binds that address on the LoadBalancer's own ports). Writes
nothing to the API server: it builds the tenant's IR with `kubelb.irbuild` and hands it to a
`Publisher` (the composition root translates it to xDS and sets the snapshot). A tenant with no
LoadBalancers left is cleared.

Only the tenant whose objects changed is rebuilt, and an IR equal to the one published last is
not published again, so our own status writes cost no translation. A rebuild reuses the IR piece
of every LoadBalancer whose object version, placement and the tenant's Addresses are unchanged
(the pieces are kept per tenant for its current LoadBalancers only), so a change costs one
LoadBalancer's build plus assembly; the composition root also delays each tenant's rebuild
briefly so a burst of changes becomes one rebuild. LoadBalancers that are not placed yet (no
recorded ports or no address) are left out until they are.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from kubelb.api import addresses as api_addresses, loadbalancer as api_lb, ports as api_ports
from kubelb.ir import proxy
from kubelb.irbuild import loadbalancers as irbuild
from kubelb.kube import controller, objects, resources, watches
from kubelb.manager import common, lbservice
from kubelb.observe import manager_metrics

logger = logging.getLogger(__name__)

# (LoadBalancer, its management Service or None) -> where its listeners bind, None = not yet
Placer = Callable[[api_lb.LoadBalancer, Mapping[str, Any] | None], irbuild.Placement | None]


class Publisher(Protocol):
    """Receives each tenant's IR; the xDS side of the composition root implements it."""

    def publish(self, config: proxy.ProxyConfig) -> bool:
        """Serve `config` to node `config.node_id`; False when nothing changed or it failed."""

    def clear(self, node_id: str) -> None:
        """Forget the node's configuration."""


def kubernetes_placement(
    lb: api_lb.LoadBalancer, service: Mapping[str, Any] | None
) -> irbuild.Placement | None:
    """All interfaces, on the ports the LoadBalancer controller recorded in the status."""
    recorded = lbservice.recorded_ports(lb)
    if not lb.spec.ports or any(api_ports.port_key(p) not in recorded for p in lb.spec.ports):
        return None
    return irbuild.Placement("0.0.0.0", recorded)


def process_placement(
    lb: api_lb.LoadBalancer, service: Mapping[str, Any] | None
) -> irbuild.Placement | None:
    """The address the manager's pool wrote into the management Service, on the LB's ports."""
    status = (service or {}).get("status") or {}
    for entry in (status.get("loadBalancer") or {}).get("ingress") or ():
        if isinstance(entry, dict) and entry.get("ip"):
            return irbuild.Placement(str(entry["ip"]))
    return None


class SnapshotReconciler:
    name = "envoycp"

    def __init__(self, inputs: common.Inputs, publisher: Publisher, *, placer: Placer) -> None:
        self.inputs = inputs
        self.publisher = publisher
        self.placer = placer
        self.primary = inputs.watch_namespaces(common.tenant_of)
        lb_fields = watches.any_of(watches.spec_changed,
                                   watches.fields_changed("status.service.ports"))  # fmt: skip
        self.watches: Sequence[watches.Watch] = (
            watches.Watch(resource=resources.LOAD_BALANCERS, mapper=common.tenant_of,
                          predicate=lb_fields),
            watches.Watch(resource=resources.ADDRESSES, mapper=common.tenant_of,
                          predicate=watches.generation_changed),
            inputs.watch_services(common.tenant_of,
                                  watches.fields_changed("status.loadBalancer")),
            inputs.watch_config(common.every_tenant(inputs)),
            inputs.watch_tenants(common.tenant_of_tenant),
        )  # fmt: skip
        self.published: dict[str, proxy.ProxyConfig] = {}
        self._pieces: dict[str, _Pieces] = {}  # per tenant, what each LB contributed last
        self.builds = 0  # IRs built (tests, bench)

    async def reconcile(self, key: objects.ObjectKey) -> controller.Result:
        started = time.perf_counter()
        namespace = key.name
        try:
            config = self.desired(namespace)
            if config is None:
                self._clear(namespace)
            else:
                self._publish(config)
        except Exception:
            manager_metrics.ENVOYCP_RECONCILES.labels(result="error").inc()
            raise
        manager_metrics.ENVOYCP_RECONCILES.labels(result="success").inc()
        manager_metrics.ENVOYCP_RECONCILE_SECONDS.observe(time.perf_counter() - started)
        return controller.DONE

    def desired(self, namespace: str) -> proxy.ProxyConfig | None:
        """The tenant's IR, or None when it has nothing to serve."""
        if not self.inputs.managed(namespace) or self.inputs.disabled_reason(namespace):
            self._pieces.pop(namespace, None)
            return None
        lbs = self.inputs.live_load_balancers_in(namespace)
        if not lbs:
            self._pieces.pop(namespace, None)
            return None
        addresses = self.inputs.addresses_in(namespace)
        previous = self._pieces.get(namespace)
        if previous is None or previous.addresses != addresses:
            previous = _Pieces(addresses)
        current = _Pieces(addresses)
        for lb in lbs:
            service = self.inputs.service(namespace, lbservice.service_name(lb.name))
            placement = self.placer(lb, service)
            if placement is None:
                continue
            known = previous.by_name.get(lb.name)
            # The parse cache hands out one model per object version, so `is` means unchanged.
            if known is not None and known[0] is lb and known[1] == placement:
                current.by_name[lb.name] = known
            else:
                piece = irbuild.build_load_balancer(lb, placement, addresses)
                current.by_name[lb.name] = (lb, placement, piece)
        self._pieces[namespace] = current
        self.builds += 1
        built = irbuild.assemble(namespace, (p for _, _, p in current.by_name.values()))
        return built.config

    def _publish(self, config: proxy.ProxyConfig) -> None:
        node = config.node_id
        if self.published.get(node) == config:
            return
        if config.dropped_listeners:
            manager_metrics.DUPLICATE_LISTENERS_DROPPED.labels(snapshot_name=node).inc(
                len(config.dropped_listeners)
            )
        if self.publisher.publish(config):
            manager_metrics.ENVOYCP_SNAPSHOT_UPDATES.labels(snapshot_name=node).inc()
        self.published[node] = config
        manager_metrics.ENVOYCP_LISTENERS.labels(snapshot_name=node).set(len(config.listeners))
        manager_metrics.ENVOYCP_CLUSTERS.labels(snapshot_name=node).set(len(config.clusters))
        manager_metrics.ENVOYCP_ENDPOINTS.labels(snapshot_name=node).set(
            sum(len(c.endpoints) for c in config.clusters)
        )
        logger.debug("tenant %s: %d listeners, %d clusters published", node,
                     len(config.listeners), len(config.clusters))  # fmt: skip

    def _clear(self, namespace: str) -> None:
        self._pieces.pop(namespace, None)
        if self.published.pop(namespace, None) is None:
            return
        self.publisher.clear(namespace)
        manager_metrics.forget_snapshot(namespace)
        logger.info("tenant %s: no LoadBalancers left, snapshot cleared", namespace)


class _Pieces:
    """A tenant's LoadBalancers' IR pieces, valid for one set of Addresses."""

    __slots__ = ("addresses", "by_name")

    def __init__(self, addresses: Mapping[str, api_addresses.Addresses]) -> None:
        self.addresses = addresses
        self.by_name: dict[str, tuple[api_lb.LoadBalancer, irbuild.Placement, irbuild.Piece]] = {}
