"""Helpers for the manager tests: polling, LoadBalancer bodies, a TCP echo backend, and reads."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from kubelb.kube import client, errors, objects, resources
from kubelb.util import ports

DEADLINE = 60.0


async def eventually(
    check: Callable[[], Awaitable[Any]],
    *,
    what: str,
    context: Callable[[], Awaitable[Any]] | None = None,
) -> Any:
    """Poll the async `check` until it returns something truthy; fail naming `what` and, when
    given, what `context()` reads then (the state that says why)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE
    last: Any = None
    while loop.time() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(0.1)
    why = f"; {await context()!r}" if context is not None else ""
    raise AssertionError(f"timed out waiting for {what} (last: {last!r}){why}")


async def settled(manager: Any, *namespaces: str) -> None:
    """The manager is done: every leader controller has run, nothing is queued, waiting or in
    flight, and
    its informers hold what the API server holds, so the events of its own writes have arrived
    and been handled. Only objects in `namespaces` and cluster-scoped ones count (all if none
    are given): the API server is shared with other tests' leftovers."""
    controllers = manager.leader_controllers

    def idle() -> tuple[int, ...] | None:
        # Started: every key it had at the start was queued, so an empty queue means it ran.
        if all(c.started.is_set() and not len(c.queue) and not c.queue.processing
               and not c.queue.waiting for c in controllers):  # fmt: skip
            return tuple(c.reconciles for c in controllers)
        return None

    async def check() -> bool:
        before = idle()
        # No reconcile between `before` and `after`, so no write either: every write was
        # echoed by the time the informers matched the server, and its events were handled.
        return before is not None and await _caught_up(manager, namespaces) and idle() == before

    await eventually(check, what="controllers settled")


async def _caught_up(manager: Any, namespaces: tuple[str, ...]) -> bool:
    """Each informer's objects are on the server at the same resourceVersion. (An object the
    server has and an informer lacks may be outside its selectors, so only that way is checked.)"""

    def counted(key: objects.ObjectKey) -> bool:
        return not namespaces or not key.namespace or key.namespace in namespaces

    for informer in manager.informers:
        listed = await manager.informers.client.list(
            informer.resource, namespace=informer.namespace
        )
        server = {objects.key_of(o): objects.resource_version(o) for o in listed.items}
        for obj in informer.store.list():
            key = objects.key_of(obj)
            if counted(key) and server.get(key) != objects.resource_version(obj):
                return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    return free_ports(host, 1)[0]


def free_ports(host: str, count: int) -> list[int]:
    """`count` ports free on `host`, all different: each is held until all are drawn (ports
    drawn one by one may repeat, and two LoadBalancers on one port leave one unplaced)."""
    return ports.free_ports(count, host)


def load_balancer(
    name: str, *, ports: list[tuple[str, int, int]], type_: str = "LoadBalancer", **meta: Any
) -> dict[str, Any]:
    """ports: (name, LB port, endpoint/NodePort port); endpoints via Addresses `default`."""
    return {
        "metadata": {"name": name, **meta},
        "spec": {
            "type": type_,
            "ports": [{"name": n, "port": p, "protocol": "TCP"} for n, p, _ in ports],
            "endpoints": [{
                "addressesReference": {"name": "default"},
                "ports": [{"name": n, "port": t, "protocol": "TCP"} for n, _, t in ports],
            }],
        },
    }  # fmt: skip


def addresses(*ips: str) -> dict[str, Any]:
    return {"metadata": {"name": "default"}, "spec": {"addresses": [{"ip": ip} for ip in ips]}}


async def get(kube: client.Client, resource: resources.Resource, ns: str, name: str) -> Any:
    try:
        return await kube.get(resource, name, namespace=ns)
    except errors.NotFoundError:
        return None


def ready(lb: objects.RawObject | None) -> dict[str, Any] | None:
    for c in ((lb or {}).get("status") or {}).get("conditions") or ():
        if c.get("type") == "Ready":
            return dict(c)
    return None


def ingress_ips(obj: objects.RawObject | None) -> list[str]:
    status = (obj or {}).get("status") or {}
    return [e.get("ip") for e in (status.get("loadBalancer") or {}).get("ingress") or ()]


@contextlib.asynccontextmanager
async def echo_server(host: str, port: int, tag: bytes) -> AsyncIterator[None]:
    """TCP backend that answers `tag + data` for each read."""
    handlers: set[asyncio.Task[None]] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handlers.add(asyncio.current_task())  # type: ignore[arg-type]
        try:
            while data := await reader.read(65536):
                writer.write(tag + data)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, host, port)
    try:
        yield
    finally:
        server.close()
        for task in list(handlers):
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        await server.wait_closed()


async def exchange(host: str, port: int, payload: bytes, *, limit: float = 2.0) -> bytes | None:
    """One request through the load balancer; None when it does not answer (yet), or not
    within `limit` seconds."""
    try:
        async with asyncio.timeout(limit):
            reader, writer = await asyncio.open_connection(host, port)
            try:
                writer.write(payload)
                await writer.drain()
                return await reader.read(65536) or None
            finally:
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
    except (OSError, TimeoutError):
        return None


@contextlib.asynccontextmanager
async def http_backend(host: str, port: int, tag: str) -> AsyncIterator[None]:
    """HTTP backend answering every request with `<tag> <path>`."""
    from aiohttp import web

    async def answer(request: web.Request) -> web.Response:
        return web.Response(text=f"{tag} {request.path}")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    try:
        yield
    finally:
        await runner.cleanup()


async def http_get(
    host: str, port: int, path: str, *, host_header: str, headers: dict[str, str] | None = None
) -> tuple[int, str] | None:
    """(status, body) of one request through the data plane; None when nothing answers."""
    import aiohttp

    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session,
            session.get(
                f"http://{host}:{port}{path}", headers={"Host": host_header, **(headers or {})}
            ) as response,  # fmt: skip
        ):
            return response.status, await response.text()
    except (aiohttp.ClientError, OSError, TimeoutError):
        return None
