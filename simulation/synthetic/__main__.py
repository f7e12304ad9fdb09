"""`python -m simulation.synthetic --out DIR`: write a synthetic market as a freqtrade datadir."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from simulation.synthetic import Scenario, SyntheticConfig, generate, write_market


def parse_scenario(text: str) -> Scenario:
    """argparse type for `Scenario.parse`."""
    try:
        return Scenario.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m simulation.synthetic", description=__doc__)
    p.add_argument("--out", type=Path, required=True, help="datadir to write (freqtrade feather layout)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--days", type=float, default=120.0)
    p.add_argument("--start", default="2024-01-01")
    p.add_argument("--timeframe", default="5m")
    p.add_argument("--correlation", type=float, default=0.7)
    p.add_argument(
        "--scenario",
        type=parse_scenario,
        action="append",
        default=[],
        help="stress event KIND@START[:HOURS][,FIELD=VALUE...]; KIND: flash_crash, liquidity_drought, "
        "correlation_spike, depeg (e.g. depeg@2024-03-10T08:00:12,drop=0.03,recovery=1)",
    )
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    cfg = SyntheticConfig(
        seed=args.seed,
        days=args.days,
        start=args.start,
        timeframe=args.timeframe,
        correlation=args.correlation,
        scenarios=tuple(args.scenario),
    )
    try:
        market = generate(cfg)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    files = write_market(market, args.out)
    n = len(next(iter(market.candles.values())))
    print(
        f"wrote {len(market.candles)} pairs x {n} candles ({args.timeframe}) to {args.out} "
        f"in {time.perf_counter() - t0:.1f}s"
    )
    print(f"ground truth: {files[-2]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
