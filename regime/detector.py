"""Gaussian-HMM market-regime detector with causal (filtered) inference and stable names.

Why these choices:
- Filtered probabilities P(state_t | x_1..x_t) from the forward algorithm are what a live bot can
  know; smoothed / Viterbi decodings use later candles and are exposed only as an upper bound.
- HMM state indices are arbitrary and change across refits, so states get names from their emission
  means with a fixed rule (see `name_states`); a refit can never swap bull and bear.
- Several restarts keep the best likelihood; a non-converged or degenerate fit keeps the last good
  model (with a warning) instead of producing garbage regimes.
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from hmmlearn.hmm import GaussianHMM

from regime.features import FEATURES, FeatureWindows, OnlineObservations, check_ohlcv, observations

logger = logging.getLogger(__name__)
_hmmlearn_log = logging.getLogger("hmmlearn")

REGIMES: tuple[str, ...] = ("trending_bull", "trending_bear", "sideways", "high_volatility")
PROB_COLUMNS: tuple[str, ...] = tuple(f"p_{r}" for r in REGIMES)


# Starting emission means (standardized units), rows in REGIMES order, columns in FEATURES order:
# calm and quiet -> sideways; rising, moderate volatility -> bull; falling, more volatile and
# busier -> bear; extreme volatility and volume -> high_volatility. EM moves them freely.
PROTOTYPES = np.array(
    [
        [-0.2, -0.2, 0.3, 0.8],  # trending_bull
        [0.4, 0.4, 0.3, -0.8],  # trending_bear
        [-1.0, -1.0, -0.3, 0.0],  # sideways
        [2.0, 2.0, 0.0, 0.0],  # high_volatility
    ]
)


class RegimeFitError(RuntimeError):
    """No usable model could be fitted and there is no earlier one to fall back to."""


@dataclass
class Standardizer:
    """Feature scaling with statistics from the training window only."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray) -> Standardizer:
        std = x.std(axis=0)
        return cls(x.mean(axis=0), np.where(std > 1e-12, std, 1.0))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return (x - self.mean) / self.std


def name_states(means: np.ndarray) -> np.ndarray:
    """Map HMM state index -> regime index from standardized emission means (deterministic).

    highest volatility -> high_volatility; of the rest, the quietest and least directional
    (lowest volatility + trend strength + |momentum|) -> sideways; of the last two, higher
    momentum -> trending_bull, lower -> trending_bear. Ties break on the state index.
    """
    vol, trend, mom = (FEATURES.index(f) for f in ("volatility", "trend_strength", "momentum"))
    n = means.shape[0]
    hv = max(range(n), key=lambda s: (means[s, vol], -s))
    rest = [s for s in range(n) if s != hv]
    side = min(rest, key=lambda s: (means[s, vol] + means[s, trend] + abs(means[s, mom]), s))
    rest.remove(side)
    bull = max(rest, key=lambda s: (means[s, mom], -s))
    rest.remove(bull)
    mapping = np.empty(n, dtype=int)
    mapping[hv] = REGIMES.index("high_volatility")
    mapping[side] = REGIMES.index("sideways")
    mapping[bull] = REGIMES.index("trending_bull")
    for s in rest:
        mapping[s] = REGIMES.index("trending_bear")
    return mapping


# `name_states_relative`: a state is high-volatility when its volatility is 1.5x the training window's
# median or more; otherwise a trend when its mean momentum t-stat is at least half its no-drift noise
# (|t| >= 0.5), by sign; otherwise sideways. Set once from these definitions, not fitted to any market.
HIGH_VOL_RATIO = 1.5
TREND_T = 0.5
NAMINGS = ("rank", "relative")


def name_states_relative(means: np.ndarray, scaler: Standardizer, train_obs: np.ndarray) -> np.ndarray:
    """Map HMM state index -> regime index from what a state means in any market: its volatility
    relative to the training window's median and its momentum t-stat (already in units of the long-run
    noise). Several states may share a name and a name may go unused: a calm month has no
    high-volatility state, where `name_states` would still call its busiest state that."""
    vol, mom = FEATURES.index("volatility"), FEATURES.index("momentum")
    raw = means * scaler.std + scaler.mean
    ref = float(np.median(train_obs[:, vol]))
    mapping = np.empty(means.shape[0], dtype=int)
    for s in range(means.shape[0]):
        if raw[s, vol] - ref >= np.log(HIGH_VOL_RATIO):
            name = "high_volatility"
        elif abs(raw[s, mom]) >= TREND_T:
            name = "trending_bull" if raw[s, mom] > 0 else "trending_bear"
        else:
            name = "sideways"
        mapping[s] = REGIMES.index(name)
    return mapping


