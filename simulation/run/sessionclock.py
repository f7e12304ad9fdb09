"""The session clock: one clock for every process of a simulated session, driven by the supervisor.

Every process of a session (gateway, bot, relay upstream) runs under Debian's libfaketime and reads
one shared clock; freqtrade is not modified. Two kinds:

- `compute` (the default): session time runs at the real rate (1 s per second) while anything
  computes, and jumps ahead while everything waits, to the next moment something is due: the bot's
  next wake-up (its throttle sleep, FreqAI's retraining scan), the gateway's next timer (a request's
  sampled latency, a stream push at a candle close, the venue's next matching tick, a relay poll) or
  the supervisor's next event (window start and end, a scheduled kill). The bot's compute is charged
  as it happens, its idle time costs nothing: a signal reaches the order after the compute a live bot
  would spend on it.
- `constant`: session time runs at `speed` times the real rate throughout, the bot's compute
  included (it is stretched by the same factor); reproduces the runs made before the compute clock.

How the compute clock works. libfaketime reads the time from a file (`@<time>`) on every call
(FAKETIME_NO_CACHE), anchored at one start instant all processes share (the `faketime` wrapper's
shared memory, FAKETIME_DONT_RESET), so the supervisor moves every process's clock by rewriting the
file. It jumps only when every thread of every process is blocked (thread states in /proc, and no CPU
used meanwhile: the processes' CPU clocks did not move), to the earliest deadline it can read: the
gateway's event loop publishes its next timer (`simulation.clock.DeadlineBoard`), and every thread
sleeping in `clock_nanosleep` with an absolute deadline (Python's `time.sleep`) has it in its syscall
arguments (/proc/PID/task/TID/syscall and the process's memory). After a jump it interrupts those
waits with `simulation.clock.WAKE_SIGNAL` so that they are retried against the new time: the bot's
launcher (`simulation.run.bot_launcher`) first makes the process reload the time, then the other
sleeping threads are woken. Timers of event loops inside the bot (its API server's ticks, websocket
keep-alives, request timeouts) are not deadlines here: after a jump they may fire late in session
time, which changes nothing the session measures.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import platform
import select
import shutil
import subprocess
import sys
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path

from simulation.clock import BOARD_ENV, WAKE_SIGNAL, DeadlineBoard
from simulation.paths import REPO_ROOT
from simulation.run.bot_launcher import ACK_FD_ENV

logger = logging.getLogger("simulation.run")

CLOCKS = ("compute", "constant")
# syscall numbers per architecture: the compute clock reads the waits from /proc, and signals with tgkill
SYSCALLS = {
    "x86_64": {"clock_nanosleep": 230, "futex": 202, "tgkill": 234, "epoll": (232, 281, 441)},
    "aarch64": {"clock_nanosleep": 115, "futex": 98, "tgkill": 131, "epoll": (22, 441)},
}
TIMER_ABSTIME, CLOCK_REALTIME, CLOCK_MONOTONIC = 1, 0, 1
FUTEX_WAIT_BITSET, FUTEX_CMD_MASK, FUTEX_CLOCK_REALTIME = 9, 0x7F, 256
# A timed lock wait (Python's Lock.acquire(timeout=...), Event.wait(timeout)) goes through glibc's
# sem_clockwait, which libfaketime does not wrap: its absolute deadline reaches the kernel in session time
# (epoch seconds), where the real monotonic clock counts seconds since boot, so it would never time out.
# A monotonic futex deadline this far beyond the real clock is one of those: a session-time deadline.
FAKE_DOMAIN_NS = 365 * 86_400 * 1_000_000_000
BLOCKED_STATES = frozenset(b"STtZXI")  # sleeping, stopped, traced, dead: not runnable, not in a disk wait
# The supervisor's idle check: every 100 us right after a jump, backing off to 0.5 ms while the processes
# compute. (Measured on the e2e window: spinning on the CPU clocks instead, or a 2 ms back-off, cost
# more wall time; the processes' CPU clocks move only at a tick, so they cannot tell "quiet" anyway.)
POLL_MIN_S, POLL_MAX_S = 0.0001, 0.0005
# A jump lands this far past the deadline, so that the interrupted wait, recomputed against the new time,
# finds it due (its own deadline was taken a few microseconds after it was published).
JUMP_SLACK_NS = 50_000
ACK_TIMEOUT_S = 0.05


class ClockUnavailable(RuntimeError):
    """The session clock cannot be installed here (one line for the user, before anything starts)."""


def check_available(kind: str, speed: float | None = None) -> None:
    """Refuse an unknown clock, a non-positive speed or a platform the clock cannot run on."""
    if kind not in CLOCKS:
        raise ClockUnavailable(f"unknown clock {kind!r}: choose one of {', '.join(CLOCKS)}")
    if speed is not None and not speed > 0:
        raise ClockUnavailable(f"--speed must be positive, got {speed:g}")
    if not sys.platform.startswith("linux"):
        raise ClockUnavailable(f"the session clock needs Linux (libfaketime); this is {sys.platform}")
    if shutil.which("faketime") is None:
        raise ClockUnavailable(
            "the session clock needs Debian's `faketime` (make setup installs it: apt-get install faketime)"
        )
    if kind == "compute":
        if platform.machine() not in SYSCALLS:
            raise ClockUnavailable(
                f"the compute clock reads syscalls of {', '.join(SYSCALLS)} only; this is "
                f"{platform.machine()} (use --clock constant)"
            )
        if not os.access(f"/proc/{os.getpid()}/syscall", os.R_OK):
            raise ClockUnavailable(
                "the compute clock needs /proc/PID/syscall (a kernel with CONFIG_HAVE_ARCH_TRACEHOOK)"
            )


_LIBC = ctypes.CDLL(None, use_errno=True)


def cpu_clock_id(pid: int) -> int:
    """The clock id of another process's CPU time (clock_getcpuclockid)."""
    clk = ctypes.c_int()
    if _LIBC.clock_getcpuclockid(pid, ctypes.byref(clk)) != 0:
        raise OSError(f"no CPU clock for pid {pid}")
    return clk.value


