"""Development harness for issue 35 §4 on the independent family's development seeds 0-3 only.

    python -m simulation.synthetic.independent --seed S --days 720 --out /tmp/rg/sS   # S = 0..3
    OMP_NUM_THREADS=1 .venv/bin/python docs/results/2026-12-06-regime-dev/harness.py /tmp/rg

Scores 1h labels from 2023-07-01 on (12,936 hours per seed) against the generator's truth:
- `supervised`: a gradient-boosted classifier trained on the other three seeds' true labels (leave one
  seed out): what these volatility features carry at best when the names are known;
- `rule`: quantile thresholds of the trailing training window (weekly refits), momentum sign or
  volatility rank for bull/bear;
- `hmm`: a 4-state Gaussian HMM on one volatility feature, weekly refits, forward filter, states named
  by volatility rank or by the percentile of their mean in the training window.
Every variant uses the shipped detector's 4-hour minimum dwell. Not a product path: a record of what was tried.
"""

from __future__ import annotations

import logging
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from hmmlearn.hmm import GaussianHMM
from sklearn.ensemble import HistGradientBoostingClassifier

from regime.walkforward import dwell_filter

NAMES = np.array(["sideways", "trending_bull", "trending_bear", "high_volatility"])  # by volatility rank
SCORE_FROM = pd.Timestamp("2023-07-01", tz="UTC")
REFIT, BURN = 168, 48


def features(df: pd.DataFrame) -> pd.DataFrame:
    """Causal 1h features: log of EWMA Parkinson variance (range-based), 12h close-to-close std, momentum."""
    h, lo, c = (df[k].to_numpy(float) for k in ("high", "low", "close"))
    park = pd.Series(np.log(h / lo) ** 2 / (4 * np.log(2)))
    ret = pd.Series(np.diff(np.log(c), prepend=np.nan))
    out = {f"lpark{s}": np.log(park.ewm(span=s).mean()) for s in (24, 48, 96)}
    out["lstd12"] = np.log(ret.rolling(12).std())
    lp = pd.Series(np.log(c))
    out["mom24"] = (lp - lp.shift(24)) / (np.sqrt(park.rolling(720).mean()) * np.sqrt(24))
    return pd.DataFrame(out)


def load(root: Path, seed: int) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    df = pd.read_feather(root / f"s{seed}" / "BTC_USDT-1h.feather")
    truth = pd.read_feather(root / f"s{seed}" / "labels-1h.feather")["regime"].to_numpy().astype(str)
    return features(df), truth, (df["date"] >= SCORE_FROM).to_numpy()


def score(pred: np.ndarray, truth: np.ndarray, scored: np.ndarray) -> float:
    return float((NAMES[pred[scored]] == truth[scored]).mean())


def rule(f: pd.DataFrame, col: str, train: int, bull_bear: str) -> np.ndarray:
    x, mom = f[col].to_numpy(), f["mom24"].to_numpy()
    pred = np.zeros(len(f), dtype=int)
    for b in range(1000, len(f), REFIT):
        e = min(len(f), b + REFIT)
        tr = x[max(0, b - train) : b]
        lo, mid, hi = np.nanquantile(tr, (0.33, 0.66, 0.9))
        xs = x[b - BURN : e]
        middle = np.where(xs <= mid, 1, 2) if bull_bear == "vol" else np.where(mom[b - BURN : e] >= 0, 1, 2)
        pred[b:e] = dwell_filter(np.where(xs >= hi, 3, np.where(xs <= lo, 0, middle)), 4)[BURN:]
    return pred


def _forward(hmm: GaussianHMM, z: np.ndarray) -> np.ndarray:
    ll = hmm._compute_log_likelihood(z)
    e = np.exp(ll - ll.max(axis=1, keepdims=True))
    out, prior = np.empty_like(e), np.full(hmm.n_components, 1 / hmm.n_components)
    for t in range(len(e)):
        a = prior * e[t]
        out[t] = a / a.sum()
        prior = out[t] @ hmm.transmat_
    return out


def hmm(f: pd.DataFrame, col: str, train: int, naming: str) -> np.ndarray:
    x = f[[col]].to_numpy()
    pred = np.zeros(len(f), dtype=int)
    for b in range(1000, len(f), REFIT):
        e = min(len(f), b + REFIT)
        tr = x[max(0, b - train) : b]
        tr = tr[~np.isnan(tr).any(axis=1)]
        mu, sd = tr.mean(0), tr.std(0)
        z = (tr - mu) / sd
        fits = []
        for rs in range(3):
            m = GaussianHMM(4, "full", n_iter=50, random_state=rs, min_covar=1e-3)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                m.fit(z)
            fits.append((m.score(z), rs, m))
        m = max(fits)[2]
        means = m.means_[:, 0]
        if naming == "percentile":
            names = np.searchsorted(np.quantile(z[:, 0], (0.33, 0.66, 0.9)), means)
        else:
            names = np.empty(4, dtype=int)
            names[np.argsort(means)] = np.arange(4)
        codes = dwell_filter(np.argmax(_forward(m, (x[b - BURN : e] - mu) / sd), axis=1), 4)
        pred[b:e] = names[codes[BURN:]]
    return pred


def main(root: Path) -> None:
    logging.getLogger("hmmlearn").setLevel(logging.ERROR)
    seeds = [load(root, s) for s in range(4)]
    idx = {name: i for i, name in enumerate(NAMES)}

    def report(name: str, accs: list[float]) -> None:
        print(f"{name:<40} {' '.join(f'{a:.3f}' for a in accs)}  mean {np.mean(accs):.3f}", flush=True)

    for cols in (["lstd12"], ["lpark24"], ["lpark48"], ["lpark24", "lpark96"]):
        accs = []
        for t in range(4):
            x_tr = pd.concat([seeds[i][0][cols][seeds[i][2]] for i in range(4) if i != t])
            y_tr = np.concatenate([seeds[i][1][seeds[i][2]] for i in range(4) if i != t])
            ok = x_tr.notna().all(axis=1).to_numpy()
            clf = HistGradientBoostingClassifier(max_iter=100, random_state=0).fit(x_tr[ok], y_tr[ok])
            f, truth, scored = seeds[t]
            pred = np.array([idx[p] for p in clf.predict(f[cols].fillna(0))])
            accs.append(score(pred, truth, scored))
        report(f"supervised {'+'.join(cols)}", accs)
    for col in ("lstd12", "lpark24", "lpark48"):
        for train in (720, 4320):
            for bb in ("momentum", "vol"):
                report(
                    f"rule {col} train {train} h, bull/bear by {bb}",
                    [score(rule(f, col, train, bb), t, s) for f, t, s in seeds],
                )
    for col, train, naming in (("lpark24", 720, "rank"), ("lpark24", 4320, "rank"), ("lpark24", 4320, "percentile")):
        report(
            f"hmm {col} train {train} h, {naming} names", [score(hmm(f, col, train, naming), t, s) for f, t, s in seeds]
        )


if __name__ == "__main__":
    main(Path(sys.argv[1]))
