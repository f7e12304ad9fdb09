"""Gateway throughput on loopback (latency model off): requests/s and client-side latency.

Mixed load (what a bot asks: klines, depth, tickers) next to a `ping` baseline in the same run,
since absolute numbers on a shared 2-core machine mean little; the ratio says what our endpoints cost.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import aiohttp
import numpy as np

from simulation.gateway import GatewayProcess

# What a running bot asks, roughly in proportion: short kline refreshes, books, tickers, and now and
# then a full 500-candle history.
MIXED = [
    ("/api/v3/klines", {"symbol": "BTCUSDT", "interval": "5m", "limit": "5"}),
    ("/api/v3/depth", {"symbol": "BTCUSDT", "limit": "20"}),
    ("/api/v3/ticker/bookTicker", {"symbol": "ETHUSDT"}),
    ("/api/v3/klines", {"symbol": "ETHUSDT", "interval": "5m", "limit": "5"}),
    ("/api/v3/ticker/price", {"symbol": "BTCUSDT"}),
    ("/api/v3/depth", {"symbol": "ETHUSDT", "limit": "20"}),
    ("/api/v3/ticker/24hr", {"symbol": "BTCUSDT"}),
    ("/api/v3/klines", {"symbol": "BTCUSDT", "interval": "5m", "limit": "500"}),
]
PING = [("/api/v3/ping", {})]


async def _load(url: str, requests: list, seconds: float, concurrency: int) -> dict:
    lat: list[float] = []
    errors = 0
    stop = time.perf_counter() + seconds

    async def worker(i: int, session: aiohttp.ClientSession) -> None:
        nonlocal errors
        k = i
        while time.perf_counter() < stop:
            path, params = requests[k % len(requests)]
            k += 1
            t0 = time.perf_counter()
            async with session.get(url + path, params=params) as r:
                await r.read()
                if r.status != 200:
                    errors += 1
            lat.append((time.perf_counter() - t0) * 1e3)

    conn = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=conn) as session:
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(i, session) for i in range(concurrency)))
        elapsed = time.perf_counter() - t0
    a = np.array(lat)
    return {
        "requests": len(a),
        "errors": errors,
        "req_per_s": len(a) / elapsed,
        "p50_ms": float(np.percentile(a, 50)),
        "p99_ms": float(np.percentile(a, 99)),
    }


def run(seconds: float = 10.0, concurrency: int = 16, out: Path | None = None) -> dict:
    args = [
        "--synthetic",
        "--seed",
        "1",
        "--days",
        "30",
        "--pairs",
        "BTC/USDT",
        "ETH/USDT",
        "--replay",
        "--log-level",
        "WARNING",
    ]
    with GatewayProcess(args) as gw:
        asyncio.run(_load(gw.url, MIXED, 1.0, concurrency))  # warm caches (resampled series)
        ping = asyncio.run(_load(gw.url, PING, seconds, concurrency))
        mixed = asyncio.run(_load(gw.url, MIXED, seconds, concurrency))
    result = {
        "seconds": seconds,
        "concurrency": concurrency,
        "ping": ping,
        "mixed": mixed,
        "mixed_over_ping": mixed["req_per_s"] / ping["req_per_s"],
    }
    if out:
        Path(out).write_text(json.dumps(result, indent=2))
    return result
