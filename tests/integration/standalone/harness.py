"""Run `kubelb --mode=standalone` as a real subprocess and talk to it like an operator would."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import signal
import socket
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubelb.dataplane import control
from kubelb.envoy import supervisor
from kubelb.util import ports

DEADLINE = 60.0


def free_port(host: str = "127.0.0.1", kind: int = socket.SOCK_STREAM) -> int:
    return ports.free_port(host, kinds=(kind,))


def free_tcp_udp_port(host: str = "127.0.0.1") -> int:
    """A port free for both TCP and UDP, so a LoadBalancer can use either."""
    return ports.free_port(host, kinds=(socket.SOCK_STREAM, socket.SOCK_DGRAM))


def lb_yaml(
    name: str,
    port: int,
    backends: list[tuple[str, int]],
    *,
    protocol: str = "TCP",
    namespace: str = "it",
    extra_spec: str = "",
) -> str:
    """A LoadBalancer forwarding `port` to `backends` (one endpoint entry per backend port).

    `extra_spec` lines are inserted under `spec:` as given (indent them by two spaces).
    """
    by_port: dict[int, list[str]] = {}
    for host, backend_port in backends:
        by_port.setdefault(backend_port, []).append(host)
    lines = [
        "apiVersion: kubelb.k8c.io/v1alpha1",
        "kind: LoadBalancer",
        f"metadata: {{name: {name}, namespace: {namespace}}}",
        "spec:",
        f"  ports: [{{name: p, port: {port}, protocol: {protocol}}}]",
        *[line for line in extra_spec.splitlines() if line.strip()],
        "  endpoints:",
    ]
    for backend_port, hosts in sorted(by_port.items()):
        addresses = ", ".join(f"{{ip: {h}}}" for h in hosts)
        lines.append(f"    - addresses: [{addresses}]")
        lines.append(f"      ports: [{{name: p, port: {backend_port}, protocol: {protocol}}}]")
    return "\n".join(lines) + "\n"


@dataclass
class Standalone:
    dataplane: str
    config_dir: Path
    state_dir: Path
    log_path: Path
    address_pool: str = "127.0.0.1"
    admin_port: int = field(default_factory=free_port)
    xds_port: int = field(default_factory=free_port)
    process: asyncio.subprocess.Process | None = None
    extra_args: tuple[str, ...] = ()
    # RLIMIT_NOFILE (soft and hard) for kubelb, and so for its Envoy; None: inherited.
    fd_limit: int | None = None

    async def start(self) -> None:
        await self.spawn()
        await self.wait_for(lambda doc: doc["dataplane"].get("ready"), "the data plane to be ready")

    async def spawn(self) -> None:
        """Start the process without waiting for it to serve."""
        args = [
            sys.executable,
            "-m",
            "kubelb",
            "--mode=standalone",
            "--config",
            str(self.config_dir),
            "--dataplane",
            self.dataplane,
            "--state-dir",
            str(self.state_dir),
            "--admin-address",
            f"127.0.0.1:{self.admin_port}",
            "--listen-address",
            f"127.0.0.1:{self.xds_port}",
            "--address-pool",
            self.address_pool,
            "--log-level",
            "debug",
            "--drain-seconds",
            "1",
            *self.extra_args,
        ]
        log = self.log_path.open("ab")
        limit = self.fd_limit
        self.process = await asyncio.create_subprocess_exec(
            *args, stdout=log, stderr=log, env={**os.environ, "PYTHONUNBUFFERED": "1"},
            preexec_fn=None if limit is None else lambda: resource.setrlimit(
                resource.RLIMIT_NOFILE, (limit, limit)),
        )  # fmt: skip
        log.close()

    async def stop(self) -> int:
        if self.process is None:
            return 0
        if self.process.returncode is not None:
            return self.process.returncode
        self.process.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(30):
                return await self.process.wait()
        except TimeoutError:
            self.process.kill()
            code = await self.process.wait()
            # Its data plane (Envoy, or the Python one) outlives a killed kubelb.
            supervisor.reap(self.state_dir)
            control.reap(self.state_dir)
            return code

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    async def status(self) -> dict[str, Any]:
        url = f"http://127.0.0.1:{self.admin_port}/api/loadbalancers"
        body = await asyncio.to_thread(_get, url)
        return dict(json.loads(body))

    def lb(self, doc: dict[str, Any], name: str) -> dict[str, Any] | None:
        return next((lb for lb in doc["loadBalancers"] if lb["name"] == name), None)

    async def wait_for(self, check: Callable[[dict[str, Any]], Any], what: str) -> dict[str, Any]:
        doc: dict[str, Any] = {}
        async with asyncio.timeout(DEADLINE):
            while True:
                if self.process is not None and self.process.returncode is not None:
                    raise AssertionError(f"kubelb exited while waiting for {what}:\n{self.logs()}")
                with contextlib.suppress(OSError, ValueError):
                    doc = await self.status()
                    if check(doc):
                        return doc
                await asyncio.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}: {doc}")


def _get(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return str(response.read().decode())
    except urllib.error.HTTPError as e:
        return str(e.read().decode())
