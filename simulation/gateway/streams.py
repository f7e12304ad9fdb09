"""Binance public market streams over WebSocket, driven by the gateway's replay clock.

The protocol as ccxt's binance client and Binance's own connectors use it:
- `/ws`, `/ws/<stream>` (raw payloads) and `/stream`, `/stream?streams=a/b` (each payload wrapped as
  `{"stream": name, "data": payload}`); any path tail is accepted (ccxt connects to `/ws/0`-style URLs);
- requests `{"method": "SUBSCRIBE" | "UNSUBSCRIBE" | "LIST_SUBSCRIPTIONS", "params": [...], "id": n}`
  answered `{"result": null | [...], "id": n}`; errors `{"error": {"code", "msg"}, "id"}` with Binance's
  codes (2 invalid request, 3 invalid JSON);
- `<symbol>@kline_<interval>`: the forming candle about every `update_s` seconds of exchange time
  (Binance: 2 s) with `"x": false`, and at each candle's close its final state with `"x": true`, sent
  as soon as the clock crosses the close (the gateway wakes at candle boundaries);
- `<symbol>@bookTicker` and `<symbol>@depth5|10|20` (partial book) from the same synthetic book as REST.

One-way network delay: half a round trip of the gateway's latency model before each push. Streams
need a replay clock (history served statically has no "now" to stream).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from dataclasses import dataclass, field

from aiohttp import WSMsgType, web

from simulation.clock import FrozenClock
from simulation.execution import LatencyModel
from simulation.gateway.api import BinanceSpotAPI
from simulation.timeframes import INTERVAL_MS
from simulation.wire import BinanceError, fmt_num

logger = logging.getLogger("simulation.gateway.streams")
STREAM = re.compile(
    r"^(?P<symbol>[a-z0-9]+)@(?P<kind>kline_(?P<interval>\w+)|bookTicker|depth(?P<levels>5|10|20)(@100ms)?)$"
)
MAX_STREAMS_PER_CONNECTION = 1024  # Binance's limit
MAX_MESSAGE_BYTES = 4096
# Connection hygiene, in the gateway's loop seconds (wall seconds on the constant clock, session seconds on
# the compute clock). Binance pings every 20 s; aiohttp closes a connection whose pong is not back within
# half of that. A push the client does not take within SEND_TIMEOUT_S (its receive buffer full: it stopped
# reading) drops the connection, as Binance drops slow consumers; so does a connection with no stream for
# IDLE_S. At most MAX_CONNECTIONS at once: the next is refused before the upgrade (HTTP 429).
HEARTBEAT_S = 20.0
SEND_TIMEOUT_S = 10.0
IDLE_S = 60.0
MAX_CONNECTIONS = 256


class StreamError(ValueError):
    """A request the stream server refuses: (Binance code, message)."""

    def __init__(self, code: int, msg: str) -> None:
        super().__init__(msg)
        self.code, self.msg = code, msg


@dataclass
class Subscription:
    name: str
    symbol: str  # upper case, as in REST
    kind: str  # kline | bookTicker | depth
    interval: str | None = None
    levels: int = 0
    last_open: int | None = None  # kline: open time of the candle last pushed


@dataclass(eq=False)  # hashed by identity: one per socket
class Connection:
    ws: web.WebSocketResponse
    combined: bool
    transport: asyncio.BaseTransport | None = None  # aborted when a push cannot be delivered
    subs: dict[str, Subscription] = field(default_factory=dict)
    wake: asyncio.Event = field(default_factory=asyncio.Event)


class StreamHub:
    def __init__(
        self,
        api: BinanceSpotAPI,
        latency: LatencyModel | None = None,
        update_s: float = 2.0,
        metrics=None,
        heartbeat_s: float = HEARTBEAT_S,
        send_timeout_s: float = SEND_TIMEOUT_S,
        idle_s: float = IDLE_S,
        max_connections: int = MAX_CONNECTIONS,
    ) -> None:
        self.api = api
        self.latency = latency or LatencyModel(enabled=False)
        self.update_s = update_s
        self.metrics = metrics
        self.heartbeat_s, self.send_timeout_s, self.idle_s = heartbeat_s, send_timeout_s, idle_s
        self.max_connections = max_connections
        self.connections: set[Connection] = set()
        self._opening = 0  # upgrades in progress count against the cap too
        self._closing: set[asyncio.Future] = set()

    def routes(self, app: web.Application) -> None:
        for prefix in ("/ws", "/stream"):
            app.router.add_get(prefix, self.handle)
            app.router.add_get(prefix + "/{tail:.*}", self.handle)

    # -- requests ---------------------------------------------------------------------------
    def parse(self, name: str) -> Subscription:
        m = STREAM.match(name) if isinstance(name, str) else None
        if m is None:
            raise StreamError(
                2,
                f"Invalid request: unknown or unsupported stream {name!r} (served: "
                "<symbol>@kline_<interval>, <symbol>@bookTicker, <symbol>@depth5|10|20)",
            )
        symbol = m["symbol"].upper()
        try:
            pair = self.api._pair(symbol)
        except BinanceError:
            raise StreamError(2, f"Invalid request: unknown symbol in {name!r}") from None
        if m["interval"] is not None:
            interval = m["interval"]
            if interval not in INTERVAL_MS or not self.api.store.supports(pair, interval):
                raise StreamError(2, f"Invalid request: interval {interval!r} not served for {symbol}")
            return Subscription(name, symbol, "kline", interval=interval)
        if m["levels"] is not None:
            return Subscription(name, symbol, "depth", levels=int(m["levels"]))
        return Subscription(name, symbol, "bookTicker")

    def request(self, conn: Connection, text: str) -> dict:
        """Answer one client message (the reply always echoes the id when there was one)."""
        try:
            msg = json.loads(text)
        except (json.JSONDecodeError, TypeError, RecursionError):  # RecursionError: nesting too deep
            return {"error": {"code": 3, "msg": "Invalid JSON: expected value at line 1 column 1"}, "id": None}
        if not isinstance(msg, dict):
            return {"error": {"code": 2, "msg": "Invalid request: the message must be a JSON object"}, "id": None}
        rid = msg.get("id")
        if not isinstance(rid, int | str) or isinstance(rid, bool):
            return {"error": {"code": 2, "msg": "Invalid request: request ID must be an unsigned integer"}, "id": None}
        method, params = msg.get("method"), msg.get("params", [])
        try:
            if method == "LIST_SUBSCRIPTIONS":
                return {"result": sorted(conn.subs), "id": rid}
            if method not in ("SUBSCRIBE", "UNSUBSCRIBE"):
                raise StreamError(2, f"Invalid request: unknown method {method!r}")
            if not isinstance(params, list) or not params or not all(isinstance(p, str) for p in params):
                raise StreamError(2, "Invalid request: params must be a non-empty list of stream names")
            if method == "UNSUBSCRIBE":
                for name in params:
                    conn.subs.pop(name, None)
                return {"result": None, "id": rid}
            parsed = [self.parse(name) for name in params]  # all or nothing
            if self.api.clock.data_now() is None:
                raise StreamError(2, "Invalid request: streams need a replay clock (start the gateway with --replay)")
            if len(conn.subs) + len(parsed) > MAX_STREAMS_PER_CONNECTION:
                raise StreamError(2, f"Invalid request: more than {MAX_STREAMS_PER_CONNECTION} streams")
            for sub in parsed:
                conn.subs.setdefault(sub.name, sub)
            conn.wake.set()  # the first update at once, not at the next tick
            return {"result": None, "id": rid}
        except StreamError as err:
            return {"error": {"code": err.code, "msg": err.msg}, "id": rid}

    # -- pushes -----------------------------------------------------------------------------
    def _kline(self, sub: Subscription, candle, closed: bool, event_ms: int) -> dict:
        row = self.api._kline_row(candle)
        return {
            "e": "kline",
            "E": event_ms,
            "s": sub.symbol,
            "k": {
                "t": row[0],
                "T": row[6],
                "s": sub.symbol,
                "i": sub.interval,
                "f": -1,
                "L": -1,
                "o": row[1],
                "c": row[4],
                "h": row[2],
                "l": row[3],
                "v": row[5],
                "n": row[8],
                "x": closed,
                "q": row[7],
                "V": row[9],
                "Q": row[10],
                "B": "0",
            },
        }

    def updates(self, sub: Subscription) -> list[dict]:
        """What `sub` pushes now: for a kline, the closing state of any candle that closed since the last
        push (x = true), then the forming candle (x = false)."""
        clock = self.api.clock
        now = clock.now_ms()
        if sub.kind == "kline":
            pair = self.api._pair(sub.symbol)
            candles = self.api.store.candles(pair, sub.interval, clock.data_now(), limit=2)
            if not candles:
                return []
            forming, out = candles[-1], []
            if sub.last_open is not None and forming.open_time != sub.last_open and len(candles) == 2:
                out.append(self._kline(sub, candles[-2], True, now))  # the candle that just closed
            sub.last_open = forming.open_time
            out.append(self._kline(sub, forming, False, now))
            return out
        book = self.api.book(sub.symbol, max(5, sub.levels))
        if sub.kind == "bookTicker":
            return [
                {
                    "u": now,
                    "s": sub.symbol,
                    "b": fmt_num(book.bids[0][0]),
                    "B": fmt_num(book.bids[0][1]),
                    "a": fmt_num(book.asks[0][0]),
                    "A": fmt_num(book.asks[0][1]),
                }
            ]
        return [
            {
                "lastUpdateId": now,
                "bids": [[fmt_num(p), fmt_num(q)] for p, q in book.bids[: sub.levels]],
                "asks": [[fmt_num(p), fmt_num(q)] for p, q in book.asks[: sub.levels]],
            }
        ]

    def _sleep_s(self, conn: Connection) -> float:
        """Exchange seconds until the next push: the update period, or sooner when a candle closes."""
        now = self.api.clock.now_ms()
        wait_ms = self.update_s * 1000.0
        for sub in conn.subs.values():
            if sub.kind == "kline":
                step = INTERVAL_MS[sub.interval]
                wait_ms = min(wait_ms, step - now % step + 1)  # 1 ms after the boundary
        return wait_ms / 1000.0 / getattr(self.api.clock, "speed", 1.0)

    def _batch(self, conn: Connection, generated_ms: int | None) -> list[tuple[str, dict]]:
        """Every subscription's updates, as of `generated_ms` (exchange time; None: now)."""
        base = self.api.clock
        if generated_ms is not None:
            self.api.clock = FrozenClock(base, generated_ms)  # no await in here: nothing else sees it
        try:
            return [(sub.name, payload) for sub in list(conn.subs.values()) for payload in self.updates(sub)]
        finally:
            self.api.clock = base

    async def _pusher(self, conn: Connection) -> None:
        """A timed push (the update period, a candle close) is generated at its instant and delivered
        half a round trip later: the pusher waits once, to the delivery, and builds the message as of
        its generation. On a session clock that skips idle time every wait is a stop, so one wait per
        push instead of two halves the stops the streams cost. A new subscription's first update is
        generated at once and delivered half a round trip later."""
        while not conn.ws.closed:
            if not conn.subs:  # nothing to push: wait for a subscription, no timer ticking meanwhile
                try:
                    await asyncio.wait_for(conn.wake.wait(), timeout=self.idle_s)
                except TimeoutError:
                    logger.info("websocket connection without a stream for %g s: closed", self.idle_s)
                    await self._drop(conn, 1000, b"idle: no stream subscribed")
                    return
                continue
            rtt = self.latency.sample_ms()
            wait_s = self._sleep_s(conn)
            generated_ms = self.api.clock.now_ms() + round(wait_s * getattr(self.api.clock, "speed", 1.0) * 1000)
            try:
                await asyncio.wait_for(conn.wake.wait(), timeout=wait_s + rtt / 2000.0)
                subscribed = True
            except TimeoutError:
                subscribed = False
            conn.wake.clear()
            batch = self._batch(conn, None if subscribed else generated_ms)
            if not batch:
                continue
            if subscribed and rtt:
                await asyncio.sleep(rtt / 2000.0)
            for name, payload in batch:
                body = {"stream": name, "data": payload} if conn.combined else payload
                try:
                    await asyncio.wait_for(conn.ws.send_str(json.dumps(body)), timeout=self.send_timeout_s)
                except TimeoutError:
                    logger.warning("websocket client took no push for %g s (not reading): dropped", self.send_timeout_s)
                    await self._drop(conn)
                    return
                except (ConnectionResetError, RuntimeError):
                    return
            if self.metrics is not None:
                self.metrics.ws_messages.inc(len(batch))

    def _pusher_ended(self, task: asyncio.Task, conn: Connection) -> None:
        """A pusher that failed is logged and its connection closed with 1011 (the client reconnects);
        silent, it would leave a subscribed client waiting forever for pushes that never come."""
        if task.cancelled() or task.exception() is None:
            return
        logger.error("stream pusher failed; closing the connection (1011)", exc_info=task.exception())
        if self.metrics is not None:
            self.metrics.ws_pusher_failures.inc()
        if not conn.ws.closed:
            closing = asyncio.ensure_future(self._drop(conn, 1011, b"internal error"))
            self._closing.add(closing)  # held until done (the loop keeps only weak references)
            closing.add_done_callback(self._closing.discard)

    async def _drop(self, conn: Connection, code: int | None = None, message: bytes = b"") -> None:
        """End a connection: a close frame when the client can take one (`code`), else the socket aborted
        (a client that stopped reading would hold a polite close, and its buffers, forever)."""
        if code is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.ws.close(code=code, message=message), timeout=self.send_timeout_s)
                return
        if conn.transport is not None:
            conn.transport.abort()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if len(self.connections) + self._opening >= self.max_connections:
            return web.json_response(
                {"code": -1003, "msg": f"Too many websocket connections (at most {self.max_connections})."}, status=429
            )
        ws = web.WebSocketResponse(heartbeat=self.heartbeat_s, autoping=True, max_msg_size=MAX_MESSAGE_BYTES)
        self._opening += 1
        try:
            await ws.prepare(request)
        except ConnectionResetError:  # the client gave up during the handshake (its timeout): nothing to serve
            logger.info("websocket client left during the handshake on %s", request.path)
            return web.Response(status=499, text="client closed the connection")  # nginx's code; never sent
        finally:
            self._opening -= 1
        conn = Connection(ws, combined=request.path.startswith("/stream"), transport=request.transport)
        initial = request.query.get("streams", "")
        tail = request.match_info.get("tail", "")
        names = [n for n in initial.split("/") if n] + ([tail] if tail and "@" in tail else [])
        if names:
            reply = self.request(conn, json.dumps({"method": "SUBSCRIBE", "params": names, "id": 0}))
            if "error" in reply:
                await ws.send_str(json.dumps(reply))
                await ws.close()
                return ws
        self.connections.add(conn)
        if self.metrics is not None:
            self.metrics.ws_connections.inc()
        pusher = asyncio.create_task(self._pusher(conn))
        pusher.add_done_callback(lambda task: self._pusher_ended(task, conn))
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    reply = self.request(conn, msg.data)
                elif msg.type == WSMsgType.BINARY:
                    reply = {"error": {"code": 3, "msg": "Invalid JSON: binary frame"}, "id": None}
                else:
                    break
                try:
                    await asyncio.wait_for(ws.send_str(json.dumps(reply)), timeout=self.send_timeout_s)
                except TimeoutError:
                    logger.warning(
                        "websocket client took no reply for %g s (not reading): dropped", self.send_timeout_s
                    )
                    await self._drop(conn)
                    break
        except Exception:  # after the upgrade no HTTP error can be sent: log, close with 1011
            logger.exception("stream connection failed")
            await ws.close(code=1011, message=b"internal error")
        finally:
            pusher.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):  # a failure was logged by _pusher_ended
                await pusher
            self.connections.discard(conn)
            if self.metrics is not None:
                self.metrics.ws_connections.dec()
        return ws
