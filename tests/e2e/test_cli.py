"""`gortms shards`, `inspect`, `dump` and `check`, run against a real broker's data dir: each
while the broker runs and again on the same data dir once it stopped, as JSON and as a table.

One broker serves the module (`cli_broker`): it is filled, every command is run beside it
(the outputs are kept), then it is stopped and the tests run the commands again on its data.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import orjson
import pytest

from gortms.errors import QueueNotFound
from gortms.partition import shard_for
from shard.inspect import find_queue
from shard.memory import MemoryStore
from shard.store import name_key, queue_key
from tests.conftest import start_broker, unique

CLI_TIMEOUT_S = 30.0
SHARDS = 2  # tests/broker.py BASE_ENV
MODES = ["running", "stopped"]


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


def table_lines(output: str) -> list[str]:
    """Lines with runs of spaces folded, so assertions do not depend on column widths."""
    return [" ".join(line.split()) for line in output.splitlines()]


# --- the module's broker ------------------------------------------------------------------------


@dataclass
class CliBroker:
    data_dir: Path
    domain: str
    payments: str  # a queue on the shard of `orders`, with a dead letter
    ids: list[str]  # of orders' messages, positions 1-5
    delivered: list[dict]  # orders 1-3 as the API delivered them to `workers`
    state: dict  # run/state.json while it ran
    live: dict[tuple[str, ...], subprocess.CompletedProcess[str]] = field(default_factory=dict)

    @property
    def orders_shard(self) -> int:
        return shard_for(self.domain, "orders", SHARDS)

    def run(self, mode: str, *args: str) -> subprocess.CompletedProcess[str]:
        """The command as it ran beside the broker, or run now on its stopped data dir."""
        return self.live[args] if mode == "running" else gortms(self.data_dir, *args)

    def json(self, mode: str, *args: str) -> dict:
        result = self.run(mode, *args, "--json")
        assert result.returncode == 0, result.stdout + result.stderr
        return orjson.loads(result.stdout)


def _same_shard_name(domain: str, base: str) -> str:
    """A queue name placed on the shard of `orders` (bounded: half the names are)."""
    for n in range(1000):
        name = f"{base}{n}"
        if shard_for(domain, name, SHARDS) == shard_for(domain, "orders", SHARDS):
            return name
    raise AssertionError("no name on the shard of orders")


def _fill_orders(api, domain: str) -> tuple[list[str], list[dict]]:
    """5 messages; `workers` took 1-3, acked 2, got 3 again; `auditors` (auto ack) took 1-2."""
    queue = f"/api/domains/{domain}/queues/orders"
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
    return ids, got["messages"]


def _fill_payments(api, domain: str, name: str) -> None:
    """3 messages; `billing` took all, acked 1; 2 failed with no retry left: a dead letter.

    Last, and on the shard of orders: these durable writes commit that shard's lazy ones
    (a fetch's new position waits for the next commit) before the commands read it."""
    queue = f"/api/domains/{domain}/queues/{name}"
    assert api.post(f"/api/domains/{domain}/queues", json={"name": name, "config": {
        "retryEnabled": True, "retryConfig": {"maxRetries": 0}}}).status_code == 201
    for n in range(3):
        assert api.post(f"{queue}/messages", json={"amount": n}).status_code == 201
    billing = f"{queue}/consumer-groups/billing"
    assert api.post(f"{queue}/consumer-groups", json={"groupId": "billing"}).status_code == 201
    got = api.get(f"{billing}/messages", params={"count": 3, "consumer": "b"}).json()
    assert [m["position"] for m in got["messages"]] == [1, 2, 3]
    nacked = api.post(f"{billing}/nack", json={"positions": [2], "reason": "card declined"})
    assert nacked.json()["deadLettered"] == 1
    assert api.post(f"{billing}/ack", json={"positions": [1]}).json()["acked"] == 1


def _fill_volatile(api, domain: str) -> None:
    """Written without the WAL: a read-only open beside the broker does not see what is still
    in memory, which `check` must not take for missing messages."""
    assert api.post(f"/api/domains/{domain}/queues", json={
        "name": "volatile", "config": {"isPersistent": False}}).status_code == 201
    for n in range(3):
        assert api.post(f"/api/domains/{domain}/queues/volatile/messages",
                        json={"n": n}).status_code == 201


def _commands(broker: CliBroker) -> list[tuple[str, ...]]:
    orders, payments = f"{broker.domain}/orders", f"{broker.domain}/{broker.payments}"
    tables = [("shards",), ("inspect", orders), ("inspect", payments), ("check",)]
    return [*tables, *((*args, "--json") for args in tables), ("dump", orders),
            ("dump", orders, "--from", "2", "--limit", "2")]


def _run_beside(broker: CliBroker) -> None:
    """Every command at once while the broker runs (each opens the databases read-only)."""
    env = {**os.environ, "GORTMS_GENERAL_DATADIR": str(broker.data_dir)}
    running = {args: subprocess.Popen([sys.executable, "-m", "gortms", *args], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for args in _commands(broker)}
    for args, process in running.items():
        out, err = process.communicate(timeout=CLI_TIMEOUT_S)
        broker.live[args] = subprocess.CompletedProcess(process.args, process.returncode,
                                                        out, err)


@pytest.fixture(scope="module")
def cli_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CliBroker]:
    broker = start_broker(tmp_path_factory.mktemp("cli") / "data")
    domain = unique("cli")
    try:
        with broker.client() as api:
            assert api.post("/api/domains", json={"name": domain}).status_code == 201
            _fill_volatile(api, domain)
            ids, delivered = _fill_orders(api, domain)
            payments = _same_shard_name(domain, "payments")
            _fill_payments(api, domain, payments)
        filled = CliBroker(broker.data_dir, domain, payments, ids, delivered, broker.state())
        _run_beside(filled)
    finally:
        code = broker.stop()
    assert code == 0, broker.output()
    yield filled


# --- gortms shards ------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_shards_json_counts_each_shards_queues_groups_messages_and_disk(
        cli_broker: CliBroker, mode: str):
    report = cli_broker.json(mode, "shards")
    shards = report["shards"]
    assert [s["shard"] for s in shards] == [0, 1]
    # volatile, orders, payments and its dead-letter queue; workers, auditors, billing.
    assert sum(s["queues"] for s in shards) == 4
    assert sum(s["groups"] for s in shards) == 3
    assert sum(s["messages"] for s in shards) == 3 + 5 + 3 + 1
    assert [s["domains"] for s in shards] == [1, 0]  # the catalog is on shard 0
    orders = shards[cli_broker.orders_shard]
    assert orders["queues"] >= 3 and orders["groups"] == 3 and orders["keys"] > 0
    assert all(s["diskBytes"] > 0 and s["freeBytes"] > 0
               and s["storage"] == "ok" and s["minFreeBytes"] == 2**30 for s in shards)
    if mode == "running":
        assert report["running"] is True
        assert [s["pid"] for s in shards] == [s["pid"] for s in cli_broker.state["shards"]]
        assert {(s["state"], s["answered"]) for s in shards} == {("serving", True)}
        assert report["supervisor"]["pid"] == cli_broker.state["pid"]
        assert [g["pid"] for g in report["gateways"]] == [
            g["pid"] for g in cli_broker.state["gateways"]]
    else:
        assert report["running"] is False and report["warnings"] == []
        assert report["supervisor"] == {"pid": None, "state": "stopped",
                                        "dataDir": str(cli_broker.data_dir)}
        assert {(s["state"], s["pid"], s["read"]) for s in shards} == {("stopped", None, True)}
        assert report["gateways"] == []


