"""Upstream relay: live candles and books from a real exchange (ccxt), served through the gateway's
Binance-compatible API and streams, and recorded as they are relayed.

Why: paper trading on a live market must run the same code path as the simulator (the gateway,
its venue, its streams), and a session on live data must be replayable afterwards over exactly the
candles it saw. The relay polls the upstream (`fetch_ohlcv` per pair and timeframe, `fetch_order_book`)
and keeps, per pair and native timeframe, the closed candles plus the upstream's forming candle as it
was at the last poll (served as-is: no path model, it is real). Each closed candle is written to
`<record_dir>/<PAIR>-<tf>.feather` through freqtrade's own feather handler (so `freqtrade backtesting
--datadir <record_dir>` reads it), each book snapshot to `<record_dir>/books/<PAIR>.jsonl`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import asdict
from pathlib import Path

import ccxt
import numpy as np
import pandas as pd

from simulation.book import OrderBook
from simulation.clock import Clock, wall_ms
from simulation.marketdata.sources import OHLCV, DataSource, DataSourceError
from simulation.marketdata.store import Candle, CandleSeries, CandleStore
from simulation.markets import MARKETS_FILE, MarketSpec, split_pair
from simulation.timeframes import interval_ms

logger = logging.getLogger("simulation.relay")
UPSTREAMS = ("binance", "coinbase", "kraken")


def make_exchange(exchange_id: str, url: str | None = None, timeout_s: float = 10.0):
    """The ccxt async client of the upstream; `url` points a binance client at another gateway (tests).
    `timeout_s` is on the process clock (an accelerated session scales it)."""
    import ccxt.async_support as ccxt_async

    if exchange_id not in UPSTREAMS:
        raise DataSourceError(f"--upstream must be one of {UPSTREAMS}, got {exchange_id!r}")
    config: dict = {"enableRateLimit": True, "timeout": int(timeout_s * 1000)}
    if url:
        if exchange_id != "binance":
            raise DataSourceError("--upstream-url is for a Binance-compatible upstream (another gateway)")
        config["urls"] = {
            "api": {
                k: f"{url}{p}"
                for k, p in (("public", "/api/v3"), ("private", "/api/v3"), ("v1", "/api/v1"), ("sapi", "/sapi/v1"))
            }
        }
        config["options"] = {"fetchMarkets": {"types": ["spot"]}}
    return getattr(ccxt_async, exchange_id)(config)


def _frame(rows: list[list]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=OHLCV)
    df["date"] = pd.to_datetime(df["date"], unit="ms", utc=True)
    return df.astype({c: float for c in OHLCV[1:]})


class RelaySource(DataSource):
    """The history fetched at start: what CandleStore is built from."""

    def __init__(self, frames: dict[str, dict[str, pd.DataFrame]], markets: dict[str, MarketSpec], name: str) -> None:
        self.frames, self.markets, self.name = frames, markets, name

    def pairs(self) -> list[str]:
        return list(self.frames)

    def timeframes(self, pair: str) -> list[str]:
        return list(self.frames[pair])

    def load(self, pair: str, timeframe: str) -> pd.DataFrame:
        return self.frames[pair][timeframe]

    def market(self, pair: str) -> MarketSpec:
        return self.markets[pair]

    def describe(self) -> str:
        return f"upstream relay from {self.name} ({', '.join(self.pairs())})"


class RelayClock(Clock):
    """Live: the upstream's clock (wall clock plus the offset its serverTime showed at the last poll)."""

    def __init__(self) -> None:
        self.offset_ms = 0

    def now_ms(self) -> int:
        return wall_ms() + self.offset_ms

    def data_now(self) -> int | None:
        return self.now_ms()

    @property
    def shift_ms(self) -> int:
        return 0

    def describe(self) -> str:
        return "live (upstream relay: wall clock)"


