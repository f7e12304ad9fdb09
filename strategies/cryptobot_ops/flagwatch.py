"""Wake a thread the moment a file appears in a directory (Linux inotify through libc), else after a
timeout: the emergency watcher sees the operator's file at once instead of at its next poll, and a
session clock sees a thread blocked in select() without a timer to stop at.

Falls back to sleeping the timeout where inotify is unavailable (other platforms, a full watch table).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import select
import time
from pathlib import Path

logger = logging.getLogger(__name__)

IN_ATTRIB, IN_CLOSE_WRITE, IN_MOVED_TO, IN_CREATE = 0x4, 0x8, 0x80, 0x100


class FlagWatch:
    def __init__(self, directory: Path) -> None:
        self.fd: int | None = None
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
            if fd < 0:
                raise OSError(ctypes.get_errno(), "inotify_init1")
            mask = IN_CREATE | IN_MOVED_TO | IN_CLOSE_WRITE | IN_ATTRIB
            if libc.inotify_add_watch(fd, os.fsencode(Path(directory)), mask) < 0:
                os.close(fd)
                raise OSError(ctypes.get_errno(), f"inotify_add_watch {directory}")
            self.fd = fd
        except (OSError, AttributeError) as exc:
            logger.warning("no inotify for %s (%s): the emergency watcher polls instead", directory, exc)

    def wait(self, timeout_s: float) -> None:
        """Return when something was created or written in the directory, or after `timeout_s`."""
        if self.fd is None:
            time.sleep(timeout_s)
            return
        ready, _, _ = select.select([self.fd], [], [], timeout_s)
        if ready:
            with contextlib.suppress(BlockingIOError):
                while os.read(self.fd, 4096):  # drain: the caller looks at the file itself
                    pass

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
