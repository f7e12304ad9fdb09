"""FreqUI 3.1.1 and freqtrade's REST API against a real dry-run FreqAI bot (MeanReversionEnsemble on the
gateway's replayed synthetic market): log in, see the trade, load our plot_config and find the
prediction / confidence / regime series in the chart (headless Debian chromium via Playwright)."""

from __future__ import annotations

import json
import os
import shutil

import pytest
from bot_helpers import FORCE_ORDERS, RunningBot, candle_phase_env, wait_for
from playwright.sync_api import sync_playwright

from simulation.freqtrade_runner import run_freqtrade
from simulation.gateway import GatewayProcess, write_overlay

pytestmark = pytest.mark.slow


CONFIGS = ["config/mean-reversion.json"]
LIGHT = {  # LightGBM-only stacking so the bot trains in seconds on 2 cores
    "train_period_days": 10,
    "model_training_parameters": {"n_splits": 3, "models": ["lightgbm"], "lightgbm": {"n_estimators": 40}},
}
PAIR = "ADA/USDT"
SERIES = ["&-target", "&-confidence", "regime_p_trending_bull_1h", "regime_p_sideways_1h"]


@pytest.fixture(scope="module")
def bot(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("frequi")
    run_freqtrade(["create-userdir", "--userdir", str(tmp / "ud")], tmp / "ud.log")
    # FreqAI predicts from the first candle that closes after its first training (~30 s here): the shared
    # clock puts that close 60 s after the start instead of anywhere in the next 5 minutes
    clock = candle_phase_env(lead_s=60)
    with GatewayProcess(
        ["--synthetic", "--seed", "3", "--days", "100", "--replay", "--replay-start", "2024-03-25"],
        log_path=tmp / "gw.log",
        env={**os.environ, **clock},
    ) as gw:
        overlay = write_overlay(tmp / "exchange.json", gw.url)
        extra = {**FORCE_ORDERS, "use_exit_signal": False, "freqai": LIGHT}
        bot = RunningBot(tmp, [*CONFIGS, str(overlay)], extra, env=clock)
        try:
            bot.wait_running()
            yield tmp, bot
        finally:
            bot.stop()


def _candles_ready(client) -> bool:
    data = client.pair_candles(PAIR, "5m", limit=50)
    if not data or not data.get("data"):
        return False
    last = dict(zip(data["columns"], data["data"][-1], strict=True))
    # before the first model FreqAI fills 0 / null; afterwards every candle carries a prediction
    return all(last.get(c) is not None for c in SERIES) and last["&-target"] != 0 and last["&-confidence"] > 0


def test_rest_api_and_frequi(bot):
    tmp, b = bot
    client = b.client
    # FreqAI's first live prediction comes with the first new candle after training (<= 5 min)
    wait_for(lambda: _candles_ready(client), 420, f"FreqAI predictions and regimes in /pair_candles (log {b.log})")
    cols = client.pair_candles(PAIR, "5m", limit=5)["columns"]
    assert {"&-target", "&-confidence", "regime_1h", "regime_p_high_volatility_1h"} <= set(cols)
    plot = client.plot_config()
    assert set(plot["subplots"]) == {"prediction", "confidence", "regime"}

    trade = client.forceenter(PAIR, "long")
    wait_for(lambda: len(client.status()) == 1, 60, "the forced entry")
    assert client.status()[0]["pair"] == PAIR
    assert client.profit()["trade_count"] == 1

    _check_frequi(b, tmp, trade["trade_id"])

    assert "no more entries" in client.stopbuy()["status"]  # freqtrade-client's name for /stopentry
    client.forceexit(trade["trade_id"])
    wait_for(lambda: not client.status(), 60, "the forced exit")
    assert client.trade(trade["trade_id"])["exit_reason"] == "force_exit"
    assert [t["trade_id"] for t in client.trades()["trades"]] == [trade["trade_id"]]  # closed trades
    assert client.show_config()["state"] == "paused"  # signal entries off, open trades still managed


def _check_frequi(b: RunningBot, tmp, trade_id: int) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "Debian's chromium is installed by scripts/setup_system.sh"
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.set_default_timeout(90_000)  # a 2-core runner also trains FreqAI meanwhile: the first render can take long
        try:
            page.goto(f"{b.url}/login", wait_until="networkidle")
            page.get_by_label("Bot Name").fill("mean-reversion")
            page.get_by_label("Username").fill("op")
            page.get_by_label("Password").fill(b.password)
            page.get_by_role("button", name="Submit").click()
            page.wait_for_url(f"{b.url}/")

            page.goto(f"{b.url}/trade")
            page.get_by_text("Open Trades", exact=True).wait_for()
            row = page.locator("tr").filter(has_text=PAIR).first  # FreqUI's data rows carry no ARIA role
            row.wait_for(timeout=30_000)
            page.screenshot(path=str(tmp / "frequi-trade.png"))
            cells = [c.strip() for c in row.inner_text().split("\t")]
            assert cells[0] == str(trade_id) and cells[1] == PAIR, cells

            page.goto(f"{b.url}/graph")
            page.get_by_title("Plot configurator").click()
            with page.expect_response(lambda r: "/api/v1/plot_config" in r.url) as resp:
                page.get_by_role("button", name="From strategy").click()
            assert set(resp.value.json()["subplots"]) == {"prediction", "confidence", "regime"}
            for name in ("prediction", "confidence", "regime"):  # the configurator's "Target Plot" list
                assert page.get_by_text(name, exact=True).first.is_visible(), name
            page.get_by_role("button", name="Save").click()
            page.get_by_title("Plot configurator").click()
            page.get_by_text("Configure chart plot indicators").wait_for(state="hidden")

            # ECharts draws on a canvas; its axis tooltip is HTML and names every series at a candle
            box = page.locator("canvas").first.bounding_box()
            page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.3)
            page.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + box["height"] * 0.35, steps=10)
            tooltip = page.get_by_text("&-confidence", exact=True).first
            tooltip.wait_for(timeout=15_000)
            text = page.locator("body").inner_text()
            page.screenshot(path=str(tmp / "frequi-chart.png"))
            for series in SERIES:
                assert series in text, f"{series} not in the chart tooltip"
        except Exception:
            page.screenshot(path=str(tmp / "frequi-failure.png"))  # what the page showed when it failed
            raise
        finally:
            browser.close()
    (tmp / "frequi-errors.json").write_text(json.dumps(errors))
    # FreqUI itself throws this while the chart page mounts before a pair is chosen; anything else fails
    assert [e for e in errors if e != "pair or timeframe not specified"] == [], errors
