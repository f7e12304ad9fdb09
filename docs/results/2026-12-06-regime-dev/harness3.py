"""Third try on the development seeds 0-3 only (issue 35 §4): the HMM given the rule's prior. Each weekly
refit labels its 180-day training window with the volatility-quantile rule (harness.rule's bins, bull/bear
by volatility), takes the HMM's parameters from those labels (per-label means and variances, transition
counts, label shares) and filters forward with them, with or without 10 EM iterations after.

    OMP_NUM_THREADS=1 .venv/bin/python docs/results/2026-12-06-regime-dev/harness3.py /tmp/rg   # ~1 min

States keep the rule's names (state s is rule label s). Not a product path: a record of what was tried.
"""

from __future__ import annotations

import logging
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from hmmlearn.hmm import GaussianHMM

sys.path.insert(0, str(Path(__file__).parent))
import harness as base
import harness2

from regime.walkforward import dwell_filter

TRAIN, STATES = 4320, 4


def rule_labels(x: np.ndarray) -> np.ndarray:
    lo, mid, hi = np.nanquantile(x, (0.33, 0.66, 0.9))
    return np.where(x >= hi, 3, np.where(x <= lo, 0, np.where(x <= mid, 1, 2)))


def rule_seeded(f: pd.DataFrame, cols: list[str], em_iter: int) -> np.ndarray:
    x = f[cols].to_numpy()
    pred = np.zeros(len(f), dtype=int)
    for b in range(1000, len(f), base.REFIT):
        e = min(len(f), b + base.REFIT)
        tr = x[max(0, b - TRAIN) : b]
        tr = tr[~np.isnan(tr).any(axis=1)]
        lab = rule_labels(tr[:, 0])
        mu, sd = tr.mean(0), tr.std(0)
        z = (tr - mu) / sd
        counts = np.ones((STATES, STATES))
        np.add.at(counts, (lab[:-1], lab[1:]), 1)
        m = GaussianHMM(STATES, "diag", n_iter=max(em_iter, 1), init_params="", params="stmc")
        m.startprob_ = np.bincount(lab, minlength=STATES) / len(lab)
        m.transmat_ = counts / counts.sum(1, keepdims=True)
        m.means_ = np.array([z[lab == s].mean(0) for s in range(STATES)])
        m.covars_ = np.array([z[lab == s].var(0) + 1e-3 for s in range(STATES)])
        if em_iter:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                m.fit(z)
        codes = dwell_filter(np.argmax(base._forward(m, (x[b - base.BURN : e] - mu) / sd), axis=1), 4)
        pred[b:e] = codes[base.BURN :]
    return pred


def main(root: Path) -> None:
    logging.getLogger("hmmlearn").setLevel(logging.ERROR)
    seeds = harness2.load_seeds(root)
    for cols in (["lpark48"], ["lpark48", "lpark96"], ["lpark24"]):
        for em in (0, 10):
            preds = [rule_seeded(f, cols, em) for f, _, _ in seeds]
            accs = [base.score(p, t, s) for p, (_, t, s) in zip(preds, seeds, strict=True)]
            flips = np.mean([1000 * np.mean(p[s][1:] != p[s][:-1]) for p, (_, _, s) in zip(preds, seeds, strict=True)])
            name = f"rule-seeded {'+'.join(cols)}, EM {em}"
            print(f"{name:<36} {' '.join(f'{a:.3f}' for a in accs)}  mean {np.mean(accs):.3f}  flips {flips:.1f}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
