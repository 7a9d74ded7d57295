"""Process deployer's address pool (leader only): the manager does what MetalLB would.

Reads: the management Services (`envoy-<lb>`, type LoadBalancer) in tenant namespaces, their
ports and the address already in their `status.loadBalancer.ingress`. Writes: that status,
`{"ingress": [{"ip": <address>}]}`, for every Service whose assignment changed. Each Service
gets an address from `--address-pool` where all its (port, protocol) pairs are free across every
tenant (`kubelb.placement.pool.assign`), since all tenants' Envoys share this host. The
assignment is sticky and recovered from those statuses after a restart (MetalLB #2443); a
Service that cannot be placed keeps no address, and `problem()` tells the LoadBalancer
controller why (PortConflict, AddressPoolExhausted).

One global pass per burst of changes (an event sets a flag; the loop coalesces), plus a periodic
resync. A failed write is retried with a capped backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any

from kubelb.kube import backoff, errors, informer, objects, resources, writer as kwriter
from kubelb.manager import common
from kubelb.placement import pool

logger = logging.getLogger(__name__)

RETRY = backoff.Backoff(initial=0.2, cap=30.0)


def service_ips(service: objects.RawObject) -> list[str]:
    status = service.get("status") or {}
    entries = (status.get("loadBalancer") or {}).get("ingress") or []
    return [str(e["ip"]) for e in entries if isinstance(e, dict) and e.get("ip")]


def needs_of(service: objects.RawObject) -> list[pool.PortNeed]:
    ports = (service.get("spec") or {}).get("ports") or []
    return sorted({(int(p["port"]), str(p.get("protocol") or "TCP")) for p in ports
                   if isinstance(p, dict) and isinstance(p.get("port"), int)})  # fmt: skip


class ProcessAddresses:
    """A `Runner`: `run()` keeps the management Services' addresses assigned until cancelled."""

    name = "address-pool"

    def __init__(
        self,
        inputs: common.Inputs,
        writer: kwriter.Writer,
        addresses: Sequence[str],
        *,
        resync_period: float = 300.0,
    ) -> None:
        self.inputs = inputs
        self.writer = writer
        self.pool = tuple(addresses)
        self.resync_period = resync_period
        self.unplaced: dict[str, pool.Unplaced] = {}
        self.passes = 0
        self._dirty = asyncio.Event()
        self._written: dict[str, str | None] = {}  # ours, until the cache shows it
        inputs.services.add_handler(self._changed)
        inputs.namespaces.add_handler(self._changed)

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
                await asyncio.wait_for(self._dirty.wait(), self.resync_period)
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
        for svc in self.inputs.services.store.list():
            spec = svc.get("spec") or {}
            if spec.get("type") == "LoadBalancer" and self.inputs.managed(objects.namespace(svc)):
                services[str(objects.key_of(svc))] = svc
        previous = {}
        for key, svc in services.items():
            ips = service_ips(svc)
            known = self._written.get(key, ips[0] if ips else None)
            if known:
                previous[key] = known
        result = pool.assign(self.pool, {k: needs_of(s) for k, s in services.items()}, previous)
        self.unplaced = dict(result.unplaced)
        for key in list(self._written):
            if key not in services:
                del self._written[key]
        for key, svc in sorted(services.items()):
            await self._write(key, svc, result.addresses.get(key))

    async def _write(self, key: str, svc: objects.RawObject, address: str | None) -> None:
        wanted = [address] if address else []
        if service_ips(svc) == wanted:
            self._written.pop(key, None)  # the cache caught up
            return
        if self._written.get(key, "unset") == address:
            return  # written already; the informer has not delivered it yet

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
            logger.info("Service %s: address %s assigned from the pool", key, address)
        else:
            why = self.unplaced.get(key)
            logger.warning("Service %s: no address from the pool: %s", key,
                           why.message if why else "not placed")  # fmt: skip

    def _changed(self, change: informer.Change) -> None:
        self._dirty.set()
