"""Run a local "management" and "tenant" Kubernetes control plane for development.

Starts etcd, and per cluster a kube-apiserver and kube-controller-manager on free 127.0.0.1 ports
(binaries built by `make controlplane`), installs kubelb's CRDs, the standard-channel Gateway
API CRDs (`--gateway-api-crds` picks another channel or none) and prometheus-operator's
PodMonitor and ServiceMonitor, publishes `kube-public/cluster-info` and the `default/kubernetes`
EndpointSlice (upstream KubeLB's manager needs them), and writes admin kubeconfigs to
DIR/management.kubeconfig and DIR/tenant.kubeconfig. Prints one line when both clusters are
ready, then runs until SIGINT or SIGTERM; it then stops everything, removes its temporary data
and the two kubeconfigs it wrote.

  kubelb dev-cluster --dir .kubelb-dev
  kubectl --kubeconfig .kubelb-dev/management.kubeconfig get nodes
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from pathlib import Path

from kubelb.api import gatewayapi
from kubelb.localcluster import binaries, controlplane, crds, kubeconfig

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dir", required=True, type=Path, help="where to write the kubeconfigs")
    parser.add_argument(
        "--binaries",
        type=Path,
        default=None,
        help=f"folder with etcd, kube-apiserver, kube-controller-manager "
        f"(default: ${binaries.DIR_ENV} or {binaries.default_dir()})",
    )
    parser.add_argument(
        "--crds",
        type=Path,
        default=crds.DEFAULT_CRD_DIR,
        help="folder of CRD YAML files to install in both clusters (default: %(default)s)",
    )
    parser.add_argument(
        "--gateway-api-crds",
        choices=[*gatewayapi.CHANNELS, "none"],
        default=gatewayapi.DEFAULT_CHANNEL,
        help="channel of the shipped Gateway API CRDs to install in both clusters, or none "
        "(default: %(default)s)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        channel = None if args.gateway_api_crds == "none" else args.gateway_api_crds
        return asyncio.run(_serve(args.dir, args.binaries, args.crds, channel))
    except (binaries.BinariesMissingError, controlplane.StartupError) as exc:
        sys.stderr.write(f"kubelb dev-cluster: {exc}\n")
        return 1


async def _serve(
    directory: Path,
    binaries_dir: Path | None,
    crd_dir: Path,
    gateway_api_channel: gatewayapi.Channel | None,
) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    outputs = {name: directory / f"{name}.kubeconfig" for name in ("management", "tenant")}
    for path in outputs.values():  # a stale file must not look like a ready cluster
        path.unlink(missing_ok=True)
    plane = controlplane.ControlPlane(
        binaries_dir=binaries_dir,
        crd_files=crds.crd_files(crd_dir),
        gateway_api_channel=gateway_api_channel,
    )
    try:
        if not await _start_unless_stopped(plane, stop):
            return 0
        for name, path in outputs.items():
            config = kubeconfig.admin_config(
                cluster=name,
                server=plane.clusters[name].server,
                ca_pem=plane.clusters[name].ca_pem,
                cert_pem=plane.clusters[name].cert_file.read_bytes(),
                key_pem=plane.clusters[name].key_file.read_bytes(),
            )
            kubeconfig.write(path, config)
        sys.stdout.write(_ready_line(plane, outputs))
        sys.stdout.flush()
        await stop.wait()
        return 0
    finally:
        await plane.stop()
        for path in outputs.values():
            path.unlink(missing_ok=True)
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


async def _start_unless_stopped(plane: controlplane.ControlPlane, stop: asyncio.Event) -> bool:
    """Start `plane`; False if a signal came first (start-up is cancelled, then cleaned up)."""
    starting = asyncio.create_task(plane.start())
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    if starting.done():
        starting.result()
        return True
    starting.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await starting
    return False


def _ready_line(plane: controlplane.ControlPlane, outputs: dict[str, Path]) -> str:
    parts = [f"{name}={plane.clusters[name].server} ({path})" for name, path in outputs.items()]
    return f"kubelb dev-cluster: ready in {plane.startup_seconds:.1f}s: {' '.join(parts)}\n"
