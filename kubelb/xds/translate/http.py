"""HTTP listeners: an HttpConnectionManager whose route table comes by RDS over ADS, codec AUTO,
route timeout from the IR (0 = none), idle and stream-idle timeouts, WebSocket upgrades, client
address from the connection plus trusted X-Forwarded-For hops, request ids, header limits and a
stdout access log. The RouteConfiguration has the listener's name. With `tls`, one filter chain
per certificate terminates TLS in front of the same connection manager (`tls`).

Why RDS and not an inline table (upstream's choice): a route change then updates the table in
place, and connections already open use it for their next request. Inline, every change replaces
the listener, its open connections drain on the old table, and a cluster removed by the same
change answers their requests with 503.

Virtual hosts and their route order are the IR's (`proxy.VirtualHost`): Envoy takes the first
route that matches, so the order the IR builder chose is the precedence. A route's match is
`routematch`'s; its action is a redirect (`redirect`), a fixed status (`direct_response`) or
forwarding to one cluster or `weighted_clusters`, with the header edits, rewrites and mirrors of
`filters`, the route timeout (the listener's when the route has none) and a per-attempt backend
timeout.
"""

from __future__ import annotations

from collections.abc import Sequence

from envoy.config.core.v3 import config_source_pb2, protocol_pb2
from envoy.config.listener.v3 import listener_components_pb2, listener_pb2
from envoy.config.route.v3 import route_components_pb2, route_pb2
from envoy.extensions.filters.http.router.v3 import router_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from google.protobuf import wrappers_pb2

from kubelb.ir import proxy
from kubelb.xds.translate import (
    accesslog,
    cluster,
    common,
    filters,
    redirect,
    routematch,
    tls,
)

HCM = "envoy.filters.network.http_connection_manager"
ROUTER = "envoy.filters.http.router"
# Envoy rejects header size limits above 8 MiB.
MAX_HEADERS_KB = 8192


def build_http_listener(li: proxy.Listener) -> listener_pb2.Listener:
    """The listener alone; its routes are `build_route_configuration`'s."""
    options = li.http or proxy.HTTPOptions()
    check_options(li.name, options)
    hcm = build_connection_manager(li, options)
    network_filter = listener_components_pb2.Filter(name=HCM, typed_config=common.pack(hcm))
    out = listener_pb2.Listener(
        name=li.name,
        address=common.socket_address(li.address, li.port),
        stat_prefix=common.stat_prefix(li.name),
    )
    if li.tls is None:
        out.filter_chains.append(listener_components_pb2.FilterChain(filters=[network_filter]))
    else:
        out.listener_filters.append(tls.inspector())
        out.filter_chains.extend(tls.https_filter_chains(li, network_filter))
    return out


def build_route_configuration(li: proxy.Listener) -> route_pb2.RouteConfiguration:
    """The listener's route table, served by RDS under the listener's name. With source-IP
    persistence every route hashes on the client IP."""
    options = li.http or proxy.HTTPOptions()
    check_hostnames(li)
    return route_pb2.RouteConfiguration(
        name=li.name,
        virtual_hosts=build_virtual_hosts(
            li.virtual_hosts, options, persistence=li.source_ip_persistence
        ),
        # Clients send `Host: name:port` and virtual host domains carry no port. The Host keeps
        # its port (upstreams and redirect Locations see it as sent).
        ignore_port_in_host_matching=True,
    )


