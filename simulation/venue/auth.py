"""Binance-style request signing: X-MBX-APIKEY header + HMAC-SHA256 of the parameters, recvWindow.

Credentials come from the environment only (SIMULATOR_API_KEY / SIMULATOR_API_SECRET); without
them the venue answers every private call with Binance's -2015, so nothing trades by accident.
"""

from __future__ import annotations

import hmac
import os
from dataclasses import dataclass
from urllib.parse import parse_qsl

from simulation.wire import BinanceError, hmac_sha256

KEY_ENV, SECRET_ENV = "SIMULATOR_API_KEY", "SIMULATOR_API_SECRET"
DEFAULT_RECV_WINDOW_MS = 5000


@dataclass(frozen=True)
class ApiCredentials:
    key: str
    secret: str

    def sign(self, payload: str) -> str:
        return hmac_sha256(self.secret, payload)


def credentials_from_env(env: dict | None = None) -> ApiCredentials | None:
    env = os.environ if env is None else env
    key, secret = env.get(KEY_ENV, ""), env.get(SECRET_ENV, "")
    if not key or not secret:
        return None
    return ApiCredentials(key, secret)


def same_text(given: str, expected: str) -> bool:
    """Constant-time equality for any text a client sends (hmac.compare_digest refuses non-ASCII str)."""
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), expected.encode("utf-8", "surrogateescape"))


def check_key(creds: ApiCredentials | None, api_key: str | None) -> None:
    """The API key first: nothing else of a request (not even its body) is read without it."""
    if not api_key:
        raise BinanceError(-2014, "API-key format invalid.", 401)
    if creds is None or not same_text(api_key, creds.key):
        raise BinanceError(-2015, "Invalid API-key, IP, or permissions for action.", 401)


def verify(creds: ApiCredentials | None, api_key: str | None, query: str, body: str, server_ms: int) -> dict[str, str]:
    """Check a private request; returns its parameters (query + body) without the signature.

    `query` and `body` exactly as sent (percent-encoded): Binance and ccxt sign that text."""
    check_key(creds, api_key)
    total = query + body  # Binance: "totalParams" is the query string concatenated with the body
    head, sep, signature = total.rpartition("signature=")
    if not sep or not signature:
        raise BinanceError(-1102, "Mandatory parameter 'signature' was not sent, was empty/null, or malformed.")
    payload = head.removesuffix("&")
    if not same_text(signature.split("&")[0], creds.sign(payload)):
        raise BinanceError(-1022, "Signature for this request is not valid.")
    params = dict(parse_qsl(payload, keep_blank_values=True))
    try:
        ts = int(params["timestamp"])
        recv = int(params.get("recvWindow", DEFAULT_RECV_WINDOW_MS))
    except (KeyError, ValueError):
        raise BinanceError(
            -1102, "Mandatory parameter 'timestamp' was not sent, was empty/null, or malformed."
        ) from None
    if not 0 < recv <= 60000:
        raise BinanceError(-1131, "recvWindow must be less than 60000")
    if ts > server_ms + 1000 or server_ms - ts > recv:
        raise BinanceError(-1021, "Timestamp for this request is outside of the recvWindow.")
    return params
