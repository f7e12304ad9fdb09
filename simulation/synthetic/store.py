"""Write a synthetic market in freqtrade's feather layout, with its ground truth beside it."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from simulation.synthetic.generator import SyntheticMarket

GROUND_TRUTH_DIR = "ground_truth"  # subfolder: freqtrade only scans the datadir's top level
META_FILE = "synthetic.json"


def pair_filename(pair: str, timeframe: str) -> str:
    return f"{pair.replace('/', '_')}-{timeframe}.feather"


def write_market(market: SyntheticMarket, datadir: Path) -> list[Path]:
    """Write candles (freqtrade feather), ground-truth regimes and the generating config."""
    datadir = Path(datadir)
    datadir.mkdir(parents=True, exist_ok=True)
    tf = market.config.timeframe
    written = []
    for pair, df in market.candles.items():
        path = datadir / pair_filename(pair, tf)
        df.reset_index(drop=True).to_feather(path, compression="lz4", compression_level=9)
        written.append(path)
    gt_dir = datadir / GROUND_TRUTH_DIR
    gt_dir.mkdir(exist_ok=True)
    gt_path = gt_dir / f"regimes-{tf}.feather"
    market.ground_truth.reset_index(drop=True).to_feather(gt_path)
    written.append(gt_path)
    meta = market.config.to_dict()
    meta["markets"] = {
        p: {"tick_size": m.tick_size, "step_size": m.step_size, "min_notional": m.min_notional}
        for p, m in market.markets.items()
    }
    (datadir / META_FILE).write_text(json.dumps(meta, indent=2, default=str))
    written.append(datadir / META_FILE)
    return written


def load_ground_truth(datadir: Path, timeframe: str = "5m") -> pd.DataFrame:
    """Ground-truth regime per candle for a datadir written by write_market."""
    path = Path(datadir) / GROUND_TRUTH_DIR / f"regimes-{timeframe}.feather"
    if not path.exists():
        raise FileNotFoundError(f"no ground truth at {path}: was this datadir written by simulation.synthetic?")
    return pd.read_feather(path)
