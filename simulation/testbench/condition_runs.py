"""The strategy per market condition (`python -m scripts.testbench --strategy S --conditions [NAME ...]`).

Candidate windows tile the walk-forward's span (`--folds` x `--fold-days` ending at `--end`); each is
labelled from the reference pair's 1h candles by `conditions.classify` (thresholds: the candidates'
quartiles). For every condition asked for, its latest `--condition-windows` windows are backtested, one
freqtrade run each (FreqAI trains before each window, as in a fold), and the figures are reported side
by side: windows, days and trades per condition, return per day with a Student-t interval over the
windows, daily mark-to-market Sharpe over the windows' days, the worst window's drawdown, win rate.
On the synthetic market the report also states how the candidate windows' labels agree with the
generator's regimes against chance (the check that validates the rule; see
docs/results/2026-12-06-market-conditions.md).
"""

from __future__ import annotations

import html
import json
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from rich.console import Console

from simulation.freqtrade_runner import run_freqtrade
from simulation.testbench.conditions import (
    CONDITIONS,
    agreement_against_chance,
    candidate_starts,
    classify,
    generator_truth,
    window_properties,
)
from simulation.testbench.jobs import FoldJob, jobs_threads, parallel_map, run_fold
from simulation.testbench.metrics import mean_interval, ratios_from_daily, trades_frame
from simulation.testbench.runner import DAY, Bench, BenchSpec, PlainProgress, _data_end

CONFIDENCE = 0.95


class NoWindow(ValueError):
    """A condition asked for has no window in the span (refused before any backtest runs)."""


def reference_pair(spec: BenchSpec, cfg: dict) -> str:
    """The pair whose candles define the conditions: the first of --pairs, else of the whitelist."""
    pairs = list(spec.pairs or cfg.get("exchange", {}).get("pair_whitelist") or [])
    if not pairs:
        raise NoWindow("no pair to measure the conditions on: pass --pairs")
    return pairs[0]


def hourly_closes(datadir: Path, pair: str) -> pd.Series:
    """The pair's 1h closes from a freqtrade datadir, indexed by candle open time (UTC)."""
    from freqtrade.data.history import load_pair_history

    df = load_pair_history(pair=pair, timeframe="1h", datadir=Path(datadir), fill_up_missing=False)
    if df.empty:
        raise NoWindow(f"no 1h candles of {pair} in {datadir}: the conditions are measured on them")
    return pd.Series(df["close"].to_numpy(float), index=pd.DatetimeIndex(pd.to_datetime(df["date"], utc=True)))


def choose(props: pd.DataFrame, names: Sequence[str], per_condition: int) -> pd.DataFrame:
    """The latest `per_condition` windows of each condition in `names`, in time order; a condition
    without any window is refused with the counts the span did have."""
    if per_condition < 1:
        raise NoWindow("need at least one window per condition")
    unknown = sorted(set(names) - set(CONDITIONS))
    if unknown:
        raise NoWindow(f"unknown condition {', '.join(unknown)}; choose from {', '.join(CONDITIONS)}")
    labelled = props.dropna(subset=["condition"])
    counts = labelled["condition"].value_counts()
    empty = [n for n in names if counts.get(n, 0) == 0]
    if empty:
        have = ", ".join(f"{c} {counts.get(c, 0)}" for c in CONDITIONS)
        raise NoWindow(f"no window of condition {', '.join(empty)} in the span (windows per condition: {have})")
    picked = labelled[labelled["condition"].isin(list(names))]
    picked = picked.sort_values("start").groupby("condition", group_keys=False).tail(per_condition)
    return picked.sort_values("start").reset_index(drop=True)


def per_condition(windows: list[dict], names: Sequence[str]) -> dict:
    """Each condition's figures from its windows' backtests (each window starts from the wallet)."""
    out = {}
    for name in names:
        mine = [w for w in windows if w["condition"] == name]
        trades = trades_frame([t for w in mine for t in w["trades"]])
        daily = [r for w in mine for r in w["metrics"].get("daily_returns", [])]
        sharpe, _ = ratios_from_daily(daily)
        wins, losses = trades.profit_abs[trades.profit_abs > 0].sum(), -trades.profit_abs[trades.profit_abs < 0].sum()
        out[name] = {
            "windows": len(mine),
            "days": float(sum(w["days"] for w in mine)),
            "trades": len(trades),
            "return_per_day": mean_interval([w["metrics"]["profit_pct"] / w["days"] for w in mine], CONFIDENCE),
            "sharpe": sharpe,
            "worst_drawdown": max((w["metrics"]["max_drawdown"] for w in mine), default=0.0),
            "win_rate": float((trades.profit_abs > 0).mean()) if len(trades) else None,
            "profit_factor": float(wins / losses) if losses > 0 else None,
            "realized_vol": float(np.mean([w["realized_vol"] for w in mine])),
            "efficiency_ratio": float(np.mean([w["efficiency_ratio"] for w in mine])),
        }
    return out


