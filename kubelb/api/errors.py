"""Validation errors for API objects, worded the way the Kubernetes API server words them.

Input: a pydantic `ValidationError` raised while parsing a raw object. Output: `APIValidationError`,
whose message names the object and, for each failure, the field path in Kubernetes style
(`spec.endpoints[0].addresses[0]`) and the reason. Callers show it in a condition or a log line.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, NamedTuple

import pydantic
import pydantic_core


class FieldError(NamedTuple):
    """One failing field: its path (`spec.ports[0].port`) and why it failed."""

    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}" if self.path else self.reason


class APIValidationError(ValueError):
    """An API object failed validation. `causes` lists every failing field."""

    def __init__(self, causes: Sequence[FieldError], *, kind: str = "", name: str = "") -> None:
        self.causes = tuple(causes)
        self.kind = kind
        self.name = name
        what = " ".join(p for p in (kind, name) if p) or "object"
        detail = "; ".join(str(c) for c in self.causes) or "invalid"
        super().__init__(f"{what} is invalid: {detail}")


def field_path(loc: Sequence[int | str]) -> str:
    """Kubernetes-style path from a pydantic location: ints become `[i]`, dict keys `[key]`."""
    out = ""
    for i, part in enumerate(loc):
        if isinstance(part, int):
            out += f"[{part}]"
        elif part == "[key]":
            # pydantic appends "[key]" after the offending dict key; the key already printed.
            continue
        elif i + 1 < len(loc) and loc[i + 1] == "[key]":
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


_TYPE_NAMES = {
    "int_type": "integer",
    "int_parsing": "integer",
    "int_from_float": "integer",
    "string_type": "string",
    "bool_type": "boolean",
    "bool_parsing": "boolean",
    "dict_type": "object",
    "model_type": "object",
    "model_attributes_type": "object",
    "list_type": "array",
    "tuple_type": "array",
}


def _quote(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else repr(value)


def _reason(error: pydantic_core.ErrorDetails) -> str:
    kind = error["type"]
    ctx: dict[str, Any] = dict(error.get("ctx") or {})
    value = error.get("input")
    if kind == "missing":
        return "Required value"
    if kind in ("enum", "literal_error"):
        allowed = ", ".join(f'"{v}"' for v in re.findall(r"'([^']*)'", str(ctx.get("expected"))))
        return f"Unsupported value: {_quote(value)}: supported values: {allowed}"
    if kind in _TYPE_NAMES:
        return f"Invalid value: {_short(value)}: must be of type {_TYPE_NAMES[kind]}"
    if kind in ("greater_than_equal", "greater_than"):
        op = ">=" if kind == "greater_than_equal" else ">"
        bound = ctx.get("ge", ctx.get("gt"))
        return f"Invalid value: {value!r}: should be {op} {bound}"
    if kind in ("less_than_equal", "less_than"):
        op = "<=" if kind == "less_than_equal" else "<"
        bound = ctx.get("le", ctx.get("lt"))
        return f"Invalid value: {value!r}: should be {op} {bound}"
    if kind == "too_short":
        return f"Invalid value: must have at least {ctx.get('min_length')} item(s)"
    if kind == "string_too_short":
        return f"Invalid value: {_quote(value)}: should be at least {ctx.get('min_length')} chars"
    if kind == "string_too_long":
        return f"Too long: may not be longer than {ctx.get('max_length')}"
    if kind == "string_pattern_mismatch":
        return f"Invalid value: {_quote(value)}: should match '{ctx.get('pattern')}'"
    if kind == "extra_forbidden":
        return "Forbidden: unknown field"
    message = str(error["msg"])
    if kind == "value_error":
        message = message.removeprefix("Value error, ")
        return f"Invalid value: {message}"
    return f"Invalid value: {_short(value)}: {message}"


def _short(value: Any) -> str:
    text = _quote(value)
    return text if len(text) <= 60 else text[:57] + "..."


def from_pydantic(
    exc: pydantic.ValidationError, *, kind: str = "", name: str = "", prefix: Sequence[str] = ()
) -> APIValidationError:
    """Convert pydantic's error into ours, one `FieldError` per failure, in input order."""
    causes = [
        FieldError(field_path([*prefix, *error["loc"]]), _reason(error))
        for error in exc.errors()
        if not _is_consequence(error)
    ]
    return APIValidationError(causes, kind=kind, name=name)


def _is_consequence(error: pydantic_core.ErrorDetails) -> bool:
    """A list "too short" only because some of its items failed (reported on their own)."""
    if error["type"] != "too_short":
        return False
    value = error.get("input")
    minimum = (error.get("ctx") or {}).get("min_length", 0)
    return isinstance(value, list | tuple) and len(value) >= minimum
