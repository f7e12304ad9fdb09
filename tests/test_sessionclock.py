"""The session clock on toy processes (real libfaketime, real /proc): the compute clock charges a
process's compute at the real rate and skips its idle time; the constant clock stretches compute by its
speed; both start every process at the session's start, in UTC whatever the host's timezone; bad
clock arguments exit 2 with one line before anything starts."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pandas as pd
import pytest

from simulation.paths import REPO_ROOT
from simulation.run.sessionclock import ClockUnavailable, ComputeClock, ConstantClock, check_available

T0_MS = int(pd.Timestamp("2024-03-01T10:00", tz="UTC").timestamp() * 1000)

# A bot-like process: the launcher's wake handler, then `rounds` of (burn `cpu_s` of real CPU, sleep `sleep_s`),
# printing (session time before the burn, after it, after the sleep, real seconds the burn took) per round.
TOY = """
import json, sys, time
from simulation.run.bot_launcher import install_wake_handler
install_wake_handler()
def sched():  # the kernel's (running, waiting to run) seconds, which libfaketime does not scale
    with open("/proc/thread-self/schedstat") as fh:
        run, wait = fh.read().split()[:2]
    return int(run) / 1e9, int(wait) / 1e9
cpu_s, sleep_s, rounds = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
for _ in range(rounds):
    a = time.time()
    r0, w0 = sched()
    while sched()[0] - r0 < cpu_s:
        pass
    b = time.time()
    r1, w1 = sched()
    real = (r1 - r0) + (w1 - w0)  # real seconds the burn took: on the CPU, or runnable behind other work
    time.sleep(sleep_s)
    print(json.dumps([a, b, time.time(), real]), flush=True)
