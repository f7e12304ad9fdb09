"""`python -m scripts.regime_ceiling --seed 0 --seed 1 [--days 720] [--out ceiling.json]`

How good can a causal regime label be on the independent market family? For each seed, in one run:
the labels strategies get (`evaluation.regime`'s walk-forward detector, its rule baseline) and the
generator's own Bayes filter (`bayes_filter`: knows every parameter, so no detector can do much better),
scored on the same 1h candles against the same truth, with block-bootstrap 95% intervals. If the filter
itself stays below a goal, the goal is out of reach on that market, whatever the detector."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from evaluation.regime import block_bootstrap, evaluate_labels, flips_per_1000
from simulation.synthetic.independent import REGIMES, bayes_filter, generate_independent, write


def hourly_from_5m(df5: pd.DataFrame, post: np.ndarray) -> pd.DataFrame:
    """The filter's label at each complete hour's close: its posterior after the hour's last 5m candle
    (the label's `date` is the hour's open, as in `labels-1h.feather`)."""
    frame = pd.DataFrame(post, columns=list(REGIMES)).assign(date=df5["date"].to_numpy()).set_index("date")
    last = frame.resample("1h", label="left", closed="left").last()
    counts = frame.iloc[:, 0].resample("1h", label="left", closed="left").count()
    last = last[counts == 12]
    return pd.DataFrame(
        {
            "date": last.index,
            "oracle": np.array(REGIMES)[last.to_numpy().argmax(axis=1)],
            "confidence": last.to_numpy().max(axis=1),
        }
    )


def one_seed(seed: int, days: float, particles: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        write(seed, days, d)
        t0 = time.perf_counter()
        detector = evaluate_labels(d, "BTC/USDT", "1h", d / "labels-1h.feather")
        detector_s = time.perf_counter() - t0
        truth = pd.read_feather(d / "labels-1h.feather")
    df5, _ = generate_independent(seed, days)
    t0 = time.perf_counter()
    hourly = hourly_from_5m(df5, bayes_filter(df5, particles=particles, seed=seed))
    oracle_s = time.perf_counter() - t0
    truth["date"] = pd.to_datetime(truth["date"], utc=True)
    scored = hourly.merge(truth, on="date")
    lo, hi = pd.Timestamp(detector["scored_from"]), pd.Timestamp(detector["scored_to"])
    scored = scored[(scored["date"] >= lo) & (scored["date"] <= hi)].reset_index(drop=True)
    pred, truth_labels = scored["oracle"].to_numpy().astype(str), scored["regime"].to_numpy().astype(str)
    correct = (pred == truth_labels).astype(float)
    block = detector["bootstrap_block_candles"]
    ci = block_bootstrap({"accuracy": correct}, block)["accuracy"]
    buckets = {}
    for a, b in ((0.0, 0.5), (0.5, 0.7), (0.7, 0.9), (0.9, 1.01)):
        m = (scored["confidence"] >= a) & (scored["confidence"] < b)
        buckets[f"{a:g}-{min(b, 1):g}"] = {"n": int(m.sum()), "accuracy": float(correct[m].mean()) if m.any() else None}
    return {
        "seed": seed,
        "days": days,
        "scored_candles": len(scored),
        "scored_from": str(lo),
        "scored_to": str(hi),
        "oracle": {
            "accuracy": float(correct.mean()),
            "ci95": ci,
            "mean_confidence": float(scored["confidence"].mean()),
            "flips_per_1000": flips_per_1000(pred),
            "true_flips_per_1000": flips_per_1000(truth_labels),
            "calibration": buckets,
            "particles": particles,
            "seconds": oracle_s,
        },
        "detector": {
            "accuracy": detector["accuracy"],
            "ci95": detector["ci95"]["accuracy"],
            "seconds": detector_s,
            "flips_per_1000": detector["flips_per_1000"],
            "baseline_accuracy": detector["baseline_accuracy"],
            "baseline_ci95": detector["ci95"]["baseline_accuracy"],
            "test_candles": detector["test_candles"],
        },
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m scripts.regime_ceiling", description=__doc__.split("\n\n")[0])
    p.add_argument("--seed", type=int, action="append", help="independent-market seed; repeat (default: 0)")
    p.add_argument("--days", type=float, default=720.0)
    p.add_argument("--particles", type=int, default=4000)
    p.add_argument("--out", type=Path, default=Path("user_data/regime_ceiling.json"))
    a = p.parse_args(argv)
    if a.days < 60 or a.particles < 100:
        p.error("--days must be >= 60 (30 train + scoring) and --particles >= 100")
    runs = []
    for seed in a.seed or [0]:
        print(
            f"seed {seed}: {a.days:g} days, detector walk-forward + Bayes filter ({a.particles} particles) ...",
            flush=True,
        )
        r = one_seed(seed, a.days, a.particles)
        runs.append(r)
        o, d = r["oracle"], r["detector"]
        print(
            f"  {r['scored_candles']} hours: Bayes filter {o['accuracy']:.3f} [{o['ci95'][0]:.3f}, {o['ci95'][1]:.3f}] "
            f"(confidence {o['mean_confidence']:.3f}, flips/1000 {o['flips_per_1000']:.1f} "
            f"vs truth {o['true_flips_per_1000']:.1f}, "
            f"{o['seconds']:.0f} s); detector {d['accuracy']:.3f} [{d['ci95'][0]:.3f}, {d['ci95'][1]:.3f}] "
            f"(flips {d['flips_per_1000']:.1f}); rule baseline {d['baseline_accuracy']:.3f}",
            flush=True,
        )
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps({"runs": runs}, indent=2))
    print(f"written {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