@pytest.mark.parametrize("mode", MODES)
def test_shards_prints_a_table_of_the_shards(cli_broker: CliBroker, mode: str):
    result = cli_broker.run(mode, "shards")
    assert result.returncode == 0, result.stderr
    lines = table_lines(result.stdout)
    header = lines.index("shard pid state queues groups messages keys disk free storage")
    rows = [line.split() for line in lines[header + 1:header + 3]]
    report = cli_broker.json(mode, "shards")
    state = "serving" if mode == "running" else "stopped"
    assert [row[:6] for row in rows] == [
        [str(s["shard"]), str(s["pid"] or "-"), state, str(s["queues"]), str(s["groups"]),
         str(s["messages"])] for s in report["shards"]]
    assert all(row[-1] == "ok" for row in rows)
    if mode == "stopped":
        assert lines[0] == f"data dir {cli_broker.data_dir}: no broker running; read from " \
                           "the shards' databases (read-only)"
    else:
        assert lines[0].startswith("GoRTMS ") and "gateway pid state restarts" in lines


def test_shards_reads_a_data_dir_left_by_a_killed_supervisor_and_warns(
        cli_broker: CliBroker, tmp_path: Path):
    copy = tmp_path / "copy"
    shutil.copytree(cli_broker.data_dir, copy, ignore=shutil.ignore_patterns("run"))
    pid = dead_pid()
    write_state(copy, {"pid": pid, "shards": [], "gateways": []})
    report = gortms_json(copy, "shards")
    assert report["running"] is False
    assert report["warnings"] == [f"{copy}/run/state.json names supervisor pid {pid}, which is "
                                  f"not running (killed?)"]
    assert sum(s["queues"] for s in report["shards"]) == 4
    assert "warning: " in gortms(copy, "shards").stdout


