"""`kubelb lb ...` and `kubelb status` against the real kube-apiserver of the test control plane,
reached through a kubeconfig whose current context points nowhere: `--context` must choose."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubelb import cli
from kubelb.envoy import kubernetes as envoy_k8s
from kubelb.kube import client, resources

pytestmark = pytest.mark.integration


@pytest.fixture
def kubeconfig(management, tmp_path: Path) -> Path:
    """The admin kubeconfig plus a current context `nowhere` (a closed port)."""
    config = yaml.safe_load(management.kubeconfig.read_text())
    real = config["current-context"]
    config["clusters"].append({"name": "nowhere", "cluster": {"server": "https://127.0.0.1:9"}})
    user = config["contexts"][0]["context"]["user"]
    config["contexts"].append({"name": "nowhere", "context": {"cluster": "nowhere", "user": user}})
    config["current-context"] = "nowhere"
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(config))
    path.with_suffix(".context").write_text(real)
    return path


def _flags(kubeconfig: Path) -> list[str]:
    return [
        "--kubeconfig",
        str(kubeconfig),
        "--context",
        kubeconfig.with_suffix(".context").read_text(),
    ]


async def _kubelb(capsys, *args: str) -> tuple[int, str, str]:
    """Run the CLI as `kubelb ARGS` (in a thread: it runs its own event loop)."""
    code = await asyncio.to_thread(cli.main, list(args))
    out, err = capsys.readouterr()
    return code, out, err


async def test_lb_round_trip(capsys, kubeconfig, management_namespace):
    ns, flags = management_namespace, _flags(kubeconfig)
    create = [
        "lb",
        "create",
        "web",
        "-n",
        ns,
        "--port",
        "80:30080/TCP",
        "--endpoint",
        "10.0.0.1",
        "--endpoint",
        "10.0.0.2",
        *flags,
    ]
    code, out, err = await _kubelb(capsys, *create)
    assert (code, out, err) == (0, "loadbalancer.kubelb.k8c.io/web created\n", "")

    code, out, err = await _kubelb(capsys, *create)
    assert code == 1
    assert f'"web" already exists in namespace {ns}' in err

    code, out, _ = await _kubelb(capsys, "lb", "get", "web", "-n", ns, "-o", "json", *flags)
    obj = json.loads(out)
    assert obj["kind"] == "LoadBalancer"
    assert obj["spec"]["ports"] == [{"port": 80, "protocol": "TCP"}]
    assert obj["spec"]["endpoints"][0]["addresses"] == [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}]
    assert obj["spec"]["type"] == "ClusterIP"  # the CRD's default

    code, out, _ = await _kubelb(capsys, "lb", "list", "-n", ns, *flags)
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "TYPE", "ADDRESS", "PORTS", "READY", "AGE"]
    assert lines[1].split()[:5] == ["web", "ClusterIP", "<pending>", "80/TCP", "Unknown"]
    assert len(lines) == 2

    code, out, _ = await _kubelb(capsys, "lb", "list", "-o", "yaml", "-n", ns, *flags)
    listed = yaml.safe_load(out)
    assert listed["kind"] == "List"
    assert [i["metadata"]["name"] for i in listed["items"]] == ["web"]

    code, out, _ = await _kubelb(capsys, "lb", "list", "-A", "-o", "wide", *flags)
    rows = [line.split() for line in out.splitlines()]
    assert rows[0][:2] == ["NAMESPACE", "NAME"]
    assert rows[0][-2:] == ["ENDPOINTS", "REASON"]
    assert [ns, "web"] in [r[:2] for r in rows[1:]]

    code, out, err = await _kubelb(capsys, "lb", "delete", "web", "-n", ns, *flags)
    assert (code, out) == (0, 'loadbalancer.kubelb.k8c.io "web" deleted\n')
    code, out, err = await _kubelb(capsys, "lb", "get", "web", "-n", ns, *flags)
    assert code == 1
    assert "NotFound" in err
    code, out, err = await _kubelb(capsys, "lb", "list", "-n", ns, *flags)
    assert (code, out, err) == (0, "", f"No resources found in {ns} namespace.\n")
    code, out, err = await _kubelb(capsys, "lb", "delete", "web", "-n", ns, *flags)
    assert code == 1
    code, out, err = await _kubelb(
        capsys, "lb", "delete", "web", "--ignore-not-found", "-n", ns, *flags
    )
    assert (code, out, err) == (0, "", "")


async def test_lb_create_with_an_addresses_reference_and_persistence(
    capsys, kubeconfig, management_namespace
):
    """The API server accepts what the flags make: a reference instead of inline addresses
    (the agent's `default` Addresses) and SourceIP persistence; `get -o wide` shows both."""
    ns, flags = management_namespace, _flags(kubeconfig)
    create = ["lb", "create", "sticky", "-n", ns, "--port", "443:30443", "--addresses-ref",
              "default", "--persistence", "SourceIP", *flags]  # fmt: skip
    code, out, err = await _kubelb(capsys, *create)
    assert (code, out, err) == (0, "loadbalancer.kubelb.k8c.io/sticky created\n", "")
    try:
        code, out, _ = await _kubelb(capsys, "lb", "get", "sticky", "-n", ns, "-o", "json", *flags)
        spec = json.loads(out)["spec"]
        assert spec["endpoints"] == [{"addressesReference": {"name": "default"},
                                      "ports": [{"port": 30443, "protocol": "TCP"}]}]  # fmt: skip
        assert spec["persistence"] == {"type": "SourceIP"}
        code, out, _ = await _kubelb(capsys, "lb", "get", "sticky", "-n", ns, "-o", "wide", *flags)
        assert "<addresses/default>" in out.splitlines()[1]
    finally:
        await _kubelb(capsys, "lb", "delete", "sticky", "-n", ns, *flags)


async def test_without_context_the_current_one_is_used(capsys, kubeconfig, management_namespace):
    code, _, err = await _kubelb(capsys, "lb", "list", "--kubeconfig", str(kubeconfig))
    assert code == 1
    assert "cannot reach the API server" in err


def _lb(name: str, namespace: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "ports": [{"port": 80, "protocol": "TCP"}],
            "endpoints": [
                {"addresses": [{"ip": "10.0.0.1"}], "ports": [{"port": 30080, "protocol": "TCP"}]}
            ],
        },
    }


