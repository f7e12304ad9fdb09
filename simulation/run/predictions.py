"""FreqAI prediction diff: what the model said in the backtest against what it said in the bot.

Both runs already write their predictions, the official way: backtesting saves one feather per
training window (`models/<identifier>/backtesting_predictions/cb_<coin>_<trained ts>_prediction.feather`)
and a dry-run bot keeps every live prediction in `historic_predictions.pkl` (pair -> frame with
`date_pred`). Joined on (pair, candle) they answer "did the two runs see the same model output?":
correlation and MAE of the prediction, direction agreement, `do_predict` mismatches, the confidence's
MAE, candles the bot never predicted (FreqAI fills them with zero rows), and the model's age at each
prediction (the backtest retrains on its own schedule, the bot on `live_retrain_hours`).
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import numpy as np
import pandas as pd

BACKTEST_FILE = re.compile(r"cb_(?P<coin>[a-z0-9]+)_(?P<ts>\d+)_prediction\.feather$")
LIVE_MODEL_DIR = re.compile(r"sub-train-(?P<coin>[A-Z0-9]+)_(?P<ts>\d+)$")
CONFIDENCE = "&-confidence"


def _coin_pairs(pairs: list[str]) -> dict[str, str]:
    return {p.split("/")[0].lower(): p for p in pairs}


def backtest_predictions(models_dir: Path, pairs: list[str]) -> pd.DataFrame:
    """Every backtest prediction with its pair and the end of the training window that made it."""
    coins = _coin_pairs(pairs)
    frames = []
    for path in sorted((Path(models_dir) / "backtesting_predictions").glob("cb_*_prediction.feather")):
        m = BACKTEST_FILE.search(path.name)
        if not m or m["coin"] not in coins:
            continue
        df = pd.read_feather(path)
        frames.append(df.assign(pair=coins[m["coin"]], trained_ms=int(m["ts"]) * 1000))
    if not frames:
        return pd.DataFrame(columns=["pair", "date", "trained_ms"])
    out = pd.concat(frames, ignore_index=True)
    out["date"] = pd.to_datetime(out["date"], utc=True)
    return out.drop_duplicates(["pair", "date"], keep="last")


def live_predictions(models_dir: Path, exclude_trained_s: set[int] = frozenset(), candle_ms: int = 0) -> pd.DataFrame:
    """The bot's historic predictions; `trained_ms` from its own model folders (the latest training that
    ended at or before each candle's close, its date + `candle_ms`: the bot predicts a candle once it has
    closed; folders the backtest wrote, `exclude_trained_s`, do not count). FreqAI deletes all but its
    last `purge_old_models` folders per pair: a session keeps them all (`bot_overlay`)."""
    path = Path(models_dir) / "historic_predictions.pkl"
    if not path.is_file():
        return pd.DataFrame(columns=["pair", "date", "trained_ms"])
    with open(path, "rb") as fh:
        history: dict[str, pd.DataFrame] = pickle.load(fh)  # the bot's own file, written by FreqAI
    trained: dict[str, list[int]] = {}
    for folder in Path(models_dir).glob("sub-train-*"):
        m = LIVE_MODEL_DIR.search(folder.name)
        if m and int(m["ts"]) not in exclude_trained_s:
            trained.setdefault(m["coin"], []).append(int(m["ts"]) * 1000)
    frames = []
    for pair, df in history.items():
        df = df.rename(columns={"date_pred": "date"}).assign(pair=pair)
        df["date"] = pd.to_datetime(df["date"], utc=True)
        stamps = np.sort(trained.get(pair.split("/")[0].upper(), []))
        ms = df["date"].astype("datetime64[ms, UTC]").astype("int64").to_numpy() + candle_ms
        idx = np.searchsorted(stamps, ms, side="right") - 1
        df["trained_ms"] = np.where(idx >= 0, stamps[np.clip(idx, 0, None)] if len(stamps) else np.nan, np.nan)
        frames.append(df)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["pair", "date", "trained_ms"])


def _label(columns: list[str]) -> str | None:
    labels = [c for c in columns if c.startswith("&-") and c != CONFIDENCE and not c.endswith(("_mean", "_std"))]
    return labels[0] if labels else None


def _age_hours(df: pd.DataFrame) -> dict:
    age = (df["date"].astype("datetime64[ms, UTC]").astype("int64") - df["trained_ms"]) / 3.6e6
    age = age.dropna()
    if not len(age):
        return {}
    return {"p50": float(age.median()), "max": float(age.max()), "n": len(age)}


def _diff(both: pd.DataFrame, label: str) -> dict:
    a, b = both[f"{label}_bt"].to_numpy(float), both[f"{label}_live"].to_numpy(float)
    out = {
        "candles": len(both),
        "prediction_mae": float(np.abs(a - b).mean()),
        "prediction_correlation": float(np.corrcoef(a, b)[0, 1])
        if len(a) > 2 and a.std() > 0 and b.std() > 0
        else None,
        "direction_agreement": float((np.sign(a) == np.sign(b)).mean()),
    }
    if "do_predict_bt" in both and "do_predict_live" in both:
        out["do_predict_mismatches"] = int((both["do_predict_bt"] != both["do_predict_live"]).sum())
    if f"{CONFIDENCE}_bt" in both and f"{CONFIDENCE}_live" in both:
        out["confidence_mae"] = float((both[f"{CONFIDENCE}_bt"] - both[f"{CONFIDENCE}_live"]).abs().mean())
    return out


def prediction_diff(bt: pd.DataFrame, live: pd.DataFrame, tolerance: float = 1e-9) -> dict:
    """Per pair and overall, over the candles both runs predicted (the bot's zero placeholder rows,
    candles it did not predict, are counted apart and left out)."""
    label = _label(list(bt.columns)) or _label(list(live.columns))
    if label is None or not len(bt) or not len(live):
        return {"candles": 0, "note": "no FreqAI predictions on one side"}
    cols = [c for c in (label, "do_predict", CONFIDENCE) if c in live.columns]
    placeholder = (live[cols].fillna(0) == 0).all(axis=1)
    both = bt.merge(live[~placeholder], on=["pair", "date"], suffixes=("_bt", "_live"))
    both = both.sort_values(["pair", "date"])
    result = {
        "label": label,
        **(_diff(both, label) if len(both) else {"candles": 0}),
        "live_not_predicted": int(placeholder.sum()),
        "backtest_model_age_h": _age_hours(bt),
        "live_model_age_h": _age_hours(live[~placeholder]),
        "pairs": {},
    }
    for pair, g in both.groupby("pair"):
        gap = (g[f"{label}_bt"] - g[f"{label}_live"]).abs() > tolerance
        first = g.loc[gap, "date"].min() if gap.any() else None
        result["pairs"][pair] = {
            **_diff(g, label),
            "first_divergence": None if first is None else f"{first:%Y-%m-%d %H:%M}",
        }
    return result
