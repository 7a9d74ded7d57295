"""xDS snapshot build time: translate a ProxyConfig of N LoadBalancer-like TCP listeners and build
the `Snapshot` (pack, hash, consistency check). Reports the median of several runs and the size
of the state-of-the-world payload per type.

`python -m bench.xds_snapshot [--listeners 1000] [--runs 7] [--endpoints 3]`
"""

from __future__ import annotations

import argparse
import statistics
import time

from bench import results_file
from kubelb.ir import proxy
from kubelb.xds import snapshot, translate


def lb_config(listeners: int, endpoints: int) -> proxy.ProxyConfig:
    """One tenant with `listeners` LoadBalancer ports, each to its own cluster of node IPs."""
    lis, clusters = [], []
    for i in range(listeners):
        name = f"tenant-a-lb-{i // 4}-ep-0-port-{30000 + i}-tcp"
        clusters.append(
            proxy.Cluster(
                name=name,
                protocol=proxy.Protocol.TCP,
                endpoints=tuple(
                    proxy.Endpoint(address=f"10.{e}.{i // 250}.{i % 250 + 1}", port=30000 + i)
                    for e in range(endpoints)
                ),
                health_check=proxy.HealthCheck(),
            )
        )
        lis.append(
            proxy.Listener(
                name=name,
                address="0.0.0.0",
                port=10000 + i,
                protocol=proxy.Protocol.TCP,
                clusters=(name,),
            )
        )
    return proxy.ProxyConfig(node_id="tenant-a", listeners=tuple(lis), clusters=tuple(clusters))


def build(config: proxy.ProxyConfig) -> snapshot.Snapshot:
    """translate + Snapshot + consistency check: what a control plane does per IR change."""
    snap = snapshot.Snapshot.from_resources(translate.sealed(config))
    snap.consistent()
    return snap


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.xds_snapshot")
    parser.add_argument("--listeners", type=int, default=1000)
    parser.add_argument("--endpoints", type=int, default=3)
    parser.add_argument("--runs", type=int, default=7)
    results_file.add_arguments(parser, "20 listeners, one run")
    args = parser.parse_args(argv)
    if args.quick:
        args.listeners, args.runs = 20, 1
    config = lb_config(args.listeners, args.endpoints)
    timings, translate_timings = [], []
    snap = build(config)  # warm-up (imports, descriptor pools)
    for _ in range(args.runs):
        translate.clear_cache()  # a cold translation, not the memoized resources of the last run
        start = time.perf_counter()
        resources = translate.sealed(config)
        translated = time.perf_counter()
        snap = snapshot.Snapshot.from_resources(resources)
        snap.consistent()
        timings.append(time.perf_counter() - start)
        translate_timings.append(translated - start)
    sizes = {
        snapshot.SHORT_NAMES[t]: sum(len(r.value) for r in res.items.values())
        for t, res in snap.types.items()
    }
    result = {
        "listeners": args.listeners,
        "endpoints_per_cluster": args.endpoints,
        "runs": args.runs,
        "median_seconds": round(statistics.median(timings), 4),
        "min_seconds": round(min(timings), 4),
        "max_seconds": round(max(timings), 4),
        "median_translate_seconds": round(statistics.median(translate_timings), 4),
        "payload_bytes": sizes,
    }
    results_file.write("xds_snapshot", result, results_file.folder(args))
    return 0


if __name__ == "__main__":
    import sys

    raise SystemExit(main(sys.argv[1:]))
