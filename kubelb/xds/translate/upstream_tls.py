"""Upstream TLS: the `envoy.transport_sockets.tls` socket with an `UpstreamTlsContext` for a
cluster whose IR asks for TLS to its endpoints.

Verify: the chain must lead to the IR's CA bundle (inline: CA certificates are public) and, with
an SNI, the certificate must name it (exact DNS SAN). Insecure: no validation context, so Envoy
accepts any certificate. HTTP/2 clusters offer ALPN `h2`, HTTP/1.1 clusters `http/1.1`, so a
backend that negotiates ALPN agrees with the codec.
"""

from __future__ import annotations

from envoy.config.core.v3 import base_pb2
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, tls_pb2
from envoy.type.matcher.v3 import string_pb2

from kubelb.ir import proxy
from kubelb.xds.translate import common

TLS = "envoy.transport_sockets.tls"
_ALPN = {proxy.UpstreamProtocol.HTTP1: "http/1.1", proxy.UpstreamProtocol.HTTP2: "h2"}


def build_transport_socket(
    tls: proxy.UpstreamTLS, upstream: proxy.UpstreamProtocol
) -> base_pb2.TransportSocket:
    context = tls_pb2.CommonTlsContext(alpn_protocols=[_ALPN[upstream]])
    if tls.verify:
        validation = common_pb2.CertificateValidationContext()
        validation.trusted_ca.inline_string = tls.ca_pem or ""
        if tls.sni:
            validation.match_typed_subject_alt_names.append(
                common_pb2.SubjectAltNameMatcher(
                    san_type=common_pb2.SubjectAltNameMatcher.DNS,
                    matcher=string_pb2.StringMatcher(exact=tls.sni),
                )
            )
        context.validation_context.CopyFrom(validation)
    upstream_context = tls_pb2.UpstreamTlsContext(common_tls_context=context, sni=tls.sni or "")
    return base_pb2.TransportSocket(name=TLS, typed_config=common.pack(upstream_context))
