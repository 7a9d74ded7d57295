"""One bound socket per IR listener, and its connections until they drain.

Input: an IR `Listener` and a `context.ListenerContext`. Output: a listening TCP server (TCP,
HTTP, HTTPS: TLS terminated by uvloop with the certificate the SNI picks, `tls_keys`; TLS
passthrough: `tls_passthrough`) or a UDP endpoint, swapped to a new context in place when the
listener changes without moving (`update`), and drained when removed: stop accepting, ask
connections to finish (HTTP closes idle keep-alive connections and the rest after their
response), then close what is left when the drain time is over. A stopping data plane drains
with `accepting=True`: new connections are still served until the drain time is over (see
`ListenerState.drain`). A bind failure is logged with the listener and its owner and reported
in `status()`; it never affects other listeners.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl

from kubelb.dataplane import context, http, tcp, tls_keys, tls_passthrough, udp
from kubelb.ir import proxy
from kubelb.util import logsafe

logger = logging.getLogger(__name__)

_BACKLOG = 4096


class ListenerState:
    def __init__(self, ctx: context.ListenerContext, *, reuse_port: bool) -> None:
        self.listener = ctx.listener
        self.handle = context.Handle(ctx)
        self.reuse_port = reuse_port
        self.server: asyncio.AbstractServer | None = None
        self.udp: udp.UDPListener | None = None
        self.error: str | None = None

    @property
    def bound(self) -> bool:
        return self.server is not None or self.udp is not None

    async def start(self) -> None:
        li = self.listener
        loop = asyncio.get_running_loop()
        try:
            if li.protocol is proxy.Protocol.UDP:
                _, protocol = await loop.create_datagram_endpoint(
                    lambda: udp.UDPListener(self.handle.ctx),
                    local_addr=(li.address, li.port),
                    family=socket.AF_INET6 if ":" in li.address else socket.AF_INET,
                    reuse_port=self.reuse_port or None,
                )
                self.udp = protocol
            else:
                tls = self._tls()
                self.server = await loop.create_server(
                    self._protocol,
                    li.address,
                    li.port,
                    reuse_address=True,
                    reuse_port=self.reuse_port or None,
                    backlog=_BACKLOG,
                    ssl=tls,
                    ssl_handshake_timeout=(
                        self.handle.ctx.options.tls_handshake_timeout_seconds if tls else None
                    ),
                )
        except OSError as err:
            self.error = f"cannot bind {li.address}:{li.port}/{li.protocol}: {err.strerror or err}"
            logger.error(
                "listener %s (owner %s): %s",
                logsafe.shown(li.name),
                li.owner or "-",
                self.error,
                extra={"listener": li.name, "owner": li.owner},
            )
            return
        self.error = None
        logger.info(
            "listener %s: serving %s on %s:%d",
            logsafe.shown(li.name),
            li.protocol,
            li.address,
            li.port,
        )

    def _tls(self) -> ssl.SSLContext | None:
        """A terminating listener's context: every handshake takes the certificate for its SNI
        from the current context (`update` swaps it, so a rotation reaches new handshakes)."""
        if self.listener.tls is None:
            return None
        handle = self.handle

        def pick(server_name: str | None) -> ssl.SSLContext | None:
            certificates = handle.ctx.certificates
            return None if certificates is None else certificates.pick(server_name)

        return tls_keys.listener_context(pick)

    def _protocol(self) -> asyncio.BaseProtocol:
        ctx = self.handle.ctx
        protocol = ctx.listener.protocol
        if protocol is proxy.Protocol.HTTP:
            return http.HTTPDownstream(self.handle)
        if protocol is proxy.Protocol.TLS:
            return tls_passthrough.SNIDownstream(ctx, self.handle)
        return tcp.TCPDownstream(ctx, self.handle)

    def update(self, ctx: context.ListenerContext) -> None:
        """Same socket, new settings: only connections accepted from now on see them (HTTP
        connections route their next request with them)."""
        self.listener = ctx.listener
        self.handle.ctx = ctx
        if self.udp is not None:
            self.udp.ctx = ctx

    def stop_accepting(self) -> None:
        if self.server is not None:
            self.server.close()
        if self.udp is not None:
            # The listening socket is the only way back to UDP clients: sessions end with it.
            self.udp.close()

    async def drain(self, seconds: float, *, accepting: bool = False) -> None:
        """Ask connections to finish (HTTP: after their current response; TCP runs on), and
        close what is left after `seconds`. `accepting=False` (a listener removed or moved)
        stops accepting at once and ends early once no connection is left, as Envoy drains a
        listener removed by LDS. `accepting=True` (the data plane stopping) keeps accepting and
        serving new connections for the whole period, then stops: Envoy's
        `/drain_listeners?graceful`, so that peers which have not yet seen the stop still get
        through."""
        self.handle.draining = True
        if not accepting:
            self.stop_accepting()
        conns = self.handle.conns
        for conn in list(conns):
            conn.shutdown()
        if accepting:
            await asyncio.sleep(seconds)
            self.stop_accepting()
        else:
            await self.handle.wait_empty(seconds)
        if conns:
            logger.info(
                "listener %s: closing %d connections still open after draining %.0fs",
                logsafe.shown(self.listener.name),
                len(conns),
                seconds,
            )
        for conn in list(conns):
            conn.abort()
        if self.server is not None:
            await self.server.wait_closed()
            self.server = None
        self.udp = None

    def status(self) -> dict[str, object]:
        li = self.listener
        out: dict[str, object] = {
            "name": li.name,
            "address": li.address,
            "port": li.port,
            "protocol": str(li.protocol),
            "bound": self.bound,
            "connections": len(self.handle.conns),
        }
        if self.error:
            out["error"] = self.error
        if self.handle.draining:
            out["draining"] = True
        if self.udp is not None:
            out["sessions"] = len(self.udp.sessions)
        if li.tls is not None:
            certificates = self.handle.ctx.certificates
            out["tls"] = {"server_names": len(certificates) if certificates is not None else 0}
        return out
