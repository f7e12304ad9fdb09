"""`python -m regime`: causal regime labels for a freqtrade data file (walk-forward refits).

python -m regime --datadir ../shared/data/binance --pair ETH/USDT --timeframe 1h --out eth_regimes.csv
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.table import Table

from regime.detector import REGIMES
from regime.walkforward import WalkForwardParams, WalkForwardReport, causal_regimes


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m regime", description=__doc__.strip().splitlines()[0])
    p.add_argument("--datadir", type=Path, required=True)
    p.add_argument("--pair", required=True)
    p.add_argument("--timeframe", default="5m")
    p.add_argument("--train-candles", type=int, help="training window per refit (default: 30 days)")
    p.add_argument("--refit-every", type=int, help="candles between refits (default: 1 week)")
    p.add_argument("--out", type=Path, required=True, help=".csv or .feather with date, p_* columns, regime")
    args = p.parse_args(argv)
    console = Console()
    path = args.datadir / f"{args.pair.replace('/', '_')}-{args.timeframe}.feather"
    if not path.exists():
        console.print(f"[red]error:[/red] no data file {path}")
        return 2
    df = pd.read_feather(path)
    params = WalkForwardParams.for_timeframe(args.timeframe)
    params = WalkForwardParams(
        train_candles=args.train_candles or params.train_candles,
        refit_every=args.refit_every or params.refit_every,
        burn_in=params.burn_in,
        min_dwell=params.min_dwell,
    )
    report = WalkForwardReport()
    try:
        with console.status(f"fitting and filtering {len(df)} candles..."):
            out = causal_regimes(df, args.timeframe, params, report=report)
    except ValueError as exc:
        console.print(f"[red]error:[/red] {exc}")
        return 2
    out.insert(0, "date", df["date"].to_numpy())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if args.out.suffix == ".feather":
        out.reset_index(drop=True).to_feather(args.out)
    else:
        out.to_csv(args.out, index=False)
    labelled = out["regime"].dropna()
    table = Table(
        title=f"{args.pair} {args.timeframe}: {len(labelled)} labelled candles, {report.refits} refits, "
        f"{report.fallbacks} fallbacks"
    )
    table.add_column("regime")
    table.add_column("share", justify="right")
    for r in REGIMES:
        table.add_row(r, f"{(labelled == r).mean():.1%}")
    console.print(table)
    console.print(f"written {args.out} (fit time {report.fit_seconds:.1f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
