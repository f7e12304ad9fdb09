"""Drive stock freqtrade through its CLI (never its internals) and read its exported results."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from simulation.paths import REPO_ROOT

# freqtrade prints through rich, which wraps at the terminal's width, 80 columns without one: its
# result tables and log lines would then break mid-word in the log files we read back.
LOG_COLUMNS = "200"


class FreqtradeError(RuntimeError):
    """A freqtrade command failed; the message carries the end of its log."""


@dataclass
class FreqtradeRun:
    args: list[str]
    returncode: int
    seconds: float
    log_path: Path

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])


def freqtrade_executable() -> list[str]:
    """freqtrade from the running interpreter's environment."""
    exe = Path(sys.executable).parent / "freqtrade"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "freqtrade"]


THREAD_VARS = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "TF_NUM_INTRAOP_THREADS",
    "TF_NUM_INTEROP_THREADS",
)


def thread_env(threads: int | None) -> dict[str, str]:
    """Environment that caps a child's compute threads (OpenMP for XGBoost, BLAS, TensorFlow; our LightGBM,
    CatBoost and forest estimators read OMP_NUM_THREADS too). Jobs running side by side on a small
    machine must not each spin a thread per core: OpenMP threads then wait on each other, busily."""
    if not threads:
        return {}
    return {**dict.fromkeys(THREAD_VARS, str(int(threads))), "OMP_WAIT_POLICY": "PASSIVE"}


def run_freqtrade(
    args: list[str], log_path: Path, timeout: float = 1800, check: bool = True, threads: int | None = None
) -> FreqtradeRun:
    """Run `freqtrade ARGS` from the repo root, its output going straight to log_path.

    The process writes to the file itself (no pipe to drain), so `timeout` holds even when freqtrade
    hangs silently; on timeout the process is killed and FreqtradeError names the log."""
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "PYTHONPATH": f"{REPO_ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        **thread_env(threads),
    }
    env.setdefault("COLUMNS", LOG_COLUMNS)
    t0 = time.monotonic()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [*freqtrade_executable(), *args],
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise FreqtradeError(f"freqtrade {args[0]} timed out after {timeout}s; log: {log_path}") from None
    run = FreqtradeRun(list(args), proc.returncode, time.monotonic() - t0, log_path)
    if check and run.returncode != 0:
        raise FreqtradeError(
            f"freqtrade {' '.join(args[:1])} exited with {run.returncode}; log: {log_path}\n{run.log_tail()}"
        )
    return run


def latest_backtest_stats(directory: Path) -> dict:
    """Stats of the newest backtest exported into directory, via freqtrade's own loader."""
    from freqtrade.data.btanalysis import get_latest_backtest_filename, load_backtest_stats

    directory = Path(directory)
    return load_backtest_stats(directory / get_latest_backtest_filename(directory))
