"""A second market family with known regimes, written apart from `generator` to test the detector
on a market it was not designed around.

What differs from `generator` (Markov chain, Gaussian GARCH(1,1), sideways mean reversion):
- regimes form a semi-Markov process: spell lengths are log-normal (heavy-tailed, not geometric), the
  next regime is drawn uniformly from the other three;
- volatility is a log-AR(1) stochastic-volatility process whose level depends on the regime, shocks
  are Student-t (4 degrees of freedom) and compound-Poisson jumps arrive more often in turbulence;
- volume is log-normal around a level that follows realized absolute returns, not the regime;
- no mean reversion anywhere: sideways is low volatility and zero drift.

The parameters below were set once from crypto stylized facts (annualized drift and volatility,
spell lengths of days to weeks) before any evaluation, and are not to be tuned to the detector.

    python -m simulation.synthetic.independent --seed 7 --days 720 --out /tmp/indep
writes `BTC_USDT-5m.feather`, `BTC_USDT-1h.feather` (freqtrade's layout) and `labels-5m.feather`,
`labels-1h.feather` (`date`, `regime`: the regime at each candle's close) for `evaluation.regime --labels`.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

REGIMES = ("trending_bull", "trending_bear", "sideways", "high_volatility")
YEAR_5M = 365 * 288


@dataclass(frozen=True)
class SpellRegime:
    drift: float  # annualized log drift
    vol: float  # annualized volatility level of the log-SV process
    median_days: float  # median spell length (log-normal)
    jumps_per_day: float


REGIME_SET = {
    "trending_bull": SpellRegime(drift=1.5, vol=0.55, median_days=18.0, jumps_per_day=0.2),
    "trending_bear": SpellRegime(drift=-1.5, vol=0.75, median_days=10.0, jumps_per_day=0.4),
    "sideways": SpellRegime(drift=0.0, vol=0.35, median_days=14.0, jumps_per_day=0.1),
    "high_volatility": SpellRegime(drift=0.0, vol=1.30, median_days=3.0, jumps_per_day=3.0),
}
SPELL_SIGMA = 0.6  # log-normal dispersion of spell lengths
SV_PHI = 0.995  # persistence of log-volatility per 5m step
SV_ETA = 0.05  # its shock size
T_DOF = 4
JUMP_SIZE = 0.02  # scale of a jump (Student-t, same dof)


def generate_independent(
    seed: int, days: float, start: str = "2023-01-01", price: float = 30_000.0
) -> tuple[pd.DataFrame, pd.Series]:
    """5m OHLCV and the regime per candle (at its close)."""
    rng = np.random.default_rng(seed)
    n = int(days * 288)
    if n < 288:
        raise ValueError("need at least one day")
    labels = np.empty(n, dtype=object)
    i, current = 0, rng.integers(len(REGIMES))
    while i < n:
        r = REGIME_SET[REGIMES[current]]
        spell = max(12, int(rng.lognormal(np.log(r.median_days * 288), SPELL_SIGMA)))
        labels[i : i + spell] = REGIMES[current]
        i += spell
        current = rng.choice([k for k in range(len(REGIMES)) if k != current])
    drift = np.array([REGIME_SET[x].drift for x in labels]) / YEAR_5M
    level = np.log(np.array([REGIME_SET[x].vol for x in labels]) / np.sqrt(YEAR_5M))
    jump_rate = np.array([REGIME_SET[x].jumps_per_day for x in labels]) / 288
    logvol = np.empty(n)
    lv = level[0]
    eta = rng.normal(0.0, SV_ETA, n)
    for t in range(n):
        lv = level[t] + SV_PHI * (lv - level[t]) + eta[t]
        logvol[t] = lv
    sigma = np.exp(logvol)
    t_scale = np.sqrt((T_DOF - 2) / T_DOF)  # unit-variance Student-t
    shocks = rng.standard_t(T_DOF, n) * t_scale * sigma
    jumps = (rng.random(n) < jump_rate) * rng.standard_t(T_DOF, n) * JUMP_SIZE
    ret = drift - 0.5 * sigma**2 + shocks + jumps
    close = price * np.exp(np.cumsum(ret))
    open_ = np.r_[price, close[:-1]]
    wick = np.abs(rng.standard_t(T_DOF, (2, n))) * sigma * 0.5
    high = np.maximum(open_, close) * np.exp(wick[0])
    low = np.minimum(open_, close) * np.exp(-wick[1])
    ref = np.median(np.abs(ret))
    volume = 50.0 * np.exp(rng.normal(0.0, 0.4, n)) * (1.0 + np.abs(ret) / ref) ** 0.7
    dates = pd.date_range(start, periods=n, freq="5min", tz="UTC")
    df = pd.DataFrame({"date": dates, "open": open_, "high": high, "low": low, "close": close, "volume": volume})
    return df, pd.Series(labels, index=df.index, name="regime")


def _t4_logpdf(z: np.ndarray) -> np.ndarray:
    """log density of Student's t with 4 degrees of freedom."""
    return np.log(3.0 / 8.0) - 2.5 * np.log1p(z * z / T_DOF)


