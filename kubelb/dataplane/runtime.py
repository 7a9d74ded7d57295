"""`DataPlane`: the built-in proxy serving one `proxy.ProxyConfig`, updated live.

Input: `apply(config)` whenever the IR changes (idempotent; the new config is diffed against the
current one). Output: bound listeners, health-checked clusters and `status()`. Order of an update
is make-before-break: clusters are created or updated first, then listeners are added or changed,
and removed listeners drain in the background while everything else keeps serving; clusters no
longer referenced are closed last. `close()` drains every listener the way Envoy does on
shutdown: new connections are accepted for the drain period, then refused. Existing connections
keep the target they were connected to. An invalid config is logged and ignored (the last good
one keeps serving).

A big config never stalls what already serves: it is checked in a thread, and clusters and
listeners are set up in batches of `APPLY_BATCH` with a turn of the event loop between batches.

With `workers > 1` the same work happens in N worker processes bound with SO_REUSEPORT
(`processes.WorkerPool`); this object then only forwards configs and gathers their status.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from kubelb.dataplane import (
    context,
    flow_control,
    http_upstream,
    listeners,
    processes,
    tls_keys,
    upstreams,
)
from kubelb.ir import proxy
from kubelb.util import logsafe

logger = logging.getLogger(__name__)

DEFAULT_DRAIN_SECONDS = 60.0
# Clusters or listeners set up between two turns of the event loop during an apply.
APPLY_BATCH = 64


class DataPlane:
    def __init__(
        self,
        *,
        workers: int = 1,
        options: context.Options | None = None,
        drain_seconds: float = DEFAULT_DRAIN_SECONDS,
        reuse_port: bool | None = None,
    ) -> None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self.workers = workers
        self.options = options or context.Options()
        self.drain_seconds = drain_seconds
        self.reuse_port = workers > 1 if reuse_port is None else reuse_port
        self.config = proxy.ProxyConfig(node_id="")
        self.config_errors: list[str] = []
        self._tracker = context.Tracker(self.options.max_connections)
        self._buffer = flow_control.ReadBuffer()
        self._pool = http_upstream.Pool(
            size=self.options.upstream_pool_size,
            idle_seconds=self.options.upstream_pool_idle_seconds,
        )
        self._clusters: dict[str, upstreams.ClusterState] = {}
        self._listeners: dict[str, listeners.ListenerState] = {}
        self._secrets = tls_keys.Store()
        self._draining: set[asyncio.Task[None]] = set()
        self._lock = asyncio.Lock()
        self._pool_workers: processes.WorkerPool | None = None
        self._closed = False

    async def apply(self, config: proxy.ProxyConfig) -> None:
        async with self._lock:
            if self._closed:
                raise RuntimeError("the data plane is closed")
            # Checking 10,000 listeners takes ~0.15 s: off the loop, which serves everything else.
            errors, config = await asyncio.to_thread(_checked, config)
            if errors:
                for e in errors:
                    logger.error(
                        "node %s: invalid config, keeping the previous one: %s",
                        logsafe.shown(config.node_id),
                        e,
                    )
                self.config_errors = errors
                return
            self.config_errors = []
            for li in config.dropped_listeners:
                logger.error(
                    "listener %s (owner %s): %s:%d/%s is already taken by another listener; "
                    "not serving it",
                    logsafe.shown(li.name),
                    li.owner or "-",
                    li.address,
                    li.port,
                    li.protocol,
                )
            if self.workers > 1:
                if self._pool_workers is None:
                    self._pool_workers = processes.WorkerPool(
                        self.workers, options=self.options, drain_seconds=self.drain_seconds
                    )
                    await self._pool_workers.start()
                await self._pool_workers.apply(config)
                self.config = config
                return
            await self._apply_local(config)
            self.config = config

    async def _apply_local(self, config: proxy.ProxyConfig) -> None:
        for i, cluster in enumerate(config.clusters):
            await _take_turn(i)
            state = self._clusters.get(cluster.name)
            if state is None:
                state = upstreams.ClusterState(
                    cluster, dns_refresh_seconds=self.options.dns_refresh_seconds
                )
                await state.start()
                self._clusters[cluster.name] = state
            else:
                await state.update(cluster)
        # Loading a key pair takes a millisecond or more (RSA): off the loop. A secret whose
        # content did not change keeps its context, so nothing is loaded again.
        secrets = self._secrets.contexts
        if config.secrets or secrets:
            secrets = await asyncio.to_thread(
                self._secrets.update, config.secrets, _wanted_secrets(config)
            )
        wanted = {li.name: li for li in config.listeners}
        loop = asyncio.get_running_loop()
        keep: dict[str, listeners.ListenerState] = {}
        retire: list[listeners.ListenerState] = []
        for name, current in self._listeners.items():
            li = wanted.get(name)
            if li is not None and current.bound and _same_socket(current.listener, li):
                keep[name] = current
            else:
                retire.append(current)
        # Stop accepting on retired sockets first: a replacement may need the same port.
        for old in retire:
            old.stop_accepting()
        for i, (name, li) in enumerate(wanted.items()):
            await _take_turn(i)
            ctx = context.build(
                li,
                self._clusters,
                options=self.options,
                tracker=self._tracker,
                buffer=self._buffer,
                clock=loop.time,
                pool=self._pool,
                secrets=secrets,
            )
            if name in keep:
                # Always swap: pickers hold the cluster states, which may have been replaced.
                keep[name].update(ctx)
                continue
            fresh = listeners.ListenerState(ctx, reuse_port=self.reuse_port)
            await fresh.start()
            keep[name] = fresh
        self._listeners = keep
        for old in retire:
            self._spawn_drain(old, self.drain_seconds)
        used = {c.name for c in config.clusters}
        for name in [n for n in self._clusters if n not in used]:
            await self._clusters.pop(name).close()

    def _spawn_drain(
        self, state: listeners.ListenerState, seconds: float, *, accepting: bool = False
    ) -> None:
        task = asyncio.get_running_loop().create_task(
            state.drain(seconds, accepting=accepting), name=f"drain:{state.listener.name}"
        )
        self._draining.add(task)
        task.add_done_callback(self._draining.discard)

    async def close(self, drain_seconds: float | None = None) -> None:
        """Drain as Envoy does after `/drain_listeners?graceful`: for `drain_seconds` keep
        accepting and serving new connections while asking every connection to finish (HTTP:
        after its current response), then stop listening and close what is left."""
        seconds = self.drain_seconds if drain_seconds is None else drain_seconds
        async with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._pool_workers is not None:
                await self._pool_workers.close(seconds)
            if self._listeners and seconds > 0:
                logger.info(
                    "draining %d listeners for %.1f s; they accept new connections until then",
                    len(self._listeners),
                    seconds,
                )
            for li_state in self._listeners.values():
                self._spawn_drain(li_state, seconds, accepting=True)
            await asyncio.gather(*self._draining, return_exceptions=True)
            self._listeners = {}
            self._pool.close()
            for cl_state in self._clusters.values():
                await cl_state.close()
            self._clusters = {}
            tasks = list(self._tracker.tasks)
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def status(self) -> dict[str, Any]:
        """Listeners bound, per-cluster endpoint health, and connection counts."""
        if self._pool_workers is not None:
            merged: dict[str, Any] = self._pool_workers.status()
            merged["config_errors"] = list(self.config_errors)
            return merged
        return {
            "workers": 1,
            "listeners": [s.status() for s in self._listeners.values()],
            "clusters": {name: s.status() for name, s in self._clusters.items()},
            "connections": self._tracker.active,
            "refused_connections": self._tracker.refused,
            "draining_listeners": len(self._draining),
            "pooled_upstream_connections": self._pool.count(),
            "config_errors": list(self.config_errors),
            "tls_secrets": len(self._secrets.contexts),
            "tls_secret_errors": dict(self._secrets.errors),
        }


def _checked(config: proxy.ProxyConfig) -> tuple[list[str], proxy.ProxyConfig]:
    """Errors of `config`, or none and `config` without its conflicting listeners."""
    errors = config.validate()
    if errors:
        return errors, config
    return [], proxy.drop_conflicting_listeners(config)


def _wanted_secrets(config: proxy.ProxyConfig) -> list[tuple[str, tls_keys.Alpn]]:
    """The (secret, ALPN offer) pairs the terminating listeners of `config` present."""
    protocols = {c.name: c.upstream_protocol for c in config.clusters}
    return [
        (c.secret, tls_keys.alpn_offer(li, protocols.__getitem__))
        for li in config.listeners
        if li.tls is not None
        for c in li.tls.certificates
    ]


async def _take_turn(index: int) -> None:
    """Let the loop serve between batches: setting up an IP-only cluster or a listener context
    never yields by itself."""
    if index and index % APPLY_BATCH == 0:
        await asyncio.sleep(0)


def _same_socket(a: proxy.Listener, b: proxy.Listener) -> bool:
    """The bound socket can serve `b` (TLS is set when it is bound, so it must not come or go)."""
    return (
        a.bind_key == b.bind_key
        and a.protocol == b.protocol
        and ((a.tls is None) == (b.tls is None))
    )
