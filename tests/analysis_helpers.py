"""Reading freqtrade's analysis commands (lookahead-analysis) from their logs."""

from __future__ import annotations


def lookahead_row(log: str, strategy: str) -> dict:
    """freqtrade's result table from the log (its CSV export comes out empty with pandas 3); the
    last cell wraps over several lines."""
    cols = [
        "filename",
        "strategy",
        "has_bias",
        "total_signals",
        "biased_entry_signals",
        "biased_exit_signals",
        "biased_indicators",
    ]
    lines = log.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith(f"│ {strategy}.py"))
    cells = [c.strip() for c in lines[start].strip().strip("│").split("│")]
    for ln in lines[start + 1 :]:
        if not ln.startswith("│"):
            break
        more = [c.strip() for c in ln.strip().strip("│").split("│")]
        cells[-1] = f"{cells[-1]} {more[-1]}".strip()
    return dict(zip(cols, cells, strict=True))
