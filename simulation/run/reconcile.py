"""Paper mode: does the bot's database agree with the venue's records? (no lost, no duplicate orders)"""

from __future__ import annotations

import pandas as pd

STATUS = {"NEW": "open", "PARTIALLY_FILLED": "open", "FILLED": "closed", "CANCELED": "canceled", "EXPIRED": "expired"}


def reconcile(venue: dict, orders: pd.DataFrame, trades: pd.DataFrame, lot_steps: dict[str, float]) -> dict:
    """lot_steps: base asset -> lot step (holdings may differ by sell-rounding dust below one step)."""
    v = {str(o["order_id"]): o for o in venue["orders"]}
    db = {str(r.order_id): r for r in orders.itertuples() if r.order_id}
    # freqtrade deletes an entry it cancelled before any fill, together with its trade: such venue
    # orders are accounted for, not lost.
    dropped = {
        oid
        for oid, o in v.items()
        if oid not in db and o["status"] in ("CANCELED", "EXPIRED") and o["executed_qty"] == 0
    }
    mismatched = []
    for oid in sorted(set(v) & set(db), key=int):
        vo, do = v[oid], db[oid]
        want = STATUS[vo["status"]]
        status_ok = do.status == want or (want == "expired" and do.status in ("canceled", "expired", "closed"))
        if not status_ok or abs(float(do.filled or 0) - vo["executed_qty"]) > 1e-9:
            mismatched.append(
                {"order_id": oid, "venue": [vo["status"], vo["executed_qty"]], "db": [do.status, do.filled]}
            )
    holdings = []
    for pair in sorted(set(trades.pair)):
        base = pair.split("/")[0]
        free, locked = venue["balances"].get(base, [0.0, 0.0])
        in_db = float(trades[(trades.pair == pair) & (trades.is_open == 1)].amount.sum())
        # A buy's fee is paid in the base asset and freqtrade floors what is left to the lot step, so each
        # trade may leave up to one step of dust on the venue (as on Binance): it adds up over the trades.
        n = int((trades.pair == pair).sum())
        diff = free + locked - in_db
        allowed = n * lot_steps.get(base, 0.0)
        holdings.append(
            {
                "asset": base,
                "venue": free + locked,
                "db_open_amount": in_db,
                "diff": diff,
                "trades": n,
                "dust_allowed": allowed,
                "ok": -1e-12 <= diff < allowed + 1e-12,
            }
        )
    dup_client_ids = [
        c for c, n in pd.Series([o["client_order_id"] for o in venue["orders"]]).value_counts().items() if n > 1
    ]
    return {
        "venue_orders": len(v),
        "db_orders": len(db),
        "cancelled_unfilled_entries_dropped_by_bot": sorted(dropped, key=int),
        "missing_in_db": sorted(set(v) - set(db) - dropped, key=int),
        "missing_on_venue": sorted(set(db) - set(v)),
        "duplicate_client_ids": dup_client_ids,
        "mismatched": mismatched,
        "holdings": holdings,
        "ok": not ((set(v) - dropped) ^ set(db))
        and not mismatched
        and not dup_client_ids
        and all(h["ok"] for h in holdings),
    }
