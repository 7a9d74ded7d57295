"""Envoy's bootstrap: who it is, where our xDS server is, and its admin and probe listeners.

Pure: `render(node_id, spec, admin_path=...)` returns the bootstrap as a plain dict (Envoy's JSON
form, v3), and `to_json` serializes it for `envoy -c`. Golden-tested under
`tests/golden/bootstrap/`. Everything else (listeners, clusters) comes over ADS: LDS and CDS through
one aggregated gRPC stream.

The xDS link must notice a dead peer (KubeLB #163): HTTP/2 keepalive pings every 30 s with a 5 s
timeout, plus TCP keepalive, on the `xds_cluster`. Probe listeners mirror upstream's
`probe_listener` (GET /ready, answered by the admin interface) and `health_check_listener`
(GET /healthz, which fails once Envoy is told to drain).

With `spec.xds_tls_dir` the `xds_cluster` speaks mTLS: its client certificate and the CA come by
file-based SDS from that directory (`kubelb.pki.files`), so a rotated certificate (or a new CA)
is used from the next connection on without a restart; the server must present a certificate of
that CA naming `kubelb.pki.identity.SERVER_URI`.
"""

from __future__ import annotations

import ipaddress
import json
from typing import Any

from kubelb.envoy import deployer
from kubelb.pki import files as pki_files, identity

XDS_CLUSTER = "xds_cluster"
ADMIN_CLUSTER = "admin_cluster"
XDS_KEEPALIVE_INTERVAL = "30s"
XDS_KEEPALIVE_TIMEOUT = "5s"
FIXED_HEAP = "envoy.resource_monitors.fixed_heap"
SHRINK_HEAP_AT = 0.95  # fraction of the heap limit (upstream's thresholds)
STOP_REQUESTS_AT = 0.98

_HCM = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3"
_ROUTER = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
_HEALTH_CHECK = "type.googleapis.com/envoy.extensions.filters.http.health_check.v3.HealthCheck"
_DOWNSTREAM_CONNECTIONS = (
    "type.googleapis.com/envoy.extensions.resource_monitors.downstream_connections.v3"
    ".DownstreamConnectionsConfig"
)
_FIXED_HEAP = "type.googleapis.com/envoy.extensions.resource_monitors.fixed_heap.v3.FixedHeapConfig"
_HTTP_OPTIONS = "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
_UPSTREAM_TLS = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"


def render(
    node_id: str, spec: deployer.EnvoySpec, *, admin_path: str | None = None
) -> dict[str, Any]:
    """The bootstrap for `node_id`. The admin interface listens on the Unix socket
    `admin_path` when given (owner-only, mode 0600), else on `spec.admin_port`, which must
    then be a real port (the supervisor picks one for a spec that says 0): the readiness
    listener forwards to the admin interface."""
    if not node_id:
        raise ValueError("an Envoy needs a node id")
    if admin_path is None and not 0 < spec.admin_port < 65536:
        raise ValueError(f"admin port {spec.admin_port} is not a port; pick one before rendering")

    def admin() -> dict[str, Any]:
        if admin_path is not None:
            return _pipe(admin_path)
        return _socket(spec.admin_address, spec.admin_port)

    listeners = []
    if spec.readiness_port is not None:
        listeners.append(_readiness_listener(spec.probe_address, spec.readiness_port))
    if spec.health_port is not None:
        listeners.append(_health_listener(spec.probe_address, spec.health_port))
    rendered: dict[str, Any] = {
        "node": {"id": node_id, "cluster": spec.node_cluster},
        "admin": {"address": admin()},
        "dynamic_resources": {
            "ads_config": {
                "api_type": "DELTA_GRPC" if spec.xds_delta else "GRPC",
                "transport_api_version": "V3",
                "set_node_on_first_message_only": True,
                "grpc_services": [{"envoy_grpc": {"cluster_name": XDS_CLUSTER}}],
            },
            "cds_config": {"ads": {}, "resource_api_version": "V3"},
            "lds_config": {"ads": {}, "resource_api_version": "V3"},
        },
        "static_resources": {
            "clusters": [
                _xds_cluster(spec.xds_host, spec.xds_port, spec.xds_tls_dir),
                _admin_cluster(admin()),
            ],
            "listeners": listeners,
        },
    }
    overload = _overload_manager(spec.max_downstream_connections, spec.max_heap_size_bytes)
    if overload:
        rendered["overload_manager"] = overload
    return rendered


def _overload_manager(max_connections: int | None, max_heap: int | None) -> dict[str, Any]:
    """Upstream's overload manager: a cap on downstream connections and, with a heap limit,
    the fixed-heap monitor with its two actions (refreshed every 250 ms)."""
    monitors: list[dict[str, Any]] = []
    if max_connections is not None:
        monitors.append({
            "name": "envoy.resource_monitors.global_downstream_max_connections",
            "typed_config": {
                "@type": _DOWNSTREAM_CONNECTIONS,
                "max_active_downstream_connections": max_connections,
            },
        })  # fmt: skip
    if max_heap is None:
        return {"resource_monitors": monitors} if monitors else {}
    monitors.append({
        "name": FIXED_HEAP,
        "typed_config": {"@type": _FIXED_HEAP, "max_heap_size_bytes": max_heap},
    })  # fmt: skip
    return {
        "refresh_interval": "0.250s",
        "resource_monitors": monitors,
        "actions": [
            _heap_action("envoy.overload_actions.shrink_heap", SHRINK_HEAP_AT),
            _heap_action("envoy.overload_actions.stop_accepting_requests", STOP_REQUESTS_AT),
        ],
    }


