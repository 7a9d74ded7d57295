"""Process-wide logging set-up and the event loop runner; only `kubelb.app` configures output."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Coroutine
from typing import Any, TypeVar

import uvloop

from kubelb.util import logsafe

T = TypeVar("T")

FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
# Libraries that are chatty at INFO about things an operator does not act on.
QUIET = ("aiohttp.access", "kubernetes_asyncio", "grpc")


def setup(level: str = "info") -> None:
    # gRPC's fork handlers only log noise when the Envoy supervisor spawns a process.
    os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "0")
    logging.basicConfig(level=level.upper(), format=FORMAT, stream=sys.stderr, force=True)
    logsafe.install(FORMAT)  # one record, one line: tenant strings cannot forge a line
    for name in QUIET:
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLogger().level))


def run_loop(main: Coroutine[Any, Any, T]) -> T:
    """Run `main` on uvloop, the production event loop."""
    return uvloop.run(main)