def regime_frame(probs: np.ndarray, index: pd.Index) -> pd.DataFrame:
    """p_* columns plus the argmax label (None where the probabilities are NaN)."""
    out = pd.DataFrame(probs, columns=list(PROB_COLUMNS), index=index)
    valid = ~np.isnan(probs).any(axis=1)
    labels = np.full(len(probs), None, dtype=object)
    labels[valid] = np.array(REGIMES, dtype=object)[np.argmax(probs[valid], axis=1)]
    out["regime"] = labels
    return out


@dataclass
class FittedModel:
    hmm: GaussianHMM
    scaler: Standardizer
    state_to_regime: np.ndarray
    log_likelihood: float
    fit_seconds: float
    _inv: np.ndarray = field(init=False, repr=False)
    _logdet: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        cov = self.hmm.covars_  # (n, d, d) whatever covariance_type was used
        self._inv = np.linalg.inv(cov)
        self._logdet = np.linalg.slogdet(cov)[1]

    def emission_loglik(self, z: np.ndarray) -> np.ndarray:
        """log N(z | mean_s, cov_s) for every state; z standardized, shape (..., d)."""
        diff = z[..., None, :] - self.hmm.means_
        maha = np.einsum("...si,sij,...sj->...s", diff, self._inv, diff)
        d = z.shape[-1]
        return -0.5 * (maha + self._logdet + d * np.log(2 * np.pi))

    def stationary(self) -> np.ndarray:
        vals, vecs = np.linalg.eig(self.hmm.transmat_.T)
        v = np.real(vecs[:, np.argmin(np.abs(vals - 1))])
        v = np.abs(v)
        return v / v.sum()

    def forward_step(self, alpha_prev: np.ndarray | None, z: np.ndarray) -> np.ndarray:
        """One normalized forward-algorithm step: O(states^2), independent of history length."""
        prior = self.stationary() if alpha_prev is None else alpha_prev @ self.hmm.transmat_
        ll = self.emission_loglik(z)
        a = prior * np.exp(ll - ll.max())
        total = a.sum()
        return a / total if total > 0 else prior

    def forward(self, z: np.ndarray, alpha0: np.ndarray | None = None) -> np.ndarray:
        """Filtered state probabilities for a block of standardized observations (T, d)."""
        ll = self.emission_loglik(z)
        e = np.exp(ll - ll.max(axis=1, keepdims=True))
        A = self.hmm.transmat_
        out = np.empty_like(e)
        alpha = self.stationary() if alpha0 is None else alpha0
        prior = alpha if alpha0 is None else alpha @ A
        for t in range(len(e)):
            a = prior * e[t]
            total = a.sum()
            alpha = a / total if total > 0 else prior
            out[t] = alpha
            prior = alpha @ A
        return out

    def to_regime_probs(self, state_probs: np.ndarray) -> np.ndarray:
        out = np.zeros((*state_probs.shape[:-1], len(REGIMES)))
        for s, r in enumerate(self.state_to_regime):
            out[..., r] += state_probs[..., s]
        return out


