"""Signal handlers that only enqueue; the supervisor's loop does the work.

The wake-up fd makes a signal interrupt the loop's poll at once.
"""

from __future__ import annotations

import os
import signal
from collections import deque

HANDLED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class SignalQueue:
    def __init__(self) -> None:
        self.received: deque[int] = deque(maxlen=64)
        self.read_fd, self._write_fd = os.pipe()
        os.set_blocking(self.read_fd, False)
        os.set_blocking(self._write_fd, False)

    def install(self) -> None:
        signal.set_wakeup_fd(self._write_fd, warn_on_full_buffer=False)
        for signum in HANDLED:
            signal.signal(signum, self._enqueue)

    def _enqueue(self, signum: int, frame: object) -> None:
        self.received.append(signum)

    def drain(self) -> list[int]:
        try:
            while os.read(self.read_fd, 512):
                pass
        except BlockingIOError:
            pass
        taken = list(self.received)
        self.received.clear()
        return taken

    def close(self) -> None:
        signal.set_wakeup_fd(-1)
        for signum in HANDLED:
            signal.signal(signum, signal.SIG_DFL)
        os.close(self.read_fd)
        os.close(self._write_fd)
