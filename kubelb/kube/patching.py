"""Patch algorithms on raw objects, for the in-memory API server (`memory`).

- `merge_patch`: JSON merge patch (RFC 7386): maps merge, `null` deletes, lists replace.
- `json_patch`: JSON patch (RFC 6902): add, remove, replace, move, copy, test.
- `strategic_merge_patch`: an approximation of Kubernetes' strategic merge patch: like a merge
  patch, except that lists of maps merge item by item on a key every item has (`name`, `port`,
  `type` or `uid`, the merge keys of the built-in kinds kubelb patches), and `$patch: delete`
  removes an item. Other directives are ignored.
- Field paths for server-side apply: `leaf_paths` lists the fields an applied configuration
  sets (maps are descended, lists are atomic), `get_path`/`set_path`/`delete_path` act on them.

Every function returns a new value and leaves its inputs alone. A patch that cannot apply raises
`PatchError`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, TypeVar

Path = tuple[str, ...]
T = TypeVar("T")

_MERGE_KEYS = ("name", "port", "type", "uid")
_MISSING = object()


class PatchError(ValueError):
    """The patch does not apply to the object."""


def clone(value: T) -> T:
    """A deep copy of decoded JSON (dicts, lists, scalars), several times faster than
    `copy.deepcopy`, which the in-memory server would otherwise spend most of its time in."""
    if isinstance(value, dict):
        return {k: clone(v) for k, v in value.items()}  # type: ignore[return-value]
    if isinstance(value, list):
        return [clone(v) for v in value]  # type: ignore[return-value]
    return value


def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return clone(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    if isinstance(patch, list) and isinstance(target, list):
        return _merge_lists(target, patch)
    if not isinstance(patch, dict):
        return clone(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key.startswith("$"):
            continue
        if value is None:
            result.pop(key, None)
        else:
            result[key] = strategic_merge_patch(result.get(key), value)
    return result


def _merge_lists(target: list[Any], patch: list[Any]) -> list[Any]:
    key = _merge_key(target, patch)
    if key is None:
        return [strategic_merge_patch(None, item) for item in patch]
    result = [clone(item) for item in target]
    for item in patch:
        position = next((i for i, old in enumerate(result) if old.get(key) == item.get(key)), -1)
        if item.get("$patch") == "delete":
            if position >= 0:
                del result[position]
        elif position >= 0:
            result[position] = strategic_merge_patch(result[position], item)
        else:
            result.append(strategic_merge_patch(None, item))
    return result


def _merge_key(target: list[Any], patch: list[Any]) -> str | None:
    items = [*target, *patch]
    if not items or not all(isinstance(item, dict) for item in items):
        return None
    return next((k for k in _MERGE_KEYS if all(k in item for item in items)), None)


def json_patch(target: Any, operations: Any) -> Any:
    if not isinstance(operations, list):
        raise PatchError("a JSON patch is a list of operations")
    doc = clone(target)
    for op in operations:
        if not isinstance(op, dict) or not isinstance(op.get("path"), str):
            raise PatchError(f"invalid operation {op!r}")
        doc = _operation(doc, op)
    return doc


def _operation(doc: Any, op: dict[str, Any]) -> Any:
    kind, path = op.get("op"), _pointer(op["path"])
    if kind == "test":
        if _resolve(doc, path) != op.get("value"):
            raise PatchError(f"test failed at {op['path']}")
        return doc
    if kind == "remove":
        _resolve(doc, path)
        return _remove(doc, path)
    if kind in ("add", "replace"):
        if "value" not in op:
            raise PatchError(f"{kind} at {op['path']} has no value")
        if kind == "replace":
            _resolve(doc, path)
            doc = _remove(doc, path)
        return _add(doc, path, clone(op["value"]))
    if kind in ("move", "copy"):
        source = op.get("from")
        if not isinstance(source, str):
            raise PatchError(f"{kind} at {op['path']} has no from")
        value = clone(_resolve(doc, _pointer(source)))
        if kind == "move":
            doc = _remove(doc, _pointer(source))
        return _add(doc, path, value)
    raise PatchError(f"unknown operation {kind!r}")


def _pointer(text: str) -> list[str]:
    if text == "":
        return []
    if not text.startswith("/"):
        raise PatchError(f"invalid JSON pointer {text!r}")
    return [part.replace("~1", "/").replace("~0", "~") for part in text[1:].split("/")]


def _resolve(doc: Any, path: list[str]) -> Any:
    value = doc
    for part in path:
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            raise PatchError(f"path /{'/'.join(path)} does not exist")
    return value


def _add(doc: Any, path: list[str], value: Any) -> Any:
    if not path:
        return value
    parent = _resolve(doc, path[:-1])
    last = path[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        index = len(parent) if last == "-" else int(last) if last.isdigit() else -1
        if not 0 <= index <= len(parent):
            raise PatchError(f"invalid list index {last!r}")
        parent.insert(index, value)
    else:
        raise PatchError(f"cannot add below a {type(parent).__name__}")
    return doc


def _remove(doc: Any, path: list[str]) -> Any:
    if not path:
        return None
    parent = _resolve(doc, path[:-1])
    if isinstance(parent, dict):
        del parent[path[-1]]
    else:
        del parent[int(path[-1])]
    return doc


# --- server-side apply field sets ---
def leaf_paths(value: Any, prefix: Path = ()) -> Iterator[Path]:
    """Every field set in `value`: maps are descended (an empty one sets nothing), anything
    else is a leaf."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from leaf_paths(item, (*prefix, key))
    elif prefix:
        yield prefix


def get_path(value: Any, path: Path) -> Any:
    """The value at `path`, or `MISSING` (compare with `is`)."""
    for part in path:
        if not isinstance(value, dict) or part not in value:
            return _MISSING
        value = value[part]
    return value


MISSING = _MISSING


def set_path(target: dict[str, Any], path: Path, value: Any) -> None:
    """Set `path` in place, creating maps on the way (a non-map on the way is replaced)."""
    node = target
    for part in path[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[path[-1]] = clone(value)


def delete_path(target: dict[str, Any], path: Path) -> None:
    """Remove `path` in place, and the maps it leaves empty."""
    trail: list[tuple[dict[str, Any], str]] = []
    node: Any = target
    for part in path:
        if not isinstance(node, dict) or part not in node:
            return
        trail.append((node, part))
        node = node[part]
    for parent, key in reversed(trail):
        del parent[key]
        if parent or parent is target:
            return
