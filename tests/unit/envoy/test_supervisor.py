from __future__ import annotations

from kubelb.envoy import supervisor


def test_restarts_back_off_doubling_up_to_half_a_minute() -> None:
    delays = [supervisor.RESTART_BACKOFF.delay(n) for n in range(8)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
