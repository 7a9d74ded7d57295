"""`--install-gateway-api-crds` on a real API server: the shipped CRDs are installed and
Established before the agent's controllers start, then kept as shipped (edits, a stripped label
and a deletion are undone), with no write while nothing changed; the documented RBAC rule is
enough and its absence fails the start with that rule named.

These tests change and delete Gateway API CRDs, so they run on a private one-cluster control
plane started without them, not on the shared tenant cluster. The module's last test switches
that cluster to the experimental channel.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kubelb.agent import gatewaycrds
from kubelb.api import gatewayapi, labels
from kubelb.app import agent as agent_app
from kubelb.kube import client, errors, informer, kubeconfig, objects, resources
from kubelb.localcluster import controlplane
from tests import kube_fixtures
from tests.integration.agent.helpers import idle, wait_for
from tests.support import cluster, gateway_objects

pytestmark = pytest.mark.integration

CRDS = gatewaycrds.CUSTOM_RESOURCE_DEFINITIONS
PRIVATE = (controlplane.ClusterSpec(name="gwapi", service_cidr="10.99.0.0/16"),)
STANDARD_NAMES = sorted(c["metadata"]["name"] for c in gatewayapi.crds("standard"))
GATEWAYS = "gateways.gateway.networking.k8s.io"


@pytest.fixture(scope="module")
def private() -> Iterator[cluster.Cluster]:
    kube_fixtures.require_binaries()
    plane = controlplane.ControlPlane(clusters=PRIVATE, gateway_api_channel=None)
    try:
        kube_fixtures.run_in_private_loop(plane.start())
        yield cluster.Cluster.of(plane.clusters["gwapi"])
    finally:
        kube_fixtures.run_in_private_loop(plane.stop())


@pytest.fixture(autouse=True)
async def _finalize_connections_in_the_tests_loop() -> AsyncIterator[None]:
    # Agents and informers stopped mid-request leave half-open connections to the private API
    # server behind; finalized after the test's loop closed, they warn as unclosed sockets in
    # whichever later test the garbage collector happens to run (1 run in 4 without this).
    yield
    gc.collect()


@pytest.fixture
async def kube(private: cluster.Cluster) -> AsyncIterator[client.Client]:
    async with private.api_client() as api:
        yield client.Client(api, field_manager="kubelb-agent")


@pytest.fixture
async def admin(private: cluster.Cluster) -> AsyncIterator[client.Client]:
    """Plays the cluster's administrator, who edits and deletes CRDs."""
    async with private.api_client() as api:
        yield client.Client(api, field_manager="kubelb-test")


@dataclass
class Running:
    crds: gatewaycrds.GatewayCRDs
    informers: informer.Informers


@contextlib.asynccontextmanager
async def reconciling(kube: client.Client, channel: gatewayapi.Channel) -> AsyncIterator[Running]:
    """Install like the agent's start-up, then run the informers and the controller."""
    informers = informer.Informers(kube)
    crds = gatewaycrds.GatewayCRDs(kube, informers, channel)
    await crds.install()
    tasks = [asyncio.create_task(informers.run()), asyncio.create_task(crds.run())]
    try:
        await crds.controller.started.wait()
        await idle(crds.controller, what="first pass over the shipped CRDs")
        yield Running(crds, informers)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def gateway_api_crds(kube: client.Client) -> dict[str, objects.RawObject]:
    listed = await kube.list(CRDS)
    return {
        objects.name(c): c
        for c in listed.items
        if objects.name(c).endswith((".gateway.networking.k8s.io", ".gateway.networking.x-k8s.io"))
    }


def assert_as_shipped(crd: objects.RawObject, channel: str) -> None:
    name = objects.name(crd)
    assert objects.labels(crd)[labels.MANAGED_BY] == labels.MANAGED_BY_VALUE, name
    annotations = objects.annotations(crd)
    assert annotations[gatewayapi.BUNDLE_VERSION_ANNOTATION] == gatewayapi.version(), name
    assert annotations[gatewayapi.CHANNEL_ANNOTATION] == channel, name
    assert crd["spec"]["conversion"] == {"strategy": "None"}, name
    assert gatewaycrds.established(crd), name


def agent_settings(private: cluster.Cluster, setup: Any, **flags: Any) -> agent_app.Settings:
    return agent_app.Settings(
        tenant=setup.tenant,
        kubeconfig=private.kubeconfig,
        kubelb_kubeconfig=setup.kubeconfig,
        metrics_addr="127.0.0.1:0",
        health_probe_bind_address="127.0.0.1:0",
        enable_leader_election=False,
        node_label_selector=f"{setup.node_label}=true",
        **flags,
    )


