"""Capped exponential backoff: the delay before retry number `failures` (0 = first retry).

Used by informers (watch/list errors), work queues (per-key reconcile failures) and the Envoy
supervisor (restarts of an exited Envoy). It never gives up: past the cap every retry waits `cap`
seconds. `jitter` spreads retries of many clients.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class Backoff:
    initial: float = 0.5
    cap: float = 30.0
    factor: float = 2.0
    # Each delay is multiplied by a random value in [1, 1 + jitter].
    jitter: float = 0.0

    def __post_init__(self) -> None:
        if self.initial < 0 or self.cap < self.initial or self.factor < 1 or self.jitter < 0:
            raise ValueError(f"invalid backoff {self}")

    def delay(self, failures: int) -> float:
        # Cap the exponent so large failure counts do not overflow a float.
        base = min(self.cap, self.initial * self.factor ** min(failures, 64))
        if self.jitter:
            base = min(self.cap, base * (1 + random.random() * self.jitter))
        return base
