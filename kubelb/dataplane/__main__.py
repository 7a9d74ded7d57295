"""`python -m kubelb.dataplane --config IR.yaml`: serve one IR file with the built-in data plane.

Input: an IR document (YAML or JSON, `kubelb.ir.codec` form), re-read on SIGHUP. Output: a running
proxy until SIGINT or SIGTERM, then a drain. For benchmarks and debugging; the product entry point
is `kubelb --mode=standalone --dataplane python`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import resource
import signal
from pathlib import Path

import yaml

from kubelb.dataplane import context, loops, runtime
from kubelb.ir import codec, proxy
from kubelb.util import logsafe

logger = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kubelb.dataplane", description=__doc__)
    parser.add_argument("--config", type=Path, required=True, help="IR file (YAML or JSON)")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--drain-seconds", type=float, default=5.0)
    parser.add_argument("--max-connections", type=int, default=50_000)
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    log_format = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    logging.basicConfig(level=args.log_level, format=log_format)
    logsafe.install(log_format)  # listener names come from tenants: one record, one line
    _raise_file_limit()
    options = context.Options(max_connections=args.max_connections)
    loops.run(_serve(args.config, args.workers, options, args.drain_seconds))
    return 0


def load(path: Path) -> proxy.ProxyConfig:
    return codec.proxy_config_from_dict(yaml.safe_load(path.read_text()))


async def _serve(path: Path, workers: int, options: context.Options, drain: float) -> None:
    dp = runtime.DataPlane(workers=workers, options=options, drain_seconds=drain)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    reload = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, reload.set)
    await dp.apply(await asyncio.to_thread(load, path))
    logger.info("serving %s", path)
    while not stop.is_set():
        waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(reload.wait())]
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        for w in waiters:
            w.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)
        if reload.is_set() and not stop.is_set():
            reload.clear()
            try:
                await dp.apply(await asyncio.to_thread(load, path))
            except (OSError, ValueError, yaml.YAMLError) as err:
                logger.error("cannot reload %s: %s", path, err)
    await dp.close(drain)


def _raise_file_limit() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


if __name__ == "__main__":
    raise SystemExit(main())
