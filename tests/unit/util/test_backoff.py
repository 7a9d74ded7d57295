from __future__ import annotations

import pytest

from kubelb.util import backoff


def test_doubles_until_the_cap_and_stays_there():
    b = backoff.Backoff(initial=0.5, cap=30.0)
    assert [b.delay(n) for n in range(8)] == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert b.delay(10_000) == 30.0  # never gives up, never overflows


def test_jitter_stays_within_its_bounds():
    b = backoff.Backoff(initial=1.0, cap=100.0, jitter=0.5)
    delays = [b.delay(2) for _ in range(200)]
    assert all(4.0 <= d <= 6.0 for d in delays)
    assert len(set(delays)) > 1


@pytest.mark.parametrize(
    "kwargs", [{"initial": -1}, {"initial": 5, "cap": 1}, {"factor": 0.5}, {"jitter": -0.1}]
)
def test_rejects_nonsense(kwargs):
    with pytest.raises(ValueError, match="invalid backoff"):
        backoff.Backoff(**kwargs)