def test_shards_reports_a_shard_whose_database_cannot_be_read_and_exits_1(
        cli_broker: CliBroker, tmp_path: Path):
    copy = tmp_path / "copy"
    shutil.copytree(cli_broker.data_dir, copy, ignore=shutil.ignore_patterns("run"))
    (copy / "shards" / "1" / "CURRENT").unlink()
    result = gortms(copy, "shards", "--json")
    assert result.returncode == 1
    shards = orjson.loads(result.stdout)["shards"]
    assert (shards[0]["state"], shards[0]["read"]) == ("stopped", True)
    assert (shards[1]["state"], shards[1]["read"]) == ("unreadable", False)
    assert shards[1]["problem"] == f"no database at {copy}/shards/1"
    table = gortms(copy, "shards")
    assert table.returncode == 1
    assert f"shard 1: no database at {copy}/shards/1" in table.stdout.splitlines()


def test_shards_without_a_broker_or_its_data_exits_1(tmp_path: Path):
    result = gortms(tmp_path / "data", "shards")
    assert result.returncode == 1
    assert result.stderr == f"gortms shards: no running broker, and data dir " \
                            f"{tmp_path / 'data'} does not exist\n"
    assert result.stdout == ""


def test_shards_ignores_the_state_left_by_a_killed_supervisor(tmp_path: Path):
    pid = dead_pid()
    write_state(tmp_path, {"pid": pid, "shards": [], "gateways": []})
    result = gortms(tmp_path, "shards")
    assert result.returncode == 1
    assert result.stderr == (
        f"gortms shards: no running broker ({tmp_path}/run/state.json names supervisor pid "
        f"{pid}, which is not running), and {tmp_path} holds no GoRTMS data (no cluster.json)\n")


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


@pytest.mark.parametrize("mode", MODES)
def test_inspect_shows_a_queues_positions_and_disk_use(cli_broker: CliBroker, mode: str):
    report = cli_broker.json(mode, "inspect", f"{cli_broker.domain}/orders")
    queue = report["queue"]
    assert (queue["firstPosition"], queue["lastPosition"], queue["messageCount"]) == (1, 5, 5)
    assert report["shard"] == cli_broker.orders_shard and report["shardCount"] == SHARDS
    assert queue["bytes"] > 0 and report["shardDiskBytes"] > queue["bytes"]
    assert report["domain"]["name"] == cli_broker.domain and report["warnings"] == []
    assert sorted(g["groupId"] for g in report["groups"]) == ["auditors", "workers"]


