"""Consume-with-ack throughput through a consumer group, in batches of 100.

    .venv/bin/python bench/consume_ack.py [--messages 300000] [--consumers 8] [--count 100]
                                          [--workers 1,2] [--runs 3] [--profile DIR]

Every run starts a fresh broker (2 shards, storage.sync on) in a temp dir on a free port,
creates domain `bench`, queue `q` (maxSize 100,000,000) and group `g` (explicit acks,
from the earliest position), and preloads N ~100-byte messages by batch publish (1000 per
request, 4 connections). Then C consumers, each on its own HTTP/1.1 keep-alive connection,
loop: GET .../consumer-groups/g/messages?count=100&consumer=cN, then POST .../ack with
the ids they got, until the group has nothing left. Reported: messages consumed and acked
per second (from the first fetch to the last ack), latency percentiles of the fetch, the ack
and the whole round trip, and CPU per process.

Correctness is checked on every run: every published id is consumed exactly once (unique
ids counted against the publish replies), every ack answers acked = len(ids) with no
unknown id, and afterwards the group reports lag 0 and pending 0.

The client is raw HTTP/1.1 over asyncio streams (uvloop) with orjson, to leave the two cores
to the broker as far as a Python client can.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import orjson
import uvloop

from harness import (DOMAIN, QUEUE, Broker, CpuMeter, Profiler, add_common_args, fail,
                     format_cpu, log, machine_line, median, payload, percentile, source_tree,
                     wait_for_quiet)

GROUP = "g"
PRELOAD_BATCH = 1000
PRELOAD_CONNECTIONS = 4
EMPTY_POLL_S = 1  # long poll while other consumers still hold the last messages
CONSUME_DEADLINE_S = 600
_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.I)


class HttpConnection:
    """One keep-alive HTTP/1.1 connection; requests in sequence, Content-Length bodies only."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        assert self.reader is not None and self.writer is not None
        self.writer.write(b"%s %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
                          b"Content-Length: %d\r\n\r\n%s" % (
                              method.encode(), path.encode(), self.host.encode(), self.port,
                              len(body), body))
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = _CONTENT_LENGTH.search(head)
        if length is None:
            raise RuntimeError(f"{method} {path}: a response without Content-Length: {head!r}")
        return status, await self.reader.readexactly(int(length.group(1)))

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            await self.writer.wait_closed()


def _check(status: int, data: bytes, expected: int, what: str) -> dict:
    if status != expected:
        raise RuntimeError(f"{what}: HTTP {status} {data[:300]!r}")
    return orjson.loads(data)


# --- preload ------------------------------------------------------------------------------------


async def preload(host: str, port: int, total: int) -> tuple[list[str], float]:
    """Publish `total` messages in batches; (the ids in publish order, seconds taken)."""
    path = f"/api/domains/{DOMAIN}/queues/{QUEUE}/messages/batch"
    starts = list(range(0, total, PRELOAD_BATCH))
    ids: dict[int, list[str]] = {}

    async def publisher() -> None:
        conn = HttpConnection(host, port)
        await conn.open()
        try:
            while starts:
                first = starts.pop()
                count = min(PRELOAD_BATCH, total - first)
                body = b'{"messages":[%s]}' % b",".join(
                    payload(first + i).encode() for i in range(count))
                reply = _check(*await conn.request("POST", path, body), 201, "batch publish")
                if reply["count"] != count:
                    raise RuntimeError(f"batch publish stored {reply['count']} of {count}")
                ids[first] = reply["messageIds"]
        finally:
            await conn.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(publisher() for _ in range(PRELOAD_CONNECTIONS)))
    elapsed = time.perf_counter() - t0
    return [i for first in sorted(ids) for i in ids[first]], elapsed


# --- consume ------------------------------------------------------------------------------------


@dataclass
class Consumed:
    ids: list[str] = field(default_factory=list)
    fetch_ms: list[float] = field(default_factory=list)
    ack_ms: list[float] = field(default_factory=list)
    round_ms: list[float] = field(default_factory=list)
    first_s: float = float("inf")
    last_s: float = 0.0
    empty_fetches: int = 0


