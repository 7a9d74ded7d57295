"""Well-known label keys (and fixed values) that KubeLB reads and writes; keys match upstream
KubeLB's, so objects written by either are recognised by both."""

from __future__ import annotations

# Origin of a KubeLB object in the tenant cluster.
ORIGIN_NAME = "kubelb.k8c.io/origin-name"
ORIGIN_NAMESPACE = "kubelb.k8c.io/origin-ns"
# Value `Kind.group`, e.g. `Ingress.networking.k8s.io`.
ORIGIN_RESOURCE_KIND = "kubelb.k8c.io/origin-resource-kind"

# On management Services generated for a LoadBalancer.
LB_NAME = "kubelb.k8c.io/lb-name"
LB_NAMESPACE = "kubelb.k8c.io/lb-namespace"
# On a tenant's L7 entry Service `envoy-<tenant-ns>-l7` (value "true"; its lb-name is empty).
L7_ENTRY = "kubelb.k8c.io/l7-entry"

TENANT = "kubelb.k8c.io/tenant"

# Marks tenant namespaces and objects KubeLB manages; controllers act only on these namespaces.
MANAGED_BY = "kubelb.k8c.io/managed-by"
MANAGED_BY_VALUE = "kubelb"

# Ingress -> Gateway API conversion: `<name>.<namespace>` of the source Ingress.
SOURCE_INGRESS = "kubelb.k8c.io/source-ingress"

# Envoy workload labels.
APP_NAME = "app.kubernetes.io/name"
APP_INSTANCE = "app.kubernetes.io/instance"
APP_MANAGED_BY = "app.kubernetes.io/managed-by"
ENVOY_PROXY_APP_NAME = "kubelb-envoy-proxy"
