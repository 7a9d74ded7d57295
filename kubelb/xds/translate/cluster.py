"""Envoy Cluster per `balance.Backend`, with upstream KubeLB's defaults: connect timeout from the
IR (5 s by default), ROUND_ROBIN (MAGLEV with source-IP persistence), TCP connect health checks
that never keep a host the control plane removed (`ignore_health_on_host_removal`), optional
upstream PROXY protocol (TCP) or TLS (HTTP, `upstream_tls`), and for HTTP clusters explicit
HTTP/1.1 or HTTP/2 upstream options.

Healthy panic threshold 1 % where upstream KubeLB sets 0 %: Envoy adds a host marked failed until
its first health check passes, so with 0 % an endpoint that replaces another (the old one is
removed at once) takes no connection until then, about a second per change. At 1 % Envoy
spreads over every host only while none is healthy (fewer than 1 in 100), so a replacement
serves at once (make before break) and hosts known to be down get no traffic while any other
host passes; the threshold is a whole percent in Envoy, 1 is the smallest that acts.

IP-only clusters are EDS over ADS (endpoints travel as separate ClusterLoadAssignments, so an
endpoint change does not re-send the cluster); clusters with any hostname are strict DNS (the
`envoy.clusters.dns` extension) with the load assignment inline.
"""

from __future__ import annotations

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import config_source_pb2, protocol_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.extensions.clusters.common.dns.v3 import dns_pb2
from envoy.extensions.clusters.dns.v3 import dns_cluster_pb2
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2
from envoy.type.v3 import percent_pb2
from google.protobuf import wrappers_pb2

from kubelb.ir import proxy
from kubelb.xds.translate import (
    balance,
    common,
    endpoint,
    healthcheck,
    proxy_protocol,
    upstream_tls,
)

DNS_REFRESH_SECONDS = 30.0
# See the module docstring: every host, checked or not, takes traffic only while none passes.
PANIC_THRESHOLD_PERCENT = 1.0
DNS_CLUSTER = "envoy.clusters.dns"
HTTP_PROTOCOL_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
# HTTP/2 flow-control windows and stream limit at Envoy's maxima, as upstream KubeLB sets them.
H2_MAX_CONCURRENT_STREAMS = 2147483647
H2_MAX_WINDOW = 2147483647


def build_cluster(
    backend: balance.Backend, http_options: proxy.HTTPOptions | None = None
) -> cluster_pb2.Cluster:
    c = backend.cluster
    out = cluster_pb2.Cluster(
        name=c.name,
        connect_timeout=common.duration(c.connect_timeout_seconds),
        lb_policy=(
            cluster_pb2.Cluster.MAGLEV if backend.persistent else cluster_pb2.Cluster.ROUND_ROBIN
        ),
        common_lb_config=cluster_pb2.Cluster.CommonLbConfig(
            healthy_panic_threshold=percent_pb2.Percent(value=PANIC_THRESHOLD_PERCENT)
        ),
    )
    if backend.uses_dns:
        _strict_dns(out, backend)
    else:
        out.type = cluster_pb2.Cluster.EDS
        out.eds_cluster_config.CopyFrom(eds_cluster_config())
    if c.health_check is not None and c.protocol is not proxy.Protocol.UDP:
        out.health_checks.append(healthcheck.build_health_check(c.health_check))
        # Envoy otherwise keeps a removed host while it passes health checks: a NotReady node
        # whose NodePort still answers would keep its traffic (KubeLB #162).
        out.ignore_health_on_host_removal = True
    if c.proxy_protocol is not None:
        out.transport_socket.CopyFrom(proxy_protocol.build_transport_socket(c.proxy_protocol))
    elif c.tls is not None:
        out.transport_socket.CopyFrom(
            upstream_tls.build_transport_socket(c.tls, c.upstream_protocol)
        )
    if c.protocol is proxy.Protocol.HTTP:
        options = build_http_protocol_options(c.upstream_protocol, http_options)
        out.typed_extension_protocol_options[HTTP_PROTOCOL_OPTIONS].CopyFrom(common.pack(options))
    return out


def eds_cluster_config() -> cluster_pb2.Cluster.EdsClusterConfig:
    return cluster_pb2.Cluster.EdsClusterConfig(
        eds_config=config_source_pb2.ConfigSource(
            ads=config_source_pb2.AggregatedConfigSource(),
            resource_api_version=config_source_pb2.V3,
        )
    )


def build_http_protocol_options(
    upstream: proxy.UpstreamProtocol, http_options: proxy.HTTPOptions | None
) -> http_protocol_options_pb2.HttpProtocolOptions:
    explicit = http_protocol_options_pb2.HttpProtocolOptions.ExplicitHttpConfig()
    if upstream is proxy.UpstreamProtocol.HTTP2:
        explicit.http2_protocol_options.CopyFrom(
            protocol_pb2.Http2ProtocolOptions(
                max_concurrent_streams=wrappers_pb2.UInt32Value(value=H2_MAX_CONCURRENT_STREAMS),
                initial_stream_window_size=wrappers_pb2.UInt32Value(value=H2_MAX_WINDOW),
                initial_connection_window_size=wrappers_pb2.UInt32Value(value=H2_MAX_WINDOW),
            )
        )
    else:
        explicit.http_protocol_options.CopyFrom(protocol_pb2.Http1ProtocolOptions())
    out = http_protocol_options_pb2.HttpProtocolOptions(explicit_http_config=explicit)
    if http_options is not None:
        out.common_http_protocol_options.CopyFrom(
            protocol_pb2.HttpProtocolOptions(
                max_headers_count=wrappers_pb2.UInt32Value(
                    value=http_options.max_request_headers_count
                ),
                max_response_headers_kb=wrappers_pb2.UInt32Value(
                    value=http_options.max_response_headers_kb
                ),
            )
        )
    return out


def build_load_assignment(backend: balance.Backend) -> endpoint_pb2.ClusterLoadAssignment:
    return endpoint.build_load_assignment(backend.name, backend.endpoints)


def build_dns_cluster_type() -> cluster_pb2.Cluster.CustomClusterType:
    """Strict DNS through the `envoy.clusters.dns` extension: every resolved address is a host
    (`all_addresses_in_single_endpoint` false). The Cluster-level `dns_*` fields it replaces are
    deprecated in Envoy 1.40."""
    dns = dns_cluster_pb2.DnsCluster(
        dns_refresh_rate=common.duration(DNS_REFRESH_SECONDS),
        respect_dns_ttl=True,
        # Prefer A records and fall back to AAAA: works on IPv4-only, dual-stack and IPv6-only
        # hosts, whereas AUTO (AAAA first) breaks on dual-stack names served to hosts without an
        # IPv6 route.
        dns_lookup_family=dns_pb2.V4_PREFERRED,
    )
    return cluster_pb2.Cluster.CustomClusterType(name=DNS_CLUSTER, typed_config=common.pack(dns))


def _strict_dns(out: cluster_pb2.Cluster, backend: balance.Backend) -> None:
    out.cluster_type.CopyFrom(build_dns_cluster_type())
    out.load_assignment.CopyFrom(build_load_assignment(backend))