def run_conditions(
    spec: BenchSpec,
    names: Sequence[str] = CONDITIONS,
    per_condition_windows: int = 3,
    window_days: int = 1,
    console: Console | None = None,
) -> dict:
    """Measure, pick, backtest, report: OUT/conditions.json and OUT/conditions.html."""
    console = console or Console()
    names = list(dict.fromkeys(names or CONDITIONS))
    if window_days < 1 or per_condition_windows < 1:
        raise NoWindow("--condition-days and --condition-windows must be at least 1")
    bench = Bench(replace(spec, skip_sim=True, stress=()), console)
    out = spec.out
    out.mkdir(parents=True, exist_ok=True)
    run_freqtrade(["create-userdir", "--userdir", str(bench.userdir)], out / "userdir.log")
    pair = reference_pair(spec, bench.cfg)
    progress = PlainProgress(console)
    with bench.market() as market:
        end = _data_end(spec, (bench.market_start, bench.market_days))
        first = end - spec.folds * spec.fold_days * DAY
        task = progress.add_task("candles", total=1)
        market.download(
            spec.configs(),
            bench.userdir,
            bench.timeframes,
            f"{first - (bench.train_days + 80) * DAY:%Y%m%d}-",
            list(spec.pairs) if spec.pairs else None,
        )
        progress.advance(task)
        closes = hourly_closes(Path(market.datadir), pair)
        props = window_properties(closes, candidate_starts(max(first, closes.index[0]), end, window_days), window_days)
        props["condition"] = classify(props)
        picked = choose(props, names, per_condition_windows)
        jobs = [
            FoldJob(
                i,
                f"{w.start:%Y%m%d}-{w.end:%Y%m%d}",
                spec.strategy,
                tuple(spec.configs()),
                str(market.overlay),
                str(market.datadir),
                str(bench.userdir),
                str(out / "conditions" / f"{i:02d}-{w.condition}"),
                bench.wallet,
                bench.identifier,
                window_days,
                spec.pairs,
                jobs_threads(spec.workers, spec.ray_address),
                f"condition{i}-{w.start:%Y%m%d}",  # never a walk-forward fold's models
            )
            for i, w in enumerate(picked.itertuples())
        ]
        task = progress.add_task(f"backtests ({len(jobs)} windows)", total=len(jobs))
        t0 = time.perf_counter()
        results, where = parallel_map(run_fold, jobs, spec.workers, spec.ray_address, lambda _r: progress.advance(task))
        seconds = round(time.perf_counter() - t0, 1)
    windows = [
        {
            "condition": w.condition,
            "timerange": r["timerange"],
            "days": window_days,
            "realized_vol": w.realized_vol,
            "efficiency_ratio": w.efficiency_ratio,
            "metrics": r["metrics"],
            "trades": r["trades"],
        }
        for w, r in zip(picked.itertuples(), results, strict=True)
    ]
    ok = props["condition"].notna()
    result = {
        "strategy": spec.strategy,
        "market": str(spec.datadir) if spec.datadir else f"synthetic (seed {spec.seed})",
        "reference_pair": pair,
        "span": [f"{first:%Y-%m-%d}", f"{end:%Y-%m-%d}"],
        "window_days": window_days,
        "candidates": {c: int((props["condition"] == c).sum()) for c in CONDITIONS},
        "thresholds": {
            "volatile_vol_p75": float(props.loc[ok, "realized_vol"].quantile(0.75)),
            "median_vol": float(props.loc[ok, "realized_vol"].median()),
            "trending_er_p75": float(props.loc[ok, "efficiency_ratio"].quantile(0.75)),
            "sideways_er_p25": float(props.loc[ok, "efficiency_ratio"].quantile(0.25)),
        },
        "conditions": per_condition(windows, names),
        "windows": windows,
        "ran": where,
        "seconds": seconds,
        "candidate_windows": [
            {"start": f"{w.start:%Y-%m-%d}", "vol": w.realized_vol, "er": w.efficiency_ratio, "condition": w.condition}
            for w in props.itertuples()
        ],
    }
    if spec.datadir is None:
        result["validation"] = _against_the_generator(bench, props[ok].reset_index(drop=True), pair)
    (out / "conditions.json").write_text(json.dumps(result, indent=2, default=str))
    (out / "conditions.html").write_text(render(result))
    return result


