"""How much a simulated result depends on the book's spread: the same run at x0.1, x1 and x10 of it.

`python -m scripts.spread_sensitivity [--spread-model fixed|corwin_schultz] -- SIMULATION.RUN ARGS`
runs `python -m simulation.run` three times (outputs in OUT/spread-x0.1, ...) and prints one table.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from simulation.paths import REPO_ROOT

SCALES = (0.1, 1.0, 10.0)


def summarize(results: dict[float, dict]) -> list[dict]:
    """One row per spread scale: what the comparison measured."""
    rows = []
    for scale, r in sorted(results.items()):
        lines = (r.get("gap") or {}).get("waterfall", {}).get("lines", {})
        rows.append(
            {
                "spread_scale": scale,
                "trades_sim": r.get("trades_sim"),
                "trades_matched": r.get("trades_matched"),
                "pnl_sim": (r.get("gap") or {}).get("pnl_sim"),
                "entry_price_line": lines.get("entry_price"),
                "mean_slippage_bps": r.get("mean_slippage_bps"),
                "verdict": r.get("verdict"),
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m scripts.spread_sensitivity", description=__doc__.split("\n\n")[0])
    p.add_argument("--spread-model", choices=("fixed", "corwin_schultz"), default="fixed")
    p.add_argument("--out", type=Path, default=Path("user_data/simulation/spread-sensitivity"))
    p.add_argument("run_args", nargs=argparse.REMAINDER, help="arguments for python -m simulation.run (after --)")
    args = p.parse_args(argv)
    run_args = [a for a in args.run_args if a != "--"]
    if any(a in ("--out", "--sim-config") for a in run_args):
        print("error: --out and --sim-config are set per spread scale by this command", file=sys.stderr)
        return 2
    results = {}
    for scale in SCALES:
        out = args.out / f"spread-x{scale:g}"
        out.mkdir(parents=True, exist_ok=True)
        cfg = out / "sim-config.json"
        cfg.write_text(json.dumps({"simulation": {"book": {"spread_model": args.spread_model, "spread_scale": scale}}}))
        print(f"spread x{scale:g}: python -m simulation.run {' '.join(run_args)} --out {out}", flush=True)
        rc = subprocess.call(
            [sys.executable, "-m", "simulation.run", *run_args, "--sim-config", str(cfg), "--out", str(out)],
            cwd=REPO_ROOT,
        )
        if rc != 0:
            print(f"error: the run at spread x{scale:g} failed (exit {rc}); logs in {out}", file=sys.stderr)
            return rc
        results[scale] = json.loads((out / "comparison.json").read_text())
    rows = summarize(results)
    table = Table(title=f"Spread sensitivity ({args.spread_model} spread)")
    for col in rows[0]:
        table.add_column(col)
    for r in rows:
        table.add_row(*("n/a" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v) for v in r.values()))
    Console(width=160).print(table)  # readable in a plain log too
    (args.out / "sensitivity.json").write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
