"""Network latency per request: normal, clipped to [min, max], with optional spikes (spec: 50 ms)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class LatencyModel:
    mean_ms: float = 50.0
    std_ms: float = 20.0
    min_ms: float = 10.0
    max_ms: float = 200.0
    spike_probability: float = 0.0  # share of requests that hit a spike
    spike_ms: float = 1000.0  # added on a spike (beyond max_ms: spikes are the outliers)
    enabled: bool = True
    seed: int = 0
    _rng: np.random.Generator = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not 0 <= self.min_ms <= self.max_ms:
            raise ValueError("latency: need 0 <= min_ms <= max_ms")
        if self.std_ms < 0 or not 0 <= self.spike_probability <= 1:
            raise ValueError("latency: std_ms >= 0 and 0 <= spike_probability <= 1")
        self._rng = np.random.default_rng(self.seed)

    def sample_ms(self) -> float:
        """One round trip in milliseconds (simulated time)."""
        if not self.enabled:
            return 0.0
        ms = float(np.clip(self._rng.normal(self.mean_ms, self.std_ms), self.min_ms, self.max_ms))
        if self.spike_probability and self._rng.random() < self.spike_probability:
            ms += self.spike_ms
        return ms
