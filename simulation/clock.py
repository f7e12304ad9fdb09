"""Clocks: what "now" means for the gateway.

Two time axes exist. *Data time* is the timestamp stored with a candle. *Exchange time* is what the
gateway tells clients (serverTime, kline open times). A static clock serves history as it is
(exchange time == data time, every candle visible): the mode for `download-data` and backtests.
A replay clock shifts history so that it plays "live": exchange time follows the wall clock (times
`speed`), and only candles that have opened by then are visible, the last one still forming.

In a simulated session every process reads the session's clock through libfaketime, and the
supervisor (`simulation.run.sessionclock`) may move it forward while they all wait. The bottom of this
module is what a process of ours does to take part: publish when its event loop will next wake up
(`DeadlineBoard`, `BoardSelector`) and let the supervisor interrupt its waits after a jump
(`WAKE_SIGNAL`), so that they end at the new time instead of the old one.
"""

from __future__ import annotations

import asyncio
import math
import os
import selectors
import signal
import struct
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
        return (
            f"replay x{self.speed:g}, data time now {start:%Y-%m-%d %H:%M:%S} UTC, shift {self._shift // DAY_MS} days"
        )


class FrozenClock(Clock):
    """Another clock read at one exchange instant: what a message generated then says, whenever it is
    built (a stream push generated at a candle close and delivered after its network latency)."""

    def __init__(self, base: Clock, exchange_ms: int) -> None:
        self.base, self.t = base, int(exchange_ms)

    def now_ms(self) -> int:
        return self.t

    def data_now(self) -> int | None:
        return None if self.base.data_now() is None else self.t - self.base.shift_ms

    @property
    def shift_ms(self) -> int:
        return self.base.shift_ms


# -- taking part in a session clock that skips idle time --------------------------------------------
BOARD_ENV = "CRYPTOBOT_CLOCK_BOARD"  # where a process publishes its next wake-up (set by the supervisor)
# Interrupts a wait after the clock jumped: the interrupted call is retried against the new time. A
# real-time signal nothing else here uses; every process on the clock installs a handler for it.
WAKE_SIGNAL = signal.SIGRTMIN + 4 if hasattr(signal, "SIGRTMIN") else None
_RECORD = struct.Struct("<qqq")  # sequence, deadline ns on the session clock (-1: none), sequence again


class DeadlineBoard:
    """One process's next wake-up on the session clock, in a 24-byte file the supervisor reads.

    Written before the process blocks; the supervisor uses it only while every thread of the process
    is blocked, so the record it reads is the one of the wait in progress. A deadline is a time on the
    session clock, so a jump does not invalidate it."""

    NONE = -1

    def __init__(self, path: str | os.PathLike) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        self.seq = 0
        self.publish(None)

    def publish(self, deadline_ns: int | None) -> None:
        self.seq += 1
        os.pwrite(self.fd, _RECORD.pack(self.seq, self.NONE if deadline_ns is None else deadline_ns, self.seq), 0)

    @staticmethod
    def read(fd: int) -> int | None:
        """The published deadline (ns), None when there is none or the record is being written."""
        raw = os.pread(fd, _RECORD.size, 0)
        if len(raw) != _RECORD.size:
            return None
        seq, deadline, check = _RECORD.unpack(raw)
        return deadline if seq == check and deadline != DeadlineBoard.NONE else None


class BoardSelector(selectors.DefaultSelector):
    """The event loop's selector, publishing the loop's next timer before every blocking wait."""

    def __init__(self, board: DeadlineBoard) -> None:
        super().__init__()
        self.board = board

    def select(self, timeout: float | None = None):
        if timeout is not None and timeout > 0:
            ms = math.ceil(timeout * 1e3)  # epoll's resolution, as the selector rounds it: the wait ends there
            self.board.publish(time.time_ns() + ms * 1_000_000)
            return super().select(ms / 1e3)
        if timeout is None:
            self.board.publish(None)
        return super().select(timeout)


def _wake(signum, frame) -> None:
    """Nothing to do: the interrupted wait is retried against the clock as it is now."""


def session_event_loop() -> asyncio.AbstractEventLoop | None:
    """An event loop for a process on a session clock that skips idle time (None elsewhere)."""
    path = os.environ.get(BOARD_ENV)
    if not path:
        return None
    signal.signal(WAKE_SIGNAL, _wake)
    return asyncio.SelectorEventLoop(BoardSelector(DeadlineBoard(path)))
