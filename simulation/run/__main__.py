"""`python -m simulation.run --strategy NAME [--mode dry-run|paper] [--clock compute|constant] [--timerange A-B] ...`

1. the session (gateway + `freqtrade trade`) runs on one session clock (libfaketime, driven by the
   supervisor): by default the compute clock, which charges the bot's compute and skips idle time;
2. `freqtrade backtesting` replays the exact window from the same market;
3. OUTDIR/comparison.json + OUTDIR/report.html (+ executions.csv, metrics.prom, logs).
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import shutil
import signal
import sys
import time
from pathlib import Path

import pandas as pd
from freqtrade.exceptions import ConfigurationError

from simulation.execution import ExecutionParams
from simulation.marketdata.relay import UPSTREAMS
from simulation.paths import SHARED_DATA
from simulation.run.discrepancy import comparability
from simulation.run.spec import MODES, RunSpec, freqtrade_version, strategy_digest
from simulation.timeframes import DAY_MS, interval_ms, timerange_bounds

logger = logging.getLogger("simulation.run")


def _timerange(text: str) -> tuple[int, int]:
    try:
        start, end = timerange_bounds(text)
    except (ValueError, ConfigurationError) as exc:
        raise ValueError(f"--timerange: {exc} (freqtrade's syntax: YYYYMMDD[THHMM]-YYYYMMDD[THHMM])") from None
    return int(start.timestamp() * 1000), int(end.timestamp() * 1000)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m simulation.run",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--strategy", required=True)
    p.add_argument("--config", default="config/simulation.json", help="freqtrade config (our overlay goes on top)")
    p.add_argument(
        "--mode",
        choices=MODES,
        default="dry-run",
        help="dry-run: freqtrade's own fills on our delayed data and book; paper: our venue fills signed orders",
    )
    p.add_argument(
        "--clock",
        default="compute",
        help="compute: session time at the real rate while anything computes, "
        "jumps while everything waits (faithful compute); constant: --speed session seconds per wall second "
        "throughout, the bot's compute stretched by it (reproduces runs made before the compute clock)",
    )
    p.add_argument("--speed", type=float, help="the constant clock's rate (default 100); the compute clock has none")
    p.add_argument(
        "--timerange",
        help="window, freqtrade syntax YYYYMMDD[THHMM]-YYYYMMDD[THHMM] (default: 2 days before the data's last 5 days, "
        "or 2024-03-01..03 on the synthetic market)",
    )
    p.add_argument(
        "--datadir", type=Path, help=f"freqtrade feather datadir (default: {SHARED_DATA} when present, else synthetic)"
    )
    p.add_argument("--synthetic", action="store_true", help="use the synthetic market even when shared data exists")
    p.add_argument("--pairs", nargs="+", default=["BTC/USDT", "ETH/USDT"])
    p.add_argument("--timeframe", default="5m")
    p.add_argument("--wallet", type=float, default=1000.0, help="starting USDT (dry_run_wallet / venue balance)")
    p.add_argument("--out", type=Path, default=Path("user_data/simulation/latest"))
    p.add_argument(
        "--faults",
        help="gateway faults once trading starts, e.g. '5xx=0.05,429=0.02,timeout=0.01,stale_book=0.1,drop=0.01'",
    )
    p.add_argument("--kill-bot-at", type=float, help="kill -9 the bot at this fraction of the window, then restart it")
    p.add_argument(
        "--stoploss-on-exchange",
        action="store_true",
        help="paper mode: keep the stop-loss as a STOP_LOSS_LIMIT order resting on the venue",
    )
    p.add_argument("--no-latency", action="store_true", help="turn the latency model off")
    p.add_argument("--sim-config", type=Path, help="JSON whose 'simulation' section overrides the execution models")
    p.add_argument("--seed", type=int, default=42, help="synthetic market, latency and fault draws")
    p.add_argument(
        "--path-model",
        choices=("random", "backtest"),
        default="random",
        help="the forming candle's path: random order of the extremes (default) or freqtrade backtesting's convention",
    )
    p.add_argument("--path-seed", type=int, default=0, help="seed of the random path model")
    p.add_argument("--synthetic-days", type=float, default=120.0, help="synthetic market length")
    p.add_argument("--synthetic-start", default="2024-01-01", help="synthetic market first candle")
    p.add_argument(
        "--warmup",
        type=float,
        help="session seconds the bot gets to start (and FreqAI to train) before the window "
        "(default 600 on the compute clock, where idle warm-up costs nothing; 25 wall s x speed on the constant "
        "clock; wall seconds on a live upstream)",
    )
    relay = p.add_argument_group("paper trading on a relayed market (the gateway relays an upstream and records it)")
    relay.add_argument(
        "--upstream",
        choices=("local", *UPSTREAMS),
        help="'local': a second gateway replays the market above as the upstream (accelerated, offline); "
        "an exchange: its live market through ccxt (needs a network; wall clock, --duration)",
    )
    relay.add_argument("--upstream-url", help="a Binance-compatible upstream's base URL instead of the exchange's")
    relay.add_argument("--duration", help="live upstream: how long to trade after the warm-up, e.g. 90m, 4h, 2d")
    relay.add_argument(
        "--relay-history",
        type=int,
        default=1000,
        help="candles per timeframe the relay fetches at start "
        "(the bot's startup candles; a FreqAI strategy needs its training window)",
    )
    p.add_argument(
        "--metrics-port",
        type=int,
        help="serve the live comparison with the backtest (sim_live_*, updated at each candle close) to "
        "Prometheus on 127.0.0.1:PORT; it is also written to the bot's user_data/live_comparison.json",
    )
    p.add_argument("--analyse-only", action="store_true", help="skip the session; re-run backtest + report on OUTDIR")
    return p


def _duration_ms(text: str) -> int:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([mhd])\s*", text or "")
    if not m:
        raise ValueError(f"--duration {text!r}: expected a number and a unit m, h or d (e.g. 90m, 4h, 2d)")
    ms = float(m[1]) * {"m": 60_000, "h": 3_600_000, "d": DAY_MS}[m[2]]
    if ms < 60_000:
        raise ValueError("--duration must be at least a minute")
    return int(ms)


def live_window(args: argparse.Namespace) -> tuple[int, int]:
    """A live upstream trades from the first candle boundary after the warm-up, for --duration."""
    if args.timerange:
        raise ValueError("--timerange is for replayed markets; a live upstream trades from now for --duration")
    if not args.duration:
        raise ValueError(f"--upstream {args.upstream} needs --duration (how long to trade, e.g. 4h)")
    step = interval_ms(args.timeframe)
    start = -(-(int(time.time() * 1000) + int((args.warmup or 25.0) * 1000)) // step) * step
    return start, start + _duration_ms(args.duration)


def clock_settings(args: argparse.Namespace, live: bool) -> tuple[str, float, float]:
    """(clock, speed, warm-up in session seconds), refusing combinations that mean nothing."""
    from simulation.run.sessionclock import ClockUnavailable, check_available

    if args.warmup is not None and not args.warmup >= 0:
        raise ValueError("--warmup must be a non-negative number of seconds")
    if live:
        if args.speed not in (None, 1.0) or args.clock != "compute":
            raise ValueError("a live upstream runs on the wall clock: no --clock, no --speed")
        return "wall", 1.0, args.warmup if args.warmup is not None else 25.0
    if args.clock == "compute" and args.speed is not None:
        raise ValueError(
            "--speed sets the constant clock's rate: add --clock constant (the compute clock charges compute "
            "as it happens and skips idle time, it has no speed)"
        )
    speed = 1.0 if args.clock == "compute" else (100.0 if args.speed is None else args.speed)
    try:
        check_available(args.clock, speed)
    except ClockUnavailable as exc:
        raise ValueError(str(exc)) from None
    if args.clock == "compute":
        return "compute", 1.0, args.warmup if args.warmup is not None else 600.0
    return "constant", speed, args.warmup if args.warmup is not None else 25.0 * speed


def make_spec(args: argparse.Namespace) -> RunSpec:
    live = args.upstream not in (None, "local")
    if args.duration and not live:
        raise ValueError("--duration is for a live --upstream; a replayed market takes --timerange")
    if args.upstream_url and args.upstream is None:
        raise ValueError("--upstream-url needs --upstream")
    clock, speed, warmup_s = clock_settings(args, live)
    datadir = None if args.synthetic else (args.datadir or (SHARED_DATA if SHARED_DATA.is_dir() else None))
    if datadir is not None and not Path(datadir).is_dir():
        raise ValueError(f"--datadir {datadir} does not exist")
    if live:
        start, end = live_window(args)
        datadir = None
    elif args.timerange:
        start, end = _timerange(args.timerange)
    elif datadir is None:
        start, end = _timerange("20240301-20240303")
    else:
        from simulation.marketdata import CandleStore, open_source

        last = CandleStore(open_source(datadir=Path(datadir), pairs=args.pairs)).data_end()
        end = (last // DAY_MS - 5) * DAY_MS
        start = end - 2 * DAY_MS
    return RunSpec(
        strategy=args.strategy,
        config=str(args.config),
        mode=args.mode,
        speed=speed,
        start_ms=start,
        end_ms=end,
        pairs=list(args.pairs),
        timeframe=args.timeframe,
        out=str(args.out.resolve()),
        faults=args.faults,
        kill_at=args.kill_bot_at,
        latency=not args.no_latency,
        seed=args.seed,
        warmup_s=warmup_s,
        sim_config=str(args.sim_config) if args.sim_config else None,
        wallet=args.wallet,
        datadir=str(Path(datadir).resolve()) if datadir else None,
        stoploss_on_exchange=args.stoploss_on_exchange,
        synthetic_days=args.synthetic_days,
        synthetic_start=args.synthetic_start,
        path_model=args.path_model,
        path_seed=args.path_seed,
        upstream=args.upstream,
        upstream_url=args.upstream_url,
        relay_history=args.relay_history,
        clock=clock,
        metrics_port=args.metrics_port,
    )


def run_session(spec: RunSpec) -> list[dict] | None:
    """The session on its clock; a failed session leaves its reason in session.json and exits non-zero.
    Returns the window's backtest trades when they were known before it (a replayed market: the live
    comparison used them, and the analysis reuses them); None for a relay, whose backtest replays the
    recording it makes."""
    from simulation.run.session import Session, SessionFailed

    spec.save(spec.out_dir / "spec.json")
    bt_trades, frame = None, None
    if spec.upstream is None:
        from simulation.run.compare import run_backtest
        from simulation.run.live import backtest_frame

        logger.info("backtesting the window first (the live comparison needs it) ...")
        bt_trades = run_backtest(spec)
        frame = backtest_frame(bt_trades)
    t0 = time.perf_counter()
    try:
        Session(spec, backtest=frame).run()
    except SessionFailed as exc:
        raise SystemExit(f"error: the simulation session failed: {exc}") from None
    except Exception as exc:
        logger.exception("the simulation session failed")
        raise SystemExit(
            f"error: the simulation session failed ({type(exc).__name__}: {exc}); logs in {spec.out_dir}"
        ) from None
    wall = time.perf_counter() - t0
    meta_path = spec.out_dir / "session.json"
    meta = json.loads(meta_path.read_text())
    meta["wall_seconds"] = wall
    meta_path.write_text(json.dumps(meta, indent=2))
    return bt_trades


def comparability_rows(spec: RunSpec, out: Path) -> list[dict]:
    """The backtest's and the bot's resolved configs side by side, plus the code both ran."""
    from freqtrade.configuration.load_config import load_from_files

    bt = load_from_files([spec.config, str(out / "backtest" / "overlay.json")])
    bot = load_from_files([spec.config, str(out / "bot_overlay.json")])
    code = [
        {
            "setting": "freqtrade version",
            "backtest": freqtrade_version(),
            "simulation": freqtrade_version(),
            "differs": False,
        }
    ]
    strat = strategy_digest(spec.strategy)
    recorded = json.loads((out / "session.json").read_text()).get("strategy_sha256")
    code.append(
        {"setting": "strategy file sha256", "backtest": strat, "simulation": recorded, "differs": recorded != strat}
    )
    return comparability(bt, bot, code)


def fill_rule(spec: RunSpec) -> str:
    """Which rule fills the bot's resting limit orders in this run."""
    if spec.mode == "paper":
        return "venue: " + ExecutionParams.from_file(spec.sim_config).queue.describe()
    return "freqtrade dry-run: when the order book's best opposite price reaches the limit"


