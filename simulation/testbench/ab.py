"""Strategy A/B: two strategies on the same walk-forward folds, the same market and the same costs, compared
fold by fold (`python -m scripts.testbench --compare-strategies A B`).

Why paired: both strategies face the same market in a fold, so most of what moves their returns from fold
to fold (the market) cancels in the per-fold difference; its spread across folds is the noise the verdict
must beat. Each metric's difference A - B gets its mean, standard error and a Student-t interval over the
folds (n - 1 degrees of freedom). A strategy is *better beyond noise* only where the return interval
excludes zero in its favour and neither the Sharpe nor the drawdown interval favours the other one;
otherwise the answer is "neither", with the reason.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots
from rich.console import Console

from simulation.testbench.metrics import mean_interval
from simulation.testbench.runner import Bench, BenchSpec

# metric key in a fold's metrics, label, whether higher is better
METRICS = (
    ("profit_pct", "return", True),
    ("sharpe", "Sharpe (daily mark-to-market)", True),
    ("max_drawdown", "max drawdown", False),
)
PRIMARY = "profit_pct"
CONFIDENCE = 0.95


class NotComparable(ValueError):
    """The two benches would not face the same folds, market or costs."""


def paired(a: Sequence[float | None], b: Sequence[float | None], higher_is_better: bool = True) -> dict:
    """Per-fold differences a - b over the folds where both have a finite value: mean, standard error,
    the two-sided Student-t interval at CONFIDENCE, and which side (A, B or neither) it favours."""
    pairs = [
        (float(x), float(y))
        for x, y in zip(a, b, strict=True)
        if x is not None and y is not None and math.isfinite(x) and math.isfinite(y)
    ]
    d = np.array([x - y for x, y in pairs])
    r = mean_interval(d, CONFIDENCE)
    n = r["n"]
    out: dict = {"n": n, "differences": [float(v) for v in d], "mean": r["mean"]}
    if r["interval"] is None:
        return {**out, "se": None, "interval": None, "favours": "neither", "why": f"{n} fold(s): no interval"}
    se = r["se"]
    lo, hi = r["interval"]
    if lo > 0:
        favours = "A" if higher_is_better else "B"
    elif hi < 0:
        favours = "B" if higher_is_better else "A"
    else:
        favours = "neither"
    why = "interval excludes zero" if favours != "neither" else "interval holds zero"
    return {**out, "se": se, "interval": [lo, hi], "favours": favours, "why": why}


def verdict(rows: dict[str, dict]) -> tuple[str, str]:
    """(A | B | neither, reason) from the per-metric results."""
    primary = rows[PRIMARY]["favours"]
    if primary == "neither":
        return "neither", f"the return difference's interval holds zero ({rows[PRIMARY]['why']})"
    against = [k for k, r in rows.items() if r["favours"] not in ("neither", primary)]
    if against:
        return "neither", f"{primary} earns more, but {', '.join(against)} favours the other beyond noise"
    return primary, f"{primary}'s return is higher beyond noise and no other metric favours the other"


def same_market_specs(a: BenchSpec, b: BenchSpec) -> tuple[BenchSpec, BenchSpec]:
    """Both specs with the market length of the longer one: the synthetic market's start and length follow
    the training window, and two lengths would be two markets."""
    days = max(Bench(a).market_days, Bench(b).market_days)
    return replace(a, synthetic_days=days), replace(b, synthetic_days=days)


def costs(spec: BenchSpec) -> dict:
    cfg = spec.freqtrade_config()
    return {
        "fee": cfg.get("fee"),
        "dry_run_wallet": cfg.get("dry_run_wallet"),
        "stake_amount": cfg.get("stake_amount"),
        "exchange": cfg.get("exchange", {}).get("name"),
    }


def compare_summaries(sa: dict, sb: dict) -> dict:
    """The paired comparison of two finished benches (their summary.json contents)."""
    ra, rb = [f["timerange"] for f in sa["folds"]], [f["timerange"] for f in sb["folds"]]
    if ra != rb:
        raise NotComparable(f"the folds differ: {ra} vs {rb}")
    if sa["market"] != sb["market"]:
        raise NotComparable(f"the markets differ: {sa['market']} vs {sb['market']}")
    fa, fb = sorted(sa["folds"], key=lambda f: f["fold"]), sorted(sb["folds"], key=lambda f: f["fold"])
    rows = {
        key: {
            "label": label,
            "higher_is_better": higher,
            "A": [f["metrics"].get(key) for f in fa],
            "B": [f["metrics"].get(key) for f in fb],
            **paired([f["metrics"].get(key) for f in fa], [f["metrics"].get(key) for f in fb], higher),
        }
        for key, label, higher in METRICS
    }
    better, why = verdict(rows)
    return {
        "A": sa["strategy"],
        "B": sb["strategy"],
        "folds": ra,
        "market": sa["market"],
        "trades": {"A": [f["metrics"]["trades"] for f in fa], "B": [f["metrics"]["trades"] for f in fb]},
        "confidence": CONFIDENCE,
        "metrics": rows,
        "better": better,
        "why": why,
    }


def run_ab(a: BenchSpec, b: BenchSpec, out: Path, console: Console | None = None) -> dict:
    """Both benches (walk-forward and Monte Carlo; no simulator, paper or stress stage), then the paired
    comparison in OUT/ab.json and OUT/ab.html; each strategy's own bench report under OUT/A and OUT/B."""
    console = console or Console()
    cost_a, cost_b = costs(a), costs(b)
    if cost_a != cost_b:
        raise NotComparable(f"the costs differ: A {cost_a} vs B {cost_b}")
    a, b = same_market_specs(a, b)
    out.mkdir(parents=True, exist_ok=True)
    benches = [
        Bench(replace(spec, out=out / side, skip_sim=True, stress=()), console) for side, spec in (("A", a), ("B", b))
    ]
    summaries = []
    with benches[0].market(out / "market") as market:  # one market, one set of candles for both
        for side, bench in zip("AB", benches, strict=True):
            console.print(f"A/B: {side} = {bench.spec.strategy}", markup=False, highlight=False)
            summaries.append(bench.run(market))
    result = compare_summaries(*summaries)
    result["pairs_traded"] = {
        side: sorted({t["pair"] for f in s["folds"] for t in f["trades"]})
        for side, s in zip("AB", summaries, strict=True)
    }
    result["costs"] = cost_a
    (out / "ab.json").write_text(json.dumps(result, indent=2))
    (out / "ab.html").write_text(render(result))
    return result


