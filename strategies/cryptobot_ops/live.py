"""Live-trading preflight: real money only with explicit confirmation, keys from the environment and
every risk limit set. Used by `python -m scripts.live` and by our strategies' `bot_start`."""

from __future__ import annotations

import copy
import ipaddress
import os
import socket
from urllib.parse import urlparse

CONFIRM_ENV = "CRYPTOBOT_I_UNDERSTAND_LIVE"
RISK_KEYS = ("max_drawdown", "daily_loss", "portfolio_heat", "correlation_limit")


# The API groups ccxt's Binance client uses for spot trading; an override must cover all of them in
# every client freqtrade builds, or ccxt keeps its own URLs for the rest.
TRADING_APIS = ("public", "private", "sapi")

# freqtrade 2026.9 builds its ccxt clients in `Exchange.__init__` from these three configs: the order
# client (sync) from ccxt_sync_config merged over ccxt_config, the candle and websocket clients (async)
# from ccxt_async_config merged over ccxt_config. The guard checks exactly those merged configs.
CCXT_CONFIGS = ("ccxt_config", "ccxt_sync_config", "ccxt_async_config")
# Keys that point a ccxt client somewhere else: live trading allows none of them (the launcher drops them).
CCXT_REDIRECTS = ("urls", "hostname")
CLIENTS = {
    "order client (ccxt_config + ccxt_sync_config)": "ccxt_sync_config",
    "candle/websocket client (ccxt_config + ccxt_async_config)": "ccxt_async_config",
}


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


def client_configs(exchange_config: dict) -> dict[str, dict]:
    """The ccxt keyword arguments each freqtrade client receives, merged the way freqtrade merges them
    (its own `deep_merge_dicts`, the client-specific config winning)."""
    from freqtrade.misc import deep_merge_dicts  # here: the strategies import this module at load time

    for key in CCXT_CONFIGS:
        if not isinstance(exchange_config.get(key) or {}, dict):
            raise NotLoopbackError(f"exchange.{key} must be an object, got {type(exchange_config[key]).__name__}")
    base = exchange_config.get("ccxt_config") or {}
    return {
        label: deep_merge_dicts(copy.deepcopy(exchange_config.get(key) or {}), copy.deepcopy(base))
        for label, key in CLIENTS.items()
    }


def _assert_loopback_url(url: str) -> None:
    try:
        host = urlparse(url).hostname or ""
        addrs = {ai[4][0] for ai in socket.getaddrinfo(host, None)}
    except (OSError, UnicodeError, ValueError) as exc:  # unresolvable, a label over 63 characters, a bad port
        raise NotLoopbackError(f"cannot resolve the host of {url!r}: {exc}") from None
    if not addrs or not all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addrs):
        raise NotLoopbackError(f"{url}: {host} is not a loopback address ({sorted(addrs)})")


def assert_loopback(exchange_config: dict) -> None:
    """Every URL ccxt would use resolves to a loopback address: in each client freqtrade builds, the
    merged config overrides every trading API group, and every URL it sets (of any kind) is loopback."""
    for label, kwargs in client_configs(exchange_config).items():
        api = (kwargs.get("urls") or {}).get("api") if isinstance(kwargs.get("urls"), dict) else None
        missing = [g for g in TRADING_APIS if not isinstance(api, dict) or not _urls(api.get(g))]
        if missing:
            raise NotLoopbackError(
                f"the {label} does not override urls.api {missing}: ccxt would call the real exchange"
            )
        for url in _urls(kwargs):
            _assert_loopback_url(url)


def is_real_exchange(config: dict) -> bool:
    """Not dry-run, and not provably local: anything but every ccxt URL on loopback counts as the
    real exchange (a logo-only or sapi-only override, or URLs that point at the exchange, included)."""
    if config.get("dry_run", True):
        return False
    exchange = config.get("exchange") or {}
    if not isinstance(exchange, dict):
        return True
    try:
        assert_loopback(exchange)
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
    ex = config.get("exchange") or {}
    if not isinstance(ex, dict):
        return [*problems, "the config's 'exchange' section must be an object"]
    redirects = [
        f"exchange.{k}.{r}" for k in CCXT_CONFIGS if isinstance(ex.get(k), dict) for r in CCXT_REDIRECTS if r in ex[k]
    ]
    if redirects:
        problems.append(f"live trading talks to the exchange's own URLs only: remove {', '.join(redirects)}")
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