def _format(ns: int) -> str:
    """libfaketime's absolute start format, to the nanosecond ('@' + strptime's %Y-%m-%d %T + .fraction)."""
    return "@" + time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ns // 1_000_000_000)) + f".{ns % 1_000_000_000:09d}"


class SessionClock(ABC):
    """One clock for a session's processes; the supervisor reads it in real time and drives it."""

    name: str

    def __init__(self, workdir: Path, candle_ms: int | None = None) -> None:
        self.dir = Path(workdir) / "clock"
        self.candle_ns = None if candle_ms is None else int(candle_ms) * 1_000_000
        self.roles: dict[int, tuple[str, int]] = {}  # pid -> (role, its CPU clock id)
        self._boundary: tuple[int, dict[str, int]] | None = None
        self.per_candle_cpu: dict[str, list[float]] = {}  # role -> CPU seconds per candle interval
        self.t0_ns = 0
        self.start_real_ns = 0  # the shared start instant S, real time (ns)
        self._host: subprocess.Popen | None = None
        self._env: dict[str, str] = {}
        self.wall_s = 0.0  # real seconds spent in run()
        self.simulated_s = 0.0  # session seconds those covered

    # -- set-up --------------------------------------------------------------------------------
    def start(self, start_ms: int) -> None:
        """Start the clock at session time `start_ms` (now)."""
        check_available(self.name, getattr(self, "speed", None))
        self.dir.mkdir(parents=True, exist_ok=True)
        self.t0_ns = int(start_ms) * 1_000_000
        self._prepare()
        env = {**os.environ, "TZ": "UTC", "FAKETIME_DONT_RESET": "1", "PYTHONPATH": str(REPO_ROOT)}
        # -m: the thread-safe libfaketime. A bot's threads read the clock at once (a thread waiting for the
        # GIL reads it without holding the GIL), and the plain library's file parsing shares static buffers:
        # a clash made one read fall back to the real clock (measured: a throttle sleep of 2.7 years).
        self._host = subprocess.Popen(
            ["faketime", "-m", "-f", self._host_spec(), sys.executable, "-m", "simulation.run.clock_host"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO_ROOT,
            env=env,
        )
        ready, _, _ = select.select([self._host.stdout], [], [], 30)
        first = json.loads(self._host.stdout.readline() or "{}") if ready else {"error": "no answer within 30 s"}
        if "error" in first or not first:
            self.close()
            raise ClockUnavailable(f"faketime did not start the clock host: {first.get('error', 'it exited')}")
        self._env = {**first, "FAKETIME_DONT_RESET": "1", "TZ": "UTC"}
        self.start_real_ns = self._handshake()

    def _handshake(self, rounds: int = 25) -> int:
        """The shared start instant from the host's clock, bracketed by real time (best of `rounds`)."""
        best = None
        for _ in range(rounds):
            r1 = time.time_ns()
            self._host.stdin.write("\n")
            self._host.stdin.flush()
            fake = int(self._host.stdout.readline())
            r2 = time.time_ns()
            if best is None or r2 - r1 < best[0]:
                best = (r2 - r1, (r1 + r2) // 2, fake)
        _, real, fake = best
        return real - int((fake - self.t0_ns) / self._host_rate())

    def env(self, role: str) -> dict[str, str]:
        """What a process needs in its environment to run on this clock."""
        return dict(self._env)

    def release(self, pid: int) -> None:
        """Stop watching a process (it exited or was killed)."""
        self.roles.pop(pid, None)

    def _account(self, proc: subprocess.Popen, role: str) -> subprocess.Popen:
        """Count the process's CPU per candle under its role (kernel accounting: faketime does not scale it)."""
        with contextlib.suppress(OSError):
            self.roles[proc.pid] = (role, cpu_clock_id(proc.pid))
        return proc

    def spawn(
        self, cmd: list[str], role: str, env: dict[str, str], *, launcher: bool = False, **popen
    ) -> subprocess.Popen:
        """Start a process of the session on this clock and watch it."""
        full = {k: v for k, v in env.items() if not k.startswith("FAKETIME") and k not in (BOARD_ENV, ACK_FD_ENV)}
        full.update(self.env(role))
        return self._account(subprocess.Popen(cmd, env=full, **popen), role)

    def _count_candles(self) -> None:
        """At each candle boundary of session time: the CPU each role used since the previous one."""
        if self.candle_ns is None:
            return
        index = self.now_ns() // self.candle_ns
        if self._boundary is not None and index == self._boundary[0]:
            return
        cpu: dict[str, int] = {}
        for pid, (role, clock_id) in list(self.roles.items()):
            try:
                cpu[role] = cpu.get(role, 0) + time.clock_gettime_ns(clock_id)
            except OSError:  # exited: its CPU leaves the count (a restart is a new process)
                self.roles.pop(pid, None)
        if self._boundary is not None and index == self._boundary[0] + 1:
            for role, ns in cpu.items():
                if role in self._boundary[1]:
                    self.per_candle_cpu.setdefault(role, []).append((ns - self._boundary[1][role]) / 1e9)
        self._boundary = (index, cpu)

    def close(self) -> None:
        if self._host is not None and self._host.poll() is None:
            with contextlib.suppress(OSError):
                self._host.stdin.close()
            try:
                self._host.wait(10)
            except subprocess.TimeoutExpired:
                self._host.kill()
                self._host.wait()

    # -- time ----------------------------------------------------------------------------------
    @abstractmethod
    def now_ns(self) -> int:
        """Session time now (ns)."""

    def now_ms(self) -> int:
        return self.now_ns() // 1_000_000

    def run(
        self,
        until_ms: int | None = None,
        *,
        stop: Callable[[], bool] | None = None,
        every_s: float = 0.2,
        wall_timeout: float | None = None,
    ) -> bool:
        """Let the session run until session time `until_ms`, `stop()` (checked every `every_s` of real
        time) is true, or `wall_timeout` real seconds passed (then False). Idle time is skipped only up
        to `until_ms`: without it the session runs at the real rate."""
        until_ns = None if until_ms is None else int(until_ms) * 1_000_000
        t0, sim0 = time.monotonic(), self.now_ns()
        next_check = t0
        try:
            while True:
                now = self.now_ns()
                if until_ns is not None and now >= until_ns:
                    return True
                wall = time.monotonic()
                if wall >= next_check:
                    if stop is not None and stop():
                        return True
                    if wall_timeout is not None and wall - t0 > wall_timeout:
                        return False
                    next_check = wall + every_s
                self._count_candles()
                self._step(until_ns, max(0.0, next_check - time.monotonic()))
        finally:
            self.wall_s += time.monotonic() - t0
            self.simulated_s += (self.now_ns() - sim0) / 1e9

    @abstractmethod
    def _step(self, limit_ns: int | None, max_wait_s: float) -> None:
        """Advance a little: wait (and, for the compute clock, jump when allowed)."""

    def describe(self) -> str:
        return self.name

    def report(self) -> dict:
        return {
            "clock": self.name,
            "description": self.describe(),
            "wall_s": round(self.wall_s, 2),
            "simulated_s": round(self.simulated_s, 2),
            "effective_speed": round(self.simulated_s / self.wall_s, 2) if self.wall_s > 0 else None,
        }

    # -- kinds -----------------------------------------------------------------------------------
    @abstractmethod
    def _prepare(self) -> None: ...

    @abstractmethod
    def _host_spec(self) -> str: ...

    def _host_rate(self) -> float:
        return 1.0


class ConstantClock(SessionClock):
    """Session time at `speed` times the real rate, compute included (libfaketime's `@T xSPEED`)."""

    name = "constant"

    def __init__(self, workdir: Path, speed: float, candle_ms: int | None = None) -> None:
        super().__init__(workdir, candle_ms)
        self.speed = float(speed)

    def _prepare(self) -> None:
        pass

    def _host_spec(self) -> str:
        return f"{_format(self.t0_ns)} x{self.speed:g}"

    def _host_rate(self) -> float:
        return self.speed

    def env(self, role: str) -> dict[str, str]:
        return {**self._env, "FAKETIME": self._host_spec()}

    def now_ns(self) -> int:
        return self.t0_ns + int((time.time_ns() - self.start_real_ns) * self.speed)

    def _step(self, limit_ns: int | None, max_wait_s: float) -> None:
        left = max_wait_s if limit_ns is None else min(max_wait_s, (limit_ns - self.now_ns()) / 1e9 / self.speed)
        time.sleep(max(0.0005, left))

    def describe(self) -> str:
        return f"constant x{self.speed:g}: every second of compute costs {self.speed:g} session seconds"


class _Watched:
    """A process on the compute clock: its CPU clock, its threads' states and sleeps (all from /proc)."""

    def __init__(self, proc: subprocess.Popen, role: str, board: Path | None, ack_fd: int | None) -> None:
        self.proc, self.pid, self.role = proc, proc.pid, role
        self.cpu_clock = cpu_clock_id(self.pid)
        self.board_path, self.board_fd = board, None
        self.ack_fd = ack_fd  # read end of the launcher's acknowledgement pipe
        self.ready = ack_fd is None and board is None  # may it be signalled (its handler installed)?
        self.fds: dict[int, tuple[int, int, int]] = {}  # tid -> (stat, syscall, schedstat) file descriptors
        self.mem: int | None = None
        # tid -> (times scheduled when seen, session-time deadline): a sleep keeps the deadline it had in
        # session time while the thread has not run since, whatever jumps happened meanwhile
        self.sleeps: dict[int, tuple[bytes, int]] = {}
        self.board_due: int | None = None
        self._nlink: int | None = None

    def cpu_ns(self) -> int:
        return time.clock_gettime_ns(self.cpu_clock)

    def check_ready(self) -> bool:
        """Its wake handler is installed: the launcher's first byte, or the gateway's board exists."""
        if self.ready:
            return True
        if self.ack_fd is not None:
            if select.select([self.ack_fd], [], [], 0)[0] and os.read(self.ack_fd, 64):
                self.ready = True
        elif self.board_path is not None and self.board_path.exists():
            self.board_fd = os.open(self.board_path, os.O_RDONLY)
            self.ready = True
        return self.ready

    def _threads(self) -> None:
        """Keep a file per thread open; the task directory is listed again only when its link count
        (2 + the number of threads) moved."""
        try:
            nlink = os.stat(f"/proc/{self.pid}/task").st_nlink
            if nlink == self._nlink:
                return
            tids = {int(t) for t in os.listdir(f"/proc/{self.pid}/task")}
        except FileNotFoundError:
            nlink, tids = None, set()
        self._nlink = nlink
        for tid in set(self.fds) - tids:
            for fd in self.fds.pop(tid):
                os.close(fd)
            self.sleeps.pop(tid, None)
        for tid in tids - set(self.fds):
            opened = []
            try:
                for name in ("stat", "syscall", "schedstat"):
                    opened.append(os.open(f"/proc/{self.pid}/task/{tid}/{name}", os.O_RDONLY))
            except FileNotFoundError:  # gone meanwhile
                for fd in opened:
                    os.close(fd)
                continue
            self.fds[tid] = tuple(opened)

    def blocked(self, epoll_nrs: tuple[int, ...]) -> tuple[bytes, ...] | None:
        """Every thread blocked (none running or runnable; a process with a board waits in its loop):
        the threads' schedule counts, else None. Two equal answers mean no thread ran in between (a
        thread that runs is scheduled in: its count moves), whatever the CPU clocks show (the kernel
        adds a running thread's time to its process's clock only at a tick)."""
        self._threads()
        counts = []
        for tid, (stat, sysc, sched) in self.fds.items():
            try:
                raw = os.pread(stat, 512, 0)
                counts.append(os.pread(sched, 128, 0).split()[-1])
            except (OSError, IndexError):  # the thread exited meanwhile: list the threads again
                self._nlink = None
                continue
            if raw and raw[raw.rindex(b")") + 2] not in BLOCKED_STATES:
                return None
            if (
                tid == self.pid
                and self.board_fd is not None
                and self._syscall(sysc)[:1] not in ([n] for n in epoll_nrs)
            ):
                return None  # blocked elsewhere for a moment (a file write): its board is not the wait in progress
        return tuple(counts)

    @staticmethod
    def _syscall(fd: int) -> list[int]:
        """[number, arg1 ... arg6] of the syscall the thread is blocked in ([] when it is running)."""
        try:
            fields = os.pread(fd, 256, 0).split()
            return [int(fields[0])] + [int(f, 16) for f in fields[1:7]] if fields and fields[0].isdigit() else []
        except (OSError, ValueError, IndexError):
            return []

    def _timespec(self, addr: int) -> int | None:
        if self.mem is None:
            self.mem = os.open(f"/proc/{self.pid}/mem", os.O_RDONLY)
        try:
            raw = os.pread(self.mem, 16, addr)
        except OSError:
            return None
        return int.from_bytes(raw[:8], "little", signed=True) * 1_000_000_000 + int.from_bytes(
            raw[8:], "little", signed=True
        )

    def _wait_deadline(
        self, call: list[int], nrs: dict, to_session: Callable[[int, int], int], real_mono: int
    ) -> int | None:
        """The session-time deadline of the wait a thread is blocked in, when it has one we can read."""
        if len(call) >= 4 and call[0] == nrs["clock_nanosleep"]:  # time.sleep: libfaketime converted it to real time
            if call[2] & TIMER_ABSTIME and call[1] in (CLOCK_REALTIME, CLOCK_MONOTONIC):
                real = self._timespec(call[3])
                return None if real is None else to_session(call[1], real)
        elif (
            len(call) >= 5
            and call[0] == nrs["futex"]
            and call[2] & FUTEX_CMD_MASK == FUTEX_WAIT_BITSET
            and not call[2] & FUTEX_CLOCK_REALTIME
            and call[4]
        ):
            value = self._timespec(call[4])  # a timed lock wait: still in session time (see FAKE_DOMAIN_NS)
            if value is not None and value > real_mono + FAKE_DOMAIN_NS:
                return value
        return None

    def deadlines(self, nrs: dict, to_session: Callable[[int, int], int], real_mono: int) -> list[int]:
        """Session-time deadlines of this process: its board's, every thread sleeping in clock_nanosleep
        with an absolute deadline (Python's time.sleep) and every timed lock wait."""
        out = []
        if self.board_fd is not None:
            self.board_due = DeadlineBoard.read(self.board_fd)
            if self.board_due is not None:
                out.append(self.board_due)
        for tid, (_, sysc, sched) in self.fds.items():
            try:
                runs = os.pread(sched, 128, 0).split()[-1]
            except (OSError, IndexError):
                continue
            known = self.sleeps.get(tid)
            if known is not None and known[0] == runs:  # asleep since we last read it: same session deadline
                out.append(known[1])
                continue
            self.sleeps.pop(tid, None)
            # it began the wait after our last jump, so libfaketime converted it with the current time
            due = self._wait_deadline(self._syscall(sysc), nrs, to_session, real_mono)
            if due is not None:
                self.sleeps[tid] = (runs, due)
                out.append(due)
        return out

    def runs(self, tid: int) -> bytes | None:
        """How many times the thread has been scheduled (None: it is gone)."""
        fds = self.fds.get(tid)
        try:
            return os.pread(fds[2], 128, 0).split()[-1] if fds else None
        except (OSError, IndexError):
            return None

    def due(self, target: int) -> tuple[bool, list[int]]:
        """(its event loop is due, sleeping threads due) at session time `target`."""
        return (
            self.board_due is not None and self.board_due <= target,
            [tid for tid, (_, d) in self.sleeps.items() if d <= target],
        )

    def close(self) -> None:
        for fd in [*(f for fds in self.fds.values() for f in fds), self.mem, self.board_fd, self.ack_fd]:
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.fds, self.mem, self.board_fd, self.ack_fd = {}, None, None, None


class ComputeClock(SessionClock):
    """Session time at the real rate while anything computes; a jump to the next deadline while all wait."""

    name = "compute"

    def __init__(self, workdir: Path, candle_ms: int | None = None) -> None:
        super().__init__(workdir, candle_ms)
        # every process reads the clock file at every clock call: on tmpfs when there is one
        shm = Path("/dev/shm")
        self.shm = (
            Path(tempfile.mkdtemp(prefix="cryptobot-clock-", dir=shm))
            if shm.is_dir() and os.access(shm, os.W_OK)
            else None
        )
        self.file = (self.shm or self.dir) / "faketime"
        self.t_ns = 0  # the file's time: session time = t_ns + (real - start_real_ns)
        self.procs: dict[int, _Watched] = {}
        self._nr = SYSCALLS.get(platform.machine(), {})
        self._poll = POLL_MIN_S
        self.jumps, self.skipped_ns, self.late_acks = 0, 0, 0
        self._signalled: set[tuple[int, int, int]] = set()
        # (pid, tid) -> times scheduled when signalled: until a woken thread has run, the processes are
        # not quiescent (measured: a check right after a signal found the thread still blocked)
        self._woken: dict[tuple[int, int], bytes | None] = {}

    def _prepare(self) -> None:
        self.t_ns = self.t0_ns
        self._write()

    def _host_spec(self) -> str:
        return _format(self.t0_ns)

    def _write(self) -> None:
        tmp = self.file.with_suffix(".tmp")
        tmp.write_text(_format(self.t_ns) + "\n")
        os.replace(tmp, self.file)  # readers see the old or the new line, never half of one

    def _board(self, role: str) -> Path:
        return (self.shm or self.dir) / f"{role}.board"

    def env(self, role: str) -> dict[str, str]:
        board = self._board(role)
        return {**self._env, "FAKETIME_TIMESTAMP_FILE": str(self.file), "FAKETIME_NO_CACHE": "1", BOARD_ENV: str(board)}

    def spawn(
        self, cmd: list[str], role: str, env: dict[str, str], *, launcher: bool = False, **popen
    ) -> subprocess.Popen:
        """`launcher`: the process runs `simulation.run.bot_launcher` (it acknowledges wake signals);
        otherwise it is one of ours that publishes its event loop's deadlines (`session_event_loop`)."""
        board = self._board(role)
        board.unlink(missing_ok=True)
        full = {k: v for k, v in env.items() if not k.startswith("FAKETIME") and k not in (BOARD_ENV, ACK_FD_ENV)}
        full.update(self.env(role))
        if not launcher:
            proc = subprocess.Popen(cmd, env=full, **popen)
            self.procs[proc.pid] = _Watched(proc, role, board, None)
            return self._account(proc, role)
        full.pop(BOARD_ENV)
        r, w = os.pipe()
        os.set_blocking(r, False)
        full[ACK_FD_ENV] = str(w)
        try:
            proc = subprocess.Popen(cmd, env=full, pass_fds=(w,), **popen)
        except BaseException:
            os.close(r)
            raise
        finally:
            os.close(w)
        self.procs[proc.pid] = _Watched(proc, role, None, r)
        return self._account(proc, role)

    def release(self, pid: int) -> None:
        """Stop watching a process (it exited or was killed)."""
        super().release(pid)
        watched = self.procs.pop(pid, None)
        if watched is not None:
            watched.close()

    def close(self) -> None:
        for pid in list(self.procs):
            self.release(pid)
        super().close()
        if self.shm is not None:
            shutil.rmtree(self.shm, ignore_errors=True)

    def now_ns(self) -> int:
        return self.t_ns + (time.time_ns() - self.start_real_ns)

    # -- the supervisor's loop -------------------------------------------------------------------
    def _cpu(self) -> list[int] | None:
        out = []
        for pid, p in list(self.procs.items()):
            try:  # a process that exited counts as blocked (state Z) until it is reaped
                out.append(p.cpu_ns())
            except OSError:  # reaped: not a participant any more
                self.release(pid)
                return None
        return out

    def _quiescent(self) -> bool:
        """Every process ready for wake signals, every thread blocked, and no CPU used while we looked."""
        if not self.procs or not all(p.check_ready() for p in self.procs.values()):
            return False
        for key, runs in list(self._woken.items()):
            p = self.procs.get(key[0])
            now_runs = None if p is None else p.runs(key[1])
            if now_runs is not None and now_runs == runs:
                return False
            del self._woken[key]
        before = self._cpu()
        if before is None:
            return False
        first = [p.blocked(self._nr["epoll"]) for p in self.procs.values()]
        if any(c is None for c in first):
            return False
        again = [p.blocked(self._nr["epoll"]) for p in self.procs.values()]
        return again == first and self._cpu() == before

    def _deadline(self, limit_ns: int | None) -> int | None:
        rt, mo = time.time_ns(), time.monotonic_ns()
        now = self.t_ns + (rt - self.start_real_ns)

        def to_session(clock_id: int, real: int) -> int:
            return now + real - (mo if clock_id == CLOCK_MONOTONIC else rt)

        candidates = [] if limit_ns is None else [limit_ns]
        for p in self.procs.values():
            candidates += p.deadlines(self._nr, to_session, mo)
        # a deadline just past is a wait about to end (its real timer has not fired yet): no jump then
        return min(candidates) if candidates else None

    def _tgkill(self, pid: int, tid: int) -> None:
        p = self.procs.get(pid)
        self._woken[(pid, tid)] = None if p is None else p.runs(tid)
        _LIBC.syscall(self._nr["tgkill"], pid, tid, WAKE_SIGNAL)

    def _wake(self, now: int) -> bool:
        """Interrupt the waits due by session time `now` (once each), so that they are retried against
        the current time. Waits not due yet sleep on: their wall-clock deadline is late after a jump,
        but their session deadline is known and they are woken when the clock reaches it."""
        woke = False
        for p in self.procs.values():
            loop_due, tids = p.due(now)
            loop_due = loop_due and self._first_signal(p.pid, 0, p.board_due)
            tids = [t for t in tids if self._first_signal(p.pid, t, p.sleeps[t][1])]
            if p.ack_fd is not None and tids:
                others = [t for t in tids if t != p.pid]
                with contextlib.suppress(OSError):
                    os.read(p.ack_fd, 4096)
                self._tgkill(p.pid, p.pid)  # the launcher's handler makes the process load the new time
                if others:  # ... before the other threads retry their sleeps
                    if not select.select([p.ack_fd], [], [], ACK_TIMEOUT_S)[0]:
                        self.late_acks += 1
                    with contextlib.suppress(OSError):
                        os.read(p.ack_fd, 4096)
                tids = others
                woke = True
            if loop_due:
                self._tgkill(p.pid, p.pid)  # the event loop's thread recomputes its wait against the new time
                woke = True
            for tid in tids:
                self._tgkill(p.pid, tid)
                woke = True
        return woke

    def _first_signal(self, pid: int, tid: int, deadline: int) -> bool:
        key = (pid, tid, deadline)
        if key in self._signalled:
            return False
        if len(self._signalled) > 4096:
            self._signalled.clear()
        self._signalled.add(key)
        return True

    def _step(self, limit_ns: int | None, max_wait_s: float) -> None:
        """Without a limit (the supervisor waits for something to happen, e.g. a process to start) the
        clock runs at the real rate: an idle process's far timer (aiohttp wakes once an hour) must not
        carry the session away from the time the supervisor set it up for."""
        if limit_ns is not None and self._quiescent():
            target = self._deadline(limit_ns)
            now = self.now_ns()
            if target is not None and target > now:
                jump = target + (JUMP_SLACK_NS if target != limit_ns else 0) - now
                self.t_ns += jump
                self._write()
                self.jumps += 1
                self.skipped_ns += jump
            # whatever is due now is woken (a wait begun before a jump would end late on its own)
            if self._wake(self.now_ns()) or (target is not None and target > now):
                self._poll = POLL_MIN_S
                return
            self._poll = POLL_MIN_S
            wait = self._poll
        else:
            self._poll = min(POLL_MAX_S, self._poll * 1.5)
            wait = self._poll
        time.sleep(min(wait, max_wait_s) if max_wait_s > 0 else wait)

    def describe(self) -> str:
        return "compute: session time at the real rate while anything computes, jumps while all wait"

    def report(self) -> dict:
        out = super().report()
        sim = out["simulated_s"]
        out.update(
            {
                "jumps": self.jumps,
                "skipped_s": round(self.skipped_ns / 1e9, 2),
                "skipped_share": round(self.skipped_ns / 1e9 / sim, 4) if sim > 0 else None,
                "late_wake_acks": self.late_acks,
            }
        )
        return out


class WallClock(SessionClock):
    """No fake clock at all: a live upstream trades on the wall clock."""

    name = "wall"

    def start(self, start_ms: int) -> None:
        self.t0_ns = int(start_ms) * 1_000_000

    def env(self, role: str) -> dict[str, str]:
        return {}

    def now_ns(self) -> int:
        return time.time_ns()

    def _step(self, limit_ns: int | None, max_wait_s: float) -> None:
        left = max_wait_s if limit_ns is None else min(max_wait_s, (limit_ns - self.now_ns()) / 1e9)
        time.sleep(max(0.001, left))

    def _prepare(self) -> None:
        pass

    def _host_spec(self) -> str:
        return ""

    def describe(self) -> str:
        return "wall: the real clock (a live market)"


def make_clock(kind: str, workdir: Path, speed: float | None = None, candle_ms: int | None = None) -> SessionClock:
    if kind == "wall":
        return WallClock(workdir)
    check_available(kind, speed)
    if kind == "constant":
        return ConstantClock(workdir, speed if speed is not None else 100.0, candle_ms)
    return ComputeClock(workdir, candle_ms)
