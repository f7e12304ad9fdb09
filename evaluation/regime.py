"""Score the causal regime detector.

Synthetic (ground truth known):
    python -m evaluation.regime --seed 0 --seed 1 --candles 100000 --out regime.json
Real data (no ground truth: regime statistics and a price chart coloured by regime):
    python -m evaluation.regime --datadir ../shared/data/binance --pair BTC/USDT --timeframe 1h --out btc.json
Someone else's market or labels (a feather with `date` and `regime`, our four names):
    python -m evaluation.regime --datadir D --pair P --timeframe 1h --labels labels.feather --out o.json
    scores exactly what strategies receive (walk-forward refits on that timeframe, the detector's own
    names, no re-mapping against the truth), with block-bootstrap 95% intervals; see docs/regime.md.

The detector is fitted on the first --train-fraction of the candles and then run causally
(forward filter, one candle at a time) over the rest. References on the same candles: the smoothed
forward-backward decoding (looks ahead: an upper bound) and a rule baseline (volatility and
momentum thresholds taken from the training part).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console
from rich.progress import track

from regime.detector import NAMINGS, REGIMES, RegimeDetector
from regime.features import FEATURES, FeatureWindows, observations
from regime.intrahour import intrahour_regimes
from regime.walkforward import WalkForwardParams, causal_regimes, segments
from simulation.timeframes import interval_ms

console = Console(stderr=True)


def rule_baseline(obs_train: np.ndarray, obs_test: np.ndarray) -> np.ndarray:
    """Thresholds from the training part only: top-decile volatility -> high_volatility, bottom
    third -> sideways, otherwise the momentum sign picks bull or bear."""
    vol, mom = FEATURES.index("volatility"), FEATURES.index("momentum")
    hi = np.nanquantile(obs_train[:, vol], 0.9)
    lo = np.nanquantile(obs_train[:, vol], 0.33)
    out = np.where(obs_test[:, mom] >= 0, "trending_bull", "trending_bear").astype(object)
    out[obs_test[:, vol] <= lo] = "sideways"
    out[obs_test[:, vol] >= hi] = "high_volatility"
    return out


def detection_delay(truth: np.ndarray, pred: np.ndarray) -> tuple[float | None, float | None, float]:
    """Mean / median candles from a true switch to the first matching prediction, and the share of
    switches detected before the next true switch."""
    switches = np.flatnonzero(truth[1:] != truth[:-1]) + 1
    delays = []
    for i, t in enumerate(switches):
        end = switches[i + 1] if i + 1 < len(switches) else len(truth)
        hit = np.flatnonzero(pred[t:end] == truth[t])
        if len(hit):
            delays.append(int(hit[0]))
    if not len(switches):
        return None, None, 1.0
    if not delays:
        return None, None, 0.0
    return float(np.mean(delays)), float(np.median(delays)), len(delays) / len(switches)


def flips_per_1000(labels: np.ndarray) -> float:
    return float((labels[1:] != labels[:-1]).sum() / max(len(labels), 1) * 1000)


def run_detector(df: pd.DataFrame, timeframe: str, train_fraction: float, seed: int = 0) -> dict:
    """Fit on the head, run causally (step by step) on the tail; returns arrays and timings."""
    windows = FeatureWindows.for_timeframe(timeframe)
    n_train = int(len(df) * train_fraction)
    if n_train < windows.warmup + 500:
        raise ValueError(
            f"need at least {windows.warmup + 500} training candles at {timeframe}, got {n_train}: "
            "use more candles or a larger --train-fraction"
        )
    det = RegimeDetector(windows=windows, random_state=seed)
    t0 = time.perf_counter()
    det.fit(df.iloc[:n_train])
    fit_seconds = time.perf_counter() - t0
    close = df["close"].to_numpy(float)
    volume = df["volume"].to_numpy(float)
    det.reset_online()
    probs = np.full((len(df), len(REGIMES)), np.nan)
    timings = []
    for i in track(range(len(df)), description="causal filter", console=console, transient=True):
        t = time.perf_counter_ns()
        p = det.step(close[i], volume[i])
        if i >= n_train:
            timings.append(time.perf_counter_ns() - t)
        if p is not None:
            probs[i] = p
    test = slice(n_train, None)
    obs = det.observations(df).to_numpy()
    causal = np.array(REGIMES, dtype=object)[np.nanargmax(np.nan_to_num(probs[test], nan=-1.0), axis=1)]
    smoothed = det.smooth(df)["regime"].to_numpy()[test]
    baseline = rule_baseline(obs[:n_train], obs[test])
    us = np.array(timings) / 1000.0
    return {
        "detector": det,
        "n_train": n_train,
        "causal": causal,
        "probs": probs[test],
        "smoothed": smoothed,
        "baseline": baseline,
        "fit_seconds": fit_seconds,
        "update_us_p50": float(np.percentile(us, 50)),
        "update_us_p99": float(np.percentile(us, 99)),
    }


def score_against_truth(truth: np.ndarray, run: dict) -> dict:
    pred = run["causal"]
    cm = pd.crosstab(
        pd.Categorical(truth, categories=REGIMES), pd.Categorical(pred, categories=REGIMES), dropna=False
    ).to_numpy()
    per = {}
    for i, r in enumerate(REGIMES):
        tp = cm[i, i]
        per[r] = {
            "precision": float(tp / cm[:, i].sum()) if cm[:, i].sum() else None,
            "recall": float(tp / cm[i, :].sum()) if cm[i, :].sum() else None,
            "support": int(cm[i, :].sum()),
        }
    mean_d, median_d, rate = detection_delay(truth, pred)
    out = {
        "accuracy": float((pred == truth).mean()),
        "baseline_accuracy": float((run["baseline"] == truth).mean()),
        "per_regime": per,
        "confusion_matrix": {"labels": list(REGIMES), "rows_true_cols_pred": cm.tolist()},
        "detection_delay": mean_d,
        "detection_delay_median": median_d,
        "switches_detected": rate,
        "flips_per_1000": flips_per_1000(pred),
        "true_flips_per_1000": flips_per_1000(truth),
        "fit_seconds": run["fit_seconds"],
        "train_candles": run["n_train"],
        "test_candles": len(truth),
    }
    if "smoothed" in run:  # the fit-once evaluation: a look-ahead upper bound and the live update cost
        out["smoothed_accuracy"] = float((run["smoothed"] == truth).mean())
        out["update_us_p50"], out["update_us_p99"] = run["update_us_p50"], run["update_us_p99"]
    return out


def evaluate_synthetic(seed: int, candles: int, train_fraction: float) -> dict:
    from simulation.synthetic import SyntheticConfig, generate

    market = generate(SyntheticConfig(seed=seed, days=candles * 5 / 1440, timeframe="5m"))
    df = market.candles["BTC/USDT"]
    run = run_detector(df, "5m", train_fraction, seed=seed)
    truth = market.ground_truth["regime"].to_numpy()[run["n_train"] :]
    return {"seed": seed, "pair": "BTC/USDT", "timeframe": "5m", **score_against_truth(truth, run)}


def regime_statistics(df: pd.DataFrame, labels: np.ndarray, timeframe: str) -> dict:
    from freqtrade.exchange import timeframe_to_msecs as interval_ms

    per_year = 365 * 86_400_000 / interval_ms(timeframe)
    ret = np.diff(np.log(df["close"].to_numpy(float)), prepend=np.nan)
    spells = (labels[1:] != labels[:-1]).sum() + 1
    out = {}
    for r in REGIMES:
        mask = labels == r
        rr = ret[mask]
        runs = np.diff(np.flatnonzero(np.diff(np.r_[0, mask.astype(int), 0])))[::2] if mask.any() else []
        out[r] = {
            "share": float(mask.mean()),
            "mean_spell_candles": float(np.mean(runs)) if len(runs) else 0.0,
            "annualized_return": float(np.nanmean(rr) * per_year) if mask.any() else None,
            "annualized_volatility": float(np.nanstd(rr) * np.sqrt(per_year)) if mask.any() else None,
        }
    return {"per_regime": out, "spells": int(spells), "flips_per_1000": flips_per_1000(labels)}


def plot_regimes(df: pd.DataFrame, labels: np.ndarray, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {
        "trending_bull": "tab:green",
        "trending_bear": "tab:red",
        "sideways": "tab:gray",
        "high_volatility": "tab:purple",
    }
    fig, ax = plt.subplots(figsize=(14, 5))
    dates = pd.to_datetime(df["date"]).to_numpy()
    close = df["close"].to_numpy(float)
    ax.plot(dates, close, color="black", lw=0.5, alpha=0.4)
    for r in REGIMES:
        mask = labels == r
        ax.scatter(dates[mask], close[mask], s=2, color=colors[r], label=f"{r} ({mask.mean():.0%})")
    ax.set_yscale("log")
    ax.set_title(title)
    ax.legend(loc="upper left", markerscale=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def evaluate_real(datadir: Path, pair: str, timeframe: str, train_fraction: float, plot: Path) -> dict:
    path = datadir / f"{pair.replace('/', '_')}-{timeframe}.feather"
    if not path.exists():
        raise FileNotFoundError(f"no data file {path}")
    df = pd.read_feather(path)
    run = run_detector(df, timeframe, train_fraction)
    test_df = df.iloc[run["n_train"] :].reset_index(drop=True)
    labels = run["causal"]
    plot_regimes(
        test_df,
        labels,
        plot,
        f"{pair} {timeframe}: causal HMM regimes (fitted before {test_df['date'].iloc[0]:%Y-%m-%d})",
    )
    smoothed_agreement = float((run["smoothed"] == labels).mean())
    baseline_agreement = float((run["baseline"] == labels).mean())
    return {
        "pair": pair,
        "timeframe": timeframe,
        "test_from": str(test_df["date"].iloc[0]),
        "test_to": str(test_df["date"].iloc[-1]),
        "ground_truth": None,
        "causal": regime_statistics(test_df, labels, timeframe),
        "smoothed_agreement": smoothed_agreement,
        "baseline_agreement": baseline_agreement,
        "fit_seconds": run["fit_seconds"],
        "update_us_p50": run["update_us_p50"],
        "update_us_p99": run["update_us_p99"],
        "plot": str(plot),
    }


def walkforward_rule_baseline(df: pd.DataFrame, timeframe: str, params: WalkForwardParams) -> np.ndarray:
    """`rule_baseline` on the detector's refit schedule: thresholds from each segment's training window."""
    obs = observations(df, FeatureWindows.for_timeframe(timeframe)).to_numpy()
    out = np.full(len(df), None, dtype=object)
    for lo, _s, b, e in segments(df, timeframe, params):
        train, test = obs[lo:b], obs[b:e]
        if np.isnan(train).all(axis=0).any():
            continue
        ok = ~np.isnan(test).any(axis=1)
        out[b:e][ok] = rule_baseline(train, test[ok])
    return out


def block_bootstrap(
    series: dict[str, np.ndarray], block: int, reps: int = 1000, seed: int = 0
) -> dict[str, list[float]]:
    """95% intervals of each per-candle series' mean (x1000 for keys ending in `per_1000`) from a
    circular moving-block bootstrap: regimes persist, so candles are not independent draws."""
    n = len(next(iter(series.values())))
    rng = np.random.default_rng(seed)
    k = -(-n // block)
    idx = (rng.integers(0, n, (reps, k))[:, :, None] + np.arange(block)).reshape(reps, -1)[:, :n] % n
    out = {}
    for name, x in series.items():
        means = np.asarray(x, float)[idx].mean(axis=1) * (1000 if name.endswith("per_1000") else 1)
        out[name] = [float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))]
    return out


def load_labels(path: Path) -> pd.DataFrame:
    """`date` (UTC) and `regime` (our four names); a clear error for anything else."""
    if not path.exists():
        raise FileNotFoundError(f"no labels file {path}")
    labels = pd.read_feather(path) if path.suffix == ".feather" else pd.read_csv(path)
    missing = {"date", "regime"} - set(labels.columns)
    if missing:
        raise ValueError(f"labels file {path} lacks columns {sorted(missing)} (needs date, regime)")
    unknown = sorted(set(labels["regime"].dropna().astype(str)) - set(REGIMES))
    if unknown:
        raise ValueError(f"labels file {path} has regimes {unknown}; use {list(REGIMES)}")
    return pd.DataFrame({"date": pd.to_datetime(labels["date"], utc=True), "truth": labels["regime"]})


def _read_candles(datadir: Path, pair: str, timeframe: str) -> pd.DataFrame:
    path = datadir / f"{pair.replace('/', '_')}-{timeframe}.feather"
    if not path.exists():
        raise FileNotFoundError(f"no data file {path}")
    df = pd.read_feather(path)
    df["date"] = pd.to_datetime(df["date"], utc=True)
    return df


def _as_of_closed(
    dates: pd.Series, timeframe: str, coarse_dates: pd.Series, coarse_tf: str, values: np.ndarray
) -> np.ndarray:
    """Per candle, the coarse value of the last coarse candle closed by the candle's close."""
    from freqtrade.exchange import timeframe_to_msecs as interval_ms

    left = pd.DataFrame({"t": dates + pd.Timedelta(milliseconds=interval_ms(timeframe))})
    right = pd.DataFrame({"t": coarse_dates + pd.Timedelta(milliseconds=interval_ms(coarse_tf)), "v": values})
    return pd.merge_asof(left, right, on="t", direction="backward")["v"].to_numpy()


