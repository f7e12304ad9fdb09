"""HMM regime detector: causality, stable names, accuracy vs ground truth, robustness."""

from __future__ import annotations

import json
import logging
from collections import deque

import numpy as np
import pandas as pd
import pytest

from evaluation.regime import main as evaluate_main
from regime import PROB_COLUMNS, REGIMES, RegimeDetector, RegimeFitError, name_states
from regime.walkforward import FitCache, WalkForwardParams, WalkForwardReport, causal_regimes, dwell_filter
from simulation.synthetic import SyntheticConfig, generate

N = 100_000
TRAIN = 30_000


@pytest.fixture(scope="module")
def market():
    return generate(SyntheticConfig(seed=0, days=N * 5 / 1440))


@pytest.fixture(scope="module")
def btc(market) -> pd.DataFrame:
    return market.candles["BTC/USDT"]


@pytest.fixture(scope="module")
def fitted(btc) -> RegimeDetector:
    return RegimeDetector().fit(btc.iloc[:TRAIN])


def test_filter_is_causal_appending_candles_changes_nothing(fitted, btc):
    short = fitted.filter(btc.iloc[:40_000])
    long = fitted.filter(btc.iloc[:45_000]).iloc[:40_000]
    np.testing.assert_array_equal(short[list(PROB_COLUMNS)].to_numpy(), long[list(PROB_COLUMNS)].to_numpy())
    assert short["regime"].equals(long["regime"])


def test_walk_forward_is_causal_and_independent_of_the_start(btc):
    params = WalkForwardParams(train_candles=8640, refit_every=2016, burn_in=288)
    full = causal_regimes(btc.iloc[:30_000], "5m", params, cache=None)
    longer = causal_regimes(btc.iloc[:32_000], "5m", params, cache=None).iloc[:30_000]
    later_start = causal_regimes(btc.iloc[5_000:30_000], "5m", params, cache=None)
    cols = list(PROB_COLUMNS)
    np.testing.assert_array_equal(full[cols].to_numpy(), longer[cols].to_numpy())
    both = later_start[cols].notna().all(axis=1)
    assert both.sum() > 5_000
    np.testing.assert_allclose(later_start.loc[both, cols], full.loc[later_start.index[both], cols], atol=1e-12)
    # the dwell-filtered label too: its memory is the segment's burn-in, present in both frames
    assert later_start.loc[both, "regime"].equals(full.loc[later_start.index[both], "regime"])
    assert full["regime"].equals(longer["regime"])
    assert full[cols].iloc[:8640].isna().all().all(), "nothing before a complete training window"


def test_dwell_filter_holds_a_label_until_the_new_one_leads_long_enough():
    raw = np.array([-1, 0, 0, 1, 0, 0, 2, 2, 2, 1, 2, 2])
    assert dwell_filter(raw, 1).tolist() == raw.tolist()
    # the first run of >= 2 confirms 0; the lone 1 is ignored; 2 takes over once it led 2 candles
    assert dwell_filter(raw, 2).tolist() == [-1, 0, 0, 0, 0, 0, 0, 2, 2, 2, 2, 2]
    # nothing confirmed yet: raw labels stand
    assert dwell_filter(np.array([0, 1, 0, 1]), 3).tolist() == [0, 1, 0, 1]

    def flips(x: np.ndarray) -> int:
        return int((x[1:] != x[:-1]).sum())

    noisy = np.random.default_rng(0).integers(0, 4, 500)
    assert flips(dwell_filter(noisy, 3)) < flips(noisy)


