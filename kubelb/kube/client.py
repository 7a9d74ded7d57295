"""A thin raw-JSON client for the Kubernetes API over `kubelb.kube.transport`.

Input: an `ApiSource` (or a bare `transport.Api`, or a kubernetes_asyncio ApiClient as tests and
the test control plane hold) and `resources.Resource` descriptors. Output: decoded JSON dicts,
never generated models: the body of each answer is parsed here. Failures raise the
`kubelb.kube.errors` tree (a 401 first asks the source for fresh credentials and retries once).
Every write names `field_manager`, so managedFields say which kubelb component wrote what.

Operations: get, list (all pages, selectors), watch (a `WatchStream` of events, bookmarks on),
create, replace, patch (merge, strategic-merge, JSON patch, server-side apply), the `status`
subresource, delete (with uid/resourceVersion preconditions), TokenRequest, and `connection()`
(the server URL and CA in use). Listed items get their apiVersion and kind filled in, so every
object this package hands out carries both.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from types import TracebackType
from typing import Any, Self

import aiohttp

from kubelb.kube import errors, kubeconfig, objects, resources, transport

logger = logging.getLogger(__name__)

Query = Sequence[tuple[str, str]]


class PatchType(StrEnum):
    MERGE = "application/merge-patch+json"
    STRATEGIC = "application/strategic-merge-patch+json"
    JSON = "application/json-patch+json"
    APPLY = "application/apply-patch+yaml"


@dataclass(frozen=True, slots=True)
class ObjectList:
    items: list[objects.RawObject]
    resource_version: str


@dataclass(frozen=True, slots=True)
class Token:
    token: str
    expiration: datetime.datetime


@dataclass(frozen=True, slots=True)
class Connection:
    """Where the client talks to: the server URL and the CA it trusts (b"" when none is set)."""

    server: str
    ca_pem: bytes


# Requests in flight at once per client; more wait their turn. Each holds an HTTP/1.1
# connection, and each connection its TLS read buffer (uvloop: 256 KiB): bursts of writes had
# the manager open 32 request connections beside its 15 watches. Enough for the manager's 16
# LoadBalancer workers (one request in flight each). Watches, each holding its connection for
# its life, are not counted.
MAX_REQUESTS = 16


class Client:
    """Raw-JSON API client. Namespaced kinds need `namespace` (or one in the object's metadata)."""

    def __init__(
        self,
        source: kubeconfig.ApiSource | transport.Api | transport.ApiClientLike,
        *,
        field_manager: str = "kubelb",
        timeout: float = 30.0,
    ) -> None:
        if isinstance(source, transport.Api):
            source = kubeconfig.FixedApi(source)
        elif not isinstance(source, kubeconfig.ApiSource):  # a kubernetes_asyncio ApiClient
            source = kubeconfig.FixedApi(transport.Api.of_api_client(source))
        self.source = source
        self.field_manager = field_manager
        self.timeout = timeout
        self._requests = asyncio.Semaphore(MAX_REQUESTS)

    async def close(self) -> None:
        await self.source.close()

    async def connection(self) -> Connection:
        """The current server URL and CA (e.g. for kubeconfigs handed to others)."""
        api = await self.source.api()
        return Connection(api.server, api.ca_pem)

    async def get(
        self, resource: resources.Resource, name: str, *, namespace: str | None = None
    ) -> objects.RawObject:
        path = resource.path(_ns(resource, namespace), name)
        return _with_kind(resource, await self.request("GET", path))

    async def list(
        self,
        resource: resources.Resource,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        page_size: int = 500,
    ) -> ObjectList:
        """Every matching object (following `continue` tokens) and the list's resourceVersion."""
        path = resource.path(namespace)
        base = _selectors(label_selector, field_selector)
        items: list[objects.RawObject] = []
        token = ""
        while True:
            query = [*base, ("limit", str(page_size))]
            if token:
                query.append(("continue", token))
            page = await self.request("GET", path, query=query)
            items.extend(_with_kind(resource, item) for item in page.get("items") or ())
            meta = page.get("metadata") or {}
            token = meta.get("continue") or ""
            if not token:
                return ObjectList(items, str(meta.get("resourceVersion") or ""))

    def watch(
        self,
        resource: resources.Resource,
        *,
        namespace: str | None = None,
        resource_version: str = "",
        label_selector: str | None = None,
        field_selector: str | None = None,
        timeout_seconds: int = 300,
        allow_bookmarks: bool = True,
    ) -> WatchStream:
        """`async with client.watch(...) as stream: async for event in stream: ...`"""
        query = [*_selectors(label_selector, field_selector), ("watch", "true"),
                 ("timeoutSeconds", str(timeout_seconds))]  # fmt: skip
        if resource_version:
            query.append(("resourceVersion", resource_version))
        if allow_bookmarks:
            query.append(("allowWatchBookmarks", "true"))
        # No total timeout: the server ends the watch; a silent connection is cut after
        # `timeout_seconds` plus a margin without a byte.
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=self.timeout, sock_read=timeout_seconds + 30
        )
        return WatchStream(self, resource, resource.path(namespace), query, timeout)

    async def create(
        self, resource: resources.Resource, obj: objects.RawObject, *, namespace: str | None = None
    ) -> objects.RawObject:
        ns = _ns(resource, namespace or objects.namespace(obj))
        body = {"apiVersion": resource.api_version, "kind": resource.kind, **obj}
        return _with_kind(resource, await self.request("POST", resource.path(ns), body=body,
                                                       query=self._manager()))  # fmt: skip

    async def replace(
        self,
        resource: resources.Resource,
        obj: objects.RawObject,
        *,
        subresource: str | None = None,
    ) -> objects.RawObject:
        """PUT `obj` (its metadata.resourceVersion, if set, is the optimistic-lock precondition)."""
        key = objects.key_of(obj)
        path = resource.path(_ns(resource, key.namespace), key.name, subresource)
        body = {"apiVersion": resource.api_version, "kind": resource.kind, **obj}
        return _with_kind(resource, await self.request("PUT", path, body=body,
                                                       query=self._manager()))  # fmt: skip

    async def replace_status(
        self, resource: resources.Resource, obj: objects.RawObject
    ) -> objects.RawObject:
        return await self.replace(resource, obj, subresource="status")

    async def patch(
        self,
        resource: resources.Resource,
        name: str,
        patch: Any,
        *,
        namespace: str | None = None,
        patch_type: PatchType = PatchType.MERGE,
        subresource: str | None = None,
    ) -> objects.RawObject:
        path = resource.path(_ns(resource, namespace), name, subresource)
        return _with_kind(resource, await self.request(
            "PATCH", path, body=patch, content_type=patch_type, query=self._manager()))  # fmt: skip

    async def patch_status(
        self,
        resource: resources.Resource,
        name: str,
        patch: Any,
        *,
        namespace: str | None = None,
        patch_type: PatchType = PatchType.MERGE,
    ) -> objects.RawObject:
        return await self.patch(resource, name, patch, namespace=namespace,
                                patch_type=patch_type, subresource="status")  # fmt: skip

    async def apply(
        self,
        resource: resources.Resource,
        obj: objects.RawObject,
        *,
        force: bool = True,
        subresource: str | None = None,
    ) -> objects.RawObject:
        """Server-side apply `obj` as `field_manager` (creates it when absent)."""
        key = objects.key_of(obj)
        path = resource.path(_ns(resource, key.namespace), key.name, subresource)
        body = {"apiVersion": resource.api_version, "kind": resource.kind, **obj}
        query = [*self._manager(), ("force", "true" if force else "false")]
        return _with_kind(resource, await self.request(
            "PATCH", path, body=body, content_type=PatchType.APPLY, query=query))  # fmt: skip

    async def delete(
        self,
        resource: resources.Resource,
        name: str,
        *,
        namespace: str | None = None,
        uid: str | None = None,
        resource_version: str | None = None,
        propagation_policy: str | None = None,
        grace_period_seconds: int | None = None,
    ) -> objects.RawObject:
        """Delete; preconditions make it fail with ConflictError if the object was replaced
        (`uid`) or changed (`resource_version`). Returns the server's answer (the object while
        finalizers hold it, or a Status)."""
        options: dict[str, Any] = {"apiVersion": "v1", "kind": "DeleteOptions"}
        preconditions = {k: v for k, v in (("uid", uid), ("resourceVersion", resource_version))
                         if v}  # fmt: skip
        if preconditions:
            options["preconditions"] = preconditions
        if propagation_policy:
            options["propagationPolicy"] = propagation_policy
        if grace_period_seconds is not None:
            options["gracePeriodSeconds"] = grace_period_seconds
        path = resource.path(_ns(resource, namespace), name)
        result: objects.RawObject = await self.request("DELETE", path, body=options)
        return result

    async def create_token(
        self,
        namespace: str,
        service_account: str,
        *,
        expiration_seconds: int = 3600,
        audiences: Iterable[str] = (),
    ) -> Token:
        """A token for ServiceAccount `namespace/service_account` (TokenRequest API)."""
        spec: dict[str, Any] = {"expirationSeconds": expiration_seconds}
        if audiences:
            spec["audiences"] = list(audiences)
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec}
        path = resources.SERVICE_ACCOUNTS.path(namespace, service_account, "token")
        answer = await self.request("POST", path, body=body)
        status = answer.get("status") or {}
        expiration = datetime.datetime.fromisoformat(str(status["expirationTimestamp"]))
        return Token(str(status["token"]), expiration)

    async def request(
        self,
        method: str,
        path: str,
        *,
        query: Query = (),
        body: Any = None,
        content_type: str = "application/json",
        request_timeout: float | aiohttp.ClientTimeout | None = None,
    ) -> Any:
        """One request; the decoded JSON answer. The escape hatch for what has no method here.
        At most `MAX_REQUESTS` are in flight (sent and not yet read) at once."""
        async with self._requests:
            response = await self.open(
                method, path, query=query, body=body, content_type=content_type,
                request_timeout=request_timeout,
            )  # fmt: skip
            async with response:
                try:
                    data = await response.read()
                except (aiohttp.ClientError, TimeoutError) as exc:
                    raise errors.TransportError(str(exc) or type(exc).__name__,
                                                request=f"{method} {path}") from exc  # fmt: skip
        return json.loads(data) if data else None

    async def open(
        self,
        method: str,
        path: str,
        *,
        query: Query = (),
        body: Any = None,
        content_type: str = "application/json",
        request_timeout: float | aiohttp.ClientTimeout | None = None,
    ) -> aiohttp.ClientResponse:
        """Send a request and return the open response once its status is a success."""
        label = f"{method} {path}"
        headers = {"Accept": "application/json", "Content-Type": content_type}
        for attempt in (1, 2):
            api = await self.source.api()
            try:
                response = await api.open(
                    method, path, query=query, headers=headers, body=body,
                    request_timeout=request_timeout or self.timeout,
                )  # fmt: skip
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise errors.TransportError(str(exc) or type(exc).__name__, request=label) from exc
            if response.status < 400:
                return response
            async with response:
                data = await response.read()
            if response.status == 401 and attempt == 1 and await self.source.refresh():
                logger.info("401 from %s: retrying with reloaded credentials", label)
                continue
            raise errors.from_response(response.status, data, request=label)
        raise AssertionError("unreachable")

    def _manager(self) -> Query:
        return [("fieldManager", self.field_manager)]


