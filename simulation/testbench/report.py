"""Self-contained HTML report of a bench run (plotly inline, no network)."""

from __future__ import annotations

import html
import json

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from regime.columns import REGIME_COLORS
from simulation.testbench import forecast

# Fractions shown as percentages, under headers without the "_pct" suffix.
PERCENT = {
    "profit_pct",
    "max_drawdown",
    "win_rate",
    "p_loss",
    "p_breach_drawdown",
    "bt_sim_deviation",
    "bt_sim_deviation_of_pnl",
    "sim_paper_deviation",
    "signal_consistency",
    "max drawdown",
}
HEADERS = {
    "profit_pct": "profit",
    "max_drawdown": "max drawdown",
    "win_rate": "win rate",
    "profit_factor": "profit factor",
    "risk_rejections": "entries refused",
    "refused_by": "refused by (limit)",
    "limits_held": "limits held",
}


def _fmt(v, percent: bool = False) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float | int) and percent:
        return f"{v:.2%}"
    if isinstance(v, float):
        return f"{v:.3f}"
    return html.escape(str(v))


def _table(rows: list[dict], cols: list[str], percent_rows: bool = False) -> str:
    """HTML table; a column (or, with percent_rows, a row whose "measure" is) in PERCENT is shown in %."""
    head = "".join(f"<th>{html.escape(HEADERS.get(c, c))}</th>" for c in cols)
    body = "".join(
        "<tr>"
        + "".join(
            f"<td>{_fmt(r.get(c), c in PERCENT or (percent_rows and r.get('measure') in PERCENT))}</td>" for c in cols
        )
        + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _equity_figure(summary: dict, regimes: pd.DataFrame | None) -> go.Figure:
    fig = make_subplots(
        rows=3,
        cols=1,
        shared_xaxes=True,
        row_heights=[0.55, 0.3, 0.15],
        vertical_spacing=0.04,
        subplot_titles=("realized equity per fold (each fold starts from the wallet)", "drawdown", "BTC 1h regime"),
    )
    wallet = float(summary["wallet"])
    for f in summary["folds"]:
        t = pd.DataFrame(f["trades"])
        if t.empty:
            continue
        t["close_date"] = pd.to_datetime(t["close_date"])
        t = t.sort_values("close_date")
        eq = wallet + t["profit_abs"].cumsum()
        fig.add_scatter(x=t["close_date"], y=eq, mode="lines", name=f"fold {f['fold']}", row=1, col=1)
        peak = np.maximum.accumulate(np.r_[wallet, eq.to_numpy()])[1:]
        fig.add_scatter(
            x=t["close_date"],
            y=-100 * (peak - eq) / peak,
            mode="lines",
            showlegend=False,
            row=2,
            col=1,
            line={"width": 1},
        )
    if regimes is not None and len(regimes):
        for name, color in REGIME_COLORS.items():
            r = regimes[regimes["regime"] == name]
            fig.add_scatter(
                x=r["date"],
                y=[1] * len(r),
                mode="markers",
                marker={"color": color, "size": 4, "symbol": "square"},
                name=name,
                row=3,
                col=1,
            )
    fig.update_yaxes(ticksuffix="%", tickformat="~r", row=2, col=1)  # in percent: small drawdowns get readable ticks
    fig.update_yaxes(visible=False, row=3, col=1)
    fig.update_layout(height=760, margin={"t": 40, "b": 30})
    return fig


def _mc_figure(mc: dict) -> go.Figure:
    fig = go.Figure()
    fan = mc.get("fan", {})
    if fan:
        x = list(range(len(fan["p50"])))
        fig.add_scatter(x=x, y=fan["p95"], mode="lines", line={"width": 0}, showlegend=False)
        fig.add_scatter(x=x, y=fan["p5"], mode="lines", fill="tonexty", line={"width": 0}, name="5–95%")
        fig.add_scatter(x=x, y=fan["p50"], mode="lines", name="median")
    fig.update_layout(
        title=f"Monte Carlo: {mc.get('paths')} resampled trade sequences",
        xaxis_title="trade",
        yaxis_title="equity",
        height=380,
        margin={"t": 40, "b": 30},
    )
    return fig


def _overlay_figure(comparison: dict) -> go.Figure | None:
    curves = comparison.get("simulation", {}).get("_equity")
    if not curves:
        return None
    t = pd.to_datetime(curves["time_ms"], unit="ms", utc=True)
    fig = go.Figure()
    fig.add_scatter(x=t, y=curves["backtest"], name="backtest", mode="lines")
    fig.add_scatter(x=t, y=curves["sim"], name="simulation", mode="lines")
    fig.update_layout(title="backtest vs simulation (last period)", height=340, margin={"t": 40, "b": 30})
    return fig


def _forecast_html(result: dict | None) -> str:
    """The FreqAI model's forecast in the folds (absent for a strategy without FreqAI)."""
    if result is None:
        return ""
    head, *rest = forecast.lines(result)
    items = "".join(f"<li>{html.escape(line.strip())}</li>" for line in rest)
    return f'<h2 id="forecast">Forecast</h2><p>{html.escape(head)}</p><ul>{items}</ul>'


def render_report(summary: dict, regimes: pd.DataFrame | None = None) -> str:
    rec = summary["recommendation"]
    folds = [
        {"fold": f["fold"], "timerange": f["timerange"], **f["metrics"], "seconds": f["seconds"]}
        for f in summary["folds"]
    ]
    cols = [
        "fold",
        "timerange",
        "trades",
        "profit_pct",
        "sharpe",
        "sortino",
        "sharpe_freqtrade",
        "max_drawdown",
        "win_rate",
        "profit_factor",
        "seconds",
    ]
    agg = {"fold": "all", "timerange": "", **summary["aggregate"]}
    cmp_ = summary["comparison"]
    cmp_rows = [
        {"measure": k, "value": cmp_.get(k)}
        for k in (
            "bt_sim_deviation",
            "bt_sim_deviation_of_pnl",
            "sim_paper_deviation",
            "equity_correlation",
            "signal_consistency",
        )
    ]
    cmp_rows += [{"measure": f"{name} window", "value": " to ".join(w)} for name, w in cmp_.get("window", {}).items()]
    cmp_rows += [
        {"measure": f"trades backtest / {name}", "value": f"{r.get('trades_backtest')} / {r.get('trades_sim')}"}
        for name in ("simulation", "paper")
        if isinstance(r := cmp_.get(name), dict) and "trades_sim" in r
    ]
    stress = [
        {
            "scenario": s["scenario"],
            "event": s["event"],
            "trades": s["metrics"]["trades"],
            "profit_pct": s["metrics"]["profit_pct"],
            "max_drawdown": s["metrics"]["max_drawdown"],
            "risk_rejections": s["risk_rejections"],
            "refused_by": ", ".join(f"{k} {v}" for k, v in sorted(s.get("rejections_by_reason", {}).items())) or "-",
            "limits_held": s["limits_held"],
        }
        for s in summary["stress"]
    ]
    mc = summary["monte_carlo"]
    figs = [_equity_figure(summary, regimes), _mc_figure(mc)]
    overlay = _overlay_figure(cmp_)
    if overlay is not None:
        figs.append(overlay)
    plots = "".join(f.to_html(full_html=False, include_plotlyjs=(i == 0)) for i, f in enumerate(figs))
    reasons = "".join(f"<li>{html.escape(r)}</li>" for r in rec["reasons"])
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>Test bench: {
        html.escape(summary["strategy"])
    }</title>
<style>body{{font-family:sans-serif;margin:24px;max-width:1200px}} table{{border-collapse:collapse;margin:8px 0 20px}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}} .decision{{font-size:1.6em;font-weight:bold}}</style>
</head><body>
<h1>Test bench: {html.escape(summary["strategy"])}</h1>
<p>market: {html.escape(summary["market"])}; folds ran {html.escape(summary["scale_out"])}</p>
<p class="decision" id="decision">Recommendation: {html.escape(rec["decision"])}</p><ul>{reasons}</ul>
<h2>Walk-forward</h2>{_table([*folds, agg], cols)}
<p>sharpe, sortino: {
        html.escape(str(summary["aggregate"].get("ratio_basis", "freqtrade's per-trade figures")))
    }, the deploy