@pytest.mark.parametrize("mode", MODES)
def test_inspect_shows_a_groups_lag_pending_deliveries_and_redeliveries(
        cli_broker: CliBroker, mode: str):
    report = cli_broker.json(mode, "inspect", f"{cli_broker.domain}/orders")
    workers = next(g for g in report["groups"] if g["groupId"] == "workers")
    assert (workers["ackMode"], workers["position"], workers["ackFloor"], workers["lag"]) == (
        "explicit", 4, 1, 2)
    assert workers["pending"] == {"count": 2, "shown": [
        {"position": 1, "id": cli_broker.ids[0], "deliveryCount": 1},
        {"position": 3, "id": cli_broker.ids[2], "deliveryCount": 2}]}
    assert workers["redeliveries"] == {"count": 1, "shown": [{"position": 3, "deliveryCount": 2}]}
    assert workers["consumers"] == ["c1"]
    auditors = next(g for g in report["groups"] if g["groupId"] == "auditors")
    assert (auditors["ackMode"], auditors["position"], auditors["ackFloor"], auditors["lag"]) == (
        "auto", 3, 3, 3)
    assert auditors["pending"] == {"count": 0, "shown": []}


@pytest.mark.parametrize("mode", MODES)
def test_inspect_shows_dead_letters_after_a_message_ran_out_of_retries(
        cli_broker: CliBroker, mode: str):
    report = cli_broker.json(mode, "inspect", f"{cli_broker.domain}/{cli_broker.payments}")
    dead = report["deadLetters"]
    assert {k: v for k, v in dead.items() if k != "bytes"} == {
        "queue": f"{cli_broker.payments}.dlq", "exists": True, "messageCount": 1,
        "firstPosition": 1, "lastPosition": 1}
    assert dead["bytes"] > 0
    [billing] = report["groups"]
    # 1 acked, 2 dead-lettered (settled), 3 delivered and pending.
    assert (billing["position"], billing["ackFloor"], billing["lag"]) == (4, 3, 0)
    assert [p["position"] for p in billing["pending"]["shown"]] == [3]
    orders = cli_broker.json(mode, "inspect", f"{cli_broker.domain}/orders")
    assert orders["deadLetters"] == {"queue": "orders.dlq", "exists": False, "messageCount": 0,
                                     "bytes": 0, "firstPosition": None, "lastPosition": None}


@pytest.mark.parametrize("mode", MODES)
def test_inspect_prints_a_readable_report(cli_broker: CliBroker, mode: str):
    result = cli_broker.run(mode, "inspect", f"{cli_broker.domain}/orders")
    assert result.returncode == 0, result.stderr
    lines = table_lines(result.stdout)
    report = cli_broker.json(mode, "inspect", f"{cli_broker.domain}/orders")
    assert "positions first 1, last 5" in lines
    assert "position 4 ack floor 1 lag 2" in lines
    assert f"pending 2: 1 (id {cli_broker.ids[0]}), 3 (id {cli_broker.ids[2]}, " \
           "2 deliveries)" in lines
    assert "dead letters none (orders.dlq does not exist)" in lines
    # (The database's size moves beside a running broker, between this run and the JSON one.)
    disk = re.escape(f"disk {report['queue']['bytes']:,} bytes of messages; shard "
                     f"{report['shard']}'s database ") + r"[1-9][\d,]* bytes"
    assert any(re.fullmatch(disk, line) for line in lines), lines


@pytest.mark.parametrize("mode", MODES)
def test_inspect_prints_a_queues_dead_letters(cli_broker: CliBroker, mode: str):
    target = f"{cli_broker.domain}/{cli_broker.payments}"
    result = cli_broker.run(mode, "inspect", target)
    assert result.returncode == 0, result.stderr
    dead = cli_broker.json(mode, "inspect", target)["deadLetters"]
    assert f"dead letters 1 in {cli_broker.payments}.dlq (positions first 1, last 1; " \
           f"{dead['bytes']} bytes)" in table_lines(result.stdout)


def test_inspect_of_an_unknown_queue_exits_1(cli_broker: CliBroker):
    result = gortms(cli_broker.data_dir, "inspect", f"{cli_broker.domain}/nope")
    assert result.returncode == 1
    assert result.stderr == f"gortms inspect: queue 'nope' not found in domain " \
                            f"'{cli_broker.domain}'\n"
    assert result.stdout == ""


