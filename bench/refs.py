"""The references the product is measured against, side by side: a bare Starlette endpoint
under uvicorn, and Redis (Debian's redis-server) with `appendonly yes`, `appendfsync always`.

Each is started fresh for one case, on loopback, and waited for on its own readiness line.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import threading
from pathlib import Path

from harness import PYTHON

BENCH = Path(__file__).resolve().parent
REDIS_SERVER = "/usr/bin/redis-server"
READY_TIMEOUT_S = 30.0


class _Process:
    """A server subprocess whose output is read on a thread, to wait for a ready line."""

    def __init__(self, argv: list[str], ready: str, cwd: Path, pass_fds: tuple[int, ...] = ()
                 ) -> None:
        self.process = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True, pass_fds=pass_fds,
                                        start_new_session=True)
        self.lines: list[str] = []
        self._ready = threading.Event()
        threading.Thread(target=self._read, args=(ready,), daemon=True).start()
        if not self._ready.wait(READY_TIMEOUT_S) or self.process.poll() is not None:
            self.process.kill()
            raise RuntimeError(f"{argv[0]} did not start:\n" + "\n".join(self.lines[-30:]))

    def _read(self, ready: str) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip())
            if ready in line:
                self._ready.set()
        self._ready.set()

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


class BareStarlette(_Process):
    """bench/bare_app.py under uvicorn on a socket opened here (no port race)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4096)
        self.url = "http://127.0.0.1:%d" % self.sock.getsockname()[1]
        fd = self.sock.fileno()
        # Not `uvicorn --fd`: that takes the socket for AF_UNIX, so TCP_NODELAY is never set
        # and every response waits ~40 ms for a delayed ACK.
        super().__init__([str(PYTHON), "bare_app.py", str(fd)], "Application startup complete",
                         BENCH, pass_fds=(fd,))

    def stop(self) -> None:
        super().stop()
        self.sock.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer(_Process):
    """A fresh redis-server: AOF on and fsynced on every write, no RDB snapshots."""

    def __init__(self) -> None:
        if shutil.which(REDIS_SERVER) is None:
            raise RuntimeError(f"{REDIS_SERVER} not found: apt-get install redis-server")
        self.dir = Path(tempfile.mkdtemp(prefix="gortms-redis-", dir="/tmp"))
        self.port = free_port()
        super().__init__([REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1",
                          "--dir", str(self.dir), "--appendonly", "yes",
                          "--appendfsync", "always", "--save", "", "--logfile", "",
                          "--daemonize", "no", "--protected-mode", "yes"],
                         "Ready to accept connections", self.dir)

    def stop(self) -> None:
        super().stop()
        shutil.rmtree(self.dir, ignore_errors=True)
