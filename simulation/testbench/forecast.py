"""What the strategy's FreqAI model forecast in the walk-forward folds, scored the way trading uses it.

A strategy's trades mix the model with its entry rules, stops and risk controls; this scores the model
itself, on the same folds, so a user sees whether the forecast has an edge before blaming the rules.
FreqAI backtesting already saves every prediction (`models/<identifier>/backtesting_predictions/`, one
file per training window); each is joined with its realized label, the training target
log(close[t + h] / close[t]) from the market's candles (h = `label_period_candles`). Scored per model:
the model's output (`&-target`) and, for an ensemble, each base model's (`&-base_<name>`), on the
candles where FreqAI allowed a prediction (`do_predict == 1`):

- direction accuracy, with a Wilson interval on the effective count n / h (labels overlap by h - 1);
- rank IC: Spearman's correlation per pair-fold, their mean with a t interval over pair-folds;
- net score: a fixed long/flat rule every h candles after fees (`cryptobot_ops.predictions.net_score`);
- the most confident tenth of the model's predictions (`&-confidence`): precision against the base
  rates and the spec's 60 %.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from cryptobot_ops.predictions import net_score, top_decile, wilson
from simulation.run.predictions import backtest_predictions
from simulation.testbench.metrics import mean_interval

TARGET, CONFIDENCE, BASE_PREFIX = "&-target", "&-confidence", "&-base_"
MODEL = "model"  # the strategy's model output (the ensemble's combination, or the single model)


def outcomes(candles: pd.DataFrame, horizon: int) -> pd.Series:
    """The training label per candle, indexed by the candle's open date (NaN where the data ends first)."""
    close = candles["close"].to_numpy(float)
    out = np.full(len(close), np.nan)
    if len(close) > horizon:
        out[:-horizon] = np.log(close[horizon:] / close[:-horizon])
    return pd.Series(out, index=pd.DatetimeIndex(pd.to_datetime(candles["date"], utc=True)), name="outcome")


def fold_frame(
    models_dir: Path, candles: dict[str, pd.DataFrame], horizon: int, start: pd.Timestamp, end: pd.Timestamp
) -> pd.DataFrame:
    """One fold's predictions inside [start, end) with their outcomes (`outcome`), every pair."""
    preds = backtest_predictions(models_dir, list(candles))
    if preds.empty:
        return preds
    preds = preds[(preds["date"] >= start) & (preds["date"] < end)]
    frames = []
    for pair, rows in preds.groupby("pair", sort=True):
        realized = outcomes(candles[pair], horizon)
        frames.append(rows.assign(outcome=realized.reindex(pd.DatetimeIndex(rows["date"])).to_numpy()))
    return pd.concat(frames, ignore_index=True) if frames else preds.iloc[0:0]


def _columns(frames: list[pd.DataFrame]) -> dict[str, str]:
    """The model's output and each base model's column; not the `<column>_mean` / `_std` running
    statistics FreqAI saves beside every output column."""
    cols = {MODEL: TARGET}
    for f in frames:
        for c in f.columns:
            stats = c.endswith(("_mean", "_std")) and c.rsplit("_", 1)[0] in f.columns
            if c.startswith(BASE_PREFIX) and not stats:
                cols.setdefault(c.removeprefix(BASE_PREFIX), c)
    return cols


def _accuracy(pred: np.ndarray, y: np.ndarray, horizon: int) -> dict:
    nz = y != 0
    hits = np.sign(pred[nz]) == np.sign(y[nz])
    n = int(nz.sum())
    eff = max(1, round(n / horizon))
    acc = float(hits.mean()) if n else None
    return {"accuracy": acc, "ci95": list(wilson(round(acc * eff), eff)) if n else None, "n": n, "n_effective": eff}


