"""Small helpers shared by the simulator tests."""

from __future__ import annotations

from simulation.clock import Clock


class ManualClock(Clock):
    """Exchange time == data time, moved (or frozen) by the test."""

    def __init__(self, t: int) -> None:
        self.t = t

    def now_ms(self) -> int:
        return self.t

    def data_now(self) -> int | None:
        return self.t

    @property
    def shift_ms(self) -> int:
        return 0
