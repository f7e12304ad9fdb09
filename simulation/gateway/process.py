"""Run the gateway as a real subprocess (for the main job and tests) and stop it cleanly."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Self

import requests

from simulation.paths import REPO_ROOT


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class GatewayProcess:
    """`with GatewayProcess(["--synthetic", "--seed", "7"]) as gw: gw.url ...`"""

    def __init__(
        self, args: list[str], port: int | None = None, log_path: Path | None = None, startup_timeout: float = 60.0, env: dict | None = None,
        spawn: Callable[..., subprocess.Popen] | None = None, wait: Callable[[float], None] = time.sleep,
    ) -> None:
        """`spawn(cmd, env=..., **popen)` starts the process (e.g. on a session clock: `SessionClock.spawn`),
        `wait(seconds)` passes time between readiness probes (e.g. while that clock runs)."""
        self.port = port or free_port()
        self.args = args
        self.log_path = log_path
        self.startup_timeout = startup_timeout
        self.base_env = env
        self.spawn = spawn or (lambda cmd, env, **popen: subprocess.Popen(cmd, env=env, **popen))
        self.wait = wait
        self.proc: subprocess.Popen | None = None
        self._log = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> GatewayProcess:
        cmd = [sys.executable, "-m", "simulation.gateway", "--port", str(self.port), *self.args]
        self._log = open(self.log_path, "w") if self.log_path else subprocess.DEVNULL  # noqa: SIM115 (closed in stop())
        root = REPO_ROOT
        base = os.environ if self.base_env is None else self.base_env
        env = {**base, "PYTHONPATH": f"{root}{os.pathsep}{base.get('PYTHONPATH', '')}"}
        self.proc = self.spawn(cmd, env=env, stdout=self._log, stderr=subprocess.STDOUT, cwd=root)
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gateway exited with code {self.proc.returncode}; see {self.log_path}")
            try:
                if requests.get(f"{self.url}/api/v3/ping", timeout=max(1.0, self.startup_timeout / 60)).ok:
                    return self
            except requests.ConnectionError:
                pass
            self.wait(0.2)
        self.stop()
        raise TimeoutError(f"gateway did not answer within {self.startup_timeout}s")

    def stop(self, timeout: float | None = None) -> int | None:
        """SIGTERM, wait; returns the exit code (0 on a clean shutdown)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout or max(15.0, self.startup_timeout / 4))
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._log not in (None, subprocess.DEVNULL):
            self._log.close()
        return self.proc.returncode

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
