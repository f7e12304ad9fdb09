"""`python -m scripts.readme_figures SUMMARY`: does the README quote what `make run` just produced?

The README's results list quotes the main job's outcome (trades, profit, the gate's Sharpe, the
decision). `make run` calls this after the bench: it prints the line the README should carry and
says whether it does, so a figure in the README always comes from the current code. Exit status 0
when the README matches, 1 when it quotes something else (the line to paste is printed), 2 when the
summary cannot be read.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from simulation.paths import REPO_ROOT

MINUS = "\u2212"  # the README may print a typographic minus
QUOTE = re.compile(
    rf"\d+ folds?, (?P<trades>\d+) trades,\s+(?P<profit>[+{MINUS}-]?[\d.]+)%, "
    rf"Sharpe (?P<sharpe>[+{MINUS}-]?[\d.]+) → \*\*(?P<decision>[a-z -]+)\*\*"
)


def figures(summary: dict) -> dict:
    """What the README quotes from a bench summary, formatted as the README writes it."""
    agg = summary["aggregate"]
    return {
        "folds": len(summary["folds"]),
        "trades": str(agg["trades"]),
        "profit": f"{agg['profit_pct'] * 100:+.2f}",
        "sharpe": f"{agg['sharpe']:.2f}",
        "decision": summary["recommendation"]["decision"],
    }


def quoted(readme: str) -> dict | None:
    """The figures of the README's `make run` line, None when it has none."""
    line = next((ln for ln in readme.split("\n- ") if ln.startswith("**`make run`**")), "")
    m = QUOTE.search(" ".join(line.split()))
    if m is None:
        return None
    got = m.groupdict()
    for key in ("profit", "sharpe"):
        got[key] = got[key].replace(MINUS, "-")
    got["profit"] = f"{float(got['profit']):+.2f}"
    return got


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m scripts.readme_figures", description=__doc__.split("\n\n")[0])
    p.add_argument("summary", type=Path, help="the bench's summary.json (make run: user_data/testbench/make-run)")
    p.add_argument("--readme", type=Path, default=REPO_ROOT / "README.md")
    a = p.parse_args(argv)
    try:
        want = figures(json.loads(a.summary.read_text()))
    except (OSError, ValueError, KeyError) as exc:
        print(f"error: cannot read the bench summary {a.summary}: {exc}", file=sys.stderr)
        return 2
    line = (
        f"{want['folds']} folds, {want['trades']} trades, {want['profit']}%, Sharpe {want['sharpe']} → "
        f"**{want['decision']}**"
    )
    have = quoted(a.readme.read_text())
    if have == {k: v for k, v in want.items() if k != "folds"}:
        print(f"README quotes this run: {line}")
        return 0
    print(f"README's make run line is stale (quotes {have}); this run: {line}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
