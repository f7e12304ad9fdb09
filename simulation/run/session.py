"""One simulated trading session: gateway + stock `freqtrade trade`, run under a shared fake clock.

This module runs *inside* `faketime` (see __main__): every process it starts inherits the same
accelerated clock (FAKETIME_DONT_RESET=1 shares libfaketime's start across child processes), so
gateway, bot and this supervisor agree on "now" without touching freqtrade. All waits here are in
simulated seconds.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import requests
from freqtrade_client import FtRestClient

from simulation.freqtrade_runner import LOG_COLUMNS, freqtrade_executable, run_freqtrade
from simulation.gateway import GatewayProcess
from simulation.gateway.process import free_port
from simulation.gateway.server import ADMIN_HEADER, ADMIN_TOKEN_ENV
from simulation.paths import REPO_ROOT
from simulation.run.bot_config import API_USER, bot_overlay
from simulation.run.spec import RunSpec, strategy_digest
from simulation.venue.auth import KEY_ENV, SECRET_ENV

logger = logging.getLogger("simulation.run")


def now_ms() -> int:
    return int(time.time() * 1000)


class Session:
    def __init__(self, spec: RunSpec) -> None:
        self.spec = spec
        self.out = spec.out_dir
        self.out.mkdir(parents=True, exist_ok=True)
        self.api_port = free_port()
        self.password = secrets.token_urlsafe(24)
        key, secret = secrets.token_hex(16), secrets.token_hex(32)
        self.env = {
            **os.environ,
            "PYTHONPATH": f"{REPO_ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
            "TZ": "UTC",  # log timestamps are parsed as UTC
            "COLUMNS": os.environ.get("COLUMNS", LOG_COLUMNS),  # unwrapped log lines (they are parsed)
            "FREQTRADE__API_SERVER__PASSWORD": self.password,
            "FREQTRADE__API_SERVER__JWT_SECRET_KEY": secrets.token_hex(32),
            "FREQTRADE__API_SERVER__WS_TOKEN": secrets.token_urlsafe(16),
        }
        self.admin_headers = {ADMIN_HEADER: secrets.token_urlsafe(24)}
        self.env[ADMIN_TOKEN_ENV] = self.admin_headers[ADMIN_HEADER]
        if spec.mode == "paper":
            self.env.update({KEY_ENV: key, SECRET_ENV: secret, "FREQTRADE__EXCHANGE__KEY": key, "FREQTRADE__EXCHANGE__SECRET": secret})
        self.bot: subprocess.Popen | None = None
        self.gateway_pid: int | None = None
        self.strategy_sha256: str | None = None
        self._cpu: dict[tuple[str, int], list[float]] = {}
        self.events: list[dict] = []
        # requests' timeouts are checked against the (accelerated) process clock too: scale them.
        self.api_url = f"http://127.0.0.1:{self.api_port}"
        self.client = FtRestClient(self.api_url, API_USER, self.password, timeout=self.sim_s(30))

    def sim_s(self, wall_seconds: float) -> float:
        """A wall-clock allowance expressed on the accelerated clock."""
        return wall_seconds * self.spec.speed

    def event(self, kind: str, **info) -> None:
        self.events.append({"time_ms": now_ms(), "event": kind, **info})
        logger.info("%s %s", kind, info or "")

    # -- processes ------------------------------------------------------------------------
    def replay_args(self) -> list[str]:
        """This spec's market replayed as a live exchange: the bot's gateway, or a relay's local upstream."""
        s = self.spec
        return [*s.source_args(), "--pairs", *s.pairs, "--replay", "--replay-start", "now", "--seed", str(s.seed),
                "--path-model", s.path_model, "--path-seed", str(s.path_seed)]

    def relay_poll_s(self) -> float:
        """Upstream poll period on the session's clock: 2 s live (what a polling relay does), and at
        most 5 polls per wall second when accelerated (each poll is 2 requests per pair and timeframe)."""
        return max(2.0, self.spec.speed / 5)

    def gateway_args(self, upstream_url: str | None = None) -> list[str]:
        s = self.spec
        if s.upstream:
            exchange = "binance" if s.upstream == "local" else s.upstream
            args = ["--upstream", exchange, "--pairs", *s.pairs, "--record", str(s.recording), "--relay-timeframes", *s.timeframes(),
                    "--relay-poll", f"{self.relay_poll_s():g}", "--relay-history", str(s.relay_history),
                    "--upstream-timeout", f"{self.sim_s(10):g}", "--seed", str(s.seed), "--request-log", str(self.out / "requests.csv")]
            if upstream_url or s.upstream_url:
                args += ["--upstream-url", upstream_url or s.upstream_url]
        else:
            args = [*self.replay_args(), "--request-log", str(self.out / "requests.csv")]
        if s.latency:
            args.append("--latency")
        if s.sim_config:
            args += ["--sim-config", s.sim_config]
        if s.mode == "paper":
            args += ["--venue", "--balances", f"USDT={s.wallet:g}", "--ledger", str(self.out / "venue_ledger.jsonl")]
        return args

    def start_bot(self) -> None:
        self.strategy_sha256 = strategy_digest(self.spec.strategy)  # the code the bot loads now
        if not (self.spec.userdir / "strategies").is_dir():
            run_freqtrade(["create-userdir", "--userdir", str(self.spec.userdir)], self.out / "userdir.log")
        cmd = [*freqtrade_executable(), "trade", "--config", self.spec.config, "--config", str(self.overlay_path),
               "--userdir", str(self.spec.userdir)]
        with open(self.out / "freqtrade.log", "a") as log:
            self.bot = subprocess.Popen(cmd, cwd=REPO_ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + self.sim_s(180)
        while time.monotonic() < deadline:
            if self.bot.poll() is not None:
                raise RuntimeError(f"freqtrade exited with {self.bot.returncode} during startup; see {self.out / 'freqtrade.log'}")
            try:
                # FtRestClient.ping() reports "not_running" for a stopped bot: ask the endpoint itself.
                if requests.get(f"{self.api_url}/api/v1/ping", timeout=self.sim_s(5)).json() == {"status": "pong"}:
                    self.event("bot_ready", pid=self.bot.pid)
                    return
            except (requests.RequestException, ValueError):
                pass
            time.sleep(self.sim_s(0.5))
        raise TimeoutError("freqtrade's API did not come up within 180 s")

    def restart_bot(self, attempts: int = 3) -> None:
        """Start the bot again as a supervisor would (docker's restart policy): freqtrade exits when it
        cannot load the markets through injected faults, so a failed start is retried, each one logged."""
        for attempt in range(1, attempts + 1):
            try:
                self.start_bot()
                return
            except (RuntimeError, TimeoutError) as exc:
                # a freqtrade that gave up may hang in its shutdown (its websocket thread): stop it first
                if self.bot is not None and self.bot.poll() is None:
                    self.bot.kill()
                    self.bot.wait()
                self.event("bot_start_failed", attempt=attempt, error=str(exc))
                if attempt == attempts:
                    raise

    def start_trading(self) -> None:
        reply = self.client.start()
        self.event("bot_started", reply=reply)

    def kill_bot(self) -> None:
        assert self.bot is not None
        os.kill(self.bot.pid, signal.SIGKILL)
        self.bot.wait()
        self.event("bot_killed", signal="SIGKILL", pid=self.bot.pid)

    def stop_bot(self) -> None:
        if self.bot and self.bot.poll() is None:
            self.bot.send_signal(signal.SIGINT)
            try:
                self.bot.wait(self.sim_s(60))
            except subprocess.TimeoutExpired:
                self.bot.kill()
                self.bot.wait()
        self.event("bot_stopped", returncode=self.bot.returncode if self.bot else None)

    def _kill_orphan(self) -> None:
        if self.bot is not None and self.bot.poll() is None:
            logger.error("stopping the bot (pid %s): the session failed", self.bot.pid)
            self.bot.kill()
            self.bot.wait()

    # -- the run --------------------------------------------------------------------------
    def run(self) -> dict:
        with contextlib.ExitStack() as stack:
            upstream_url = None
            if self.spec.upstream == "local":
                up = GatewayProcess(self.replay_args(), log_path=self.out / "upstream.log", startup_timeout=self.sim_s(60))
                upstream_url = stack.enter_context(up).url
                self.event("upstream_ready", url=upstream_url)
            return self._run(upstream_url)

    def _run(self, upstream_url: str | None) -> dict:
        s = self.spec
        # the relay fetches its history at start: give it the time a live exchange's pages take
        gw = GatewayProcess(self.gateway_args(upstream_url), log_path=self.out / "gateway.log",
                            startup_timeout=self.sim_s(180 if s.upstream else 60), env=self.env)
        with gw:
            self.gateway_url = gw.url
            self.gateway_pid = gw.proc.pid
            overlay = bot_overlay(s, gw.url, self.api_port, str((self.out / "tradesv3.sqlite").resolve()))
            self.overlay_path = self.out / "bot_overlay.json"
            self.overlay_path.write_text(json.dumps(overlay, indent=2))
            try:
                self.start_bot()
                lag = now_ms() - s.start_ms
                if lag > 0:
                    logger.warning("the bot became ready %.0f simulated s after the window opened (raise --warmup)", lag / 1000)
                while now_ms() < s.start_ms:
                    time.sleep(min(self.sim_s(0.2), (s.start_ms - now_ms()) / 1000 + 0.001))
                if s.faults:
                    self._set_faults(s.faults)
                self.start_trading()
                kill_ms = None if s.kill_at is None else s.start_ms + int((s.end_ms - s.start_ms) * s.kill_at)
                self._progress_loop(kill_ms)
                self._snapshot_bot()
                self.stop_bot()
                # The venue after the bot stopped: a snapshot taken while it still runs can miss its last
                # orders (stop takes simulated minutes at high speed) and then disagree with its database.
                self._snapshot_venue(gw.url)
            except BaseException:
                # Never leave a bot trading after the supervisor failed (or was interrupted).
                self._kill_orphan()
                raise
        meta = {
            "mode": s.mode, "speed": s.speed, "start_ms": s.start_ms, "end_ms": s.end_ms, "pairs": s.pairs,
            "strategy": s.strategy, "simulated_s": (s.end_ms - s.start_ms) / 1000, "events": self.events,
            "faults": s.faults, "kill_at": s.kill_at, "compute": self.compute_report(),
            "strategy_sha256": self.strategy_sha256, "upstream": s.upstream,
            "relay_poll_s": self.relay_poll_s() if s.upstream else None,
        }
        (self.out / "session.json").write_text(json.dumps(meta, indent=2))
        return meta

    def _set_faults(self, text: str) -> None:
        from simulation.gateway.faults import FaultSpec

        spec = FaultSpec.parse(text, seed=self.spec.seed).describe()
        requests.put(f"{self.gateway_url}/sim/faults", json=spec, headers=self.admin_headers, timeout=self.sim_s(30)).raise_for_status()
        self.event("faults_on", faults=spec)

    def _sample_cpu(self) -> None:
        """Real CPU seconds (kernel accounting: not scaled by faketime) of the bot and the gateway,
        first and last reading per process inside the window; a restarted bot is a new process."""
        for role, pid in (("bot", self.bot.pid if self.bot and self.bot.poll() is None else None), ("gateway", self.gateway_pid)):
            if pid is None:
                continue
            try:
                t = psutil.Process(pid).cpu_times()
            except psutil.Error:
                continue
            used = t.user + t.system + t.children_user + t.children_system
            first_last = self._cpu.setdefault((role, pid), [used, used])
            first_last[1] = used

    def compute_report(self) -> dict:
        """The bot's own compute in wall time, apart from the simulated delays it causes."""
        s = self.spec
        wall = (s.end_ms - s.start_ms) / 1000 / s.speed
        cpu = {role: sum(b - a for (r, _), (a, b) in self._cpu.items() if r == role) for role in ("bot", "gateway")}
        loop_s = float(json.loads(self.overlay_path.read_text()).get("internals", {}).get("process_throttle_secs", 5))
        loops = max(1.0, (s.end_ms - s.start_ms) / 1000 / loop_s)
        report = {
            "window_wall_s": round(wall, 2), "bot_cpu_s": round(cpu["bot"], 2), "gateway_cpu_s": round(cpu["gateway"], 2),
            "bot_cpu_share": round(cpu["bot"] / wall, 3) if wall > 0 else None,
            "gateway_cpu_share": round(cpu["gateway"] / wall, 3) if wall > 0 else None,
            "bot_loop_interval_wall_ms": round(loop_s / s.speed * 1000, 2),
            "bot_compute_per_loop_wall_ms": round(cpu["bot"] / loops * 1000, 2),
        }
        report["keeps_up"] = report["bot_compute_per_loop_wall_ms"] < 0.1 * report["bot_loop_interval_wall_ms"]
        if not report["keeps_up"]:
            logger.warning("the bot computed %.1f ms of wall time per %.1f ms loop at x%g (%.0f%% of a core): its simulated "
                           "delays include that compute x%g; a faithful run needs a lower --speed",
                           report["bot_compute_per_loop_wall_ms"], report["bot_loop_interval_wall_ms"], s.speed,
                           100 * (report["bot_cpu_share"] or 0), s.speed)
        return report

    def _progress_loop(self, kill_ms: int | None) -> None:
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        s = self.spec
        total = (s.end_ms - s.start_ms) / 1000
        with Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.fields[clock]}"),
                      TimeRemainingColumn(), transient=not sys.stdout.isatty(), disable=not sys.stdout.isatty()) as bar:
            task = bar.add_task(f"{s.mode} x{s.speed:g}", total=total, clock="")
            logged = -1  # without a terminal the bar is off: a plain log line every 10% instead
            while (t := now_ms()) < s.end_ms:
                done = int(10 * (t - s.start_ms) / 1000 / total)
                if not sys.stdout.isatty() and done > logged:
                    logged = done
                    logger.info("window %d%% done, simulated clock %s", 10 * done, time.strftime("%Y-%m-%d %H:%M", time.gmtime(t / 1000)))
                if self.bot and self.bot.poll() is not None:
                    raise RuntimeError(f"freqtrade died (exit {self.bot.returncode}); see {self.out / 'freqtrade.log'}")
                self._sample_cpu()
                if kill_ms is not None and t >= kill_ms:
                    kill_ms = None
                    self.kill_bot()
                    self.restart_bot()
                    self.start_trading()
                bar.update(task, completed=min(total, (t - s.start_ms) / 1000),
                           clock=time.strftime("%Y-%m-%d %H:%M", time.gmtime(t / 1000)))
                time.sleep(min(self.sim_s(0.5), max(0.001, (s.end_ms - t) / 1000)))
        self._sample_cpu()
        self.event("window_closed")

    def _snapshot_bot(self) -> None:
        """The bot's own view at the window's end (needs the bot running): status, profit and its analyzed
        candles per pair (the indicator diff compares them with the backtest's)."""
        try:
            (self.out / "bot_status.json").write_text(json.dumps({"status": self.client.status(), "profit": self.client.profit()}, default=str))
            candles = {pair: self.client.pair_candles(pair, self.spec.timeframe) for pair in self.spec.pairs}
            (self.out / "bot_candles.json").write_text(json.dumps(candles, default=str))
        except (requests.RequestException, ValueError) as exc:
            logger.warning("could not read the bot's final status: %s", exc)

    def _snapshot_venue(self, url: str) -> None:
        """What the operator would look at on the venue side: metrics and the venue's order records."""
        (self.out / "metrics.prom").write_text(requests.get(f"{url}/metrics", timeout=self.sim_s(30)).text)
        if self.spec.mode == "paper":
            (self.out / "venue_orders.json").write_text(requests.get(f"{url}/sim/orders", headers=self.admin_headers, timeout=self.sim_s(30)).text)


def main(argv: list[str] | None = None) -> int:
    """Entry point inside faketime: `python -m simulation.run.session SPEC.json`."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    spec = RunSpec.load(Path((argv or sys.argv[1:])[0]))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the cleanup (no orphaned bot) on SIGTERM too
    Session(spec).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
