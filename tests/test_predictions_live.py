"""The predictions store in a real FreqAI dry-run bot, accelerated, killed -9 halfway and restarted:
no duplicate, gaps only while the bot was down, every prediction settled once its horizon passed."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from cryptobot_ops.companion.bot import live_accuracy_text
from cryptobot_ops.predictions import ENSEMBLE, PredictionStore
from simulation.paths import REPO_ROOT
from simulation.run.__main__ import run_session
from simulation.run.spec import RunSpec

pytestmark = pytest.mark.slow
TF_MS = 300_000
HORIZON = 2
SMALL = {
    "add_config_files": [str(REPO_ROOT / "config" / "freqai.json")],
    "strategy": "EnsembleSignalStrategy",
    "freqai": {
        "identifier": "ci-predictions-store",
        "train_period_days": 7,
        "live_retrain_hours": 1000,  # one model for the whole window: its age grows, its id stays
        "feature_parameters": {
            "include_timeframes": ["5m", "1h"],
            "include_corr_pairlist": ["BTC/USDT"],
            "label_period_candles": HORIZON,
            "indicator_periods_candles": [10],
        },
        "model_training_parameters": {
            "purge": HORIZON,
            "models": ["lightgbm", "xgboost"],
            "meta": "mean",
            "lightgbm": {"n_estimators": 30},
            "xgboost": {"n_estimators": 30},
        },
    },
}


def test_store_survives_kill_9_without_duplicates_or_unsettled_predictions(tmp_path):
    cfg = tmp_path / "ml.json"
    cfg.write_text(json.dumps(SMALL))
    start = int(pd.Timestamp("2024-03-01", tz="UTC").value // 1_000_000)
    spec = RunSpec(
        strategy="EnsembleSignalStrategy",
        config=str(cfg),
        mode="dry-run",
        speed=1.0,
        start_ms=start,
        end_ms=start + 90 * 60_000,
        pairs=["BTC/USDT"],
        timeframe="5m",
        out=str(tmp_path / "run"),
        kill_at=0.4,
        warmup_s=20 * 60.0,
        synthetic_days=45,
        synthetic_start="2024-01-20",
        seed=5,
    )
    spec.out_dir.mkdir(parents=True)
    run_session(spec)
    events = json.loads((tmp_path / "run" / "session.json").read_text())["events"]
    killed = next(e["time_ms"] for e in events if e["event"] == "bot_killed")
    back = [e["time_ms"] for e in events if e["event"] == "bot_ready"][-1]
    store = PredictionStore(spec.userdir / "predictions.sqlite")
    df = store.frame()
    assert set(df["model"]) == {ENSEMBLE, "lightgbm", "xgboost"}
    assert not df.duplicated(["pair", "model", "candle_ms"]).any()
    ens = df[df["model"] == ENSEMBLE].set_index("candle_ms")
    closes_at = ens["close"]
    before, after = ens[ens.index + TF_MS <= killed], ens[ens.index + TF_MS > back]
    assert len(before) >= 5 and len(after) >= 5, (len(before), len(after))
    # gaps: only candles that closed while the bot was down (or before it had analysed after the restart)
    missing = store.missing_candles("BTC/USDT", TF_MS)
    assert all(killed - TF_MS <= m + TF_MS <= back + 2 * TF_MS for m in missing), (missing, killed, back)
    # every candle that closed while the bot ran has its prediction, one per model
    assert (df.groupby("candle_ms")["model"].count() == 3).all()
    # settled: every prediction whose horizon candle the bot analysed, those made before the kill included
    last = ens.index.max()
    due = df[df["candle_ms"] + HORIZON * TF_MS <= last]
    assert due["outcome"].notna().all(), due[due["outcome"].isna()]
    assert before["outcome"].notna().all(), "predictions made before the kill were settled after the restart"
    # the outcome is the training label, from the bot's own closes
    for t, row in ens[ens["outcome"].notna()].iterrows():
        if t + HORIZON * TF_MS in closes_at.index:
            assert row["outcome"] == pytest.approx(math.log(closes_at[t + HORIZON * TF_MS] / row["close"]))
    # the ensemble's "mean" combiner: its prediction is the mean of the two base models' (same candles)
    wide = df.pivot(index="candle_ms", columns="model", values="prediction")
    assert np.allclose(wide[ENSEMBLE], wide[["lightgbm", "xgboost"]].mean(axis=1), rtol=1e-6, atol=1e-9)
    assert (ens["model_age_s"] > 0).all() and ens["model_id"].str.startswith("ci-predictions-store/").all()
    assert ens["confidence"].between(0, 1).all()
    # the companion's /models reads the same store
    text = live_accuracy_text(spec.userdir)
    for model in (ENSEMBLE, "lightgbm", "xgboost"):
        sc = store.scores(last=200).set_index("model").loc[model]
        assert f"{model} BTC/USDT: {sc['accuracy']:.1%} (" in text and f"n={sc['n']})" in text, text
