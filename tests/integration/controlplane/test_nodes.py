"""Node helpers: chosen addresses and a Ready condition written through the status subresource,
and a flip to NotReady that a watcher of Nodes sees."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import pytest
from kubernetes_asyncio import client, watch

pytestmark = pytest.mark.integration


def _ready(node: client.V1Node) -> str:
    return next(c.status for c in node.status.conditions if c.type == "Ready")


async def test_create_node_and_flip_not_ready(management, management_api):
    name = f"node-{uuid.uuid4().hex[:8]}"
    addresses = [("InternalIP", "10.1.2.3"), ("ExternalIP", "192.0.2.7"), ("Hostname", name)]
    try:
        created = await management.create_node(name, addresses=addresses, labels={"zone": "a"})
        core = client.CoreV1Api(management_api)
        node = await core.read_node(name)
        assert [(a.type, a.address) for a in node.status.addresses] == addresses
        assert _ready(node) == "True"
        assert node.metadata.labels["zone"] == "a"
        assert not node.spec.taints  # no TaintNodesByCondition, no node lifecycle controller
        first_transition = next(
            c.last_transition_time for c in created.status.conditions if c.type == "Ready"
        )

        seen: asyncio.Queue[tuple[str, str]] = asyncio.Queue()

        async def watch_node() -> None:
            async with watch.Watch() as w:
                async for event in w.stream(
                    core.list_node,
                    field_selector=f"metadata.name={name}",
                    resource_version=node.metadata.resource_version,
                    timeout_seconds=60,
                ):
                    seen.put_nowait((event["type"], _ready(event["object"])))

        watcher = asyncio.create_task(watch_node())
        try:
            await management.set_node_ready(name, False)
            async with asyncio.timeout(60):
                # Controllers (the TTL controller) may annotate the Node first.
                while (event := await seen.get()) != ("MODIFIED", "False"):
                    assert event == ("MODIFIED", "True")
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

        flipped = await core.read_node(name)
        assert _ready(flipped) == "False"
        assert [(a.type, a.address) for a in flipped.status.addresses] == addresses
        flipped_transition = next(
            c.last_transition_time for c in flipped.status.conditions if c.type == "Ready"
        )
        assert flipped_transition >= first_transition

        moved = await management.set_node_addresses(name, [("InternalIP", "10.9.9.9")])
        assert [(a.type, a.address) for a in moved.status.addresses] == [("InternalIP", "10.9.9.9")]
        assert _ready(moved) == "False"
        assert _ready(await management.set_node_ready(name, True)) == "True"
    finally:
        await management.delete_node(name)
