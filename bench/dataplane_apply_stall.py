"""How long does a big apply stall traffic already served by the built-in data plane?

One TCP listener serves a steady request loop (new connection per request) to an echo backend,
both in a child process so they never compete with the data plane for the GIL; then a config
adding N more listeners (on 127.0.1.x and up) is applied. Prints the longest gap between
successful requests while the apply runs, and the time until the apply returned and every new
listener answers a connect. Results: `dataplane_apply_stall.json` in bench/results/ (or --out).

    .venv/bin/python -m bench dataplane_apply_stall [--listeners 10000] [--workers 1] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import logging
import multiprocessing
import os
import resource
import socket
import socketserver
import threading
import time
from multiprocessing.connection import Connection
from typing import Any

import uvloop

from bench import results_file
from kubelb.dataplane import runtime
from kubelb.ir import proxy
from kubelb.util import ports


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(65536):
            self.request.sendall(data)


def _address(i: int) -> str:
    return f"127.0.{1 + i // 250}.{1 + i % 250}"


def _config(port: int, backend: int, extra: int, extra_port: int) -> proxy.ProxyConfig:
    listeners = [
        proxy.Listener(name="steady", address="127.0.0.1", port=port,
                       protocol=proxy.Protocol.TCP, clusters=("steady-c",)),
    ]  # fmt: skip
    clusters = [
        proxy.Cluster(name="steady-c", protocol=proxy.Protocol.TCP,
                      endpoints=(proxy.Endpoint(address="127.0.0.1", port=backend),)),
    ]  # fmt: skip
    for i in range(extra):
        listeners.append(
            proxy.Listener(name=f"lb-{i}", address=_address(i), port=extra_port,
                           protocol=proxy.Protocol.TCP, clusters=(f"lb-{i}-c",))
        )  # fmt: skip
        clusters.append(
            proxy.Cluster(name=f"lb-{i}-c", protocol=proxy.Protocol.TCP,
                          endpoints=(proxy.Endpoint(address="127.0.0.1", port=backend),))
        )  # fmt: skip
    return proxy.ProxyConfig(node_id="bench", listeners=tuple(listeners), clusters=tuple(clusters))


def _free_port() -> int:
    return ports.free_port()


class _Loop(threading.Thread):
    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.stamps: list[float] = []
        self.failures = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=10) as s:
                    s.sendall(b"ping")
                    if s.recv(16) == b"ping":
                        self.stamps.append(time.monotonic())
                        continue
            except OSError:
                pass
            self.failures += 1


def _longest_gap(stamps: list[float], start: float, end: float) -> float:
    inside = [start, *(t for t in stamps if start <= t <= end), end]
    return max(b - a for a, b in itertools.pairwise(inside))


def _client(port: int, conn: Connection) -> None:
    """Child process: the echo backend and the steady loop; sends back the request time stamps."""
    backend = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
    backend.daemon_threads = True
    threading.Thread(target=backend.serve_forever, daemon=True).start()
    conn.send(backend.server_address[1])
    conn.recv()  # the data plane serves `port`
    steady = _Loop(port)
    steady.start()
    conn.recv()  # stop
    steady.stop.set()
    steady.join()
    conn.send((steady.stamps, steady.failures))


async def _main(extra: int, workers: int) -> dict[str, Any]:
    port, extra_port = _free_port(), _free_port()
    conn, child_end = multiprocessing.Pipe()
    child = multiprocessing.Process(target=_client, args=(port, child_end), daemon=True)
    child.start()
    backend = conn.recv()
    dp = runtime.DataPlane(workers=workers, drain_seconds=0.1)
    await dp.apply(_config(port, backend, 0, extra_port))
    conn.send("go")
    await asyncio.sleep(1.0)
    start = time.monotonic()
    await dp.apply(_config(port, backend, extra, extra_port))
    applied = time.monotonic()
    for i in range(extra):
        while True:
            try:
                socket.create_connection((_address(i), extra_port), timeout=5).close()
                break
            except OSError:
                await asyncio.sleep(0.05)
    serving = time.monotonic()
    await asyncio.sleep(0.5)
    conn.send("stop")
    stamps, failures = await asyncio.to_thread(conn.recv)
    child.join()
    await dp.close(0.1)
    return {
        "listeners_added": extra,
        "workers": workers,
        "apply_returned_after_s": round(applied - start, 3),
        "all_serving_after_s": round(serving - start, 3),
        "longest_gap_s": round(_longest_gap(stamps, start, applied), 3),
        "steady_requests_during_apply": sum(start <= t <= applied for t in stamps),
        "failed_requests": failures,
        "load_average": os.getloadavg()[0],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench dataplane_apply_stall")
    parser.add_argument("--listeners", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=1)
    results_file.add_arguments(parser, quick="100 listeners")
    args = parser.parse_args(argv)
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    logging.basicConfig(level=logging.WARNING)
    result = uvloop.run(_main(100 if args.quick else args.listeners, args.workers))
    print(f"listeners added: {result['listeners_added']}, workers: {result['workers']}")
    print(f"apply() returned after {result['apply_returned_after_s']:.2f} s; "
          f"all serving after {result['all_serving_after_s']:.2f} s")  # fmt: skip
    print(f"longest gap between steady requests during the apply: "
          f"{result['longest_gap_s']:.3f} s")  # fmt: skip
    print(f"steady requests during the apply: {result['steady_requests_during_apply']}, "
          f"failures: {result['failed_requests']}")  # fmt: skip
    text = json.dumps(result, indent=1) + "\n"
    results_file.save(results_file.folder(args), "dataplane_apply_stall.json", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
