"""`python -m simulation.run.bot_launcher ARGS...`: stock `freqtrade ARGS...` on a session clock that
skips idle time.

freqtrade runs unchanged (its own entry point, `freqtrade.main.main`); the launcher only installs a
handler for the clock's wake signal before freqtrade starts. The supervisor sends it after it moved
the session clock forward while every thread of the bot waited: the handler reads the clock once,
which makes libfaketime load the new time for the whole process, so that every interrupted sleep is
retried against the new time (and ends when it is due instead of at its old wall-clock deadline). It
then acknowledges on a pipe the supervisor passed, so the supervisor wakes the bot's other threads
only after the process has seen the new time.
"""

from __future__ import annotations

import os
import signal
import sys
import time

from simulation.clock import WAKE_SIGNAL

ACK_FD_ENV = "CRYPTOBOT_CLOCK_ACK_FD"


def install_wake_handler() -> None:
    ack_fd = int(os.environ[ACK_FD_ENV]) if os.environ.get(ACK_FD_ENV) else None

    def wake(signum, frame) -> None:
        time.time()  # libfaketime re-reads the session clock here
        if ack_fd is not None:
            os.write(ack_fd, b"w")

    signal.signal(WAKE_SIGNAL, wake)
    if ack_fd is not None:
        os.write(ack_fd, b"r")  # ready: the supervisor may signal this process from now on


def main(argv: list[str] | None = None) -> None:
    install_wake_handler()
    from freqtrade.main import main as freqtrade_main

    freqtrade_main(sys.argv[1:] if argv is None else argv)  # exits with freqtrade's own code


if __name__ == "__main__":
    main()
