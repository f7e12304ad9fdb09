"""Realized volatility over the label horizon: our model against HAR-RV (Corsi 2009), out of sample.

Why: direction is close to a coin flip at 4 hours (docs/results), while volatility clusters: a target with
a known edge, useful for stake sizing and stop distances. The benchmark must show whether our features
and model add anything to the standard baseline, so both are scored on the same folds.

- Target at candle t: the forward realized variance over the next `label_period` candles,
  RV(t) = sum of r(t+1)^2 .. r(t+h)^2 (log returns), modelled in logs.
- HAR-RV: log RV(t) = b0 + b1 log RV_h(t) + b2 log RV_day(t) + b3 log RV_week(t), where RV_h is the realized
  variance of the last `h` candles and RV_day, RV_week the mean per-`h` realized variance over the last day and
  week (all trailing: known at t); OLS on the training window, the prediction bias-corrected by half the
  residual variance (exp of a log forecast).
- Our model: LightGBM (the spec's defaults, `LightGBMEstimator`) on the FreqAI features of the model
  benchmark (`evaluation.models.build_dataset`), the same log-RV target.
- Scores per pair-fold on the test days: QLIKE (RV / RVhat - log(RV / RVhat) - 1; 0 is perfect, robust to noise
  in the RV proxy, Patton 2011) and the out-of-sample R^2 of log RV against the training mean. Paired
  over pair-folds: model - HAR, mean and standard error.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from freqtrade.exchange import timeframe_to_msecs

from cryptobot_ops.volatility import FLOOR, forward_rv, har_columns
from evaluation.models import BenchConfig, add_walk_forward_args, build_dataset, config_from_args, fold_starts
from freqaimodels.estimators import LightGBMEstimator


def qlike(rv: np.ndarray, rv_hat: np.ndarray) -> float:
    ratio = (rv + FLOOR) / (rv_hat + FLOOR)
    return float(np.mean(ratio - np.log(ratio) - 1.0))


def r2_oos(y: np.ndarray, y_hat: np.ndarray, train_mean: float) -> float:
    return float(1.0 - np.sum((y - y_hat) ** 2) / np.sum((y - train_mean) ** 2))


class HAR:
    """OLS on the three HAR regressors (with an intercept), forecasts in variance units."""

    def fit(self, X: np.ndarray, y: np.ndarray) -> HAR:
        A = np.column_stack([np.ones(len(X)), X])
        self.coef_, *_ = np.linalg.lstsq(A, y, rcond=None)
        self.sigma2_ = float(np.var(y - A @ self.coef_))
        return self

    def predict_log(self, X: np.ndarray) -> np.ndarray:
        return np.column_stack([np.ones(len(X)), X]) @ self.coef_


def run(cfg: BenchConfig) -> dict:
    candle_ms = timeframe_to_msecs(cfg.timeframe)
    per_day = int(86_400_000 / candle_ms)
    n_train, n_test, h = int(cfg.train_days * per_day), int(cfg.test_days * per_day), cfg.label_period
    folds = []
    for pair in cfg.pairs:
        data, cols = build_dataset(cfg, pair)
        har = har_columns(data["close"], h, per_day)
        data = pd.concat([data, har], axis=1)
        data["log_rv_fwd"] = np.log(forward_rv(data["close"], h) + FLOOR)
        data = data.dropna(subset=[*cols, *har.columns, "log_rv_fwd"]).reset_index(drop=True)
        y, xh, xf = data["log_rv_fwd"].to_numpy(), data[list(har.columns)].to_numpy(), data[cols].to_numpy(np.float32)
        for k, lo in enumerate(fold_starts(len(data), cfg, n_train, n_test, pair)):
            tr = np.arange(lo, lo + n_train - h)  # purged: no training target reads into the test days
            te = np.arange(lo + n_train, lo + n_train + n_test)
            y_tr, y_te = y[tr], y[te]
            base = HAR().fit(xh[tr], y_tr)
            log_har = base.predict_log(xh[te])
            model = LightGBMEstimator().fit(xf[tr], y_tr)
            log_ml = model.predict(xf[te])
            resid = float(np.var(y_tr - model.predict(xf[tr])))
            rv = np.exp(y_te) - FLOOR
            fold = {"pair": pair, "fold": k + 1, "test_from": str(data.loc[te[0], "date"]), "test_candles": len(te)}
            for name, log_hat, s2 in (("har", log_har, base.sigma2_), ("lightgbm", log_ml, resid)):
                fold[f"{name}_qlike"] = qlike(rv, np.exp(log_hat + 0.5 * s2))
                fold[f"{name}_r2"] = r2_oos(y_te, log_hat, float(y_tr.mean()))
            folds.append(fold)
            print(
                f"{pair} fold {k + 1}/{cfg.folds}: QLIKE HAR {fold['har_qlike']:.3f} "
                f"LightGBM {fold['lightgbm_qlike']:.3f}",
                file=sys.stderr,
            )
    return summarize(folds, cfg)


def _paired(folds: list[dict], key: str) -> dict:
    d = np.array([f[f"lightgbm_{key}"] - f[f"har_{key}"] for f in folds])
    se = float(d.std(ddof=1) / math.sqrt(len(d))) if len(d) > 1 else None
    mean = float(d.mean())
    return {
        "mean": mean,
        "se": se,
        "ci95": None if se is None else [mean - 1.96 * se, mean + 1.96 * se],
        "model_better_folds": int((d < 0).sum() if key == "qlike" else (d > 0).sum()),
        "pair_folds": len(d),
    }


def summarize(folds: list[dict], cfg: BenchConfig) -> dict:
    out: dict = {"folds": folds, "config": {k: str(v) if isinstance(v, Path) else v for k, v in cfg.__dict__.items()}}
    for name in ("har", "lightgbm"):
        for key in ("qlike", "r2"):
            v = np.array([f[f"{name}_{key}"] for f in folds])
            out[f"{name}_{key}"] = {
                "mean": float(v.mean()),
                "se": float(v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else None,
            }
    q, r = _paired(folds, "qlike"), _paired(folds, "r2")
    out["paired_qlike"], out["paired_r2"] = q, r
    # beats HAR: lower QLIKE with the interval below zero
    out["model_beats_har"] = bool(q["ci95"] is not None and q["ci95"][1] < 0)
    return out


def lines(result: dict) -> list[str]:
    q, r = result["paired_qlike"], result["paired_r2"]
    har_q, ml_q, har_r, ml_r = (result[k] for k in ("har_qlike", "lightgbm_qlike", "har_r2", "lightgbm_r2"))
    out = [
        (
            f"QLIKE (lower is better): HAR {har_q['mean']:.4f} +- {har_q['se']:.4f}, "
            f"LightGBM {ml_q['mean']:.4f} +- {ml_q['se']:.4f}"
        ),
        f"R2 of log RV: HAR {har_r['mean']:.3f} +- {har_r['se']:.3f}, LightGBM {ml_r['mean']:.3f} +- {ml_r['se']:.3f}",
        (
            f"paired LightGBM - HAR over {q['pair_folds']} pair-folds: QLIKE {q['mean']:+.4f} +- {q['se']:.4f} "
            f"(better in {q['model_better_folds']}), R2 {r['mean']:+.3f} +- {r['se']:.3f}"
        ),
        f"LightGBM beats HAR-RV out of sample (QLIKE interval below zero): {result['model_beats_har']}",
    ]
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m evaluation.volatility", description=__doc__.split("\n\n")[0])
    add_walk_forward_args(p, timeframe="1h", informative=[], folds=12, label_period=4)
    p.add_argument("--out", type=Path, default=Path("user_data/volatility.json"))
    args = p.parse_args(argv)
    if args.folds < 1 or args.label_period < 1:
        p.error("--folds and --label-period must be at least 1")
    cfg = config_from_args(args)
    try:
        result = run(cfg)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print("\n".join(lines(result)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
