"""Helpers for the end-to-end tests: polling with a deadline, object reads, Service bodies."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from kubelb.api import labels
from kubelb.kube import client, errors, objects, resources
from tests.e2e import backends

T = TypeVar("T")

DEADLINE = 60.0


async def until(
    check: Callable[[], Awaitable[T | None]], *, what: str, deadline: float = DEADLINE
) -> T:
    """Poll the async `check` until it returns something truthy and return that; fail naming
    `what` after a generous deadline (how long we wait, never how long it may take)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    last: T | None = None
    while loop.time() < end:
        last = await check()
        if last:
            return last
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what} (last seen: {last!r})")


async def find(
    kube: client.Client, resource: resources.Resource, name: str, namespace: str | None = None
) -> objects.RawObject | None:
    try:
        return await kube.get(resource, name, namespace=namespace)
    except errors.NotFoundError:
        return None


def lb_service(
    name: str,
    ports: list[dict[str, Any]],
    *,
    annotations: dict[str, str] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    """A tenant Service of type LoadBalancer (ports: name, port, protocol)."""
    return {
        "metadata": {"name": name, "annotations": annotations or {}},
        "spec": {"type": "LoadBalancer", "ports": ports, "selector": {"app": name}, **spec},
    }


def ingress_ips(obj: objects.RawObject | None) -> list[str]:
    status = (obj or {}).get("status") or {}
    return [str(e.get("ip")) for e in (status.get("loadBalancer") or {}).get("ingress") or ()]


def node_ports(service: objects.RawObject) -> dict[str, int]:
    """Port name -> the nodePort the tenant API server allocated."""
    return {str(p["name"]): int(p["nodePort"]) for p in service["spec"]["ports"]}


def ready_condition(lb: objects.RawObject | None) -> dict[str, Any] | None:
    for condition in ((lb or {}).get("status") or {}).get("conditions") or ():
        if condition.get("type") == "Ready":
            return dict(condition)
    return None


async def load_balancers_of(
    kube: client.Client, tenant_namespace: str, origin_namespace: str
) -> list[objects.RawObject]:
    """The LoadBalancers an agent made for Services of `origin_namespace`."""
    listed = await kube.list(
        resources.LOAD_BALANCERS,
        namespace=tenant_namespace,
        label_selector=f"{labels.ORIGIN_NAMESPACE}={origin_namespace}",
    )
    return listed.items


async def served_address(kube: client.Client, namespace: str, name: str) -> str:
    """Wait for the tenant Service's `status.loadBalancer.ingress` and return its IP."""

    async def address() -> list[str]:
        return ingress_ips(await find(kube, resources.SERVICES, name, namespace))

    (ip,) = await until(address, what=f"an address on Service {namespace}/{name}")
    return ip


async def answered(host: str, port: int, payload: bytes, **kw: Any) -> bytes:
    """Wait for an answer through the load balancer at host:port and return it."""

    async def check() -> bytes | None:
        return await backends.exchange(host, port, payload, **kw)

    return await until(check, what=f"an answer from {host}:{port}")
