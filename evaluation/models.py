"""Walk-forward benchmark of the base models, the stacked ensemble and FreqAI's LightGBMRegressor.

Features are the shared FreqAI hooks (`features`) expanded the way FreqAI expands them (periods,
timeframes merged causally with freqtrade's `merge_informative_pair`, a correlated pair); the
target is the log return over the next `label_period` candles (`target_scale="vol"`: over its
expected size, the trailing realized volatility; same sign, so direction accuracy keeps its meaning,
RMSE is then in sigma units). Each fold trains on `train_days`
and predicts the following `test_days`; the next fold rolls forward by `test_days`.
The single-model rows come from the ensemble's own refitted base models (same data, same fold).
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
from freqtrade.configuration import TimeRange
from freqtrade.exchange import timeframe_to_msecs as interval_ms
from freqtrade.strategy import merge_informative_pair
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress
from rich.table import Table
from scipy.stats import spearmanr

from cryptobot_ops.predictions import confidence_bucket, net_score, top_decile
from freqaimodels import features
from freqaimodels.estimators import StackedEnsemble
from freqaimodels.estimators.base import compute_threads
from freqaimodels.estimators.combiners import rolling_hit_rate_weights
from freqaimodels.estimators.lstm import KerasLSTMEstimator
from freqaimodels.estimators.stacking import BASE_MODELS
from simulation.paths import SHARED_DATA

BASELINE = "LightGBMRegressor"
WITH_BASELINE = "StackedEnsemble[+baseline]"  # the mean of the members and FreqAI's baseline
# Piped or logged output gets room for the whole table (rich would assume 80 columns and cut names).
console = Console(stderr=True) if sys.stderr.isatty() else Console(stderr=True, width=150)


@dataclass
class BenchConfig:
    datadir: Path
    pairs: list[str]
    timeframe: str = "5m"
    informative: tuple[str, ...] = ("15m", "1h")
    periods: tuple[int, ...] = (10, 20)
    label_period: int = 12
    target_scale: str = "return"
    timerange: str | None = None
    train_days: float = 30
    test_days: float = 7
    folds: int = 6
    ensemble_params: dict | None = None


def _load(datadir: Path, pair: str, tf: str) -> pd.DataFrame:
    path = datadir / f"{pair.replace('/', '_')}-{tf}.feather"
    if not path.exists():
        raise FileNotFoundError(f"missing {path}: the benchmark needs {tf} candles for {pair}")
    return pd.read_feather(path)


@lru_cache(maxsize=32)
def _features_for(datadir: Path, pair: str, tf: str, periods: tuple[int, ...]) -> pd.DataFrame:
    """Each pair's features once per run: a pair is also the correlated pair of the others."""
    return _pair_features(_load(datadir, pair, tf), periods, tf)


def _pair_features(df: pd.DataFrame, periods: tuple[int, ...], tf: str) -> pd.DataFrame:
    out = df[["date", "open", "high", "low", "close", "volume"]].copy()
    for p in periods:
        expanded = features.expand_all(out[["date", "open", "high", "low", "close", "volume"]].copy(), p)
        out = pd.concat([out, expanded.filter(like="%-").add_suffix(f"_{p}")], axis=1)
    basic = features.expand_basic(df[["date", "open", "high", "low", "close", "volume"]].copy(), {"tf": tf})
    return pd.concat([out, basic.filter(like="%-")], axis=1)


