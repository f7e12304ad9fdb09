"""The risk mixin's state and failure paths with freqtrade's real persistence and DataProvider:
mark-to-market equity, fail-closed decisions, triggers before bookkeeping, the shared ledger."""

from __future__ import annotations

import itertools
import json
import sqlite3
import threading
import time
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from freqtrade.data.dataprovider import DataProvider
from freqtrade.enums import CandleType, RunMode
from freqtrade.persistence import Trade, init_db
from freqtrade.strategy import IStrategy

from cryptobot_ops.ledger import RiskLedger
from cryptobot_ops.risk import RiskControlled

NOW = datetime(2024, 4, 10, 12, 0, tzinfo=UTC)


class Harness(RiskControlled, IStrategy):
    INTERFACE_VERSION = 3
    timeframe = "5m"
    stoploss = -0.05
    minimal_roi = {"0": 10}
    emergency_watcher = False  # these tests drive bot_loop_start themselves; one test runs the watcher

    def populate_indicators(self, dataframe, metadata):
        return dataframe

    def populate_entry_trend(self, dataframe, metadata):
        return dataframe

    def populate_exit_trend(self, dataframe, metadata):
        return dataframe


def make_strategy(tmp_path, risk: dict | None = None, runmode: RunMode = RunMode.DRY_RUN, name: str = "a") -> Harness:
    config = {
        "runmode": runmode,
        "dry_run": True,
        "dry_run_wallet": 10_000,
        "stake_currency": "USDT",
        "user_data_dir": tmp_path,
        "bot_name": name,
        "db_url": f"sqlite:///{name}.sqlite",
        "candle_type_def": CandleType.SPOT,
        "risk": risk or {},
    }
    s = Harness(config)
    s.dp = DataProvider(config, None)
    s.wallets = None
    return s


def set_price(s: Harness, pair: str, close: float) -> None:
    dates = pd.date_range(NOW - timedelta(minutes=5 * 299), NOW, freq="5min")
    rng = np.random.default_rng(len(pair))  # a random walk that ends at `close`
    closes = close * np.exp(rng.normal(0, 1e-3, 300).cumsum()[::-1] - 0)
    closes[-1] = close
    df = pd.DataFrame({"date": dates, "open": closes, "high": closes, "low": closes, "close": closes, "volume": 1.0})
    s.dp._set_cached_df(pair, s.timeframe, df, CandleType.SPOT)


def open_trade(pair: str, stake: float, rate: float, stop: float) -> Trade:
    t = Trade(
        pair=pair,
        stake_amount=stake,
        amount=stake / rate,
        open_rate=rate,
        fee_open=0.0,
        fee_close=0.0,
        is_open=True,
        exchange="binance",
        open_date=NOW - timedelta(hours=1),
        stop_loss=stop,
        initial_stop_loss=stop,
        leverage=1.0,
        trading_mode="spot",
    )
    Trade.session.add(t)
    Trade.commit()
    return t


@pytest.fixture
def db():
    init_db("sqlite://")
    yield
    Trade.session.remove()


def test_open_losses_count_in_drawdown(db, tmp_path):
    """A position 30% under water is a 15% drawdown of a 10,000 account that put 5,000 in it:
    beyond the 10% limit (entries refused) and the 15% emergency (triggered). Realized equity alone said 0%."""
    s = make_strategy(tmp_path, {"ledger": ""})
    open_trade("BTC/USDT", 5_000, 100.0, 95.0)
    set_price(s, "BTC/USDT", 70.0)
    set_price(s, "ETH/USDT", 10.0)
    s.bot_start()
    state = s._equity_state(NOW)
    assert state.equity == pytest.approx(10_000 - 1_500)
    assert state.peak == pytest.approx(10_000)
    assert not s.confirm_trade_entry("ETH/USDT", "market", 1.0, 10.0, "GTC", NOW, None, "long")
    assert s.risk_rejections["max_drawdown"] == 1
    s.bot_loop_start(current_time=NOW)
    assert s.emergency_active and "drawdown 15.00%" in s.emergency_trigger["reason"]


