"""Route filters as pure functions: header edits, path rewrites, redirect locations."""

from __future__ import annotations

import pytest

from kubelb.dataplane import http_filters as f
from kubelb.ir import proxy

FULL = proxy.PathRewriteKind.FULL
PREFIX = proxy.PathRewriteKind.PREFIX


def test_header_edits_remove_then_set_then_add():
    edits = f.HeaderEdits(
        proxy.HeaderModifier(
            set=(("X-Set", "new"),), add=(("x-add", "2"),), remove=("x-gone", "x-add")
        )
    )
    headers = [(b"X-Set", b"old"), (b"x-set", b"older"), (b"X-Gone", b"1"), (b"x-add", b"1"),
               (b"x-keep", b"k")]  # fmt: skip
    assert edits.apply(headers) == [(b"x-keep", b"k"), (b"x-set", b"new"), (b"x-add", b"2")]


def test_framing_and_host_are_never_edited():
    edits = f.HeaderEdits(
        proxy.HeaderModifier(
            set=(("content-length", "0"), ("host", "h")), add=(("transfer-encoding", "x"),),
            remove=("connection", "Content-Length"),
        )
    )  # fmt: skip
    headers = [(b"content-length", b"5"), (b"connection", b"close"), (b"host", b"a")]
    assert edits.apply(headers) == headers


def test_response_head_edit_keeps_status_line_and_framing():
    edits = f.HeaderEdits(proxy.HeaderModifier(set=(("server", "kubelb"),), remove=("x-a",)))
    head = b"HTTP/1.1 404 Nope\r\nServer: nginx\r\nx-a: 1\r\ncontent-length: 3\r\n\r\n"
    assert f.edit_response_head(head, edits) == (
        b"HTTP/1.1 404 Nope\r\ncontent-length: 3\r\nserver: kubelb\r\n\r\n"
    )
    answer = head + b"abc"
    assert f.edit_response(answer, edits).endswith(b"server: kubelb\r\n\r\nabc")


def test_the_final_head_comes_after_interim_ones():
    data = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\na: b\r\n\r\nbody"
    start, end = f.final_head_end(data) or (0, 0)
    assert data[start:end] == b"HTTP/1.1 200 OK\r\na: b\r\n\r\n"
    assert f.final_head_end(b"HTTP/1.1 100 Continue\r\n\r\n") is None
    assert f.final_head_end(b"HTTP/1.1 101 Switching\r\n\r\nraw") == (0, 26)


@pytest.mark.parametrize(
    ("path", "prefix", "rewrite", "result"),
    [
        ("/foo/bar", "/foo", proxy.PathRewrite(kind=PREFIX, value="/"), "/bar"),
        ("/foo", "/foo", proxy.PathRewrite(kind=PREFIX, value="/"), "/"),
        ("/foo/", "/foo", proxy.PathRewrite(kind=PREFIX, value="/"), "/"),
        ("/foo/bar", "/foo", proxy.PathRewrite(kind=PREFIX, value="/xyz"), "/xyz/bar"),
        ("/foo/bar", "/foo", proxy.PathRewrite(kind=PREFIX, value="/xyz/"), "/xyz/bar"),
        ("/foo", "/foo", proxy.PathRewrite(kind=PREFIX, value="/xyz"), "/xyz"),
        ("/foo/", "/foo", proxy.PathRewrite(kind=PREFIX, value="/xyz"), "/xyz/"),
        ("/bar", "/", proxy.PathRewrite(kind=PREFIX, value="/xyz"), "/xyz/bar"),
        ("/bar", "/", proxy.PathRewrite(kind=PREFIX, value="/"), "/bar"),
        ("/foo/bar", "/foo", proxy.PathRewrite(kind=FULL, value="/one"), "/one"),
    ],
)
def test_path_rewrites(path, prefix, rewrite, result):
    assert f.replace_path(path, prefix, rewrite) == result


def test_a_rewritten_target_keeps_its_query():
    rewrite = proxy.PathRewrite(kind=PREFIX, value="/new")
    assert f.rewrite_target("/old/x?a=1&b", "/old", rewrite) == "/new/x?a=1&b"


@pytest.mark.parametrize(
    ("redirect", "host", "target", "location"),
    [
        (proxy.Redirect(), "a.test", "/p?q=1", "http://a.test/p?q=1"),
        (proxy.Redirect(), "a.test:8080", "/p", "http://a.test:8080/p"),
        # A changed scheme without a port: the scheme's default port, which is not written.
        (proxy.Redirect(scheme="https"), "a.test:8080", "/p", "https://a.test/p"),
        (proxy.Redirect(scheme="https", port=8443), "a.test", "/p", "https://a.test:8443/p"),
        (proxy.Redirect(scheme="https", port=443), "a.test:80", "/p", "https://a.test/p"),
        (proxy.Redirect(port=80), "a.test:8080", "/p", "http://a.test/p"),
        (proxy.Redirect(port=8081), "a.test:8080", "/p", "http://a.test:8081/p"),
        (proxy.Redirect(hostname="b.test"), "a.test:8080", "/p", "http://b.test:8080/p"),
        (proxy.Redirect(hostname="b.test"), "a.test", "/p", "http://b.test/p"),
        (proxy.Redirect(path=proxy.PathRewrite(kind=FULL, value="/new")), "a.test", "/old/x?q",
         "http://a.test/new?q"),
        (proxy.Redirect(path=proxy.PathRewrite(kind=PREFIX, value="/new")), "a.test",
         "/old/x?q", "http://a.test/new/x?q"),
        (proxy.Redirect(), "[::1]:8080", "/", "http://[::1]:8080/"),
    ],
)  # fmt: skip
def test_redirect_locations(redirect, host, target, location):
    assert (
        f.redirect_location(redirect, scheme="http", host_header=host, target=target,
                            prefix="/old")
        == location
    )  # fmt: skip
