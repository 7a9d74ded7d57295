"""`python -m bench [SUITE] [ARGS]` (`make bench BENCH_ARGS=...`): run a benchmark suite.

Suites are modules under `bench/` with `main(argv) -> int`; with no suite name every suite runs
with the arguments given. Results go to `bench/results/`. Every suite takes `--out DIR` and
`--quick` (smoke-test size; `tests/integration/test_bench_smoke.py` runs each suite so).
"""

from __future__ import annotations

import importlib
import sys

SUITES: dict[str, str] = {
    "dataplane": "bench.dataplane.run",
    "standalone_latency": "bench.standalone_latency",
    "xds_snapshot": "bench.xds_snapshot",
    "xds_update": "bench.xds_update",
    "dataplane_apply_stall": "bench.dataplane_apply_stall",
    "controlplane_scale": "bench.controlplane.scale",
    "controlplane_convergence": "bench.controlplane.convergence",
    "routes": "bench.controlplane.routes",
}


def main(argv: list[str]) -> int:
    if argv and argv[0] in ("-h", "--help"):
        print(f"usage: python -m bench [{'|'.join(SUITES)}] [suite arguments]")
        print("every suite takes --quick (smoke-test size) and --out DIR; SUITE --help for more")
        return 0
    if argv and argv[0] in SUITES:
        return int(importlib.import_module(SUITES[argv[0]]).main(argv[1:]))
    if argv and not argv[0].startswith("-"):
        print(f"unknown suite {argv[0]!r}; choose from {sorted(SUITES)}", file=sys.stderr)
        return 2
    code = 0
    for name, module in SUITES.items():
        print(f"== bench suite {name}")
        code |= int(importlib.import_module(module).main(argv))
    return code


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
