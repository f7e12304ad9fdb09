"""The bench pipeline; `run_bench(spec)` writes OUT/summary.json and OUT/report.html."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Self

import numpy as np
import pandas as pd
from freqtrade.configuration.load_config import load_from_files
from freqtrade.exceptions import OperationalException
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from simulation.freqtrade_runner import run_freqtrade
from simulation.paths import REPO_ROOT
from simulation.synthetic import Scenario
from simulation.testbench import forecast
from simulation.testbench.jobs import FoldJob, StressJob, jobs_threads, parallel_map, run_fold, run_stress
from simulation.testbench.market import Market, cfg_args
from simulation.testbench.metrics import RATIO_BASIS, ratios_from_daily, trade_metrics, trades_frame
from simulation.testbench.montecarlo import monte_carlo
from simulation.testbench.recommendation import MIN_COMPARED_TRADES, recommend
from simulation.testbench.report import render_report
from simulation.timeframes import timerange_bounds, timerange_text

DAY = pd.Timedelta(days=1)
SYNTHETIC_START = pd.Timestamp("2024-01-01", tz="UTC")
STRESS = {  # spec scenarios on the synthetic market, placed mid-window
    "flash_crash": {"kind": "flash_crash", "hours": 2.0, "drop": 0.15},
    "low_liquidity": {"kind": "liquidity_drought", "hours": 48.0, "depth_factor": 0.1, "spread_factor": 5.0},
    "high_correlation": {"kind": "correlation_spike", "hours": 96.0, "rho": 0.95},
}


class PlainProgress:
    """The progress bars' interface for logs and pipes (rich draws bars only on a terminal): one
    timestamped line per step, so a long bench shows where it is in a plain log too."""

    def __init__(self, console: Console) -> None:
        self.console, self.tasks, self.t0 = console, {}, time.perf_counter()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        return None

    def add_task(self, description: str, total: int) -> int:
        self.tasks[len(self.tasks)] = [description, 0, total]
        self._line(len(self.tasks) - 1, "started")
        return len(self.tasks) - 1

    def advance(self, task: int) -> None:
        self.tasks[task][1] += 1
        self._line(task, "done" if self.tasks[task][1] >= self.tasks[task][2] else "")

    def _line(self, task: int, note: str) -> None:
        desc, done, total = self.tasks[task]
        self.console.print(
            f"[{time.perf_counter() - self.t0:6.0f} s] {desc}: {done}/{total} {note}".rstrip(),
            markup=False,
            highlight=False,
        )


TIMED_OUT = 124  # as timeout(1)


def sim_timeout_s(days: float) -> float:
    """The default wall-clock bound of one session: 20 min to start and report, plus 1 h per simulated
    day (a FreqAI day measured 11 min on 2 cores: more than 5x margin)."""
    return 1200.0 + 3600.0 * max(days, 0.0)


def run_bounded(cmd: list[str], log, timeout_s: float) -> int:
    """Run a session in its own process group and return its exit code; past `timeout_s` (or when the
    bench itself is interrupted) the whole group is stopped, so no bot or gateway outlives the bench:
    TIMED_OUT then."""
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        return proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        stop_group(proc, grace_s=60.0)
        return TIMED_OUT
    except BaseException:
        stop_group(proc, grace_s=10.0)
        raise


def stop_group(proc: subprocess.Popen, grace_s: float) -> None:
    """SIGINT first (the supervisor's own clean stop: bot, then gateway), then SIGKILL to the group."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGINT)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace_s)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


@dataclass
class BenchSpec:
    strategy: str
    config: Path
    out: Path = Path("user_data/testbench/latest")
    datadir: Path | None = None  # None: the synthetic market
    extra_configs: tuple[Path, ...] = ()
    pairs: tuple[str, ...] | None = None
    folds: int = 12
    fold_days: int = 30
    end: str | None = None  # YYYYMMDD, last fold's end (default: the data's last full day)
    seed: int = 42
    synthetic_days: int = 120
    mc_paths: int = 1000
    stress: tuple[str, ...] = tuple(STRESS)
    stress_days: int = 10
    sim_days: float = 1.0
    paper_days: float = 0.5
    sim_clock: str = "compute"
    sim_speed: float | None = None  # the constant clock's rate (default 300)
    sim_warmup: float | None = None  # session seconds before the window (default: simulation.run's)
    sim_timeout: float | None = None  # wall seconds per session (default: sim_timeout_s())
    skip_sim: bool = False
    workers: int = 1
    ray_address: str | None = None
    timings: dict = field(default_factory=dict)

    def configs(self) -> list[str]:
        return [str(self.config), *map(str, self.extra_configs)]

    def freqtrade_config(self) -> dict:
        try:
            return load_from_files(self.configs())
        except (OperationalException, OSError, ValueError) as exc:  # bad JSON, missing files
            raise SystemExit(f"error: cannot read {self.configs()}: {exc}") from None


def fold_ranges(end: pd.Timestamp, folds: int, fold_days: int) -> list[str]:
    """Consecutive, non-overlapping windows ending at `end` (each fold trains before its own start)."""
    if folds < 1 or fold_days < 1:
        raise ValueError("need at least one fold of at least one day")
    starts = [end - (folds - i) * fold_days * DAY for i in range(folds)]
    return [f"{s:%Y%m%d}-{s + fold_days * DAY:%Y%m%d}" for s in starts]


def synthetic_start(days: int, today: pd.Timestamp | None = None) -> pd.Timestamp:
    """2024-01-01, or the first of an earlier month for a market so long it would reach past today:
    freqtrade's download-data stops at the current time, so later synthetic candles never arrive."""
    today = (today or pd.Timestamp.now(tz="UTC")).normalize()
    latest = today - (days + 1) * DAY
    return min(SYNTHETIC_START, latest - pd.offsets.MonthBegin(1) if latest.day != 1 else latest)


def sim_window(
    trades: list[dict], sim_days: float, fallback_end: pd.Timestamp, min_trades: int = MIN_COMPARED_TRADES
) -> tuple[pd.Timestamp, pd.Timestamp, int]:
    """(start, end, backtest trades inside) of the simulated window, chosen from the walk-forward's own
    trades: the latest span of `sim_days` holding at least `min_trades` trades (opened and closed in it),
    else the span that holds the most. The comparison measures execution, so it needs trades to compare;
    a quiet final day would compare nothing with nothing. Without trades: the last `sim_days` before
    `fallback_end`."""
    span = pd.Timedelta(days=sim_days)
    spans = []
    for t in trades:
        if not t.get("close_date"):
            continue
        end = min(pd.Timestamp(t["close_date"]).ceil("h") + pd.Timedelta(hours=1), fallback_end)  # never past the data
        inside = sum(
            1
            for u in trades
            if u.get("close_date")
            and pd.Timestamp(u["open_date"]) >= end - span
            and pd.Timestamp(u["close_date"]) <= end
        )
        spans.append((inside >= min_trades, inside, end))
    if not spans:
        return fallback_end - span, fallback_end, 0
    # enough trades: the latest such span; otherwise the busiest (the latest among equals)
    _, inside, end = max(spans, key=lambda x: (x[0], 0 if x[0] else x[1], x[2]))
    return end - span, end, inside


def _data_end(spec: BenchSpec, synthetic: tuple[pd.Timestamp, int]) -> pd.Timestamp:
    if spec.end:
        return pd.Timestamp(spec.end, tz="UTC")
    if spec.datadir is None:
        start, days = synthetic
        return start + (days - 1) * DAY
    from simulation.marketdata import CandleStore, open_source

    store = CandleStore(open_source(datadir=spec.datadir, pairs=list(spec.pairs) if spec.pairs else None))
    return pd.Timestamp(store.data_end(), unit="ms", tz="UTC").normalize()


class Bench:
    def __init__(self, spec: BenchSpec, console: Console | None = None) -> None:
        self.spec = spec
        self.console = console or Console()
        self.cfg = spec.freqtrade_config()
        self.timeframe = self.cfg["timeframe"]
        self.wallet = float(self.cfg.get("dry_run_wallet", 1000))
        fa = self.cfg.get("freqai", {})
        self.identifier = fa.get("identifier") if fa.get("enabled") else None
        self.train_days = int(fa.get("train_period_days", 0)) if self.identifier else 0
        tfs = {self.timeframe, "1h", *fa.get("feature_parameters", {}).get("include_timeframes", [])}
        self.timeframes = sorted(tfs)
        self.out = spec.out
        self.userdir = self.out / "user_data"
        # The synthetic market covers every fold plus the training and indicator history before the first.
        self.market_days = max(spec.synthetic_days, spec.folds * spec.fold_days + self.train_days + 90)
        self.market_start = synthetic_start(self.market_days)

    def market(self, workdir: Path | None = None) -> Market:
        """The bench's market (not started): the datadir, or the synthetic market its folds need."""
        s = self.spec
        return Market(
            workdir or self.out / "market",
            source=s.datadir,
            seed=s.seed,
            days=self.market_days,
            start=f"{self.market_start:%Y-%m-%d}",
        )

    def run(self, market: Market | None = None) -> dict:
        """The whole bench; `market`: one already started (two benches on the same market), else its own."""
        s = self.spec
        self.out.mkdir(parents=True, exist_ok=True)
        run_freqtrade(["create-userdir", "--userdir", str(self.userdir)], self.out / "userdir.log")
        summary: dict = {
            "strategy": s.strategy,
            "config": [str(c) for c in s.configs()],
            "market": str(s.datadir) if s.datadir else f"synthetic (seed {s.seed})",
            "wallet": self.wallet,
        }
        columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
        bars = Progress(*columns, console=self.console) if self.console.is_terminal else PlainProgress(self.console)
        with bars as progress:
            with contextlib.nullcontext(market) if market is not None else self.market() as started:
                self._historical(started, summary, progress)
            summary["stress"] = self._stress(progress, summary["folds"])
        summary["timings_s"] = s.timings
        summary["spec"] = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(s).items() if k != "timings"}
        return _conclude(self.out, summary, Path(started.datadir))

    # -- stages -------------------------------------------------------------------------------
    def _historical(self, market: Market, summary: dict, progress: Progress) -> None:
        s = self.spec
        end = _data_end(s, (self.market_start, self.market_days))
        ranges = fold_ranges(end, s.folds, s.fold_days)
        first = timerange_bounds(ranges[0])[0]
        market.download(
            s.configs(),
            self.userdir,
            self.timeframes,
            f"{first - (self.train_days + 80) * DAY:%Y%m%d}-",
            list(s.pairs) if s.pairs else None,
        )
        summary["folds"], summary["scale_out"] = self._folds(market, ranges, progress)
        summary["aggregate"] = self._aggregate(summary["folds"], ranges)
        summary["forecast"] = self._forecast(Path(market.datadir), ranges)
        task = progress.add_task("Monte Carlo", total=1)
        summary["monte_carlo"] = monte_carlo(
            np.array(summary["aggregate"]["daily_returns"]),
            self.wallet,
            s.mc_paths,
            s.seed,
            self.cfg.get("risk", {}).get("max_drawdown", 0.10),
        )
        progress.advance(task)
        all_trades = [t for f in summary["folds"] for t in f["trades"]]
        summary["comparison"] = self._simulate(
            *sim_window(all_trades, s.sim_days, timerange_bounds(ranges[-1])[1]), progress
        )

    def _folds(self, market: Market, ranges: list[str], progress: Progress) -> tuple[list[dict], str]:
        s = self.spec
        jobs = [
            FoldJob(
                i,
                r,
                s.strategy,
                tuple(s.configs()),
                str(market.overlay),
                str(market.datadir),
                str(self.userdir),
                str(self.out / "folds" / f"{i:02d}"),
                self.wallet,
                self.identifier,
                s.fold_days,
                s.pairs,
                jobs_threads(s.workers, s.ray_address),
            )
            for i, r in enumerate(ranges)
        ]
        task = progress.add_task(f"walk-forward ({len(jobs)} folds)", total=len(jobs))
        t0 = time.perf_counter()
        results, where = parallel_map(run_fold, jobs, s.workers, s.ray_address, lambda _r: progress.advance(task))
        s.timings["folds"] = round(time.perf_counter() - t0, 1)
        return results, where

    def _forecast(self, datadir: Path, ranges: list[str]) -> dict | None:
        """The FreqAI model's own forecast in the folds (FreqAI's saved backtest predictions against the
        realized labels); None for a strategy without FreqAI."""
        if not self.identifier:
            return None
        from freqtrade.data.history import load_data

        pairs = list(self.spec.pairs or self.cfg.get("exchange", {}).get("pair_whitelist") or [])
        horizon = int(self.cfg["freqai"]["feature_parameters"]["label_period_candles"])
        try:  # the folds' results stand without it: a file it cannot read is named, not fatal
            candles = load_data(datadir, self.timeframe, pairs, fill_up_missing=False)
            frames = [
                forecast.fold_frame(
                    self.userdir / "models" / f"{self.identifier}-fold{i}", candles, horizon, *timerange_bounds(r)
                )
                for i, r in enumerate(ranges)
            ]
        except (OSError, ValueError, KeyError) as exc:
            return {"horizon": horizon, "candles": 0, "skipped": f"FreqAI's backtest predictions unreadable: {exc}"}
        return forecast.score(frames, horizon)

    def _aggregate(self, folds: list[dict], ranges: list[str]) -> dict:
        """Every fold's trades together; Sharpe and Sortino from the folds' daily marked-to-market returns
        in order (each fold starts from the wallet: its returns are its own), freqtrade's beside them."""
        trades = trades_frame([t for f in folds for t in f["trades"]])
        start = timerange_bounds(ranges[0])[0]
        end = timerange_bounds(ranges[-1])[1]
        out = trade_metrics(trades, self.wallet, start, end)
        daily = [r for f in sorted(folds, key=lambda f: f["fold"]) for r in f["metrics"].get("daily_returns", [])]
        out["sharpe_freqtrade"], out["sortino_freqtrade"] = out["sharpe"], out["sortino"]
        out["sharpe"], out["sortino"] = ratios_from_daily(daily)
        out["daily_returns"], out["ratio_basis"] = daily, RATIO_BASIS
        return out

    def _simulate(self, start: pd.Timestamp, end: pd.Timestamp, bt_trades: int, progress: Progress) -> dict:
        """The chosen window through the simulator (dry-run), then its last `--paper-days` on paper
        (skipped with --paper-days 0)."""
        s = self.spec
        if s.skip_sim:
            return {"skipped": "--skip-sim"}
        runs = {"simulation": ("dry-run", start)}
        if s.paper_days > 0:
            runs["paper"] = ("paper", max(start, end - pd.Timedelta(days=s.paper_days)))
        task = progress.add_task(" + ".join(runs), total=len(runs))
        merged = self.out / "bench-config.json"
        merged.write_text(json.dumps({"add_config_files": [str((REPO_ROOT / c).resolve()) for c in s.configs()]}))
        results = {}
        for name, (mode, begin) in runs.items():
            cmd = [
                sys.executable,
                "-m",
                "simulation.run",
                "--strategy",
                s.strategy,
                "--config",
                str(merged.resolve()),
                "--mode",
                mode,
                "--clock",
                s.sim_clock,
                "--timeframe",
                self.timeframe,
                "--timerange",
                timerange_text(begin, end),
                "--out",
                str((self.out / name).resolve()),
                "--seed",
                str(s.seed),
            ]
            if s.sim_clock == "constant":
                cmd += ["--speed", str(s.sim_speed or 300.0)]
            if s.sim_warmup is not None:
                cmd += ["--warmup", str(s.sim_warmup)]
            cmd += (
                ["--datadir", str(s.datadir)]
                if s.datadir
                else [
                    "--synthetic",
                    "--synthetic-days",
                    str(self.market_days),
                    "--synthetic-start",
                    f"{self.market_start:%Y-%m-%d}",
                ]
            )
            if s.pairs:
                cmd += ["--pairs", *s.pairs]
            t0 = time.perf_counter()
            limit = s.sim_timeout or sim_timeout_s((end - begin) / DAY)
            with open(self.out / f"{name}.log", "w") as log:
                rc = run_bounded(cmd, log, limit)
            s.timings[name] = round(time.perf_counter() - t0, 1)
            path = self.out / name / "comparison.json"
            if rc == TIMED_OUT:
                results[name] = {"error": f"timed out after {limit:.0f} s (--sim-timeout), see {name}.log"}
            else:
                results[name] = (
                    json.loads(path.read_text())
                    if rc == 0 and path.exists()
                    else {"error": f"exit {rc}, see {name}.log"}
                )
            if (self.out / name / "equity.json").exists():
                results[name]["_equity"] = json.loads((self.out / name / "equity.json").read_text())
            results[name]["window"] = [f"{begin:%Y-%m-%d %H:%M}", f"{end:%Y-%m-%d %H:%M}"]
            progress.advance(task)
        sim, paper = results["simulation"], results.get("paper", {})
        pnl_sim, pnl_paper = sim.get("gap", {}).get("pnl_sim"), paper.get("gap", {}).get("pnl_sim")
        sim_days, paper_days = (end - start) / DAY, (end - runs.get("paper", ("", end))[1]) / DAY
        return {
            # normalised by the wallet: a ratio to the backtest's PnL explodes as that PnL nears zero
            "bt_sim_deviation": sim.get("pnl_deviation_of_wallet"),
            "bt_sim_deviation_of_pnl": sim.get("pnl_deviation"),  # the spec's wording, for familiarity
            # paper covers the last part of the simulated window: compare like with like, per simulated day
            "sim_paper_deviation": (
                abs(pnl_paper / paper_days - pnl_sim / sim_days) / self.wallet
                if pnl_sim is not None and pnl_paper is not None and paper_days > 0 and sim_days > 0
                else None
            ),
            "equity_correlation": sim.get("equity_correlation"),
            "signal_consistency": sim.get("signal_consistency"),
            "window": {name: r["window"] for name, r in results.items()},
            "walk_forward_trades_in_window": bt_trades,
            "simulation": sim,
            "paper": paper or {"skipped": "--paper-days 0"},
        }

    def _stress_window(self, folds: list[dict]) -> tuple[pd.Timestamp, int, pd.Timestamp, int]:
        """(market start, market days, window start, window days). On the bench's own synthetic market
        the event hits the fold with the most trades, so the risk limits are exercised, not idle; for a
        real-data bench (or one without trades) the synthetic stress market's final `--stress-days`."""
        s = self.spec
        busiest = max(folds, key=lambda f: f["metrics"]["trades"]) if folds else None
        if s.datadir is None and busiest and busiest["metrics"]["trades"] > 0:
            start = timerange_bounds(busiest["timerange"])[0]
            return self.market_start, self.market_days, start, s.fold_days
        market_start = synthetic_start(s.synthetic_days)
        return (
            market_start,
            s.synthetic_days,
            market_start + (s.synthetic_days - s.stress_days - 2) * DAY,
            s.stress_days,
        )

    def _stress(self, progress: Progress, folds: list[dict]) -> list[dict]:
        s = self.spec
        if not s.stress:
            return []
        market_start, market_days, start, days = self._stress_window(folds)
        mid = start + days / 2 * DAY
        jobs = []
        for name in s.stress:
            if name not in STRESS:
                raise SystemExit(f"error: unknown stress scenario {name!r}; choose from {', '.join(STRESS)}")
            params = dict(STRESS[name])
            kind = params.pop("kind")
            jobs.append(
                StressJob(
                    name,
                    Scenario(kind, f"{mid:%Y-%m-%dT%H:%M}", **params),
                    f"{start:%Y%m%d}-{start + days * DAY:%Y%m%d}",
                    s.strategy,
                    tuple(s.configs()),
                    str(self.userdir),
                    str(self.out / "stress" / name),
                    self.wallet,
                    int(self.cfg.get("max_open_trades", 1)),
                    self.cfg.get("risk", {}),
                    s.seed,
                    market_days,
                    f"{market_start:%Y-%m-%d}",
                    tuple(self.timeframes),
                    f"{market_start:%Y%m%d}-",
                    self.identifier,
                    s.pairs if s.datadir is None else None,
                    jobs_threads(s.workers, s.ray_address),
                )
            )
        task = progress.add_task(f"stress ({len(jobs)} scenarios)", total=len(jobs))
        t0 = time.perf_counter()
        results, _ = parallel_map(run_stress, jobs, s.workers, s.ray_address, lambda _r: progress.advance(task))
        s.timings["stress"] = round(time.perf_counter() - t0, 1)
        return results


