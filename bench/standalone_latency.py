"""Standalone mode: time from a file change to traffic on the new listener.

Runs `kubelb --mode=standalone` (a real subprocess) on each data plane in the same invocation,
then N times: write a new LoadBalancer file with a fresh port and time until a TCP round trip
through the new listener succeeds. The poll interval of the file watcher (0.2 s) is part of what
is measured, as an operator would experience it. Reports median, p90 and max per data plane.

    python -m bench standalone_latency [--runs 20] [--dataplanes envoy,python]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench import results_file
from tests.integration.standalone import backends, harness


async def _measure(dataplane: str, runs: int) -> list[float]:
    with tempfile.TemporaryDirectory(prefix="kubelb-bench-") as tmp:
        root = Path(tmp)
        (root / "config").mkdir()
        kubelb = harness.Standalone(
            dataplane=dataplane,
            config_dir=root / "config",
            state_dir=root / "state",
            log_path=root / "kubelb.log",
        )
        backend_port = harness.free_port()
        samples: list[float] = []
        async with backends.tcp_echo("B", "127.0.0.11", backend_port):
            await kubelb.start()
            try:
                for i in range(runs):
                    port = harness.free_port()
                    yaml = harness.lb_yaml(f"lb{i}", port, [("127.0.0.11", backend_port)])
                    started = time.perf_counter()
                    (root / "config" / f"lb{i}.yaml").write_text(yaml)
                    while True:
                        try:
                            await backends.request("127.0.0.1", port)
                            break
                        except OSError:
                            await asyncio.sleep(0.005)
                    samples.append(time.perf_counter() - started)
            finally:
                await kubelb.stop()
        return samples


def _summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "runs": len(samples),
        "median_s": statistics.median(ordered),
        "p90_s": ordered[math.ceil(len(ordered) * 0.9) - 1],
        "max_s": ordered[-1],
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench standalone_latency")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--dataplanes", default="envoy,python")
    results_file.add_arguments(parser, "two changes per data plane")
    args = parser.parse_args(argv)
    if args.quick:
        args.runs = 2
    report: dict[str, dict[str, float]] = {}
    for dataplane in args.dataplanes.split(","):
        samples = asyncio.run(_measure(dataplane, args.runs))
        report[dataplane] = _summary(samples)
        s = report[dataplane]
        print(
            f"{dataplane:>7}: file change -> traffic on a new listener: "
            f"median {s['median_s']:.3f} s, p90 {s['p90_s']:.3f} s, "
            f"max {s['max_s']:.3f} s over {s['runs']} runs"
        )
    results_file.write("standalone_latency", report, results_file.folder(args), echo=False)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
