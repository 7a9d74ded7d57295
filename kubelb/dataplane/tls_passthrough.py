"""TLS passthrough: a TCP connection routed by the server name (SNI) of its ClientHello.

Input: a TLS listener's context (`ListenerContext.sni`: SNI routes by server name). Output: the
connection proxied byte for byte, unterminated, to an endpoint of the route its SNI selects
(`tls_names` rules; the backend of a route chosen by weight, once per connection). The bytes read
while waiting for the ClientHello are kept and sent upstream first, so the backend sees the
handshake exactly as the client sent it. A connection is closed, as Envoy closes one that no
filter chain matches, when its first bytes are not a ClientHello (`tls_hello.NOT_TLS`), when no
route takes its server name, or when the ClientHello is not complete within
`Options.tls_handshake_timeout_seconds` (Envoy's TLS inspector waits 15 s). Everything after
the choice is the TCP proxy's (`tcp.TCPDownstream`).
"""

from __future__ import annotations

import asyncio
import logging

from kubelb.dataplane import context, flow_control, tcp, tls_hello
from kubelb.util import logsafe

logger = logging.getLogger(__name__)


class SNIDownstream(tcp.TCPDownstream):
    """A client connection of a passthrough listener: TCP proxying once the SNI chose a route."""

    __slots__ = ("_hello", "_hello_timer", "_parse_at")

    def __init__(self, ctx: context.ListenerContext, registry: context.Handle) -> None:
        super().__init__(ctx, registry)
        self._hello = bytearray()
        # Parsing again before this many bytes are in cannot change the verdict.
        self._parse_at = 1
        self._hello_timer: asyncio.TimerHandle | None = None

    def _route(self) -> None:
        """Wait for the ClientHello rather than connecting at once."""
        self._hello_timer = asyncio.get_running_loop().call_later(
            self.ctx.options.tls_handshake_timeout_seconds, self._hello_timeout
        )

    def data_received(self, data: bytes) -> None:
        if self.picker is not None or self._closed:
            super().data_received(data)
            return
        self.last = self.clock()
        hello = self._hello
        hello += data
        if len(hello) < self._parse_at:
            return
        verdict = tls_hello.parse(hello)
        if isinstance(verdict, tls_hello.More):
            self._parse_at = verdict.at_least
            return
        if isinstance(verdict, tls_hello.Hello):
            self._choose(verdict.server_name)
        else:
            self._refuse("its first bytes are not a TLS ClientHello", None)

    def eof_received(self) -> bool:
        if self.picker is None:
            self._refuse("it closed before its ClientHello was complete", None)
            return False
        return super().eof_received()

    def _choose(self, server_name: str | None) -> None:
        sni = self.ctx.sni
        route = sni.pick(server_name) if sni is not None else None
        if route is None:
            self._refuse("no SNI route takes its server name", server_name)
            return
        self._stop_timer()
        assert self.transport is not None
        self.picker = route.backend(flow_control.peer_ip(self.transport))
        self._pending.append(bytes(self._hello))
        self._pending_size += len(self._hello)
        self._hello = bytearray()
        self._connector = self.ctx.tracker.spawn(self._connect(), name="tls-passthrough-connect")

    def _refuse(self, why: str, server_name: str | None) -> None:
        logger.debug(
            "listener %s: closing a connection (server name %s): %s",
            logsafe.shown(self.ctx.name),
            logsafe.shown(server_name) if server_name else "-",
            why,
        )
        if self.transport is not None:
            self.transport.abort()
        self._close()

    def _hello_timeout(self) -> None:
        self._hello_timer = None
        if self.picker is None:
            self._refuse("no complete ClientHello in time", None)

    def _stop_timer(self) -> None:
        if self._hello_timer is not None:
            self._hello_timer.cancel()
            self._hello_timer = None

    def _close(self) -> None:
        self._stop_timer()
        super()._close()