def _route(name: str, namespace: str) -> dict[str, Any]:
    ingress = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"defaultBackend": {"service": {"name": "web", "port": {"number": 80}}}},
    }
    return {
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "endpoints": [{"addresses": [{"ip": "10.0.0.1"}]}],
            "source": {"kubernetes": {"resource": ingress}},
        },
    }


def _condition(status: str, reason: str, message: str) -> dict[str, Any]:
    return {
        "type": "Ready",
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": "2026-01-01T00:00:00Z",
        "observedGeneration": 1,
    }


async def test_status_shows_ready_and_not_ready_with_reasons(
    capsys, kubeconfig, management_namespace, management_api
):
    ns = management_namespace
    kube = client.Client(management_api, field_manager="kubelb-manager")
    for name in ("web", "db"):
        await kube.create(resources.LOAD_BALANCERS, _lb(name, ns))
    # What the manager writes: an address and Ready for web; no address for db.
    await kube.patch_status(
        resources.LOAD_BALANCERS,
        "web",
        namespace=ns,
        patch={
            "status": {
                "loadBalancer": {"ingress": [{"ip": "192.0.2.10"}]},
                "service": {
                    "ports": [
                        {
                            "name": "80-tcp",
                            "port": 80,
                            "protocol": "TCP",
                            "targetPort": 10080,
                            "upstreamTargetPort": 30080,
                        }
                    ]
                },
                "conditions": [_condition("True", "Reconciled", "")],
            }
        },
    )
    await kube.patch_status(
        resources.LOAD_BALANCERS,
        "db",
        namespace=ns,
        patch={
            "status": {
                "conditions": [
                    _condition("False", "NoAddress", "no ingress IP from Service envoy-db")
                ]
            }
        },
    )
    envoy = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": envoy_k8s.workload_name(ns),
            "namespace": ns,
            "labels": {"app.kubernetes.io/name": "kubelb-envoy-proxy"},
        },
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "envoy"}},
            "template": {
                "metadata": {"labels": {"app": "envoy"}},
                "spec": {"containers": [{"name": "envoy", "image": "envoy"}]},
            },
        },
    }
    await kube.create(resources.DEPLOYMENTS, envoy)  # no kubelet: never ready
    await kube.create(resources.ROUTES, _route("site", ns))
    applied = {
        **_condition("False", "InstallationFailed", "port 80 is held by LoadBalancer web"),
        "type": "ResourceAppliedSuccessfully",
    }
    route_state = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "name": "site",
        "namespace": "default",
        "conditions": [applied],
        "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.20"}]}},
    }
    await kube.patch_status(
        resources.ROUTES,
        "site",
        namespace=ns,
        patch={"status": {"resources": {"route": route_state}}},
    )

    code, out, err = await _kubelb(capsys, "status", "-n", ns, *_flags(kubeconfig))
    assert (code, err) == (0, "")
    lines = out.splitlines()
    summary = next(line for line in lines if line.startswith(ns))
    assert summary.split() == [ns, ns, "0/1", "1/2", "ready", "0/1", "ready", "2"]
    assert f"  Envoy: Deployment/envoy-{ns} NOT ready (0/1 replicas)" in lines
    web = next(line.split() for line in lines if line.startswith("    web "))
    assert web == ["web", "ClusterIP", "192.0.2.10", "80:30080/TCP", "True", "Reconciled"]
    db = next(line.split() for line in lines if line.startswith("    db "))
    assert db == ["db", "ClusterIP", "<pending>", "80/TCP", "False", "NoAddress"]
    assert (
        "    LoadBalancer db: Ready=False (NoAddress): no ingress IP from Service envoy-db" in lines
    )

    site = next(line.split() for line in lines if line.startswith("    site "))
    assert site == ["site", "Ingress", "default/site", "192.0.2.20", "False", "InstallationFailed"]
    assert (
        "    Route site: ResourceAppliedSuccessfully=False (InstallationFailed): port 80 is held "
        "by LoadBalancer web" in lines
    )

    code, out, _ = await _kubelb(capsys, "status", "-n", ns, "-o", "json", *_flags(kubeconfig))
    document = json.loads(out)
    (tenant,) = document["tenants"]
    assert tenant["namespace"] == ns
    assert tenant["envoy"]["ready"] is False
    assert [(x["name"], x["ready"]) for x in tenant["loadBalancers"]] == [
        ("db", False),
        ("web", True),
    ]
    assert tenant["problems"][:1] == [
        {
            "object": "LoadBalancer db",
            "type": "Ready",
            "status": "False",
            "reason": "NoAddress",
            "message": "no ingress IP from Service envoy-db",
        }
    ]


