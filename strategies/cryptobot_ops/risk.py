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

import hashlib
import json
import logging
import math
import sqlite3
import threading
import time
from collections import Counter
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from freqtrade.exceptions import OperationalException

from cryptobot_ops.alerts import alert, check_api_security, check_live
from cryptobot_ops.monitoring import monitor_for

logger = logging.getLogger(__name__)

EPS = 1e-9  # limits are compared with a tolerance: 1 - 9000/10000 is not exactly 0.1 in floats
REASONS = ("emergency_stop", "risk_error", "max_drawdown", "daily_loss", "portfolio_heat", "correlation")
STATE_REFRESH = timedelta(minutes=1)  # risk_state.json rewritten at least this often while unchanged


FRACTIONS = ("max_drawdown", "daily_loss", "portfolio_heat", "emergency_drawdown")


@dataclass(frozen=True)
class RiskLimits:
    max_drawdown: float = 0.10
    daily_loss: float = 0.03
    portfolio_heat: float = 0.15
    correlation_limit: float = 0.7
    correlation_window: int = 288  # candles of the strategy timeframe
    emergency_drawdown: float | None = None  # default 1.5x max_drawdown
    emergency_file: str = "EMERGENCY_STOP"  # relative to user_data_dir
    ledger: str = "risk_ledger.sqlite"  # shared by every bot that names the same file; "" = this bot alone
    ledger_ttl_s: float = 900.0  # a bot silent for longer drops out of the portfolio (logged)
    emergency_rest_exit: bool = True  # exit at once through the bot's own REST API (when it runs one)
    # the emergency watcher's poll of the operator's file and the shared ledger, in process-clock seconds
    # (an accelerated simulation scales it by its speed so the poll keeps its wall-clock rate)
    watch_interval_s: float = 0.05

    def __post_init__(self) -> None:
        """Strict: a value of the wrong type is an error naming its key, never a silent default
        (a JSON float where an integer belongs used to pass here and fail open at trade time)."""
        if self.emergency_drawdown is None and isinstance(self.max_drawdown, int | float):
            object.__setattr__(self, "emergency_drawdown", min(0.99, round(1.5 * self.max_drawdown, 10)))
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type in ("float", "float | None") and (
                isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value)
            ):
                raise ValueError(f"risk.{f.name} must be a number, got {value!r}")
            if f.type == "int" and (isinstance(value, bool) or not isinstance(value, int)):
                raise ValueError(f"risk.{f.name} must be an integer, got {value!r}")
            if f.type == "bool" and not isinstance(value, bool):
                raise ValueError(f"risk.{f.name} must be true or false, got {value!r}")
            if f.type == "str" and not isinstance(value, str):
                raise ValueError(f"risk.{f.name} must be a string, got {value!r}")
        for name in FRACTIONS:
            if not 0 < getattr(self, name) < 1:
                raise ValueError(f"risk.{name} must be a fraction in (0, 1), got {getattr(self, name)!r}")
        if not 0 < self.correlation_limit <= 1:
            raise ValueError(f"risk.correlation_limit must be in (0, 1], got {self.correlation_limit!r}")
        if self.correlation_window < 10:
            raise ValueError(f"risk.correlation_window must be at least 10 candles, got {self.correlation_window!r}")
        if self.emergency_drawdown < self.max_drawdown:
            raise ValueError(
                f"risk.emergency_drawdown ({self.emergency_drawdown}) must be >= risk.max_drawdown "
                f"({self.max_drawdown}): the emergency stop is the harder limit"
            )
        if not self.emergency_file.strip():
            raise ValueError(
                "risk.emergency_file must name a file (an empty name would be the user_data folder itself)"
            )
        if self.watch_interval_s <= 0:
            raise ValueError(f"risk.watch_interval_s must be positive, got {self.watch_interval_s!r}")
        if self.ledger_ttl_s <= 0:
            raise ValueError(f"risk.ledger_ttl_s must be positive, got {self.ledger_ttl_s!r}")

    @classmethod
    def from_config(cls, config: dict) -> RiskLimits:
        section = config.get("risk")
        if section is None:
            section = {}
        if not isinstance(section, dict):
            raise ValueError(f"the config's 'risk' section must be an object, got {section!r}")  # noqa: TRY004 (config errors are ValueErrors)
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
    open_returns: dict[str, np.ndarray | None] | None = None,
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
    if open_returns:
        # fail closed: a correlation that cannot be computed rejects (another bot's pair before its candles came)
        unknown = sorted(p for p, r in open_returns.items() if r is None)
        if unknown or candidate_returns is None:
            return Decision(
                False,
                "risk_error",
                f"correlation limit unchecked: no candles for {', '.join(unknown) or 'the candidate'}",
            )
        pair, rho = max_correlation(candidate_returns, open_returns)
        if pair is not None and rho > limits.correlation_limit:
            return Decision(
                False, "correlation", f"correlation {rho:.2f} with open {pair} > {limits.correlation_limit}"
            )
    return Decision(True)


