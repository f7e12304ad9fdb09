"""Small helpers shared by the simulator tests."""

from __future__ import annotations

from simulation.clock import Clock


class ManualClock(Clock):
    """Exchange time == data time, moved (or frozen) by the test."""

    def __init__(self, t: int) -> None:
        self.t = t

    def now_ms(self) -> int:
        return self.t

    def data_now(self) -> int | None:
        return self.t

    @property
    def shift_ms(self) -> int:
        return 0


class InProcessGateway:
    """The gateway's own aiohttp app (simulation.gateway.server.create_app, the routes, middleware and
    API a process serves) on a loopback port in a thread of the test process: HTTP-shape tests without
    starting a process. `with InProcessGateway(args) as gw: gw.url` (args as the gateway's CLI takes)."""

    def __init__(self, args: list[str], latency=None, answer_ahead: bool = False) -> None:
        self.args, self.latency, self.answer_ahead = args, latency, answer_ahead

    def __enter__(self):
        import asyncio
        import threading

        from aiohttp import web

        from simulation.gateway.__main__ import build_parser, execution_settings, make_clock
        from simulation.gateway.api import BinanceSpotAPI
        from simulation.gateway.server import create_app
        from simulation.marketdata import CandleStore, open_source
        from simulation.marketdata.path import PathModel
        from simulation.synthetic import SyntheticConfig

        a = build_parser().parse_args(self.args)
        synth = SyntheticConfig(seed=a.seed, days=a.days, start=a.start, timeframe=a.timeframe)
        store = CandleStore(open_source(synthetic=synth, pairs=a.pairs), PathModel(a.path_model, a.path_seed))
        params, faults, _ = execution_settings(a)
        app = create_app(
            BinanceSpotAPI(store, make_clock(a, store), params.book),
            latency=self.latency or params.latency,
            faults=faults,
            answer_ahead=self.answer_ahead,
        )
        self.loop = asyncio.new_event_loop()
        self.runner = web.AppRunner(app, access_log=None)
        self.loop.run_until_complete(self.runner.setup())
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        self.loop.run_until_complete(site.start())
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        import asyncio

        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
