"""Operator controls in a real dry-run bot: the API password guard, and the emergency stop (file
trigger -> every position exited, entries blocked) reported through freqtrade's webhook RPC."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import sqlite3
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from bot_helpers import FORCE_ORDERS, PrometheusServer, RunningBot, api_env, api_section, start_bot, wait_for
from telegram import Bot, Update
from telegram.request import BaseRequest

from cryptobot_ops.companion.bot import Companion, build_application
from simulation.freqtrade_runner import REPO_ROOT, run_freqtrade
from simulation.gateway import GatewayProcess, write_overlay
from simulation.gateway.process import free_port

pytestmark = pytest.mark.slow


class Receiver:
    """A local webhook endpoint collecting what freqtrade posts."""

    def __init__(self) -> None:
        self.messages: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.messages.append(json.loads(body or b"{}"))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def replay(tmp_path):
    run_freqtrade(["create-userdir", "--userdir", str(tmp_path / "ud")], tmp_path / "ud.log")
    # RiskReference's 1h regime needs ~75 days of 1h candles at startup
    with GatewayProcess(
        ["--synthetic", "--seed", "3", "--days", "100", "--replay", "--replay-start", "2024-03-25"],
        log_path=tmp_path / "gw.log",
    ) as gw:
        (tmp_path / "gateway_url").write_text(gw.url)
        yield tmp_path, write_overlay(tmp_path / "exchange.json", gw.url, ["BTC/USDT", "ETH/USDT"])


CONFIGS = ["config/simulation.json"]


def test_bot_refuses_default_api_password(replay):
    tmp, overlay = replay
    proc, log = start_bot(
        tmp, [*CONFIGS, str(overlay)], api_section(free_port()), api_env("freqtrader"), "RiskReference"
    )
    try:
        rc = proc.wait(timeout=180)
    finally:
        proc.kill()
    assert rc != 0
    assert "refusing to start: api_server.password" in log.read_text()


ALWAYS_EXIT = """
import sys
sys.path.insert(0, {strategies!r})  # test-only: a variant of the repo's strategy from a temp folder
from RiskReference import RiskReference


class AlwaysExitRisk(RiskReference):
    def populate_exit_trend(self, dataframe, metadata):
        dataframe["exit_long"] = 1
        return dataframe
