"""Helpers for the agent integration tests: polling, Service bodies, reads of both clusters."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from kubelb.kube import client, errors, objects, resources

T = TypeVar("T")

DEADLINE = 60.0


async def wait_for(check: Callable[[], Awaitable[T]], *, what: str) -> T:
    """Poll `check` until it returns something truthy; return that. Fails naming `what` after a
    generous deadline (never a timed assertion: only how long we are willing to wait)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE
    last: T | None = None
    while loop.time() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what} (last seen: {last!r})")


async def idle(controller: Any, *, what: str) -> None:
    """Wait until `controller` has nothing queued or in flight: a write already visible on the
    API server is counted only once the reconcile that made it returns."""

    async def check() -> bool:
        return not len(controller.queue) and not controller.queue.processing

    await wait_for(check, what=what)


def lb_service(
    name: str, *ports: dict[str, Any], annotations: dict[str, str] | None = None, **spec: Any
) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "annotations": annotations or {}},
        "spec": {"type": "LoadBalancer", "ports": list(ports) or [{"port": 80}], **spec},
    }


async def find(kube: client.Client, resource: resources.Resource, namespace: str,
               name: str) -> objects.RawObject | None:  # fmt: skip
    try:
        return await kube.get(resource, name, namespace=namespace)
    except errors.NotFoundError:
        return None


async def load_balancers(kube: client.Client, namespace: str) -> list[objects.RawObject]:
    return (await kube.list(resources.LOAD_BALANCERS, namespace=namespace)).items


async def service_events(kube: client.Client, service: objects.RawObject) -> list[Any]:
    listed = await kube.list(
        resources.EVENTS,
        namespace=objects.namespace(service),
        field_selector=f"involvedObject.uid={objects.uid(service)}",
    )
    return listed.items


async def set_lb_status(kube: client.Client, lb: objects.RawObject, status: dict[str, Any]) -> None:
    """Write a LoadBalancer's status as the manager would (fresh read, whole status)."""
    current = await kube.get(resources.LOAD_BALANCERS, objects.name(lb),
                             namespace=objects.namespace(lb))  # fmt: skip
    await kube.replace_status(resources.LOAD_BALANCERS, {**current, "status": status})


def backend_service(name: str, *ports: dict[str, Any], **spec: Any) -> dict[str, Any]:
    """A Service an L7 source points at (ClusterIP unless `type` is given)."""
    return {
        "metadata": {"name": name},
        "spec": {"selector": {"app": name}, "ports": list(ports) or [{"port": 80}], **spec},
    }


def ingress(
    name: str, *rules: dict[str, Any], class_name: str | None = "kubelb", **spec: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {"metadata": {"name": name}, "spec": {"rules": list(rules), **spec}}
    if class_name is not None:
        body["spec"]["ingressClassName"] = class_name
    return body


def ingress_rule(host: str, *paths: tuple[str, str, int]) -> dict[str, Any]:
    """A rule for `host` with (path, service, port) entries."""
    return {
        "host": host,
        "http": {
            "paths": [
                {
                    "path": path,
                    "pathType": "Prefix",
                    "backend": {"service": {"name": service, "port": {"number": port}}},
                }
                for path, service, port in paths
            ]
        },
    }


async def routes(kube: client.Client, namespace: str) -> list[objects.RawObject]:
    return (await kube.list(resources.ROUTES, namespace=namespace)).items


async def set_route_status(
    kube: client.Client,
    route: objects.RawObject,
    served: dict[str, Any],
    *,
    applied: tuple[str, str] | None = None,
    generated_name: str | None = None,
) -> None:
    """Report `served` as the generated object's status, as the manager would; `applied` =
    (reason, message) reports that it could not apply the Route."""
    reason, message = applied or ("InstallationSuccessful", "Success")
    current = await kube.get(
        resources.ROUTES, objects.name(route), namespace=objects.namespace(route)
    )
    source = current["spec"]["source"]["kubernetes"]["resource"]
    state = {
        "apiVersion": source["apiVersion"],
        "kind": source["kind"],
        "name": source["metadata"]["name"],
        "namespace": source["metadata"]["namespace"],
        "generatedName": generated_name
        or f"{source['metadata']['name']}-{source['metadata']['namespace']}",
        "status": served,
        "conditions": [
            {
                "type": "ResourceAppliedSuccessfully",
                "status": "False" if applied else "True",
                "reason": reason,
                "message": message,
                "lastTransitionTime": "2025-01-01T00:00:00Z",
            }
        ],
    }
    await kube.replace_status(
        resources.ROUTES, {**current, "status": {"resources": {"route": state}}}
    )


async def object_events(kube: client.Client, obj: objects.RawObject) -> list[Any]:
    return await service_events(kube, obj)
