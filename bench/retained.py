"""Retained data costs nothing (issue 5, point 3): the same loads on an empty queue and on one
holding 10 million messages; medians, the worst round and their ratios.

    ../.venv/bin/python retained.py [--messages 10000000] [--rounds 3] [--duration 10]
                                    [--commit REV] [--json PATH]

Brokers have 2 shards, 1 gateway worker and storage.sync on; queue bench/q has config
{"ttl": "0", "maxSize": 100000000}, so nothing expires or is evicted. Three loads:

  batch publish      wrk -t2 -c8, batches of 100 ~100-byte messages, after a 2 s warm-up
  consume+ack, tail  a new group at "latest", then 100k published, then 4 consumer processes
                     (fetch 100 + ack) drain them
  consume+ack, head  a new group at "earliest": 4 consumers (fetch 100 + ack) take the first
                     100k messages of the queue, 25k each, and stop

First the empty rounds: each load on a fresh broker whose queue starts empty (the head load
first publishes the 100k it takes: an empty queue's head is its tail). Then one broker is
preloaded with --messages (batches of 1000 over 4 connections; the first 100k with their ids,
for the head load) and the retained rounds run on it. The first starts right after the
preload, without the quiet wait the others get, so it carries the background compaction of
that burst of writes: expect it to be the worst round, shown beside the median. The queue
keeps what the rounds publish, so it holds more than --messages later on (each line says).

Checks: every consume is exactly once over its expected ids and leaves its group with nothing
pending; a publish fails on any failed request or unless the queue grew by at least what was
counted; any broker child restart fails the run. Also reported: CPU per process and the owner
shard's CPU by thread (rocksdb:low is RocksDB's compaction pool, rocksdb:high its flushes),
over each load's own window; the owner shard's RSS; the data dir size; and a graceful restart
with everything retained: SIGTERM, start on the same data dir, time until GET of the queue
answers 200 with every message counted and a fetch delivers.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit

import httpx2
import orjson
import psutil
import uvloop

from gortms.partition import shard_for
from harness import (DOMAIN, MAX_SIZE, PYTHON, QUEUE, BenchBroker, fail, format_cpu,
                     log, machine_line, median, payload, source_tree, wait_for_quiet)
from loads import (CONSUME_DEADLINE_S, PRELOAD_BATCH, PRELOAD_CONNECTIONS, Consumed,
                   HttpConnection, Load, SyncHttp, account, http_consumer, http_preload,
                   lua_script, run_clients, wrk)
from tests.broker import start_broker  # harness put the repository on sys.path

SHARDS = 2
BROKER_ENV = {"GORTMS_SHARDS_COUNT": str(SHARDS), "GORTMS_GATEWAY_WORKERS": "1",
              "GORTMS_STORAGE_SYNC": "true"}  # what BenchBroker() sets; a restart repeats it
QUEUE_CONFIG = {"ttl": "0", "maxSize": MAX_SIZE}
QUEUE_PATH = f"/api/domains/{DOMAIN}/queues/{QUEUE}"
SAMPLE = 100_000  # messages per consume measurement
CONSUMERS = 4
FETCH_COUNT = 100
BATCH = 100
CONNECTIONS = 8
WARMUP_S = 2
RESTART_DEADLINE_S = 300
SAMPLE_INTERVAL_S = 0.05
MAX_SAMPLES = 72_000  # an hour of CPU samples: the timeline's bound
LOADS = ("publish", "tail", "head")
LABELS = {"publish": "batch publish", "tail": "consume+ack, tail", "head": "consume+ack, head"}


@dataclass
class Run:
    """One measurement: `retained` is the queue's messageCount when it started."""

    case: str
    load: str
    round: int
    messages_per_s: float
    retained: int
    cpu: dict[str, float]
    threads: dict[str, float]
    rss_mb: float
    note: str = ""
    latency_ms: dict[str, float] = field(default_factory=dict)


