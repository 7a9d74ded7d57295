"""Data-plane drivers: one seam that both data planes sit behind, for standalone mode (and the
manager's process deployer).

`EnvoyDriver` translates the IR to Envoy resources, publishes them in the xDS snapshot cache and
keeps one supervised Envoy process connected to our xDS server. `PythonDriver` hands the same IR
to the built-in Python proxy, a process of its own. Neither restarts its proxy on a config
change, and both proxies outlive a crash of kubelb, which adopts them when it starts again from
the same state folder. `OfflineDriver` only keeps the IR.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from kubelb.app import errors
from kubelb.ir import proxy
from kubelb.manager import loadbalancers

logger = logging.getLogger(__name__)


class Driver(Protocol):
    async def start(self) -> None: ...

    async def apply(self, config: proxy.ProxyConfig) -> None: ...

    def ready(self) -> bool: ...

    def status(self) -> dict[str, Any]: ...

    def sockets(self) -> list[tuple[str, int]]:
        """(host, port) of the servers it listens on for itself, never tenant endpoints."""
        ...

    def rejection(self) -> loadbalancers.Rejection | None:
        """What the data plane refused of the configuration it was given, while that stands."""
        ...

    def watch_rejections(self, changed: Callable[[], None]) -> None:
        """Call `changed()` when a rejection starts or ends."""
        ...

    def watch_exits(self, exited: Callable[[], None]) -> None:
        """Call `exited()` when the data plane process ends unexpectedly: nothing is served
        until it is back."""
        ...

    def not_ready_message(self) -> str | None:
        """Why it is not ready, when it knows (e.g. restarting after it was killed)."""
        ...

    async def close(self) -> None: ...


class OfflineDriver:
    """No data plane: keeps the IR it is given (`kubelb translate`)."""

    def __init__(self) -> None:
        self.config: proxy.ProxyConfig | None = None

    async def start(self) -> None:
        """Nothing to start."""

    async def apply(self, config: proxy.ProxyConfig) -> None:
        self.config = config

    def ready(self) -> bool:
        return True

    def sockets(self) -> list[tuple[str, int]]:
        return []

    def rejection(self) -> loadbalancers.Rejection | None:
        return None

    def watch_rejections(self, changed: Callable[[], None]) -> None:
        """It accepts everything."""

    def watch_exits(self, exited: Callable[[], None]) -> None:
        """It has no process."""

    def not_ready_message(self) -> str | None:
        return None

    def status(self) -> dict[str, Any]:
        return {"ready": True}

    async def close(self) -> None:
        """Nothing to stop."""


def create(
    kind: str,
    *,
    listen_address: str,
    envoy_binary: str | None,
    workers: int,
    state_dir: Path,
    drain_seconds: float = 5.0,
    xds_delta: bool = False,
) -> Driver:
    if kind == "envoy":
        # Imported here so the Python data plane never loads grpc and the Envoy protos.
        from kubelb.app import envoy_driver

        return envoy_driver.EnvoyDriver(
            listen_address=listen_address,
            envoy_binary=envoy_binary,
            work_dir=state_dir / "envoy",
            drain_seconds=drain_seconds,
            xds_delta=xds_delta,
        )
    if kind == "python":
        from kubelb.app import python_driver

        return python_driver.PythonDriver(
            work_dir=state_dir / "python", workers=workers, drain_seconds=drain_seconds
        )
    if kind == "offline":
        return OfflineDriver()
    raise errors.DataPlaneError(f"unknown data plane {kind!r}; choose envoy or python")
