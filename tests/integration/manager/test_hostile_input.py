"""Names, namespaces, ports and hostnames a tenant controls are refused by the real API server
(Kubernetes' own name rules plus the CRD schema kubelb generates) and, the same documents, by
kubelb's own parsing, which is all that stands between a file and the IR in standalone mode."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from kubelb.api import errors as api_errors, registry
from kubelb.kube import errors, resources
from tests.integration.manager.helpers import load_balancer

pytestmark = pytest.mark.integration


def _lb(**changes: Any) -> dict[str, Any]:
    lb = load_balancer("web", ports=[("http", 8080, 30080)])
    lb["spec"]["hostname"] = "web.example.com"
    for path, value in changes.items():
        *parents, leaf = path.split(".")
        node: Any = lb
        for key in parents:
            node = node[int(key)] if key.isdigit() else node[key]
        node[leaf] = value
    return lb


HOSTILE: dict[str, dict[str, Any]] = {
    "name of 300 characters": _lb(**{"metadata.name": "a" * 300}),
    "name of 64 KiB": _lb(**{"metadata.name": "a" * 65536}),
    "name ../../etc/passwd": _lb(**{"metadata.name": "../../etc/passwd"}),
    "name with a newline": _lb(**{"metadata.name": "web\nINFO forged line"}),
    "name in capitals": _lb(**{"metadata.name": "Web"}),
    "port 0": _lb(**{"spec.ports.0.port": 0}),
    "port 70000": _lb(**{"spec.ports.0.port": 70000}),
    "endpoint port 0": _lb(**{"spec.endpoints.0.ports.0.port": 0}),
    "endpoint port 65536": _lb(**{"spec.endpoints.0.ports.0.port": 65536}),
    "port name with a newline": _lb(**{"spec.ports.0.name": "http\nx"}),
    "port name of 64 characters": _lb(**{"spec.ports.0.name": "p" * 64}),
    "hostname with a space": _lb(**{"spec.hostname": "web example.com"}),
    "hostname of 254 characters": _lb(**{"spec.hostname": ("a" * 62 + ".") * 4 + "bc"}),
    "hostname with a newline": _lb(**{"spec.hostname": "web.example.com\nx"}),
    "addresses reference ../x": _lb(**{"spec.endpoints.0.addressesReference.name": "../x"}),
}


async def test_hostile_loadbalancers_are_refused_by_the_api_server_and_by_kubelb(kube, tenants):
    ns = await tenants()
    by_api_server, by_kubelb = [], []
    for i, (what, body) in enumerate(HOSTILE.items()):
        if body["metadata"]["name"] == "web":  # a bad field, not a bad name: one object each
            body = {**body, "metadata": {"name": f"web-{i}"}}
        try:
            await kube.create(resources.LOAD_BALANCERS, copy.deepcopy(body), namespace=ns)
        except (errors.InvalidError, errors.BadRequestError):
            pass
        else:
            by_api_server.append(what)
        try:
            registry.parse({"apiVersion": "kubelb.k8c.io/v1alpha1", "kind": "LoadBalancer",
                            **body, "metadata": {**body["metadata"], "namespace": ns}})  # fmt: skip
        except api_errors.APIValidationError:
            pass
        else:
            by_kubelb.append(what)
    assert by_api_server == [], f"the API server accepted: {by_api_server}"
    assert by_kubelb == [], f"kubelb accepted: {by_kubelb}"
    # The same LoadBalancer, well-formed, is accepted: the refusals are the fields' doing.
    await kube.create(resources.LOAD_BALANCERS, _lb(), namespace=ns)


@pytest.mark.parametrize("namespace", ["a b", "../kube-system", "A", "n" * 64])
async def test_hostile_namespace_is_refused(kube, namespace):
    body = _lb()
    with pytest.raises(errors.ApiError):
        await kube.create(resources.LOAD_BALANCERS, body, namespace=namespace)
    with pytest.raises(api_errors.APIValidationError, match="namespace"):
        registry.parse({"apiVersion": "kubelb.k8c.io/v1alpha1", "kind": "LoadBalancer",
                        **body, "metadata": {"name": "web", "namespace": namespace}})  # fmt: skip
