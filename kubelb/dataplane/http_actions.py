"""What a chosen route does to a forwarded request, apart from the connection that carries it:
the upstream request head (the route's request header edits and URL rewrite applied) and the
mirrors a request is copied to (chosen by their percentage, sent fire-and-forget, their answers
dropped, never delaying the request itself).
"""

from __future__ import annotations

import random
from collections.abc import Iterable

from kubelb.dataplane import context, http_filters, http_messages, http_mirror, upstreams
from kubelb.dataplane.http_exchange import Exchange


def upstream_head(
    ex: Exchange, route: context.Route, path: str, client: str, scheme: bytes = b"http"
) -> bytes:
    """The request head sent upstream, with the route's request edits and rewrite."""
    headers: list[tuple[bytes, bytes]] = ex.headers
    url = ex.url
    if not route.plain:
        if route.request_edits is not None:
            headers = route.request_edits.apply(headers)
        rewrite = route.route.rewrite
        if rewrite is not None:
            if rewrite.hostname is not None:
                headers = http_messages.with_host(headers, rewrite.hostname.encode())
            if rewrite.path is not None:
                rewritten = http_filters.rewrite_target(path, route.prefix, rewrite.path)
                url = rewritten.encode("latin-1")
    return http_messages.request_head(
        method=ex.method,
        target=url,
        version=ex.version,
        headers=headers,
        client_ip=client,
        chunked=ex.chunked,
        upgrade=ex.upgrade,
        scheme=scheme,
    )


def chosen_mirrors(
    route: context.Route, head: bytes
) -> list[tuple[bytes, upstreams.Target]] | None:
    """The mirrors this request goes to (each by its percentage, one with no healthy endpoint
    skipped), with the head they get; None when none."""
    chosen: list[tuple[bytes, upstreams.Target]] | None = None
    mirrored = b""
    for mirror in route.mirrors:
        if mirror.percent < 100 and random.random() * 100 >= mirror.percent:
            continue
        target = mirror.picker.pick()
        if target is None:
            continue
        if not mirrored:
            mirrored = mirror_head(head)
        if chosen is None:
            chosen = []
        chosen.append((mirrored, target))
    return chosen


def send_mirrors(
    tracker: context.Tracker, mirrors: Iterable[tuple[bytes, upstreams.Target]], body: bytes
) -> None:
    for head, target in mirrors:
        _ = tracker.spawn(
            http_mirror.send(
                target.host,
                target.port,
                head + body,
                connect_timeout=target.owner.cluster.connect_timeout_seconds,
            ),
            name="http-mirror",
        )


def mirror_head(head: bytes) -> bytes:
    """The upstream request head as a mirror gets it (the request's Host kept, as the Envoy
    translation keeps it), closed after the answer."""
    return head[:-2] + b"connection: close\r\n\r\n"
