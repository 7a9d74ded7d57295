"""The seam between kubelb and whatever runs Envoy: local processes, or Kubernetes workloads.

Input: a node id (tenant namespace in manager mode, `standalone` in standalone mode) and an
`EnvoySpec`. Output: an Envoy that connects to our xDS server with that node id. Config never
travels this way: it comes over xDS, so `ensure` with an unchanged spec is a no-op. Implemented
by `kubelb.envoy.supervisor.EnvoySupervisor` (host processes); a Kubernetes Deployment deployer
implements the same protocol.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

STANDALONE_NODE_ID = "standalone"


@dataclass(frozen=True, slots=True, kw_only=True)
class EnvoySpec:
    """How to run one Envoy. Every port may be chosen so several Envoys share a host.

    `admin_port=0` lets Envoy pick a free admin port (the supervisor reads it back); a
    `readiness_port`/`health_port` of None leaves that listener out.
    """

    xds_host: str = "127.0.0.1"
    xds_port: int = 8001
    node_cluster: str = "kubelb"
    admin_address: str = "127.0.0.1"
    admin_port: int = 0
    probe_address: str = "127.0.0.1"
    readiness_port: int | None = 19003  # GET /ready, answered by the admin interface
    health_port: int | None = 19004  # GET /healthz, fails once draining starts
    log_level: str = "info"
    concurrency: int | None = None  # Envoy worker threads; None = Envoy's default (all cores)
    # Overload manager cap on downstream connections (protects file descriptors); None = no cap.
    max_downstream_connections: int | None = 100_000
    drain_seconds: float = 5.0  # graceful listener drain on shutdown
    stop_timeout_seconds: float = 10.0  # SIGTERM -> SIGKILL
    extra_args: tuple[str, ...] = ()
    # Incremental (delta) ADS: each update carries only the resources that changed.
    delta_xds: bool = False


class Deployer(Protocol):
    """Runs one Envoy (or one set of replicas) per node id."""

    async def ensure(self, node_id: str, spec: EnvoySpec) -> None:
        """Make sure an Envoy for `node_id` runs with `spec`; return without waiting for it."""

    async def remove(self, node_id: str) -> None:
        """Drain and stop the node's Envoy; return when it is gone."""

    def ready(self, node_id: str) -> bool:
        """The node's Envoy is up and reports ready."""

    async def close(self) -> None:
        """Drain and stop every Envoy."""
