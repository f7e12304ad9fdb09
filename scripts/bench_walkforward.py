"""`python -m scripts.bench_walkforward [--years 3] [--extra-config FILE] [--workers 2] [--out DIR]`

The spec's performance goal: a 3-year 15m walk-forward of TrendFollowingEnsemble on 3 pairs with
monthly retraining in < 30 minutes. Runs the test bench's walk-forward stage only (synthetic market,
36 monthly folds for 3 years) and reports wall time and where it goes (FreqAI training vs the rest).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from rich.console import Console

from simulation.testbench.runner import BenchSpec, run_bench
from simulation.testbench.timing import walkforward_breakdown


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m scripts.bench_walkforward", description=__doc__.split("\n\n")[0])
    p.add_argument("--years", type=float, default=3.0)
    p.add_argument("--fold-days", type=int, default=30)
    p.add_argument("--strategy", default="TrendFollowingEnsemble")
    p.add_argument("--config", type=Path, default=Path("config/trend-following.json"))
    p.add_argument(
        "--extra-config",
        type=Path,
        action="append",
        default=[],
        help="e.g. config/testbench-light.json (LightGBM-only); default: the full ensemble",
    )
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--out", type=Path, default=Path("user_data/testbench/walkforward-timing"))
    args = p.parse_args(argv)
    folds = max(1, round(args.years * 365 / args.fold_days))
    spec = BenchSpec(
        strategy=args.strategy,
        config=args.config,
        extra_configs=tuple(args.extra_config),
        out=args.out,
        folds=folds,
        fold_days=args.fold_days,
        synthetic_days=folds * args.fold_days + 130,
        skip_sim=True,
        stress=(),
        mc_paths=100,
        workers=args.workers,
    )
    t0 = time.perf_counter()
    summary = run_bench(spec, Console())
    wall = time.perf_counter() - t0
    result = {
        "years": args.years,
        "folds": folds,
        "workers": args.workers,
        "extra_configs": [str(c) for c in args.extra_config],
        "wall_s": round(wall, 1),
        "goal_s": 1800,
        "goal_met": wall < 1800,
        "scale_out": summary["scale_out"],
        "stages_s": summary["timings_s"],
        "walkforward": walkforward_breakdown(args.out, summary["folds"]),
        "trades": summary["aggregate"]["trades"],
    }
    (args.out / "timing.json").write_text(json.dumps(result, indent=2))
    Console().print_json(
        json.dumps(
            {k: v for k, v in result.items() if k != "walkforward"}
            | {"train_share": result["walkforward"]["train_share"]}
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