def test_the_realized_curve_is_cached_until_a_trade_closes(db, tmp_path):
    """Issue 32 §2: the closed trades are loaded once and again only when they change (an aggregate query
    per loop); a trade that closes, or a closed trade whose profit is corrected, shows at the next look."""
    s = make_strategy(tmp_path, {"ledger": ""})
    set_price(s, "BTC/USDT", 100.0)
    s.bot_start()
    assert s._equity_state(NOW).equity == pytest.approx(10_000)
    t = open_trade("BTC/USDT", 1_000, 100.0, 95.0)
    first = s._realized_cache
    assert s._equity_state(NOW).equity == pytest.approx(10_000) and s._realized_cache is first, "nothing closed"
    t.is_open, t.close_date, t.close_profit_abs, t.close_rate = False, NOW, 50.0, 105.0
    Trade.commit()
    assert s._equity_state(NOW).equity == pytest.approx(10_050)
    t.close_profit_abs = -20.0
    Trade.commit()
    assert s._equity_state(NOW).equity == pytest.approx(9_980)


def test_the_starting_balance_is_read_once(db, tmp_path):
    """freqtrade's starting balance comes from the free balance, which lags a fill until the wallets
    sync: read each loop it dipped by a trade's stake and raised a false drawdown emergency."""
    s = make_strategy(tmp_path, {"ledger": ""})
    readings = itertools.chain([10_000.0, 6_700.0], itertools.repeat(10_000.0))  # 6,700: a stake not yet back in `free`
    s.wallets = SimpleNamespace(get_starting_balance=lambda: next(readings))
    set_price(s, "ETH/USDT", 10.0)
    s.bot_start()
    assert s._equity_state(NOW).equity == pytest.approx(10_000)
    s.bot_loop_start(current_time=NOW)
    assert s._equity_state(NOW).equity == pytest.approx(10_000) and not s.emergency_active


def test_an_error_in_the_decision_rejects_the_entry(db, tmp_path):
    """No price for an open trade: the decision cannot be made, so the entry is refused (freqtrade
    itself would let it through when confirm_trade_entry raises)."""
    s = make_strategy(tmp_path, {"ledger": ""})
    open_trade("BTC/USDT", 1_000, 100.0, 95.0)  # no analyzed frame for BTC: cannot be marked
    set_price(s, "ETH/USDT", 10.0)
    s.bot_start()
    assert not s.confirm_trade_entry("ETH/USDT", "market", 1.0, 10.0, "GTC", NOW, None, "long")
    assert s.risk_rejections["risk_error"] == 1


def test_the_emergency_drawdown_is_checked_when_the_full_state_fails(db, tmp_path):
    """Issue 34 §2: with no price for an open trade (or an unwritable ledger) the emergency check was
    skipped. Now the bot's own state marks such a trade at its stop: 5,000 staked with a stop 35% below
    is a 17.5% drawdown, beyond the 15% emergency."""
    s = make_strategy(tmp_path, {"ledger": ""})
    set_price(s, "ETH/USDT", 10.0)
    s.bot_start()
    s.bot_loop_start(current_time=NOW)  # the peak: 10,000
    open_trade("BTC/USDT", 5_000, 100.0, 65.0)  # no frame for BTC: no price
    s.bot_loop_start(current_time=NOW)
    assert s.emergency_active and "open trades without a price at their stop" in s.emergency_trigger["reason"]
    assert not s.confirm_trade_entry("ETH/USDT", "market", 1.0, 10.0, "GTC", NOW, None, "long")


def test_an_unwritable_ledger_still_checks_the_emergency_drawdown(db, tmp_path):
    s = make_strategy(tmp_path, {"ledger": "ledger.sqlite"})
    set_price(s, "ETH/USDT", 10.0)
    set_price(s, "BTC/USDT", 100.0)
    s.bot_start()
    s.bot_loop_start(current_time=NOW)
    open_trade("BTC/USDT", 5_000, 100.0, 95.0)
    set_price(s, "BTC/USDT", 60.0)  # 20% drawdown
    s._ledger.publish = lambda *a, **k: (_ for _ in ()).throw(sqlite3.OperationalError("disk I/O error"))
    s.bot_loop_start(current_time=NOW)
    assert s.emergency_active and "drawdown 20.00%" in s.emergency_trigger["reason"]


