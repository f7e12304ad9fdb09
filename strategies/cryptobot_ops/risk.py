"""Hard risk controls shared by our strategies (spec limits as configurable defaults).

Pure checks (unit-tested at each boundary) plus `RiskControlled`, a strategy mixin that wires them
into freqtrade's own callbacks: `confirm_trade_entry` rejects entries (every rejection is logged
with its reason and counted), `bot_loop_start` watches for an emergency trigger and
`custom_exit` then exits every open trade in the same loop. Nothing in freqtrade is patched.

Limits (config key `risk`, all optional): max_drawdown 10% of peak equity stops new entries;
daily_loss 3% of the UTC day's starting equity stops entries until the next UTC day; portfolio_heat
15% (sum over open trades of stake x distance to stop, plus the candidate's, over equity);
correlation_limit 0.7 (rolling return correlation of the candidate with each open pair);
emergency stop when max drawdown is breached by `emergency_drawdown` (default 1.5x the limit) or
when the operator creates the `emergency_file` (default user_data/EMERGENCY_STOP).
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from dataclasses import dataclass, fields
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from cryptobot_ops.alerts import alert, check_api_security, check_live

logger = logging.getLogger(__name__)

EPS = 1e-9  # limits are compared with a tolerance: 1 - 9000/10000 is not exactly 0.1 in floats
REASONS = ("emergency_stop", "max_drawdown", "daily_loss", "portfolio_heat", "correlation")


@dataclass(frozen=True)
class RiskLimits:
    max_drawdown: float = 0.10
    daily_loss: float = 0.03
    portfolio_heat: float = 0.15
    correlation_limit: float = 0.7
    correlation_window: int = 288  # candles of the strategy timeframe
    emergency_drawdown: float = 0.15
    emergency_file: str = "EMERGENCY_STOP"  # relative to user_data_dir

    def __post_init__(self) -> None:
        for name in ("max_drawdown", "daily_loss", "portfolio_heat", "emergency_drawdown"):
            if not 0 < getattr(self, name) < 1:
                raise ValueError(f"risk.{name} must be a fraction in (0, 1), got {getattr(self, name)!r}")
        if not 0 < self.correlation_limit <= 1:
            raise ValueError("risk.correlation_limit must be in (0, 1]")
        if self.correlation_window < 10:
            raise ValueError("risk.correlation_window must be at least 10 candles")

    @classmethod
    def from_config(cls, config: dict) -> RiskLimits:
        section = dict(config.get("risk") or {})
        known = {f.name for f in fields(cls)}
        unknown = set(section) - known
        if unknown:
            raise ValueError(f"unknown risk settings {sorted(unknown)}; known: {sorted(known)}")
        return cls(**section)


@dataclass(frozen=True)
class Position:
    pair: str
    stake: float
    stop_distance: float  # fraction of price between the current rate and the stop


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str | None = None
    detail: str = ""


def drawdown(equity: float, peak: float) -> float:
    return 0.0 if peak <= 0 else max(0.0, 1.0 - equity / peak)


def daily_loss(equity: float, day_start: float) -> float:
    return 0.0 if day_start <= 0 else max(0.0, 1.0 - equity / day_start)


def portfolio_heat(positions: list[Position], equity: float) -> float:
    if equity <= 0:
        return float("inf")
    return sum(p.stake * max(0.0, p.stop_distance) for p in positions) / equity


def max_correlation(candidate: np.ndarray, others: dict[str, np.ndarray]) -> tuple[str | None, float]:
    """Highest Pearson correlation of the candidate's returns with any other pair's (aligned tails)."""
    best, rho_max = None, -1.0
    for pair, r in others.items():
        n = min(len(candidate), len(r))
        if n < 10:
            continue
        a, b = candidate[-n:], r[-n:]
        ok = np.isfinite(a) & np.isfinite(b)
        if ok.sum() < 10 or np.std(a[ok]) == 0 or np.std(b[ok]) == 0:
            continue
        rho = float(np.corrcoef(a[ok], b[ok])[0, 1])
        if rho > rho_max:
            best, rho_max = pair, rho
    return best, rho_max


def check_entry(
    limits: RiskLimits,
    *,
    stake: float,
    stop_distance: float,
    equity: float,
    peak_equity: float,
    day_start_equity: float,
    positions: list[Position],
    candidate_returns: np.ndarray | None = None,
    open_returns: dict[str, np.ndarray] | None = None,
    emergency: bool = False,
) -> Decision:
    """First limit that blocks the entry, in order of severity."""
    if emergency:
        return Decision(False, "emergency_stop", "emergency stop active")
    dd = drawdown(equity, peak_equity)
    if dd >= limits.max_drawdown - EPS:
        return Decision(False, "max_drawdown", f"drawdown {dd:.2%} >= {limits.max_drawdown:.2%}")
    dl = daily_loss(equity, day_start_equity)
    if dl >= limits.daily_loss - EPS:
        return Decision(False, "daily_loss", f"today's loss {dl:.2%} >= {limits.daily_loss:.2%}")
    heat = portfolio_heat([*positions, Position("candidate", stake, stop_distance)], equity)
    if heat > limits.portfolio_heat + EPS:
        return Decision(False, "portfolio_heat", f"heat with this entry {heat:.2%} > {limits.portfolio_heat:.2%}")
    if candidate_returns is not None and open_returns:
        pair, rho = max_correlation(candidate_returns, open_returns)
        if pair is not None and rho > limits.correlation_limit:
            return Decision(False, "correlation", f"correlation {rho:.2f} with open {pair} > {limits.correlation_limit}")
    return Decision(True)


class RiskControlled:
    """Mixin for IStrategy subclasses (put it first in the bases)."""

    risk_limits: RiskLimits | None = None

    # -- state ----------------------------------------------------------------------------
    def _risk_init(self) -> None:
        if getattr(self, "_risk_ready", False):
            return
        self.risk_limits = RiskLimits.from_config(self.config)
        self.risk_rejections: Counter = Counter()
        self.emergency_active = False
        self.emergency_trigger: dict | None = None
        self._breach_day = None
        self._summary_day = None
        self._risk_ready = True

    def _equity_state(self, now: datetime) -> tuple[float, float, float]:
        """(equity, peak, UTC-day start) from the realized equity curve (closed trades)."""
        from freqtrade.persistence import Trade

        start = float(self.wallets.get_starting_balance()) if self.wallets else float(self.config.get("dry_run_wallet", 1000))
        closed = [t for t in Trade.get_trades_proxy(is_open=False) if t.close_date is not None]
        closed.sort(key=lambda t: t.close_date)
        profits = np.array([t.close_profit_abs or 0.0 for t in closed])
        curve = start + np.concatenate([[0.0], np.cumsum(profits)])
        day = pd.Timestamp(now).tz_convert("UTC").normalize() if pd.Timestamp(now).tzinfo else pd.Timestamp(now).normalize()
        before = sum(1 for t in closed if pd.Timestamp(t.close_date).tz_localize(None) < day.tz_localize(None))
        return float(curve[-1]), float(curve.max()), float(curve[before])

    def _returns(self, pair: str) -> np.ndarray | None:
        df, _ = self.dp.get_analyzed_dataframe(pair, self.timeframe)
        if df is None or df.empty:
            return None
        return df["close"].pct_change().to_numpy()[-self.risk_limits.correlation_window :]

    def risk_decision(self, pair: str, stake: float, current_time: datetime) -> Decision:
        self._risk_init()
        equity, peak, day_start = self._equity_state(current_time)
        positions, open_returns = [], {}
        for pos, t in self._open_positions():
            if t.pair == pair:
                continue
            positions.append(pos)
            r = self._returns(t.pair)
            if r is not None:
                open_returns[t.pair] = r
        return check_entry(
            self.risk_limits, stake=stake, stop_distance=abs(self.stoploss), equity=equity, peak_equity=peak,
            day_start_equity=day_start, positions=positions, candidate_returns=self._returns(pair),
            open_returns=open_returns, emergency=self.emergency_active,
        )

    # -- freqtrade callbacks --------------------------------------------------------------
    def bot_start(self, **kwargs) -> None:
        if self._is_live():
            check_api_security(self.config)
            check_live(self.config)
        self._risk_init()

    def confirm_trade_entry(self, pair, order_type, amount, rate, time_in_force, current_time, entry_tag, side, **kwargs) -> bool:
        d = self.risk_decision(pair, amount * rate, current_time)
        if not d.allowed:
            self.risk_rejections[d.reason] += 1
            logger.warning("risk: entry %s rejected (%s): %s [count %d]", pair, d.reason, d.detail, self.risk_rejections[d.reason])
            if d.reason in ("max_drawdown", "daily_loss") and self._breach_day != current_time.date():
                self._breach_day = current_time.date()  # one critical alert per breach and day
                alert(self, "critical", f"limit breach: {d.detail}; new entries blocked")
        return d.allowed

    def bot_loop_start(self, current_time: datetime, **kwargs) -> None:
        self._risk_init()
        equity, peak, day_start = self._equity_state(current_time)  # once per loop
        if self._summary_day is None:
            self._summary_day = current_time.date()
        elif current_time.date() != self._summary_day:
            self._summary_day = current_time.date()
            alert(self, "info", f"daily summary: equity {equity:.2f}, drawdown {drawdown(equity, peak):.2%}, "
                  f"rejections {dict(self.risk_rejections)}")
        if self._is_live():
            self._write_state(current_time, equity, peak, day_start)
        if self.emergency_active:
            return
        flag = Path(self.config.get("user_data_dir", "user_data")) / self.risk_limits.emergency_file
        reason = None
        if flag.exists():
            reason = f"operator ({flag})"
        else:
            if drawdown(equity, peak) >= self.risk_limits.emergency_drawdown - EPS:
                reason = f"drawdown {drawdown(equity, peak):.2%} >= emergency {self.risk_limits.emergency_drawdown:.2%}"
        if reason:
            self.trigger_emergency(reason)

    def _is_live(self) -> bool:
        runmode = self.config.get("runmode")
        return runmode is not None and runmode.value in ("live", "dry_run")

    @staticmethod
    def _open_positions() -> list[tuple[Position, object]]:
        """(position at risk, trade) for each open trade; stop distance measured from the entry."""
        from freqtrade.persistence import Trade

        return [(Position(t.pair, float(t.stake_amount), max(0.0, (t.open_rate - (t.stop_loss or 0)) / t.open_rate)), t)
                for t in Trade.get_trades_proxy(is_open=True)]

    def _write_state(self, now: datetime, equity: float, peak: float, day_start: float) -> None:
        """user_data/risk_state.json: what the operator tools (companion bot) show."""
        positions = [p for p, _ in self._open_positions()]
        state = {
            "time": now.isoformat(), "equity": equity, "peak_equity": peak, "drawdown": drawdown(equity, peak),
            "daily_loss": daily_loss(equity, day_start), "portfolio_heat": portfolio_heat(positions, equity),
            "limits": {f.name: getattr(self.risk_limits, f.name) for f in fields(self.risk_limits)},
            "rejections": dict(self.risk_rejections), "emergency": self.emergency_trigger and {
                k: v for k, v in self.emergency_trigger.items() if k != "monotonic"},
        }
        path = Path(self.config.get("user_data_dir", "user_data")) / "risk_state.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, default=str))
        tmp.replace(path)

    def trigger_emergency(self, reason: str) -> None:
        self._risk_init()
        self.emergency_active = True
        self.emergency_trigger = {"reason": reason, "monotonic": time.monotonic(), "exits": {}}
        alert(self, "critical", f"emergency stop: {reason}; exiting all positions, entries blocked")

    def custom_exit(self, pair, trade, current_time, current_rate, current_profit, **kwargs):
        if getattr(self, "emergency_active", False):
            trig = self.emergency_trigger
            if trig is not None and pair not in trig["exits"]:
                trig["exits"][pair] = (time.monotonic() - trig["monotonic"]) * 1e3
                logger.critical("emergency exit %s %.1f ms after the trigger", pair, trig["exits"][pair])
            return "emergency_stop"
        return None
