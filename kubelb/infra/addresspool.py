"""The process infrastructure's address pool (leader only): the manager does what MetalLB would.

Reads: the management Services (`envoy-<lb>`, type LoadBalancer) in tenant namespaces, their
ports and the address already in their `status.loadBalancer.ingress`. Writes: that status,
`{"ingress": [{"ip": <address>}]}`, for every Service whose assignment changed. Each Service
gets an address from `--address-pool` where all its (port, protocol) pairs are free across every
tenant (`kubelb.placement.pool.assign`), since all tenants' Envoys share this host. The
assignment is sticky and recovered from those statuses after a restart (MetalLB #2443); a
Service that cannot be placed keeps no address, and `problem()` tells the LoadBalancer
controller why (PortConflict, AddressPoolExhausted); `on_unplaced(lb key)` asks it to look again
when that answer changes, since no Service write announces it. `reserve()` names the sockets
the hub itself listens on (xDS, probes, metrics, admin): no Service is placed there
(PortReserved). With a `probe` (standalone), a new placement also skips a socket another process
holds, such as another kubelb's Envoy (PortConflict); sockets this pool placed before are ours.

One global pass per burst of changes (an event sets a flag; the loop waits `coalesce` seconds for
the rest of the burst), plus a periodic resync; a pass writes the statuses that changed
concurrently (at most `WRITE_CONCURRENCY` at a time). A failed write is retried with a capped
backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from kubelb.kube import errors, informer, objects, resources, writer as kwriter
from kubelb.manager import common
from kubelb.placement import pool
from kubelb.util import backoff, logsafe

logger = logging.getLogger(__name__)

RETRY = backoff.Backoff(initial=0.2, cap=30.0)
WRITE_CONCURRENCY = 16
# A pass reads every Service: in a burst of creates, one pass per event was O(n²) (7% of the
# manager's CPU for 1,000 LoadBalancers). Waiting this long after the first event batches them,
# at a cost of as much latency before an address is assigned.
PASS_COALESCE = 0.05


def service_ips(service: objects.RawObject) -> list[str]:
    status = service.get("status") or {}
    entries = (status.get("loadBalancer") or {}).get("ingress") or []
    return [str(e["ip"]) for e in entries if isinstance(e, dict) and e.get("ip")]


def needs_of(service: objects.RawObject) -> list[pool.PortNeed]:
    ports = (service.get("spec") or {}).get("ports") or []
    return sorted({(int(p["port"]), str(p.get("protocol") or "TCP")) for p in ports
                   if isinstance(p, dict) and isinstance(p.get("port"), int)})  # fmt: skip


class AddressPool:
    """A `Runner`: `run()` keeps the management Services' addresses assigned until cancelled."""

    name = "address-pool"

    def __init__(
        self,
        inputs: common.Inputs,
        writer: kwriter.Writer,
        addresses: Sequence[str],
        *,
        on_unplaced: Callable[[objects.ObjectKey], None],
        probe: pool.Probe | None = None,
        resync_period: float = 300.0,
        coalesce: float = PASS_COALESCE,
    ) -> None:
        self.inputs = inputs
        self.writer = writer
        self.pool = tuple(addresses)
        self.reserved: tuple[pool.Reservation, ...] = ()
        self._probe = probe
        self._ours: set[tuple[str, int, str]] = set()  # sockets placed here: our data plane's
        self.resync_period = resync_period
        self.coalesce = coalesce
        self.unplaced: dict[str, pool.Unplaced] = {}
        self.passes = 0
        self._dirty = asyncio.Event()
        self._written: dict[str, str | None] = {}  # ours, until the cache shows it
        self._derived: dict[str, tuple[objects.RawObject, list[pool.PortNeed], list[str]]] = {}
        # Called with the LoadBalancer key of a Service whose `problem()` changed.
        self.on_unplaced = on_unplaced
        inputs.services.add_handler(self._changed)
        inputs.namespaces.add_handler(self._changed)

    @property
    def idle(self) -> bool:
        """A pass has run and no change waits for the next one."""
        return self.passes > 0 and not self._dirty.is_set()

    def use_pool(self, addresses: Sequence[str]) -> bool:
        """Assign from `addresses` from now on (the next pass moves what no longer fits);
        False when that is the pool already."""
        wanted = tuple(addresses)
        if wanted == self.pool:
            return False
        self.pool = wanted
        self._dirty.set()
        return True

    def reserve(self, reservations: Iterable[pool.Reservation]) -> None:
        """Keep these sockets (the hub's own servers, once bound) free of LoadBalancers."""
        self.reserved = tuple(reservations)
        self._dirty.set()

    def problem(self, namespace: str, name: str) -> tuple[str, str] | None:
        """Why Service namespace/name has no address (None: it has one, or is not ours)."""
        found = self.unplaced.get(f"{namespace}/{name}")
        return (found.reason, found.message) if found is not None else None

    async def run(self) -> None:
        await asyncio.gather(self.inputs.services.wait_synced(),
                             self.inputs.namespaces.wait_synced())  # fmt: skip
        self._written.clear()
        failures = 0
        self._dirty.set()
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.resync_period):
                    await self._dirty.wait()
            if self.coalesce and self._dirty.is_set():
                await asyncio.sleep(self.coalesce)  # let the rest of a burst arrive
            self._dirty.clear()
            try:
                await self.assign_all()
                failures = 0
            except errors.ApiError as exc:
                delay = RETRY.delay(failures)
                failures += 1
                logger.warning("address pool: %s; retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                self._dirty.set()

    async def assign_all(self) -> None:
        """One pass: assign every Service, write the statuses that changed."""
        self.passes += 1
        services: dict[str, objects.RawObject] = {}
        needs: dict[str, list[pool.PortNeed]] = {}
        previous = {}
        for svc in self.inputs.services.store.list():
            spec = svc.get("spec") or {}
            if spec.get("type") == "LoadBalancer" and self.inputs.managed(objects.namespace(svc)):
                key = str(objects.key_of(svc))
                services[key] = svc
                needs[key], ips = self._derived_of(key, svc)
                known = self._written.get(key, ips[0] if ips else None)
                if known:
                    previous[key] = known
        for key in [k for k in self._derived if k not in services]:
            del self._derived[key]
        probe = self._probe_free if self._probe is not None else None
        result = pool.assign(self.pool, needs, previous, self.reserved, probe)
        self._ours.update((address, port, transport) for key, address in result.addresses.items()
                          for port, transport in needs[key])  # fmt: skip
        before, self.unplaced = self.unplaced, dict(result.unplaced)
        self._tell_owners(services, before)
        for key in list(self._written):
            if key not in services:
                del self._written[key]
        writes = [(k, s, result.addresses.get(k)) for k, s in sorted(services.items())]
        pending = [w for w in writes if self._needs_write(*w)]
        if not pending:
            return
        # Concurrently: a burst of new Services waits for one round trip, not one per Service.
        gate = asyncio.Semaphore(WRITE_CONCURRENCY)

        async def write(key: str, svc: objects.RawObject, address: str | None) -> None:
            async with gate:
                await self._write(key, svc, address)

        outcomes = await asyncio.gather(*(write(*w) for w in pending), return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome

    def _probe_free(self, address: str, port: int, transport: str) -> bool:
        if (address, port, transport) in self._ours or self._probe is None:
            return True
        return self._probe(address, port, transport)

    def _derived_of(
        self, key: str, svc: objects.RawObject
    ) -> tuple[list[pool.PortNeed], list[str]]:
        """The Service's port needs and status addresses, parsed once per stored version (the
        store hands out the same object until it changes; a pass reads every Service)."""
        cached = self._derived.get(key)
        if cached is None or cached[0] is not svc:
            cached = self._derived[key] = (svc, needs_of(svc), service_ips(svc))
        return cached[1], cached[2]

    def _needs_write(self, key: str, svc: objects.RawObject, address: str | None) -> bool:
        wanted = [address] if address else []
        if self._derived_of(key, svc)[1] == wanted:
            self._written.pop(key, None)  # the cache caught up
            return False
        return self._written.get(key, "unset") != address  # else written, not yet delivered

    async def _write(self, key: str, svc: objects.RawObject, address: str | None) -> None:
        wanted = [address] if address else []

        def mutate(status: dict[str, Any]) -> dict[str, Any]:
            if service_ips({"status": status}) == wanted:
                return status
            status["loadBalancer"] = {"ingress": [{"ip": address}]} if address else {}
            return status

        try:
            await self.writer.update_status(resources.SERVICES, objects.key_of(svc), mutate,
                                            current=svc)  # fmt: skip
        except errors.NotFoundError:
            return
        self._written[key] = address
        if address:
            logger.info(
                "Service %s: address %s assigned from the pool", logsafe.shown(key), address
            )
        else:
            why = self.unplaced.get(key)
            logger.warning("Service %s: no address from the pool: %s", logsafe.shown(key),
                           why.message if why else "not placed")  # fmt: skip

    def _tell_owners(
        self, services: dict[str, objects.RawObject], before: dict[str, pool.Unplaced]
    ) -> None:
        """A reason to report appeared, changed or went away: no Service write will say so,
        so the LoadBalancers concerned are reconciled through `on_unplaced`."""
        for key in before.keys() | self.unplaced.keys():
            svc = services.get(key)
            if svc is None or before.get(key) == self.unplaced.get(key):
                continue
            lb_name = objects.labels(svc).get(common.SERVICE_SELECTOR)
            if lb_name:
                self.on_unplaced(objects.ObjectKey(objects.namespace(svc), lb_name))

    def _changed(self, change: informer.Change) -> None:
        self._dirty.set()
