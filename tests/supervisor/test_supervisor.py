"""The supervisor's own logic, in-process, over tiny real children: restart backoff, retries
at startup, the run-state file, the stop order and its SIGKILL escalation, and signal
handlers that only enqueue. Whole-broker behaviour (real shards and gateways, hung children,
SIGHUP end to end) is in tests/e2e/test_supervisor.py.

The children are this very module run as `python -m tests.supervisor.test_supervisor` (a
Child's role is the module it runs): a stand-in shard answers the supervisor's pings on its
own ROUTER socket, a stand-in gateway writes heartbeats, and each one can fail at start, stop
slowly or ignore SIGTERM, noting what happened to it in an events file.

The Supervisor is assembled from its parts (its children, a Pinger over their endpoints) and
driven through its own steps (`_start_all`, `_step`, `_stop_all`), since `run()` always
plans real shards and gateways.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import select
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterator

import pytest
import zmq

from gortms.config import Settings, load_settings
from gortms.datadir import read_state
from gortms.lifecycle import die_with_parent
from gortms.protocol import Pong, decode_requests, encode_replies, ok
from supervisor.child import BACKOFF_MAX_S, STABLE_AFTER_S, Child
from supervisor.pinger import Pinger
from supervisor.signals import HANDLED, SignalQueue
from supervisor.supervisor import STARTUP_ATTEMPTS, StartupFailed, Supervisor

FAKE_CHILD = "tests.supervisor.test_supervisor"  # this module, as a child's `python -m` role
ROOT = Path(__file__).resolve().parents[2]
CHILD_LIFETIME_S = 60.0  # a stand-in child never outlives this, whatever happens to the test
TICK_S = 0.05
SLOW_STOP_S = 0.3
WAIT_S = 20.0  # bound of every wait on the supervisor's loop


# --- the stand-in child (runs in its own process) ---------------------------------------------


def _note(path: str, line: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, f"{line}\n".encode())  # one small O_APPEND write: lines never interleave
    finally:
        os.close(fd)


def _answer_pings(router: zmq.Socket) -> None:
    while True:
        try:
            identity, frame = router.recv_multipart(zmq.NOBLOCK)
        except zmq.Again:
            return
        replies = [ok(rid, Pong(shard=0, pid=os.getpid())) for rid, _, _ in
                   decode_requests(frame)]
        router.send_multipart([identity, encode_replies(replies)])


def stand_in_child(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--name", required=True)
    parser.add_argument("--events", required=True)
    parser.add_argument("--endpoint")  # a shard: answer pings here
    parser.add_argument("--heartbeat-fd", type=int)  # a gateway: beat into this pipe
    parser.add_argument("--fail-starts", type=int, default=0)  # exit 3 on the first N starts
    parser.add_argument("--on-term", choices=("exit", "slow", "ignore"), default="exit")
    parser.add_argument("--settings-fd", type=int, required=True)
    parser.add_argument("--parent-pid", type=int, required=True)
    args = parser.parse_args(argv)
    die_with_parent(args.parent_pid)
    os.close(args.settings_fd)
    _note(args.events, f"start {args.name}")
    starts = Path(args.events).read_text().splitlines().count(f"start {args.name}")
    if starts <= args.fail_starts:
        return 3
    terms: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, frame: terms.append(signum))
    context = zmq.Context()
    router = context.socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 0)
    if args.endpoint:
        router.bind(args.endpoint)
    poller = zmq.Poller()
    poller.register(router, zmq.POLLIN)
    deadline = time.monotonic() + CHILD_LIFETIME_S
    try:
        while time.monotonic() < deadline and os.getppid() == args.parent_pid:
            if terms:
                terms.clear()
                if args.on_term == "ignore":
                    _note(args.events, f"term-ignored {args.name}")
                    continue
                _note(args.events, f"term {args.name}")
                if args.on_term == "slow":
                    time.sleep(SLOW_STOP_S)  # a gateway finishing its requests
                _note(args.events, f"exit {args.name}")
                return 0
            if args.heartbeat_fd is not None:
                os.write(args.heartbeat_fd, b".")
            if poller.poll(TICK_S * 1000):
                _answer_pings(router)
        return 4
    finally:
        router.close()
        context.term()


if __name__ == "__main__":
    raise SystemExit(stand_in_child(sys.argv[1:]))


# --- the harness --------------------------------------------------------------------------------


class Harness:
    """A Supervisor over stand-in children; every child is reaped at the end."""

    def __init__(self, data_dir: Path, socket_dir: str, **env: str) -> None:
        self.settings: Settings = load_settings({
            "GORTMS_GENERAL_DATADIR": str(data_dir),
            "GORTMS_SUPERVISOR_PINGINTERVAL": "100ms", **env})
        self.socket_dir = socket_dir
        self.events = str(data_dir / "events.log")
        self.supervisor = Supervisor(self.settings)
        self.endpoints: list[str] = []

    def shard(self, *args: str) -> Child:
        index = len(self.supervisor.shards)
        endpoint = f"ipc://{self.socket_dir}/s{index}"
        self.endpoints.append(endpoint)
        child = Child(FAKE_CHILD, index, self._args(f"shard-{index}", "--endpoint", endpoint,
                                                    *args), b"{}")
        self.supervisor.shards.append(child)
        return child

    def gateway(self, *args: str) -> Child:
        index = len(self.supervisor.gateways)
        child = Child(FAKE_CHILD, index, self._args(f"gateway-{index}", *args), b"{}")
        self.supervisor.gateways.append(child)
        return child

    def _args(self, name: str, *args: str) -> list[str]:
        return ["--name", name, "--events", self.events, *args]

    def start(self) -> None:
        """Start every child and wait until all are ready, as the supervisor's start does."""
        self.supervisor.pinger = Pinger(self.endpoints, self.settings.supervisor.hang_timeout)
        self.supervisor._start_all()

    def step_until(self, condition: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + WAIT_S
        while not condition():
            assert time.monotonic() < deadline, f"not within {WAIT_S}s: {what}"
            self.supervisor._step()

    def noted(self) -> list[str]:
        """What the children noted, in order: "start shard-0", "term gateway-0", ..."""
        return Path(self.events).read_text().splitlines()

    def close(self) -> None:
        sup = self.supervisor
        for child in sup.shards + sup.gateways:
            if child.process is not None:
                if child.process.poll() is None:
                    child.process.kill()
                child.process.wait(10)
        for fd in sup.heartbeats.values():
            os.close(fd)
        sup.heartbeats.clear()
        if sup.pinger is not None:
            sup.pinger.close()
        close_signal_queue(sup.signals)


def close_signal_queue(queue: SignalQueue) -> None:
    """SignalQueue.close() resets the signals it handles to SIG_DFL: put pytest's back."""
    previous = {signum: signal.getsignal(signum) for signum in HANDLED}
    installed = any(getattr(h, "__self__", None) is queue for h in previous.values())
    wakeup_fd = signal.set_wakeup_fd(-1)
    queue.close()
    if not installed:  # (if it was, the fixture that installed it restores pytest's)
        signal.set_wakeup_fd(wakeup_fd)
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@pytest.fixture
def make_harness(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator:
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # so a child can `python -m` this module
    made: list[Harness] = []
    with tempfile.TemporaryDirectory(prefix="gs") as socket_dir:  # ipc paths stay short

        def make(**env: str) -> Harness:
            harness = Harness(tmp_path / f"data{len(made)}", socket_dir, **env)
            os.makedirs(harness.settings.data_dir)
            made.append(harness)
            return harness

        yield make
        for harness in made:
            harness.close()


RESTARTING = re.compile(r"exited with .*; restarting in (\d+\.\d)s")


def restart_delays(caplog: pytest.LogCaptureFixture) -> list[float]:
    """The delays the supervisor logged for its restarts."""
    return [float(m.group(1)) for r in caplog.records if (m := RESTARTING.search(r.getMessage()))]


def restart_gaps(caplog: pytest.LogCaptureFixture) -> list[tuple[float, float]]:
    """(logged delay, seconds until the next start) of every restart, on the supervisor's
    own log clock (needs INFO records: "started")."""
    gaps = []
    scheduled: tuple[float, float] | None = None
    for record in caplog.records:
        message = record.getMessage()
        if (match := RESTARTING.search(message)) is not None:
            scheduled = (float(match.group(1)), record.created)
        elif " started (pid " in message and scheduled is not None:
            gaps.append((scheduled[0], record.created - scheduled[1]))
            scheduled = None
    return gaps


# --- restart backoff ----------------------------------------------------------------------------


def test_restart_backoff_doubles_from_a_tenth_of_a_second_up_to_three_seconds() -> None:
    child = Child("shard", 0, [], b"{}")
    delays = []
    now = 1000.0
    for _ in range(8):
        child.started_at = now  # each one fails at once
        delays.append(child.schedule_restart(now))
        now += 1
    assert delays == [0.1, 0.2, 0.4, 0.8, 1.6, BACKOFF_MAX_S, BACKOFF_MAX_S, BACKOFF_MAX_S]
    assert BACKOFF_MAX_S == 3.0
    assert child.restarts == 8 and child.process is None and not child.ready


def test_restart_backoff_starts_over_after_a_stable_run() -> None:
    child = Child("shard", 0, [], b"{}")
    for now in (10.0, 11.0, 12.0):
        child.started_at = now
        child.schedule_restart(now)
    child.started_at = 100.0
    assert child.schedule_restart(100.0 + STABLE_AFTER_S + 1) == 0.1
    child.started_at = 200.0
    assert child.schedule_restart(200.0 + STABLE_AFTER_S - 1) == 0.2  # not stable: grows
    assert child.restarts == 5


def test_a_child_that_fails_to_start_is_retried_after_growing_delays_until_it_serves(
        make_harness, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="supervisor")
    harness = make_harness()
    shard = harness.shard("--fail-starts", "3")
    harness.start()
    assert shard.ready and shard.restarts == 3
    assert harness.noted().count("start shard-0") == 4
    gaps = restart_gaps(caplog)
    assert [delay for delay, _ in gaps] == [0.1, 0.2, 0.4]
    assert all(waited >= delay for delay, waited in gaps)  # each one waited its delay


def test_startup_fails_once_a_child_has_failed_to_start_five_times_in_a_row(
        make_harness, caplog: pytest.LogCaptureFixture) -> None:
    harness = make_harness()
    harness.shard()
    broken = harness.shard("--fail-starts", "1000")
    with pytest.raises(StartupFailed, match=rf"{broken.name} failed {STARTUP_ATTEMPTS} times"):
        harness.start()
    assert harness.noted().count("start shard-1") == STARTUP_ATTEMPTS
    assert restart_delays(caplog) == [0.1, 0.2, 0.4, 0.8, 1.6]
    assert harness.noted().count("start shard-0") == 1  # the healthy one was left alone


# --- the run-state file -------------------------------------------------------------------------


def test_the_state_file_names_the_supervisor_and_every_childs_pid(make_harness) -> None:
    harness = make_harness()
    shards = [harness.shard(), harness.shard()]
    gateway = harness.gateway()
    harness.start()
    state = read_state(harness.supervisor.layout)
    assert state is not None
    assert state["pid"] == os.getpid()
    assert state["dataDir"] == harness.settings.data_dir
    assert [(s["index"], s["pid"], s["state"]) for s in state["shards"]] == [
        (0, shards[0].pid, "serving"), (1, shards[1].pid, "serving")]
    assert state["shards"][1]["endpoint"] == harness.supervisor.layout.endpoints(1)[0]
    assert [(g["pid"], g["state"]) for g in state["gateways"]] == [(gateway.pid, "serving")]


def test_the_state_file_follows_a_crash_and_the_restart(
        make_harness, caplog: pytest.LogCaptureFixture) -> None:
    harness = make_harness()
    shard = harness.shard()
    harness.start()
    old_pid = shard.pid
    assert old_pid is not None
    os.kill(old_pid, signal.SIGKILL)
    harness.step_until(lambda: shard.process is None, "the exit noticed")
    [crashed] = read_state(harness.supervisor.layout)["shards"]
    assert (crashed["pid"], crashed["state"], crashed["restarts"]) == (None, "restarting", 1)
    assert any("exited with signal SIGKILL; restarting in 0.1s" in r.getMessage()
               for r in caplog.records)
    harness.step_until(lambda: shard.ready, "the restarted shard answering pings")
    [serving] = read_state(harness.supervisor.layout)["shards"]
    assert (serving["pid"], serving["state"], serving["restarts"]) == (shard.pid, "serving", 1)
    assert shard.pid != old_pid


# --- stopping -----------------------------------------------------------------------------------


def test_stop_signals_the_shards_only_after_the_gateways_have_exited(make_harness) -> None:
    harness = make_harness()
    shard = harness.shard()
    gateway = harness.gateway("--on-term", "slow")
    harness.start()
    harness.supervisor._stop_all()
    assert harness.noted()[-4:] == [
        "term gateway-0", "exit gateway-0", "term shard-0", "exit shard-0"]
    assert (gateway.process.returncode, shard.process.returncode) == (0, 0)
    assert not os.path.exists(harness.supervisor.layout.state_file)


def test_a_child_that_ignores_sigterm_is_killed_once_its_stage_runs_out_of_time(
        make_harness) -> None:
    harness = make_harness(GORTMS_SUPERVISOR_STOPTIMEOUT="500ms")
    stubborn_gateway = harness.gateway("--on-term", "ignore")
    stubborn_shard = harness.shard("--on-term", "ignore")
    polite_shard = harness.shard()
    harness.start()
    started = time.monotonic()
    harness.supervisor._stop_all()
    took = time.monotonic() - started
    assert stubborn_gateway.process.returncode == -signal.SIGKILL
    assert stubborn_shard.process.returncode == -signal.SIGKILL
    assert polite_shard.process.returncode == 0
    assert 2 * 0.5 <= took < 2 * 0.5 + 5  # each stage waited its stop timeout, no longer
    stops = [line for line in harness.noted() if not line.startswith("start")]
    assert stops[0] == "term-ignored gateway-0"  # the shards waited for the gateway stage
    assert sorted(stops[1:]) == ["exit shard-1", "term shard-1", "term-ignored shard-0"]


# --- signals ------------------------------------------------------------------------------------


@pytest.fixture
def installed_signals(make_harness) -> Iterator[Harness]:
    """A started harness (one stand-in gateway) whose SignalQueue handles this process's
    signals; pytest's own handlers come back afterwards."""
    harness = make_harness()
    harness.gateway()
    harness.start()
    previous = {signum: signal.getsignal(signum) for signum in HANDLED}
    wakeup_fd = signal.set_wakeup_fd(-1)
    harness.supervisor.signals.install()
    try:
        yield harness
    finally:
        signal.set_wakeup_fd(wakeup_fd)
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP],
                         ids=lambda signum: signal.Signals(signum).name)
def test_a_signal_is_only_enqueued_until_the_loop_takes_it(installed_signals: Harness,
                                                           signum: int) -> None:
    sup = installed_signals.supervisor
    [gateway] = sup.gateways
    os.kill(os.getpid(), signum)
    readable, _, _ = select.select([sup.signals.read_fd], [], [], WAIT_S)
    assert readable == [sup.signals.read_fd]  # the wake-up fd interrupts the loop's poll
    assert list(sup.signals.received) == [signum]
    assert not sup.should_exit and not sup.rolling and gateway.retiring_until is None
    sup._step()
    assert list(sup.signals.received) == []
    if signum == signal.SIGHUP:  # a rolling restart: the loop retires the first gateway
        assert not sup.should_exit and sup.rolling_child is gateway
        assert gateway.retiring_until is not None
    else:
        assert sup.should_exit and sup.rolling_child is None
        assert gateway.exited() is None  # stopping the children is run()'s, after the loop