def evaluate_labels(
    datadir: Path,
    pair: str,
    timeframe: str,
    labels_path: Path,
    params: WalkForwardParams | None = None,
    naming: str = "rank",
    cadence: str | None = None,
    score_from: pd.Timestamp | None = None,
    windows: FeatureWindows | None = None,
) -> dict:
    """Score the labels strategies get (walk-forward, the detector's names) against someone else's.
    With `cadence` (e.g. "5m"): the labels updated every such candle (`regime.intrahour`), scored
    against labels at that cadence; the baseline is the hourly rule as of the last closed hour."""
    df = _read_candles(datadir, pair, timeframe)
    p = params or WalkForwardParams.for_timeframe(timeframe)
    console.print(
        f"{pair} {timeframe}: {len(df)} candles, walk-forward refits every {p.refit_every} candles on "
        f"{p.train_candles}, min dwell {p.min_dwell}{f', updated every {cadence}' if cadence else ''}..."
    )
    t0 = time.perf_counter()
    detector = RegimeDetector(windows=windows or FeatureWindows.for_timeframe(timeframe), naming=naming)
    base = walkforward_rule_baseline(df, timeframe, p)
    if cadence:
        fine = _read_candles(datadir, pair, cadence)
        pred = intrahour_regimes(fine, cadence, df, timeframe, p, detector)["regime"].to_numpy()
        base = _as_of_closed(fine["date"], cadence, df["date"], timeframe, base)
        df = fine
    else:
        pred = causal_regimes(df, timeframe, p, detector=detector)["regime"].to_numpy()
    seconds = time.perf_counter() - t0
    merged = df[["date"]].assign(pred=pred, base=base).merge(load_labels(labels_path), on="date", how="inner")
    keep = merged["pred"].notna() & merged["base"].notna() & merged["truth"].notna()
    if score_from is not None:  # the same candles for settings whose first training windows differ
        keep &= merged["date"] >= score_from
    scored = merged[keep].reset_index(drop=True)
    if len(scored) < 100:
        raise ValueError(
            f"only {len(scored)} candles have a label, a prediction and a baseline: "
            f"need a longer history (the first {p.train_candles} candles only train)"
        )
    truth, y, b = (scored[c].to_numpy().astype(str) for c in ("truth", "pred", "base"))
    result = score_against_truth(
        truth, {"causal": y, "baseline": b, "fit_seconds": seconds, "n_train": p.train_candles}
    )
    spells = np.diff(np.flatnonzero(np.r_[True, truth[1:] != truth[:-1], True]))
    block = int(min(max(24, round(spells.mean())), max(24, len(truth) // 10)))

    def flip(x: np.ndarray) -> np.ndarray:
        return np.r_[0, x[1:] != x[:-1]].astype(float)

    correct, base_correct = (y == truth).astype(float), (b == truth).astype(float)
    intervals = block_bootstrap(
        {
            "accuracy": correct,
            "baseline_accuracy": base_correct,
            "accuracy_minus_baseline": correct - base_correct,
            "flips_per_1000": flip(y),
            "true_flips_per_1000": flip(truth),
        },
        block,
    )
    return {
        "pair": pair,
        "timeframe": timeframe,
        "cadence": cadence or timeframe,
        "labels": str(labels_path),
        "scored_from": str(scored["date"].iloc[0]),
        "scored_to": str(scored["date"].iloc[-1]),
        "walk_forward": {
            "train_candles": p.train_candles,
            "refit_every": p.refit_every,
            "burn_in": p.burn_in,
            "min_dwell": p.min_dwell,
        },
        "naming": naming,
        **result,
        "baseline_flips_per_1000": flips_per_1000(b),
        "flip_ratio": result["flips_per_1000"] / result["true_flips_per_1000"]
        if result["true_flips_per_1000"]
        else None,
        "ci95": intervals,
        "bootstrap_block_candles": block,
        "bootstrap_reps": 1000,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m evaluation.regime", description=__doc__.split("\n\n")[0])
    p.add_argument("--seed", type=int, action="append", help="synthetic seed; repeat for several (default: 0)")
    p.add_argument("--candles", type=int, default=100_000, help="synthetic 5m candles (default: 100000)")
    p.add_argument("--train-fraction", type=float, default=0.3)
    p.add_argument("--datadir", type=Path, help="real data: freqtrade feather datadir")
    p.add_argument("--pair", default="BTC/USDT")
    p.add_argument("--timeframe", default="1h")
    p.add_argument("--plot", type=Path, help="real data: PNG path (default: next to --out)")
    p.add_argument("--labels", type=Path, help="with --datadir: a feather/CSV of date, regime to score against")
    p.add_argument(
        "--cadence",
        help="with --labels: score the labels updated every candle of this timeframe "
        "(e.g. 5m; its candle file and a labels file at that cadence), as strategies' regime_now",
    )
    p.add_argument("--naming", choices=NAMINGS, default="rank", help="how states get names (docs/regime.md)")
    p.add_argument(
        "--min-dwell",
        type=int,
        help="candles a new regime must lead before the label switches "
        "(default: 4 hours of the timeframe; 1 = raw most-probable state)",
    )
    p.add_argument("--train-days", type=float, help="with --labels: each refit's training window in days (default: 30)")
    p.add_argument(
        "--feature-windows", help="with --labels: override feature windows in candles, e.g. vol=24,momentum=72"
    )
    p.add_argument(
        "--score-from", help="with --labels: score candles from this date on (compare settings on the same candles)"
    )
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if not 0.05 <= args.train_fraction <= 0.9:
        p.error("--train-fraction must be within [0.05, 0.9]")
    try:
        if args.labels and not args.datadir:
            p.error("--labels needs --datadir (and --pair, --timeframe) for the candles")
        if args.min_dwell is not None and args.min_dwell < 1:
            p.error("--min-dwell must be at least 1")
        if args.labels:
            params = WalkForwardParams.for_timeframe(args.timeframe)
            if args.min_dwell is not None:
                params = replace(params, min_dwell=args.min_dwell)
            if args.train_days is not None:
                if args.train_days < 7:
                    p.error("--train-days must be at least 7")
                params = replace(
                    params, train_candles=round(args.train_days * 86_400_000 / interval_ms(args.timeframe))
                )
            score_from = pd.Timestamp(args.score_from, tz="UTC") if args.score_from else None
            windows = FeatureWindows.for_timeframe(args.timeframe)
            if args.feature_windows:
                try:
                    windows = replace(
                        windows, **{k: int(v) for k, v in (kv.split("=") for kv in args.feature_windows.split(","))}
                    )
                except (TypeError, ValueError) as exc:
                    p.error(f"--feature-windows: {exc} (fields: vol, volume_fast, volume_slow, trend, momentum)")
            result = evaluate_labels(
                args.datadir,
                args.pair,
                args.timeframe,
                args.labels,
                params,
                args.naming,
                args.cadence,
                score_from,
                windows,
            )
            ci = result["ci95"]
            summary = (
                f"accuracy {result['accuracy']:.3f} [{ci['accuracy'][0]:.3f}, {ci['accuracy'][1]:.3f}], rule baseline "
                f"{result['baseline_accuracy']:.3f} "
                f"[{ci['baseline_accuracy'][0]:.3f}, {ci['baseline_accuracy'][1]:.3f}]; "
                f"flips per 1000 {result['flips_per_1000']:.1f} vs truth {result['true_flips_per_1000']:.1f} "
                f"({len(result['confusion_matrix']['labels'])} regimes, {result['test_candles']} candles)"
            )
        elif args.datadir:
            plot = args.plot or args.out.with_suffix(".png")
            result = evaluate_real(args.datadir, args.pair, args.timeframe, args.train_fraction, plot)
            summary = f"{args.pair} {args.timeframe}: " + ", ".join(
                f"{r} {v['share']:.0%}" for r, v in result["causal"]["per_regime"].items()
            )
        else:
            seeds = args.seed or [0]
            runs = []
            for s in seeds:
                console.print(f"seed {s}: generating {args.candles} candles, fitting, filtering...")
                runs.append(evaluate_synthetic(s, args.candles, args.train_fraction))
                r = runs[-1]
                console.print(
                    f"  accuracy {r['accuracy']:.3f} (baseline {r['baseline_accuracy']:.3f}, smoothed "
                    f"{r['smoothed_accuracy']:.3f}), delay {r['detection_delay']}, "
                    f"update p99 {r['update_us_p99']:.0f} us"
                )
            keys = (
                "accuracy",
                "baseline_accuracy",
                "smoothed_accuracy",
                "detection_delay",
                "flips_per_1000",
                "fit_seconds",
                "update_us_p50",
                "update_us_p99",
            )
            mean = {k: float(np.mean([r[k] for r in runs if r[k] is not None])) for k in keys}
            result = {**(runs[0] if len(runs) == 1 else mean), "seeds": seeds, "mean": mean, "runs": runs}
            summary = (
                f"mean over seeds {seeds}: accuracy {mean['accuracy']:.3f}, baseline "
                f"{mean['baseline_accuracy']:.3f}, smoothed {mean['smoothed_accuracy']:.3f}"
            )
    except (ValueError, FileNotFoundError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    console.print(summary)
    console.print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