def build_dataset(cfg: BenchConfig, pair: str) -> tuple[pd.DataFrame, list[str]]:
    """Feature matrix (causal) + target for one pair, on the base timeframe."""
    corr = [p for p in cfg.pairs if p != pair][:1]
    base = None
    for src in [pair, *corr]:
        tag = "" if src == pair else f"_{src.split('/')[0]}"
        frame = _features_for(cfg.datadir, src, cfg.timeframe, cfg.periods)
        frame = frame.rename(columns={c: f"{c}{tag}" for c in frame.columns if c.startswith("%")})
        for tf in cfg.informative:
            inf = _features_for(cfg.datadir, src, tf, cfg.periods)
            inf = inf[["date", *[c for c in inf.columns if c.startswith("%")]]].rename(
                columns={c: f"{c}{tag}" for c in inf.columns if c.startswith("%")}
            )
            frame = merge_informative_pair(frame, inf, cfg.timeframe, tf, ffill=True)
        if base is None:
            base = frame
        else:
            cols = ["date", *[c for c in frame.columns if c.startswith("%")]]
            base = base.merge(frame[cols], on="date", how="left")
    base = features.standard(base)
    base = features.set_targets(base, cfg.label_period, cfg.target_scale)
    if cfg.timerange:
        tr = TimeRange.parse_timerange(cfg.timerange)  # freqtrade's own --timerange syntax
        lo = pd.Timestamp(tr.startts, unit="s", tz="UTC") if tr.startts else base["date"].min()
        hi = pd.Timestamp(tr.stopts, unit="s", tz="UTC") if tr.stopts else base["date"].max()
        base = base[(base["date"] >= lo) & (base["date"] < hi)]
    cols = [c for c in base.columns if c.startswith("%")]
    return base.reset_index(drop=True), cols


def fold_starts(rows: int, cfg: BenchConfig, n_train: int, n_test: int, pair: str) -> list[int]:
    """First row of each fold's training window: folds of `n_train` + `n_test` rows rolling by `n_test`, the
    last ending `label_period` rows before the data's end (its last labels need them)."""
    need = n_train + cfg.folds * n_test + cfg.label_period
    if rows < need:
        raise ValueError(
            f"{pair}: {rows} usable candles, need {need} for {cfg.folds} folds of "
            f"{cfg.train_days}+{cfg.test_days} days: widen --timerange or lower --folds"
        )
    return [rows - need + k * n_test for k in range(cfg.folds)]


def add_walk_forward_args(p, timeframe: str, informative: list[str], folds: int, label_period: int) -> None:
    """The walk-forward options every benchmark of `evaluation` takes (data, folds, horizon)."""
    p.add_argument("--datadir", type=Path, default=SHARED_DATA)
    p.add_argument("--pairs", nargs="+", default=["BTC/USDT", "ETH/USDT"])
    p.add_argument("--timeframe", default=timeframe)
    p.add_argument(
        "--informative",
        nargs="*",
        default=informative,
        help=f"informative timeframes merged into the features (default: {' '.join(informative) or 'none'}; "
        "none: the base timeframe only)",
    )
    p.add_argument("--timerange", help="YYYYMMDD-YYYYMMDD (default: all data)")
    p.add_argument("--folds", type=int, default=folds)
    p.add_argument("--train-days", type=float, default=30)
    p.add_argument("--test-days", type=float, default=7)
    p.add_argument("--label-period", type=int, default=label_period)


def config_from_args(args, **extra) -> BenchConfig:
    return BenchConfig(
        datadir=args.datadir,
        pairs=args.pairs,
        timeframe=args.timeframe,
        informative=tuple(args.informative),
        timerange=args.timerange,
        folds=args.folds,
        train_days=args.train_days,
        test_days=args.test_days,
        label_period=args.label_period,
        **extra,
    )


def ensemble_params(cfg: BenchConfig) -> dict:
    """The ensemble's parameters: its defaults, the purge set to the label horizon, then --ensemble-params."""
    return {"purge": cfg.label_period, **(cfg.ensemble_params or {})}


def _metrics(pred: np.ndarray, y: np.ndarray) -> dict:
    nz = y != 0
    return {
        "direction_accuracy": float((np.sign(pred[nz]) == np.sign(y[nz])).mean()),
        "rmse": float(np.sqrt(np.mean((pred - y) ** 2))),
        "ic": float(spearmanr(pred, y).statistic),
    }


