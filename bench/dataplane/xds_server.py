"""kubelb's ADS server for the benchmark's Envoy: `python -m bench.dataplane.xds_server IR PORT`.

Serves the IR document IR (as `kubelb translate --to ir` prints it) to node id `bench` the way
the product does: translated by `kubelb.xds.translate`, packed into a `Snapshot`, held by a
`SnapshotCache` and served by `XdsServer` on 127.0.0.1:PORT, so Envoy receives its clusters,
endpoints, listeners and route tables over ADS (CDS, EDS, LDS, RDS) exactly as in production.
Runs until SIGTERM or SIGINT.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import yaml

from kubelb.ir import codec, proxy
from kubelb.xds import cache, server, snapshot, translate

NODE_ID = "bench"


async def serve(config: proxy.ProxyConfig, port: int) -> None:
    snap = snapshot.Snapshot.from_resources(translate.sealed(config))
    snap.consistent()
    snapshots = cache.SnapshotCache()
    snapshots.set_snapshot(NODE_ID, snap)
    xds = server.XdsServer(snapshots)
    await xds.start(f"127.0.0.1:{port}")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await xds.stop(grace=1.0)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    config = codec.proxy_config_from_dict(yaml.safe_load(Path(argv[0]).read_text()))
    asyncio.run(serve(config, int(argv[1])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