def _heap_action(name: str, saturation: float) -> dict[str, Any]:
    return {"name": name, "triggers": [{"name": FIXED_HEAP, "threshold": {"value": saturation}}]}


def to_json(bootstrap: dict[str, Any]) -> str:
    return json.dumps(bootstrap, indent=2, sort_keys=True) + "\n"


def _socket(address: str, port: int) -> dict[str, Any]:
    return {"socket_address": {"address": address, "port_value": port}}


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _xds_cluster(host: str, port: int, tls_dir: str | None) -> dict[str, Any]:
    cluster: dict[str, Any] = {
        "name": XDS_CLUSTER,
        # A hostname (a Service name in-cluster) is re-resolved, so a moved control plane is found.
        "type": "STATIC" if _is_ip(host) else "STRICT_DNS",
        "connect_timeout": "5s",
        "load_assignment": _assignment(XDS_CLUSTER, host, port),
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": _HTTP_OPTIONS,
                "explicit_http_config": {
                    "http2_protocol_options": {
                        "connection_keepalive": {
                            "interval": XDS_KEEPALIVE_INTERVAL,
                            "timeout": XDS_KEEPALIVE_TIMEOUT,
                        }
                    }
                },
            }
        },
        "upstream_connection_options": {
            "tcp_keepalive": {"keepalive_probes": 3, "keepalive_time": 30, "keepalive_interval": 5}
        },
        # One long-lived stream must never be refused by default circuit breakers.
        "circuit_breakers": {
            "thresholds": [
                {
                    "priority": "DEFAULT",
                    "max_connections": 100000,
                    "max_pending_requests": 100000,
                    "max_requests": 60000000,
                    "max_retries": 50,
                },
                {
                    "priority": "HIGH",
                    "max_connections": 100000,
                    "max_pending_requests": 100000,
                    "max_requests": 60000000,
                    "max_retries": 50,
                },
            ]
        },
    }
    if tls_dir is not None:
        cluster["transport_socket"] = _xds_tls(host, tls_dir.rstrip("/") or "/")
    return cluster


def _xds_tls(host: str, directory: str) -> dict[str, Any]:
    """mTLS to the xDS server: our certificate and the CA by file-based SDS (re-read when the
    directory changes); the server's certificate is checked against both."""
    context: dict[str, Any] = {
        "@type": _UPSTREAM_TLS,
        "common_tls_context": {
            "alpn_protocols": ["h2"],
            "tls_certificate_sds_secret_configs": [
                _file_sds(pki_files.SDS_NAME, directory, pki_files.SDS)
            ],
            # The CA by SDS too, so a replaced CA needs no Envoy restart.
            "combined_validation_context": {
                "default_validation_context": {
                    "match_typed_subject_alt_names": [
                        {"san_type": "URI", "matcher": {"exact": identity.SERVER_URI}}
                    ]
                },
                "validation_context_sds_secret_config": _file_sds(
                    pki_files.CA_SDS_NAME, directory, pki_files.CA_SDS
                ),
            },
        },
    }
    if not _is_ip(host):
        context["sni"] = host
    return {"name": "envoy.transport_sockets.tls", "typed_config": context}


def _file_sds(name: str, directory: str, filename: str) -> dict[str, Any]:
    return {
        "name": name,
        "sds_config": {
            "path_config_source": {
                "path": f"{directory}/{filename}",
                "watched_directory": {"path": directory},
            },
            "resource_api_version": "V3",
        },
    }


def _pipe(path: str) -> dict[str, Any]:
    return {"pipe": {"path": path, "mode": 0o600}}


def _admin_cluster(admin: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": ADMIN_CLUSTER,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": _assignment_at(ADMIN_CLUSTER, admin),
    }


def _assignment(name: str, host: str, port: int) -> dict[str, Any]:
    return _assignment_at(name, _socket(host, port))


def _assignment_at(name: str, address: dict[str, Any]) -> dict[str, Any]:
    return {
        "cluster_name": name,
        "endpoints": [{"lb_endpoints": [{"endpoint": {"address": address}}]}],
    }


def _readiness_listener(address: str, port: int) -> dict[str, Any]:
    route = {
        "match": {"path": "/ready", "headers": [_method("GET")]},
        "route": {"cluster": ADMIN_CLUSTER, "timeout": "5s"},
    }
    return _probe_listener("probe_listener", address, port, [route], [])


def _health_listener(address: str, port: int) -> dict[str, Any]:
    health = {
        "name": "envoy.filters.http.health_check",
        "typed_config": {
            "@type": _HEALTH_CHECK,
            "pass_through_mode": False,
            "headers": [{"name": ":path", "string_match": {"exact": "/healthz"}}],
        },
    }
    return _probe_listener("health_check_listener", address, port, [], [health])


def _probe_listener(
    name: str,
    address: str,
    port: int,
    routes: list[dict[str, Any]],
    filters: list[dict[str, Any]],
) -> dict[str, Any]:
    not_found = {"match": {"prefix": "/"}, "direct_response": {"status": 404}}
    hcm = {
        "@type": f"{_HCM}.HttpConnectionManager",
        "stat_prefix": name,
        "route_config": {
            "name": name,
            "virtual_hosts": [{"name": name, "domains": ["*"], "routes": [*routes, not_found]}],
        },
        "http_filters": [
            *filters,
            {"name": "envoy.filters.http.router", "typed_config": {"@type": _ROUTER}},
        ],
    }
    return {
        "name": name,
        "address": _socket(address, port),
        "filter_chains": [
            {
                "filters": [
                    {"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}
                ]
            }
        ],
    }


def _method(method: str) -> dict[str, Any]:
    return {"name": ":method", "string_match": {"exact": method}}
