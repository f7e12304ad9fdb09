"""Clocks: what "now" means for the gateway.

Two time axes exist. *Data time* is the timestamp stored with a candle. *Exchange time* is what the
gateway tells clients (serverTime, kline open times). A static clock serves history as it is
(exchange time == data time, every candle visible): the mode for `download-data` and backtests.
A replay clock shifts history so that it plays "live": exchange time follows the wall clock (times
`speed`), and only candles that have opened by then are visible, the last one still forming.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from datetime import UTC, datetime

from simulation.timeframes import DAY_MS


def wall_ms() -> int:
    return int(time.time() * 1000)


class Clock(ABC):
    @abstractmethod
    def now_ms(self) -> int:
        """Exchange time now (serverTime)."""

    @abstractmethod
    def data_now(self) -> int | None:
        """Data-time cutoff: candles opened after it are invisible. None: no cutoff."""

    @property
    @abstractmethod
    def shift_ms(self) -> int:
        """exchange time = data time + shift_ms."""

    def to_exchange(self, data_ms: int) -> int:
        return data_ms + self.shift_ms

    def to_data(self, exchange_ms: int) -> int:
        return exchange_ms - self.shift_ms

    def describe(self) -> str:
        return type(self).__name__


class StaticClock(Clock):
    """History as recorded; serverTime is the wall clock."""

    def now_ms(self) -> int:
        return wall_ms()

    def data_now(self) -> int | None:
        return None

    @property
    def shift_ms(self) -> int:
        return 0

    def describe(self) -> str:
        return "static (historical timestamps, all candles visible)"


class ReplayClock(Clock):
    """History replayed as live, starting at data time `start_ms` when the clock is created.

    The shift is a whole number of days so candle boundaries of every interval up to 1d stay
    aligned; replay therefore starts on start_ms's day at the current time of day.
    `speed` > 1 runs exchange time faster than the wall clock (accelerated simulation; the bot
    must then see the same accelerated time, e.g. under libfaketime with the same anchor).
    """

    def __init__(self, start_ms: int, speed: float = 1.0, wall_anchor_ms: int | None = None) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.speed = float(speed)
        self.wall_anchor_ms = wall_ms() if wall_anchor_ms is None else int(wall_anchor_ms)
        self._shift = (self.wall_anchor_ms // DAY_MS - start_ms // DAY_MS) * DAY_MS

    def now_ms(self) -> int:
        return self.wall_anchor_ms + int((wall_ms() - self.wall_anchor_ms) * self.speed)

    def data_now(self) -> int | None:
        return self.now_ms() - self._shift

    @property
    def shift_ms(self) -> int:
        return self._shift

    def describe(self) -> str:
        start = datetime.fromtimestamp(self.data_now() / 1000, tz=UTC)
        return f"replay x{self.speed:g}, data time now {start:%Y-%m-%d %H:%M:%S} UTC, shift {self._shift // DAY_MS} days"
