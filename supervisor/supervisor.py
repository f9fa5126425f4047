"""The supervisor's main loop: plan the children, start them, watch them, stop them in order.

    start:  data dir access (gortms.access) -> data dir lock -> shard count (cluster.json) ->
            listening socket -> shards (each answers a ping) -> gateway workers (each sends
            its first heartbeat) -> ready
    watch:  a child that exits is restarted with backoff; a shard that stops answering pings,
            or a gateway that stops its heartbeat, for supervisor.hangTimeout is killed and
            restarted; SIGHUP restarts the gateway workers one by one, each successor ready
            before the next worker stops
    stop:   (SIGTERM/SIGINT) gateways first (they finish their requests), then shards (they
            commit and close RocksDB), each stage bounded by supervisor.stopTimeout; exit 0

The supervisor never dies of its own bookkeeping: a run/state.json it cannot write (a full
disk) is logged once and retried every STATE_RETRY_S; an exception in a turn of its loop is
logged with its traceback (at most once a minute while it repeats), and the loop goes on
after LOOP_BACKOFF_S. Only a signal ends it.

Exit codes of `gortms serve` (ConfigError reaches gortms.cli, which prints it and exits 2):
    0   stopped by SIGTERM/SIGINT
    1   startup failed: a child failed STARTUP_ATTEMPTS times in a row or was not ready within
        STARTUP_TIMEOUT_S, a signal arrived during startup, or cluster.json could not be
        written (a full disk at the first start)
    2   bad configuration, including a data dir this process cannot write: read-only, or
        with files of another user (the message names the path); another broker on it; the
        port in use. A full disk is not one: it is a warning, and the broker starts.
"""

from __future__ import annotations

import fcntl
import logging
import os
import select
import signal
import socket
import time
from collections import deque

import psutil
import zmq

from gortms import __version__
from gortms.access import check_data_dir, ensure_data_dir
from gortms.config import Settings, to_json
from gortms.datadir import Layout, fix_shard_count, write_state
from gortms.errors import ConfigError
from gortms.partition import CATALOG_SHARD
from gortms.protocol import LogLevelSet
from supervisor.child import Child
from supervisor.faults import FailureStreak, Failures
from supervisor.levelwatch import LevelWatch
from supervisor.pinger import Pinger
from supervisor.reporter import Reporter
from supervisor.signals import SignalQueue
from gortms.secrets import ensure_secrets
from supervisor.tls import ensure_certificate

log = logging.getLogger("supervisor")

POLL_S = 0.1
STALL_S = 2.0  # a loop turn this late means the supervisor itself was not running
STARTUP_TIMEOUT_S = 60.0
STARTUP_ATTEMPTS = 5
STATE_RETRY_S = 1.0  # a run-state write that failed is tried again this often
LOOP_BACKOFF_S = 0.5  # pause after a loop turn that raised, so a persistent failure is no spin
LOOP_REPORT_S = 60.0  # a loop failure that repeats is logged (with traceback) this often


class StartupFailed(Exception):
    pass