gate's basis; sharpe_freqtrade: freqtrade's per-trade Sharpe, for familiarity (its scale moves with trades per day).</p>
{_forecast_html(summary.get("forecast"))}
<h2>Monte Carlo ({mc.get("paths")} paths over {mc.get("days", mc.get("trades"))} days: {
        html.escape(str(mc.get("resampling", "")))
    })</h2>
{
        _table(
            [
                {"measure": "final equity", **mc.get("final_equity", {})},
                {"measure": "max drawdown", **mc.get("max_drawdown", {})},
            ],
            ["measure", "p5", "p25", "p50", "p75", "p95"],
            percent_rows=True,
        )
    }
<p>P(loss) = {_fmt(mc.get("p_loss"), True)}; P(max drawdown ≥ {_fmt(mc.get("drawdown_limit"), True)}) = {
        _fmt(mc.get("p_breach_drawdown"), True)
    }</p>
<h2>Backtest vs simulation vs paper</h2>{_table(cmp_rows, ["measure", "value"], percent_rows=True)}
<h2>Stress</h2>{
        _table(
            stress,
            [
                "scenario",
                "event",
                "trades",
                "profit_pct",
                "max_drawdown",
                "risk_rejections",
                "refused_by",
                "limits_held",
            ],
        )
    }
{plots}
<script type="application/json" id="summary">{
        html.escape(json.dumps({k: summary[k] for k in ("aggregate", "recommendation")}, default=str))
    }</script>
</body></html>"""