def _hit_rate_combined(
    ens: StackedEnsemble,
    y_tr: np.ndarray,
    gap_preds: np.ndarray,
    y_gap: np.ndarray,
    base_test: np.ndarray,
    y_te: np.ndarray,
    label_period: int,
    window: int,
) -> np.ndarray:
    """The adaptive combiner measured beside the others: each base model weighted by its direction hit
    rate over the last `window` candles whose outcome is known (combiners.rolling_hit_rate_weights),
    scored on the training window's out-of-fold rows, then the purged gap and test rows as they mature."""
    tail = slice(max(0, len(ens.oof_) - window), len(ens.oof_))
    n_test = len(y_te)
    preds = np.vstack([ens.oof_[tail], gap_preds, base_test])
    realized = np.r_[y_tr[ens.oof_rows_][tail], y_gap, y_te]
    start = len(preds) - n_test
    w = rolling_hit_rate_weights(preds, realized, label_period, window, start=start)
    return (w * base_test).sum(axis=1)


def _latency(fn, x_last: np.ndarray, repeats: int = 200) -> tuple[float, float]:
    fn(x_last)
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn(x_last)
        ts.append((time.perf_counter() - t) * 1e3)
    return float(np.percentile(ts, 50)), float(np.percentile(ts, 99))


def run(cfg: BenchConfig) -> dict:
    from lightgbm import LGBMRegressor

    candle_ms = interval_ms(cfg.timeframe)
    n_train = int(cfg.train_days * 86_400_000 / candle_ms)
    n_test = int(cfg.test_days * 86_400_000 / candle_ms)
    records: dict[str, dict[str, list]] = {}
    conf_rows = []
    fold_info = []
    with Progress(console=console, transient=False) as progress:
        task = progress.add_task("walk-forward", total=cfg.folds * len(cfg.pairs))
        for pair in cfg.pairs:
            data, cols = build_dataset(cfg, pair)
            # the raw forward log return (an outcome, for the net score only), whatever the target's scale
            data["_forward"] = np.log(data["close"].shift(-cfg.label_period) / data["close"])
            data = data.dropna(subset=[*cols, features.TARGET]).reset_index(drop=True)
            for k, lo in enumerate(fold_starts(len(data), cfg, n_train, n_test, pair)):
                tr = slice(lo, lo + n_train - cfg.label_period)  # purge: train labels end before test
                te = slice(lo + n_train, lo + n_train + n_test)
                x_tr, y_tr = data.loc[tr, cols].to_numpy(np.float32), data.loc[tr, features.TARGET].to_numpy()
                x_te, y_te = data.loc[te, cols].to_numpy(np.float32), data.loc[te, features.TARGET].to_numpy()
                # The LSTM needs the candles before the test window as sequence context.
                x_ctx = data.loc[slice(lo, lo + n_train + n_test), cols].to_numpy(np.float32)
                progress.update(task, description=f"{pair} fold {k + 1}/{cfg.folds}: stacked ensemble")
                t0 = time.perf_counter()
                ens = StackedEnsemble(**ensemble_params(cfg)).set_label_period(cfg.label_period).fit(x_tr, y_tr)
                ens_s = time.perf_counter() - t0
                pred, conf = ens.predict_with_confidence(x_ctx)
                pred, conf = pred[-len(y_te) :], conf[-len(y_te) :]
                all_base = ens.base_predictions(x_ctx)
                base_preds = all_base[-len(y_te) :]
                rows = {"StackedEnsemble": (pred, ens_s)}
                if len(ens.metas_) > 1:  # meta="auto": each candidate's own out-of-sample score too
                    for kind in ens.metas_:
                        rows[f"StackedEnsemble[{kind}]"] = (ens.predict_meta(x_ctx, kind)[-len(y_te) :], ens_s)
                for j, name in enumerate(ens.bases_):
                    rows[name] = (base_preds[:, j], ens.timings_[name])
                gap = slice(lo + n_train - cfg.label_period + 1, lo + n_train - 1)  # purged rows before the test
                y_gap = data.loc[gap, features.TARGET].to_numpy()
                rows["StackedEnsemble[hit_rate]"] = (
                    _hit_rate_combined(
                        ens,
                        y_tr,
                        all_base[-(len(y_te) + len(y_gap)) : -len(y_te)],
                        y_gap,
                        base_preds,
                        y_te,
                        cfg.label_period,
                        int(86_400_000 / candle_ms),
                    ),
                    ens_s,
                )
                progress.update(task, description=f"{pair} fold {k + 1}/{cfg.folds}: baseline")
                t0 = time.perf_counter()
                base = LGBMRegressor(verbose=-1, n_jobs=compute_threads(None)).fit(x_tr, y_tr)  # as our estimators
                rows[BASELINE] = (base.predict(x_te), time.perf_counter() - t0)
                # FreqAI's model as one more equal-weight member (trained once, for both rows)
                rows[WITH_BASELINE] = (
                    np.column_stack([base_preds, rows[BASELINE][0]]).mean(axis=1),
                    ens_s + rows[BASELINE][1],
                )
                for name, (p, secs) in rows.items():
                    rec = records.setdefault(name, {"pred": [], "y": [], "train_s": [], "forward": []})
                    rec["pred"].append(p)
                    rec["y"].append(y_te)
                    rec["train_s"].append(secs)
                    rec["forward"].append(data.loc[te, "_forward"].to_numpy())
                conf_rows.append(pd.DataFrame({"confidence": conf, "hit": np.sign(pred) == np.sign(y_te), "y": y_te}))
                fold_info.append(
                    {
                        "pair": pair,
                        "fold": k + 1,
                        "train_from": str(data.loc[tr.start, "date"]),
                        "test_from": str(data.loc[te.start, "date"]),
                        "test_to": str(data.loc[te.stop - 1, "date"]),
                        "ensemble_train_s": ens_s,
                        "baseline_train_s": rows[BASELINE][1],
                        "train_rows": len(y_tr),
                        "models": list(ens.bases_),
                        "meta": ens.meta_kind_,
                        "meta_oof_accuracy": ens.meta_scores_,
                        **{f"{n}_acc": _metrics(p, y_te)["direction_accuracy"] for n, (p, _) in rows.items()},
                    }
                )
                progress.advance(task)
                if not console.is_terminal:  # rich draws no bar into a log: one line per pair-fold instead
                    console.print(
                        f"{pair} fold {k + 1}/{cfg.folds}: ensemble {ens_s:.1f} s "
                        f"({ens_s / rows[BASELINE][1]:.1f}x the baseline), accuracy "
                        f"{fold_info[-1]['StackedEnsemble_acc']:.3f}",
                        markup=False,
                        highlight=False,
                    )
            latency = _latencies(ens, base, x_ctx)
    models = {}
    for name, rec in records.items():
        m = _metrics(np.concatenate(rec["pred"]), np.concatenate(rec["y"]))
        m["train_s"] = float(np.mean(rec["train_s"]))
        m["net"] = net_score(rec["pred"], rec["forward"], cfg.label_period)
        m["predict_p50_ms"], m["predict_p99_ms"] = latency.get(name, (None, None))
        budget = P99_BUDGET_MS.get(name)
        m["predict_p99_budget_ms"] = budget
        m["predict_within_budget"] = (
            None if budget is None or m["predict_p99_ms"] is None else m["predict_p99_ms"] < budget
        )
        models[name] = m
    conf = pd.concat(conf_rows, ignore_index=True)
    conf = conf[conf["y"] != 0]
    buckets = pd.cut(conf["confidence"], [0, 0.5, 0.55, 0.6, 0.65, 0.75, 1.0001], right=False)
    by_bucket = conf.groupby(buckets, observed=True)["hit"].agg(["mean", "count"])
    return complete(
        {
            "models": models,
            "baseline": BASELINE,
            "confidence_buckets": [
                confidence_bucket(str(b), float(r["mean"]), int(r["count"]), cfg.label_period)
                for b, r in by_bucket.iterrows()
            ],
            "top_decile": top_decile(conf, cfg.label_period),
            "folds": fold_info,
            "n_features": len(cols),
            "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in cfg.__dict__.items()},
        }
    )