"""


def test_emergency_exit_is_honoured_whatever_the_exit_settings(replay):
    """Without the REST shortcut, the emergency exit still happens in the bot loop when freqtrade never
    asks custom_exit: exit signals off, and exit_profit_only with an exit signal on a losing trade."""
    tmp, overlay = replay
    strats = tmp / "strats"
    strats.mkdir()
    (strats / "AlwaysExitRisk.py").write_text(ALWAYS_EXIT.format(strategies=str(REPO_ROOT / "strategies")))
    common = {
        **FORCE_ORDERS,
        "max_open_trades": 2,
        "minimal_roi": {"0": 100},
        "risk": {"emergency_rest_exit": False, "ledger": "", "correlation_limit": 1.0},
    }
    bots = [
        RunningBot(
            tmp, [*CONFIGS, str(overlay)], {**common, "use_exit_signal": False}, "RiskReference", name="no-signal"
        ),
        RunningBot(
            tmp,
            [*CONFIGS, str(overlay)],
            {**common, "exit_profit_only": True, "exit_profit_offset": 0.5, "strategy_path": str(strats)},
            "AlwaysExitRisk",
            name="profit-only",
        ),
    ]
    try:
        for bot in bots:
            bot.wait_running()
            bot.client.forceenter("BTC/USDT", "long")
        for bot in bots:
            wait_for(lambda b=bot: len(b.client.status()) == 1, 60, f"{bot.log.name}: an open trade")
        for bot in bots:
            bot.wait_loops(2)  # two bot loops: the trades stay open on their own (no signal exit, no profit)
        assert all(len(bot.client.status()) == 1 for bot in bots)
        (tmp / "ud" / "EMERGENCY_STOP").write_text("operator test")
        for bot in bots:
            wait_for(lambda b=bot: not b.client.status(), 60, f"{bot.log.name}: the emergency exit")
            text = bot.log.read_text()
            assert re.search(r"emergency exit BTC/USDT .* ms after the operator's action \(roi\)", text), text[-2000:]
            assert "via the REST API" not in text
    finally:
        for bot in bots:
            bot.stop()


def test_bot_refuses_settings_that_block_the_emergency_exit(replay):
    tmp, overlay = replay
    bot = RunningBot(tmp, [*CONFIGS, str(overlay)], {"ignore_roi_if_entry_signal": True}, "RiskReference")
    try:
        rc = bot.proc.wait(timeout=180)
    finally:
        bot.stop()
    assert rc != 0
    assert "ignore_roi_if_entry_signal would let an entry signal block the emergency exit" in bot.log.read_text()


def test_emergency_stop_exits_all_blocks_entries_and_alerts(replay):
    """...and is seen by a real Prometheus scraping the bot's exporter and the gateway, whose alert
    rules fire EmergencyStopActive; warnings reach people through freqtrade's webhook."""
    tmp, overlay = replay
    hook = Receiver()
    metrics_port = free_port()
    # stale after 0.001 candles: the data-freshness warning fires on the first loop (plumbing, not threshold)
    extra = {
        **FORCE_ORDERS,
        "max_open_trades": 3,
        "minimal_roi": {"0": 100},
        "monitoring": {"metrics_port": metrics_port, "stale_candles": 0.001},
        "webhook": {
            "enabled": True,
            "url": hook.url,
            "format": "json",
            "retries": 1,
            "allow_custom_messages": True,
            "strategy_msg": {"type": "{type}", "msg": "{msg}"},
        },
    }
    bot = RunningBot(tmp, [*CONFIGS, str(overlay)], extra, "RiskReference")
    client, log = bot.client, bot.log
    gateway = (tmp / "gateway_url").read_text().removeprefix("http://")
    prom = PrometheusServer(tmp, {"gateway": [gateway], "bots": [f"127.0.0.1:{metrics_port}"]})
    try:
        bot.wait_running()
        wait_for(
            lambda: {r["metric"]["job"]: r["value"][1] for r in prom.query("up")} == {"gateway": "1", "bots": "1"},
            60,
            f"both targets up in Prometheus ({prom.query('up')})",
        )
        wait_for(lambda: prom.query("cryptobot_equity > 0"), 60, "the bot's equity scraped (NaN until its first loop)")
        # no trade yet: the equity the risk controls mark to market is freqtrade's own starting capital
        assert float(prom.query("cryptobot_equity")[0]["value"][1]) == pytest.approx(
            client.balance()["starting_capital"]
        )
        wait_for(lambda: len(prom.query("cryptobot_regime == 1")) == 2, 60, "a regime per pair")
        assert prom.query("sum(sim_requests_total) > 0"), "the gateway's request counter"
        ages = {r["metric"]["pair"]: float(r["value"][1]) for r in prom.query("cryptobot_candle_age_candles")}
        assert set(ages) == {"BTC/USDT", "ETH/USDT"} and all(0 <= a < 2 for a in ages.values()), ages
        assert not [
            a for a in prom.alerts() if a["labels"]["alertname"] == "DataStale"
        ]  # fresh by the rules' 2 candles
        wait_for(
            lambda: any(str(m.get("msg", "")).startswith("[WARNING] data stale") for m in hook.messages),
            60,
            f"the bot's warning through freqtrade's webhook (got {hook.messages})",
        )
        for pair in ("BTC/USDT", "ETH/USDT"):
            client.forceenter(pair, "long")
        wait_for(lambda: len([t for t in client.status() if t.get("is_open")]) == 2, 60, "two open trades")
        # The replay's current candle may carry the strategy's exit signal for a pair (it depends on the
        # wall clock): freqtrade then closes that trade on its own within a loop, and never asks
        # custom_exit while the signal is set. Let that happen first; the emergency must close the rest.
        bot.wait_loops(1)
        at_risk = {t["pair"] for t in client.status() if t.get("is_open")}
        assert at_risk, "both forced trades closed by exit signals before the test could trigger"
        flag = tmp / "ud" / "EMERGENCY_STOP"
        flag.write_text("operator test")
        wait_for(lambda: not client.status(), 60, "all trades exited")
        text = log.read_text()
        # The watcher sees the file within ~50 ms and exits everything through the bot's REST API; the
        # latency from the operator's action is measured and logged; the shortcut's point: every exit is
        # placed sooner than the bot's next loop would have (throttle 5 s) could.
        rest = re.findall(r"emergency exits via the REST API ([0-9.]+) ms after the operator's action", text)
        assert rest and float(rest[0]) < 5_000, text[-3000:]
        detected = re.search(r"emergency detected ([0-9.]+) ms after the operator's action", text)
        assert detected and float(detected.group(1)) <= float(rest[0])
        trades = client.trades()["trades"]
        assert {t["exit_reason"] for t in trades if t["pair"] in at_risk} <= {"force_exit", "emergency_stop", "roi"}
        wait_for(
            lambda: any("[CRITICAL] emergency stop" in str(m.get("msg", "")) for m in hook.messages),
            30,
            f"webhook alert (got {hook.messages})",
        )
        client.forceenter("BTC/USDT", "long")  # blocked now
        wait_for(lambda: "rejected (emergency_stop)" in log.read_text(), 30, "the entry refused")
        assert not client.status()

        def firing(name):
            return [a for a in prom.alerts() if a["labels"]["alertname"] == name and a["state"] == "firing"]

        wait_for(lambda: firing("EmergencyStopActive"), 30, f"EmergencyStopActive firing ({prom.alerts()})")
        assert firing("EmergencyStopActive")[0]["labels"]["severity"] == "critical"
        wait_for(
            lambda: prom.query('cryptobot_risk_rejections_total{reason="emergency_stop"} >= 1'),
            30,
            "the rejection counted",
        )
        bot.stop()
        wait_for(
            lambda: [a for a in prom.alerts() if a["labels"]["alertname"] == "BotExporterDown"],
            30,
            "BotExporterDown pending once the bot is gone",
        )
    finally:
        bot.stop()
        hook.close()
        prom.stop()


