"""The comparison's equity curves charge each trade the fees its run charged."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from simulation.run.compare import equity_curve


def _trade(fee_open: float, fee_close: float, close_ms: float) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "pair": "BTC/USDT",
                "open_ms": 1,
                "close_ms": close_ms,
                "open_rate": 100.0,
                "amount": 2.0,
                "profit": 5.0,
                "fee_open": fee_open,
                "fee_close": fee_close,
            }
        ]
    )


def test_open_positions_are_marked_with_the_trade_s_own_fees():
    grid = np.array([0, 1, 2, 3])
    closes = {"BTC/USDT": np.array([100.0, 100.0, 110.0, 110.0])}
    free = equity_curve(_trade(0.0, 0.0, np.inf), closes, grid, 1000.0)
    venue = equity_curve(_trade(0.0005, 0.0005, np.inf), closes, grid, 1000.0)
    assert free.tolist() == [1000.0, 1000.0, 1020.0, 1020.0]
    assert venue[2] == pytest.approx(1000 + 2 * (110 * 0.9995 - 100 * 1.0005))
    closed = equity_curve(_trade(0.0005, 0.0005, 3), closes, grid, 1000.0)
    assert closed[3] == 1005.0, "a closed trade counts its realized profit"


def test_reconcile_allows_one_lot_step_of_dust_per_trade_and_no_more():
    """Each buy pays its fee in the base asset and freqtrade floors the rest to the lot step: three ADA
    trades leave up to three steps on the venue; anything beyond is a real disagreement."""
    import pandas as pd

    from simulation.run.reconcile import reconcile

    orders = pd.DataFrame({"order_id": ["1", "2", "3"], "status": ["closed"] * 3, "filled": [509.0, 508.4, 507.2]})
    trades = pd.DataFrame({"pair": ["ADA/USDT"] * 2, "is_open": [0, 1], "amount": [508.4, 506.6]})
    venue_orders = [
        {"order_id": i, "status": "FILLED", "executed_qty": q, "client_order_id": f"c{i}"}
        for i, q in ((1, 509.0), (2, 508.4), (3, 507.2))
    ]
    ok = reconcile(
        {"orders": venue_orders, "balances": {"ADA": [506.6 + 0.091 + 0.0928, 0.0]}}, orders, trades, {"ADA": 0.1}
    )
    assert ok["ok"] and ok["holdings"][0]["dust_allowed"] == 0.2
    bad = reconcile({"orders": venue_orders, "balances": {"ADA": [506.6 + 0.25, 0.0]}}, orders, trades, {"ADA": 0.1})
    assert not bad["ok"], "more than one step per trade is not dust"
    short = reconcile({"orders": venue_orders, "balances": {"ADA": [506.5, 0.0]}}, orders, trades, {"ADA": 0.1})
    assert not short["ok"], "the venue holding less than the bot's open trades is never dust"
