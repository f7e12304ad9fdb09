"""The stacked ensemble inside stock freqtrade: backtesting, saved models, lookahead-analysis."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from analysis_helpers import lookahead_row
from freqtrade.configuration.load_config import load_from_files
from freqtrade.data.btanalysis import load_backtest_analysis_data

from simulation.freqtrade_runner import latest_backtest_stats, run_freqtrade
from simulation.gateway import GatewayProcess, write_overlay

pytestmark = pytest.mark.slow
STRATEGY = "EnsembleSignalStrategy"
# Spec-shaped model, reduced sizes so CI's 2 cores train it in seconds.
SMALL = {
    "freqai": {
        "identifier": "ci-ensemble",
        "train_period_days": 7,
        "backtest_period_days": 6,  # one training per 6-day backtest
        "save_backtest_models": True,
        "feature_parameters": {"include_timeframes": ["5m", "1h"]},
        "model_training_parameters": {
            "n_splits": 3,
            "purge": 12,
            "lightgbm": {"n_estimators": 30},
            "catboost": {"iterations": 30},
            "random_forest": {"num_trees": 10},
            "lstm": {"epochs": 1, "units": [8, 8, 4]},
        },
    }
}


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("freqai")
    userdir = tmp / "user_data"
    run_freqtrade(["create-userdir", "--userdir", str(userdir)], tmp / "userdir.log")
    small = tmp / "small.json"
    small.write_text(json.dumps(SMALL))
    with GatewayProcess(["--synthetic", "--seed", "11", "--days", "40"], log_path=tmp / "gw.log") as gw:
        overlay = write_overlay(tmp / "exchange.json", gw.url)
        base = [
            "--config",
            "config/freqai.json",
            "--config",
            str(overlay),
            "--config",
            str(small),
            "--userdir",
            str(userdir),
            "--datadir",
            str(tmp / "data"),
        ]
        run_freqtrade(
            ["download-data", *base, "--timeframes", "5m", "1h", "--timerange", "20240101-20240210"],
            tmp / "download.log",
        )
        yield tmp, base, userdir


def test_backtest_trains_predicts_and_trades(env):
    tmp, base, _userdir = env
    results = tmp / "results"
    results.mkdir()
    run = run_freqtrade(
        [
            "backtesting",
            *base,
            "--timerange",
            "20240125-20240131",
            "--export",
            "signals",
            "--backtest-directory",
            str(results),
            "--cache",
            "none",
        ],
        tmp / "backtest.log",
    )
    log = run.log_path.read_text()
    assert "Training model on" in log and "features" in log
    n_features = int(log.split("Training model on ")[1].split(" features")[0])
    assert n_features >= 200, f"FreqAI expansion gave only {n_features} features"
    stats = latest_backtest_stats(results)["strategy"][STRATEGY]
    assert stats["total_trades"] > 0
    signals = load_backtest_analysis_data(results, "signals")[STRATEGY]
    for df in signals.values():
        assert {"&-target", "&-confidence", "do_predict"} <= set(df.columns)
        assert df["&-confidence"].between(0, 1).all()
        assert (df["&-confidence"] >= 0.55).all(), "entries only above the strategy's confidence gate"


def test_continual_learning_is_refused_before_any_training(env):
    """Our models retrain from scratch: a config asking FreqAI to continue from the last model fails, clearly."""
    tmp, base, _userdir = env
    cl = tmp / "continual.json"
    cl.write_text(json.dumps({"freqai": {"continual_learning": True}}))
    run = run_freqtrade(
        ["backtesting", *base, "--config", str(cl), "--timerange", "20240125-20240131", "--cache", "none"],
        tmp / "continual.log",
        check=False,
    )
    log = run.log_path.read_text()
    assert run.returncode != 0 and "does not support freqai.continual_learning: set it to false" in log
    assert "Training model on" not in log


def test_saved_models_reload_in_a_new_process_with_identical_predictions(env):
    tmp, _base, userdir = env
    models = sorted((userdir / "models" / "ci-ensemble").rglob("*_model.joblib"))
    assert models, "FreqAI's data drawer saved the ensemble"
    script = (
        "import sys, cloudpickle, numpy as np, pandas as pd\n"
        "path = sys.argv[1]\n"
        "model = cloudpickle.load(open(path, 'rb'))\n"
        "x = pd.read_pickle(path.replace('_model.joblib', '_trained_df.pkl')).tail(300)\n"
        "pred, conf = model.predict_with_confidence(x)\n"
        "np.save(sys.argv[2], np.column_stack([pred, conf]))\n"
    )
    outs = []
    for i in range(2):
        out = tmp / f"pred{i}.npy"
        subprocess.run(
            [sys.executable, "-c", script, str(models[-1]), str(out)], check=True, timeout=600, capture_output=True
        )
        outs.append(out.read_bytes())
    assert outs[0] == outs[1], "two fresh processes loading the saved model predict bit-identically"


def test_lookahead_analysis_finds_no_biased_signal(env):
    """freqtrade re-runs the backtest cut at each signal and compares. Entries and exits must be
    identical. FreqAI output columns may be listed as 'biased indicators' (freqtrade says these can
    be ignored): assert every such difference is NaN-vs-NaN or float noise from retraining."""
    tmp, base, _userdir = env
    # Every cut backtest retrains: keep the two model kinds whose inputs could leak differently (the
    # row-wise trees and the LSTM's 20-candle windows); the other two read rows exactly as LightGBM does.
    (tmp / "lookahead.json").write_text(
        json.dumps(
            {
                "freqai": {
                    "identifier": "ci-ensemble-lookahead",
                    "model_training_parameters": {"models": ["lightgbm", "lstm"], "n_splits": 2},
                }
            }
        )
    )
    out = tmp / "lookahead.csv"
    run = run_freqtrade(
        [
            "lookahead-analysis",
            *base,
            "--config",
            str(tmp / "lookahead.json"),
            "--timerange",
            "20240125-20240131",
            "--minimum-trade-amount",
            "2",
            "--targeted-trade-amount",
            "2",
            "--lookahead-analysis-exportfilename",
            str(out),
        ],
        tmp / "lookahead.log",
        timeout=900,
    )
    row = lookahead_row(run.log_path.read_text(), STRATEGY)
    assert int(row["total_signals"]) >= 2, row
    assert row["biased_entry_signals"] == "0" and row["biased_exit_signals"] == "0", row
    flagged = [c.strip() for c in row["biased_indicators"].split(",") if c.strip()]
    assert all(c.startswith("&-") or c in ("do_predict", "enter_long", "exit_long") for c in flagged), flagged
    for line in run.log_path.read_text().splitlines():
        m = re.search(r"found look ahead bias in column (\S+)\. (\S+) != (\S+)$", line)
        # the cut backtest's last candle is not predicted yet (0 or NaN: freqtrade says to ignore it);
        # any other difference in FreqAI's outputs must be float noise from retraining
        if m and "nan" not in (m[2], m[3]) and 0.0 not in (float(m[2]), float(m[3])):
            a, b = float(m[2]), float(m[3])
            assert abs(a - b) <= 1e-9 * max(abs(a), 1e-6), line


RECORDING_MODEL = '''
import json
import os

from freqaimodels.LightGBMBaseRegressor import LightGBMBaseRegressor


class LabelWindowRecorder(LightGBMBaseRegressor):
    """Our LightGBM model, recording for each training what FreqAI handed it: the frame's last candle and
    the last candle that carries a label."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.model_training_parameters = {"n_estimators": 10}

    def train(self, unfiltered_df, pair, dk, **kwargs):
        label = [c for c in unfiltered_df.columns if c.startswith("&")][0]
        dates = unfiltered_df["date"]
        with open(os.environ["LABEL_WINDOWS"], "a") as fh:
            fh.write(json.dumps({"pair": pair, "last": str(dates.iloc[-1]),
                                 "labelled": str(dates[unfiltered_df[label].notna()].iloc[-1]),
                                 "window_end": str(self.training_timerange.stopdt)}) + "\\n")
        return super().train(unfiltered_df, pair, dk, **kwargs)
