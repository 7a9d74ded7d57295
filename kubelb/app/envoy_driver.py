"""Standalone data plane driver for Envoy: our ADS server plus one supervised Envoy process.

`apply()` translates the IR and publishes the snapshot; Envoy picks it up over xDS without a
restart, and listeners the change did not touch keep their connections. A translation failure
keeps the last good snapshot serving. Envoy outlives a crash of kubelb (`detach`): a restarted
kubelb adopts it from the work folder, and it serves its last configuration meanwhile. A snapshot
Envoy cannot run (too many listeners for its file descriptors) is refused, and an Envoy that dies
of a new snapshot restarts with the last one it ACKed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubelb.app import errors, manager_dataplane
from kubelb.envoy import binary, deployer, procs, supervisor
from kubelb.ir import proxy
from kubelb.manager import loadbalancers
from kubelb.observe import server as observe_server
from kubelb.standalone import publisher
from kubelb.xds import cache, server, snapshot, translate

logger = logging.getLogger(__name__)


class EnvoyDriver:
    def __init__(
        self,
        *,
        listen_address: str,
        envoy_binary: str | None,
        work_dir: Path,
        node_id: str = publisher.NODE_ID,
        concurrency: int | None = None,
        drain_seconds: float = 5.0,
        xds_delta: bool = False,
    ) -> None:
        self.node_id = node_id
        self.xds_delta = xds_delta
        self.listen_address = listen_address
        self.concurrency = concurrency
        self.drain_seconds = drain_seconds
        self.cache = cache.SnapshotCache(admit=self._admit)
        self.xds = server.XdsServer(self.cache)
        self.xds_socket: tuple[str, int] | None = None
        self._exited: Callable[[], None] | None = None
        try:
            self.supervisor = supervisor.EnvoySupervisor(
                work_dir, envoy_binary=envoy_binary, detach=True, on_exit=self._on_exit
            )
        except binary.EnvoyNotFoundError as e:
            raise errors.DataPlaneError(str(e)) from e

    async def start(self) -> None:
        try:
            port = await self.xds.start(self.listen_address)
        except observe_server.BindError as e:
            raise errors.DataPlaneError(
                f"{e} (is another kubelb running? choose another --listen-address)"
            ) from e
        host, _ = observe_server.parse_address(self.listen_address)
        self.xds_socket = (host, port)
        spec = deployer.EnvoySpec(
            xds_host=host if host not in ("", "0.0.0.0", "::") else "127.0.0.1",
            xds_port=port,
            # The supervisor checks readiness through the admin interface; fixed probe ports
            # would keep two standalone instances from sharing a host.
            readiness_port=None,
            health_port=None,
            concurrency=self.concurrency,
            drain_seconds=self.drain_seconds,
            xds_delta=self.xds_delta,
            # Admin on a Unix socket: no LoadBalancer endpoint can name it.
            admin_pipe=True,
        )
        # Our server never answers an unknown node (that would wipe a running Envoy after a
        # control-plane restart), so a new Envoy needs a snapshot, even an empty one, to be ready;
        # an adopted one keeps serving its configuration until the first `apply`.
        adopt = self.supervisor.will_adopt(self.node_id, spec)
        if self.cache.get_snapshot(self.node_id) is None and not adopt:
            self.cache.set_snapshot(self.node_id, snapshot.Snapshot())
        await self.supervisor.ensure(self.node_id, spec)

    async def apply(self, config: proxy.ProxyConfig) -> None:
        try:
            snap = snapshot.Snapshot.from_resources(translate.sealed(config))
            self.cache.set_snapshot(self.node_id, snap)
        except ValueError as e:
            logger.error("cannot translate the configuration, keeping the last good one: %s", e)

    def _admit(self, node_id: str, snap: snapshot.Snapshot) -> str | None:
        return self.supervisor.capacity_problem(node_id, snap.counts()["listeners"])

    def _on_exit(self, exit_: procs.Exit) -> bool:
        if self._exited is not None:
            self._exited()
        # A kill from outside says nothing about the configuration: keep serving it.
        return not exit_.killed and self.cache.rollback(exit_.node_id)

    def ready(self) -> bool:
        if not self.supervisor.ready(self.node_id):
            return False
        status = self.cache.status(self.node_id)
        return any(s.acked for s in status.streams)

    def rejection(self) -> loadbalancers.Rejection | None:
        return manager_dataplane.rejection(self.cache, self.node_id)

    def watch_rejections(self, changed: Callable[[], None]) -> None:
        self.cache.watch_rejections(lambda node_id: changed() if node_id == self.node_id else None)

    def watch_exits(self, exited: Callable[[], None]) -> None:
        self._exited = exited

    def not_ready_message(self) -> str | None:
        return self.supervisor.restart_cause(self.node_id)

    def sockets(self) -> list[tuple[str, int]]:
        return [self.xds_socket] if self.xds_socket is not None else []

    def status(self) -> dict[str, Any]:
        status = self.cache.status(self.node_id)
        nack = status.last_nack
        return {
            "ready": self.ready(),
            "pid": self.supervisor.pid(self.node_id),
            "restarts": self.supervisor.restarts(self.node_id),
            "adminPort": self.supervisor.admin_port(self.node_id),
            "adopted": self.supervisor.adopted(self.node_id),
            "restartCause": self.supervisor.restart_cause(self.node_id),
            "xds": {
                "connected": status.connected,
                "inSync": status.in_sync(),
                "versions": status.versions or {},
                "lastNack": None if nack is None else nack.error_detail,
                "refused": status.refused,
            },
        }

    async def close(self) -> None:
        try:
            await self.supervisor.close()
        finally:
            await self.xds.stop(grace=1.0)
