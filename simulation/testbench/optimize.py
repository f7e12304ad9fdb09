"""Walk-forward optimization with its overfitting check (`python -m scripts.testbench --optimize`).

For each walk-forward fold, `freqtrade hyperopt` searches the strategy's own parameters (`IntParameter`,
`DecimalParameter`, ...) on the `--is-days` before the fold (in-sample); freqtrade writes the best values
to its parameter file next to the strategy (a per-fold folder of links to the strategy's files, so the
repository's strategies stay untouched), and the same file drives two backtests: in-sample and on the
fold itself (out-of-sample, data the search never saw). What the report states:

- degradation: in-sample minus out-of-sample of the same figures, computed the same way (the bench's
  daily marked-to-market Sharpe and return per day). A search that fits noise finds in-sample figures
  the next window does not repeat: a large positive gap. Walk-forward efficiency (Pardo): out-of-sample
  over in-sample return per day, over all folds.
- stability: each parameter's chosen values across the folds and their spread as a share of its range
  (values that jump across the range from fold to fold were not found, they were drawn).
- sensitivity: each parameter stepped over its range (the others at their defaults) and backtested
  over the folds' span: a peak that falls off at the next step is a fit, a plateau is a property.
"""

from __future__ import annotations

import html
import importlib
import json
import math
import re
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
from freqtrade.strategy.parameters import BaseParameter, CategoricalParameter, DecimalParameter, IntParameter
from plotly.subplots import make_subplots
from rich.console import Console

from simulation.freqtrade_runner import run_freqtrade
from simulation.paths import REPO_ROOT
from simulation.testbench.jobs import FoldJob, _freqai_overlay, jobs_threads, parallel_map, run_fold
from simulation.testbench.market import Market, cfg_args
from simulation.testbench.runner import DAY, Bench, BenchSpec, _data_end, fold_ranges
from simulation.timeframes import timerange_bounds, timerange_text

DEFAULT_LOSS = "SharpeHyperOptLossDaily"


class NoParameters(ValueError):
    """The strategy has nothing to optimize in the chosen spaces."""


def strategy_file(strategy: str, directory: Path) -> Path:
    for path in sorted(directory.glob("*.py")):
        if re.search(rf"^class {re.escape(strategy)}\b", path.read_text(), re.MULTILINE):
            return path
    raise ValueError(f"no class {strategy} in {directory}")


def parameters(strategy: str, directory: Path, spaces: tuple[str, ...]) -> dict[str, dict]:
    """The strategy's optimizable parameters in `spaces`: name -> space, kind, range, default, decimals."""
    path = strategy_file(strategy, directory)
    sys.path.insert(0, str(directory))  # as freqtrade loads a strategy: its folder importable
    try:
        cls = getattr(importlib.import_module(path.stem), strategy)
    finally:
        sys.path.remove(str(directory))
    out = {}
    for name in dir(cls):
        p = getattr(cls, name, None)
        if not isinstance(p, BaseParameter) or not p.optimize or p.space not in spaces:
            continue
        if isinstance(p, CategoricalParameter):
            out[name] = {"space": p.space, "kind": "categorical", "options": list(p.opt_range), "default": p.value}
        else:
            out[name] = {
                "space": p.space,
                "kind": "int" if isinstance(p, IntParameter) else "decimal",
                "low": p.low,
                "high": p.high,
                "default": p.value,
                "decimals": p.decimals
                if isinstance(p, DecimalParameter)
                else (0 if isinstance(p, IntParameter) else 6),
            }
    if not out:
        raise NoParameters(f"{strategy} has no optimizable parameter in the spaces {' '.join(spaces)}")
    return out


def _decimals(p: BaseParameter) -> int:
    if isinstance(p, DecimalParameter):
        return p.decimals
    return 0 if isinstance(p, IntParameter) else 6


