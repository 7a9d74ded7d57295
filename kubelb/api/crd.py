"""CustomResourceDefinitions generated from the API models: the models are the one source of truth.

Input: the pydantic models and, per kind, the names, scope, short names and printer columns
below (as upstream declares them). Output: CRD objects (dicts) whose `openAPIV3Schema` is a
structural Kubernetes schema: every `$ref` inlined, Optional's `anyOf [X, null]` collapsed to X,
no titles, only upstream's defaults (fields marked with `meta.crd_default`), enums, bounds,
`required`, CEL rules as `x-kubernetes-validations`, int-or-string and preserve-unknown-fields
where the models say so, and `metadata` left as `type: object`. `kubelb crds` writes them.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from kubelb.api import (
    addresses,
    config,
    labels,
    loadbalancer,
    meta,
    route,
    syncsecret,
    tenant,
    tenantstate,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class PrinterColumn:
    """One `kubectl get` column."""

    name: str
    json_path: str
    type: str = "string"

    def render(self) -> dict[str, str]:
        return {"jsonPath": self.json_path, "name": self.name, "type": self.type}


@dataclass(frozen=True, slots=True, kw_only=True)
class Resource:
    """How one kind is served: names, scope, columns."""

    model: type[meta.KubeObject]
    plural: str
    scope: str = "Namespaced"
    short_names: tuple[str, ...] = ()
    columns: tuple[PrinterColumn, ...] = ()

    @property
    def kind(self) -> str:
        return self.model.KIND

    @property
    def name(self) -> str:
        return f"{self.plural}.{meta.GROUP}"

    @property
    def file_name(self) -> str:
        return f"{meta.GROUP}_{self.plural}.yaml"


def _label_column(name: str, key: str) -> PrinterColumn:
    return PrinterColumn(name=name, json_path=".metadata.labels." + key.replace(".", "\\."))


_ORIGIN_NAME = _label_column("OriginName", labels.ORIGIN_NAME)
_ORIGIN_NAMESPACE = _label_column("OriginNamespace", labels.ORIGIN_NAMESPACE)
_AGE = PrinterColumn(name="Age", json_path=".metadata.creationTimestamp", type="date")
_PHASE = PrinterColumn(name="Phase", json_path=".status.phase")
_EDITION = PrinterColumn(name="Edition", json_path=".status.version.edition")

RESOURCES: tuple[Resource, ...] = (
    Resource(
        model=loadbalancer.LoadBalancer,
        plural="loadbalancers",
        short_names=("lb",),
        columns=(
            _ORIGIN_NAME,
            _ORIGIN_NAMESPACE,
            PrinterColumn(name="Hostname", json_path=".status.hostname.hostname"),
        ),
    ),
    Resource(
        model=route.Route,
        plural="routes",
        columns=(
            _ORIGIN_NAME,
            _ORIGIN_NAMESPACE,
            _label_column("OriginResource", labels.ORIGIN_RESOURCE_KIND),
        ),
    ),
    Resource(model=addresses.Addresses, plural="addresses"),
    Resource(
        model=syncsecret.SyncSecret,
        plural="syncsecrets",
        columns=(PrinterColumn(name="Type", json_path=".type"), _PHASE, _AGE),
    ),
    Resource(model=tenant.Tenant, plural="tenants", scope="Cluster", columns=(_PHASE, _AGE)),
    Resource(model=tenantstate.TenantState, plural="tenantstates", columns=(_EDITION,)),
    Resource(
        model=config.Config,
        plural="configs",
        columns=(
            _EDITION,
            PrinterColumn(name="Version", json_path=".status.version.gitVersion"),
        ),
    ),
)

_TYPE_META = {
    "apiVersion": {
        "description": "APIVersion defines the versioned schema of this representation of an "
        "object.",
        "type": "string",
    },
    "kind": {
        "description": "Kind is a string value representing the REST resource this object "
        "represents.",
        "type": "string",
    },
    "metadata": {"type": "object"},
}

# Keys pydantic emits that a CRD schema must not carry.
_DROPPED = ("title", "examples", meta.CRD_DEFAULT)


class SchemaError(ValueError):
    """A model produced a JSON schema that has no structural Kubernetes equivalent."""


def build(resource: Resource) -> dict[str, Any]:
    """The CRD object for one kind."""
    version: dict[str, Any] = {"name": meta.VERSION}
    if resource.columns:
        version["additionalPrinterColumns"] = [c.render() for c in resource.columns]
    version["schema"] = {"openAPIV3Schema": openapi_schema(resource.model)}
    version["served"] = True
    version["storage"] = True
    version["subresources"] = {"status": {}}
    names: dict[str, Any] = {
        "kind": resource.kind,
        "listKind": f"{resource.kind}List",
        "plural": resource.plural,
    }
    if resource.short_names:
        names["shortNames"] = list(resource.short_names)
    names["singular"] = resource.kind.lower()
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": resource.name},
        "spec": {
            "group": meta.GROUP,
            "names": names,
            "scope": resource.scope,
            "versions": [version],
        },
    }


def build_all() -> dict[str, dict[str, Any]]:
    """Every CRD, keyed by its file name (`kubelb.k8c.io_<plural>.yaml`)."""
    return {r.file_name: build(r) for r in RESOURCES}


def openapi_schema(model: type[meta.KubeObject]) -> dict[str, Any]:
    """The structural openAPIV3Schema of a top-level model."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs: dict[str, Any] = raw.pop("$defs", {})
    schema = _convert(raw, defs, "")
    properties = schema.setdefault("properties", {})
    properties.update(copy.deepcopy(_TYPE_META))
    ordered = {k: properties[k] for k in ("apiVersion", "kind", "metadata")}
    ordered.update({k: v for k, v in properties.items() if k not in ordered})
    schema["properties"] = ordered
    required = [r for r in schema.get("required", []) if r not in ordered or r in ("spec",)]
    if required:
        schema["required"] = required
    else:
        schema.pop("required", None)
    return schema


