"""Backtest of the run's exact window, and the backtest-vs-simulation comparison.

Keys of comparison.json (stable: the test bench and users' scripts read them): signal_consistency,
pnl_deviation, equity_correlation, mean_slippage_bps, p99_latency_ms, trades_backtest, trades_sim — plus the
per-trade matching table and an attribution of the PnL gap (fees, slippage, missed fills, extra trades, timing).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from simulation.freqtrade_runner import latest_backtest_stats, run_freqtrade
from simulation.gateway import GatewayProcess
from simulation.gateway.freqtrade_config import exchange_overlay
from simulation.marketdata.store import CandleStore
from simulation.run.discrepancy import (
    link_reentries,
    match_signals,
    return_tracking,
    trade_statistics,
    waterfall,
)
from simulation.run.indicators import bot_frame, bot_signalled, indicator_diff
from simulation.run.predictions import backtest_predictions, live_predictions, prediction_diff
from simulation.run.spec import RunSpec
from simulation.timeframes import DAY_MS, interval_ms

logger = logging.getLogger("simulation.run")


def freqai_schedule(config: dict) -> dict:
    """Overlay that makes the comparison's backtest retrain on the bot's cadence.

    A dry-run bot retrains every `live_retrain_hours`, the backtest every `backtest_period_days`: with
    different cadences their models differ for reasons no execution model explains (measured: the light
    overlay's 6 h against 7 days, docs/results/2026-12-06-prediction-diff.md). So the backtest slides its
    window every `live_retrain_hours` / 24 days (FreqAI accepts fractions), from the window's start. A bot
    that retrains continuously (`live_retrain_hours` 0) has no cadence to copy: its setting stays."""
    fa = config.get("freqai") or {}
    hours = fa.get("live_retrain_hours", 0) or 0
    if not fa.get("enabled") or hours <= 0:
        return {}
    return {"freqai": {"backtest_period_days": hours / 24}}


def run_backtest(spec: RunSpec, days_before: int = 100) -> list[dict]:
    """`freqtrade download-data` + `backtesting` over the run's window, from the same market, in its own
    user_data (FreqAI's backtest models never meet the bot's)."""
    out = spec.out_dir / "backtest"
    out.mkdir(parents=True, exist_ok=True)
    userdir = out / "user_data"
    args = [*spec.analysis_source_args(), "--pairs", *spec.pairs, "--seed", str(spec.seed)]
    with GatewayProcess(args, log_path=out / "gateway.log") as gw:
        overlay = exchange_overlay(gw.url, spec.pairs)
        overlay.update({"strategy": spec.strategy, "timeframe": spec.timeframe, "dry_run_wallet": spec.wallet})
        overlay.update(freqai_schedule({"freqai": spec.freqai()}))
        cfg = out / "overlay.json"
        cfg.write_text(json.dumps(overlay, indent=2))
        base = [
            "--config",
            spec.config,
            "--config",
            str(cfg),
            "--datadir",
            str((out / "data").resolve()),
            "--userdir",
            str(userdir),
        ]
        if not (userdir / "strategies").is_dir():
            run_freqtrade(["create-userdir", "--userdir", str(userdir)], out / "userdir.log")
        # FreqAI's training window, the 1h regime's startup and FreqAI's extra timeframes
        first = spec.start_ms - days_before * DAY_MS
        tfs = spec.timeframes()
        run_freqtrade(
            [
                "download-data",
                *base,
                "--timerange",
                f"{first // 1000}-{spec.end_ms // 1000}",
                "--timeframes",
                *tfs,
                "--prepend",
            ],
            out / "download.log",
        )
        # backtesting loads the markets from the exchange too: keep the gateway up.
        run_freqtrade(
            [
                "backtesting",
                *base,
                "--timerange",
                f"{spec.start_ms // 1000}-{spec.end_ms // 1000}",
                "--export",
                "signals",
                "--backtest-directory",
                str(out),
                "--cache",
                "none",
            ],
            out / "backtesting.log",
        )
    return latest_backtest_stats(out)["strategy"][spec.strategy]["trades"]


SIDE_FIELDS = ["open_ms", "open_rate", "close_ms", "exit", "profit", "amount", "close_rate", "fee_open", "fee_close"]
MATCH_COLUMNS = ["pair", *(f"bt_{f}" for f in SIDE_FIELDS), "sim_id", *(f"sim_{f}" for f in SIDE_FIELDS)]


def _side(prefix: str, t) -> dict:
    if t is None:
        return {f"{prefix}_{f}": None for f in SIDE_FIELDS}
    return {f"{prefix}_{f}": getattr(t, "exit_reason" if f == "exit" else f, None) for f in SIDE_FIELDS}


def match_trades(bt: pd.DataFrame, sim: pd.DataFrame, tolerance_ms: int) -> pd.DataFrame:
    """One-to-one: each backtest trade with the earliest unmatched simulated entry on the same pair that
    came at most `tolerance_ms` *after* it (never before: a simulation cannot enter earlier than the
    backtest without seeing the future; an early entry stays unmatched)."""
    used: set[int] = set()
    rows = []
    for b in bt.sort_values("open_ms").itertuples():
        delay = sim.open_ms - b.open_ms
        cands = sim[(sim.pair == b.pair) & (delay >= 0) & (delay <= tolerance_ms) & (~sim.id.isin(used))]
        s = cands.sort_values("open_ms").iloc[0] if len(cands) else None
        if s is not None:
            used.add(int(s.id))
        rows.append({"pair": b.pair, **_side("bt", b), "sim_id": None if s is None else int(s.id), **_side("sim", s)})
    for s in sim[~sim.id.isin(used)].itertuples():
        rows.append({"pair": s.pair, **_side("bt", None), "sim_id": int(s.id), **_side("sim", s)})
    return pd.DataFrame(rows, columns=MATCH_COLUMNS)  # columns even when neither side traded


def known_prices(candles: list, grid: np.ndarray) -> np.ndarray:
    """The price known at each grid instant: the latest close by then, or the open of a candle that
    opened at that instant; never a later price (NaN before the first candle: nothing is marked there)."""
    points: dict[int, float] = {}
    for c in candles:
        points.setdefault(c.open_time, c.open)  # a close at the same instant wins (set below)
        points[c.close_time + 1] = c.close
    return pd.Series(points).sort_index().reindex(grid, method="ffill").to_numpy(float)


def _closes(store: CandleStore, pairs: list[str], tf: str, grid: np.ndarray) -> dict[str, np.ndarray]:
    step = interval_ms(tf)
    return {
        pair: known_prices(
            store.candles(pair, tf, int(grid[-1]), start=int(grid[0]) - step, end=int(grid[-1]), limit=len(grid) + 2),
            grid,
        )
        for pair in pairs
    }


def equity_curve(trades: pd.DataFrame, closes: dict[str, np.ndarray], grid: np.ndarray, wallet: float) -> np.ndarray:
    """Wallet + realized profit + open positions marked at each candle close (each trade's own fee
    rates on both legs: what the run actually charged, not an assumed 0.1%)."""
    eq = np.full(len(grid), wallet, dtype=float)
    for t in trades.itertuples():
        opened = grid >= t.open_ms
        closed = grid >= t.close_ms
        mark = t.amount * (closes[t.pair] * (1 - t.fee_close) - t.open_rate * (1 + t.fee_open))
        eq += np.where(closed, t.profit, np.where(opened, mark, 0.0))
    return eq


def compare(
    spec: RunSpec,
    bt_trades: list[dict],
    sim_trades: pd.DataFrame,
    execs: pd.DataFrame,
    store: CandleStore,
    requests_csv: Path | None,
    attempts: pd.DataFrame | None = None,
) -> tuple[dict, pd.DataFrame, dict]:
    tf = interval_ms(spec.timeframe)
    grid = np.arange(spec.start_ms + tf, spec.end_ms + 1, tf, dtype=np.int64)
    closes = _closes(store, spec.pairs, spec.timeframe, grid)
    bt = pd.DataFrame(
        [
            {
                "pair": t["pair"],
                "open_ms": int(t["open_timestamp"]),
                "close_ms": int(t["close_timestamp"]),
                "open_rate": t["open_rate"],
                "amount": t["amount"],
                "profit": t["profit_abs"],
                "exit_reason": t["exit_reason"],
                "fee_open": float(t["fee_open"]),
                "fee_close": float(t["fee_close"]),
                "close_rate": float(t["close_rate"]),
            }
            for t in bt_trades
        ],
        columns=[
            "pair",
            "open_ms",
            "close_ms",
            "open_rate",
            "amount",
            "profit",
            "exit_reason",
            "fee_open",
            "fee_close",
            "close_rate",
        ],
    )
    sim = pd.DataFrame(
        {
            "id": sim_trades.id.astype(int),
            "pair": sim_trades.pair,
            "open_ms": sim_trades.open_date_ms,
            "close_ms": sim_trades.close_date_ms.where(sim_trades.is_open == 0),
            "open_rate": sim_trades.open_rate,
            "amount": sim_trades.amount,
            "profit": sim_trades.close_profit_abs.fillna(0.0),
            "exit_reason": sim_trades.exit_reason,
            # freqtrade records the fee it charged on each leg; a still-open trade's exit is charged like its entry
            "fee_open": sim_trades.fee_open.astype(float),
            "fee_close": sim_trades.fee_close.fillna(sim_trades.fee_open).astype(float),
            "close_rate": sim_trades.close_rate.astype(float),
        }
    )
    sim = sim[(sim.open_ms >= spec.start_ms) & (sim.open_ms < spec.end_ms)]
    # Simulated trades still open at the window's end are marked at its last close, as backtesting
    # force-exits them (so the equity curves and the per-trade waterfall add up to the same PnL).
    last = {p: c[-1] for p, c in closes.items()}
    still_open = sim.close_ms.isna() | (sim.close_ms > spec.end_ms)
    sim.loc[still_open, "close_ms"] = np.nan
    for i, t in sim[still_open].iterrows():
        sim.loc[i, "profit"] = t.amount * (last[t.pair] * (1 - t.fee_close) - t.open_rate * (1 + t.fee_open))
        sim.loc[i, "close_rate"] = last[t.pair]
        sim.loc[i, "exit_reason"] = "open_at_end"
    table = match_trades(bt, sim, tf)
    matched = table.dropna(subset=["bt_open_ms", "sim_id"])
    eq_bt = equity_curve(bt, closes, grid, spec.wallet)
    eq_sim = equity_curve(sim.assign(close_ms=sim.close_ms.fillna(np.inf)), closes, grid, spec.wallet)
    pnl_bt, pnl_sim = float(eq_bt[-1] - spec.wallet), float(eq_sim[-1] - spec.wallet)
    level_corr = float(np.corrcoef(eq_bt, eq_sim)[0, 1]) if np.std(eq_bt) > 0 and np.std(eq_sim) > 0 else None
    tracking = return_tracking(eq_bt, eq_sim)
    ex = execs[(execs.order_ms >= spec.start_ms) & (execs.filled > 0)] if len(execs) else execs
    lat = _latencies(requests_csv, spec.speed)
    # Signals: the backtest's entries against every entry the bot acted on (trades and attempts that
    # were cancelled unfilled), one per pair and candle.
    attempts = attempts if attempts is not None else pd.DataFrame(columns=["pair", "time_ms"])
    acted = pd.concat([sim[["pair", "open_ms"]].rename(columns={"open_ms": "time_ms"}), attempts[["pair", "time_ms"]]])
    acted = acted[(acted.time_ms >= spec.start_ms) & (acted.time_ms < spec.end_ms)]
    acted = acted.assign(candle=acted.time_ms // tf).drop_duplicates(["pair", "candle"]).drop(columns="candle")
    signals = match_signals(bt.rename(columns={"open_ms": "time_ms"})[["pair", "time_ms"]], acted, tf)
    missed = table[table.sim_id.isna()]

    def attempted(row) -> bool:
        a = attempts[attempts.pair == row.pair]
        delay = a.time_ms - row.bt_open_ms
        return bool(((delay >= 0) & (delay <= tf)).any())

    unfilled = missed[missed.apply(attempted, axis=1)] if len(missed) else missed
    no_signal = missed.drop(unfilled.index)
    # Why the bot did not even try: its own analyzed frame says whether it saw the entry signal (then slots,
    # stake, protections or confirm_trade_entry held it back) or not (indicators or predictions differed).
    frames = load_bot_frames(spec)
    why = [bot_signalled(frames, r.pair, int(r.bt_open_ms) - tf) for r in no_signal.itertuples()]
    extra = table[table.bt_open_ms.isna()]
    links = link_reentries(unfilled, extra, tf)
    steps = waterfall(matched, missed, extra, pnl_sim - pnl_bt)
    stats = trade_statistics((matched.sim_profit - matched.bt_profit).to_numpy(dtype=float), seed=spec.seed)
    gap = {
        "pnl_backtest": pnl_bt,
        "pnl_sim": pnl_sim,
        "waterfall": steps,
        "missed_unfilled": len(unfilled) - len(links),
        "missed_no_signal": len(no_signal),
        "missed_not_attempted": {
            "bot_had_no_signal": sum(w is False for w in why),
            "bot_signalled_but_did_not_enter": sum(w is True for w in why),
            "unknown": sum(w is None for w in why),
        },
        "extra_trades": len(extra) - len(links),
        "reentries_after_cancel": len(links),
        "missed_unfilled_profit": -float(unfilled.bt_profit.sum()),
        "missed_no_signal_profit": -float(no_signal.bt_profit.sum()),
        "extra_trades_profit": float(extra.sim_profit.sum()),
        "exit_reason_flips": int((matched.bt_exit != matched.sim_exit).sum()) if len(matched) else 0,
    }
    gap["explanation"] = explain(gap)
    result = {
        # F1 of the one-to-one, forward-only signal match: extra signals lower it, early ones never count
        "signal_consistency": signals.f1,
        "signal_precision": signals.precision,
        "signal_recall": signals.recall,
        "signal_lag_candles": {str(k): v for k, v in signals.lags.items()},
        "signal_early": signals.early,
        "fill_consistency": float(len(matched) / len(bt)) if len(bt) else None,
        "pnl_deviation": abs(pnl_sim - pnl_bt) / abs(pnl_bt) if pnl_bt else None,
        "pnl_deviation_of_wallet": abs(pnl_sim - pnl_bt) / spec.wallet,
        "equity_correlation": tracking["return_correlation"],  # of per-candle returns
        "equity_level_correlation": level_corr,
        "tracking_error": tracking["tracking_error"],
        "per_trade_difference": stats,
        "verdict": stats["verdict"],
        "mean_slippage_bps": float(ex.slippage_bps.mean()) if len(ex) and ex.slippage_bps.notna().any() else None,
        "p99_latency_ms": lat.get("p99"),
        "latency_ms": lat,
        "signal_to_order_ms": _pcts(ex.signal_to_order_ms) if len(ex) else {},
        "fill_ratio_mean": float(ex.fill_ratio.mean()) if len(ex) else None,
        "trades_backtest": len(bt),
        "trades_sim": len(sim),
        "trades_matched": len(matched),
        "gap": gap,
    }
    result["predictions"] = predictions_in_window(spec)
    result["indicators"] = indicators_at_signals(spec, frames)
    curves = {"time_ms": grid.tolist(), "backtest": eq_bt.tolist(), "sim": eq_sim.tolist()}
    return result, table, curves


def load_bot_frames(spec: RunSpec) -> dict[str, pd.DataFrame]:
    """The bot's analyzed candles per pair as it served them at the window's end ({} if not saved)."""
    path = spec.out_dir / "bot_candles.json"
    if not path.is_file():
        return {}
    return {pair: bot_frame(payload) for pair, payload in json.loads(path.read_text()).items() if payload}


def indicators_at_signals(spec: RunSpec, bot: dict[str, pd.DataFrame]) -> dict:
    """The backtest's entry-signal candles against the bot's analyzed frames (`load_bot_frames`)."""
    from freqtrade.data.btanalysis import load_backtest_analysis_data

    if not bot:
        return {"skipped": "the session saved no analyzed candles"}
    try:
        signals = (load_backtest_analysis_data(spec.out_dir / "backtest", "signals") or {}).get(spec.strategy, {})
    except (OSError, ValueError) as exc:
        return {"skipped": f"no backtest signal export: {exc}"}
    lo, hi = spec.window
    inside = {
        p: df[(pd.to_datetime(df["date"], utc=True) >= lo) & (pd.to_datetime(df["date"], utc=True) < hi)]
        for p, df in signals.items()
        if df is not None and len(df)
    }
    return indicator_diff(inside, bot)


def predictions_in_window(spec: RunSpec) -> dict:
    """The FreqAI prediction diff over the run's window: the backtest's predictions under its own
    backtest/user_data/models/<identifier>, the bot's under the bot's user_data."""
    fa = spec.freqai()
    if not fa.get("enabled"):
        return {"skipped": "not a FreqAI strategy"}
    bt = backtest_predictions(spec.out_dir / "backtest" / "user_data" / "models" / fa["identifier"], spec.pairs)
    live = live_predictions(
        spec.userdir / "models" / fa["identifier"],
        set((bt["trained_ms"] // 1000).astype(int)) if len(bt) else set(),
        interval_ms(spec.timeframe),
    )
    lo, hi = spec.window
    return prediction_diff(bt[(bt["date"] >= lo) & (bt["date"] < hi)], live[(live["date"] >= lo) & (live["date"] < hi)])


WATERFALL_WORDS = {
    "missed_trades": "backtest trades the simulation did not take",
    "extra_trades": "simulated trades the backtest did not take",
    "size": "matched trades: different position sizes",
    "entry_price": "matched trades: entry prices (delay, spread, impact, queue)",
    "exit_price": "matched trades: exit prices and exit timing (incl. ROI/stop order inside a candle)",
    "fees": "matched trades: fees (the rates each run charged)",
    "rounding": "freqtrade's rounding of amounts and profits",
}


def explain(gap: dict) -> list[str]:
    """The waterfall in words, largest first, with its residual."""
    w = gap["waterfall"]
    lines = [f"simulation minus backtest PnL: {w['total']:+.2f} USDT"]
    for key, value in sorted(w["lines"].items(), key=lambda kv: -abs(kv[1])):
        if abs(value) > 1e-9:
            lines.append(f"{value:+.2f} USDT from {WATERFALL_WORDS[key]}")
    lines.append(f"residual (unexplained): {w['residual']:+.6f} USDT")
    why = gap.get("missed_not_attempted") or {}
    if gap.get("missed_no_signal"):
        lines.append(
            f"{gap['missed_no_signal']} backtest trades the bot never tried: it had no entry signal on "
            f"{why.get('bot_had_no_signal', 0)}, signalled but did not enter (slots, stake, protections or "
            f"confirm_trade_entry) on {why.get('bot_signalled_but_did_not_enter', 0)}, "
            f"unknown {why.get('unknown', 0)}"
        )
    return lines


def _pcts(values: pd.Series) -> dict:
    v = pd.to_numeric(values, errors="coerce").dropna().to_numpy(dtype=float)
    if not len(v):
        return {}
    return {
        "n": len(v),
        "mean": float(v.mean()),
        "p50": float(np.percentile(v, 50)),
        "p95": float(np.percentile(v, 95)),
        "p99": float(np.percentile(v, 99)),
        "max": float(v.max()),
    }


def _latencies(path: Path | None, speed: float = 1.0) -> dict:
    if not path or not Path(path).exists():
        return {}
    req = pd.read_csv(path)
    ok = req[req.fault.isna() & (req.latency_ms > 0)]
    out = _pcts(ok.latency_ms)
    # measured, not modelled: the wall milliseconds the gateway itself spent answering (faketime scales
    # them by the speed, so they are divided back)
    if "service_ms" in req.columns:
        out["service_wall_ms_measured"] = _pcts(req[req.fault.isna()].service_ms / speed)
    out["faults"] = {str(k): int(v) for k, v in req.fault.value_counts().items()}
    out["requests"] = len(req)
    return out
