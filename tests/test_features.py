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


def _random_candles(n: int, seed: int, freq: str = "15min", gap: slice | None = None) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.standard_t(4, n) * 0.004))
    open_ = np.r_[close[0], close[:-1]]
    df = pd.DataFrame(
        {
            "date": pd.date_range("2024-03-01 00:45", periods=n, freq=freq, tz="UTC"),
            "open": open_,
            "high": np.maximum(open_, close) * (1 + np.abs(rng.normal(0, 0.002, n))),
            "low": np.minimum(open_, close) * (1 - np.abs(rng.normal(0, 0.002, n))),
            "close": close,
            "volume": rng.lognormal(5, 1, n),
        }
    )
    return df.drop(index=df.index[gap]).reset_index(drop=True) if gap else df


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_fast_feature_paths_change_no_value(seed):
    """Issue 32 §2: the features a live bot recomputes every candle read the column arrays directly
    (TA-Lib's function API, TA-Lib's rolling max / min, run-wise pivot blocks, calendar from epoch
    milliseconds, one float block per hook); every value is bit-identical to the pandas / abstract-API
    formulation it replaced, on frames with a data gap and a first row off any block boundary."""
    from talib import abstract

    from freqaimodels.features.indicators import _pivot_position_grouped, utc_ms

    df = _random_candles(1500, seed, gap=slice(700, 713))
    got = features.expand_all(df.copy(), 14)
    close = df["close"]
    want = {
        "%-rsi-period": abstract.RSI(df, timeperiod=14),
        "%-mfi-period": abstract.MFI(df, timeperiod=14),
        "%-adx-period": abstract.ADX(df, timeperiod=14),
        "%-cci-period": abstract.CCI(df, timeperiod=14),
        "%-willr-period": abstract.WILLR(df, timeperiod=14),
        "%-roc-period": abstract.ROC(df, timeperiod=14),
        "%-ema_dist-period": close / abstract.EMA(df, timeperiod=14) - 1,
        "%-atr_rel-period": abstract.ATR(df, timeperiod=14) / close,
        "%-resistance_dist-period": close / df["high"].rolling(14).max() - 1,
        "%-support_dist-period": close / df["low"].rolling(14).min() - 1,
    }
    for col, values in want.items():
        assert np.array_equal(got[col].to_numpy(), np.asarray(values, dtype=float), equal_nan=True), col
    basic = features.expand_basic(df.copy(), {"tf": "15m"})
    tenkan = (df["high"].rolling(9).max() + df["low"].rolling(9).min()) / 2
    kijun = (df["high"].rolling(26).max() + df["low"].rolling(26).min()) / 2
    macd, signal, hist = abstract.MACD(close, fastperiod=12, slowperiod=26, signalperiod=9)
    assert np.array_equal(basic["%-macd_signal_dist"], (macd - signal) / close, equal_nan=True)
    hi, lo = df["high"].rolling(100).max(), df["low"].rolling(100).min()
    block = utc_ms(df["date"]) // (15 * 60_000 * 96)
    want = {
        "%-ichimoku_tk": (tenkan - kijun) / close,
        "%-ichimoku_close_kijun": close / kijun - 1,
        "%-macd_hist": hist / close,
        "%-stoch_d": abstract.STOCH(df["high"], df["low"], close)[1],
        "%-sma_cross_20_50": abstract.SMA(close, 20) / abstract.SMA(close, 50) - 1,
        "%-fib_pos": (close - lo) / (hi - lo + 1e-12),
        "%-pivot_pos": _pivot_position_grouped(df, block, 96),
    }
    for col, values in want.items():
        assert np.array_equal(basic[col].to_numpy(), np.asarray(values, dtype=float), equal_nan=True), col
    assert basic["%-pivot_pos"].notna().sum() > 1000
    dates = pd.to_datetime(df["date"])
    calendar = features.standard(df.copy())
    assert np.array_equal(calendar["%-day_of_week_sin"], np.sin(2 * np.pi * dates.dt.day_of_week / 7))
    assert np.array_equal(calendar["%-hour_of_day_cos"], np.cos(2 * np.pi * dates.dt.hour / 24))
    assert all(got[c].dtype == np.float64 for c in got.filter(like="%-"))


def test_the_hooks_hand_freqai_the_candles_and_their_features_only():
    """FreqAI merges a hook's whole output back for every period and timeframe: the strategy's own
    columns riding along would be merged, copied and forward-filled again for nothing. The hooks see
    the candle columns only; their features are those of the whole frame."""
    import sys

    from freqtrade.enums import RunMode

    from simulation.paths import REPO_ROOT

    sys.path.insert(0, str(REPO_ROOT / "strategies"))
    from ensemble_base import CANDLE_COLUMNS, FreqAIFeatureHooks

    df = _random_candles(600, 4)
    wide = df.assign(regime_1h="trending_bull", close_1h=df["close"], atr=1.0)
    for mode in (RunMode.DRY_RUN, RunMode.BACKTEST):
        hooks = FreqAIFeatureHooks()
        hooks.config = {"runmode": mode}
        out = hooks.feature_engineering_expand_all(wide.copy(), 10, {"pair": "BTC/USDT", "tf": "15m"})
        assert [c for c in out.columns if not c.startswith("%-")] == list(CANDLE_COLUMNS)
        assert out.equals(features.expand_all(df.copy(), 10))
        basic = hooks.feature_engineering_expand_basic(wide.copy(), {"pair": "BTC/USDT", "tf": "15m"})
        assert basic.equals(features.expand_basic(df.copy(), {"tf": "15m"}))


