"""aiohttp adapter: routes Binance REST paths to BinanceSpotAPI, errors as Binance JSON."""

from __future__ import annotations

import json
import logging
import time

from aiohttp import web

from simulation.gateway.api import BinanceError, BinanceSpotAPI

logger = logging.getLogger("simulation.gateway")

# path -> BinanceSpotAPI method name
PUBLIC_ROUTES: dict[str, str] = {
    "/api/v3/ping": "ping",
    "/api/v3/time": "time",
    "/api/v3/exchangeInfo": "exchange_info",
    "/api/v3/klines": "klines",
    "/api/v3/uiKlines": "klines",
    "/api/v3/ticker/24hr": "ticker_24hr",
    "/api/v3/ticker/price": "ticker_price",
    "/api/v3/ticker/bookTicker": "book_ticker",
    "/api/v3/depth": "depth",
}


def _json(body, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(body, separators=(",", ":")), status=status, content_type="application/json")


def create_app(api: BinanceSpotAPI) -> web.Application:
    @web.middleware
    async def binance_errors(request: web.Request, handler):
        t0 = time.perf_counter()
        try:
            response = await handler(request)
        except BinanceError as err:
            response = _json(err.body(), err.status)
        except web.HTTPNotFound:
            response = _json({"code": -1000, "msg": f"Path {request.path} is not served by the offline gateway."}, 404)
        except web.HTTPMethodNotAllowed:
            response = _json({"code": -1000, "msg": f"Method {request.method} not allowed on {request.path}."}, 405)
        except Exception:  # never leak a stack trace to the client
            logger.exception("internal error on %s %s", request.method, request.path_qs)
            response = _json({"code": -1000, "msg": "An unknown error occurred while processing the request."}, 500)
        logger.debug(
            "%s %s -> %d (%.1f ms)", request.method, request.path_qs, response.status, (time.perf_counter() - t0) * 1e3
        )
        return response

    app = web.Application(middlewares=[binance_errors])

    def endpoint(method_name: str):
        method = getattr(api, method_name)

        async def handle(request: web.Request) -> web.Response:
            return _json(method(request.query))

        return handle

    for path, method_name in PUBLIC_ROUTES.items():
        app.router.add_get(path, endpoint(method_name))
    app["api"] = api
    return app
