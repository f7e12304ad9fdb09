"""Estimators behind the FreqAI models: leakage-free stacking, persistence, causality, speed."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from freqaimodels.estimators import (
    CatBoostEstimator,
    KerasLSTMEstimator,
    LightGBMEstimator,
    PurgedKFold,
    StackedEnsemble,
    TFDFRandomForestEstimator,
)
from freqaimodels.estimators.combiners import WeightedAverage, rolling_hit_rate_weights

TINY = {
    "lightgbm": {"n_estimators": 30},
    "catboost": {"iterations": 30},
    "random_forest": {"num_trees": 10},
    "lstm": {"epochs": 1, "units": (8, 8, 4)},
}


def signal_data(n: int = 3000, d: int = 30, seed: int = 0):
    """Features with a weak, persistent relation to the target (like returns)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    x[:, 0] = np.convolve(rng.normal(size=n), np.ones(10) / 10, mode="same")
    y = 0.6 * x[:, 0] + 0.3 * np.tanh(x[:, 1]) + rng.normal(scale=0.5, size=n)
    return x.astype(np.float32), y


def test_purged_walk_forward_never_trains_on_or_after_the_test_block():
    folds = list(PurgedKFold(5, purge=12).split(6000))
    assert len(folds) == 5
    covered = np.concatenate([t for _, t in folds])
    assert np.array_equal(covered, np.arange(1000, 6000)), "every row after the first block tested once"
    for train, test in folds:
        assert train.max() < test.min() - 12


def test_purged_kfold_removes_purge_and_embargo_around_each_block():
    for train, test in PurgedKFold(5, purge=10, embargo=20, walk_forward=False).split(1000):
        lo, hi = test.min(), test.max()
        assert not np.any((train >= lo - 10) & (train < hi + 1 + 20))
        assert len(np.intersect1d(train, test)) == 0


def test_stacking_oof_rows_come_from_models_that_never_saw_them():
    x, y = signal_data()
    ens = StackedEnsemble(models=["lightgbm", "catboost"], purge=12, **TINY).fit(x, y)
    seen = set()
    for train, test in ens.folds_:
        assert train.max() < test.min() - 12, "purged: no training label overlaps the block"
        seen.update(test.tolist())
    assert set(ens.oof_rows_.tolist()) == seen, "meta-learner trained only on out-of-fold rows"
    assert ens.oof_.shape == (len(seen), 2)


def test_confidence_is_calibrated_on_held_out_data():
    x, y = signal_data(6000)
    ens = StackedEnsemble(models=["lightgbm", "catboost"], **TINY).fit(x[:4000], y[:4000])
    pred, conf = ens.predict_with_confidence(x[4000:])
    hit = np.sign(pred) == np.sign(y[4000:])
    assert 0 <= conf.min() and conf.max() <= 1
    lo, hi = conf < np.median(conf), conf >= np.median(conf)
    assert hit[hi].mean() > hit[lo].mean() + 0.05, (hit[hi].mean(), hit[lo].mean())
    assert hit.mean() > 0.6


def test_meta_auto_keeps_the_candidate_with_the_best_oof_direction_accuracy():
    # The target is the sum of two features: a one-split base model sees only one of them (~75% of
    # directions), a linear meta-learner with the features passed through reads both: "passthrough" wins
    # over every combiner that only sees the base prediction.
    rng = np.random.default_rng(3)
    x = rng.normal(size=(3000, 5)).astype(np.float32)
    y = x[:, 0] + x[:, 1] + 0.1 * rng.normal(size=3000)
    ens = StackedEnsemble(
        models=["lightgbm"], meta="auto", lightgbm={"n_estimators": 1, "max_depth": 1, "num_leaves": 2}
    ).fit(x, y)
    assert set(ens.meta_scores_) == {"passthrough", "bases", "mean", "ic_weighted", "best", "nnls_shrunk"}
    assert ens.meta_kind_ == "passthrough", ens.meta_scores_
    others = ("bases", "mean", "ic_weighted", "best", "nnls_shrunk")
    assert ens.meta_scores_["passthrough"] > max(ens.meta_scores_[k] for k in others) + 0.1
    assert np.array_equal(ens.predict(x[:50]), ens.predict_meta(x[:50], "passthrough"))
    forced = StackedEnsemble(models=["lightgbm"], meta="bases", lightgbm={"n_estimators": 5}).fit(x, y)
    assert forced.meta_kind_ == "bases" and list(forced.metas_) == ["bases"]


