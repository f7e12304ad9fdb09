"""Monitoring without a bot: the predictions store (outcomes, scores, durability under kill -9), the
settings' errors, the exporter's text, and the Prometheus alert rules under promtool."""

from __future__ import annotations

import json
import math
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import requests
import yaml
from freqtrade.exceptions import ConfigurationError
from prometheus_client.parser import text_string_to_metric_families

from cryptobot_ops import monitoring
from cryptobot_ops.monitoring import BotMetrics, Monitor, MonitoringSettings
from cryptobot_ops.predictions import ENSEMBLE, Prediction, PredictionStore, wilson
from simulation.gateway.process import free_port
from simulation.paths import REPO_ROOT

TF_MS = 300_000
T0 = int(pd.Timestamp("2024-03-01", tz="UTC").value // 1_000_000)


def _pred(
    i: int, value: float, model: str = ENSEMBLE, close: float = 100.0, pair: str = "BTC/USDT", **kw
) -> Prediction:
    base = {
        "pair": pair,
        "model": model,
        "candle_ms": T0 + i * TF_MS,
        "timeframe": "5m",
        "horizon": 2,
        "prediction": value,
        "confidence": 0.6,
        "do_predict": 1,
        "regime": "sideways",
        "model_id": "m/1",
        "model_age_s": 60.0,
        "close": close,
    }
    return Prediction(**{**base, **kw})


def _candles(closes: list[float]) -> pd.DataFrame:
    return pd.DataFrame(
        {"date": pd.to_datetime([T0 + i * TF_MS for i in range(len(closes))], unit="ms", utc=True), "close": closes}
    )


def test_outcomes_are_the_training_label_and_scores_count_hits(tmp_path):
    store = PredictionStore(tmp_path / "p.sqlite")
    closes = [100, 101, 99, 102, 104, 103, 100, 100]
    # predictions at candles 0..5 with signs: right, wrong, right, wrong, right (the last is unsettled)
    signs = [+1, +1, +1, +1, -1, +1]
    assert store.record(_pred(i, 0.01 * s, close=closes[i]) for i, s in enumerate(signs)) == 6
    assert store.settle("BTC/USDT", "5m", _candles(closes[:7]), TF_MS) == 5  # candle 7 missing: row 5 waits
    df = store.frame()
    settled = df.dropna(subset=["outcome"])
    expected = [math.log(closes[i + 2] / closes[i]) for i in range(5)]
    assert np.allclose(settled["outcome"], expected)
    assert settled["outcome_ms"].tolist() == [T0 + (i + 2) * TF_MS for i in range(5)]
    hits = sum(np.sign(s) == np.sign(e) for s, e in zip(signs, expected, strict=False))
    s = store.scores().iloc[0]
    assert (s["n"], s["hits"]) == (5, hits) and s["accuracy"] == pytest.approx(hits / 5)
    assert s["accuracy_lo"] < s["accuracy"] < s["accuracy_hi"]
    assert store.settle("BTC/USDT", "5m", _candles(closes), TF_MS) == 1  # the last one once its candle closed
    assert store.settle("BTC/USDT", "5m", _candles(closes), TF_MS) == 0  # settled once


def test_first_prediction_of_a_candle_is_kept_and_gaps_are_reported(tmp_path):
    path = tmp_path / "p.sqlite"
    store = PredictionStore(path)
    store.record([_pred(0, 0.01), _pred(1, 0.02), _pred(1, 0.02, model="lightgbm")])
    assert store.record([_pred(1, -0.5)]) == 0  # a restarted bot re-analysing candle 1
    store = PredictionStore(path)  # reopened: same rows
    df = store.frame()
    assert (
        len(df) == 3
        and df.loc[(df["model"] == ENSEMBLE) & (df["candle_ms"] == T0 + TF_MS), "prediction"].item() == 0.02
    )
    store.record([_pred(4, 0.01)])
    assert store.missing_candles("BTC/USDT", TF_MS) == [T0 + 2 * TF_MS, T0 + 3 * TF_MS]


def test_a_year_long_gap_and_a_thousand_series_are_answered_without_building_them(tmp_path):
    """Issue 33 (low): missing_candles built every candle between the first and the last prediction (a
    row stamped at 1970 made it a range of billions), and frame(last=) failed above 500 series (SQLite's
    compound SELECT limit)."""
    store = PredictionStore(tmp_path / "p.sqlite")
    year = 365 * 288
    store.record([_pred(0, 0.01), _pred(1, 0.01), _pred(year, 0.01)])
    assert store.missing_ranges("BTC/USDT", TF_MS) == [(T0 + 2 * TF_MS, T0 + (year - 1) * TF_MS)]
    assert store.missing_candles("BTC/USDT", TF_MS, limit=3) == [T0 + 2 * TF_MS, T0 + 3 * TF_MS, T0 + 4 * TF_MS]
    assert len(store.missing_candles("BTC/USDT", TF_MS)) == 10_000
    store.record([_pred(i, 0.01, model=f"m{k}") for k in range(1_000) for i in range(2)])
    last = store.frame(last=1)
    assert (
        len(last) == 1_001
        and (last.groupby("model")["candle_ms"].max() == last.groupby("model")["candle_ms"].min()).all()
    )


def test_scores_per_model_window_and_do_predict(tmp_path):
    store = PredictionStore(tmp_path / "p.sqlite")
    closes = list(100 + np.cumsum(np.random.default_rng(0).normal(0, 1, 60)))
    rows = []
    for i in range(55):
        truth = math.log(closes[i + 2] / closes[i])
        rows.append(_pred(i, truth, model="oracle", close=closes[i]))  # always right
        rows.append(_pred(i, -truth, model="contrarian", close=closes[i]))  # always wrong
        rows.append(_pred(i, truth, close=closes[i], do_predict=0 if i % 2 else 1))
    store.record(rows)
    store.settle("BTC/USDT", "5m", _candles(closes), TF_MS)
    sc = store.scores().set_index("model")
    assert sc.loc["oracle", "accuracy"] == 1.0 and sc.loc["contrarian", "accuracy"] == 0.0
    assert sc.loc["oracle", "ic"] == pytest.approx(1.0) and sc.loc["contrarian", "ic"] == pytest.approx(-1.0)
    assert sc.loc[ENSEMBLE, "n"] == 28  # outliers (do_predict 0) are not what a strategy acts on
    assert store.scores(last=10).set_index("model").loc["oracle", "n"] == 10
    assert store.scores(last=10).set_index("model").loc["oracle", "first_ms"] == T0 + 45 * TF_MS


def test_wilson_interval():
    lo, hi = wilson(55, 100)
    assert lo == pytest.approx(0.4524, abs=1e-4) and hi == pytest.approx(0.6438, abs=1e-4)
    assert wilson(0, 10)[0] == pytest.approx(0.0, abs=1e-12) and all(math.isnan(v) for v in wilson(0, 0))


def test_bad_predictions_are_refused(tmp_path):
    with pytest.raises(ValueError, match="not finite"):
        _pred(0, float("nan"))
    with pytest.raises(ValueError, match="positive"):
        _pred(0, 0.1, close=0.0)


WRITER = """
import sys, time
from cryptobot_ops.predictions import Prediction, PredictionStore
store = PredictionStore(sys.argv[1])
i = 0
while True:
    store.record([Prediction("BTC/USDT", m, {t0} + i * 300000, "5m", 2, 0.01, None, 1, None, None, None, 100.0)
                  for m in ("ensemble", "lightgbm")])
    print(i, flush=True)
    i += 1
"""


def test_rows_committed_before_kill_9_survive_and_none_is_half_written(tmp_path):
    path = tmp_path / "p.sqlite"
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER.format(t0=T0), str(path)], stdout=subprocess.PIPE, text=True, cwd=REPO_ROOT
    )
    acked = -1
    deadline = time.monotonic() + 60
    while acked < 50 and time.monotonic() < deadline:
        acked = int(proc.stdout.readline())
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    df = PredictionStore(path).frame()
    per_candle = df.groupby("candle_ms")["model"].count()
    assert (per_candle == 2).all(), "a candle's predictions are one transaction"
    assert len(per_candle) >= acked + 1, "every acknowledged write is on disk"
    assert not df.duplicated(["pair", "model", "candle_ms"]).any()


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"metrics_port": "9101"}, "metrics_port"),
        ({"metrics_port": 0}, "metrics_port"),
        ({"min_accuracy": 1.5}, "min_accuracy"),
        ({"accuracy_window": 5}, "accuracy_window"),
        ({"stale_candles": True}, "stale_candles"),
        ({"metric_port": 9101}, "unknown monitoring settings"),
    ],
)
def test_bad_monitoring_settings_name_their_key(section, message):
    with pytest.raises(ConfigurationError, match=message):
        MonitoringSettings.from_config({"monitoring": section})