def test_bookkeeping_that_fails_after_a_rejection_still_rejects(db, tmp_path):
    """freqtrade lets an entry through when confirm_trade_entry raises: a failure in the bookkeeping of
    a rejection (here the monitor) must not turn it into an entry."""
    s = make_strategy(tmp_path, {"ledger": ""})
    open_trade("BTC/USDT", 5_000, 100.0, 95.0)
    set_price(s, "BTC/USDT", 75.0)  # 12.5% drawdown: max_drawdown rejects
    set_price(s, "ETH/USDT", 10.0)
    s.bot_start()
    s._monitor = SimpleNamespace(on_rejection=lambda reason: 1 / 0)
    assert s.confirm_trade_entry("ETH/USDT", "market", 1.0, 10.0, "GTC", NOW, None, "long") is False


def test_correlation_with_another_bots_pair_is_checked_or_the_entry_refused(db, tmp_path, caplog):
    """Issue 34 §2: the correlation limit was skipped for pairs without an analysed frame here, i.e.
    always for another bot's pairs. Now freqtrade is asked for their candles (informative_pairs) and,
    until they are there, the entry is refused as risk_error."""
    risk = {"correlation_limit": 0.7, "ledger": str(tmp_path / "ledger.sqlite")}
    for name in "ab":
        (tmp_path / name).mkdir()
    a = make_strategy(tmp_path / "a", risk, name="a")
    b = make_strategy(tmp_path / "b", risk, name="b")
    set_price(a, "LINK/USDT", 20.0)
    set_price(b, "ETH/USDT", 10.0)
    for s in (a, b):
        s.bot_start()
    open_trade("LINK/USDT", 1_000, 20.0, 19.0)
    a.bot_loop_start(current_time=NOW)
    b._open_positions = list  # b's own database has no trades
    b.bot_loop_start(current_time=NOW)
    assert ("LINK/USDT", "5m") in b.informative_pairs()
    assert not b.confirm_trade_entry("ETH/USDT", "market", 1.0, 10.0, "GTC", NOW, None, "long")
    assert b.risk_rejections["risk_error"] == 1 and "no candles for LINK/USDT" in caplog.text
    # with its candles (as freqtrade caches them for an informative pair), the limit is computed
    b.dp._set_cached_df("LINK/USDT", "5m", a.dp.get_analyzed_dataframe("LINK/USDT", "5m")[0], CandleType.SPOT)
    assert b.confirm_trade_entry("ETH/USDT", "market", 1.0, 10.0, "GTC", NOW, None, "long")
    b.dp._set_cached_df("ETH/USDT", "5m", a.dp.get_analyzed_dataframe("LINK/USDT", "5m")[0], CandleType.SPOT)
    assert not b.confirm_trade_entry("ETH/USDT", "market", 1.0, 10.0, "GTC", NOW, None, "long")  # moves like LINK
    assert b.risk_rejections["correlation"] == 1


def test_triggers_fire_even_when_the_state_cannot_be_written(db, tmp_path):
    (tmp_path / "risk_state.json").mkdir()  # the atomic replace onto it fails
    s = make_strategy(tmp_path, {"ledger": ""})
    set_price(s, "ETH/USDT", 10.0)
    s.bot_start()
    (tmp_path / "EMERGENCY_STOP").write_text("now")
    s.bot_loop_start(current_time=NOW)
    assert s.emergency_active


def test_two_bots_share_heat_drawdown_and_the_emergency(db, tmp_path):
    """Bot b's entry is refused because of bot a's open position; a's emergency reaches b."""
    risk = {"portfolio_heat": 0.05, "correlation_limit": 1.0, "ledger": str(tmp_path / "ledger.sqlite")}
    for name in "ab":
        (tmp_path / name).mkdir()
    a = make_strategy(tmp_path / "a", risk, name="a")
    b = make_strategy(tmp_path / "b", risk, name="b")
    for s in (a, b):
        set_price(s, "BTC/USDT", 100.0)
        set_price(s, "ETH/USDT", 10.0)
        s.bot_start()
    # a holds BTC (in a's database): 8,000 x 5% stop = 400 of 20,000 portfolio equity = 2% heat
    open_trade("BTC/USDT", 8_000, 100.0, 95.0)
    a.bot_loop_start(current_time=NOW)
    b._open_positions = list  # b's own database has no trades
    # b: 13,000 stake x 5% = 650 more: 1,050 / 20,000 = 5.25% > 5%
    assert not b.confirm_trade_entry("ETH/USDT", "market", 1_300.0, 10.0, "GTC", NOW, None, "long")
    assert b.risk_rejections["portfolio_heat"] == 1
    assert b.confirm_trade_entry("ETH/USDT", "market", 1_000.0, 10.0, "GTC", NOW, None, "long")  # 4.5%: fits
    (tmp_path / "a" / "EMERGENCY_STOP").write_text("operator")
    a.bot_loop_start(current_time=NOW)
    b.bot_loop_start(current_time=NOW)
    assert a.emergency_active and b.emergency_active
    assert "portfolio emergency from a@" in b.emergency_trigger["reason"]


