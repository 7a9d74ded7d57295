"""Generated CRDs: structural, as upstream declares them, and the committed files are current."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubelb.api import crd
from kubelb.commands import crds as crds_command

REPO = Path(__file__).resolve().parents[3]
COMMITTED = REPO / "configs" / "crd"

# apiextensions.k8s.io/v1 JSONSchemaProps keys; anything else is rejected or meaningless.
SCHEMA_KEYS = {
    "type", "format", "description", "properties", "required", "items", "additionalProperties",
    "enum", "default", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "minLength",
    "maxLength", "pattern", "minItems", "maxItems", "uniqueItems", "minProperties",
    "maxProperties", "nullable", "anyOf", "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-embedded-resource", "x-kubernetes-int-or-string", "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys", "x-kubernetes-map-type", "x-kubernetes-validations",
}  # fmt: skip


def structural_problems(node: dict[str, Any], path: str = "") -> list[str]:
    """Kubernetes' structural-schema rules, as far as our generator can break them."""
    problems = [f"{path}: unknown key {k}" for k in node if k not in SCHEMA_KEYS]
    if "$ref" in node or "allOf" in node or "oneOf" in node or "not" in node:
        problems.append(f"{path}: $ref/allOf/oneOf/not")
    if "anyOf" in node:
        if not node.get("x-kubernetes-int-or-string") or node["anyOf"] != [
            {"type": "integer"},
            {"type": "string"},
        ]:
            problems.append(f"{path}: anyOf outside int-or-string")
    elif "type" not in node and not node.get("x-kubernetes-preserve-unknown-fields"):
        problems.append(f"{path}: neither type nor x-kubernetes-preserve-unknown-fields")
    if "properties" in node and "additionalProperties" in node:
        problems.append(f"{path}: properties and additionalProperties together")
    if node.get("x-kubernetes-embedded-resource") and node.get("type") != "object":
        problems.append(f"{path}: embedded resource is not an object")
    properties = node.get("properties", {})
    problems += [
        f"{path}: required {name} is not a property"
        for name in node.get("required", [])
        if name not in properties
    ]
    for name, sub in node.get("properties", {}).items():
        problems += structural_problems(sub, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        problems += structural_problems(node["items"], f"{path}[*]")
    if isinstance(node.get("additionalProperties"), dict):
        problems += structural_problems(node["additionalProperties"], f"{path}{{*}}")
    return problems


def schema_of(kind: str) -> dict[str, Any]:
    resource = next(r for r in crd.RESOURCES if r.kind == kind)
    schema: dict[str, Any] = crd.build(resource)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def walk(node: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    out = [(path, node)]
    for name, sub in node.get("properties", {}).items():
        out += walk(sub, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        out += walk(node["items"], f"{path}[*]")
    if isinstance(node.get("additionalProperties"), dict):
        out += walk(node["additionalProperties"], f"{path}{{*}}")
    return out


@pytest.mark.parametrize("resource", crd.RESOURCES, ids=lambda r: r.kind)
def test_schema_is_structural(resource: crd.Resource) -> None:
    schema = schema_of(resource.kind)
    assert structural_problems(schema) == []
    assert schema["properties"]["metadata"] == {"type": "object"}
    assert schema["type"] == "object"


def test_checker_catches_non_structural_schemas() -> None:
    bad = {
        "type": "object",
        "properties": {
            "a": {"$ref": "#/x"},
            "b": {"anyOf": [{"type": "string"}, {"type": "null"}]},
            "c": {"title": "C", "type": "string"},
            "d": {"description": "no type"},
        },
        "additionalProperties": {"type": "string"},
    }
    problems = structural_problems(bad)
    assert ": properties and additionalProperties together" in problems
    assert ".a: $ref/allOf/oneOf/not" in problems
    assert ".b: anyOf outside int-or-string" in problems
    assert ".c: unknown key title" in problems
    assert ".d: neither type nor x-kubernetes-preserve-unknown-fields" in problems


def test_names_scope_columns_as_upstream() -> None:
    got = {
        r.kind: (
            r.plural,
            r.scope,
            r.short_names,
            [(c.name, c.json_path, c.type) for c in r.columns],
        )
        for r in crd.RESOURCES
    }
    assert got == {
        "LoadBalancer": (
            "loadbalancers",
            "Namespaced",
            ("lb",),
            [
                ("OriginName", ".metadata.labels.kubelb\\.k8c\\.io/origin-name", "string"),
                ("OriginNamespace", ".metadata.labels.kubelb\\.k8c\\.io/origin-ns", "string"),
                ("Hostname", ".status.hostname.hostname", "string"),
            ],
        ),
        "Route": (
            "routes",
            "Namespaced",
            (),
            [
                ("OriginName", ".metadata.labels.kubelb\\.k8c\\.io/origin-name", "string"),
                ("OriginNamespace", ".metadata.labels.kubelb\\.k8c\\.io/origin-ns", "string"),
                (
                    "OriginResource",
                    ".metadata.labels.kubelb\\.k8c\\.io/origin-resource-kind",
                    "string",
                ),
            ],
        ),
        "Addresses": ("addresses", "Namespaced", (), []),
        "SyncSecret": (
            "syncsecrets",
            "Namespaced",
            (),
            [
                ("Type", ".type", "string"),
                ("Phase", ".status.phase", "string"),
                ("Age", ".metadata.creationTimestamp", "date"),
            ],
        ),
        "Tenant": (
            "tenants",
            "Cluster",
            (),
            [("Phase", ".status.phase", "string"), ("Age", ".metadata.creationTimestamp", "date")],
        ),
        "TenantState": (
            "tenantstates",
            "Namespaced",
            (),
            [("Edition", ".status.version.edition", "string")],
        ),
        "Config": (
            "configs",
            "Namespaced",
            (),
            [
                ("Edition", ".status.version.edition", "string"),
                ("Version", ".status.version.gitVersion", "string"),
            ],
        ),
    }
    for resource in crd.RESOURCES:
        version = crd.build(resource)["spec"]["versions"][0]
        assert version["subresources"] == {"status": {}}
        assert version["served"] is True
        assert version["storage"] is True


def test_only_upstream_defaults_reach_the_crd() -> None:
    defaults = {
        (kind, path): node["default"]
        for kind in ("LoadBalancer", "Route", "Config", "Tenant", "SyncSecret", "Addresses")
        for path, node in walk(schema_of(kind))
        if "default" in node
    }
    assert defaults == {
        ("LoadBalancer", ".spec.endpoints[*].ports[*].protocol"): "TCP",
        ("LoadBalancer", ".spec.ports[*].protocol"): "TCP",
        ("LoadBalancer", ".spec.type"): "ClusterIP",
        ("LoadBalancer", ".status.loadBalancer.ingress[*].ports[*].protocol"): "TCP",
        ("LoadBalancer", ".status.service.ports[*].protocol"): "TCP",
        ("Route", ".spec.endpoints[*].ports[*].protocol"): "TCP",
        ("Route", ".status.resources.services{*}.ports[*].protocol"): "TCP",
        ("Config", ".spec.envoyProxy.topology"): "shared",
        ("Config", ".spec.envoyProxy.replicas"): 3,
        ("Config", ".spec.envoyProxy.gracefulShutdown.drainTimeout"): "60s",
        ("Config", ".spec.envoyProxy.gracefulShutdown.minDrainDuration"): "5s",
        ("Config", ".spec.envoyProxy.gracefulShutdown.terminationGracePeriodSeconds"): 300,
    }


def test_validation_rules_reach_the_crd() -> None:
    lb = dict(walk(schema_of("LoadBalancer")))
    assert lb[".spec"]["required"] == ["endpoints"]
    assert lb[".spec.endpoints"]["minItems"] == 1
    assert lb[".spec.endpoints[*].addresses"]["minItems"] == 1
    assert lb[".spec.endpoints[*].ports"]["minItems"] == 1
    assert lb[".spec.ports[*]"]["required"] == ["port"]
    assert lb[".spec.ports[*].protocol"]["enum"] == ["TCP", "UDP"]
    assert lb[".spec.ports[*].port"]["format"] == "int32"
    assert lb[".spec.externalTrafficPolicy"]["enum"] == ["Cluster", "Local"]
    assert lb[".spec.persistence.type"]["enum"] == ["SourceIP"]
    assert lb[".spec.endpoints[*].addresses[*]"]["x-kubernetes-validations"] == [
        {
            "rule": "(has(self.ip) && self.ip != '') "
            "|| (has(self.hostname) && self.hostname != '')",
            "message": "either ip or hostname must be set",
        }
    ]
    assert lb[".spec.endpoints[*].addressesReference"]["x-kubernetes-map-type"] == "atomic"
    assert lb[".status.conditions"]["x-kubernetes-list-type"] == "map"
    assert lb[".status.service.ports[*].targetPort"]["x-kubernetes-int-or-string"] is True
    cfg = dict(walk(schema_of("Config")))
    assert cfg[".spec.envoyProxy.replicas"]["minimum"] == 1
    assert cfg[".spec.envoyProxy.topology"]["enum"] == ["shared", "dedicated", "global"]
    assert "oldSelf" in cfg[".spec.envoyProxy.topology"]["x-kubernetes-validations"][0]["rule"]
    limits = cfg[".spec.envoyProxy.headerLimits.maxRequestHeadersKb"]
    assert (limits["minimum"], limits["maximum"]) == (1, 8192)
    assert cfg[".spec.envoyProxy.gracefulShutdown.terminationGracePeriodSeconds"]["minimum"] == 30
    assert cfg[".spec.envoyProxy.affinity"]["x-kubernetes-preserve-unknown-fields"] is True
    assert cfg[".spec.gatewayAPI.class"]["type"] == "string"
    route = dict(walk(schema_of("Route")))
    resource = route[".spec.source.kubernetes.resource"]
    assert resource["x-kubernetes-preserve-unknown-fields"] is True
    assert resource["x-kubernetes-embedded-resource"] is True
    assert route[".spec.source.kubernetes.services[*]"]["x-kubernetes-embedded-resource"] is True
    assert route[".status.resources.route.status"]["x-kubernetes-preserve-unknown-fields"] is True
    secret = dict(walk(schema_of("SyncSecret")))
    assert secret[".data{*}"] == {"type": "string", "format": "byte"}
    # An empty model is pruned (as upstream), not a bag of anything.
    assert (
        "x-kubernetes-preserve-unknown-fields" not in dict(walk(schema_of("Addresses")))[".status"]
    )


def test_committed_crds_are_current() -> None:
    stale = crds_command.stale_files(COMMITTED)
    assert stale == [], f"stale CRDs {stale}: run `kubelb crds` and commit configs/crd"


def test_committed_crds_parse_as_yaml() -> None:
    for path in sorted(COMMITTED.glob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        assert doc["kind"] == "CustomResourceDefinition"
        assert path.name == f"kubelb.k8c.io_{doc['spec']['names']['plural']}.yaml"


def test_crds_command_writes_then_checks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def run(*argv: str) -> int:
        parser = argparse.ArgumentParser()
        crds_command.add_arguments(parser)
        return crds_command.run(parser.parse_args(["--output-dir", str(tmp_path), *argv]))

    assert run("--check") == 1  # nothing there yet
    assert run() == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(crd.build_all())
    assert run("--check") == 0
    (tmp_path / "kubelb.k8c.io_loadbalancers.yaml").write_text("edited\n")
    (tmp_path / "kubelb.k8c.io_gone.yaml").write_text("orphan\n")
    (tmp_path / "unrelated.txt").write_text("left alone\n")
    capsys.readouterr()
    assert run("--check") == 1
    err = capsys.readouterr().err
    assert "kubelb.k8c.io_loadbalancers.yaml" in err
    assert "kubelb.k8c.io_gone.yaml" in err
    assert run() == 0
    assert run("--check") == 0
    assert not (tmp_path / "kubelb.k8c.io_gone.yaml").exists()
    assert (tmp_path / "unrelated.txt").exists()