def test_inspect_of_an_unknown_domain_says_so(cli_broker: CliBroker):
    result = gortms(cli_broker.data_dir, "inspect", "nowhere/orders")
    assert result.returncode == 1
    assert "no domain 'nowhere' in the catalog" in result.stderr


@pytest.mark.parametrize("target", ["orders", "a/b/c", "/orders", "bad name/orders"])
def test_inspect_of_a_malformed_target_exits_2(tmp_path: Path, target: str):
    result = gortms(tmp_path, "inspect", target)
    assert result.returncode == 2
    assert result.stderr.startswith("gortms inspect: ")


# --- in-process: a deleted domain's leftovers cannot be made on demand ------------------------


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


def json_lines(result: subprocess.CompletedProcess[str]) -> list[dict]:
    assert result.returncode == 0, result.stderr
    assert result.stdout.endswith("\n") or not result.stdout
    return [orjson.loads(line) for line in result.stdout.splitlines()]


def dump_lines(data_dir: Path, *args: str) -> list[dict]:
    return json_lines(gortms(data_dir, "dump", *args))


@pytest.mark.parametrize("mode", MODES)
def test_dump_prints_the_messages_as_the_api_delivers_them(cli_broker: CliBroker, mode: str):
    dumped = json_lines(cli_broker.run(mode, "dump", f"{cli_broker.domain}/orders"))
    assert [(m["position"], m["id"], m["payload"]) for m in dumped] == [
        (n + 1, cli_broker.ids[n], {"n": n}) for n in range(5)]
    assert dumped[:3] == [{k: v for k, v in m.items() if k != "deliveryCount"}
                          for m in cli_broker.delivered]
    assert list(dumped[0]) == ["position", "timestamp", "id", "headers", "payload"]
    some = json_lines(cli_broker.run(mode, "dump", f"{cli_broker.domain}/orders", "--from", "2",
                                     "--limit", "2"))
    assert some == dumped[1:3]


def test_dump_reads_a_stopped_brokers_queue_from_a_position_and_up_to_a_limit(
        cli_broker: CliBroker):
    target = f"{cli_broker.domain}/orders"
    everything = dump_lines(cli_broker.data_dir, target)
    assert dump_lines(cli_broker.data_dir, target, "--from", "5", "--limit", "9") == \
        everything[4:]
    assert dump_lines(cli_broker.data_dir, target, "--from", "6") == []
    # --json changes nothing: dump always prints JSON lines.
    assert dump_lines(cli_broker.data_dir, target, "--json") == everything


def test_dump_shows_a_dead_letter_with_its_origin_headers(cli_broker: CliBroker):
    [dead] = dump_lines(cli_broker.data_dir, f"{cli_broker.domain}/{cli_broker.payments}.dlq")
    assert (dead["position"], dead["payload"]) == (1, {"amount": 1})
    assert {k: dead["headers"][k] for k in ("x-origin-queue", "x-origin-group", "x-reason",
                                            "x-original-position")} == {
        "x-origin-queue": cli_broker.payments, "x-origin-group": "billing",
        "x-reason": "card declined", "x-original-position": "2"}


def test_dump_reads_in_pages_of_positions(cli_broker: CliBroker,
                                          monkeypatch: pytest.MonkeyPatch):
    from gortms.datadir import Layout
    from shard import dump

    monkeypatch.setattr(dump, "PAGE", 2)
    layout = Layout(str(cli_broker.data_dir))
    with dump.open_queue(layout, cli_broker.domain, "orders") as (store, queue, warnings):
        pages = list(dump.pages(store, queue, None, None))
        limited = list(dump.pages(store, queue, 2, 3))
    assert warnings == []
    assert [page.count(b"\n") for page in pages] == [2, 2, 1]
    assert [orjson.loads(line)["position"] for line in b"".join(limited).splitlines()] == [
        2, 3, 4]


@pytest.mark.parametrize("option", [["--from", "0"], ["--limit", "x"], ["--limit", "-1"],
                                    ["--from", "1.5"]])