def test_an_emergency_is_latched_in_insertion_order_until_the_operator_clears_it(db, tmp_path):
    """Issue 33 item 4: an emergency raised by a bot whose clock lags (stamped an hour back), or before
    this bot (re)started, is seen; it stays until the operator clears it with the ledger's CLI."""
    from cryptobot_ops.ledger import main as ledger_cli

    path = tmp_path / "ledger.sqlite"
    RiskLedger(path, "laggard").raise_emergency("stamped in the past")
    with sqlite3.connect(path) as con:
        con.execute("UPDATE emergencies SET time = time - 3600")
    s = make_strategy(tmp_path, {"ledger": "ledger.sqlite"})
    set_price(s, "ETH/USDT", 10.0)
    s.bot_start()
    s.bot_loop_start(current_time=NOW)
    assert (
        s.emergency_active and "portfolio emergency from laggard: stamped in the past" in s.emergency_trigger["reason"]
    )
    assert ledger_cli(["status", str(path)]) == 1
    # a restart does not release it
    restarted = make_strategy(tmp_path, {"ledger": "ledger.sqlite"}, name="a")
    set_price(restarted, "ETH/USDT", 10.0)
    restarted.bot_start()
    restarted.bot_loop_start(current_time=NOW)
    assert restarted.emergency_active
    assert not restarted.confirm_trade_entry("ETH/USDT", "market", 1.0, 10.0, "GTC", NOW, None, "long")
    # the operator clears it (and says who): the next start trades
    assert ledger_cli(["clear", str(path)]) == 2
    assert ledger_cli(["clear", str(path), "--by", "alice"]) == 0
    assert ledger_cli(["status", str(path)]) == 0
    with sqlite3.connect(path) as con:
        assert con.execute("SELECT cleared_by FROM emergencies").fetchall() == [("alice",)]
    fresh = make_strategy(tmp_path, {"ledger": "ledger.sqlite"}, name="c")
    set_price(fresh, "ETH/USDT", 10.0)
    fresh.bot_start()
    fresh.bot_loop_start(current_time=NOW)
    assert not fresh.emergency_active
    assert fresh.confirm_trade_entry("ETH/USDT", "market", 1.0, 10.0, "GTC", NOW, None, "long")


def test_a_ledger_written_before_the_latch_gains_its_columns(tmp_path):
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as con:
        con.execute(
            "CREATE TABLE emergencies (id INTEGER PRIMARY KEY AUTOINCREMENT, time REAL NOT NULL, "
            "bot_id TEXT NOT NULL, reason TEXT NOT NULL)"
        )
        con.execute("INSERT INTO emergencies (time, bot_id, reason) VALUES (1.0, 'old', 'before the upgrade')")
    ledger = RiskLedger(path, "new")
    assert ledger.active_emergency() == ("old", "before the upgrade", 1.0)
    assert ledger.clear_emergencies("ops") == 1 and ledger.active_emergency() is None


