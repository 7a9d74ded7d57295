"""Client TLS contexts for clusters whose IR asks for TLS to their endpoints (HTTPS backends).

Verify: the chain must lead to the IR's CA bundle and, with an SNI, the certificate must name it
(what Envoy's `UpstreamTlsContext` with those settings checks). Insecure: any certificate is
accepted. ALPN offers `h2` for HTTP/2 clusters and `http/1.1` otherwise, as Envoy does.
"""

from __future__ import annotations

import ssl

from kubelb.ir import proxy

_ALPN = {proxy.UpstreamProtocol.HTTP1: "http/1.1", proxy.UpstreamProtocol.HTTP2: "h2"}


def client_context(cluster: proxy.Cluster) -> ssl.SSLContext | None:
    """The context to connect to `cluster`'s endpoints with; None for plain text."""
    tls = cluster.tls
    if tls is None:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols([_ALPN[cluster.upstream_protocol]])
    if tls.verify:
        context.load_verify_locations(cadata=tls.ca_pem or "")
        context.check_hostname = bool(tls.sni)
        context.verify_mode = ssl.CERT_REQUIRED
    else:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def server_hostname(cluster: proxy.Cluster) -> str | None:
    """What `create_connection` takes as `server_hostname`: the SNI, else "" (no SNI and no
    name check; asyncio would otherwise use the endpoint's address)."""
    if cluster.tls is None:
        return None
    return cluster.tls.sni or ""
