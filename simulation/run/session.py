"""One simulated trading session: gateway + stock `freqtrade trade` on one session clock.

The supervisor runs in real time and drives the session clock (`simulation.run.sessionclock`): every
process it starts (gateway, relay upstream, bot) reads that clock through libfaketime, so they agree on
"now" without touching freqtrade, and the bot's database holds session (historical) timestamps,
directly comparable with the backtest. Every wait here is a wait on that clock: `clock.run(...)`.
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

from simulation.freqtrade_runner import LOG_COLUMNS, run_freqtrade
from simulation.gateway import GatewayProcess
from simulation.gateway.process import free_port
from simulation.gateway.server import ADMIN_HEADER, ADMIN_TOKEN_ENV
from simulation.paths import REPO_ROOT
from simulation.run.bot_config import API_USER, bot_overlay
from simulation.run.sessionclock import SessionClock, make_clock
from simulation.run.spec import RunSpec, strategy_digest
from simulation.timeframes import interval_ms
from simulation.venue.auth import KEY_ENV, SECRET_ENV

logger = logging.getLogger("simulation.run")
HTTP_TIMEOUT_S = 30.0  # the supervisor's requests to the bot and the gateway (real seconds)
HEALTH_EVERY_MS = 300_000  # session time between checks that the bot's loop still runs
HUNG_AFTER_LOOPS = 24  # no bot loop for this many throttle intervals (session time): the bot hangs
# ... and for at least this many wall seconds: on the constant clock one slow loop (0.5 s of compute on a
# busy machine) is 150 session s at x300, which is a stretched loop, not a hung bot
HUNG_AFTER_WALL_S = 120.0


API_PORT_ATTEMPTS = 5


class ApiPortTaken(RuntimeError):
    """freqtrade's API server could not bind its port (another process took it first)."""


class SessionFailed(RuntimeError):
    """The session could not complete (the bot died, hung or never came up); nothing is compared."""