# --- the broker under measurement ---------------------------------------------------------------


class Subject:
    """A broker with queue bench/q, and the owner shard of that queue."""

    def __init__(self, broker: BenchBroker) -> None:
        self.broker = broker
        url = urlsplit(broker.url)
        self.host, self.port = url.hostname or "127.0.0.1", url.port or 80
        pids = broker.pids()
        self.shard = psutil.Process(pids[f"shard-{shard_for(DOMAIN, QUEUE, SHARDS)}"])
        self.cpu = CpuTimeline({k: v for k, v in pids.items() if k != "supervisor"}, self.shard)

    def message_count(self) -> int:
        return self.broker.get(QUEUE_PATH)["messageCount"]

    def group(self, group: str) -> dict:
        return self.broker.get(f"{QUEUE_PATH}/consumer-groups/{group}")

    def create_group(self, group: str, start: str) -> str:
        with httpx2.Client(base_url=self.broker.url, timeout=30) as client:
            response = client.post(f"{QUEUE_PATH}/consumer-groups",
                                   json={"groupId": group, "start": start})
        if response.status_code != 201:
            raise RuntimeError(f"create group {group}: {response.status_code} {response.text}")
        return f"{QUEUE_PATH}/consumer-groups/{group}"

    def rss_mb(self) -> float:
        return self.shard.memory_info().rss / 2**20

    def data_dir_gb(self) -> float:
        size = 0
        for path in self.broker.data_dir.rglob("*"):
            try:
                size += path.stat().st_size if path.is_file() else 0
            except FileNotFoundError:  # a table file that a compaction just removed
                pass
        return size / 2**30

    def stop(self, check: bool = True) -> None:
        self.cpu.stop()
        self.broker.stop(check)


def new_subject(src: Path) -> Subject:
    broker = BenchBroker(workers=1, shards=SHARDS, sync=True, src=src)
    try:
        broker.setup_queue(config=QUEUE_CONFIG)
        return Subject(broker)
    except BaseException:
        broker.stop(check=False)
        raise


