"""Second round on the development seeds 0-3 only (issue 35 §4): HMMs whose states are tied to volatility
levels, the candidates named at the end of the first round (harness.py, same data and scoring).

    OMP_NUM_THREADS=1 .venv/bin/python docs/results/2026-12-06-regime-dev/harness2.py /tmp/rg   # ~5 min

- `anchored`: a 4-state 1-D Gaussian HMM, weekly refits on 180 days, its means started at the training
  window's quantiles (0.165, 0.495, 0.78, 0.95: the middles of the rule's bins), learned (`fixed=False`)
  or held (`fixed=True`), a sticky Dirichlet prior on transitions (`sticky`: expected spell in hours, 0 = none);
- `fixed-trans`: transitions held at a given expected spell (hours), means and variances learned.
States named by the order of their means (low to high: sideways, bull, bear, high volatility, as the
generator's volatility levels rank them). Flips: label changes per 1,000 scored hours. Not a product path.
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

from regime.walkforward import dwell_filter

Q = (0.165, 0.495, 0.78, 0.95)
TRAIN = 4320


def features(df: pd.DataFrame) -> pd.DataFrame:
    """harness.py's features plus the unsmoothed per-hour log Parkinson variance."""
    f = base.features(df)
    park = np.log(df["high"].to_numpy(float) / df["low"].to_numpy(float)) ** 2 / (4 * np.log(2))
    f["lpark1"] = np.log(np.maximum(park, 1e-12))
    return f


def load_seeds(root: Path) -> list[tuple[pd.DataFrame, np.ndarray, np.ndarray]]:
    """(features, truth, scored hours) of the development seeds 0-3."""
    seeds = []
    for s in range(4):
        df = pd.read_feather(root / f"s{s}" / "BTC_USDT-1h.feather")
        truth = pd.read_feather(root / f"s{s}" / "labels-1h.feather")["regime"].to_numpy().astype(str)
        seeds.append((features(df), truth, (df["date"] >= base.SCORE_FROM).to_numpy()))
    return seeds


def level_hmm(f: pd.DataFrame, col: str, params: str, spell: float, prior: bool) -> np.ndarray:
    x = f[[col]].to_numpy()
    pred = np.zeros(len(f), dtype=int)
    stay = 1 - 1 / spell
    trans = np.full((4, 4), (1 - stay) / 3) + np.eye(4) * (stay - (1 - stay) / 3)
    for b in range(1000, len(f), base.REFIT):
        e = min(len(f), b + base.REFIT)
        tr = x[max(0, b - TRAIN) : b]
        tr = tr[~np.isnan(tr).any(axis=1)]
        mu, sd = tr.mean(0), tr.std(0)
        z = (tr - mu) / sd
        m = GaussianHMM(4, "diag", n_iter=50, random_state=0, min_covar=1e-3, params=params, init_params="")
        m.startprob_, m.transmat_ = np.full(4, 0.25), trans.copy()
        m.means_, m.covars_ = np.quantile(z[:, 0], Q)[:, None], np.full((4, 1), 0.2 if params == "smc" else 0.1)
        if prior:
            m.transmat_prior = 1 + len(z) / 4 * trans
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m.fit(z)
        names = np.empty(4, dtype=int)
        names[np.argsort(m.means_[:, 0])] = np.arange(4)
        codes = dwell_filter(np.argmax(base._forward(m, (x[b - base.BURN : e] - mu) / sd), axis=1), 4)
        pred[b:e] = names[codes[base.BURN :]]
    return pred


def main(root: Path) -> None:
    logging.getLogger("hmmlearn").setLevel(logging.ERROR)
    seeds = load_seeds(root)

    def flips(p: np.ndarray) -> float:
        return 1000 * float(np.mean(p[1:] != p[:-1]))

    print("truth flips per 1000 h", " ".join(f"{flips(t[s]):.2f}" for _, t, s in seeds))

    def report(name: str, fn) -> None:
        preds = [fn(f) for f, _, _ in seeds]
        accs = [base.score(p, t, s) for p, (_, t, s) in zip(preds, seeds, strict=True)]
        fl = np.mean([flips(p[s]) for p, (_, _, s) in zip(preds, seeds, strict=True)])
        print(f"{name:<44} {' '.join(f'{a:.3f}' for a in accs)}  mean {np.mean(accs):.3f}  flips {fl:.1f}", flush=True)

    report("rule lstd12 180 d, bull/bear by momentum", lambda f: base.rule(f, "lstd12", TRAIN, "momentum"))
    report("rule lpark48 180 d, bull/bear by vol", lambda f: base.rule(f, "lpark48", TRAIN, "vol"))
    for col in ("lpark48", "lpark1"):
        for fixed in (True, False):
            for sticky in (0, 200):
                report(
                    f"anchored {col} fixed={fixed} sticky={sticky}",
                    lambda f, c=col, fx=fixed, st=sticky: level_hmm(f, c, "stc" if fx else "stmc", st or 100, st > 0),
                )
    for col in ("lpark48", "lpark96", "lpark1"):
        for spell in (100, 300):
            report(f"fixed-trans {col} spell={spell}", lambda f, c=col, sp=spell: level_hmm(f, c, "smc", sp, False))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
