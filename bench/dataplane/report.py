"""Benchmark reports: a Markdown table and a PNG chart from the summarized results."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

_TITLES = {
    "http": "HTTP req/s (HTTP listener)",
    "tcp": "HTTP req/s through the TCP proxy",
    "connrate": "new connections/s (TCP proxy)",
    "bulk": "bulk TCP Gbit/s",
    "l7": "HTTP req/s, L7 route table",
    "https": "HTTPS req/s, kept-alive TLS",
    "handshakes": "new TLS handshakes/s",
}


def markdown(results: dict[str, Any]) -> str:
    s = results["settings"]
    lines = [
        "# Data-plane benchmark",
        "",
        f"{_generator(s)} -c{s['connections']}, {s['seconds']:g} s per point, median of "
        f"{s['runs']} interleaved runs; backend {s['backend']}; proxy on CPU {s['proxy_cpu']}, "
        f"load and backend on CPU {s['load_cpu']}; one worker per proxy.",
        *_load_line(s),
        *_l7_line(s, results["medians"]),
        "",
        "| scenario | path | value | p50 ms | p99 ms | CPU µs/req | proxy core busy "
        "| load core busy | vs direct | Python/Envoy | target |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for scenario, paths in results["medians"].items():
        metric = "gbps" if scenario == "bulk" else "rps"
        r = results["ratios"][scenario]
        direct = paths.get("direct", {}).get(metric)
        for path, m in paths.items():
            value = m.get(metric, math.nan)
            vs_direct = value / direct if direct else math.nan
            py_env = _f(r["python_to_envoy"], 2) + "x" if path == "python" else ""
            if path == "python" and not math.isnan(r.get("python_to_envoy_paired", math.nan)):
                py_env += f" ({_f(r['python_to_envoy_paired'], 2)}x paired)"
            goal = r["target_python_to_envoy"]
            target = _f(goal, 1) + "x" if path == "python" and not math.isnan(goal) else ""
            lines.append(
                f"| {_TITLES[scenario]} | {path} | {_f(value, 3 if metric == 'gbps' else 0)} "
                f"| {_f(m.get('p50_ms'), 2)} | {_f(m.get('p99_ms'), 2)} "
                f"| {_f(m.get('cpu_us_per_request'), 1)} | {_pct(m.get('proxy_core_busy'))} "
                f"| {_pct(m.get('load_core_busy'))} | {_f(vs_direct, 2)} | {py_env} "
                f"| {target} |"
            )
    lines += _cost_lines(results["medians"])
    lines += _l7_cost_lines(results.get("l7_vs_http", {}), results["medians"])
    if results.get("memory"):
        lines += ["", "| idle connections | path | RSS before MiB | RSS after MiB | bytes/conn |",
                  "|---:|---|---:|---:|---:|"]  # fmt: skip
        for path, m in results["memory"].items():
            lines.append(
                f"| {m['connections']} | {path} | {m['rss_before_mib']:.1f} "
                f"| {m['rss_after_mib']:.1f} | {m['bytes_per_connection']:.0f} |"
            )
    return "\n".join(lines) + "\n"


def chart(results: dict[str, Any], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed (pip install -e '.[bench]'); no chart written")
        return
    medians = results["medians"]
    fig, axes = plt.subplots(1, len(medians), figsize=(4 * len(medians), 4), squeeze=False)
    for ax, (scenario, paths) in zip(axes[0], medians.items(), strict=True):
        metric = "gbps" if scenario == "bulk" else "rps"
        names = list(paths)
        values = [paths[n].get(metric, 0.0) for n in names]
        bars = ax.bar(names, values, color=["#888888", "#c0392b", "#2e86c1"][: len(names)])
        ax.bar_label(bars, fmt="%.3g")
        ax.set_title(_TITLES[scenario], fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _generator(settings: dict[str, Any]) -> str:
    if settings.get("http_load_generator", "wrk") == "wrk":
        return "wrk -t1"
    return "Python load generator (wrk missing: rates are the generator's limit)"


def _load_line(settings: dict[str, Any]) -> list[str]:
    start, end = settings.get("loadavg_start"), settings.get("loadavg_end")
    if not start or not end:
        return []
    return [
        f"Machine load average (1/5/15 min) at start {start[0]:.2f}/{start[1]:.2f}/{start[2]:.2f}, "
        f"at end {end[0]:.2f}/{end[1]:.2f}/{end[2]:.2f}: rates on a shared machine move with it, "
        "CPU cost per request much less."
    ]


def _l7_line(settings: dict[str, Any], medians: dict[str, Any]) -> list[str]:
    l7 = settings.get("l7")
    if not l7 or "l7" not in medians:
        return []
    headers = ", ".join(f"{k}: {v}" for k, v in l7["headers"].items())
    return [
        f"L7 route table: {l7['virtual_hosts']} virtual hosts of {l7['routes_per_host']} routes "
        "(Exact, PathPrefix and regex paths, header, query and method matches, a redirect, a "
        f"mirror, rewrites); requests `GET {l7['target']}` to `{l7['host']}` with {headers} "
        f"take route {l7['route_position']} of {l7['routes_per_host']} (a header match, request "
        "and response header edits, a prefix rewrite, backends weighted "
        f"{'/'.join(str(w) for w in l7['weights'].values())} on two echo servers); direct goes "
        "to one echo server."
    ]


def _l7_cost_lines(
    cost: dict[str, dict[str, float]], medians: dict[str, dict[str, dict[str, float]]]
) -> list[str]:
    """Each proxy on the L7 route table next to the plain HTTP listener's single route."""
    if not cost:
        return []
    rows = []
    for path, c in cost.items():
        plain, routed = medians["http"][path], medians["l7"][path]
        rows.append(
            f"| {path} | {_f(plain['rps'], 0)} | {_f(routed['rps'], 0)} "
            f"| {_f(c['rps_l7_to_http'], 2)} | {_f(plain.get('p50_ms'), 2)} "
            f"| {_f(routed.get('p50_ms'), 2)} | {_f(plain.get('p99_ms'), 2)} "
            f"| {_f(routed.get('p99_ms'), 2)} | {_f(c['cpu_us_per_request_http'], 1)} "
            f"| {_f(c['cpu_us_per_request_l7'], 1)} | {_f(c['cpu_us_per_request_added'], 1)} |"
        )
    return [
        "",
        "| L7 vs plain HTTP | http req/s | l7 req/s | l7/http | http p50 ms | l7 p50 ms "
        "| http p99 ms | l7 p99 ms | http CPU µs/req | l7 CPU µs/req | added µs/req |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        *rows,
    ]


def _cost_lines(medians: dict[str, dict[str, dict[str, float]]]) -> list[str]:
    """Python/Envoy CPU cost per unit of work (below 1.0: Python is cheaper)."""
    rows = []
    for scenario, paths in medians.items():
        key = "cpu_seconds_per_gb" if scenario == "bulk" else "cpu_us_per_request"
        unit = "CPU s/GB" if scenario == "bulk" else "CPU µs/req"
        env = paths.get("envoy", {}).get(key)
        py = paths.get("python", {}).get(key)
        if env and py:
            rows.append(
                f"| {_TITLES[scenario]} | {unit} | {_f(env, 2)} | {_f(py, 2)} | {_f(py / env, 2)} |"
            )
    if not rows:
        return []
    return [
        "",
        "| scenario | cost | envoy | python | Python/Envoy |",
        "|---|---|---:|---:|---:|",
        *rows,
    ]


def _f(value: float | None, digits: int) -> str:
    if value is None or math.isnan(value):
        return "-"
    return f"{value:,.{digits}f}"


def _pct(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "-"
    return f"{100 * value:.0f}%"
