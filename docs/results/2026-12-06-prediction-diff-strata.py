"""Direction agreement / MAE / correlation of a session's predictions, per (backtest model, live model)."""

import sys
from pathlib import Path

import numpy as np
import pandas as pd

from simulation.run.predictions import backtest_predictions, live_predictions

R, ident = Path(sys.argv[1]), "trend-following"
bt = backtest_predictions(R / f"backtest/user_data/models/{ident}", ["BTC/USDT", "ETH/USDT", "BNB/USDT"])
lv = live_predictions(R / f"user_data/models/{ident}", set((bt["trained_ms"] // 1000).astype(int)), 900_000)
lo, hi = pd.Timestamp("2024-03-01", tz="UTC"), pd.Timestamp("2024-03-01 12:00", tz="UTC")
m = bt[(bt.date >= lo) & (bt.date < hi)].merge(
    lv[(lv.date >= lo) & (lv.date < hi)], on=["pair", "date"], suffixes=("_bt", "_live")
)
a, b = m["&-target_bt"], m["&-target_live"]
m["same"], m["absdiff"] = np.sign(a) == np.sign(b), (a - b).abs()
m["live_model"] = (
    pd.to_datetime(m.trained_ms_live, unit="ms").dt.strftime("%d %H:%M").where(m.trained_ms_live.notna(), "(purged)")
)
m["bt_model"] = pd.to_datetime(m.trained_ms_bt, unit="ms").dt.strftime("%d %H:%M")
print(
    f"all: n {len(m)}, same direction {m.same.mean():.3f}, MAE {m.absdiff.mean():.2e}, "
    f"corr {np.corrcoef(a, b)[0, 1]:.3f}"
)
for (bm, lm), g in m.groupby(["bt_model", "live_model"]):
    c = np.corrcoef(g["&-target_bt"], g["&-target_live"])[0, 1]
    print(
        f"backtest model {bm}, live model {lm}: n {len(g)}, same direction {g.same.mean():.3f}, "
        f"MAE {g.absdiff.mean():.2e}, corr {c:.3f}"
    )
