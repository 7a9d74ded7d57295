"""`make demo`: kubelb standalone mode with configs/demo/, traffic through a real Envoy.

Starts small HTTP backends on 127.0.0.11-13 (standing in for a tenant's node ports: web on 18080,
api on 18081, beta on 18082), runs standalone mode on the demo LoadBalancers and Routes, waits
until the data plane serves them, then sends requests and shows how they spread over the
backends (round robin) or stick to one (source-IP persistence), and which backend the HTTPRoute
sends each host, path and header to, and an HTTPS request to each host on the Gateway's HTTPS
listener: the demo copies the config folder and writes the Secret `shop-tls` into the copy, a
certificate for the hosts from a CA it makes for the run, which its client trusts. Keeps running
until Ctrl-C, or for --duration seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import logging
import shutil
import signal
import ssl
import sys
import tempfile
from pathlib import Path

import aiohttp
from aiohttp import web

from kubelb.app import dataplanes, errors, logs, standalone
from kubelb.infra import routeentry
from kubelb.manager import l7entry
from kubelb.pki import ca

logger = logging.getLogger(__name__)

DEMO_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "demo"
BACKENDS = ("127.0.0.11", "127.0.0.12", "127.0.0.13")
BACKEND_PORT = 18080
# The HTTPRoute's other Services' node ports: name -> port.
ROUTE_BACKENDS = {"api": 18081, "beta": 18082}
REQUESTS = 12
# (host, path, headers) the demo sends through the HTTPRoute.
ROUTE_REQUESTS: tuple[tuple[str, str, dict[str, str]], ...] = (
    ("shop.demo.local", "/", {}),
    ("shop.demo.local", "/api/items", {}),
    ("shop.demo.local", "/", {"x-version": "beta"}),
    ("www.demo.local", "/api/items", {}),
    ("other.demo.local", "/", {}),
)
# The Gateway's HTTPS listener (configs/demo/routes.yaml), its Secret and the hosts asked.
HTTPS_PORT = 8443
TLS_SECRET = "shop-tls"
HTTPS_HOSTS = ("shop.demo.local", "www.demo.local")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kubelb.demo", description=__doc__)
    parser.add_argument("--config", type=Path, default=DEMO_CONFIG)
    parser.add_argument("--dataplane", choices=["envoy", "python"], default="envoy")
    parser.add_argument("--duration", type=float, help="stop after this many seconds")
    parser.add_argument("--admin-address", default="127.0.0.1:8081")
    parser.add_argument("--listen-address", default="127.0.0.1:8001")
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(argv)
    logs.setup(args.log_level)
    try:
        return logs.run_loop(_demo(args))
    except (errors.DataPlaneError, OSError) as e:
        print(f"demo failed: {e}", file=sys.stderr)
        return 1


async def _demo(args: argparse.Namespace) -> int:
    backends = await _start_backends()
    with tempfile.TemporaryDirectory(prefix="kubelb-demo-") as state_dir:
        config, trust = _config_with_certificate(args.config, Path(state_dir))
        settings = standalone.Settings(
            config=config,
            dataplane=args.dataplane,
            state_dir=Path(state_dir),
            admin_address=args.admin_address,
            listen_address=args.listen_address,
            address_pool=None,
            envoy_binary=None,
            workers=1,
            drain_seconds=1.0,
            xds_delta=False,
            duration=None,
            log_level=args.log_level,
        )
        driver = dataplanes.create(
            args.dataplane,
            listen_address=args.listen_address,
            envoy_binary=None,
            workers=1,
            state_dir=Path(state_dir),
            drain_seconds=1.0,
        )
        app = standalone.Standalone(settings, driver)
        print(f"kubelb demo: standalone mode with {args.config} on the {args.dataplane} data plane")
        running = asyncio.create_task(app.run(), name="standalone")
        try:
            await _show(app, running, trust)
            print("\nrunning; press Ctrl-C to stop" if args.duration is None else "")
            await _wait_for_stop(running, args.duration)
        finally:
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running
            for runner in backends:
                await runner.cleanup()
    print("kubelb demo: stopped")
    return 0


async def _start_backends() -> list[web.AppRunner]:
    runners = []
    for prefix, port in (("backend", BACKEND_PORT), *ROUTE_BACKENDS.items()):
        for number, address in enumerate(BACKENDS, start=1):
            name = f"{prefix}-{number}"

            async def hello(request: web.Request, name: str = name) -> web.Response:
                return web.Response(text=f"hello from {name} (client {request.remote})\n")

            app = web.Application()
            app.router.add_get("/{tail:.*}", hello)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            await web.TCPSite(runner, address, port).start()
            runners.append(runner)
    ports = ", ".join(str(p) for p in (BACKEND_PORT, *ROUTE_BACKENDS.values()))
    print(f"backends: {', '.join(BACKENDS)} on ports {ports}")
    return runners


def _config_with_certificate(source: Path, state_dir: Path) -> tuple[Path, str]:
    """A copy of the config folder with the Secret `shop-tls` written into it, and the PEM of
    the CA that issued it (the demo's client trusts it)."""
    config = state_dir / "config"
    shutil.copytree(source, config)
    authority = ca.Authority.create("kubelb demo CA")
    leaf = authority.issue_server(HTTPS_HOSTS)
    chain = (leaf.cert + authority.cert_pem).decode()
    indent = "\n      "
    (config / f"{TLS_SECRET}.yaml").write_text(
        "apiVersion: v1\nkind: Secret\n"
        f"metadata: {{name: {TLS_SECRET}, namespace: demo, labels: "
        f"{{kubelb.k8c.io/origin-name: {TLS_SECRET}, kubelb.k8c.io/origin-ns: default}}}}\n"
        "type: kubernetes.io/tls\nstringData:\n"
        f"  tls.crt: |{indent}{indent.join(chain.strip().splitlines())}\n"
        f"  tls.key: |{indent}{indent.join(leaf.key.decode().strip().splitlines())}\n"
    )
    return config, authority.cert_pem.decode()


async def _show(app: standalone.Standalone, running: asyncio.Task[None], trust: str) -> None:
    print("waiting for the data plane to serve the LoadBalancers ...")
    urls = await _wait_until_serving(app, running)
    async with aiohttp.ClientSession() as session:
        for name, url in urls:
            counts: collections.Counter[str] = collections.Counter()
            for _ in range(REQUESTS):
                # A fresh connection per request, so the load balancer chooses every time.
                async with session.get(url, headers={"Connection": "close"}) as response:
                    counts[(await response.text()).split()[2]] += 1
            spread = ", ".join(f"{backend}: {n}" for backend, n in sorted(counts.items()))
            print(f"  {name:<16} {url:<26} {REQUESTS} requests -> {spread}")
    await _show_routes(app, running, trust)
    if app.admin is not None:
        print(f"status: http://{app.admin.host}:{app.admin.port}/api/loadbalancers")


async def _show_routes(app: standalone.Standalone, running: asyncio.Task[None], trust: str) -> None:
    """Each host, path and header through the HTTPRoute, and the backend that answered; then
    each host over HTTPS."""
    entries = await _wait_for_routes(app, running)
    secure = [(a, p) for a, p in entries if p == HTTPS_PORT]
    entries = [(a, p) for a, p in entries if p != HTTPS_PORT]
    async with aiohttp.ClientSession() as session:
        for address, port in entries:
            print(f"HTTPRoute requests to http://{address}:{port}:")
            for host, path, headers in ROUTE_REQUESTS:
                shown = " ".join(f"{k}: {v}" for k, v in headers.items())
                url = f"http://{address}:{port}{path}"
                async with session.get(url, headers={"Host": host, "Connection": "close",
                                                      **headers}) as response:  # fmt: skip
                    text = await response.text()
                    answer = text.split()[2] if response.status == 200 else str(response.status)
                print(f"  route {host:<18} {path:<11} {shown:<16} -> {answer}")
    for address, port in secure:
        print(f"HTTPS requests to {address}:{port} (the Gateway's HTTPS listener):")
        for host in HTTPS_HOSTS:
            print(f"  https://{host}:{port}/ {await _https_get(address, port, host, trust)}")


async def _https_get(address: str, port: int, host: str, trust: str) -> str:
    """One GET over TLS with SNI `host`, the chain checked against the demo CA: what answered,
    and the certificate and TLS version it was served with."""
    context = ssl.create_default_context(cadata=trust)
    try:
        async with asyncio.timeout(10):
            reader, writer = await asyncio.open_connection(
                address, port, ssl=context, server_hostname=host
            )
            tls = writer.get_extra_info("ssl_object")
            writer.write(f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
            answer = (await reader.read()).decode("latin-1")
            writer.close()
    except (OSError, ssl.SSLError, TimeoutError) as e:
        return f"-> failed: {e}"
    status = answer.split(" ", 2)[1] if answer.startswith("HTTP/") else "?"
    body = answer.partition("\r\n\r\n")[2].split()
    served = body[2] if status == "200" and len(body) > 2 else status
    names = [v for k, v in tls.getpeercert().get("subjectAltName", ()) if k == "DNS"]
    return f"-> {served} ({tls.version()}, certificate for {', '.join(names)}, verified)"


async def _wait_for_routes(
    app: standalone.Standalone, running: asyncio.Task[None]
) -> list[tuple[str, int]]:
    """The (address, port) of every Gateway listener once its tenant's Routes are served."""
    async with aiohttp.ClientSession() as session:
        for _ in range(600):
            if running.done():
                running.result()
                raise errors.DataPlaneError("standalone mode stopped unexpectedly")
            documents = app.status_document()["routes"]
            if not documents:
                return []
            entries = _gateway_entries(app, documents)
            if all(r["applied"] for r in documents) and entries:
                host, path, headers = ROUTE_REQUESTS[0]
                address, port = entries[0]
                try:
                    async with session.get(
                        f"http://{address}:{port}{path}",
                        headers={"Host": host, **headers},
                        timeout=aiohttp.ClientTimeout(total=2),
                    ) as response:
                        if response.status == 200:  # fmt: skip
                            for r in documents:
                                print(f"  Route {r['namespace']}/{r['name']}: {r['kind']} "
                                      f"{r['object']} served")  # fmt: skip
                            return entries
                except (aiohttp.ClientError, TimeoutError):
                    pass
            await asyncio.sleep(0.1)
    for r in app.status_document()["routes"]:
        if not r["applied"]:
            message = r["conditions"][0]["message"] if r["conditions"] else "no status"
            print(f"  Route {r['namespace']}/{r['name']} ({r['kind']}) not served: {message}")
    raise errors.DataPlaneError("the Routes did not start serving within 60 s")


def _gateway_entries(
    app: standalone.Standalone, documents: list[dict[str, object]]
) -> list[tuple[str, int]]:
    """Each tenant's L7 entry: its pool address, on the Gateway's listener ports (not 80)."""
    found: list[tuple[str, int]] = []
    for namespace in sorted({str(r["namespace"]) for r in documents}):
        service = app.core.inputs.service(namespace, l7entry.entry_service_name(namespace))
        entry = routeentry.pool_entry(service)
        if entry is None or service is None:
            continue
        ports = (service.get("spec") or {}).get("ports") or ()
        found.extend((entry.external, int(p["port"])) for p in ports
                     if isinstance(p, dict) and p.get("port") != l7entry.INGRESS_PORT)  # fmt: skip
    return found


async def _wait_until_serving(
    app: standalone.Standalone, running: asyncio.Task[None]
) -> list[tuple[str, str]]:
    async with aiohttp.ClientSession() as session:
        for _ in range(600):
            if running.done():
                running.result()
                raise errors.DataPlaneError("standalone mode stopped unexpectedly")
            urls = _urls(app)
            if urls and await _all_answer(session, urls):
                for lb in app.status_document()["loadBalancers"]:
                    state = "ready" if lb["ready"] else lb["conditions"][0]["message"]
                    print(f"  LoadBalancer {lb['namespace']}/{lb['name']}: {state}")
                return urls
            await asyncio.sleep(0.1)
    raise errors.DataPlaneError("the LoadBalancers did not start serving within 60 s")


def _urls(app: standalone.Standalone) -> list[tuple[str, str]]:
    if app.loaded is None or not app.driver.ready():
        return []
    return [
        (f"{lb['namespace']}/{lb['name']}", f"http://{lb['address']}:{lb['ports'][0]['port']}/")
        for lb in app.status_document()["loadBalancers"]
        if lb["ready"] and lb["address"] and lb["ports"]
    ]


async def _all_answer(session: aiohttp.ClientSession, urls: list[tuple[str, str]]) -> bool:
    for _, url in urls:
        try:
            async with session.get(url, timeout=aiohttp.ClientTimeout(total=2)) as response:
                if response.status != 200:
                    return False
        except (aiohttp.ClientError, TimeoutError):
            return False
    return True


async def _wait_for_stop(running: asyncio.Task[None], duration: float | None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    waiter = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({running, waiter}, timeout=duration, return_when="FIRST_COMPLETED")
    finally:
        waiter.cancel()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    if running.done():
        running.result()


if __name__ == "__main__":
    sys.exit(main())
