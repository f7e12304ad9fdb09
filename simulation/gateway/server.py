"""aiohttp adapter: Binance REST paths -> BinanceSpotAPI (public) and the venue (private, signed).

Middlewares, outermost first: Binance-style errors + metrics, then injected faults and the latency
model (half the sampled round trip before the request is handled, half after, so answers are as
stale as the network makes them and orders reach the venue late by the same model).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections import OrderedDict, deque

import orjson
from aiohttp import web

from simulation.clock import FrozenClock
from simulation.execution import LatencyModel
from simulation.gateway.api import BinanceSpotAPI
from simulation.gateway.faults import FaultSpec
from simulation.gateway.metrics import GatewayMetrics
from simulation.gateway.private import add_private_routes
from simulation.gateway.streams import StreamHub
from simulation.marketdata.store import NoPriceYet
from simulation.venue import ApiCredentials, Venue
from simulation.venue.auth import same_text
from simulation.wire import BinanceError

logger = logging.getLogger("simulation.gateway")

# path -> BinanceSpotAPI method name
PUBLIC_ROUTES: dict[str, str] = {
    "/api/v3/ping": "ping",
    "/api/v3/time": "time",
    "/api/v3/exchangeInfo": "exchange_info",
    "/api/v3/klines": "klines",
    "/api/v3/uiKlines": "klines",
    "/api/v3/ticker/24hr": "ticker_24hr",
    "/api/v3/ticker/price": "ticker_price",
    "/api/v3/ticker/bookTicker": "book_ticker",
    "/api/v3/depth": "depth",
}
BOOK_PATHS = ("/api/v3/depth", "/api/v3/ticker/bookTicker")
ADMIN_PREFIXES = ("/sim/", "/metrics")
ADMIN_TOKEN_ENV, ADMIN_HEADER = "SIMULATOR_ADMIN_TOKEN", "X-SIM-ADMIN-TOKEN"
MAX_SNAPSHOT_KEYS = 256
MAX_QUERY_BYTES = 8192  # Binance rejects longer URLs too


def _json(body, status: int = 200, headers: dict | None = None) -> web.Response:
    # orjson (a freqtrade dependency): kline pages are the bulk of the traffic
    return web.Response(
        body=orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY),
        status=status,
        content_type="application/json",
        headers=headers,
    )


def create_app(
    api: BinanceSpotAPI,
    venue: Venue | None = None,
    credentials: ApiCredentials | None = None,
    latency: LatencyModel | None = None,
    faults: FaultSpec | None = None,
    metrics: GatewayMetrics | None = None,
    *,
    answer_ahead: bool = False,
) -> web.Application:
    """`answer_ahead`: the market's data are all known in advance and nothing a request reads changes
    while it is in flight (a replayed market without a venue): a public answer is then built when the
    request is received, as of its arrival half a round trip later, and delivered a full round trip
    after it was sent: the same answer at the same time as handling it on arrival, with one timer
    instead of two (on a session clock that skips idle time every timer is a stop). Off for a relayed
    live market (its data arrive with time), with a venue (its fills change what a book shows) and while
    stale books are injected (their snapshots are kept in arrival order)."""
    metrics = metrics or GatewayMetrics()
    latency = latency or LatencyModel(enabled=False)
    state = {"faults": faults or FaultSpec()}
    snapshots: OrderedDict[str, deque] = OrderedDict()  # bounded: MAX_SNAPSHOT_KEYS queries
    admin_token = os.environ.get(ADMIN_TOKEN_ENV)

    @web.middleware
    async def binance_errors(request: web.Request, handler):
        t0 = time.perf_counter()
        fault = None
        try:
            if len(request.raw_path) > MAX_QUERY_BYTES:
                raise BinanceError(-1000, f"Request line longer than {MAX_QUERY_BYTES} bytes.", 414)
            response = await handler(request)
            fault = request.get("fault")
        except BinanceError as err:
            response = _json(err.body(), err.status)
        except NoPriceYet:  # the pair's history starts later: no price exists yet, none is invented
            response = _json({"code": -1121, "msg": "Invalid symbol."}, 400)
        except web.HTTPNotFound:
            response = _json({"code": -1000, "msg": f"Path {request.path} is not served by the offline gateway."}, 404)
        except web.HTTPMethodNotAllowed:
            response = _json({"code": -1000, "msg": f"Method {request.method} not allowed on {request.path}."}, 405)
        except web.HTTPException as exc:  # aiohttp's own (e.g. 413 for an oversize body): Binance JSON too
            response = _json({"code": -1000, "msg": exc.reason or "Bad request."}, exc.status)
        except Exception:  # never leak a stack trace to the client
            logger.exception("internal error on %s %s", request.method, request.path_qs)
            response = _json({"code": -1000, "msg": "An unknown error occurred while processing the request."}, 500)
        if not request.path.startswith(ADMIN_PREFIXES):
            # the route's pattern, not the raw path: a client (or a fuzzer) cannot grow the label set
            resource = request.match_info.route.resource
            metrics.observe(
                api.clock.now_ms(),
                request.method,
                resource.canonical if resource else "unmatched",
                response.status,
                request.get("latency_ms", 0.0),
                (time.perf_counter() - t0) * 1e3,
                fault or request.get("fault"),
            )
        return response

    def admin_refusal(request: web.Request) -> str | None:
        """Why an admin request is refused, or None. A token, when set, guards every admin endpoint;
        without one, nothing that can change the market's behaviour (fault control) is exposed, and a
        venue that holds keys exposes nothing at all."""
        if not request.path.startswith("/sim/"):
            return None  # /metrics: Prometheus scrapes it
        if admin_token:
            given = request.headers.get(ADMIN_HEADER, "")
            if not same_text(given, admin_token):
                return f"admin endpoints need the {ADMIN_HEADER} header ({ADMIN_TOKEN_ENV} is set)"
            return None
        if venue is not None and credentials is not None:
            return f"admin endpoints need a token while the venue holds keys: set {ADMIN_TOKEN_ENV} for the gateway"
        if request.method != "GET":
            return (
                f"fault control needs a token: set {ADMIN_TOKEN_ENV} for the gateway and send the {ADMIN_HEADER} header"
            )
        return None

    @web.middleware
    async def network(request: web.Request, handler):
        if request.path.startswith(ADMIN_PREFIXES):
            refused = admin_refusal(request)
            if refused:
                return _json({"code": -2015, "msg": refused}, 401)
            return await handler(request)
        spec: FaultSpec = state["faults"]
        kind = spec.draw() if spec.active else None
        request["fault"] = kind
        if kind == "drop":
            if request.transport is not None:
                request.transport.abort()
            return web.Response(status=499)
        if kind == "timeout":
            await asyncio.sleep(spec.timeout_s)
            return _json({"code": -1007, "msg": "Timeout waiting for response from backend server."}, 504)
        if kind == "5xx":
            return _json(
                {"code": -1001, "msg": "Internal error; unable to process your request. Please try again."}, 503
            )
        if kind == "429":
            return _json(
                {"code": -1003, "msg": "Too many requests; current limit is exceeded."},
                429,
                headers={"Retry-After": str(spec.retry_after_s)},
            )
        rtt = latency.sample_ms()
        request["latency_ms"] = rtt
        if rtt and answer_ahead and not spec.stale_book and request.method == "GET" and request.path in PUBLIC_ROUTES:
            base = api.clock
            api.clock = FrozenClock(base, base.now_ms() + round(rtt / 2 * getattr(base, "speed", 1.0)))
            try:  # the public handlers do not await: nothing else runs while the clock is frozen
                response = await _answer(request, handler, spec)
            finally:
                api.clock = base
            await asyncio.sleep(rtt / 1000.0)
            return response
        if rtt:
            await asyncio.sleep(rtt / 2000.0)
        response = await _answer(request, handler, spec)
        if rtt:
            await asyncio.sleep(rtt / 2000.0)
        return response

    async def _answer(request: web.Request, handler, spec: FaultSpec) -> web.Response:
        response = await handler(request)
        if spec.stale_book and request.path in BOOK_PATHS and response.status == 200:
            response = _stale_or_fresh(request, response, spec)
        return response

    def _stale_or_fresh(request: web.Request, response: web.Response, spec: FaultSpec) -> web.Response:
        key = request.path_qs
        now = api.clock.now_ms()
        hist = snapshots.setdefault(key, deque(maxlen=512))
        snapshots.move_to_end(key)
        while len(snapshots) > MAX_SNAPSHOT_KEYS:
            snapshots.popitem(last=False)
        hist.append((now, response.body))
        if spec.stale():
            old = [body for t, body in hist if now - t >= spec.stale_ms]
            if old:
                request["fault"] = "stale_book"
                return web.Response(body=old[-1], content_type="application/json")
        return response

    app = web.Application(middlewares=[binance_errors, network])
    app["json"] = _json

    def endpoint(method_name: str):
        method = getattr(api, method_name)

        async def handle(request: web.Request) -> web.Response:
            return _json(method(request.query))

        return handle

    for path, method_name in PUBLIC_ROUTES.items():
        app.router.add_get(path, endpoint(method_name))

    async def prom(request: web.Request) -> web.Response:
        return web.Response(body=metrics.exposition(), content_type="text/plain", charset="utf-8")

    async def sim_status(request: web.Request) -> web.Response:
        return _json(
            {
                "now_ms": api.clock.now_ms(),
                "data_now_ms": api.clock.data_now(),
                "clock": api.clock.describe(),
                "venue": venue is not None,
                "faults": state["faults"].describe(),
            }
        )

    async def set_faults(request: web.Request) -> web.Response:
        try:
            body = json.loads(await request.text() or "{}")
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):  # RecursionError: nesting too deep
            return _json({"code": -1100, "msg": "bad fault spec: the body must be a JSON object"}, 400)
        if not isinstance(body, dict):
            return _json(
                {"code": -1100, "msg": f"bad fault spec: the body must be a JSON object, got {type(body).__name__}"},
                400,
            )
        try:
            state["faults"] = FaultSpec(**{k: v for k, v in body.items() if not k.startswith("_")})
        except (TypeError, ValueError) as exc:
            return _json({"code": -1100, "msg": f"bad fault spec: {exc}"}, 400)
        logger.warning("faults now %s", state["faults"].describe())
        return _json(state["faults"].describe())

    hub = StreamHub(api, latency, metrics=metrics)
    hub.routes(app)

    async def close_streams(app: web.Application) -> None:
        for conn in list(hub.connections):
            await conn.ws.close(code=1001, message=b"gateway shutting down")

    app.on_shutdown.append(close_streams)
    app["streams"] = hub
    app.router.add_get("/metrics", prom)
    app.router.add_get("/sim/status", sim_status)
    app.router.add_put("/sim/faults", set_faults)

    if venue is not None:
        add_private_routes(app, venue, credentials)

        async def sim_orders(request: web.Request) -> web.Response:
            venue.match()
            return _json({"orders": venue.records(), "balances": venue.account()})

        app.router.add_get("/sim/orders", sim_orders)

        def on_trade(order, trade, mid):
            sign = 1.0 if order.side == "BUY" else -1.0
            metrics.fills.labels(order.side, "maker" if trade.is_maker else "taker").inc()
            if mid > 0:
                metrics.slippage.labels(order.side).observe(max(0.0, sign * (trade.price / mid - 1.0) * 1e4))

        venue.on_trade = on_trade

        async def matcher(app: web.Application):
            work = asyncio.Event()
            venue.on_rest = work.set

            async def loop():
                speed = float(getattr(venue.clock, "speed", 1.0))  # data ms per wall ms
                while True:
                    work.clear()
                    try:
                        plan = venue.next_match()
                    except Exception:
                        logger.exception("venue match planning failed: polling")
                        plan = (venue.data_now() + venue.params.match_interval_ms, None)
                    if plan is None:  # nothing rests: no tick (on a session clock every tick is a stop)
                        await work.wait()
                        continue
                    wake, quiet = plan
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(work.wait(), max(0.0, (wake - venue.data_now()) / 1000.0 / speed))
                    if work.is_set():  # a new order rests: plan again with it
                        continue
                    try:
                        venue.match(quiet_until=quiet)
                    except Exception:
                        logger.exception("venue matching failed")

            task = asyncio.create_task(loop())
            yield
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

        app.cleanup_ctx.append(matcher)
    app["api"], app["venue"], app["metrics"] = api, venue, metrics
    return app
