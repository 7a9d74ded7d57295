"""Well-known annotation keys and values: the ones KubeLB reads from tenant objects, the ones it
writes on the objects it generates, and those of other projects it sets (external-dns,
cert-manager) or honours (ingress-nginx). Keys match upstream KubeLB's."""

from __future__ import annotations

# On a LoadBalancer (copied from the tenant Service): ask for a generated hostname under the
# wildcard domain.
REQUEST_WILDCARD_DOMAIN = "kubelb.k8c.io/request-wildcard-domain"
# On a LoadBalancer: send PROXY protocol to upstreams on its TCP ports. Only "v2" is supported.
PROXY_PROTOCOL = "kubelb.k8c.io/proxy-protocol"
PROXY_PROTOCOL_V2 = "v2"
# Marks objects created by the CLI.
CLI_GENERATED = "kubelb.k8c.io/cli-generated"
# Legacy allow-list mechanism; unused, kept so it is recognised.
PROPAGATE_ANNOTATION = "kubelb.k8c.io/propagate-annotation"

# Ingress -> Gateway API conversion.
SKIP_CONVERSION = "kubelb.k8c.io/skip-conversion"
CONVERSION_STATUS = "kubelb.k8c.io/conversion-status"
CONVERTED_HTTPROUTE = "kubelb.k8c.io/converted-httproute"
CONVERTED_GRPCROUTE = "kubelb.k8c.io/converted-grpcroute"
CONVERSION_WARNINGS = "kubelb.k8c.io/conversion-warnings"
CONVERSION_SKIP_REASON = "kubelb.k8c.io/conversion-skip-reason"
VERIFICATION_TIMESTAMP = "kubelb.k8c.io/verification-timestamp"
SOURCE_SECRET = "kubelb.k8c.io/source-secret"

# Third-party annotations KubeLB sets on hostname objects.
EXTERNAL_DNS_HOSTNAME = "external-dns.alpha.kubernetes.io/hostname"
EXTERNAL_DNS_TTL = "external-dns.alpha.kubernetes.io/ttl"
CERT_MANAGER_CLUSTER_ISSUER = "cert-manager.io/cluster-issuer"

# Ingress annotations that turn an HTTP listener into raw TCP passthrough.
NGINX_BACKEND_PROTOCOL = "nginx.ingress.kubernetes.io/backend-protocol"
NGINX_SSL_PASSTHROUGH = "nginx.ingress.kubernetes.io/ssl-passthrough"

# HTTPS backends, on a tenant Service (upstream EE's keys): TLS from the hub to the Service's
# NodePorts. The policy is "Insecure" (any certificate) or "Verify" (against the `ca.crt` of the
# Secret the CA annotation names, in the Service's namespace). The SNI key is kubelb's own: the
# server name sent, which Verify then requires the certificate to carry.
BACKEND_TLS_POLICY = "kubelb.k8c.io/backend-tls-policy"
BACKEND_TLS_CA_SECRET = "kubelb.k8c.io/backend-tls-ca-secret"
BACKEND_TLS_SNI = "kubelb.k8c.io/backend-tls-sni"