'''


def test_no_training_label_reads_the_backtest_window(env, tmp_path):
    """Issue 35 §2, pinned: the freqtrade we run computes FreqAI's targets on the frame cut at the training
    window's end, so the last `label_period_candles` rows of every training frame carry no label (a label
    there would be read from the backtest window). A freqtrade upgrade that brought the leak back fails here."""
    import os

    import pandas as pd

    _tmp, base, _ = env
    models = tmp_path / "models"
    models.mkdir()
    (models / "LabelWindowRecorder.py").write_text(RECORDING_MODEL)
    extra = tmp_path / "pin.json"
    extra.write_text(json.dumps({"freqai": {"identifier": "ci-label-pin"}}))
    record = tmp_path / "windows.jsonl"
    os.environ["LABEL_WINDOWS"] = str(record)
    try:
        run_freqtrade(
            ["backtesting", *base, "--config", str(extra), "--freqaimodel", "LabelWindowRecorder",
             "--freqaimodel-path", str(models), "--timerange", "20240125-20240131", "--cache", "none"],
            tmp_path / "pin.log",
        )  # fmt: skip
    finally:
        del os.environ["LABEL_WINDOWS"]
    cfg = load_from_files(["config/freqai.json"])
    label_period = cfg["freqai"]["feature_parameters"]["label_period_candles"]
    candle = pd.Timedelta(cfg["timeframe"])
    trainings = [json.loads(line) for line in record.read_text().splitlines()]
    assert len(trainings) >= 2, trainings
    for t in trainings:
        last, labelled, end = (pd.Timestamp(t[k]) for k in ("last", "labelled", "window_end"))
        assert last == end - candle, t
        assert labelled == last - label_period * candle, f"labels end {last - labelled} before the window: {t}"