class Supervisor:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.layout = Layout(settings.data_dir)
        self.signals = SignalQueue()
        self.shards: list[Child] = []
        self.gateways: list[Child] = []
        self.heartbeats: dict[int, int] = {}  # gateway index -> read end of its pipe
        self.listener: socket.socket | None = None
        self.pinger: Pinger | None = None
        self.url = ""
        self.should_exit = False
        self._lock_file = None
        self._last_ping = 0.0
        self.level_watch = LevelWatch(settings)
        self.reporter: Reporter | None = None
        self._last_step = time.monotonic()
        self.rolling: deque[Child] = deque()  # gateway workers still to restart (SIGHUP)
        self.rolling_child: Child | None = None
        self._state_retry_at: float | None = None  # run/state.json is out of date until then
        self._state_failures = FailureStreak(
            log, f"writing the run state {self.layout.state_file}",
            f"retrying every {STATE_RETRY_S:g}s; the children are still watched",
            level=logging.WARNING)
        self._turn_failures = FailureStreak(
            log, "a turn of the supervisor's loop", f"carrying on after {LOOP_BACKOFF_S:g}s",
            repeat_s=LOOP_REPORT_S, traceback=True)

    # --- start --------------------------------------------------------------------------------

    def run(self) -> int:
        settings = self.settings
        log.info("Starting GoRTMS %s...", __version__)
        log.info("Node ID: %s", settings.general.node_id)
        log.info("Data directory: %s", settings.data_dir)
        self.signals.install()
        try:
            self._prepare()
            self._start_all()
        except (StartupFailed, OSError) as exc:  # OSError: cluster.json, say, on a full disk
            log.error("startup failed: %s", exc)
            self._stop_all()
            self.signals.close()
            return 1
        self._write_state()
        log.info("GoRTMS started successfully")
        while not self.should_exit:
            self._turn()
        self._stop_all()
        self.signals.close()
        log.info("GoRTMS stopped")
        return 0

    def _prepare(self) -> None:
        settings = self.settings
        ensure_data_dir(self.layout)
        # Before anything is written: a data dir we cannot write is one clear ConfigError
        # (exit 2) here, rather than shards failing to open RocksDB until startup gives up.
        for warning in check_data_dir(self.layout):
            log.warning("data dir: %s", warning)
        self._lock_data_dir()
        count = fix_shard_count(self.layout, settings.shards.count,
                                psutil.cpu_count(logical=True) or 1)
        log.info("Shards: %d", count)
        self._prepare_socket_dir(self.layout.socket_dir())
        if settings.http.tls and not settings.http.cert_file:
            ensure_certificate(self.layout.tls_dir)
        # Also with authentication off: login and service accounts work the same (the seed's
        # examples), and their tokens and secrets hold once authentication is turned on.
        ensure_secrets(self.layout, settings.http.jwt.secret)
        settings_json = to_json(settings)
        endpoints = [self.layout.endpoints(i) for i in range(count)]
        self.shards = [Child("shard", i, ["--index", str(i)], settings_json)
                       for i in range(count)]
        self.pinger = Pinger([request for request, _ in endpoints],
                             settings.supervisor.hang_timeout)
        self.reporter = Reporter(endpoints[CATALOG_SHARD][0],
                                 float(settings.monitoring.interval), settings.general.node_id)
        if settings.http.enabled:
            self.listener = self._listen()
            self.gateways = [
                Child("gateway", k, ["--worker", str(k), "--shards", str(count),
                                     "--listen-fd", str(self.listener.fileno())],
                      settings_json, keep_fds=(self.listener.fileno(),))
                for k in range(settings.gateway.workers)]

    @staticmethod
    def _prepare_socket_dir(path: str) -> None:
        # It may be under /tmp (when the data dir is deep): make sure it is ours alone, so no
        # other user can sit between the gateways and the shards.
        os.makedirs(path, mode=0o700, exist_ok=True)
        info = os.lstat(path)
        if info.st_uid != os.getuid() or info.st_mode & 0o077 or not os.path.isdir(path):
            raise ConfigError([f"general.dataDir: the socket directory {path} is not a private "
                               "directory of this user; remove it or use a shorter data dir"])

    def _lock_data_dir(self) -> None:
        self._lock_file = open(self.layout.lock_file, "a+")
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError([f"general.dataDir: {self.settings.data_dir} is in use by another "
                               "running GoRTMS; stop it or choose another data dir"]) from None

    def _listen(self) -> socket.socket:
        http = self.settings.http
        family = socket.AF_INET6 if ":" in http.address else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((http.address, http.port))
        except OSError as exc:
            sock.close()
            raise ConfigError([f"http.port: cannot listen on {http.address}:{http.port}: "
                               f"{exc.strerror}"]) from None
        # The supervisor owns the socket, so connections queue in the backlog (rather than
        # being refused) while a gateway worker restarts.
        sock.listen(4096)
        sock.set_inheritable(True)
        port = sock.getsockname()[1]
        host = f"[{http.address}]" if family == socket.AF_INET6 else http.address
        self.url = f"{self.settings.scheme}://{host}:{port}"
        return sock

    def _start_all(self) -> None:
        for child in self.shards:
            child.start()
        self._await_ready(self.shards, "shards")
        for child in self.gateways:
            self._start_gateway(child)
        self._await_ready(self.gateways, "gateway workers")
        if self.listener is not None:
            scheme = "HTTPS" if self.settings.http.tls else "HTTP"
            log.info("%s server listening on %s", scheme, self.url)
        else:
            log.info("HTTP disabled (http.enabled: false): serving the shards only")

    def _await_ready(self, children: list[Child], what: str) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not all(c.ready for c in children):
            if time.monotonic() > deadline:
                raise StartupFailed(f"{what} not ready after {STARTUP_TIMEOUT_S:.0f}s")
            self._turn()
            if self.should_exit:
                raise StartupFailed("stopped by a signal during startup")
            for child in children:
                if child.restarts >= STARTUP_ATTEMPTS and not child.ready:
                    raise StartupFailed(f"{child.name} failed {child.restarts} times in a row")

    def _start_gateway(self, child: Child) -> None:
        read_fd, write_fd = os.pipe()
        os.set_blocking(read_fd, False)
        child.extra_fds = [write_fd]
        child.args = [a for a in child.args if not a.startswith("--heartbeat-fd=")]
        child.args.append(f"--heartbeat-fd={write_fd}")
        try:
            child.start()
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)
            child.extra_fds = []
        old = self.heartbeats.pop(child.index, None)
        if old is not None:
            os.close(old)
        self.heartbeats[child.index] = read_fd

    # --- watch --------------------------------------------------------------------------------

    def _turn(self) -> None:
        """One turn of the loop that no exception ends: whatever `_step` raises is logged
        (rate-limited) and the loop goes on after a short pause, so a bug or a fault of the
        supervisor's own never takes the healthy children down with it."""
        try:
            self._step()
        except Exception as exc:
            self._turn_failures.failed(exc, time.monotonic())
            if not self.should_exit:
                self._back_off()
        else:
            self._turn_failures.succeeded()

    def _back_off(self) -> None:
        """Pause LOOP_BACKOFF_S, but end the pause for a signal: SIGTERM must still stop a
        broker whose loop fails on every turn."""
        try:
            select.select([self.signals.read_fd], [], [], LOOP_BACKOFF_S)
            for signum in self.signals.drain():
                self._on_signal(signum)
        except OSError:
            time.sleep(LOOP_BACKOFF_S)

    def _step(self) -> None:
        """One turn of the loop: wait for anything, then signals, exits, liveness, restarts.
        Each part runs even when one before it raised; the first exception is raised last."""
        failures = Failures()
        with failures:
            self._poll()
        with failures:
            for signum in self.signals.drain():
                self._on_signal(signum)
        now = time.monotonic()
        if now - self._last_step > STALL_S:
            # We were not looking (suspended, or busy restarting gateways): silence from the
            # children over that time proves nothing, so their clocks start again.
            for child in self.shards + self.gateways:
                child.last_seen = max(child.last_seen, now)
        self._last_step = now
        for child in self.shards + self.gateways:
            with failures:
                self._watch(child, now)
        with failures:
            self._roll(now)
        with failures:
            self._ping(now)
        with failures:
            self._follow_level(now)
        if self.reporter is not None:
            with failures:
                self.reporter.step(now)
        if self._state_retry_at is not None and now >= self._state_retry_at:
            with failures:
                self._write_state()
        failures.raise_first()

    def _ping(self, now: float) -> None:
        if now - self._last_ping >= self.settings.supervisor.ping_interval:
            self._last_ping = now
            for child in self.shards:
                if child.process is not None:
                    self.pinger.ping(child.index)  # type: ignore[union-attr]

    def _poll(self) -> None:
        poller = zmq.Poller()
        poller.register(self.signals.read_fd, zmq.POLLIN)
        assert self.pinger is not None
        for sock in self.pinger.sockets:
            poller.register(sock, zmq.POLLIN)
        for fd in self.heartbeats.values():
            poller.register(fd, zmq.POLLIN)
        poller.poll(POLL_S * 1000)
        now = time.monotonic()
        for child in self.shards:
            if self.pinger.answered(child.index) and child.process is not None:
                self._seen(child, now)
        for child in self.gateways:
            fd = self.heartbeats.get(child.index)
            if fd is not None and self._read_heartbeat(fd) and child.process is not None:
                self._seen(child, now)

    @staticmethod
    def _read_heartbeat(fd: int) -> bool:
        beats = b""
        try:
            while chunk := os.read(fd, 4096):
                beats += chunk
        except BlockingIOError:
            pass
        return bool(beats)

    def _seen(self, child: Child, now: float) -> None:
        child.last_seen = now
        if not child.ready:
            child.ready = True
            log.info("%s ready (pid %s)", child.name, child.pid)
            self._write_state()

    def _watch(self, child: Child, now: float) -> None:
        if child.process is None:
            if child.restart_at is not None and now >= child.restart_at and not self.should_exit:
                self._restart(child, now)
            return
        code = child.exited()
        if code is not None and child.retiring_until is not None:
            log.info("%s (pid %s) stopped for the rolling restart", child.name, child.pid)
            child.process = None
            self._restart(child, now)  # at once: this was asked for, not a failure
            return
        if code is not None:
            pid = child.pid
            delay = child.schedule_restart(now)
            log.warning("%s (pid %s) exited with %s; restarting in %.1fs", child.name, pid,
                        _describe_exit(code), delay)
            if self.reporter is not None:
                self.reporter.event(f"{child.role}_restarted",
                                    f"{child.name} (pid {pid}) exited with "
                                    f"{_describe_exit(code)}; restarted after {delay:.1f}s",
                                    "critical" if child.role == "shard" else "warning")
            self._write_state()
            return
        if child.killed:
            return  # SIGKILL sent; its exit is next
        if child.retiring_until is not None:
            if now > child.retiring_until:
                log.error("%s (pid %s) did not stop within %.0fs: killing it", child.name,
                          child.pid, self.settings.supervisor.stop_timeout)
                child.kill()
            return
        silent_for = now - child.last_seen
        limit = (self.settings.supervisor.hang_timeout if child.ready
                 else max(STARTUP_TIMEOUT_S, self.settings.supervisor.hang_timeout))
        if silent_for > limit:
            log.error("%s (pid %s) has not answered for %.1fs: killing it", child.name,
                      child.pid, silent_for)
            if self.reporter is not None:
                self.reporter.event(f"{child.role}_hung",
                                    f"{child.name} (pid {child.pid}) did not answer for "
                                    f"{silent_for:.1f}s and was killed", "critical")
            child.kill()

    def _follow_level(self, now: float, at_once: bool = False) -> None:
        """general.logLevel changed in the config file (supervisor/levelwatch.py): children
        start with it from now on, and the running shards take it at once."""
        changed = self.level_watch.check(now, at_once)
        if changed is None:
            return
        self.settings = changed
        settings_json = to_json(changed)
        for child in self.shards + self.gateways:
            child.settings_json = settings_json
        assert self.pinger is not None
        for child in self.shards:
            self.pinger.tell(child.index, LogLevelSet(level=changed.general.log_level))

    def _restart(self, child: Child, now: float) -> None:
        self._follow_level(now, at_once=True)  # the level it starts with is the file's
        try:
            if child.role == "gateway":
                self._start_gateway(child)
            else:
                child.start()
        except OSError as exc:
            # Not spawned (out of memory or file descriptors): a failed start like an exit
            # at once, retried with the same growing backoff.
            child.started_at = now
            delay = child.schedule_restart(now)
            log.error("%s could not be started: %s; retrying in %.1fs", child.name, exc, delay)
        self._write_state()

    def _on_signal(self, signum: int) -> None:
        if signum in (signal.SIGTERM, signal.SIGINT):
            log.info("received %s: stopping", signal.Signals(signum).name)
            self.should_exit = True
        elif signum == signal.SIGHUP:
            log.info("received SIGHUP: restarting the gateway workers one by one")
            self.rolling = deque(self.gateways)

    def _roll(self, now: float) -> None:
        """Rolling restart, one step at a time so the loop keeps watching everything else:
        stop one worker, start its successor, wait until it is ready, then the next."""
        if self.rolling_child is not None:
            child = self.rolling_child
            if child.retiring_until is None and child.ready:
                self.rolling_child = None  # its successor serves: go on with the next
            return
        if not self.rolling or self.should_exit:
            return
        child = self.rolling.popleft()
        if child.process is None:
            return  # already restarting on its own
        self.rolling_child = child
        child.retiring_until = now + self.settings.supervisor.stop_timeout
        child.signal(signal.SIGTERM)

    # --- stop ---------------------------------------------------------------------------------

    def _stop_all(self) -> None:
        for stage, what in ((self.gateways, "gateway workers"), (self.shards, "shards")):
            if stage:
                log.info("stopping the %s", what)
            for child in stage:
                child.restart_at = None
                child.signal(signal.SIGTERM)
            deadline = time.monotonic() + self.settings.supervisor.stop_timeout
            for child in stage:
                if not child.wait(max(0.0, deadline - time.monotonic())):
                    log.error("%s (pid %s) did not stop in time: killing it", child.name,
                              child.pid)
                    child.kill()
                    child.wait(5)
            if stage:
                log.info("%s stopped", what)
        self._release()

    def _release(self) -> None:
        """Close what the loop held and remove run/state.json. The children have stopped by
        now, so a failure here (the disk went read-only) is logged and the stop goes on."""
        for fd in self.heartbeats.values():
            try:
                os.close(fd)
            except OSError:
                pass
        self.heartbeats.clear()
        if self.pinger is not None:
            self.pinger.close()
        if self.reporter is not None:
            self.reporter.close()
        if self.listener is not None:
            self.listener.close()
        try:
            os.unlink(self.layout.state_file)
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.warning("cannot remove the run state %s: %s", self.layout.state_file, exc)

    def _write_state(self) -> None:
        """Write run/state.json (for `gortms shards` and operators). A failure, such as a full
        disk, leaves the old file in place; the loop tries again every STATE_RETRY_S."""
        now = time.monotonic()
        try:
            write_state(self.layout, self._state())
        except OSError as exc:
            self._state_retry_at = now + STATE_RETRY_S
            self._state_failures.failed(exc, now)
        else:
            self._state_retry_at = None
            self._state_failures.succeeded()

    def _state(self) -> dict[str, object]:
        return {
            "pid": os.getpid(), "version": __version__,
            "nodeId": self.settings.general.node_id, "dataDir": self.settings.data_dir,
            "url": self.url,
            "shards": [{**c.describe(), "endpoint": self.layout.endpoints(c.index)[0]}
                       for c in self.shards],
            "gateways": [c.describe() for c in self.gateways],
        }


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"code {code}"
