"""Standalone data plane driver for the built-in Python proxy (`--dataplane python`)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from kubelb.dataplane import runtime
from kubelb.ir import proxy
from kubelb.manager import loadbalancers

logger = logging.getLogger(__name__)


class PythonDriver:
    def __init__(self, *, workers: int = 1, drain_seconds: float = 5.0) -> None:
        self._dataplane = runtime.DataPlane(workers=workers)
        self._drain_seconds = drain_seconds
        self._applied = False

    async def start(self) -> None:
        """Nothing to start: listeners open on the first `apply`."""

    async def apply(self, config: proxy.ProxyConfig) -> None:
        await self._dataplane.apply(config)
        self._applied = True

    def ready(self) -> bool:
        return self._applied

    def rejection(self) -> loadbalancers.Rejection | None:
        return None  # a configuration it cannot apply is logged and the last good one kept

    def watch_rejections(self, changed: Callable[[], None]) -> None:
        """Nothing to watch: see `rejection`."""

    def sockets(self) -> list[tuple[str, int]]:
        return []  # the proxy process has no control socket: its config comes on a pipe

    def status(self) -> dict[str, Any]:
        return {"ready": self._applied, **self._dataplane.status()}

    async def close(self) -> None:
        await self._dataplane.close(drain_seconds=self._drain_seconds)
