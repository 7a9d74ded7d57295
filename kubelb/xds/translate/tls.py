"""TLS at the listener: HTTPS filter chains chosen by SNI, TLS passthrough listeners, and the
SDS `Secret` resources holding the key material.

Every TLS listener starts with the `tls_inspector` listener filter, which reads the SNI from the
ClientHello; filter chains then match on `server_names` (exact, else the longest `*.suffix`,
else a chain without server names, else the connection is closed), which is the IR's order.

HTTPS: one filter chain per IR certificate, each with the listener's HttpConnectionManager (one
route table by RDS: requests route by Host after the handshake) and a DownstreamTlsContext that
names its certificate for SDS over ADS. The key material is never in the listener: a rotated
certificate is a new version of the `Secret` resource alone, and Envoy swaps it in without
touching the listener, so no connection drains.

Passthrough: one filter chain per SNI route, a `tcp_proxy` to its cluster(s); TLS is not
terminated.
"""

from __future__ import annotations

from collections.abc import Sequence

from envoy.config.core.v3 import base_pb2, config_source_pb2
from envoy.config.listener.v3 import listener_components_pb2, listener_pb2
from envoy.extensions.filters.listener.tls_inspector.v3 import tls_inspector_pb2
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, secret_pb2, tls_pb2

from kubelb.ir import proxy, tls as ir_tls
from kubelb.xds.translate import accesslog, common

TLS_INSPECTOR = "envoy.filters.listener.tls_inspector"
TLS_TRANSPORT = "envoy.transport_sockets.tls"
TCP_PROXY = "envoy.filters.network.tcp_proxy"
# HTTP/2 when the client offers it: the connection manager's codec is AUTO.
ALPN = ("h2", "http/1.1")


def inspector() -> listener_components_pb2.ListenerFilter:
    return listener_components_pb2.ListenerFilter(
        name=TLS_INSPECTOR, typed_config=common.pack(tls_inspector_pb2.TlsInspector())
    )


def sds_config() -> config_source_pb2.ConfigSource:
    return config_source_pb2.ConfigSource(
        ads=config_source_pb2.AggregatedConfigSource(), resource_api_version=config_source_pb2.V3
    )


def https_filter_chains(
    li: proxy.Listener, network_filter: listener_components_pb2.Filter
) -> list[listener_components_pb2.FilterChain]:
    """One chain per certificate of `li.tls`, each terminating TLS in front of `network_filter`
    (the HttpConnectionManager). Sorted by secret name for stable output."""
    assert li.tls is not None
    chains = []
    for cert in sorted(li.tls.certificates, key=lambda c: (c.secret, c.server_names)):
        context = tls_pb2.DownstreamTlsContext(
            common_tls_context=tls_pb2.CommonTlsContext(
                tls_certificate_sds_secret_configs=[
                    secret_pb2.SdsSecretConfig(name=cert.secret, sds_config=sds_config())
                ],
                alpn_protocols=list(ALPN),
            )
        )
        chains.append(
            listener_components_pb2.FilterChain(
                name=_chain_name(cert.server_names),
                filter_chain_match=_match(cert.server_names),
                filters=[network_filter],
                transport_socket=base_pb2.TransportSocket(
                    name=TLS_TRANSPORT, typed_config=common.pack(context)
                ),
            )
        )
    return chains


def build_passthrough_listener(li: proxy.Listener) -> listener_pb2.Listener:
    chains = []
    for route in sorted(li.sni_routes, key=lambda r: r.name):
        tcp = tcp_proxy_pb2.TcpProxy(
            stat_prefix=common.stat_prefix(f"{li.name}.{route.name}"),
            access_log=[accesslog.build_stdout_access_log(accesslog.TCP_FORMAT)],
        )
        _tcp_target(tcp, route.backends)
        chains.append(
            listener_components_pb2.FilterChain(
                name=route.name,
                filter_chain_match=_match(route.server_names),
                filters=[
                    listener_components_pb2.Filter(name=TCP_PROXY, typed_config=common.pack(tcp))
                ],
            )
        )
    return listener_pb2.Listener(
        name=li.name,
        address=common.socket_address(li.address, li.port),
        stat_prefix=common.stat_prefix(li.name),
        listener_filters=[inspector()],
        filter_chains=chains,
    )


def build_secret(secret: ir_tls.TLSSecret) -> secret_pb2.Secret:
    return secret_pb2.Secret(
        name=secret.name,
        tls_certificate=common_pb2.TlsCertificate(
            certificate_chain=base_pb2.DataSource(inline_string=secret.certificate_chain),
            private_key=base_pb2.DataSource(inline_string=secret.private_key),
        ),
    )


def _tcp_target(tcp: tcp_proxy_pb2.TcpProxy, backends: Sequence[proxy.WeightedCluster]) -> None:
    live = [b for b in backends if b.weight > 0]
    if len(live) == 1:
        tcp.cluster = live[0].cluster
        return
    tcp.weighted_clusters.CopyFrom(
        tcp_proxy_pb2.TcpProxy.WeightedCluster(
            clusters=[
                tcp_proxy_pb2.TcpProxy.WeightedCluster.ClusterWeight(
                    name=b.cluster, weight=b.weight
                )
                for b in live
            ]
        )
    )


def _match(server_names: Sequence[str]) -> listener_components_pb2.FilterChainMatch:
    return listener_components_pb2.FilterChainMatch(server_names=sorted(server_names))


def _chain_name(server_names: Sequence[str]) -> str:
    return ",".join(sorted(server_names)) or "default"
