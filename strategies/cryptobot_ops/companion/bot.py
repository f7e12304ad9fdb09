"""Operator commands freqtrade's fixed Telegram command set lacks: /regime, /risk, /models, /emergency,
/comparison (the simulator's live comparison with the backtest, while a session runs).

It reads and acts only through freqtrade's REST API (freqtrade-client) and the files our strategies
write in user_data (risk_state.json, FreqAI model folders) — freqtrade itself is never patched.
/emergency creates user_data/EMERGENCY_STOP, which the strategies' risk controls see within ~50 ms
(exit everything through the bot's REST API, block entries), and also calls freqtrade's /stopentry.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from freqtrade_client import FtRestClient
from telegram import Update
from telegram.ext import Application, CommandHandler, ContextTypes

from cryptobot_ops.predictions import PredictionStore
from regime.detector import REGIMES


@dataclass
class Companion:
    client: FtRestClient
    user_data: Path
    allowed_chat_ids: frozenset[int]

    # -- the answers (plain text; testable without Telegram) -------------------------------
    def regime_text(self) -> str:
        cfg = self.client.show_config()
        lines = []
        for pair in self.client.whitelist().get("whitelist", []):
            res = self.client.pair_candles(pair, cfg["timeframe"], limit=1)
            cols, rows = res.get("columns", []), res.get("data", [])
            if not rows:
                lines.append(f"{pair}: no analyzed candles yet")
                continue
            if "regime_1h" not in cols:
                lines.append(f"{pair}: this strategy has no regime column")
                continue
            row = dict(zip(cols, rows[-1], strict=False))
            probs = ", ".join(f"{r} {row.get(f'regime_p_{r}_1h') or 0:.0%}" for r in REGIMES)
            line = f"{pair}: {row['regime_1h']} ({probs})"
            now = row.get("regime_now")
            if now:  # strategies with the every-candle update (regime.intrahour)
                line += f"; now {now} ({row.get(f'regime_now_p_{now}') or 0:.0%}, updated every candle)"
            lines.append(line)
        return "Regime (1h, causal filter)\n" + "\n".join(lines or ["no pairs"])

    def risk_text(self) -> str:
        path = self.user_data / "risk_state.json"
        if not path.exists():
            return "No risk state yet (user_data/risk_state.json is written by our strategies each loop)."
        s = json.loads(path.read_text())
        lim = s["limits"]
        lines = [
            f"Risk at {s['time']}",
            f"drawdown {s['drawdown']:.2%} / limit {lim['max_drawdown']:.0%}",
            f"daily loss {s['daily_loss']:.2%} / limit {lim['daily_loss']:.0%}",
            f"portfolio heat {s['portfolio_heat']:.2%} / limit {lim['portfolio_heat']:.0%}",
            f"rejections {s['rejections'] or 'none'}",
            f"emergency stop: {'ACTIVE (' + s['emergency']['reason'] + ')' if s.get('emergency') else 'off'}",
        ]
        return "\n".join(lines)

    def models_text(self) -> str:
        cfg = self.client.show_config()
        ident = (cfg.get("freqai") or {}).get("identifier")
        if not ident:
            return "This bot runs no FreqAI model."
        root = self.user_data / "models" / ident
        models = sorted(root.glob("sub-train-*/*_model*")) if root.exists() else []
        if not models:
            return f"No trained model yet in {root}."
        now = time.time()
        latest: dict[str, float] = {}
        for m in models:
            pair = m.parent.name.removeprefix("sub-train-")
            latest[pair] = max(latest.get(pair, 0.0), m.stat().st_mtime)
        return (
            "Models ("
            + ident
            + ")\n"
            + "\n".join(f"{pair}: trained {(now - t) / 3600:.1f} h ago" for pair, t in sorted(latest.items()))
            + "\n"
            + live_accuracy_text(self.user_data)
        )

    def emergency(self) -> str:
        flag = self.user_data / "EMERGENCY_STOP"
        flag.write_text(f"requested via Telegram at {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        reply = self.client.stopbuy()  # freqtrade-client name of /stopentry
        return (
            f"EMERGENCY STOP requested: {flag} written, /stopentry -> {reply}. Positions exit within a second "
            "(the strategy's watcher), at the latest on the bot's next loop."
        )

    # -- Telegram -------------------------------------------------------------------------
    def authorized(self, update: Update) -> bool:
        return update.effective_chat is not None and update.effective_chat.id in self.allowed_chat_ids


def live_accuracy_text(user_data: Path, last: int = 200) -> str:
    """Live direction accuracy per model and pair from the predictions store (cryptobot_ops.predictions)."""
    path = user_data / "predictions.sqlite"
    if not path.exists():
        return "Live accuracy: no predictions store yet (user_data/predictions.sqlite)."
    scores = PredictionStore(path).scores(last=last)
    if scores.empty:
        return "Live accuracy: no settled prediction yet (each settles after its label horizon)."
    lines = [
        f"{r.model} {r.pair}: {r.accuracy:.1%} ({r.accuracy_lo:.0%}-{r.accuracy_hi:.0%}, n={r.n}), "
        f"IC {'n/a' if r.ic != r.ic else f'{r.ic:+.2f}'}"
        for r in scores.itertuples()
    ]
    return f"Live accuracy, last {last} settled predictions (95% CI)\n" + "\n".join(lines)


def live_comparison_text(user_data: Path) -> str:
    """The simulator's rolling comparison with the backtest (user_data/live_comparison.json, written by
    `python -m simulation.run` at each candle close)."""
    path = user_data / "live_comparison.json"
    if not path.exists():
        return "No live comparison: it is written while a simulated, paper or relayed session runs."
    v = json.loads(path.read_text())

    def pct(key: str, digits: int = 0) -> str:
        return "n/a" if v.get(key) is None else f"{v[key]:.{digits}%}"

    def num(key: str, fmt: str) -> str:
        return "n/a" if v.get(key) is None else format(v[key], fmt)

    at = time.strftime("%Y-%m-%d %H:%M", time.gmtime(v["time_ms"] / 1000))
    return "\n".join(
        [
            f"Live comparison at {at} (session {pct('elapsed_ratio')} done)",
            (
                f"trades: backtest {num('trades_backtest', 'd')}, bot {num('trades_bot', 'd')}, "
                f"matched {num('trades_matched', 'd')}"
            ),
            f"realized PnL gap (bot - backtest): {pct('pnl_gap_ratio', 2)} of the wallet",
            f"signals: precision {pct('signal_precision')}, recall {pct('signal_recall')}",
            f"entry price gap {num('entry_price_gap_bps', '.1f')} bps, fill ratio {pct('fill_ratio')}",
            f"30-day Sharpe {num('rolling_sharpe_30d', '.2f')}, win rate (last 100) {pct('win_rate_last_100')}",
        ]
    )


def build_application(companion: Companion, token: str | None = None, bot=None) -> Application:
    builder = Application.builder()
    builder = builder.bot(bot) if bot is not None else builder.token(token)
    app = builder.build()

    def command(render):
        async def handler(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
            if not companion.authorized(update):
                return  # silent for strangers, like freqtrade's own bot
            try:
                text = render()
            except Exception as exc:  # noqa: BLE001 (the operator needs the reason, not a silent bot)
                text = f"error: {exc}"
            await update.effective_message.reply_text(text)

        return handler

    app.add_handler(CommandHandler("regime", command(companion.regime_text)))
    app.add_handler(CommandHandler("risk", command(companion.risk_text)))
    app.add_handler(CommandHandler("models", command(companion.models_text)))
    app.add_handler(CommandHandler("emergency", command(companion.emergency)))
    app.add_handler(CommandHandler("comparison", command(lambda: live_comparison_text(companion.user_data))))
    return app
