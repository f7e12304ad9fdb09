"""`python -m simulation.run.fidelity REFERENCE CANDIDATE`: does a session on one clock reproduce a
session on another, candle by candle?

The reference is a run in real time (`--clock constant --speed 1`: the wall clock's rate, the window
replayed as it happened); the candidate the same window, spec and seed on another clock. A clock that
is faithful to the bot's compute reproduces (1) the bot's decisions: the entry and exit signals of
every candle in the window (its analysed frame at the window's end) and the orders it placed, by pair,
side and the candle they acted on; and (2) its signal-to-order latencies: from the close of the candle
acted on to the order reaching the gateway, each within ±10 % or ±20 ms of the reference's, whichever
is wider. A clock that stretches the bot's compute (a constant speed-up) delays every order by its
compute times the speed; one that drops it (an instant clock) makes them early: either fails (2), and
fails (1) once an analysis outlasts a candle.

Exit status: 0 faithful, 1 not faithful, 2 the runs cannot be compared (missing files, other specs).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

from simulation.run.indicators import bot_frame

REL_TOL, ABS_TOL_MS = 0.10, 20.0
SIGNALS = ("enter_long", "exit_long", "enter_short", "exit_short")
SAME = (
    "strategy",
    "mode",
    "pairs",
    "timeframe",
    "start_ms",
    "end_ms",
    "seed",
    "path_model",
    "path_seed",
    "datadir",
    "synthetic_days",
    "synthetic_start",
    "latency",
    "faults",
    "config",
)


class NotComparable(ValueError):
    """The two runs are not the same session on two clocks."""


def _spec(out: Path) -> dict:
    try:
        return json.loads((out / "spec.json").read_text())
    except (OSError, ValueError) as exc:
        raise NotComparable(f"{out}: no readable spec.json ({exc})") from None


def _frames(out: Path) -> dict:
    try:
        payload = json.loads((out / "bot_candles.json").read_text())
    except (OSError, ValueError) as exc:
        raise NotComparable(f"{out}: no readable bot_candles.json ({exc})") from None
    if not isinstance(payload, dict):
        raise NotComparable(f"{out}: bot_candles.json is not an object per pair")
    return payload


def missing_frames(out: Path) -> list[str]:
    """Pairs whose analysed frame the bot did not give at the window's end (its API did not answer)."""
    return sorted(pair for pair, answer in _frames(out).items() if not isinstance(answer, dict))


def signals(out: Path, spec: dict) -> pd.DataFrame:
    """The bot's signals per candle of the window (its analysed frame at the window's end); a pair
    without a frame gives none (`missing_frames` says which)."""
    rows = []
    for pair, answer in _frames(out).items():
        if not isinstance(answer, dict):
            continue
        df = bot_frame(answer)
        if df.empty:
            continue
        ms = df["date"].astype("datetime64[ms, UTC]").astype("int64")
        inside = df[(ms >= spec["start_ms"]) & (ms < spec["end_ms"])]
        for col in SIGNALS:
            if col in inside:
                hit = inside[pd.to_numeric(inside[col], errors="coerce").fillna(0) == 1]
                rows += [{"pair": pair, "signal": col, "candle": d} for d in hit["date"]]
    return pd.DataFrame(rows, columns=["pair", "signal", "candle"])


def orders(out: Path, spec: dict) -> pd.DataFrame:
    """The bot's orders in the window: pair, side, the candle acted on (its close) and the latency."""
    try:
        ex = pd.read_csv(out / "executions.csv")
    except pd.errors.EmptyDataError:  # written by runs before the columns were always kept: no orders
        ex = pd.DataFrame()
    except (OSError, ValueError) as exc:
        raise NotComparable(f"{out}: no readable executions.csv ({exc})") from None
    if ex.empty:
        return pd.DataFrame(columns=["pair", "side", "signal_ms", "n", "signal_to_order_ms"])
    ex = ex[(ex.order_ms >= spec["start_ms"]) & (ex.order_ms < spec["end_ms"])].sort_values("order_ms")
    ex = ex.assign(n=ex.groupby(["pair", "side", "signal_ms"]).cumcount())  # two orders on one candle: in order
    return ex[["pair", "side", "signal_ms", "n", "signal_to_order_ms"]].reset_index(drop=True)


def _keys(df: pd.DataFrame, cols: list[str]) -> set[tuple]:
    return set(map(tuple, df[cols].astype(str).to_numpy())) if len(df) else set()


