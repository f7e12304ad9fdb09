"""Execution parameters from the `simulation` section of a config file (spec defaults)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from pathlib import Path

from simulation.book import BookParams
from simulation.execution.impact import ImpactModel
from simulation.execution.latency import LatencyModel
from simulation.execution.queue import QueueModel


@dataclass
class ExecutionParams:
    latency: LatencyModel = field(default_factory=LatencyModel)
    impact: ImpactModel = field(default_factory=ImpactModel)
    queue: QueueModel = field(default_factory=QueueModel)  # when resting limit orders fill
    book: BookParams = field(default_factory=BookParams)  # the synthetic book (spread model and scale)
    taker_fee: float = 0.001  # Binance spot, no BNB discount
    maker_fee: float = 0.001
    max_participation: float = 0.25  # share of the volume traded meanwhile a resting order may take
    match_interval_ms: int = 100  # venue matching tick (simulated time)

    @classmethod
    def from_file(cls, path: Path | str | None) -> ExecutionParams:
        """The `simulation` section of a JSON file (None: the defaults)."""
        if path is None:
            return cls()
        try:
            section = json.loads(Path(path).read_text()).get("simulation", {})
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: not valid JSON ({exc})") from None
        return cls.from_config(section)

    @classmethod
    def from_config(cls, section: dict | None) -> ExecutionParams:
        """Build from e.g. {"latency": {"mean_ms": 50}, "impact": {...}, "taker_fee": 0.001}."""
        section = dict(section or {})
        unknown = set(section) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown simulation settings: {sorted(unknown)}")
        kw: dict = {}
        for name, model in (
            ("latency", LatencyModel),
            ("impact", ImpactModel),
            ("queue", QueueModel),
            ("book", BookParams),
        ):
            if name in section:
                sub = section.pop(name)
                allowed = {f.name for f in fields(model) if not f.name.startswith("_")}
                bad = set(sub) - allowed
                if bad:
                    raise ValueError(f"unknown simulation.{name} settings: {sorted(bad)}; allowed {sorted(allowed)}")
                kw[name] = model(**sub)
        kw.update(section)
        params = cls(**kw)
        for name in ("taker_fee", "maker_fee"):
            if not 0 <= getattr(params, name) < 0.1:
                raise ValueError(f"simulation.{name} must be in [0, 0.1)")
        if not 0 < params.max_participation <= 1:
            raise ValueError("simulation.max_participation must be in (0, 1]")
        return params