class CpuTimeline:
    """CPU time of the broker's processes, of the owner shard's threads summed by name (RocksDB
    names its compaction pool rocksdb:low and its flushes rocksdb:high) and of the machine,
    sampled in a thread. `rates(t0, t1)` is CPU% (100 = one core) over a window in epoch
    seconds: a consume load is measured from its first fetch to its last ack, not over the
    spawning of its client processes, and a background thread is not credited to the load."""

    def __init__(self, pids: dict[str, int], shard: psutil.Process) -> None:
        self.procs = {name: psutil.Process(pid) for name, pid in pids.items()}
        self.shard = shard
        self.names: dict[int, str] = {}
        self.samples: collections.deque[tuple[float, dict[str, float]]] = collections.deque(
            maxlen=MAX_SAMPLES)
        self.stopping = threading.Event()
        self.samples.append(self._sample())
        self.thread = threading.Thread(target=self._run, name="cpu-timeline", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stopping.wait(SAMPLE_INTERVAL_S):
            try:
                self.samples.append(self._sample())
            except psutil.NoSuchProcess:  # the broker is stopping
                return

    def _sample(self) -> tuple[float, dict[str, float]]:
        now = time.time()
        busy = {name: sum(proc.cpu_times()[:2]) for name, proc in self.procs.items()}
        for thread in self.shard.threads():
            key = f"thread {self._name(thread.id)}"
            busy[key] = busy.get(key, 0.0) + thread.user_time + thread.system_time
        machine = psutil.cpu_times()
        busy["machine"] = (machine.user + machine.nice + machine.system + machine.irq
                           + machine.softirq)
        return now, busy

    def _name(self, tid: int) -> str:
        if tid not in self.names:
            try:
                self.names[tid] = Path(f"/proc/{self.shard.pid}/task/{tid}/comm").read_text(
                    ).strip()
            except OSError:  # the thread ended meanwhile
                self.names[tid] = "ended"
        return self.names[tid]

    def rates(self, t0: float, t1: float) -> dict[str, float]:
        samples = list(self.samples)
        first = next((s for s in reversed(samples) if s[0] <= t0), samples[0])
        last = next((s for s in samples if s[0] >= t1), None) or self._sample()
        span = last[0] - first[0]
        return {name: max(0.0, 100 * (cpu - first[1].get(name, 0.0)) / span)
                for name, cpu in last[1].items()}

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(5)


def split_cpu(rates: dict[str, float], client: float) -> tuple[dict[str, float],
                                                                dict[str, float]]:
    """(CPU% per process, the client, everyone else and the machine; the owner shard's threads)."""
    threads = {k.removeprefix("thread "): v for k, v in rates.items() if k.startswith("thread ")}
    cpu = {k: v for k, v in rates.items() if not k.startswith("thread ") and k != "machine"}
    cpu["client"] = client
    cpu["others"] = max(0.0, rates["machine"] - sum(cpu.values()))
    cpu["machine"] = rates["machine"]
    return cpu, dict(sorted(threads.items(), key=lambda item: -item[1]))


def format_threads(threads: dict[str, float]) -> str:
    return ", ".join(f"{name} {cpu:.0f}%" for name, cpu in threads.items() if cpu >= 0.5)


# --- loads --------------------------------------------------------------------------------------


async def lean_preload(host: str, port: int, total: int, first_seq: int) -> int:
    """Batch-publish `total` messages counting them only (10M ids would not fit in memory
    cheaply); the number the broker answered as stored."""
    starts = iter(range(0, total, PRELOAD_BATCH))  # shared: no await between next() calls
    stored = 0

    async def publisher() -> None:
        nonlocal stored
        conn = HttpConnection(host, port)
        await conn.open()
        try:
            for first in starts:
                count = min(PRELOAD_BATCH, total - first)
                body = b'{"messages":[%s]}' % b",".join(
                    payload(first_seq + first + i).encode() for i in range(count))
                status, data = await conn.request("POST", QUEUE_PATH + "/messages/batch", body)
                if status != 201 or orjson.loads(data)["count"] != count:
                    raise RuntimeError(f"batch publish: HTTP {status} {data[:300]!r}")
                stored += count
        finally:
            await conn.close()

    await asyncio.gather(*(publisher() for _ in range(PRELOAD_CONNECTIONS)))
    return stored


def head_consumer(host: str, port: int, group_path: str, name: str, quota: int, *,
                  ready: Any, start: Any) -> Consumed:
    """One member of a group: fetch up to 100, ack them, until `quota` are acked."""
    fetch = f"{group_path}/messages?consumer={name}&count="
    ack = f"{group_path}/ack"
    out = Consumed()
    conn = SyncHttp(host, port)
    ready.release()
    start.wait()
    cpu0 = time.process_time()
    deadline = time.monotonic() + CONSUME_DEADLINE_S
    try:
        while len(out.ids) < quota:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name}: {len(out.ids)} of {quota} within "
                                   f"{CONSUME_DEADLINE_S}s")
            t0 = time.time()
            wanted = min(FETCH_COUNT, quota - len(out.ids))
            status, data = conn.request("GET", f"{fetch}{wanted}&timeout=1")
            if status != 200:
                raise RuntimeError(f"{name}: fetch HTTP {status} {data[:300]!r}")
            ids = [m["id"] for m in orjson.loads(data)["messages"]]
            if not ids:
                continue
            status, data = conn.request("POST", ack, orjson.dumps({"ids": ids}))
            reply = orjson.loads(data) if status == 200 else {}
            if reply.get("acked") != len(ids) or reply.get("unknown"):
                raise RuntimeError(f"{name}: ack HTTP {status} {data[:300]!r}")
            t1 = time.time()
            out.add(ids, t0, t1)
    finally:
        conn.close()
    out.cpu_s = time.process_time() - cpu0
    return out