class LiveCandleStore(CandleStore):
    """Closed candles in arrays (replaced as candles close), plus the upstream's forming candle as-is."""

    def __init__(self, source: RelaySource) -> None:
        super().__init__(source)
        self.forming: dict[tuple[str, str], Candle] = {}
        self.books: dict[str, OrderBook] = {}
        # per pair, what each poll saw of the finest timeframe's forming candle: (time, close, high, low,
        # volume, open time); the venue's matching reads the market traded between two polls from it
        self.ticks: dict[str, list[tuple[int, float, float, float, float, int]]] = {}

    def update(self, pair: str, tf: str, rows: list[list], now: int, arrived: int | None = None) -> list[list]:
        """Merge upstream rows, oldest first; returns the newly closed ones. As on any exchange the last
        row is the forming candle unless the upstream's clock (`now`) is past its close; every earlier
        row is closed (so the rule holds whatever the upstream's clock speed).

        Ticks (what the venue matches against) are stamped `arrived`, when the relay learned them (its
        own clock, default `now`): the venue matches on what has arrived, so a price stamped with the
        upstream's earlier time would land behind orders already checked past it, and never fill them."""
        arrived = now if arrived is None else arrived
        step = interval_ms(tf)
        closed = rows[:-1] + [r for r in rows[-1:] if r[0] + step <= now]
        series = self._native[pair][tf]
        last = int(series.open_time[-1]) if len(series) else -1
        new = [r for r in closed if r[0] > last]
        if new:
            add = CandleSeries.from_frame(tf, _frame(new))
            self._native[pair][tf] = CandleSeries(
                tf,
                *(
                    np.concatenate([getattr(series, f), getattr(add, f)])
                    for f in ("open_time", "open", "high", "low", "close", "volume")
                ),
            )
            for key in [k for k in self._derived if k[0] == pair]:
                del self._derived[key]
        finest = tf == self.native_timeframes(pair)[0]
        ticks = self.ticks.setdefault(pair, [])
        if finest and ticks:
            # a candle that closed since the last poll traded its final extremes in between (the last
            # poll's candle, or one that opened and closed between two polls): its final state
            for r in new:
                if r[0] >= ticks[-1][5]:
                    ticks.append((arrived, float(r[4]), float(r[2]), float(r[3]), float(r[5]), int(r[0])))
        if rows and rows[-1] not in closed:
            r = rows[-1]
            self.forming[(pair, tf)] = Candle(int(r[0]), *(float(v) for v in r[1:6]), int(r[0]) + step - 1)
            if finest:
                ticks.append((arrived, float(r[4]), float(r[2]), float(r[3]), float(r[5]), int(r[0])))
        del ticks[:-10_000]  # bounded
        return new

    def traded_range(self, pair: str, t0: int, t1: int) -> tuple[float, float, float]:
        """(low, high, volume) traded between t0 and t1, at poll resolution: each poll's price, plus a new
        high or low of the forming candle since the previous poll (it traded in between), and the
        candle's volume growth; a candle that opened since the previous poll traded all of its range in
        between, and a candle that closed since counts with its final state. Nothing arrived in between:
        the last price, no volume."""
        ticks = self.ticks.get(pair) or []
        seen, prices, volume = None, [], 0.0
        for tick in ticks:
            t, close, high, low, vol, opened = tick
            if t0 < t <= t1:
                prices.append(close)
                if seen is not None and seen[5] == opened:
                    if high > seen[2]:
                        prices.append(high)
                    if low < seen[3]:
                        prices.append(low)
                    volume += max(0.0, vol - seen[4])
                elif seen is not None:  # opened after the previous poll: its whole range so far is new
                    prices += [high, low]
                    volume += vol
            if t <= t1:
                seen = tick
        if not prices:
            px = self.last_candle(pair, t1).close
            return px, px, 0.0
        return min(prices), max(prices), volume

    def first_reach(self, pair: str, t0: int, t1: int, level: float, below: bool) -> int | None:
        """A live market's path ahead is unknown: it could be there now (the matcher polls)."""
        return t0

    def candles(self, pair, interval, data_now, start=None, end=None, limit=500):
        closed = super().candles(pair, interval, None, start=start, end=end, limit=limit)
        forming = self.forming.get((pair, interval))
        if (
            forming is None
            or (end is not None and forming.open_time > end)
            or (closed and forming.open_time <= closed[-1].open_time)
        ):
            return closed
        if start is not None and forming.open_time < start:
            return closed
        out = [*closed, forming]
        return out[-limit:] if start is None else out[:limit]

    def last_candle(self, pair: str, data_now: int | None) -> Candle:
        tf = self.native_timeframes(pair)[0]
        got = self.candles(pair, tf, data_now, limit=1)
        return got[-1] if got else super().last_candle(pair, None)


