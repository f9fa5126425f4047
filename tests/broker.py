"""A real broker in a temp dir on a free port: the one harness of the tests and of bench/.

`start_broker()` runs `python -m gortms serve` (supervisor, shards, gateway workers) with
port 0 and waits for its "GoRTMS started successfully" line; the URL comes from the
"listening on" line. Its output is kept, so a failure shows what the broker said. `src`
runs another source tree (bench/ measures a commit from a `git archive` snapshot).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx2
import orjson
import psutil

STARTUP_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 60.0
ROOT = Path(__file__).resolve().parent.parent

BASE_ENV = {
    "GORTMS_HTTP_PORT": "0",
    "GORTMS_SHARDS_COUNT": "2",
    "GORTMS_GATEWAY_WORKERS": "1",
    "GORTMS_GENERAL_LOGLEVEL": "info",  # the ready and URL lines are INFO
}


def unique(prefix: str) -> str:
    """A fresh domain/queue/group name, so tests sharing a broker never collide."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@dataclass
class Broker:
    process: subprocess.Popen[str]
    data_dir: Path
    lines: list[str] = field(default_factory=list)
    url: str = ""
    _changed: threading.Condition = field(default_factory=threading.Condition)

    # --- output -------------------------------------------------------------------------------

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        self.process.stdout.close()
        with self._changed:
            self._changed.notify_all()

    def wait_for_line(self, pattern: str, timeout_s: float = STARTUP_TIMEOUT_S,
                      after: int = 0) -> re.Match[str]:
        """Block until a line (from index `after` on) matches `pattern`."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while True:
                for line in self.lines[after:]:
                    match = regex.search(line)
                    if match:
                        return match
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (self.process.poll() is not None
                                      and not self._reader_alive()):
                    raise AssertionError(f"no line matching {pattern!r} within {timeout_s}s; "
                                         f"broker said:\n{self.output()}")
                self._changed.wait(remaining)

    def _reader_alive(self) -> bool:
        return any(t.name == f"broker-{self.process.pid}" and t.is_alive()
                   for t in threading.enumerate())

    def output(self, last: int = 200) -> str:
        with self._changed:
            return "\n".join(self.lines[-last:])

    # --- processes ----------------------------------------------------------------------------

    def state(self) -> dict:
        return orjson.loads((self.data_dir / "run" / "state.json").read_bytes())

    def shard_pid(self, index: int) -> int:
        return self.state()["shards"][index]["pid"]

    def gateway_pid(self, worker: int = 0) -> int:
        return self.state()["gateways"][worker]["pid"]

    def pids(self) -> dict[str, int]:
        """{"supervisor": pid, "shard-0": pid, ..., "gateway-0": pid, ...}."""
        state = self.state()
        found = {"supervisor": state["pid"]}
        for child in state["shards"] + state["gateways"]:
            found[f"{child['role']}-{child['index']}"] = child["pid"]
        return found

    def restarts(self) -> int:
        state = self.state()
        return sum(c.get("restarts", 0) for c in state["shards"] + state["gateways"])

    def children(self) -> list[psutil.Process]:
        try:
            return psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def stop(self) -> int:
        """SIGTERM, then the exit code (killing everything if it does not stop in time)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(STOP_TIMEOUT_S)
            self._join_reader()
            return code
        except subprocess.TimeoutExpired:
            self.kill_tree()
            raise AssertionError(f"broker did not stop within {STOP_TIMEOUT_S}s:\n"
                                 f"{self.output()}") from None

    def kill_tree(self) -> None:
        """SIGKILL the supervisor and every child, like a power cut of the process tree.

        The supervisor is stopped first and killed last: killed first, its death would send
        the children SIGTERM (they ask for it, so none outlives it), and a child that gets
        to shut down cleanly before its SIGKILL lands is no power cut."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGSTOP)
        children = self.children()
        for proc in children:
            try:
                proc.kill()
            except psutil.NoSuchProcess:
                pass
        if self.process.poll() is None:
            self.process.kill()  # then init reaps the children, zombies while it was stopped
        # The supervisor is reaped by Popen (so its returncode is kept); the children are
        # not ours to reap, psutil just waits for them to be gone.
        self.process.wait(10)
        psutil.wait_procs(children, timeout=10)
        self._join_reader()

    def _join_reader(self) -> None:
        for thread in threading.enumerate():
            if thread.name == f"broker-{self.process.pid}":
                thread.join(10)

    # --- clients ------------------------------------------------------------------------------

    def client(self, timeout_s: float = 30.0) -> httpx2.Client:
        return httpx2.Client(base_url=self.url, timeout=timeout_s)


def start_broker(data_dir: Path, src: Path = ROOT, python: str = sys.executable,
                 **env: str) -> Broker:
    """`env`: GORTMS_* overrides; `src`: the source tree to run (default: this checkout)."""
    inherited = {k: v for k, v in os.environ.items() if k != "GORTMS_CONFIG"}
    full_env = {**inherited, **BASE_ENV, "GORTMS_GENERAL_DATADIR": str(data_dir), **env}
    if src != ROOT:  # ahead of the editable install; children inherit cwd and env
        full_env["PYTHONPATH"] = str(src)
    return launch([python, "-m", "gortms", "serve"], full_env, src, data_dir)


def launch(command: list[str], env: dict[str, str], cwd: Path | str, data_dir: Path) -> Broker:
    """Run `command` (a `gortms serve`) with exactly `env`, and wait until it serves: the
    one way tests start a broker, whatever environment or config file they give it."""
    process = subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    broker = Broker(process, data_dir)
    threading.Thread(target=broker._read, name=f"broker-{process.pid}", daemon=True).start()
    try:
        broker.wait_for_line(r"GoRTMS started successfully")
        broker.url = broker.wait_for_line(r"listening on (https?://[^\s\"]+)").group(1)
    except AssertionError:
        broker.kill_tree()
        raise
    return broker
