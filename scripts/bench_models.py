"""`python -m scripts.bench_models`: walk-forward benchmark (see evaluation.models)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rich.markup import escape

from evaluation.models import add_walk_forward_args, complete, config_from_args, console, goal_line, report, run, write
from freqaimodels import features
from freqaimodels.estimators.stacking import MODEL_SETS


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m scripts.bench_models", description=__doc__)
    add_walk_forward_args(p, timeframe="5m", informative=["15m", "1h"], folds=6, label_period=12)
    p.add_argument(
        "--target-scale",
        choices=features.TARGET_SCALES,
        default="return",
        help="return: log return over the label period; vol: the same over its expected size (trailing realized vol)",
    )
    p.add_argument("--ensemble-params", type=json.loads, default=None, help='JSON, e.g. \'{"lstm": {"epochs": 3}}\'')
    p.add_argument(
        "--model-set",
        choices=sorted(MODEL_SETS),
        help="the base models of one of the spec's bots "
        "(default: the ensemble's own, the trend set); --ensemble-params' \"models\" wins",
    )
    p.add_argument("--out", type=Path, default=Path("user_data/bench_models.json"))
    p.add_argument(
        "--from-json", type=Path, metavar="RESULT", help="re-print the report of an earlier run (nothing is trained)"
    )
    args = p.parse_args(argv)
    if args.from_json:
        if not args.from_json.exists():
            p.error(f"{args.from_json} does not exist")
        _print(complete(json.loads(args.from_json.read_text())))
        return 0
    if args.folds < 1:
        p.error("--folds must be at least 1")
    ensemble = dict(args.ensemble_params or {})
    if args.model_set:
        ensemble.setdefault("models", MODEL_SETS[args.model_set])
    cfg = config_from_args(args, target_scale=args.target_scale, ensemble_params=ensemble or None)
    try:
        result = run(cfg)
    except (FileNotFoundError, ValueError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        return 2
    write(result, args.out)
    _print(result)
    console.print(f"written {args.out}")
    return 0


def _print(result: dict) -> None:
    console.print(report(result))
    console.print(
        "accuracy by confidence bucket (95% interval on the effective count): "
        + ", ".join(
            f"{b['bucket']} {b['direction_accuracy']:.3f} [{_ci(b)}] (n={b['candles']})"
            for b in result["confidence_buckets"]
        )
    )
    console.print(goal_line(result))
    for c in result.get("paired", []):
        console.print(
            f"paired over pair-folds: {escape(c['a'])} - {escape(c['b'])}: {c['diff_pp']:+.2f} pp +- {c['se_pp']:.2f} "
            f"(better in {c['a_better']} of {c['pair_folds']})",
            highlight=False,
        )


def _ci(bucket: dict) -> str:
    lo, hi = bucket.get("ci95") or (None, None)
    return "-" if lo is None else f"{lo:.3f}-{hi:.3f}"


if __name__ == "__main__":
    sys.exit(main())
