"""`gortms shards`, `inspect`, `dump` and `check`, run against a real broker's data dir."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import orjson
import pytest

from gortms.errors import QueueNotFound
from shard.inspect import find_queue
from shard.memory import MemoryStore
from shard.store import name_key, queue_key
from tests.conftest import Broker, start_broker, unique

CLI_TIMEOUT_S = 30.0


def gortms(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GORTMS_GENERAL_DATADIR": str(data_dir)}
    return subprocess.run([sys.executable, "-m", "gortms", *args], env=env,
                          capture_output=True, text=True, timeout=CLI_TIMEOUT_S)


def gortms_json(data_dir: Path, *args: str) -> dict:
    result = gortms(data_dir, *args, "--json")
    assert result.returncode == 0, result.stderr
    return orjson.loads(result.stdout)


def write_state(data_dir: Path, state: dict) -> None:
    (data_dir / "run").mkdir(parents=True)
    (data_dir / "run" / "state.json").write_bytes(orjson.dumps(state))


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", ""])
    process.wait(CLI_TIMEOUT_S)
    return process.pid


def closed_tcp_endpoint() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{sock.getsockname()[1]}"


# --- gortms shards ------------------------------------------------------------------------------


def test_shards_lists_every_shard_of_a_running_broker(shared_broker: Broker):
    state = shared_broker.state()
    result = gortms(shared_broker.data_dir, "shards")
    assert result.returncode == 0, result.stderr
    rows = [line.split() for line in result.stdout.splitlines()]
    shard_rows = [row for row in rows if row[:1] in (["0"], ["1"]) and len(row) >= 8]
    assert [(int(r[1]), r[2]) for r in shard_rows] == [
        (s["pid"], "serving") for s in state["shards"]]
    header = next(row for row in rows if row[:1] == ["shard"])
    assert header[-3:] == ["disk", "free", "storage"]
    assert [row[-1] for row in shard_rows] == ["ok", "ok"]


def test_shards_json_has_each_shard_pid_state_and_counts(shared_broker: Broker):
    state = shared_broker.state()
    report = gortms_json(shared_broker.data_dir, "shards")
    assert report["supervisor"]["pid"] == shared_broker.process.pid
    assert [s["pid"] for s in report["shards"]] == [s["pid"] for s in state["shards"]]
    assert {s["state"] for s in report["shards"]} == {"serving"}
    assert all(s["answered"] and s["diskBytes"] > 0 for s in report["shards"])
    # Free space of the shards' file system, and the watermark (storage.minFreeBytes: 1GiB).
    info = os.statvfs(shared_broker.data_dir)
    free = info.f_bavail * info.f_frsize
    for shard in report["shards"]:
        assert shard["storage"] == "ok"
        assert abs(shard["freeBytes"] - free) < 2**30, (shard["freeBytes"], free)
        assert shard["minFreeBytes"] == 2**30
    assert [g["pid"] for g in report["gateways"]] == [g["pid"] for g in state["gateways"]]


def test_shards_without_a_running_broker_exits_1(tmp_path: Path):
    result = gortms(tmp_path / "data", "shards")
    assert result.returncode == 1
    assert f"no running broker for data dir {tmp_path / 'data'}" in result.stderr
    assert result.stdout == ""


def test_shards_ignores_the_state_left_by_a_killed_supervisor(tmp_path: Path):
    write_state(tmp_path, {"pid": dead_pid(), "shards": [], "gateways": []})
    result = gortms(tmp_path, "shards")
    assert result.returncode == 1
    assert "no running broker" in result.stderr and "not running" in result.stderr


def test_shards_reports_a_shard_that_does_not_answer_instead_of_hanging(tmp_path: Path):
    write_state(tmp_path, {
        "pid": os.getpid(), "version": "test", "nodeId": "n", "dataDir": str(tmp_path),
        "shards": [{"index": 0, "pid": None, "state": "restarting",
                    "endpoint": closed_tcp_endpoint()}],
        "gateways": []})
    result = gortms(tmp_path, "shards", "--json")
    assert result.returncode == 1
    [shard] = orjson.loads(result.stdout)["shards"]
    assert (shard["answered"], shard["state"]) == (False, "not answering")
    assert "not answering" in gortms(tmp_path, "shards").stdout


# --- gortms inspect -----------------------------------------------------------------------------


def test_inspect_reads_a_queue_while_its_broker_runs(shared_broker: Broker):
    domain = unique("live")
    with shared_broker.client() as api:
        assert api.post("/api/domains", json={"name": domain}).status_code == 201
        assert api.post(f"/api/domains/{domain}/queues", json={"name": "q"}).status_code == 201
        for n in range(2):
            assert api.post(f"/api/domains/{domain}/queues/q/messages",
                            json={"n": n}).status_code == 201
    report = gortms_json(shared_broker.data_dir, "inspect", f"{domain}/q")
    queue = report["queue"]
    assert (queue["firstPosition"], queue["lastPosition"], queue["messageCount"]) == (1, 2, 2)
    assert report["groups"] == [] and report["warnings"] == []


@dataclass
class StoppedBroker:
    data_dir: Path
    domain: str
    ids: list[str]


def _fill(api, domain: str) -> list[str]:
    """5 messages; `workers` took 1-3, acked 2, got 3 again; `auditors` (auto ack) took 1-2."""
    queue = f"/api/domains/{domain}/queues/orders"
    assert api.post("/api/domains", json={"name": domain}).status_code == 201
    assert api.post(f"/api/domains/{domain}/queues", json={"name": "orders"}).status_code == 201
    ids = [api.post(f"{queue}/messages", json={"n": n}).json()["messageId"] for n in range(5)]
    workers = f"{queue}/consumer-groups/workers"
    assert api.post(f"{queue}/consumer-groups", json={"groupId": "workers"}).status_code == 201
    assert api.post(f"{workers}/consumers", json={"consumerId": "c1"}).status_code == 201
    got = api.get(f"{workers}/messages", params={"count": 3, "consumer": "c1"}).json()
    assert [m["position"] for m in got["messages"]] == [1, 2, 3]
    assert api.post(f"{workers}/ack", json={"positions": [2]}).json()["acked"] == 1
    assert api.post(f"{workers}/nack", json={"positions": [3]}).json()["nacked"] == 1
    again = api.get(f"{workers}/messages", params={"count": 1, "consumer": "c1"}).json()
    assert [(m["position"], m["deliveryCount"]) for m in again["messages"]] == [(3, 2)]
    assert api.post(f"{queue}/consumer-groups",
                    json={"groupId": "auditors", "ackMode": "auto"}).status_code == 201
    audited = api.get(f"{queue}/consumer-groups/auditors/messages", params={"count": 2}).json()
    assert audited["count"] == 2
    return ids


@pytest.fixture(scope="module")
def stopped_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StoppedBroker]:
    broker = start_broker(tmp_path_factory.mktemp("stopped") / "data")
    domain = unique("cli")
    try:
        with broker.client() as api:
            ids = _fill(api, domain)
    finally:
        code = broker.stop()
    assert code == 0, broker.output()
    yield StoppedBroker(broker.data_dir, domain, ids)


def test_inspect_shows_positions_of_a_stopped_brokers_queue(stopped_broker: StoppedBroker):
    report = gortms_json(stopped_broker.data_dir, "inspect", f"{stopped_broker.domain}/orders")
    queue = report["queue"]
    assert (queue["firstPosition"], queue["lastPosition"], queue["messageCount"]) == (1, 5, 5)
    assert report["domain"]["name"] == stopped_broker.domain and report["warnings"] == []
    assert sorted(g["groupId"] for g in report["groups"]) == ["auditors", "workers"]


def test_inspect_shows_a_groups_unacked_deliveries_and_redeliveries(
        stopped_broker: StoppedBroker):
    report = gortms_json(stopped_broker.data_dir, "inspect", f"{stopped_broker.domain}/orders")
    workers = next(g for g in report["groups"] if g["groupId"] == "workers")
    assert (workers["ackMode"], workers["position"], workers["ackFloor"], workers["lag"]) == (
        "explicit", 4, 1, 2)
    assert workers["unacked"] == {"count": 2, "shown": [
        {"position": 1, "id": stopped_broker.ids[0], "deliveryCount": 1},
        {"position": 3, "id": stopped_broker.ids[2], "deliveryCount": 2}]}
    assert workers["redeliveries"] == {"count": 1, "shown": [{"position": 3, "deliveryCount": 2}]}
    assert workers["consumers"] == ["c1"]


def test_inspect_shows_an_auto_ack_group_with_nothing_unacked(stopped_broker: StoppedBroker):
    report = gortms_json(stopped_broker.data_dir, "inspect", f"{stopped_broker.domain}/orders")
    auditors = next(g for g in report["groups"] if g["groupId"] == "auditors")
    assert (auditors["ackMode"], auditors["position"], auditors["ackFloor"], auditors["lag"]) == (
        "auto", 3, 3, 3)
    assert auditors["unacked"] == {"count": 0, "shown": []}


def test_inspect_prints_a_readable_report(stopped_broker: StoppedBroker):
    result = gortms(stopped_broker.data_dir, "inspect", f"{stopped_broker.domain}/orders")
    assert result.returncode == 0, result.stderr
    lines = [" ".join(line.split()) for line in result.stdout.splitlines()]
    assert "positions first 1, last 5" in lines
    assert "position 4 ack floor 1 lag 2" in lines
    assert f"unacked 2: 1 (id {stopped_broker.ids[0]}), 3 (id {stopped_broker.ids[2]}, " \
           "2 deliveries)" in lines


def test_inspect_of_an_unknown_queue_exits_1(stopped_broker: StoppedBroker):
    result = gortms(stopped_broker.data_dir, "inspect", f"{stopped_broker.domain}/nope")
    assert result.returncode == 1
    assert f"queue 'nope' not found in domain '{stopped_broker.domain}'" in result.stderr
    assert result.stdout == ""


def test_inspect_of_an_unknown_domain_says_so(stopped_broker: StoppedBroker):
    result = gortms(stopped_broker.data_dir, "inspect", "nowhere/orders")
    assert result.returncode == 1
    assert "no domain 'nowhere' in the catalog" in result.stderr


@pytest.mark.parametrize("target", ["orders", "a/b/c", "/orders", "bad name/orders"])
def test_inspect_of_a_malformed_target_exits_2(tmp_path: Path, target: str):
    result = gortms(tmp_path, "inspect", target)
    assert result.returncode == 2
    assert result.stderr.startswith("gortms inspect: ")


def test_inspect_of_a_data_dir_without_a_broker_exits_1(tmp_path: Path):
    result = gortms(tmp_path, "inspect", "shop/orders")
    assert result.returncode == 1
    assert "no cluster.json" in result.stderr
    assert not (tmp_path / "shards").exists()


# --- domain incarnations (in-process: a deleted domain's leftovers cannot be made on demand) ----


def _store_with_queue(epoch: int) -> MemoryStore:
    store = MemoryStore()
    batch = store.batch()
    batch.put(name_key("shop", "orders"), (7).to_bytes(4, "big"))
    batch.put(queue_key(7), orjson.dumps({"qid": 7, "domain": "shop", "name": "orders",
                                          "epoch": epoch, "config": {}, "createdAt": 0}))
    store.write(batch, sync=False)
    return store


def test_inspect_warns_when_the_queues_domain_has_no_catalog_record():
    record, warnings = find_queue(_store_with_queue(epoch=1), "shop", "orders", None)
    assert record["qid"] == 7
    assert warnings and "domain 'shop' has no catalog record" in warnings[0]


def test_inspect_does_not_take_an_earlier_domain_incarnations_queue_for_the_current_one():
    with pytest.raises(QueueNotFound, match=r"leftover of an earlier domain 'shop' \(epoch 1\)"):
        find_queue(_store_with_queue(epoch=1), "shop", "orders", {"epoch": 2})


# --- gortms dump --------------------------------------------------------------------------------


def dump_lines(data_dir: Path, *args: str) -> list[dict]:
    result = gortms(data_dir, "dump", *args)
    assert result.returncode == 0, result.stderr
    assert result.stdout.endswith("\n") or not result.stdout
    return [orjson.loads(line) for line in result.stdout.splitlines()]


def test_dump_prints_a_running_brokers_messages_as_the_api_delivers_them(
        shared_broker: Broker):
    domain = unique("dump")
    queue = f"/api/domains/{domain}/queues/q"
    with shared_broker.client() as api:
        assert api.post("/api/domains", json={"name": domain}).status_code == 201
        assert api.post(f"/api/domains/{domain}/queues", json={"name": "q"}).status_code == 201
        for n in range(3):
            assert api.post(f"{queue}/messages", json={"n": n, "text": "é"}).status_code == 201
        assert api.post(f"{queue}/consumer-groups", json={"groupId": "g"}).status_code == 201
        delivered = api.get(f"{queue}/consumer-groups/g/messages",
                            params={"count": 10, "consumer": "c"}).json()["messages"]
    dumped = dump_lines(shared_broker.data_dir, f"{domain}/q")
    assert [m["position"] for m in dumped] == [1, 2, 3]
    assert dumped == [{k: v for k, v in m.items() if k != "deliveryCount"} for m in delivered]
    assert list(dumped[0]) == ["position", "timestamp", "id", "headers", "payload"]


def test_dump_reads_a_stopped_brokers_queue_from_a_position_and_up_to_a_limit(
        stopped_broker: StoppedBroker):
    target = f"{stopped_broker.domain}/orders"
    everything = dump_lines(stopped_broker.data_dir, target)
    assert [(m["position"], m["id"], m["payload"]) for m in everything] == [
        (n + 1, stopped_broker.ids[n], {"n": n}) for n in range(5)]
    some = dump_lines(stopped_broker.data_dir, target, "--from", "2", "--limit", "2")
    assert some == everything[1:3]
    assert dump_lines(stopped_broker.data_dir, target, "--from", "5", "--limit", "9") == \
        everything[4:]
    assert dump_lines(stopped_broker.data_dir, target, "--from", "6") == []


def test_dump_reads_in_pages_of_positions(stopped_broker: StoppedBroker,
                                          monkeypatch: pytest.MonkeyPatch):
    from gortms.datadir import Layout
    from shard import dump

    monkeypatch.setattr(dump, "PAGE", 2)
    layout = Layout(str(stopped_broker.data_dir))
    with dump.open_queue(layout, stopped_broker.domain, "orders") as (store, queue, warnings):
        pages = list(dump.pages(store, queue, None, None))
        limited = list(dump.pages(store, queue, 2, 3))
    assert warnings == []
    assert [page.count(b"\n") for page in pages] == [2, 2, 1]
    assert [orjson.loads(line)["position"] for line in b"".join(limited).splitlines()] == [
        2, 3, 4]


@pytest.mark.parametrize("option", [["--from", "0"], ["--limit", "x"], ["--limit", "-1"],
                                    ["--from", "1.5"]])
def test_dump_options_must_be_integers_of_at_least_1(stopped_broker: StoppedBroker,
                                                     option: list[str]):
    result = gortms(stopped_broker.data_dir, "dump", f"{stopped_broker.domain}/orders", *option)
    assert result.returncode == 2
    assert result.stderr == f"gortms dump: {option[0]} must be an integer >= 1, got " \
                            f"'{option[1]}'\n"
    assert result.stdout == ""


def test_dump_of_an_unknown_queue_exits_1(stopped_broker: StoppedBroker):
    result = gortms(stopped_broker.data_dir, "dump", f"{stopped_broker.domain}/nope")
    assert result.returncode == 1
    assert f"queue 'nope' not found in domain '{stopped_broker.domain}'" in result.stderr
    assert result.stdout == ""
    unknown = gortms(stopped_broker.data_dir, "dump", "nowhere/orders")
    assert unknown.returncode == 1 and "no domain 'nowhere' in the catalog" in unknown.stderr


# --- gortms check -------------------------------------------------------------------------------


def test_check_finds_no_problem_beside_a_running_broker(shared_broker: Broker):
    domain = unique("check")
    with shared_broker.client() as api:
        _fill(api, domain)
        # Written without the WAL: a read-only open does not see what is still in memory,
        # which the check must not take for missing messages.
        assert api.post(f"/api/domains/{domain}/queues", json={
            "name": "volatile", "config": {"isPersistent": False}}).status_code == 201
        for n in range(3):
            assert api.post(f"/api/domains/{domain}/queues/volatile/messages",
                            json={"n": n}).status_code == 201
    result = gortms(shared_broker.data_dir, "check")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[2].split() == ["shard", "queues", "groups", "problems"]
    assert [row.split()[0] for row in lines[3:5]] == ["0", "1"]
    assert all(row.split()[3] == "0" for row in lines[3:5])
    assert lines[-1] == "no problems found"


def test_check_finds_no_problem_in_a_stopped_brokers_data_dir(stopped_broker: StoppedBroker):
    result = gortms(stopped_broker.data_dir, "check", "--json")
    assert result.returncode == 0, result.stdout
    report = orjson.loads(result.stdout)
    assert report["problemCount"] == 0 and report["shardCount"] == 2
    assert sum(s["queues"] for s in report["shards"]) == 1
    assert sum(s["groups"] for s in report["shards"]) == 2


def _corrupt(stopped_broker: StoppedBroker, tmp_path: Path, *keys) -> Path:
    """A copy of the stopped broker's data dir with `keys(qid)` deleted from the queue's
    shard."""
    import shutil

    from gortms.datadir import Layout
    from shard.rocks import RocksStore

    report = gortms_json(stopped_broker.data_dir, "inspect", f"{stopped_broker.domain}/orders")
    qid, shard = report["queue"]["qid"], report["shard"]
    copy = tmp_path / "copy"
    # (Without run/: its sockets cannot be copied, and nothing here reads it.)
    shutil.copytree(stopped_broker.data_dir, copy, ignore=shutil.ignore_patterns("run"))
    path = Layout(str(copy)).shard_dir(shard)
    assert os.path.isdir(path)
    store = RocksStore(path)
    try:
        batch = store.batch()
        for key in keys:
            batch.delete(key(qid))
        store.write(batch, sync=True)
    finally:
        store.close()
    return copy


def _problems(data_dir: Path) -> list[str]:
    result = gortms(data_dir, "check")
    assert result.returncode == 1, result.stdout + result.stderr
    table = gortms(data_dir, "check", "--json")
    assert table.returncode == 1
    report = orjson.loads(table.stdout)
    problems = [p for s in report["shards"] for p in s["problems"]]
    assert report["problemCount"] == len(problems) > 0
    lines = [line for line in result.stdout.splitlines() if re.match(r"shard \d+: ", line)]
    assert len(lines) == len(problems)
    return lines


def test_check_reports_a_deleted_message_and_exits_1(stopped_broker: StoppedBroker,
                                                     tmp_path: Path):
    from shard.store import message_prefix, pos_bytes

    copy = _corrupt(stopped_broker, tmp_path, lambda qid: message_prefix(qid) + pos_bytes(2))
    [problem] = _problems(copy)
    assert f"queue {stopped_broker.domain}/orders: counters say 5 messages" in problem
    assert "4 (" in problem and "(key L\\x00" in problem


def test_check_reports_a_deleted_queue_record_and_exits_1(stopped_broker: StoppedBroker,
                                                          tmp_path: Path):
    from shard.store import queue_key

    copy = _corrupt(stopped_broker, tmp_path, queue_key)
    problems = _problems(copy)
    assert any(f"name index entry {stopped_broker.domain}/orders points to qid" in p
               and "which has no (readable) queue record" in p for p in problems)
    for what in ("message chunk keys", "counters key", "consumer group keys", "cursor keys",
                 "lease key", "redelivery key"):
        assert any(what in p and "which has no queue record" in p for p in problems), \
            (what, problems)


def test_check_reports_a_groups_leftover_records_and_exits_1(stopped_broker: StoppedBroker,
                                                            tmp_path: Path):
    from shard.store import group_key

    copy = _corrupt(stopped_broker, tmp_path, lambda qid: group_key(qid, "workers"))
    problems = _problems(copy)
    owner = f"group {stopped_broker.domain}/orders/workers, which has no group record"
    assert {p.split(": ", 1)[1].split("  (key ")[0] for p in problems} == {
        # Two fetches (two leases), an ack (a delta record), a nack then a redelivery.
        f"1 cursor key of {owner}", f"1 ack delta key of {owner}",
        f"1 redelivery key of {owner}", f"2 lease keys of {owner}"}


def test_check_of_a_data_dir_without_a_broker_exits_1(tmp_path: Path):
    result = gortms(tmp_path, "check")
    assert result.returncode == 1
    assert "no cluster.json" in result.stderr
    assert gortms(tmp_path, "check", "shop/orders").returncode == 2