class Session:
    def __init__(self, spec: RunSpec, clock: SessionClock | None = None, backtest=None) -> None:
        """`backtest`: the window's backtest trades (simulation.run.live.backtest_frame), known before a
        replayed session: the live comparison at each candle close uses them (None: the bot's figures only)."""
        self.spec = spec
        self.backtest = backtest
        self.out = spec.out_dir
        self.out.mkdir(parents=True, exist_ok=True)
        self.clock = clock or make_clock(spec.clock, self.out, spec.speed, interval_ms(spec.timeframe))
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
            self.env.update(
                {
                    KEY_ENV: key,
                    SECRET_ENV: secret,
                    "FREQTRADE__EXCHANGE__KEY": key,
                    "FREQTRADE__EXCHANGE__SECRET": secret,
                }
            )
        self.bot: subprocess.Popen | None = None
        self.gateway_pid: int | None = None
        self.strategy_sha256: str | None = None
        self._cpu: dict[tuple[str, int], list[float]] = {}
        self._cpu_wall: list[float] = []
        self.events: list[dict] = []
        self.api_url = f"http://127.0.0.1:{self.api_port}"
        self.client = FtRestClient(self.api_url, API_USER, self.password, timeout=HTTP_TIMEOUT_S)

    def event(self, kind: str, **info) -> None:
        self.events.append({"time_ms": self.clock.now_ms(), "event": kind, **info})
        logger.info("%s %s", kind, info or "")

    # -- processes ------------------------------------------------------------------------
    def replay_args(self) -> list[str]:
        """This spec's market replayed as a live exchange: the bot's gateway, or a relay's local upstream."""
        s = self.spec
        return [
            *s.source_args(),
            "--pairs",
            *s.pairs,
            "--replay",
            "--replay-start",
            "now",
            "--seed",
            str(s.seed),
            "--path-model",
            s.path_model,
            "--path-seed",
            str(s.path_seed),
        ]

    def relay_poll_s(self) -> float:
        """Upstream poll period on the session's clock: 2 s (what a polling relay does), and at most 5
        polls per wall second on a constant clock (each poll is 2 requests per pair and timeframe)."""
        return max(2.0, self.spec.speed / 5)

    def gateway_args(self, upstream_url: str | None = None) -> list[str]:
        s = self.spec
        if s.upstream:
            exchange = "binance" if s.upstream == "local" else s.upstream
            args = [
                "--upstream",
                exchange,
                "--pairs",
                *s.pairs,
                "--record",
                str(s.recording),
                "--relay-timeframes",
                *s.timeframes(),
                "--relay-poll",
                f"{self.relay_poll_s():g}",
                "--relay-history",
                str(s.relay_history),
                "--upstream-timeout",
                f"{10 * s.speed:g}",
                "--seed",
                str(s.seed),
                "--request-log",
                str(self.out / "requests.csv"),
            ]
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

    def _gateway(
        self, args: list[str], role: str, log: Path, startup_s: float, env: dict | None = None
    ) -> GatewayProcess:
        return GatewayProcess(
            args,
            log_path=log,
            startup_timeout=startup_s,
            env=env,
            spawn=lambda cmd, env, **popen: self.clock.spawn(cmd, role, env, **popen),
            wait=lambda seconds: self.clock.run(wall_timeout=seconds),
        )

    def _bot_alive(self) -> None:
        if self.bot is not None and self.bot.poll() is not None:
            raise SessionFailed(f"freqtrade exited with {self.bot.returncode}; see {self.out / 'freqtrade.log'}")

    def _use_api_port(self, port: int) -> None:
        """The bot's API port, in its overlay and in our client."""
        self.api_port = port
        self.api_url = f"http://127.0.0.1:{port}"
        self.client = FtRestClient(self.api_url, API_USER, self.password, timeout=HTTP_TIMEOUT_S)
        overlay = bot_overlay(self.spec, self.gateway_url, port, str((self.out / "tradesv3.sqlite").resolve()))
        self.overlay_path.write_text(json.dumps(overlay, indent=2))

    def start_bot(self, startup_s: float = 300.0) -> None:
        """Start freqtrade and wait for its API. A port taken between choosing and binding it (another
        process on a busy machine) is chosen again: freqtrade would otherwise run on without its API, and
        whoever holds the port would answer our pings."""
        self._use_api_port(self.api_port)
        for attempt in range(API_PORT_ATTEMPTS):
            try:
                self._start_bot_once(startup_s)
                return
            except ApiPortTaken:
                if self.bot is not None and self.bot.poll() is None:
                    self.bot.kill()
                    self.bot.wait()
                self.event("bot_api_port_taken", port=self.api_port, attempt=attempt + 1)
                if attempt == API_PORT_ATTEMPTS - 1:
                    raise SessionFailed(f"no free port for the bot's API after {API_PORT_ATTEMPTS} tries") from None
                self._use_api_port(free_port())

    def _start_bot_once(self, startup_s: float) -> None:
        self.strategy_sha256 = strategy_digest(self.spec.strategy)  # the code the bot loads now
        if not (self.spec.userdir / "strategies").is_dir():
            run_freqtrade(["create-userdir", "--userdir", str(self.spec.userdir)], self.out / "userdir.log")
        # stock freqtrade through its own entry point; the launcher only adds the clock's wake handler
        cmd = [
            sys.executable,
            "-m",
            "simulation.run.bot_launcher",
            "trade",
            "--config",
            self.spec.config,
            "--config",
            str(self.overlay_path),
            "--userdir",
            str(self.spec.userdir),
        ]
        log_path = self.out / "freqtrade.log"
        offset = log_path.stat().st_size if log_path.exists() else 0
        with open(log_path, "a") as log:
            self.bot = self.clock.spawn(
                cmd, "bot", self.env, launcher=True, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT
            )
        taken = f"error while attempting to bind on address ('127.0.0.1', {self.api_port})"
        seen = {"pos": offset, "tail": ""}

        def ready() -> bool:
            with open(log_path, errors="replace") as fh:  # what the bot logged since the last look
                fh.seek(seen["pos"])
                text = seen["tail"] + fh.read()
                seen["pos"], seen["tail"] = fh.tell(), text[-200:]
            if taken in text:  # uvicorn could not bind: freqtrade runs on without its API
                raise ApiPortTaken(self.api_port)
            if self.bot.poll() is not None:
                raise SessionFailed(
                    f"freqtrade exited with {self.bot.returncode} during startup; see {self.out / 'freqtrade.log'}"
                )
            try:  # FtRestClient.ping() reports "not_running" for a stopped bot: ask the endpoint itself
                return requests.get(f"{self.api_url}/api/v1/ping", timeout=5).json() == {"status": "pong"}
            except (requests.RequestException, ValueError):
                return False

        if not self.clock.run(stop=ready, every_s=0.5, wall_timeout=startup_s):
            raise SessionFailed(
                f"freqtrade's API did not come up within {startup_s:.0f} s; see {self.out / 'freqtrade.log'}"
            )
        self.event("bot_ready", pid=self.bot.pid)

    def restart_bot(self, attempts: int = 3) -> None:
        """Start the bot again as a supervisor would (docker's restart policy): freqtrade exits when it
        cannot load the markets through injected faults, so a failed start is retried, each one logged."""
        for attempt in range(1, attempts + 1):
            try:
                self.start_bot()
                return
            except SessionFailed as exc:
                # a freqtrade that gave up may hang in its shutdown (its websocket thread): stop it first
                if self.bot is not None and self.bot.poll() is None:
                    self.bot.kill()
                    self.bot.wait()
                self.event("bot_start_failed", attempt=attempt, error=str(exc))
                if attempt == attempts:
                    raise

    def start_trading(self) -> None:
        self._trading_since = self.clock.now_ms()
        reply = self.client.start()
        self.event("bot_started", reply=reply)

    def kill_bot(self) -> None:
        assert self.bot is not None
        os.kill(self.bot.pid, signal.SIGKILL)
        self.bot.wait()
        self.clock.release(self.bot.pid)
        self.event("bot_killed", signal="SIGKILL", pid=self.bot.pid)

    def stop_bot(self) -> None:
        if self.bot and self.bot.poll() is None:
            self.bot.send_signal(signal.SIGINT)
            # freqtrade's shutdown can wait on timed lock waits, which never time out under libfaketime (its
            # clock_nanosleep is faked, glibc's sem_clockwait is not): after 20 s the bot is killed
            if not self.clock.run(stop=lambda: self.bot.poll() is not None, every_s=0.1, wall_timeout=20):
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
        """The session; on failure session.json holds the reason (and SessionFailed is raised)."""
        self.clock.start(self.spec.fake_start_ms)
        try:
            with contextlib.ExitStack() as stack:
                upstream_url = None
                if self.spec.upstream == "local":
                    up = self._gateway(self.replay_args(), "upstream", self.out / "upstream.log", 120)
                    upstream_url = stack.enter_context(up).url
                    self.event("upstream_ready", url=upstream_url)
                return self._run(upstream_url)
        except BaseException as exc:
            reason = str(exc) if isinstance(exc, SessionFailed) else f"{type(exc).__name__}: {exc}"
            (self.out / "session.json").write_text(
                json.dumps(
                    {"failed": reason, "events": self.events, "clock": self.clock.report()}, indent=2, default=str
                )
            )
            raise
        finally:
            self.clock.close()

    def _run(self, upstream_url: str | None) -> dict:
        s = self.spec
        # the relay fetches its history at start: give it the time a live exchange's pages take
        gw = self._gateway(
            self.gateway_args(upstream_url), "gateway", self.out / "gateway.log", 300 if s.upstream else 120, self.env
        )
        with gw:
            self.gateway_url = gw.url
            self.gateway_pid = gw.proc.pid
            self.overlay_path = self.out / "bot_overlay.json"
            try:
                self.start_bot()
                lag = self.clock.now_ms() - s.start_ms
                if lag > 0:
                    logger.warning(
                        "the bot became ready %.0f session s after the window opened (raise --warmup)", lag / 1000
                    )
                self.clock.run(until_ms=s.start_ms, stop=lambda: self._bot_alive() or False, every_s=0.5)
                if s.faults:
                    self._set_faults(s.faults)
                self.start_trading()
                kill_ms = None if s.kill_at is None else s.start_ms + int((s.end_ms - s.start_ms) * s.kill_at)
                self._progress_loop(kill_ms)
                self._snapshot_bot()
                self.stop_bot()
                # The venue after the bot stopped: a snapshot taken while it still runs can miss its last
                # orders and then disagree with its database.
                self._snapshot_venue(gw.url)
            except BaseException:
                # Never leave a bot trading after the supervisor failed (or was interrupted).
                self._kill_orphan()
                raise
        meta = {
            "mode": s.mode,
            "clock": s.clock,
            "speed": s.speed,
            "start_ms": s.start_ms,
            "end_ms": s.end_ms,
            "pairs": s.pairs,
            "strategy": s.strategy,
            "simulated_s": (s.end_ms - s.start_ms) / 1000,
            "events": self.events,
            "faults": s.faults,
            "kill_at": s.kill_at,
            "compute": self.compute_report(),
            "strategy_sha256": self.strategy_sha256,
            "upstream": s.upstream,
            "relay_poll_s": self.relay_poll_s() if s.upstream else None,
            "clock_report": self.clock.report(),
        }
        (self.out / "session.json").write_text(json.dumps(meta, indent=2))
        return meta

    def _set_faults(self, text: str) -> None:
        from simulation.gateway.faults import FaultSpec

        spec = FaultSpec.parse(text, seed=self.spec.seed).describe()
        requests.put(
            f"{self.gateway_url}/sim/faults", json=spec, headers=self.admin_headers, timeout=HTTP_TIMEOUT_S
        ).raise_for_status()
        self.event("faults_on", faults=spec)

    def _sample_cpu(self) -> None:
        """Real CPU seconds (kernel accounting: not scaled by faketime) of the bot and the gateway,
        first and last reading per process inside the window; a restarted bot is a new process."""
        for role, pid in (
            ("bot", self.bot.pid if self.bot and self.bot.poll() is None else None),
            ("gateway", self.gateway_pid),
        ):
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
        """The bot's own compute in real time, apart from the session delays it causes."""
        s = self.spec
        wall = self._cpu_wall[1] - self._cpu_wall[0] if len(self._cpu_wall) == 2 else 0.0
        cpu = {role: sum(b - a for (r, _), (a, b) in self._cpu.items() if r == role) for role in ("bot", "gateway")}
        loop_s = float(json.loads(self.overlay_path.read_text()).get("internals", {}).get("process_throttle_secs", 5))
        loops = max(1.0, (s.end_ms - s.start_ms) / 1000 / loop_s)
        report = {
            "window_wall_s": round(wall, 2),
            "bot_cpu_s": round(cpu["bot"], 2),
            "gateway_cpu_s": round(cpu["gateway"], 2),
            "bot_cpu_share": round(cpu["bot"] / wall, 3) if wall > 0 else None,
            "gateway_cpu_share": round(cpu["gateway"] / wall, 3) if wall > 0 else None,
            "bot_compute_per_loop_wall_ms": round(cpu["bot"] / loops * 1000, 2),
            # a session's wall time against the compute it held: 1.0 means the clock itself cost nothing
            "wall_per_compute": round(wall / (cpu["bot"] + cpu["gateway"]), 3)
            if cpu["bot"] + cpu["gateway"] > 0
            else None,
        }
        per_candle = self.clock.per_candle_cpu.get("bot") or []
        if per_candle:
            import numpy as np

            q = np.percentile(per_candle, [50, 90])
            report["bot_cpu_per_candle_s"] = {
                "p50": round(float(q[0]), 4),
                "p90": round(float(q[1]), 4),
                "max": round(max(per_candle), 4),
                "n": len(per_candle),
            }
        if s.clock == "constant":  # compute stretched by the speed: a loop's compute against its wall interval
            report["bot_loop_interval_wall_ms"] = round(loop_s / s.speed * 1000, 2)
            report["keeps_up"] = report["bot_compute_per_loop_wall_ms"] < 0.1 * report["bot_loop_interval_wall_ms"]
            if not report["keeps_up"]:
                logger.warning(
                    "the bot computed %.1f ms of wall time per %.1f ms loop at x%g (%.0f%% of a core): its session "
                    "delays include that compute x%g; a faithful run needs the compute clock or a lower --speed",
                    report["bot_compute_per_loop_wall_ms"],
                    report["bot_loop_interval_wall_ms"],
                    s.speed,
                    100 * (report["bot_cpu_share"] or 0),
                    s.speed,
                )
        else:  # the compute clock charges compute as it happens: the bot always keeps up
            report["keeps_up"] = True
        return report

    def _check_health(self, loop_s: float) -> None:
        """freqtrade's own /health: when did its loop last run (session time)? A bot whose loop stopped
        for many throttle intervals hangs: the session ends with that reason instead of a result."""
        try:
            health = self.client.health() or {}
        except (requests.RequestException, ValueError):
            return  # the API may be busy; the next check decides
        # no loop yet: count from the moment trading started
        last = float(health.get("last_process_ts") or self._trading_since / 1000)
        idle = self.clock.now_ms() / 1000 - last
        if idle > max(HUNG_AFTER_LOOPS * loop_s, HUNG_AFTER_WALL_S * max(1.0, self.spec.speed)):
            raise SessionFailed(
                f"the bot hangs: its last loop ran {idle:.0f} session s ago (throttle {loop_s:g} s); "
                f"see {self.out / 'freqtrade.log'}"
            )

    def _progress_loop(self, kill_ms: int | None) -> None:
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        s = self.spec
        total = (s.end_ms - s.start_ms) / 1000
        loop_s = float(json.loads(self.overlay_path.read_text()).get("internals", {}).get("process_throttle_secs", 5))
        self._sample_cpu()
        self._cpu_wall = [time.monotonic()]
        tty = sys.stdout.isatty()
        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[clock]}"),
            TimeRemainingColumn(),
            transient=not tty,
            disable=not tty,
        ) as bar:
            task = bar.add_task(f"{s.mode}, {self.clock.describe().split(':')[0]} clock", total=total, clock="")
            logged, next_health = -1, s.start_ms + HEALTH_EVERY_MS  # without a terminal: a log line every 10%
            tf = interval_ms(s.timeframe)
            live = self._live_comparison()
            next_live = (s.start_ms // tf + 1) * tf
            while (t := self.clock.now_ms()) < s.end_ms:
                done = int(10 * (t - s.start_ms) / 1000 / total)
                if not tty and done > logged:
                    logged = done
                    logger.info(
                        "window %d%% done, session clock %s",
                        10 * done,
                        time.strftime("%Y-%m-%d %H:%M", time.gmtime(t / 1000)),
                    )
                if kill_ms is not None and t >= kill_ms:
                    kill_ms = None
                    self.kill_bot()
                    self.restart_bot()
                    self.start_trading()
                if t >= next_health:
                    self._check_health(loop_s)
                    next_health = t + HEALTH_EVERY_MS
                if t >= next_live:
                    self._update_live(live, t, tf)
                    next_live = (t // tf + 1) * tf
                bar.update(
                    task,
                    completed=min(total, (t - s.start_ms) / 1000),
                    clock=time.strftime("%Y-%m-%d %H:%M", time.gmtime(t / 1000)),
                )
                marks = [s.end_ms, next_health, next_live, t + int(total * 100)] + (
                    [kill_ms] if kill_ms is not None else []
                )
                self.clock.run(
                    until_ms=min(marks),
                    stop=lambda: self._bot_alive() or self._sample_cpu() or False,
                    every_s=0.5,
                    wall_timeout=0.5,
                )
        self._sample_cpu()
        self._cpu_wall.append(time.monotonic())
        self.event("window_closed")

    def _live_comparison(self):
        from simulation.run.live import LiveComparison

        return LiveComparison(self.spec.userdir / "live_comparison.json", self.spec.metrics_port)

    def _update_live(self, live, now_ms: int, tf: int) -> None:
        """The rolling comparison at a candle close (the bot's closed trades, 500 per page, and its open
        ones through its REST API); never stops the session."""
        from simulation.run.live import figures

        s = self.spec
        try:
            raw: list[dict] = []
            while True:
                page = self.client.trades(limit=500, offset=len(raw))
                raw += page.get("trades") or []
                if not page.get("trades") or len(raw) >= int(page.get("total_trades") or 0):
                    break
            raw += list(self.client.status() or [])
            values = figures(now_ms, s.start_ms, s.end_ms, tf, s.wallet, self.backtest, raw)
            live.publish(values)
        except Exception:
            logger.exception("live comparison at %d failed; the session goes on", now_ms)

    def _snapshot_bot(self) -> None:
        """The bot's own view at the window's end (needs the bot running): status, profit and its analyzed
        candles per pair (the indicator diff compares them with the backtest's)."""
        try:
            (self.out / "bot_status.json").write_text(
                json.dumps({"status": self.client.status(), "profit": self.client.profit()}, default=str)
            )
            candles = {pair: self._pair_candles(pair) for pair in self.spec.pairs}
            (self.out / "bot_candles.json").write_text(json.dumps(candles, default=str))
            if missing := [pair for pair, answer in candles.items() if answer is None]:
                logger.warning("the bot's API gave no analysed candles for %s: recorded as missing", ", ".join(missing))
        except (requests.RequestException, ValueError) as exc:
            logger.warning("could not read the bot's final status: %s", exc)

    def _pair_candles(self, pair: str, tries: int = 5) -> dict | None:
        """freqtrade-client answers None when the API cannot be reached (a busy bot at a high speed-up):
        ask again a few times before the pair is recorded as having no frame."""
        for attempt in range(tries):
            if (answer := self.client.pair_candles(pair, self.spec.timeframe)) is not None:
                return answer
            time.sleep(1.0 + attempt)
        return None

    def _snapshot_venue(self, url: str) -> None:
        """What the operator would look at on the venue side: metrics and the venue's order records."""
        (self.out / "metrics.prom").write_text(requests.get(f"{url}/metrics", timeout=HTTP_TIMEOUT_S).text)
        if self.spec.mode == "paper":
            (self.out / "venue_orders.json").write_text(
                requests.get(f"{url}/sim/orders", headers=self.admin_headers, timeout=HTTP_TIMEOUT_S).text
            )
