import itertools

import pytest

from kubelb.util import naming


def test_join_keeps_dns_names_readable():
    assert naming.join("shop", "api.v1", "http", "tcp") == "shop/api.v1/http/tcp"


@pytest.mark.parametrize(
    ("one", "two"),
    [
        (("a-b", "c"), ("a", "b-c")),
        (("a/b", "c"), ("a", "b/c")),
        (("a%2Fb", "c"), ("a/b", "c")),
        (("a", ""), ("a/", "")),
    ],
)
def test_join_is_injective(one, two):
    assert naming.join(*one) != naming.join(*two)


def test_join_is_injective_over_awkward_parts():
    parts = ["", "a", "-", "/", "%", "%2F", "a-b", "a/b", "b", "ü", "#0"]
    names = {naming.join(x, y): (x, y) for x, y in itertools.product(parts, repeat=2)}
    assert len(names) == len(parts) ** 2
