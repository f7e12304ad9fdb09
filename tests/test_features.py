"""The shared FreqAI target: what the models learn must mean what the strategies read."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from freqaimodels import features


def test_vol_scaled_target_keeps_the_sign_and_is_causal_in_its_scale():
    rng = np.random.default_rng(0)
    close = pd.Series(100 * np.exp(np.cumsum(rng.normal(0, 0.01, 1000))))
    df = pd.DataFrame({"close": close})
    raw = features.set_targets(df, 12)[features.TARGET]
    scaled = features.set_targets(df, 12, "vol", vol_window=50)[features.TARGET]
    ok = raw.notna() & scaled.notna()
    assert (np.sign(raw[ok]) == np.sign(scaled[ok])).all() and ok.sum() > 900
    # the scale at row t uses closes up to t only: changing later closes (beyond the label) leaves it
    later = df.copy()
    later.loc[600:, "close"] *= 3
    ratio = scaled / raw
    ratio_later = (
        features.set_targets(later, 12, "vol", vol_window=50)[features.TARGET]
        / features.set_targets(later, 12)[features.TARGET]
    )
    assert np.allclose(ratio[100:599], ratio_later[100:599])
    assert 0.5 < scaled[ok].std() < 2  # in units of the expected move
    with pytest.raises(ValueError, match="target scale"):
        features.set_targets(df, 12, "zscore")


def _candles(start: str, periods: int, freq: str, width: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"date": pd.date_range(start, periods=periods, freq=freq, tz="UTC")})
    for c in ("open", "high", "low", "close", "volume"):
        df[c] = rng.random(periods)
    return pd.concat(
        [df, pd.DataFrame(rng.random((periods, width)), columns=[f"%-f{i}" for i in range(width)])], axis=1
    )


@pytest.mark.parametrize(
    ("timeframe", "start", "informative", "expected"),
    [
        ("15m", "2025-01-01 00:15", ["15m", "1h"], "00:45"),  # a 15m candle opening at :45 closes with the hour
        ("5m", "2025-01-01 00:05", ["5m", "15m", "1h"], "00:55"),  # :55 closes a 15m and an hour candle
        ("1h", "2025-01-01 03:00", ["1h", "4h"], "03:00"),
    ],
)
def test_live_frame_starts_on_a_candle_that_closes_with_every_informative_one(timeframe, start, informative, expected):
    dates = pd.Series(pd.date_range(start, periods=100, freq=timeframe.replace("m", "min"), tz="UTC"))
    k = features.informative_aligned_start(dates, timeframe, informative)
    assert dates.iloc[k].strftime("%H:%M") == expected and k < 12
    assert features.informative_aligned_start(dates, timeframe, [timeframe]) == 0  # nothing higher: nothing dropped


def test_aligned_start_changes_no_merged_value_and_leaves_no_gap_at_the_first_candle():
    """What FreqAI does with a live frame, on freqtrade's own merge: the 1h values the trimmed frame gets are the
    untrimmed frame's, and its first candle already has one (so freqtrade's slow gap fill never runs)."""
    from freqtrade.strategy import merge_informative_pair

    main = _candles("2025-01-01 00:15", 400, "15min", 50, 1)
    hourly = _candles("2024-12-31 12:00", 120, "1h", 20, 2)  # history reaching before the 15m frame, as live
    k = features.informative_aligned_start(main["date"], "15m", ["15m", "1h"])
    full = merge_informative_pair(main, hourly.copy(), "15m", "1h", ffill=True)
    trimmed = merge_informative_pair(main.iloc[k:].reset_index(drop=True), hourly.copy(), "15m", "1h", ffill=True)
    assert k == 2 and trimmed["close_1h"].notna().iloc[0]
    pd.testing.assert_frame_equal(trimmed, full.iloc[k:].reset_index(drop=True))


def test_aligned_start_makes_freqtrades_informative_merge_cheap_on_a_wide_frame():
    """The reason for the trim, measured: on FreqAI's width (~400 columns) freqtrade's gap fill costs
    ~0.26 s a merge, 4 ms aligned."""
    import time

    from freqtrade.strategy import merge_informative_pair

    main = _candles("2025-01-01 00:15", 2000, "15min", 400, 3)
    hourly = _candles("2024-12-31 00:00", 600, "1h", 20, 4)
    k = features.informative_aligned_start(main["date"], "15m", ["1h"])

    def best_of_3(frame: pd.DataFrame) -> float:
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            merge_informative_pair(frame, hourly.copy(), "15m", "1h", ffill=True)
            times.append(time.perf_counter() - t0)
        return min(times)

    untrimmed, trimmed = best_of_3(main), best_of_3(main.iloc[k:].reset_index(drop=True))
    assert trimmed < untrimmed / 3, (trimmed, untrimmed)


@pytest.mark.parametrize(
    "config", ["freqai.json", "trend-following.json", "mean-reversion.json", "arbitrage-scout.json"]
)
def test_live_bots_retrain_on_the_backtests_cadence(config):
    """A dry-run bot that retrains continuously predicts with other models than the backtest it is compared with."""
    from freqtrade.configuration.load_config import load_from_files

    from simulation.paths import REPO_ROOT

    fa = load_from_files([str(REPO_ROOT / "config" / config)])["freqai"]
    assert fa["live_retrain_hours"] == 24 * fa["backtest_period_days"]


def test_live_feature_hooks_reuse_an_unchanged_frame_and_recompute_a_changed_one(monkeypatch):
    """Issue 32 §2: an informative frame's closed candles change only when one of its own closes; the
    hooks return the last output for an equal input (what recomputing gives) and recompute otherwise."""
    import sys

    from freqtrade.enums import RunMode

    from simulation.paths import REPO_ROOT

    sys.path.insert(0, str(REPO_ROOT / "strategies"))
    from ensemble_base import FreqAIFeatureHooks

    rng = np.random.default_rng(5)
    n = 400
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n + 1)))
    frame = pd.DataFrame(
        {
            "date": pd.date_range("2024-03-01", periods=n + 1, freq="1h", tz="UTC"),
            "open": close,
            "high": close * 1.01,
            "low": close * 0.99,
            "close": close,
            "volume": rng.uniform(1, 10, n + 1),
        }
    )
    calls = []
    real = features.expand_all
    monkeypatch.setattr(features, "expand_all", lambda df, period: calls.append(period) or real(df, period))
    hooks = FreqAIFeatureHooks()
    hooks.config = {"runmode": RunMode.DRY_RUN}
    meta = {"pair": "BTC/USDT", "tf": "1h"}
    first = hooks.feature_engineering_expand_all(frame.iloc[:n].copy(), 10, meta)
    again = hooks.feature_engineering_expand_all(frame.iloc[:n].copy(), 10, meta)
    assert calls == [10] and again.equals(first)
    again["%-rsi-period"] = 0.0  # a caller's changes never reach the kept output
    assert hooks.feature_engineering_expand_all(frame.iloc[:n].copy(), 10, meta).equals(first)
    grown = hooks.feature_engineering_expand_all(frame.iloc[1 : n + 1].copy(), 10, meta)  # the next candle
    assert calls == [10, 10] and grown.equals(real(frame.iloc[1 : n + 1].copy(), 10))
    moved = frame.iloc[1 : n + 1].copy()
    moved.iloc[-1, moved.columns.get_loc("close")] *= 1.001  # one value differs: recomputed
    assert hooks.feature_engineering_expand_all(moved.copy(), 10, meta).equals(real(moved.copy(), 10))
    assert hooks.feature_engineering_expand_all(frame.iloc[:n].copy(), 20, meta) is not None and calls[-1] == 20
    backtest = FreqAIFeatureHooks()
    backtest.config = {"runmode": RunMode.BACKTEST}
    backtest.feature_engineering_expand_all(frame.iloc[:n].copy(), 10, meta)
    backtest.feature_engineering_expand_all(frame.iloc[:n].copy(), 10, meta)
    assert calls[-2:] == [10, 10] and not hasattr(backtest, "_feature_memo")


def test_utc_ms_equals_to_datetime_for_every_kind_of_date_column():
    from regime.features import utc_ms

    aware = pd.Series(pd.date_range("2024-03-01 00:07:30.250", periods=50, freq="15min", tz="UTC"))
    for dates in (aware, aware.dt.as_unit("ms"), aware.dt.tz_convert("Asia/Tokyo"), aware.dt.tz_localize(None),
                  aware.astype(str)):  # fmt: skip
        want = pd.to_datetime(dates, utc=True).astype("datetime64[ms, UTC]").astype("int64").to_numpy()
        assert np.array_equal(utc_ms(dates), want), dates.dtype
