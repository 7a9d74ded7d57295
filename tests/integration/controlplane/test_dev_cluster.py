"""`kubelb dev-cluster --dir DIR` as a user runs it: a subprocess that prints one line when both
clusters are ready, serves them through DIR/{management,tenant}.kubeconfig (with cluster-info
published and the PodMonitor CRD served), and on SIGINT or SIGTERM stops every process it
started and removes its data."""

from __future__ import annotations

import asyncio
import re
import signal
import sys
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio import client, config

from kubelb.localcluster import clusterinfo
from kubelb.manager import kubeconfigs
from tests import kube_fixtures
from tests.support import gateway_objects, processes

pytestmark = pytest.mark.integration

DEADLINE_SECONDS = 240


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _command(pid: int) -> str:
    return Path(f"/proc/{pid}/comm").read_text().strip()


async def _create_gateway_and_route(api: client.ApiClient) -> dict[str, Any]:
    """The dev cluster serves the Gateway API: create a Gateway and an HTTPRoute attached to it."""
    objects = client.CustomObjectsApi(api)
    created: dict[str, Any] = await objects.create_namespaced_custom_object(
        gateway_objects.GROUP,
        gateway_objects.VERSION,
        "default",
        "gateways",
        gateway_objects.gateway("kubelb"),
    )
    await objects.create_namespaced_custom_object(
        gateway_objects.GROUP,
        gateway_objects.VERSION,
        "default",
        "httproutes",
        gateway_objects.http_route("web", "kubelb"),
    )
    return created


def _data_dir(pid: int) -> Path:
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    data_dir = next(a for a in argv if a.startswith(b"--data-dir="))
    return Path(data_dir.split(b"=", 1)[1].decode()).parent


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
async def test_dev_cluster_serves_until_signalled(tmp_path, stop_signal):
    kube_fixtures.require_binaries()
    directory = tmp_path / "dev"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "kubelb",
        "dev-cluster",
        "--dir",
        str(directory),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        assert proc.stderr is not None
        async with asyncio.timeout(DEADLINE_SECONDS):
            line = (await proc.stdout.readline()).decode()
        assert re.match(
            r"kubelb dev-cluster: ready in [0-9.]+s: management=https://127\.0\.0\.1:", line
        ), line
        children = _children(proc.pid)
        assert len(children) == 5, children  # etcd + 2 x (kube-apiserver, controller manager)
        workdir = _data_dir(next(pid for pid in children if _command(pid) == "etcd"))
        assert workdir.is_dir()

        for name in ("management", "tenant"):
            path = directory / f"{name}.kubeconfig"
            assert f"{name}=https://127.0.0.1:" in line
            assert f"({path})" in line
            settings = client.Configuration()
            await config.load_kube_config(config_file=str(path), client_configuration=settings)
            async with client.ApiClient(settings) as api:
                namespaces = await client.CoreV1Api(api).list_namespace()
                gateway = await _create_gateway_and_route(api)
                info = await client.CoreV1Api(api).read_namespaced_config_map(
                    clusterinfo.NAME, clusterinfo.NAMESPACE
                )
                pod_monitors = await client.ApiextensionsV1Api(api).read_custom_resource_definition(
                    "podmonitors.monitoring.coreos.com"
                )
            assert "kube-system" in {ns.metadata.name for ns in namespaces.items}
            # What upstream's manager reads for tenant kubeconfigs: this cluster's own server.
            found = kubeconfigs.server_from_cluster_info({"data": info.data})
            assert found is not None
            assert found[0] == settings.host
            assert pod_monitors.spec.names.kind == "PodMonitor"
            assert gateway["metadata"]["uid"]

        proc.send_signal(stop_signal)
        async with asyncio.timeout(DEADLINE_SECONDS):
            code = await proc.wait()
        stderr = (await proc.stderr.read()).decode()
        assert code == 0, stderr
        assert (await proc.stdout.read()) == b""  # exactly one line
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert [pid for pid in children if processes.pid_alive(pid)] == []
    assert not workdir.exists()
    assert not (directory / "management.kubeconfig").exists()
    assert not (directory / "tenant.kubeconfig").exists()