def test_a_live_window_gives_freqai_the_features_of_the_whole_frame():
    """Issue 32 §2: once FreqAI holds a pair's predictions, a live analysis hands it only the frame's
    last BASE_FEATURE_WARMUP + CONV_WIDTH (+ margin) rows. Through freqtrade's own
    `FreqaiDataKitchen.use_strategy_to_populate_indicators` (TrendFollowingEnsemble's FreqAI section: 15m and
    1h, a correlated pair, two periods), the rows a prediction reads carry the features the whole frame
    gives, to the causality tests' tolerance."""
    import sys

    from freqtrade.configuration.load_config import load_from_files
    from freqtrade.enums import RunMode
    from freqtrade.freqai.data_kitchen import FreqaiDataKitchen
    from freqtrade.strategy import IStrategy

    from simulation.paths import REPO_ROOT

    sys.path.insert(0, str(REPO_ROOT / "strategies"))
    from ensemble_base import FreqAIFeatureHooks

    cfg = load_from_files([str(REPO_ROOT / "config" / "trend-following.json")])
    cfg["runmode"] = RunMode.DRY_RUN
    cfg["freqai"]["feature_parameters"]["include_corr_pairlist"] = ["BTC/USDT", "ETH/USDT"]

    class Hooks(FreqAIFeatureHooks):
        populate_any_indicators = IStrategy.populate_any_indicators

    def hourly(df: pd.DataFrame) -> pd.DataFrame:
        agg = {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}
        return df.set_index("date").resample("1h").agg(agg).dropna().reset_index()

    base, other = _random_candles(2800, 21), _random_candles(2800, 22)
    frames = {"BTC/USDT": {"15m": base, "1h": hourly(base)}, "ETH/USDT": {"15m": other, "1h": hourly(other)}}
    conv_width = 24
    rows = features.BASE_FEATURE_WARMUP + conv_width + 32
    k = features.live_window_start(base["date"], "15m", ["15m", "1h"], rows)
    assert len(base) - k >= rows and k > 1500

    def populate(prediction: pd.DataFrame) -> pd.DataFrame:
        hooks = Hooks()
        hooks.config, hooks.freqai_info = cfg, cfg["freqai"]
        dk = FreqaiDataKitchen(cfg, live=True, pair="BTC/USDT")
        out = dk.use_strategy_to_populate_indicators(
            hooks,
            corr_dataframes={"ETH/USDT": dict(frames["ETH/USDT"])},
            base_dataframes={"1h": frames["BTC/USDT"]["1h"]},
            pair="BTC/USDT",
            prediction_dataframe=prediction,
            do_corr_pairs=True,
        )
        return out.filter(regex="^%").iloc[-conv_width:].reset_index(drop=True)

    whole = populate(base.copy())
    window = populate(base.iloc[k:].reset_index(drop=True))
    assert list(whole.columns) == list(window.columns) and len(whole.columns) > 100
    assert whole.notna().all().all()
    np.testing.assert_allclose(window.to_numpy(), whole.to_numpy(), rtol=1e-7, atol=1e-10)


def test_older_rows_keep_their_predictions_when_freqai_gets_the_live_window():
    """The strategy side of the live window: FreqAI's first analysis of a pair gets the whole (aligned)
    frame; later ones get the window, and the rows before it come back with the predictions this pair's
    previous analysis returned for their dates. A stand-in for FreqAI's `start` (it records what it was
    handed and stamps each row with a value of its date)."""
    import sys
    from types import SimpleNamespace

    from freqtrade.enums import RunMode

    from simulation.paths import REPO_ROOT

    sys.path.insert(0, str(REPO_ROOT / "strategies"))
    from ensemble_base import FreqAIFeatureHooks

    class StandIn:
        CONV_WIDTH = 1

        def __init__(self) -> None:
            self.dd, self.handed = SimpleNamespace(model_return_values={}), []

        def start(self, df: pd.DataFrame, metadata: dict, strategy) -> pd.DataFrame:
            self.handed.append(len(df))
            self.dd.model_return_values[metadata["pair"]] = True
            stamp = df["date"].astype("int64") // 10**6 % 1_000_003 + 100 * len(self.handed)
            return df.assign(**{"&-target": stamp.astype(float), "do_predict": 1})

    hooks = FreqAIFeatureHooks()
    hooks.dp = SimpleNamespace(runmode=RunMode.DRY_RUN)
    hooks.config = {"timeframe": "15m", "runmode": RunMode.DRY_RUN}
    hooks.freqai_info = {"feature_parameters": {"include_timeframes": ["15m", "1h"]}}
    hooks.freqai = StandIn()
    frame = _random_candles(2801, 9)
    first = hooks.start_freqai(frame.iloc[:2800].reset_index(drop=True), {"pair": "BTC/USDT"})
    second = hooks.start_freqai(frame.iloc[1:].reset_index(drop=True), {"pair": "BTC/USDT"})
    assert hooks.freqai.handed[0] > 2790 and hooks.freqai.handed[1] < 700
    assert len(second) == 2800 and second["date"].equals(frame["date"].iloc[1:].reset_index(drop=True))
    older = second.iloc[: 2800 - hooks.freqai.handed[1]]
    before = first.set_index("date")["&-target"]
    assert older["&-target"].to_numpy() == pytest.approx(before.reindex(older["date"]).to_numpy(), nan_ok=True)
    assert older["&-target"].notna().sum() >= len(older) - 3, "only the first analysis' unaligned rows lack one"
    window = second.iloc[-hooks.freqai.handed[1] :]
    fresh = window["date"].astype("int64") // 10**6 % 1_000_003 + 200  # stamped by the second analysis
    assert window["&-target"].to_numpy() == pytest.approx(fresh.to_numpy())
    assert second["do_predict"].iloc[-1] == 1
