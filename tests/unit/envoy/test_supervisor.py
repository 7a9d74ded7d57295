from __future__ import annotations

from kubelb.envoy import supervisor


def test_backoff_doubles_up_to_the_cap() -> None:
    b = supervisor.Backoff(initial=0.5, maximum=4.0)
    delays = [0.0]
    for _ in range(6):
        delays.append(b.next(delays[-1]))
    assert delays[1:] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
