"""The vendored Gateway API CRDs are complete, consistent with their pin, and ship in the wheel."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import yaml

from kubelb.api import gatewayapi

ROOT = Path(__file__).resolve().parents[3]
VENDORED = ROOT / "configs" / "crds" / "gateway-api"
STANDARD_KINDS = {
    "BackendTLSPolicy",
    "Gateway",
    "GatewayClass",
    "GRPCRoute",
    "HTTPRoute",
    "ListenerSet",
    "ReferenceGrant",
    "TLSRoute",
}
EXPERIMENTAL_KINDS = STANDARD_KINDS | {"TCPRoute", "UDPRoute", "XBackendTrafficPolicy", "XMesh"}
EXPECTED_KINDS = {"standard": STANDARD_KINDS, "experimental": EXPERIMENTAL_KINDS}
LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
UPGRADE_POLICY_KINDS = ["ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"]


def test_the_package_reads_the_vendored_folder() -> None:
    assert gatewayapi.DATA_DIR.resolve() == VENDORED.resolve()


def test_version_is_the_module_version_pinned_in_go_mod() -> None:
    go_mod = (ROOT / "hack" / "gateway-api" / "go.mod").read_text()
    pinned = re.search(r"^require sigs\.k8s\.io/gateway-api (v\S+)$", go_mod, re.MULTILINE)
    assert pinned is not None, go_mod
    assert gatewayapi.version() == pinned.group(1)
    assert re.fullmatch(r"v\d+\.\d+\.\d+", gatewayapi.version())
    go_sum = (ROOT / "hack" / "gateway-api" / "go.sum").read_text()
    assert f"sigs.k8s.io/gateway-api {pinned.group(1)} h1:" in go_sum


@pytest.mark.parametrize("channel", gatewayapi.CHANNELS)
def test_every_file_parses_as_crds_or_the_upgrade_policy(channel: gatewayapi.Channel) -> None:
    kinds: list[str] = []
    for path in gatewayapi.files(channel):
        docs = [d for d in yaml.load_all(path.read_text(), Loader=LOADER) if d is not None]
        assert docs, path
        kinds.extend(d["kind"] for d in docs)
    crd_count = kinds.count(gatewayapi.CRD_KIND)
    assert sorted(kinds) == [gatewayapi.CRD_KIND] * crd_count + UPGRADE_POLICY_KINDS


@pytest.mark.parametrize("channel", gatewayapi.CHANNELS)
def test_each_channel_has_exactly_its_kinds(channel: gatewayapi.Channel) -> None:
    crds = gatewayapi.crds(channel)
    kinds = [c["spec"]["names"]["kind"] for c in crds]
    assert sorted(kinds) == sorted(EXPECTED_KINDS[channel])


@pytest.mark.parametrize("channel", gatewayapi.CHANNELS)
def test_crds_carry_the_version_and_channel_of_their_folder(channel: gatewayapi.Channel) -> None:
    for crd in gatewayapi.crds(channel):
        annotations = crd["metadata"]["annotations"]
        name = crd["metadata"]["name"]
        assert annotations[gatewayapi.BUNDLE_VERSION_ANNOTATION] == gatewayapi.version(), name
        assert annotations[gatewayapi.CHANNEL_ANNOTATION] == channel, name
        spec = crd["spec"]
        assert name == f"{spec['names']['plural']}.{spec['group']}"
        assert any(v["served"] and v["storage"] for v in spec["versions"]), name


@pytest.mark.parametrize("channel", gatewayapi.CHANNELS)
def test_file_names_follow_the_crds_they_hold(channel: gatewayapi.Channel) -> None:
    names = {p.name for p in gatewayapi.files(channel)}
    expected = {
        f"{c['spec']['group']}_{c['spec']['names']['plural']}.yaml"
        for c in gatewayapi.crds(channel)
    }
    assert names == expected | {"gateway.networking.k8s.io_vap_safeupgrades.yaml"}


def test_standard_core_kinds_are_served_as_v1() -> None:
    served = {
        c["spec"]["names"]["kind"]: {v["name"] for v in c["spec"]["versions"] if v["served"]}
        for c in gatewayapi.crds("standard")
    }
    for kind in ("GatewayClass", "Gateway", "HTTPRoute", "GRPCRoute"):
        assert "v1" in served[kind], kind


def test_copies_are_independent() -> None:
    first = gatewayapi.crds("standard")
    first[0]["metadata"]["name"] = "changed"
    assert gatewayapi.crds("standard")[0]["metadata"]["name"] != "changed"
    docs = gatewayapi.documents("standard")
    assert len(docs) == len(first) + len(UPGRADE_POLICY_KINDS)


def test_unknown_channel_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown Gateway API channel"):
        gatewayapi.files("beta")  # type: ignore[arg-type]


def test_package_data_globs_cover_every_vendored_file() -> None:
    # The wheel holds only what these globs match; a file they miss would be absent when installed.
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    globs = config["tool"]["setuptools"]["package-data"]["kubelb"]
    package = ROOT / "kubelb"
    shipped = {p.resolve() for pattern in globs for p in package.glob(pattern)}
    vendored = {p.resolve() for p in VENDORED.rglob("*") if p.is_file()}
    assert vendored
    assert vendored <= shipped, sorted(str(p) for p in vendored - shipped)
