"""Memory per idle connection: hold N client connections open through a proxy's TCP listener and
compare the proxy's resident set size before and after."""

from __future__ import annotations

import asyncio
import contextlib
import resource
import time

from bench.dataplane import processes


async def _open(port: int, count: int, batch: int = 500) -> list[asyncio.StreamWriter]:
    writers: list[asyncio.StreamWriter] = []
    for start in range(0, count, batch):
        pairs = await asyncio.gather(
            *(asyncio.open_connection("127.0.0.1", port) for _ in range(min(batch, count - start)))
        )
        writers.extend(w for _, w in pairs)
    return writers


def idle_rss(pid: int, port: int, count: int, *, settle: float = 3.0) -> dict[str, float]:
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (65536, 65536))
    before = processes.rss_bytes(pid)

    async def hold() -> tuple[int, int]:
        writers = await _open(port, count)
        # Let the proxy finish its upstream connects before measuring.
        await asyncio.sleep(settle)
        after = processes.rss_bytes(pid)
        for w in writers:
            w.close()
        return after, len(writers)

    start = time.monotonic()
    after, opened = asyncio.run(hold())
    return {
        "connections": opened,
        "rss_before_mib": before / 2**20,
        "rss_after_mib": after / 2**20,
        "bytes_per_connection": (after - before) / max(opened, 1),
        "seconds_to_open": time.monotonic() - start,
    }
