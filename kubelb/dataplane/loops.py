"""Event-loop selection for the data plane: uvloop when installed, the stdlib loop otherwise.

Input: nothing. Output: `new_event_loop()` and `run(coro)` used by the data-plane entry point and
its worker processes. This module is the only place in `kubelb.dataplane` that imports uvloop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")


def new_event_loop(prefer_uvloop: bool = True) -> asyncio.AbstractEventLoop:
    if prefer_uvloop:
        try:
            import uvloop
        except ImportError:
            logger.info("uvloop is not installed; using the asyncio event loop")
        else:
            loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
            return loop
    return asyncio.new_event_loop()


def run(main: Coroutine[Any, Any, T], *, prefer_uvloop: bool = True) -> T:
    """Run `main` to completion on a fresh loop (uvloop when available)."""
    with asyncio.Runner(loop_factory=lambda: new_event_loop(prefer_uvloop)) as runner:
        return runner.run(main)


def name(loop: asyncio.AbstractEventLoop) -> str:
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"
