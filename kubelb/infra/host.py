"""Standalone mode's infrastructure: one data plane on this host serves every namespace.

Like `process.ProcessInfra`, the address pool places each management Service on this host and a
LoadBalancer binds the address written into its Service's status, on its own ports. Unlike it,
the data plane (one Envoy, or the built-in Python proxy) is started and stopped by the composition
root for the whole host, so `ensure` and `remove` do nothing and every namespace is ready when it
is. The pool is `--address-pool` when given, else the `kubelb.k8c.io/address-pool` annotation of
the Config, else 127.0.0.1; a Config change takes effect at once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Any

from kubelb.api import config as api_config, loadbalancer as api_lb, ports as api_ports
from kubelb.infra import addresspool, process, routeentry
from kubelb.irbuild import loadbalancers as irbuild
from kubelb.kube import informer, objects, watches, writer as kwriter
from kubelb.manager import common, effective as tenant_effective, infrastructure
from kubelb.placement import pool as address_pool

logger = logging.getLogger(__name__)

# No event says the data plane became ready: LoadBalancers waiting for it look again this often
# (one local process, so a short wait is cheap and the status catches up at once).
NOT_READY_REQUEUE = 0.25
# On the Config object: the address pool, when --address-pool is not given.
ADDRESS_POOL_ANNOTATION = "kubelb.k8c.io/address-pool"
DEFAULT_POOL = ("127.0.0.1",)


class HostInfra:
    service_shape = infrastructure.ServiceShape(node_ports=False, selector=False)
    requeue = infrastructure.Requeue(not_ready=NOT_READY_REQUEUE,
                                     address_wait=process.ADDRESS_WAIT)  # fmt: skip
    lb_watches: Sequence[watches.Watch] = ()
    proxy_watches: Sequence[watches.Watch] = ()
    # As the process deployer: local development names 127.x backends; the composition root
    # adds kubelb's own sockets.
    endpoint_base = process.ProcessInfra.endpoint_base

    def __init__(
        self,
        inputs: common.Inputs,
        writer: kwriter.Writer,
        *,
        pool: Sequence[str] | None,
        ready: Callable[[], bool],
        not_ready_message: Callable[[], str | None],
        reconcile_lb: Callable[[objects.ObjectKey], None],
    ) -> None:
        """`pool`: --address-pool (None: from the Config); `ready()`: the data plane serves;
        `not_ready_message()`: why not, when the data plane driver knows."""
        self.inputs = inputs
        self._flag_pool = tuple(pool) if pool else None
        self._ready = ready
        self._not_ready_message = not_ready_message
        self.pool_problem: str | None = None  # an unusable Config annotation, for the status
        # Probed: another kubelb on this host may hold a socket this pool would hand out.
        self.addresses = addresspool.AddressPool(inputs, writer, self._flag_pool or DEFAULT_POOL,
                                                 on_unplaced=reconcile_lb,
                                                 probe=address_pool.unshared)  # fmt: skip
        inputs.configs.add_handler(self._config_changed)

    @property
    def pool(self) -> tuple[str, ...]:
        return self.addresses.pool

    def placement(
        self,
        lb: api_lb.LoadBalancer,
        service: Mapping[str, Any] | None,
        allocated: Mapping[api_ports.PortKey, int] | None = None,
    ) -> irbuild.Placement | None:
        return process.placement(service)

    def route_listen_ports(
        self, namespace: str, requested: Collection[int], service: Mapping[str, Any] | None
    ) -> Mapping[int, int]:
        return routeentry.same_ports(requested)

    def route_entry(
        self, namespace: str, service: Mapping[str, Any] | None
    ) -> infrastructure.RouteEntry | None:
        return routeentry.pool_entry(service)  # an address of this host, from the pool

    def address_problem(self, namespace: str, service: str) -> tuple[str, str] | None:
        return self.addresses.problem(namespace, service)

    def ready(self, namespace: str) -> bool:
        return self._ready()

    def not_ready_message(self, namespace: str) -> str | None:
        return self._not_ready_message()

    def not_applicable(self, envoy: api_config.EnvoyProxy) -> Sequence[str]:
        return ()  # standalone mode has no Tenant to report on; its data plane is local

    async def ensure(self, namespace: str, tenant: tenant_effective.Effective) -> None:
        """The host's data plane already runs."""

    async def remove(self, namespace: str) -> None:
        """The host's data plane serves the other namespaces on."""

    def runners(self) -> Sequence[infrastructure.Runner]:
        return (self.addresses,)

    def bind_xds(self, host: str, port: int) -> None:
        """The data plane driver runs its own xDS server."""

    def reserve(self, reservations: Iterable[address_pool.Reservation]) -> None:
        self.addresses.reserve(reservations)

    async def close(self) -> None:
        """The composition root stops the data plane."""

    def _config_changed(self, change: informer.Change) -> None:
        if self._flag_pool is not None:
            return
        raw = self.inputs.configs.store.get(objects.ObjectKey(self.inputs.namespace,
                                                              api_config.CONFIG_NAME))  # fmt: skip
        spec = objects.annotations(raw).get(ADDRESS_POOL_ANNOTATION) if raw else None
        wanted: tuple[str, ...] = DEFAULT_POOL
        self.pool_problem = None
        if spec:
            try:
                wanted = address_pool.parse_pool(spec)
            except address_pool.PoolError as exc:
                self.pool_problem = (f"Config {ADDRESS_POOL_ANNOTATION}: {exc}; "
                                     f"using {DEFAULT_POOL[0]}")  # fmt: skip
                logger.error("%s", self.pool_problem)
        if self.addresses.use_pool(wanted):
            logger.info("address pool: %s", ", ".join(wanted))
