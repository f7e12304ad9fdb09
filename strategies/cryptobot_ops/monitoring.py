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

import pandas as pd
from freqtrade.exceptions import ConfigurationError
from freqtrade.exchange import timeframe_to_msecs
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from cryptobot_ops.alerts import alert
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
        for name, lo, hi in (("min_accuracy", 0, 1), ("drawdown_warning", 0, 1), ("stale_candles", 0, math.inf)):
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
        for gauge in (self.equity, self.drawdown, self.daily_pnl, self.positions, self.heat):
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
        except Exception:
            logger.exception("monitoring: loop hook failed")

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
