"""A refused snapshot's reason stands only while that snapshot is what is wanted."""

from __future__ import annotations

import pytest

from kubelb.xds import cache
from tests.unit.xds.test_cache import lb


def test_a_refusal_ends_when_the_served_snapshot_is_wanted_again():
    first, big = lb(1), lb(2)
    c = cache.SnapshotCache(admit=lambda node, snap: "too big" if snap is big else None)
    c.set_snapshot("t", first)
    with pytest.raises(cache.RefusedSnapshotError):
        c.set_snapshot("t", big)
    assert c.status("t").refused == "too big"
    assert not c.set_snapshot("t", lb(1))  # the bad input is gone: the same content again
    assert c.get_snapshot("t") is first
    assert c.status("t").refused is None
