"""Self-contained HTML report of a run (plotly inlined once; opens offline)."""

from __future__ import annotations

import html
import json
from datetime import UTC, datetime

import pandas as pd
import plotly.graph_objects as go


def _t(ms) -> str:
    if ms is None or pd.isna(ms):
        return ""
    return datetime.fromtimestamp(float(ms) / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def _fmt(x, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and pd.isna(x)):
        return "n/a"
    return f"{x:.{digits}f}" if isinstance(x, float) else html.escape(str(x))


def _comparability(rows: list[dict]) -> str:
    """What differs between the two runs by construction: first thing in the report."""
    diff = [r for r in rows if r["differs"]]
    if not rows:
        return ""
    body = "".join(
        f"<tr><th>{html.escape(r['setting'])}</th><td>{html.escape(json.dumps(r['backtest'], default=str))}</td>"
        f"<td>{html.escape(json.dumps(r['simulation'], default=str))}</td></tr>"
        for r in diff
    )
    same = len(rows) - len(diff)
    return (
        f'<h2>What differs by construction</h2><table id="comparability"><tr><th>setting</th><th>backtest</th>'
        f"<th>simulation</th></tr>{body}</table><p>{same} other settings identical (strategy, ROI, stop, pricing, "
        "pairs, FreqAI windows...).</p>"
    )


def _predictions(p: dict) -> str:
    """The FreqAI prediction diff: did the two runs see the same model output?"""
    if not p.get("candles"):
        return ""
    rows = [
        ("candles both runs predicted", p["candles"]),
        ("prediction correlation", p.get("prediction_correlation")),
        ("prediction MAE", p.get("prediction_mae")),
        ("same direction", p.get("direction_agreement")),
        ("do_predict mismatches", p.get("do_predict_mismatches")),
        ("confidence MAE", p.get("confidence_mae")),
        ("candles the bot did not predict", p.get("live_not_predicted")),
        ("model age at prediction, backtest (h, median)", (p.get("backtest_model_age_h") or {}).get("p50")),
        ("model age at prediction, bot (h, median)", (p.get("live_model_age_h") or {}).get("p50")),
    ]
    body = "".join(f"<tr><th>{html.escape(k)}</th><td>{_fmt(v, 4)}</td></tr>" for k, v in rows)
    first = "".join(
        f"<li>{html.escape(pair)}: {html.escape(str(d.get('first_divergence')))}</li>"
        for pair, d in (p.get("pairs") or {}).items()
    )
    return (
        f'<h2>FreqAI predictions, backtest vs bot</h2><table id="predictions">{body}</table>'
        f"<p>First candle where they differ, per pair:</p><ul>{first}</ul>"
    )


def _indicators(d: dict) -> str:
    """Indicator diff at the backtest's entry candles: which columns the bot computed differently."""
    if not d.get("signal_candles"):
        return ""
    cols = "".join(f"<tr><th>{html.escape(c)}</th><td>{n}</td></tr>" for c, n in d["columns_differing"].items())
    return (
        "<h2>Indicators at the backtest's entry candles, backtest vs bot</h2>"
        f'<p id="indicators">{d["in_bot_frame"]} of '
        f"{d['signal_candles']} entry candles are in the bot's analyzed frame; the bot signalled an entry on "
        f"{_fmt(d.get('bot_signalled_too'))} of them. Columns that differ (candles):</p>"
        f"<table>{cols or '<tr><td>none: every indicator agrees</td></tr>'}</table>"
    )


def clock_lines(meta: dict) -> list[str]:
    """What every report states about time: the clock, the bot's measured compute per candle and the
    share of session time skipped (plain text, shared by the HTML report and the console)."""
    c, clk = meta.get("compute") or {}, meta.get("clock_report") or {}
    kind = meta.get("clock", "constant")
    if kind == "compute":
        lines = [
            "Clock: compute. Session time ran at the real rate while the bot, the gateway or the venue computed "
            "and jumped ahead while all of them waited, so every delay below includes the bot's compute exactly "
            "as a live bot would spend it"
            + (
                f"; {100 * clk['skipped_share']:.1f}% of the session time was skipped "
                f"in {clk['jumps']} jumps (x{clk['effective_speed']:g} overall)"
                if clk.get("skipped_share") is not None
                else ""
            )
            + "."
        ]
    elif kind == "wall":
        lines = ["Clock: the wall clock (a live market)."]
    else:
        lines = [
            (
                f"Clock: constant x{meta['speed']:g}. Every wall-clock millisecond the bot spends computing is "
                f"{meta['speed']:g} session milliseconds, so signal-to-order delays overstate what the same bot would "
                "show in real time."
            )
        ]
    inf = meta.get("freqai_inference")
    if inf:
        lines.append(
            f"FreqAI's own timer, all pairs of one candle (features + prediction): p50 {inf['p50_s']:.3f} s, "
            f"p90 {inf['p90_s']:.3f} s, max {inf['max_s']:.3f} s, n = {inf['n']} candles (spec: < 0.300 s "
            f"{'met' if inf['p50_s'] < 0.3 else 'not met'} at the median)."
        )
    per = c.get("bot_cpu_per_candle_s")
    if per:
        lines.append(
            f"The bot's compute per candle (CPU s, all threads): p50 {per['p50']:.3f}, p90 {per['p90']:.3f}, "
            f"max {per['max']:.3f}, n = {per['n']} candles."
        )
    if c:
        lines.append(
            f"In the window the bot used {c['bot_cpu_s']:.1f} CPU s ({c['bot_compute_per_loop_wall_ms']:.1f} ms per "
            f"loop) and the gateway {c['gateway_cpu_s']:.1f} CPU s over {c['window_wall_s']:.0f} s of wall time"
            + (f" (wall time / compute {c['wall_per_compute']:.2f})" if c.get("wall_per_compute") else "")
            + "."
        )
    if kind == "constant" and c and not c.get("keeps_up"):
        lines.append(
            "Warning: at this speed the bot cannot keep up (its compute exceeds 10% of a "
            f"{c['bot_loop_interval_wall_ms']:.1f} ms loop), so every delay includes its compute "
            f"x{meta['speed']:g}: use the compute clock for faithful timing."
        )
    return lines


def _clock_name(meta: dict) -> str:
    kind = meta.get("clock", "constant")
    return f"constant clock x{meta['speed']:g}" if kind == "constant" else f"{kind} clock"


def _clock_note(meta: dict) -> str:
    lines = clock_lines(meta)
    warn = [line for line in lines if line.startswith("Warning")]
    body = " ".join(html.escape(line) for line in lines if not line.startswith("Warning"))
    return f'<p id="compute">{"".join(f"<strong>{html.escape(w)}</strong> " for w in warn)}{body}</p>'


def render(
    result: dict,
    table: pd.DataFrame,
    curves: dict,
    execs: pd.DataFrame,
    requests: pd.DataFrame | None,
    meta: dict,
    reconciliation: dict | None,
) -> str:
    figs = []
    times = pd.to_datetime(curves["time_ms"], unit="ms", utc=True)
    f = go.Figure()
    f.add_scatter(x=times, y=curves["backtest"], name="backtest", mode="lines")
    f.add_scatter(x=times, y=curves["sim"], name=f"simulation ({meta['mode']})", mode="lines")
    f.update_layout(title="Equity: backtest vs simulation (USDT, open positions marked to market)", height=380)
    figs.append(f)
    if len(execs) and execs.slippage_bps.notna().any():
        f = go.Figure()
        for side, part in execs.dropna(subset=["slippage_bps"]).groupby("side"):
            f.add_histogram(x=part.slippage_bps, name=side, opacity=0.7, nbinsx=40)
        f.update_layout(
            title="Fill slippage vs the signal candle's close (bps, adverse positive)", barmode="overlay", height=320
        )
        figs.append(f)
    if requests is not None and len(requests):
        f = go.Figure()
        ok = requests[requests.fault.isna()]
        f.add_histogram(x=ok.latency_ms, name="modelled round trip", nbinsx=50)
        f.update_layout(title="Request latency (simulated ms)", height=320)
        figs.append(f)
        if len(execs):
            f = go.Figure()
            f.add_histogram(x=execs.signal_to_order_ms / 1000, nbinsx=40, name="signal to order")
            f.update_layout(title="Signal candle close to order at the venue (simulated s)", height=320)
            figs.append(f)
    parts = []
    for i, fig in enumerate(figs):
        parts.append(fig.to_html(full_html=False, include_plotlyjs=(i == 0), config={"displaylogo": False}))
    keys = [
        "verdict",
        "signal_consistency",
        "signal_precision",
        "signal_recall",
        "signal_early",
        "fill_consistency",
        "pnl_deviation",
        "pnl_deviation_of_wallet",
        "equity_correlation",
        "tracking_error",
        "mean_slippage_bps",
        "p99_latency_ms",
        "fill_ratio_mean",
        "trades_backtest",
        "trades_sim",
        "trades_matched",
    ]
    summary = "".join(f"<tr><th>{k}</th><td>{_fmt(result.get(k))}</td></tr>" for k in keys)
    d = result.get("per_trade_difference") or {}
    if d.get("n"):
        ci = d.get("ci95")
        interval = f"[{ci[0]:+.3f}, {ci[1]:+.3f}]" if ci else "n/a"
        mdd = f"{d['min_detectable']:.3f}" if d.get("min_detectable") is not None else "n/a"
        summary += (
            f"<tr><th>per matched trade: simulation minus backtest (USDT)</th><td>{d['mean']:+.3f}, 95% interval "
            f"{interval} (block bootstrap, n={d['n']}; smallest detectable difference {mdd})</td></tr>"
        )
    gap = "".join(f"<li>{html.escape(line)}</li>" for line in result["gap"]["explanation"])
    rows = "".join(
        "<tr>"
        + "".join(
            f"<td>{v}</td>"
            for v in (
                html.escape(str(r.pair)),
                _t(r.bt_open_ms),
                _fmt(r.bt_open_rate, 4),
                _fmt(r.bt_exit),
                _fmt(r.bt_profit, 2),
                _t(r.sim_open_ms),
                _fmt(r.sim_open_rate, 4),
                _fmt(r.sim_exit),
                _fmt(r.sim_profit, 2),
            )
        )
        + "</tr>"
        for r in table.itertuples()
    )
    recon = ""
    if reconciliation is not None:
        table = html.escape(pd.Series(reconciliation).to_string())
        recon = f"<h2>Paper mode: bot database vs venue</h2><pre id='reconciliation'>{table}</pre>"
    events = "".join(f"<li>{_t(e['time_ms'])} {html.escape(e['event'])}</li>" for e in meta.get("events", []))
    return f"""<!doctype html><html><head><meta charset="utf-8">
<title>Simulation vs backtest: {html.escape(meta["strategy"])}</title>
<style>body{{font-family:sans-serif;margin:24px;max-width:1200px}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:3px 8px;font-size:13px;text-align:right}}th{{text-align:left}}</style>
</head><body>
<h1>{html.escape(meta["strategy"])}: {html.escape(meta["mode"])} ({html.escape(_clock_name(meta))}) vs backtest</h1>
<p>Window {_t(meta["start_ms"])} to {_t(meta["end_ms"])} UTC, pairs {html.escape(", ".join(meta["pairs"]))},
faults: {html.escape(str(meta.get("faults") or "none"))}, wall clock {meta.get("wall_seconds") or 0:.0f} s.</p>
<p id="assumptions">Intra-candle path: {html.escape(str((meta.get("assumptions") or {}).get("path", "unknown")))};
limit fills: {html.escape(str((meta.get("assumptions") or {}).get("limit_fills", "unknown")))}.</p>
<p>Times are session times; request latencies are the latency model's draws.</p>
{_clock_note(meta)}
{_comparability(result.get("comparability") or [])}
{_predictions(result.get("predictions") or {})}
{_indicators(result.get("indicators") or {})}
<table id="summary">{summary}</table>
<h2>What explains the gap</h2><ul id="gap">{gap}</ul>
{"".join(parts)}
<h2>Trades, matched within one candle</h2>
<table id="trades"><tr><th>pair</th><th>backtest open</th><th>rate</th><th>exit</th><th>profit</th>
<th>sim open</th><th>rate</th><th>exit</th><th>profit</th></tr>{rows}</table>
{recon}
<h2>Session events</h2><ul>{events}</ul>
</body></html>"""
