"""The manager with `--envoy-deployer=kubernetes` as a process: a Tenant's issued credentials
write what an agent writes, and the manager creates the management Service and the Envoy
Deployment with the expected spec. No kubelet runs, so no pods: the test asserts on the objects,
has the real Envoy validate the Deployment's inline bootstrap, and plays MetalLB (Service status)
and the kubelet (Deployment status) to see the address flow back and the LB turn Ready."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from kubelb.envoy import binary
from kubelb.kube import client, kubeconfig, objects, resources
from kubelb.pki import files
from tests.e2e import conftest, stack as stack_mod
from tests.e2e.helpers import find, ingress_ips, ready_condition, until
from tests.support import cluster

pytestmark = pytest.mark.e2e

TENANT = "gamma"
NS = f"tenant-{TENANT}"
XDS_PORT = 8001
PORTS = [("https", 443, 30443), ("http", 80, 30080)]  # name, Service port, NodePort
METALLB_IP = "203.0.113.10"
MOUNT = "/etc/kubelb/xds-tls"  # where the Envoy pods mount their xDS certificate Secret


@pytest.fixture
async def kubernetes_manager(
    management: cluster.Cluster, e2e_workdir: Path
) -> AsyncIterator[stack_mod.KubelbProcess]:
    manager = stack_mod.manager_process(management, e2e_workdir, deployer="kubernetes")
    manager.argv.append(f"--envoy-xds-port={XDS_PORT}")
    paused = list(conftest.ACTIVE)
    for running in paused:
        await running.manager.stop()
    await stack_mod.write_manager_identity(management, e2e_workdir)
    await manager.start()
    try:
        yield manager
    finally:
        code = await manager.stop()
        for running in paused:
            await running.manager.start()
    assert code == 0, manager.tail()


@contextlib.asynccontextmanager
async def as_agent(path: Path) -> AsyncIterator[client.Client]:
    source = kubeconfig.KubeconfigFile(path)
    await source.api()
    kube = client.Client(source, field_manager="kubelb-agent")
    try:
        yield kube
    finally:
        await kube.close()


async def test_deployment_and_service_spec(kubernetes_manager, mgmt, e2e_workdir):
    await mgmt.create(resources.CONFIGS, {"metadata": {"name": "default"},
                      "spec": {"envoyProxy": {"replicas": 2}}},
                      namespace=stack_mod.MANAGER_NAMESPACE)  # fmt: skip
    try:
        path = await stack_mod.onboard_tenant(mgmt, TENANT, e2e_workdir / f"{TENANT}.kubeconfig")
        async with as_agent(path) as agent:
            await agent.create(resources.ADDRESSES, {"metadata": {"name": "default"}, "spec": {
                "addresses": [{"ip": "192.0.2.29"}]}}, namespace=NS)  # fmt: skip
            await agent.create(resources.LOAD_BALANCERS, _load_balancer(), namespace=NS)
            await _check_objects(mgmt)
            # The tenant's last LB goes (its Service was deleted): so do its Envoy pods.
            await agent.delete(resources.LOAD_BALANCERS, "web", namespace=NS)
            await until(_cleaned(mgmt), what="LB, management Service and Deployment deleted")
    finally:
        await _remove_tenant(mgmt)
        await mgmt.delete(resources.CONFIGS, "default", namespace=stack_mod.MANAGER_NAMESPACE)


async def _check_objects(mgmt: client.Client) -> None:
    lb = await until(_reason(mgmt, "NoAddress"), what="the LB waiting for an address")
    ports = {p["name"]: p for p in lb["status"]["service"]["ports"]}
    assert {n: p["upstreamTargetPort"] for n, p in ports.items()} == {"https": 30443,
                                                                      "http": 30080}  # fmt: skip
    assert ports["http"]["targetPort"] != ports["https"]["targetPort"]

    svc = await mgmt.get(resources.SERVICES, "envoy-web", namespace=NS)
    assert svc["spec"]["type"] == "LoadBalancer"
    assert svc["spec"]["selector"] == {"app.kubernetes.io/name": NS}
    assert sorted((p["name"], p["port"], p["targetPort"], p["protocol"])
                  for p in svc["spec"]["ports"]) == sorted(
        (n, p["port"], p["targetPort"], "TCP") for n, p in ports.items())  # fmt: skip
    assert svc["metadata"]["ownerReferences"][0]["uid"] == objects.uid(lb)

    deployment = await until(lambda: find(mgmt, resources.DEPLOYMENTS, f"envoy-{NS}", NS),
                             what="the Envoy Deployment")  # fmt: skip
    _check_deployment(deployment)
    await _validate_bootstrap(mgmt, deployment)

    # MetalLB's part: the address flows into the LB; the pods are not ready yet.
    await mgmt.patch_status(resources.SERVICES, "envoy-web",
                            {"status": {"loadBalancer": {"ingress": [{"ip": METALLB_IP}]}}},
                            namespace=NS)  # fmt: skip
    lb = await until(_reason(mgmt, "EnvoyNotReady"), what="the LB waiting for Envoy")
    assert ingress_ips(lb) == [METALLB_IP]
    # The kubelet's part: the Envoy pods report ready.
    await mgmt.patch_status(resources.DEPLOYMENTS, f"envoy-{NS}", {"status": {
        "replicas": 2, "readyReplicas": 2, "availableReplicas": 2}}, namespace=NS)  # fmt: skip
    lb = await until(_reason(mgmt, "Reconciled"), what="the LB Ready")
    assert (ready_condition(lb) or {}).get("status") == "True"


def _check_deployment(deployment: objects.RawObject) -> None:
    assert deployment["metadata"]["labels"] == {
        "app.kubernetes.io/name": "kubelb-envoy-proxy",
        "app.kubernetes.io/instance": NS,
        "app.kubernetes.io/managed-by": "kubelb",
    }
    spec = deployment["spec"]
    assert spec["replicas"] == 2  # from Config default
    assert spec["selector"] == {"matchLabels": {"app.kubernetes.io/name": NS}}
    pod = spec["template"]["spec"]
    assert spec["template"]["metadata"]["labels"] == {"app.kubernetes.io/name": NS}
    envoy, shutdown = pod["containers"]
    assert (envoy["name"], shutdown["name"]) == ("envoy-proxy", "shutdown-manager")
    assert envoy["args"][envoy["args"].index("--service-node") + 1] == NS
    assert {p["name"]: p["containerPort"] for p in envoy["ports"]} == {
        "metrics": 19001, "readiness": 19003, "healthcheck": 19004}  # fmt: skip
    assert envoy["startupProbe"]["httpGet"] == {"path": "/ready", "port": 19003,
                                                 "scheme": "HTTP"}  # fmt: skip
    assert envoy["readinessProbe"]["httpGet"]["port"] == 19004
    pre_stop = envoy["lifecycle"]["preStop"]["httpGet"]
    assert (pre_stop["path"], pre_stop["port"]) == ("/shutdown/ready", 19002)
    assert pod["terminationGracePeriodSeconds"] >= 60
    assert pod["automountServiceAccountToken"] is False
    bootstrap = json.loads(envoy["args"][envoy["args"].index("--config-yaml") + 1])
    assert bootstrap["node"]["id"] == NS
    assert f"envoycp.{stack_mod.MANAGER_NAMESPACE}.svc" in json.dumps(bootstrap)
    assert str(XDS_PORT) in json.dumps(bootstrap)


async def _validate_bootstrap(mgmt: client.Client, deployment: objects.RawObject) -> None:
    """The real Envoy accepts the pod's command line (`--mode validate` opens no sockets), with
    the xDS certificate Secret laid out as the kubelet mounts it (Envoy checks the files exist)."""
    (envoy, *_) = deployment["spec"]["template"]["spec"]["containers"]
    secret = await mgmt.get(resources.SECRETS, f"envoy-{NS}-xds-cert", namespace=NS)
    with tempfile.TemporaryDirectory() as mount:
        # The Secret's files as they are, moved from the mount path to a folder of ours.
        data = {k: base64.b64decode(v).replace(MOUNT.encode(), mount.encode())
                for k, v in secret["data"].items()}  # fmt: skip
        files.write_dir(Path(mount), data)
        args = [a.replace(MOUNT, mount) for a in envoy["args"]]
        await _envoy_validate(args)


async def _envoy_validate(args: list[str]) -> None:
    process = await asyncio.create_subprocess_exec(
        str(binary.find_envoy()), "--mode", "validate", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output, _ = await process.communicate()
    assert process.returncode == 0, output.decode(errors="replace")[-3000:]


def _load_balancer() -> dict[str, object]:
    """What the agent writes for a Service with ports https/443 and http/80."""
    return {
        "metadata": {"name": "web", "labels": {"kubelb.k8c.io/origin-name": "web",
                                               "kubelb.k8c.io/origin-ns": "shop"}},
        "spec": {
            "type": "LoadBalancer",
            "ports": [{"name": n, "port": p, "protocol": "TCP"} for n, p, _ in PORTS],
            "endpoints": [{"name": "default", "addressesReference": {"name": "default"},
                           "ports": [{"name": n, "port": np_, "protocol": "TCP"}
                                     for n, _, np_ in PORTS]}],
        },
    }  # fmt: skip


def _reason(mgmt: client.Client, reason: str) -> Callable[[], Awaitable[objects.RawObject | None]]:
    async def check() -> objects.RawObject | None:
        lb = await find(mgmt, resources.LOAD_BALANCERS, "web", NS)
        condition = ready_condition(lb)
        return lb if condition and condition["reason"] == reason else None

    return check


def _cleaned(mgmt: client.Client) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        found = [
            await find(mgmt, resources.LOAD_BALANCERS, "web", NS),
            await find(mgmt, resources.SERVICES, "envoy-web", NS),
            await find(mgmt, resources.DEPLOYMENTS, f"envoy-{NS}", NS),
        ]
        return not any(found)

    return check


async def _remove_tenant(mgmt: client.Client) -> None:
    """Delete the Tenant while its manager runs (it drains what is left, then removes the
    rest), so the next manager finds no trace of it."""
    with contextlib.suppress(Exception):
        await mgmt.delete(resources.TENANTS, TENANT)

    async def gone() -> bool:
        return (
            await find(mgmt, resources.TENANTS, TENANT) is None
            and await find(mgmt, resources.DEPLOYMENTS, f"envoy-{NS}", NS) is None
        )

    await until(gone, what=f"Tenant {TENANT} and its Envoy Deployment removed")
