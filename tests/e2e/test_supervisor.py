"""The supervisor with real children: startup, restarts, hung children, ordered shutdown."""

from __future__ import annotations

import os
import signal
import time

import psutil
import pytest

from gortms.partition import shard_for
from tests.conftest import Broker

pytestmark = pytest.mark.slow


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def queue_on_shard(shard: int) -> str:
    return next(f"q{i}" for i in range(100) if shard_for("d", f"q{i}", 2) == shard)


def serving_again(broker: Broker, after: int, child: str) -> float:
    """Seconds until `child` is logged ready again and /health says ok."""
    started = time.monotonic()
    broker.wait_for_line(rf"{child} ready", timeout_s=10, after=after)
    with broker.client(timeout_s=5) as client:
        for _ in range(500):
            if client.get("/health").status_code == 200:
                return time.monotonic() - started
            time.sleep(0.01)
    raise AssertionError(f"{child} never served again")


def test_startup_logs_name_node_data_dir_shards_and_url(broker_factory):
    broker = broker_factory(GORTMS_GENERAL_NODEID="node-7")
    text = broker.output()
    assert "Node ID: node-7" in text
    assert f"Data directory: {broker.data_dir}" in text
    assert "Shards: 2" in text
    assert f"HTTP server listening on {broker.url}" in text
    supervisor_lines = [line for line in broker.lines if " supervisor[" in line]
    assert supervisor_lines[-1].endswith("GoRTMS started successfully")


def test_sigterm_stops_gateways_then_shards_and_leaves_no_process(broker_factory):
    broker = broker_factory()
    pids = [child.pid for child in broker.children()]
    assert len(pids) == 3  # two shards, one gateway
    assert broker.stop() == 0
    assert not any(alive(pid) for pid in pids)
    text = broker.output()
    order = [text.index(marker) for marker in (
        "stopping the gateway workers", "gateway workers stopped", "shard 0 stopping",
        "shards stopped", "GoRTMS stopped")]
    assert order == sorted(order)
    assert not (broker.data_dir / "run" / "state.json").exists()


def test_sigint_also_stops_cleanly(broker_factory):
    broker = broker_factory()
    pids = [child.pid for child in broker.children()]
    broker.process.send_signal(signal.SIGINT)
    assert broker.process.wait(30) == 0
    assert not any(alive(pid) for pid in pids)


def test_sigkilled_shard_is_restarted_and_serving_within_five_seconds(broker_factory):
    broker = broker_factory()
    old = broker.shard_pid(1)
    mark = len(broker.lines)
    os.kill(old, signal.SIGKILL)
    assert serving_again(broker, mark, "shard-1") < 5
    assert broker.shard_pid(1) != old
    with broker.client() as client:
        client.post("/api/domains", json={"name": "d"})
        queue = queue_on_shard(1)
        client.post("/api/domains/d/queues", json={"name": queue})
        assert client.post(f"/api/domains/d/queues/{queue}/messages", json={}).status_code == 201


def test_sigkilled_gateway_is_restarted_and_serving_within_five_seconds(broker_factory):
    broker = broker_factory()
    old = broker.gateway_pid()
    mark = len(broker.lines)
    os.kill(old, signal.SIGKILL)
    assert serving_again(broker, mark, "gateway-0") < 5
    assert broker.gateway_pid() != old


def test_hung_shard_is_killed_and_replaced(broker_factory):
    broker = broker_factory(GORTMS_SUPERVISOR_HANGTIMEOUT="1s",
                            GORTMS_SUPERVISOR_PINGINTERVAL="200ms")
    old = broker.shard_pid(0)
    mark = len(broker.lines)
    os.kill(old, signal.SIGSTOP)  # alive, but answers nothing
    broker.wait_for_line(r"shard-0 .* has not answered", timeout_s=10, after=mark)
    serving_again(broker, mark, "shard-0")
    assert not alive(old)


def test_hung_gateway_is_killed_and_replaced(broker_factory):
    broker = broker_factory(GORTMS_SUPERVISOR_HANGTIMEOUT="1s",
                            GORTMS_SUPERVISOR_PINGINTERVAL="200ms")
    old = broker.gateway_pid()
    mark = len(broker.lines)
    os.kill(old, signal.SIGSTOP)
    broker.wait_for_line(r"gateway-0 .* has not answered", timeout_s=10, after=mark)
    serving_again(broker, mark, "gateway-0")
    assert not alive(old)


