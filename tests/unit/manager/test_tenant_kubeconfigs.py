"""Tenant kubeconfig: server URL resolution order, CA choice, content, token claims, rotation."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
import yaml

from kubelb.kube import kubeconfig as kube_kubeconfig
from kubelb.manager import kubeconfigs

MANAGER = "https://manager.example:6443"
MANAGER_CA = b"manager-ca"
ROOT_CA = {"data": {"ca.crt": "root-ca"}}


def cluster_info(server="https://info.example:443", ca: bytes | None = b"info-ca"):
    cluster = {"server": server}
    if ca is not None:
        cluster["certificate-authority-data"] = base64.b64encode(ca).decode()
    config = {"apiVersion": "v1", "kind": "Config", "clusters": [{"name": "", "cluster": cluster}]}
    return {"metadata": {"name": "cluster-info", "namespace": "kube-public"},
            "data": {"kubeconfig": yaml.safe_dump(config)}}  # fmt: skip


def endpoint_slice(addresses=("10.0.0.5",), port_name="https", ready=True):
    return {
        "ports": [{"name": "other", "port": 1}, {"name": port_name, "port": 6443}],
        "endpoints": [{"addresses": list(addresses), "conditions": {"ready": ready}}],
    }


def resolve(**overrides):
    args: dict[str, Any] = {"override": None, "override_ca_pem": None, "cluster_info": None,
            "endpoint_slice": None, "root_ca": None, "manager_url": MANAGER,
            "manager_ca_pem": MANAGER_CA}  # fmt: skip
    args.update(overrides)
    return kubeconfigs.resolve_server(**args)


S = kubeconfigs.ServerSource


@pytest.mark.parametrize(
    ("overrides", "url", "ca", "source"),
    [
        ({}, MANAGER, MANAGER_CA, S.MANAGER),
        ({"root_ca": ROOT_CA}, MANAGER, b"root-ca", S.MANAGER),
        ({"endpoint_slice": endpoint_slice()}, "https://10.0.0.5:6443", MANAGER_CA,
         S.ENDPOINT_SLICE),
        ({"endpoint_slice": endpoint_slice(), "root_ca": ROOT_CA}, "https://10.0.0.5:6443",
         b"root-ca", S.ENDPOINT_SLICE),
        ({"endpoint_slice": endpoint_slice(("fd00::1",))}, "https://[fd00::1]:6443", MANAGER_CA,
         S.ENDPOINT_SLICE),
        # cluster-info wins over the EndpointSlice, and brings its own CA.
        ({"cluster_info": cluster_info(), "endpoint_slice": endpoint_slice(), "root_ca": ROOT_CA},
         "https://info.example:443", b"info-ca", S.CLUSTER_INFO),
        # ... or, without one, the cluster root CA.
        ({"cluster_info": cluster_info(ca=None), "root_ca": ROOT_CA}, "https://info.example:443",
         b"root-ca", S.CLUSTER_INFO),
        # The override wins over everything.
        ({"override": "https://lb.example", "cluster_info": cluster_info(),
          "endpoint_slice": endpoint_slice(), "root_ca": ROOT_CA}, "https://lb.example",
         b"root-ca", S.OVERRIDE),
        ({"override": "https://lb.example", "override_ca_pem": b"lb-ca"}, "https://lb.example",
         b"lb-ca", S.OVERRIDE),
    ],
    ids=["manager", "manager-root-ca", "slice", "slice-root-ca", "slice-ipv6", "cluster-info",
         "cluster-info-no-ca", "override", "override-ca"],
)  # fmt: skip
def test_server_resolution_order(overrides, url, ca, source):
    assert resolve(**overrides) == kubeconfigs.Server(url, ca, source)


@pytest.mark.parametrize(
    "info",
    [
        {"data": {}},
        {"data": {"kubeconfig": "not: [a, kubeconfig"}},
        {"data": {"kubeconfig": "clusters: []"}},
        {"data": {"kubeconfig": "clusters: [{cluster: {server: ''}}]"}},
    ],
    ids=["no-key", "bad-yaml", "no-clusters", "empty-server"],
)
def test_unusable_cluster_info_falls_through_to_the_slice(info):
    assert resolve(cluster_info=info, endpoint_slice=endpoint_slice()).source is S.ENDPOINT_SLICE


@pytest.mark.parametrize(
    "sl",
    [
        endpoint_slice(port_name="http"),
        endpoint_slice(ready=False),
        endpoint_slice(addresses=()),
        {"endpoints": [{"addresses": ["10.0.0.5"]}]},
    ],
    ids=["no-https-port", "not-ready", "no-address", "no-ports"],
)
def test_unusable_endpoint_slice_falls_through_to_the_manager(sl):
    assert resolve(endpoint_slice=sl).source is S.MANAGER


def test_kubeconfig_content_round_trips():
    text = kubeconfigs.desired_kubeconfig(server="https://h:6443", ca_pem=b"PEM", token="t0k",
                                          namespace="tenant-a")  # fmt: skip
    document = yaml.safe_load(text)
    context = document["contexts"][0]["context"]
    assert document["current-context"] == document["contexts"][0]["name"]
    assert context == {"cluster": "kubelb", "user": "kubelb-ccm", "namespace": "tenant-a"}
    assert document["clusters"][0]["cluster"] == {
        "server": "https://h:6443",
        "certificate-authority-data": base64.b64encode(b"PEM").decode(),
    }
    assert document["users"][0]["user"] == {"token": "t0k"}
    assert kubeconfigs.parse_kubeconfig(text) == kubeconfigs.KubeconfigParts(
        "https://h:6443", b"PEM", "t0k", "tenant-a")  # fmt: skip
    # Deterministic: the same inputs give the same bytes (so an unchanged Secret is not rewritten).
    assert text == kubeconfigs.desired_kubeconfig(server="https://h:6443", ca_pem=b"PEM",
                                                  token="t0k", namespace="tenant-a")  # fmt: skip


async def test_kubeconfig_loads_with_the_kube_client(tmp_path):
    path = tmp_path / "kubelb"
    path.write_text(kubeconfigs.desired_kubeconfig(server="https://127.0.0.1:1", ca_pem=b"",
                                                   token="abc", namespace="tenant-a"))  # fmt: skip
    source = kube_kubeconfig.KubeconfigFile(path)
    try:
        api = await source.api()
        assert api.server == "https://127.0.0.1:1"
        assert api.auth is not None
        assert await api.auth.authorization() == "Bearer abc"
        assert source.namespace == "tenant-a"
    finally:
        await source.close()


@pytest.mark.parametrize("text", ["", "{}", "a: [", "current-context: x\ncontexts: []"])
def test_unreadable_kubeconfig_parses_as_none(text):
    assert kubeconfigs.parse_kubeconfig(text) is None


def jwt(claims):
    def part(obj):
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'RS256'})}.{part(claims)}.c2ln"


def test_token_claims_and_rotation_time():
    token = jwt(
        {
            "iat": 1000,
            "exp": 2000,
            "sub": "system:serviceaccount:tenant-a:kubelb-ccm",
            "kubernetes.io": {"serviceaccount": {"name": "kubelb-ccm", "uid": "u1"}},
        }
    )
    claims = kubeconfigs.token_claims(token)
    assert claims == kubeconfigs.TokenClaims(
        1000.0, 2000.0, "system:serviceaccount:tenant-a:kubelb-ccm", "u1"
    )
    assert claims.subject == kubeconfigs.service_account_subject("tenant-a", "kubelb-ccm")
    assert kubeconfigs.rotation_time(claims, 0.8) == 1800.0
    assert kubeconfigs.rotation_time(claims, 0.5) == 1500.0


@pytest.mark.parametrize(
    "token",
    ["", "opaque-legacy-token", "a.b", "a.!!!.c", jwt({"iat": 1, "sub": "x"}),
     jwt({"iat": "1", "exp": 2, "sub": "x"}), jwt(["not", "a", "mapping"])],
    ids=["empty", "opaque", "two-parts", "bad-base64", "no-exp", "string-iat", "list"],
)  # fmt: skip
def test_tokens_without_usable_claims(token):
    assert kubeconfigs.token_claims(token) is None
