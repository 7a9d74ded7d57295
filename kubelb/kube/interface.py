"""The API-server surface the rest of `kubelb.kube` needs, as a `typing.Protocol`.

Two implementations satisfy it: `client.Client` (a real API server over HTTP) and
`memory.MemoryClient` (an in-process store with the same semantics, for standalone mode and
tests). Informers, writers, event recorders and leader electors take a `KubeApi`, so the same
controllers run against either.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from types import TracebackType
from typing import Any, Protocol, Self

from kubelb.kube import objects, resources
from kubelb.kube.client import Connection, ObjectList, PatchType, Token


class EventStream(Protocol):
    """An open watch: `async with stream: async for event in stream: ...`. An ERROR event
    raises (`errors.GoneError` for 410); the stream ends when the server times the watch out."""

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    def __aiter__(self) -> AsyncIterator[objects.WatchEvent]: ...

    async def __anext__(self) -> objects.WatchEvent: ...


class KubeApi(Protocol):
    """Raw-JSON API operations; see `client.Client` for the meaning of each."""

    @property
    def field_manager(self) -> str: ...

    async def close(self) -> None: ...

    async def connection(self) -> Connection: ...

    async def get(
        self, resource: resources.Resource, name: str, *, namespace: str | None = None
    ) -> objects.RawObject: ...

    async def list(
        self,
        resource: resources.Resource,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        page_size: int = 500,
    ) -> ObjectList: ...

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
    ) -> EventStream: ...

    async def create(
        self, resource: resources.Resource, obj: objects.RawObject, *, namespace: str | None = None
    ) -> objects.RawObject: ...

    async def replace(
        self,
        resource: resources.Resource,
        obj: objects.RawObject,
        *,
        subresource: str | None = None,
    ) -> objects.RawObject: ...

    async def replace_status(
        self, resource: resources.Resource, obj: objects.RawObject
    ) -> objects.RawObject: ...

    async def patch(
        self,
        resource: resources.Resource,
        name: str,
        patch: Any,
        *,
        namespace: str | None = None,
        patch_type: PatchType = PatchType.MERGE,
        subresource: str | None = None,
    ) -> objects.RawObject: ...

    async def patch_status(
        self,
        resource: resources.Resource,
        name: str,
        patch: Any,
        *,
        namespace: str | None = None,
        patch_type: PatchType = PatchType.MERGE,
    ) -> objects.RawObject: ...

    async def apply(
        self,
        resource: resources.Resource,
        obj: objects.RawObject,
        *,
        force: bool = True,
        subresource: str | None = None,
    ) -> objects.RawObject: ...

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
    ) -> objects.RawObject: ...

    async def create_token(
        self,
        namespace: str,
        service_account: str,
        *,
        expiration_seconds: int = 3600,
        audiences: Iterable[str] = (),
    ) -> Token: ...
