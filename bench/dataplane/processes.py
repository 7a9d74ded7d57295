"""The processes a data-plane benchmark runs: nginx (or a uvloop fallback) as the backend, an
iperf3 server for bulk transfers, Envoy with the product's bootstrap programmed over ADS by
kubelb's xDS server (`bench.dataplane.xds_server`), and the Python data plane. Each is pinned
to a CPU with taskset when there is more than one core.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import resource
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from bench.dataplane import https, l7, xds_server
from kubelb.envoy import binary, bootstrap, deployer
from kubelb.ir import codec, proxy, tls
from kubelb.util import ports

NGINX_CONF = """\
worker_processes 1;
worker_rlimit_nofile 65536;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 30000; multi_accept on; }}
http {{
  access_log off;
  keepalive_requests 10000000;
  keepalive_timeout 600s;
  client_header_timeout 600s;
  client_body_temp_path {dir}; proxy_temp_path {dir}; fastcgi_temp_path {dir};
  uwsgi_temp_path {dir}; scgi_temp_path {dir};
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    location / {{ default_type text/plain; return 200 "hello from nginx\\n"; }}
  }}
{echo_servers}}}
"""
ECHO_SERVER = """\
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    location / {{
      default_type text/plain;
      add_header {backend_only} {name} always;
      return 200 "{body}\\n";
    }}
  }}
"""


def free_port() -> int:
    return ports.free_port()


def cpus() -> list[int]:
    return sorted(os.sched_getaffinity(0))


def pinned(cmd: list[str], cpu: int | None) -> list[str]:
    if cpu is None or shutil.which("taskset") is None or len(cpus()) < 2:
        return cmd
    return ["taskset", "-c", str(cpu), *cmd]


def _raise_nofile() -> None:
    # Root may raise the hard limit; 10,000 proxied connections need about 20,000 descriptors.
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (65536, 65536))


def wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def wait_http(port: int, timeout: float = 20.0) -> None:
    """Until GET / through 127.0.0.1:`port` answers 200: a proxy's HTTP listener can accept
    connections before its route table has arrived."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as r:
                if r.status == 200:
                    return
                last = f"status {r.status}"
        except (OSError, http.client.HTTPException) as e:
            last = str(e)
        time.sleep(0.05)
    raise RuntimeError(f"no 200 through 127.0.0.1:{port} after {timeout}s: {last}")


@contextlib.contextmanager
def process(cmd: list[str], *, ready_port: int, log: Path, cpu: int | None) -> Iterator[int]:
    """Start `cmd`, wait for `ready_port`, yield its pid, then stop it."""
    with log.open("wb") as out:
        p = subprocess.Popen(
            pinned(cmd, cpu), stdout=out, stderr=subprocess.STDOUT, preexec_fn=_raise_nofile
        )
        try:
            wait_port(ready_port)
            yield p.pid
        finally:
            p.terminate()
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def nginx_cmd(
    workdir: Path, port: int, echo: dict[str, int] | None = None
) -> tuple[list[str], str]:
    """The backend on `port`, and an echo backend (`l7.echo_body`) per name in `echo` on its
    port, all in one single-worker process."""
    echo = echo or {}
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if Path(nginx).exists():
        servers = "".join(
            ECHO_SERVER.format(
                port=echo_port, name=name, backend_only=l7.BACKEND_ONLY_HEADER,
                body=l7.echo_body(
                    name, "$request_uri", lambda h: "$http_" + h.replace("-", "_")
                ).rstrip("\n"),
            )
            for name, echo_port in echo.items()
        )  # fmt: skip
        conf = workdir / "nginx.conf"
        conf.write_text(NGINX_CONF.format(dir=workdir, port=port, echo_servers=servers))
        return [nginx, "-p", str(workdir), "-c", str(conf)], "nginx"
    echo_args = [f"{name}:{echo_port}" for name, echo_port in echo.items()]
    return (
        [sys.executable, "-m", "bench.dataplane.backend", str(port), *echo_args],
        "uvloop backend",
    )


