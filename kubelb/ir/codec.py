"""Dict (YAML/JSON) form of the IR, for golden files, `kubelb translate --to ir` and debugging.

`to_dict` omits fields equal to their defaults so documents stay short; `from_dict` rejects
unknown keys so a typo in a golden case fails loudly instead of being ignored.
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from typing import Any, TypeVar

from kubelb.ir import proxy

T = TypeVar("T")


class IRDecodeError(ValueError):
    """A dict does not describe a valid IR object; the message names the path."""


def to_dict(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        out: dict[str, Any] = {}
        for f in dataclasses.fields(obj):
            if not f.compare:
                continue
            value = getattr(obj, f.name)
            if _is_default(f, value):
                continue
            out[_camel(f.name)] = to_dict(value)
        return out
    if isinstance(obj, tuple | list):
        return [to_dict(v) for v in obj]
    if isinstance(obj, enum.Enum):
        return obj.value
    return obj


def proxy_config_from_dict(data: Any) -> proxy.ProxyConfig:
    return from_dict(proxy.ProxyConfig, data)


def from_dict(cls: type[T], data: Any, path: str = "") -> T:
    if not isinstance(data, dict):
        raise IRDecodeError(f"{path or '<root>'}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {_camel(f.name): f for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise IRDecodeError(f"{path or '<root>'}: unknown field(s) {', '.join(unknown)}")
    kwargs: dict[str, Any] = {}
    for key, f in fields.items():
        if key in data:
            kwargs[f.name] = _decode(hints[f.name], data[key], f"{path}.{key}".lstrip("."))
    try:
        return cls(**kwargs)
    except TypeError as e:
        raise IRDecodeError(f"{path or '<root>'}: {e}") from e


def _decode(tp: Any, value: Any, path: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (types.UnionType, typing.Union):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _decode(args[0], value, path)
    if origin is tuple:
        if not isinstance(value, list):
            raise IRDecodeError(f"{path}: expected a list")
        (item,) = typing.get_args(tp)[:1]
        return tuple(_decode(item, v, f"{path}[{i}]") for i, v in enumerate(value))
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        try:
            return tp(value)
        except ValueError:
            allowed = ", ".join(str(m.value) for m in tp)
            raise IRDecodeError(f"{path}: {value!r} is not one of {allowed}") from None
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, path)  # type: ignore[arg-type]
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(tp, type) and not isinstance(value, tp):
        raise IRDecodeError(f"{path}: expected {tp.__name__}, got {type(value).__name__}")
    return value


def _is_default(f: dataclasses.Field[Any], value: Any) -> bool:
    if f.default is not dataclasses.MISSING:
        return bool(value == f.default)
    if f.default_factory is not dataclasses.MISSING:
        return bool(value == f.default_factory())
    return False


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.title() for p in rest)