class Progress:
    """Deliveries seen by all consumers, to tell 'drained' from 'others hold the rest'."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.delivered = 0


async def consumer(name: str, host: str, port: int, count: int, progress: Progress
                   ) -> Consumed:
    base = f"/api/domains/{DOMAIN}/queues/{QUEUE}/consumer-groups/{GROUP}"
    fetch_path = f"{base}/messages?count={count}&consumer={name}"
    ack_path = f"{base}/ack"
    out = Consumed()
    conn = HttpConnection(host, port)
    await conn.open()
    deadline = time.perf_counter() + CONSUME_DEADLINE_S
    try:
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            reply = _check(*await conn.request("GET", fetch_path), 200, "fetch")
            t1 = time.perf_counter()
            messages = reply["messages"]
            if not messages:
                out.empty_fetches += 1
                if progress.delivered >= progress.total:
                    break  # drained: what is left is held (and being acked) by the others
                # Not all delivered yet, but nothing for us now: wait for a redelivery.
                reply = _check(*await conn.request("GET", f"{fetch_path}&timeout={EMPTY_POLL_S}"),
                               200, "fetch")
                messages = reply["messages"]
                if not messages:
                    continue
                t1 = time.perf_counter()
            ids = [m["id"] for m in messages]
            progress.delivered += len(ids)
            ack = _check(*await conn.request("POST", ack_path, orjson.dumps({"ids": ids})),
                         200, "ack")
            t2 = time.perf_counter()
            if ack["acked"] != len(ids) or ack.get("unknown"):
                raise RuntimeError(f"{name}: acked {ack['acked']} of {len(ids)}, unknown "
                                   f"{ack.get('unknown')[:5]}")
            out.ids += ids
            out.fetch_ms.append((t1 - t0) * 1000)
            out.ack_ms.append((t2 - t1) * 1000)
            out.round_ms.append((t2 - t0) * 1000)
            out.first_s = min(out.first_s, t0)
            out.last_s = t2
        else:
            raise RuntimeError(f"{name}: not drained within {CONSUME_DEADLINE_S}s")
    finally:
        await conn.close()
    return out


def verify(published: list[str], results: list[Consumed]) -> str:
    consumed = [i for r in results for i in r.ids]
    unique = set(consumed)
    duplicates = len(consumed) - len(unique)
    expected = set(published)
    missing = len(expected - unique)
    unexpected = len(unique - expected)
    if len(expected) != len(published):
        raise RuntimeError(f"publish returned {len(published) - len(expected)} repeated ids")
    if duplicates or missing or unexpected:
        raise RuntimeError(f"not exactly once: {len(consumed)} consumed, {duplicates} "
                           f"duplicates, {missing} missing, {unexpected} unexpected")
    return (f"exactly once: {len(unique):,} unique ids consumed and acked = "
            f"{len(expected):,} published")


# --- one run ------------------------------------------------------------------------------------


@dataclass
class Run:
    workers: int
    msgs_per_s: float
    preload_msgs_per_s: float
    fetch_ms: list[float]
    ack_ms: list[float]
    round_ms: list[float]
    cpu: dict[str, float]


def percentiles(values: list[float]) -> str:
    ordered = sorted(values)
    return " ".join(f"p{p} {percentile(ordered, p):.1f}" for p in (50, 90, 99)) + \
        f" max {ordered[-1]:.1f}ms" if ordered else "-"


async def consume_phase(broker: Broker, args: argparse.Namespace, profile_dir: Path | None
                        ) -> tuple[list[Consumed], dict[str, float], str]:
    url = urlsplit(broker.url)
    pids = {k: v for k, v in broker.pids().items() if k != "supervisor"}
    meter = CpuMeter({**pids, "client": os.getpid()})
    profiler = Profiler(pids, profile_dir) if profile_dir is not None else None
    progress = Progress(args.messages)
    meter.start()
    if profiler is not None:
        profiler.start()
    results = await asyncio.gather(*(
        consumer(f"c{i}", url.hostname, url.port, args.count, progress)
        for i in range(args.consumers)))
    cpu = meter.stop()
    profile = profiler.finish() if profiler is not None else ""
    return list(results), cpu, profile


def one_run(workers: int, args: argparse.Namespace, profile_dir: Path | None = None) -> Run:
    broker = Broker.start(workers=workers, shards=2, sync=not args.no_sync, src=args.src)
    try:
        broker.setup_queue(group=GROUP)
        url = urlsplit(broker.url)
        published, preload_s = asyncio.run(preload(url.hostname, url.port, args.messages))
        idle = wait_for_quiet(args.quiet_wait)
        if idle > 25:
            log(f"  (the machine was {idle:.0f}% busy before this run)")
        results, cpu, profile = asyncio.run(consume_phase(broker, args, profile_dir))
        checked = verify(published, results)
        group = broker.get(f"/api/domains/{DOMAIN}/queues/{QUEUE}/consumer-groups/{GROUP}")
        if group["lag"] or group["pending"]:
            raise RuntimeError(f"after the run the group has lag {group['lag']} and pending "
                               f"{group['pending']}")
        if broker.restarts():
            raise RuntimeError(f"a broker process restarted during the run:\n{broker.output()}")
    finally:
        broker.stop()
    elapsed = max(r.last_s for r in results) - min(r.first_s for r in results)
    run = Run(workers, args.messages / elapsed, args.messages / preload_s,
              [x for r in results for x in r.fetch_ms], [x for r in results for x in r.ack_ms],
              [x for r in results for x in r.round_ms], cpu)
    log(f"  {workers} worker{'s' if workers > 1 else ''}: {run.msgs_per_s:,.0f} msg/s consumed"
        f"+acked ({elapsed:.2f}s; preload {run.preload_msgs_per_s:,.0f} msg/s); round trip "
        f"{percentiles(run.round_ms)} (fetch {percentiles(run.fetch_ms)}; ack "
        f"{percentiles(run.ack_ms)}); CPU {format_cpu(cpu)}; {checked}")
    if profile:
        log(profile)
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=300_000, help="preloaded (300000)")
    parser.add_argument("--consumers", type=int, default=8, help="concurrent consumers (8)")
    parser.add_argument("--count", type=int, default=100, help="messages per fetch (100)")
    add_common_args(parser)
    args = parser.parse_args()
    workers = [int(w) for w in args.workers.split(",")]
    uvloop.install()
    args.src, code = source_tree(args.commit)
    log(f"machine: {machine_line()}")
    log(f"code: {code}")
    log(f"{args.messages:,} messages, {args.consumers} consumers, count={args.count}, "
        f"storage.sync {'off' if args.no_sync else 'on'}, 2 shards, {args.runs} runs per "
        "configuration")
    results: dict[int, list[Run]] = {w: [] for w in workers}
    for i in range(args.runs):
        log(f"run {i + 1}/{args.runs}")
        for w in workers:
            results[w].append(one_run(w, args))
    if args.profile:
        for w in workers:
            log(f"profile (py-spy, not counted): {w} worker(s)")
            one_run(w, args, Path(args.profile) / f"consume-w{w}")
    if args.runs:
        log("medians:")
    for w, runs in results.items():
        if not runs:
            continue
        cpu = {n: median(r.cpu[n] for r in runs) for n in runs[0].cpu}
        log(f"  {w} worker{'s' if w > 1 else ''}: "
            f"{median(r.msgs_per_s for r in runs):,.0f} msg/s consumed+acked; "
            f"round trip {median_percentiles(runs, 'round_ms')} (fetch "
            f"{median_percentiles(runs, 'fetch_ms')}; ack {median_percentiles(runs, 'ack_ms')}); "
            f"preload {median(r.preload_msgs_per_s for r in runs):,.0f} msg/s; "
            f"CPU {format_cpu(cpu)}; runs: " + ", ".join(f"{r.msgs_per_s:,.0f}" for r in runs))


def median_percentiles(runs: list[Run], attr: str) -> str:
    """Median over runs of each run's p50, p90 and p99."""
    ordered = [sorted(getattr(r, attr)) for r in runs]
    return " ".join(f"p{p} {median(percentile(o, p) for o in ordered):.1f}"
                    for p in (50, 90, 99)) + "ms"


if __name__ == "__main__":
    try:
        main()
    except RuntimeError as exc:
        fail(str(exc))
