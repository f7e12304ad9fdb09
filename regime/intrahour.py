"""The regime every base candle (e.g. every 5 minutes) between the coarse timeframe's closes.

Why: the detector runs on 1h candles (its 30-day windows do not fit in a live bot's 5m history), so a
strategy's regime used to change once an hour. Here, at each base candle, the hour that ends *at that
candle's close* (a rolling 1h bar built from the last 12 5m candles) becomes one more observation: one
O(1) forward-filter step from the filter state at the last closed clock hour, with that hour's model.

- The fast features (volatility, volume, trend, momentum over hours) come from rolling bars on the
  base candles, sampled every `k` candles back (k = 12 for 5m -> 1h); the slow 30-day baselines (the
  volume baseline, the long-run volatility that scales momentum) from the last closed clock hour:
  they barely move within an hour and a live 5m frame is too short for them.
- At a clock hour's close the rolling bar *is* that hour, and the values equal the hourly walk-forward's.
- A refit takes effect from the first hour that closes after its boundary (the filter state of the new
  model starts there), so within the hour after a refit the previous model still updates.
- Causal: a value at a base candle uses base candles up to it and hourly candles closed by its close
  (tested on truncated frames). Labels are the argmax of these probabilities (no dwell at this cadence;
  the hourly label keeps its dwell).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from freqtrade.exchange import timeframe_to_msecs as interval_ms

from regime.detector import REGIMES, RegimeDetector, regime_frame
from regime.features import FeatureWindows, utc_ms
from regime.walkforward import FIT_CACHE, FitCache, WalkForwardParams, walk_forward

_EPS = 1e-12


def _strided(x: np.ndarray, k: int, n: int, how: str) -> np.ndarray:
    """At each t, `how` over x[t], x[t-k], ..., x[t-(n-1)k] (NaN without n such values)."""
    out = np.full(len(x), np.nan)
    for phase in range(k):
        s = pd.Series(x[phase::k])
        r = s.rolling(n)
        out[phase::k] = (r.std(ddof=0) if how == "std" else r.mean() if how == "mean" else r.sum()).to_numpy()
    return out


def intrahour_regimes(
    base: pd.DataFrame,
    base_tf: str,
    coarse: pd.DataFrame,
    coarse_tf: str = "1h",
    params: WalkForwardParams | None = None,
    detector: RegimeDetector | None = None,
    cache: FitCache | None = FIT_CACHE,
) -> pd.DataFrame:
    """`p_*` and `regime` for every row of `base` (index preserved); NaN / None where unknown."""
    k, rem = divmod(interval_ms(coarse_tf), interval_ms(base_tf))
    if k < 1 or rem:
        raise ValueError(f"{coarse_tf} must be a whole multiple of {base_tf}")
    base_ms = utc_ms(base["date"])
    step = interval_ms(base_tf)
    if len(base) > 1 and (np.diff(base_ms) != step).any():
        raise ValueError(f"the {base_tf} frame has gaps: rolling {coarse_tf} bars need contiguous candles")
    det = detector or RegimeDetector(windows=FeatureWindows.for_timeframe(coarse_tf))
    w = det.windows
    st = walk_forward(coarse, coarse_tf, params, det, cache=cache)

    # slow baselines per closed hour, exactly as `observations` computes them on the hourly series
    c_ret = pd.Series(np.diff(np.log(coarse["close"].to_numpy(float)), prepend=np.nan))
    long_vol = c_ret.rolling(w.volume_slow).std(ddof=0).to_numpy()
    vslow = pd.Series(coarse["volume"].to_numpy(float)).rolling(w.volume_slow).mean().to_numpy()

    # the hour that closed last by each base candle's close, and whether the candle ends that hour
    close_ms = base_ms + step
    hour = interval_ms(coarse_tf)
    h_open = close_ms // hour * hour - hour
    c_ms = utc_ms(coarse["date"])
    j = np.searchsorted(c_ms, h_open)
    found = (j < len(c_ms)) & (c_ms[np.minimum(j, len(c_ms) - 1)] == h_open)
    j = np.where(found, j, -1)
    at_close = close_ms % hour == 0

    # fast features on rolling hourly bars ending at each base candle
    lp = np.log(base["close"].to_numpy(float))
    ret = np.r_[np.full(k, np.nan), lp[k:] - lp[:-k]] if len(lp) > k else np.full(len(lp), np.nan)
    vol_k = pd.Series(base["volume"].to_numpy(float)).rolling(k).sum().to_numpy()

    def back(n: int) -> np.ndarray:
        return np.r_[np.full(n * k, np.nan), lp[: -n * k]] if len(lp) > n * k else np.full(len(lp), np.nan)

    jj = np.maximum(j, 0)
    obs = np.column_stack(
        [
            np.log(_strided(ret, k, w.vol, "std") + _EPS),
            np.log((_strided(vol_k, k, w.volume_fast, "mean") + _EPS) / (vslow[jj] + _EPS)),
            np.abs(lp - back(w.trend)) / (_strided(np.abs(ret), k, w.trend, "sum") + _EPS),
            (lp - back(w.momentum)) / (long_vol[jj] * np.sqrt(w.momentum) + _EPS),
        ]
    )
    probs = np.full((len(base), len(REGIMES)), np.nan)
    for t in np.flatnonzero(found):
        h = j[t]
        if st.model_idx[h] < 0:
            continue
        if at_close[t]:
            probs[t] = st.probs[h]
        elif not np.isnan(obs[t]).any():
            m = st.models[st.model_idx[h]]
            probs[t] = m.to_regime_probs(m.forward_step(st.alpha[h], m.scaler(obs[t])))
    return regime_frame(probs, base.index)