def build_connection_manager(
    li: proxy.Listener, options: proxy.HTTPOptions
) -> hcm_pb2.HttpConnectionManager:
    hcm = hcm_pb2.HttpConnectionManager(
        codec_type=hcm_pb2.HttpConnectionManager.AUTO,
        stat_prefix=common.stat_prefix(li.name),
        rds=hcm_pb2.Rds(
            config_source=config_source_pb2.ConfigSource(
                ads=config_source_pb2.AggregatedConfigSource(),
                resource_api_version=config_source_pb2.V3,
            ),
            route_config_name=li.name,
        ),
        http_filters=[
            hcm_pb2.HttpFilter(name=ROUTER, typed_config=common.pack(router_pb2.Router()))
        ],
        common_http_protocol_options=protocol_pb2.HttpProtocolOptions(
            idle_timeout=common.duration(options.idle_timeout_seconds),
            max_headers_count=wrappers_pb2.UInt32Value(value=options.max_request_headers_count),
        ),
        http2_protocol_options=protocol_pb2.Http2ProtocolOptions(
            max_concurrent_streams=wrappers_pb2.UInt32Value(
                value=cluster.H2_MAX_CONCURRENT_STREAMS
            ),
            initial_stream_window_size=wrappers_pb2.UInt32Value(value=cluster.H2_MAX_WINDOW),
            initial_connection_window_size=wrappers_pb2.UInt32Value(value=cluster.H2_MAX_WINDOW),
        ),
        max_request_headers_kb=wrappers_pb2.UInt32Value(value=options.max_request_headers_kb),
        stream_idle_timeout=common.duration(options.stream_idle_timeout_seconds),
        use_remote_address=wrappers_pb2.BoolValue(value=True),
        xff_num_trusted_hops=options.xff_num_trusted_hops,
        generate_request_id=wrappers_pb2.BoolValue(value=True),
        access_log=[accesslog.build_stdout_access_log(accesslog.HTTP_FORMAT)],
    )
    if options.websocket:
        hcm.upgrade_configs.append(
            hcm_pb2.HttpConnectionManager.UpgradeConfig(upgrade_type="websocket")
        )
    return hcm


def build_virtual_hosts(
    virtual_hosts: Sequence[proxy.VirtualHost],
    options: proxy.HTTPOptions,
    *,
    persistence: bool = False,
) -> list[route_components_pb2.VirtualHost]:
    """One Envoy virtual host per IR virtual host, routes in the IR's match order. Envoy picks a
    virtual host by domain, never by position, so they are sorted by name for stable output."""
    return [
        route_components_pb2.VirtualHost(
            name=vh.name,
            domains=list(vh.domains),
            routes=[out for r in vh.routes for out in _routes(r, options, persistence)],
        )
        for vh in sorted(virtual_hosts, key=lambda vh: vh.name)
    ]


def upstream_options(config: proxy.ProxyConfig) -> dict[str, proxy.HTTPOptions]:
    """Per HTTP cluster, the upstream header limits of the listeners routing to it (the largest
    when several listeners share a cluster, so none of them sees a smaller limit than asked)."""
    out: dict[str, proxy.HTTPOptions] = {}
    for li in config.listeners:
        if li.protocol is not proxy.Protocol.HTTP:
            continue
        options = li.http or proxy.HTTPOptions()
        for name in li.route_clusters:
            previous = out.get(name)
            out[name] = options if previous is None else _larger_limits(previous, options)
    return out


def check_options(listener: str, options: proxy.HTTPOptions) -> None:
    where = f"listener {listener!r}: http"
    for field, value in (
        ("maxRequestHeadersKb", options.max_request_headers_kb),
        ("maxResponseHeadersKb", options.max_response_headers_kb),
    ):
        if not 1 <= value <= MAX_HEADERS_KB:
            raise common.TranslateError(f"{where}.{field}: {value} is outside 1-{MAX_HEADERS_KB}")
    if options.max_request_headers_count < 1:
        raise common.TranslateError(f"{where}.maxRequestHeadersCount: must be at least 1")
    if options.xff_num_trusted_hops < 0:
        raise common.TranslateError(f"{where}.xffNumTrustedHops: must not be negative")
    for field, seconds in (
        ("idleTimeoutSeconds", options.idle_timeout_seconds),
        ("streamIdleTimeoutSeconds", options.stream_idle_timeout_seconds),
        ("requestTimeoutSeconds", options.request_timeout_seconds),
    ):
        if seconds < 0:
            raise common.TranslateError(f"{where}.{field}: must not be negative")