def test_column_names_match_the_models():
    from freqaimodels.estimators.freqai_adapter import BASE_PREFIX, CONFIDENCE
    from freqaimodels.features import TARGET
    from regime.detector import REGIMES

    assert (monitoring.TARGET, monitoring.CONFIDENCE, monitoring.BASE_PREFIX) == (TARGET, CONFIDENCE, BASE_PREFIX)
    assert set(REGIMES) <= set(monitoring.REGIMES)


class _Strategy(SimpleNamespace):
    """The few attributes the monitor reads from a strategy, and the messages freqtrade would send."""


def test_exporter_serves_the_documented_metrics_and_alerts_fire_on_state_changes(tmp_path):
    sent = []
    port = free_port()
    strategy = _Strategy(
        config={"user_data_dir": str(tmp_path), "monitoring": {"metrics_port": port, "accuracy_window": 10}},
        dp=SimpleNamespace(send_msg=lambda msg, always_send=False: sent.append(msg)),
    )
    mon = Monitor(strategy)
    limits = SimpleNamespace(max_drawdown=0.1, daily_loss=0.03, portfolio_heat=0.15, emergency_drawdown=0.15)
    state = SimpleNamespace(equity=910.0, peak=1000.0, day_start=950.0, positions=[])
    strategy.dp.current_whitelist = list
    mon.on_loop(pd.Timestamp.now(tz="UTC").to_pydatetime(), state, limits, emergency=False)
    mon.on_loop(pd.Timestamp.now(tz="UTC").to_pydatetime(), state, limits, emergency=False)
    mon.on_rejection("portfolio_heat")
    mon._on_regime("BTC/USDT", "sideways")
    mon._on_regime("BTC/USDT", "trending_bull")
    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    values = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }
    assert values[("cryptobot_drawdown_ratio", ())] == pytest.approx(0.09)
    assert values[("cryptobot_daily_pnl_ratio", ())] == pytest.approx(910 / 950 - 1)
    assert values[("cryptobot_risk_rejections_total", (("reason", "portfolio_heat"),))] == 1
    assert values[("cryptobot_risk_rejections_total", (("reason", "daily_loss"),))] == 0
    assert values[("cryptobot_regime", (("pair", "BTC/USDT"), ("regime", "trending_bull")))] == 1
    assert values[("cryptobot_regime_changes_total", (("pair", "BTC/USDT"),))] == 1
    assert values[("cryptobot_risk_limit_ratio", (("limit", "max_drawdown"),))] == 0.1
    # warnings and info through freqtrade's channel, once per change of state
    assert sent == [
        "[WARNING] drawdown 9.00% is near its limit 10%",
        "[INFO] regime change BTC/USDT: sideways -> trending_bull",
    ]
    mon.on_loop(
        pd.Timestamp.now(tz="UTC").to_pydatetime(), SimpleNamespace(**{**vars(state), "equity": 990.0}), limits, False
    )
    assert sent[-1].startswith("[INFO] drawdown 1.00% back below")


