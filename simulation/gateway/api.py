"""Binance spot public REST API answered from a CandleStore and a Clock (no HTTP here).

Why a pure layer: the responses (shapes, error codes, kline window semantics) are tested directly,
and the HTTP server stays a thin adapter.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import numpy as np
import pandas as pd

from simulation.book import BookParams, OrderBook, synthesize_book, volatility_ratio
from simulation.clock import Clock
from simulation.marketdata.spread import daily_spreads
from simulation.marketdata.store import Candle, CandleStore, NoPriceYet
from simulation.markets import MarketSpec, on_tick
from simulation.timeframes import DAY_MS, INTERVAL_MS, interval_ms
from simulation.venue.engine import (
    MAX_NUM_ALGO_ORDERS,
    MAX_NUM_ORDERS,
    MAX_PRICE,
    MAX_QTY,
    PERCENT_PRICE_BY_SIDE,
)
from simulation.wire import BinanceError, Params, fmt_num, invalid_symbol

KLINES_DEFAULT_LIMIT, KLINES_MAX_LIMIT = 500, 1000
DEPTH_DEFAULT_LIMIT, DEPTH_MAX_LIMIT = 100, 5000


MAX_CACHED_ROWS = 5_000  # formatted kline rows kept per pair and interval


class BinanceSpotAPI:
    """The public market-data endpoints freqtrade (through ccxt's binance) calls."""

    def __init__(self, store: CandleStore, clock: Clock, book_params: BookParams | None = None) -> None:
        self.store = store
        self.clock = clock
        self.book_params = book_params or BookParams()
        self._by_symbol: dict[str, str] = {m.symbol: pair for pair, m in store.markets.items()}
        self._rows: dict[tuple[str, str], dict[int, list]] = {}
        self._book_stats: dict[tuple[str, int], tuple[float, float]] = {}
        self._spreads: dict[str, object] = {}  # pair -> per-day Corwin-Schultz estimates

    # -- helpers ---------------------------------------------------------------------------
    def _pair(self, symbol: str) -> str:
        try:
            return self._by_symbol[symbol]
        except KeyError:
            raise invalid_symbol() from None

    def _market(self, symbol: str) -> MarketSpec:
        return self.store.markets[self._pair(symbol)]

    def _symbols(self, params: Params) -> list[str] | None:
        """None for 'all symbols'; validates symbol / symbols like Binance."""
        symbol, symbols = params.raw.get("symbol"), params.raw.get("symbols")
        if symbol and symbols:
            raise BinanceError(-1128, "Combination of optional parameters invalid.")
        if symbol:
            self._pair(symbol)
            return [symbol]
        if symbols:
            try:
                parsed = json.loads(symbols)
            except (json.JSONDecodeError, RecursionError):
                raise BinanceError(-1100, "Illegal characters found in parameter 'symbols'.") from None
            if not isinstance(parsed, list) or not all(isinstance(s, str) for s in parsed):
                raise BinanceError(-1100, "Illegal characters found in parameter 'symbols'.")
            if len(set(parsed)) != len(parsed):  # Binance refuses them; served, 450 copies stalled the loop
                raise BinanceError(-1101, "Duplicate values for a parameter detected.")
            for s in parsed:
                self._pair(s)
            return parsed
        return None

    def _one_or_all(self, params: Params, build) -> dict | list:
        symbols = self._symbols(params)
        if symbols is not None and "symbol" in params.raw:
            return build(symbols[0])
        out = []
        for s in symbols or list(self._by_symbol):
            try:
                out.append(build(s))
            except NoPriceYet:  # a pair whose history starts later: not trading yet, not listed here
                continue
        return out

    # -- endpoints -------------------------------------------------------------------------
    def ping(self, raw: Mapping[str, str]) -> dict:
        return {}

    def time(self, raw: Mapping[str, str]) -> dict:
        return {"serverTime": self.clock.now_ms()}

    def exchange_info(self, raw: Mapping[str, str]) -> dict:
        symbols = self._symbols(Params(raw)) or list(self._by_symbol)
        return {
            "timezone": "UTC",
            "serverTime": self.clock.now_ms(),
            "rateLimits": [
                {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000},
                {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
                {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": 200000},
            ],
            "exchangeFilters": [],
            "symbols": [self._symbol_info(self._market(s)) for s in symbols],
        }

    @staticmethod
    def _symbol_info(m: MarketSpec) -> dict:
        return {
            "symbol": m.symbol,
            "status": "TRADING",
            "baseAsset": m.base,
            "baseAssetPrecision": 8,
            "quoteAsset": m.quote,
            "quotePrecision": 8,
            "quoteAssetPrecision": 8,
            "baseCommissionPrecision": 8,
            "quoteCommissionPrecision": 8,
            "orderTypes": [
                "LIMIT",
                "LIMIT_MAKER",
                "MARKET",
                "STOP_LOSS",
                "STOP_LOSS_LIMIT",
                "TAKE_PROFIT",
                "TAKE_PROFIT_LIMIT",
            ],
            "icebergAllowed": True,
            "ocoAllowed": True,
            "otoAllowed": True,
            "quoteOrderQtyMarketAllowed": True,
            "allowTrailingStop": True,
            "cancelReplaceAllowed": True,
            "isSpotTradingAllowed": True,
            "isMarginTradingAllowed": False,
            "filters": [
                {
                    "filterType": "PRICE_FILTER",
                    "minPrice": fmt_num(m.tick_size),
                    "maxPrice": fmt_num(MAX_PRICE),
                    "tickSize": fmt_num(m.tick_size),
                },
                {
                    "filterType": "LOT_SIZE",
                    "minQty": fmt_num(m.min_qty or m.step_size),
                    "maxQty": fmt_num(MAX_QTY),
                    "stepSize": fmt_num(m.step_size),
                },
                {"filterType": "ICEBERG_PARTS", "limit": 10},
                {
                    "filterType": "MARKET_LOT_SIZE",
                    "minQty": "0.00000000",
                    "maxQty": "1000000.00000000",
                    "stepSize": "0.00000000",
                },
                {
                    "filterType": "TRAILING_DELTA",
                    "minTrailingAboveDelta": 10,
                    "maxTrailingAboveDelta": 2000,
                    "minTrailingBelowDelta": 10,
                    "maxTrailingBelowDelta": 2000,
                },
                {
                    "filterType": "PERCENT_PRICE_BY_SIDE",
                    "bidMultiplierUp": fmt_num(PERCENT_PRICE_BY_SIDE[1]),
                    "bidMultiplierDown": fmt_num(PERCENT_PRICE_BY_SIDE[0]),
                    "askMultiplierUp": fmt_num(PERCENT_PRICE_BY_SIDE[1]),
                    "askMultiplierDown": fmt_num(PERCENT_PRICE_BY_SIDE[0]),
                    "avgPriceMins": 5,
                },
                {
                    "filterType": "NOTIONAL",
                    "minNotional": fmt_num(m.min_notional),
                    "applyMinToMarket": True,
                    "maxNotional": "9000000.00000000",
                    "applyMaxToMarket": False,
                    "avgPriceMins": 5,
                },
                {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": MAX_NUM_ORDERS},
                {"filterType": "MAX_NUM_ALGO_ORDERS", "maxNumAlgoOrders": MAX_NUM_ALGO_ORDERS},
            ],
            "permissions": [],
            "permissionSets": [["SPOT"]],
            "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
            "allowedSelfTradePreventionModes": ["NONE", "EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
        }

    def klines(self, raw: Mapping[str, str]) -> list[list]:
        p = Params(raw)
        symbol = p.required("symbol")
        interval = p.required("interval")
        pair = self._pair(symbol)
        if interval not in INTERVAL_MS:
            raise BinanceError(-1120, "Invalid interval.")
        if not self.store.supports(pair, interval):
            finest = self.store.native_timeframes(pair)[0]
            raise BinanceError(-1120, f"Invalid interval. (data for {symbol} is {finest} or coarser)")
        limit = p.limit(KLINES_DEFAULT_LIMIT, KLINES_MAX_LIMIT)
        start, end = p.integer("startTime"), p.integer("endTime")
        if start is not None and end is not None and start > end:
            raise BinanceError(-1023, "Start time is greater than end time.")
        to_data = self.clock.to_data
        # One "now" for both the candles and what counts as closed: read twice, a candle still forming at
        # the first read could close by the second and be cached, partial, as closed for good.
        cutoff = self.clock.data_now()
        candles = self.store.candles(
            pair,
            interval,
            cutoff,
            start=None if start is None else to_data(start),
            end=None if end is None else to_data(end),
            limit=limit,
        )
        # Closed candles never change: format each once (a bot re-reads the same history all day).
        cache = self._rows.setdefault((pair, interval), {})
        rows = []
        for c in candles:
            if cutoff is not None and c.close_time >= cutoff:  # still forming
                rows.append(self._kline_row(c))
                continue
            row = cache.get(c.open_time)
            if row is None:
                row = cache[c.open_time] = self._kline_row(c)
            rows.append(row)
        while len(cache) > MAX_CACHED_ROWS:  # bounded: oldest formatted first out
            cache.pop(next(iter(cache)))
        return rows

    def _kline_row(self, c: Candle) -> list:
        shift = self.clock.shift_ms
        qv = c.quote_volume
        return [
            c.open_time + shift,
            fmt_num(c.open),
            fmt_num(c.high),
            fmt_num(c.low),
            fmt_num(c.close),
            fmt_num(c.volume),
            c.close_time + shift,
            fmt_num(round(qv, 8)),
            max(1, int(qv // 500)),
            fmt_num(round(c.volume / 2, 8)),
            fmt_num(round(qv / 2, 8)),
            "0",
        ]

    def ticker_24hr(self, raw: Mapping[str, str]) -> dict | list:
        return self._one_or_all(Params(raw), self._ticker_24hr)

    def _ticker_24hr(self, symbol: str) -> dict:
        pair = self._pair(symbol)
        data_now = self.clock.data_now()
        last = self.store.last_candle(pair, data_now)
        win = self.store.window(pair, data_now, DAY_MS)
        book = self._book(symbol, 5)
        high = max(float(win.high.max()), last.high)
        low = min(float(win.low.min()), last.low)
        volume = float(win.volume.sum())
        quote = float(win.quote_volume.sum())
        open_ = float(win.open[0])
        close_ms = self.clock.now_ms() if data_now is not None else self.clock.to_exchange(last.close_time)
        m = self._market(symbol)
        return {
            "symbol": symbol,
            "priceChange": fmt_num(round(last.close - open_, 8)),
            "priceChangePercent": f"{(last.close / open_ - 1) * 100:.3f}",
            "weightedAvgPrice": fmt_num(round(quote / volume, 8) if volume > 0 else last.close),
            "prevClosePrice": fmt_num(float(win.close[0])),
            "lastPrice": fmt_num(on_tick(last.close, m.tick_size)),
            "lastQty": fmt_num(m.step_size),
            "bidPrice": fmt_num(book.best_bid),
            "bidQty": fmt_num(book.bids[0][1]),
            "askPrice": fmt_num(book.best_ask),
            "askQty": fmt_num(book.asks[0][1]),
            "openPrice": fmt_num(open_),
            "highPrice": fmt_num(high),
            "lowPrice": fmt_num(low),
            "volume": fmt_num(round(volume, 8)),
            "quoteVolume": fmt_num(round(quote, 8)),
            "openTime": close_ms - DAY_MS,
            "closeTime": close_ms,
            "firstId": 1,
            "lastId": max(1, int(quote // 500)),
            "count": max(1, int(quote // 500)),
        }

    def ticker_price(self, raw: Mapping[str, str]) -> dict | list:
        def build(symbol: str) -> dict:
            last = self.store.last_candle(self._pair(symbol), self.clock.data_now())
            return {"symbol": symbol, "price": fmt_num(on_tick(last.close, self._market(symbol).tick_size))}

        return self._one_or_all(Params(raw), build)

    def book_ticker(self, raw: Mapping[str, str]) -> dict | list:
        def build(symbol: str) -> dict:
            b = self._book(symbol, 5)
            return {
                "symbol": symbol,
                "bidPrice": fmt_num(b.bids[0][0]),
                "bidQty": fmt_num(b.bids[0][1]),
                "askPrice": fmt_num(b.asks[0][0]),
                "askQty": fmt_num(b.asks[0][1]),
            }

        return self._one_or_all(Params(raw), build)

    def depth(self, raw: Mapping[str, str]) -> dict:
        p = Params(raw)
        symbol = p.required("symbol")
        self._pair(symbol)
        limit = p.limit(DEPTH_DEFAULT_LIMIT, DEPTH_MAX_LIMIT)
        book = self._book(symbol, limit)
        return {
            "lastUpdateId": self.clock.now_ms(),
            "bids": [[fmt_num(px), fmt_num(q)] for px, q in book.bids],
            "asks": [[fmt_num(px), fmt_num(q)] for px, q in book.asks],
        }

    def book(self, symbol: str, limit: int = 20) -> OrderBook:
        """The current synthetic book (also used by the simulator's execution models)."""
        return self._book(symbol, limit)

    def _book(self, symbol: str, limit: int) -> OrderBook:
        pair = self._pair(symbol)
        relayed = getattr(self.store, "books", {}).get(pair)  # an upstream relay's live book, as relayed
        if relayed is not None:
            return OrderBook(relayed.bids[:limit], relayed.asks[:limit])
        data_now = self.clock.data_now()
        last = self.store.last_candle(pair, data_now)
        key = (pair, last.open_time)  # the day's volume and volatility move once per candle
        stats = self._book_stats.get(key)
        if stats is None:
            hist = self.store.window(pair, data_now, DAY_MS)
            per_candle = float(np.mean(hist.volume)) if len(hist) else last.volume
            stats = self._book_stats[key] = (per_candle, volatility_ratio(hist.close))
            if len(self._book_stats) > 4096:
                self._book_stats.clear()
        per_candle, vol_ratio = stats
        depth_factor, spread_factor = self.store.liquidity_at(data_now)
        return synthesize_book(
            self._market(symbol),
            last.close,
            per_candle,
            vol_ratio=vol_ratio,
            depth_factor=depth_factor,
            spread_factor=spread_factor,
            limit=limit,
            seed_key=last.open_time // interval_ms("1m"),
            params=self.book_params,
            spread=self._calibrated_spread(pair, last.open_time),
        )

    def _calibrated_spread(self, pair: str, t: int) -> float | None:
        """The previous UTC day's OHLC spread estimate (None: the fixed base spread)."""
        if self.book_params.spread_model != "corwin_schultz":
            return None
        if pair not in self._spreads:
            s = self.store.price_series(pair)
            dates = pd.to_datetime(s.open_time, unit="ms", utc=True)
            self._spreads[pair] = daily_spreads(pd.Series(dates), s.high, s.low)
        days = self._spreads[pair]
        i = int(days.index.searchsorted(pd.Timestamp(t, unit="ms", tz="UTC"), side="right")) - 1
        value = float(days.iloc[i]) if i >= 0 else float("nan")
        return value if np.isfinite(value) and value > 0 else None
