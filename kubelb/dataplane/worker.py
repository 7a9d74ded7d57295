"""Entry point of one data-plane worker process (`python -m kubelb.dataplane.worker`).

Input: JSON lines on stdin from `workers.WorkerPool`. Output: a single-process `DataPlane` bound
with SO_REUSEPORT, and JSON lines on stdout (`applied` acknowledgements, status every second).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from typing import Any

from kubelb.dataplane import context, loops, runtime
from kubelb.ir import codec
from kubelb.util import logsafe

logger = logging.getLogger(__name__)

STATUS_EVERY_SECONDS = 1.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kubelb-dataplane-worker")
    parser.add_argument("--options", default="{}")
    parser.add_argument("--index", type=int, default=0)
    args = parser.parse_args(argv)
    # The parent decides when workers stop; Ctrl-C reaches the whole process group.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    log_format = f"%(asctime)s worker-{args.index} %(levelname)s %(name)s: %(message)s"
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format=log_format)
    logsafe.install(log_format)  # listener names come from tenants: one record, one line
    options = context.Options(**json.loads(args.options))
    loops.run(_serve(options))
    return 0


async def _serve(options: context.Options) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=64 * 1024 * 1024)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    dp = runtime.DataPlane(workers=1, options=options, reuse_port=True)
    reporter = loop.create_task(_report(dp))
    drain = runtime.DEFAULT_DRAIN_SECONDS
    try:
        while line := await reader.readline():
            # Decoding 10,000 listeners takes longer than any request should wait: off the loop.
            message: dict[str, Any] = await asyncio.to_thread(_decode, line)
            if message["op"] == "apply":
                await dp.apply(message["config"])
                # Status first, so the parent's view is current once apply() returns.
                await _emit_status(dp)
                _emit({"op": "applied"})
            elif message["op"] == "close":
                drain = float(message["drain"])
                break
    finally:
        # Keep reporting while draining: the parent's status shows the listeners draining.
        try:
            await dp.close(drain)
        finally:
            reporter.cancel()
            await asyncio.gather(reporter, return_exceptions=True)


def _decode(line: bytes) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(line)
    if message["op"] == "apply":
        message["config"] = codec.proxy_config_from_dict(message["config"])
    return message


async def _report(dp: runtime.DataPlane) -> None:
    while True:
        await _emit_status(dp)
        await asyncio.sleep(STATUS_EVERY_SECONDS)


async def _emit_status(dp: runtime.DataPlane) -> None:
    # The status of 10,000 listeners is megabytes of JSON: encoded off the loop.
    text = await asyncio.to_thread(json.dumps, {"op": "status", "status": dp.status()})
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _emit(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    raise SystemExit(main())
