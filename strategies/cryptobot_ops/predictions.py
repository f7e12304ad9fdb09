"""The predictions store: every live prediction of our FreqAI models with its realized outcome.

Why: a model that was good in its walk-forward can decay live, and nobody sees it unless each
prediction is kept and scored once its label horizon has passed. One SQLite file in WAL mode beside
freqtrade's database (default user_data/predictions.sqlite), one row per (pair, model, candle):
the ensemble and each base model, the confidence, the 1h regime, the model's id and age.

- written inside the strategy's analysis, committed before the entry signal is computed, so a
  prediction the bot acts on is on disk first; `INSERT OR IGNORE` keeps the first prediction of a
  candle (the one acted on) when a restarted bot analyses the same candle again;
- outcomes are filled from the closes of the bot's own analyzed candles (`settle`): the label
  definition of training, log(close[t + horizon] / close[t]), so the score is the one the model was
  trained for; predictions made before a crash are settled after the restart;
- `missing_ranges` / `missing_candles` list the candles the bot never predicted (it was down), found from the
  gaps between stored predictions: reported, never filled in.
"""

from __future__ import annotations

import math
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

SCHEMA = """
CREATE TABLE IF NOT EXISTS predictions (
    pair TEXT NOT NULL, model TEXT NOT NULL, candle_ms INTEGER NOT NULL, timeframe TEXT NOT NULL,
    horizon INTEGER NOT NULL, prediction REAL NOT NULL, confidence REAL, do_predict INTEGER NOT NULL,
    regime TEXT, model_id TEXT, model_age_s REAL, close REAL NOT NULL, recorded_ms INTEGER NOT NULL,
    outcome REAL, outcome_ms INTEGER,
    PRIMARY KEY (pair, model, candle_ms));
CREATE INDEX IF NOT EXISTS unsettled ON predictions (pair, timeframe) WHERE outcome IS NULL;
CREATE TABLE IF NOT EXISTS series (pair TEXT NOT NULL, model TEXT NOT NULL, PRIMARY KEY (pair, model));
"""
ENSEMBLE = "ensemble"
COMPOUND_BATCH = 400  # groups per compound SELECT (SQLite: at most 500 terms)


@dataclass(frozen=True)
class Prediction:
    pair: str
    model: str  # "ensemble" or a base model's name
    candle_ms: int  # open time of the candle whose close the prediction is made at
    timeframe: str
    horizon: int  # label_period_candles
    prediction: float  # predicted log return over `horizon` candles
    confidence: float | None
    do_predict: int
    regime: str | None
    model_id: str | None
    model_age_s: float | None
    close: float  # the candle's close: the outcome's starting price

    def __post_init__(self) -> None:
        for name in ("prediction", "close"):
            if not math.isfinite(getattr(self, name)):
                raise ValueError(f"prediction {self.pair} {self.model} {self.candle_ms}: {name} is not finite")
        if self.close <= 0 or self.horizon < 1:
            raise ValueError(
                f"prediction {self.pair} {self.model} {self.candle_ms}: close and horizon must be positive"
            )


