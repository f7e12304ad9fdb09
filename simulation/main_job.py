"""Main job v0: synthetic market -> offline gateway -> freqtrade download-data + backtesting.

What `make run` does. Every step is a real process: the gateway, then stock freqtrade talking to
it over Binance's REST API. Results land under user_data/main_job/.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rich.console import Console
from rich.table import Table

from simulation.freqtrade_runner import REPO_ROOT, latest_backtest_stats, run_freqtrade
from simulation.gateway import GatewayProcess, write_overlay

DEFAULT_PAIRS = ["BTC/USDT", "ETH/USDT", "BNB/USDT", "ADA/USDT"]
console = Console()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m scripts.main_job", description=__doc__.splitlines()[0])
    p.add_argument("--seed", type=int, default=42, help="synthetic market seed (default: 42)")
    p.add_argument("--days", type=int, default=90, help="days of synthetic 5m candles (default: 90)")
    p.add_argument("--start", default="2024-01-01", help="first synthetic candle (default: 2024-01-01)")
    p.add_argument("--pairs", nargs="+", default=DEFAULT_PAIRS)
    p.add_argument("--strategy", default="ReferenceStrategy")
    p.add_argument("--config", type=Path, default=Path("config/backtest.json"))
    p.add_argument("--out", type=Path, default=Path("user_data/main_job"), help="output folder")
    return p


def freqtrade_report(log_path: Path) -> str:
    """freqtrade's own result tables: the log lines that are not timestamped log records."""
    lines = log_path.read_text(errors="replace").splitlines()
    report = [ln for ln in lines if not ln[:4].isdigit()]
    return "\n".join(report).strip()


def summarize(stats: dict, strategy: str) -> dict:
    s = stats["strategy"][strategy]
    return {
        "strategy": strategy,
        "timerange": f"{s['backtest_start']} -> {s['backtest_end']}",
        "pairs": s.get("pairlist", []),
        "trades": s["total_trades"],
        "profit_total_pct": round(100 * s["profit_total"], 3),
        "profit_total_abs": round(s["profit_total_abs"], 3),
        "winrate_pct": round(100 * s.get("winrate", 0.0), 2),
        "profit_factor": round(s.get("profit_factor", 0.0), 3),
        "max_drawdown_pct": round(100 * s.get("max_drawdown_account", 0.0), 3),
        "sharpe": round(s.get("sharpe", 0.0), 3),
        "sortino": round(s.get("sortino", 0.0), 3),
        "final_balance": round(s["final_balance"], 3),
    }


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    out = (REPO_ROOT / args.out).resolve()
    datadir = out / "data"
    results = out / "backtest_results"
    results.mkdir(parents=True, exist_ok=True)  # freqtrade needs it to exist
    start = datetime.fromisoformat(args.start).replace(tzinfo=UTC)
    end = start + timedelta(days=args.days)
    # Leave the first days for indicator warm-up (startup candles are loaded before the range).
    bt_range = f"{(start + timedelta(days=2)):%Y%m%d}-{end:%Y%m%d}"
    t0 = time.monotonic()
    console.rule("[bold]cryptobot-pro main job v0")
    gateway_args = ["--synthetic", "--seed", str(args.seed), "--days", str(args.days + 1), "--start", args.start]
    with console.status("starting offline exchange gateway (synthetic market)..."):
        gw = GatewayProcess(gateway_args, log_path=out / "gateway.log").start()
    try:
        console.print(f"gateway up at {gw.url} (seed {args.seed}, {args.days} days of 5m candles)")
        overlay = write_overlay(out / "gateway-exchange.json", gw.url, args.pairs)
        common = ["--config", str(args.config), "--config", str(overlay)]
        with console.status("freqtrade download-data from the gateway..."):
            dl = run_freqtrade(
                ["download-data", *common, "--datadir", str(datadir), "--timeframes", "5m", "1h",
                 "--timerange", f"{start:%Y%m%d}-{end:%Y%m%d}", "--pairs", *args.pairs],
                out / "download-data.log",
            )
        console.print(f"download-data: {len(args.pairs)} pairs x 2 timeframes in {dl.seconds:.1f}s")
        with console.status(f"freqtrade backtesting {args.strategy} {bt_range}..."):
            bt = run_freqtrade(
                ["backtesting", *common, "--datadir", str(datadir), "--strategy", args.strategy,
                 "--timerange", bt_range, "--export", "trades", "--backtest-directory", str(results),
                 "--cache", "none"],
                out / "backtesting.log",
            )
        console.print(f"backtesting finished in {bt.seconds:.1f}s; full log: {bt.log_path}")
        console.print(freqtrade_report(bt.log_path), markup=False, highlight=False)
    finally:
        gw.stop()
    summary = summarize(latest_backtest_stats(results), args.strategy)
    summary["seconds_total"] = round(time.monotonic() - t0, 1)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    table = Table(title=f"Backtest summary: {args.strategy} on synthetic market (seed {args.seed})")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for k, v in summary.items():
        table.add_row(k, ", ".join(v) if isinstance(v, list) else str(v))
    console.print(table)
    console.print(f"summary written to {out / 'summary.json'}")
    return 0