def test_a_down_shard_gives_503_with_retry_after_not_a_hang(broker_factory):
    broker = broker_factory()
    down, up = queue_on_shard(1), queue_on_shard(0)
    with broker.client(timeout_s=10) as client:
        client.post("/api/domains", json={"name": "d"})
        client.post("/api/domains/d/queues", json={"name": down})
        client.post("/api/domains/d/queues", json={"name": up})
        supervisor = psutil.Process(broker.process.pid)
        supervisor.suspend()  # so it cannot restart the shard while we look
        try:
            os.kill(broker.shard_pid(1), signal.SIGKILL)
            psutil.Process(broker.gateway_pid())  # still there
            for _ in range(500):  # the gateway notices the disconnect at once
                started = time.monotonic()
                reply = client.post(f"/api/domains/d/queues/{down}/messages", json={})
                if reply.status_code == 503:
                    break
                time.sleep(0.01)
            assert reply.status_code == 503
            assert time.monotonic() - started < 2
            assert reply.headers["Retry-After"] == "1"
            assert reply.json()["error"] == "shard_unavailable"
            health = client.get("/api/health")
            assert health.status_code == 503
            assert health.json()["status"] == "degraded"
            assert health.json()["shards"] == {"up": 1, "total": 2}
            assert client.get("/api/domains").status_code == 503  # a fan-out needs every shard
            assert client.post(f"/api/domains/d/queues/{up}/messages", json={}).status_code == 201
        finally:
            supervisor.resume()
    mark = 0
    serving_again(broker, mark, "shard-1")
    with broker.client() as client:
        assert client.post(f"/api/domains/d/queues/{down}/messages", json={}).status_code == 201


def test_shard_count_is_fixed_by_the_data_dir(broker_factory, tmp_path):
    broker = broker_factory(tmp_path / "data")
    assert broker.stop() == 0
    cluster = (tmp_path / "data" / "cluster.json").read_text()
    assert '"shardCount": 2' in cluster
    import subprocess
    import sys
    refused = subprocess.run(
        [sys.executable, "-m", "gortms", "serve"], capture_output=True, text=True, timeout=30,
        env={**os.environ, "GORTMS_GENERAL_DATADIR": str(tmp_path / "data"),
             "GORTMS_SHARDS_COUNT": "3", "GORTMS_HTTP_PORT": "0"})
    assert refused.returncode == 2
    assert "shards.count" in refused.stderr and "2 shards" in refused.stderr
    auto = broker_factory(tmp_path / "data", GORTMS_SHARDS_COUNT="0")
    assert "Shards: 2" in auto.output()


def test_a_second_broker_on_the_same_data_dir_is_refused(broker_factory, tmp_path):
    broker_factory(tmp_path / "data")
    import subprocess
    import sys
    refused = subprocess.run(
        [sys.executable, "-m", "gortms", "serve"], capture_output=True, text=True, timeout=30,
        env={**os.environ, "GORTMS_GENERAL_DATADIR": str(tmp_path / "data"),
             "GORTMS_HTTP_PORT": "0"})
    assert refused.returncode == 2
    assert "in use by another running GoRTMS" in refused.stderr


def test_a_suspended_supervisor_does_not_kill_healthy_children_when_it_resumes(
        broker_factory):
    broker = broker_factory(GORTMS_SUPERVISOR_HANGTIMEOUT="1s",
                            GORTMS_SUPERVISOR_PINGINTERVAL="200ms")
    pids = sorted(child.pid for child in broker.children())
    supervisor = psutil.Process(broker.process.pid)
    supervisor.suspend()
    time.sleep(2.5)  # longer than hangTimeout: the children heard nothing from it
    supervisor.resume()
    # Absence of a kill can only be shown by waiting: two hang timeouts, with pings answered.
    time.sleep(2.0)
    assert sorted(child.pid for child in broker.children()) == pids
    assert "has not answered" not in broker.output()


def test_sighup_restarts_gateway_workers_one_by_one_without_refusing_requests(broker_factory):
    import threading

    import httpx2
    broker = broker_factory(GORTMS_GATEWAY_WORKERS="2")
    old = {broker.gateway_pid(0), broker.gateway_pid(1)}
    statuses: list[int] = []
    stop = threading.Event()

    def hammer() -> None:
        # A fresh connection per request: each one meets whichever worker is accepting.
        with httpx2.Client(base_url=broker.url, timeout=10,
                           limits=httpx2.Limits(max_keepalive_connections=0)) as client:
            while not stop.is_set():
                statuses.append(client.get("/health").status_code)

    worker = threading.Thread(target=hammer)
    worker.start()
    try:
        mark = len(broker.lines)
        broker.process.send_signal(signal.SIGHUP)
        for k in (0, 1):
            broker.wait_for_line(rf"gateway-{k} \(pid \d+\) stopped for the rolling restart",
                                 timeout_s=20, after=mark)
            broker.wait_for_line(rf"gateway-{k} ready", timeout_s=20, after=mark)
    finally:
        stop.set()
        worker.join(20)
    assert {broker.gateway_pid(0), broker.gateway_pid(1)}.isdisjoint(old)
    assert statuses and set(statuses) == {200}
    text = "\n".join(broker.lines[mark:])
    assert text.index("gateway-0 ready") < text.index("gateway-1 (pid")  # one at a time