def slow_analyses(log: Path, speed: float) -> dict:
    """freqtrade warns when one analysis of the pairs took over 25% of a candle; its figure is on the
    accelerated clock, so divided by the speed it is the bot's own compute in wall seconds. Many slow
    analyses mean the bot could not keep up at this speed: its signals came late or not at all."""

    text = log.read_text(errors="replace") if log.exists() else ""
    secs = [float(x) / speed for x in re.findall(r"Strategy analysis took ([0-9.]+)s", text)]
    return {
        "count": len(secs),
        "median_wall_s": float(pd.Series(secs).median()) if secs else None,
        "max_wall_s": max(secs) if secs else None,
    }


INFERENCE_LINE = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),\d+ - freqtrade\.freqai\.freqai_interface - INFO - "
    r"Total time spent inferencing pairlist ([0-9.]+) seconds",
    re.MULTILINE,
)


def freqai_inference(log: Path, spec: RunSpec) -> dict | None:
    """FreqAI's own timer, per candle inside the window: 'Total time spent inferencing pairlist' (every
    pair's features and prediction for one candle). Its figure is session time; on the constant clock
    divided by the speed it is the bot's wall compute, on the compute clock it already is."""
    text = log.read_text(errors="replace") if log.exists() else ""
    secs = [
        float(s) / spec.speed
        for when, s in INFERENCE_LINE.findall(text)
        if spec.start_ms <= pd.Timestamp(when, tz="UTC").value // 1_000_000 < spec.end_ms
    ]
    if not secs:
        return None
    q = pd.Series(secs).quantile([0.5, 0.9])
    return {
        "p50_s": round(float(q[0.5]), 4),
        "p90_s": round(float(q[0.9]), 4),
        "max_s": round(max(secs), 4),
        "n": len(secs),
    }


