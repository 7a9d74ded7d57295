"""Data-plane benchmark (`python -m bench dataplane`, `make bench`).

Three paths in one invocation, interleaved run by run: direct to the backend (nginx, or a uvloop
server without nginx), through Envoy programmed over ADS by kubelb's own xDS server (as the product
runs it: the product's bootstrap, EDS clusters, route tables by RDS), and through the Python data
plane, both with one worker. Scenarios: HTTP requests per second with p50/p99 (wrk -t1 -c50, HTTP
listener), the same through the TCP listener, new connections per second (wrk with
`Connection: close` through the TCP listener), bulk TCP throughput (iperf3), and `l7`: HTTP
requests per second through a second HTTP listener with a realistic route table (50 virtual
hosts of 10 routes, `bench.dataplane.l7`) to a route late in its host's list that matches a
header, edits request and response headers, rewrites the path and splits between two weighted
echo backends; each proxy must answer it as intended before anything is measured; `https` and
`handshakes` (`bench.dataplane.https`): HTTPS requests per second on kept-alive TLS connections
and new TLS handshakes per second, through an HTTPS listener with 20 named certificates and a
default, the proxies only (Python/Envoy is also given paired within each run). The proxy is
pinned to the first CPU, load generator and backend to the second. Medians of `--runs`, ratios
to direct and Python vs Envoy, CPU time per request of the proxy, and the RSS per connection of
10,000 idle connections, written as JSON, Markdown and PNG to bench/results/ (or --out).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

from bench import procstat, results_file
from bench.dataplane import https, l7, load, memory, processes, report

PATHS = ("direct", "envoy", "python")
SCENARIOS = ("http", "tcp", "connrate", "bulk", "l7", "https", "handshakes")
# Scenarios through a TLS listener: the proxies only (the backend speaks plain HTTP).
TLS_SCENARIOS = ("https", "handshakes")
TARGETS = {"tcp": 1.1, "bulk": 1.0, "http": 1.0}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench dataplane", description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of each point")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--idle-connections", type=int, default=10_000)
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument(
        "--name", default="dataplane",
        help="result files NAME.json/.md/.png, e.g. to keep a partial run beside the full one",
    )  # fmt: skip
    results_file.add_arguments(parser, "one run of 1 s points, 100 idle connections, no pauses")
    args = parser.parse_args(argv)
    # Pauses between points and before reading RSS let connections settle; --quick only checks
    # that every scenario runs.
    args.pause, args.settle = 0.5, 3.0
    if args.quick:
        args.seconds, args.runs, args.idle_connections = 1.0, 1, min(args.idle_connections, 100)
        args.pause, args.settle = 0.0, 0.2
    scenarios = [s for s in args.scenarios.split(",") if s]
    unknown = set(scenarios) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios {sorted(unknown)}; choose from {', '.join(SCENARIOS)}")
    load_start = os.getloadavg()
    results = run(args, scenarios)
    # Rates depend on what else the machine runs; CPU per request and per GB much less so.
    results["settings"]["loadavg_start"] = list(load_start)
    results["settings"]["loadavg_end"] = list(os.getloadavg())
    out = results_file.folder(args)
    results_file.save(out, f"{args.name}.json", json.dumps(results, indent=1) + "\n")
    results_file.save(out, f"{args.name}.md", report.markdown(results))
    if out is not None:
        report.chart(results, out / f"{args.name}.png")
    print(report.markdown(results))
    return 0


def run(args: argparse.Namespace, scenarios: list[str]) -> dict[str, Any]:
    cpu = processes.cpus()
    proxy_cpu, load_cpu = (cpu[0], cpu[1]) if len(cpu) > 1 else (None, None)
    with tempfile.TemporaryDirectory(prefix="kubelb-bench-") as tmp, _stack() as stack:
        work = Path(tmp)
        backend_port, sink_port = processes.free_port(), processes.free_port()
        echo_ports = {name: processes.free_port() for name in l7.WEIGHTS}
        env_ports = {k: processes.free_port() for k in ("http", "tcp", "bulk", "l7", "https")}
        py_ports = {k: processes.free_port() for k in ("http", "tcp", "bulk", "l7", "https")}
        secrets = https.secrets() if set(TLS_SCENARIOS) & set(scenarios) else ()
        backend_cmd, backend_name = processes.nginx_cmd(work, backend_port, echo_ports)
        # The backend gets the proxy's core on the direct path and shares the load core otherwise:
        # restarting it per path would disturb interleaving, so it is pinned to the load core.
        stack.enter_context(processes.process(
            backend_cmd, ready_port=backend_port, log=work / "backend.log", cpu=load_cpu
        ))  # fmt: skip
        iperf = processes.iperf3_cmd(sink_port)
        if iperf:
            stack.enter_context(processes.process(
                iperf, ready_port=sink_port, log=work / "iperf3.log", cpu=load_cpu
            ))  # fmt: skip
        else:
            load.sink_server(sink_port)
        # Idle once Envoy has its configuration, so it shares the load core.
        xds_port = processes.free_port()
        env_config = processes.proxy_config(env_ports, backend_port, sink_port, echo_ports, secrets)
        stack.enter_context(processes.process(
            processes.xds_server_cmd(work, env_config, xds_port),
            ready_port=xds_port, log=work / "xds.log", cpu=load_cpu,
        ))  # fmt: skip
        envoy_pid = stack.enter_context(processes.process(
            processes.envoy_cmd(work, xds_port),
            ready_port=env_ports["http"], log=work / "envoy.log", cpu=proxy_cpu,
        ))  # fmt: skip
        py_config = processes.proxy_config(py_ports, backend_port, sink_port, echo_ports, secrets)
        python_pid = stack.enter_context(processes.process(
            processes.python_cmd(work, py_config, 1),
            ready_port=py_ports["http"], log=work / "python.log", cpu=proxy_cpu,
        ))  # fmt: skip
        for ports in (env_ports, py_ports):
            processes.wait_http(ports["http"])
        if "l7" in scenarios:
            for path, ports in (("envoy", env_ports), ("python", py_ports)):
                print(f"L7 route through {path} answers as intended: {l7.check(ports['l7'])}")
        if secrets:
            for path, ports in (("envoy", env_ports), ("python", py_ports)):
                version = https.check(ports["https"], secrets[-1].certificate_chain)
                print(f"HTTPS through {path} serves the default certificate over {version}")
        # Direct, the L7 request goes to one echo backend as the client sends it.
        direct = {"http": backend_port, "tcp": backend_port, "bulk": sink_port,
                  "l7": echo_ports["a"]}  # fmt: skip
        targets = {
            "direct": (direct, None),
            "envoy": (env_ports, envoy_pid),
            "python": (py_ports, python_pid),
        }
        raw: dict[str, dict[str, list[dict[str, float]]]] = {
            s: {p: [] for p in PATHS} for s in scenarios
        }
        for i in range(args.runs):
            order = PATHS[i % 3 :] + PATHS[: i % 3]
            for scenario in scenarios:
                for path in order:
                    if path == "direct" and scenario in TLS_SCENARIOS:
                        continue
                    ports, pid = targets[path]
                    point = measure(scenario, ports, pid, args, load_cpu, proxy_cpu)
                    raw[scenario][path].append(point)
                    print(f"run {i + 1} {scenario:8} {path:6} {_fmt(point)}", flush=True)
        mem: dict[str, Any] = {}
        if args.idle_connections:
            for path in ("python", "envoy"):
                ports, pid = targets[path]
                assert pid is not None
                mem[path] = memory.idle_rss(
                    pid, ports["tcp"], args.idle_connections, settle=args.settle
                )
                print(f"memory {path}: {mem[path]}", flush=True)
                time.sleep(min(2.0, args.settle))
    return summarize(raw, mem, args, backend_name, proxy_cpu, load_cpu)


def measure(
    scenario: str, ports: dict[str, int], pid: int | None, args: argparse.Namespace,
    cpu: int | None, proxy_cpu: int | None = None,
) -> dict[str, float]:  # fmt: skip
    before = procstat.process_cpu_seconds(pid) if pid else 0.0
    cores_before, wall_before = procstat.core_busy_seconds(), time.monotonic()
    point: dict[str, float]
    if scenario == "bulk":
        point = {"gbps": load.bulk(ports["bulk"], seconds=args.seconds, cpu=cpu)}
    else:
        port = ports[scenario] if scenario in ("http", "l7") else ports["tcp"]
        scheme = "http"
        if scenario in TLS_SCENARIOS:
            port, scheme = ports["https"], "https"
        target, headers = "/", cast(tuple[tuple[str, str], ...], ())
        if scenario == "l7":
            target, headers = l7.MEASURED.target, (("Host", l7.MEASURED.host), *l7.MEASURED.headers)
        r = load.wrk(
            f"{scheme}://127.0.0.1:{port}{target}", seconds=args.seconds,
            connections=args.connections, cpu=cpu,
            close=scenario in ("connrate", "handshakes"), headers=headers,
        )  # fmt: skip
        point = {"rps": r.rps, "p50_ms": r.p50_ms, "p99_ms": r.p99_ms, "errors": r.errors}
        if pid:
            point["cpu_us_per_request"] = (
                (procstat.process_cpu_seconds(pid) - before) / max(r.requests, 1) * 1e6
            )
    # How busy each pinned core was: a rate below what the proxy's CPU cost allows is limited
    # elsewhere when the proxy's core has time to spare.
    wall = time.monotonic() - wall_before
    cores_after = procstat.core_busy_seconds()
    for label, core in (("proxy_core_busy", proxy_cpu), ("load_core_busy", cpu)):
        if core is not None and core in cores_after:
            point[label] = (cores_after[core] - cores_before.get(core, 0.0)) / wall
    if pid and scenario == "bulk":
        point["cpu_seconds"] = procstat.process_cpu_seconds(pid) - before
        gigabytes = point["gbps"] * args.seconds / 8
        point["cpu_seconds_per_gb"] = point["cpu_seconds"] / gigabytes if gigabytes else 0.0
    time.sleep(args.pause)
    return point


def summarize(
    raw: dict[str, dict[str, list[dict[str, float]]]], mem: dict[str, Any],
    args: argparse.Namespace, backend: str, proxy_cpu: int | None, load_cpu: int | None,
) -> dict[str, Any]:  # fmt: skip
    medians: dict[str, dict[str, dict[str, float]]] = {}
    for scenario, paths in raw.items():
        medians[scenario] = {}
        for path, points in paths.items():
            if points:
                keys = points[0].keys()
                medians[scenario][path] = {k: statistics.median(p[k] for p in points) for k in keys}
    ratios: dict[str, dict[str, float]] = {}
    for scenario, per_path in medians.items():
        metric = "gbps" if scenario == "bulk" else "rps"
        direct = per_path.get("direct", {}).get(metric)
        envoy = per_path.get("envoy", {}).get(metric)
        py = per_path.get("python", {}).get(metric)
        ratios[scenario] = {
            "envoy_to_direct": envoy / direct if envoy and direct else float("nan"),
            "python_to_direct": py / direct if py and direct else float("nan"),
            "python_to_envoy": py / envoy if py and envoy else float("nan"),
            "python_to_envoy_paired": _paired(raw[scenario], metric),
            "target_python_to_envoy": TARGETS.get(scenario, float("nan")),
        }
    return {
        "settings": {
            "seconds": args.seconds, "runs": args.runs, "connections": args.connections,
            "backend": backend, "proxy_cpu": proxy_cpu, "load_cpu": load_cpu,
            "cpus": processes.cpus(), "python": platform.python_version(),
            "machine": platform.machine(), "workers": 1,
            "http_load_generator": load.http_generator(),
            "bulk_load_generator": "iperf3" if processes.iperf3_cmd(0) else "python",
            "https": {
                "named_certificates": https.NAMED, "default_certificate": True,
                "key": "ECDSA P-256", "sni": "127.0.0.1 (the default certificate)",
                "handshakes": "Connection: close: one full handshake per request",
            },
            "l7": {
                "virtual_hosts": l7.HOSTS, "routes_per_host": l7.ROUTES_PER_HOST,
                "host": l7.MEASURED.host, "target": l7.MEASURED.target,
                "headers": dict(l7.MEASURED.headers), "route": l7.MEASURED_ROUTE,
                "route_position": l7.measured_position(), "weights": l7.WEIGHTS,
            },
        },
        "l7_vs_http": l7_vs_http(medians),
        "raw": raw,
        "medians": medians,
        "ratios": ratios,
        "memory": mem,
    }  # fmt: skip


def _paired(paths: dict[str, list[dict[str, float]]], metric: str) -> float:
    """Median over runs of Python/Envoy within one run: the two points of a run are measured
    back to back, so a machine whose load moves between runs moves both."""
    pairs = [
        py[metric] / env[metric]
        for py, env in zip(paths.get("python", []), paths.get("envoy", []), strict=False)
        if env.get(metric)
    ]
    return statistics.median(pairs) if pairs else float("nan")


def l7_vs_http(medians: dict[str, dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    """What the L7 route table costs each proxy over the plain HTTP listener's single route."""
    if "l7" not in medians or "http" not in medians:
        return {}
    out: dict[str, dict[str, float]] = {}
    for path in ("envoy", "python"):
        plain, routed = medians["http"].get(path), medians["l7"].get(path)
        if not plain or not routed:
            continue
        out[path] = {
            "rps_l7_to_http": routed["rps"] / plain["rps"] if plain["rps"] else float("nan"),
            "cpu_us_per_request_http": plain.get("cpu_us_per_request", float("nan")),
            "cpu_us_per_request_l7": routed.get("cpu_us_per_request", float("nan")),
            "cpu_us_per_request_added": routed.get("cpu_us_per_request", float("nan"))
            - plain.get("cpu_us_per_request", float("nan")),
        }
    return out


def _fmt(point: dict[str, float]) -> str:
    return " ".join(f"{k}={v:.3g}" for k, v in point.items())


@contextlib.contextmanager
def _stack() -> Iterator[contextlib.ExitStack]:
    with contextlib.ExitStack() as stack:
        yield stack