class RecordingRequest(BaseRequest):
    """Stands in for Telegram's servers (out of reach): answers getMe, records what the bot sends."""

    def __init__(self) -> None:
        self.sent: list[dict] = []

    @property
    def read_timeout(self) -> float | None:
        return 5.0

    async def initialize(self) -> None:
        pass

    async def shutdown(self) -> None:
        pass

    async def do_request(self, url, method, request_data=None, **kwargs):
        endpoint = url.rsplit("/", 1)[-1]
        params = request_data.parameters if request_data else {}
        if endpoint == "getMe":
            result = {"id": 42, "is_bot": True, "first_name": "companion", "username": "companion_bot"}
        elif endpoint == "sendMessage":
            self.sent.append(params)
            result = {
                "message_id": len(self.sent) + 100,
                "date": 0,
                "chat": {"id": params["chat_id"], "type": "private"},
                "text": params["text"],
            }
        else:
            result = True
        return 200, json.dumps({"ok": True, "result": result}).encode()


def _command(text: str, chat_id: int, update_id: int) -> dict:
    return {
        "update_id": update_id,
        "message": {
            "message_id": update_id,
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": "private"},
            "from": {"id": chat_id, "is_bot": False, "first_name": "op"},
            "text": text,
            "entities": [{"type": "bot_command", "offset": 0, "length": len(text)}],
        },
    }


