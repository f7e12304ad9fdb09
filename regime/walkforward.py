"""Causal regime annotation of a whole candle history with periodic refits.

Why: a backtest sees the full dataframe at once, but the regime at candle t must only use candles
up to t. Refits happen at absolute-time boundaries (every `refit_every` candles since the epoch), each
on the `train_candles` before the boundary, and the forward filter restarts `burn_in` candles before
each boundary. So the value at t depends on a fixed trailing window, not on where the dataframe
starts or ends (what freqtrade's lookahead- and recursive-analysis check).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import pandas as pd
from freqtrade.exchange import timeframe_to_msecs as interval_ms

from regime.detector import REGIMES, FittedModel, RegimeDetector, RegimeFitError, regime_frame
from regime.features import FeatureWindows, utc_ms

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class WalkForwardParams:
    train_candles: int = 8640  # 30 days of 5m
    refit_every: int = 2016  # weekly on 5m
    burn_in: int = 288
    min_dwell: int = 48  # 4 hours of 5m: a switch counts once the new regime has led that long

    @classmethod
    def for_timeframe(cls, timeframe: str) -> WalkForwardParams:
        scale = 300_000 / interval_ms(timeframe)
        return cls(
            train_candles=max(500, round(8640 * scale)),
            refit_every=max(24, round(2016 * scale)),
            burn_in=max(48, round(288 * scale)),
            min_dwell=max(1, round(48 * scale)),
        )


@dataclass
class WalkForwardReport:
    refits: int = 0
    fallbacks: int = 0
    fit_seconds: float = 0.0
    cache_hits: int = 0


class FitCache:
    """Fresh fits keyed by the detector's settings and the exact training observations.

    Why: a fresh fit is a pure function of those two (deterministic restarts), and a live bot
    re-annotates the same history on every candle (once for its informative regime, once per pair and
    correlated pair for FreqAI's features), so all but the newest refit repeat work already done.
    Bounded (least recently used out) and thread-safe: FreqAI featurizes in its training thread while the bot analyses.
    """

    def __init__(self, maxsize: int = 512) -> None:
        self.maxsize = maxsize
        self._items: OrderedDict[tuple, FittedModel | None] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def key(det: RegimeDetector, obs: np.ndarray) -> tuple:
        """Rounded to 9 decimals: rolling sums over a frame that starts one candle later differ in
        the last bits (~1e-15), far below what changes a fit, and must not miss the cache."""
        digest = hashlib.blake2b(np.round(obs, 9).tobytes(), digest_size=16).digest()
        return (det.settings(), obs.shape, digest)

    def get(self, key: tuple) -> tuple[bool, FittedModel | None]:
        with self._lock:
            if key not in self._items:
                return False, None
            self._items.move_to_end(key)
            return True, self._items[key]

    def put(self, key: tuple, model: FittedModel | None) -> None:
        with self._lock:
            self._items[key] = model
            self._items.move_to_end(key)
            while len(self._items) > self.maxsize:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


FIT_CACHE = FitCache()


def _fresh_fit(
    det: RegimeDetector, obs: np.ndarray, cache: FitCache | None, rep: WalkForwardReport
) -> FittedModel | None:
    """A fit from the prototypes (no dependence on earlier windows); None when every restart failed."""
    key = FitCache.key(det, obs) if cache is not None else None
    if key is not None:
        hit, model = cache.get(key)
        if hit:
            rep.cache_hits += 1
            return model
    det.model = None
    try:
        model = det.fit_observations(obs)
    except RegimeFitError:
        model = None
    if key is not None:
        cache.put(key, model)
    return model


def segments(df: pd.DataFrame, timeframe: str, p: WalkForwardParams) -> list[tuple[int, int, int, int]]:
    """(train start, filter start, segment start, segment end) row indices of each refit segment with a
    complete history: segments begin at the first candle at or after each absolute `refit_every`
    boundary, train on the `train_candles` before it and start the filter `burn_in` candles before it."""
    ts = utc_ms(df["date"])
    seg_id = ts // (p.refit_every * interval_ms(timeframe))
    starts = np.flatnonzero(np.r_[True, seg_id[1:] != seg_id[:-1]])
    ends = np.r_[starts[1:], len(df)]
    return [
        (b - p.train_candles, b - p.burn_in, int(b), int(e))
        for b, e in zip(starts, ends, strict=True)
        if min(b - p.train_candles, b - p.burn_in) >= 0
    ]


def dwell_filter(codes: np.ndarray, min_dwell: int) -> np.ndarray:
    """Minimum-dwell hysteresis on integer labels (-1 = unknown): the label switches only once the new
    regime has been the most probable for `min_dwell` consecutive candles; until the first such run the
    raw label stands. Equivalently, the label at t is that of the latest run of >= `min_dwell` candles
    ending at or before t, so it depends on a bounded past only."""
    out = codes.copy()
    if min_dwell <= 1 or len(codes) == 0:
        return out
    stable, run = -1, 0
    for t in range(len(codes)):
        run = run + 1 if t and codes[t] == codes[t - 1] else 1
        if codes[t] >= 0 and run >= min_dwell:
            stable = codes[t]
        if stable >= 0:
            out[t] = stable
    return out


@dataclass
class WalkForwardState:
    """Per candle: regime probabilities, dwell-filtered label codes (-1 unknown), the filter's state
    probabilities and the index into `models` of the model that produced them (-1 none)."""

    probs: np.ndarray
    codes: np.ndarray
    alpha: np.ndarray
    model_idx: np.ndarray
    models: list[FittedModel]


def walk_forward(
    df: pd.DataFrame,
    timeframe: str,
    params: WalkForwardParams | None = None,
    detector: RegimeDetector | None = None,
    report: WalkForwardReport | None = None,
    cache: FitCache | None = FIT_CACHE,
) -> WalkForwardState:
    """The walk-forward behind `causal_regimes`, keeping the filter state for intrahour updates."""
    p = params or WalkForwardParams.for_timeframe(timeframe)
    det = detector or RegimeDetector(windows=FeatureWindows.for_timeframe(timeframe))
    rep = report if report is not None else WalkForwardReport()
    fallbacks = 0
    obs = det.observations(df).to_numpy()
    valid = ~np.isnan(obs).any(axis=1)
    st = WalkForwardState(
        np.full((len(df), len(REGIMES)), np.nan),
        np.full(len(df), -1),
        np.full((len(df), det.n_states), np.nan),
        np.full(len(df), -1),
        [],
    )
    for lo, s, b, e in segments(df, timeframe, p):
        if not valid[min(lo, s) : b].all():
            continue  # incomplete history: leave NaN rather than fit on a shorter window
        t0 = time.perf_counter()
        previous = det.model
        fitted = _fresh_fit(det, obs[lo:b], cache, rep)
        if fitted is None:
            if previous is None:
                logger.warning("regime fit at %s failed and no earlier model", df["date"].iloc[b])
                continue
            logger.warning("regime fit at %s failed; keeping the previous model", df["date"].iloc[b])
            fitted = previous
            fallbacks += 1
        det.model = fitted
        rep.refits += 1
        rep.fit_seconds += time.perf_counter() - t0
        m = det.model
        seg = np.flatnonzero(valid[s:e]) + s
        alpha = m.forward(m.scaler(obs[seg]))
        seg_probs = m.to_regime_probs(alpha)
        # the dwell runs over the burn-in too, so a segment's first labels have the same past in any frame
        seg_codes = dwell_filter(np.argmax(seg_probs, axis=1), p.min_dwell)
        keep = seg >= b
        st.models.append(m)
        st.probs[seg[keep]] = seg_probs[keep]
        st.codes[seg[keep]] = seg_codes[keep]
        st.alpha[seg[keep]] = alpha[keep]
        st.model_idx[seg[keep]] = len(st.models) - 1
    rep.fallbacks = fallbacks
    return st


def causal_regimes(
    df: pd.DataFrame,
    timeframe: str,
    params: WalkForwardParams | None = None,
    detector: RegimeDetector | None = None,
    report: WalkForwardReport | None = None,
    cache: FitCache | None = FIT_CACHE,
) -> pd.DataFrame:
    """Per-candle regime probabilities (p_* columns) and label; NaN / None before the first fit.
    The label is the most probable regime, held for `min_dwell` candles before a switch counts.

    `cache=None` refits every window (the result is the same; only the time differs)."""
    st = walk_forward(df, timeframe, params, detector, report, cache)
    out = regime_frame(st.probs, df.index)
    known = st.codes >= 0
    labels = np.full(len(df), None, dtype=object)
    labels[known] = np.array(REGIMES, dtype=object)[st.codes[known]]
    out["regime"] = labels
    return out
