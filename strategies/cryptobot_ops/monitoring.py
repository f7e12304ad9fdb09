"""Live monitoring of a dry-run/live bot: the predictions store, a Prometheus `/metrics` exporter and
alerts to people, all from inside our strategies' own callbacks (freqtrade is not patched).

Config key `monitoring` (all optional):
- `metrics_port` (default none = no exporter), `metrics_host` (127.0.0.1): prometheus_client's HTTP
  server in the bot process, scraped by Prometheus (docker/prometheus.yml, rules in docker/prometheus/);
- `predictions_db` ("predictions.sqlite" in user_data; "" = off): see `cryptobot_ops.predictions`;
- `accuracy_window` (200 settled predictions) and `min_accuracy` (0.5): the live accuracy alert;
- `stale_candles` (2): data older than this many candles is stale;
- `drawdown_warning` (0.8): warn when drawdown reaches this fraction of `risk.max_drawdown`.

Alerts (through `alerts.alert`, i.e. freqtrade's Telegram/webhook channel) fire on a change of state,
not on every loop: warning when live accuracy falls below `min_accuracy`, a pair's data goes stale or
drawdown nears its limit; info when each clears and on every 1h regime change. Critical alerts
(limit breach, emergency, risk errors) stay with the risk controls.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, fields
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
from freqtrade.exceptions import ConfigurationError
from freqtrade.exchange import timeframe_to_msecs
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from cryptobot_ops.alerts import alert
from cryptobot_ops.drift import correlation_zscore, feature_drift, volatility_ratio
from cryptobot_ops.predictions import ENSEMBLE, Prediction, PredictionStore

logger = logging.getLogger(__name__)
TARGET, CONFIDENCE, BASE_PREFIX = "&-target", "&-confidence", "&-base_"  # FreqAI columns (freqaimodels)
REGIME_COLUMN = "regime_1h"
REGIMES = ("trending_bull", "trending_bear", "sideways", "high_volatility", "unknown")


@dataclass(frozen=True)
class MonitoringSettings:
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"
    predictions_db: str = "predictions.sqlite"
    accuracy_window: int = 200
    min_accuracy: float = 0.5
    stale_candles: float = 2.0
    drawdown_warning: float = 0.8
    drift_candles: int | None = None  # recent window of the drift and market checks (None: one day)
    drift_psi: float = 0.25  # a feature with a PSI above this has shifted
    drift_share: float = 0.2  # the drift alert: this share of the features shifted
    unusual_volatility: float = 3.0  # volatility ratio above this (or below its inverse) is unusual
    unusual_correlation_z: float = 3.0  # |z| of the correlation with the reference pair above this
    market_reference: str | None = None  # the correlation's other pair (None: BTC/<stake> when held)

    @classmethod
    def from_config(cls, config: dict) -> MonitoringSettings:
        raw = config.get("monitoring") or {}
        if not isinstance(raw, dict):
            raise ConfigurationError("monitoring must be an object")
        unknown = set(raw) - {f.name for f in fields(cls)}
        if unknown:
            raise ConfigurationError(
                f"unknown monitoring settings {sorted(unknown)}; known: {[f.name for f in fields(cls)]}"
            )
        s = cls(**raw)
        port = s.metrics_port
        if port is not None and (isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536):
            raise ConfigurationError(f"monitoring.metrics_port must be a TCP port (1-65535) or null, got {port!r}")
        for name in ("metrics_host", "predictions_db"):
            if not isinstance(getattr(s, name), str):
                raise ConfigurationError(f"monitoring.{name} must be a string, got {getattr(s, name)!r}")
        if isinstance(s.accuracy_window, bool) or not isinstance(s.accuracy_window, int) or s.accuracy_window < 10:
            raise ConfigurationError(f"monitoring.accuracy_window must be an integer >= 10, got {s.accuracy_window!r}")
        if s.drift_candles is not None and (
            isinstance(s.drift_candles, bool) or not isinstance(s.drift_candles, int) or s.drift_candles < 20
        ):
            raise ConfigurationError(
                f"monitoring.drift_candles must be an integer >= 20 or null, got {s.drift_candles!r}"
            )
        if s.market_reference is not None and not isinstance(s.market_reference, str):
            raise ConfigurationError(f"monitoring.market_reference must be a pair or null, got {s.market_reference!r}")
        for name, lo, hi in (
            ("min_accuracy", 0, 1),
            ("drawdown_warning", 0, 1),
            ("stale_candles", 0, math.inf),
            ("drift_psi", 0, math.inf),
            ("drift_share", 0, 1),
            ("unusual_volatility", 1, math.inf),
            ("unusual_correlation_z", 0, math.inf),
        ):
            v = getattr(s, name)
            if isinstance(v, bool) or not isinstance(v, int | float) or not lo < v < hi:
                raise ConfigurationError(f"monitoring.{name} must be a number in ({lo}, {hi}), got {v!r}")
        return s


class BotMetrics:
    """The bot's Prometheus metrics, in their own registry (names documented in docs/monitoring.md)."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.equity = Gauge("cryptobot_equity", "Mark-to-market equity in stake currency", registry=r)
        self.drawdown = Gauge("cryptobot_drawdown_ratio", "Drawdown from peak equity (fraction)", registry=r)
        self.daily_pnl = Gauge(
            "cryptobot_daily_pnl_ratio", "Equity change since the UTC day's start (fraction)", registry=r
        )
        self.positions = Gauge(
            "cryptobot_open_positions", "Open positions (every bot sharing the risk ledger)", registry=r
        )
        self.heat = Gauge("cryptobot_portfolio_heat_ratio", "Sum of stake x stop distance over equity", registry=r)
        self.limit = Gauge("cryptobot_risk_limit_ratio", "Configured risk limits (fractions)", ["limit"], registry=r)
        self.rejections = Counter(
            "cryptobot_risk_rejections", "Entries rejected by the risk controls", ["reason"], registry=r
        )
        self.emergency = Gauge("cryptobot_emergency_active", "1 while the emergency stop is active", registry=r)
        self.accuracy = Gauge(
            "cryptobot_model_accuracy_ratio",
            "Direction accuracy of the last settled predictions",
            ["model", "pair"],
            registry=r,
        )
        self.scored = Gauge(
            "cryptobot_model_predictions_scored",
            "Settled predictions behind the accuracy",
            ["model", "pair"],
            registry=r,
        )
        self.ic = Gauge("cryptobot_model_ic", "Rank IC of the last settled predictions", ["model", "pair"], registry=r)
        self.recorded = Counter(
            "cryptobot_predictions_recorded", "Predictions written to the store", ["pair"], registry=r
        )
        self.latency = Histogram(
            "cryptobot_prediction_latency_seconds",
            "FreqAI analysis + prediction per candle",
            ["pair"],
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.candle_age = Gauge(
            "cryptobot_candle_age_candles", "Candles since the last closed candle the bot holds", ["pair"], registry=r
        )
        self.regime = Gauge("cryptobot_regime", "1 for the pair's current 1h regime", ["pair", "regime"], registry=r)
        self.regime_changes = Counter("cryptobot_regime_changes", "1h regime changes seen live", ["pair"], registry=r)
        self.loop = Gauge("cryptobot_last_loop_timestamp_seconds", "Wall time of the bot's last loop", registry=r)
        self.psi_max = Gauge(
            "cryptobot_feature_psi_max", "Largest feature PSI, recent vs training window", ["pair"], registry=r
        )
        self.drifted = Gauge("cryptobot_features_drifted", "Features with a PSI above drift_psi", ["pair"], registry=r)
        self.monitored = Gauge("cryptobot_features_monitored", "Features in the drift check", ["pair"], registry=r)
        self.vol_ratio = Gauge(
            "cryptobot_market_volatility_ratio",
            "Recent realized volatility over its median before",
            ["pair"],
            registry=r,
        )
        self.corr = Gauge(
            "cryptobot_market_correlation", "Recent return correlation with the reference pair", ["pair"], registry=r
        )
        self.corr_z = Gauge(
            "cryptobot_market_correlation_zscore", "That correlation against its earlier range", ["pair"], registry=r
        )
        self.trained = Gauge(
            "cryptobot_model_trained_timestamp_seconds",
            "When FreqAI last trained the pair's model",
            ["pair"],
            registry=r,
        )
        self.signals = Counter("cryptobot_signals", "Signals on newly closed candles", ["pair", "side"], registry=r)
        self.closed = Gauge("cryptobot_closed_trades", "Closed trades in the bot's database", registry=r)
        self.win_rate = Gauge("cryptobot_win_rate_last_100", "Winning share of the last 100 closed trades", registry=r)
        self.sharpe_30d = Gauge(
            "cryptobot_rolling_sharpe_30d", "Annualized Sharpe of daily realized PnL over 30 days", registry=r
        )
        for gauge in (
            self.equity,
            self.drawdown,
            self.daily_pnl,
            self.positions,
            self.heat,
            self.win_rate,
            self.sharpe_30d,
        ):
            gauge.set(math.nan)  # unknown until the first loop: never a plausible-looking 0
        for reason in ("emergency_stop", "risk_error", "max_drawdown", "daily_loss", "portfolio_heat", "correlation"):
            self.rejections.labels(reason)  # every reason exported from the start (rate() needs the zero)

    def serve(self, host: str, port: int) -> None:
        start_http_server(port, addr=host, registry=self.registry)


class Monitor:
    """One per strategy instance in dry-run/live; every hook is exception-safe (monitoring never stops trading)."""

    def __init__(self, strategy) -> None:
        self.strategy = strategy
        self.settings = MonitoringSettings.from_config(strategy.config)
        self.metrics = BotMetrics()
        self.store: PredictionStore | None = None
        if self.settings.predictions_db:
            path = Path(self.settings.predictions_db)
            if not path.is_absolute():
                path = Path(strategy.config.get("user_data_dir", "user_data")) / path
            self.store = PredictionStore(path)
        self._state: dict[str, bool] = {}  # alert condition -> active
        self._regime: dict[str, str] = {}
        self._signal_seen: dict[str, object] = {}  # pair -> the last analysed candle's date
        self._trades_key: object = None  # the risk controls' closed-trades key last read
        self._closed_count: int | None = None
        if self.settings.metrics_port:
            self.metrics.serve(self.settings.metrics_host, self.settings.metrics_port)
            logger.info(
                "monitoring: Prometheus metrics on http://%s:%d/metrics",
                self.settings.metrics_host,
                self.settings.metrics_port,
            )

    # -- alerts on a change of state ------------------------------------------------------
    def _say(self, severity: str, text: str) -> None:
        try:
            alert(self.strategy, severity, text)
        except Exception:
            logger.exception("monitoring: could not send the %s alert: %s", severity, text)

    def _condition(self, key: str, active: bool, warning: str, cleared: str) -> None:
        if active == self._state.get(key, False):
            return
        self._state[key] = active
        self._say("warning" if active else "info", warning if active else cleared)

    # -- hooks ----------------------------------------------------------------------------
    def on_analysis(self, dataframe: pd.DataFrame, pair: str, latency_s: float | None) -> None:
        """After the strategy's indicators: record the live prediction, settle old ones, regime change."""
        try:
            if latency_s is not None:
                self.metrics.latency.labels(pair).observe(latency_s)
            if REGIME_COLUMN in dataframe and len(dataframe):
                self._on_regime(pair, str(dataframe[REGIME_COLUMN].iloc[-1]))
            self._market_checks_safely(dataframe, pair)
            if self.store is not None and TARGET in dataframe and len(dataframe):
                self._record(dataframe, pair)
        except Exception as exc:
            logger.exception("monitoring: analysis hook failed for %s", pair)
            self._condition(
                f"store:{pair}",
                True,
                f"predictions of {pair} not recorded ({type(exc).__name__}: {exc})",
                f"predictions of {pair} recorded again",
            )

    def _recent(self) -> int:
        if self.settings.drift_candles:
            return self.settings.drift_candles
        return max(20, int(86_400_000 // timeframe_to_msecs(self.strategy.timeframe)))

    def _market_checks_safely(self, df: pd.DataFrame, pair: str) -> None:
        failed = None
        try:
            self._market_checks(df, pair)
        except Exception as exc:
            logger.exception("monitoring: drift and market checks failed for %s", pair)
            failed = f"{type(exc).__name__}: {exc}"
        self._condition(
            f"checks:{pair}",
            failed is not None,
            f"drift and market checks of {pair} failed ({failed})",
            f"drift and market checks of {pair} back",
        )

    def _market_checks(self, df: pd.DataFrame, pair: str) -> None:
        """Feature drift (FreqAI frames), unusual volatility and correlation; alerts on a change of state."""
        recent, m, st = self._recent(), self.metrics, self.settings
        info = getattr(getattr(self.strategy, "freqai", None), "dd", None)
        trained = float(((info.pair_dict.get(pair) or {}).get("trained_timestamp") or 0) if info else 0)
        if trained:
            m.trained.labels(pair).set(trained)
        fa = self.strategy.config.get("freqai") or {}
        train_days = float(fa.get("train_period_days") or 30)
        reference = int(train_days * 86_400_000 // timeframe_to_msecs(self.strategy.timeframe))
        scores = {k: v for k, v in feature_drift(df, recent, reference).items() if math.isfinite(v)}
        if scores:
            shifted = sum(v > st.drift_psi for v in scores.values())
            worst = max(scores, key=scores.get)
            m.psi_max.labels(pair).set(scores[worst])
            m.drifted.labels(pair).set(shifted)
            m.monitored.labels(pair).set(len(scores))
            self._condition(
                f"drift:{pair}",
                shifted >= st.drift_share * len(scores),
                f"model drift {pair}: {shifted} of {len(scores)} features shifted (PSI > {st.drift_psi:g}; "
                f"largest {worst} {scores[worst]:.2f}) between the last {recent} candles and the training window",
                f"model drift {pair} cleared: {shifted} of {len(scores)} features shifted",
            )
        ratio = volatility_ratio(df["close"], recent)
        m.vol_ratio.labels(pair).set(ratio)
        if math.isfinite(ratio):
            self._condition(
                f"volatility:{pair}",
                ratio > st.unusual_volatility or ratio < 1 / st.unusual_volatility,
                f"unusual market {pair}: volatility {ratio:.1f}x its usual level over the last {recent} candles",
                f"volatility {pair} back in its usual range ({ratio:.1f}x)",
            )
        ref = st.market_reference or f"BTC/{self.strategy.config.get('stake_currency', 'USDT')}"
        if ref != pair and self.strategy.dp is not None and ref in self.strategy.dp.current_whitelist():
            other = self.strategy.dp.get_pair_dataframe(ref, self.strategy.timeframe)
            if other is not None and len(other):
                close = df.set_index("date")["close"]
                corr, z = correlation_zscore(close, other.set_index("date")["close"].reindex(close.index), recent)
                m.corr.labels(pair).set(corr)
                m.corr_z.labels(pair).set(z)
                if math.isfinite(z):
                    self._condition(
                        f"correlation:{pair}",
                        abs(z) > st.unusual_correlation_z,
                        f"unusual market {pair}: correlation with {ref} {corr:.2f} ({z:+.1f} sd from its range)",
                        f"correlation {pair} with {ref} back in its range ({corr:.2f})",
                    )

    def _on_regime(self, pair: str, regime: str) -> None:
        previous = self._regime.get(pair)
        self._regime[pair] = regime
        for name in REGIMES:
            self.metrics.regime.labels(pair, name).set(1.0 if name == regime else 0.0)
        if previous is not None and previous != regime:
            self.metrics.regime_changes.labels(pair).inc()
            self._say("info", f"regime change {pair}: {previous} -> {regime}")

    def _record(self, df: pd.DataFrame, pair: str) -> None:
        s = self.strategy
        info = s.freqai.dd.pair_dict.get(pair, {})
        trained = float(info.get("trained_timestamp") or 0)
        last = df.iloc[-1]
        do_predict = int(last.get("do_predict", 0))
        if not trained or (do_predict == 0 and float(last[TARGET]) == 0.0):  # no model yet: FreqAI's zeros
            return
        tf = s.timeframe
        tf_ms = timeframe_to_msecs(tf)
        horizon = int(s.freqai_info["feature_parameters"]["label_period_candles"])
        candle_ms = int(pd.Timestamp(last["date"]).value // 1_000_000)
        regime = str(last[REGIME_COLUMN]) if REGIME_COLUMN in df else None
        common = {
            "pair": pair,
            "candle_ms": candle_ms,
            "timeframe": tf,
            "horizon": horizon,
            "do_predict": do_predict,
            "regime": regime,
            "model_id": f"{s.freqai_info.get('identifier')}/{info.get('model_filename', '')}",
            "model_age_s": max(0.0, time.time() - trained),
            "close": float(last["close"]),
        }
        conf = last.get(CONFIDENCE)
        rows = [
            Prediction(
                model=ENSEMBLE,
                prediction=float(last[TARGET]),
                confidence=None if conf is None else float(conf),
                **common,
            )
        ]
        rows += [
            Prediction(model=c.removeprefix(BASE_PREFIX), prediction=float(last[c]), confidence=None, **common)
            for c in df.columns
            if c.startswith(BASE_PREFIX)
            and not c.endswith(("_mean", "_std"))  # FreqAI's statistics
            and math.isfinite(float(last[c]))
        ]
        added = self.store.record(rows)
        if added:
            self.metrics.recorded.labels(pair).inc(added)
        if self.store.settle(pair, tf, df[["date", "close"]], tf_ms):
            self._refresh_scores()

    def _refresh_scores(self) -> None:
        scores = self.store.scores(last=self.settings.accuracy_window)
        for row in scores.itertuples():
            self.metrics.accuracy.labels(row.model, row.pair).set(row.accuracy)
            self.metrics.scored.labels(row.model, row.pair).set(row.n)
            self.metrics.ic.labels(row.model, row.pair).set(row.ic if math.isfinite(row.ic) else 0.0)
            if row.model == ENSEMBLE:
                low = row.n >= self.settings.accuracy_window and row.accuracy < self.settings.min_accuracy
                self._condition(
                    f"accuracy:{row.pair}",
                    low,
                    f"model accuracy {row.pair}: {row.accuracy:.1%} over the last {row.n} predictions "
                    f"(95% CI {row.accuracy_lo:.1%}-{row.accuracy_hi:.1%}) < {self.settings.min_accuracy:.0%}",
                    f"model accuracy {row.pair} back to {row.accuracy:.1%} over {row.n} predictions",
                )

    def on_rejection(self, reason: str) -> None:
        self.metrics.rejections.labels(reason).inc()

    def on_loop(self, now: datetime, state, limits, emergency: bool) -> None:
        """Once per bot loop with the risk controls' mark-to-market state (None when unavailable)."""
        from cryptobot_ops.risk import daily_loss, drawdown, portfolio_heat

        try:
            m = self.metrics
            m.loop.set(time.time())
            m.emergency.set(1.0 if emergency else 0.0)
            for name in ("max_drawdown", "daily_loss", "portfolio_heat", "emergency_drawdown"):
                m.limit.labels(name).set(getattr(limits, name))
            if state is not None:
                dd = drawdown(state.equity, state.peak)
                m.equity.set(state.equity)
                m.drawdown.set(dd)
                m.daily_pnl.set(-daily_loss(state.equity, state.day_start))
                m.positions.set(len(state.positions))
                m.heat.set(portfolio_heat(state.positions, state.equity))
                near = dd >= self.settings.drawdown_warning * limits.max_drawdown
                self._condition(
                    "drawdown",
                    near,
                    f"drawdown {dd:.2%} is near its limit {limits.max_drawdown:.0%}",
                    f"drawdown {dd:.2%} back below {self.settings.drawdown_warning:.0%} of its limit",
                )
            self._candle_ages(now)
            self._signals()
            self._trade_stats()
        except Exception:
            logger.exception("monitoring: loop hook failed")

    def _signals(self) -> None:
        """Entry/exit signals on each newly analysed candle (the analysed frame's last row, once)."""
        s, seen = self.strategy, self._signal_seen
        for pair in s.dp.current_whitelist():
            df, _ = s.dp.get_analyzed_dataframe(pair, s.timeframe)
            if df is None or df.empty or seen.get(pair) == df["date"].iat[-1]:
                continue
            seen[pair] = df["date"].iat[-1]
            for column, side in (("enter_long", "entry"), ("exit_long", "exit")):
                if column in df and df[column].iat[-1] == 1:
                    self.metrics.signals.labels(pair, side).inc()
                    if side == "entry":
                        self._say("info", f"new entry signal {pair} on the {df['date'].iat[-1]} candle")

    def _trade_stats(self) -> None:
        """Closed trades, win rate of the last 100, 30-day Sharpe of daily realized PnL (when they change)."""
        cache = getattr(self.strategy, "_realized_cache", None)  # the risk controls' closed trades
        if cache is None or cache[0] == self._trades_key:
            return
        self._trades_key, closed, start = cache[0], cache[2], float(cache[1][0])
        n_before = len(closed) if self._closed_count is None else self._closed_count  # crossed while running
        self._closed_count = len(closed)
        self.metrics.closed.set(len(closed))
        profits = [float(t.close_profit_abs or 0.0) for t in closed]
        if profits:
            last = profits[-100:]
            self.metrics.win_rate.set(sum(p > 0 for p in last) / len(last))
        self.metrics.sharpe_30d.set(daily_sharpe([t.close_date for t in closed], profits, start))
        for milestone in (10, 50, 100, 250, 500, 1000):
            if n_before < milestone <= len(closed):
                self._say(
                    "info",
                    f"milestone: {milestone} closed trades, realized PnL {sum(profits):+.2f}",
                )

    def _candle_ages(self, now: datetime) -> None:
        s = self.strategy
        tf_ms = timeframe_to_msecs(s.timeframe)
        now_ms = pd.Timestamp(now).value // 1_000_000
        for pair in s.dp.current_whitelist():
            df = s.dp.get_pair_dataframe(pair, s.timeframe)
            if df is None or df.empty:
                continue
            closed_ms = pd.Timestamp(df["date"].iloc[-1]).value // 1_000_000 + tf_ms  # its close time
            age = max(0.0, (now_ms - closed_ms) / tf_ms)
            self.metrics.candle_age.labels(pair).set(age)
            self._condition(
                f"stale:{pair}",
                age > self.settings.stale_candles,
                f"data stale {pair}: last closed candle {age:.1f} candles old (> {self.settings.stale_candles:g})",
                f"data fresh again {pair}",
            )


def daily_sharpe(close_dates, profits, start_balance: float, days: int = 30) -> float:
    """Annualized Sharpe of daily realized returns over the last `days` UTC days that end with the
    latest close (days without a close count as 0); NaN with fewer than 2 days or no spread."""
    if not len(profits) or start_balance <= 0:
        return math.nan
    dates = pd.DatetimeIndex(pd.to_datetime(close_dates, utc=True)).normalize()
    pnl = pd.Series(np.asarray(profits, dtype=float), index=dates).groupby(level=0).sum()
    end = dates.max()
    days_index = pd.date_range(end - pd.Timedelta(days=days - 1), end, freq="D")
    daily = pnl.reindex(days_index, fill_value=0.0) / start_balance
    sd = float(daily.std(ddof=1))
    return float(daily.mean() / sd * math.sqrt(365)) if len(daily) > 1 and sd > 0 else math.nan


def monitor_for(strategy) -> Monitor | None:
    """The strategy's monitor, created on first use in dry-run/live (None in backtests and hyperopt)."""
    mon = getattr(strategy, "_monitor", None)
    if mon is not None:
        return mon
    runmode = strategy.config.get("runmode")
    if runmode is None or runmode.value not in ("live", "dry_run"):
        return None
    strategy._monitor = Monitor(strategy)
    return strategy._monitor
