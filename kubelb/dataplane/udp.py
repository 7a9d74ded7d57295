"""UDP proxying: one upstream socket per client address, expiring when idle, in a bounded table.

Input: a `context.ListenerContext` (read afresh for each new session, so config changes affect new
sessions only). Output: datagrams forwarded client -> target on a connected per-session socket and
target -> client through the listener's socket. The table holds at most `udp_max_sessions`; when
full the oldest session is evicted. Sessions idle longer than `udp_session_timeout_seconds` are
swept. Per-session sockets are read with `add_reader`, so no task exists per session.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
import typing

from kubelb.dataplane import context, upstreams
from kubelb.util import logsafe

logger = logging.getLogger(__name__)

_MAX_DATAGRAM = 65535
_READS_PER_WAKEUP = 64
_EVICTION_LOG_EVERY = 10.0


class UDPSession:
    __slots__ = ("client", "fd", "last", "listener", "sock", "target")

    def __init__(self, listener: UDPListener, client: tuple[str, int], target: upstreams.Target):
        self.listener = listener
        self.client = client
        self.target = target
        family = socket.AF_INET6 if ":" in target.host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            self.sock.setblocking(False)
            self.sock.connect((target.host, target.port))
        except OSError:
            self.sock.close()
            raise
        self.fd = self.sock.fileno()
        self.last = listener.clock()
        listener.loop.add_reader(self.fd, self._readable)
        target.active += 1
        target.total += 1

    def send(self, data: bytes) -> None:
        try:
            self.sock.send(data)
        except (BlockingIOError, InterruptedError):
            pass  # a full socket buffer drops the datagram, as UDP may
        except OSError as err:
            # ICMP port unreachable from an earlier datagram surfaces here; later ones may pass.
            logger.debug("udp session %s -> %s: %s", self.client, self.target.key, err)

    def _readable(self) -> None:
        listener = self.listener
        transport = listener.transport
        for _ in range(_READS_PER_WAKEUP):
            try:
                data = self.sock.recv(_MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as err:
                logger.debug("udp session %s <- %s: %s", self.client, self.target.key, err)
                break
            if transport is not None:
                transport.sendto(data, self.client)
        self.last = listener.clock()

    def close(self) -> None:
        self.listener.loop.remove_reader(self.fd)
        self.sock.close()
        self.target.active -= 1


class UDPListener(asyncio.DatagramProtocol):
    """The listening socket; `ctx` is swapped on config updates."""

    def __init__(self, ctx: context.ListenerContext) -> None:
        self.ctx = ctx
        self.loop = asyncio.get_running_loop()
        self.clock = ctx.clock
        self.transport: asyncio.DatagramTransport | None = None
        self.sessions: dict[tuple[str, int], UDPSession] = {}
        self.evicted = 0
        self._last_eviction_log = 0.0
        self._sweeper: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement the interface without subclassing it.
        self.transport = typing.cast(asyncio.DatagramTransport, transport)
        self._schedule_sweep()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        session = self.sessions.get(addr)
        if session is None:
            session = self._open(addr)
            if session is None:
                return
        session.last = self.clock()
        session.send(data)

    def error_received(self, exc: Exception) -> None:
        logger.debug("listener %s: %s", logsafe.shown(self.ctx.name), exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self.close_sessions()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
        self.close_sessions()

    def close_sessions(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for s in self.sessions.values():
            s.close()
        self.sessions.clear()

    def _open(self, addr: tuple[str, int]) -> UDPSession | None:
        ctx = self.ctx
        assert ctx.picker is not None
        target = ctx.picker.pick(addr[0])
        if target is None:
            logger.debug(
                "listener %s: no endpoint for a datagram from %s", logsafe.shown(ctx.name), addr[0]
            )
            return None
        if len(self.sessions) >= ctx.options.udp_max_sessions:
            self._evict_oldest()
        try:
            session = UDPSession(self, addr, target)
        except OSError as err:
            logger.warning(
                "listener %s: cannot open a session to %s: %s",
                logsafe.shown(ctx.name),
                target.key,
                err,
            )
            return None
        self.sessions[addr] = session
        return session

    def _evict_oldest(self) -> None:
        oldest = next(iter(self.sessions))
        self.sessions.pop(oldest).close()
        self.evicted += 1
        now = time.monotonic()
        if now - self._last_eviction_log >= _EVICTION_LOG_EVERY:
            self._last_eviction_log = now
            logger.warning(
                "listener %s: udp_max_sessions=%d reached; evicting the oldest sessions "
                "(%d evicted so far)",
                logsafe.shown(self.ctx.name),
                self.ctx.options.udp_max_sessions,
                self.evicted,
            )

    def _schedule_sweep(self) -> None:
        timeout = self.ctx.options.udp_session_timeout_seconds
        self._sweeper = self.loop.call_later(min(timeout / 2, 5.0), self._sweep)

    def _sweep(self) -> None:
        timeout = self.ctx.options.udp_session_timeout_seconds
        cutoff = self.clock() - timeout
        expired = [addr for addr, s in self.sessions.items() if s.last < cutoff]
        for addr in expired:
            self.sessions.pop(addr).close()
        self._schedule_sweep()