class WatchStream:
    """An open watch. Iterating yields events; an ERROR event raises (GoneError for 410).
    The stream ends when the server closes the watch (its `timeoutSeconds`)."""

    def __init__(
        self,
        client: Client,
        resource: resources.Resource,
        path: str,
        query: Query,
        timeout: aiohttp.ClientTimeout,
    ) -> None:
        self._client = client
        self._resource = resource
        self._path = path
        self._query = query
        self._timeout = timeout
        self._response: aiohttp.ClientResponse | None = None

    async def __aenter__(self) -> Self:
        self._response = await self._client.open(
            "GET", self._path, query=self._query, request_timeout=self._timeout
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._response is not None:
            self._response.close()
            self._response = None

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> objects.WatchEvent:
        if self._response is None:
            raise RuntimeError("use `async with client.watch(...)` before iterating")
        try:
            line = await self._response.content.readline()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise errors.TransportError(str(exc) or type(exc).__name__,
                                        request=f"WATCH {self._path}") from exc  # fmt: skip
        if not line:
            raise StopAsyncIteration
        event: objects.WatchEvent = json.loads(line)
        if event["type"] == "ERROR":
            status = event["object"]
            raise errors.from_status_object(int(status.get("code") or 0), status,
                                            request=f"WATCH {self._path}")  # fmt: skip
        if event["type"] != "BOOKMARK":
            _with_kind(self._resource, event["object"])
        return event


def _ns(resource: resources.Resource, namespace: str | None) -> str | None:
    if resource.namespaced and not namespace:
        raise ValueError(f"{resource} is namespaced: a namespace is required")
    return namespace if resource.namespaced else None


def _selectors(label_selector: str | None, field_selector: str | None) -> list[tuple[str, str]]:
    query = []
    if label_selector:
        query.append(("labelSelector", label_selector))
    if field_selector:
        query.append(("fieldSelector", field_selector))
    return query


def _with_kind(resource: resources.Resource, obj: Any) -> objects.RawObject:
    if not isinstance(obj, dict):
        raise errors.ApiError(f"expected a {resource.kind} object, got {type(obj).__name__}")
    if obj.get("kind") != "Status":
        obj.setdefault("apiVersion", resource.api_version)
        obj.setdefault("kind", resource.kind)
    return obj