def consumed(expected: list[str], results: list[Consumed]) -> tuple[Load, float, float]:
    """The load, from the first fetch to the last ack; fails unless exactly once."""
    load = account(expected, results)
    extra = {i for r in results for i in r.ids} - set(expected)
    if load.errors or extra:
        raise RuntimeError(f"not exactly once: {load.note}, {len(extra)} unexpected ids")
    return load, min(r.first_s for r in results), max(r.last_s for r in results)


# --- measurements -------------------------------------------------------------------------------


class Bench:
    """The options of one invocation, the wrk script, and the measurements."""

    def __init__(self, args: argparse.Namespace, scripts_dir: Path) -> None:
        self.args = args
        self.script = scripts_dir / f"publish-{BATCH}.lua"
        self.script.write_text(lua_script(BATCH))
        self.settle = True  # off for the round right after the preload

    def quiet(self) -> None:
        if self.settle:
            busy = wait_for_quiet(self.args.quiet_wait)
            if busy > 25:
                log(f"    (the machine was {busy:.0f}% busy before this run)")

    def measure(self, subject: Subject, case: str, load_name: str, round_no: int,
                work: Callable[[], tuple[Load, float, float]]) -> Run:
        """`work` returns the load and its window (epoch seconds)."""
        retained = subject.message_count()
        load, t0, t1 = work()
        if subject.broker.restarts():
            raise RuntimeError(f"a broker process restarted:\n{subject.broker.output()}")
        cpu, threads = split_cpu(subject.cpu.rates(t0, t1),
                                 100 * load.client_cpu_s / load.elapsed_s)
        run = Run(case, load_name, round_no, load.messages_per_s, retained, cpu, threads,
                  subject.rss_mb(), load.note, load.latency_ms)
        log(f"  {case} {LABELS[load_name]}: {run.messages_per_s:,.0f} msg/s with "
            f"{retained:,} retained; CPU {format_cpu(cpu)}; owner shard threads "
            f"{format_threads(threads)}; shard RSS {run.rss_mb:,.0f} MB"
            + (f"; {load.note}" if load.note else ""))
        return run

    def publish(self, subject: Subject, case: str, round_no: int) -> Run:
        url = subject.broker.url + QUEUE_PATH + "/messages/batch"
        warm, _ = wrk(url, self.script, CONNECTIONS, WARMUP_S)
        self.quiet()
        before = subject.message_count()
        requests = 0

        def work() -> tuple[Load, float, float]:
            nonlocal requests
            t0 = time.time()
            load, requests = wrk(url, self.script, CONNECTIONS, self.args.duration)
            if load.errors or load.timeouts or warm.errors or warm.timeouts:
                raise RuntimeError(f"{load.errors} failed requests, {load.timeouts} timeouts"
                                   f"\n{subject.broker.output()}")
            load.messages_per_s = load.requests_per_s * BATCH
            return load, t0, time.time()

        run = self.measure(subject, case, "publish", round_no, work)
        stored = subject.message_count() - before
        # wrk stops with requests in flight, which may still be stored: at least, not exactly.
        if stored < requests * BATCH:
            raise RuntimeError(f"wrk counted {requests} x {BATCH} but the queue gained {stored}")
        return run

    def tail(self, subject: Subject, case: str, round_no: int) -> Run:
        group_path = subject.create_group(f"tail-{round_no}", "latest")
        ids = asyncio.run(http_preload(subject.host, subject.port,
                                       QUEUE_PATH + "/messages/batch", SAMPLE))
        self.quiet()
        results: list[Consumed] = []

        def work() -> tuple[Load, float, float]:
            results.extend(run_clients(http_consumer, [
                (subject.host, subject.port, group_path, f"c{i}", FETCH_COUNT)
                for i in range(CONSUMERS)]))
            return consumed(ids, results)

        run = self.measure(subject, case, "tail", round_no, work)
        status = subject.group(f"tail-{round_no}")
        if status["lag"] or status["pending"]:
            raise RuntimeError(f"group tail-{round_no} after the tail load: {status}")
        return run

    def head(self, subject: Subject, case: str, round_no: int, ids: list[str]) -> Run:
        """`ids`: those of the queue's first SAMPLE positions."""
        group = f"head-{round_no}"
        group_path = subject.create_group(group, "earliest")
        self.quiet()
        results: list[Consumed] = []

        def work() -> tuple[Load, float, float]:
            results.extend(run_clients(head_consumer, [
                (subject.host, subject.port, group_path, f"c{i}", SAMPLE // CONSUMERS)
                for i in range(CONSUMERS)]))
            return consumed(ids, results)

        run = self.measure(subject, case, "head", round_no, work)
        status = subject.group(group)
        if status["pending"] or status["ackFloor"] != status["position"]:
            raise RuntimeError(f"group {group} after the head load: {status}")
        return run


# --- the two cases ------------------------------------------------------------------------------


def empty_round(bench: Bench, round_no: int, rss: list[float]) -> list[Run]:
    """Each load on a fresh broker whose queue starts empty."""
    runs = []
    for load_name in LOADS:
        subject = new_subject(bench.args.src)
        try:
            if load_name == "publish":
                runs.append(bench.publish(subject, "empty", round_no))
            elif load_name == "tail":
                runs.append(bench.tail(subject, "empty", round_no))
            else:
                ids = asyncio.run(http_preload(subject.host, subject.port,
                                               QUEUE_PATH + "/messages/batch", SAMPLE))
                runs.append(bench.head(subject, "empty", round_no, ids))
            rss.append(subject.rss_mb())
        finally:
            subject.stop()
    return runs


def preload(subject: Subject, total: int) -> tuple[list[str], dict]:
    """The first SAMPLE messages with their ids (the head load's), then the rest counted."""
    t0, since = time.monotonic(), time.time()
    head_ids = asyncio.run(http_preload(subject.host, subject.port,
                                        QUEUE_PATH + "/messages/batch", SAMPLE))
    stored = len(head_ids) + asyncio.run(lean_preload(subject.host, subject.port,
                                                      total - SAMPLE, SAMPLE))
    elapsed = time.monotonic() - t0
    count = subject.message_count()
    if stored != total or count != total:
        raise RuntimeError(f"preload: {stored:,} answered stored, queue holds {count:,}, "
                           f"of {total:,}")
    _, threads = split_cpu(subject.cpu.rates(since, time.time()), 0.0)
    info = {"seconds": elapsed, "messagesPerS": total / elapsed, "threads": threads,
            "rssMb": subject.rss_mb(), "dataDirGb": subject.data_dir_gb()}
    log(f"  preloaded {total:,} messages in {elapsed:.1f}s ({info['messagesPerS']:,.0f} "
        f"msg/s); owner shard threads {format_threads(info['threads'])}; shard RSS "
        f"{info['rssMb']:,.0f} MB; data dir {info['dataDirGb']:.2f} GB")
    return head_ids, info


def retained_round(bench: Bench, subject: Subject, round_no: int, head_ids: list[str]
                   ) -> list[Run]:
    since = time.time()
    runs = [bench.publish(subject, "retained", round_no),
            bench.tail(subject, "retained", round_no),
            bench.head(subject, "retained", round_no, head_ids)]
    _, threads = split_cpu(subject.cpu.rates(since, time.time()), 0.0)
    log(f"  after round {round_no}: shard RSS {subject.rss_mb():,.0f} MB, data dir "
        f"{subject.data_dir_gb():.2f} GB; owner shard threads over the whole round "
        f"{format_threads(threads)}")
    return runs


def restart(subject: Subject, src: Path, group: str) -> tuple[Subject, dict]:
    """SIGTERM, then start on the same data dir; seconds until it serves the queue again."""
    expected = subject.message_count()
    subject.cpu.stop()
    t0 = time.monotonic()
    try:
        code = subject.broker.broker.stop()
    except AssertionError as exc:  # it did not stop in time, and was killed
        raise RuntimeError(str(exc)) from None
    stop_s = time.monotonic() - t0
    if code != 0:
        raise RuntimeError(f"broker exited with {code}:\n{subject.broker.output()}")
    t0 = time.monotonic()
    try:
        broker = start_broker(subject.broker.data_dir, src=src, python=str(PYTHON),
                              **BROKER_ENV)
    except AssertionError as exc:
        raise RuntimeError(str(exc)) from None
    started_s = time.monotonic() - t0
    subject.broker.broker, subject.broker.url = broker, broker.url  # stop() cleans up
    queue_s = _until_queue_counts(broker.url, expected, t0)
    fetch_s = _until_fetch(broker.url, group, t0)
    restarted = Subject(subject.broker)
    info = {"retained": expected, "stopS": stop_s, "startedS": started_s, "queueS": queue_s,
            "fetchS": fetch_s, "rssMb": restarted.rss_mb()}
    return restarted, info


def _until_queue_counts(url: str, expected: int, t0: float) -> float:
    # The "started" line comes after every shard answered a ping, so the first GET should
    # do; a 503 (a shard still loading) is retried, within a bound.
    with httpx2.Client(base_url=url, timeout=30) as client:
        while time.monotonic() - t0 < RESTART_DEADLINE_S:
            response = client.get(QUEUE_PATH)
            if response.status_code == 200 and response.json()["messageCount"] == expected:
                return time.monotonic() - t0
            if response.status_code not in (200, 503):
                raise RuntimeError(f"GET queue after restart: {response.status_code} "
                                   f"{response.text}")
            time.sleep(0.05)
    raise RuntimeError(f"queue not serving {expected:,} messages {RESTART_DEADLINE_S}s after "
                       f"the restart")


def _until_fetch(url: str, group: str, t0: float) -> float:
    with httpx2.Client(base_url=url, timeout=30) as client:
        response = client.get(f"{QUEUE_PATH}/consumer-groups/{group}/messages",
                              params={"count": 1, "consumer": "restart", "timeout": 10})
    if response.status_code != 200 or not response.json()["messages"]:
        raise RuntimeError(f"fetch after restart: {response.status_code} {response.text}")
    return time.monotonic() - t0


# --- the report ---------------------------------------------------------------------------------


def summarize(runs: list[Run], messages: int) -> list[dict]:
    label = f"{messages / 1e6:g} M retained"
    log(f"| | empty | {label}, median | worst round |")
    log("| --- | --- | --- | --- |")
    rows, others = [], []
    for load_name in LOADS:
        empty_runs = [r for r in runs if r.case == "empty" and r.load == load_name]
        full = [r for r in runs if r.case == "retained" and r.load == load_name]
        empty = median(r.messages_per_s for r in empty_runs)
        mid = median(r.messages_per_s for r in full)
        worst = min(full, key=lambda r: r.messages_per_s)
        log(f"| {LABELS[load_name]} | {empty:,.0f} msg/s | {mid:,.0f} msg/s "
            f"({mid / empty:.2f}x) | {worst.messages_per_s:,.0f} msg/s "
            f"({worst.messages_per_s / empty:.2f}x, round {worst.round}) |")
        rows.append({"load": load_name, "empty": empty, "retainedMedian": mid,
                     "worst": worst.messages_per_s, "worstRound": worst.round,
                     "ratio": mid / empty, "worstRatio": worst.messages_per_s / empty})
        others.append(f"{load_name} {median(r.cpu['others'] for r in empty_runs):.0f} / "
                      f"{median(r.cpu['others'] for r in full):.0f} / "
                      f"{worst.cpu['others']:.0f}%")
    log("CPU of others (other users of the machine, kernel I/O work), median empty / median "
        "retained / worst round: " + ", ".join(others))
    return rows


def report_memory(messages: int, empty_rss: list[float], preloaded: dict,
                  rounds_rss: list[float], end_gb: float, restarted: dict) -> None:
    log(f"owner shard RSS: empty queue {median(empty_rss):,.0f} MB (median after each load); "
        f"{messages:,} retained {preloaded['rssMb']:,.0f} MB after the preload, "
        + ", ".join(f"{x:,.0f}" for x in rounds_rss) + " MB after each round, "
        f"{restarted['rssMb']:,.0f} MB after the restart")
    log(f"data dir: {preloaded['dataDirGb']:.2f} GB after the preload, {end_gb:.2f} GB at "
        f"the end")
    log(f"restart with {restarted['retained']:,} retained: SIGTERM to exit 0 in "
        f"{restarted['stopS']:.1f}s; start to 'started' {restarted['startedS']:.1f}s, to GET "
        f"queue 200 with every message counted {restarted['queueS']:.1f}s, to a fetch "
        f"delivering {restarted['fetchS']:.1f}s")


def run_all(args: argparse.Namespace, bench: Bench) -> dict:
    runs: list[Run] = []
    empty_rss: list[float] = []
    rounds_rss: list[float] = []
    subject: Subject | None = None
    stopped = False
    try:
        for round_no in range(1, args.rounds + 1):
            log(f"empty, round {round_no}/{args.rounds}")
            runs += empty_round(bench, round_no, empty_rss)
        wait_for_quiet(args.quiet_wait)
        subject = new_subject(args.src)
        head_ids, preloaded = preload(subject, args.messages)
        for round_no in range(1, args.rounds + 1):
            log(f"{args.messages:,} retained, round {round_no}/{args.rounds}")
            bench.settle = round_no > 1  # the first round starts right after the preload
            runs += retained_round(bench, subject, round_no, head_ids)
            rounds_rss.append(subject.rss_mb())
        end_gb = subject.data_dir_gb()
        subject, restarted = restart(subject, args.src, f"head-{args.rounds}")
        if subject.broker.restarts():
            raise RuntimeError(f"a broker process restarted:\n{subject.broker.output()}")
        subject.stop()
        stopped = True
    finally:
        if subject is not None and not stopped:
            subject.stop(check=False)
    rows = summarize(runs, args.messages)
    report_memory(args.messages, empty_rss, preloaded, rounds_rss, end_gb, restarted)
    return {"summary": rows, "runs": [asdict(r) for r in runs], "preload": preloaded,
            "rssMbAfterRounds": rounds_rss, "emptyRssMb": empty_rss, "dataDirGbEnd": end_gb,
            "restart": restarted}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=10_000_000,
                        help="messages retained (10000000)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=10, help="seconds per publish load (10)")
    parser.add_argument("--quiet-wait", type=float, default=30,
                        help="wait up to S seconds for an idle machine before each load")
    parser.add_argument("--commit", metavar="REV", help="measure this commit's snapshot")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args()
    if args.messages < SAMPLE or args.rounds < 1:
        fail(f"--messages must be at least {SAMPLE:,} and --rounds at least 1")
    uvloop.install()
    args.src, code = source_tree(args.commit)
    log(f"machine: {machine_line()}")
    log(f"code: {code}; storage.sync on, {SHARDS} shards, 1 gateway worker; queue config "
        f"{json.dumps(QUEUE_CONFIG)}; {args.messages:,} retained; {args.rounds} rounds, "
        f"{args.duration}s per publish load, {SAMPLE:,} per consume load")
    with tempfile.TemporaryDirectory(prefix="gortms-retained-") as tmp:
        result = run_all(args, Bench(args, Path(tmp)))
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": machine_line(), "code": code,
                                               "messages": args.messages, **result}, indent=1))


if __name__ == "__main__":
    try:
        main()
    except RuntimeError as exc:
        fail(str(exc))
