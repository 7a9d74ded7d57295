"""Small aiohttp servers for probes (`/healthz`, `/readyz`), Prometheus `/metrics` and admin APIs.

Manager and agent bind probes and metrics on separate addresses, as upstream does; standalone mode
serves all of them on its one admin address. Readiness is a set of named checks so `/readyz`
explains what is not ready yet instead of a bare 503. Probes never touch the metrics registry, so
a slow scrape cannot fail a probe (KubeLB #303, #287).

Addresses are `HOST:PORT`; `:PORT` means every interface (IPv4 and IPv6). A server that cannot
bind raises `BindError`, whose message names the server, the address and the reason, so a mode
can log it as one line and exit 1.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import prometheus_client
from aiohttp import web

logger = logging.getLogger(__name__)

ReadyCheck = Callable[[], bool]


class BindError(OSError):
    """A server cannot listen on its address (port in use, address not on this host, ...)."""


@dataclass
class Readiness:
    """Named readiness checks; `/readyz` is 200 when every check passes."""

    checks: dict[str, ReadyCheck] = field(default_factory=dict)

    def add(self, name: str, check: ReadyCheck) -> None:
        self.checks[name] = check

    def failing(self) -> list[str]:
        failed = []
        for name, check in self.checks.items():
            try:
                ok = check()
            except Exception:
                logger.exception("readiness check %s raised", name)
                ok = False
            if not ok:
                failed.append(name)
        return failed


def probe_routes(readiness: Readiness) -> list[web.RouteDef]:
    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(_: web.Request) -> web.Response:
        failed = readiness.failing()
        if failed:
            return web.Response(status=503, text="not ready: " + ", ".join(failed) + "\n")
        return web.Response(text="ok\n")

    return [web.get("/healthz", healthz), web.get("/readyz", readyz)]


def metrics_routes(
    registry: prometheus_client.CollectorRegistry = prometheus_client.REGISTRY,
) -> list[web.RouteDef]:
    async def metrics(_: web.Request) -> web.Response:
        body = prometheus_client.generate_latest(registry)
        return web.Response(
            body=body, headers={"Content-Type": prometheus_client.CONTENT_TYPE_LATEST}
        )

    return [web.get("/metrics", metrics)]


class HTTPServer:
    """One aiohttp site on `host:port`: `start()` binds (errors surface at once); `stop()`."""

    def __init__(self, name: str, address: str, routes: Iterable[web.RouteDef]) -> None:
        self.name = name
        self.address = address
        self.host, self.port = parse_address(address)
        self._app = web.Application()
        self._app.add_routes(list(routes))
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        self._runner = web.AppRunner(self._app, access_log=None)
        await self._runner.setup()
        site: web.BaseSite
        try:
            if self.host:
                site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
            else:
                site = web.SockSite(self._runner, listen_everywhere(self.port))
            await site.start()
        except OSError as e:
            await self.stop()
            raise BindError(cannot_listen(self.name, self.address, e)) from None
        sockets = self._runner.addresses
        if self.port == 0 and sockets:
            self.port = sockets[0][1]
        logger.info("%s listening on %s", self.name, format_address(self.host, self.port))

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


def listen_everywhere(port: int) -> socket.socket:
    """One listening socket for every interface of both families (IPv4 alone on a host without
    IPv6), as gRPC binds `[::]`: one port, even when `port` is 0 and the kernel picks it."""
    if socket.has_dualstack_ipv6():
        return socket.create_server(("::", port), family=socket.AF_INET6, dualstack_ipv6=True)
    return socket.create_server(("0.0.0.0", port))


def parse_address(address: str) -> tuple[str, int]:
    """`HOST:PORT`, `:PORT` (all interfaces) or `[V6]:PORT` -> (host, port); clear errors."""
    host, sep, port_text = address.rpartition(":")
    if not sep:
        raise ValueError(f"address {address!r} must look like HOST:PORT or :PORT")
    host = host.strip("[]")
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"address {address!r}: port {port_text!r} is not a number") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"address {address!r}: port {port} is outside 0-65535")
    return host, port


def format_address(host: str, port: int) -> str:
    if not host:
        return f":{port} (all interfaces)"
    if ":" in host:
        return f"[{host}]:{port}"
    return f"{host}:{port}"


def cannot_listen(name: str, address: str, error: OSError | None = None) -> str:
    """The one line that says why `name` cannot listen on `address`."""
    if error is None:
        reason = "the address was refused"
    elif error.errno is not None and error.errno > 0:  # resolver errors are negative
        reason = os.strerror(error.errno)
    else:
        reason = error.strerror or str(error)
    return f"{name} cannot listen on {address}: {reason}"


def bind_error(host: str, port: int) -> OSError | None:
    """The error binding a TCP socket to (host, port) gives now, or None if it binds."""
    try:
        infos = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except OSError as e:
        return e
    for family, kind, proto, _, sockaddr in infos:
        try:
            with socket.socket(family, kind, proto) as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind(sockaddr)
        except OSError as e:
            if e.errno != errno.EAFNOSUPPORT:  # a host without IPv6 still binds IPv4
                return e
    return None