def test_accuracy_alert_from_the_store(tmp_path):
    sent = []
    strategy = _Strategy(
        config={"user_data_dir": str(tmp_path), "monitoring": {"accuracy_window": 10}},
        dp=SimpleNamespace(send_msg=lambda msg, always_send=False: sent.append(msg)),
    )
    mon = Monitor(strategy)
    closes = [100.0 + i for i in range(30)]  # rising: a model predicting falls is always wrong
    mon.store.record([_pred(i, -0.01, close=closes[i]) for i in range(25)])
    mon.store.settle("BTC/USDT", "5m", _candles(closes), TF_MS)
    mon._refresh_scores()
    assert sent and sent[0].startswith("[WARNING] model accuracy BTC/USDT: 0.0% over the last 10 predictions")


def test_alert_rules_pass_promtool_and_compose_scrapes_every_bot():
    promtool = shutil.which("promtool")
    assert promtool, "promtool comes with Debian's prometheus package (make setup installs it)"
    rules = REPO_ROOT / "docker" / "prometheus"
    out = subprocess.run(
        [promtool, "test", "rules", "alerts_test.yml"], cwd=rules, capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stdout + out.stderr
    checked = subprocess.run(
        [promtool, "check", "rules", "alerts.yml"], cwd=rules, capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0 and "17 rules found" in checked.stdout, checked.stdout + checked.stderr
    names = {r["alert"] for g in yaml.safe_load((rules / "alerts.yml").read_text())["groups"] for r in g["rules"]}
    tested = {
        t["alertname"]
        for case in yaml.safe_load((rules / "alerts_test.yml").read_text())["tests"]
        for t in case["alert_rule_test"]
    }
    assert (
        names - {"PredictionLatencyHigh"} <= tested
    )  # each rule's firing is tested (latency: same shape as the gateway's)
    # compose: every bot service exports on the port the scrape config looks for
    compose = {
        **yaml.safe_load((REPO_ROOT / "docker" / "docker-compose.yml").read_text())["services"],
        **yaml.safe_load((REPO_ROOT / "docker" / "docker-compose.live.yml").read_text())["services"],
    }
    prom = yaml.safe_load((REPO_ROOT / "docker" / "prometheus.yml").read_text())
    jobs = {j["job_name"]: j["dns_sd_configs"][0] for j in prom["scrape_configs"]}
    bots = {n for n in compose if n.startswith("bot-")}
    assert set(jobs["bots"]["names"]) == bots and jobs["gateway"]["names"] == ["gateway"]
    for name in bots:
        env = compose[name].get("environment") or {}
        merged = {**(compose.get("bot-simulation", {}).get("environment") or {}), **env}
        assert str(merged.get("FREQTRADE__MONITORING__METRICS_PORT")) == str(jobs["bots"]["port"]), name
    mounted = " ".join(compose["prometheus"]["volumes"])
    assert "alerts.yml:/etc/prometheus/alerts.yml" in mounted and prom["rule_files"] == ["/etc/prometheus/alerts.yml"]


def test_trading_dashboard_queries_metrics_the_bots_export():
    exported = {m.name for m in BotMetrics().registry.collect()}
    dash = json.loads((REPO_ROOT / "docker" / "grafana" / "dashboards" / "cryptobot-trading.json").read_text())
    for panel in dash["panels"]:
        for target in panel["targets"]:
            names = set(re.findall(r"\b(cryptobot_[a-z0-9_]+?)(?:_total|_bucket)?\b", target["expr"]))
            assert names and names <= exported, (panel["title"], names - exported)


def test_companion_accuracy_text_without_and_with_settled_predictions(tmp_path):
    from cryptobot_ops.companion.bot import live_accuracy_text

    assert "no predictions store yet" in live_accuracy_text(tmp_path)
    store = PredictionStore(tmp_path / "predictions.sqlite")
    store.record([_pred(0, 0.01, close=100), _pred(1, 0.01, close=101)])
    assert "no settled prediction yet" in live_accuracy_text(tmp_path)
    store.settle("BTC/USDT", "5m", _candles([100, 101, 102, 99]), TF_MS)  # up from 100, down from 101
    text = live_accuracy_text(tmp_path)
    assert "ensemble BTC/USDT: 50.0% (" in text and "n=2), IC n/a" in text, text


def test_psi_volatility_and_correlation_read_what_they_claim():
    from cryptobot_ops.drift import correlation_zscore, feature_drift, psi, volatility_ratio

    rng = np.random.default_rng(7)
    a, b = rng.normal(size=2000), rng.normal(size=300)
    assert psi(a, b) < 0.1 and psi(a, b + 1.0) > 0.25 and math.isnan(psi(a, b[:15]))
    df = pd.DataFrame({"%-same": rng.normal(size=700), "%-moved": rng.normal(size=700), "close": 1.0})
    df.loc[650:, "%-moved"] += 2.0
    drift = feature_drift(df, recent=50, reference=600)
    assert set(drift) == {"%-same", "%-moved"} and drift["%-same"] < 0.25 < drift["%-moved"]
    # the all-columns path gives psi()'s value exactly, gaps, ties and constants included
    odd = df.assign(**{"%-gaps": rng.normal(size=700), "%-ties": rng.integers(0, 3, 700) * 1.0, "%-flat": 1.0})
    odd.loc[100:150, "%-gaps"] = np.nan
    values = odd.filter(like="%-").to_numpy(dtype=float)
    for recent in (24, 50, 96):
        got = feature_drift(odd, recent=recent, reference=600)
        for i, c in enumerate(odd.filter(like="%-").columns):
            assert got[c] == pytest.approx(psi(values[-recent - 600 : -recent, i], values[-recent:, i]), abs=1e-12), c
    r = rng.normal(0, 0.001, 700)
    r[650:] *= 5
    close = pd.Series(100 * np.exp(np.cumsum(r)))
    assert volatility_ratio(close, 50) > 3 and 0.7 < volatility_ratio(close.iloc[:650], 50) < 1.4
    common = rng.normal(0, 0.001, 700)
    other_r = common + rng.normal(0, 0.0004, 700)
    other_r[650:] = rng.normal(0, 0.001, 50)  # the link breaks in the last 50 candles
    mine, other = pd.Series(100 * np.exp(np.cumsum(common))), pd.Series(100 * np.exp(np.cumsum(other_r)))
    corr, z = correlation_zscore(mine, other, 50)
    assert abs(corr) < 0.5 and z < -3
    corr, z = correlation_zscore(mine.iloc[:650], other.iloc[:650], 50)
    assert corr > 0.8 and abs(z) < 3


def _market(n: int = 700, shifted: bool = False, seed: int = 3) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    dates = pd.date_range("2024-03-01", periods=n, freq="5min", tz="UTC")
    common = rng.normal(0, 0.001, n)
    eth_r, btc_r = common + rng.normal(0, 0.0003, n), common.copy()
    feats = {f"%-f{i}": rng.normal(size=n) for i in range(5)}
    if shifted:
        eth_r[-50:] = rng.normal(0, 0.005, 50)  # 5x the volatility, no link with BTC
        feats["%-f0"][-50:] += 3.0
        feats["%-f1"][-50:] += 3.0
    eth = pd.DataFrame({"date": dates, "close": 100 * np.exp(np.cumsum(eth_r)), **feats})
    return eth, pd.DataFrame({"date": dates, "close": 100 * np.exp(np.cumsum(btc_r))})


def test_drift_market_signals_and_trade_figures_are_exported_and_alert_on_changes(tmp_path):
    """Issue 36 §4: model drift (PSI per feature against the training window), unusual volatility and
    correlation, new signals, trade milestones, win rate of the last 100 and the 30-day Sharpe."""
    sent = []
    eth, btc = _market(shifted=True)
    analysed = eth.assign(enter_long=0, exit_long=0)
    analysed.loc[analysed.index[-1], "enter_long"] = 1
    strategy = _Strategy(
        timeframe="5m",
        config={
            "user_data_dir": str(tmp_path),
            "stake_currency": "USDT",
            "freqai": {"train_period_days": 2},
            "monitoring": {"drift_candles": 50, "predictions_db": ""},
        },
        dp=SimpleNamespace(
            send_msg=lambda msg, always_send=False: sent.append(msg),
            current_whitelist=lambda: ["ETH/USDT", "BTC/USDT"],
            get_pair_dataframe=lambda pair, tf: btc if pair == "BTC/USDT" else eth,
            get_analyzed_dataframe=lambda pair, tf: (analysed if pair == "ETH/USDT" else btc, None),
        ),
    )
    mon = Monitor(strategy)
    value = mon.metrics.registry.get_sample_value
    mon.on_analysis(eth, "ETH/USDT", None)
    assert value("cryptobot_features_drifted", {"pair": "ETH/USDT"}) == 2
    assert value("cryptobot_features_monitored", {"pair": "ETH/USDT"}) == 5
    assert value("cryptobot_market_volatility_ratio", {"pair": "ETH/USDT"}) > 3
    assert value("cryptobot_market_correlation_zscore", {"pair": "ETH/USDT"}) < -3
    assert [m.split(":")[0] for m in sent] == [
        "[WARNING] model drift ETH/USDT",
        "[WARNING] unusual market ETH/USDT",
        "[WARNING] unusual market ETH/USDT",
    ], sent
    calm, _ = _market(shifted=False)
    mon.on_analysis(calm, "ETH/USDT", None)
    assert value("cryptobot_features_drifted", {"pair": "ETH/USDT"}) == 0
    assert [m.split(" ")[0] for m in sent[3:]] == ["[INFO]"] * 3, sent[3:]
    # signals: counted once per analysed candle; trade figures from the risk controls' closed trades
    closed = [
        SimpleNamespace(close_profit_abs=p, close_date=pd.Timestamp("2024-03-01", tz="UTC") + pd.Timedelta(days=d))
        for d, p in enumerate([5.0, -2.0, 3.0, 1.0, -1.0, 2.0, 4.0, -3.0, 2.0])
    ]
    strategy._realized_cache = ("k1", np.array([1000.0]), closed)
    now = pd.Timestamp("2024-03-03 10:00", tz="UTC").to_pydatetime()
    mon.on_loop(now, None, SimpleNamespace(max_drawdown=0.1, daily_loss=0.03, portfolio_heat=0.15,
                                           emergency_drawdown=0.15), False)  # fmt: skip
    mon.on_loop(now, None, SimpleNamespace(max_drawdown=0.1, daily_loss=0.03, portfolio_heat=0.15,
                                           emergency_drawdown=0.15), False)  # fmt: skip
    assert value("cryptobot_signals_total", {"pair": "ETH/USDT", "side": "entry"}) == 1
    assert sum("new entry signal ETH/USDT" in m for m in sent) == 1
    assert value("cryptobot_closed_trades") == 9 and value("cryptobot_win_rate_last_100") == pytest.approx(6 / 9)
    daily = pd.Series([5, -2, 3, 1, -1, 2, 4, -3, 2] + [0.0] * 21) / 1000
    assert value("cryptobot_rolling_sharpe_30d") == pytest.approx(daily.mean() / daily.std() * math.sqrt(365))
    assert not any("milestone" in m for m in sent)  # 9 at start: nothing crossed while running
    strategy._realized_cache = ("k2", np.array([1000.0]), [*closed, closed[0]])
    mon.on_loop(now, None, SimpleNamespace(max_drawdown=0.1, daily_loss=0.03, portfolio_heat=0.15,
                                           emergency_drawdown=0.15), False)  # fmt: skip
    assert sent[-1].startswith("[INFO] milestone: 10 closed trades")
