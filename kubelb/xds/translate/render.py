"""Canonical text form of `Resources`: the protobuf JSON mapping (camelCase fields, `@type` on
Any), keys sorted. Used by the golden tests and `kubelb translate --to xds`."""

from __future__ import annotations

import json
from typing import Any

import yaml
from google.protobuf import json_format

from kubelb.xds import translate

KINDS = ("listeners", "clusters", "endpoints", "routes", "secrets")


def to_dict(message: Any) -> dict[str, Any]:
    # Through JSON text: MessageToDict returns OrderedDicts for Any, which YAML cannot dump.
    out: dict[str, Any] = json.loads(json_format.MessageToJson(message, sort_keys=True))
    return out


def to_json_dicts(resources: translate.Resources) -> dict[str, list[dict[str, Any]]]:
    """{"listeners": [...], "clusters": [...], "endpoints": [...], "routes": [...]} in resource
    order."""
    return {kind: [to_dict(m) for m in getattr(resources, kind)] for kind in KINDS}


def dump_yaml(data: Any) -> str:
    """YAML with sorted keys, 2-space indent, block style, final newline."""
    return yaml.safe_dump(
        data, sort_keys=True, indent=2, default_flow_style=False, allow_unicode=True, width=4096
    )


def to_yaml(resources: translate.Resources) -> str:
    """One YAML document mapping each non-empty kind to its resources."""
    dicts = {kind: items for kind, items in to_json_dicts(resources).items() if items}
    return dump_yaml(dicts)
