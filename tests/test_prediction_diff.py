"""The FreqAI prediction diff on files written in FreqAI's own formats, with answers known by construction."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from simulation.run.predictions import backtest_predictions, live_predictions, prediction_diff

DATES = pd.date_range("2024-03-01", periods=96, freq="15min", tz="UTC")
TRAINED_BT = int(pd.Timestamp("2024-02-29", tz="UTC").timestamp())
TRAINED_LIVE = int(pd.Timestamp("2024-03-01 06:00", tz="UTC").timestamp())


def write_runs(models, live_pred, live_do=None, live_conf=None, placeholders=()):
    """A backtest window and a bot's history for BTC/USDT, as FreqAI writes them."""
    rng = np.random.default_rng(0)
    pred = rng.normal(0, 0.01, len(DATES))
    (models / "backtesting_predictions").mkdir(parents=True)
    pd.DataFrame({"date": DATES, "&-target": pred, "&-confidence": 0.6, "do_predict": 1, "DI_values": 0.0}).to_feather(
        models / "backtesting_predictions" / f"cb_btc_{TRAINED_BT}_prediction.feather"
    )
    (models / f"sub-train-BTC_{TRAINED_BT}").mkdir()  # the backtest's own model folder
    (models / f"sub-train-BTC_{TRAINED_LIVE}").mkdir()  # the bot's retrain
    live = pd.DataFrame(
        {
            "date_pred": DATES,
            "&-target": live_pred(pred),
            "&-confidence": live_conf if live_conf is not None else 0.6,
            "do_predict": live_do if live_do is not None else 1,
            "DI_values": 0.0,
        }
    )
    for i in placeholders:  # a candle the bot skipped: FreqAI appends a zero row
        live.loc[i, ["&-target", "&-confidence", "do_predict", "DI_values"]] = 0
    with open(models / "historic_predictions.pkl", "wb") as fh:
        pickle.dump({"BTC/USDT": live}, fh)
    bt = backtest_predictions(models, ["BTC/USDT", "ETH/USDT"])
    return bt, live_predictions(models, exclude_trained_s=set((bt["trained_ms"] // 1000).astype(int)))


def test_identical_predictions_agree_exactly(tmp_path):
    bt, live = write_runs(tmp_path, lambda p: p)
    d = prediction_diff(bt, live)
    assert d["candles"] == 96 and d["prediction_mae"] == 0 and d["prediction_correlation"] == pytest.approx(1)
    assert (
        d["direction_agreement"] == 1
        and d["do_predict_mismatches"] == 0
        and d["pairs"]["BTC/USDT"]["first_divergence"] is None
    )
    # model age: the backtest's model is a day old at the window's start; the bot's counts from its own retrain
    assert d["backtest_model_age_h"]["p50"] > 24 and d["live_model_age_h"]["max"] == pytest.approx(17.75)


def test_a_constant_offset_and_flipped_signs_are_measured(tmp_path):
    bt, live = write_runs(tmp_path, lambda p: p + 0.002)
    d = prediction_diff(bt, live)
    assert d["prediction_mae"] == pytest.approx(0.002) and d["prediction_correlation"] == pytest.approx(1)
    assert d["direction_agreement"] < 1  # small predictions change sign under the offset
    assert d["pairs"]["BTC/USDT"]["first_divergence"] == "2024-03-01 00:00"
    flipped = prediction_diff(*write_runs(tmp_path / "flip", lambda p: -p))
    assert flipped["direction_agreement"] == 0 and flipped["prediction_correlation"] == pytest.approx(-1)


def test_do_predict_confidence_and_skipped_candles(tmp_path):
    do = np.ones(96, dtype=int)
    do[10:15] = 0
    conf = np.full(96, 0.6)
    conf[:48] = 0.7
    bt, live = write_runs(tmp_path, lambda p: p, live_do=do, live_conf=conf, placeholders=(50, 51, 52))
    d = prediction_diff(bt, live)
    assert d["live_not_predicted"] == 3 and d["candles"] == 93  # skipped candles are counted, not compared
    assert d["do_predict_mismatches"] == 5
    assert d["confidence_mae"] == pytest.approx(0.1 * 48 / 93)


def test_a_model_counts_from_the_close_of_the_candle_it_predicts(tmp_path):
    """The bot predicts a candle once it has closed: a model trained at 06:00 made the prediction for the
    05:45 candle (closing at 06:00), not the one for 05:30."""
    models = tmp_path / "m"
    bt, _ = write_runs(models, lambda p: p)
    live = live_predictions(models, set((bt["trained_ms"] // 1000).astype(int)), candle_ms=900_000)
    by_date = live.set_index("date")["trained_ms"]
    assert by_date[pd.Timestamp("2024-03-01 05:45", tz="UTC")] == TRAINED_LIVE * 1000
    assert np.isnan(by_date[pd.Timestamp("2024-03-01 05:30", tz="UTC")])
    opens = live_predictions(models, set((bt["trained_ms"] // 1000).astype(int))).set_index("date")["trained_ms"]
    assert np.isnan(opens[pd.Timestamp("2024-03-01 05:45", tz="UTC")])  # at the candle's open it had not been trained


@pytest.mark.parametrize(
    ("freqai", "expected"),
    [
        ({"enabled": True, "live_retrain_hours": 6, "backtest_period_days": 7}, 0.25),
        ({"enabled": True, "live_retrain_hours": 168, "backtest_period_days": 7}, 7.0),
        ({"enabled": True, "live_retrain_hours": 0, "backtest_period_days": 7}, None),  # retrains continuously
        ({"enabled": False, "live_retrain_hours": 6}, None),
    ],
)
def test_the_comparison_backtest_retrains_on_the_bots_cadence(freqai, expected):
    from simulation.run.compare import freqai_schedule

    got = freqai_schedule({"freqai": freqai}).get("freqai", {}).get("backtest_period_days")
    assert got == expected
    assert freqai_schedule({}) == {}


def test_a_session_keeps_every_model_the_bot_trains():
    from simulation.run.bot_config import bot_overlay
    from simulation.run.spec import RunSpec

    def overlay(config: str) -> dict:
        spec = RunSpec(
            strategy="S",
            config=config,
            mode="dry-run",
            start_ms=0,
            end_ms=3_600_000,
            pairs=["BTC/USDT"],
            timeframe="15m",
            out="/tmp/x",
            speed=1.0,
            clock="compute",
        )
        return bot_overlay(spec, "http://127.0.0.1:1", 8080, "/tmp/x.sqlite")

    assert overlay("config/trend-following.json")["freqai"] == {"purge_old_models": 0}
    assert "freqai" not in overlay("config/simulation.json")


def test_no_freqai_predictions(tmp_path):
    assert prediction_diff(backtest_predictions(tmp_path, ["BTC/USDT"]), live_predictions(tmp_path))["candles"] == 0


# -- the indicator diff: the backtest's signal candles against the bot's analyzed frame ------------------------------


def analyzed(close: pd.Series, startup: int) -> pd.DataFrame:
    """An EMA (recursive: depends on where the history starts) and a 5-candle mean (does not), from `startup` on."""
    c = close.iloc[startup:]
    return pd.DataFrame(
        {
            "date": DATES[startup:],
            "close": c.to_numpy(),
            "ema": c.ewm(span=20, adjust=False).mean().to_numpy(),
            "sma5": c.rolling(5).mean().to_numpy(),
            "enter_long": (c.diff() > 0).astype(int).to_numpy(),
        }
    )


def test_indicator_diff_names_the_recursive_column_and_the_bot_signals():
    from simulation.run.indicators import bot_frame, indicator_diff

    close = pd.Series(100 + np.cumsum(np.random.default_rng(1).normal(0, 1, len(DATES))))
    backtest = analyzed(close, 0)  # the backtest loaded all history
    signals = backtest[backtest["enter_long"] == 1].iloc[-10:]
    same = analyzed(close, 0)
    payload = {
        "columns": [*same.columns, "__date_ts"],
        "data": [[*r, int(r[0].timestamp() * 1000)] for r in same.itertuples(index=False)],
    }
    d = indicator_diff({"BTC/USDT": signals}, {"BTC/USDT": bot_frame(payload)})
    assert (
        d["signal_candles"] == 10 == d["in_bot_frame"] and d["columns_differing"] == {} and d["bot_signalled_too"] == 1
    )
    short = analyzed(close, 40)  # the bot started 40 candles later: its EMA has not converged, its 5-candle mean has
    d = indicator_diff({"BTC/USDT": signals}, {"BTC/USDT": short})
    assert set(d["columns_differing"]) == {"ema"} and d["pairs"]["BTC/USDT"]["columns_compared"] == 3
    flipped = same.assign(enter_long=0)
    assert indicator_diff({"BTC/USDT": signals}, {"BTC/USDT": flipped})["bot_signalled_too"] == 0
    assert indicator_diff({}, {})["signal_candles"] == 0
