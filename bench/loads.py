"""The load generators of the side-by-side benchmark, for the product and for the references.

HTTP load is wrk (C) with a Lua script, or, for consume + ack, a raw HTTP/1.1 client over
asyncio streams (uvloop) with orjson, to leave the two cores to the server as far as a Python
client can. Redis load is redis-py (with hiredis) pipelines and consumers in the same shape,
or redis-benchmark (C). Consumers on both sides count duplicates and losses.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import re
import socket
import subprocess
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import orjson
import redis

from harness import payload

WRK = "/usr/bin/wrk"
REDIS_BENCHMARK = "/usr/bin/redis-benchmark"
STREAM = "q"
GROUP = "g"
PRELOAD_BATCH = 1000
PRELOAD_CONNECTIONS = 4
CONSUME_DEADLINE_S = 600
_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.I)


@dataclass
class Load:
    """What one measured load produced."""

    messages_per_s: float
    requests_per_s: float = 0.0
    latency_ms: dict[str, float] = field(default_factory=dict)
    client_cpu_s: float = 0.0
    elapsed_s: float = 0.0
    errors: int = 0
    timeouts: int = 0
    note: str = ""


# --- wrk ----------------------------------------------------------------------------------------


def lua_script(batch: int) -> str:
    """POST one ~100-byte JSON object (batch 0), or {"messages": [batch of them]}."""
    if batch == 0:
        body = payload(1)
    else:
        body = json.dumps({"messages": [json.loads(payload(i)) for i in range(batch)]},
                          separators=(",", ":"))
    return ('wrk.method = "POST"\n'
            'wrk.headers["Content-Type"] = "application/json"\n'
            f"wrk.body = [==[{body}]==]\n")


def parse_wrk(text: str) -> tuple[int, float, dict[str, float], int, int]:
    """(requests, requests/s, latency percentiles ms, non-2xx + socket errors, timeouts)."""
    def ms(value: str, unit: str) -> float:
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]

    latency = {f"p{m.group(1)}": ms(m.group(2), m.group(3)) for m in re.finditer(
        r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.M)}
    top = re.search(r"Latency\s+\S+\s+\S+\s+([\d.]+)(us|ms|s|m)", text)
    if top:
        latency["max"] = ms(top.group(1), top.group(2))
    requests = int(re.search(r"(\d+) requests in", text).group(1))
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", text))
    timeouts = 0
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if socket_errors:
        connect, read, write, timeouts = map(int, socket_errors.groups())
        errors += connect + read + write
    return requests, rate, latency, errors, timeouts


def wrk(url: str, script: Path, connections: int, duration_s: float, threads: int = 2,
        timeout_s: int = 10) -> tuple[Load, int]:
    """Run wrk to the end: the load, and the number of requests it completed."""
    proc = subprocess.Popen(
        [WRK, f"-t{threads}", f"-c{connections}", f"-d{int(duration_s)}s", "--timeout",
         f"{timeout_s}s", "--latency", "-s", str(script), url],
        stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"wrk failed:\n{out}")
    requests, rate, latency, errors, timeouts = parse_wrk(out)
    load = Load(rate, rate, latency, usage.ru_utime + usage.ru_stime, duration_s, errors, timeouts)
    return load, requests


# --- raw HTTP -----------------------------------------------------------------------------------


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


async def http_preload(host: str, port: int, path: str, total: int, first_seq: int = 0
                       ) -> list[str]:
    """Batch-publish `total` messages; the ids in publish order."""
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
                    payload(first_seq + first + i).encode() for i in range(count))
                reply = _check(*await conn.request("POST", path, body), 201, "batch publish")
                if reply["count"] != count:
                    raise RuntimeError(f"batch publish stored {reply['count']} of {count}")
                ids[first] = reply["messageIds"]
        finally:
            await conn.close()

    await asyncio.gather(*(publisher() for _ in range(PRELOAD_CONNECTIONS)))
    return [i for first in sorted(ids) for i in ids[first]]


@dataclass
class Consumed:
    """What one consumer received, for exactly-once accounting, and when (epoch seconds)."""

    ids: list = field(default_factory=list)
    first_s: float = float("inf")
    last_s: float = 0.0
    round_ms: list[float] = field(default_factory=list)
    cpu_s: float = 0.0

    def add(self, ids: list, t0: float, t1: float) -> None:
        """A round (fetch + ack) that took `ids`, from `t0` to `t1` (epoch seconds)."""
        self.ids += ids
        self.round_ms.append((t1 - t0) * 1000)
        self.first_s = min(self.first_s, t0)
        self.last_s = t1


def account(expected: list, results: list[Consumed]) -> Load:
    consumed = [i for r in results for i in r.ids]
    unique = set(consumed)
    duplicates = len(consumed) - len(unique)
    lost = len(set(expected) - unique)
    rounds = sorted(x for r in results for x in r.round_ms)
    elapsed = max(r.last_s for r in results) - min(r.first_s for r in results)
    latency = {f"p{p}": rounds[min(len(rounds) - 1, len(rounds) * p // 100)]
               for p in (50, 99)} if rounds else {}
    return Load(len(unique) / elapsed, len(rounds) / elapsed, latency,
                sum(r.cpu_s for r in results), elapsed, errors=duplicates + lost,
                note=f"{len(unique):,} of {len(expected):,} consumed once, {duplicates} "
                     f"duplicates, {lost} lost")


def run_clients(target: Callable[..., Any], args: list[tuple]) -> list[Any]:
    """Run `target(*a, start, results)` in a process per `a`, all released at once.

    One process per client, on both sides of a comparison: a Python client costs CPU, and
    sharing one interpreter would make the client, not the server, the bottleneck.
    """
    context = multiprocessing.get_context("spawn")
    ready = context.Semaphore(0)
    start = context.Event()
    results = context.Queue()
    procs = [context.Process(target=_client, args=(target, a, ready, start, results))
             for a in args]
    for proc in procs:
        proc.start()
    try:
        for _ in procs:
            if not ready.acquire(timeout=60):
                raise RuntimeError("a client process did not get ready")
        start.set()
        out = []
        for _ in procs:
            ok, value = results.get(timeout=CONSUME_DEADLINE_S)
            if not ok:
                raise RuntimeError(f"a client failed: {value}")
            out.append(value)
        return out
    finally:
        for proc in procs:
            proc.join(10)
            if proc.is_alive():
                proc.kill()


def _client(target: Callable[..., Any], args: tuple, ready: Any, start: Any, results: Any
            ) -> None:
    try:
        value = target(*args, ready=ready, start=start)
        results.put((True, value))
    except Exception as exc:  # the parent reports it
        results.put((False, f"{type(exc).__name__}: {exc}"))


class SyncHttp:
    """A blocking keep-alive HTTP/1.1 connection (Content-Length bodies only)."""

    def __init__(self, host: str, port: int) -> None:
        self.sock = socket.create_connection((host, port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.head = b"Host: %s:%d\r\nContent-Type: application/json\r\n" % (host.encode(),
                                                                               port)
        self.buffer = b""

    def request(self, method: str, path: str, body: bytes = b"", headers: bytes = b""
                ) -> tuple[int, bytes]:
        """`headers`: more header lines, each ending in CRLF."""
        self.sock.sendall(self.encode(method, path, body, headers))
        return self.response()

    def encode(self, method: str, path: str, body: bytes = b"", headers: bytes = b""
               ) -> bytes:
        return b"%s %s HTTP/1.1\r\n%s%sContent-Length: %d\r\n\r\n%s" % (
            method.encode(), path.encode(), self.head, headers, len(body), body)

    def response(self) -> tuple[int, bytes]:
        """The next response: (status, body)."""
        while (end := self.buffer.find(b"\r\n\r\n")) < 0:
            self._more()
        head, self.buffer = self.buffer[:end + 4], self.buffer[end + 4:]
        length = _CONTENT_LENGTH.search(head)
        if length is None:
            raise RuntimeError(f"a response without Content-Length: {head!r}")
        size = int(length.group(1))
        while len(self.buffer) < size:
            self._more()
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return int(head[9:12]), data

    def _more(self) -> None:
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise RuntimeError("the server closed the connection")
        self.buffer += chunk

    def close(self) -> None:
        self.sock.close()


def http_consumer(host: str, port: int, group_path: str, name: str, count: int,
                  nack_percent: int = 0, *, ready: Any, start: Any) -> Consumed:
    """One member of a group: fetch `count`, ack them, until the group has nothing left.

    With `nack_percent`, that share of first deliveries (chosen by id, the same in every
    run) is nacked instead, to be retried and acked on a later delivery; only acked ids
    count as consumed."""
    fetch = f"{group_path}/messages?count={count}&consumer={name}"
    ack = f"{group_path}/ack"
    settle = f"{group_path}/settle"
    out = Consumed()
    conn = SyncHttp(host, port)
    ready.release()
    start.wait()
    cpu0 = time.process_time()
    deadline = time.monotonic() + CONSUME_DEADLINE_S
    try:
        while time.monotonic() < deadline:
            t0 = time.time()
            messages = _check(*conn.request("GET", fetch), 200, "fetch")["messages"]
            if not messages:
                # Nothing new for us: done once nothing is left undelivered (what others
                # hold, they ack); else wait for more (a long poll).
                status = _check(*conn.request("GET", group_path), 200, "group")
                # (With nacks, retries still to come count too: they are pending meanwhile.)
                if status["lag"] == 0 and not (nack_percent and status["pending"]):
                    break
                messages = _check(*conn.request("GET", fetch + "&timeout=1"), 200,
                                  "fetch")["messages"]
                if not messages:
                    continue
            ids = [m["id"] for m in messages]
            failed = [m["id"] for m in messages if m["deliveryCount"] == 1
                      and zlib.crc32(m["id"].encode()) % 100 < nack_percent]
            if failed:  # acks and nacks of the batch in one request
                nacked = set(failed)
                ids = [i for i in ids if i not in nacked]
                reply = _check(*conn.request("POST", settle, orjson.dumps(
                    {"ack": ids, "nack": failed})), 200, "settle")
            else:
                reply = _check(*conn.request("POST", ack, orjson.dumps({"ids": ids})), 200,
                               "ack")
            t1 = time.time()
            if reply["acked"] != len(ids) or reply.get("unknown"):
                raise RuntimeError(f"{name}: acked {reply['acked']} of {len(ids)}")
            out.add(ids, t0, t1)
        else:
            raise RuntimeError(f"{name}: not drained within {CONSUME_DEADLINE_S}s")
    finally:
        conn.close()
    out.cpu_s = time.process_time() - cpu0
    return out


# --- Redis --------------------------------------------------------------------------------------


def _xadd_pipeline(client: redis.Redis, seq: int, batch: int) -> list:
    pipe = client.pipeline(transaction=False)
    for i in range(batch):
        pipe.xadd(STREAM, {"payload": payload(seq + i)})
    return pipe.execute()


def redis_preload(port: int, total: int) -> list[bytes]:
    client = redis.Redis(port=port)
    ids: list[bytes] = []
    for first in range(0, total, PRELOAD_BATCH):
        ids += _xadd_pipeline(client, first, min(PRELOAD_BATCH, total - first))
    client.close()
    return ids


def redis_publisher(port: int, index: int, batch: int, duration_s: float, *, ready: Any,
                    start: Any) -> tuple[int, float, float, float]:
    """One redis-py connection sending pipelines of `batch` XADD in turn, for `duration_s`.
    (messages, start, end, CPU seconds)."""
    client = redis.Redis(port=port)
    client.ping()
    seq = index * 100_000_000
    ready.release()
    start.wait()
    t0, cpu0 = time.time(), time.process_time()
    stop_at = t0 + duration_s
    sent = 0
    while time.time() < stop_at:
        if len(_xadd_pipeline(client, seq, batch)) != batch:
            raise RuntimeError("a pipeline lost replies")
        seq += batch
        sent += batch
    end = time.time()
    client.close()
    return sent, t0, end, time.process_time() - cpu0


def redis_pipelines(port: int, connections: int, batch: int, duration_s: float) -> Load:
    runs = run_clients(redis_publisher, [(port, i, batch, duration_s)
                                         for i in range(connections)])
    sent = sum(r[0] for r in runs)
    elapsed = max(r[2] for r in runs) - min(r[1] for r in runs)
    return Load(sent / elapsed, sent / batch / elapsed, client_cpu_s=sum(r[3] for r in runs),
                elapsed_s=elapsed)


def redis_benchmark(port: int, connections: int, pipeline: int, requests: int) -> Load:
    """redis-benchmark XADD of the same payload, `pipeline` commands per round trip."""
    proc = subprocess.Popen(
        [REDIS_BENCHMARK, "-p", str(port), "-c", str(connections), "-P", str(pipeline),
         "-n", str(requests), "--csv", "XADD", STREAM, "*", "payload", payload(1)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"redis-benchmark failed:\n{out}")
    # "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_...","p99_...","max"
    row = [line for line in out.splitlines() if line.startswith('"XADD')][-1]
    values = [float(v.strip('"')) for v in row.split(",")[-7:]]  # the name holds commas
    return Load(values[0], values[0] / pipeline, {"p50": values[3], "p99": values[5]},
                usage.ru_utime + usage.ru_stime, requests / values[0])


def redis_consumer(port: int, name: str, count: int, *, ready: Any, start: Any) -> Consumed:
    """XREADGROUP COUNT `count` then XACK of what came, until the stream is all delivered."""
    client = redis.Redis(port=port)
    client.ping()
    out = Consumed()
    ready.release()
    start.wait()
    cpu0 = time.process_time()
    deadline = time.monotonic() + CONSUME_DEADLINE_S
    while time.monotonic() < deadline:
        t0 = time.time()
        reply = client.xreadgroup(GROUP, name, {STREAM: ">"}, count=count)
        entries = reply[0][1] if reply else []
        if not entries:
            break  # ">" reads what was never delivered: nothing is left
        ids = [entry[0] for entry in entries]
        acked = client.xack(STREAM, GROUP, *ids)
        t1 = time.time()
        if acked != len(ids):
            raise RuntimeError(f"{name}: XACK acked {acked} of {len(ids)}")
        out.add(ids, t0, t1)
    else:
        raise RuntimeError(f"{name}: not drained within {CONSUME_DEADLINE_S}s")
    client.close()
    out.cpu_s = time.process_time() - cpu0
    return out


def redis_group(port: int) -> None:
    client = redis.Redis(port=port)
    client.xgroup_create(STREAM, GROUP, id="0")
    client.close()