GOAL_ACCURACY = 0.55
# Per-candle inference budgets (p99, ms): the spec's per model (XGBoost, not in the spec's list: CatBoost's),
# and 20 ms for the whole ensemble.
P99_BUDGET_MS = {"lightgbm": 10, "catboost": 15, "random_forest": 20, "xgboost": 15, "lstm": 50, "StackedEnsemble": 20}


def _add_fold_spread(models: dict, folds: list[dict]) -> None:
    """Direction accuracy per pair-fold: its standard error says which differences are noise.

    4-hour targets on overlapping candles are far from independent, so the per-candle binomial error
    (~0.3 pp on 24k candles) overstates the evidence; the spread across folds does not.
    """
    for name, m in models.items():
        acc = np.array([f[f"{name}_acc"] for f in folds if f"{name}_acc" in f])
        m["fold_accuracy_se"] = float(acc.std(ddof=1) / np.sqrt(len(acc))) if len(acc) > 1 else None


COST_LIMIT = 4.0  # the ensemble's training time per retrain, at most this multiple of FreqAI's LightGBMRegressor


TOLERANCE_PP = 0.2  # the ensemble may trail its best member and FreqAI's LightGBM by at most this (issue 35 §1)


def goal(models: dict, folds: list[dict] | None = None) -> dict:
    """The ensemble's accuracy goal (issue 35 §1): paired over pair-folds, at least its best member
    - 0.2 pp and at least FreqAI's LightGBMRegressor - 0.2 pp (each difference with its paired standard
    error in `paired`); without folds (an old result) on the pooled accuracies. The spec's 55 % is
    reported as the target beside it."""
    acc = {n: m["direction_accuracy"] for n, m in models.items()}
    se = {n: m.get("fold_accuracy_se") for n, m in models.items()}
    best = max((n for n in BASE_MODELS if n in acc), key=acc.get, default=None)
    ens = acc.get("StackedEnsemble")

    def diff_pp(other: str | None) -> float | None:
        if ens is None or other is None or other not in acc:
            return None
        d = paired(folds, "StackedEnsemble", other) if folds else None
        return d["diff_pp"] if d else 100 * (ens - acc[other])

    vs_best, vs_baseline = diff_pp(best), diff_pp(BASELINE)
    met = (
        ens is not None
        and vs_baseline is not None
        and vs_baseline >= -TOLERANCE_PP
        and (vs_best is None or vs_best >= -TOLERANCE_PP)
    )
    return {
        "ensemble": ens,
        "ensemble_se": se.get("StackedEnsemble"),
        "best_base": best,
        "best_base_accuracy": acc.get(best),
        "best_base_se": se.get(best),
        "baseline_accuracy": acc.get(BASELINE),
        "baseline_se": se.get(BASELINE),
        "vs_best_pp": vs_best,
        "vs_baseline_pp": vs_baseline,
        "tolerance_pp": TOLERANCE_PP,
        "threshold": GOAL_ACCURACY,
        "spec_target_met": bool(ens is not None and ens > GOAL_ACCURACY),
        "met": bool(met),
    }