def test_weighted_average_ignores_base_models_without_positive_ic():
    rng = np.random.default_rng(5)
    y = rng.normal(size=2000)
    good, noise, inverted = y + rng.normal(size=2000), rng.normal(size=2000), -y + 0.5 * rng.normal(size=2000)
    X = np.column_stack([good, noise, inverted])
    ic = WeightedAverage("ic").fit(X, y)
    assert ic.weights_[0] > 0.8 and ic.weights_[2] == 0 and np.isclose(ic.weights_.sum(), 1)
    assert np.allclose(WeightedAverage("equal").fit(X, y).weights_, 1 / 3)
    # no base model with positive IC: equal weights, not a silent zero prediction
    assert np.allclose(WeightedAverage("ic").fit(X[:, [2]], y).predict(X[:3, [2]]), X[:3, 2])


def test_rolling_hit_rate_weights_read_only_outcomes_known_at_each_row():
    rng = np.random.default_rng(0)
    y = rng.normal(size=400)
    preds = np.column_stack([y + rng.normal(0, 0.3, 400), -y, rng.normal(size=400)])  # good, inverted, noise
    w = rolling_hit_rate_weights(preds, y, label_period=12, window=50)
    assert np.allclose(w.sum(axis=1), 1.0)
    assert np.allclose(w[:12], 1 / 3), "nothing scored before the first label is known"
    assert (w[100:, 0] > 0.6).all(), "the good model leads"
    assert np.allclose(w[100:, 1], 0.0), "the inverted model gets no say"
    # causal: outcomes after t - label_period cannot change row t's weights
    for t in (60, 200, 399):
        changed = y.copy()
        changed[t - 11 :] = -changed[t - 11 :]
        np.testing.assert_array_equal(rolling_hit_rate_weights(preds, changed, 12, 50)[t], w[t])
    # `start`: earlier rows only feed the hit rates
    assert np.array_equal(rolling_hit_rate_weights(preds, y, 12, 50, start=300), w[300:])


def test_mean_and_ic_weighted_stacks_predict_without_an_intercept():
    x, y = signal_data(3000)
    for kind in ("mean", "ic_weighted"):
        ens = StackedEnsemble(models=["lightgbm", "catboost"], meta=kind, **TINY).fit(x, y)
        base = ens.base_predictions(x[:100])
        assert np.allclose(ens.predict(x[:100]), base @ ens.meta_.weights_)
        hit = np.sign(ens.predict(x)) == np.sign(y)
        assert hit.mean() > 0.6, kind


def test_center_target_learns_the_excess_over_the_training_drift():
    x, y = signal_data(3000)
    drift = 2.0  # a trending training window: every row's return shifted up
    plain = StackedEnsemble(models=["lightgbm"], meta="bases", **TINY).fit(x, y + drift)
    centered = StackedEnsemble(models=["lightgbm"], meta="bases", center_target=True, **TINY).fit(x, y + drift)
    assert abs(plain.predict(x).mean() - drift) < 0.3  # the drift is in every prediction
    assert abs(centered.predict(x).mean()) < 0.3 and abs(centered.bases_["lightgbm"].predict(x).mean()) < 0.3
    # what is left is the signal: the centered model still ranks rows like the target does
    assert np.corrcoef(centered.predict(x), y)[0, 1] > 0.5


def test_meta_typo_fails_before_any_training():
    ens = StackedEnsemble(meta="features")
    with pytest.raises(ValueError, match="meta must be one of"):
        ens.fit(np.zeros((100, 3)), np.zeros(100))
    assert not hasattr(ens, "bases_"), "no base model was fitted before the typo was caught"


@pytest.mark.parametrize(
    "estimator",
    [
        LightGBMEstimator(**TINY["lightgbm"]),
        CatBoostEstimator(**TINY["catboost"]),
        TFDFRandomForestEstimator(**TINY["random_forest"]),
        KerasLSTMEstimator(epochs=8, units=(16, 8, 4), learning_rate=3e-3, stride=1),  # labels here do not overlap
    ],
    ids=lambda e: type(e).__name__,
)
def test_pickle_round_trip_gives_identical_predictions(estimator):
    x, y = signal_data(1500)
    estimator.fit(x[:1200], y[:1200])
    before = estimator.predict(x[1200:])
    restored = pickle.loads(pickle.dumps(estimator))
    np.testing.assert_array_equal(restored.predict(x[1200:]), before)
    assert np.corrcoef(before, y[1200:])[0, 1] > 0.2, "the model learned something"


