"""The test bench's forecast scores: the label the model was trained for, FreqAI's saved predictions
joined on the right candle, and scores that can come out bad."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from freqaimodels.features.freqai_hooks import set_targets
from simulation.testbench import forecast

H = 4


def _candles(n: int = 2000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    return pd.DataFrame(
        {"date": pd.date_range("2024-01-01", periods=n, freq="15min", tz="UTC"), "close": close, "open": close}
    )


def _fold(candles: pd.DataFrame, pred: np.ndarray, pair: str = "BTC/USDT", **extra) -> pd.DataFrame:
    y = forecast.outcomes(candles, H).to_numpy()
    n = len(pred)
    return pd.DataFrame(
        {
            "date": candles["date"].iloc[:n].to_numpy(),
            forecast.TARGET: pred,
            "do_predict": np.ones(n),
            "pair": pair,
            "outcome": y[:n],
            **extra,
        }
    )


def test_the_outcome_is_the_label_the_model_was_trained_for():
    candles = _candles(300)
    label = set_targets(candles.copy(), H)["&-target"].to_numpy()
    got = forecast.outcomes(candles, H).to_numpy()
    assert np.allclose(got[:-H], label[:-H]) and np.isnan(got[-H:]).all() and np.isnan(label[-H:]).all()


def test_a_perfect_forecast_scores_well_and_its_mirror_badly():
    candles = _candles()
    y = forecast.outcomes(candles, H).to_numpy()[:1900]
    good = forecast.score([_fold(candles, y)], H)["models"]["model"]
    bad = forecast.score([_fold(candles, -y)], H)["models"]["model"]
    assert good["accuracy"] == 1.0 and good["rank_ic"]["mean"] == pytest.approx(1.0)
    assert good["net"]["mean_net_bps"] > 0
    assert bad["accuracy"] == 0.0 and bad["rank_ic"]["mean"] == pytest.approx(-1.0)
    assert bad["net"]["mean_net_bps"] < 0 and bad["net"]["ci95_bps"][1] < 0, "long only before falls: it pays"


def test_noise_has_no_edge_and_pays_the_fees():
    candles = _candles(6000, seed=1)
    noise = np.random.default_rng(2).normal(0, 0.01, 5900)
    m = forecast.score([_fold(candles, noise)], H)["models"]["model"]
    lo, hi = m["ci95"]
    assert lo < 0.5 < hi, m
    assert m["n_effective"] == round(m["n"] / H), "overlapping labels: the interval counts n / h outcomes"
    assert m["net"]["mean_net_bps"] < 0, "long half the time on no edge: the fees are the result"


def test_base_models_are_scored_beside_the_model_and_do_predict_zero_is_left_out():
    candles = _candles()
    y = forecast.outcomes(candles, H).to_numpy()[:1900]
    dp = np.ones(1900)
    dp[:100] = 0
    stats = {"&-base_lightgbm_mean": np.zeros(1900), "&-base_lightgbm_std": np.zeros(1900)}  # FreqAI's, not models
    frame = _fold(candles, y, **{"&-base_lightgbm": -y, "&-confidence": np.abs(y)}, **stats)
    frame["do_predict"] = dp
    got = forecast.score([frame], H)
    assert got["excluded_do_predict"] == 100 and got["candles"] == 1800
    assert got["models"]["lightgbm"]["accuracy"] == 0.0 and got["models"]["model"]["accuracy"] == 1.0
    assert set(got["models"]) == {"model", "lightgbm"}, "FreqAI's running statistics are not models"
    top = got["top_decile"]
    assert top["precision"] == 1.0 and top["overall_accuracy"] == 1.0 and top["spec_met"]
    text = "\n".join(forecast.lines(got))
    assert "lightgbm: direction 0.000" in text and "spec 60%: met" in text and "do_predict=0 left out: 100" in text


def test_the_labels_past_the_data_are_counted_not_scored():
    candles = _candles(500)
    y = forecast.outcomes(candles, H).to_numpy()
    got = forecast.score([_fold(candles, np.nan_to_num(y))], H)
    assert got["no_outcome_yet"] == H and got["candles"] == 500 - H


def test_fold_frame_reads_freqais_saved_predictions_inside_the_fold(tmp_path):
    """The files FreqAI backtesting writes (one per training window); rows outside [start, end) are
    another fold's; each row gets the outcome of its own candle."""
    candles = _candles(800)
    saved = tmp_path / "backtesting_predictions"
    saved.mkdir()
    rows = candles.iloc[100:700]
    pd.DataFrame({"date": rows["date"], forecast.TARGET: np.linspace(-1, 1, len(rows)), "do_predict": 1.0}).reset_index(
        drop=True
    ).to_feather(saved / "cb_btc_1704067200_prediction.feather")
    start, end = candles["date"].iloc[200], candles["date"].iloc[600]
    got = forecast.fold_frame(tmp_path, {"BTC/USDT": candles}, H, start, end)
    assert len(got) == 400 and got["date"].min() == start and got["date"].max() < end
    expect = np.log(candles["close"].to_numpy()[200 + H : 600 + H] / candles["close"].to_numpy()[200:600])
    assert np.allclose(got["outcome"].to_numpy(), expect)
    assert forecast.score([forecast.fold_frame(tmp_path / "none", {"BTC/USDT": candles}, H, start, end)], H)["skipped"]


def test_an_unreadable_prediction_file_is_a_value_error_the_bench_names(tmp_path):
    """The bench catches it and reports the forecast as skipped with the reason; the folds stand."""
    saved = tmp_path / "backtesting_predictions"
    saved.mkdir()
    (saved / "cb_btc_1704067200_prediction.feather").write_bytes(b"not a feather file")
    candles = _candles(50)
    with pytest.raises(ValueError):
        forecast.fold_frame(tmp_path, {"BTC/USDT": candles}, H, candles["date"].iloc[0], candles["date"].iloc[-1])
