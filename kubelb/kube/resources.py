"""Which API resources kubelb talks to: `Resource` descriptors and one constant per kind we use.

A `Resource` says where a kind is served (group, version, plural) and whether it is namespaced;
`Resource.path()` builds the REST path the client requests. Add a constant here rather than
spelling paths in controllers.
"""

from __future__ import annotations

from dataclasses import dataclass

from kubelb.api import meta


@dataclass(frozen=True, slots=True)
class Resource:
    """One served kind. `group` is "" for the core API."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(
        self, namespace: str | None = None, name: str | None = None, subresource: str | None = None
    ) -> str:
        """REST path; `namespace=None` on a namespaced kind means all namespaces (list/watch)."""
        root = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        parts = [root]
        if self.namespaced and namespace:
            parts.append(f"namespaces/{namespace}")
        parts.append(self.plural)
        if name is not None:
            if not name:
                raise ValueError(f"{self}: empty object name")
            parts.append(name)
            if subresource:
                parts.append(subresource)
        return "/".join(parts)

    def __str__(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural


# --- core/v1 ---
CONFIG_MAPS = Resource("", "v1", "configmaps", "ConfigMap")
EVENTS = Resource("", "v1", "events", "Event")
NAMESPACES = Resource("", "v1", "namespaces", "Namespace", namespaced=False)
NODES = Resource("", "v1", "nodes", "Node", namespaced=False)
SECRETS = Resource("", "v1", "secrets", "Secret")
SERVICE_ACCOUNTS = Resource("", "v1", "serviceaccounts", "ServiceAccount")
SERVICES = Resource("", "v1", "services", "Service")
ENDPOINT_SLICES = Resource("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice")

# --- other built-in groups ---
DEPLOYMENTS = Resource("apps", "v1", "deployments", "Deployment")
DAEMON_SETS = Resource("apps", "v1", "daemonsets", "DaemonSet")
# prometheus-operator's (configs/crds/prometheus-operator): optional on a cluster.
POD_MONITORS = Resource("monitoring.coreos.com", "v1", "podmonitors", "PodMonitor")
ROLES = Resource("rbac.authorization.k8s.io", "v1", "roles", "Role")
ROLE_BINDINGS = Resource("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding")
CLUSTER_ROLES = Resource(
    "rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", namespaced=False
)
CLUSTER_ROLE_BINDINGS = Resource(
    "rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", namespaced=False
)
LEASES = Resource("coordination.k8s.io", "v1", "leases", "Lease")
EVENTS_V1 = Resource("events.k8s.io", "v1", "events", "Event")
INGRESSES = Resource("networking.k8s.io", "v1", "ingresses", "Ingress")

# --- gateway.networking.k8s.io (CRDs) ---
GATEWAYS = Resource("gateway.networking.k8s.io", "v1", "gateways", "Gateway")
HTTP_ROUTES = Resource("gateway.networking.k8s.io", "v1", "httproutes", "HTTPRoute")
GRPC_ROUTES = Resource("gateway.networking.k8s.io", "v1", "grpcroutes", "GRPCRoute")

# --- cert-manager.io (CRDs): the Certificates of LoadBalancer hostnames ---
CERTIFICATES = Resource("cert-manager.io", "v1", "certificates", "Certificate")

# --- kubelb.k8c.io ---
LOAD_BALANCERS = Resource(meta.GROUP, meta.VERSION, "loadbalancers", "LoadBalancer")
ROUTES = Resource(meta.GROUP, meta.VERSION, "routes", "Route")
ADDRESSES = Resource(meta.GROUP, meta.VERSION, "addresses", "Addresses")
SYNC_SECRETS = Resource(meta.GROUP, meta.VERSION, "syncsecrets", "SyncSecret")
TENANTS = Resource(meta.GROUP, meta.VERSION, "tenants", "Tenant", namespaced=False)
TENANT_STATES = Resource(meta.GROUP, meta.VERSION, "tenantstates", "TenantState")
CONFIGS = Resource(meta.GROUP, meta.VERSION, "configs", "Config")

KUBELB: tuple[Resource, ...] = (
    LOAD_BALANCERS,
    ROUTES,
    ADDRESSES,
    SYNC_SECRETS,
    TENANTS,
    TENANT_STATES,
    CONFIGS,
)
