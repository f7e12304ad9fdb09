"""Independent bench jobs (walk-forward folds, stress scenarios) and where they run: Ray when it is
installed (local by default, `--ray-address` / RAY_ADDRESS for a cluster), else threads in-process.

Jobs are module-level functions of plain dataclasses, so Ray can ship them to workers; each runs
its own freqtrade process and writes under its own folder, so results do not depend on where or in
which order they ran.
"""

from __future__ import annotations

import os
import re
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from cryptobot_ops.risk import RiskLimits
from simulation.synthetic import Scenario
from simulation.testbench.limits import limit_violations
from simulation.testbench.market import Market, backtest
from simulation.testbench.metrics import load_closes, trade_metrics, trades_frame
from simulation.timeframes import timerange_bounds

TRADE_FIELDS = (
    "pair",
    "open_date",
    "close_date",
    "profit_abs",
    "profit_ratio",
    "stake_amount",
    "initial_stop_loss_ratio",
    "exit_reason",
)


@dataclass(frozen=True)
class FoldJob:
    index: int
    timerange: str  # YYYYMMDD-YYYYMMDD
    strategy: str
    configs: tuple[str, ...]
    overlay_path: str  # the market's exchange overlay
    datadir: str
    userdir: str
    out: str
    start_balance: float
    freqai_identifier: str | None
    fold_days: int
    pairs: tuple[str, ...] | None = None
    threads: int | None = None  # compute threads of its freqtrade process (None: the library defaults)
    freqai_suffix: str | None = None  # its FreqAI models' identifier suffix (default: fold<index>)


@dataclass(frozen=True)
class StressJob:
    name: str
    scenario: Scenario
    timerange: str
    strategy: str
    configs: tuple[str, ...]
    userdir: str
    out: str
    start_balance: float
    max_open: int
    risk: dict = field(default_factory=dict)
    seed: int = 42
    days: int = 120
    market_start: str = "2024-01-01"
    timeframes: tuple[str, ...] = ("5m", "1h")
    download_range: str = "20240101-"
    freqai_identifier: str | None = None
    pairs: tuple[str, ...] | None = None
    threads: int | None = None