def steps(param: dict, points: int) -> list:
    """`points` values over the parameter's range (its default among them), in its own precision."""
    if param["kind"] == "categorical":
        return list(param["options"])
    grid = np.linspace(param["low"], param["high"], points)
    values = {round(float(v), param["decimals"]) for v in grid} | {param["default"]}
    return sorted(int(v) if param["kind"] == "int" else v for v in values)


def strategy_folder(strategy: str, source: Path, folder: Path, params: dict | None = None) -> Path:
    """A folder of links to the strategy's files (its imports resolve as in its own folder); with
    `params`, freqtrade's parameter file for them beside the strategy (freqtrade's format, version 1)."""
    folder.mkdir(parents=True, exist_ok=True)
    for entry in source.iterdir():
        if entry.name.startswith(("__", ".")) or entry.suffix == ".json":
            continue
        link = folder / entry.name
        if not link.exists():
            link.symlink_to(entry.resolve())
    if params is not None:
        doc = {"strategy_name": strategy, "params": params, "ft_stratparam_v": 1}
        (folder / strategy_file(strategy, source).with_suffix(".json").name).write_text(json.dumps(doc, indent=2))
    return folder


@dataclass(frozen=True)
class OptimizeJob:
    fold: FoldJob  # the out-of-sample fold; its configs gain the per-fold strategy folder
    is_range: str
    source: str  # the strategy's folder
    epochs: int
    spaces: tuple[str, ...]
    loss: str
    seed: int
    min_trades: int


def run_optimize_fold(job: OptimizeJob) -> dict:
    """hyperopt in-sample, then the chosen values backtested in-sample and out-of-sample. Each fold has
    its own user_data (freqtrade names hyperopt results by the second: two folds at once would collide);
    the in-sample backtest uses hyperopt's FreqAI identifier, so it reuses the models hyperopt trained."""
    t0 = time.perf_counter()
    fold, out = job.fold, Path(job.fold.out)
    folder = strategy_folder(fold.strategy, Path(job.source), out / "strategy")
    overlay = out / "strategy-path.json"
    overlay.write_text(json.dumps({"strategy_path": str(folder)}))
    userdir = out / "user_data"
    run_freqtrade(["create-userdir", "--userdir", str(userdir)], out / "userdir.log")
    fold = replace(fold, configs=(*fold.configs, str(overlay)), userdir=str(userdir))
    insample_job = replace(
        fold,
        timerange=job.is_range,
        out=str(out / "in-sample"),
        freqai_identifier=f"{fold.freqai_identifier}-is" if fold.freqai_identifier else None,
    )
    configs = [*fold.configs, fold.overlay_path]
    freqai = _freqai_overlay(insample_job.freqai_identifier, f"fold{fold.index}", fold.fold_days)
    if freqai:  # hyperopt trains under the in-sample backtest's identifier: that backtest reuses its models
        (out / "hyperopt-freqai.json").write_text(json.dumps(freqai))
        configs.append(str(out / "hyperopt-freqai.json"))
    args = ["hyperopt", *cfg_args(configs)]
    args += [
        "--strategy", fold.strategy, "--userdir", fold.userdir, "--datadir", fold.datadir,
        "--timerange", job.is_range, "--epochs", str(job.epochs), "--spaces", *job.spaces,
        "--hyperopt-loss", job.loss, "--random-state", str(job.seed), "-j", "1",
        "--min-trades", str(job.min_trades), "--no-color",
    ]  # fmt: skip
    if fold.pairs:
        args += ["--pairs", *fold.pairs]
    run_freqtrade(args, out / "hyperopt.log", timeout=7200, threads=fold.threads)
    params_file = folder / strategy_file(fold.strategy, Path(job.source)).with_suffix(".json").name
    if not params_file.exists():
        raise ValueError(f"fold {fold.index}: hyperopt found no result (see {out / 'hyperopt.log'})")
    chosen = json.loads(params_file.read_text())["params"]
    insample = run_fold(insample_job)
    outsample = run_fold(replace(fold, out=str(out / "out-of-sample")))
    return {
        "fold": fold.index,
        "in_sample": job.is_range,
        "out_of_sample": fold.timerange,
        "chosen": {k: v for space in job.spaces for k, v in (chosen.get(space) or {}).items()},
        "in_sample_metrics": _figures(insample),
        "out_of_sample_metrics": _figures(outsample),
        "seconds": round(time.perf_counter() - t0, 1),
    }


