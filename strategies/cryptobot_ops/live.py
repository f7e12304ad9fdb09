"""Live-trading preflight: real money only with explicit confirmation, keys from the environment and
every risk limit set. Used by `python -m scripts.live` and by our strategies' `bot_start`."""

from __future__ import annotations

import ipaddress
import os
import socket
from urllib.parse import urlparse

CONFIRM_ENV = "CRYPTOBOT_I_UNDERSTAND_LIVE"
RISK_KEYS = ("max_drawdown", "daily_loss", "portfolio_heat", "correlation_limit")


# The API groups ccxt's Binance client uses for spot trading; an override must cover all of them
# in both ccxt configs (freqtrade uses the sync and the async client), or ccxt keeps its own for the rest.
TRADING_APIS = ("public", "private", "sapi")


class NotLoopbackError(RuntimeError):
    """Signed orders must never reach anything but a local simulator unless live was confirmed."""


def _urls(node) -> list[str]:
    if isinstance(node, str):
        return [node] if node.startswith(("http://", "https://", "ws://", "wss://")) else []
    if isinstance(node, dict):
        return [u for v in node.values() for u in _urls(v)]
    if isinstance(node, list):
        return [u for v in node for u in _urls(v)]
    return []


def assert_loopback(exchange_config: dict) -> None:
    """Every URL ccxt would use resolves to a loopback address: both ccxt configs override every
    trading API group, and every URL they set (of any kind) is loopback."""
    for key in ("ccxt_config", "ccxt_async_config"):
        api = ((exchange_config.get(key) or {}).get("urls") or {}).get("api")
        missing = [g for g in TRADING_APIS if not isinstance(api, dict) or not _urls(api.get(g))]
        if missing:
            raise NotLoopbackError(f"exchange.{key}.urls.api does not override {missing}: ccxt would call the real exchange")
    urls = _urls(exchange_config.get("ccxt_config", {})) + _urls(exchange_config.get("ccxt_async_config", {}))
    for url in urls:
        host = urlparse(url).hostname or ""
        try:
            addrs = {ai[4][0] for ai in socket.getaddrinfo(host, None)}
        except socket.gaierror:
            raise NotLoopbackError(f"cannot resolve {host!r} in {url}") from None
        if not addrs or not all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addrs):
            raise NotLoopbackError(f"{url}: {host} is not a loopback address ({sorted(addrs)})")


def is_real_exchange(config: dict) -> bool:
    """Not dry-run, and not provably local: anything but every ccxt URL on loopback counts as the
    real exchange (a logo-only or sapi-only override, or URLs that point at the exchange, included)."""
    if config.get("dry_run", True):
        return False
    try:
        assert_loopback(config.get("exchange") or {})
    except NotLoopbackError:
        return True
    return False


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
    missing = [k for k in RISK_KEYS if k not in (risk if isinstance(risk, dict) else {})]
    if missing:
        problems.append(f"risk limits missing in the config's 'risk' section: {', '.join(missing)}")
    else:
        from cryptobot_ops.risk import RiskLimits  # here: risk imports this module

        try:
            RiskLimits.from_config(config)
        except ValueError as exc:
            problems.append(f"invalid risk limits: {exc}")
    return problems
