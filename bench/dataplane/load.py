"""Load generators: wrk for HTTP requests (keep-alive or a new connection per request) and iperf3
(or a Python streamer when iperf3 is missing) for bulk TCP throughput."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import threading
import time
from dataclasses import dataclass

from bench.dataplane import processes

_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0}


@dataclass
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int


def wrk(url: str, *, seconds: float, connections: int, cpu: int | None, close: bool) -> WrkResult:
    if shutil.which("wrk") is None:
        raise RuntimeError("wrk is not installed (apt-get install -y wrk)")
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency", url]
    if close:
        cmd[1:1] = ["-H", "Connection: close"]
    out = subprocess.run(
        processes.pinned(cmd, cpu), capture_output=True, text=True, check=True, timeout=seconds + 60
    ).stdout
    return parse_wrk(out)


def parse_wrk(out: str) -> WrkResult:
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    errors = 0
    for m in re.finditer(r"(connect|read|write|timeout) (\d+)", out):
        errors += int(m.group(2))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        errors += int(non2xx.group(1))

    def pct(p: str) -> float:
        m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", out, re.MULTILINE)
        return float(m.group(1)) * _UNITS[m.group(2)] * 1000 if m else float("nan")

    return WrkResult(rps=rps, p50_ms=pct("50"), p99_ms=pct("99"), requests=total, errors=errors)


def bulk(port: int, *, seconds: float, cpu: int | None) -> float:
    """Gbit/s through 127.0.0.1:`port` to an iperf3 server (one stream)."""
    if shutil.which("iperf3"):
        cmd = ["iperf3", "-c", "127.0.0.1", "-p", str(port), "-t", f"{seconds:g}", "-J"]
        out = subprocess.run(
            processes.pinned(cmd, cpu), capture_output=True, text=True, timeout=seconds + 60,
            check=True,
        ).stdout  # fmt: skip
        return float(json.loads(out)["end"]["sum_received"]["bits_per_second"]) / 1e9
    return _stream(port, seconds)


def _stream(port: int, seconds: float) -> float:
    """Fallback without iperf3: send zeros for `seconds` to a sink that discards them."""
    block = bytes(1 << 20)
    sent = 0
    with socket.create_connection(("127.0.0.1", port)) as s:
        start = time.monotonic()
        while time.monotonic() - start < seconds:
            s.sendall(block)
            sent += len(block)
        s.shutdown(socket.SHUT_WR)
        elapsed = time.monotonic() - start
    return sent * 8 / elapsed / 1e9


def sink_server(port: int) -> threading.Thread:
    """Python sink for `_stream` (used only without iperf3)."""

    def run() -> None:
        with socket.create_server(("127.0.0.1", port)) as srv:
            while True:
                conn, _ = srv.accept()
                with conn:
                    while conn.recv(1 << 20):
                        pass

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t
