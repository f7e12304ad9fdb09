"""The freqtrade config overlay for a simulated bot, and the paper-mode loopback guard."""

from __future__ import annotations

from cryptobot_ops.live import NotLoopbackError, assert_loopback
from cryptobot_ops.risk import RiskLimits
from simulation.gateway.freqtrade_config import exchange_overlay
from simulation.run.spec import RunSpec

API_USER = "simulator"
__all__ = ["API_USER", "NotLoopbackError", "assert_loopback", "bot_overlay"]


def watch_interval_s(spec: RunSpec) -> float:
    """The emergency watcher's poll in session seconds. On the constant clock libfaketime scales its
    sleep too: 50 ms of session time would spin `speed` times faster in wall time and take the bot's CPU
    (measured: most of its compute at x100), so it keeps 50 ms of wall time. On the compute clock each
    poll is a deadline the clock must stop at: it polls once a bot loop (5 s), which no simulated
    session uses the operator's emergency file within (the watcher's own latency is tested in real time)."""
    if spec.clock == "compute":
        return 5.0
    return RiskLimits.watch_interval_s * max(1.0, spec.speed)


def bot_overlay(spec: RunSpec, gateway_url: str, api_port: int, db_path: str) -> dict:
    """Settings layered over the user's config (loaded last, so they win)."""
    overlay = exchange_overlay(gateway_url, spec.pairs)
    # ccxt's timeouts run on the session clock: keep them at 10 s of wall time (the constant clock's speed).
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
            "risk": {"watch_interval_s": watch_interval_s(spec)},
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
    if spec.freqai().get("enabled"):
        # every model the session trains stays on disk (FreqAI keeps 2 per pair by default), so the
        # prediction diff can tell each live prediction's model and its age
        overlay["freqai"] = {"purge_old_models": 0}
    if spec.stoploss_on_exchange:
        overlay["order_types"] = {
            "entry": "limit",
            "exit": "limit",
            "stoploss": "limit",
            "stoploss_on_exchange": True,
            "stoploss_on_exchange_interval": 60,
        }
    if spec.mode == "paper":
        assert_loopback(overlay["exchange"])
    return overlay
