"""Upstream PROXY protocol: a transport socket that prefixes each upstream connection with a
PROXY v2 header carrying the client address, wrapping the plain (raw_buffer) socket."""

from __future__ import annotations

from envoy.config.core.v3 import base_pb2, proxy_protocol_pb2
from envoy.extensions.transport_sockets.proxy_protocol.v3 import upstream_proxy_protocol_pb2
from envoy.extensions.transport_sockets.raw_buffer.v3 import raw_buffer_pb2

from kubelb.ir import proxy
from kubelb.xds.translate import common

UPSTREAM_PROXY_PROTOCOL = "envoy.transport_sockets.upstream_proxy_protocol"
RAW_BUFFER = "envoy.transport_sockets.raw_buffer"

_VERSIONS = {proxy.ProxyProtocol.V2: proxy_protocol_pb2.ProxyProtocolConfig.V2}


def build_transport_socket(version: proxy.ProxyProtocol) -> base_pb2.TransportSocket:
    inner = base_pb2.TransportSocket(
        name=RAW_BUFFER, typed_config=common.pack(raw_buffer_pb2.RawBuffer())
    )
    config = upstream_proxy_protocol_pb2.ProxyProtocolUpstreamTransport(
        config=proxy_protocol_pb2.ProxyProtocolConfig(version=_VERSIONS[version]),
        transport_socket=inner,
    )
    return base_pb2.TransportSocket(name=UPSTREAM_PROXY_PROTOCOL, typed_config=common.pack(config))
