"""`python -m simulation.gateway`: serve market data to stock freqtrade over Binance's REST API."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import logging
import math
import re
import sys
from pathlib import Path

import ccxt
import pandas as pd
from aiohttp import web

from simulation.clock import Clock, ReplayClock, StaticClock, session_event_loop, wall_ms
from simulation.execution import ExecutionParams
from simulation.gateway.api import BinanceSpotAPI
from simulation.gateway.faults import FaultSpec
from simulation.gateway.freqtrade_config import write_overlay
from simulation.gateway.metrics import GatewayMetrics
from simulation.gateway.process import EXIT_PORT_IN_USE
from simulation.gateway.server import create_app
from simulation.marketdata import CandleStore, DataSourceError, open_source
from simulation.marketdata.path import PATH_MODELS, PathModel
from simulation.marketdata.relay import UPSTREAMS, UpstreamRelay
from simulation.paths import SHARED_DATA
from simulation.synthetic import SyntheticConfig
from simulation.synthetic.__main__ import parse_scenario
from simulation.timeframes import INTERVAL_MS
from simulation.venue import Venue, credentials_from_env

logger = logging.getLogger("simulation.gateway")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m simulation.gateway",
        description="Offline Binance-compatible exchange gateway (spot REST market data) for freqtrade.",
    )
    p.add_argument("--host", default="127.0.0.1", help="bind address (default: loopback only)")
    p.add_argument("--port", type=int, default=8765, help="TCP port (default: 8765)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--datadir", type=Path, help=f"freqtrade feather datadir (default: {SHARED_DATA} when present)")
    src.add_argument("--synthetic", action="store_true", help="serve the synthetic market (default when no datadir)")
    src.add_argument(
        "--upstream", choices=UPSTREAMS, help="relay a live exchange through ccxt (needs a network) and record it"
    )
    relay = p.add_argument_group("upstream relay (--upstream)")
    relay.add_argument(
        "--upstream-url",
        help="base URL of a Binance-compatible upstream (e.g. another gateway) instead of the exchange's",
    )
    relay.add_argument(
        "--record",
        type=Path,
        help="record relayed candles (freqtrade feather) and books here (default: user_data/relay/<exchange>)",
    )
    relay.add_argument(
        "--relay-timeframes", nargs="+", default=["5m", "1h"], help="timeframes relayed (default: 5m 1h)"
    )
    relay.add_argument("--relay-poll", type=float, default=2.0, help="upstream poll period, s (default: 2)")
    relay.add_argument(
        "--relay-history", type=int, default=1000, help="candles fetched per timeframe at start (default: 1000)"
    )
    relay.add_argument("--upstream-timeout", type=float, default=10.0, help="upstream request timeout, s (default: 10)")
    p.add_argument("--seed", type=int, default=42, help="synthetic market seed (default: 42)")
    p.add_argument("--days", type=float, default=120.0, help="synthetic market length in days (default: 120)")
    p.add_argument("--start", default="2024-01-01", help="synthetic market first candle (default: 2024-01-01)")
    p.add_argument("--timeframe", default="5m", help="synthetic market base timeframe (default: 5m)")
    p.add_argument(
        "--scenario",
        type=parse_scenario,
        action="append",
        default=[],
        help="synthetic stress event KIND@START[:HOURS][,FIELD=VALUE...] (see python -m simulation.synthetic -h)",
    )
    p.add_argument("--pairs", nargs="+", help="serve only these pairs (e.g. BTC/USDT ETH/USDT)")
    p.add_argument("--replay", action="store_true", help="replay history as live (time-shifted, forming candles)")
    p.add_argument(
        "--replay-start",
        help="data date where replay begins, or 'now' for no time shift (default: 30 days after data start)",
    )
    p.add_argument("--speed", type=float, default=1.0, help="replay speed vs wall clock (default: 1.0)")
    p.add_argument(
        "--path-model",
        choices=PATH_MODELS,
        default="random",
        help="how a forming candle moves between its open, high, low and close (default: random; "
        "'backtest' = freqtrade backtesting's convention)",
    )
    p.add_argument("--path-seed", type=int, default=0, help="seed of the random path model (default: 0)")
    sim = p.add_argument_group("simulated venue and execution (see docs/simulator.md)")
    sim.add_argument(
        "--venue", action="store_true", help="serve signed private endpoints (keys from SIMULATOR_API_KEY/SECRET)"
    )
    sim.add_argument("--balances", default="USDT=1000", help="venue starting balances, e.g. USDT=1000,BTC=0.1")
    sim.add_argument("--ledger", type=Path, help="append venue order events (JSON lines) to this file")
    sim.add_argument("--sim-config", type=Path, help="JSON file whose 'simulation' section sets the execution models")
    sim.add_argument("--latency", action="store_true", help="apply the latency model to every request")
    sim.add_argument("--faults", help="inject faults, e.g. 'timeout=0.01,5xx=0.05,429=0.02,stale_book=0.1,drop=0.01'")
    sim.add_argument("--request-log", type=Path, help="write one CSV line per request (latency, status, fault)")
    p.add_argument("--write-config", type=Path, help="write the freqtrade exchange config overlay for this gateway")
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return p


def make_clock(args: argparse.Namespace, store: CandleStore) -> Clock:
    if not args.replay:
        return StaticClock()
    if args.replay_start == "now":  # the process clock already is the data time (e.g. under faketime)
        start = wall_ms()
    elif args.replay_start:
        start = int(pd.Timestamp(args.replay_start, tz="UTC").timestamp() * 1000)
    else:
        start = min(store.data_start() + 30 * 86_400_000, (store.data_start() + store.data_end()) // 2)
    if not store.data_start() <= start < store.data_end():
        raise DataSourceError("--replay-start lies outside the data")
    return ReplayClock(start, speed=args.speed)


def execution_settings(args: argparse.Namespace) -> tuple[ExecutionParams, FaultSpec, dict[str, float]]:
    """The execution models, faults and venue balances the command line asks for (ValueError/OSError if bad)."""
    params = ExecutionParams.from_file(args.sim_config)
    params.latency.enabled = args.latency
    return params, FaultSpec.parse(args.faults, seed=args.seed), parse_balances(args.balances)


def parse_balances(text: str) -> dict[str, float]:
    out = {}
    for part in filter(None, text.split(",")):
        asset, sep, amount = part.partition("=")
        if not sep:
            raise ValueError(f"bad balance '{part}', expected ASSET=AMOUNT")
        value = float(amount)
        if value < 0:
            raise ValueError(f"negative balance for {asset}")
        out[asset.strip().upper()] = value
    return out


PARSER_LIMIT = 1 << 16  # bytes per request line / header accepted by the parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if args.speed <= 0:
        logger.error("--speed must be positive")
        return 2
    if args.upstream:
        return run_relay(args)
    datadir = args.datadir
    if datadir is None and not args.synthetic and SHARED_DATA.is_dir():
        datadir = SHARED_DATA
    synthetic = None
    if datadir is None:
        synthetic = SyntheticConfig(
            seed=args.seed, days=args.days, start=args.start, timeframe=args.timeframe, scenarios=tuple(args.scenario)
        )
    elif args.scenario:
        logger.error("--scenario applies to the synthetic market only")
        return 2
    try:
        source = open_source(datadir=datadir, synthetic=synthetic, pairs=args.pairs)
        store = CandleStore(source, PathModel(args.path_model, args.path_seed))
        clock = make_clock(args, store)
    except (DataSourceError, ValueError) as exc:
        logger.error("cannot start gateway: %s", exc)
        return 2
    base_url = f"http://{args.host}:{args.port}"
    if args.write_config:
        write_overlay(args.write_config, base_url)
        logger.info("freqtrade config overlay written to %s", args.write_config)
    logger.info("data: %s (%d pairs: %s)", source.describe(), len(store.pairs()), ", ".join(store.pairs()))
    logger.info("clock: %s", clock.describe())
    logger.info("intra-candle path: %s", store.path.describe())
    try:
        params, faults, balances = execution_settings(args)
    except (OSError, ValueError) as exc:
        logger.error("cannot start gateway: %s", exc)
        return 2
    api = BinanceSpotAPI(store, clock, params.book)
    logger.info(
        "order book spread: %s x%g",
        "fixed %.4f%%" % (100 * params.book.base_spread)
        if params.book.spread_model == "fixed"
        else "Corwin-Schultz estimate of the previous UTC day",
        params.book.spread_scale,
    )
    venue = None
    creds = credentials_from_env()
    if args.venue:
        if creds is None:
            logger.error("--venue needs SIMULATOR_API_KEY and SIMULATOR_API_SECRET in the environment")
            return 2
        venue = Venue(store, clock, api.book, params, balances, ledger_path=args.ledger)
        logger.info("venue: balances %s, fees maker %.4f taker %.4f", balances, params.maker_fee, params.taker_fee)
        logger.info("venue fill rule for resting limit orders: %s", params.queue.describe())
    if params.latency.enabled:
        logger.info("latency model: %s", params.latency)
    if faults.active:
        logger.warning("injecting faults: %s", faults.describe())
    metrics = GatewayMetrics(args.request_log)
    app = create_app(api, venue, creds, params.latency, faults, metrics, answer_ahead=venue is None)
    # run_app turns SIGTERM/SIGINT into a graceful shutdown.
    # aiohttp answers request lines / headers over its parser limits in plain text before any handler
    # runs: raise the limits so the middleware answers long queries in Binance JSON (414) instead.
    try:
        serve(app, args)
    except OSError as exc:
        return bind_failure(args, exc)
    logger.info("gateway stopped")
    return 0


def serve(app, args: argparse.Namespace) -> None:
    """aiohttp's server with the parser limits raised (the middleware answers long queries in Binance
    JSON) and SIGTERM/SIGINT as a graceful shutdown."""
    web.run_app(
        app,
        host=args.host,
        port=args.port,
        access_log=None,
        print=None,
        handle_signals=True,
        max_line_size=PARSER_LIMIT,
        max_field_size=PARSER_LIMIT,
        loop=session_event_loop(),
    )


def bind_failure(args: argparse.Namespace, exc: OSError) -> int:
    """One line, and an exit code a launcher can act on: EXIT_PORT_IN_USE when the port is taken."""
    if exc.errno == errno.EADDRINUSE:
        logger.error("cannot listen on %s:%s: address already in use", args.host, args.port)
        return EXIT_PORT_IN_USE
    logger.error("cannot listen on %s:%s: %s", args.host, args.port, exc)
    return 2


MAX_RELAY_HISTORY = 100_000  # candles per timeframe at start: a year of 5m candles
DAY_S = 86_400.0
PAIR = re.compile(r"[A-Z0-9]{1,20}/[A-Z0-9]{1,20}")


def relay_argument_problem(args: argparse.Namespace) -> str | None:
    """What is wrong with the relay's arguments, found before any network call (None: nothing)."""
    # session seconds: on a constant clock both are the wall-clock values times the speed (x300: 3,000 s)
    for name, value, most in (
        ("--relay-poll", args.relay_poll, DAY_S),
        ("--upstream-timeout", args.upstream_timeout, DAY_S),
    ):
        if not (math.isfinite(value) and 0 < value <= most):
            return f"{name} must be a number of seconds in (0, {most:g}], got {value!r}"
    if not 1 <= args.relay_history <= MAX_RELAY_HISTORY:
        return f"--relay-history must be 1..{MAX_RELAY_HISTORY} candles, got {args.relay_history}"
    if bad := [p for p in args.pairs if not PAIR.fullmatch(p)]:
        return f"--pairs: not BASE/QUOTE spot pairs: {', '.join(map(repr, bad))} (e.g. BTC/USDT)"
    if bad := [tf for tf in args.relay_timeframes if tf not in INTERVAL_MS]:
        return f"--relay-timeframes: unknown {', '.join(map(repr, bad))} (known: {', '.join(INTERVAL_MS)})"
    if len(set(args.pairs)) != len(args.pairs) or len(set(args.relay_timeframes)) != len(args.relay_timeframes):
        return "--pairs and --relay-timeframes must not repeat a value"
    return None