def iperf3_cmd(port: int) -> list[str] | None:
    iperf3 = shutil.which("iperf3")
    return [iperf3, "-s", "-p", str(port)] if iperf3 else None


def proxy_config(
    ports: dict[str, int], backend: int, sink: int, echo: dict[str, int],
    secrets: tuple[tls.TLSSecret, ...] = (),
) -> proxy.ProxyConfig:  # fmt: skip
    """The IR both proxies serve: HTTP, TCP (to the HTTP backend) and bulk TCP listeners, the
    L7 scenario's HTTP listener (`bench.dataplane.l7`) to the echo backends `echo`, and with
    `secrets` the HTTPS listener (`bench.dataplane.https`) to the HTTP backend."""

    def cluster(name: str, protocol: proxy.Protocol, port: int) -> proxy.Cluster:
        return proxy.Cluster(
            name=name, protocol=protocol,
            endpoints=(proxy.Endpoint(address="127.0.0.1", port=port),),
        )  # fmt: skip

    return proxy.ProxyConfig(
        node_id="bench",
        listeners=(
            proxy.Listener(
                name="http", address="127.0.0.1", port=ports["http"],
                protocol=proxy.Protocol.HTTP,
                virtual_hosts=proxy.group_by_hostname(
                    [((), proxy.HTTPRoute(
                        name="all", backends=(proxy.WeightedCluster(cluster="web-http"),)
                    ))]
                ),
            ),
            proxy.Listener(
                name="tcp", address="127.0.0.1", port=ports["tcp"],
                protocol=proxy.Protocol.TCP, clusters=("web-tcp",),
            ),
            proxy.Listener(
                name="bulk", address="127.0.0.1", port=ports["bulk"],
                protocol=proxy.Protocol.TCP, clusters=("sink",),
            ),
            l7.listener(ports["l7"]),
            *((https.listener(ports["https"], "web-http"),) if secrets else ()),
        ),
        clusters=(
            cluster("web-http", proxy.Protocol.HTTP, backend),
            cluster("web-tcp", proxy.Protocol.TCP, backend),
            cluster("sink", proxy.Protocol.TCP, sink),
            *l7.clusters(echo["a"], echo["b"]),
        ),
        secrets=secrets,
    )  # fmt: skip


def xds_server_cmd(workdir: Path, config: proxy.ProxyConfig, port: int) -> list[str]:
    """kubelb's xDS server for `config` on `port` (see `bench.dataplane.xds_server`)."""
    path = workdir / "envoy-ir.yaml"
    path.write_text(yaml.safe_dump(codec.to_dict(config)))
    return [sys.executable, "-m", "bench.dataplane.xds_server", str(path), str(port)]


def envoy_bootstrap(xds_port: int, admin_port: int) -> dict[str, Any]:
    """The product's bootstrap (as standalone mode's Envoy gets it): everything else, listeners
    and their route tables included, comes from the xDS server on `xds_port`."""
    spec = deployer.EnvoySpec(
        xds_port=xds_port, admin_port=admin_port, readiness_port=None, health_port=None,
        log_level="error", concurrency=1,
    )  # fmt: skip
    return bootstrap.render(xds_server.NODE_ID, spec)


def envoy_cmd(workdir: Path, xds_port: int) -> list[str]:
    path = workdir / "envoy.json"
    path.write_text(bootstrap.to_json(envoy_bootstrap(xds_port, free_port())))
    return [
        str(binary.find_envoy()), "-c", str(path), "--concurrency", "1",
        "--disable-hot-restart", "--log-level", "error", "--base-id", str(os.getpid() % 10000),
    ]  # fmt: skip


def python_cmd(workdir: Path, config: proxy.ProxyConfig, workers: int) -> list[str]:
    path = workdir / "ir.yaml"
    path.write_text(yaml.safe_dump(codec.to_dict(config)))
    return [
        sys.executable, "-m", "kubelb.dataplane", "--config", str(path),
        "--workers", str(workers), "--log-level", "WARNING", "--drain-seconds", "0",
    ]  # fmt: skip


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0
