"""Candle close -> client sees it: WebSocket push vs REST polling, measured in one run on one gateway.

Both clients are ccxt's binance (what freqtrade uses): `watch_ohlcv` on the gateway's streams, and
`fetch_ohlcv` polled every `poll_s` seconds (freqtrade's loop: `process_throttle_secs`, default 5).
A sample is the wall time from a candle's close on the gateway's clock to the moment the client first
holds the next candle (so the closed one is final). The gateway's clock is read once from /sim/status
and extrapolated (replay at speed 1: exchange time = wall time + a whole number of days).
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import aiohttp
import numpy as np

from simulation.gateway.freqtrade_config import exchange_overlay
from simulation.gateway.process import GatewayProcess


def _ccxt_config(url: str) -> dict:
    return json.loads(json.dumps(exchange_overlay(url)["exchange"]["ccxt_config"]))


async def _offset_ms(url: str) -> float:
    """exchange ms - wall ms (the replay's shift), from the gateway's own clock."""
    async with aiohttp.ClientSession() as s:
        t0 = time.time()
        async with s.get(f"{url}/api/v3/time") as r:
            server = (await r.json())["serverTime"]
        t1 = time.time()
    return server - (t0 + t1) / 2 * 1000


async def _watch(url: str, symbol: str, tf: str, stop: float, offset: float, out: list, closed: dict) -> None:
    import ccxt.pro as ccxtpro

    ex = ccxtpro.binance(_ccxt_config(url))
    last = None
    try:
        while time.time() < stop:
            try:
                await asyncio.wait_for(ex.watch_ohlcv(symbol, tf), timeout=max(0.1, stop - time.time()))
            except TimeoutError:
                break
            seen = time.time() * 1000 + offset
            candles = ex.ohlcvs.get(symbol, {}).get(tf, [])  # ccxt's cache, as freqtrade reads it
            if last is not None and candles[-1][0] != last and len(candles) >= 2:
                out.append(seen - candles[-1][0])  # the new candle opens when the previous one closes
                closed[candles[-2][0]] = candles[-2][1:6]
            last = candles[-1][0]
    finally:
        await ex.close()


async def _poll(
    url: str, symbol: str, tf: str, stop: float, offset: float, poll_s: float, out: list, closed: dict
) -> None:
    import ccxt.async_support as ccxt_async

    ex = ccxt_async.binance(_ccxt_config(url))
    last = None
    try:
        while time.time() < stop:
            candles = await ex.fetch_ohlcv(symbol, tf, limit=2)
            seen = time.time() * 1000 + offset
            if last is not None and candles[-1][0] != last:
                out.append(seen - candles[-1][0])
                closed[candles[-2][0]] = candles[-2][1:6]
            last = candles[-1][0]
            await asyncio.sleep(poll_s)
    finally:
        await ex.close()


def summarize(samples: list[float]) -> dict:
    a = np.asarray(samples, float)
    if not len(a):
        return {"n": 0}
    return {
        "n": len(a),
        "p50_ms": float(np.median(a)),
        "p90_ms": float(np.percentile(a, 90)),
        "max_ms": float(a.max()),
        "mean_ms": float(a.mean()),
    }


async def measure(url: str, seconds: float, symbol: str = "BTC/USDT", tf: str = "1m", poll_s: float = 5.0) -> dict:
    offset = await _offset_ms(url)
    stop = time.time() + seconds
    ws, rest, ws_closed, rest_closed = [], [], {}, {}
    await asyncio.gather(
        _watch(url, symbol, tf, stop, offset, ws, ws_closed),
        _poll(url, symbol, tf, stop, offset, poll_s, rest, rest_closed),
    )
    both = sorted(set(ws_closed) & set(rest_closed))
    return {
        "websocket": summarize(ws),
        "rest_poll": summarize(rest),
        "poll_s": poll_s,
        "timeframe": tf,
        "ws_samples_ms": ws,
        "rest_samples_ms": rest,
        "closed_candles_compared": len(both),
        "closed_candles_identical": all(np.allclose(ws_closed[t], rest_closed[t], rtol=0, atol=1e-9) for t in both),
    }


def run(candles: int = 10, poll_s: float = 5.0, latency: bool = False, out: Path | None = None) -> dict:
    """`candles` one-minute closes at replay speed 1 (wall time = candles minutes)."""
    args = [
        "--synthetic",
        "--seed",
        "1",
        "--days",
        "5",
        "--timeframe",
        "1m",
        "--pairs",
        "BTC/USDT",
        "--replay",
        "--log-level",
        "WARNING",
        *(["--latency"] if latency else []),
    ]
    with GatewayProcess(args) as gw:
        result = asyncio.run(measure(gw.url, candles * 60.0 + 3.0, poll_s=poll_s))
    result["latency_model"] = latency
    ws, rest = result["websocket"], result["rest_poll"]
    if ws.get("n") and rest.get("n"):
        result["rest_over_ws_p50"] = rest["p50_ms"] / max(ws["p50_ms"], 1e-6)
    if out:
        Path(out).write_text(json.dumps(result, indent=2))
    return result
