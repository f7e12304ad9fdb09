"""Helpers for tests that run a real `freqtrade trade --dry-run` bot with its API server."""

from __future__ import annotations

import glob
import json
import os
import secrets
import subprocess
import time
from pathlib import Path

from freqtrade_client import FtRestClient

from simulation.freqtrade_runner import LOG_COLUMNS, REPO_ROOT, freqtrade_executable
from simulation.gateway.process import free_port


def api_section(port: int) -> dict:
    return {"api_server": {"enabled": True, "listen_ip_address": "127.0.0.1", "listen_port": port, "username": "op"}}


def api_env(password: str) -> dict:
    """The API password and JWT secret come from the environment, as in production."""
    return {"FREQTRADE__API_SERVER__PASSWORD": password, "FREQTRADE__API_SERVER__JWT_SECRET_KEY": secrets.token_hex(16)}


def start_bot(
    tmp: Path, configs: list[str], extra: dict, env_extra: dict, strategy: str | None = None, name: str = "bot"
) -> tuple[subprocess.Popen, Path]:
    cfg = tmp / f"{name}-extra.json"
    cfg.write_text(json.dumps(extra))
    log = tmp / f"{name}.log"
    cmd = [
        *freqtrade_executable(),
        "trade",
        *[a for c in configs for a in ("--config", c)],
        "--config",
        str(cfg),
        "--userdir",
        str(tmp / "ud"),
        "--db-url",
        f"sqlite:///{tmp / f'{name}.sqlite'}",
        "--dry-run",
    ]
    if strategy:
        cmd += ["--strategy", strategy]
    with open(log, "w") as fh:
        proc = subprocess.Popen(
            cmd,
            cwd=REPO_ROOT,
            env={**os.environ, "COLUMNS": LOG_COLUMNS, **env_extra},
            stdout=fh,
            stderr=subprocess.STDOUT,
        )
    return proc, log


class RunningBot:
    """A started dry-run bot with API: `client`, `password`, `port`, `proc`, `log`."""

    def __init__(
        self,
        tmp: Path,
        configs: list[str],
        extra: dict,
        strategy: str | None = None,
        name: str = "bot",
        password: str | None = None,
        env: dict | None = None,
    ) -> None:
        self.password = password or secrets.token_urlsafe(18)
        self._args = (tmp, configs, extra, {**api_env(self.password), **(env or {})}, strategy, name)
        self._start(free_port())

    def _start(self, port: int) -> None:
        tmp, configs, extra, env, strategy, name = self._args
        self.port = port
        self.proc, self.log = start_bot(tmp, configs, {**api_section(port), **extra}, env, strategy, name)
        self.url = f"http://127.0.0.1:{port}"
        self.client = FtRestClient(self.url, "op", self.password)

    def wait_running(self, seconds: float = 240) -> None:
        """Until the API answers with state running. A port another process took between choosing and
        binding it (freqtrade then runs on without its API) is chosen again."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()[-3000:]
            if f"error while attempting to bind on address ('127.0.0.1', {self.port})" in self.log.read_text():
                stop_process(self.proc, 30)
                self._start(free_port())
                continue
            config = self.client.show_config()  # None until the API answers
            if config and config.get("state") == "running":
                return
            time.sleep(1)
        raise AssertionError("bot API not up")

    def stop(self) -> None:
        stop_process(self.proc, 60)

    def wait_loops(self, n: int, seconds: float = 60) -> None:
        """Until the bot has run `n` more loops (freqtrade's /health: last_process_ts moves each loop):
        what a test that must see "nothing happens for a while" waits for, instead of a fixed sleep."""
        seen: list[float] = []

        def moved() -> bool:
            ts = float((self.client.health() or {}).get("last_process_ts") or 0)
            if not seen or ts != seen[-1]:
                seen.append(ts)
            return len(seen) > n

        wait_for(moved, seconds, f"{n} bot loops")


def candle_phase_env(lead_s: float, timeframe_s: int = 300) -> dict:
    """Environment for a gateway replaying at speed 1 and the bot on it: both clocks shifted (libfaketime)
    so that the next candle closes `lead_s` seconds from now. A replay follows the wall clock, so without
    it a test waits 0-5 minutes for what only a new candle brings (FreqAI's first prediction)."""
    libs = sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1"))
    assert libs, "libfaketime not found: make setup installs Debian's faketime"
    offset = -(time.time() + lead_s) % timeframe_s  # (now + offset + lead) is a candle boundary
    return {"LD_PRELOAD": libs[0], "FAKETIME": f"+{offset:.3f}"}


def stop_process(proc: subprocess.Popen, timeout: float) -> None:
    """SIGTERM, then SIGKILL if it has not exited within `timeout` seconds."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()


def wait_for(cond, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


# Market orders for forced entries/exits (need the other side of the book).
FORCE_ORDERS = {
    "force_entry_enable": True,
    "initial_state": "running",
    "entry_pricing": {"price_side": "other"},
    "exit_pricing": {"price_side": "other"},
    "order_types": {
        "entry": "limit",
        "exit": "market",
        "force_entry": "market",
        "force_exit": "market",
        "emergency_exit": "market",
        "stoploss": "market",
        "stoploss_on_exchange": False,
    },
}


class PrometheusServer:
    """A real Prometheus (Debian's package) scraping `targets` {job: ["host:port", ...]} every second,
    evaluating the repository's alert rules every second."""

    def __init__(self, tmp: Path, targets: dict[str, list[str]]) -> None:
        import shutil

        import yaml

        binary = shutil.which("prometheus")
        assert binary, "Debian's prometheus package is missing (make setup installs it)"
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(REPO_ROOT / "docker" / "prometheus" / "alerts.yml")],
            "scrape_configs": [{"job_name": job, "static_configs": [{"targets": t}]} for job, t in targets.items()],
        }
        (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tmp / "prometheus.log"
        with open(self.log, "w") as fh:
            self.proc = subprocess.Popen(
                [
                    binary,
                    f"--config.file={tmp / 'prometheus.yml'}",
                    f"--storage.tsdb.path={tmp / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                ],
                stdout=fh,
                stderr=subprocess.STDOUT,
            )
        wait_for(self._ready, 60, f"prometheus ready ({self.log})")

    def _ready(self) -> bool:
        import requests

        assert self.proc.poll() is None, self.log.read_text()[-2000:]
        try:
            return requests.get(f"{self.url}/-/ready", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def query(self, expr: str) -> list[dict]:
        import requests

        reply = requests.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=5).json()
        assert reply["status"] == "success", reply
        return reply["data"]["result"]

    def alerts(self) -> list[dict]:
        import requests

        return requests.get(f"{self.url}/api/v1/alerts", timeout=5).json()["data"]["alerts"]

    def stop(self) -> None:
        stop_process(self.proc, 30)