async def test_gateway_api_without_its_crds_fails_the_start_naming_the_flag(
    kube, private, tenant_setup
):
    # First in the module: the private cluster has no Gateway API CRDs yet.
    assert await gateway_api_crds(kube) == {}
    settings = agent_settings(private, tenant_setup, enable_gateway_api=True)
    with pytest.raises(gatewaycrds.NotServedError) as caught:
        await agent_app.Agent.open(settings)
    message = str(caught.value)
    assert "--install-gateway-api-crds" in message
    assert "gateways.gateway.networking.k8s.io v1" in message
    assert "httproutes.gateway.networking.k8s.io v1" in message
    # Without --enable-gateway-api nothing needs them.
    async with running_agent(agent_settings(private, tenant_setup)) as running:
        assert running.gateway_crds is None
        await running.service_controller.started.wait()


async def test_install_returns_with_every_crd_established(kube, private):
    assert await gateway_api_crds(kube) == {}  # the private cluster starts without them
    await gatewaycrds.GatewayCRDs(kube, informer.Informers(kube), "standard").install()

    # Read once, no waiting: install() returned only after each was Established.
    installed = await gateway_api_crds(kube)
    assert sorted(installed) == STANDARD_NAMES
    for crd in installed.values():
        assert_as_shipped(crd, "standard")
    namespace = await private.create_namespace("gwapi")
    try:
        await kube.create(
            resources.Resource(gateway_objects.GROUP, gateway_objects.VERSION, "httproutes",
                               "HTTPRoute"),
            gateway_objects.http_route("web", "kubelb"),
            namespace=namespace,
        )  # fmt: skip
    finally:
        await private.delete_namespace(namespace)


async def test_nothing_is_written_when_nothing_changed(kube):
    await gatewaycrds.GatewayCRDs(kube, informer.Informers(kube), "standard").install()
    before = {n: objects.resource_version(c) for n, c in (await gateway_api_crds(kube)).items()}
    async with reconciling(kube, "standard") as running:
        for key in running.crds.reconciler.keys:  # a resync's worth of reconciles
            running.crds.controller.enqueue(key)
        await idle(running.crds.controller, what="a pass over unchanged CRDs")
        writer = running.crds.reconciler.writer
        assert writer.writes == 0
        assert writer.skipped >= 2 * len(STANDARD_NAMES)
    after = {n: objects.resource_version(c) for n, c in (await gateway_api_crds(kube)).items()}
    assert after == before


async def test_edits_a_stripped_label_and_a_deletion_are_undone(kube, admin):
    async with reconciling(kube, "standard"):
        await admin.patch(CRDS, GATEWAYS, {"spec": {"names": {"shortNames": ["edited"]}}})
        await admin.patch(
            CRDS,
            "httproutes.gateway.networking.k8s.io",
            {"metadata": {
                "labels": {labels.MANAGED_BY: None, "team": "web"},
                "annotations": {gatewayapi.BUNDLE_VERSION_ANNOTATION: "v0.0.1"},
            }},
        )  # fmt: skip
        old = await admin.get(CRDS, "referencegrants.gateway.networking.k8s.io")
        await admin.delete(CRDS, objects.name(old))

        async def restored() -> dict[str, objects.RawObject] | None:
            crds = await gateway_api_crds(kube)
            grants = crds.get(objects.name(old))
            if grants is None or objects.uid(grants) == objects.uid(old):
                return None
            if not all(_as_shipped(c) for c in crds.values()):
                return None
            if crds[GATEWAYS]["spec"]["names"].get("shortNames") != ["gtw"]:
                return None
            return crds

        crds = await wait_for(restored, what="edited, unlabelled and deleted CRDs restored")
    assert crds is not None
    assert sorted(crds) == STANDARD_NAMES
    for crd in crds.values():
        assert_as_shipped(crd, "standard")
    # Someone else's label stays: only what kubelb ships is forced.
    assert objects.labels(crds["httproutes.gateway.networking.k8s.io"])["team"] == "web"


def _started(source_controller: Any) -> Any:
    async def check() -> bool:
        return bool(source_controller.started.is_set())

    return check


def _as_shipped(crd: objects.RawObject) -> bool:
    try:
        assert_as_shipped(crd, "standard")
    except (AssertionError, KeyError):
        return False
    return True


