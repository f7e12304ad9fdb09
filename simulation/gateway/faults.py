"""Injectable gateway faults: timeouts, HTTP 5xx, 429 + Retry-After, stale order book, dropped connections.

Faults hit *before* the request reaches the venue, the way an overloaded front end fails: a faulted
order request never creates an order, so a client that handles errors correctly can neither lose
nor duplicate one. (A response lost *after* the venue acted is a different failure, which freqtrade
cannot reconcile for orders it never got an id for; we do not inject it.)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields

import numpy as np

KINDS = ("timeout", "5xx", "429", "stale_book", "drop")
ALIASES = {"5xx": "error_5xx", "429": "rate_limit"}


MAX_TIMEOUT_S = 120.0  # a hung request longer than this would only hang the client's test


@dataclass
class FaultSpec:
    timeout: float = 0.0  # probability per request: hang for timeout_s, then 504
    error_5xx: float = 0.0  # 503 with Binance's -1001
    rate_limit: float = 0.0  # 429 with Retry-After
    stale_book: float = 0.0  # depth / bookTicker served from an old snapshot
    drop: float = 0.0  # connection closed without a response
    timeout_s: float = 30.0  # simulated seconds a timed-out request hangs
    retry_after_s: int = 2
    stale_ms: int = 10_000
    seed: int = 0
    _rng: np.random.Generator = field(init=False, repr=False)

    def __post_init__(self) -> None:
        for name in ("timeout", "error_5xx", "rate_limit", "stale_book", "drop", "timeout_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise ValueError(f"{name} must be a number, got {value!r}")
        for name in ("retry_after_s", "stale_ms", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
        for name in ("timeout", "error_5xx", "rate_limit", "stale_book", "drop"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"fault probability {name} must be in [0, 1]")
        if not 0 < self.timeout_s <= MAX_TIMEOUT_S:
            raise ValueError(f"timeout_s must be in (0, {MAX_TIMEOUT_S}] seconds, got {self.timeout_s!r}")
        if self.retry_after_s > 3600 or self.stale_ms > 86_400_000:
            raise ValueError("retry_after_s must be <= 3600 and stale_ms <= 86400000")
        if self.seed >= 2**63:  # it is stored and read back as JSON by every admin client (int64)
            raise ValueError(f"seed must be < 2**63, got {self.seed}")
        self._rng = np.random.default_rng(self.seed)

    @classmethod
    def parse(cls, text: str | None, seed: int = 0) -> FaultSpec:
        """'timeout=0.01,5xx=0.05,429=0.02,stale_book=0.1,drop=0.01,retry_after_s=3'."""
        kw: dict = {"seed": seed}
        allowed = {f.name for f in fields(cls) if not f.name.startswith("_")}
        for part in filter(None, (text or "").split(",")):
            name, sep, value = part.partition("=")
            name = ALIASES.get(name.strip(), name.strip())
            if not sep or name not in allowed:
                raise ValueError(f"bad fault '{part}': use name=value with name in {sorted(allowed | set(ALIASES))}")
            kw[name] = float(value) if name not in ("retry_after_s", "stale_ms", "seed") else int(value)
        return cls(**kw)

    @property
    def active(self) -> bool:
        return any((self.timeout, self.error_5xx, self.rate_limit, self.stale_book, self.drop))

    def draw(self) -> str | None:
        """Which fault (if any) hits this request."""
        u = self._rng.random()
        for kind, p in (
            ("timeout", self.timeout),
            ("5xx", self.error_5xx),
            ("429", self.rate_limit),
            ("drop", self.drop),
        ):
            if u < p:
                return kind
            u -= p
        return None

    def stale(self) -> bool:
        return bool(self.stale_book) and self._rng.random() < self.stale_book

    def describe(self) -> dict:
        return {k: v for k, v in asdict(self).items() if not k.startswith("_")}
