"""A kubernetes_asyncio watch against the real API server: create, update and delete events,
and BOOKMARK events when asked for (what kubelb's informers rely on to resume cheaply)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest
from kubernetes_asyncio import client, watch

pytestmark = pytest.mark.integration

# The server sends a bookmark about 2 s before a watch's timeout (or every minute), so short
# server-side timeouts make bookmarks come soon; the loop below resumes after each timeout.
WATCH_SECONDS = 6
DEADLINE_SECONDS = 120
WATCHED = "watched"


async def _watch_until(
    core: client.CoreV1Api,
    namespace: str,
    resource_version: str,
    done: Any,
    events: list[dict[str, Any]],
) -> None:
    while not done(events):
        async with watch.Watch() as w:
            stream = w.stream(
                core.list_namespaced_config_map,
                namespace,
                resource_version=resource_version,
                # kube-controller-manager publishes kube-root-ca.crt into every new namespace,
                # possibly after the list above; only the object under test is of interest.
                field_selector=f"metadata.name={WATCHED}",
                allow_watch_bookmarks=True,
                timeout_seconds=WATCH_SECONDS,
            )
            async for event in stream:
                events.append({"type": event["type"], "object": event["raw_object"]})
                resource_version = event["raw_object"]["metadata"]["resourceVersion"]
                if done(events):
                    return


async def test_watch_sees_changes_and_bookmarks(management_api, management_namespace):
    core = client.CoreV1Api(management_api)
    listed = await core.list_namespaced_config_map(management_namespace)
    start = listed.metadata.resource_version
    events: list[dict[str, Any]] = []

    def bookmark_after_delete(evs: list[dict[str, Any]]) -> bool:
        types = [e["type"] for e in evs]
        return "DELETED" in types and "BOOKMARK" in types[types.index("DELETED") :]

    watcher = asyncio.create_task(
        _watch_until(core, management_namespace, start, bookmark_after_delete, events)
    )
    try:
        body = client.V1ConfigMap(metadata=client.V1ObjectMeta(name=WATCHED), data={"v": "1"})
        await core.create_namespaced_config_map(management_namespace, body)
        await core.patch_namespaced_config_map(WATCHED, management_namespace, {"data": {"v": "2"}})
        await core.delete_namespaced_config_map(WATCHED, management_namespace)
        async with asyncio.timeout(DEADLINE_SECONDS):
            await watcher
    finally:
        if not watcher.done():
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    changes = [(e["type"], e["object"].get("data")) for e in events if e["type"] != "BOOKMARK"]
    assert changes == [("ADDED", {"v": "1"}), ("MODIFIED", {"v": "2"}), ("DELETED", {"v": "2"})]
    bookmark = next(e["object"] for e in reversed(events) if e["type"] == "BOOKMARK")
    assert bookmark["kind"] == "ConfigMap"
    assert bookmark["metadata"]["resourceVersion"]
