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

EXIT_PORT_IN_USE = 98  # the gateway's exit code when its port is taken (errno EADDRINUSE on Linux)
PORT_ATTEMPTS = 5


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class GatewayProcess:
    """`with GatewayProcess(["--synthetic", "--seed", "7"]) as gw: gw.url ...`"""

    def __init__(
        self,
        args: list[str],
        port: int | None = None,
        log_path: Path | None = None,
        startup_timeout: float = 60.0,
        env: dict | None = None,
        spawn: Callable[..., subprocess.Popen] | None = None,
        wait: Callable[[float], None] = time.sleep,
    ) -> None:
        """`spawn(cmd, env=..., **popen)` starts the process (e.g. on a session clock: `SessionClock.spawn`),
        `wait(seconds)` passes time between readiness probes (e.g. while that clock runs)."""
        self._auto_port = port is None
        self.port = port or free_port()
        self._started = False
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
        """Start and wait until it answers. Any failure on the way (an exception of any kind, an
        interrupt) stops the process first: no gateway outlives a failed start. A port taken between
        choosing and binding it (another test worker) is chosen again, when this class chose it."""
        for attempt in range(PORT_ATTEMPTS):
            try:
                if self._start_once():
                    return self
            except BaseException:
                self.stop()
                raise
            self.stop()
            if not self._auto_port or attempt == PORT_ATTEMPTS - 1:
                raise RuntimeError(f"gateway could not bind port {self.port}: address in use; see {self.log_path}")
            self.port = free_port()
        raise AssertionError("unreachable")

    def _start_once(self) -> bool:
        """True once it answers; False when its port was taken (exit code EXIT_PORT_IN_USE)."""
        cmd = [sys.executable, "-m", "simulation.gateway", "--port", str(self.port), *self.args]
        self._log = open(self.log_path, "a" if self._started else "w") if self.log_path else subprocess.DEVNULL  # noqa: SIM115 (closed in stop())
        self._started = True
        root = REPO_ROOT
        base = os.environ if self.base_env is None else self.base_env
        env = {**base, "PYTHONPATH": f"{root}{os.pathsep}{base.get('PYTHONPATH', '')}"}
        self.proc = self.spawn(cmd, env=env, stdout=self._log, stderr=subprocess.STDOUT, cwd=root)
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                if self.proc.returncode == EXIT_PORT_IN_USE:
                    return False
                raise RuntimeError(f"gateway exited with code {self.proc.returncode}; see {self.log_path}")
            try:
                if requests.get(f"{self.url}/api/v3/ping", timeout=max(1.0, self.startup_timeout / 60)).ok:
                    return True
            except requests.RequestException:  # not listening yet, or not answering yet
                pass
            self.wait(0.2)
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