def test_lstm_sequences_are_causal():
    x, y = signal_data(1200)
    lstm = KerasLSTMEstimator(**TINY["lstm"]).fit(x[:1000], y[:1000])
    short = lstm.predict(x[:1100])
    longer = lstm.predict(x[:1150])
    np.testing.assert_allclose(longer[:1100], short, rtol=1e-6, atol=1e-9)


def test_feature_selection_uses_only_the_training_rows_and_finds_the_signal():
    from freqaimodels.estimators.selection import select_columns

    x, y = signal_data(2000, d=60)
    cols = select_columns(x[:1000], y[:1000], 10)
    assert len(cols) == 10 and {0, 1} <= set(cols) and np.all(np.diff(cols) > 0)
    # rows after the training window cannot change the choice: scramble them, same columns
    x2 = x.copy()
    x2[1000:] = np.random.default_rng(5).normal(size=x2[1000:].shape)
    assert np.array_equal(select_columns(x2[:1000], y[:1000], 10), cols)
    assert np.array_equal(select_columns(x, y, None), np.arange(60))
    with pytest.raises(ValueError, match="max_features"):
        select_columns(x, y, -3)


def test_default_ensemble_is_one_hold_out_on_selected_columns_with_a_validated_combiner():
    x, y = signal_data(2400, d=60)
    ens = StackedEnsemble(**TINY, purge=12, max_features=12).fit(x[:2000], y[:2000])
    assert ens.params["models"] == ["lightgbm", "catboost", "lstm"]
    assert list(ens.metas_) == ["mean", "best", "nnls_shrunk"] and ens.meta_kind_ in ens.metas_
    ((train, test),) = ens.folds_  # a single hold-out: the second half, trained on the first minus the purge
    assert test[0] == 1000 and train[-1] == 1000 - 12 - 1
    assert len(ens.columns_) == 12 and {0, 1} <= set(ens.columns_)
    pred = ens.predict(x[2000:])
    assert np.corrcoef(pred, y[2000:])[0, 1] > 0.3
    assert set(ens.timings_) == {"lightgbm", "catboost", "lstm", "selection"}


def test_lstm_training_reuses_one_network_without_touching_fitted_models():
    """Fits share a compiled network (reset before each): the same seed gives the same model, and a later
    fit never changes what an earlier estimator predicts."""
    x, y = signal_data(800, d=8)
    params = {"epochs": 2, "units": (8, 4), "stride": 1}
    first = KerasLSTMEstimator(**params).fit(x[:600], y[:600])
    before = first.predict(x[600:])
    other = KerasLSTMEstimator(**params, seed=7).fit(x[:600], -y[:600])  # trains the shared network on other data
    np.testing.assert_array_equal(first.predict(x[600:]), before)
    again = KerasLSTMEstimator(**params).fit(x[:600], y[:600])
    np.testing.assert_allclose(again.predict(x[600:]), before, rtol=1e-5, atol=1e-6)
    assert not np.allclose(other.predict(x[600:]), before)
    warm = KerasLSTMEstimator(**params).fit(x[:300], y[:300]).warm_fit(x[:600], y[:600])
    assert warm.predict(x[600:]).shape == before.shape


def test_lightgbm_follows_a_supervisors_thread_cap(monkeypatch):
    """LightGBM's sklearn API takes every physical core when n_jobs is None, whatever OMP_NUM_THREADS says;
    two such fits side by side on two cores spin against each other (80x slower, measured)."""
    x, y = signal_data(n=400, d=5)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert LightGBMEstimator(n_estimators=5).fit(x, y).model_.get_params()["n_jobs"] == 1
    assert LightGBMEstimator(n_estimators=5, n_jobs=2).fit(x, y).model_.get_params()["n_jobs"] == 2  # explicit wins
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert LightGBMEstimator(n_estimators=5).fit(x, y).model_.get_params()["n_jobs"] is None  # LightGBM's default


