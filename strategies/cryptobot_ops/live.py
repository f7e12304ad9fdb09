"""Live-trading preflight: real money only with explicit confirmation, keys from the environment and
every risk limit set. Used by `python -m scripts.live` and by our strategies' `bot_start`."""

from __future__ import annotations

import os

CONFIRM_ENV = "CRYPTOBOT_I_UNDERSTAND_LIVE"
RISK_KEYS = ("max_drawdown", "daily_loss", "portfolio_heat", "correlation_limit")


def is_real_exchange(config: dict) -> bool:
    """Not dry-run and ccxt left on the exchange's own URLs (no gateway / simulated venue)."""
    if config.get("dry_run", True):
        return False
    ex = config.get("exchange", {})
    return not any((ex.get(k) or {}).get("urls") for k in ("ccxt_config", "ccxt_async_config"))


def confirmed(flag: bool = False) -> bool:
    return flag or os.environ.get(CONFIRM_ENV, "").strip().lower() in {"yes", "1", "true"}


def preflight(config: dict, flag: bool = False) -> list[str]:
    """Reasons not to start live (empty: go)."""
    if not is_real_exchange(config):
        return []
    problems = []
    if not confirmed(flag):
        problems.append(f"live trading needs --i-understand-live or {CONFIRM_ENV}=yes")
    ex = config.get("exchange", {})
    if not ex.get("key") or not ex.get("secret"):
        problems.append("exchange keys missing: set FREQTRADE__EXCHANGE__KEY and FREQTRADE__EXCHANGE__SECRET")
    risk = config.get("risk") or {}
    missing = [k for k in RISK_KEYS if not risk.get(k)]
    if missing:
        problems.append(f"risk limits missing in the config's 'risk' section: {', '.join(missing)}")
    return problems