def cost(folds: list[dict]) -> dict:
    """Training time of the ensemble over FreqAI's LightGBMRegressor on the same rows, per pair-fold.
    The first fold of a run also pays one-off costs (TensorFlow tracing), so the median is the verdict."""
    ratios = np.array(
        [
            f["ensemble_train_s"] / f["baseline_train_s"]
            for f in folds
            if f.get("baseline_train_s") and f.get("ensemble_train_s") is not None
        ]
    )
    if not len(ratios):
        return {"ratio_median": None, "met": None}
    se = float(ratios.std(ddof=1) / np.sqrt(len(ratios))) if len(ratios) > 1 else None
    return {
        "ensemble_train_s_median": float(np.median([f["ensemble_train_s"] for f in folds])),
        "baseline_train_s_median": float(
            np.median([f["baseline_train_s"] for f in folds if f.get("baseline_train_s")])
        ),
        "ratio_median": float(np.median(ratios)),
        "ratio_mean": float(ratios.mean()),
        "ratio_se": se,
        "ratio_max": float(ratios.max()),
        "pair_folds": len(ratios),
        "limit": COST_LIMIT,
        "met": bool(np.median(ratios) <= COST_LIMIT),
    }


def _latencies(ens: StackedEnsemble, baseline, x_ctx: np.ndarray) -> dict[str, tuple[float, float]]:
    """Per-candle inference: one new row (the LSTM gets its 20-row window), p50/p99 ms."""
    seq = ens.bases_["lstm"].params["sequence_length"] if "lstm" in ens.bases_ else 1
    last, window = x_ctx[-1:], x_ctx[-seq:]
    out = {}
    for name, est in ens.bases_.items():  # a base model sees the ensemble's selected columns
        x = (window if isinstance(est, KerasLSTMEstimator) else last)[:, ens.columns_]
        out[name] = _latency(est.predict, x)
    out["StackedEnsemble"] = _latency(ens.predict_with_confidence, window)
    for kind in ens.metas_:
        out[f"StackedEnsemble[{kind}]"] = _latency(lambda w, k=kind: ens.predict_meta(w, k), window)
    # the adaptive combiner per candle: the base predictions and a weighted sum (its weights update in O(models))
    weights = np.full(len(ens.bases_), 1.0 / len(ens.bases_))
    out["StackedEnsemble[hit_rate]"] = _latency(lambda w: ens.base_predictions(w)[-1] @ weights, window)
    out[BASELINE] = _latency(baseline.predict, last)
    out[WITH_BASELINE] = _latency(lambda w: np.r_[ens.base_predictions(w)[-1], baseline.predict(w[-1:])].mean(), window)
    return out


