"""Wake a thread the moment one file appears in a directory (Linux inotify through libc), else after a
timeout: the emergency watcher sees the operator's file at once instead of at its next poll.

Only events for that file's own name wake it: the directory also holds files the bot writes all the
time (the shared ledger, its WAL), and waking on those made the watcher query the ledger, which wrote
the directory again: a loop that spun a core (found in a simulated session, 2026-12-06).
Falls back to sleeping the timeout where inotify is unavailable (other platforms, a full watch table).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import select
import struct
import time
from pathlib import Path

logger = logging.getLogger(__name__)

IN_ATTRIB, IN_CLOSE_WRITE, IN_MOVED_TO, IN_CREATE = 0x4, 0x8, 0x80, 0x100
EVENT = struct.Struct("iIII")  # struct inotify_event: wd, mask, cookie, len; then len bytes of name


def event_names(buffer: bytes) -> list[bytes]:
    """The file names of the events in one read of an inotify descriptor."""
    names, at = [], 0
    while at + EVENT.size <= len(buffer):
        _, _, _, length = EVENT.unpack_from(buffer, at)
        names.append(buffer[at + EVENT.size : at + EVENT.size + length].rstrip(b"\0"))
        at += EVENT.size + length
    return names


class FlagWatch:
    def __init__(self, flag: Path) -> None:
        self.name = os.fsencode(Path(flag).name)
        self.fd: int | None = None
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
            if fd < 0:
                raise OSError(ctypes.get_errno(), "inotify_init1")
            mask = IN_CREATE | IN_MOVED_TO | IN_CLOSE_WRITE | IN_ATTRIB
            if libc.inotify_add_watch(fd, os.fsencode(Path(flag).parent), mask) < 0:
                os.close(fd)
                raise OSError(ctypes.get_errno(), f"inotify_add_watch {Path(flag).parent}")
            self.fd = fd
        except (OSError, AttributeError) as exc:
            logger.warning("no inotify for %s (%s): the emergency watcher polls instead", flag, exc)

    def wait(self, timeout_s: float) -> bool:
        """True as soon as the flag file was created, moved in or written; False after `timeout_s`."""
        if self.fd is None:
            time.sleep(timeout_s)
            return False
        deadline = time.monotonic() + timeout_s
        while (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([self.fd], [], [], left)
            if not ready:
                return False
            names: list[bytes] = []
            with contextlib.suppress(BlockingIOError):
                while chunk := os.read(self.fd, 65536):
                    names += event_names(chunk)
            if self.name in names:
                return True
        return False

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