def spell_hazard(max_steps: int = 200 * 288) -> np.ndarray:
    """hazard[r, a]: probability that a spell of regime r ends after exactly `a` candles, given it lasted
    that long (the generator's max(12, int(log-normal)) law)."""
    from scipy.stats import lognorm

    d = np.arange(max_steps + 1)
    out = np.empty((len(REGIMES), max_steps + 1))
    for i, r in enumerate(REGIMES):
        cdf = lognorm.cdf(d, s=SPELL_SIGMA, scale=REGIME_SET[r].median_days * 288)  # P(X < d)
        pmf = np.diff(cdf, append=1.0)  # P(d <= X < d + 1) = P(int(X) = d)
        pmf[12] += cdf[12]  # max(12, .): everything shorter lasts 12
        pmf[:12] = 0.0
        survival = np.cumsum(pmf[::-1])[::-1]  # P(D >= d)
        out[i] = np.where(survival > 1e-12, pmf / np.maximum(survival, 1e-300), 1.0)
    return out


def bayes_filter(df: pd.DataFrame, particles: int = 4000, seed: int = 0) -> np.ndarray:
    """P(regime | candles up to t) for every 5m candle, by a particle filter that knows this generator's
    every parameter (spell-length laws as hazards, volatility process, shocks, jumps, wicks): about the
    best a causal detector could do on this market, up to the filter's Monte Carlo error. A reference
    for scoring detectors (a ceiling), never a detector: it reads parameters no one has on a real
    market. Columns in `REGIMES` order."""
    rng = np.random.default_rng(seed)
    o, h, lo, c = (df[k].to_numpy(float) for k in ("open", "high", "low", "close"))
    ret = np.log(c / o)
    wick_up, wick_dn = np.log(h / np.maximum(o, c)), np.log(np.minimum(o, c) / lo)
    sets = [REGIME_SET[r] for r in REGIMES]
    drift = np.array([r.drift for r in sets]) / YEAR_5M
    level = np.log(np.array([r.vol for r in sets]) / np.sqrt(YEAR_5M))
    log_jump, log_nojump = (
        np.log(np.array([r.jumps_per_day for r in sets]) / 288),
        np.log1p(-np.array([r.jumps_per_day for r in sets]) / 288),
    )
    hazard = spell_hazard()
    t_scale = np.sqrt((T_DOF - 2) / T_DOF)
    k = np.zeros(particles, dtype=int)  # the generator's first spell starts with the data
    k[:] = rng.integers(len(REGIMES), size=particles)
    age = np.zeros(particles, dtype=int)
    lv = level[k].copy()
    logw = np.zeros(particles)
    out = np.empty((len(df), len(REGIMES)))
    for t in range(len(df)):
        if t:  # a spell ends with its hazard at this age; the next regime is one of the other three
            age += 1
            ended = rng.random(particles) < hazard[k, np.minimum(age, hazard.shape[1] - 1)]
            if ended.any():
                k[ended] = (k[ended] + rng.integers(1, len(REGIMES), ended.sum())) % len(REGIMES)
                age[ended] = 0
            lv = level[k] + SV_PHI * (lv - level[k]) + rng.normal(0.0, SV_ETA, particles)
        sigma = np.exp(lv)
        scale = sigma * t_scale
        centred = ret[t] - drift[k] + 0.5 * sigma**2
        jump_scale = np.sqrt(scale**2 + JUMP_SIZE**2)  # a jump candle: shock + jump, as one wider t
        like = np.logaddexp(
            log_nojump[k] + _t4_logpdf(centred / scale) - np.log(scale),
            log_jump[k] + _t4_logpdf(centred / jump_scale) - np.log(jump_scale),
        )
        half = 0.5 * sigma  # wicks: |t4| x sigma x 0.5 each
        like += _t4_logpdf(wick_up[t] / half) + _t4_logpdf(wick_dn[t] / half) - 2 * np.log(half)
        logw += like
        w = np.exp(logw - logw.max())
        w /= w.sum()
        out[t] = np.bincount(k, weights=w, minlength=len(REGIMES))
        if 1.0 / np.sum(w * w) < particles / 2:  # systematic resampling
            idx = np.minimum(
                np.searchsorted(np.cumsum(w), (rng.random() + np.arange(particles)) / particles), particles - 1
            )
            k, age, lv, logw = k[idx], age[idx], lv[idx], np.zeros(particles)
    return out


def resample(df: pd.DataFrame, labels: pd.Series, rule: str) -> tuple[pd.DataFrame, pd.Series]:
    """Complete candles of a coarser timeframe; each labelled with the regime at its close."""
    frame = df.assign(regime=labels.to_numpy()).set_index("date")
    agg = frame.resample(rule, label="left", closed="left").agg(
        {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum", "regime": "last"}
    )
    counts = frame["close"].resample(rule, label="left", closed="left").count()
    agg = agg[counts == counts.max()].reset_index()
    return agg.drop(columns="regime"), agg["regime"].rename("regime")


def write(seed: int, days: float, out: Path, pair: str = "BTC/USDT") -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    df5, lab5 = generate_independent(seed, days)
    written = []
    for tf, (df, lab) in {"5m": (df5, lab5), "1h": resample(df5, lab5, "1h")}.items():
        path = out / f"{pair.replace('/', '_')}-{tf}.feather"
        df.to_feather(path)
        labels = out / f"labels-{tf}.feather"
        pd.DataFrame({"date": df["date"], "regime": lab.astype(str)}).to_feather(labels)
        written += [path, labels]
    return written


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m simulation.synthetic.independent", description=__doc__.split("\n\n")[0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--days", type=float, default=720.0)
    p.add_argument("--pair", default="BTC/USDT")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    try:
        for path in write(args.seed, args.days, args.out, args.pair):
            print(f"written {path}")
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