def _regimes(datadir: Path, ranges: list[str]) -> pd.DataFrame | None:
    """BTC's causal 1h regime over the bench window, for the report's timeline."""
    from regime.walkforward import causal_regimes

    path = Path(datadir) / "BTC_USDT-1h.feather"
    if not path.exists():
        return None
    df = pd.read_feather(path)
    reg = causal_regimes(df, "1h")
    reg["date"] = pd.to_datetime(df["date"], utc=True).to_numpy()
    lo = timerange_bounds(ranges[0])[0]
    return reg[reg["date"] >= lo][["date", "regime"]].dropna()


def _conclude(out: Path, summary: dict, datadir: Path) -> dict:
    """Recommendation from the measured stages, then summary.json and report.html."""
    summary["recommendation"] = recommend(
        summary["aggregate"], summary["monte_carlo"], summary["comparison"], summary["stress"]
    )
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    (out / "report.html").write_text(
        render_report(summary, _regimes(datadir, [f["timerange"] for f in summary["folds"]]))
    )
    return summary


def rerender(out: Path) -> dict:
    """Recompute the recommendation and rewrite summary.json + report.html from a finished bench
    (nothing is re-run): for when the rules or the report changed after a long bench."""
    path = Path(out) / "summary.json"
    if not path.is_file():
        raise ValueError(f"{path} not found: run the bench into {out} first")
    summary = json.loads(path.read_text())
    datadir = summary.get("spec", {}).get("datadir")
    return _conclude(Path(out), summary, Path(datadir) if datadir else Path(out) / "market" / "data")


def run_bench(spec: BenchSpec, console: Console | None = None) -> dict:
    return Bench(spec, console).run()


__all__ = ["STRESS", "BenchSpec", "cfg_args", "fold_ranges", "rerender", "run_bench"]
