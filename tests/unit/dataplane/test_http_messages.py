import pytest

from kubelb.dataplane import http_messages as m


@pytest.mark.parametrize(
    ("headers", "host"),
    [
        ([(b"Host", b"Example.TEST:8080")], "example.test"),
        ([(b"host", b"[::1]:80")], "[::1]"),
        ([(b"x", b"y")], ""),
    ],
)
def test_host_of(headers, host):
    assert m.host_of(headers) == host


@pytest.mark.parametrize(
    ("pattern", "host", "matches"),
    [
        ("a.example.test", "a.example.test", True),
        ("*.example.test", "a.example.test", True),
        ("*.example.test", "a.b.example.test", True),
        ("*.example.test", "example.test", False),
        ("A.example.test", "a.example.test", True),
        ("a.example.test", "b.example.test", False),
    ],
)
def test_host_matches(pattern, host, matches):
    assert m.host_matches(pattern, host) is matches


@pytest.mark.parametrize(
    ("prefix", "path", "matches"),
    [
        ("/", "/anything", True),
        ("/api", "/api", True),
        ("/api", "/api/v1", True),
        ("/api/", "/api/v1", True),
        ("/api", "/api?x=1", True),
        ("/api", "/apix", False),
    ],
)
def test_path_matches(prefix, path, matches):
    assert m.path_matches(prefix, path) is matches


def test_request_head_strips_hop_by_hop_and_appends_xff():
    head = m.request_head(
        method=b"POST", target=b"/x", version="1.1",
        headers=[
            (b"Host", b"h"), (b"Connection", b"keep-alive"), (b"Keep-Alive", b"5"),
            (b"Transfer-Encoding", b"chunked"), (b"X-Forwarded-For", b"192.0.2.1"),
            (b"X-Custom", b"v"),
        ],
        client_ip="127.0.0.9", chunked=True, upgrade=None,
    )  # fmt: skip
    assert head == (
        b"POST /x HTTP/1.1\r\nHost: h\r\nX-Custom: v\r\n"
        b"x-forwarded-for: 192.0.2.1, 127.0.0.9\r\nx-forwarded-proto: http\r\n"
        b"transfer-encoding: chunked\r\n\r\n"
    )


def test_request_head_keeps_upgrade():
    head = m.request_head(
        method=b"GET", target=b"/ws", version="1.1",
        headers=[(b"Upgrade", b"websocket"), (b"Connection", b"Upgrade")],
        client_ip="10.0.0.1", chunked=False, upgrade=b"websocket",
    )  # fmt: skip
    assert b"connection: upgrade\r\nupgrade: websocket\r\n" in head
    assert head.count(b"pgrade") == 2  # only the proxy's own pair, not the client's copies


def test_local_response_is_complete():
    raw = m.local_response(431, "too big")
    assert raw.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")
    assert raw.endswith(b"\r\n\r\ntoo big\n")
    assert b"content-length: 8\r\n" in raw
    assert b"connection: close\r\n" in raw
