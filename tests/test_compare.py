"""The comparison's equity curves charge each trade the fees its run charged."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from simulation.run.compare import equity_curve


def _trade(fee_open: float, fee_close: float, close_ms: float) -> pd.DataFrame:
    return pd.DataFrame([{"pair": "BTC/USDT", "open_ms": 1, "close_ms": close_ms, "open_rate": 100.0, "amount": 2.0,
                          "profit": 5.0, "fee_open": fee_open, "fee_close": fee_close}])


def test_open_positions_are_marked_with_the_trade_s_own_fees():
    grid = np.array([0, 1, 2, 3])
    closes = {"BTC/USDT": np.array([100.0, 100.0, 110.0, 110.0])}
    free = equity_curve(_trade(0.0, 0.0, np.inf), closes, grid, 1000.0)
    venue = equity_curve(_trade(0.0005, 0.0005, np.inf), closes, grid, 1000.0)
    assert free.tolist() == [1000.0, 1000.0, 1020.0, 1020.0]
    assert venue[2] == pytest.approx(1000 + 2 * (110 * 0.9995 - 100 * 1.0005))
    closed = equity_curve(_trade(0.0005, 0.0005, 3), closes, grid, 1000.0)
    assert closed[3] == 1005.0, "a closed trade counts its realized profit"
