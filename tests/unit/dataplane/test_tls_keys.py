"""Server contexts from PEM in memory: one per secret and ALPN offer, kept while the content
stays, replaced when it changes (a rotation), and a pair that does not load reported by name."""

from __future__ import annotations

import contextlib
import ssl

from kubelb.dataplane import tls_keys
from kubelb.ir import proxy, tls
from tests.support import tlscerts

CA = tlscerts.make_ca()
ONE, TWO = CA.issue("one.test"), CA.issue("two.test")


def secret(name: str, issued: tlscerts.Issued, key: str | None = None) -> tls.TLSSecret:
    return tls.TLSSecret(
        name=name, certificate_chain=issued.cert_pem, private_key=key or issued.key_pem
    )


def test_contexts_are_kept_while_the_content_stays_and_replaced_on_rotation() -> None:
    store = tls_keys.Store()
    wanted = [("s", tls_keys.ALPN_HTTP1), ("s", tls_keys.ALPN_H2)]
    first = store.update([secret("s", ONE)], wanted)
    assert set(first) == set(wanted)
    assert first[wanted[0]] is not first[wanted[1]]
    again = store.update([secret("s", ONE)], wanted)
    assert again == first
    assert all(again[k] is first[k] for k in wanted)
    rotated = store.update([secret("s", TWO)], wanted[:1])
    assert list(rotated) == wanted[:1]
    assert rotated[wanted[0]] is not first[wanted[0]]
    assert store.errors == {}


def test_a_pair_that_does_not_load_is_reported_and_left_out() -> None:
    store = tls_keys.Store()
    wanted = [("bad", tls_keys.ALPN_HTTP1), ("good", tls_keys.ALPN_HTTP1), ("gone", ())]
    out = store.update([secret("bad", ONE, key=TWO.key_pem), secret("good", TWO)], wanted)
    assert list(out) == [("good", tls_keys.ALPN_HTTP1)]
    assert list(store.errors) == ["bad"]
    garbage = store.update([secret("bad", ONE, key="not a key")], wanted[:1])
    assert garbage == {}
    assert "cannot load" in store.errors["bad"]


def test_the_listener_context_refuses_what_pick_does_not_choose() -> None:
    host = tls_keys.server_context(ONE.cert_pem, ONE.key_pem)
    listener = tls_keys.listener_context(lambda name: host if name == "one.test" else None)
    assert listener.sni_callback is not None
    for name, served in (("one.test", True), ("two.test", False)):
        client = ssl.create_default_context(cadata=CA.cert_pem)
        bios = [ssl.MemoryBIO() for _ in range(4)]
        c = client.wrap_bio(bios[0], bios[1], server_hostname=name)
        s = listener.wrap_bio(bios[2], bios[3], server_side=True)
        with contextlib.suppress(ssl.SSLError):  # a refused handshake ends the exchange
            for _ in range(4):
                for side in (c, s):
                    with contextlib.suppress(ssl.SSLWantReadError):
                        side.do_handshake()
                bios[2].write(bios[1].read())
                bios[0].write(bios[3].read())
        assert (c.version() is not None) is served, name
        if served:
            peer = c.getpeercert()
            assert peer is not None
            assert peer["subject"] == ((("commonName", "one.test"),),)


def test_alpn_offer_follows_the_upstream_protocol() -> None:
    li = proxy.Listener(
        name="l", address="127.0.0.1", port=443, protocol=proxy.Protocol.HTTP,
        virtual_hosts=proxy.group_by_hostname([((), proxy.HTTPRoute(
            name="r", backends=(proxy.WeightedCluster(cluster="a"),
                                proxy.WeightedCluster(cluster="b"))))]),
    )  # fmt: skip
    h2, h1 = proxy.UpstreamProtocol.HTTP2, proxy.UpstreamProtocol.HTTP1
    assert tls_keys.alpn_offer(li, {"a": h2, "b": h2}.__getitem__) == tls_keys.ALPN_H2
    assert tls_keys.alpn_offer(li, {"a": h2, "b": h1}.__getitem__) == tls_keys.ALPN_HTTP1