def _against_the_generator(bench: Bench, props: pd.DataFrame, pair: str) -> dict:
    """The candidate windows' labels against the regimes of the market the gateway generated (same seed,
    start, length, its default 5m): windows called normal have no counterpart and are left out."""
    from simulation.synthetic import SyntheticConfig, generate

    s = bench.spec
    market = generate(SyntheticConfig(seed=s.seed, days=bench.market_days, start=f"{bench.market_start:%Y-%m-%d}"))
    truth = np.array(generator_truth(props, market.ground_truth))
    keep = (props["condition"] != "normal").to_numpy()
    if keep.sum() < 2:
        return {"windows": int(keep.sum()), "note": "too few labelled windows to compare"}
    return {"pair": pair, **agreement_against_chance(props["condition"].to_numpy()[keep], truth[keep])}


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{v:.2%}"


def lines(result: dict) -> list[str]:
    """The per-condition table in a few lines (console and report)."""
    t = result["thresholds"]
    head = (
        f"{result['strategy']} by market condition on {result['market']}, {result['reference_pair']}'s 1h candles, "
        f"{result['window_days']}-day windows in {result['span'][0]} to {result['span'][1]}"
    )
    rules = (
        f"volatile: annualised vol >= {t['volatile_vol_p75']:.2f}; trending: efficiency ratio >= "
        f"{t['trending_er_p75']:.2f}; sideways: ratio <= {t['sideways_er_p25']:.2f} and vol < {t['median_vol']:.2f}"
    )
    counts = ", ".join(f"{c} {n}" for c, n in result["candidates"].items())
    out = [head, f"candidate windows: {counts} ({rules})"]
    for name, c in result["conditions"].items():
        r = c["return_per_day"]
        ci = r["interval"]
        interval = "no interval" if ci is None else f"{CONFIDENCE:.0%} interval [{_pct(ci[0])}, {_pct(ci[1])}]"
        out.append(
            f"{name}: {c['windows']} windows, {c['days']:g} days, {c['trades']} trades; return/day {_pct(r['mean'])} "
            f"({interval}); daily Sharpe {c['sharpe']:.2f} over {c['days']:g} days; "
            f"worst drawdown {_pct(c['worst_drawdown'])}; win rate {_pct(c['win_rate'])}"
        )
    v = result.get("validation")
    if v and "agreement" in v:
        verdict = (
            "above chance"
            if v["above_chance"]
            else f"NOT above chance on these {v['windows']} windows (the rule's pre-registered check, 313 windows of "
            "unseen seeds, passed: docs/results/2026-12-06-market-conditions.md)"
        )
        out.append(
            f"labels vs the generator's regimes: agreement {v['agreement']:.3f} over {v['windows']} windows, "
            f"chance median {v['chance_median']:.3f}, 99th percentile {v['chance_p99']:.3f}: {verdict}"
        )
    elif v:
        out.append(f"labels vs the generator's regimes: {v['note']}")
    return out


def render(result: dict) -> str:
    """A self-contained page: the lines, the candidate windows by volatility and efficiency ratio (the
    picked ones marked), and each condition's return per day with its interval."""
    cand = pd.DataFrame(result["candidate_windows"])
    picked = {w["timerange"][:8] for w in result["windows"]}
    scatter = go.Figure()
    for name in CONDITIONS:
        sub = cand[cand["condition"] == name]
        chosen = sub["start"].str.replace("-", "").isin(picked)
        scatter.add_trace(
            go.Scatter(
                x=sub["vol"],
                y=sub["er"],
                mode="markers",
                name=name,
                text=sub["start"],
                marker={"size": np.where(chosen, 13, 6), "line": {"width": np.where(chosen, 2, 0)}},
            )
        )
    scatter.update_layout(
        height=420,
        title="candidate windows (large: backtested)",
        xaxis_title="realized volatility (annualised)",
        yaxis_title="efficiency ratio",
    )
    names = list(result["conditions"])
    means = [result["conditions"][n]["return_per_day"]["mean"] or 0.0 for n in names]
    errs = [
        (ci[1] - m) if (ci := result["conditions"][n]["return_per_day"]["interval"]) else 0.0
        for n, m in zip(names, means, strict=True)
    ]
    bars = go.Figure(go.Bar(x=names, y=means, error_y={"type": "data", "array": errs}))
    title = f"return per day ({CONFIDENCE:.0%} interval over windows)"
    bars.update_layout(height=380, title=title, yaxis_tickformat=".2%")
    body = "".join(f"<li>{html.escape(line)}</li>" for line in lines(result))
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>Market conditions</title></head><body>"
        f"<h1>Market conditions: {html.escape(result['strategy'])}</h1><ul>{body}</ul>"
        + scatter.to_html(full_html=False, include_plotlyjs="inline")
        + bars.to_html(full_html=False, include_plotlyjs=False)
        + "</body></html>"
    )
