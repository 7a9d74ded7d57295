"""The control plane starts, serves, and stops without leaving processes or files behind, also
when start-up fails half-way, and leaves no process behind when its owner is killed outright."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from kubernetes_asyncio import client

from kubelb.localcluster import controlplane, crds
from tests import kube_fixtures
from tests.support import processes

pytestmark = pytest.mark.integration

SOLO = (controlplane.ClusterSpec(name="solo", service_cidr="10.98.0.0/16"),)


@pytest.fixture(autouse=True)
def _binaries() -> None:
    kube_fixtures.require_binaries()


async def test_starts_and_stops_cleanly():
    plane = controlplane.ControlPlane(clusters=SOLO)
    try:
        await plane.start()
        solo = plane.clusters["solo"]
        pids = plane.pids
        assert len(pids) == 3  # etcd, kube-apiserver, kube-controller-manager
        assert all(processes.pid_alive(pid) for pid in pids)
        assert plane.workdir is not None
        assert plane.workdir.is_dir()
        assert solo.kubeconfig.is_file()
        async with solo.api_client() as api:
            version = await client.VersionApi(api).get_code()
        assert version.git_version == "v1.35.4"
    finally:
        await plane.stop()
    assert [pid for pid in pids if processes.pid_alive(pid)] == []
    assert not plane.workdir.exists()


OWNER = textwrap.dedent(
    """
    import asyncio, json, sys
    from kubelb.localcluster import controlplane

    async def main():
        spec = controlplane.ClusterSpec(name="solo", service_cidr="10.98.0.0/16")
        plane = controlplane.ControlPlane(clusters=(spec,))
        await plane.start()
        print(json.dumps({"pids": plane.pids, "workdir": str(plane.workdir)}), flush=True)
        await asyncio.sleep(3600)

    asyncio.run(main())
    """
)


async def test_owner_killed_outright_leaves_no_process_behind():
    owner = await asyncio.create_subprocess_exec(
        sys.executable, "-c", OWNER, stdout=asyncio.subprocess.PIPE
    )
    assert owner.stdout is not None
    line = await owner.stdout.readline()
    started = json.loads(line)
    pids = started["pids"]
    try:
        assert len(pids) == 3
        assert all(processes.pid_alive(pid) for pid in pids)
        owner.send_signal(signal.SIGKILL)  # no clean-up code of the owner runs
        await owner.wait()
        for _ in range(600):
            if not [pid for pid in pids if processes.pid_alive(pid)]:
                break
            await asyncio.sleep(0.1)
        assert [pid for pid in pids if processes.pid_alive(pid)] == []
    finally:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(Path(started["workdir"]), ignore_errors=True)


async def test_failed_start_cleans_up(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "apiextensions.k8s.io/v1",
                "kind": "CustomResourceDefinition",
                "metadata": {"name": "things.example.com"},
                "spec": {
                    "group": "example.com",
                    "scope": "Namespaced",
                    "names": {"kind": "Thing", "plural": "wrong-plural"},
                    "versions": [],
                },
            }
        )
    )
    plane = controlplane.ControlPlane(clusters=SOLO, crd_files=[bad])
    with pytest.raises(crds.CRDError, match=r"things\.example\.com: 422"):
        await plane.start()
    assert plane.pids  # it got as far as starting processes
    assert [pid for pid in plane.pids if processes.pid_alive(pid)] == []
    assert plane.workdir is not None
    assert not plane.workdir.exists()