def _figures(result: dict) -> dict:
    m = result["metrics"]
    start, end = timerange_bounds(result["timerange"])
    days = max((end - start) / DAY, 1e-9)
    return {
        "trades": m["trades"],
        "profit_pct": m["profit_pct"],
        "return_per_day": m["profit_pct"] / days,
        "sharpe": m["sharpe"],
        "max_drawdown": m["max_drawdown"],
    }


def degradation(folds: list[dict]) -> dict:
    """In-sample minus out-of-sample per fold and on average, and walk-forward efficiency."""
    out: dict = {}
    for key in ("sharpe", "return_per_day"):
        gaps = [
            f["in_sample_metrics"][key] - f["out_of_sample_metrics"][key]
            for f in folds
            if all(math.isfinite(f[s][key]) for s in ("in_sample_metrics", "out_of_sample_metrics"))
        ]
        se = float(np.std(gaps, ddof=1) / math.sqrt(len(gaps))) if len(gaps) > 1 else None
        out[key] = {"per_fold": gaps, "mean": float(np.mean(gaps)) if gaps else None, "se": se, "n": len(gaps)}
    is_rpd = np.mean([f["in_sample_metrics"]["return_per_day"] for f in folds])
    oos_rpd = np.mean([f["out_of_sample_metrics"]["return_per_day"] for f in folds])
    out["walk_forward_efficiency"] = float(oos_rpd / is_rpd) if is_rpd > 0 else None
    return out


def stability(folds: list[dict], space: dict[str, dict]) -> dict:
    """Per parameter: the chosen value per fold and their spread (max - min) as a share of its range."""
    out = {}
    for name, p in space.items():
        values = [f["chosen"].get(name) for f in folds]
        if p["kind"] == "categorical":
            distinct = len({json.dumps(v) for v in values})
            out[name] = {"values": values, "distinct": distinct}
            continue
        vals = [float(v) for v in values if v is not None]
        width = float(p["high"] - p["low"]) or 1.0
        out[name] = {
            "values": values,
            "spread_of_range": (max(vals) - min(vals)) / width if vals else None,
            "std_of_range": float(np.std(vals)) / width if vals else None,
        }
    return out