def _routes(
    r: proxy.HTTPRoute, options: proxy.HTTPOptions, persistence: bool
) -> list[route_components_pb2.Route]:
    """The Envoy routes of one IR route: one, or for some redirects two in a row (`redirect`)."""
    out = route_components_pb2.Route(
        name=r.name,
        match=routematch.build_match(r.match),
        request_headers_to_add=filters.headers_to_add(r.request_headers),
        request_headers_to_remove=filters.headers_to_remove(r.request_headers),
        response_headers_to_add=filters.headers_to_add(r.response_headers),
        response_headers_to_remove=filters.headers_to_remove(r.response_headers),
    )
    if r.direct_status is not None:
        out.direct_response.CopyFrom(
            route_components_pb2.DirectResponseAction(status=r.direct_status)
        )
    elif r.redirect is None:
        out.route.CopyFrom(_route_action(r, options, persistence))
    else:
        variants = []
        for condition, action in redirect.build_redirects(r.redirect, r.match.path):
            variant = route_components_pb2.Route()
            variant.CopyFrom(out)
            if condition is not None:
                variant.match.headers.append(condition)
            variant.redirect.CopyFrom(action)
            variants.append(variant)
        return variants
    return [out]


def _route_action(
    r: proxy.HTTPRoute, options: proxy.HTTPOptions, persistence: bool
) -> route_components_pb2.RouteAction:
    timeout = options.request_timeout_seconds if r.timeout_seconds is None else r.timeout_seconds
    action = route_components_pb2.RouteAction(timeout=common.duration(timeout))
    if len(r.backends) == 1:
        action.cluster = r.backends[0].cluster
    else:
        # Weight 0 beside positive ones is valid: that backend takes no request.
        action.weighted_clusters.clusters.extend(
            route_components_pb2.WeightedCluster.ClusterWeight(
                name=b.cluster, weight=wrappers_pb2.UInt32Value(value=b.weight)
            )
            for b in r.backends
        )
    if r.rewrite is not None:
        if r.rewrite.hostname:
            action.host_rewrite_literal = r.rewrite.hostname
        if r.rewrite.path is not None:
            filters.rewrite_path(action, r.rewrite.path, r.match.path)
    action.request_mirror_policies.extend(filters.request_mirror_policies(r.mirrors))
    if r.backend_timeout_seconds is not None:
        # Gateway API's backendRequest timeout: one attempt at a backend. Envoy bounds an
        # attempt only inside a retry policy; with no retries it bounds the single attempt.
        action.retry_policy.CopyFrom(
            route_components_pb2.RetryPolicy(
                num_retries=wrappers_pb2.UInt32Value(value=0),
                per_try_timeout=common.duration(r.backend_timeout_seconds),
            )
        )
    if persistence:
        # The cluster runs Maglev; without a hash policy it would pick a random host.
        action.hash_policy.append(
            route_components_pb2.RouteAction.HashPolicy(
                connection_properties=route_components_pb2.RouteAction.HashPolicy.ConnectionProperties(
                    source_ip=True
                )
            )
        )
    return action


def check_hostnames(li: proxy.Listener) -> None:
    """Envoy accepts `*`, one leading `*` (suffix match) or one trailing `*` (prefix match)."""
    for vh in li.virtual_hosts:
        for host in vh.domains:
            inner = host[1:] if host.startswith("*") else host[:-1] if host.endswith("*") else host
            if not host or "*" in inner:
                raise common.TranslateError(
                    f"listener {li.name!r}: virtual host {vh.name!r}: domain {host!r} may hold a "
                    "single `*`, only at its start or end"
                )


def _larger_limits(a: proxy.HTTPOptions, b: proxy.HTTPOptions) -> proxy.HTTPOptions:
    return proxy.HTTPOptions(
        max_request_headers_kb=max(a.max_request_headers_kb, b.max_request_headers_kb),
        max_request_headers_count=max(a.max_request_headers_count, b.max_request_headers_count),
        max_response_headers_kb=max(a.max_response_headers_kb, b.max_response_headers_kb),
    )
