"""Where a walk-forward's time goes, read from the fold logs freqtrade wrote."""

from __future__ import annotations

import re
from pathlib import Path

TRAIN = re.compile(r"Done training (\S+) \(([0-9.]+) secs\)")


def fold_breakdown(fold_dir: Path, wall_s: float) -> dict:
    """FreqAI training seconds (freqtrade's own 'Done training' lines) vs everything else in the fold
    (process start, data loading, indicators, the backtest loop)."""
    log = (Path(fold_dir) / "backtest.log").read_text(errors="replace")
    trainings = [float(s) for _, s in TRAIN.findall(log)]
    train = sum(trainings)
    return {
        "wall_s": wall_s,
        "trainings": len(trainings),
        "train_s": round(train, 1),
        "other_s": round(max(0.0, wall_s - train), 1),
    }


def walkforward_breakdown(out: Path, folds: list[dict]) -> dict:
    per_fold = [fold_breakdown(Path(out) / "folds" / f"{f['fold']:02d}", f["seconds"]) for f in folds]
    total = sum(p["wall_s"] for p in per_fold)
    train = sum(p["train_s"] for p in per_fold)
    return {
        "folds": len(per_fold),
        "fold_seconds_sum": round(total, 1),
        "train_s": round(train, 1),
        "train_share": round(train / total, 3) if total else None,
        "trainings": sum(p["trainings"] for p in per_fold),
        "per_fold": per_fold,
    }