def test_an_unreadable_ledger_refuses_entries_and_liquidates_nothing(db, tmp_path):
    s = make_strategy(tmp_path, {"ledger": "ledger.sqlite"})
    set_price(s, "ETH/USDT", 10.0)
    s.bot_start()
    (tmp_path / "ledger.sqlite").write_bytes(b"not a database" * 100)
    for suffix in ("-wal", "-shm"):
        (tmp_path / f"ledger.sqlite{suffix}").unlink(missing_ok=True)
    assert not s.confirm_trade_entry("ETH/USDT", "market", 1.0, 10.0, "GTC", NOW, None, "long")
    assert s.risk_rejections["risk_error"] == 1
    s.bot_loop_start(current_time=NOW)
    # issue 33 item 3: a corrupt or locked file refuses entries and alerts; it liquidates nothing
    assert not s.emergency_active and "DatabaseError" in s.ledger_error
    assert not s.confirm_trade_entry("ETH/USDT", "market", 1.0, 10.0, "GTC", NOW, None, "long")
    assert s.risk_rejections["risk_error"] == 2
    # deleted: recreated with its tables, and trading resumes
    (tmp_path / "ledger.sqlite").unlink()
    s.bot_loop_start(current_time=NOW)
    assert s.ledger_error is None and not s.emergency_active
    assert s.confirm_trade_entry("ETH/USDT", "market", 1.0, 10.0, "GTC", NOW, None, "long")


def test_ledger_drops_silent_bots(tmp_path):
    a = RiskLedger(tmp_path / "l.sqlite", "a", ttl_s=60)
    b = RiskLedger(tmp_path / "l.sqlite", "b", ttl_s=60)
    a.publish(100.0, 110.0, 105.0, [("BTC/USDT", 10.0, 0.05)])
    book = b.publish(50.0, 50.0, 50.0, [])
    assert (book.equity, book.peak, book.day_start, book.bots) == (150.0, 160.0, 155.0, 2)
    with sqlite3.connect(tmp_path / "l.sqlite") as con:
        con.execute("UPDATE bots SET updated = updated - 120 WHERE bot_id = 'a'")
    book = b.publish(50.0, 50.0, 50.0, [])
    assert (book.equity, book.bots, book.positions) == (50.0, 1, [])


def test_the_watcher_acts_on_the_operator_file_without_a_bot_loop(db, tmp_path):
    s = make_strategy(tmp_path, {"ledger": ""})
    s.emergency_watcher = True
    s.bot_start()
    (tmp_path / "EMERGENCY_STOP").write_text("now")
    deadline = time.monotonic() + 10
    while not s.emergency_active and time.monotonic() < deadline:
        time.sleep(0.01)
    assert s.emergency_active, "no bot loop ran: only the watcher can have seen the file"
    assert s.emergency_trigger["action_time"] == pytest.approx((tmp_path / "EMERGENCY_STOP").stat().st_mtime)


def test_the_flag_watch_wakes_for_the_flag_only(tmp_path):
    """Waking on any write in user_data made the watcher query the ledger, which wrote user_data again:
    a loop that spun a core in a simulated session. Other files' writes must not wake it."""
    import threading

    from cryptobot_ops.flagwatch import FlagWatch

    watch = FlagWatch(tmp_path / "EMERGENCY_STOP")
    assert watch.fd is not None, "Linux: inotify"
    stop = threading.Event()

    def churn() -> None:  # what the ledger's WAL looks like to inotify
        while not stop.is_set():
            (tmp_path / "risk_ledger.sqlite-wal").write_bytes(b"x")
            time.sleep(0.001)

    t = threading.Thread(target=churn, daemon=True)
    t.start()
    try:
        t0, cpu0 = time.monotonic(), time.thread_time()
        assert watch.wait(0.5) is False
        assert time.monotonic() - t0 >= 0.5
        assert time.thread_time() - cpu0 < 0.25, "it woke for every write of another file"
        threading.Timer(0.1, lambda: (tmp_path / "EMERGENCY_STOP").write_text("now")).start()
        t0 = time.monotonic()
        assert watch.wait(5.0) is True and time.monotonic() - t0 < 1.0
    finally:
        stop.set()
        t.join()
        watch.close()


def test_the_bot_id_never_carries_the_database_password(db, tmp_path):
    """The ledger, its logs and every alert name a bot by `name@database`: the database URL without its
    password (issue 33 item 5)."""
    from cryptobot_ops.risk import database_label

    s = make_strategy(tmp_path, {"ledger": "ledger.sqlite"})
    s.config["db_url"] = "postgresql+psycopg://trader:s3cr%40t-pw@db.internal:5432/ft"
    s.bot_start()
    assert s._ledger.bot_id == "a@postgresql+psycopg://trader:***@db.internal:5432/ft"
    s.bot_loop_start(current_time=NOW)
    with sqlite3.connect(tmp_path / "ledger.sqlite") as con:
        stored = " ".join(str(v) for row in con.execute("SELECT * FROM bots") for v in row)
    assert "s3cr" not in stored and "trader:***@" in stored
    assert "s3cr" not in database_label("not a url :// s3cr3t")
    assert database_label("sqlite:///user_data/tradesv3.sqlite") == "sqlite:///user_data/tradesv3.sqlite"