def test_fit_cache_reuses_fits_of_a_sliding_window_and_changes_no_value(btc):
    """A live bot re-annotates a window that slides by one candle: every refit but the newest is a hit,
    and the values equal a run without the cache."""
    params = WalkForwardParams(train_candles=2000, refit_every=1000, burn_in=100)
    cache = FitCache(maxsize=8)
    cols = list(PROB_COLUMNS)
    first = WalkForwardReport()
    causal_regimes(btc.iloc[:14_500], "5m", params, report=first, cache=cache)
    assert first.refits >= 3 and first.cache_hits == 0
    slid = WalkForwardReport()
    cached = causal_regimes(btc.iloc[1:14_501], "5m", params, report=slid, cache=cache)
    assert slid.cache_hits == slid.refits == first.refits
    fresh = causal_regimes(btc.iloc[1:14_501], "5m", params, cache=None)
    np.testing.assert_allclose(cached[cols].to_numpy(), fresh[cols].to_numpy(), atol=1e-9)
    assert cached["regime"].equals(fresh["regime"])
    other = WalkForwardReport()  # a different detector setting is a different fit
    causal_regimes(btc.iloc[:14_500], "5m", params, detector=RegimeDetector(random_state=7), report=other, cache=cache)
    assert other.cache_hits == 0
    assert len(cache) <= 8


def test_online_step_matches_batch_filter(fitted, btc):
    det = RegimeDetector()
    det.model = fitted.model
    det.reset_online()
    part = btc.iloc[:12_000]
    online = [det.step(c, v) for c, v in zip(part["close"], part["volume"], strict=True)]
    batch = fitted.filter(part)[list(PROB_COLUMNS)].to_numpy()
    last = np.array(online[-1])
    np.testing.assert_allclose(last, batch[-1], atol=1e-9)
    assert online[det.windows.warmup - 2] is None and online[det.windows.warmup - 1] is not None


def test_update_is_constant_time(fitted, btc):
    """O(1) per candle by construction: the online state is bounded buffers and running sums, the same
    size after 10,000 and after 20,000 candles (the per-candle timing is measured by evaluation.regime)."""
    det = RegimeDetector()
    det.model = fitted.model
    det.reset_online()

    def state_size() -> int:
        bufs = [v for v in vars(det._online).values() if isinstance(v, deque)]
        assert bufs and all(b.maxlen is not None for b in bufs)
        return sum(len(b) for b in bufs)

    closes, volumes = btc["close"].to_numpy(), btc["volume"].to_numpy()
    for i in range(20_000):
        det.step(closes[i], volumes[i])
        if i == 9_999:
            at_10k = state_size()
    assert state_size() == at_10k > 0


def test_accuracy_beats_bar_and_rule_baseline(tmp_path):
    out = tmp_path / "regime.json"
    assert evaluate_main(["--seed", "0", "--candles", str(N), "--out", str(out)]) == 0
    r = json.loads(out.read_text())
    for key in ("accuracy", "baseline_accuracy", "smoothed_accuracy", "detection_delay", "update_us_p99"):
        assert key in r
    assert r["accuracy"] > 0.70, r["accuracy"]
    assert r["accuracy"] > r["baseline_accuracy"] + 0.05
    assert r["smoothed_accuracy"] >= r["accuracy"] - 0.01, "look-ahead decoding is the upper bound"
    assert r["detection_delay"] < 150
    cm = np.array(r["confusion_matrix"]["rows_true_cols_pred"])
    assert cm.sum() == r["test_candles"]


def test_names_are_stable_across_refits_on_shifted_windows(market, btc):
    """HMM state indices are arbitrary; names must not be. Periodic warm-started refits on windows
    shifted by ~10 days each label a common later segment: names never swap, labels agree."""
    truth = market.ground_truth["regime"].to_numpy()[60_000:80_000]
    det = RegimeDetector()
    labels = []
    for start in range(0, 15_001, 3_000):
        det.fit(btc.iloc[start : start + TRAIN])
        names = list(det.model.state_to_regime)
        bull, bear = names.index(REGIMES.index("trending_bull")), names.index(REGIMES.index("trending_bear"))
        assert det.model.hmm.means_[bull, 3] > det.model.hmm.means_[bear, 3], "bull has the higher momentum"
        lab = det.filter(btc.iloc[:80_000])["regime"].to_numpy()[60_000:]
        assert (lab == truth).mean() > 0.7
        if labels:
            prev = labels[-1]
            assert (lab == prev).mean() > 0.8
            for name in REGIMES:  # what this refit calls X is mostly what the previous one called X
                assert pd.Series(prev[lab == name]).value_counts().idxmax() == name
        labels.append(lab)