def _fmt(v: float | None, pct: bool) -> str:
    if v is None:
        return "–"
    return f"{v:.2%}" if pct else f"{v:.3f}"


def lines(result: dict) -> list[str]:
    """The comparison in a few lines (console and report)."""
    out = [f"A = {result['A']}, B = {result['B']}: {len(result['folds'])} folds on {result['market']}"]
    for key, r in result["metrics"].items():
        pct = key != "sharpe"
        ci = r["interval"]
        interval = (
            "no interval" if ci is None else f"{CONFIDENCE:.0%} interval [{_fmt(ci[0], pct)}, {_fmt(ci[1], pct)}]"
        )
        out.append(f"{r['label']}: A - B mean {_fmt(r['mean'], pct)}, {interval}, n = {r['n']}: favours {r['favours']}")
    out.append(f"better beyond noise: {result['better']} ({result['why']})")
    return out


def render(result: dict) -> str:
    """A self-contained page: the verdict, the per-metric table and the per-fold differences."""
    fig = make_subplots(rows=1, cols=len(METRICS), subplot_titles=[label for _, label, _ in METRICS])
    for col, (key, _, _) in enumerate(METRICS, start=1):
        r = result["metrics"][key]
        fig.add_trace(go.Bar(y=r["differences"], name=key, showlegend=False), row=1, col=col)
        if r["interval"]:
            for y in (*r["interval"], r["mean"]):
                fig.add_hline(y=y, line_dash="dot" if y != r["mean"] else "solid", row=1, col=col)
    fig.update_layout(height=380, title="A - B per fold (lines: mean and interval)")
    body = "".join(f"<li>{html.escape(line)}</li>" for line in lines(result))
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>Strategy A/B</title></head><body>"
        f"<h1>Strategy A/B: {html.escape(result['A'])} vs {html.escape(result['B'])}</h1><ul>{body}</ul>"
        + fig.to_html(full_html=False, include_plotlyjs="inline")
        + "</body></html>"
    )
