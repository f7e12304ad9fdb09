"""freqtrade config fragment that points ccxt's binance at a gateway."""

from __future__ import annotations

import json
from pathlib import Path


def exchange_overlay(base_url: str, pairs: list[str] | None = None, websocket: bool = True) -> dict:
    """A config to pass after the mode config (`--config mode.json --config overlay.json`).

    `websocket`: freqtrade's default `enable_ws` (candles through ccxt's `watch_ohlcv`, the gateway's
    `/stream`); ccxt's binance client tells spot streams by "/stream" in the URL, hence that path."""
    urls = {
        "api": {
            "public": f"{base_url}/api/v3",
            "private": f"{base_url}/api/v3",
            "v1": f"{base_url}/api/v1",
            "sapi": f"{base_url}/sapi/v1",
            "ws": {"spot": base_url.replace("http://", "ws://", 1).replace("https://", "wss://", 1) + "/stream"},
        }
    }
    ccxt = {"urls": urls, "options": {"fetchMarkets": {"types": ["spot"]}}}
    exchange: dict = {
        "name": "binance",
        "ccxt_config": ccxt,
        "ccxt_async_config": ccxt,
        "enable_ws": websocket,
        "only_from_ccxt": True,  # no data.binance.vision archive downloads
    }
    if pairs:
        exchange["pair_whitelist"] = list(pairs)
    return {"exchange": exchange}


def write_overlay(path: Path, base_url: str, pairs: list[str] | None = None, websocket: bool = True) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(exchange_overlay(base_url, pairs, websocket), indent=2))
    return path