def _plugin_dir(tmp_path: Path) -> Path:
    """Where `kubectl-kubelb` is: beside this interpreter when installed (pyproject's
    [project.scripts]), else a stand-in doing what that entry point does."""
    installed = Path(sys.executable).parent / "kubectl-kubelb"
    if installed.exists():
        return installed.parent
    folder = tmp_path / "plugin"
    folder.mkdir()
    script = folder / "kubectl-kubelb"
    script.write_text(
        f"#!{sys.executable}\nimport sys\nfrom kubelb.cli import main\nsys.exit(main())\n"
    )
    script.chmod(0o755)
    return folder


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
async def test_kubectl_plugin(kubeconfig, management_namespace, tmp_path):
    env = {**os.environ, "PATH": f"{_plugin_dir(tmp_path)}{os.pathsep}{os.environ['PATH']}"}
    args = ["kubectl", "kubelb", "lb", "list", "-n", management_namespace, *_flags(kubeconfig)]
    done = await asyncio.to_thread(
        subprocess.run, args, capture_output=True, text=True, env=env, check=False
    )
    assert (done.returncode, done.stdout) == (0, ""), done.stderr
    assert done.stderr == f"No resources found in {management_namespace} namespace.\n"
    done = await asyncio.to_thread(
        subprocess.run,
        ["kubectl", "kubelb", "lb", "--help"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert done.returncode == 0
    assert done.stdout.startswith("usage: kubectl kubelb lb")


async def test_status_of_every_tenant_includes_a_failed_tenant(
    capsys, kubeconfig, management_api, management_namespace
):
    kube = client.Client(management_api, field_manager="kubelb-manager")
    name = f"cli-{management_namespace}"  # unique: the namespace's name is random
    await kube.create(resources.TENANTS, {"metadata": {"name": name}, "spec": {}})
    try:
        failed = _condition("False", "ReconciliationFailed", "namespace is terminating")
        await kube.patch_status(
            resources.TENANTS, name, patch={"status": {"phase": "Failed", "conditions": [failed]}}
        )
        code, out, _ = await _kubelb(capsys, "status", "-A", "-o", "yaml", *_flags(kubeconfig))
        assert code == 0
        tenants = {t["name"]: t for t in yaml.safe_load(out)["tenants"]}
        tenant = tenants[name]
        assert (tenant["namespace"], tenant["phase"]) == (f"tenant-{name}", "Failed")
        assert tenant["envoy"]["workload"] is None
        assert tenant["problems"] == [
            {
                "object": f"Tenant {name}",
                "type": "Ready",
                "status": "False",
                "reason": "ReconciliationFailed",
                "message": "namespace is terminating",
            }
        ]
        code, out, _ = await _kubelb(capsys, "status", *_flags(kubeconfig))
        assert f"Tenant {name} (namespace tenant-{name}): Failed" in out.splitlines()
    finally:
        await kube.delete(resources.TENANTS, name)
