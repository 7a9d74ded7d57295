"""Envoy Listener per IR listener. TCP: a `tcp_proxy` network filter to one cluster, or to
`weighted_clusters` of equal weight. UDP: the `udp_proxy` listener filter routing every session
to one cluster through the matcher's `on_no_match` action, on a reuse_port socket. HTTP: an
HttpConnectionManager built by `http.py`. All log to stdout; source-IP persistence adds a
source-IP hash policy so the cluster's Maglev ring keeps a client on one host.

SO_REUSEPORT stays on (Envoy's default for TCP, explicit for UDP): it gives each of Envoy's
workers its own socket, and the kernel joins only sockets that all set it under one user. The
danger is sharing across owners, and that is closed where sockets are handed out: kubelb's own
servers bind without SO_REUSEPORT (no Envoy can join them), the address pool never places a
listener on a reserved hub socket or on one another process holds, and gives each (address,
port) to one LoadBalancer only (`kubelb.placement.pool`)."""

from __future__ import annotations

from collections.abc import Sequence

from envoy.config.listener.v3 import listener_components_pb2, listener_pb2, udp_listener_config_pb2
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from envoy.extensions.filters.udp.udp_proxy.v3 import route_pb2, udp_proxy_pb2
from envoy.type.v3 import hash_policy_pb2
from google.protobuf import wrappers_pb2
from xds.core.v3 import extension_pb2
from xds.type.matcher.v3 import matcher_pb2

from kubelb.ir import proxy
from kubelb.xds.translate import accesslog, common

TCP_PROXY = "envoy.filters.network.tcp_proxy"
UDP_PROXY = "envoy.filters.udp_listener.udp_proxy"
UDP_ROUTE_ACTION = "route"


def build_tcp_listener(li: proxy.Listener, clusters: Sequence[str]) -> listener_pb2.Listener:
    tcp = tcp_proxy_pb2.TcpProxy(
        stat_prefix=common.stat_prefix(li.name),
        access_log=[accesslog.build_stdout_access_log(accesslog.TCP_FORMAT)],
    )
    if len(clusters) == 1:
        tcp.cluster = clusters[0]
    else:
        tcp.weighted_clusters.CopyFrom(
            tcp_proxy_pb2.TcpProxy.WeightedCluster(
                clusters=[
                    tcp_proxy_pb2.TcpProxy.WeightedCluster.ClusterWeight(name=n, weight=1)
                    for n in clusters
                ]
            )
        )
    if li.source_ip_persistence:
        tcp.hash_policy.append(
            hash_policy_pb2.HashPolicy(source_ip=hash_policy_pb2.HashPolicy.SourceIp())
        )
    chain = listener_components_pb2.FilterChain(
        filters=[listener_components_pb2.Filter(name=TCP_PROXY, typed_config=common.pack(tcp))]
    )
    return listener_pb2.Listener(
        name=li.name,
        address=common.socket_address(li.address, li.port),
        stat_prefix=common.stat_prefix(li.name),
        filter_chains=[chain],
    )


def build_udp_listener(li: proxy.Listener, cluster: str) -> listener_pb2.Listener:
    route = route_pb2.Route(cluster=cluster)
    matcher = matcher_pb2.Matcher(
        on_no_match=matcher_pb2.Matcher.OnMatch(
            action=extension_pb2.TypedExtensionConfig(
                name=UDP_ROUTE_ACTION, typed_config=common.pack(route)
            )
        )
    )
    udp = udp_proxy_pb2.UdpProxyConfig(
        stat_prefix=common.stat_prefix(li.name),
        matcher=matcher,
        access_log=[accesslog.build_stdout_access_log(accesslog.UDP_FORMAT)],
    )
    if li.source_ip_persistence:
        udp.hash_policies.append(udp_proxy_pb2.UdpProxyConfig.HashPolicy(source_ip=True))
    return listener_pb2.Listener(
        name=li.name,
        address=common.socket_address(li.address, li.port, udp=True),
        stat_prefix=common.stat_prefix(li.name),
        udp_listener_config=udp_listener_config_pb2.UdpListenerConfig(),
        # Several worker threads each get a socket, and the kernel spreads datagrams by 4-tuple.
        enable_reuse_port=wrappers_pb2.BoolValue(value=True),
        listener_filters=[
            listener_components_pb2.ListenerFilter(name=UDP_PROXY, typed_config=common.pack(udp))
        ],
    )
