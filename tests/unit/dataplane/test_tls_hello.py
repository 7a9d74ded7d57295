"""The SNI of real ClientHellos (made by Python's `ssl`), whole, cut and fragmented, and garbage
that must never raise."""

from __future__ import annotations

import random
import ssl

import pytest

from kubelb.dataplane import tls_hello


def client_hello(server_name: str | None, *, alpn: tuple[str, ...] = ("h2", "http/1.1")) -> bytes:
    """The first flight of a real TLS client (one or more records)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(list(alpn))
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    conn = context.wrap_bio(incoming, outgoing, server_hostname=server_name)
    with pytest.raises(ssl.SSLWantReadError):
        conn.do_handshake()
    return outgoing.read()


def fragmented(hello: bytes, size: int) -> bytes:
    """`hello` (one record) split into records of `size` bytes of handshake data each."""
    assert hello[0] == 0x16
    body = hello[5:]
    out = bytearray()
    for at in range(0, len(body), size):
        part = body[at : at + size]
        out += hello[:3] + len(part).to_bytes(2, "big") + part
    return bytes(out)


@pytest.mark.parametrize("name", ["a.example.test", "WWW.Example.Test", "x" * 60 + ".test"])
def test_server_name_of_a_real_client_hello(name: str) -> None:
    assert tls_hello.parse(client_hello(name)) == tls_hello.Hello(server_name=name.lower())


def test_no_sni() -> None:
    # An IP address as server_hostname sends no SNI (RFC 6066 forbids literal addresses).
    assert tls_hello.parse(client_hello("127.0.0.1")) == tls_hello.Hello(server_name=None)


def test_every_prefix_asks_for_more_and_says_how_much() -> None:
    hello = client_hello("cut.example.test")
    for n in range(len(hello)):
        verdict = tls_hello.parse(hello[:n])
        assert isinstance(verdict, tls_hello.More), n
        assert n < verdict.at_least <= len(hello), n
    assert tls_hello.parse(hello + b"trailing application data").server_name == (  # type: ignore[union-attr]
        "cut.example.test"
    )


@pytest.mark.parametrize("size", [100, 512])
def test_a_hello_fragmented_over_records(size: int) -> None:
    data = fragmented(client_hello("frag.example.test"), size)
    assert tls_hello.parse(data) == tls_hello.Hello(server_name="frag.example.test")


def test_a_hello_in_too_many_records_is_refused() -> None:
    hello = client_hello("frag.example.test")
    size = (len(hello) - 5) // (tls_hello.MAX_RECORDS + 1)
    assert tls_hello.parse(fragmented(hello, size)) is tls_hello.NOT_TLS


@pytest.mark.parametrize(
    "data",
    [
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        b"\x16\x02\x00\x00\x10",  # not TLS 1.x
        b"\x16\x03\x01\x00\x00",  # an empty record
        b"\x16\x03\x01\xff\xff" + bytes(10),  # a record over the limit
        b"\x16\x03\x01\x00\x05\x02\x00\x00\x01\x00",  # a ServerHello
        b"\x80\x2e\x01\x00\x02",  # SSL 2.0
        b"\x17",  # application data first
    ],
)
def test_not_a_client_hello(data: bytes) -> None:
    assert tls_hello.parse(data) is tls_hello.NOT_TLS


def test_a_hello_longer_than_the_limit_is_refused() -> None:
    length = tls_hello.MAX_HELLO  # the handshake message alone is over the limit with its header
    body = b"\x01" + length.to_bytes(3, "big")
    assert tls_hello.parse(b"\x16\x03\x01" + len(body).to_bytes(2, "big") + body) is (
        tls_hello.NOT_TLS
    )


def _with_sni_bytes(hello: bytes, old: bytes, new: bytes) -> bytes:
    """`hello` with its host name replaced by `new` (same length), lengths unchanged."""
    assert len(old) == len(new)
    assert hello.count(old) == 1
    return hello.replace(old, new)


@pytest.mark.parametrize("bad", [b"bad\x00name.test", b"bad name.test", b"bad\xffname.test"])
def test_a_server_name_that_cannot_name_a_route(bad: bytes) -> None:
    hello = client_hello("badxname.test")
    assert tls_hello.parse(_with_sni_bytes(hello, b"badxname.test", bad)) is tls_hello.NOT_TLS


def test_garbage_and_mutations_never_raise() -> None:
    rng = random.Random(12)
    hello = client_hello("fuzz.example.test")
    for _ in range(3000):
        data = bytearray(hello)
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        cut = rng.randint(0, len(data))
        verdict = tls_hello.parse(bytes(data[:cut]))
        assert isinstance(verdict, tls_hello.Hello | tls_hello.More) or verdict is tls_hello.NOT_TLS
    for _ in range(2000):
        verdict = tls_hello.parse(b"\x16\x03" + rng.randbytes(rng.randint(0, 300)))
        assert isinstance(verdict, tls_hello.Hello | tls_hello.More) or verdict is tls_hello.NOT_TLS
