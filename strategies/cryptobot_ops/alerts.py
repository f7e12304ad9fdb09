"""Operator-facing pieces shared by our strategies: alerts by severity and the API password guard.

Alerts go through `dp.send_msg`, freqtrade's own channel for strategy messages, so they reach
Telegram and webhooks (`webhook.strategy_msg`) alike; they are prefixed `[CRITICAL]`, `[WARNING]`
or `[INFO]` and also logged. Backtests have no RPC: there they are only logged.
"""

from __future__ import annotations

import logging

from freqtrade.exceptions import OperationalException

from cryptobot_ops.live import preflight

logger = logging.getLogger(__name__)
LEVELS = {"critical": logging.CRITICAL, "warning": logging.WARNING, "info": logging.INFO}
# Passwords from freqtrade's docs and sample configs, and other obvious ones.
KNOWN_DEFAULTS = {"", "freqtrader", "supersecurepassword", "supersecretpassword", "password", "changeme", "admin"}
MIN_PASSWORD_LENGTH = 12


def alert(strategy, severity: str, text: str) -> str:
    if severity not in LEVELS:
        raise ValueError(f"severity must be one of {sorted(LEVELS)}")
    message = f"[{severity.upper()}] {text}"
    logger.log(LEVELS[severity], message)
    dp = getattr(strategy, "dp", None)
    if dp is not None:
        dp.send_msg(message, always_send=severity != "info")
    return message


def check_api_security(config: dict) -> None:
    """Refuse to run with the REST API on and a missing, default or short password / JWT secret.
    Set them through FREQTRADE__API_SERVER__PASSWORD and FREQTRADE__API_SERVER__JWT_SECRET_KEY."""
    api = config.get("api_server") or {}
    if not api.get("enabled"):
        return
    password = str(api.get("password") or "")
    if password.lower() in KNOWN_DEFAULTS or len(password) < MIN_PASSWORD_LENGTH:
        raise OperationalException(
            "refusing to start: api_server.password is empty, a known default or shorter than "
            f"{MIN_PASSWORD_LENGTH} characters; set FREQTRADE__API_SERVER__PASSWORD in the environment"
        )
    secret = str(api.get("jwt_secret_key") or "")
    if secret.lower() in {"", "somethingrandom", "super-secret", "secret"} or len(secret) < 16:
        raise OperationalException(
            "refusing to start: api_server.jwt_secret_key is empty, a known default or shorter than 16 "
            "characters; set FREQTRADE__API_SERVER__JWT_SECRET_KEY in the environment"
        )


def check_live(config: dict) -> None:
    """A real exchange with real money needs the explicit confirmation (and keys, and every risk limit)."""
    problems = preflight(config)
    if problems:
        raise OperationalException("refusing to start live: " + "; ".join(problems))
