"""Load generators: wrk (or a Python client when wrk is missing) for HTTP requests (keep-alive or a
new connection per request) and iperf3 (or a Python streamer when iperf3 is missing) for bulk TCP
throughput. The Python fallbacks keep the benchmark runnable anywhere (its smoke test runs in
`make test`); their rates are bounded by the Python client, so only wrk's and iperf3's count."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import socket
import ssl
import statistics
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Sequence
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


def http_generator() -> str:
    return "wrk" if shutil.which("wrk") else "python"


def wrk(
    url: str, *, seconds: float, connections: int, cpu: int | None, close: bool,
    headers: Sequence[tuple[str, str]] = (),
) -> WrkResult:  # fmt: skip
    """GET `url` with `headers` (a `Host` among them replaces the URL's)."""
    if http_generator() != "wrk":
        return asyncio.run(
            http_load(url, seconds=seconds, connections=connections, close=close, headers=headers)
        )
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency", url]
    for name, value in (*headers, *((("Connection", "close"),) if close else ())):
        cmd[1:1] = ["-H", f"{name}: {value}"]
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


async def http_load(
    url: str, *, seconds: float, connections: int, close: bool,
    headers: Sequence[tuple[str, str]] = (),
) -> WrkResult:  # fmt: skip
    """wrk's measurement in Python: `connections` clients sending GET requests for `seconds`,
    each on one keep-alive connection or (`close`) on a new connection per request."""
    target = urllib.parse.urlsplit(url)
    host, port = target.hostname or "127.0.0.1", target.port or 80
    tls: ssl.SSLContext | None = None
    if target.scheme == "https":
        # As wrk: no verification, no session resumption (a new context per connection would
        # cost more than the handshake; the Python client keeps no sessions anyway).
        tls = ssl.create_default_context()
        tls.check_hostname = False
        tls.verify_mode = ssl.CERT_NONE
    fields = {"Host": target.netloc, **dict(headers)}
    if close:
        fields["Connection"] = "close"
    path = (target.path or "/") + (f"?{target.query}" if target.query else "")
    request = (
        f"GET {path} HTTP/1.1\r\n"
        + "".join(f"{name}: {value}\r\n" for name, value in fields.items())
        + "\r\n"
    ).encode()
    latencies: list[float] = []
    errors = 0
    deadline = time.monotonic() + seconds

    async def client() -> None:
        nonlocal errors
        stream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        while time.monotonic() < deadline:
            started = time.monotonic()
            try:
                if stream is None:
                    stream = await asyncio.open_connection(host, port, ssl=tls)
                reader, writer = stream
                writer.write(request)
                ok = await _read_response(reader)
            except (OSError, asyncio.IncompleteReadError, ValueError, ssl.SSLError):
                ok = False
            if ok:
                latencies.append(time.monotonic() - started)
            else:
                errors += 1
            if close or not ok:
                if stream is not None:
                    stream[1].close()
                stream = None
        if stream is not None:
            stream[1].close()

    begin = time.monotonic()
    await asyncio.gather(*(client() for _ in range(connections)))
    elapsed = time.monotonic() - begin
    ordered = sorted(latencies) or [float("nan")]
    return WrkResult(
        rps=len(latencies) / elapsed,
        p50_ms=statistics.median(ordered) * 1000,
        p99_ms=ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] * 1000,
        requests=len(latencies),
        errors=errors,
    )


async def _read_response(reader: asyncio.StreamReader) -> bool:
    """Read one HTTP/1.1 response with a Content-Length body; True when its status is 2xx."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    await reader.readexactly(length)
    return lines[0].split(" ")[1].startswith("2")


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