class RegimeDetector:
    """fit / filter / smooth like a scikit-learn estimator, plus `step` for live updates.

    Parameters are explicit; defaults suit 5m candles (train on 30 days, refit weekly in backtests).
    """

    def __init__(
        self,
        n_states: int = 4,
        n_restarts: int = 3,
        n_iter: int = 50,
        tol: float = 1e-2,
        covariance_type: str = "full",
        windows: FeatureWindows | None = None,
        random_state: int = 0,
        min_state_share: float = 0.01,
        sticky_spell: float = 300.0,
        sticky_weight: float = 0.0,
        naming: str = "rank",
    ) -> None:
        if n_states != len(REGIMES):
            raise ValueError(f"the detector names exactly {len(REGIMES)} states")
        if covariance_type not in ("full", "diag"):
            raise ValueError("covariance_type must be 'full' or 'diag'")
        if naming not in NAMINGS:
            raise ValueError(f"naming must be one of {list(NAMINGS)}, got {naming!r}")
        self.naming = naming
        self.n_states = n_states
        self.n_restarts = n_restarts
        self.n_iter = n_iter
        self.tol = tol
        self.covariance_type = covariance_type
        self.windows = windows or FeatureWindows()
        self.random_state = random_state
        self.min_state_share = min_state_share
        self.sticky_spell = sticky_spell
        self.sticky_weight = sticky_weight
        self.model: FittedModel | None = None
        self.fallbacks = 0
        self._online: OnlineObservations | None = None
        self._alpha: np.ndarray | None = None

    def settings(self) -> tuple:
        """Everything a fresh fit depends on besides the data (a cache key)."""
        return (
            self.n_states,
            self.n_restarts,
            self.n_iter,
            self.tol,
            self.covariance_type,
            self.windows,
            self.random_state,
            self.min_state_share,
            self.sticky_spell,
            self.sticky_weight,
            self.naming,
        )

    # -- fitting -----------------------------------------------------------------------------
    def observations(self, df: pd.DataFrame) -> pd.DataFrame:
        return observations(df, self.windows)

    def fit(self, df: pd.DataFrame) -> RegimeDetector:
        """Fit on a training window; warm-starts from the current model if there is one."""
        check_ohlcv(df, min_rows=self.windows.warmup + 200)
        obs = self.observations(df).dropna().to_numpy()
        self.fit_observations(obs)
        return self

    def fit_observations(self, obs: np.ndarray) -> FittedModel:
        if len(obs) < 200:
            raise ValueError(f"regime detector needs at least 200 complete observations, got {len(obs)}")
        t0 = time.perf_counter()
        scaler = Standardizer.fit(obs)
        z = scaler(obs)
        best: tuple[float, GaussianHMM] | None = None
        for attempt in range(self.n_restarts):
            hmm = self._new_hmm(attempt, z)
            level = _hmmlearn_log.level
            _hmmlearn_log.setLevel(logging.ERROR)  # EM's tiny non-monotone steps are noise here
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    hmm.fit(z)
                    score = hmm.score(z)
                except (ValueError, np.linalg.LinAlgError) as exc:
                    logger.debug("restart %d failed: %s", attempt, exc)
                    continue
                finally:
                    _hmmlearn_log.setLevel(level)
            problem = self._degenerate(hmm, z)
            if problem:
                logger.debug("restart %d rejected: %s", attempt, problem)
                continue
            if best is None or score > best[0]:
                best = (score, hmm)
        if best is None:
            if self.model is None:
                raise RegimeFitError("every HMM restart failed or was degenerate; no earlier model to fall back to")
            self.fallbacks += 1
            logger.warning("regime refit failed (all restarts degenerate); keeping the last good model")
            return self.model
        score, hmm = best
        names = name_states(hmm.means_) if self.naming == "rank" else name_states_relative(hmm.means_, scaler, obs)
        fitted = FittedModel(hmm, scaler, names, float(score), time.perf_counter() - t0)
        self.model = fitted
        return fitted

    def _new_hmm(self, attempt: int, z: np.ndarray) -> GaussianHMM:
        hmm = GaussianHMM(
            n_components=self.n_states,
            covariance_type=self.covariance_type,
            n_iter=self.n_iter,
            tol=self.tol,
            random_state=self.random_state + attempt,
            min_covar=1e-4,
            transmat_prior=self._transmat_prior(len(z)),
            init_params="" if (attempt == 0 and self.model is not None) else "stmc",
        )
        if attempt == 0 and self.model is not None:  # warm start from the previous parameters
            prev = self.model.hmm
            hmm.startprob_ = prev.startprob_.copy()
            hmm.transmat_ = prev.transmat_.copy()
            hmm.means_ = prev.means_.copy()
            full = prev.covars_
            hmm.covars_ = full.copy() if self.covariance_type == "full" else np.diagonal(full, axis1=1, axis2=2).copy()
        else:
            # Unsupervised but informed start: one prototype per regime in standardized feature
            # space (jittered per restart), sticky transitions since regimes persist.
            rng = np.random.default_rng(self.random_state + attempt)
            k = self.n_states
            hmm.init_params = ""
            hmm.startprob_ = np.full(k, 1.0 / k)
            hmm.transmat_ = np.full((k, k), 0.01 / (k - 1)) + np.eye(k) * (0.99 - 0.01 / (k - 1))
            jitter = 0.0 if attempt == 0 else 0.3
            hmm.means_ = PROTOTYPES + rng.normal(0.0, jitter, PROTOTYPES.shape)
            d = z.shape[1]
            cov = np.eye(d) * 0.5
            hmm.covars_ = np.stack([cov] * k) if self.covariance_type == "full" else np.full((k, d), 0.5)
        return hmm

    def _transmat_prior(self, n_obs: int) -> np.ndarray:
        """Dirichlet pseudo-counts favouring persistence (expected spell ~ `sticky_spell` candles).

        Regimes last hundreds of candles; without this, EM may spend states on fast-moving momentum
        swings instead of the slow volatility / volume levels that define a regime.
        """
        k = self.n_states
        prior = np.ones((k, k))
        if self.sticky_weight > 0:
            stay = 1.0 - 1.0 / self.sticky_spell
            pseudo = self.sticky_weight * n_obs / k
            prior += pseudo * (np.eye(k) * stay + (1 - np.eye(k)) * (1 - stay) / (k - 1))
        return prior

    def _degenerate(self, hmm: GaussianHMM, z: np.ndarray) -> str | None:
        hist = hmm.monitor_.history
        # hmmlearn's tol is on the total log-likelihood; judge the last gain per observation.
        if len(hist) >= 2 and (hist[-1] - hist[-2]) / len(z) > 1e-3 and hmm.monitor_.iter >= self.n_iter:
            return "not converged"
        if not np.all(np.isfinite(hmm.means_)) or not np.all(np.isfinite(hmm.transmat_)):
            return "non-finite parameters"
        eig = np.linalg.eigvalsh(hmm.covars_)
        if np.any(eig < 1e-6):
            return "singular covariance"
        share = np.bincount(hmm.predict(z), minlength=self.n_states) / len(z)
        if np.any(share < self.min_state_share):
            return f"collapsed state (occupancy {share.min():.4f})"
        return None

    def _require_model(self) -> FittedModel:
        if self.model is None:
            raise RuntimeError("regime detector is not fitted: call fit() first")
        return self.model

    # -- inference ---------------------------------------------------------------------------
    def _frame(self, df: pd.DataFrame, probs: np.ndarray) -> pd.DataFrame:
        return regime_frame(probs, df.index)

    def filter(self, df: pd.DataFrame) -> pd.DataFrame:
        """Causal probabilities per candle (forward algorithm) with the current model."""
        m = self._require_model()
        obs = self.observations(df).to_numpy()
        probs = np.full((len(df), len(REGIMES)), np.nan)
        ok = ~np.isnan(obs).any(axis=1)
        if ok.any():
            probs[ok] = m.to_regime_probs(m.forward(m.scaler(obs[ok])))
        return self._frame(df, probs)

    def smooth(self, df: pd.DataFrame) -> pd.DataFrame:
        """Forward-backward posteriors: LOOKS AHEAD. Only an upper bound for evaluation."""
        m = self._require_model()
        obs = self.observations(df).to_numpy()
        ok = ~np.isnan(obs).any(axis=1)
        probs = np.full((len(df), len(REGIMES)), np.nan)
        probs[ok] = m.to_regime_probs(m.hmm.predict_proba(m.scaler(obs[ok])))
        return self._frame(df, probs)

    # -- live, one candle at a time -------------------------------------------------------------
    def reset_online(self) -> None:
        self._online = OnlineObservations(self.windows)
        self._alpha = None

    def step(self, close: float, volume: float) -> np.ndarray | None:
        """Feed one closed candle; returns regime probabilities (O(1) per candle) once warm."""
        m = self._require_model()
        if self._online is None:
            self.reset_online()
        obs = self._online.push(close, volume)
        if obs is None:
            return None
        self._alpha = m.forward_step(self._alpha, m.scaler(obs))
        return m.to_regime_probs(self._alpha)

    def refit(self, df: pd.DataFrame) -> bool:
        """Periodic refit with warm start; returns False when it fell back to the old model."""
        before = self.fallbacks
        self.fit(df)
        return self.fallbacks == before
