"""A portfolio-wide risk ledger that several freqtrade bots share: one SQLite file in WAL mode.

Why: the spec's limits (drawdown, daily loss, heat, emergency stop) are about the whole account, but
each bot only sees its own database. Every bot publishes its mark-to-market state here on each loop
and reads everyone's back before deciding: portfolio equity, peak and the UTC day's starting value are
sums over the bots (the sum of peaks is at least the portfolio's peak, so the drawdown read here is
never smaller than the true one), heat counts every bot's open positions, and an emergency raised by
one bot (or by the operator through one) reaches all of them.

Guarantee boundary: a bot that has not published for `ttl_s` seconds (stopped, crashed) drops out
of the sums with a warning; its positions count again as soon as it runs.

Emergencies are latched: one raised by any bot, at any time (before a restart, by a bot whose clock
lags), stays active, in the ledger's own insertion order, until an operator clears it:
`python -m cryptobot_ops.ledger clear user_data/risk_ledger.sqlite --by NAME` (then restart the bots).
"""

from __future__ import annotations

import json
import logging
import math
import os
import sqlite3
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS bots (
    bot_id TEXT PRIMARY KEY, updated REAL NOT NULL, equity REAL NOT NULL, peak REAL NOT NULL,
    day_start REAL NOT NULL, positions TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS emergencies (
    id INTEGER PRIMARY KEY AUTOINCREMENT, time REAL NOT NULL, bot_id TEXT NOT NULL, reason TEXT NOT NULL,
    cleared REAL, cleared_by TEXT);
"""


def _create(db: sqlite3.Connection) -> None:
    """The tables, and the latch columns on a ledger written before they existed."""
    db.executescript(SCHEMA)
    columns = {row[1] for row in db.execute("PRAGMA table_info(emergencies)")}
    for column, kind in (("cleared", "REAL"), ("cleared_by", "TEXT")):
        if column not in columns:
            db.execute(f"ALTER TABLE emergencies ADD COLUMN {column} {kind}")


@dataclass(frozen=True)
class PortfolioState:
    equity: float
    peak: float
    day_start: float
    positions: list[tuple[str, str, float, float]]  # (bot_id, pair, stake, stop distance)
    bots: int


FUTURE_TOLERANCE_S = 60.0  # a row stamped further ahead than this never expires: refused


def row_problem(now: float, updated, equity, peak, day_start, positions) -> str | None:
    """Why a bot's row cannot be trusted (None: it can): every figure finite, equity and day start
    non-negative, the peak at least the equity, the time not ahead of ours, positions well formed."""
    try:
        values = [float(updated), float(equity), float(peak), float(day_start)]
    except (TypeError, ValueError):
        return "a figure is not a number"
    if not all(math.isfinite(v) for v in values):
        return "a figure is not finite"
    if values[1] < 0 or values[3] < 0 or values[2] < values[1]:
        return f"figures out of range (equity {values[1]:g}, peak {values[2]:g}, day start {values[3]:g})"
    if values[0] > now + FUTURE_TOLERANCE_S:
        return f"stamped {values[0] - now:.0f} s ahead of this clock"
    try:
        parsed = json.loads(positions)
        ok = isinstance(parsed, list) and all(
            isinstance(p, list)
            and len(p) == 3
            and isinstance(p[0], str)
            and all(isinstance(x, int | float) and math.isfinite(x) and x >= 0 for x in p[1:])
            for p in parsed
        )
    except (TypeError, ValueError):
        ok = False
    return None if ok else "positions are not [pair, stake, stop distance] lists"


class RiskLedger:
    def __init__(self, path: Path, bot_id: str, ttl_s: float = 900.0) -> None:
        self.path = Path(path)
        self.bot_id = bot_id
        self.ttl_s = ttl_s
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()  # sqlite3 connections belong to the thread that opened them
        self._warned: set = set()
        self._created = False
        with self._connect():
            pass

    def _file(self) -> tuple[int, int, int, int] | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size

    def _open(self) -> sqlite3.Connection:
        missing = not self.path.exists()
        if missing and self._created:
            logger.warning("risk ledger %s was missing: recreated", self.path)
        db = sqlite3.connect(self.path, timeout=10, isolation_level=None)
        try:
            # WAL with synchronous=NORMAL: never corrupt, no fsync per write (each loop writes a row; a
            # power cut may lose the last seconds of state, which every bot publishes again next loop)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            _create(db)
        except BaseException:
            db.close()
            raise
        self._created = True
        return db

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """This thread's connection, kept while the file is the one it opened: a loop's reads and writes
        cost no open, schema check and close (a publish cost 2.3 ms when every call opened its own). The
        main file's identity, size and mtime are compared at each use (WAL writes leave them alone until
        a checkpoint): a deleted file is recreated (its tables empty: every bot publishes again at its
        next loop), a replaced or rewritten one reopened. The new connection opens before the old one
        closes: on a file rewritten in place with garbage it fails and the old one stays open, unused
        (closing it would checkpoint its WAL over the garbage), so every use fails until an operator
        replaces or deletes the file."""
        local = self._local
        seen = self._file()
        db = getattr(local, "db", None)
        if db is None or seen is None or seen != local.file:
            fresh = self._open()
            local.db, local.file = fresh, self._file()
            if db is not None:
                db.close()  # a deleted file's connection writes nothing back (SQLite sees the unlink)
            db = fresh
        yield db

    def publish(
        self, equity: float, peak: float, day_start: float, positions: list[tuple[str, float, float]]
    ) -> PortfolioState:
        """Write this bot's state and return the portfolio's (the bots heard from within `ttl_s`)."""
        now = time.time()
        with self._connect() as db:
            db.execute(
                "INSERT OR REPLACE INTO bots VALUES (?, ?, ?, ?, ?, ?)",
                (self.bot_id, now, float(equity), float(peak), float(day_start), json.dumps(positions)),
            )
            rows = db.execute("SELECT bot_id, updated, equity, peak, day_start, positions FROM bots").fetchall()
        live = []
        for bot_id, updated, eq, pk, ds, pos in rows:
            problem = row_problem(now, updated, eq, pk, ds, pos)
            if problem is not None:  # a writer we cannot trust: never part of the limits
                if (bot_id, problem) not in self._warned:
                    self._warned.add((bot_id, problem))
                    logger.warning("risk ledger: bot %s left out of the portfolio: %s", bot_id, problem)
                continue
            if now - updated > self.ttl_s:
                if bot_id not in self._warned:
                    self._warned.add(bot_id)
                    logger.warning(
                        "risk ledger: bot %s silent for %.0f s, left out of the portfolio", bot_id, now - updated
                    )
                continue
            live.append((bot_id, eq, pk, ds, json.loads(pos)))
        return PortfolioState(
            equity=sum(r[1] for r in live),
            peak=sum(r[2] for r in live),
            day_start=sum(r[3] for r in live),
            positions=[(r[0], p, float(st), float(sd)) for r in live for p, st, sd in r[4]],
            bots=len(live),
        )

    def raise_emergency(self, reason: str) -> None:
        with self._connect() as db:
            db.execute(
                "INSERT INTO emergencies (time, bot_id, reason) VALUES (?, ?, ?)", (time.time(), self.bot_id, reason)
            )

    def active_emergency(self) -> tuple[str, str, float] | None:
        """(bot, reason, time) of the first emergency not cleared, in the ledger's insertion order: the
        writers' clocks decide nothing (a lagging bot's, or one raised before this bot started)."""
        with self._connect() as db:
            row = db.execute(
                "SELECT bot_id, reason, time FROM emergencies WHERE cleared IS NULL ORDER BY id LIMIT 1"
            ).fetchone()
        return (row[0], row[1], float(row[2])) if row else None

    def clear_emergencies(self, by: str) -> int:
        """The operator's release of the latch: every active emergency cleared, by whom recorded."""
        if not by.strip():
            raise ValueError("say who clears the emergency (--by)")
        with self._connect() as db:
            return db.execute(
                "UPDATE emergencies SET cleared = ?, cleared_by = ? WHERE cleared IS NULL", (time.time(), by.strip())
            ).rowcount


def main(argv: list[str] | None = None) -> int:
    """`python -m cryptobot_ops.ledger {status,clear} LEDGER [--by NAME]`: the operator's view of the
    shared ledger and the one way to release a latched emergency."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m cryptobot_ops.ledger", description=main.__doc__.split(":")[0])
    p.add_argument("action", choices=("status", "clear"))
    p.add_argument("ledger", type=Path)
    p.add_argument("--by", default="", help="who clears (recorded in the ledger); required for clear")
    a = p.parse_args(argv)
    if not a.ledger.is_file():
        print(f"error: no risk ledger at {a.ledger}", file=sys.stderr)
        return 2
    ledger = RiskLedger(a.ledger, bot_id="operator")
    try:
        if a.action == "clear":
            print(f"cleared {ledger.clear_emergencies(a.by)} emergencies; restart the bots to trade again")
            return 0
        active = ledger.active_emergency()
        print(
            "emergency: "
            + (
                f"ACTIVE since {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(active[2]))} UTC "
                f"from {active[0]}: {active[1]}"
                if active
                else "none active"
            )
        )
        return 1 if active else 0
    except (ValueError, sqlite3.Error) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