def _convert(node: dict[str, Any], defs: dict[str, Any], path: str) -> dict[str, Any]:
    node = dict(node)
    node = _inline_refs(node, defs)
    if "anyOf" in node:
        node = _collapse_any_of(node, defs, path)
    keep_default = bool(node.get(meta.CRD_DEFAULT))
    if not keep_default:
        node.pop("default", None)
    for key in _DROPPED:
        node.pop(key, None)
    if isinstance(node.get("description"), str):
        # Docstrings wrap at 100 columns; a description is one paragraph.
        node["description"] = " ".join(node["description"].split())
    if "const" in node:
        node["enum"] = [node.pop("const")]
    # Bounds pydantic could not express natively (constraints after a validator) leak as ge/le.
    for loose, strict in (("ge", "minimum"), ("le", "maximum")):
        if loose in node:
            node[strict] = node.pop(loose)
    if "properties" in node:
        node["type"] = "object"
        node["properties"] = {
            name: _convert(sub, defs, f"{path}.{name}") for name, sub in node["properties"].items()
        }
        if not node["properties"]:
            del node["properties"]
    additional = node.pop("additionalProperties", None)
    if isinstance(additional, dict):
        node["additionalProperties"] = _convert(additional, defs, f"{path}[*]")
    elif (
        additional is True
        and node.get("type") == "object"
        and "properties" not in node
        and not _is_model(node)
    ):
        # dict[str, Any]: an embedded object we keep verbatim. An empty model stays pruned.
        node[meta.PRESERVE_UNKNOWN] = True
    node.pop("x-kubelb-model", None)
    if isinstance(node.get("items"), dict):
        node["items"] = _convert(node["items"], defs, f"{path}[*]")
    if "type" not in node and not node.get(meta.PRESERVE_UNKNOWN) and "anyOf" not in node:
        raise SchemaError(f"{path or '<root>'}: no type in generated schema: {node}")
    return node


def _inline_refs(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    if "allOf" in node and len(node["allOf"]) == 1:
        node = {**node.pop("allOf")[0], **node}
    ref = node.pop("$ref", None)
    if ref is None:
        return node
    target = dict(defs[ref.rsplit("/", 1)[-1]])
    if target.get("type") == "object":
        target["x-kubelb-model"] = True
    # The field's own keys (description, default, CEL rules) win over the referenced model's.
    return _inline_refs({**target, **node}, defs)


def _is_model(node: dict[str, Any]) -> bool:
    return bool(node.get("x-kubelb-model"))


def _collapse_any_of(node: dict[str, Any], defs: dict[str, Any], path: str) -> dict[str, Any]:
    branches = [_inline_refs(dict(b), defs) for b in node.pop("anyOf")]
    branches = [b for b in branches if b.get("type") != "null"]
    if node.get(meta.INT_OR_STRING):
        node.pop("type", None)
        node["anyOf"] = [{"type": "integer"}, {"type": "string"}]
        return node
    if len(branches) != 1:
        raise SchemaError(f"{path}: a union of {len(branches)} types is not structural")
    branch = branches[0]
    if branch.get(meta.INT_OR_STRING):
        merged = {**node, **branch}
        merged.pop("anyOf", None)
        return _collapse_any_of({**merged, "anyOf": branch.get("anyOf", [])}, defs, path)
    # Field-level keys (description, extras) win; the branch brings type and constraints.
    return {**branch, **node}
