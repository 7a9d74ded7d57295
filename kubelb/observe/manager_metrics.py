"""Prometheus metrics of the manager (`kubelb_manager_*`), with upstream's names and labels so
its dashboards and alerts work unchanged.

Input: calls from the manager's reconcilers. Output: series in the default registry, served on
`--metrics-addr`. Sections: LoadBalancer controller, Route controller, port allocator, Envoy
control (snapshots and Envoy workloads). The xDS server's own series
(`kubelb_envoy_control_plane_*`) live in `kubelb.observe.metrics`.
"""

from __future__ import annotations

import contextlib

from prometheus_client import Counter, Gauge, Histogram

from kubelb.observe import metrics

MANAGER = "kubelb_manager"
REGISTRY = metrics.REGISTRY

# --- LoadBalancer controller ---
LB_RECONCILES = Counter(
    f"{MANAGER}_loadbalancer_reconcile_total",
    "LoadBalancer reconciles by result (success, error, skipped).",
    ["namespace", "result"],
    registry=REGISTRY,
)
LB_RECONCILE_SECONDS = Histogram(
    f"{MANAGER}_loadbalancer_reconcile_duration_seconds",
    "Time to reconcile one LoadBalancer.",
    ["namespace"],
    buckets=metrics.DURATION_BUCKETS,
    registry=REGISTRY,
)
LOAD_BALANCERS = Gauge(
    f"{MANAGER}_loadbalancers",
    "LoadBalancers managed, per tenant namespace.",
    ["namespace", "tenant", "topology"],
    registry=REGISTRY,
)

# --- Route controller ---
ROUTE_RECONCILES = Counter(
    f"{MANAGER}_route_reconcile_total",
    "Route reconciles by source kind and result (success, error).",
    ["namespace", "route_type", "result"],
    registry=REGISTRY,
)
ROUTE_RECONCILE_SECONDS = Histogram(
    f"{MANAGER}_route_reconcile_duration_seconds",
    "Time to reconcile one tenant's Routes.",
    ["namespace"],
    buckets=metrics.DURATION_BUCKETS,
    registry=REGISTRY,
)
ROUTES = Gauge(
    f"{MANAGER}_routes",
    "Routes managed, per tenant namespace and source kind.",
    ["namespace", "tenant", "route_type"],
    registry=REGISTRY,
)

# --- Tenant controller ---
TENANT_RECONCILES = Counter(
    f"{MANAGER}_tenant_reconcile_total", "Tenant reconciles by result.", ["result"],
    registry=REGISTRY,
)  # fmt: skip
TENANTS = Gauge(f"{MANAGER}_tenants", "Tenant objects on the management cluster.",
                registry=REGISTRY)  # fmt: skip
TENANT_RECONCILE_SECONDS = Histogram(
    f"{MANAGER}_tenant_reconcile_duration_seconds", "Time to reconcile one Tenant.",
    buckets=metrics.DURATION_BUCKETS, registry=REGISTRY,
)  # fmt: skip

# --- SyncSecret controller ---
SYNC_SECRET_RECONCILES = Counter(
    f"{MANAGER}_sync_secret_reconcile_total",
    "SyncSecret reconciles by result (success, error).",
    ["namespace", "result"],
    registry=REGISTRY,
)
SYNC_SECRET_RECONCILE_SECONDS = Histogram(
    f"{MANAGER}_sync_secret_reconcile_duration_seconds",
    "Time to reconcile one SyncSecret.",
    ["namespace"],
    buckets=metrics.DURATION_BUCKETS,
    registry=REGISTRY,
)

# --- Port allocator ---
ALLOCATED_PORTS = Gauge(
    f"{MANAGER}_port_allocator_allocated_ports",
    "Envoy listener ports allocated, all tenants.",
    registry=REGISTRY,
)
ALLOCATOR_ENDPOINTS = Gauge(
    f"{MANAGER}_port_allocator_endpoints",
    "LoadBalancers holding allocated ports, all tenants.",
    registry=REGISTRY,
)
COLLISIONS_HEALED = Counter(
    f"{MANAGER}_port_allocator_collisions_healed_total",
    "Recorded ports that another LoadBalancer already held and were moved.",
    registry=REGISTRY,
)

# --- Envoy control ---
ENVOYCP_RECONCILES = Counter(
    f"{MANAGER}_envoycp_reconcile_total",
    "Envoy control (per tenant snapshot) reconciles by result.",
    ["result"],
    registry=REGISTRY,
)
ENVOYCP_RECONCILE_SECONDS = Histogram(
    f"{MANAGER}_envoycp_reconcile_duration_seconds",
    "Time to rebuild and publish one tenant's snapshot.",
    buckets=metrics.DURATION_BUCKETS,
    registry=REGISTRY,
)
ENVOYCP_SNAPSHOT_UPDATES = Counter(
    f"{MANAGER}_envoycp_snapshot_updates_total",
    "Snapshots published that changed the tenant's configuration.",
    ["snapshot_name"],
    registry=REGISTRY,
)
ENVOYCP_CLUSTERS = Gauge(
    f"{MANAGER}_envoycp_clusters", "Clusters per snapshot.", ["snapshot_name"], registry=REGISTRY
)
ENVOYCP_LISTENERS = Gauge(
    f"{MANAGER}_envoycp_listeners", "Listeners per snapshot.", ["snapshot_name"], registry=REGISTRY
)
ENVOYCP_ENDPOINTS = Gauge(
    f"{MANAGER}_envoycp_endpoints", "Endpoints per snapshot.", ["snapshot_name"], registry=REGISTRY
)
DUPLICATE_LISTENERS_DROPPED = Counter(
    f"{MANAGER}_envoy_duplicate_listeners_dropped_total",
    "Listeners left out of a snapshot because another LoadBalancer binds the same address/port.",
    ["snapshot_name"],
    registry=REGISTRY,
)
ENVOY_PROXIES = Gauge(
    f"{MANAGER}_envoy_proxies",
    "Envoy workloads the manager runs, per tenant namespace.",
    ["namespace", "topology"],
    registry=REGISTRY,
)


def forget_snapshot(name: str) -> None:
    """Drop a cleared snapshot's gauges, so a gone tenant leaves no stale series."""
    for gauge in (ENVOYCP_CLUSTERS, ENVOYCP_LISTENERS, ENVOYCP_ENDPOINTS):
        with contextlib.suppress(KeyError):
            gauge.remove(name)
