"""Per-model circuit breaker: a model that keeps failing is skipped for a cool-down period.

After ``failures`` consecutive failed attempts (or a Retry-After longer than the router will
wait) the model is *open*: requests go straight to the next model in the chain. Once the
cool-down has passed, the next request probes it; a success closes the circuit, a failure
opens it again for another cool-down.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass


@dataclass
class _State:
    consecutive_failures: int = 0
    open_until: float = 0.0


class CircuitBreaker:
    """Thread-safe health book keyed by model identity (``provider/model@api_base``)."""

    def __init__(self, clock=time.monotonic):
        self._clock = clock
        self._lock = threading.Lock()
        self._states: dict[str, _State] = {}

    def is_open(self, key: str) -> bool:
        """True while the model is cooling down and should be skipped."""
        with self._lock:
            state = self._states.get(key)
            return state is not None and state.open_until > self._clock()

    def record_success(self, key: str) -> None:
        with self._lock:
            self._states.pop(key, None)

    def record_failure(self, key: str, *, threshold: int, cooldown: float) -> bool:
        """Count a failed attempt; returns True when this failure opened the circuit."""
        with self._lock:
            state = self._states.setdefault(key, _State())
            state.consecutive_failures += 1
            if state.consecutive_failures >= max(1, threshold) and cooldown > 0:
                state.open_until = self._clock() + cooldown
                return True
            return False

    def open_for(self, key: str, seconds: float) -> None:
        """Skip the model for ``seconds`` (the provider told us when to come back)."""
        with self._lock:
            state = self._states.setdefault(key, _State())
            state.open_until = max(state.open_until, self._clock() + seconds)

    def reset(self) -> None:
        with self._lock:
            self._states.clear()