async def test_the_agent_installs_before_its_controllers_and_keeps_them(
    private, admin, tenant_setup, tmp_path
):
    await admin.delete(CRDS, GATEWAYS)

    async def gone() -> bool:
        return GATEWAYS not in await gateway_api_crds(admin)

    await wait_for(gone, what="the Gateway CRD deleted")
    settings = agent_settings(
        private, tenant_setup, install_gateway_api_crds=True, enable_gateway_api=True
    )
    async with running_agent(settings, check_before_run=True) as running:
        assert running.gateway_crds is not None
        await running.gateway_crds.controller.started.wait()
        assert running.source_controllers
        # The Gateway API controllers, started after the install, sync their caches.
        for name, source_controller in running.source_controllers.items():
            await wait_for(_started(source_controller), what=f"the {name} controller started")
        await admin.patch(CRDS, GATEWAYS, {"spec": {"names": {"shortNames": ["edited"]}}})

        async def short_names_back() -> bool:
            crd = await admin.get(CRDS, GATEWAYS)
            return bool(crd["spec"]["names"].get("shortNames") == ["gtw"])

        await wait_for(short_names_back, what="the agent restoring the Gateway CRD")


async def test_the_documented_rbac_rule_is_enough_and_needed(private, admin, tmp_path):
    namespace = await private.create_namespace("gwapi-rbac")
    try:
        denied = await private.service_account_kubeconfig(
            namespace, "no-crd-rights", tmp_path / "denied"
        )
        async with _client_from(denied) as kube:
            with pytest.raises(gatewaycrds.InstallError, match="customresourcedefinitions"):
                await gatewaycrds.GatewayCRDs(kube, informer.Informers(kube)).install()

        await _grant_cluster_rule(admin, namespace, "crd-installer", gatewaycrds.RBAC_RULE)
        allowed = await private.service_account_kubeconfig(
            namespace, "crd-installer", tmp_path / "allowed"
        )
        async with _client_from(allowed) as kube:
            await admin.patch(CRDS, GATEWAYS, {"spec": {"names": {"shortNames": ["edited"]}}})
            await gatewaycrds.GatewayCRDs(kube, informer.Informers(kube)).install()
            async with reconciling(kube, "standard"):
                pass  # list and watch allowed too
        crd = await admin.get(CRDS, GATEWAYS)
        assert crd["spec"]["names"]["shortNames"] == ["gtw"]
    finally:
        name = f"{namespace}-crd-installer"
        for kind in (resources.CLUSTER_ROLE_BINDINGS, resources.CLUSTER_ROLES):
            with contextlib.suppress(errors.NotFoundError):
                await admin.delete(kind, name)
        await private.delete_namespace(namespace)


async def test_experimental_channel_replaces_standard(kube):
    # Last in the module: it leaves the private cluster on the experimental channel.
    await gatewaycrds.GatewayCRDs(kube, informer.Informers(kube), "experimental").install()
    crds = await gateway_api_crds(kube)
    assert sorted(crds) == sorted(c["metadata"]["name"] for c in gatewayapi.crds("experimental"))
    for crd in crds.values():
        assert_as_shipped(crd, "experimental")
    assert "tcproutes.gateway.networking.k8s.io" in crds


@contextlib.asynccontextmanager
async def running_agent(
    settings: agent_app.Settings, *, check_before_run: bool = False
) -> AsyncIterator[agent_app.Agent]:
    running = await agent_app.Agent.open(settings)
    task: asyncio.Task[None] | None = None
    try:
        if check_before_run:
            # open() returned: the CRDs are served before any informer or controller started.
            crd = await running.tenant_client.get(CRDS, GATEWAYS)
            assert_as_shipped(crd, "standard")
        task = asyncio.create_task(running.run(), name="agent-under-test")
        yield running
    finally:
        if task is None:  # run() closes the clients; it never started
            await running.tenant_client.close()
            await running.management_client.close()
        else:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


@contextlib.asynccontextmanager
async def _client_from(path: Path) -> AsyncIterator[client.Client]:
    source = kubeconfig.KubeconfigFile(path)
    try:
        yield client.Client(source, field_manager="kubelb-agent")
    finally:
        await source.close()


async def _grant_cluster_rule(
    admin: client.Client, namespace: str, account: str, rule: dict[str, Any]
) -> None:
    name = f"{namespace}-{account}"
    await admin.create(resources.CLUSTER_ROLES, {"metadata": {"name": name}, "rules": [rule]})
    await admin.create(
        resources.CLUSTER_ROLE_BINDINGS,
        {
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                        "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}],
        },
    )  # fmt: skip