def test_lstm_fits_in_parallel_threads_are_those_of_sequential_fits():
    """Issue 34 §4: the seed was set before waiting for the trainer lock, so a fit that waited trained on
    the random state another thread had just seeded. FreqAI trains in a thread of its own."""
    import threading

    x, y = signal_data(800, d=8)
    params = {"epochs": 2, "units": (8, 4), "stride": 1}
    alone = {seed: KerasLSTMEstimator(**params, seed=seed).fit(x[:600], y[:600]).predict(x[600:]) for seed in (42, 7)}
    for _ in range(2):
        barrier, got = threading.Barrier(2), {}

        def fit(seed: int, barrier: threading.Barrier, got: dict) -> None:
            barrier.wait()
            got[seed] = KerasLSTMEstimator(**params, seed=seed).fit(x[:600], y[:600]).predict(x[600:])

        threads = [threading.Thread(target=fit, args=(seed, barrier, got)) for seed in (42, 7)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for seed in (42, 7):
            np.testing.assert_allclose(got[seed], alone[seed], rtol=1e-5, atol=1e-6)


def test_every_inner_split_leaves_the_labels_horizon_before_the_rows_it_checks():
    """Issue 35 §2: a label reads `label_period_candles` rows ahead, so training rows closer than that to a
    checked block know part of its outcome. The adapter hands the horizon to the estimator; the ensemble's
    out-of-fold blocks and its meta-learner's split purge at least that many rows even when the configured
    `purge` is smaller, and the bases (the LSTM's early-stopping hold-out) get it too."""
    x, y = signal_data(2400)
    ens = StackedEnsemble(models=["lightgbm"], n_splits=3, purge=2, **TINY).set_label_period(30).fit(x, y)
    assert ens.folds_ and all(train.max() < test.min() - 30 for train, test in ens.folds_)
    assert all(b.label_period_ == 30 for b in ens.bases_.values())
    assert ens.make_bases()["lightgbm"].label_period_ == 30
    with pytest.raises(ValueError, match="label period"):
        StackedEnsemble().set_label_period(-1)


def test_the_lstm_hold_out_is_purged_by_the_label_horizon():
    seen = {}

    class Recording(KerasLSTMEstimator):
        def _train(self, n_features, start, seed, **fit_kw):
            seen["train_rows"], seen["hold_out"] = len(fit_kw["x"]), len(fit_kw["validation_data"][0])
            return super()._train(n_features, start, seed, **fit_kw)

    x, y = signal_data(800)
    params = {"epochs": 1, "units": (8, 8, 4), "stride": 1, "validation_fraction": 0.2}
    Recording(**params).fit(x, y)
    plain = dict(seen)
    Recording(**params).set_label_period(25).fit(x, y)
    assert seen["hold_out"] == plain["hold_out"] > 0
    assert seen["train_rows"] == plain["train_rows"] - 25, "the 25 rows before the hold-out are left out"


def test_best_member_and_shrunk_nnls_weights():
    rng = np.random.default_rng(8)
    y = rng.normal(size=3000)
    good, noise, inverted = y + rng.normal(size=3000), rng.normal(size=3000), -y + 0.5 * rng.normal(size=3000)
    X = np.column_stack([noise, good, inverted])
    assert WeightedAverage("best").fit(X, y).weights_.tolist() == [0.0, 1.0, 0.0]
    w = WeightedAverage("nnls").fit(X, y).weights_
    assert np.isclose(w.sum(), 1) and (w >= 1 / 6 - 1e-12).all(), "half of the weight spread equally"
    assert w[1] > 0.6 and np.isclose(w[2], 1 / 6), "the inverted member gets no least-squares weight"
    # none fits with a positive weight: equal weights, not a zero prediction
    assert np.allclose(WeightedAverage("nnls").fit(-X[:, [1, 1]], y).weights_, 0.5)


def test_the_default_combination_is_validated_inside_the_training_window():
    """Issue 35 §1: the combination is chosen in each training window by purged inner validation among
    the best single member, the plain mean and shrunk non-negative weights; a member that is right and
    others that are noise make the chosen one beat the plain mean on the OOF rows."""
    rng = np.random.default_rng(4)
    x = rng.normal(size=(3000, 6)).astype(np.float32)
    y = x[:, 0] + 0.3 * rng.normal(size=3000)
    ens = StackedEnsemble(models=["lightgbm", "catboost"], **TINY).fit(x, y)
    assert set(ens.meta_scores_) == {"mean", "best", "nnls_shrunk"}
    assert ens.meta_scores_[ens.meta_kind_] == max(ens.meta_scores_.values())
    with pytest.raises(ValueError, match="meta must be"):
        StackedEnsemble(meta=["mean", "median"]).fit(x, y)
