"""Markov-switching synthetic crypto market with ground-truth regime labels.

Why synthetic: tests and the default `make run` must work without any downloaded data, and the
regime detector needs a market whose true regime is known candle by candle.

Model, per candle (parameters are given per 5-minute candle and rescaled to the timeframe):
- a market-wide regime follows a Markov chain (geometric holding times, configurable matrix);
- each asset's log-return is drift(regime) * beta + sqrt(h_t) * z_t, with h_t a GARCH(1,1)
  variance whose long-run level depends on the regime (volatility clustering);
- z_t are Student-t shocks (fat tails) correlated across assets (equicorrelation rho);
- the sideways regime pulls the price back to the level where it started (mean reversion);
- volume scales with conditional volatility and the size of the move;
- stablecoins follow a tight Ornstein-Uhlenbeck process around 1.0.
Stress scenarios (flash crash, liquidity drought, correlation spike, stablecoin depeg) are applied on
top.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from simulation.markets import KNOWN_MARKETS, MarketSpec, round_to
from simulation.timeframes import interval_ms

REGIMES: tuple[str, ...] = ("trending_bull", "trending_bear", "sideways", "high_volatility")
BASE_CANDLE_MS = 5 * 60_000


@dataclass(frozen=True)
class RegimeParams:
    drift: float  # mean log-return per 5m candle
    vol: float  # long-run volatility per 5m candle
    mean_duration: float  # expected length in 5m candles
    volume: float = 1.0  # volume multiplier


DEFAULT_REGIME_PARAMS: dict[str, RegimeParams] = {
    # Drifts balance over the stationary distribution (432 * 5e-5 = 346 * 6.24e-5), so long paths
    # wander like a real market instead of trending away. Volatility and volume levels are spaced
    # so the regimes are identifiable from (volatility, volume, trend, momentum) observations.
    "trending_bull": RegimeParams(drift=5.0e-5, vol=0.0014, mean_duration=432, volume=1.0),
    "trending_bear": RegimeParams(drift=-6.24e-5, vol=0.0024, mean_duration=346, volume=1.6),
    "sideways": RegimeParams(drift=0.0, vol=0.0008, mean_duration=576, volume=0.5),
    "high_volatility": RegimeParams(drift=0.0, vol=0.0055, mean_duration=144, volume=3.0),
}


@dataclass(frozen=True)
class AssetParams:
    pair: str
    start_price: float
    base_volume: float  # base-asset volume of a typical 5m candle
    beta: float = 1.0  # scales drift and volatility
    stable: bool = False


DEFAULT_ASSETS: tuple[AssetParams, ...] = (
    AssetParams("BTC/USDT", 42_000.0, 120.0, beta=1.0),
    AssetParams("ETH/USDT", 2_300.0, 1_500.0, beta=1.2),
    AssetParams("BNB/USDT", 310.0, 2_500.0, beta=1.05),
    AssetParams("ADA/USDT", 0.60, 2_500_000.0, beta=1.4),
    AssetParams("DOT/USDT", 8.0, 90_000.0, beta=1.35),
    AssetParams("LINK/USDT", 15.0, 60_000.0, beta=1.3),
    AssetParams("USDC/USDT", 1.0, 3_000_000.0, stable=True),
    AssetParams("FDUSD/USDT", 1.0, 1_500_000.0, stable=True),
)


KINDS = ("flash_crash", "liquidity_drought", "correlation_spike", "depeg")


@dataclass(frozen=True)
class Scenario:
    """A stress event. kind: flash_crash | liquidity_drought | correlation_spike | depeg.

    depeg: every stablecoin falls by `drop` over the first quarter of the window and recovers
    `recovery` of it by the end (USDC in March 2023: -13% within a day, back within three)."""

    kind: str
    start: str  # ISO timestamp (UTC)
    hours: float = 1.0
    drop: float = 0.15  # flash_crash / depeg: peak-to-trough fall
    recovery: float = 0.5  # flash_crash / depeg: share of the fall recovered over `hours`
    depth_factor: float = 0.1  # liquidity_drought: book depth multiplier
    spread_factor: float = 5.0  # liquidity_drought: spread multiplier
    rho: float = 0.95  # correlation_spike: pairwise correlation

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown scenario kind {self.kind!r}")
        if self.hours <= 0:
            raise ValueError("scenario hours must be positive")
        if not 0 < self.drop < 1 or not 0 <= self.recovery <= 1:
            raise ValueError("scenario drop must be in (0, 1) and recovery in [0, 1]")

    @classmethod
    def parse(cls, text: str) -> Scenario:
        """KIND@ISO_START[:HOURS][,FIELD=VALUE...], e.g. `flash_crash@2024-02-01T12:00:2` or
        `depeg@2024-03-10T08:00:12,drop=0.03,recovery=1`."""
        head, *extra = text.split(",")
        kind, at, rest = head.partition("@")
        if not at or not rest:
            raise ValueError(f"bad scenario {text!r}: use KIND@START[:HOURS][,FIELD=VALUE...]")
        start, hours = rest, None
        if rest.count(":") >= 2 or ("T" not in rest and ":" in rest):
            start, _, hours = rest.rpartition(":")
        fields: dict = {"hours": float(hours)} if hours else {}
        numeric = {"drop", "recovery", "depth_factor", "spread_factor", "rho", "hours"}
        for item in extra:
            key, eq, value = item.partition("=")
            if not eq or key.strip() not in numeric:
                raise ValueError(f"bad scenario field {item!r} in {text!r}; fields: {', '.join(sorted(numeric))}")
            fields[key.strip()] = float(value)
        return cls(kind.strip(), start, **fields)

    def to_text(self) -> str:
        """The `parse` form of this scenario (for the gateway's --scenario flag)."""
        return (
            f"{self.kind}@{self.start}:{self.hours},drop={self.drop},recovery={self.recovery},"
            f"depth_factor={self.depth_factor},spread_factor={self.spread_factor},rho={self.rho}"
        )


@dataclass
class SyntheticConfig:
    seed: int = 42
    start: str = "2024-01-01"
    days: float = 120.0
    timeframe: str = "5m"
    assets: tuple[AssetParams, ...] = DEFAULT_ASSETS
    regimes: dict[str, RegimeParams] = field(default_factory=lambda: dict(DEFAULT_REGIME_PARAMS))
    # Off-diagonal transition weights (rows: from, cols: to). None: uniform.
    switch_weights: list[list[float]] | None = None
    correlation: float = 0.7
    garch_alpha: float = 0.03
    garch_beta: float = 0.95
    t_dof: float = 5.0
    sideways_reversion: float = 0.02
    scenarios: tuple[Scenario, ...] = ()

    def transition_matrix(self) -> np.ndarray:
        """Per-candle transition matrix implied by mean durations and switch weights."""
        k = len(REGIMES)
        weights = np.ones((k, k)) if self.switch_weights is None else np.array(self.switch_weights, float)
        np.fill_diagonal(weights, 0.0)
        weights = weights / weights.sum(axis=1, keepdims=True)
        scale = BASE_CANDLE_MS / interval_ms(self.timeframe)
        stay = np.array([1.0 - 1.0 / (self.regimes[r].mean_duration * scale) for r in REGIMES])
        if np.any(stay <= 0):
            raise ValueError("mean_duration must exceed one candle at this timeframe")
        mat = weights * (1.0 - stay)[:, None]
        np.fill_diagonal(mat, stay)
        return mat

    def to_dict(self) -> dict:
        d = asdict(self)
        d["transition_matrix"] = self.transition_matrix().tolist()
        d["regime_names"] = list(REGIMES)
        return d


@dataclass
class SyntheticMarket:
    """Generated candles per pair plus the market-wide ground truth."""

    config: SyntheticConfig
    candles: dict[str, pd.DataFrame]  # pair -> date, open, high, low, close, volume
    ground_truth: pd.DataFrame  # date, regime, regime_id, depth_factor, spread_factor
    markets: dict[str, MarketSpec]


def _simulate_regimes(rng: np.random.Generator, n: int, trans: np.ndarray) -> np.ndarray:
    """Exact Markov-chain sample drawn as geometric holding times (fast for long paths)."""
    k = trans.shape[0]
    states = np.empty(n, dtype=np.int8)
    state = int(rng.integers(k))
    pos = 0
    while pos < n:
        stay = trans[state, state]
        hold = int(rng.geometric(1.0 - stay)) if stay < 1.0 else n
        states[pos : pos + hold] = state
        pos += hold
        off = trans[state].copy()
        off[state] = 0.0
        state = int(rng.choice(k, p=off / off.sum()))
    return states


def _garch_path(z: np.ndarray, omega: np.ndarray, alpha: float, beta: float, h0: float) -> np.ndarray:
    """Conditional standard deviation path of a GARCH(1,1) with time-varying omega."""
    out = np.empty(len(z))
    h = h0
    z_prev2 = 0.0
    om = omega.tolist()
    zl = z.tolist()
    for t in range(len(zl)):
        h = om[t] + (alpha * z_prev2 + beta) * h
        out[t] = h
        z_prev2 = zl[t] * zl[t]
    return np.sqrt(out)


def _scenario_mask(dates: pd.DatetimeIndex, sc: Scenario) -> np.ndarray:
    start = pd.Timestamp(sc.start, tz="UTC") if pd.Timestamp(sc.start).tzinfo is None else pd.Timestamp(sc.start)
    end = start + pd.Timedelta(hours=sc.hours)
    return np.asarray((dates >= start) & (dates < end))


def generate(config: SyntheticConfig | None = None) -> SyntheticMarket:
    """Generate a deterministic market for config.seed."""
    cfg = config or SyntheticConfig()
    rng = np.random.default_rng(cfg.seed)
    tf_ms = interval_ms(cfg.timeframe)
    n = round(cfg.days * 86_400_000 / tf_ms)
    if n < 2:
        raise ValueError("synthetic market needs at least two candles")
    scale = tf_ms / BASE_CANDLE_MS
    start = pd.Timestamp(cfg.start, tz="UTC") if pd.Timestamp(cfg.start).tzinfo is None else pd.Timestamp(cfg.start)
    dates = pd.date_range(start, periods=n, freq=pd.Timedelta(milliseconds=tf_ms))

    states = _simulate_regimes(rng, n, cfg.transition_matrix())
    labels = np.array(REGIMES, dtype=object)[states]

    drift = np.array([cfg.regimes[r].drift for r in REGIMES])[states] * scale
    long_var = (np.array([cfg.regimes[r].vol for r in REGIMES]) ** 2)[states] * scale
    vol_mult = np.array([cfg.regimes[r].volume for r in REGIMES])[states]
    persistence = cfg.garch_alpha + cfg.garch_beta
    if not 0 < persistence < 1:
        raise ValueError("garch_alpha + garch_beta must be in (0, 1)")

    risky = [a for a in cfg.assets if not a.stable]
    m = len(risky)

    # Correlated unit-variance Student-t shocks; windows of correlation spikes use their own rho.
    def _chol(rho: float) -> np.ndarray:
        c = np.full((m, m), rho)
        np.fill_diagonal(c, 1.0)
        return np.linalg.cholesky(c)

    raw = rng.standard_t(cfg.t_dof, size=(n, m)) / math.sqrt(cfg.t_dof / (cfg.t_dof - 2.0))
    z = raw @ _chol(cfg.correlation).T if m > 1 else raw
    depth_factor = np.ones(n)
    spread_factor = np.ones(n)
    crash_moves = np.zeros(n)
    depeg = np.zeros(n)  # log-price offset of every stablecoin
    for sc in cfg.scenarios:
        mask = _scenario_mask(dates, sc)
        if not mask.any():
            raise ValueError(f"scenario {sc.kind} at {sc.start} lies outside the generated range")
        if sc.kind == "correlation_spike" and m > 1:
            z[mask] = raw[mask] @ _chol(sc.rho).T
        elif sc.kind == "liquidity_drought":
            depth_factor[mask] *= sc.depth_factor
            spread_factor[mask] *= sc.spread_factor
            vol_mult = np.where(mask, vol_mult * sc.depth_factor, vol_mult)
        elif sc.kind == "depeg":
            idx = np.flatnonzero(mask)
            fall = max(1, len(idx) // 4)
            trough = math.log(1.0 - sc.drop)
            path = np.r_[
                np.linspace(0, trough, fall + 1)[1:],
                np.linspace(trough, trough * (1.0 - sc.recovery), len(idx) - fall + 1)[1:],
            ]
            depeg[idx] += path
            if sc.recovery < 1 and idx[-1] + 1 < n:
                depeg[idx[-1] + 1 :] += trough * (1.0 - sc.recovery)
        elif sc.kind == "flash_crash":
            idx = np.flatnonzero(mask)
            crash_len = max(1, round(15 * 60_000 / tf_ms))  # the fall takes ~15 minutes
            fall = idx[:crash_len]
            rebound = idx[crash_len:]
            total = math.log(1.0 - sc.drop)
            crash_moves[fall] += total / len(fall)
            if len(rebound):
                crash_moves[rebound] += -total * sc.recovery / len(rebound)
            states[idx] = REGIMES.index("high_volatility")
            labels[idx] = "high_volatility"
            long_var[idx] = (cfg.regimes["high_volatility"].vol ** 2) * scale
            depth_factor[idx] *= 0.3
            spread_factor[idx] *= 3.0
            vol_mult = np.where(mask, vol_mult * 5.0, vol_mult)

    omega = long_var * (1.0 - persistence)
    candles: dict[str, pd.DataFrame] = {}
    markets: dict[str, MarketSpec] = {}
    sideways = states == REGIMES.index("sideways")
    h0 = float(long_var[0])
    for j, asset in enumerate(risky):
        sigma = _garch_path(z[:, j], omega * asset.beta**2, cfg.garch_alpha, cfg.garch_beta, h0 * asset.beta**2)
        ret = drift * asset.beta + sigma * z[:, j] + crash_moves * asset.beta
        logp = _integrate_with_reversion(ret, sideways, cfg.sideways_reversion, 0.0)
        vol_ref = math.sqrt(cfg.regimes["sideways"].vol ** 2 * scale) * asset.beta
        volume = (
            asset.base_volume
            * scale
            * vol_mult
            * (sigma / vol_ref) ** 0.8
            * (1.0 + 0.5 * np.abs(z[:, j]))
            * rng.lognormal(0.0, 0.25, n)
        )
        candles[asset.pair], markets[asset.pair] = _to_ohlcv(rng, dates, logp, sigma, volume, asset)

    for asset in (a for a in cfg.assets if a.stable):
        ou_sigma = 0.00008 * math.sqrt(scale)
        shocks = rng.normal(0.0, ou_sigma, n)
        logp = np.empty(n)
        x = 0.0
        for t, s in enumerate(shocks.tolist()):
            x = 0.9 * x + s
            logp[t] = x
        logp += depeg
        sigma = np.full(n, ou_sigma) + np.abs(np.diff(depeg, prepend=0.0))
        volume = asset.base_volume * scale * rng.lognormal(0.0, 0.3, n) * np.where(depth_factor < 1, depth_factor, 1.0)
        volume *= np.where(depeg < 0, 3.0, 1.0)  # a depeg draws redemptions and arbitrageurs
        candles[asset.pair], markets[asset.pair] = _to_ohlcv(rng, dates, logp, sigma, volume, asset)

    truth = pd.DataFrame(
        {
            "date": dates,
            "regime": pd.Series(labels, dtype=str),
            "regime_id": states.astype(np.int8),
            "depth_factor": depth_factor,
            "spread_factor": spread_factor,
        }
    )
    return SyntheticMarket(cfg, candles, truth, markets)


def _integrate_with_reversion(ret: np.ndarray, sideways: np.ndarray, kappa: float, logp0: float) -> np.ndarray:
    """Cumulate log-returns; inside sideways spells pull toward the spell's starting level."""
    logp = logp0 + np.cumsum(ret)
    if kappa <= 0 or not sideways.any():
        return logp
    out = np.empty_like(logp)
    level = logp0
    anchor = logp0
    prev_side = False
    rl = ret.tolist()
    sl = sideways.tolist()
    for t in range(len(rl)):
        if sl[t] and not prev_side:
            anchor = level
        step = rl[t] - (kappa * (level - anchor) if sl[t] else 0.0)
        level += step
        out[t] = level
        prev_side = sl[t]
    return out


def _to_ohlcv(
    rng: np.random.Generator,
    dates: pd.DatetimeIndex,
    logp: np.ndarray,
    sigma: np.ndarray,
    volume: np.ndarray,
    asset: AssetParams,
) -> tuple[pd.DataFrame, MarketSpec]:
    spec = KNOWN_MARKETS.get(asset.pair)
    if spec is None:
        from simulation.markets import split_pair

        base, quote = split_pair(asset.pair)
        tick = 10.0 ** (math.floor(math.log10(asset.start_price)) - 4)
        spec = MarketSpec(base, quote, tick, 0.01)
    close_raw = asset.start_price * np.exp(logp)
    close = round_to(close_raw, spec.tick_size)
    close = np.maximum(close, spec.tick_size)
    open_ = np.concatenate([[round_to(np.array([asset.start_price]), spec.tick_size)[0]], close[:-1]])
    wick = 0.6 * sigma
    hi_raw = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0.0, 1.0, len(close))) * wick)
    lo_raw = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0.0, 1.0, len(close))) * wick)
    high = np.maximum(round_to(hi_raw, spec.tick_size, "up"), np.maximum(open_, close))
    low = np.minimum(round_to(lo_raw, spec.tick_size, "down"), np.minimum(open_, close))
    low = np.maximum(low, spec.tick_size)
    vol = np.maximum(round_to(volume, spec.step_size), spec.step_size)
    df = pd.DataFrame({"date": dates, "open": open_, "high": high, "low": low, "close": close, "volume": vol})
    return df, spec
