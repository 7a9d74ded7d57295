"""A real Kubernetes control plane for local development and tests: one etcd, and per cluster a
kube-apiserver and a kube-controller-manager, all on free 127.0.0.1 ports in a temporary folder
(each API server advertises the host's address, see `clusterinfo`, but listens on loopback only).

Inputs: the binaries (`binaries`), cluster specs (name, service CIDR), CRD files, and the
Gateway API channel whose CRDs to install beside them (standard by default; None for none), and
whether to install the cert-manager.io CRDs (`kubelb.api.certmanager`; yes by default).
prometheus-operator's PodMonitor and ServiceMonitor CRDs are installed too (from the source tree).
Outputs: `Cluster` handles (`cluster`) with an admin kubeconfig, each ready when
`start()` returns: `/readyz` is ok, the CRDs are Established and the controller manager runs
(it has created the `default` ServiceAccount), and `kube-public/cluster-info` and the
`default/kubernetes` EndpointSlice are published (`clusterinfo`). `stop()` ends every process
group it started and removes the folder it created, and is safe to call after a failed or
partial start.

Clusters share the etcd under different `--etcd-prefix`es. Each has its own ServiceAccount signing
key; one CA signs the serving certificate and the admin client certificate (O=system:masters).
The controller manager runs without the node lifecycle controller (there is no kubelet: Nodes are
objects whose readiness their creator sets, as tests do), and the apiserver without the
TaintNodesByCondition admission plugin, whose taints only that controller would lift.
API priority and fairness stays on, as in real clusters: turning it off saved no measurable
start-up time.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import functools
import json
import logging
import shutil
import ssl
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import aiohttp
from kubernetes_asyncio import client

from kubelb.api import certmanager, gatewayapi
from kubelb.localcluster import (
    binaries,
    certs,
    cluster as cluster_mod,
    clusterinfo,
    crds,
    kubeconfig,
    processes,
)

logger = logging.getLogger(__name__)

SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
_PORT_ATTEMPTS = 4
_PORT_TAKEN = "address already in use"


@dataclass(frozen=True, slots=True, kw_only=True)
class ClusterSpec:
    name: str
    service_cidr: str
    # kube-controller-manager controllers to leave out, for tests that play their part themselves.
    disabled_controllers: tuple[str, ...] = ()


DEFAULT_CLUSTERS = (
    ClusterSpec(name="management", service_cidr="10.96.0.0/16"),
    ClusterSpec(name="tenant", service_cidr="10.97.0.0/16"),
)


class StartupError(RuntimeError):
    """The control plane did not come up; the message says which part and why."""


class ControlPlane:
    """Start with `await cp.start()` (or `async with ControlPlane() as cp`), then use
    `cp.clusters["management"]`; `await cp.stop()` ends everything."""

    def __init__(
        self,
        *,
        clusters: Sequence[ClusterSpec] = DEFAULT_CLUSTERS,
        binaries_dir: Path | None = None,
        crd_files: Sequence[Path] | None = None,
        gateway_api_channel: gatewayapi.Channel | None = gatewayapi.DEFAULT_CHANNEL,
        cert_manager: bool = True,
        workdir: Path | None = None,
        timeout: float = 180.0,
    ) -> None:
        self._specs = tuple(clusters)
        self._bin = binaries.require(binaries_dir)
        self._crd_files = (
            list(crd_files) if crd_files is not None else crds.crd_files(crds.DEFAULT_CRD_DIR)
        )
        if not self._crd_files:
            logger.warning("no CRD files given or found: the clusters start without kubelb CRDs")
        self._gateway_api_channel = gateway_api_channel
        self._cert_manager = cert_manager  # its CRDs: the manager writes hostname Certificates
        self._own_workdir = workdir is None
        self._workdir_arg = workdir
        self._timeout = timeout
        self.workdir: Path | None = None
        self.clusters: dict[str, cluster_mod.Cluster] = {}
        self.startup_seconds = 0.0
        self._processes: list[processes.Process] = []
        self._etcd_url = ""
        self.advertise_address: str | None = None  # in the `kubernetes` EndpointSlice

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def pids(self) -> list[int]:
        """Process ids of every process started (running or not)."""
        return [p.pid for p in self._processes]

    async def start(self) -> None:
        began = time.monotonic()
        atexit.register(self._kill_now)
        try:
            async with asyncio.timeout(self._timeout):
                await self._start()
        except BaseException as exc:
            await self.stop()
            if isinstance(exc, TimeoutError):
                raise StartupError(f"control plane not ready after {self._timeout:.0f}s") from exc
            raise
        self.startup_seconds = time.monotonic() - began
        logger.info(
            "control plane ready in %.1fs: %s",
            self.startup_seconds,
            ", ".join(f"{c.name}={c.server}" for c in self.clusters.values()),
        )

    async def stop(self) -> None:
        """Stop controller managers, then apiservers, then etcd; remove the temporary folder."""
        for stage in ("kube-controller-manager", "kube-apiserver", "etcd"):
            group = [p for p in self._processes if p.name.endswith(stage)]
            await asyncio.gather(*(p.stop() for p in group))
        atexit.unregister(self._kill_now)
        if self._own_workdir and self.workdir is not None and self.workdir.exists():
            await asyncio.to_thread(shutil.rmtree, self.workdir, True)

    async def _start(self) -> None:
        self.workdir = self._workdir_arg or Path(tempfile.mkdtemp(prefix="kubelb-controlplane-"))
        self.advertise_address = clusterinfo.host_address()
        if self.advertise_address is None:
            logger.warning("no non-loopback IPv4 address: the clusters get no `kubernetes` "
                           "EndpointSlice (cluster-info is still published)")  # fmt: skip
        pki = await asyncio.to_thread(_make_pki, self.workdir, [s.name for s in self._specs],
                                      self.advertise_address)  # fmt: skip
        self._etcd_url = await self._start_etcd()
        crd_docs = crds.load([*self._crd_files, *crds.crd_files(crds.PROMETHEUS_OPERATOR_DIR)])
        if self._gateway_api_channel is not None:
            crd_docs += gatewayapi.crds(self._gateway_api_channel)
        if self._cert_manager:
            crd_docs += certmanager.crds()
        started = await asyncio.gather(
            *(self._start_cluster(s, pki, crd_docs) for s in self._specs)
        )
        self.clusters = {c.name: c for c in started}

    async def _start_etcd(self) -> str:
        assert self.workdir is not None
        for attempt in range(_PORT_ATTEMPTS):
            client_port, peer_port = processes.free_port(), processes.free_port()
            url = f"http://127.0.0.1:{client_port}"
            peer = f"http://127.0.0.1:{peer_port}"
            argv = [
                str(self._bin / "etcd"),
                "--name=kubelb",
                f"--data-dir={self.workdir / 'etcd'}",
                f"--listen-client-urls={url}",
                f"--advertise-client-urls={url}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=kubelb={peer}",
                "--unsafe-no-fsync=true",
                "--log-level=warn",
            ]
            proc = self._spawn("etcd", argv, self.workdir / "etcd.log")
            try:
                await _wait_for(proc, functools.partial(_etcd_healthy, url), client_port)
            except processes.ProcessExitedError as exc:
                if _PORT_TAKEN in str(exc) and attempt + 1 < _PORT_ATTEMPTS:
                    continue
                raise StartupError(str(exc)) from exc
            return url
        raise AssertionError("unreachable")

    async def _start_cluster(
        self, spec: ClusterSpec, pki: _PKI, crd_docs: list[dict[str, object]]
    ) -> cluster_mod.Cluster:
        assert self.workdir is not None
        began = time.monotonic()
        directory = self.workdir / spec.name
        server, apiserver = await self._start_apiserver(spec, pki, directory)
        readyz_seconds = time.monotonic() - began
        ca = pki.ca.cert
        cluster = cluster_mod.Cluster(
            name=spec.name,
            server=server,
            kubeconfig=directory / "admin.kubeconfig",
            ca_file=ca,
            cert_file=pki.admin.cert,
            key_file=pki.admin.key,
            etcd_prefix=f"/{spec.name}",
            service_cidr=spec.service_cidr,
        )
        kubeconfig.write(
            cluster.kubeconfig,
            kubeconfig.admin_config(
                cluster=spec.name,
                server=server,
                ca_pem=ca.read_bytes(),
                cert_pem=pki.admin.cert.read_bytes(),
                key_pem=pki.admin.key.read_bytes(),
            ),
        )
        kcm = self._spawn(
            f"{spec.name}/kube-controller-manager",
            _controller_manager_argv(
                self._bin, cluster, pki.service_accounts[spec.name], spec.disabled_controllers
            ),
            directory / "kube-controller-manager.log",
        )
        address = self.advertise_address
        async with cluster.api_client() as api:
            # The CRDs register while the controller manager starts: neither waits for the other.
            await asyncio.gather(
                crds.install(api, crd_docs) if crd_docs else asyncio.sleep(0),
                _wait_for(kcm, lambda: _default_service_account(api)),
                clusterinfo.publish_cluster_info(api, server=server, ca_pem=ca.read_bytes()),
                _wait_for(apiserver, lambda: clusterinfo.kubernetes_slice_ready(api, address))
                if address
                else asyncio.sleep(0),
            )
        apiserver.check_running()
        cluster.pids = [apiserver.pid, kcm.pid]
        cluster.startup_seconds = time.monotonic() - began
        logger.info(
            "%s ready in %.1fs (kube-apiserver /readyz after %.1fs)",
            spec.name,
            cluster.startup_seconds,
            readyz_seconds,
        )
        return cluster

    async def _start_apiserver(
        self, spec: ClusterSpec, pki: _PKI, directory: Path
    ) -> tuple[str, processes.Process]:
        ssl_context = _client_ssl(pki)
        for attempt in range(_PORT_ATTEMPTS):
            port = processes.free_port()
            server = f"https://127.0.0.1:{port}"
            argv = _apiserver_argv(self._bin, spec, pki, directory, port, self._etcd_url,
                                   self.advertise_address)  # fmt: skip
            proc = self._spawn(
                f"{spec.name}/kube-apiserver", argv, directory / "kube-apiserver.log"
            )
            try:
                await _wait_for(proc, functools.partial(_readyz, server, ssl_context), port)
            except processes.ProcessExitedError as exc:
                if _PORT_TAKEN in str(exc) and attempt + 1 < _PORT_ATTEMPTS:
                    continue
                raise StartupError(str(exc)) from exc
            return server, proc
        raise AssertionError("unreachable")

    def _spawn(self, name: str, argv: list[str], log: Path) -> processes.Process:
        proc = processes.Process(name, argv, log)
        self._processes.append(proc)
        return proc

    def _kill_now(self) -> None:
        for proc in reversed(self._processes):
            proc.kill_now()


@dataclass(frozen=True, slots=True, kw_only=True)
class _PKI:
    ca: certs.CertPair
    serving: certs.CertPair
    admin: certs.CertPair
    service_accounts: dict[str, certs.SigningKey]


def _make_pki(workdir: Path, cluster_names: list[str], address: str | None) -> _PKI:
    pki = workdir / "pki"
    pki.mkdir(parents=True, exist_ok=True)
    for name in cluster_names:
        (workdir / name).mkdir(exist_ok=True)
    ca = certs.create_ca(pki, common_name="kubelb-test-ca")
    return _PKI(
        ca=ca,
        serving=certs.issue(
            ca,
            pki,
            "serving",
            common_name="kube-apiserver",
            server=True,
            ip_addresses=["127.0.0.1", *([address] if address else [])],
            dns_names=["localhost"],
        ),
        admin=certs.issue(
            ca,
            pki,
            "admin",
            common_name="kubelb-admin",
            client=True,
            organizations=["system:masters"],
        ),
        service_accounts={n: certs.create_signing_key(pki, f"sa-{n}") for n in cluster_names},
    )


def _apiserver_argv(
    bin_dir: Path,
    spec: ClusterSpec,
    pki: _PKI,
    directory: Path,
    port: int,
    etcd_url: str,
    address: str | None,
) -> list[str]:
    sa = pki.service_accounts[spec.name]
    # The `kubernetes` Service's endpoints name the advertised address, which validation refuses
    # on loopback: advertise the host's address, or keep none. It still listens on loopback only:
    # a local control plane exposes nothing beyond this host.
    endpoints = (
        [f"--advertise-address={address}", "--bind-address=127.0.0.1",
         "--endpoint-reconciler-type=lease"]
        if address else
        ["--advertise-address=127.0.0.1", "--bind-address=127.0.0.1",
         "--endpoint-reconciler-type=none"]
    )  # fmt: skip
    return [
        str(bin_dir / "kube-apiserver"),
        f"--etcd-servers={etcd_url}",
        f"--etcd-prefix=/{spec.name}",
        *endpoints,
        f"--secure-port={port}",
        f"--cert-dir={directory}",
        f"--tls-cert-file={pki.serving.cert}",
        f"--tls-private-key-file={pki.serving.key}",
        f"--client-ca-file={pki.ca.cert}",
        "--authorization-mode=RBAC",
        f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
        f"--service-account-key-file={sa.public}",
        f"--service-account-signing-key-file={sa.private}",
        f"--api-audiences={SERVICE_ACCOUNT_ISSUER}",
        f"--service-cluster-ip-range={spec.service_cidr}",
        "--disable-admission-plugins=TaintNodesByCondition",
        "--profiling=false",
    ]


def _controller_manager_argv(
    bin_dir: Path,
    cluster: cluster_mod.Cluster,
    sa: certs.SigningKey,
    disabled: tuple[str, ...] = (),
) -> list[str]:
    # No kubelet runs here, so the node lifecycle controller would mark every Node Unknown.
    controllers = ",".join(["*", "-node-lifecycle-controller", *(f"-{c}" for c in disabled)])
    return [
        str(bin_dir / "kube-controller-manager"),
        f"--kubeconfig={cluster.kubeconfig}",
        "--leader-elect=false",
        "--secure-port=0",
        f"--service-account-private-key-file={sa.private}",
        f"--root-ca-file={cluster.ca_file}",
        f"--service-cluster-ip-range={cluster.service_cidr}",
        f"--controllers={controllers}",
        "--profiling=false",
    ]


def _client_ssl(pki: _PKI) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.ca.cert))
    context.load_cert_chain(str(pki.admin.cert), str(pki.admin.key))
    return context


async def _wait_for(
    proc: processes.Process, ready: Callable[[], Awaitable[bool]], port: int | None = None
) -> None:
    """Poll `ready` until true (and, given `port`, until `proc` is the one listening on it);
    raise as soon as `proc` exits. The caller's timeout bounds the wait."""
    while True:
        proc.check_running()
        with contextlib.suppress(aiohttp.ClientError, OSError, client.ApiException):
            if (port is None or processes.listens_on(proc.pid, port)) and await ready():
                return
        await asyncio.sleep(0.1)


async def _etcd_healthy(url: str) -> bool:
    async with aiohttp.ClientSession() as session, session.get(f"{url}/health") as resp:
        body = json.loads(await resp.read())
        return resp.status == 200 and body.get("health") == "true"


async def _readyz(server: str, context: ssl.SSLContext) -> bool:
    connector = aiohttp.TCPConnector(ssl=context)
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.get(f"{server}/readyz") as resp,
    ):
        return resp.status == 200


async def _default_service_account(api: client.ApiClient) -> bool:
    try:
        await client.CoreV1Api(api).read_namespaced_service_account("default", "default")
    except client.ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return True