"""


def _toy(clock, tmp_path, cpu_s: float, sleep_s: float, rounds: int, until_s: float) -> tuple[list, float]:
    out = tmp_path / "toy.out"
    with open(out, "w") as fh:
        proc = clock.spawn(
            [sys.executable, "-c", TOY, str(cpu_s), str(sleep_s), str(rounds)],
            "bot",
            {},
            launcher=True,
            cwd=REPO_ROOT,
            stdout=fh,
            stderr=subprocess.STDOUT,
        )
        t0 = time.monotonic()
        clock.run(
            until_ms=T0_MS + int(until_s * 1000), stop=lambda: proc.poll() is not None, every_s=0.05, wall_timeout=120
        )
        wall = time.monotonic() - t0
        proc.wait(30)
        clock.release(proc.pid)
    text = out.read_text()
    assert proc.returncode == 0, text
    return [json.loads(line) for line in text.splitlines()], wall


@pytest.fixture
def compute_clock(tmp_path):
    clock = ComputeClock(tmp_path)
    clock.start(T0_MS)
    yield clock
    clock.close()


def test_the_compute_clock_charges_compute_and_skips_idle_time(tmp_path, compute_clock):
    """0.2 s of compute shows as 0.2 s of session time (not stretched, not dropped); 60 s sleeps end on
    time in session time; the whole 5 min session takes seconds of wall time."""
    rows, wall = _toy(compute_clock, tmp_path, cpu_s=0.2, sleep_s=60.0, rounds=4, until_s=300)
    assert len(rows) == 4
    assert rows[0][0] * 1000 == pytest.approx(T0_MS, abs=30_000), "the process starts at the session's start"
    for a, b, c, real in rows:
        assert real >= 0.2
        assert b - a == pytest.approx(real, abs=0.02), "compute charged at the real rate (not stretched, not dropped)"
        assert c - b == pytest.approx(60.0, abs=0.02), "a sleep ends when it is due in session time"
    assert wall < 20, f"idle time skipped: 4 min of sleeps took {wall:.1f} s"
    report = compute_clock.report()
    assert report["jumps"] >= 4 and report["skipped_s"] >= 200 and 0.5 < report["skipped_share"] <= 1


def test_the_constant_clock_stretches_compute_by_its_speed(tmp_path):
    """What the fidelity test must catch: at x50, 0.1 s of compute takes 5 s of session time."""
    clock = ConstantClock(tmp_path, speed=50.0)
    clock.start(T0_MS)
    try:
        rows, _ = _toy(clock, tmp_path, cpu_s=0.1, sleep_s=10.0, rounds=2, until_s=60)
    finally:
        clock.close()
    for a, b, _, real in rows:
        assert b - a == pytest.approx(50 * real, rel=0.2), "compute stretched by the speed"


@pytest.mark.parametrize("kind", ["compute", "constant"])
@pytest.mark.parametrize("start", ["2024-03-10T06:30", "2024-11-03T05:30"])  # New York's DST changes
def test_the_session_clock_is_utc_whatever_the_host_timezone(tmp_path, monkeypatch, kind, start):
    monkeypatch.setenv("TZ", "America/New_York")
    start_ms = int(pd.Timestamp(start, tz="UTC").timestamp() * 1000)
    clock = ComputeClock(tmp_path) if kind == "compute" else ConstantClock(tmp_path, speed=10.0)
    clock.start(start_ms)
    try:
        proc = clock.spawn(
            [sys.executable, "-c", "import time; print(time.time(), time.strftime('%H:%M', time.localtime()))"],
            "probe",
            {},
            launcher=False,
            stdout=subprocess.PIPE,
            text=True,
        )
        clock.run(stop=lambda: proc.poll() is not None, every_s=0.05, wall_timeout=60)
        seen, local = proc.communicate(timeout=30)[0].split()
        clock.release(proc.pid)
    finally:
        clock.close()
    assert abs(float(seen) * 1000 - start_ms) < 60_000, (
        f"clock starts {(float(seen) * 1000 - start_ms) / 3.6e6:+.2f} h off"
    )
    assert local == pd.Timestamp(float(seen), unit="s").strftime("%H:%M"), "local time is UTC"


def test_bad_clock_arguments_fail_before_anything_starts(tmp_path):
    with pytest.raises(ClockUnavailable, match="unknown clock 'sundial'"):
        check_available("sundial")
    for speed in (0, -3):
        with pytest.raises(ClockUnavailable, match="--speed must be positive"):
            check_available("constant", speed)
    base = [
        sys.executable,
        "-m",
        "simulation.run",
        "--strategy",
        "ReferenceStrategy",
        "--synthetic",
        "--out",
        str(tmp_path / "o"),
    ]
    for extra, text in (
        (["--clock", "sundial"], "unknown clock 'sundial'"),
        (["--clock", "constant", "--speed", "0"], "--speed must be positive"),
        (["--speed", "300"], "add --clock constant"),
        (["--warmup", "-1"], "--warmup must be a non-negative"),
    ):
        proc = subprocess.run(base + extra, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False)
        assert proc.returncode == 2, proc.stderr
        lines = [line for line in proc.stderr.strip().splitlines() if line]
        assert len(lines) == 1 and text in lines[0], proc.stderr
        assert not (tmp_path / "o").exists(), "nothing written"


def test_a_missing_faketime_is_one_line_before_anything_starts(tmp_path):
    env_path = str(tmp_path)  # a PATH without faketime (python is called by its full path)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "simulation.run",
            "--strategy",
            "ReferenceStrategy",
            "--synthetic",
            "--out",
            str(tmp_path / "o"),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": env_path, "HOME": str(tmp_path)},
        check=False,
    )
    assert proc.returncode == 2 and "needs Debian's `faketime`" in proc.stderr, proc.stderr
    assert not (tmp_path / "o").exists()


def test_freqai_timer_per_candle_inside_the_window_in_wall_seconds(tmp_path):
    """Every report prints FreqAI's own timer: only the window's candles, divided by the constant
    clock's speed (its figure is session time), and says whether the spec's 300 ms holds at the median."""
    from simulation.run.__main__ import freqai_inference
    from simulation.run.report import clock_lines
    from simulation.run.spec import RunSpec

    line = "{} - freqtrade.freqai.freqai_interface - INFO - Total time spent inferencing pairlist {} seconds\n"
    (tmp_path / "freqtrade.log").write_text(
        line.format("2024-03-01 09:45:01,001", "99.0")  # warm-up: not counted
        + "".join(line.format(f"2024-03-01 10:{m:02d}:01,001", v) for m, v in ((0, "2.0"), (15, "4.0"), (30, "6.0")))
        + "2024-03-01 10:31:00,000 - freqtrade.worker - INFO - Bot heartbeat\n"
    )
    spec = RunSpec(
        strategy="S",
        config="c.json",
        mode="dry-run",
        speed=10.0,
        clock="constant",
        start_ms=T0_MS,
        end_ms=T0_MS + 3_600_000,
        pairs=["BTC/USDT"],
        timeframe="15m",
        out=str(tmp_path),
    )
    got = freqai_inference(tmp_path / "freqtrade.log", spec)
    assert got == {"p50_s": 0.4, "p90_s": 0.56, "max_s": 0.6, "n": 3}
    text = " ".join(clock_lines({"clock": "constant", "speed": 10.0, "freqai_inference": got}))
    assert "p50 0.400 s" in text and "not met" in text
    assert freqai_inference(tmp_path / "missing.log", spec) is None
