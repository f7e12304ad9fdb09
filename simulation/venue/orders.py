"""Order and trade records of the simulated venue (Binance field names on the wire)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from simulation.wire import fmt_num

OPEN_STATUSES = ("NEW", "PARTIALLY_FILLED")


@dataclass
class Trade:
    trade_id: int
    order_id: int
    symbol: str
    side: str
    price: float
    qty: float
    commission: float
    commission_asset: str
    time: int  # exchange ms
    is_maker: bool
    book_price: float  # before impact (slippage attribution)

    def to_binance(self) -> dict:
        return {
            "symbol": self.symbol,
            "id": self.trade_id,
            "orderId": self.order_id,
            "orderListId": -1,
            "price": fmt_num(self.price),
            "qty": fmt_num(self.qty),
            "quoteQty": fmt_num(round(self.price * self.qty, 8)),
            "commission": fmt_num(round(self.commission, 8)),
            "commissionAsset": self.commission_asset,
            "time": self.time,
            "isBuyer": self.side == "BUY",
            "isMaker": self.is_maker,
            "isBestMatch": True,
        }

    def fill_entry(self) -> dict:
        return {
            "price": fmt_num(self.price),
            "qty": fmt_num(self.qty),
            "commission": fmt_num(round(self.commission, 8)),
            "commissionAsset": self.commission_asset,
            "tradeId": self.trade_id,
        }


@dataclass
class Order:
    order_id: int
    client_order_id: str
    symbol: str
    pair: str
    side: str  # BUY | SELL
    type: str  # MARKET | LIMIT | STOP_LOSS_LIMIT
    qty: float
    price: float  # limit price (0 for market)
    stop_price: float  # 0 unless a stop order
    time_in_force: str
    time: int  # exchange ms when the venue accepted it
    update_time: int
    status: str = "NEW"
    executed_qty: float = 0.0
    cum_quote: float = 0.0
    triggered_time: int | None = None  # stop orders: when the stop price was hit
    last_check: int = 0  # data ms up to which the market has been matched against it
    trades: list[Trade] = field(default_factory=list)

    @property
    def remaining(self) -> float:
        return max(0.0, self.qty - self.executed_qty)

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    def to_binance(self, with_fills: bool = False) -> dict:
        out = {
            "symbol": self.symbol,
            "orderId": self.order_id,
            "orderListId": -1,
            "clientOrderId": self.client_order_id,
            "price": fmt_num(self.price),
            "origQty": fmt_num(self.qty),
            "executedQty": fmt_num(round(self.executed_qty, 8)),
            "cummulativeQuoteQty": fmt_num(round(self.cum_quote, 8)),
            "status": self.status,
            "timeInForce": self.time_in_force,
            "type": self.type,
            "side": self.side,
            "stopPrice": fmt_num(self.stop_price),
            "icebergQty": "0.00000000",
            "time": self.time,
            "transactTime": self.time,
            "updateTime": self.update_time,
            "workingTime": self.time if self.type != "STOP_LOSS_LIMIT" else (self.triggered_time or -1),
            "isWorking": self.type != "STOP_LOSS_LIMIT" or self.triggered_time is not None,
            "origQuoteOrderQty": "0.00000000",
            "selfTradePreventionMode": "NONE",
        }
        if with_fills:
            out["fills"] = [t.fill_entry() for t in self.trades]
        return out

    def record(self) -> dict:
        """Plain dict for the ledger and the reconciliation report."""
        d = asdict(self)
        d.pop("trades")
        d["trades"] = [asdict(t) for t in self.trades]
        return d
