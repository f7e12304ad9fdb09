"""Signed Binance spot private endpoints, answered by the simulated venue."""

from __future__ import annotations

from aiohttp import web

from simulation.venue import ApiCredentials, Venue
from simulation.venue.auth import check_key, verify
from simulation.wire import BinanceError, fmt_num

MAX_BODY_BYTES = 1 << 20  # 1 MiB, aiohttp's default client_max_size: the same limit, answered in JSON


async def _params(request: web.Request, creds: ApiCredentials | None, venue: Venue) -> dict[str, str]:
    api_key = request.headers.get("X-MBX-APIKEY")
    check_key(creds, api_key)  # before the body is read
    body = ""
    if request.can_read_body:
        if (request.content_length or 0) > MAX_BODY_BYTES:
            raise BinanceError(-1000, f"Request body larger than {MAX_BODY_BYTES} bytes.", 413)
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise BinanceError(-1000, f"Request body larger than {MAX_BODY_BYTES} bytes.", 413) from None
        try:
            body = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise BinanceError(-1100, "Illegal characters found in the request body (not UTF-8).") from None
    # the query as sent (percent-encoded), which is what clients sign; aiohttp's query_string is decoded
    return verify(creds, api_key, request.rel_url.raw_query_string, body, venue.clock.now_ms())


def _int(p: dict[str, str], name: str) -> int | None:
    """An optional integer parameter, validated like Binance (digits only)."""
    raw = p.get(name)
    if raw is None or raw == "":
        return None
    if not raw.isascii() or not raw.isdigit() or len(raw) > 20:
        raise BinanceError(-1100, f"Illegal characters found in parameter '{name}'; legal range is '^[0-9]{{1,20}}$'.")
    return int(raw)


def _limit(p: dict[str, str], default: int = 500, maximum: int = 1000) -> int:
    raw = p.get("limit")
    if not raw:
        return default
    if not raw.isascii() or not raw.isdigit() or len(raw) > 20 or not 1 <= int(raw) <= maximum:
        raise BinanceError(-1130, "Data sent for parameter 'limit' is not valid.")
    return int(raw)


def _window(items: list, p: dict[str, str], time_of) -> list:
    start, end = _int(p, "startTime"), _int(p, "endTime")
    if start is not None:
        items = [i for i in items if time_of(i) >= start]
    if end is not None:
        items = [i for i in items if time_of(i) <= end]
    return items[-_limit(p) :]


def add_private_routes(app: web.Application, venue: Venue, creds: ApiCredentials | None) -> None:
    def route(handler):
        async def wrapped(request: web.Request) -> web.Response:
            p = await _params(request, creds, venue)
            venue.match()  # statuses are current as of this request's arrival
            return app["json"](handler(p))

        return wrapped

    def account(p):
        bal = venue.account()
        return {
            "makerCommission": int(venue.params.maker_fee * 1e4),
            "takerCommission": int(venue.params.taker_fee * 1e4),
            "buyerCommission": 0,
            "sellerCommission": 0,
            "commissionRates": {
                "maker": fmt_num(venue.params.maker_fee),
                "taker": fmt_num(venue.params.taker_fee),
                "buyer": "0.00000000",
                "seller": "0.00000000",
            },
            "canTrade": True,
            "canWithdraw": False,
            "canDeposit": False,
            "brokered": False,
            "requireSelfTradePrevention": False,
            "preventSor": False,
            "updateTime": venue.clock.now_ms(),
            "accountType": "SPOT",
            "balances": [
                {"asset": a, "free": fmt_num(round(f, 8)), "locked": fmt_num(round(lk, 8))}
                for a, (f, lk) in bal.items()
            ],
            "permissions": ["SPOT"],
            "uid": 1,
        }

    def new_order(p):
        order = venue.place(p)
        app["metrics"].orders.labels(order.side, order.type).inc()
        return order.to_binance(with_fills=p.get("newOrderRespType", "FULL") != "ACK")

    def cancel_order(p):
        return venue.cancel(p).to_binance()

    def query_order(p):
        return venue.find(p).to_binance()

    def open_orders(p):
        return [o.to_binance() for o in venue.open_orders(p.get("symbol"))]

    def cancel_open_orders(p):
        symbol = p.get("symbol")
        if not symbol:
            raise BinanceError(-1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.")
        return [
            venue.cancel({"symbol": symbol, "orderId": str(o.order_id)}).to_binance() for o in venue.open_orders(symbol)
        ]

    def all_orders(p):
        orders = venue.all_orders(p.get("symbol") or "")
        if (oid := _int(p, "orderId")) is not None:
            orders = [o for o in orders if o.order_id >= oid]
        return [o.to_binance() for o in _window(orders, p, lambda o: o.time)]

    def my_trades(p):
        trades = venue.trades(p.get("symbol") or "")
        if (oid := _int(p, "orderId")) is not None:
            trades = [t for t in trades if t.order_id == oid]
        if (from_id := _int(p, "fromId")) is not None:
            trades = [t for t in trades if t.trade_id >= from_id]
        return [t.to_binance() for t in _window(trades, p, lambda t: t.time)]

    def commission(p):
        venue.market(p.get("symbol") or "")
        rates = {
            "maker": fmt_num(venue.params.maker_fee),
            "taker": fmt_num(venue.params.taker_fee),
            "buyer": "0.00000000",
            "seller": "0.00000000",
        }
        return {
            "symbol": p["symbol"],
            "standardCommission": rates,
            "taxCommission": {k: "0.00000000" for k in rates},
            "discount": {
                "enabledForAccount": False,
                "enabledForSymbol": False,
                "discountAsset": "BNB",
                "discount": "0.00000000",
            },
        }

    def trade_fees(p):
        symbols = [p["symbol"]] if p.get("symbol") else list(venue.symbols())
        return [
            {
                "symbol": s,
                "makerCommission": fmt_num(venue.params.maker_fee),
                "takerCommission": fmt_num(venue.params.taker_fee),
            }
            for s in symbols
        ]

    def coins(p):  # ccxt's fetchCurrencies when keys are set
        bal = venue.account()
        assets = sorted({a for m in venue.symbols().values() for a in (m.base, m.quote)} | set(bal))
        return [
            {
                "coin": a,
                "name": a,
                "free": fmt_num(round(bal.get(a, (0.0, 0.0))[0], 8)),
                "locked": fmt_num(round(bal.get(a, (0.0, 0.0))[1], 8)),
                "depositAllEnable": False,
                "withdrawAllEnable": False,
                "trading": True,
                "isLegalMoney": False,
                "networkList": [],
            }
            for a in assets
        ]

    r = app.router
    r.add_get("/sapi/v1/capital/config/getall", route(coins))
    r.add_get("/sapi/v1/margin/allPairs", route(lambda p: []))  # spot only: no margin pairs
    r.add_get("/sapi/v1/margin/isolated/allPairs", route(lambda p: []))
    r.add_get("/api/v3/account", route(account))
    r.add_post("/api/v3/order", route(new_order))
    r.add_delete("/api/v3/order", route(cancel_order))
    r.add_get("/api/v3/order", route(query_order))
    r.add_get("/api/v3/openOrders", route(open_orders))
    r.add_delete("/api/v3/openOrders", route(cancel_open_orders))
    r.add_get("/api/v3/allOrders", route(all_orders))
    r.add_get("/api/v3/myTrades", route(my_trades))
    r.add_get("/api/v3/account/commission", route(commission))
    r.add_get("/sapi/v1/asset/tradeFee", route(trade_fees))