def test_dump_options_must_be_integers_of_at_least_1(cli_broker: CliBroker,
                                                     option: list[str]):
    result = gortms(cli_broker.data_dir, "dump", f"{cli_broker.domain}/orders", *option)
    assert result.returncode == 2
    assert result.stderr == f"gortms dump: {option[0]} must be an integer >= 1, got " \
                            f"'{option[1]}'\n"
    assert result.stdout == ""


def test_dump_of_an_unknown_queue_exits_1(cli_broker: CliBroker):
    result = gortms(cli_broker.data_dir, "dump", f"{cli_broker.domain}/nope")
    assert result.returncode == 1
    assert f"queue 'nope' not found in domain '{cli_broker.domain}'" in result.stderr
    assert result.stdout == ""
    unknown = gortms(cli_broker.data_dir, "dump", "nowhere/orders")
    assert unknown.returncode == 1 and "no domain 'nowhere' in the catalog" in unknown.stderr


# --- gortms check -------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_check_finds_no_problem_in_a_healthy_data_dir(cli_broker: CliBroker, mode: str):
    report = cli_broker.json(mode, "check")
    assert report["problemCount"] == 0 and report["shardCount"] == SHARDS
    assert report["dataDir"] == str(cli_broker.data_dir)
    assert sum(s["queues"] for s in report["shards"]) == 4
    assert sum(s["groups"] for s in report["shards"]) == 3
    result = cli_broker.run(mode, "check")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = table_lines(result.stdout)
    assert lines[2] == "shard queues groups problems"
    assert lines[3:5] == [f"{s['shard']} {s['queues']} {s['groups']} 0"
                          for s in report["shards"]]
    assert lines[-1] == "no problems found"


def _corrupt(broker: CliBroker, tmp_path: Path, *keys: Callable[[int], bytes],
             puts: Callable[[int], dict[bytes, bytes]] = lambda qid: {}) -> Path:
    """A copy of the stopped broker's data dir with `keys(qid)` of orders deleted from its
    shard, and `puts(qid)` written there."""
    from gortms.datadir import Layout
    from shard.rocks import RocksStore

    report = gortms_json(broker.data_dir, "inspect", f"{broker.domain}/orders")
    qid, shard = report["queue"]["qid"], report["shard"]
    copy = tmp_path / "copy"
    # (Without run/: its sockets cannot be copied, and nothing here reads it.)
    shutil.copytree(broker.data_dir, copy, ignore=shutil.ignore_patterns("run"))
    path = Layout(str(copy)).shard_dir(shard)
    assert os.path.isdir(path)
    store = RocksStore(path)
    try:
        batch = store.batch()
        for key in keys:
            batch.delete(key(qid))
        for key, value in puts(qid).items():
            batch.put(key, value)
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


def test_check_reports_a_deleted_message_and_exits_1(cli_broker: CliBroker, tmp_path: Path):
    from shard.store import message_prefix, pos_bytes

    copy = _corrupt(cli_broker, tmp_path, lambda qid: message_prefix(qid) + pos_bytes(2))
    [problem] = _problems(copy)
    assert f"queue {cli_broker.domain}/orders: counters say 5 messages" in problem
    assert "4 (" in problem and "(key L\\x00" in problem


def test_check_reports_a_deleted_queue_record_and_exits_1(cli_broker: CliBroker,
                                                          tmp_path: Path):
    copy = _corrupt(cli_broker, tmp_path, queue_key)
    problems = _problems(copy)
    assert any(f"name index entry {cli_broker.domain}/orders points to qid" in p
               and "which has no (readable) queue record" in p for p in problems)
    for what in ("message chunk keys", "counters key", "consumer group keys", "cursor keys",
                 "lease key", "redelivery key"):
        assert any(what in p and "which has no queue record" in p for p in problems), \
            (what, problems)


