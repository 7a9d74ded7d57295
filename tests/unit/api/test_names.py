"""Tenant-controlled names, namespaces, ports and hostnames are validated as Kubernetes does."""

from typing import Any

import pytest

from kubelb.api import errors, registry


def lb(name="web", namespace="shop", port=80, hostname=None, route_name=None):
    spec = {
        "ports": [{"name": "http", "port": port}],
        "endpoints": [{"addresses": [{"ip": "10.0.0.1"}], "ports": [{"name": "http", "port": 1}]}],
    }
    if hostname is not None:
        spec["hostname"] = hostname
    return {
        "apiVersion": "kubelb.k8c.io/v1alpha1",
        "kind": "LoadBalancer",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


@pytest.mark.parametrize(
    "name",
    ["a" * 300, "a" * 65536, "../../etc/passwd", "web\n", "web\nINFO forged", "Web", "-web", ""],
)
def test_hostile_name_is_refused(name):
    with pytest.raises(errors.APIValidationError, match=r"metadata\.name"):
        registry.parse(lb(name=name))


@pytest.mark.parametrize("namespace", ["a b", "a.b", "n" * 64, "kube_system", "ns\n"])
def test_hostile_namespace_is_refused(namespace):
    with pytest.raises(errors.APIValidationError, match=r"metadata\.namespace"):
        registry.parse(lb(namespace=namespace))


def test_longest_valid_names_are_accepted():
    subdomain = ".".join(["a" * 63] * 3 + ["b" * 61])  # 253 characters
    parsed = registry.parse(lb(name=subdomain, namespace="n" * 63, hostname="*.example.com"))
    assert parsed.metadata.name == subdomain


@pytest.mark.parametrize("port", [0, -1, 65536, 2**31])
def test_port_outside_1_65535_is_refused(port):
    with pytest.raises(errors.APIValidationError, match=r"spec\.ports\[0\]\.port"):
        registry.parse(lb(port=port))


@pytest.mark.parametrize("hostname", ["a b.com", "x\n", "a..b", "*", "a" * 254, "UP.example"])
def test_bad_hostname_is_refused(hostname):
    with pytest.raises(errors.APIValidationError, match=r"spec\.hostname"):
        registry.parse(lb(hostname=hostname))


def test_route_embedded_object_names_are_checked():
    route: dict[str, Any] = {
        "apiVersion": "kubelb.k8c.io/v1alpha1",
        "kind": "Route",
        "metadata": {"name": "r", "namespace": "shop"},
        "spec": {
            "endpoints": [{"addressesReference": {"name": "default"}, "ports": [{"port": 1}]}],
            "source": {"kubernetes": {"resource": {
                "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                "metadata": {"name": "../../etc/passwd", "namespace": "shop"},
            }}},
        },
    }  # fmt: skip
    with pytest.raises(errors.APIValidationError, match="subdomain"):
        registry.parse(route)
    route["spec"]["source"]["kubernetes"]["resource"]["metadata"]["name"] = "web"
    route["spec"]["source"]["kubernetes"]["services"] = [{"metadata": {"namespace": "a b"}}]
    with pytest.raises(errors.APIValidationError, match="label"):
        registry.parse(route)
