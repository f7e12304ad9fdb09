"""Walk-forward optimization (`scripts.testbench --optimize`): freqtrade hyperopt in-sample, the chosen
values through freqtrade's own parameter file, the in-sample vs out-of-sample gap measured."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from simulation.paths import REPO_ROOT
from simulation.run.browser import check_page
from simulation.testbench.optimize import NoParameters, degradation, parameters, steps

STRATEGIES = REPO_ROOT / "strategies"


def test_the_strategies_tunable_values_are_freqtrade_parameters():
    tfe = parameters("TrendFollowingEnsemble", STRATEGIES, ("buy", "sell"))
    assert set(tfe) == {"min_confidence", "entry_return", "atr_multiplier"}
    assert tfe["min_confidence"]["default"] == 0.75 and tfe["atr_multiplier"]["default"] == 3.0
    assert tfe["atr_multiplier"]["space"] == "sell"
    mre = parameters("MeanReversionEnsemble", STRATEGIES, ("buy",))
    assert set(mre) == {"min_confidence", "entry_return", "zscore_sideways", "zscore_bull"}
    assert mre["min_confidence"]["default"] == 0.65
    rg = parameters("RegimeGatedReference", STRATEGIES, ("buy", "sell"))
    assert set(rg) == {"rsi_bull", "rsi_sideways", "rsi_exit"}  # rsi_entry is not used there: not optimized
    with pytest.raises(NoParameters, match="ArbitrageScout has no optimizable parameter"):
        parameters("ArbitrageScout", STRATEGIES, ("buy", "sell"))  # its numbers come from its config section


def test_sweep_steps_cover_the_range_in_the_parameters_precision():
    assert steps({"kind": "int", "low": 20, "high": 45, "default": 35, "decimals": 0}, 3) == [20, 32, 35, 45]
    got = steps({"kind": "decimal", "low": 0.5, "high": 0.95, "default": 0.75, "decimals": 2}, 4)
    assert got == [0.5, 0.65, 0.75, 0.8, 0.95]
    assert steps({"kind": "categorical", "options": ["a", "b"], "default": "a"}, 5) == ["a", "b"]


def test_degradation_is_in_sample_minus_out_of_sample():
    fold = lambda i, o: {  # noqa: E731
        "in_sample_metrics": {"sharpe": i, "return_per_day": i / 100},
        "out_of_sample_metrics": {"sharpe": o, "return_per_day": o / 100},
    }
    d = degradation([fold(3.0, 1.0), fold(2.0, -1.0)])
    assert d["sharpe"]["per_fold"] == [2.0, 3.0] and d["sharpe"]["mean"] == 2.5 and d["sharpe"]["n"] == 2
    assert d["walk_forward_efficiency"] == pytest.approx(0.0 / 2.5)  # mean OOS 0 over mean IS 2.5 (per 100)
    assert degradation([fold(-1.0, 1.0)])["walk_forward_efficiency"] is None  # no in-sample gain to keep


def test_a_strategy_without_parameters_is_one_line_and_exit_2(tmp_path):
    out = tmp_path / "opt"
    proc = subprocess.run(
        [sys.executable, "-m", "scripts.testbench", "--optimize", "--strategy", "ArbitrageScout", "--out", str(out)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines() == [
        "error: ArbitrageScout has no optimizable parameter in the spaces buy sell"
    ]
    assert not out.exists(), "nothing half-written"


@pytest.mark.slow
def test_a_parameter_that_only_fits_noise_shows_a_large_gap(tmp_path):
    """Plan, fixed before the first run: NoiseFit (entries on candles a hash of time, pair and its one
    parameter picks; out an hour later) on the synthetic market (seed 42, 30 days), 3 folds of 4 days,
    4 in-sample days before each, 30 hyperopt epochs (SharpeHyperOptLossDaily), a 3-point sweep.
    Expected, and asserted: every fold's out-of-sample backtest ran with the value hyperopt chose (read
    back from freqtrade's log); the mean in-sample minus out-of-sample gap is positive for both the daily
    Sharpe and the return per day (the best of 30 draws against one fresh draw); walk-forward efficiency
    below 0.5 or undefined; the chosen values differ across folds; the report renders."""
    strategy_path = tmp_path / "noise-path.json"
    strategy_path.write_text(json.dumps({"strategy_path": "tests/strategies"}))
    out = tmp_path / "opt"
    proc = subprocess.run(
        [sys.executable, "-m", "scripts.testbench", "--optimize", "--strategy", "NoiseFit",
         "--config", "config/backtest.json", "--extra-config", str(strategy_path), "--folds", "3",
         "--fold-days", "4", "--is-days", "4", "--epochs", "30", "--synthetic-days", "30",
         "--sensitivity-points", "3", "--out", str(out)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "walk-forward efficiency" in proc.stdout
    result = json.loads((out / "optimization.json").read_text())
    assert len(result["folds"]) == 3
    for fold in result["folds"]:
        log = (out / "folds" / f"{fold['fold']:02d}" / "out-of-sample" / "backtest.log").read_text()
        used = re.findall(r"Strategy Parameter: noise_seed = (\d+)", log)
        assert used == [str(fold["chosen"]["noise_seed"])], (used, fold["chosen"])
        assert fold["out_of_sample_metrics"]["trades"] > 0 and fold["in_sample_metrics"]["trades"] > 0
    d = result["degradation"]
    assert d["sharpe"]["mean"] > 0 and d["return_per_day"]["mean"] > 0, d
    assert d["walk_forward_efficiency"] is None or d["walk_forward_efficiency"] < 0.5, d
    assert len({f["chosen"]["noise_seed"] for f in result["folds"]}) == 3
    curve = result["sensitivity"]["noise_seed"]
    assert [c["value"] for c in curve] == [0, 5000, 10000] and curve[0]["is_default"]
    assert not (REPO_ROOT / "tests" / "strategies" / "NoiseFit.json").exists(), "the repository stays untouched"
    page = check_page(out / "optimization.html", Path(tmp_path) / "opt.png")
    assert page.errors == [] and page.dom.count("plotly-graph-div") == 2