def wilson(hits: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a hit rate (sound at small n and near 0 or 1)."""
    if n == 0:
        return (math.nan, math.nan)
    p = hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (centre - half, centre + half)


FEE = 0.001  # per side, Binance spot without BNB (freqtrade's default for binance)
SPEC_PRECISION = 0.60  # the spec's precision for the most confident predictions


def net_score(preds: list[np.ndarray], forwards: list[np.ndarray], label_period: int, fee: float = FEE) -> dict:
    """What trading the predictions would have earned: a fixed long/flat rule decides every
    `label_period` candles (non-overlapping, so the decisions' outcomes are close to independent): long
    for the next `label_period` candles when the prediction is above zero (the raw forward log return
    minus a round trip of fees), flat otherwise (0). Mean net per decision, in basis points, with a
    normal 95% interval; a model without an edge scores below zero (it pays the fees). One array per
    pair-fold: decisions restart on each one's first test candle."""
    step = max(1, int(label_period))
    p = np.concatenate([a[::step] for a in preds]) if preds else np.array([])
    r = np.concatenate([a[::step] for a in forwards]) if forwards else np.array([])
    ok = np.isfinite(p) & np.isfinite(r)
    p, r = p[ok], r[ok]
    long = p > 0
    net = np.where(long, r - 2 * fee, 0.0) * 1e4
    n = len(net)
    mean = float(net.mean()) if n else None
    half = 1.96 * float(net.std(ddof=1)) / np.sqrt(n) if n > 1 else None
    return {
        "mean_net_bps": mean,
        "ci95_bps": None if half is None else [mean - half, mean + half],
        "decisions": n,
        "long_share": float(long.mean()) if n else None,
        "fee_per_side": fee,
    }


def confidence_bucket(name: str, accuracy: float, candles: int, label_period: int) -> dict:
    """A confidence bucket's accuracy with a 95% Wilson interval on its *effective* count: labels over
    `label_period` candles overlap, so n candles carry about n / label_period independent outcomes."""
    n_eff = max(1.0, candles / max(label_period, 1))
    z = 1.96
    centre = (accuracy + z * z / (2 * n_eff)) / (1 + z * z / n_eff)
    half = z * np.sqrt(accuracy * (1 - accuracy) / n_eff + z * z / (4 * n_eff * n_eff)) / (1 + z * z / n_eff)
    return {
        "bucket": name,
        "direction_accuracy": accuracy,
        "candles": candles,
        "effective_n": n_eff,
        "ci95": [round(max(0.0, centre - half), 4), round(min(1.0, centre + half), 4)],
    }


def top_decile(conf: pd.DataFrame, label_period: int) -> dict:
    """Precision of a model's most confident tenth of predictions against the base rates (its overall
    accuracy and always guessing the more frequent direction), with a Wilson interval on the effective
    count; the spec asks >= 60 %."""
    cut = conf["confidence"].quantile(0.9)
    top = conf[conf["confidence"] >= cut]
    b = confidence_bucket(f">= {cut:.3f}", float(top["hit"].mean()), len(top), label_period)
    up = float((conf["y"] > 0).mean())
    return {
        **b,
        "confidence_from": float(cut),
        "overall_accuracy": float(conf["hit"].mean()),
        "majority_rate": max(up, 1 - up),
        "spec_precision": SPEC_PRECISION,
        "spec_met": bool(b["ci95"][0] >= SPEC_PRECISION),
    }


class PredictionStore:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=10, isolation_level=None)
        db.execute("PRAGMA synchronous=FULL")  # a committed prediction survives a power cut, not only kill -9
        try:
            yield db
        finally:
            db.close()

    def record(self, rows: Iterable[Prediction]) -> int:
        """Insert in one transaction; a (pair, model, candle) already stored is kept. Returns rows added."""
        now = int(time.time() * 1000)
        values = [(*asdict(r).values(), now) for r in rows]
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            before = db.total_changes
            db.executemany(
                "INSERT OR IGNORE INTO predictions (pair, model, candle_ms, timeframe, horizon, prediction, "
                "confidence, do_predict, regime, model_id, model_age_s, close, recorded_ms) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                values,
            )
            added = db.total_changes - before
            db.executemany("INSERT OR IGNORE INTO series VALUES (?, ?)", {(r[0], r[1]) for r in values})
            db.execute("COMMIT")
        return added

    def settle(self, pair: str, timeframe: str, candles: pd.DataFrame, timeframe_ms: int) -> int:
        """Fill the outcome of every stored prediction of `pair` whose horizon candle is in `candles`
        (closed candles: `date` = open time, `close`). Returns how many were settled."""
        if candles.empty:
            return 0
        dates = pd.to_datetime(candles["date"], utc=True)
        closes = pd.Series(
            candles["close"].to_numpy(float), index=dates.dt.as_unit("ns").astype("int64").to_numpy() // 1_000_000
        )
        with self._connect() as db:
            open_rows = db.execute(
                "SELECT model, candle_ms, horizon, close FROM predictions "
                "WHERE pair = ? AND timeframe = ? AND outcome IS NULL",
                (pair, timeframe),
            ).fetchall()
            updates = []
            for model, candle_ms, horizon, close in open_rows:
                target_ms = candle_ms + horizon * timeframe_ms
                end = closes.get(target_ms)
                if end is not None and math.isfinite(end) and end > 0:
                    updates.append((math.log(end / close), target_ms, pair, model, candle_ms))
            if updates:
                db.execute("BEGIN IMMEDIATE")
                db.executemany(
                    "UPDATE predictions SET outcome = ?, outcome_ms = ? "
                    "WHERE pair = ? AND model = ? AND candle_ms = ? AND outcome IS NULL",
                    updates,
                )
                db.execute("COMMIT")
        return len(updates)

    def frame(self, settled_only: bool = False, last: int | None = None, predicted_only: bool = False) -> pd.DataFrame:
        """The stored rows, oldest first; `last`: only each (model, pair)'s newest `last` rows."""
        where = [c for c, on in (("outcome IS NOT NULL", settled_only), ("do_predict = 1", predicted_only)) if on]
        with self._connect() as db:
            if not last:
                query = "SELECT * FROM predictions" + "".join(
                    f" {'WHERE' if i == 0 else 'AND'} {c}" for i, c in enumerate(where)
                )
                return pd.read_sql_query(query + " ORDER BY candle_ms", db)
            # newest rows first along the primary key, per group: milliseconds on a year of candles
            groups = db.execute("SELECT pair, model FROM series").fetchall()
            cond = "".join(f" AND {c}" for c in where)
            one = (
                f"SELECT * FROM (SELECT * FROM predictions WHERE pair = ? AND model = ?{cond} "
                f"ORDER BY candle_ms DESC LIMIT {int(last)})"
            )
            # SQLite allows at most 500 terms in one compound SELECT: the groups go in batches
            parts = [
                pd.read_sql_query(" UNION ALL ".join([one] * len(batch)), db, params=[v for g in batch for v in g])
                for batch in (groups[i : i + COMPOUND_BATCH] for i in range(0, len(groups), COMPOUND_BATCH))
            ]
            df = (
                pd.concat(parts, ignore_index=True)
                if parts
                else pd.read_sql_query("SELECT * FROM predictions LIMIT 0", db)
            )
        return df.sort_values("candle_ms", kind="stable", ignore_index=True)

    def scores(
        self, by: tuple[str, ...] = ("model", "pair"), last: int | None = None, predicted_only: bool = True
    ) -> pd.DataFrame:
        """Direction accuracy (with its 95% Wilson interval) and rank IC of the settled predictions per
        group, over each group's `last` settled predictions (all when None). A hit is a prediction and
        an outcome of the same sign; exact zeros (no direction) are left out of the count.
        `predicted_only` keeps FreqAI's do_predict == 1 rows (the ones a strategy may act on)."""
        df = self.frame(
            settled_only=True, predicted_only=predicted_only, last=last if by == ("model", "pair") else None
        )
        df = df[(df["prediction"] != 0) & (df["outcome"] != 0)]
        cols = ["n", "hits", "accuracy", "accuracy_lo", "accuracy_hi", "ic", "first_ms", "last_ms"]
        if df.empty:
            return pd.DataFrame(columns=[*by, *cols])
        rows = []
        for key, g in df.groupby(list(by), sort=True):
            g = g.tail(last) if last else g
            hits = int((np.sign(g["prediction"]) == np.sign(g["outcome"])).sum())
            lo, hi = wilson(hits, len(g))
            varied = len(g) > 2 and g["prediction"].nunique() > 1 and g["outcome"].nunique() > 1
            ic = g["prediction"].rank().corr(g["outcome"].rank()) if varied else math.nan
            rows.append(
                {
                    **dict(zip(by, key if isinstance(key, tuple) else (key,), strict=True)),
                    "n": len(g),
                    "hits": hits,
                    "accuracy": hits / len(g),
                    "accuracy_lo": lo,
                    "accuracy_hi": hi,
                    "ic": ic,
                    "first_ms": int(g["candle_ms"].iloc[0]),
                    "last_ms": int(g["candle_ms"].iloc[-1]),
                }
            )
        return pd.DataFrame(rows)

    def missing_ranges(self, pair: str, timeframe_ms: int, model: str = ENSEMBLE) -> list[tuple[int, int]]:
        """(first, last) open times of each run of candles without a prediction between the pair's first
        and last stored one (the bot was down): found from the gaps, whatever their length."""
        with self._connect() as db:
            got = np.array(
                [
                    r[0]
                    for r in db.execute(
                        "SELECT candle_ms FROM predictions WHERE pair = ? AND model = ? ORDER BY candle_ms",
                        (pair, model),
                    )
                ],
                dtype=np.int64,
            )
        gaps = np.flatnonzero(np.diff(got) > timeframe_ms)
        return [(int(got[i] + timeframe_ms), int(got[i + 1] - timeframe_ms)) for i in gaps]

    def missing_candles(self, pair: str, timeframe_ms: int, model: str = ENSEMBLE, limit: int = 10_000) -> list[int]:
        """The open times `missing_ranges` covers, at most `limit` of them (the earliest): a year-long
        gap is reported by its range, never built candle by candle."""
        out: list[int] = []
        for first, last in self.missing_ranges(pair, timeframe_ms, model):
            out.extend(range(first, min(last, first + (limit - len(out) - 1) * timeframe_ms) + 1, timeframe_ms))
            if len(out) >= limit:
                break
        return out
