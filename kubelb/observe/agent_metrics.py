"""Prometheus metrics of the agent (upstream's CCM), names and labels as upstream (`kubelb_ccm_*`).

Inputs: the agent's reconcilers and its management-cluster calls. Outputs: collectors in the
default registry (`kubelb.observe.metrics.REGISTRY`), served on the agent's `--metrics-addr`.
`result` is one of `RESULT_*`; `operation` names a management-cluster call (get, list, create,
update, delete, ...).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from kubelb.observe import metrics

CCM = "kubelb_ccm"

RESULT_SUCCESS = "success"
RESULT_ERROR = "error"
RESULT_SKIPPED = "skipped"

SERVICE_RECONCILES = Counter(
    f"{CCM}_service_reconcile_total",
    "Total number of Service reconciliation attempts",
    ["namespace", "result"],
    registry=metrics.REGISTRY,
)
SERVICE_RECONCILE_SECONDS = Histogram(
    f"{CCM}_service_reconcile_duration_seconds",
    "Duration of Service reconciliations in seconds",
    ["namespace"],
    buckets=metrics.DURATION_BUCKETS,
    registry=metrics.REGISTRY,
)
NODE_RECONCILES = Counter(
    f"{CCM}_node_reconcile_total",
    "Total number of Node reconciliation attempts",
    ["result"],
    registry=metrics.REGISTRY,
)
NODE_RECONCILE_SECONDS = Histogram(
    f"{CCM}_node_reconcile_duration_seconds",
    "Duration of Node reconciliations in seconds",
    buckets=metrics.DURATION_BUCKETS,
    registry=metrics.REGISTRY,
)
MANAGED_SERVICES = Gauge(
    f"{CCM}_managed_services",
    "Current number of LoadBalancer services managed by CCM",
    ["namespace"],
    registry=metrics.REGISTRY,
)
NODES = Gauge(f"{CCM}_nodes", "Current number of nodes in the cluster", registry=metrics.REGISTRY)
CLUSTER_CONNECTED = Gauge(
    f"{CCM}_kubelb_cluster_connected",
    "Whether the CCM is connected to the KubeLB cluster (1=connected, 0=disconnected)",
    registry=metrics.REGISTRY,
)
CLUSTER_OPERATIONS = Counter(
    f"{CCM}_kubelb_cluster_operations_total",
    "Total number of operations performed on the KubeLB cluster",
    ["operation", "result"],
    registry=metrics.REGISTRY,
)
CLUSTER_LATENCY = Histogram(
    f"{CCM}_kubelb_cluster_latency_seconds",
    "Latency of operations to the KubeLB cluster in seconds",
    ["operation"],
    buckets=metrics.DURATION_BUCKETS,
    registry=metrics.REGISTRY,
)

SYNC_SECRET_RECONCILES = Counter(
    f"{CCM}_sync_secret_reconcile_total",
    "Total number of SyncSecret reconciliation attempts",
    ["namespace", "result"],
    registry=metrics.REGISTRY,
)
SYNC_SECRET_RECONCILE_SECONDS = Histogram(
    f"{CCM}_sync_secret_reconcile_duration_seconds",
    "Duration of SyncSecret reconciliations in seconds",
    ["namespace"],
    buckets=metrics.DURATION_BUCKETS,
    registry=metrics.REGISTRY,
)

# L7 sources: one reconcile counter, duration histogram and managed gauge per kind, keyed by
# the kind's metric name (`kubelb_ccm_ingress_reconcile_total`, `kubelb_ccm_managed_ingresses`).
ROUTE_SOURCE_KINDS = {
    "ingress": ("Ingress", "ingresses"),
    "gateway": ("Gateway", "gateways"),
    "httproute": ("HTTPRoute", "httproutes"),
    "grpcroute": ("GRPCRoute", "grpcroutes"),
}
SOURCE_RECONCILES = {
    kind: Counter(
        f"{CCM}_{kind}_reconcile_total",
        f"Total number of {shown} reconciliation attempts",
        ["namespace", "result"],
        registry=metrics.REGISTRY,
    )
    for kind, (shown, _) in ROUTE_SOURCE_KINDS.items()
}
SOURCE_RECONCILE_SECONDS = {
    kind: Histogram(
        f"{CCM}_{kind}_reconcile_duration_seconds",
        f"Duration of {shown} reconciliations in seconds",
        ["namespace"],
        buckets=metrics.DURATION_BUCKETS,
        registry=metrics.REGISTRY,
    )
    for kind, (shown, _) in ROUTE_SOURCE_KINDS.items()
}
MANAGED_SOURCES = {
    kind: Gauge(
        f"{CCM}_managed_{plural}",
        f"Current number of {shown} resources managed by CCM",
        ["namespace"],
        registry=metrics.REGISTRY,
    )
    for kind, (shown, plural) in ROUTE_SOURCE_KINDS.items()
}
