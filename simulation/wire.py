"""The Binance wire format both the public gateway and the private venue speak: errors, request
parameters, number formatting and HMAC signing.

Why its own module: the gateway serves the venue and the venue raises Binance errors; with the wire
format in neither of them, dependencies point one way (venue -> wire <- gateway).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass

_INT = re.compile(r"^-?[0-9]{1,20}$")


class BinanceError(Exception):
    """An error answered the way Binance does: HTTP status plus {"code", "msg"}."""

    def __init__(self, code: int, msg: str, status: int = 400) -> None:
        super().__init__(msg)
        self.code, self.msg, self.status = code, msg, status

    def body(self) -> dict:
        return {"code": self.code, "msg": self.msg}


def invalid_symbol() -> BinanceError:
    return BinanceError(-1121, "Invalid symbol.")


def fmt_num(x: float) -> str:
    """Binance-style 8-decimal string, falling back to repr when 8 decimals would lose bits."""
    s = f"{x:.8f}"
    return s if float(s) == x else repr(float(x))


@dataclass(frozen=True)
class Params:
    raw: Mapping[str, str]

    def required(self, name: str) -> str:
        value = self.raw.get(name)
        if value is None or value == "":
            raise BinanceError(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")
        return value

    def integer(self, name: str) -> int | None:
        value = self.raw.get(name)
        if value is None or value == "":
            return None
        if not _INT.match(value):
            raise BinanceError(
                -1100, f"Illegal characters found in parameter '{name}'; legal range is '^[0-9]{{1,20}}$'."
            )
        return int(value)

    def limit(self, default: int, maximum: int) -> int:
        value = self.integer("limit")
        if value is None:
            return default
        if not 1 <= value <= maximum:
            raise BinanceError(-1130, "Data sent for parameter 'limit' is not valid.")
        return value


def hmac_sha256(secret: str, payload: str) -> str:
    """Binance's SIGNED-endpoint signature: hex HMAC-SHA256 of the payload with the API secret."""
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