def compare_sessions(
    reference: Path, candidate: Path, rel_tol: float = REL_TOL, abs_tol_ms: float = ABS_TOL_MS
) -> dict:
    ref_spec, cand_spec = _spec(reference), _spec(candidate)
    differs = [k for k in SAME if ref_spec.get(k) != cand_spec.get(k)]
    if differs:
        raise NotComparable(f"the runs differ in {', '.join(differs)}: not one session on two clocks")
    if lost := missing_frames(reference):
        raise NotComparable(f"{reference}: the reference has no analysed frame for {', '.join(lost)}")
    # a candidate without a frame cannot show its decisions were the same: not faithful, said so
    lost = missing_frames(candidate)
    sig_ref, sig_cand = signals(reference, ref_spec), signals(candidate, cand_spec)
    k_ref, k_cand = _keys(sig_ref, ["pair", "signal", "candle"]), _keys(sig_cand, ["pair", "signal", "candle"])
    o_ref, o_cand = orders(reference, ref_spec), orders(candidate, cand_spec)
    key = ["pair", "side", "signal_ms", "n"]
    both = o_ref.merge(o_cand, on=key, suffixes=("_ref", "_cand"))
    lat_ref, lat_cand = both["signal_to_order_ms_ref"].astype(float), both["signal_to_order_ms_cand"].astype(float)
    allowed = (lat_ref.abs() * rel_tol).clip(lower=abs_tol_ms)
    both = both.assign(diff_ms=lat_cand - lat_ref)
    outside = both[both["diff_ms"].abs() > allowed]
    decisions_equal = not lost and k_ref == k_cand and _keys(o_ref, key) == _keys(o_cand, key)
    result = {
        "reference": {
            "out": str(reference),
            "clock": ref_spec.get("clock"),
            "speed": ref_spec.get("speed"),
            "warmup_s": ref_spec.get("warmup_s"),
            "signals": len(k_ref),
            "orders": len(o_ref),
        },
        "candidate": {
            "out": str(candidate),
            "clock": cand_spec.get("clock"),
            "speed": cand_spec.get("speed"),
            "warmup_s": cand_spec.get("warmup_s"),
            "signals": len(k_cand),
            "orders": len(o_cand),
        },
        "signals_only_reference": sorted(k_ref - k_cand),
        "signals_only_candidate": sorted(k_cand - k_ref),
        "orders_only_reference": sorted(_keys(o_ref, key) - _keys(o_cand, key)),
        "orders_only_candidate": sorted(_keys(o_cand, key) - _keys(o_ref, key)),
        "frames_missing_candidate": lost,
        "decisions_equal": decisions_equal,
        "latency": {
            "n": len(both),
            "tolerance": f"±{rel_tol:.0%} or ±{abs_tol_ms:g} ms",
            "outside": len(outside),
            "reference_median_ms": float(lat_ref.median()) if len(both) else None,
            "candidate_median_ms": float(lat_cand.median()) if len(both) else None,
            "max_abs_diff_ms": float(both["diff_ms"].abs().max()) if len(both) else None,
            "worst": outside.sort_values("diff_ms", key=abs, ascending=False).head(5).to_dict("records"),
        },
    }
    # nothing compared is not evidence of fidelity
    result["faithful"] = bool(decisions_equal and len(both) > 0 and outside.empty)
    return result


def lines(result: dict) -> list[str]:
    r, c, lat = result["reference"], result["candidate"], result["latency"]

    def clock(d: dict) -> str:
        return f"{d['clock']} x{d['speed']:g}" if d["clock"] == "constant" else str(d["clock"])

    out = (
        [f"the candidate has no analysed frame for {', '.join(result['frames_missing_candidate'])}"]
        if result.get("frames_missing_candidate")
        else []
    )
    out += [
        (
            f"reference {clock(r)}: {r['signals']} signals, {r['orders']} orders; candidate {clock(c)}: "
            f"{c['signals']} signals, {c['orders']} orders"
        ),
        "decisions: "
        + (
            "the same signals on the same candles and the same orders"
            if result["decisions_equal"]
            else f"differ ({len(result['signals_only_reference'])} signals and {len(result['orders_only_reference'])} "
            f"orders only in the reference, {len(result['signals_only_candidate'])} and "
            f"{len(result['orders_only_candidate'])} only in the candidate)"
        ),
    ]
    if lat["n"]:
        out.append(
            f"signal-to-order latency over {lat['n']} matched orders: median {lat['reference_median_ms']:.0f} ms "
            f"(reference) vs {lat['candidate_median_ms']:.0f} ms, max difference {lat['max_abs_diff_ms']:.0f} ms; "
            f"{lat['outside']} outside {lat['tolerance']}"
        )
    else:
        out.append("no matched orders: nothing to compare latencies on")
    out.append("faithful" if result["faithful"] else "NOT faithful")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m simulation.run.fidelity", description=__doc__.split("\n\n")[0])
    p.add_argument("reference", type=Path, help="the real-time run's OUTDIR (--clock constant --speed 1)")
    p.add_argument("candidate", type=Path, help="the same session on the clock under test")
    p.add_argument("--json", type=Path, help="write the comparison here")
    args = p.parse_args(argv)
    try:
        result = compare_sessions(args.reference, args.candidate)
    except NotComparable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for line in lines(result):
        print(line)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=str))
    return 0 if result["faithful"] else 1


if __name__ == "__main__":
    sys.exit(main())
