"""`python -m scripts.testbench --strategy NAME [--config FILE] [--datadir DIR] [--out OUTDIR]`

Walk-forward backtests (FreqAI retrained per fold) -> Monte Carlo on the trades -> the last period
through the simulator and a paper run -> comparison -> stress scenarios -> recommendation.
Writes OUTDIR/summary.json and OUTDIR/report.html.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import replace
from pathlib import Path

from rich.console import Console
from rich.table import Table

from simulation.freqtrade_runner import FreqtradeError
from simulation.paths import SHARED_DATA
from simulation.testbench import forecast
from simulation.testbench.conditions import CONDITIONS
from simulation.testbench.recommendation import slow_note
from simulation.testbench.runner import STRESS, BenchSpec, rerender, run_bench

CONFIGS = {
    "TrendFollowingEnsemble": "config/trend-following.json",
    "MeanReversionEnsemble": "config/mean-reversion.json",
    "ArbitrageScout": "config/arbitrage-scout.json",
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m scripts.testbench",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--strategy", help="strategy class (required unless --report-only or --compare-strategies)")
    p.add_argument(
        "--compare-strategies",
        nargs=2,
        metavar=("A", "B"),
        help="A/B: both strategies on the same folds, market and costs; paired per-fold differences of return, "
        "daily Sharpe and drawdown with intervals (OUT/ab.json, OUT/ab.html; each bench under OUT/A, OUT/B)",
    )
    opt = p.add_argument_group("walk-forward optimization (--optimize)")
    opt.add_argument(
        "--optimize",
        action="store_true",
        help="freqtrade hyperopt on each fold's in-sample days, the chosen values backtested in-sample and "
        "out-of-sample; degradation, stability across folds and a sensitivity sweep (OUT/optimization.json, "
        "OUT/optimization.html)",
    )
    opt.add_argument("--epochs", type=int, default=50, help="hyperopt epochs per fold")
    opt.add_argument("--spaces", nargs="+", default=["buy", "sell"], choices=("buy", "sell", "protection"))
    opt.add_argument("--hyperopt-loss", default="SharpeHyperOptLossDaily", help="freqtrade's loss function")
    opt.add_argument("--is-days", type=int, help="in-sample days before each fold (default: --fold-days)")
    opt.add_argument(
        "--sensitivity-points", type=int, default=5, help="values per parameter in the sweep (0: no sweep)"
    )
    opt.add_argument("--min-trades", type=int, default=1, help="hyperopt's minimum trades per epoch")
    cond = p.add_argument_group("market conditions (--conditions)")
    cond.add_argument(
        "--conditions",
        nargs="*",
        choices=CONDITIONS,
        metavar="NAME",
        help=f"the strategy on windows picked by measured condition ({', '.join(CONDITIONS)}; none named: all), "
        "inside the walk-forward's span, side by side (OUT/conditions.json, OUT/conditions.html)",
    )
    cond.add_argument("--condition-windows", type=int, default=3, help="windows backtested per condition")
    cond.add_argument(
        "--condition-days", type=int, default=1, help="days per window (the rule was validated on 1-day windows)"
    )
    p.add_argument("--config", type=Path, help="freqtrade config (default: the strategy's own in config/)")
    p.add_argument("--extra-config", type=Path, action="append", default=[], help="more configs on top (repeatable)")
    p.add_argument("--datadir", type=Path, help=f"feather datadir (e.g. {SHARED_DATA}); default: the synthetic market")
    p.add_argument("--pairs", nargs="+")
    p.add_argument("--out", type=Path, default=Path("user_data/testbench/latest"))
    p.add_argument("--folds", type=int, default=12)
    p.add_argument("--fold-days", type=int, default=30, help="days per fold (FreqAI retrains once per fold)")
    p.add_argument("--end", help="last fold's end YYYYMMDD (default: the data's last day)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--synthetic-days", type=int, default=120)
    p.add_argument("--mc-paths", type=int, default=1000)
    p.add_argument("--stress", nargs="*", default=list(STRESS), help=f"scenarios: {', '.join(STRESS)} (none: skip)")
    p.add_argument(
        "--stress-days",
        type=int,
        default=10,
        help="stress window on real-data benches (synthetic benches stress their busiest fold)",
    )
    p.add_argument(
        "--sim-days",
        type=float,
        default=1.0,
        help="simulated window length; it is placed on the walk-forward's own trades (the latest span "
        "holding >= 10 of them, else the busiest)",
    )
    p.add_argument("--paper-days", type=float, default=0.5, help="paper run over the window's last days (0: skip)")
    p.add_argument(
        "--sim-clock",
        choices=("compute", "constant"),
        default="compute",
        help="the sessions' clock (python -m simulation.run --clock): compute charges the bot's compute as it "
        "happens and skips idle time; constant runs at --sim-speed throughout (reproduces older benches)",
    )
    p.add_argument("--sim-speed", type=float, help="the constant clock's session seconds per wall second (default 300)")
    p.add_argument(
        "--sim-warmup",
        type=float,
        help="session seconds the bot gets before the window to start and train "
        "(default: simulation.run's, 600 on the compute clock)",
    )
    p.add_argument(
        "--sim-timeout",
        type=float,
        help="wall seconds each simulator / paper session may take before it "
        "is stopped and reported as timed out (default: 20 min + 1 h per simulated day)",
    )
    p.add_argument("--skip-sim", action="store_true", help="skip the simulation and paper stages")
    p.add_argument("--workers", type=int, default=1, help="parallel folds / stress scenarios (Ray when installed)")
    p.add_argument("--ray-address", help="Ray cluster address (or RAY_ADDRESS); default: local")
    p.add_argument(
        "--report-only",
        action="store_true",
        help="re-run nothing: recompute the recommendation and report.html from OUT/summary.json",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    console = Console() if sys.stdout.isatty() else Console(width=120)  # logs: no wrapped tables
    if args.report_only:
        try:
            summary = rerender(args.out)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print_summary(console, summary, args.out)
        return 0
    if args.compare_strategies and args.strategy:
        parser.error("--strategy and --compare-strategies exclude each other")
    if args.optimize and args.compare_strategies:
        parser.error("--optimize takes one --strategy, not --compare-strategies")
    if args.conditions is not None and (args.optimize or args.compare_strategies):
        parser.error("--conditions runs one --strategy on its own, without --optimize or --compare-strategies")
    if args.condition_windows < 1 or args.condition_days < 1:
        parser.error("--condition-windows and --condition-days must be at least 1")
    if args.optimize and (args.epochs < 1 or (args.is_days is not None and args.is_days < 1)):
        parser.error("--epochs and --is-days must be at least 1")
    if not args.strategy and not args.compare_strategies:
        parser.error("--strategy is required")
    names = args.compare_strategies or [args.strategy]
    configs = {n: args.config or Path(CONFIGS.get(n, "")) for n in names}
    for name, config in configs.items():
        if not config.is_file():
            print(f"error: no config for {name}; pass --config FILE", file=sys.stderr)
            return 2
    if args.sim_timeout is not None and not (math.isfinite(args.sim_timeout) and args.sim_timeout > 0):
        print(f"error: --sim-timeout must be a positive number of seconds, got {args.sim_timeout}", file=sys.stderr)
        return 2
    if args.datadir is not None and not args.datadir.is_dir():
        print(f"error: --datadir {args.datadir} does not exist", file=sys.stderr)
        return 2
    spec = BenchSpec(
        strategy=names[0],
        config=configs[names[0]],
        out=args.out,
        datadir=args.datadir,
        extra_configs=tuple(args.extra_config),
        pairs=tuple(args.pairs) if args.pairs else None,
        folds=args.folds,
        fold_days=args.fold_days,
        end=args.end,
        seed=args.seed,
        synthetic_days=args.synthetic_days,
        mc_paths=args.mc_paths,
        stress=tuple(args.stress),
        stress_days=args.stress_days,
        sim_days=args.sim_days,
        paper_days=args.paper_days,
        sim_clock=args.sim_clock,
        sim_speed=args.sim_speed,
        sim_warmup=args.sim_warmup,
        sim_timeout=args.sim_timeout,
        skip_sim=args.skip_sim,
        workers=args.workers,
        ray_address=args.ray_address,
    )
    if args.compare_strategies:
        return _compare(spec, replace(spec, strategy=names[1], config=configs[names[1]]), args.out, console)
    if args.optimize:
        return _optimize(spec, args, console)
    if args.conditions is not None:
        return _conditions(spec, args, console)
    try:
        summary = run_bench(spec, console)
    except (FreqtradeError, ValueError) as exc:
        console.print(f"[red]test bench failed:[/red] {exc}")
        return 1
    print_summary(console, summary, args.out)
    return 0


def _compare(a: BenchSpec, b: BenchSpec, out: Path, console: Console) -> int:
    from simulation.testbench.ab import NotComparable, lines, run_ab

    files = f"A/B: {out / 'ab.json'}  report: {out / 'ab.html'}"
    return _run_mode("A/B", lambda: run_ab(a, b, out, console), NotComparable, lines, files, console)


def _optimize(spec: BenchSpec, args: argparse.Namespace, console: Console) -> int:
    from simulation.testbench.optimize import NoParameters, lines, run_optimization

    def run() -> dict:
        return run_optimization(
            spec,
            epochs=args.epochs,
            spaces=tuple(args.spaces),
            loss=args.hyperopt_loss,
            is_days=args.is_days,
            sensitivity_points=args.sensitivity_points,
            min_trades=args.min_trades,
            console=console,
        )

    files = f"optimization: {spec.out / 'optimization.json'}  report: {spec.out / 'optimization.html'}"
    return _run_mode("optimization", run, NoParameters, lines, files, console)


def _conditions(spec: BenchSpec, args: argparse.Namespace, console: Console) -> int:
    from simulation.testbench.condition_runs import NoWindow, lines, run_conditions

    def run() -> dict:
        names = args.conditions or list(CONDITIONS)
        return run_conditions(spec, names, args.condition_windows, args.condition_days, console)

    files = f"conditions: {spec.out / 'conditions.json'}  report: {spec.out / 'conditions.html'}"
    return _run_mode("conditions", run, NoWindow, lines, files, console)


def _run_mode(label: str, run, refused: type[Exception], lines, files: str, console: Console) -> int:
    """A bench mode: its refusal is one line and exit 2, its failure exit 1, else its lines and files."""
    try:
        result = run()
    except refused as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (FreqtradeError, ValueError) as exc:
        console.print(f"[red]{label} failed:[/red] {exc}")
        return 1
    for line in lines(result):
        console.print(line, markup=False, highlight=False)
    console.print(files, markup=False, highlight=False)
    return 0


def print_summary(console: Console, summary: dict, out: Path) -> None:
    """The end of a bench in a few lines: the decision and its reasons, the walk-forward table, the
    comparison with its trade counts, where the time went and where the report is."""
    table = Table(title=f"Test bench: {summary['strategy']} ({summary['market']})")
    for col in ("fold", "timerange", "trades", "profit", "Sharpe", "ft Sharpe", "max DD", "win rate", "PF"):
        table.add_column(col, justify="right", no_wrap=True)
    rows = [*summary["folds"], {"fold": "all", "timerange": "", "metrics": summary["aggregate"]}]
    for f in rows:
        m = f["metrics"]
        pf = m["profit_factor"]
        table.add_row(
            str(f["fold"]),
            f["timerange"],
            str(m["trades"]),
            f"{m['profit_pct']:.2%}",
            f"{m['sharpe']:.2f}",
            _num(m.get("sharpe_freqtrade")),
            f"{m['max_drawdown']:.2%}",
            f"{m['win_rate']:.0%}",
            "–" if pf is None else f"{pf:.2f}",
        )
    console.print(table)
    console.print(
        f"Sharpe: {summary['aggregate'].get('ratio_basis', 'freqtrade per trade')} (the gate's); ft Sharpe: "
        "freqtrade's per-trade figure",
        markup=False,
        highlight=False,
    )
    if summary.get("forecast") is not None:
        for line in forecast.lines(summary["forecast"]):
            console.print(line, markup=False, highlight=False)
    cmp_ = summary["comparison"]
    if cmp_.get("skipped"):
        console.print(f"simulation and paper: skipped ({cmp_['skipped']})", markup=False, highlight=False)
    for name in ("simulation", "paper"):
        r = cmp_.get(name) or {}
        if "trades_sim" in r:
            window = " to ".join(r.get("window", [])) or "?"
            console.print(
                f"{name}: {window}, trades backtest / {name} {r.get('trades_backtest')} / {r.get('trades_sim')}, "
                f"PnL deviation {_num(r.get('pnl_deviation'))}, "
                f"signal consistency {_num(r.get('signal_consistency'))}, "
                f"equity correlation {_num(r.get('equity_correlation'))}",
                markup=False,
                highlight=False,
            )
            for line in (r.get("gap") or {}).get("explanation", []):
                console.print(f"  {line}", markup=False, highlight=False)
            if r.get("verdict"):
                console.print(f"  verdict: {r['verdict']}", markup=False, highlight=False)
            assumptions = r.get("assumptions") or {}
            if assumptions:
                console.print(
                    f"  intra-candle path: {assumptions.get('path')}; limit fills: {assumptions.get('limit_fills')}",
                    markup=False,
                    highlight=False,
                )
            compute = (r.get("session") or {}).get("compute") or {}
            if compute and not compute.get("keeps_up"):
                console.print(
                    f"  the bot computed {compute['bot_compute_per_loop_wall_ms']:.1f} ms per "
                    f"{compute['bot_loop_interval_wall_ms']:.1f} ms loop: delays include its compute x speed",
                    markup=False,
                    highlight=False,
                )
            inf = (r.get("session") or {}).get("freqai_inference")
            if inf:
                console.print(
                    f"  FreqAI's timer per candle (all pairs): p50 {inf['p50_s']:.3f} s, p90 {inf['p90_s']:.3f} s, "
                    f"n = {inf['n']} (spec < 0.300 s)",
                    markup=False,
                    highlight=False,
                )
            slow = (r.get("session") or {}).get("slow_analyses") or {}
            if slow.get("count"):
                console.print(
                    f"  the bot's analysis overran a quarter candle {slow['count']} times (median "
                    f"{slow['median_wall_s']:.1f} s of wall compute): {slow_note(r.get('session') or {})}",
                    markup=False,
                    highlight=False,
                )
        elif r:
            console.print(f"{name}: {r.get('skipped') or r.get('error')}", markup=False, highlight=False)
    for st in summary.get("stress") or []:
        refused = ", ".join(f"{k} {v}" for k, v in sorted((st.get("rejections_by_reason") or {}).items())) or "none"
        console.print(
            f"stress {st['scenario']}: {st['metrics']['trades']} trades, max DD {st['metrics']['max_drawdown']:.2%}, "
            f"entries refused by the limits: {refused}; limits held: {st['limits_held']}",
            markup=False,
            highlight=False,
        )
    timings = summary.get("timings_s") or {}
    if timings:
        console.print("time (s): " + ", ".join(f"{k} {v:g}" for k, v in timings.items()), markup=False, highlight=False)
    rec = summary["recommendation"]
    console.print(f"[bold]recommendation: {rec['decision']}[/bold]")
    for r in rec["reasons"]:
        console.print(f"  - {r}", markup=False, highlight=False)
    console.print(f"summary: {out / 'summary.json'}  report: {out / 'report.html'}", markup=False, highlight=False)


def _num(v) -> str:
    return "n/a" if v is None else f"{v:.2f}"


if __name__ == "__main__":
    sys.exit(main())
