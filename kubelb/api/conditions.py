"""Condition types and reasons KubeLB sets on its objects.

Reasons are CamelCase (metav1.Condition requires it). The `Pending` family answers "why has this
LoadBalancer no address yet": every reason a LoadBalancer can be stuck for has a name here, so
users never face a silent `<pending>` (MetalLB #2079).
"""

from __future__ import annotations

# --- Types ---
# Overall: the object is fully served.
READY = "Ready"
# The spec is valid and the object is admitted (not disabled for its tenant).
ACCEPTED = "Accepted"
# A LoadBalancer has an address (pool address in standalone mode, Service IP in manager mode).
ADDRESS_ASSIGNED = "AddressAssigned"
# The data plane has the configuration (xDS snapshot set, or built-in proxy listening).
PROGRAMMED = "Programmed"
# Route (upstream): the generated objects were applied.
RESOURCE_APPLIED = "ResourceAppliedSuccessfully"
# SyncSecret (upstream): the Secret was copied.
SYNCED = "Synced"
# LoadBalancer (kubelb addition): its hostname is published and served, or why not.
HOSTNAME = "Hostname"
# Tenant (kubelb addition): every Config/Tenant setting for its Envoy is honoured, or which not.
SETTINGS_APPLIED = "SettingsApplied"

# --- Reasons: success ---
RECONCILED = "Reconciled"
ASSIGNED = "Assigned"
PROGRAMMED_REASON = "Programmed"
INSTALLATION_SUCCESSFUL = "InstallationSuccessful"

# --- Reasons: failure or waiting ---
RECONCILIATION_FAILED = "ReconciliationFailed"
INSTALLATION_FAILED = "InstallationFailed"
TERMINATING = "Terminating"
PENDING = "Pending"
# The spec cannot be served as written (e.g. no port pairs with an endpoint port).
INVALID_SPEC = "InvalidSpec"
# No address could be assigned yet (no ingress IP from the Service, nothing in the pool).
NO_ADDRESS = "NoAddress"
# Every pool address already uses one of this LoadBalancer's ports.
PORT_CONFLICT = "PortConflict"
# The pool has no address left at all.
ADDRESS_POOL_EXHAUSTED = "AddressPoolExhausted"
# On every pool address one of this LoadBalancer's ports is reserved for the hub's own sockets
# (xDS, probes, metrics, admin).
PORT_RESERVED = "PortReserved"
# The referenced Addresses object does not exist.
ADDRESSES_NOT_FOUND = "AddressesNotFound"
# Addresses x ports expands to no upstream endpoint.
NO_ENDPOINTS = "NoEndpoints"
# An endpoint names an address the endpoint policy refuses (the hub's own sockets, a denied
# CIDR, a hostname); the refused endpoints are left out, the rest is served.
ENDPOINT_REFUSED = "EndpointRefused"
# Nothing can serve the LoadBalancer's `spec.type` where the manager runs Envoy (process mode
# binds a LoadBalancer at its pool address, and the pool places type LoadBalancer only).
SERVICE_TYPE_NOT_SERVED = "ServiceTypeNotServed"
# The Envoy proxy for the tenant is not ready (or not yet configured).
ENVOY_NOT_READY = "EnvoyNotReady"
# The Tenant disables this feature (loadBalancer/ingress/gatewayAPI disable).
TENANT_DISABLED = "TenantDisabled"
# The Config disables this feature for every tenant.
CONFIG_DISABLED = "ConfigDisabled"
# The data plane rejected the configuration (an xDS NACK); the previous one keeps serving.
REJECTED_BY_DATAPLANE = "RejectedByDataplane"
# LoadBalancer hostname: published and served.
HOSTNAME_ASSIGNED = "HostnameAssigned"
# LoadBalancer hostname: explicit hostnames are not allowed, or it is outside the allowed domains.
HOSTNAME_NOT_ALLOWED = "HostnameNotAllowed"
# LoadBalancer hostname: a generated one is asked for but no wildcard domain is configured.
NO_WILDCARD_DOMAIN = "NoWildcardDomain"
# LoadBalancer hostname: served over HTTP, but its cert-manager Certificate could not be written.
CERTIFICATE_FAILED = "CertificateFailed"
# Tenant settings: all honoured by the Envoy infrastructure in use.
SETTINGS_HONOURED = "Honoured"
# Tenant settings: some do not apply to the Envoy infrastructure in use (e.g. pod settings on
# local Envoy processes); the message names each and why.
SETTINGS_NOT_APPLICABLE = "NotApplicable"