def score(frames: list[pd.DataFrame], horizon: int) -> dict:
    """Per model: accuracy, rank IC, net score; for the model's output the top confidence decile.
    `frames`: one per fold (`fold_frame`)."""
    frames = [f for f in frames if not f.empty]
    used = [f[(f["do_predict"] == 1) & np.isfinite(f["outcome"])] for f in frames]
    if not sum(len(f) for f in used):
        return {"horizon": horizon, "candles": 0, "skipped": "no prediction with a realized outcome in the folds"}
    out: dict = {
        "horizon": horizon,
        "candles": int(sum(len(f) for f in used)),
        "excluded_do_predict": int(sum((f["do_predict"] != 1).sum() for f in frames)),
        "no_outcome_yet": int(sum((~np.isfinite(f["outcome"]) & (f["do_predict"] == 1)).sum() for f in frames)),
        "models": {},
    }
    for name, col in _columns(used).items():
        groups = [g for f in used if col in f for _, g in f.groupby("pair")]
        parts = [(g[col].to_numpy(float), g["outcome"].to_numpy(float)) for g in groups]
        parts = [(p[np.isfinite(p)], y[np.isfinite(p)]) for p, y in parts]
        pred = np.concatenate([p for p, _ in parts])
        y = np.concatenate([y for _, y in parts])
        ics = [float(spearmanr(p, y).statistic) for p, y in parts if len(p) > 2 and np.ptp(p) > 0 and np.ptp(y) > 0]
        out["models"][name] = {
            **_accuracy(pred, y, horizon),
            "rank_ic": mean_interval(ics),
            "net": net_score([p for p, _ in parts], [y for _, y in parts], horizon),
        }
    with_conf = [f[[TARGET, CONFIDENCE, "outcome"]] for f in used if CONFIDENCE in f]
    conf = pd.concat(with_conf, ignore_index=True) if with_conf else pd.DataFrame()
    conf = conf[(conf["outcome"] != 0) & np.isfinite(conf[CONFIDENCE])] if len(conf) else conf
    if len(conf) >= 10 * horizon:
        hits = np.sign(conf[TARGET]) == np.sign(conf["outcome"])
        t = top_decile(pd.DataFrame({"confidence": conf[CONFIDENCE], "hit": hits, "y": conf["outcome"]}), horizon)
        out["top_decile"] = {
            **{k: t[k] for k in ("confidence_from", "ci95", "overall_accuracy", "majority_rate", "spec_precision")},
            "spec_met": t["spec_met"],
            "precision": t["direction_accuracy"],
            "n": t["candles"],
            "n_effective": round(t["effective_n"]),
        }
    return out


def lines(result: dict) -> list[str]:
    """The console's lines (the report lists the same)."""
    if not result or result.get("skipped"):
        return [f"forecast: {result.get('skipped', 'not scored') if result else 'not scored'}"]
    h = result["horizon"]
    rows = [
        f"forecast ({result['candles']} predicted candles, label {h} candles, do_predict=0 left out: "
        + f"{result['excluded_do_predict']}, label past the data: {result['no_outcome_yet']}):"
    ]
    for name, m in result["models"].items():
        ic, net = m["rank_ic"], m["net"]
        ic_txt = (
            "-"
            if ic["mean"] is None
            else f"{ic['mean']:+.3f}"
            + ("" if ic["interval"] is None else f" [{ic['interval'][0]:+.3f}, {ic['interval'][1]:+.3f}]")
        )
        net_txt = (
            "-"
            if net["mean_net_bps"] is None
            else f"{net['mean_net_bps']:+.1f} bps"
            + ("" if net["ci95_bps"] is None else f" [{net['ci95_bps'][0]:+.1f}, {net['ci95_bps'][1]:+.1f}]")
        )
        acc = "-" if m["accuracy"] is None else f"{m['accuracy']:.3f} [{m['ci95'][0]:.3f}, {m['ci95'][1]:.3f}]"
        rows.append(
            f"  {name}: direction {acc}, rank IC {ic_txt} (n={ic['n']} pair-folds), "
            f"net long/flat {net_txt} per decision (n={net['decisions']})"
        )
    top = result.get("top_decile")
    if top:
        rows.append(
            f"  top confidence decile: precision {top['precision']:.3f} [{top['ci95'][0]:.3f}, {top['ci95'][1]:.3f}] "
            f"(n={top['n']}, effective {top['n_effective']}) vs overall {top['overall_accuracy']:.3f}, "
            f"majority {top['majority_rate']:.3f}; "
            f"spec {top['spec_precision']:.0%}: {'met' if top['spec_met'] else 'not met'}"
        )
    return rows