def test_companion_bot_commands_against_a_real_bot(replay):
    tmp, overlay = replay
    # no exit by signal: the replay's candle (it follows the wall clock) must not close a trade the emergency is for
    bot = RunningBot(tmp, [*CONFIGS, str(overlay)], {**FORCE_ORDERS, "use_exit_signal": False}, "RiskReference")
    client = bot.client
    try:
        bot.wait_running()
        client.forceenter("ETH/USDT", "long")
        wait_for(lambda: len(client.status()) == 1, 60, "an open trade")
        eth = client.status()[0]["trade_id"]
        client.forceexit(eth)  # freqtrade's own /forceexit
        wait_for(lambda: not client.status(), 60, "the forced exit")
        assert client.trade(eth)["exit_reason"] == "force_exit"
        assert client.profit()["closed_trade_count"] == 1
        client.forceenter("BTC/USDT", "long")
        wait_for(lambda: len(client.status()) == 1, 60, "an open trade")
        wait_for(lambda: (tmp / "ud" / "risk_state.json").exists(), 60, "risk state")
        comp = Companion(client, tmp / "ud", frozenset({777}))
        wait_for(
            lambda: "no analyzed candles" not in comp.regime_text(), 120, f"analyzed candles ({comp.regime_text()})"
        )
        request = RecordingRequest()
        tg_bot = Bot("123456:TEST", request=request, get_updates_request=RecordingRequest())
        app = build_application(Companion(client, tmp / "ud", frozenset({777})), bot=tg_bot)

        async def run(texts, chat):
            await app.initialize()
            for i, text in enumerate(texts):
                await app.process_update(Update.de_json(_command(text, chat, i + 1), tg_bot))
            await app.shutdown()

        asyncio.run(run(["/regime"], 999))  # a stranger gets nothing
        assert request.sent == []
        asyncio.run(run(["/regime", "/risk", "/models"], 777))
        regime, risk, models = (m["text"] for m in request.sent)
        assert "BTC/USDT:" in regime and "ETH/USDT:" in regime and "trending_bull" in regime, regime
        assert re.search(r"BTC/USDT: (trending_bull|trending_bear|sideways|high_volatility) \(", regime), regime
        # the same detector updated every 5m candle (regime.intrahour), beside the hourly label
        assert re.search(
            r"; now (trending_bull|trending_bear|sideways|high_volatility) \(\d+%, updated every candle\)", regime
        ), regime
        assert "drawdown" in risk and "portfolio heat" in risk and "emergency stop: off" in risk, risk
        assert "no FreqAI model" in models
        asyncio.run(run(["/emergency"], 777))
        assert "EMERGENCY STOP requested" in request.sent[-1]["text"]
        wait_for(lambda: not client.status(), 60, "the emergency exit")
        first, second = [t["exit_reason"] for t in client.trades()["trades"]]
        assert first == "force_exit" and second in {"force_exit", "emergency_stop"}  # the watcher exits via the API
        wait_for(lambda: "ACTIVE" in Companion(client, tmp / "ud", frozenset()).risk_text(), 30, "risk state shows it")
    finally:
        bot.stop()


def test_two_bots_share_the_limits_and_the_emergency_through_the_ledger(replay):
    """Two dry-run bots in different user_data folders, one risk ledger: the second's entry is refused
    because of the first's open position, and the emergency raised by the first closes both."""
    tmp, overlay = replay
    ledger = tmp / "portfolio-ledger.sqlite"
    risk = {"portfolio_heat": 0.01, "correlation_limit": 1.0, "ledger": str(ledger)}
    common = {
        **FORCE_ORDERS,
        "max_open_trades": 3,
        "minimal_roi": {"0": 100},
        "dry_run_wallet": 10_000,
        "use_exit_signal": False,
        "risk": risk,
    }
    bots = {}
    for name in ("a", "b"):
        (tmp / name).mkdir()
        run_freqtrade(["create-userdir", "--userdir", str(tmp / name / "ud")], tmp / name / "ud.log")
        bots[name] = RunningBot(tmp / name, [*CONFIGS, str(overlay)], common, "RiskReference", name=name)
    a, b = bots["a"], bots["b"]
    try:
        for bot in (a, b):
            bot.wait_running()

        def published() -> int:
            if not ledger.exists():
                return 0
            try:
                with contextlib.closing(sqlite3.connect(ledger)) as db:
                    return db.execute("SELECT count(DISTINCT bot_id) FROM bots").fetchone()[0]
            except sqlite3.Error:
                return 0

        wait_for(lambda: published() == 2, 60, "both bots' equity in the ledger")
        a.client.forceenter("BTC/USDT", "long", stake_amount=4000)  # 4,000 x 4% stop = 0.8% of 20,000
        wait_for(lambda: len(a.client.status()) == 1, 60, "a's trade")
        b.client.forceenter("ETH/USDT", "long", stake_amount=2000)  # +0.4%: 1.2% > 1%, alone it would be 0.8%
        wait_for(lambda: "rejected (portfolio_heat)" in b.log.read_text(), 30, "b's entry refused for heat")
        assert not b.client.status()
        b.client.forceenter("ETH/USDT", "long", stake_amount=500)  # +0.1%: 0.9% fits
        wait_for(lambda: len(b.client.status()) == 1, 60, "b's small trade")
        (tmp / "a" / "ud" / "EMERGENCY_STOP").write_text("operator")
        wait_for(lambda: not a.client.status() and not b.client.status(), 60, "both bots exited")
        assert "portfolio emergency from" in b.log.read_text()
    finally:
        for bot in (a, b):
            bot.stop()