def analyse(spec: RunSpec, bt_trades: list[dict] | None = None) -> dict:
    from simulation.run.compare import compare, run_backtest
    from simulation.run.reconcile import reconcile
    from simulation.run.records import (
        entry_attempts,
        executions,
        load_db,
        recording_coverage,
        stoploss_reaction,
        venue_stop_reaction,
    )
    from simulation.run.report import render

    out = spec.out_dir
    store = spec.open_store()
    trades, orders = load_db(out / "tradesv3.sqlite")
    execs = executions(orders, trades, store, spec.timeframe)
    execs.to_csv(out / "executions.csv", index=False)
    if bt_trades is None:  # --analyse-only, or a relay (its recording exists now)
        logger.info("backtesting the same window ...")
        bt_trades = run_backtest(spec)
    attempts = entry_attempts(out / "freqtrade.log")
    result, table, curves = compare(spec, bt_trades, trades, execs, store, out / "requests.csv", attempts)
    stops = stoploss_reaction(execs, trades, store, spec.timeframe)
    result["stoploss_reaction_ms"] = stops.reaction_ms.dropna().astype(float).tolist() if len(stops) else []
    recon = None
    if spec.mode == "paper" and (out / "venue_orders.json").exists():
        venue = json.loads((out / "venue_orders.json").read_text())
        steps = {m.base: m.step_size for m in store.markets.values()}
        recon = reconcile(venue, orders, trades, steps)
        result["reconciliation"] = recon
        result["stoploss_venue_reaction_ms"] = venue_stop_reaction(venue, store)
    meta = json.loads((out / "session.json").read_text())
    result["session"] = {
        k: meta.get(k)
        for k in (
            "mode",
            "clock",
            "speed",
            "simulated_s",
            "wall_seconds",
            "faults",
            "kill_at",
            "compute",
            "clock_report",
        )
    }
    if meta.get("wall_seconds"):
        result["session"]["effective_speed"] = meta["simulated_s"] / meta["wall_seconds"]
    result["session"]["bot_restarts"] = sum(e["event"] == "bot_killed" for e in meta["events"])
    result["session"]["failed_starts"] = sum(e["event"] == "bot_start_failed" for e in meta["events"])
    result["session"]["slow_analyses"] = slow_analyses(out / "freqtrade.log", spec.speed)
    result["session"]["freqai_inference"] = freqai_inference(out / "freqtrade.log", spec)
    result["comparability"] = comparability_rows(spec, out)
    if spec.upstream:
        cover = recording_coverage(
            store, spec.pairs, spec.timeframe, spec.start_ms, spec.end_ms, spec.recording / "books"
        )
        result["recording"] = {
            "upstream": spec.upstream,
            "path": str(spec.recording),
            "relay_poll_s": meta.get("relay_poll_s"),
            **cover,
        }
        result["comparability"].append(
            {
                "setting": "market data",
                "backtest": f"the relay's recording ({spec.recording})",
                "simulation": f"relayed live from {spec.upstream}"
                + (" (a local replay)" if spec.upstream == "local" else ""),
                "differs": not cover["complete"],
            }
        )
    path = (
        f"relayed: the upstream's forming candle as polled every {meta.get('relay_poll_s'):g} s"
        if spec.upstream
        else spec.path().describe() + "; pinned to each finest candle's final OHLC (as freqtrade's backtest is), "
        "every timeframe's forming candle cut from the finest series"
    )
    result["assumptions"] = {
        "path": path,
        "path_model": spec.path_model,
        "path_seed": spec.path_seed,
        "limit_fills": fill_rule(spec),
    }
    table.to_csv(out / "trade_matching.csv", index=False)
    (out / "comparison.json").write_text(json.dumps(result, indent=2, default=float))
    (out / "equity.json").write_text(json.dumps(curves))  # per-candle equity, backtest vs simulation
    reqs = pd.read_csv(out / "requests.csv") if (out / "requests.csv").exists() else None
    meta["assumptions"] = result["assumptions"]
    meta["freqai_inference"] = result["session"]["freqai_inference"]
    (out / "report.html").write_text(render(result, table, curves, execs, reqs, meta, recon))
    return result


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    args = build_parser().parse_args(argv)
    try:
        spec = make_spec(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    spec.out_dir.mkdir(parents=True, exist_ok=True)
    bt_trades = None
    if not args.analyse_only:
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the cleanup (no orphaned bot) on SIGTERM too
        for stale in (
            "tradesv3.sqlite",
            "requests.csv",
            "venue_ledger.jsonl",
            "freqtrade.log",
            "venue_orders.json",
            "session.json",
            "comparison.json",
            "report.html",
            "executions.csv",
            "trade_matching.csv",
        ):
            (spec.out_dir / stale).unlink(missing_ok=True)  # nothing of an earlier run is presented as this one's
        shutil.rmtree(spec.out_dir / "recording", ignore_errors=True)  # a new session records afresh
        bt_trades = run_session(spec)
    result = analyse(spec, bt_trades)
    from rich.console import Console
    from rich.table import Table

    clock = (
        "compute clock"
        if spec.clock == "compute"
        else ("wall clock" if spec.clock == "wall" else f"constant x{spec.speed:g}")
    )
    t = Table(title=f"{spec.strategy} {spec.mode} ({clock}) vs backtest")
    t.add_column("metric")
    t.add_column("value", justify="right")
    for k in (
        "signal_consistency",
        "fill_consistency",
        "pnl_deviation",
        "equity_correlation",
        "mean_slippage_bps",
        "p99_latency_ms",
        "trades_backtest",
        "trades_sim",
    ):
        v = result.get(k)
        t.add_row(k, "n/a" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v)))
    console = Console()
    console.print(t)
    from simulation.run.report import clock_lines

    for line in clock_lines(
        {
            **json.loads((spec.out_dir / "session.json").read_text()),
            "freqai_inference": result["session"].get("freqai_inference"),
        }
    ):
        console.print(" -", line, markup=False, highlight=False)
    for line in result["gap"]["explanation"]:
        console.print(" -", line)
    pred = result.get("predictions") or {}
    if pred.get("candles"):
        corr = pred.get("prediction_correlation")
        console.print(
            f" - FreqAI predictions on {pred['candles']} common candles: correlation "
            f"{'n/a' if corr is None else f'{corr:.3f}'}, MAE {pred['prediction_mae']:.2e}, same direction "
            f"{pred['direction_agreement']:.0%}, do_predict mismatches {pred.get('do_predict_mismatches', 'n/a')}, "
            f"candles the bot did not predict {pred['live_not_predicted']}",
            markup=False,
            highlight=False,
        )
    ind = result.get("indicators") or {}
    if ind.get("signal_candles"):
        differing = ", ".join(f"{c} ({n})" for c, n in list(ind["columns_differing"].items())[:8]) or "none"
        console.print(
            f" - indicators at {ind['in_bot_frame']} backtest entry candles: columns the bot computed differently: "
            f"{differing}",
            markup=False,
            highlight=False,
        )
    if "recording" in result:
        rec = result["recording"]
        gaps = {p: v["missing"] for p, v in rec["pairs"].items() if v["missing"]}
        console.print(
            f" - market relayed from {rec['upstream']} and recorded in {rec['path']}: "
            f"{'complete' if rec['complete'] else f'candles missing {gaps}'} "
            f"({rec['expected_per_pair']} {rec['timeframe']} candles per pair in the window)",
            markup=False,
            highlight=False,
        )
    if "reconciliation" in result:
        console.print("reconciliation ok:", result["reconciliation"]["ok"])
    console.print(f"report: {spec.out_dir / 'report.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
