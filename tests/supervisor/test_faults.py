"""The supervisor never dies of its own bookkeeping: a run-state file it cannot write, an
exception in a turn of its loop, a child it cannot spawn, a state file it cannot remove at
stop. Failures are real (a directory where the run-state's tmp file goes, so `open(..., "wb")`
fails with IsADirectoryError) or, for the loop itself, an injected exception.

The first tests run whole brokers (tests/broker.py); the rest drive a Supervisor over the
stand-in children of test_supervisor.py through its own turns.
"""

from __future__ import annotations

import logging
import os
import signal
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

import psutil
import pytest

from gortms.datadir import Layout, read_state, write_state
from gortms.partition import shard_for
from supervisor.child import Child
from supervisor.supervisor import LOOP_BACKOFF_S, STATE_RETRY_S, Supervisor
from tests.broker import Broker, unique
from tests.supervisor.test_supervisor import ROOT, WAIT_S, Harness

STATE_FAILED = "writing the run state"
LOOP_FAILED = "a turn of the supervisor's loop failed"


def queue_on_shard(domain: str, shard: int) -> str:
    return next(q for i in range(1000)
                if shard_for(domain, q := f"q{i}", 2) == shard)


def publishes(broker: Broker, shard: int) -> None:
    """Publish to a queue of `shard` until it is answered 201 (the gateway reconnects to a
    restarted shard on its own; there is no line to wait for), within WAIT_S."""
    domain = unique("faults")
    queue = queue_on_shard(domain, shard)
    deadline = time.monotonic() + WAIT_S
    with broker.client(timeout_s=5) as client:
        while True:
            status = None
            if client.post("/api/domains", json={"name": domain}).status_code in (201, 409):
                client.post(f"/api/domains/{domain}/queues", json={"name": queue})
                status = client.post(f"/api/domains/{domain}/queues/{queue}/messages",
                                     json={"n": 1}).status_code
            if status == 201:
                return
            assert time.monotonic() < deadline, f"shard {shard} not serving: {status}"
            time.sleep(0.05)


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def lines_with(broker: Broker, text: str, after: int) -> list[str]:
    return [line for line in broker.lines[after:] if text in line]


# --- whole brokers ------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_shard_killed_while_the_run_state_cannot_be_written_is_restarted_and_the_state_catches_up(
        broker_factory) -> None:
    broker = broker_factory()
    obstacle = broker.data_dir / "run" / "state.json.tmp"
    obstacle.mkdir()  # open(tmp, "wb") now fails: IsADirectoryError
    old = broker.shard_pid(1)
    mark = len(broker.lines)
    os.kill(old, signal.SIGKILL)
    # The exit, the restart and the readiness each try to write the run state, and fail.
    broker.wait_for_line(r"shard-1 ready", timeout_s=WAIT_S, after=mark)
    assert broker.process.poll() is None, broker.output()
    publishes(broker, 1)
    assert broker.shard_pid(1) == old  # state.json is stale: no write got through
    [failed] = lines_with(broker, STATE_FAILED, mark)
    assert f"{broker.data_dir / 'run' / 'state.json'} failed" in failed
    assert f"Is a directory: '{obstacle}'" in failed and "retrying every 1s" in failed
    assert "Traceback" not in broker.output()

    obstacle.rmdir()
    broker.wait_for_line(rf"{STATE_FAILED} .* succeeded again", timeout_s=WAIT_S, after=mark)
    shard = broker.state()["shards"][1]
    new = shard["pid"]
    assert new != old and shard["state"] == "serving" and shard["restarts"] == 1
    assert new in [child.pid for child in broker.children()]
    assert len(lines_with(broker, STATE_FAILED, mark)) == 2  # failed once, recovered once