def test_name_states_is_a_deterministic_function_of_the_means():
    means = np.array([[2.0, 2.0, 0.0, 0.0], [-0.2, -0.1, 0.3, 0.9], [0.5, 0.4, 0.2, -0.8], [-1.0, -1.1, -0.3, 0.0]])
    expected = ["high_volatility", "trending_bull", "trending_bear", "sideways"]
    for perm in ([0, 1, 2, 3], [3, 2, 1, 0], [2, 0, 3, 1]):
        names = [REGIMES[i] for i in name_states(means[perm])]
        assert names == [expected[i] for i in perm]


def test_relative_names_mean_the_same_in_every_window():
    """`naming="relative"`: names from volatility relative to the window's median and the momentum
    t-stat, so a calm window names no state high-volatility and two states may share a name."""
    from regime.detector import Standardizer, name_states_relative

    rng = np.random.default_rng(0)
    # raw observations: log-vol around -5 (typical), volume ratio, efficiency, momentum t-stat
    train = np.column_stack(
        [rng.normal(-5.0, 0.1, 1000), rng.normal(0, 0.3, 1000), rng.uniform(0, 1, 1000), rng.normal(0, 1, 1000)]
    )
    scaler = Standardizer.fit(train)
    raw_means = np.array(
        [
            [-5.0, 0, 0.3, 0.1],  # typical volatility, no drift  -> sideways
            [-4.9, 0, 0.3, 0.2],  # 10% above the median           -> sideways too
            [-5.0, 0, 0.6, 1.2],  # drifting up                    -> bull
            [-4.5, 0, 0.4, -2.0],
        ]
    )  # 1.65x the median volatility    -> high volatility
    names = [REGIMES[i] for i in name_states_relative(scaler(raw_means), scaler, train)]
    assert names == ["sideways", "sideways", "trending_bull", "high_volatility"]
    # the rank rule must use all four names: it calls the second calm state a trend
    assert sorted(REGIMES[i] for i in name_states(scaler(raw_means))) == sorted(REGIMES)
    with pytest.raises(ValueError, match="naming must be one of"):
        RegimeDetector(naming="by_hand")


def test_warm_refit_and_fallback_to_the_last_good_model(fitted, btc, caplog):
    det = RegimeDetector()
    det.fit(btc.iloc[:TRAIN])
    assert det.refit(btc.iloc[2_000 : 2_000 + TRAIN]) is True
    good = det.model
    flat = btc.iloc[:TRAIN].copy()
    flat["close"] = 100.0
    flat["volume"] = 1.0
    with caplog.at_level(logging.WARNING, logger="regime.detector"):
        assert det.refit(flat) is False
    assert det.model is good and det.fallbacks == 1
    assert "keeping the last good model" in caplog.text
    with pytest.raises(RegimeFitError):
        RegimeDetector().fit(flat)


def test_bad_input_gives_clear_errors(btc):
    det = RegimeDetector()
    with pytest.raises(RuntimeError, match="not fitted"):
        det.filter(btc.iloc[:1000])
    nan = btc.iloc[:TRAIN].copy()
    nan.loc[500, "close"] = np.nan
    with pytest.raises(ValueError, match="NaN/inf values in 'close'"):
        det.fit(nan)
    with pytest.raises(ValueError, match="at least"):
        det.fit(btc.iloc[:500])
    with pytest.raises(ValueError, match="needs columns"):
        det.fit(btc[["date", "open"]])
    with pytest.raises(ValueError, match="bad candle"):
        RegimeDetector().fit(btc.iloc[:TRAIN]).step(float("nan"), 1.0)


