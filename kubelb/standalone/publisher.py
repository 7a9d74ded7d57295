"""One data plane for every namespace: the tenants' IRs, merged into the host's.

`HostPublisher` implements `kubelb.manager.envoycp.Publisher`: the snapshot reconciler hands it
each tenant namespace's IR; `run()` applies the union of them (node id `NODE_ID`) to the data
plane, the newest winning when changes come faster than the data plane takes them. Names in the
IR carry the namespace, and the address pool keeps every (address, port) to one LoadBalancer on
the host, so the tenants' listeners and clusters never collide.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from kubelb.ir import proxy

logger = logging.getLogger(__name__)

NODE_ID = "standalone"


def merge(configs: list[proxy.ProxyConfig]) -> proxy.ProxyConfig:
    listeners = sorted((li for c in configs for li in c.listeners), key=lambda li: li.name)
    clusters = {cl.name: cl for c in configs for cl in c.clusters}
    secrets = {s.name: s for c in configs for s in c.secrets}
    return proxy.drop_conflicting_listeners(
        proxy.ProxyConfig(node_id=NODE_ID, listeners=tuple(listeners),
                          clusters=tuple(sorted(clusters.values(), key=lambda c: c.name)),
                          secrets=tuple(secrets[n] for n in sorted(secrets)))
    )  # fmt: skip


class HostPublisher:
    def __init__(self, apply: Callable[[proxy.ProxyConfig], Awaitable[None]]) -> None:
        self._apply = apply
        self._by_node: dict[str, proxy.ProxyConfig] = {}
        self._changed = asyncio.Event()
        # Nothing is applied before `release()`: a data plane adopted from an earlier kubelb
        # keeps serving its configuration until the reconcilers have rebuilt all of it, rather
        # than getting the empty or partial one of a start.
        self._released = asyncio.Event()
        self.applied: proxy.ProxyConfig | None = None

    def release(self) -> None:
        """The first complete configuration is in: apply it, and every change from now on."""
        if not self._released.is_set():
            self._released.set()
            self._changed.set()  # even an empty one: the data plane starts with what there is

    def publish(self, config: proxy.ProxyConfig) -> bool:
        if self._by_node.get(config.node_id) == config:
            return False
        self._by_node[config.node_id] = config
        self._changed.set()
        return True

    def clear(self, node_id: str) -> None:
        if self._by_node.pop(node_id, None) is not None:
            self._changed.set()

    def desired(self) -> proxy.ProxyConfig:
        return merge([self._by_node[n] for n in sorted(self._by_node)])

    @property
    def pending(self) -> bool:
        """A change is waiting to be applied."""
        return self._changed.is_set()

    async def run(self) -> None:
        await self._released.wait()
        while True:
            await self._changed.wait()
            self._changed.clear()
            config = self.desired()
            if config == self.applied:
                continue
            await self._apply(config)
            self.applied = config
            logger.info("data plane: %d listeners, %d clusters applied", len(config.listeners),
                        len(config.clusters))  # fmt: skip
