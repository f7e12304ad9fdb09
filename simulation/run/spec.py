"""What one simulation run is: strategy, mode, window, market source, clock, faults."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

MODES = ("dry-run", "paper")
CLOCKS = ("compute", "constant", "wall")  # see simulation.run.sessionclock; "wall": a live upstream, no fake clock


@dataclass
class RunSpec:
    strategy: str
    config: str
    mode: str
    speed: float  # session seconds per second of compute: the constant clock's rate, 1 on the others
    start_ms: int  # window start (data time == simulated wall time)
    end_ms: int
    pairs: list[str]
    timeframe: str
    out: str
    faults: str | None = None
    kill_at: float | None = None  # fraction of the window at which the bot is killed -9 and restarted
    latency: bool = True
    seed: int = 0
    warmup_s: float = 0.0  # simulated seconds the bot gets to start before the window opens
    sim_config: str | None = None
    wallet: float = 1000.0
    stoploss_on_exchange: bool = False
    datadir: str | None = None  # freqtrade feather dir; None: the synthetic market (seed = `seed`)
    synthetic_days: float = 120.0
    synthetic_start: str = "2024-01-01"
    path_model: str = "random"  # the forming candle's path (simulation.marketdata.path)
    path_seed: int = 0
    # Paper trading on a relayed market: the bot talks to a relay gateway (`simulation.gateway
    # --upstream`) that records every candle and book it relays into OUTDIR/recording; the backtest then
    # replays exactly that recording. "local": the upstream is a second gateway replaying this spec's
    # market (accelerated, testable offline); an exchange id: the live exchange, on the wall clock.
    upstream: str | None = None
    upstream_url: str | None = None
    relay_history: int = 1000  # candles per timeframe the relay fetches at start (the bot's startup)
    clock: str = "compute"
    metrics_port: int | None = None  # the session's exporter of the live comparison (sim_live_*)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"--mode must be one of {MODES}")
        if self.clock not in CLOCKS:
            raise ValueError(f"unknown clock {self.clock!r}: choose one of compute, constant")
        if not self.speed > 0:
            raise ValueError("--speed must be positive")
        if self.clock != "constant" and self.speed != 1:
            raise ValueError(
                f"--speed is the constant clock's rate: the {self.clock} clock runs compute at the real rate"
            )
        if self.end_ms <= self.start_ms:
            raise ValueError("empty timerange")
        if self.stoploss_on_exchange and self.mode != "paper":
            raise ValueError("--stoploss-on-exchange needs --mode paper (the venue holds the stop order)")
        if self.kill_at is not None and not 0 < self.kill_at < 1:
            raise ValueError("--kill-bot-at must be a fraction of the window in (0, 1)")
        if self.upstream is not None:
            from simulation.marketdata.relay import UPSTREAMS

            if self.upstream not in ("local", *UPSTREAMS):
                raise ValueError(f"--upstream must be 'local' or one of {UPSTREAMS}")
            if self.live and self.clock != "wall":
                raise ValueError("a live upstream runs on the wall clock (no --clock, no --speed)")
            if self.relay_history < 1:
                raise ValueError("--relay-history must be at least 1 candle")
        self.path()  # validates the path model and seed

    @property
    def live(self) -> bool:
        """A real exchange upstream: no fake clock, the window is wall-clock time."""
        return self.upstream not in (None, "local")

    @property
    def recording(self) -> Path | None:
        """Where the relay records what it relayed (freqtrade feather + books/), when there is a relay."""
        return Path(self.out) / "recording" if self.upstream else None

    def analysis_source_args(self) -> list[str]:
        """The market the backtest replays: the relay's recording when the bot traded on a relay."""
        return ["--datadir", str(self.recording.resolve())] if self.upstream else self.source_args()

    def path(self):
        from simulation.marketdata.path import PathModel

        return PathModel(self.path_model, self.path_seed)

    def source_args(self) -> list[str]:
        """How the gateway opens the market (its --seed comes separately)."""
        if self.datadir:
            return ["--datadir", self.datadir]
        return [
            "--synthetic",
            "--days",
            f"{self.synthetic_days:g}",
            "--start",
            self.synthetic_start,
            "--timeframe",
            self.synthetic_timeframe,
        ]

    @property
    def synthetic_timeframe(self) -> str:
        """The synthetic market's finest candles: 5m, or the strategy's own when it is finer (1m)."""
        from simulation.timeframes import interval_ms

        return self.timeframe if interval_ms(self.timeframe) < interval_ms("5m") else "5m"

    def open_store(self):
        """The market the bot saw, in-process (for signal prices and marks): the recording on a relay."""
        from simulation.marketdata import CandleStore, open_source
        from simulation.synthetic import SyntheticConfig

        if self.upstream:
            return CandleStore(open_source(datadir=self.recording, pairs=self.pairs), self.path())
        if self.datadir:
            return CandleStore(open_source(datadir=Path(self.datadir), pairs=self.pairs), self.path())
        synth = SyntheticConfig(
            seed=self.seed, days=self.synthetic_days, start=self.synthetic_start, timeframe=self.synthetic_timeframe
        )
        return CandleStore(open_source(synthetic=synth, pairs=self.pairs), self.path())

    @property
    def out_dir(self) -> Path:
        return Path(self.out)

    @property
    def userdir(self) -> Path:
        """The run's own freqtrade user dir: FreqAI models of one run never leak into another."""
        return (Path(self.out) / "user_data").resolve()

    @property
    def window(self) -> tuple[pd.Timestamp, pd.Timestamp]:
        """The compared window [start, end) as UTC timestamps."""
        return pd.Timestamp(self.start_ms, unit="ms", tz="UTC"), pd.Timestamp(self.end_ms, unit="ms", tz="UTC")

    @property
    def fake_start_ms(self) -> int:
        return self.start_ms - int(self.warmup_s * 1000)

    def freqai(self) -> dict:
        """The user's config's `freqai` section, as freqtrade resolves it ({} without one)."""
        from freqtrade.configuration.load_config import load_from_files

        return load_from_files([self.config]).get("freqai") or {}

    def timeframes(self) -> list[str]:
        """Timeframes the strategy needs: its own, the 1h regime and FreqAI's extra timeframes."""
        from simulation.timeframes import interval_ms

        fa = self.freqai()
        tfs = {self.timeframe, "1h", *fa.get("feature_parameters", {}).get("include_timeframes", [])}
        return sorted(tfs, key=interval_ms)

    def save(self, path: Path) -> Path:
        path.write_text(json.dumps(asdict(self), indent=2))
        return path

    @classmethod
    def load(cls, path: Path) -> RunSpec:
        return cls(**json.loads(Path(path).read_text()))


def strategy_digest(strategy: str) -> str | None:
    """sha256 of the strategy's file in strategies/ (None when it lives elsewhere)."""
    import hashlib
    import re

    from simulation.paths import REPO_ROOT

    for path in (REPO_ROOT / "strategies").glob("*.py"):
        if re.search(rf"^class {re.escape(strategy)}\b", path.read_text(), re.MULTILINE):
            return hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    return None


def freqtrade_version() -> str:
    from importlib.metadata import version

    return version("freqtrade")