class RiskDataError(RuntimeError):
    """The state a risk decision needs is missing (no rate for an open trade, unreadable ledger)."""


@dataclass(frozen=True)
class EquityState:
    equity: float  # mark-to-market: realized + open trades at their latest close
    peak: float
    day_start: float
    positions: list[Position]  # every bot's open positions (the ledger's), this bot's with their trades


def database_label(db_url: str) -> str:
    """A bot's database as it may appear in the ledger, logs and alerts: the URL without its password
    (SQLAlchemy's own rendering), or a digest when it does not parse."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(db_url).render_as_string(hide_password=True) if db_url else ""
    except (ArgumentError, ValueError, TypeError):
        return "db-" + hashlib.sha256(str(db_url).encode()).hexdigest()[:12]


class RiskControlled:
    """Mixin for IStrategy subclasses (put it first in the bases).

    Fails closed: any error inside a decision rejects the entry and sends a critical alert; the
    emergency exit goes through freqtrade's ROI check (`custom_roi`), which freqtrade evaluates for
    every open trade whatever `use_exit_signal` and `exit_profit_only` say, and `bot_start` refuses
    the one setting that can switch it off (`ignore_roi_if_entry_signal`).
    """

    risk_limits: RiskLimits | None = None
    use_custom_roi = True
    emergency_watcher = True  # the ~50 ms watcher thread in dry-run/live (tests of the loop path turn it off)

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
        self._peak: float | None = None
        self._start: float | None = None  # starting balance, read once (see _equity_state)
        self._day: tuple | None = None  # (UTC date, mark-to-market equity at its first observation)
        self._emergency_lock = threading.Lock()
        self._ledger = None
        if self._is_live() and self.risk_limits.ledger:
            from cryptobot_ops.ledger import RiskLedger

            path = Path(self.risk_limits.ledger)
            if not path.is_absolute():
                path = Path(self.config.get("user_data_dir", "user_data")) / path
            bot_id = f"{self.config.get('bot_name', 'freqtrade')}@{database_label(self.config.get('db_url', ''))}"
            self._ledger = RiskLedger(path, bot_id, self.risk_limits.ledger_ttl_s)
        self._risk_ready = True

    def _rate(self, pair: str) -> float:
        """The mark for an open trade: the latest close the bot analysed, else the latest candle it
        holds, else (dry-run/live, e.g. before the first analysis) the exchange's last price."""
        sources = (
            lambda: self.dp.get_analyzed_dataframe(pair, self.timeframe)[0],
            lambda: self.dp.get_pair_dataframe(pair, self.timeframe),
        )
        for source in sources:
            df = source()
            if df is not None and not df.empty:
                close = float(df["close"].iloc[-1])
                if math.isfinite(close) and close > 0:
                    return close
        if self._is_live():
            last = (self.dp.ticker(pair) or {}).get("last")
            if last is not None and math.isfinite(float(last)) and float(last) > 0:
                return float(last)
        raise RiskDataError(f"no price for open trade {pair}: cannot mark it to market")

    def _equity_state(self, now: datetime) -> EquityState:
        """Mark-to-market equity (closed profits + open trades at their latest close), its running
        peak and the UTC day's starting value; across every bot that shares the ledger."""
        positions, equity = self._local_equity(now)
        if self._ledger is None:
            return EquityState(equity, self._peak, self._day[1], positions)
        mine = [(p.pair, p.stake, p.stop_distance) for p in positions]
        self._published = (equity, self._peak, self._day[1], mine)  # what a reservation re-sends
        book = self._ledger.publish(*self._published)
        others = [
            Position(pair, stake, dist) for bot, pair, stake, dist in book.positions if bot != self._ledger.bot_id
        ]
        self._other_pairs = sorted({p.pair for p in others})  # their candles: informative_pairs
        return EquityState(book.equity, book.peak, book.day_start, positions + others)

    def _fallback_state(self, now: datetime) -> EquityState:
        """This bot's own state when the full one failed (ledger unwritable, no price for an open trade):
        an open trade without a price is marked at its stop, the worst its own stop-loss allows, so the
        emergency drawdown is still checked, never skipped. Updates no peak or day start."""
        from freqtrade.persistence import Trade

        start = self._start if self._start is not None else float(self.config.get("dry_run_wallet", 1000))
        realized = sum(
            t.close_profit_abs or 0.0 for t in Trade.get_trades_proxy(is_open=False) if t.close_date is not None
        )
        unrealized, positions = 0.0, []
        for pos, t in self._open_positions():
            try:
                rate = self._rate(t.pair)
            except Exception:  # noqa: BLE001 (no price, whatever the cause: marked at its stop)
                rate = float(t.stop_loss or t.open_rate * (1 - abs(self.stoploss)))
            unrealized += float(t.calc_profit(rate))
            positions.append(pos)
        equity = start + realized + unrealized
        peak = max(self._peak or 0.0, equity)
        return EquityState(equity, peak, self._day[1] if self._day else equity, positions)

    def _local_equity(self, now: datetime) -> tuple[list[Position], float]:

        if self._start is None:
            # Read once: freqtrade derives it from the free balance, which lags a fill until the next wallet
            # sync; read on every loop it dropped by a trade's stake for a moment (a false 33% drawdown and
            # emergency, seen in a dry-run test). Capital moved in or out counts after a restart.
            self._start = (
                float(self.wallets.get_starting_balance())
                if self.wallets
                else float(self.config.get("dry_run_wallet", 1000))
            )
        start = self._start
        curve, closed = self._realized(start)
        opened = self._open_positions()
        unrealized = sum(float(t.calc_profit(self._rate(t.pair))) for _, t in opened)
        equity = float(curve[-1]) + unrealized
        ts = pd.Timestamp(now)
        day = (ts.tz_convert("UTC") if ts.tzinfo else ts).date()
        self._peak = max(float(curve.max()), equity, self._peak or 0.0)
        if self._day is None or self._day[0] != day:
            before = sum(1 for t in closed if pd.Timestamp(t.close_date).tz_localize(None).date() < day)
            # first look at a new day: now; after a restart mid-day: realized equity at midnight
            self._day = (day, equity if self._day is not None else float(curve[before]))
        return [p for p, _ in opened], equity

    def _realized(self, start: float) -> tuple[np.ndarray, list]:
        """(realized equity after each closed trade, the closed trades by close date). In dry-run/live the
        closed trades are loaded only when they changed (one aggregate query per loop instead of every
        closed trade's ORM object each 5 s loop: a long-running bot's history grows)."""
        from freqtrade.persistence import Trade

        key = None
        if self._is_live():
            from sqlalchemy import func, select

            key = (
                start,
                *Trade.session.execute(
                    select(func.count(Trade.id), func.sum(Trade.close_profit_abs), func.max(Trade.close_date)).where(
                        Trade.is_open.is_(False)
                    )
                ).one(),
            )
            cached = getattr(self, "_realized_cache", None)
            if cached is not None and cached[0] == key:
                return cached[1], cached[2]
        closed = sorted(
            (t for t in Trade.get_trades_proxy(is_open=False) if t.close_date is not None), key=lambda t: t.close_date
        )
        curve = start + np.concatenate([[0.0], np.cumsum([t.close_profit_abs or 0.0 for t in closed])])
        if key is not None:
            self._realized_cache = (key, curve, closed)
        return curve, closed

    def _returns(self, pair: str) -> np.ndarray | None:
        """The pair's recent candle returns: its analysed frame, else (another bot's pair, dry-run/live)
        the candles freqtrade refreshes for it because `informative_pairs` names it."""
        df, _ = self.dp.get_analyzed_dataframe(pair, self.timeframe)
        if (df is None or df.empty) and self._is_live():
            try:
                df = self.dp.get_pair_dataframe(pair, self.timeframe)
            except Exception:  # no exchange data for it (yet): the decision says so and rejects
                logger.exception("risk: no candles for %s", pair)
                return None
        if df is None or df.empty:
            return None
        return df["close"].pct_change().to_numpy()[-self.risk_limits.correlation_window :]

    def informative_pairs(self):
        """The strategy's own, plus the pairs other bots on the shared ledger hold: freqtrade refreshes
        their candles every loop, so the correlation limit sees them. A strategy that overrides this
        calls super().informative_pairs() (without it, entries are refused while such pairs are held)."""
        pairs = list(super().informative_pairs())
        have = {(p[0], p[1]) for p in pairs}
        return pairs + [
            (p, self.timeframe) for p in getattr(self, "_other_pairs", []) if (p, self.timeframe) not in have
        ]

    def risk_decision(self, pair: str, stake: float, current_time: datetime) -> Decision:
        self._risk_init()
        if self.emergency_active:  # needs no state: decided before anything can fail
            return Decision(False, "emergency_stop", "emergency stop active")
        if getattr(self, "ledger_error", None):
            return Decision(False, "risk_error", f"risk ledger unreadable ({self.ledger_error})")
        state = self._equity_state(current_time)
        positions, open_returns = [], {}
        own = {t.pair for _, t in self._open_positions()}
        correlated = self.risk_limits.correlation_limit < 1.0  # at 1.0 no correlation can exceed it
        for pos in state.positions:
            if pos.pair == pair and pair in own:
                continue
            positions.append(pos)
            if not correlated:
                continue
            open_returns[pos.pair] = self._returns(pos.pair)  # None: no candles (check_entry rejects)
        return check_entry(
            self.risk_limits,
            stake=stake,
            stop_distance=abs(self.stoploss),
            equity=state.equity,
            peak_equity=state.peak,
            day_start_equity=state.day_start,
            positions=positions,
            candidate_returns=self._returns(pair),
            open_returns=open_returns,
            emergency=self.emergency_active,
        )

    # -- freqtrade callbacks --------------------------------------------------------------
    def bot_start(self, **kwargs) -> None:
        if self._is_live():
            check_api_security(self.config)
            check_live(self.config)
        self._risk_init()
        if not self.use_custom_roi:
            raise OperationalException(
                "refusing to start: the emergency exit needs use_custom_roi (RiskControlled sets it)"
            )
        if getattr(self, "ignore_roi_if_entry_signal", False):
            raise OperationalException(
                "refusing to start: ignore_roi_if_entry_signal would let an entry signal block "
                "the emergency exit; set it to false"
            )
        monitor_for(self)  # a bad `monitoring` section stops the bot here, with its key named
        if self._is_live():
            self._start_watcher()

    def confirm_trade_entry(
        self, pair, order_type, amount, rate, time_in_force, current_time, entry_tag, side, **kwargs
    ) -> bool:
        """freqtrade lets an entry through when this callback raises: nothing here may. The decision is
        fixed before any bookkeeping, and a failure anywhere (bookkeeping included) rejects."""
        allowed = False
        try:
            d = self._entry_decision(pair, float(amount * rate), current_time)
            allowed = d.allowed
            if not allowed:
                self._note_rejection(pair, d, current_time)
        except Exception:
            allowed = False
            logger.exception("risk: bookkeeping of the decision for %s failed; entry rejected", pair)
        return allowed

    def _entry_decision(self, pair: str, stake: float, current_time: datetime) -> Decision:
        try:
            d = self.risk_decision(pair, stake, current_time)
        except Exception as exc:
            d = Decision(False, "risk_error", f"{type(exc).__name__}: {exc}")
            logger.exception("risk: decision for %s failed; entry rejected", pair)
            self._alert_safely("critical", f"risk decision failed ({d.detail}); entry {pair} rejected")
        if d.allowed and getattr(self, "_ledger", None) is not None:
            try:  # reserve the entry's heat in the shared ledger before freqtrade places the order
                self._reserve(Position(pair, stake, abs(self.stoploss)))
            except Exception as exc:
                d = Decision(
                    False, "risk_error", f"could not reserve the entry in the risk ledger ({type(exc).__name__}: {exc})"
                )
                logger.exception("risk: ledger reservation for %s failed; entry rejected", pair)
        return d

    def _note_rejection(self, pair: str, d: Decision, current_time: datetime) -> None:
        counter = getattr(self, "risk_rejections", None)
        if counter is None:
            counter = self.risk_rejections = Counter()
        counter[d.reason] += 1
        if (mon := getattr(self, "_monitor", None)) is not None:
            mon.on_rejection(d.reason)
        logger.warning("risk: entry %s rejected (%s): %s [count %d]", pair, d.reason, d.detail, counter[d.reason])
        if d.reason in ("max_drawdown", "daily_loss") and self._breach_day != current_time.date():
            self._breach_day = current_time.date()  # one critical alert per breach and day
            self._alert_safely("critical", f"limit breach: {d.detail}; new entries blocked")

    def _reserve(self, entry: Position) -> None:
        """An entry just allowed counts at once (its order may not fill before another bot decides):
        re-send the state the decision was made on, plus the entry; no recomputation."""
        equity, peak, day_start, mine = self._published
        self._ledger.publish(equity, peak, day_start, [*mine, (entry.pair, entry.stake, entry.stop_distance)])

    def order_filled(self, pair, trade, order, current_time, **kwargs) -> None:
        """Republish to the shared ledger as soon as a position opens or closes; not while the emergency
        exits run (each republish delays the next exit order; the next loop publishes the result)."""
        if getattr(self, "_ledger", None) is not None and not getattr(self, "emergency_active", False):
            try:
                self._equity_state(current_time)
            except Exception:
                logger.exception("risk: ledger update after a fill failed (the next loop retries)")
        return super().order_filled(pair=pair, trade=trade, order=order, current_time=current_time, **kwargs)

    def _alert_safely(self, severity: str, text: str) -> None:
        try:
            alert(self, severity, text)
        except Exception:
            logger.exception("risk: could not send the %s alert: %s", severity, text)

    def bot_loop_start(self, current_time: datetime, **kwargs) -> None:
        """Triggers first (the operator's file and other bots' emergencies need no state), then
        the equity-based trigger, then bookkeeping: a failed write never stops an emergency."""
        self._risk_init()
        if not self.emergency_active:
            found = self._operator_trigger()
            if found:
                self.trigger_emergency(*found)
        mon = monitor_for(self)
        try:
            state = self._equity_state(current_time)  # once per loop; publishes to the ledger
        except Exception as exc:
            logger.exception("risk: equity state unavailable")
            self._alert_safely(
                "critical", f"risk state unavailable ({type(exc).__name__}: {exc}); entries will be rejected"
            )
            if mon is not None:
                mon.on_loop(current_time, None, self.risk_limits, self.emergency_active)
            try:  # fail closed: the emergency drawdown is still checked, on this bot's worst-case state
                state = self._fallback_state(current_time)
            except Exception:
                logger.exception(
                    "risk: not even this bot's own equity is available: emergency drawdown unchecked this loop"
                )
                return
            dd = drawdown(state.equity, state.peak)
            if not self.emergency_active and dd >= self.risk_limits.emergency_drawdown - EPS:
                self.trigger_emergency(
                    f"drawdown {dd:.2%} >= emergency {self.risk_limits.emergency_drawdown:.2%} "
                    "(this bot's own state, open trades without a price at their stop)"
                )
            return
        if mon is not None:
            mon.on_loop(current_time, state, self.risk_limits, self.emergency_active)
        dd = drawdown(state.equity, state.peak)
        if not self.emergency_active and dd >= self.risk_limits.emergency_drawdown - EPS:
            self.trigger_emergency(f"drawdown {dd:.2%} >= emergency {self.risk_limits.emergency_drawdown:.2%}")
        if self._summary_day is None:
            self._summary_day = current_time.date()
        elif current_time.date() != self._summary_day:
            self._summary_day = current_time.date()
            self._alert_safely(
                "info",
                f"daily summary: equity {state.equity:.2f}, drawdown {dd:.2%}, rejections {dict(self.risk_rejections)}",
            )
        if self._is_live():
            try:
                self._write_state(current_time, state)
            except Exception as exc:
                logger.exception("risk: could not write risk_state.json")
                self._alert_safely("warning", f"risk state not persisted ({type(exc).__name__}: {exc})")

    def _operator_trigger(self) -> tuple[str, float] | None:
        """(reason, wall-clock time of the operator's action) when the file exists or another bot
        raised a portfolio emergency."""
        flag = Path(self.config.get("user_data_dir", "user_data")) / self.risk_limits.emergency_file
        try:
            return f"operator file {flag.name}", flag.stat().st_mtime
        except FileNotFoundError:
            pass
        if self._ledger is not None:
            try:
                other = self._ledger.active_emergency()
            except (sqlite3.Error, OSError) as exc:
                # Not an emergency (that would liquidate every position on a locked or corrupt file):
                # entries are refused while it lasts (the decision needs the ledger) and the operator told.
                self._ledger_down(f"{type(exc).__name__}: {exc}")
                return None
            self._ledger_down(None)
            if other is not None:
                return f"portfolio emergency from {other[0]}: {other[1]}", other[2]
        return None

    def _ledger_down(self, error: str | None) -> None:
        """Alert once when the shared ledger becomes unreadable, once when it is back."""
        was = getattr(self, "ledger_error", None)
        self.ledger_error = error
        if error and not was:
            logger.error("risk: ledger unreadable (%s): entries refused until it is back", error)
            self._alert_safely(
                "critical",
                f"risk ledger unreadable ({error}): new entries refused, open trades kept; fix or remove the file",
            )
        elif was and not error:
            self._alert_safely("info", "risk ledger readable again: entries allowed")

    # -- the emergency watcher: acts within ~50 ms of the operator, not at the next bot loop --------
    def _start_watcher(self) -> None:
        if getattr(self, "_watcher", None) is not None or not self.emergency_watcher:
            return
        api = self.config.get("api_server") or {}
        if not api.get("enabled") or not self.risk_limits.emergency_rest_exit:
            logger.warning(
                "risk: no REST API exit, so an emergency exits at the bot's next loop "
                "(up to process_throttle_secs after the trigger); enable api_server to exit at once"
            )
        self._watcher = threading.Thread(target=self._watch, name="risk-emergency-watch", daemon=True)
        self._watcher.start()

    def _watch(self) -> None:
        """Wakes the moment the operator's file appears (inotify, its name only: the operator's action is
        seen at once) and every `watch_interval_s` for the shared ledger (another bot's emergency)."""
        from cryptobot_ops.flagwatch import FlagWatch

        wake = FlagWatch(Path(self.config.get("user_data_dir", "user_data")) / self.risk_limits.emergency_file)
        try:
            while not self.emergency_active:
                try:
                    found = self._operator_trigger()
                except Exception:
                    logger.exception("risk: emergency watcher check failed")
                    found = None
                if found and self.trigger_emergency(*found):
                    self._force_exit_all()
                    return
                wake.wait(self.risk_limits.watch_interval_s)
        finally:
            wake.close()

    def _force_exit_all(self) -> None:
        """Exit every open trade through the bot's own REST API (freqtrade's /forceexit)."""
        api = self.config.get("api_server") or {}
        if not api.get("enabled") or not self.risk_limits.emergency_rest_exit:
            return
        from freqtrade_client import FtRestClient

        host = api.get("listen_ip_address", "127.0.0.1")
        host = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host
        client = FtRestClient(
            f"http://{host}:{api.get('listen_port', 8080)}", api.get("username", ""), api.get("password", "")
        )
        try:
            reply = client.forceexit("all")
        except Exception:
            logger.exception("risk: emergency force exit through the REST API failed; exits follow at the next loop")
            return
        trig = self.emergency_trigger or {}
        logger.info("emergency force exit reply: %s", reply)
        logger.critical(
            "emergency exits via the REST API %.1f ms after the operator's action (%.1f ms after detection)",
            (time.time() - trig.get("action_time", time.time())) * 1e3,
            (time.monotonic() - trig.get("monotonic", time.monotonic())) * 1e3,
        )

    def _is_live(self) -> bool:
        runmode = self.config.get("runmode")
        return runmode is not None and runmode.value in ("live", "dry_run")

    @staticmethod
    def _open_positions() -> list[tuple[Position, object]]:
        """(position at risk, trade) for each open trade; stop distance measured from the entry."""
        from freqtrade.persistence import Trade

        return [
            (Position(t.pair, float(t.stake_amount), max(0.0, (t.open_rate - (t.stop_loss or 0)) / t.open_rate)), t)
            for t in Trade.get_trades_proxy(is_open=True)
        ]

    def _write_state(self, now: datetime, state: EquityState) -> None:
        """user_data/risk_state.json: what the operator tools (companion bot) show. Written when
        anything but its time changed, else once a minute (a file per 5 s loop was 2.6 % of a bot's
        CPU); its "time" says how fresh the figures are."""
        state_doc = {
            "equity": state.equity,
            "peak_equity": state.peak,
            "drawdown": drawdown(state.equity, state.peak),
            "daily_loss": daily_loss(state.equity, state.day_start),
            "portfolio_heat": portfolio_heat(state.positions, state.equity),
            "marked_to_market": True,
            "limits": {f.name: getattr(self.risk_limits, f.name) for f in fields(self.risk_limits)},
            "rejections": dict(self.risk_rejections),
            "emergency": self.emergency_trigger
            and {k: v for k, v in self.emergency_trigger.items() if k != "monotonic"},
        }
        body = json.dumps(state_doc, default=str)
        last = getattr(self, "_state_written", None)
        if last is not None and last[1] == body and now - last[0] < STATE_REFRESH:
            return
        path = Path(self.config.get("user_data_dir", "user_data")) / "risk_state.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"time": now.isoformat(), **state_doc}, default=str))
        tmp.replace(path)
        self._state_written = (now, body)

    def trigger_emergency(self, reason: str, action_time: float | None = None) -> bool:
        """Enter the emergency (once; False if already in it). `action_time`: when the operator acted."""
        self._risk_init()
        with self._emergency_lock:
            if self.emergency_active:
                return False
            self.emergency_active = True
            self.emergency_trigger = {
                "reason": reason,
                "monotonic": time.monotonic(),
                "action_time": action_time or time.time(),
                "exits": {},
            }
        logger.critical(
            "emergency detected %.1f ms after the operator's action: %s",
            (time.time() - self.emergency_trigger["action_time"]) * 1e3,
            reason,
        )
        if self._ledger is not None and not reason.startswith("portfolio emergency"):
            try:
                self._ledger.raise_emergency(reason)
            except Exception:
                logger.exception("risk: could not tell the other bots about the emergency")
        self._alert_safely("critical", f"emergency stop: {reason}; exiting all positions, entries blocked")
        return True

    def _note_emergency_exit(self, pair: str, path: str) -> None:
        trig = self.emergency_trigger
        if trig is not None and pair not in trig["exits"]:
            trig["exits"][pair] = (time.monotonic() - trig["monotonic"]) * 1e3
            logger.critical(
                "emergency exit %s %.1f ms after the trigger, %.1f ms after the operator's action (%s)",
                pair,
                trig["exits"][pair],
                (time.time() - trig["action_time"]) * 1e3,
                path,
            )

    def custom_exit(self, pair, trade, current_time, current_rate, current_profit, **kwargs):
        if getattr(self, "emergency_active", False):
            self._note_emergency_exit(pair, "custom_exit")
            return "emergency_stop"
        return None

    def custom_roi(self, pair, trade, current_time, trade_duration, entry_tag, side, **kwargs) -> float | None:
        """In an emergency any profit above -100% reaches the ROI: freqtrade checks ROI for every open
        trade, also where it skips custom_exit (no exit signals, exit_profit_only with a signal set)."""
        if getattr(self, "emergency_active", False):
            self._note_emergency_exit(pair, "roi")
            return -1e9
        return super().custom_roi(
            pair=pair,
            trade=trade,
            current_time=current_time,
            trade_duration=trade_duration,
            entry_tag=entry_tag,
            side=side,
            **kwargs,
        )
