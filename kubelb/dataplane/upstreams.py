"""Live state of one IR cluster: resolved targets, their health, and the tasks that keep both fresh.

Input: a `proxy.Cluster` (`update()` takes a new one; state of unchanged targets is kept). Output:
`targets` (each a `Target` with host, port, health flags and an active-connection count) and a
`version` that changes whenever the usable set may have changed, read by `balancer.Picker`.
Hostname endpoints are resolved with the loop's resolver and refreshed every `dns_refresh_seconds`
(the last good answer is kept when a lookup fails). Active TCP health checks follow the IR's
`HealthCheck`; a target enters pending, and counts as healthy after its first passing check.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket

from kubelb.dataplane import upstream_tls
from kubelb.ir import proxy
from kubelb.util import logsafe

logger = logging.getLogger(__name__)

DNS_REFRESH_SECONDS = 30.0


class Target:
    """One upstream address; identity is `key` ("host:port"), kept across config updates."""

    __slots__ = (
        "active",
        "failures",
        "host",
        "key",
        "owner",
        "port",
        "state",
        "successes",
        "total",
    )

    def __init__(self, host: str, port: int, *, checked: bool, owner: ClusterState) -> None:
        self.owner = owner
        self.host = host
        self.port = port
        self.key = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self.state = "pending" if checked else "healthy"
        self.failures = 0
        self.successes = 0
        self.active = 0
        self.total = 0

    @property
    def available(self) -> bool:
        return self.state == "healthy"

    @property
    def pending(self) -> bool:
        return self.state == "pending"


class ClusterState:
    """Targets and health of one cluster; `close()` stops its checks and DNS refresh."""

    def __init__(self, cluster: proxy.Cluster, *, dns_refresh_seconds: float = DNS_REFRESH_SECONDS):
        self.cluster = cluster
        self.name = cluster.name
        # Built once per cluster definition: loading a CA bundle costs more than a handshake.
        self.tls_context = upstream_tls.client_context(cluster)
        self.version = 0
        self.targets: list[Target] = []
        self._dns_refresh = dns_refresh_seconds
        self._resolved: dict[str, list[str]] = {}
        self._checks: dict[str, asyncio.Task[None]] = {}
        self._dns_task: asyncio.Task[None] | None = None
        # Cancelled tasks still unwinding; close() waits for them too.
        self._retired: set[asyncio.Task[None]] = set()
        self._closed = False

    async def start(self) -> None:
        """Resolve hostnames once (bounded by the connect timeout), then start background work."""
        if self.cluster.uses_dns:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.cluster.connect_timeout_seconds):
                    await self._resolve_all()
            self._dns_task = asyncio.create_task(self._dns_loop(), name=f"dns:{self.name}")
        self._rebuild()

    async def update(self, cluster: proxy.Cluster) -> None:
        """Take a new definition; targets present in both keep their health and counters."""
        if cluster == self.cluster:
            return
        old_checks = self.cluster.health_check
        if cluster.tls != self.cluster.tls or (
            cluster.upstream_protocol is not self.cluster.upstream_protocol
        ):
            self.tls_context = upstream_tls.client_context(cluster)
        self.cluster = cluster
        if old_checks != cluster.health_check:
            self._stop_checks()
        if cluster.uses_dns:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(cluster.connect_timeout_seconds):
                    await self._resolve_all()
            if self._dns_task is None:
                self._dns_task = asyncio.create_task(self._dns_loop(), name=f"dns:{self.name}")
        elif self._dns_task is not None:
            self._retire(self._dns_task)
            self._dns_task = None
        self._rebuild()

    async def close(self) -> None:
        self._closed = True
        tasks = [*self._checks.values(), *self._retired]
        if self._dns_task is not None:
            tasks.append(self._dns_task)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._checks.clear()
        self._dns_task = None

    def status(self) -> dict[str, object]:
        return {
            "endpoints": [
                {"address": t.key, "health": t.state, "active": t.active, "total": t.total}
                for t in self.targets
            ],
        }

    # Targets

    def _addresses(self) -> list[tuple[str, int]]:
        out: list[tuple[str, int]] = []
        for e in self.cluster.endpoints:
            hosts = [e.address] if e.is_ip else self._resolved.get(e.address, [])
            out.extend((h, e.port) for h in hosts)
        return list(dict.fromkeys(out))

    def _rebuild(self) -> None:
        checked = self.cluster.health_check is not None
        current = {t.key: t for t in self.targets}
        targets: list[Target] = []
        for host, port in self._addresses():
            fresh = Target(host, port, checked=checked, owner=self)
            target = current.get(fresh.key, fresh)
            if not checked:
                target.state = "healthy"
            targets.append(target)
        keys = {t.key for t in targets}
        for key in [k for k in self._checks if k not in keys]:
            self._retire(self._checks.pop(key))
        self.targets = targets
        if checked and not self._closed:
            for t in targets:
                if t.key not in self._checks:
                    self._checks[t.key] = asyncio.create_task(
                        self._check_loop(t), name=f"healthcheck:{self.name}:{t.key}"
                    )
        self.version += 1

    def _stop_checks(self) -> None:
        for task in self._checks.values():
            self._retire(task)
        self._checks.clear()

    def _retire(self, task: asyncio.Task[None]) -> None:
        task.cancel()
        self._retired.add(task)
        task.add_done_callback(self._retired.discard)

    def _set_state(self, target: Target, state: str) -> None:
        if target.state != state:
            logger.info(
                "cluster %s: endpoint %s is now %s",
                logsafe.shown(self.name),
                target.key,
                state,
                extra={"cluster": self.name, "endpoint": target.key},
            )
            target.state = state
            self.version += 1

    # Health checks

    async def _check_loop(self, target: Target) -> None:
        while True:
            hc = self.cluster.health_check
            if hc is None:
                return
            ok = await probe(target.host, target.port, hc.timeout_seconds)
            if ok:
                target.failures = 0
                target.successes += 1
                # A pending target needs one pass, a failed one `healthy_threshold` passes.
                if target.state == "pending" or target.successes >= hc.healthy_threshold:
                    self._set_state(target, "healthy")
            else:
                target.successes = 0
                target.failures += 1
                if target.state == "pending" or target.failures >= hc.unhealthy_threshold:
                    self._set_state(target, "unhealthy")
            idle = target.active == 0 and target.state != "pending"
            await asyncio.sleep(hc.no_traffic_interval_seconds if idle else hc.interval_seconds)

    # DNS

    async def _resolve_all(self) -> None:
        loop = asyncio.get_running_loop()
        kind = (
            socket.SOCK_DGRAM if self.cluster.protocol is proxy.Protocol.UDP else socket.SOCK_STREAM
        )
        for e in self.cluster.endpoints:
            if e.is_ip:
                continue
            try:
                infos = await loop.getaddrinfo(e.address, e.port, type=kind)
            except OSError as err:
                logger.warning(
                    "cluster %s: cannot resolve %s (%s); keeping %d known addresses",
                    logsafe.shown(self.name),
                    e.address,
                    err,
                    len(self._resolved.get(e.address, [])),
                )
                continue
            self._resolved[e.address] = sorted({str(info[4][0]) for info in infos})

    async def _dns_loop(self) -> None:
        while True:
            await asyncio.sleep(self._dns_refresh)
            before = dict(self._resolved)
            await self._resolve_all()
            if self._resolved != before:
                self._rebuild()


class _Probe(asyncio.Protocol):
    pass


async def probe(host: str, port: int, timeout_seconds: float) -> bool:
    """One TCP connect check: True when the handshake completes within `timeout_seconds`."""
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(timeout_seconds):
            transport, _ = await loop.create_connection(_Probe, host, port)
    except (OSError, TimeoutError):
        return False
    transport.abort()
    return True