def run_optimization(
    spec: BenchSpec,
    epochs: int = 50,
    spaces: tuple[str, ...] = ("buy", "sell"),
    loss: str = DEFAULT_LOSS,
    is_days: int | None = None,
    sensitivity_points: int = 5,
    min_trades: int = 1,
    console: Console | None = None,
) -> dict:
    """Walk-forward optimization over the bench's folds, then the sensitivity sweep; writes
    OUT/optimization.json and OUT/optimization.html."""
    console = console or Console()
    is_days = is_days or spec.fold_days
    cfg = spec.freqtrade_config()
    source = (REPO_ROOT / cfg.get("strategy_path", "strategies")).resolve()
    space = parameters(spec.strategy, source, spaces)  # refused before anything is written
    spaces = tuple(sp for sp in spaces if any(p["space"] == sp for p in space.values()))  # hyperopt refuses empty
    if epochs < 1:
        raise ValueError(f"--epochs must be at least 1, got {epochs}")
    bench = Bench(replace(spec, synthetic_days=spec.synthetic_days + is_days), console)
    out = spec.out
    out.mkdir(parents=True, exist_ok=True)
    run_freqtrade(["create-userdir", "--userdir", str(bench.userdir)], out / "userdir.log")
    end = _data_end(spec, (bench.market_start, bench.market_days))
    ranges = fold_ranges(end, spec.folds, spec.fold_days)
    first = timerange_bounds(ranges[0])[0]
    threads = jobs_threads(spec.workers, spec.ray_address)
    t0 = time.perf_counter()
    with bench.market() as market:
        market.download(
            spec.configs(),
            bench.userdir,
            bench.timeframes,
            f"{first - (is_days + bench.train_days + 80) * DAY:%Y%m%d}-",
            list(spec.pairs) if spec.pairs else None,
        )
        jobs = [
            OptimizeJob(
                _fold_job(bench, market, i, r, out / "folds" / f"{i:02d}", threads),
                _shifted(r, is_days),
                str(source),
                epochs,
                spaces,
                loss,
                spec.seed + i,
                min_trades,
            )
            for i, r in enumerate(ranges)
        ]
        console.print(f"walk-forward optimization: {len(jobs)} folds x {epochs} epochs", markup=False)
        folds, where = parallel_map(run_optimize_fold, jobs, spec.workers, spec.ray_address)
        sweep = _sensitivity(bench, market, space, ranges, source, out, sensitivity_points, threads)
    result = {
        "strategy": spec.strategy,
        "market": str(spec.datadir) if spec.datadir else f"synthetic (seed {spec.seed})",
        "epochs": epochs,
        "spaces": list(spaces),
        "loss": loss,
        "in_sample_days": is_days,
        "out_of_sample_days": spec.fold_days,
        "parameters": space,
        "folds": sorted(folds, key=lambda f: f["fold"]),
        "degradation": degradation(folds),
        "stability": stability(folds, space),
        "sensitivity": sweep,
        "ran": where,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    (out / "optimization.json").write_text(json.dumps(result, indent=2, default=str))
    (out / "optimization.html").write_text(render(result))
    return result


def _fold_job(bench: Bench, market: Market, i: int, timerange: str, out: Path, threads: int | None) -> FoldJob:
    s = bench.spec
    return FoldJob(
        i, timerange, s.strategy, tuple(s.configs()), str(market.overlay), str(market.datadir),
        str(bench.userdir), str(out), bench.wallet, bench.identifier, s.fold_days, s.pairs, threads,
    )  # fmt: skip


def _shifted(timerange: str, days: int) -> str:
    start, _ = timerange_bounds(timerange)
    return timerange_text(start - days * DAY, start)


def _sensitivity(bench, market, space, ranges, source, out, points, threads) -> dict:
    """Each parameter over its range, the others at their defaults, over the folds' whole span."""
    if points < 2:
        return {}
    span = timerange_text(timerange_bounds(ranges[0])[0], timerange_bounds(ranges[-1])[1])
    defaults = {}
    for name, p in space.items():
        defaults.setdefault(p["space"], {})[name] = p["default"]
    sweep = {}
    for name, p in space.items():
        curve = []
        for k, v in enumerate(steps(p, points)):
            params = {sp: dict(vals) for sp, vals in defaults.items()}
            params[p["space"]][name] = v
            where = out / "sensitivity" / f"{name}-{k}"
            folder = strategy_folder(bench.spec.strategy, source, where / "strategy", params)
            (where / "strategy-path.json").write_text(json.dumps({"strategy_path": str(folder)}))
            job = _fold_job(bench, market, 0, span, where, threads)
            # one FreqAI identifier for the whole sweep: the parameters change entries and exits only,
            # so freqtrade's saved backtest predictions are reused from the second point on
            job = replace(
                job,
                configs=(*job.configs, str(where / "strategy-path.json")),
                freqai_identifier=f"{bench.identifier}-sweep" if bench.identifier else None,
            )
            res = run_fold(job)
            curve.append({"value": v, "is_default": v == p["default"], **_figures(res)})
        sweep[name] = curve
    return sweep


def lines(result: dict) -> list[str]:
    d = result["degradation"]
    head = (
        f"{result['strategy']}: {len(result['folds'])} folds, {result['epochs']} epochs each "
        f"({result['loss']}, spaces {' '.join(result['spaces'])}), in-sample {result['in_sample_days']} d "
        f"before each {result['out_of_sample_days']} d fold, on {result['market']}"
    )
    out = [head]
    for f in result["folds"]:
        i, o = f["in_sample_metrics"], f["out_of_sample_metrics"]
        out.append(
            f"fold {f['fold']}: chosen {f['chosen']}; in-sample {i['trades']} trades, {i['return_per_day']:.3%}/day, "
            f"Sharpe {i['sharpe']:.2f}; out-of-sample {o['trades']} trades, {o['return_per_day']:.3%}/day, "
            f"Sharpe {o['sharpe']:.2f}"
        )
    for key, label, fmt in (("sharpe", "Sharpe", "{:.2f}"), ("return_per_day", "return per day", "{:.3%}")):
        g = d[key]
        se = "" if g["se"] is None else f" ± {fmt.format(g['se'])} (standard error)"
        mean = "n/a" if g["mean"] is None else fmt.format(g["mean"])
        out.append(f"degradation (in-sample - out-of-sample) of {label}: {mean}{se}, n = {g['n']}")
    wfe = d["walk_forward_efficiency"]
    out.append(
        "walk-forward efficiency (out-of-sample / in-sample return per day): "
        + ("n/a (in-sample return not positive)" if wfe is None else f"{wfe:.2f}")
    )
    low = [f["fold"] for f in result["folds"] if f["out_of_sample_metrics"]["trades"] < 5]
    if low:
        out.append(f"folds {low}: fewer than 5 out-of-sample trades, their figures are mostly noise")
    for name, s in result["stability"].items():
        spread = s.get("spread_of_range")
        out.append(
            f"stability of {name}: chosen {s['values']}"
            + ("" if spread is None else f", spread {spread:.0%} of its range")
        )
    return out


def render(result: dict) -> str:
    sweep = result["sensitivity"]
    figs = []
    if sweep:
        fig = make_subplots(rows=1, cols=len(sweep), subplot_titles=list(sweep))
        for col, (name, curve) in enumerate(sweep.items(), start=1):
            x = [c["value"] for c in curve]
            fig.add_trace(go.Scatter(x=x, y=[c["sharpe"] for c in curve], name=f"{name}: Sharpe"), row=1, col=col)
            default = [c for c in curve if c["is_default"]]
            if default:
                fig.add_vline(x=default[0]["value"], line_dash="dot", row=1, col=col)
        fig.update_layout(height=380, title="Sensitivity: daily Sharpe over the folds' span (dotted: default)")
        figs.append(fig)
    fold_fig = go.Figure()
    for side, label in (("in_sample_metrics", "in-sample"), ("out_of_sample_metrics", "out-of-sample")):
        fold_fig.add_trace(
            go.Bar(x=[f"fold {f['fold']}" for f in result["folds"]], y=[f[side]["sharpe"] for f in result["folds"]],
                   name=label)
        )  # fmt: skip
    fold_fig.update_layout(height=360, title="Daily Sharpe per fold: in-sample (optimized) vs out-of-sample")
    figs.insert(0, fold_fig)
    body = "".join(f"<li>{html.escape(line)}</li>" for line in lines(result))
    plots = "".join(
        f.to_html(full_html=False, include_plotlyjs="inline" if i == 0 else False) for i, f in enumerate(figs)
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>Walk-forward optimization</title></head><body>"
        f"<h1>Walk-forward optimization: {html.escape(result['strategy'])}</h1><ul>{body}</ul>{plots}"
        f"<script type='application/json' id='optimization'>{html.escape(json.dumps(result['degradation']))}</script>"
        "</body></html>"
    )
