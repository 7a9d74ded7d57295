"""Prometheus metrics of the kubelb control plane, one section per subsystem, names as upstream.

Every metric lives in `REGISTRY`, prometheus_client's default registry, which the admin server
exposes on `/metrics` (`kubelb.observe.server.metrics_routes()`). Subsystem prefixes follow
upstream KubeLB: `kubelb_manager_*`, `kubelb_ccm_*`, `kubelb_envoy_control_plane_*`. Label sets are
upstream's; metrics that upstream lacks are marked below.

Add a subsystem as its own section with its own prefix constant; keep names and labels stable,
dashboards depend on them.
"""

from __future__ import annotations

import prometheus_client
from prometheus_client import Counter, Gauge, Histogram

REGISTRY = prometheus_client.REGISTRY

# Upstream's buckets: 1 ms to 60 s.
DURATION_BUCKETS: tuple[float, ...] = (
    0.001,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)

# --- Envoy control plane: xDS cache, ADS server, Envoy proxies (kubelb_envoy_control_plane_*) ---
ENVOY_CP = "kubelb_envoy_control_plane"

# The cache counters are per snapshot (= node id, the tenant namespace), as upstream labels them.
XDS_CACHE_CLEARS = Counter(
    f"{ENVOY_CP}_cache_clears_total",
    "Snapshots cleared from the xDS cache.",
    ["snapshot_name"],
    registry=REGISTRY,
)
XDS_CACHE_HITS = Counter(
    f"{ENVOY_CP}_cache_hits_total",
    "xDS streams that found a snapshot for their node id.",
    ["snapshot_name"],
    registry=REGISTRY,
)
XDS_CACHE_MISSES = Counter(
    f"{ENVOY_CP}_cache_misses_total",
    "xDS streams that found no snapshot for their node id (yet).",
    ["snapshot_name"],
    registry=REGISTRY,
)
XDS_CLUSTERS = Gauge(
    f"{ENVOY_CP}_clusters", "Clusters per snapshot.", ["snapshot_name"], registry=REGISTRY
)
XDS_ENDPOINTS = Gauge(
    f"{ENVOY_CP}_endpoints",
    "ClusterLoadAssignments per snapshot.",
    ["snapshot_name"],
    registry=REGISTRY,
)
XDS_LISTENERS = Gauge(
    f"{ENVOY_CP}_listeners", "Listeners per snapshot.", ["snapshot_name"], registry=REGISTRY
)
XDS_ROUTES = Gauge(
    f"{ENVOY_CP}_routes", "Route configurations per snapshot.", ["snapshot_name"], registry=REGISTRY
)
XDS_SECRETS = Gauge(
    f"{ENVOY_CP}_secrets", "Secrets per snapshot.", ["snapshot_name"], registry=REGISTRY
)
XDS_SNAPSHOTS = Gauge(f"{ENVOY_CP}_snapshots", "Snapshots in the xDS cache.", registry=REGISTRY)
XDS_SNAPSHOT_UPDATES = Counter(
    f"{ENVOY_CP}_snapshot_updates_total",
    "Snapshots set that changed at least one resource type.",
    ["snapshot_name"],
    registry=REGISTRY,
)
XDS_SNAPSHOT_GENERATION_SECONDS = Histogram(
    f"{ENVOY_CP}_snapshot_generation_duration_seconds",
    "Time to translate the IR and build a snapshot.",
    ["snapshot_name"],
    buckets=DURATION_BUCKETS,
    registry=REGISTRY,
)
XDS_GRPC_CONNECTIONS = Gauge(f"{ENVOY_CP}_grpc_connections", "Open xDS streams.", registry=REGISTRY)
XDS_GRPC_REQUESTS = Counter(
    f"{ENVOY_CP}_grpc_requests_total",
    "xDS discovery requests received.",
    ["type_url"],
    registry=REGISTRY,
)
XDS_GRPC_RESPONSES = Counter(
    f"{ENVOY_CP}_grpc_responses_total",
    "xDS discovery responses sent.",
    ["type_url"],
    registry=REGISTRY,
)
# Not upstream (KubeLB #532 asks for it): configs Envoy rejected.
XDS_NACKS = Counter(
    f"{ENVOY_CP}_nacks_total",
    "xDS responses rejected (NACKed) by Envoy.",
    ["snapshot_name", "type_url"],
    registry=REGISTRY,
)
ENVOY_PROXIES = Gauge(
    f"{ENVOY_CP}_envoy_proxies",
    "Envoy proxies deployed.",
    ["namespace", "topology"],
    registry=REGISTRY,
)
ENVOY_PROXY_CREATES = Counter(
    f"{ENVOY_CP}_envoy_proxy_create_total",
    "Envoy proxies created.",
    ["namespace"],
    registry=REGISTRY,
)
ENVOY_PROXY_DELETES = Counter(
    f"{ENVOY_CP}_envoy_proxy_delete_total",
    "Envoy proxies deleted.",
    ["namespace"],
    registry=REGISTRY,
)
# Not upstream: restarts of crashed host Envoy processes by the supervisor.
ENVOY_PROXY_RESTARTS = Counter(
    f"{ENVOY_CP}_envoy_proxy_restarts_total",
    "Envoy processes restarted after an unexpected exit.",
    ["namespace"],
    registry=REGISTRY,
)
