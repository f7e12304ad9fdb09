"""The freqtrade config overlay for a simulated bot, and the paper-mode loopback guard."""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlparse

from simulation.gateway.freqtrade_config import exchange_overlay
from simulation.run.spec import RunSpec

API_USER = "simulator"


class NotLoopbackError(RuntimeError):
    """Paper mode sends signed orders: it must never reach anything but the local simulator."""


def _urls(node) -> list[str]:
    if isinstance(node, str):
        return [node] if node.startswith(("http://", "https://", "ws://", "wss://")) else []
    if isinstance(node, dict):
        return [u for v in node.values() for u in _urls(v)]
    if isinstance(node, list):
        return [u for v in node for u in _urls(v)]
    return []


def assert_loopback(exchange_config: dict) -> None:
    """Every URL in ccxt's config must resolve to a loopback address."""
    urls = _urls(exchange_config.get("ccxt_config", {})) + _urls(exchange_config.get("ccxt_async_config", {}))
    if not urls:
        raise NotLoopbackError("paper mode: the exchange config sets no URLs, so ccxt would call the real Binance")
    for url in urls:
        host = urlparse(url).hostname or ""
        try:
            addrs = {ai[4][0] for ai in socket.getaddrinfo(host, None)}
        except socket.gaierror:
            raise NotLoopbackError(f"paper mode: cannot resolve {host!r} in {url}") from None
        if not addrs or not all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addrs):
            raise NotLoopbackError(f"paper mode refuses {url}: {host} is not a loopback address ({sorted(addrs)})")


def bot_overlay(spec: RunSpec, gateway_url: str, api_port: int, db_path: str) -> dict:
    """Settings layered over the user's config (loaded last, so they win)."""
    overlay = exchange_overlay(gateway_url, spec.pairs)
    # ccxt's timeouts run on the (accelerated) process clock: keep them at 10 s of wall time.
    timeout_ms = int(10_000 * max(1.0, spec.speed))
    for key in ("ccxt_config", "ccxt_async_config"):
        overlay["exchange"][key]["timeout"] = timeout_ms
    overlay.update(
        {
            "strategy": spec.strategy,
            "timeframe": spec.timeframe,
            "dry_run": spec.mode == "dry-run",
            "dry_run_wallet": spec.wallet,
            # paused: the loop runs (indicators, FreqAI trains) but no entry until /start at the window
            "initial_state": "paused",
            "db_url": f"sqlite:///{db_path}",
            "api_server": {
                "enabled": True,
                "listen_ip_address": "127.0.0.1",
                "listen_port": api_port,
                "username": API_USER,
                "enable_openapi": False,
                "CORS_origins": [],
            },
        }
    )
    if spec.stoploss_on_exchange:
        overlay["order_types"] = {"entry": "limit", "exit": "limit", "stoploss": "limit",
                                  "stoploss_on_exchange": True, "stoploss_on_exchange_interval": 60}
    if spec.mode == "paper":
        assert_loopback(overlay["exchange"])
    return overlay