class UpstreamRelay:
    """Fetches history at start, then polls the upstream and records what it relays."""

    def __init__(
        self,
        exchange_id: str,
        pairs: list[str],
        timeframes: list[str],
        record_dir: Path | None,
        url: str | None = None,
        history: int = 1000,
        poll_s: float = 2.0,
        book_levels: int = 20,
        timeout_s: float = 10.0,
    ) -> None:
        self.exchange_id, self.pairs, self.timeframes = exchange_id, list(pairs), list(timeframes)
        self.record_dir = Path(record_dir) if record_dir else None
        self.url, self.history, self.poll_s, self.book_levels = url, history, poll_s, book_levels
        self.timeout_s = timeout_s
        self.store: LiveCandleStore | None = None
        self.exchange = None
        self.recorded = 0
        self.clock = RelayClock()
        self._clock_samples: list[tuple[int, int]] = []  # (round trip, offset) of the recent polls

    async def open(self) -> LiveCandleStore:
        self.exchange = make_exchange(self.exchange_id, self.url, self.timeout_s)
        markets = await self.exchange.load_markets()
        missing = [p for p in self.pairs if p not in markets]
        if missing:
            await self.exchange.close()
            raise DataSourceError(f"upstream {self.exchange_id} does not list {missing}")
        specs = {p: self._spec(p, markets[p]) for p in self.pairs}
        frames: dict[str, dict[str, pd.DataFrame]] = {}
        now = await self._sync_clock()
        for pair in self.pairs:
            frames[pair] = {}
            for tf in self.timeframes:
                closed = await self._history(pair, tf, now)
                if not closed:
                    raise DataSourceError(f"upstream {self.exchange_id} returned no closed {tf} candle for {pair}")
                frames[pair][tf] = _frame(closed)
        self.store = LiveCandleStore(RelaySource(frames, specs, self.exchange_id))
        self._record_markets(specs)
        for pair in self.pairs:
            for tf in self.timeframes:
                self._record(pair, tf)
        await self.poll_once()
        return self.store

    async def _sync_clock(self) -> int:
        """The upstream's time now (ccxt fetch_time), and the relay clock's offset to it: as NTP does,
        the offset of the fastest of the recent round trips (a slow one's midpoint can be far off)."""
        t0 = wall_ms()
        server = int(await self.exchange.fetch_time())
        t1 = wall_ms()
        self._clock_samples.append((t1 - t0, server - (t0 + t1) // 2))
        del self._clock_samples[:-30]
        self.clock.offset_ms = min(self._clock_samples)[1]
        return server

    async def _history(self, pair: str, tf: str, now: int) -> list[list]:
        """The candles closed by `now` (the upstream's time before the first page). A page's last row may
        be the candle forming when that page was fetched: a later page makes it look closed, partial;
        candles after `now` come with the first poll instead."""
        step = interval_ms(tf)
        since = (now // step - self.history) * step  # the last `history` closed candles
        rows: list[list] = []
        while len(rows) < self.history + 1:
            page = await self.exchange.fetch_ohlcv(pair, tf, since=since, limit=1000)
            if not page:
                break
            rows += [r for r in page if not rows or r[0] > rows[-1][0]]
            if len(page) < 1000:
                break
            since = page[-1][0] + step
        return [r for r in rows if r[0] + step <= now]

    @staticmethod
    def _spec(pair: str, market: dict) -> MarketSpec:
        base, quote = split_pair(pair)
        precision, limits = market.get("precision") or {}, market.get("limits") or {}
        tick, step = precision.get("price"), precision.get("amount")
        if not tick or not step:
            raise DataSourceError(f"upstream market {pair} has no price/amount precision")
        min_cost = (limits.get("cost") or {}).get("min") or 5.0
        return MarketSpec(
            base, quote, float(tick), float(step), float(min_cost), (limits.get("amount") or {}).get("min")
        )

    async def poll_once(self) -> None:
        now = await self._sync_clock()
        for pair in self.pairs:
            for tf in self.timeframes:
                # everything since the last closed candle: after an outage (or a long start) every
                # candle missed comes back, none is skipped
                since = int(self.store._native[pair][tf].open_time[-1]) + interval_ms(tf)
                rows = await self.exchange.fetch_ohlcv(pair, tf, since=since, limit=1000)
                if self.store.update(pair, tf, rows, now, arrived=self.clock.now_ms()):
                    self._record(pair, tf)
            book = await self.exchange.fetch_order_book(pair, limit=self.book_levels)
            if book.get("bids") and book.get("asks"):
                self.store.books[pair] = OrderBook(
                    [(float(p), float(q)) for p, q, *_ in book["bids"]],
                    [(float(p), float(q)) for p, q, *_ in book["asks"]],
                )
                self._record_book(pair, now, book)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.poll_s)
            try:
                await self.poll_once()
            except (
                ccxt.BaseError,
                OSError,
                ValueError,
            ) as exc:  # an upstream hiccup: keep the last state, say so, retry
                logger.warning("upstream poll failed (%s: %s); serving the last relayed state", type(exc).__name__, exc)

    async def close(self) -> None:
        if self.exchange is not None:
            await self.exchange.close()

    # -- recording ------------------------------------------------------------------------
    def _record(self, pair: str, tf: str) -> None:
        if self.record_dir is None:
            return
        from freqtrade.data.history.datahandlers.featherdatahandler import FeatherDataHandler
        from freqtrade.enums import CandleType

        s = self.store._native[pair][tf]
        df = pd.DataFrame(
            {
                "date": pd.to_datetime(s.open_time, unit="ms", utc=True),
                "open": s.open,
                "high": s.high,
                "low": s.low,
                "close": s.close,
                "volume": s.volume,
            }
        )
        self.record_dir.mkdir(parents=True, exist_ok=True)
        FeatherDataHandler(self.record_dir).ohlcv_store(pair, tf, df, CandleType.SPOT)
        self.recorded += 1

    def _record_markets(self, specs: dict[str, MarketSpec]) -> None:
        """The upstream's trading rules beside the candles: a replay of the recording then rounds prices
        and amounts as the relayed venue did, instead of inferring them from the prices."""
        if self.record_dir is None:
            return
        self.record_dir.mkdir(parents=True, exist_ok=True)
        (self.record_dir / MARKETS_FILE).write_text(json.dumps({p: asdict(m) for p, m in specs.items()}, indent=2))

    def _record_book(self, pair: str, now: int, book: dict) -> None:
        if self.record_dir is None:
            return
        path = self.record_dir / "books" / f"{pair.replace('/', '_')}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as fh:
            fh.write(
                json.dumps(
                    {
                        "time_ms": now,
                        "received_ms": int(time.time() * 1000),
                        "bids": book["bids"][: self.book_levels],
                        "asks": book["asks"][: self.book_levels],
                    }
                )
                + "\n"
            )
