"""What every way of running Envoy is given: an `EnvoySpec`, with a node id.

The node id is the tenant namespace in manager mode and `kubelb.standalone.publisher.NODE_ID` in
standalone mode. Config never travels this way: it comes over xDS, so running an Envoy again with
an unchanged spec changes nothing. Read by `kubelb.envoy.supervisor` (local processes),
`kubelb.envoy.kubernetes` (the Deployment's bootstrap) and `kubelb.envoy.bootstrap`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from kubelb.api import config as api_config


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
    # Admin on a Unix socket the runner places (the supervisor: in the node's state directory)
    # instead of a TCP port: nothing an Envoy proxies to can name it.
    admin_pipe: bool = False
    probe_address: str = "127.0.0.1"
    readiness_port: int | None = 19003  # GET /ready, answered by the admin interface
    health_port: int | None = 19004  # GET /healthz, fails once draining starts
    log_level: str = "info"
    concurrency: int | None = None  # Envoy worker threads; None = Envoy's default (all cores)
    # Overload manager cap on downstream connections (protects file descriptors); None = no cap.
    max_downstream_connections: int | None = 100_000
    # Overload manager fixed-heap monitor: shrink the heap at 95 % of this, stop accepting
    # requests at 98 % (Config overloadManager.maxHeapSizeBytes); None = no heap monitor.
    max_heap_size_bytes: int | None = None
    drain_seconds: float = 5.0  # graceful listener drain on shutdown
    stop_timeout_seconds: float = 10.0  # SIGTERM -> SIGKILL
    extra_args: tuple[str, ...] = ()
    # Incremental (delta) ADS: each update carries only the resources that changed.
    xds_delta: bool = False
    # mTLS to the xDS server: the certificate directory as Envoy sees it (`kubelb.pki.files`
    # layout); None: plaintext.
    xds_tls_dir: str | None = None


def with_overload(spec: EnvoySpec, overload: api_config.OverloadManager) -> EnvoySpec:
    """`spec` under the Config's `envoyProxy.overloadManager`: when enabled, its connection cap
    (unset: the spec's own) and its heap limit; when disabled, the spec unchanged."""
    if not overload.enabled:
        return spec
    connections = overload.max_active_downstream_connections
    return dataclasses.replace(
        spec,
        max_downstream_connections=spec.max_downstream_connections
        if connections is None else connections,
        max_heap_size_bytes=overload.max_heap_size_bytes,
    )  # fmt: skip