def run_relay(args: argparse.Namespace) -> int:
    """Serve (and record) a live upstream; the app is built inside the server's event loop, where the
    ccxt client lives."""
    if not args.pairs:
        logger.error("--upstream needs --pairs (e.g. --pairs BTC/USDT ETH/USDT)")
        return 2
    record = args.record or Path("user_data") / "relay" / args.upstream
    if problem := relay_argument_problem(args):
        logger.error("%s", problem)
        return 2
    try:
        params, faults, balances = execution_settings(args)
    except (OSError, ValueError) as exc:
        logger.error("cannot start gateway: %s", exc)
        return 2
    creds = credentials_from_env()
    if args.venue and creds is None:
        logger.error("--venue needs SIMULATOR_API_KEY and SIMULATOR_API_SECRET in the environment")
        return 2
    relay = UpstreamRelay(
        args.upstream,
        args.pairs,
        args.relay_timeframes,
        record,
        args.upstream_url,
        args.relay_history,
        args.relay_poll,
        timeout_s=args.upstream_timeout,
    )

    async def make_app() -> web.Application:
        try:
            store = await relay.open()
        except Exception:
            await relay.close()
            raise
        logger.info("data: %s; recording to %s", store.source.describe(), record)
        api = BinanceSpotAPI(store, relay.clock, params.book)
        venue = None
        if args.venue:  # paper trading on the live market: fills against the relayed book and trades
            venue = Venue(store, relay.clock, api.book, params, balances, ledger_path=args.ledger)
            logger.info("venue on the relayed market: balances %s", balances)
        app = create_app(api, venue, creds if venue else None, params.latency, faults, GatewayMetrics(args.request_log))

        async def poller(app: web.Application):
            task = asyncio.create_task(relay.run())
            yield
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await relay.close()

        app.cleanup_ctx.append(poller)
        return app

    try:
        serve(make_app(), args)
    except DataSourceError as exc:
        logger.error("cannot start the relay: %s", exc)
        return 2
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            return bind_failure(args, exc)
        logger.error("cannot start the relay: %s", exc)
        return 2
    except ccxt.BaseError as exc:  # ccxt's network and exchange errors: one line, not a traceback
        logger.error("cannot start the relay: upstream %s: %s: %s", args.upstream, type(exc).__name__, exc)
        return 2
    logger.info("gateway stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