def test_independent_market_family_has_its_own_spells_and_labels_at_the_close(tmp_path):
    from simulation.synthetic.independent import generate_independent, resample, write

    df, labels = generate_independent(seed=3, days=400)
    assert df.equals(generate_independent(seed=3, days=400)[0]), "seeded"
    assert set(labels) == set(REGIMES)
    assert (df["high"] >= df[["open", "close"]].max(axis=1)).all() and (
        df["low"] <= df[["open", "close"]].min(axis=1)
    ).all()
    runs = np.diff(np.flatnonzero(np.r_[True, labels.to_numpy()[1:] != labels.to_numpy()[:-1], True]))
    assert runs.min() >= 12 and np.median(runs) > 288, "spells of days, not candles"
    hourly, hourly_labels = resample(df, labels, "1h")
    assert hourly_labels.iloc[5] == labels.iloc[5 * 12 + 11], "an hour is labelled with the regime at its close"
    assert hourly["close"].iloc[5] == df["close"].iloc[5 * 12 + 11]
    names = {p.name for p in write(3, 100, tmp_path)}
    assert names == {"BTC_USDT-5m.feather", "BTC_USDT-1h.feather", "labels-5m.feather", "labels-1h.feather"}


def test_external_labels_score_what_strategies_receive(tmp_path, capsys):
    """`--labels`: the walk-forward labels on the file's timeframe, scored against someone else's truth,
    with intervals; the accuracy equals a direct recomputation; bad input is a clear error."""
    from simulation.synthetic.independent import write

    write(5, 150, tmp_path)
    out = tmp_path / "ev.json"
    args = [
        "--datadir",
        str(tmp_path),
        "--pair",
        "BTC/USDT",
        "--timeframe",
        "1h",
        "--labels",
        str(tmp_path / "labels-1h.feather"),
        "--out",
        str(out),
    ]
    assert evaluate_main(args) == 0
    r = json.loads(out.read_text())
    assert {
        "accuracy",
        "baseline_accuracy",
        "per_regime",
        "confusion_matrix",
        "detection_delay",
        "flips_per_1000",
        "true_flips_per_1000",
        "baseline_flips_per_1000",
        "flip_ratio",
        "ci95",
        "walk_forward",
        "test_candles",
    } <= set(r)
    assert r["walk_forward"]["min_dwell"] == 4
    for key in ("accuracy", "baseline_accuracy", "flips_per_1000"):
        lo, hi = r["ci95"][key]
        assert lo <= r[key] <= hi and lo < hi, key
    # recompute: the labels strategies get, on the candles that were scored
    df = pd.read_feather(tmp_path / "BTC_USDT-1h.feather")
    truth = pd.read_feather(tmp_path / "labels-1h.feather")["regime"].to_numpy()
    pred = causal_regimes(df, "1h")["regime"].to_numpy()
    scored = pd.to_datetime(df["date"], utc=True) >= pd.Timestamp(r["scored_from"])
    assert scored.sum() == r["test_candles"]
    assert r["accuracy"] == pytest.approx(float((pred[scored] == truth[scored]).mean()))
    assert sum(map(sum, r["confusion_matrix"]["rows_true_cols_pred"])) == r["test_candles"]
    # the raw argmax flips at least as often as the dwell-filtered label
    assert evaluate_main([*args[:-1], str(tmp_path / "raw.json"), "--min-dwell", "1"]) == 0
    assert json.loads((tmp_path / "raw.json").read_text())["flips_per_1000"] >= r["flips_per_1000"]

    # every 5 minutes (strategies' regime_now): 12 scored candles per hourly one, the baseline as of the last hour
    assert (
        evaluate_main(
            [
                *args[:6],
                "--labels",
                str(tmp_path / "labels-5m.feather"),
                "--cadence",
                "5m",
                "--out",
                str(tmp_path / "5m.json"),
            ]
        )
        == 0
    )
    fine = json.loads((tmp_path / "5m.json").read_text())
    assert fine["cadence"] == "5m" and abs(fine["test_candles"] - 12 * r["test_candles"]) <= 12
    assert 0 <= fine["accuracy"] <= 1 and fine["ci95"]["accuracy"][0] <= fine["accuracy"] <= fine["ci95"]["accuracy"][1]

    bad = tmp_path / "bad.feather"
    pd.DataFrame({"date": df["date"], "regime": "bullish"}).to_feather(bad)
    assert evaluate_main([*args[:6], "--labels", str(bad), "--out", str(out)]) == 2
    assert "use ['trending_bull'" in capsys.readouterr().err


