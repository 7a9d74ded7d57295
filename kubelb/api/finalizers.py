"""Finalizers KubeLB adds and removes: the current ones, and upstream's legacy ones, which are
removed wherever they are found and never added."""

from __future__ import annotations

# Current finalizer on LoadBalancer, Route, Tenant, SyncSecret and tenant-side objects.
CLEANUP = "kubelb.k8c.io/cleanup"
# On LoadBalancers with hostname objects (Ingress/HTTPRoute) to delete.
CLEANUP_HOSTNAME = "kubelb.k8c.io/cleanup-hostname"

# Legacy finalizers: removed on sight, never added.
LEGACY_LB_FINALIZER = "kubelb.k8c.io/lb-finalizer"
LEGACY_CLEANUP_ENVOY_PROXY = "kubelb.k8c.io/cleanup-envoy-proxy"
LEGACY = (LEGACY_LB_FINALIZER, LEGACY_CLEANUP_ENVOY_PROXY)
