"""Choosing by TLS server name (SNI) the way Envoy chooses a filter chain.

Input: choices, each with its server names (lower-case, exact or `*.suffix`; none: the default).
Output: a `ServerNames` answering `pick(sni)`: the choice of the exact name, else of the longest
`*.suffix` covering it (any number of labels: `*.example.com` covers `a.b.example.com`), else the
default (which also takes a client sending no SNI), else None: the connection is refused. Used
for the certificate of a terminating listener and the route of a passthrough listener alike.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Generic, TypeVar

T = TypeVar("T")


class ServerNames(Generic[T]):
    __slots__ = ("_default", "_exact", "_wildcard")

    def __init__(self, choices: Iterable[tuple[Iterable[str], T]]) -> None:
        self._exact: dict[str, T] = {}
        # "*.example.com" is kept as ".example.com": the suffix it covers.
        self._wildcard: dict[str, T] = {}
        self._default: T | None = None
        for names, choice in choices:
            listed = False
            for name in names:
                listed = True
                name = name.lower()
                if name.startswith("*."):
                    self._wildcard.setdefault(name[1:], choice)
                else:
                    self._exact.setdefault(name, choice)
            if not listed and self._default is None:
                self._default = choice

    def pick(self, server_name: str | None) -> T | None:
        if server_name:
            name = server_name.lower()
            found = self._exact.get(name)
            if found is not None:
                return found
            if self._wildcard:
                # Longest suffix first: drop one leading (non-empty) label at a time.
                dot = name.find(".", 1)
                while dot != -1:
                    found = self._wildcard.get(name[dot:])
                    if found is not None:
                        return found
                    dot = name.find(".", dot + 1)
        return self._default

    def __len__(self) -> int:
        return len(self._exact) + len(self._wildcard) + (self._default is not None)