@pytest.mark.slow
def test_sigterm_stops_cleanly_when_the_run_state_can_be_neither_written_nor_removed(
        broker_factory) -> None:
    broker = broker_factory()
    state_file = broker.data_dir / "run" / "state.json"
    state_file.unlink()
    state_file.mkdir()  # os.replace(tmp, state.json) fails, and so does os.unlink(state.json)
    (state_file / "keep").touch()
    pids = [child.pid for child in broker.children()]
    mark = len(broker.lines)
    os.kill(pids[0], signal.SIGKILL)
    broker.wait_for_line(r"ready \(pid", timeout_s=WAIT_S, after=mark)
    assert broker.stop() == 0, broker.output()
    assert lines_with(broker, STATE_FAILED, mark)
    assert lines_with(broker, f"cannot remove the run state {state_file}", mark)
    assert lines_with(broker, "GoRTMS stopped", mark)
    assert not (broker.data_dir / "run" / "state.json.tmp").exists()  # the tmp file was removed
    assert not any(alive(pid) for pid in pids)


# --- a Supervisor over stand-in children --------------------------------------------------------


@pytest.fixture
def harness(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Harness]:
    """A started Supervisor over two stand-in shards (see test_supervisor.py)."""
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # so a child can `python -m` that module
    with tempfile.TemporaryDirectory(prefix="gf") as socket_dir:  # ipc paths stay short
        made = Harness(tmp_path / "data", socket_dir)
        os.makedirs(made.settings.data_dir)
        made.shard()
        made.shard()
        try:
            made.start()
            yield made
        finally:
            made.close()


def turn_until(harness: Harness, condition: Callable[[], bool], what: str) -> None:
    """Guarded turns of the loop (as run() makes them) until `condition`, within WAIT_S."""
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"not within {WAIT_S}s: {what}"
        harness.supervisor._turn()


def records(caplog: pytest.LogCaptureFixture, text: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if text in r.getMessage()]


def kill(child: Child) -> int:
    pid = child.pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    return pid


def test_the_loop_goes_on_watching_and_restarting_while_every_turn_raises(
        harness: Harness, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="supervisor")
    sup = harness.supervisor
    failing = [True]

    def roll(now: float) -> None:  # runs after the children were watched, in every turn
        if failing[0]:
            raise RuntimeError("injected")

    monkeypatch.setattr(sup, "_roll", roll)
    shard = sup.shards[1]
    old = kill(shard)
    turn_until(harness, lambda: shard.ready and shard.pid != old, "the shard restarted")
    turns = sup._turn_failures.failures
    assert turns >= 2  # the exit, and the restart, were each seen in a turn that raised
    [logged] = records(caplog, LOOP_FAILED)  # rate-limited: once, though it raised every turn
    assert logged.levelno == logging.ERROR and "RuntimeError: injected" in logged.getMessage()
    assert logged.exc_info is not None  # with the traceback
    failing[0] = False
    sup._turn()
    [recovered] = records(caplog, "a turn of the supervisor's loop succeeded again")
    assert f"after {turns} failures" in recovered.getMessage()


def send_sigterm(sup: Supervisor) -> None:
    """What the installed handler does: enqueue, and the wake-up fd gets the signal's byte."""
    sup.signals._enqueue(signal.SIGTERM, None)
    os.write(sup.signals._write_fd, bytes([signal.SIGTERM]))


