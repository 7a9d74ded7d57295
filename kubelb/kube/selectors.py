"""Label and field selectors as the API server reads them, for filtering objects in memory.

`parse_labels("app=web,tier!=db,env in (a,b),!legacy,owner")` and
`parse_fields("metadata.name=x,metadata.namespace!=y")` return a `Selector`; `Selector.matches(obj)`
says whether a raw object is selected. A malformed selector raises `ValueError` (the API server
answers 400 to it). Field selectors compare the string form of any dotted path (a missing field
is ""): the API server accepts only a few fields per kind, so anything it accepts works here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from kubelb.kube import objects

Test = Callable[[Mapping[str, Any]], bool]

_KEY = r"[A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?"
_VALUE = r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?"
_SET = re.compile(rf"^({_KEY})\s+(in|notin)\s+\((.*)\)$")
_EQUALITY = re.compile(rf"^({_KEY})\s*(==|!=|=)\s*({_VALUE})$")
_EXISTS = re.compile(rf"^(!?)\s*({_KEY})$")
_FIELD = re.compile(r"^([A-Za-z0-9_.\-\[\]]+)\s*(==|!=|=)\s*(.*)$")


@dataclass(frozen=True, slots=True)
class Selector:
    """All requirements must hold; the empty selector selects everything."""

    tests: tuple[Test, ...] = ()
    text: str = ""

    def matches(self, obj: Mapping[str, Any]) -> bool:
        return all(test(obj) for test in self.tests)


EVERYTHING = Selector()


def parse_labels(text: str | None) -> Selector:
    if not text or not text.strip():
        return EVERYTHING
    return Selector(tuple(_label_requirement(part.strip()) for part in _split(text)), text)


def parse_fields(text: str | None) -> Selector:
    if not text or not text.strip():
        return EVERYTHING
    tests = []
    for part in _split(text):
        match = _FIELD.match(part.strip())
        if match is None:
            raise ValueError(f"invalid field selector requirement {part!r}")
        path, op, value = match.group(1), match.group(2), match.group(3).strip()
        tests.append(_field_test(path, op != "!=", value))
    return Selector(tuple(tests), text)


def _split(text: str) -> list[str]:
    """Split on commas outside parentheses (`a in (x,y),b` is two requirements)."""
    parts, depth, start = [], 0, 0
    for i, char in enumerate(text):
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    if depth != 0 or any(not p.strip() for p in parts):
        raise ValueError(f"invalid selector {text!r}")
    return parts


def _label_requirement(part: str) -> Test:
    if match := _SET.match(part):
        key, op = match.group(1), match.group(3)
        values = frozenset(v.strip() for v in match.group(4).split(","))
        if not all(re.fullmatch(_VALUE, v) for v in values):
            raise ValueError(f"invalid label selector requirement {part!r}")
        if op == "in":
            return lambda obj: objects.labels(obj).get(key) in values
        return lambda obj: objects.labels(obj).get(key) not in values
    if match := _EQUALITY.match(part):
        key, op, value = match.group(1), match.group(3), match.group(4)
        if op == "!=":
            return lambda obj: objects.labels(obj).get(key) != value
        return lambda obj: objects.labels(obj).get(key) == value
    if match := _EXISTS.match(part):
        negated, key = match.group(1) == "!", match.group(2)
        if negated:
            return lambda obj: key not in objects.labels(obj)
        return lambda obj: key in objects.labels(obj)
    raise ValueError(f"invalid label selector requirement {part!r}")


def _field_test(path: str, equal: bool, value: str) -> Test:
    def test(obj: Mapping[str, Any]) -> bool:
        found = objects.lookup(obj, path)
        if isinstance(found, bool):
            found = str(found).lower()
        text = "" if found is None else str(found)
        return (text == value) == equal

    return test
