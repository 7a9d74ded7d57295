"""SNI choice as Envoy matches filter chains: exact, then the longest `*.suffix`, then the
default; nothing without a default."""

from __future__ import annotations

import pytest

from kubelb.dataplane import tls_names

TABLE = tls_names.ServerNames(
    [
        (("a.example.test",), "exact-a"),
        (("*.example.test",), "wild"),
        (("*.deep.example.test", "other.test"), "deep"),
    ]
)


@pytest.mark.parametrize(
    ("sni", "choice"),
    [
        ("a.example.test", "exact-a"),
        ("A.Example.TEST", "exact-a"),
        ("b.example.test", "wild"),
        ("x.y.example.test", "wild"),  # a wildcard covers any number of labels
        ("x.deep.example.test", "deep"),  # the longest suffix wins
        ("x.y.deep.example.test", "deep"),
        ("deep.example.test", "wild"),
        ("other.test", "deep"),
        ("example.test", None),  # a wildcard needs a label of its own
        (".example.test", None),
        ("elsewhere.test", None),
        ("", None),
        (None, None),
    ],
)
def test_choice(sni: str | None, choice: str | None) -> None:
    assert TABLE.pick(sni) == choice


def test_the_default_takes_any_other_name_and_none() -> None:
    table = tls_names.ServerNames([(("a.test",), "a"), ((), "default")])
    assert [table.pick(n) for n in ("a.test", "b.test", None)] == ["a", "default", "default"]
    assert len(table) == 2
