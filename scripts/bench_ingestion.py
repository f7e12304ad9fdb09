"""`python -m scripts.bench_ingestion [--candles 10] [--poll 5] [--latency] [--out ingestion.json]`

Candle close -> client sees it, WebSocket push vs REST polling, one gateway, one run (replay at speed 1,
1m candles: the run takes --candles minutes)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from simulation.gateway.ingestion import run


def main() -> None:
    p = argparse.ArgumentParser(
        description="Data ingestion latency: the gateway's kline stream vs REST polling (ccxt clients)."
    )
    p.add_argument("--candles", type=int, default=10, help="1m candle closes to measure (one minute each)")
    p.add_argument("--poll", type=float, default=5.0, help="REST poll period, s (freqtrade's process_throttle_secs)")
    p.add_argument("--latency", action="store_true", help="apply the gateway's latency model (default: loopback)")
    p.add_argument("--out", type=Path)
    a = p.parse_args()
    if a.candles < 1 or a.poll <= 0:
        p.error("--candles must be >= 1 and --poll > 0")
    print(f"measuring {a.candles} candle closes ({a.candles} min) ...", flush=True)
    result = run(a.candles, a.poll, a.latency, a.out)
    print(json.dumps({k: v for k, v in result.items() if not k.endswith("_samples_ms")}, indent=2))


if __name__ == "__main__":
    main()