def report(result: dict) -> Table:
    table = Table(
        title=f"Walk-forward out-of-sample ({len(result['folds'])} pair-folds, {result['n_features']} features)"
    )
    for col in (
        "model",
        "direction acc",
        "+- SE folds",
        "RMSE",
        "IC",
        "net bps/decision [95%]",
        "train s",
        "predict p50 ms",
        "predict p99 ms",
        "p99 budget",
    ):
        table.add_column(col, justify="right" if col != "model" else "left", no_wrap=col == "model")
    for name, m in result["models"].items():
        se = m.get("fold_accuracy_se")
        table.add_row(
            escape(name),
            f"{m['direction_accuracy']:.4f}",
            "-" if se is None else f"{se:.4f}",
            f"{m['rmse']:.5f}",
            f"{m['ic']:.4f}",
            _net(m.get("net")),
            f"{m['train_s']:.1f}",
            f"{m['predict_p50_ms']:.2f}",
            f"{m['predict_p99_ms']:.2f}",
            _budget(m),
        )
    return table


def _net(net: dict | None) -> str:
    if not net or net.get("mean_net_bps") is None:
        return "-"
    ci = net.get("ci95_bps")
    return f"{net['mean_net_bps']:.1f}" + ("" if ci is None else f" [{ci[0]:.1f}, {ci[1]:.1f}]")


def _budget(m: dict) -> str:
    if m.get("predict_p99_budget_ms") is None:
        return "-"
    return f"{'ok' if m['predict_within_budget'] else 'OVER'} < {m['predict_p99_budget_ms']}"


