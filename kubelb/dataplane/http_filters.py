"""Pure helpers for a route's filters: header edits, path rewrites and redirect locations.

Input: IR filters (`proxy.HeaderModifier`, `proxy.PathRewrite`, `proxy.Redirect`) and request
parts. Output: edited header lists, rewritten request targets and `Location` values, with the
semantics Envoy gives the same IR (Gateway API's rules for prefix replacement and redirect
ports). No I/O; `http` applies them to requests and `http_upstream` to response heads.
"""

from __future__ import annotations

from collections.abc import Sequence

from kubelb.ir import proxy

Headers = list[tuple[bytes, bytes]]

# Names a filter never touches: they frame the message (the proxy writes them itself) or, for
# `host`, are set by the rewrite instead (Envoy refuses header edits of `host` too).
PROTECTED = frozenset(
    {
        b"connection",
        b"content-length",
        b"host",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)

DEFAULT_PORTS = {"http": 80, "https": 443}


class HeaderEdits:
    """A `HeaderModifier`, compiled: remove, then set (replacing every value), then add."""

    __slots__ = ("add", "drop", "set")

    def __init__(self, modifier: proxy.HeaderModifier) -> None:
        self.set = tuple(
            (n.lower().encode("latin-1"), v.encode("latin-1", "replace"))
            for n, v in modifier.set
            if n.lower().encode("latin-1") not in PROTECTED
        )
        self.add = tuple(
            (n.lower().encode("latin-1"), v.encode("latin-1", "replace"))
            for n, v in modifier.add
            if n.lower().encode("latin-1") not in PROTECTED
        )
        removed = {n.lower().encode("latin-1") for n in modifier.remove} - PROTECTED
        self.drop = frozenset(removed | {n for n, _ in self.set})

    def apply(self, headers: Sequence[tuple[bytes, bytes]]) -> Headers:
        drop = self.drop
        edited = [(n, v) for n, v in headers if n.lower() not in drop] if drop else list(headers)
        edited.extend(self.set)
        edited.extend(self.add)
        return edited


def closing(edits: HeaderEdits | None) -> HeaderEdits:
    """`edits`, and the upstream's `connection` and `keep-alive` headers replaced by
    `connection: close`: for a response after which the client connection closes (the client
    asked for it, or the listener drains), which the upstream's own keep-alive must not deny.
    Clients that go by the response (wrk) would otherwise send their next request into a closed
    connection, as Envoy never lets them."""
    if edits is None:
        return _CLOSING
    out = HeaderEdits(proxy.HeaderModifier())
    out.set = (*_CLOSING.set, *edits.set)
    out.add = edits.add
    out.drop = edits.drop | _CLOSING.drop
    return out


def edit_response_head(head: bytes, edits: HeaderEdits) -> bytes:
    """`head` (status line and headers, ending with the blank line) with `edits` applied."""
    lines = head.split(b"\r\n")
    status, fields = lines[0], lines[1:-2]
    headers = []
    for line in fields:
        name, _, value = line.partition(b":")
        headers.append((name, value.strip()))
    parts = [status, b"\r\n"]
    for name, value in edits.apply(headers):
        parts += (name, b": ", value, b"\r\n")
    parts.append(b"\r\n")
    return b"".join(parts)


def edit_response(answer: bytes, edits: HeaderEdits) -> bytes:
    """A complete response (head and body) with `edits` applied to its head."""
    end = answer.find(b"\r\n\r\n") + 4
    return edit_response_head(answer[:end], edits) + answer[end:]


def final_head_end(data: bytes) -> tuple[int, int] | None:
    """(start, end) of the final response head in `data` (interim 1xx heads other than 101 come
    before it and have no body); None when `data` holds no complete final head."""
    start = 0
    while True:
        end = data.find(b"\r\n\r\n", start)
        if end < 0:
            return None
        end += 4
        code = data[start + 9 : start + 12]
        if not (code.startswith(b"1") and code != b"101"):
            return (start, end)
        start = end


def replace_path(path: str, prefix: str, rewrite: proxy.PathRewrite) -> str:
    """`path` (without query) rewritten: the whole of it, or the part the route's PathPrefix
    `prefix` matched (Gateway API: `/foo` replaced by `/` turns `/foo/bar` into `/bar`)."""
    if rewrite.kind is proxy.PathRewriteKind.FULL:
        return rewrite.value
    rest = path if prefix == "/" else path[len(prefix.rstrip("/")) :]
    new = rewrite.value.rstrip("/") + rest
    if not new.startswith("/"):
        new = "/" + new
    return new


def rewrite_target(target: str, prefix: str, rewrite: proxy.PathRewrite) -> str:
    """A request target (path and query) with its path rewritten; the query is kept."""
    path, mark, query = target.partition("?")
    return replace_path(path, prefix, rewrite) + mark + query


def split_host(host_header: str) -> tuple[str, int | None]:
    """(host, port) of a Host header value; the port is None when absent or invalid."""
    if host_header.startswith("["):
        host, _, rest = host_header.partition("]")
        host += "]"
        port = rest[1:] if rest.startswith(":") else ""
    elif host_header.count(":") == 1:
        host, _, port = host_header.partition(":")
    else:
        host, port = host_header, ""
    return host, int(port) if port.isdigit() else None


def redirect_location(
    redirect: proxy.Redirect,
    *,
    scheme: str,
    host_header: str,
    target: str,
    prefix: str,
) -> str:
    """The `Location` of `redirect` for a request (Gateway API's rules): a changed scheme without
    a port gives the scheme's default port; the default port of the scheme is never written."""
    host, port = split_host(host_header)
    new_scheme = redirect.scheme or scheme
    if redirect.hostname is not None:
        host = redirect.hostname
    if redirect.port is not None:
        port = redirect.port
    elif redirect.scheme is not None:
        port = None
    if redirect.path is not None:
        target = rewrite_target(target, prefix, redirect.path)
    authority = host if port is None or DEFAULT_PORTS.get(new_scheme) == port else f"{host}:{port}"
    return f"{new_scheme}://{authority}{target}"


_CLOSING = HeaderEdits(proxy.HeaderModifier())
_CLOSING.set = ((b"connection", b"close"),)
_CLOSING.drop = frozenset({b"connection", b"keep-alive"})
