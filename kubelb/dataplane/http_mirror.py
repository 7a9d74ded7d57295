"""Request mirroring: a copy of a request goes to another cluster and its answer is discarded.

Input: the request head (already edited for the mirror: `connection: close`) and
its framed body, once the client has sent the whole request. Output: nothing the client sees;
the copy runs as its own task on its own connection, so it never delays the main request, and a
slow or dead mirror only costs that task (bounded by `MIRROR_TIMEOUT_SECONDS`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

logger = logging.getLogger(__name__)

MIRROR_TIMEOUT_SECONDS = 30.0
# Larger request bodies are not mirrored (the copy is kept in memory until the request ends).
MAX_MIRROR_BODY = 1 << 20


async def send(host: str, port: int, data: bytes, *, connect_timeout: float) -> None:
    """Send `data` (a whole request) and read the answer until the upstream closes."""
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(MIRROR_TIMEOUT_SECONDS):
            async with asyncio.timeout(connect_timeout):
                reader, writer = await asyncio.open_connection(host, port)
            writer.write(data)
            while await reader.read(65536):
                pass
    except (OSError, TimeoutError) as err:
        logger.debug("mirror to %s:%d failed: %s", host, port, err)
    finally:
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
