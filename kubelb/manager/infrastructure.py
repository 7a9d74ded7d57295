"""What the manager's reconcilers need from whatever runs the tenants' Envoys: one `Infra` object,
chosen once by the composition root (`kubelb.app.manager`) and handed to every reconciler.

An implementation decides, for its way of running Envoy (`kubelb.infra`: local processes with an
address pool, or Deployments on the management cluster):

- where a LoadBalancer's listeners bind (`placement`), from its management Service and its
  allocated listener ports;
- the management Service's shape (`service_shape`: NodePorts, a selector for Envoy pods);
- whether a tenant's Envoy is ready, and why a Service has no address (`ready`,
  `address_problem`), plus how soon to look again when no event will say so (`requeue`);
- running and removing a tenant's Envoy (`ensure`, `remove`), the extra objects whose changes
  matter (`lb_watches`, `proxy_watches`), the background tasks it needs while this replica
  leads (`runners`), where Envoy reaches the xDS server (`bind_xds`), and `close`;
- which endpoints tenants may never name for its way of running Envoy (`endpoint_base`: Envoy's
  own admin and probe sockets, and the built-in denied CIDRs);
- each tenant's L7 entry point (`route_listen_ports`, `route_entry`): the management Service
  `envoy-<tenant-ns>-l7` gets an address as LoadBalancer Services do (the pool, MetalLB, a
  cloud), and the implementation says which ports Envoy binds for it and where.

The reconcilers never ask which implementation they have.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from kubelb.api import config as api_config, loadbalancer as api_lb, ports as api_ports
from kubelb.irbuild import loadbalancers as irbuild
from kubelb.kube import watches
from kubelb.manager import effective as tenant_effective, endpoints
from kubelb.placement import pool


@dataclass(frozen=True, slots=True)
class ServiceShape:
    """How the management Service `envoy-<lb>` routes to Envoy."""

    node_ports: bool  # kube-proxy allocates NodePorts (Envoy pods behind a cloud LB)
    selector: bool  # selects the tenant's Envoy pods (none when Envoy is not a pod)


@dataclass(frozen=True, slots=True)
class RouteEntry:
    """Where a tenant's L7 listeners bind, and the address clients reach them at."""

    bind: str  # the address the data plane binds
    external: str  # the address reported in the Routes' status
    # Requested port (80, a Gateway listener's) -> the port Envoy binds (None: the same).
    listen_ports: Mapping[int, int] | None = None


@dataclass(frozen=True, slots=True)
class Requeue:
    """When the LoadBalancer controller looks again although no watched object changed."""

    # A LoadBalancer whose tenant's Envoy is not ready yet (None: a watch reports readiness).
    not_ready: float | None = None
    # A LoadBalancer whose Service was just created and has no address yet: the status waits
    # this long for the address instead of reporting NoAddress at once (None: report at once).
    address_wait: float | None = None


class Runner(Protocol):
    """A background task the infrastructure needs while this replica leads."""

    @property
    def name(self) -> str: ...

    async def run(self) -> None: ...


class Infra(Protocol):
    @property
    def service_shape(self) -> ServiceShape: ...

    @property
    def requeue(self) -> Requeue: ...

    @property
    def lb_watches(self) -> Sequence[watches.Watch]:
        """Objects besides the usual inputs whose changes reconcile LoadBalancers."""

    @property
    def proxy_watches(self) -> Sequence[watches.Watch]:
        """Objects besides the usual inputs whose changes reconcile a tenant's Envoy."""

    @property
    def endpoint_base(self) -> endpoints.Base:
        """Envoy's own sockets and the built-in denied CIDRs (the composition root adds the
        manager's sockets and the API server's)."""

    def placement(
        self,
        lb: api_lb.LoadBalancer,
        service: Mapping[str, Any] | None,
        allocated: Mapping[api_ports.PortKey, int] | None = None,
    ) -> irbuild.Placement | None:
        """Where the LoadBalancer's listeners bind; None while it cannot be placed yet.
        `allocated`: its listener ports just allocated (None: as recorded in its status)."""

    def route_listen_ports(
        self, namespace: str, requested: Collection[int], service: Mapping[str, Any] | None
    ) -> Mapping[int, int]:
        """The port Envoy binds for each requested L7 port of the tenant, kept from the live
        entry Service `service` (its targetPorts) where it has one."""

    def route_entry(self, namespace: str, service: Mapping[str, Any] | None) -> RouteEntry | None:
        """Where the tenant's L7 listeners bind, from its entry Service; None while it has no
        address."""

    def address_problem(self, namespace: str, service: str) -> tuple[str, str] | None:
        """(reason, message) when the infrastructure cannot give Service `service` an address."""

    def ready(self, namespace: str) -> bool:
        """The tenant's Envoy is up."""

    def not_ready_message(self, namespace: str) -> str | None:
        """Why the tenant's Envoy is not up, when known (e.g. why it is restarting)."""

    def not_applicable(self, envoy: api_config.EnvoyProxy) -> Sequence[str]:
        """The Envoy settings asked for that this infrastructure cannot honour, each with why."""

    async def ensure(self, namespace: str, tenant: tenant_effective.Effective) -> None:
        """Run the tenant's Envoy as its effective settings say. Unchanged arguments: cheap and
        idempotent."""

    async def remove(self, namespace: str) -> None:
        """The tenant has nothing to serve: its Envoy goes."""

    def runners(self) -> Sequence[Runner]:
        """Background tasks to run while this replica leads."""

    def bind_xds(self, host: str, port: int) -> None:
        """The xDS server listens on host:port (host as configured, maybe a wildcard)."""

    def reserve(self, reservations: Iterable[pool.Reservation]) -> None:
        """The hub's own sockets, once bound: no LoadBalancer this infrastructure places may
        listen on them."""

    async def close(self) -> None:
        """Stop what this replica runs itself (it stopped leading, or shuts down)."""
