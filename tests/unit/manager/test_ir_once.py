"""A LoadBalancer change builds its IR once: the status's problems and the tenant's snapshot share
the piece. Real informer stores fed as a watch would feed them; no API server."""

from __future__ import annotations

import copy
import gc
import types
from typing import Any

import pytest

from kubelb.api import labels, loadbalancer as api_lb
from kubelb.envoy import kubernetes as envoy_k8s
from kubelb.infra import kubernetes as kubernetes_infra
from kubelb.ir import proxy
from kubelb.irbuild import endpointpolicy, loadbalancers as irbuild
from kubelb.kube import informer, objects
from kubelb.manager import common, envoycp, lbservice, loadbalancers, pieces

NS = "tenant-a"


class Publisher:
    def __init__(self) -> None:
        self.published: list[proxy.ProxyConfig] = []

    def publish(self, config: proxy.ProxyConfig) -> bool:
        self.published.append(config)
        return True

    def clear(self, node_id: str) -> None:
        pass


class Parts:
    def __init__(self) -> None:
        self.informers = informer.Informers(None)  # type: ignore[arg-type]  # never run
        self.inputs = common.Inputs(self.informers, namespace="kubelb")
        options = envoy_k8s.Options(xds_host="envoycp.kubelb.svc")
        infra = kubernetes_infra.KubernetesInfra(self.inputs, None, self.informers, options)  # type: ignore[arg-type]
        self.lbs = loadbalancers.LoadBalancerReconciler(self.inputs, None, infra)  # type: ignore[arg-type]
        self.snapshots = envoycp.SnapshotReconciler(self.inputs, Publisher(), infra)
        self.version = 0

    def store(self, informer_: informer.Informer, obj: dict[str, Any]) -> dict[str, Any]:
        """What a watch event does: the store and every handler see the new version."""
        self.version += 1
        obj = copy.deepcopy(obj)
        obj["metadata"]["resourceVersion"] = str(self.version)
        informer_._apply({"type": "MODIFIED", "object": obj})
        return obj

    def reconcile_lb(self, raw: dict[str, Any]) -> dict[str, Any]:
        """The LoadBalancer controller's pure steps, then its status write."""
        lb = self.inputs.load_balancer(raw).model
        assert lb is not None
        listen = self.lbs._allocate(lb)
        verdict = self.lbs._verdict(lb, listen, {})
        assert verdict.reason == "EnvoyNotReady", verdict  # no problems, no Envoy pods
        written = copy.deepcopy(raw)
        written["status"] = {
            "service": {"ports": lbservice.desired_status_service_ports(lb, listen)}
        }
        return self.store(self.inputs.load_balancers, written)


def load_balancer(node_port: int, generation: int) -> dict[str, Any]:
    return {
        "apiVersion": "kubelb.k8c.io/v1alpha1",
        "kind": "LoadBalancer",
        "metadata": {"name": "web", "namespace": NS, "uid": "u-web", "generation": generation},
        "spec": {
            "ports": [{"name": "http", "port": 80}],
            "endpoints": [{"addressesReference": {"name": "default"},
                           "ports": [{"name": "http", "port": node_port}]}],
        },
    }  # fmt: skip