def test_the_ledger_trusts_no_writer(tmp_path):
    """Issue 33 item 4 (rows): a row stamped years ahead (it would never expire and dilute drawdown), an
    infinite equity or a negative peak (they switch the limits off) and malformed positions are left out
    of the portfolio, with a warning; the honest bots' figures stand."""
    a = RiskLedger(tmp_path / "l.sqlite", "a", ttl_s=60)
    a.publish(100.0, 110.0, 105.0, [("BTC/USDT", 10.0, 0.05)])
    now = time.time()
    rogues = [
        ("future", now + 3 * 365 * 86_400, 1e6, 1e6, 1e6, "[]"),
        ("infinite", now, float("inf"), float("inf"), 100.0, "[]"),
        ("negative-peak", now, 100.0, -1.0, 100.0, "[]"),
        ("bad-positions", now, 100.0, 100.0, 100.0, '[["ETH/USDT", "lots", 0.1]]'),
        ("inf-stake", now, 100.0, 100.0, 100.0, '[["ETH/USDT", 1e999, 0.1]]'),
    ]
    with sqlite3.connect(tmp_path / "l.sqlite") as con:
        con.executemany("INSERT INTO bots VALUES (?, ?, ?, ?, ?, ?)", rogues)
    book = a.publish(100.0, 110.0, 105.0, [("BTC/USDT", 10.0, 0.05)])
    assert (book.equity, book.peak, book.day_start, book.bots) == (100.0, 110.0, 105.0, 1)
    assert book.positions == [("a", "BTC/USDT", 10.0, 0.05)]


def test_the_ledger_keeps_one_connection_per_thread_and_reopens_a_changed_file(tmp_path, caplog):
    """Issue 32 §2 (per-loop cost): a publish opened, checked and closed the file each time (2.3 ms, a
    checkpoint per close); now each thread keeps its connection while the file is the one it opened."""
    path = tmp_path / "l.sqlite"
    a = RiskLedger(path, "a", ttl_s=60)
    assert "missing" not in caplog.text  # a new ledger is created, not "recreated"
    a.publish(100.0, 100.0, 100.0, [])
    first = a._local.db
    a.publish(101.0, 101.0, 100.0, [])
    assert a._local.db is first
    seen = {}

    def other_thread():
        seen["book"] = a.publish(102.0, 102.0, 100.0, [])
        seen["db"] = a._local.db

    worker = threading.Thread(target=other_thread)
    worker.start()
    worker.join()
    assert seen["db"] is not first and seen["book"].equity == 102.0
    path.unlink()
    for suffix in ("-wal", "-shm"):
        (tmp_path / f"l.sqlite{suffix}").unlink(missing_ok=True)
    assert a.publish(103.0, 103.0, 100.0, []).equity == 103.0  # recreated, with a warning
    assert a._local.db is not first and "was missing: recreated" in caplog.text


def test_risk_state_is_rewritten_when_a_figure_changes_or_once_a_minute(db, tmp_path):
    s = make_strategy(tmp_path, {"ledger": ""})
    set_price(s, "ETH/USDT", 10.0)
    s.bot_start()
    path = tmp_path / "risk_state.json"
    s.bot_loop_start(current_time=NOW)
    assert json.loads(path.read_text())["time"] == NOW.isoformat()
    s.bot_loop_start(current_time=NOW + timedelta(seconds=5))  # nothing changed: not rewritten
    assert json.loads(path.read_text())["time"] == NOW.isoformat()
    s.bot_loop_start(current_time=NOW + timedelta(seconds=61))
    assert json.loads(path.read_text())["time"] == (NOW + timedelta(seconds=61)).isoformat()
    s.risk_rejections["max_drawdown"] += 1  # a figure changed: written at the next loop
    s.bot_loop_start(current_time=NOW + timedelta(seconds=66))
    doc = json.loads(path.read_text())
    assert doc["time"] == (NOW + timedelta(seconds=66)).isoformat() and doc["rejections"]["max_drawdown"] == 1