def paired(folds: list[dict], a: str, b: str) -> dict | None:
    """Direction accuracy of `a` minus `b` fold by fold (same candles): mean, its standard error, and in
    how many pair-folds `a` was better. Pairing removes the folds' common luck, so it is the fair test."""
    d = np.array([f[f"{a}_acc"] - f[f"{b}_acc"] for f in folds if f"{a}_acc" in f and f"{b}_acc" in f])
    if len(d) < 2:
        return None
    return {
        "a": a,
        "b": b,
        "diff_pp": float(100 * d.mean()),
        "se_pp": float(100 * d.std(ddof=1) / np.sqrt(len(d))),
        "a_better": int((d > 0).sum()),
        "pair_folds": len(d),
    }


def comparisons(result: dict) -> list[dict]:
    """The ensemble against its best member and the baseline, and every combiner against the default."""
    g = result["goal"]
    pairs = [("StackedEnsemble", g["best_base"]), ("StackedEnsemble", BASELINE)]
    pairs += [(n, "StackedEnsemble") for n in result["models"] if n.startswith("StackedEnsemble[")]
    pairs += [(WITH_BASELINE, BASELINE)] if WITH_BASELINE in result["models"] else []
    return [c for a, b in pairs if b is not None and (c := paired(result["folds"], a, b)) is not None]


def complete(result: dict) -> dict:
    """Fold spread and goal verdict: for a fresh run, and for one written before they existed."""
    _add_fold_spread(result["models"], result["folds"])
    result["goal"] = goal(result["models"], result.get("folds"))
    result["paired"] = comparisons(result)
    result["cost"] = cost(result["folds"])
    return result


def goal_line(result: dict) -> str:
    g, c = result["goal"], result.get("cost") or {}

    def verdict(ok) -> str:
        return "[green]met[/green]" if ok else ("n/a" if ok is None else "[red]not met[/red]")

    def acc(name: str, key: str) -> str:
        se = g.get(f"{key}_se")
        return f"{name} {g[f'{key}_accuracy' if key != 'ensemble' else 'ensemble']:.4f}" + (
            "" if se is None else f" +- {se:.4f}"
        )

    lines = [
        (
            f"accuracy goal (paired: ensemble >= its best member - {g.get('tolerance_pp', 0.2)} pp and >= {BASELINE} "
            f"- {g.get('tolerance_pp', 0.2)} pp): {verdict(g['met'])}: "
            f"{acc('ensemble', 'ensemble')}, {acc('best base ' + str(g['best_base']), 'best_base')}, "
            f"{acc('baseline', 'baseline')}; spec target > {g['threshold']:.0%}: {verdict(g.get('spec_target_met'))}"
        )
    ]
    if c.get("ratio_median") is not None:
        lines.append(
            f"cost goal (ensemble training <= {c['limit']:g}x {BASELINE} on the same rows): {verdict(c['met'])}: "
            f"median {c['ratio_median']:.2f}x (mean {c['ratio_mean']:.2f}, max {c['ratio_max']:.2f}, "
            f"{c['pair_folds']} pair-folds; {c['ensemble_train_s_median']:.1f} s vs "
            f"{c['baseline_train_s_median']:.1f} s)"
        )
    top = result.get("top_decile")
    if top:
        lines.append(
            f"confidence: the top decile ({top['bucket']}) is right {top['direction_accuracy']:.1%} "
            f"[{top['ci95'][0]:.1%}, {top['ci95'][1]:.1%}] of {top['candles']} candles (effective n "
            f"{top['effective_n']:.0f}) against {top['overall_accuracy']:.1%} overall and {top['majority_rate']:.1%} "
            f"for the more frequent direction; spec >= {top['spec_precision']:.0%}: {verdict(top['spec_met'])}"
        )
    return "\n".join(lines)


def write(result: dict, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
