"""TLS key material to `ssl.SSLContext`s, and the per-listener context that picks one by SNI.

Input: the config's secrets (PEM certificate chain and private key, which reach the data plane
inside the configuration over its control socket or worker pipe, never through a file). Output:
`Store.update` gives one server context per secret name and ALPN offer, built only when the
secret's content is new (an apply that changes nothing else reloads nothing);
`listener_context(pick)` gives the context a terminating listener is bound with: its SNI
callback asks `pick` for the current secret's context on every new handshake, so a rotated
secret serves new handshakes at once while open connections keep the session they have.

`SSLContext.load_cert_chain` reads only paths: the PEM goes into an anonymous memory file
(`memfd_create`) read through `/proc/self/fd/N` and closed right after, so key material never
touches a file system, not even a tmpfs.
"""

from __future__ import annotations

import hashlib
import logging
import ssl
from collections.abc import Callable, Iterable
from typing import Protocol

from kubelb.ir import proxy
from kubelb.util import logsafe, memfiles

logger = logging.getLogger(__name__)

Alpn = tuple[str, ...]
# What a handshake may agree on. HTTP/2 only where every cluster behind the listener speaks it:
# the Python proxy does not convert HTTP/2 requests to HTTP/1 (docs/dataplane-differences.md),
# and a client offered h2 would take it.
ALPN_HTTP1: Alpn = ("http/1.1",)
ALPN_H2: Alpn = ("h2", "http/1.1")
# Envoy's answer to a ClientHello no certificate matches: the handshake fails.
NO_MATCH_ALERT = ssl.ALERT_DESCRIPTION_HANDSHAKE_FAILURE


class Secret(Protocol):
    """What the store needs of an IR secret."""

    @property
    def name(self) -> str: ...
    @property
    def certificate_chain(self) -> str: ...
    @property
    def private_key(self) -> str: ...


def alpn_offer(listener: proxy.Listener, upstream: Callable[[str], proxy.UpstreamProtocol]) -> Alpn:
    """What `listener`'s handshakes offer, given each cluster's upstream protocol."""
    clusters = listener.route_clusters
    if clusters and all(upstream(c) is proxy.UpstreamProtocol.HTTP2 for c in clusters):
        return ALPN_H2
    return ALPN_HTTP1


def server_context(
    certificate_chain: str, private_key: str, alpn: Alpn = ALPN_HTTP1
) -> ssl.SSLContext:
    """A server context presenting this chain; ssl.SSLError (or ValueError) when unusable.
    Its ALPN offer is the one a handshake switched to it agrees on."""
    context = _base(alpn)
    with memfiles.memory_file(certificate_chain) as chain, memfiles.memory_file(private_key) as key:
        # An encrypted key gets an empty password and fails rather than prompting on a tty.
        context.load_cert_chain(chain, key, password=b"")
    return context


def listener_context(pick: Callable[[str | None], ssl.SSLContext | None]) -> ssl.SSLContext:
    """The context a terminating listener is bound with. It holds no certificate of its own:
    the SNI callback switches every handshake to `pick(server_name)`, or refuses it."""
    context = _base(ALPN_HTTP1)

    def choose(
        conn: ssl.SSLObject | ssl.SSLSocket, name: str | None, _: ssl.SSLContext
    ) -> int | None:
        chosen = pick(name)
        if chosen is None:
            return NO_MATCH_ALERT
        conn.context = chosen
        return None

    context.sni_callback = choose
    return context


def _base(alpn: Alpn) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    # Envoy's server defaults: TLS 1.2 and up, no renegotiation (a client could make the
    # server redo the costly half of the handshake at will).
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_RENEGOTIATION
    context.set_alpn_protocols(list(alpn))
    return context


class Store:
    """Server contexts by secret name and ALPN offer, each kept while its content stays."""

    def __init__(self) -> None:
        self._by_digest: dict[tuple[bytes, Alpn], ssl.SSLContext] = {}
        self.contexts: dict[tuple[str, Alpn], ssl.SSLContext] = {}
        # Secrets that do not load, with why: their names are refused, other names serve.
        self.errors: dict[str, str] = {}

    def update(
        self, secrets: Iterable[Secret], wanted: Iterable[tuple[str, Alpn]]
    ) -> dict[tuple[str, Alpn], ssl.SSLContext]:
        """Contexts for the `wanted` (secret name, ALPN offer) pairs; a missing secret is
        left out (the config's validation reports it)."""
        by_name = {s.name: s for s in secrets}
        by_digest: dict[tuple[bytes, Alpn], ssl.SSLContext] = {}
        contexts: dict[tuple[str, Alpn], ssl.SSLContext] = {}
        errors: dict[str, str] = {}
        for name, alpn in dict.fromkeys(wanted):
            secret = by_name.get(name)
            if secret is None or name in errors:
                continue
            key = (_digest(secret), alpn)
            context = by_digest.get(key) or self._by_digest.get(key)
            if context is None:
                try:
                    context = server_context(secret.certificate_chain, secret.private_key, alpn)
                except (ssl.SSLError, ValueError, OSError) as err:
                    reason = getattr(err, "reason", None) or str(err) or type(err).__name__
                    errors[name] = f"cannot load certificate and key: {reason}"
                    if self.errors.get(name) != errors[name]:
                        logger.error(
                            "TLS secret %s: %s; the names it serves are refused",
                            logsafe.shown(name),
                            errors[name],
                        )
                    continue
            by_digest[key] = context
            contexts[(name, alpn)] = context
        self._by_digest = by_digest
        self.contexts = contexts
        self.errors = errors
        return contexts


def _digest(secret: Secret) -> bytes:
    h = hashlib.sha256(secret.certificate_chain.encode())
    h.update(b"\0")
    h.update(secret.private_key.encode())
    return h.digest()
