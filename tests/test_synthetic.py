"""Synthetic market: deterministic, regimes with the configured statistics, stress hooks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from simulation.markets import KNOWN_MARKETS
from simulation.synthetic import REGIMES, Scenario, SyntheticConfig, generate, load_ground_truth, write_market


@pytest.fixture(scope="module")
def long_market():
    return generate(SyntheticConfig(seed=11, days=730))


def _returns(df: pd.DataFrame) -> np.ndarray:
    return np.diff(np.log(df["close"].to_numpy()))


def test_same_seed_same_market_other_seed_differs():
    a = generate(SyntheticConfig(seed=3, days=10))
    b = generate(SyntheticConfig(seed=3, days=10))
    c = generate(SyntheticConfig(seed=4, days=10))
    for pair in a.candles:
        pd.testing.assert_frame_equal(a.candles[pair], b.candles[pair])
    pd.testing.assert_frame_equal(a.ground_truth, b.ground_truth)
    assert not a.candles["BTC/USDT"]["close"].equals(c.candles["BTC/USDT"]["close"])


def test_candles_are_valid_and_on_the_exchange_grid():
    m = generate(SyntheticConfig(seed=5, days=20))
    for pair, df in m.candles.items():
        assert list(df.columns) == ["date", "open", "high", "low", "close", "volume"]
        assert df["date"].diff().dropna().eq(pd.Timedelta("5min")).all(), "gap-free 5m candles"
        assert (df["low"] <= df[["open", "close"]].min(axis=1)).all()
        assert (df["high"] >= df[["open", "close"]].max(axis=1)).all()
        assert (df[["open", "high", "low", "close", "volume"]] > 0).all().all()
        tick = KNOWN_MARKETS[pair].tick_size
        ticks = df["close"].to_numpy() / tick
        assert np.allclose(ticks, np.round(ticks), atol=1e-6), f"{pair} off the tick grid"
        assert (df["open"].iloc[1:].to_numpy() == df["close"].iloc[:-1].to_numpy()).all()


def test_regime_volatility_ordering_and_drift_sign(long_market):
    gt = long_market.ground_truth["regime"].to_numpy()[1:]
    r = _returns(long_market.candles["BTC/USDT"])
    vol = {name: r[gt == name].std() for name in REGIMES}
    mean = {name: r[gt == name].mean() for name in REGIMES}
    assert vol["sideways"] < vol["trending_bull"] < vol["trending_bear"] < vol["high_volatility"]
    assert mean["trending_bull"] > 0 > mean["trending_bear"]


def test_transition_matrix_recovered_from_labels(long_market):
    ids = long_market.ground_truth["regime_id"].to_numpy()
    k = len(REGIMES)
    counts = np.zeros((k, k))
    np.add.at(counts, (ids[:-1], ids[1:]), 1)
    est = counts / counts.sum(axis=1, keepdims=True)
    true = long_market.config.transition_matrix()
    # Stay probabilities to 0.2 percentage points; mean durations within 20%.
    assert np.allclose(np.diag(est), np.diag(true), atol=0.002)
    dur_est, dur_true = 1 / (1 - np.diag(est)), 1 / (1 - np.diag(true))
    assert np.all(np.abs(dur_est / dur_true - 1) < 0.2), (dur_est, dur_true)


def test_fat_tails_volatility_clustering_volume_and_correlation(long_market):
    r = _returns(long_market.candles["ETH/USDT"])
    kurt = pd.Series(r).kurt()
    assert kurt > 3, "excess kurtosis of a fat-tailed market"
    ac_abs = pd.Series(np.abs(r)).autocorr(1)
    ac_raw = pd.Series(r).autocorr(1)
    assert ac_abs > 0.1 and abs(ac_raw) < 0.05, "clustered volatility, nearly uncorrelated returns"
    vol = long_market.candles["ETH/USDT"]["volume"].to_numpy()[1:]
    absr = pd.Series(np.abs(r)).rolling(48).mean().to_numpy()
    v48 = pd.Series(vol).rolling(48).mean().to_numpy()
    ok = ~np.isnan(absr)
    assert np.corrcoef(absr[ok], v48[ok])[0, 1] > 0.5, "volume rises with volatility"
    rho = np.corrcoef(_returns(long_market.candles["BTC/USDT"]), r)[0, 1]
    assert 0.6 < rho < 0.8, f"configured correlation 0.7, got {rho:.3f}"


def test_stablecoins_stay_pegged(long_market):
    close = long_market.candles["USDC/USDT"]["close"]
    assert close.between(0.995, 1.005).all()


def test_flash_crash_liquidity_drought_and_correlation_spike():
    base = SyntheticConfig(seed=9, days=20)
    scenarios = (
        Scenario("flash_crash", "2024-01-05T12:00", hours=2, drop=0.15),
        Scenario("liquidity_drought", "2024-01-10T00:00", hours=24),
        Scenario("correlation_spike", "2024-01-14T00:00", hours=96, rho=0.97),
    )
    calm = generate(base)
    stressed = generate(SyntheticConfig(seed=9, days=20, scenarios=scenarios))
    btc = stressed.candles["BTC/USDT"].set_index("date")
    before = btc.loc[:"2024-01-05 11:55", "close"].iloc[-1]
    trough = btc.loc["2024-01-05 12:00":"2024-01-05 12:20", "low"].min()
    assert trough / before - 1 < -0.13, "flash crash of ~15% within 15 minutes"
    truth = stressed.ground_truth.set_index("date")
    assert (truth.loc["2024-01-05 12:00":"2024-01-05 13:55", "regime"] == "high_volatility").all()
    drought = truth.loc["2024-01-10":"2024-01-10 23:55"]
    assert np.allclose(drought["depth_factor"], 0.1) and np.allclose(drought["spread_factor"], 5.0)
    v_calm = calm.candles["BTC/USDT"].set_index("date").loc["2024-01-10", "volume"].mean()
    v_dry = btc.loc["2024-01-10", "volume"].mean()
    assert v_dry < 0.2 * v_calm
    window = slice("2024-01-14", "2024-01-17")

    def corr(m):
        a = m.candles["BTC/USDT"].set_index("date").loc[window, "close"]
        b = m.candles["ADA/USDT"].set_index("date").loc[window, "close"]
        return np.corrcoef(np.diff(np.log(a)), np.diff(np.log(b)))[0, 1]

    assert corr(stressed) > 0.9 > corr(calm)


def test_depeg_moves_stablecoins_only_and_recovers():
    sc = Scenario.parse("depeg@2024-01-05T06:00:16,drop=0.02,recovery=1")
    assert (sc.kind, sc.hours, sc.drop, sc.recovery) == ("depeg", 16.0, 0.02, 1.0)
    calm = generate(SyntheticConfig(seed=4, days=8))
    m = generate(SyntheticConfig(seed=4, days=8, scenarios=(sc,)))
    for pair in ("USDC/USDT", "FDUSD/USDT"):
        c = m.candles[pair].set_index("date")["close"]
        assert c.loc["2024-01-05 09:30":"2024-01-05 10:30"].min() < 0.9825  # trough after 4 h
        assert c.loc[:"2024-01-05 05:55"].between(0.998, 1.002).all()
        assert c.loc["2024-01-05 23:00":].between(0.998, 1.002).all()  # re-pegged
    pd.testing.assert_frame_equal(m.candles["BTC/USDT"], calm.candles["BTC/USDT"])


@pytest.mark.parametrize(
    "text", ["depeg", "depeg@2024-01-05,drop", "depeg@2024-01-05,color=red", "depeg@2024-01-05,drop=2"]
)
def test_bad_scenario_text_is_a_clear_error(text):
    with pytest.raises(ValueError, match="scenario"):
        Scenario.parse(text)


def test_scenario_outside_range_is_a_clear_error():
    with pytest.raises(ValueError, match="outside the generated range"):
        generate(SyntheticConfig(days=2, scenarios=(Scenario("flash_crash", "2030-01-01"),)))
    with pytest.raises(ValueError, match="unknown scenario"):
        Scenario("meteor", "2024-01-01")


def test_three_years_of_5m_generate():
    m = generate(SyntheticConfig(seed=1, days=3 * 365))
    assert len(m.candles["BTC/USDT"]) == 3 * 365 * 288


def test_written_datadir_has_freqtrade_files_and_ground_truth(tmp_path):
    m = generate(SyntheticConfig(seed=2, days=3))
    write_market(m, tmp_path)
    df = pd.read_feather(tmp_path / "BTC_USDT-5m.feather")
    pd.testing.assert_frame_equal(df, m.candles["BTC/USDT"])
    gt = load_ground_truth(tmp_path, "5m")
    assert len(gt) == len(df) and set(gt["regime"]) <= set(REGIMES)
    assert (tmp_path / "synthetic.json").exists()