def test_check_reports_a_groups_leftover_records_and_exits_1(cli_broker: CliBroker,
                                                            tmp_path: Path):
    from shard.store import group_key

    copy = _corrupt(cli_broker, tmp_path, lambda qid: group_key(qid, "workers"))
    problems = _problems(copy)
    owner = f"group {cli_broker.domain}/orders/workers, which has no group record"
    assert {p.split(": ", 1)[1].split("  (key ")[0] for p in problems} == {
        # Two fetches (two leases), an ack (a delta record), a nack then a redelivery.
        f"1 cursor key of {owner}", f"1 ack delta key of {owner}",
        f"1 redelivery key of {owner}", f"2 lease keys of {owner}"}


def test_check_reports_records_naming_positions_a_queue_never_had(cli_broker: CliBroker,
                                                                  tmp_path: Path):
    import msgspec

    from gortms.protocol import Published
    from shard.store import dedup_prefix, pos_bytes, schedule_prefix

    def puts(qid: int) -> dict[bytes, bytes]:
        reply = msgspec.msgpack.encode(Published(first_position=6, count=2))
        return {
            # A delayed-delivery run of positions 4-7, and an idempotency key's publish of 6-7.
            schedule_prefix(qid) + pos_bytes(4): (4).to_bytes(4, "big") + pos_bytes(2**40),
            dedup_prefix(qid) + b"k1": pos_bytes(2**40) + reply}

    problems = _problems(_corrupt(cli_broker, tmp_path, puts=puts))
    owner = f"queue {cli_broker.domain}/orders, naming positions past its last position 5"
    assert {p.split(": ", 1)[1].split("  (key ")[0] for p in problems} == {
        f"1 delayed-delivery key of {owner}", f"1 idempotency key of {owner}"}


# --- a data dir that is not there, or not a broker's: every command says so ------------------


COMMANDS = [("inspect", "shop/orders"), ("dump", "shop/orders"), ("check",), ("shards",)]


def _says(command: str, problem: str) -> str:
    prefix = "no running broker, and " if command == "shards" else ""
    return f"gortms {command}: {prefix}{problem}\n"


@pytest.mark.parametrize("args", COMMANDS, ids=lambda args: args[0])
def test_a_missing_data_dir_exits_1_naming_it(tmp_path: Path, args: tuple[str, ...]):
    result = gortms(tmp_path / "nowhere", *args)
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == _says(args[0], f"data dir {tmp_path / 'nowhere'} does not exist")


@pytest.mark.parametrize("args", COMMANDS, ids=lambda args: args[0])
def test_a_data_dir_that_is_not_a_brokers_exits_1(tmp_path: Path, args: tuple[str, ...]):
    result = gortms(tmp_path, *args)
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == _says(args[0], f"{tmp_path} holds no GoRTMS data (no cluster.json)")
    (tmp_path / "cluster.json").write_bytes(b'{"something": "else"}')
    other = gortms(tmp_path, *args)
    assert other.returncode == 1
    assert other.stderr == _says(args[0], f"{tmp_path}/cluster.json is not a GoRTMS cluster "
                                          f"file (no shard count)")
    file = tmp_path / "a-file"
    file.write_text("")
    assert gortms(file, *args).stderr == _says(args[0], f"data dir {file} is not a directory")


@pytest.mark.parametrize("command", ["shards", "inspect", "check"])
def test_a_reader_that_goes_away_ends_a_command_quietly(cli_broker: CliBroker, command: str):
    args = [command, f"{cli_broker.domain}/orders"] if command == "inspect" else [command]
    read, write = os.pipe()
    os.close(read)  # as `gortms ... | head` once head has what it wants
    try:
        env = {**os.environ, "GORTMS_GENERAL_DATADIR": str(cli_broker.data_dir)}
        result = subprocess.run([sys.executable, "-m", "gortms", *args, "--json"], env=env,
                                stdout=write, stderr=subprocess.PIPE, text=True,
                                timeout=CLI_TIMEOUT_S)
    finally:
        os.close(write)
    assert (result.returncode, result.stderr) == (0, "")


def test_check_takes_no_argument(tmp_path: Path):
    result = gortms(tmp_path, "check", "shop/orders")
    assert result.returncode == 2
    assert result.stderr == "gortms check: takes no argument, got 'shop/orders'\n"