def jobs_threads(workers: int, ray_address: str | None = None) -> int | None:
    """Compute threads per job when `workers` jobs share this machine (None on a cluster or alone)."""
    if workers <= 1 or ray_address or os.environ.get("RAY_ADDRESS"):
        return None
    return max(1, (os.cpu_count() or 1) // workers)


def _slim(trades: pd.DataFrame) -> list[dict]:
    cols = [c for c in TRADE_FIELDS if c in trades]
    out = trades[cols].copy()
    for c in ("open_date", "close_date"):
        if c in out:
            out[c] = out[c].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    return out.to_dict("records")


FREQTRADE_STATS = ("total_trades", "sharpe", "sortino", "calmar", "max_drawdown_account", "profit_total")


def _freqai_overlay(identifier: str | None, suffix: str, period_days: int) -> dict | None:
    if not identifier:
        return None
    # one model per job, trained on train_period_days before the job's window: no lookahead between folds
    return {"freqai": {"identifier": f"{identifier}-{suffix}", "backtest_period_days": period_days}}


def run_fold(job: FoldJob) -> dict:
    t0 = time.perf_counter()
    stats = backtest(
        Path(job.overlay_path),
        Path(job.datadir),
        list(job.configs),
        Path(job.userdir),
        job.timerange,
        Path(job.out),
        job.strategy,
        _freqai_overlay(job.freqai_identifier, job.freqai_suffix or f"fold{job.index}", job.fold_days),
        list(job.pairs) if job.pairs else None,
        threads=job.threads,
    )
    trades = trades_frame(stats["trades"])
    start, end = timerange_bounds(job.timerange)
    closes = load_closes(Path(job.datadir), list(trades.pair), stats["timeframe"])  # daily marked-to-market returns
    return {
        "fold": job.index,
        "timerange": job.timerange,
        "metrics": trade_metrics(trades, job.start_balance, start, end, closes),
        "freqtrade_stats": {k: stats.get(k) for k in FREQTRADE_STATS},  # the same figures, as freqtrade printed them
        "trades": _slim(trades),
        "seconds": round(time.perf_counter() - t0, 1),
    }


def run_stress(job: StressJob) -> dict:
    """The strategy on a synthetic market with one stress event in its window; the risk limits must hold."""
    t0 = time.perf_counter()
    out = Path(job.out)
    with Market(out, seed=job.seed, days=job.days, start=job.market_start, scenarios=(job.scenario,)) as market:
        market.download(
            list(job.configs),
            Path(job.userdir),
            list(job.timeframes),
            job.download_range,
            list(job.pairs) if job.pairs else None,
        )
        start, end = timerange_bounds(job.timerange)
        stats = backtest(
            market.overlay,
            market.datadir,
            list(job.configs),
            Path(job.userdir),
            job.timerange,
            out / "backtest",
            job.strategy,
            _freqai_overlay(job.freqai_identifier, f"stress-{job.name}", max(1, (end - start).days)),
            list(job.pairs) if job.pairs else None,
            threads=job.threads,
        )
        trades = trades_frame(stats["trades"])
        closes = load_closes(market.datadir, list(trades.pair), stats["timeframe"])  # the strategies' marked equity
    violations = limit_violations(
        trades, job.start_balance, job.max_open, RiskLimits.from_config({"risk": job.risk}), closes=closes
    )
    log = (out / "backtest" / "backtest.log").read_text(errors="replace")
    return {
        "scenario": job.name,
        "event": f"{job.scenario.kind} at {job.scenario.start} for {job.scenario.hours} h",
        "timerange": job.timerange,
        "metrics": trade_metrics(trades, job.start_balance, start, end, closes),
        "risk_rejections": log.count("risk: entry"),
        "rejections_by_reason": dict(Counter(re.findall(r"risk: entry \S+ rejected \((\w+)\)", log))),
        "violations": violations,
        "limits_held": not violations,
        "seconds": round(time.perf_counter() - t0, 1),
    }


def parallel_map(
    fn: Callable[[Any], dict],
    jobs: Sequence[Any],
    workers: int = 1,
    ray_address: str | None = None,
    on_done: Callable[[dict], None] | None = None,
) -> tuple[list[dict], str]:
    """Results in job order, and a description of where they ran."""
    address = ray_address or os.environ.get("RAY_ADDRESS")
    done = on_done or (lambda _r: None)
    if workers <= 1 and not address:
        results = []
        for job in jobs:
            results.append(fn(job))
            done(results[-1])
        return results, "in-process, sequential"
    try:
        import ray
    except ImportError:
        ray = None
    if ray is None:
        with ThreadPoolExecutor(max_workers=workers) as ex:
            futures = {ex.submit(fn, job): i for i, job in enumerate(jobs)}
            results: list[dict | None] = [None] * len(jobs)
            for fut in as_completed(futures):
                results[futures[fut]] = fut.result()
                done(results[futures[fut]])
        return results, f"in-process, {workers} threads (Ray not installed)"
    if not ray.is_initialized():
        kwargs = {"address": address} if address else {"num_cpus": workers, "include_dashboard": False}
        ray.init(log_to_driver=False, configure_logging=False, **kwargs)
    remote = ray.remote(num_cpus=1, max_retries=0)(fn)
    refs = [remote.remote(job) for job in jobs]
    index = {ref: i for i, ref in enumerate(refs)}
    results = [None] * len(jobs)
    pending = list(refs)
    while pending:
        ready, pending = ray.wait(pending, num_returns=1)
        results[index[ready[0]]] = ray.get(ready[0])
        done(results[index[ready[0]]])
    where = f"Ray cluster {address}" if address else f"Ray local, {workers} workers"
    return results, where