@pytest.fixture
def builds(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every LoadBalancer IR build, whoever asks (`build_proxy_config` builds through it)."""
    built: list[str] = []
    real = irbuild.build_load_balancer

    def counting(
        lb: api_lb.LoadBalancer, placement: irbuild.Placement, addresses: Any, policy: Any = None
    ) -> irbuild.Piece:
        built.append(lb.name)
        return real(lb, placement, addresses, policy)

    monkeypatch.setattr(irbuild, "build_load_balancer", counting)
    return built


def test_a_load_balancer_change_builds_its_ir_once(builds: list[str]) -> None:
    parts = Parts()
    managed = {"metadata": {"name": NS, "labels": {labels.MANAGED_BY: labels.MANAGED_BY_VALUE}}}
    parts.store(parts.inputs.namespaces, {"kind": "Namespace", **managed})
    addresses = {"metadata": {"name": "default", "namespace": NS},
                 "spec": {"addresses": [{"ip": "10.0.0.1"}]}}  # fmt: skip
    parts.store(parts.inputs.addresses, addresses)

    created = parts.store(parts.inputs.load_balancers, load_balancer(30080, generation=1))
    parts.reconcile_lb(created)
    first = parts.snapshots.desired(NS)
    assert first is not None
    assert len(first.listeners) == 1
    assert builds == ["web"]

    # A spec change: the LoadBalancer controller, its status write, then the tenant's snapshot.
    builds.clear()
    changed = parts.store(parts.inputs.load_balancers, load_balancer(30081, generation=2))
    parts.reconcile_lb(changed)
    second = parts.snapshots.desired(NS)
    assert second is not None
    assert {e.port for c in second.clusters for e in c.endpoints} == {30081}
    assert builds == ["web"]

    # New Addresses: the piece is built again, once.
    builds.clear()
    parts.store(parts.inputs.addresses, {**addresses, "spec": {"addresses": [{"ip": "10.0.0.2"}]}})
    lb = parts.inputs.load_balancers.store.list(NS)[0]
    parts.reconcile_lb(lb)
    third = parts.snapshots.desired(NS)
    assert third is not None
    assert {e.address for c in third.clusters for e in c.endpoints} == {"10.0.0.2"}
    assert builds == ["web"]


def test_a_piece_is_rebuilt_when_what_it_reads_changes(builds: list[str]) -> None:
    cache = pieces.Pieces()
    raw = load_balancer(30080, generation=1)
    lb = api_lb.LoadBalancer.model_validate(raw)
    here, there = irbuild.Placement("10.0.0.9"), irbuild.Placement("10.0.0.8")
    cache.get(lb, here, {})
    status_written = api_lb.LoadBalancer.model_validate({**raw, "status": {"service": {}}})
    cache.get(status_written, here, {})
    assert len(builds) == 1
    cache.get(status_written, there, {})
    assert len(builds) == 2
    annotated = copy.deepcopy(raw)
    annotated["metadata"]["annotations"] = {"kubelb.k8c.io/proxy-protocol": "v2"}
    annotated_lb = api_lb.LoadBalancer.model_validate(annotated)
    cache.get(annotated_lb, there, {})
    assert len(builds) == 3
    # The tenant's endpoint policy changed (a Config or Tenant edit): rebuilt once.
    policy = endpointpolicy.EndpointPolicy(denied=endpointpolicy.LOOPBACK)
    cache.get(annotated_lb, there, {}, policy)
    cache.get(
        annotated_lb, there, {}, endpointpolicy.EndpointPolicy(denied=endpointpolicy.LOOPBACK)
    )
    assert len(builds) == 4
    cache.forget(objects.ObjectKey(NS, "web"))
    assert len(cache) == 0


def reachable(root: object) -> list[object]:
    """Every object reachable from `root` through references (classes and modules excluded)."""
    seen: dict[int, object] = {}
    stack = [root]
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, (type, types.ModuleType)):
            continue
        seen[id(obj)] = obj
        stack.extend(gc.get_referents(obj))
    return list(seen.values())


def test_a_piece_does_not_keep_the_load_balancer_it_was_built_from(builds: list[str]) -> None:
    # Each version's model lives in the parse cache; a second copy per LoadBalancer in the
    # pieces doubled the manager's memory for them.
    cache = pieces.Pieces()
    raw = load_balancer(30080, generation=1)
    here = irbuild.Placement("10.0.0.9")
    cache.get(api_lb.LoadBalancer.model_validate(raw), here, {})
    cache.get(api_lb.LoadBalancer.model_validate({**raw, "status": {"service": {}}}), here, {})
    assert builds == ["web"]
    assert not [o for o in reachable(cache) if isinstance(o, api_lb.LoadBalancer)]