def test_a_turn_that_raises_backs_off_and_still_takes_a_stop_signal(
        harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    sup = harness.supervisor

    def poll() -> None:  # the very start of the turn
        raise OSError("injected")

    monkeypatch.setattr(sup, "_poll", poll)
    started = time.monotonic()
    sup._turn()
    assert time.monotonic() - started >= LOOP_BACKOFF_S * 0.9  # a pause, no spin
    assert not sup.should_exit
    send_sigterm(sup)  # before the turn: the parts after the failing poll take it
    started = time.monotonic()
    sup._turn()
    assert sup.should_exit and time.monotonic() - started < LOOP_BACKOFF_S  # and no pause


def test_a_signal_during_the_pause_after_a_failed_turn_ends_the_pause(
        harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    sup = harness.supervisor

    def poll() -> None:
        raise OSError("injected")

    monkeypatch.setattr(sup, "_poll", poll)
    timer = threading.Timer(LOOP_BACKOFF_S / 5, send_sigterm, [sup])
    started = time.monotonic()
    timer.start()
    try:
        sup._turn()
    finally:
        timer.join(WAIT_S)
    assert sup.should_exit and time.monotonic() - started < LOOP_BACKOFF_S * 0.9


def test_one_child_whose_watch_raises_does_not_leave_the_others_unwatched(
        harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    sup = harness.supervisor
    broken, other = sup.shards
    watch = sup._watch

    def watch_or_fail(child: Child, now: float) -> None:
        if child is broken:
            raise RuntimeError("injected")
        watch(child, now)

    monkeypatch.setattr(sup, "_watch", watch_or_fail)
    old = kill(other)
    turn_until(harness, lambda: other.ready and other.pid != old, "the other shard restarted")


def test_a_child_that_cannot_be_spawned_is_retried_with_backoff(
        harness: Harness, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    sup = harness.supervisor
    shard = sup.shards[0]
    start = shard.start
    refusals = [3]

    def start_or_refuse() -> None:
        if refusals[0]:
            refusals[0] -= 1
            raise OSError(24, "Too many open files")
        start()

    monkeypatch.setattr(shard, "start", start_or_refuse)
    old = kill(shard)
    turn_until(harness, lambda: shard.ready and shard.pid != old, "the shard spawned at last")
    refused = records(caplog, f"{shard.name} could not be started: [Errno 24] Too many open")
    assert [r.getMessage().rsplit(" ", 1)[-1] for r in refused] == ["0.2s", "0.4s", "0.8s"]
    assert shard.restarts == 4 and not sup._turn_failures.failing


def test_a_failing_run_state_write_is_logged_once_and_retried_until_it_succeeds(
        harness: Harness, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="supervisor")
    sup = harness.supervisor
    layout = sup.layout
    obstacle = Path(layout.state_file + ".tmp")
    obstacle.mkdir()
    shard = sup.shards[0]
    old = kill(shard)
    turn_until(harness, lambda: shard.ready and shard.pid != old, "the shard restarted")
    retry_until = time.monotonic() + 2 * STATE_RETRY_S + 0.5
    turn_until(harness, lambda: time.monotonic() > retry_until, "two retries")
    assert sup._state_failures.failures >= 5  # exit, restart, ready, and the retries
    [failed] = records(caplog, STATE_FAILED)
    assert failed.levelno == logging.WARNING
    assert f"IsADirectoryError: [Errno 21] Is a directory: '{obstacle}'" in failed.getMessage()
    assert read_state(layout)["shards"][0]["pid"] == old  # the last write that got through
    assert obstacle.is_dir()  # a directory is not a leftover tmp file of ours

    obstacle.rmdir()
    turn_until(harness, lambda: not sup._state_failures.failing, "a retry that succeeds")
    assert read_state(layout)["shards"][0]["pid"] == shard.pid
    assert len(records(caplog, f"{STATE_FAILED} {layout.state_file} succeeded again")) == 1
    assert len(records(caplog, STATE_FAILED)) == 2


def test_stopping_goes_on_when_the_run_state_cannot_be_removed(
        harness: Harness, caplog: pytest.LogCaptureFixture) -> None:
    sup = harness.supervisor
    state_file = Path(sup.layout.state_file)
    state_file.unlink(missing_ok=True)
    state_file.mkdir()
    sup._stop_all()
    assert [child.process.returncode for child in sup.shards] == [0, 0]
    assert records(caplog, f"cannot remove the run state {state_file}")


def test_write_state_removes_its_tmp_file_when_the_replace_fails(tmp_path: Path) -> None:
    layout = Layout(str(tmp_path))
    os.makedirs(layout.state_file)  # os.replace(file, non-empty directory) fails
    Path(layout.state_file, "keep").touch()
    with pytest.raises(OSError):
        write_state(layout, {"pid": 1})
    assert sorted(os.listdir(layout.run_dir)) == ["state.json"]