def _hourly(df5: pd.DataFrame) -> pd.DataFrame:
    h = (
        df5.set_index("date")
        .resample("1h", label="left", closed="left")
        .agg({"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"})
    )
    return h.dropna().reset_index()


def test_intrahour_regime_updates_every_base_candle_causally():
    """The regime at 5m cadence: equal to the hourly walk-forward at every hour's close, updated in
    between, and computable from what was known at each candle's close (truncated frames, and a 1h
    frame that runs into the future as backtesting's data provider hands it)."""
    from regime.intrahour import intrahour_regimes

    df5 = generate(SyntheticConfig(seed=3, days=80)).candles["BTC/USDT"]
    h1 = _hourly(df5)
    cols = list(PROB_COLUMNS)
    out = intrahour_regimes(df5, "5m", h1)
    hourly = causal_regimes(h1, "1h")
    closes = pd.to_datetime(df5["date"], utc=True) + pd.Timedelta(minutes=5)
    at_close = (closes.dt.minute == 0).to_numpy()
    known = out[cols].notna().all(axis=1).to_numpy()
    assert known.sum() > 2000
    idx = np.flatnonzero(known & at_close)
    hour_of = pd.to_datetime(df5["date"], utc=True).iloc[idx].dt.floor("1h")
    ref = hourly.set_index(pd.to_datetime(h1["date"], utc=True))[cols].loc[hour_of].to_numpy()
    np.testing.assert_allclose(out[cols].to_numpy()[idx], ref, atol=1e-12)
    # within the hour the probabilities move: not a copy of the last hour
    within = np.flatnonzero(known & ~at_close)
    prev = out[cols].where(pd.Series(at_close, index=out.index), axis=0).ffill().to_numpy()[within]  # last hour's close
    assert (np.abs(out[cols].to_numpy()[within] - prev).max(axis=1) > 1e-6).mean() > 0.5
    assert np.allclose(out[cols].to_numpy()[known].sum(axis=1), 1.0)
    # causal: cut the 5m frame at a mid-hour candle and the 1h frame at the hours closed by then
    for cut in (int(np.flatnonzero(known)[500]) + 7, len(df5) - 40):
        end = closes.iloc[cut - 1]
        short5 = df5.iloc[:cut]
        short1 = h1[pd.to_datetime(h1["date"], utc=True) + pd.Timedelta(hours=1) <= end]
        a = intrahour_regimes(short5, "5m", short1)[cols].to_numpy()[-30:]
        b = intrahour_regimes(short5, "5m", h1)[cols].to_numpy()[-30:]  # future hours present: unused
        np.testing.assert_allclose(a, out[cols].to_numpy()[cut - 30 : cut], atol=1e-12)
        np.testing.assert_allclose(b, a, atol=1e-12)
    with pytest.raises(ValueError, match="gaps"):
        intrahour_regimes(df5.drop(index=100), "5m", h1)


def test_bayes_filter_ceiling_is_causal_calibrated_and_sees_every_regime():
    """The generator's own Bayes filter (the ceiling detectors are scored against): its posterior at t
    comes from candles up to t only, is a probability over the four names, is calibrated (its
    confidence predicts its hit rate) and recognises the regimes that are not the most common one."""
    from simulation.synthetic.independent import REGIMES, bayes_filter, generate_independent

    df, labels = generate_independent(seed=11, days=120)
    assert labels.nunique() >= 3, "a market with several regimes"
    post = bayes_filter(df, particles=2000, seed=0)
    assert post.shape == (len(df), 4) and np.allclose(post.sum(axis=1), 1.0) and (post >= 0).all()
    cut = len(df) // 4
    assert np.array_equal(bayes_filter(df.iloc[:cut], particles=2000, seed=0), post[:cut]), "causal"
    pred, truth = np.array(REGIMES)[post.argmax(axis=1)], labels.to_numpy().astype(str)
    accuracy = (pred == truth).mean()
    assert abs(post.max(axis=1).mean() - accuracy) < 0.05, "calibrated within 5 pp"
    common = pd.Series(truth).value_counts().index[0]
    others = truth != common
    assert (pred[others] == truth[others]).mean() > 0.4, "not a constant guess of the common regime"
