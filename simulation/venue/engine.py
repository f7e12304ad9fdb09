"""The simulated venue: balances, order acceptance like Binance, matching against the replayed market.

Matching rules (documented in docs/simulator.md, tested):
- MARKET orders walk the synthetic book at arrival, plus impact (see execution.impact); what the
  book cannot fill expires (Binance's EXPIRED with a partial fill).
- LIMIT orders first take what is marketable (as a taker, never beyond the limit); the rest rests
  and fills as a maker when the replayed price path trades *through* the limit (a touch is not enough:
  we assume our order is behind the queue at that level), at most `max_participation` of the volume
  traded meanwhile — large orders fill partially over time.
- STOP_LOSS_LIMIT orders trigger when the path reaches the stop price, then behave as a LIMIT order.
- Fees like Binance without BNB: buys pay commission in the base asset, sells in the quote asset.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np

from simulation.book import OrderBook
from simulation.clock import Clock
from simulation.execution import ExecutionParams, taker_fill
from simulation.marketdata.store import CandleStore
from simulation.markets import MarketSpec
from simulation.timeframes import DAY_MS, interval_ms
from simulation.venue.orders import Order, Trade
from simulation.wire import BinanceError

ORDER_TYPES = ("MARKET", "LIMIT", "STOP_LOSS_LIMIT")
MAX_PRICE, MAX_QTY = 1_000_000.0, 9_000_000.0  # PRICE_FILTER maxPrice and LOT_SIZE maxQty in exchangeInfo
PERCENT_PRICE_BY_SIDE = (0.2, 5.0)  # multipliers down / up, the same for bids and asks in exchangeInfo
TIME_IN_FORCE = ("GTC", "IOC", "FOK")
MAX_NUM_ORDERS, MAX_NUM_ALGO_ORDERS = 200, 5  # open orders per symbol, as exchangeInfo advertises
MATCH_HORIZON_MS = 15 * 60_000  # how far ahead (data time) the matcher looks for a resting order's price
logger = logging.getLogger(__name__)


def _insufficient() -> BinanceError:
    return BinanceError(-2010, "Account has insufficient balance for requested action.")


def _on_grid(x: float, step: float) -> bool:
    return step <= 0 or abs(x / step - round(x / step)) < 1e-6


class Venue:
    def __init__(
        self,
        store: CandleStore,
        clock: Clock,
        book_fn: Callable[[str, int], OrderBook],
        params: ExecutionParams | None = None,
        balances: dict[str, float] | None = None,
        ledger_path: Path | None = None,
    ) -> None:
        self.store, self.clock, self.book_fn = store, clock, book_fn
        self.params = params or ExecutionParams()
        self.free: dict[str, float] = dict(balances or {"USDT": 1000.0})
        self.locked: dict[str, float] = {a: 0.0 for a in self.free}
        self.orders: dict[int, Order] = {}
        self._next_order, self._next_trade = 1, 1
        self._by_symbol = {m.symbol: (pair, m) for pair, m in store.markets.items()}
        self.ledger_path = Path(ledger_path) if ledger_path else None
        self._pending: list[str] = []  # ledger lines not yet written (see _log)
        self._ledger_error: str | None = None
        if self.ledger_path:
            self.ledger_path.parent.mkdir(parents=True, exist_ok=True)
        self.on_trade: Callable[[Order, Trade, float], None] | None = None  # (order, trade, mid at arrival)
        self.on_rest: Callable[[], None] | None = None  # an order rests open: the matcher has work

    # -- helpers --------------------------------------------------------------------------
    def data_now(self) -> int:
        """Data time now (the end of the data on a clock without a cutoff)."""
        d = self.clock.data_now()
        return self.store.data_end() if d is None else d

    def symbols(self) -> dict[str, MarketSpec]:
        return {symbol: m for symbol, (_, m) in self._by_symbol.items()}

    def market(self, symbol: str) -> tuple[str, MarketSpec]:
        try:
            return self._by_symbol[symbol]
        except KeyError:
            raise BinanceError(-1121, "Invalid symbol.") from None

    def _daily(self, pair: str) -> tuple[float, float]:
        """(quote volume, volatility) over the last 24 h, for market impact."""
        win = self.store.window(pair, self.data_now(), DAY_MS)
        notional = float(np.sum(win.quote_volume))
        rets = np.diff(np.log(win.close)) if len(win) > 2 else np.array([0.0])
        return notional, float(np.std(rets) * math.sqrt(max(len(rets), 1)))

    def _move(self, asset: str, free: float = 0.0, locked: float = 0.0) -> None:
        self.free[asset] = self.free.get(asset, 0.0) + free
        self.locked[asset] = self.locked.get(asset, 0.0) + locked
        for book in (self.free, self.locked):  # float dust from repeated fills
            if abs(book[asset]) < 1e-12:
                book[asset] = 0.0

    def _log(self, event: str, order: Order) -> None:
        """Record an order event. Never raises once an order is accepted: a line that cannot be written
        (disk full, permissions) waits in memory and goes out, in order, with the next write that can."""
        if self.ledger_path:
            self._pending.append(json.dumps({"event": event, "order": order.record()}) + "\n")
            self._flush()

    def _flush(self) -> bool:
        """Write the held lines; with none held, check that the file opens for appending."""
        try:
            with self.ledger_path.open("a") as fh:
                fh.write("".join(self._pending))
        except OSError as exc:
            if not self._ledger_error:
                logger.error(
                    "venue ledger %s not writable (%s): %d records held in memory",
                    self.ledger_path,
                    exc,
                    len(self._pending),
                )
            self._ledger_error = str(exc)
            return False
        if self._ledger_error and self._pending:
            logger.warning(
                "venue ledger %s writable again: %d held records written", self.ledger_path, len(self._pending)
            )
        self._pending, self._ledger_error = [], None
        return True

    # -- account --------------------------------------------------------------------------
    def account(self) -> dict:
        assets = sorted(set(self.free) | set(self.locked))
        return {a: (self.free.get(a, 0.0), self.locked.get(a, 0.0)) for a in assets}

    # -- orders ---------------------------------------------------------------------------
    def place(self, p: dict[str, str]) -> Order:
        symbol = p.get("symbol") or ""
        pair, m = self.market(symbol)
        side, otype = p.get("side", "").upper(), p.get("type", "").upper()
        if side not in ("BUY", "SELL"):
            raise BinanceError(-1117, "Invalid side.")
        if otype not in ORDER_TYPES:
            raise BinanceError(-1116, "Invalid orderType.")
        tif = p.get("timeInForce", "GTC" if otype != "MARKET" else "")
        if otype != "MARKET" and tif not in TIME_IN_FORCE:
            raise BinanceError(-1115, "Invalid timeInForce.")
        qty = _number(p, "quantity")
        price = _number(p, "price") if otype != "MARKET" else 0.0
        stop = _number(p, "stopPrice") if otype == "STOP_LOSS_LIMIT" else 0.0
        if qty < (m.min_qty or m.step_size) or qty > MAX_QTY or not _on_grid(qty, m.step_size):
            raise BinanceError(-1013, "Filter failure: LOT_SIZE")
        for px in (price, stop):
            if px and (px < m.tick_size or px > MAX_PRICE or not _on_grid(px, m.tick_size)):
                raise BinanceError(-1013, "Filter failure: PRICE_FILTER")
        if price:  # Binance's PERCENT_PRICE_BY_SIDE against the recent average price (as exchangeInfo states)
            avg = self._avg_price(pair)
            lo, hi = PERCENT_PRICE_BY_SIDE
            if not avg * lo <= price <= avg * hi:
                raise BinanceError(-1013, "Filter failure: PERCENT_PRICE_BY_SIDE")
        book = self.book_fn(symbol, 20)
        ref = price or (book.best_ask if side == "BUY" else book.best_bid)
        if qty * ref < m.min_notional:
            raise BinanceError(-1013, "Filter failure: NOTIONAL")
        client_id = p.get("newClientOrderId") or f"sim{self._next_order}"
        open_here = [o for o in self.orders.values() if o.is_open and o.symbol == symbol]
        if any(o.client_order_id == client_id for o in self.orders.values() if o.is_open):
            raise BinanceError(-2010, "Duplicate order sent.")
        # the limits exchangeInfo advertises, per symbol (Binance counts stops as algo orders)
        if len(open_here) >= MAX_NUM_ORDERS:
            raise BinanceError(-1013, "Filter failure: MAX_NUM_ORDERS")
        if otype == "STOP_LOSS_LIMIT" and sum(o.type == "STOP_LOSS_LIMIT" for o in open_here) >= MAX_NUM_ALGO_ORDERS:
            raise BinanceError(-1013, "Filter failure: MAX_NUM_ALGO_ORDERS")
        if self.ledger_path and not self._flush():  # accept nothing the record cannot follow
            raise BinanceError(-1001, "Internal error; unable to process your request. Please try again.", 503)
        # Funds: limit/stop orders lock what they may spend; market buys must afford the walk.
        impact_args = self._impact_args(pair)  # the day's volume and volatility, once per order
        if side == "SELL":
            if self.free.get(m.base, 0.0) < qty - 1e-12:
                raise _insufficient()
            self._move(m.base, -qty, +qty)
        elif otype == "MARKET":
            est = taker_fill(book, "BUY", qty, impact=self.params.impact, **impact_args)
            if self.free.get(m.quote, 0.0) < est.notional - 1e-9:
                raise _insufficient()
        else:
            cost = qty * price
            if self.free.get(m.quote, 0.0) < cost - 1e-9:
                raise _insufficient()
            self._move(m.quote, -cost, +cost)
        now = self.clock.now_ms()
        order = Order(
            order_id=self._next_order,
            client_order_id=client_id,
            symbol=symbol,
            pair=pair,
            side=side,
            type=otype,
            qty=qty,
            price=price,
            stop_price=stop,
            time_in_force=tif or "GTC",
            time=now,
            update_time=now,
            last_check=self.data_now(),
        )
        self._next_order += 1
        self.orders[order.order_id] = order
        self._log("new", order)
        if otype != "STOP_LOSS_LIMIT":
            self._take(order, book, impact_args)
        self._log("update", order)
        if order.is_open and self.on_rest is not None:
            self.on_rest()
        return order

    def _avg_price(self, pair: str) -> float:
        """Binance's avgPrice: the average over the last `avgPriceMins` (5) minutes, as formed so far."""
        win = self.store.window(pair, self.data_now(), 5 * 60_000)
        return float(np.mean(win.close))

    def _impact_args(self, pair: str) -> dict:
        notional, vol = self._daily(pair)
        return {"daily_notional": notional, "daily_volatility": vol}

    def _take(self, order: Order, book: OrderBook, impact_args: dict | None = None) -> None:
        """Immediate taker part of an order; then IOC/FOK/MARKET remainders expire."""
        limit = order.price if order.type != "MARKET" else None
        impact_args = impact_args if impact_args is not None else self._impact_args(order.pair)
        fill = taker_fill(
            book, order.side, order.remaining, limit_price=limit, impact=self.params.impact, **impact_args
        )
        if order.time_in_force == "FOK" and fill.qty < order.remaining - 1e-12:
            self._close(order, "EXPIRED")
            return
        if fill.qty > 0:
            self._book_trade(order, fill.qty, fill.price, fill.book_price, maker=False, mid=book.mid)
        if order.remaining > 1e-12 and (order.type == "MARKET" or order.time_in_force == "IOC"):
            self._close(order, "EXPIRED")

    def _book_trade(self, order: Order, qty: float, price: float, book_price: float, maker: bool, mid: float) -> None:
        _, m = self.market(order.symbol)
        fee_rate = self.params.maker_fee if maker else self.params.taker_fee
        now = self.clock.now_ms()
        if order.side == "BUY":
            commission, asset = qty * fee_rate, m.base
            if order.type == "MARKET":
                self._move(m.quote, free=-qty * price)
            else:  # locked at the limit; refund any price improvement
                self._move(m.quote, free=qty * (order.price - price), locked=-qty * order.price)
            self._move(m.base, free=qty - commission)
        else:
            commission, asset = qty * price * fee_rate, m.quote
            self._move(m.base, locked=-qty)
            self._move(m.quote, free=qty * price - commission)
        trade = Trade(
            self._next_trade,
            order.order_id,
            order.symbol,
            order.side,
            price,
            qty,
            commission,
            asset,
            now,
            maker,
            book_price,
        )
        self._next_trade += 1
        order.trades.append(trade)
        order.executed_qty += qty
        order.cum_quote += qty * price
        order.update_time = now
        order.status = "FILLED" if order.remaining <= 1e-12 else "PARTIALLY_FILLED"
        if self.on_trade:
            self.on_trade(order, trade, mid)

    def _close(self, order: Order, status: str) -> None:
        _, m = self.market(order.symbol)
        rest = order.remaining
        if order.type != "MARKET" and rest > 0:
            if order.side == "SELL":
                self._move(m.base, free=rest, locked=-rest)
            else:
                self._move(m.quote, free=rest * order.price, locked=-rest * order.price)
        elif order.side == "SELL" and rest > 0:  # market sell: the base was locked at placement
            self._move(m.base, free=rest, locked=-rest)
        order.status = status
        order.update_time = self.clock.now_ms()

    def cancel(self, p: dict[str, str]) -> Order:
        order = self.find(p, unknown=(-2011, "Unknown order sent."))
        if not order.is_open:
            raise BinanceError(-2011, "Unknown order sent.")
        self._close(order, "CANCELED")
        self._log("cancel", order)
        return order

    def find(self, p: dict[str, str], unknown: tuple[int, str] = (-2013, "Order does not exist.")) -> Order:
        symbol = p.get("symbol") or ""
        self.market(symbol)
        oid, cid = p.get("orderId"), p.get("origClientOrderId")
        if not oid and not cid:
            raise BinanceError(-1102, "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!")
        # newest first: a client order id reused after its first order closed names the newer order
        for o in reversed(self.orders.values()):
            if o.symbol == symbol and ((oid and str(o.order_id) == oid) or (cid and o.client_order_id == cid)):
                return o
        raise BinanceError(*unknown)

    def open_orders(self, symbol: str | None = None) -> list[Order]:
        if symbol:
            self.market(symbol)
        return [o for o in self.orders.values() if o.is_open and (not symbol or o.symbol == symbol)]

    def all_orders(self, symbol: str) -> list[Order]:
        self.market(symbol)
        return [o for o in self.orders.values() if o.symbol == symbol]

    def trades(self, symbol: str) -> list[Trade]:
        self.market(symbol)
        return [t for o in self.orders.values() if o.symbol == symbol for t in o.trades]

    # -- matching -------------------------------------------------------------------------
    @staticmethod
    def _level(order: Order) -> tuple[float, bool]:
        """The price at which a resting order can next fill or trigger, and whether the market must come
        down to it (True) or up."""
        if order.type == "STOP_LOSS_LIMIT" and order.triggered_time is None:
            return order.stop_price, order.side == "SELL"
        return order.price, order.side == "BUY"

    def next_match(self, horizon_ms: int = MATCH_HORIZON_MS) -> tuple[int, int] | None:
        """When the matcher must next look (data time) and up to when no resting order can have filled,
        or None while nothing rests. It answers what polling every `match_interval_ms` from now would
        see: the first poll at or after the earliest time the price path reaches a resting order's level
        (searched `horizon_ms` ahead), with the polls before it known to find nothing. Pass the second
        value to `match(quiet_until=...)`. On a session clock each poll is a stop, so an order resting
        far from the market costs one stop per horizon instead of ten per second."""
        resting = [o for o in self.orders.values() if o.is_open and o.type != "MARKET"]
        if not resting:
            return None
        now, step = self.data_now(), max(1, int(self.params.match_interval_ms))
        horizon = now + max(step, int(horizon_ms))
        first = horizon
        for order in resting:
            level, below = self._level(order)
            hit = self.store.first_reach(order.pair, order.last_check, horizon, level, below)
            if hit is not None:
                first = min(first, hit)
        wake = now + step * max(1, math.ceil((first - now) / step))
        return wake, min(wake - step, first - 1)

    def match(self, quiet_until: int | None = None) -> int:
        """Match resting orders against the market traded since their last check; returns fills.
        `quiet_until` (from `next_match`): data time before which no resting order could fill."""
        now_data = self.data_now()
        fills = 0
        for order in [o for o in self.orders.values() if o.is_open]:
            t0, order.last_check = order.last_check, now_data
            if quiet_until is not None:
                t0 = max(t0, min(quiet_until, now_data))
            if now_data <= t0:
                continue
            low, high, volume = self.store.traded_range(order.pair, t0, now_data)
            before = len(order.trades)
            if order.type == "STOP_LOSS_LIMIT" and order.triggered_time is None:
                hit = low <= order.stop_price if order.side == "SELL" else high >= order.stop_price
                if hit:
                    order.triggered_time = self.clock.now_ms()
                    self._take(order, self.book_fn(order.symbol, 20))
            elif order.type != "MARKET":
                # one look per finest candle: the queue model's chance is per candle the price touched,
                # however often the matcher happened to poll (or how far a session clock jumped)
                for s0, s1, candle in self._candle_segments(order.pair, t0, now_data):
                    low, high, volume = (
                        self.store.traded_range(order.pair, s0, s1)
                        if (s0, s1) != (t0, now_data)
                        else (low, high, volume)
                    )
                    filled = self.params.queue.fills(order.side, order.price, low, high, order.order_id, candle)
                    cap = self.params.max_participation * volume
                    if filled and cap > 0:
                        self._book_trade(
                            order, min(order.remaining, cap), order.price, order.price, maker=True, mid=order.price
                        )
                    if not order.is_open:
                        break
            if len(order.trades) != before or not order.is_open:
                fills += len(order.trades) - before
                self._log("update", order)
        return fills

    def _candle_segments(self, pair: str, t0: int, t1: int) -> list[tuple[int, int, int]]:
        """[t0, t1) cut at the finest series' candle boundaries: (start, end, that candle's open time)."""
        step = interval_ms(self.store.price_series(pair, t1).interval)
        out, a = [], t0
        while a < t1:
            candle = a - a % step
            b = min(t1, candle + step)
            out.append((a, b, candle))
            a = b
        return out

    def records(self) -> list[dict]:
        return [o.record() for o in self.orders.values()]


NUMBER = re.compile(r"[0-9]+(\.[0-9]*)?|\.[0-9]+")


def _number(p: dict[str, str], name: str) -> float:
    raw = p.get(name)
    if raw is None or raw == "":
        raise BinanceError(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")
    # Binance's grammar: digits with at most one dot (Python's float() also takes "0.00_1", " 1", "1e3")
    if not NUMBER.fullmatch(raw):
        raise BinanceError(-1100, f"Illegal characters found in parameter '{name}'.")
    value = float(raw)
    if not math.isfinite(value) or value <= 0:
        raise BinanceError(-1013, f"Invalid {name}.")
    return value
