"""Child: one `python -m shard` or `python -m gateway` process, restarted in place.

It owns the process handle, the restart backoff and the liveness record (last answer to a
ping, or last heartbeat), and knows how to stop and kill its process.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

BACKOFF_FIRST_S = 0.1
BACKOFF_MAX_S = 3.0
STABLE_AFTER_S = 30.0  # a child that ran this long starts its backoff over


@dataclass
class Child:
    role: str  # "shard" | "gateway"
    index: int
    args: list[str]  # module arguments besides the settings and parent pid
    settings_json: bytes
    keep_fds: tuple[int, ...] = ()
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    ready: bool = False
    last_seen: float = 0.0  # monotonic time of the last ping answer or heartbeat
    failures: int = 0
    restarts: int = 0
    restart_at: float | None = None
    killed: bool = False  # SIGKILL sent to the current process (it is hung or too slow)
    retiring_until: float | None = None  # asked to stop for a rolling restart, by then
    extra_fds: list[int] = field(default_factory=list)  # passed to this spawn only

    @property
    def name(self) -> str:
        return f"{self.role}-{self.index}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def start(self) -> None:
        read_fd, write_fd = os.pipe()
        os.write(write_fd, self.settings_json)  # small: fits the pipe buffer
        os.close(write_fd)
        command = [sys.executable, "-m", self.role, *self.args, "--settings-fd", str(read_fd),
                   "--parent-pid", str(os.getpid())]
        try:
            # A process group of its own: a terminal's Ctrl-C reaches the supervisor only,
            # which then stops the children in order.
            self.process = subprocess.Popen(command, pass_fds=(read_fd, *self.keep_fds,
                                                               *self.extra_fds),
                                            process_group=0)
        finally:
            os.close(read_fd)
        self.started_at = self.last_seen = time.monotonic()
        self.ready = False
        self.restart_at = None
        self.killed = False
        self.retiring_until = None
        log.info("%s started (pid %d)", self.name, self.process.pid)

    def exited(self) -> int | None:
        """The exit code if the process has ended (reaped), else None."""
        if self.process is None:
            return None
        return self.process.poll()

    def schedule_restart(self, now: float) -> float:
        ran_for = now - self.started_at
        self.failures = 1 if ran_for > STABLE_AFTER_S else self.failures + 1
        delay = min(BACKOFF_FIRST_S * 2 ** (self.failures - 1), BACKOFF_MAX_S)
        self.restart_at = now + delay
        self.restarts += 1
        self.process = None
        self.ready = False
        return delay

    def signal(self, signum: int) -> None:
        if self.process is not None and self.process.poll() is None:
            try:
                os.kill(self.process.pid, signum)
            except ProcessLookupError:
                pass

    def kill(self) -> None:
        self.killed = True
        self.signal(signal.SIGKILL)

    def wait(self, timeout_s: float) -> bool:
        """Wait for the process to end; True if it did."""
        if self.process is None:
            return True
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            return False
        return True

    def describe(self) -> dict[str, object]:
        state = "serving" if self.ready else ("restarting" if self.process is None
                                              else "starting")
        return {"role": self.role, "index": self.index, "pid": self.pid, "state": state,
                "restarts": self.restarts}
