"""WebSockets (/api/ws/domains/{d}/queues/{q}): fan-out to observers, what idle connections
cost the gateway, and consumer mode against REST consume+ack; interleaved rounds, medians.

    .venv/bin/python bench/ws.py [--rounds 3] [--cases fanout,idle,consume] [--duration 10]
        [--observers 0,1,10,100] [--connections 5000] [--messages 200000] [--lean]
        [--quiet-wait 30] [--commit REV] [--profile DIR] [--json PATH]

Every measurement runs on a fresh broker (2 shards, 1 gateway worker, storage.sync on).
Cases:

  fanout   ONE publisher process doing REST single publishes in a loop over one keep-alive
           connection (loads.SyncHttp: one request in flight, every reply checked for 201
           and for the next position), for --duration seconds, with 0, 1, 10 and 100
           observers of the queue (asyncio connections in --observer-procs processes, each
           reading as fast as it can). Publish msg/s and its ratio to 0 observers (target:
           100 observers >= 0.8x); per observer, what it received and what `lagged` frames
           reported. received + lagged must equal what was published, position by position:
           a gap that no `lagged` announced, an observer short of the end or past it, fails
           the run.
  idle     --connections idle observers of one queue (in --idle-procs processes), each having
           received `connected`; the gateway process's USS and RSS before (after 100
           connections opened and closed, so one-time costs are out) and with them all open,
           in KiB per connection (target <= 50 KiB), and again after they closed.
  consume  --messages preloaded, 4 WebSocket consumers (a process each) in consumer mode with
           credits 100; on each batch of deliveries a consumer sends one ack frame with their
           ackIds and one credit frame with as many, until the group is drained (the group
           is created by the first consume, at the earliest message). Against REST
           consume+ack (loads.http_consumer: fetch 100 + ack, 4 processes) on its own fresh
           broker with the same preload. Both sides count every id (a duplicate or a loss
           fails the run) and must leave the group at lag 0, pending 0. Target: WebSocket
           >= 1.0x REST.

The WebSocket clients are the websockets library's sans-I/O protocol (websockets.client.
ClientProtocol: handshake, frame parsing, masking, answering the server's pings) under asyncio
(uvloop) Protocols, so one `data_received` parses every frame that arrived together: about
2 us of client CPU per frame in its Python frame parser. With --lean the clients cut the
server's text frames out of the stream themselves (0.6 us), and websockets does the rest
(handshake, pings, close, every client frame): it shows how much of a figure is the client's.
The clients share the machine with the broker: every line reports CPU per process, the
clients', the rest (`others`) and the machine's. A run of 3 rounds takes about 4 minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import multiprocessing
import os
import resource
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit

import orjson
import psutil
import uvloop
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.uri import parse_uri

from harness import (DOMAIN, QUEUE, BenchBroker, CpuMeter, Profiler, fail, format_cpu, log,
                     machine_line, median, payload, percentile, source_tree, wait_for_quiet)
from loads import GROUP, Consumed, Load, SyncHttp, account, http_consumer, http_preload, run_clients

QUEUE_PATH = f"/api/domains/{DOMAIN}/queues/{QUEUE}"
WS_PATH = f"/api/ws/domains/{DOMAIN}/queues/{QUEUE}"
WARMUP_S = 2  # single publishes on the fresh broker before a fan-out measurement
WARM_CONNECTIONS = 100  # opened and closed before the idle case's first memory reading
SETTLE_S = 2  # after the idle connections are all open (or all closed), before reading memory
CONNECT_TIMEOUT_S = 120  # for one process to open all its connections
DRAIN_TIMEOUT_S = 60  # after the last publish, for every observer to account for it
HOLD_TIMEOUT_S = 300  # idle connections wait at most this long to be told to close
CONSUME_TIMEOUT_S = 300
CLOSE_TIMEOUT_S = 30
CREDITS = 100
MESSAGE = b'{"type":"message","position":'  # an observer's message frame starts so
BATCH = b'{"type":"messages",'  # a consumer's batch of deliveries ("batch": true)
# --nice-observers: the observers' client processes run at this nice level (inherited by
# the spawned clients through the environment), to see what is theirs and what the broker's.
NICE_OBSERVERS = os.environ.get("BENCH_NICE_OBSERVERS", "")
DELIVERY = b'{"type":"message","ackId":'  # and a consumer's delivery so
CTX = multiprocessing.get_context("spawn")  # run_clients' context: its primitives pass to clients


# --- a WebSocket client -------------------------------------------------------------------------


class WsClient(asyncio.Protocol):
    """One WebSocket on an asyncio transport, framed by websockets' sans-I/O ClientProtocol.

    `ready` is set once the server's first frame, `connected`, came (or on an error);
    `error` holds the first thing that went wrong: a refused handshake, an unexpected frame,
    a close this side did not ask for. Pings are answered by the protocol.

    With `lean`, once `connected` came, the server's unfragmented text frames are cut out of
    the stream here (a two-to-ten-byte header, no mask), and every other frame (ping, close,
    anything unusual) is handed whole to the websockets protocol, which still does all the
    rest: 0.6 us per frame instead of 2.1 us in its Python frame parser."""

    def __init__(self, url: str, lean: bool = False) -> None:
        self.ws = ClientProtocol(parse_uri(url), max_size=None)
        self.transport: Any = None
        self.ready = asyncio.Event()
        self.gone = asyncio.Event()
        self.position = -1  # from `connected`
        self.closing = False
        self.error: str | None = None
        self.lean = lean
        self.cutting = False  # lean and past `connected`: frames are cut out here
        self.rest = b""  # a partial frame, while cutting

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.ws.send_request(self.ws.connect())
        self.flush()

    def data_received(self, data: bytes) -> None:
        if self.cutting:
            self._cut(data)
        else:
            self.ws.receive_data(data)
            self._events()
            # Switch at a frame boundary only: nothing left in the protocol's buffer.
            self.cutting = self.lean and self.position >= 0 and not self.ws.reader.buffer
        self.after_frames()
        self.flush()

    def _cut(self, data: bytes) -> None:
        buf = self.rest + data if self.rest else data
        pos, end = 0, len(buf)
        while end - pos >= 2:
            second = buf[pos + 1]
            size, head = second & 0x7F, 2
            if size == 126:
                if end - pos < 4:
                    break
                size, head = int.from_bytes(buf[pos + 2:pos + 4], "big"), 4
            elif size == 127:
                if end - pos < 10:
                    break
                size, head = int.from_bytes(buf[pos + 2:pos + 10], "big"), 10
            if second & 0x80:  # masked: not from a server; the protocol will say so
                head += 4
            if end - pos < head + size:
                break
            if buf[pos] == 0x81 and not second & 0x80:  # FIN + text, unmasked
                self.on_text(buf[pos + head:pos + head + size])
            else:
                self.ws.receive_data(buf[pos:pos + head + size])
                self._events()
            pos += head + size
        self.rest = buf[pos:]

    def _events(self) -> None:
        ws = self.ws
        for event in ws.events_received():
            if type(event) is not Frame:  # the handshake's response
                if ws.handshake_exc is not None:
                    self.fail(f"handshake refused: {ws.handshake_exc}")
                continue
            opcode = event.opcode
            if opcode is Opcode.TEXT:
                if self.position < 0:
                    self.hello(event.data)
                else:
                    self.on_text(event.data)
            elif opcode is Opcode.CLOSE:
                if not self.closing:
                    close = ws.close_rcvd
                    self.fail("closed by the server: " + (
                        f"{close.code} {close.reason}" if close else "no close code"))
            elif opcode is not Opcode.PING and opcode is not Opcode.PONG:
                self.fail(f"unexpected {opcode.name} frame")

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closing:
            self.fail(f"connection lost: {exc or 'closed by the server'}")
        self.gone.set()
        self.ready.set()

    def hello(self, data: bytes) -> None:
        frame = orjson.loads(data)
        if frame.get("type") != "connected" or not isinstance(frame.get("position"), int):
            self.fail(f"the first frame is not `connected`: {data[:300]!r}")
            return
        self.position = frame["position"]
        self.ready.set()

    def on_text(self, data: bytes) -> None:
        self.fail(f"unexpected frame on an idle connection: {data[:300]!r}")

    def after_frames(self) -> None:
        """Called once per `data_received`, after its frames."""

    def fail(self, message: str) -> None:
        if self.error is None:
            self.error = message
        self.ready.set()

    def send(self, frame: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.ws.send_text(frame)
            self.flush()

    def flush(self) -> None:
        transport = self.transport
        assert transport is not None
        for chunk in self.ws.data_to_send():
            if chunk:
                transport.write(chunk)
            elif not transport.is_closing():  # the protocol's end of stream
                transport.close()

    def close(self) -> None:
        if self.closing:
            return
        self.closing = True
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        try:
            self.ws.send_close(1000)
        except Exception:  # not open any more: just drop the connection
            transport.close()
            return
        self.flush()


async def open_many(url: str, count: int, factory: Callable[[str], WsClient],
                    concurrency: int = 64, timeout_s: float = CONNECT_TIMEOUT_S
                    ) -> list[WsClient]:
    """`count` connections, `concurrency` handshakes at a time, each until `connected`."""
    parts = urlsplit(url)
    loop = asyncio.get_running_loop()
    clients: list[WsClient] = []
    gate = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with gate:
            _, client = await loop.create_connection(lambda: factory(url), parts.hostname,
                                                     parts.port)
            clients.append(client)
            await client.ready.wait()
            if client.error is not None:
                raise RuntimeError(f"connection {len(clients)} of {count}: {client.error}")

    try:
        async with asyncio.timeout(timeout_s):
            await asyncio.gather(*(one() for _ in range(count)))
    except TimeoutError:
        done = sum(1 for c in clients if c.position >= 0)
        raise RuntimeError(f"only {done} of {count} connections received `connected` within "
                           f"{timeout_s:.0f}s ({len(clients)} TCP connections made)") from None
    return clients


async def close_all(clients: list[WsClient]) -> None:
    for client in clients:
        client.close()
    try:
        async with asyncio.timeout(CLOSE_TIMEOUT_S):
            for client in clients:
                await client.gone.wait()
    except TimeoutError:
        for client in clients:
            if not client.gone.is_set() and client.transport is not None:
                client.transport.abort()


def raise_nofile(needed: int) -> None:
    """Lift this process's descriptor limit to what it needs (up to the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return
    if hard != resource.RLIM_INFINITY and hard < needed:
        raise RuntimeError(f"{needed} descriptors needed; RLIMIT_NOFILE hard limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# --- fan-out: one publisher, observers ----------------------------------------------------------


class Observer(WsClient):
    """Counts message frames and what `lagged` frames reported, checking that together they
    account for every position in turn."""

    def __init__(self, url: str, lean: bool) -> None:
        super().__init__(url, lean)
        self.received = 0
        self.lagged = 0
        self.lag_frames = 0
        self.gaps = 0
        self.next = -1  # the next position this observer must account for
        self.last_s = 0.0  # when its last bytes came (epoch seconds)

    def hello(self, data: bytes) -> None:
        super().hello(data)
        self.next = self.position

    def on_text(self, data: bytes) -> None:
        if data.startswith(BATCH):  # ?batch=true: one frame per hand-over
            for message in orjson.loads(data)["messages"]:
                if message["position"] != self.next:
                    self.gaps += 1
                    self.fail(f"a message at position {message['position']} where "
                              f"{self.next} was due")
                self.received += 1
                self.next = message["position"] + 1
            return
        if data.startswith(MESSAGE):
            position = int(data[len(MESSAGE):data.index(b",", len(MESSAGE))])
            if position != self.next:
                self.gaps += 1
                self.fail(f"a message at position {position} where {self.next} was due "
                          f"(received {self.received}, lagged {self.lagged} so far)")
            self.received += 1
            self.next = position + 1
            return
        frame = orjson.loads(data)
        if frame.get("type") == "lagged" and isinstance(frame.get("dropped"), int) \
                and frame["dropped"] > 0:
            self.lagged += frame["dropped"]
            self.lag_frames += 1
            self.next += frame["dropped"]
        else:
            self.fail(f"unexpected frame: {data[:300]!r}")

    def after_frames(self) -> None:
        self.last_s = time.time()


def fanout_client(role: str, *args: Any, ready: Any, start: Any) -> dict:
    if role == "publisher":
        return publisher(*args, ready=ready, start=start)
    if NICE_OBSERVERS:
        os.nice(int(NICE_OBSERVERS))
    raise_nofile(args[1] + 64)
    return uvloop.run(observe(*args, ready=ready, start=start))


def publisher(host: str, port: int, duration_s: float, started: Any, end: Any,
              pipeline: int = 1, *, ready: Any, start: Any) -> dict:
    """Single REST publishes for `duration_s`, `pipeline` at a time on the one connection
    (HTTP/1.1 pipelining; 1: one at a time); sets `end` to the position after the last one
    (-1 if it failed), which tells the observers where to stop."""
    conn = SyncHttp(host, port)
    path = QUEUE_PATH + "/messages"
    requests = [conn.encode("POST", path, payload(i).encode()) for i in range(1000)]
    latencies: list[float] = []
    sent, first, last = 0, -1, -1
    ready.release()
    start.wait()
    try:
        started.set()
        t0, cpu0 = time.time(), time.process_time()
        stop_at = t0 + duration_s
        now = t0
        while now < stop_at:
            conn.sock.sendall(b"".join(requests[(sent + i) % 1000] for i in range(pipeline)))
            for _ in range(pipeline):
                status, data = conn.response()
                if status != 201:
                    raise RuntimeError(f"publish {sent + 1}: HTTP {status} {data[:300]!r}")
                position = orjson.loads(data)["position"]
                if sent and position != last + 1:
                    raise RuntimeError(f"publish {sent + 1} stored at {position} after "
                                       f"{last}: another publisher?")
                if not sent:
                    first = position
                last = position
                sent += 1
            done = time.time()
            latencies.append((done - now) * 1000)
            now = done
        if not sent:
            raise RuntimeError("no publish completed")
        end.value = last + 1
    finally:
        if end.value == 0:
            end.value = -1
        conn.close()
    latencies.sort()
    return {"role": "publisher", "sent": sent, "first": first, "last": last, "t0": t0,
            "t1": now, "cpuS": time.process_time() - cpu0,
            "p50Ms": percentile(latencies, 50), "p99Ms": percentile(latencies, 99),
            "maxMs": latencies[-1]}


async def observe(url: str, count: int, end: Any, lean: bool, *, ready: Any, start: Any
                  ) -> dict:
    observers = await open_many(url, count, lambda u: Observer(u, lean))
    ready.release()
    start.wait()  # (blocks the loop: nothing is published before the start)
    t0, cpu0 = time.monotonic(), time.process_time()
    ended = 0.0
    give_up = t0 + HOLD_TIMEOUT_S
    while True:
        await asyncio.sleep(0.02)
        if any(o.error is not None for o in observers):
            break
        last = end.value
        now = time.monotonic()
        if last < 0:
            raise RuntimeError("the publisher failed")
        if last > 0:
            ended = ended or now
            if all(o.next >= last for o in observers):
                break
            if now - ended > DRAIN_TIMEOUT_S:
                break  # the parent reports who is short
        elif now > give_up:
            raise RuntimeError(f"the publisher did not finish within {HOLD_TIMEOUT_S}s")
    done = time.monotonic()
    wall, cpu = done - t0, time.process_time() - cpu0
    stats = [{"position": o.position, "received": o.received, "lagged": o.lagged,
              "lagFrames": o.lag_frames, "gaps": o.gaps, "error": o.error} for o in observers]
    last_s = max(o.last_s for o in observers)  # (before the close handshake's bytes)
    await close_all(observers)
    return {"role": "observers", "observers": stats, "cpuS": cpu, "wallS": wall,
            "lastS": last_s}


# --- idle connections ---------------------------------------------------------------------------


def idle_client(url: str, count: int, held: Any, measured: Any, *, ready: Any, start: Any
                ) -> dict:
    raise_nofile(count + 64)
    return uvloop.run(_idle(url, count, held, measured, ready, start))


async def _idle(url: str, count: int, held: Any, measured: Any, ready: Any, start: Any
                ) -> dict:
    t0 = time.monotonic()
    clients = await open_many(url, count, WsClient)
    connect_s = time.monotonic() - t0
    ready.release()
    start.wait()
    held.release()
    deadline = time.monotonic() + HOLD_TIMEOUT_S
    while not measured.is_set():  # the loop runs meanwhile: the server's pings get answers
        if time.monotonic() > deadline:
            raise RuntimeError(f"not told to close within {HOLD_TIMEOUT_S}s")
        await asyncio.sleep(0.1)
    errors = [c.error for c in clients if c.error is not None]
    if errors:
        raise RuntimeError(f"{len(errors)} of {count} idle connections failed while held; "
                           f"the first: {errors[0]}")
    await close_all(clients)
    return {"connections": count, "connectS": connect_s}


async def open_close(url: str, count: int) -> None:
    await close_all(await open_many(url, count, WsClient))


# --- consumer mode ------------------------------------------------------------------------------


def delivery_fields(data: bytes) -> tuple[int, int, str]:
    """(ackId, deliveryCount, id) of a delivery frame, by slicing: the gateway writes its head
    as `{"type":"message","ackId":..,"position":..,"deliveryCount":..,"timestamp":..,` and
    the stored record, which starts with "id", after it (gateway/sockets.py
    delivery_frames). A JSON parse per delivery would double the client's CPU per message."""
    start = len(DELIVERY)
    ack_id = int(data[start:data.index(b",", start)])
    at = data.index(b'"deliveryCount":', start) + 16
    count = int(data[at:data.index(b",", at)])
    at = data.index(b'"id":"', at) + 6
    return ack_id, count, data[at:data.index(b'"', at)].decode()


class WsConsumer(WsClient):
    """Consumer mode: each batch of deliveries that arrived together is acked in one frame
    and its credits granted back in the next; every `acked` reply is checked."""

    def __init__(self, url: str, acked_total: Any, lean: bool) -> None:
        super().__init__(url, lean)
        self.acked_total = acked_total
        self.out = Consumed()
        self.batch: list[int] = []
        self.outstanding: collections.deque[tuple[float, int]] = collections.deque()
        self.consuming = False
        self.redelivered = 0
        self.checked = False
        self.changed = asyncio.Event()

    def on_text(self, data: bytes) -> None:
        if data.startswith(BATCH):  # consume with "batch": one frame per fetch
            for message in orjson.loads(data)["messages"]:
                self.batch.append(message["ackId"])
                self.out.ids.append(message["id"])
                if message["deliveryCount"] != 1:
                    self.redelivered += 1
            return
        if data.startswith(DELIVERY):
            ack_id, count, message_id = delivery_fields(data)
            if not self.checked:  # the slicing against a JSON parser, once per consumer
                frame = orjson.loads(data)
                if (frame["ackId"], frame["deliveryCount"], frame["id"]) != (
                        ack_id, count, message_id):
                    self.fail(f"delivery_fields misread {data[:300]!r}")
                self.checked = True
            self.batch.append(ack_id)
            self.out.ids.append(message_id)
            if count != 1:
                self.redelivered += 1
            return
        frame = orjson.loads(data)
        kind = frame.get("type")
        if kind == "acked":
            if not self.outstanding:
                self.fail(f"an `acked` with no ack outstanding: {data[:300]!r}")
                return
            sent_at, count = self.outstanding.popleft()
            if frame.get("acked") != count or frame.get("unknown"):
                self.fail(f"acked {frame.get('acked')} of {count}, unknown "
                          f"{str(frame.get('unknown'))[:200]}")
            now = time.time()
            self.out.round_ms.append((now - sent_at) * 1000)
            self.out.last_s = now
            with self.acked_total.get_lock():
                self.acked_total.value += frame.get("acked") or 0
            self.changed.set()
        elif kind == "consuming" and not self.consuming:
            self.consuming = True
        else:
            self.fail(f"unexpected frame: {data[:300]!r}")

    def after_frames(self) -> None:
        if self.batch:
            count = len(self.batch)
            self.ws.send_text(b'{"type":"ack","ids":%s}' % orjson.dumps(self.batch))
            self.ws.send_text(b'{"type":"credit","count":%d}' % count)
            self.outstanding.append((time.time(), count))
            self.batch = []


def ws_consumer(url: str, name: str, credits: int, total: int, acked_total: Any, lean: bool,
                batch: bool, *, ready: Any, start: Any) -> Consumed:
    return uvloop.run(_consume(url, name, credits, total, acked_total, lean, batch, ready,
                               start))


async def _consume(url: str, name: str, credits: int, total: int, acked_total: Any, lean: bool,
                   batch: bool, ready: Any, start: Any) -> Consumed:
    (client,) = await open_many(url, 1, lambda u: WsConsumer(u, acked_total, lean))
    assert isinstance(client, WsConsumer)
    ready.release()
    start.wait()
    cpu0 = time.process_time()
    client.out.first_s = time.time()
    client.send(orjson.dumps({"type": "consume", "group": GROUP, "consumer": name,
                              "credits": credits, "batch": batch}))
    deadline = time.monotonic() + CONSUME_TIMEOUT_S
    while client.error is None:
        if acked_total.value >= total and not client.outstanding:
            break  # the group is drained (every consumer's acks count)
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name}: not drained within {CONSUME_TIMEOUT_S}s: "
                               f"{acked_total.value:,} of {total:,} acked")
        client.changed.clear()
        try:
            async with asyncio.timeout(0.05):
                await client.changed.wait()
        except TimeoutError:
            pass
    if client.error is not None:
        raise RuntimeError(f"{name}: {client.error}")
    if client.redelivered:
        raise RuntimeError(f"{name}: {client.redelivered} deliveries with deliveryCount > 1")
    await close_all([client])
    client.out.cpu_s = time.process_time() - cpu0
    return client.out


# --- the parent's side --------------------------------------------------------------------------


class Background:
    """`run_clients` in a thread, so that the caller can measure while the clients run."""

    def __init__(self, target: Callable[..., Any], args: list[tuple]) -> None:
        self.result: list[Any] | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(target, args), daemon=True)
        self.thread.start()

    def _run(self, target: Callable[..., Any], args: list[tuple]) -> None:
        try:
            self.result = run_clients(target, args)
        except BaseException as exc:  # the caller raises it
            self.error = exc

    def until(self, predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while not predicate():
            if not self.thread.is_alive():
                self.wait(0)
                raise RuntimeError(f"the clients ended before {what}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"no {what} within {timeout_s:.0f}s")
            time.sleep(0.01)

    def wait(self, timeout_s: float) -> list[Any]:
        self.thread.join(timeout_s)
        if self.thread.is_alive():
            raise RuntimeError(f"the clients did not finish within {timeout_s:.0f}s")
        if self.error is not None:
            raise RuntimeError(str(self.error))
        assert self.result is not None
        return self.result


@dataclass
class FanoutRun:
    observers: int
    published: int
    messages_per_s: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    received_fraction: list[float]  # per observer: received / published
    lagged: int  # messages reported in `lagged` frames, all observers
    lag_frames: int
    drain_s: float  # from the last publish's reply to the last frame an observer got
    cpu: dict[str, float]


@dataclass
class IdleRun:
    connections: int
    before: dict[str, int]
    after: dict[str, int]
    closed: dict[str, int]
    uss_kib_per_connection: float
    rss_kib_per_connection: float
    connect_s: float
    gateway_fds: int
    gateway_nofile: list[int]


@dataclass
class ConsumeRun:
    load: Load
    cpu: dict[str, float]


def _memory(proc: psutil.Process) -> dict[str, int]:
    info = proc.memory_full_info()
    return {"uss": info.uss, "rss": info.rss}


def _others(cpu: dict[str, float]) -> dict[str, float]:
    """Recount `others` once the clients' CPU is in."""
    own = sum(v for k, v in cpu.items() if k not in ("others", "machine"))
    cpu["others"] = max(0.0, cpu["machine"] - own)
    return cpu


def _split(total: int, parts: int) -> list[int]:
    parts = max(1, min(total, parts))
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args

    def quiet(self) -> None:
        busy = wait_for_quiet(self.args.quiet_wait)
        if busy > 25:
            log(f"    (the machine was {busy:.0f}% busy before this run)")

    def _broker(self, group: str | None = None) -> BenchBroker:
        broker = BenchBroker(workers=1, shards=2, sync=not self.args.no_sync, src=self.args.src)
        try:
            broker.setup_queue(group=group)
        except BaseException:
            broker.stop(check=False)
            raise
        return broker

    @staticmethod
    def _check_restarts(broker: BenchBroker) -> None:
        if broker.restarts():
            raise RuntimeError(f"a broker process restarted during the run:\n{broker.output()}")

    # --- fan-out ------------------------------------------------------------------------------

    def fanout(self, observers: int, profile: Path | None = None) -> FanoutRun:
        broker = self._broker()
        try:
            url = urlsplit(broker.url)
            host, port = url.hostname, url.port
            assert host is not None and port is not None
            warm = SyncHttp(host, port)
            stop_at = time.monotonic() + WARMUP_S
            while time.monotonic() < stop_at:
                status, data = warm.request("POST", QUEUE_PATH + "/messages", payload(0).encode())
                if status != 201:
                    raise RuntimeError(f"warm-up publish: HTTP {status} {data[:300]!r}")
            warm.close()
            self.quiet()
            started, end = CTX.Event(), CTX.Value("q", 0)
            ws_url = f"ws://{host}:{port}{WS_PATH}" + ("?batch=true" if self.args.observe_batch
                                                        else "")
            args: list[tuple] = [("publisher", host, port, self.args.duration, started, end,
                                  self.args.pipeline)]
            if observers:
                args += [("observers", ws_url, n, end, self.args.lean)
                         for n in _split(observers, self.args.observer_procs)]
            pids = {k: v for k, v in broker.pids().items() if k != "supervisor"}
            meter = CpuMeter(pids)
            profiler = Profiler(pids, profile) if profile else None
            run = Background(fanout_client, args)
            run.until(started.is_set, 120, "start of the publisher")
            meter.start()
            if profiler is not None:
                profiler.start()
            run.until(lambda: end.value != 0, self.args.duration + 60, "end of the publisher")
            cpu = meter.stop()
            if profiler is not None:
                log(profiler.finish())
            results = run.wait(DRAIN_TIMEOUT_S + 60)
            self._check_restarts(broker)
        finally:
            broker.stop()
        pub = next(r for r in results if r["role"] == "publisher")
        groups = [r for r in results if r["role"] == "observers"]
        stats = [o for r in groups for o in r["observers"]]
        published, elapsed = pub["sent"], pub["t1"] - pub["t0"]
        cpu["publisher"] = 100 * pub["cpuS"] / elapsed
        if groups:
            cpu["observers"] = sum(100 * r["cpuS"] / r["wallS"] for r in groups)
        errors = []
        for i, o in enumerate(stats):
            if o["error"] is not None:
                errors.append(f"observer {i}: {o['error']}")
            if o["position"] != pub["first"]:
                errors.append(f"observer {i}: connected at position {o['position']}, the "
                              f"first publish was stored at {pub['first']}")
            if o["received"] + o["lagged"] != published:
                errors.append(f"observer {i}: received {o['received']:,} + lagged "
                              f"{o['lagged']:,} = {o['received'] + o['lagged']:,}, but "
                              f"{published:,} were published")
        if errors:
            raise RuntimeError(f"fan-out to {observers} observers: {len(errors)} errors:\n  "
                               + "\n  ".join(errors[:20]))
        return FanoutRun(observers, published, published / elapsed, pub["p50Ms"], pub["p99Ms"],
                         pub["maxMs"], [o["received"] / published for o in stats],
                         sum(o["lagged"] for o in stats), sum(o["lagFrames"] for o in stats),
                         max((r["lastS"] for r in groups), default=pub["t1"]) - pub["t1"],
                         _others(cpu))

    # --- idle connections ---------------------------------------------------------------------

    def idle(self) -> IdleRun:
        total = self.args.connections
        broker = self._broker()
        try:
            gateway = psutil.Process(broker.pids()["gateway-0"])
            nofile = list(gateway.rlimit(psutil.RLIMIT_NOFILE))
            if nofile[0] < total + 100:
                log(f"    warning: the gateway's RLIMIT_NOFILE is {nofile[0]} (hard "
                    f"{nofile[1]}), and {total:,} connections need as many descriptors")
            ws_url = broker.url.replace("http://", "ws://") + WS_PATH
            uvloop.run(open_close(ws_url, WARM_CONNECTIONS))
            self.quiet()
            before = _memory(gateway)
            held, measured = CTX.Semaphore(0), CTX.Event()
            split = _split(total, self.args.idle_procs)
            run = Background(idle_client, [(ws_url, n, held, measured) for n in split])
            try:
                for _ in split:
                    run.until(lambda: held.acquire(False), CONNECT_TIMEOUT_S + 60,
                              f"`connected` on all {total:,} connections")
            except RuntimeError as exc:
                measured.set()
                said = broker.broker.output(20)
                cause = ("the gateway ran out of descriptors (EMFILE: it pauses accepting); "
                         if "Too many open files" in broker.broker.output(100_000) else "")
                raise RuntimeError(
                    f"idle: {cause}{exc}\n  the gateway has {gateway.num_fds()} descriptors "
                    f"open, RLIMIT_NOFILE {nofile[0]} (hard {nofile[1]}), for {total:,} "
                    f"connections; the broker's last lines:\n{said}") from None
            time.sleep(SETTLE_S)
            after = _memory(gateway)
            fds = gateway.num_fds()
            measured.set()
            results = run.wait(CLOSE_TIMEOUT_S + 60)
            time.sleep(SETTLE_S)
            closed = _memory(gateway)
            self._check_restarts(broker)
        finally:
            broker.stop()
        return IdleRun(total, before, after, closed,
                       (after["uss"] - before["uss"]) / total / 1024,
                       (after["rss"] - before["rss"]) / total / 1024,
                       max(r["connectS"] for r in results), fds, nofile)

    # --- consumer mode and REST ---------------------------------------------------------------

    def _consume(self, broker: BenchBroker, work: Callable[[list[str]], Load],
                 profile: Path | None) -> ConsumeRun:
        url = urlsplit(broker.url)
        assert url.hostname is not None and url.port is not None
        ids = uvloop.run(http_preload(url.hostname, url.port, QUEUE_PATH + "/messages/batch",
                                      self.args.messages))
        self.quiet()
        pids = {k: v for k, v in broker.pids().items() if k != "supervisor"}
        meter = CpuMeter(pids)
        profiler = Profiler(pids, profile) if profile else None
        meter.start()
        if profiler is not None:
            profiler.start()
        load = work(ids)
        cpu = meter.stop({"client": 100 * load.client_cpu_s / load.elapsed_s})
        if profiler is not None:
            log(profiler.finish())
        self._check_restarts(broker)
        group = broker.get(f"{QUEUE_PATH}/consumer-groups/{GROUP}")
        if load.errors or group["lag"] or group["pending"]:
            raise RuntimeError(f"not exactly once: {load.note}; group lag {group['lag']}, "
                               f"pending {group['pending']}")
        return ConsumeRun(load, cpu)

    def consume_ws(self, profile: Path | None = None) -> ConsumeRun:
        broker = self._broker()  # no group: the first consume creates it
        try:
            ws_url = broker.url.replace("http://", "ws://") + WS_PATH
            total = self.args.messages
            acked = CTX.Value("q", 0)
            return self._consume(broker, lambda ids: account(ids, run_clients(ws_consumer, [
                (ws_url, f"c{i}", CREDITS, total, acked, self.args.lean, self.args.batch)
                for i in range(self.args.consumers)])), profile)
        finally:
            broker.stop()

    def consume_rest(self, profile: Path | None = None) -> ConsumeRun:
        broker = self._broker(group=GROUP)
        try:
            url = urlsplit(broker.url)
            group_path = f"{QUEUE_PATH}/consumer-groups/{GROUP}"
            return self._consume(broker, lambda ids: account(ids, run_clients(http_consumer, [
                (url.hostname, url.port, group_path, f"c{i}", CREDITS)
                for i in range(self.args.consumers)])), profile)
        finally:
            broker.stop()


# --- reporting ----------------------------------------------------------------------------------


def describe_fanout(run: FanoutRun) -> str:
    text = (f"{run.messages_per_s:,.0f} msg/s published ({run.published:,}; p50 "
            f"{run.p50_ms:.2f} ms, p99 {run.p99_ms:.2f} ms, max {run.max_ms:.1f} ms)")
    if run.observers:
        fractions = run.received_fraction
        text += (f"; observers received {100 * median(fractions):.1f}% (min "
                 f"{100 * min(fractions):.1f}%), lagged {run.lagged:,} in {run.lag_frames:,} "
                 f"frames; the last frame came {1000 * run.drain_s:.1f} ms after the last "
                 "publish's reply")
    return text + (f"; gateway {gateway_us(run):.0f} us CPU per publish; CPU "
                   f"{format_cpu(run.cpu)}")


def gateway_us(run: FanoutRun) -> float:
    """The gateway's CPU per message published (serving the publish and its fan-out)."""
    return 10_000 * run.cpu.get("gateway-0", float("nan")) / run.messages_per_s


def describe_idle(run: IdleRun) -> str:
    mib = 1 << 20
    return (f"{run.connections:,} connections open in {run.connect_s:.1f} s; gateway USS "
            f"{run.before['uss'] / mib:.1f} -> {run.after['uss'] / mib:.1f} MiB "
            f"({run.uss_kib_per_connection:.1f} KiB per connection), RSS "
            f"{run.before['rss'] / mib:.1f} -> {run.after['rss'] / mib:.1f} MiB "
            f"({run.rss_kib_per_connection:.1f} KiB); after closing: USS "
            f"{run.closed['uss'] / mib:.1f} MiB, RSS {run.closed['rss'] / mib:.1f} MiB; "
            f"{run.gateway_fds:,} descriptors open in the gateway (RLIMIT_NOFILE "
            f"{run.gateway_nofile[0]})")


def describe_consume(run: ConsumeRun) -> str:
    load = run.load
    lat = " ".join(f"{k} {v:.1f}ms" for k, v in load.latency_ms.items())
    return (f"{load.messages_per_s:,.0f} msg/s ({load.requests_per_s:,.0f} rounds/s, {lat}); "
            f"CPU {format_cpu(run.cpu)}; {load.note}")


def summarize(fanouts: dict[int, list[FanoutRun]], idles: list[IdleRun],
              consumes: dict[str, list[ConsumeRun]]) -> dict:
    out: dict[str, Any] = {}
    if any(fanouts.values()):
        log("fan-out, medians (publish msg/s with N observers / with none):")
        base = fanouts.get(0, [])
        rows = []
        for n, runs in fanouts.items():
            if not runs:
                continue
            rate = median(r.messages_per_s for r in runs)
            row: dict[str, Any] = {"observers": n, "messagesPerS": rate,
                                   "p50Ms": median(r.p50_ms for r in runs),
                                   "p99Ms": median(r.p99_ms for r in runs),
                                   "gatewayUsPerPublish": median(map(gateway_us, runs))}
            line = (f"  {n:>4} observers: {rate:,.0f} msg/s, p50 {row['p50Ms']:.2f} ms, p99 "
                    f"{row['p99Ms']:.2f} ms, gateway {row['gatewayUsPerPublish']:.0f} us/publish")
            if base:
                rounds = [r.messages_per_s / b.messages_per_s for r, b in zip(runs, base)]
                row["ratio"] = rate / median(b.messages_per_s for b in base)
                row["roundRatios"] = rounds
                line += (f" = {row['ratio']:.2f}x (rounds "
                         + ", ".join(f"{x:.2f}" for x in rounds) + ")")
            if n:
                fractions = [f for r in runs for f in r.received_fraction]
                row["receivedMedian"] = median(fractions)
                row["receivedMin"] = min(fractions)
                row["lagFrames"] = sum(r.lag_frames for r in runs)
                row["drainSMax"] = max(r.drain_s for r in runs)
                line += (f"; received {100 * row['receivedMedian']:.1f}% (min "
                         f"{100 * row['receivedMin']:.1f}%), {row['lagFrames']:,} lagged "
                         f"frames, last frame at most {1000 * row['drainSMax']:.1f} ms after "
                         "the last reply")
            log(line)
            rows.append(row)
        out["fanout"] = rows
    if idles:
        kib = median(r.uss_kib_per_connection for r in idles)
        log(f"idle, median: {kib:.1f} KiB USS per connection (rounds "
            + ", ".join(f"{r.uss_kib_per_connection:.1f}" for r in idles)
            + f"), {median(r.rss_kib_per_connection for r in idles):.1f} KiB RSS")
        out["idle"] = {"ussKibPerConnection": kib,
                       "rssKibPerConnection": median(r.rss_kib_per_connection for r in idles)}
    ws, rest = consumes.get("websocket", []), consumes.get("rest", [])
    if ws and rest:
        w = median(r.load.messages_per_s for r in ws)
        r = median(x.load.messages_per_s for x in rest)
        rounds = [a.load.messages_per_s / b.load.messages_per_s for a, b in zip(ws, rest)]
        log(f"consume, medians (WebSocket / REST): {w:,.0f} vs {r:,.0f} msg/s = {w / r:.2f}x "
            "(rounds " + ", ".join(f"{x:.2f}" for x in rounds) + ")")
        out["consume"] = {"websocket": w, "rest": r, "ratio": w / r, "roundRatios": rounds}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cases", default="fanout,idle,consume", help="default: all")
    parser.add_argument("--duration", type=float, default=10,
                        help="seconds of publishing per fan-out measurement (10)")
    parser.add_argument("--observers", default="0,1,10,100", help="fan-out observer counts")
    parser.add_argument("--observer-procs", type=int, default=2,
                        help="client processes the observers are spread over (2)")
    parser.add_argument("--connections", type=int, default=5000, help="idle connections")
    parser.add_argument("--idle-procs", type=int, default=4,
                        help="client processes the idle connections are spread over (4)")
    parser.add_argument("--messages", type=int, default=200_000, help="consume preload")
    parser.add_argument("--consumers", type=int, default=4)
    parser.add_argument("--quiet-wait", type=float, default=30,
                        help="wait up to S seconds for an idle machine before each load")
    parser.add_argument("--commit", metavar="REV", help="measure this commit's snapshot")
    parser.add_argument("--no-sync", action="store_true", help="storage.sync off (not a target)")
    parser.add_argument("--pipeline", type=int, default=1,
                        help="fanout: the publisher keeps this many publishes in flight on "
                             "its connection (HTTP/1.1 pipelining; default 1)")
    parser.add_argument("--nice-observers", type=int, default=0,
                        help="fanout: run the observers' client processes at this nice level "
                             "(a diagnosis: how much of the drop is their CPU, not the broker's)")
    parser.add_argument("--observe-batch", action="store_true",
                        help="fanout: observers connect with ?batch=true (one `messages` "
                             "frame per hand-over instead of a frame per message)")
    parser.add_argument("--batch", action="store_true",
                        help="consume: WebSocket consumers ask for one `messages` frame per "
                             "fetch (\"batch\": true) instead of a frame per delivery")
    parser.add_argument("--lean", action="store_true",
                        help="clients cut the server's text frames out of the stream themselves "
                             "(websockets still does the handshake, pings, close and every "
                             "client frame): a third of the client CPU per frame")
    parser.add_argument("--profile", metavar="DIR",
                        help="after the rounds, one py-spy run of the broker per fan-out count "
                             "and consume side (not counted)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args()
    if args.nice_observers:  # read by the spawned client processes
        os.environ["BENCH_NICE_OBSERVERS"] = str(args.nice_observers)
    cases = args.cases.split(",")
    unknown = set(cases) - {"fanout", "idle", "consume"}
    if unknown:
        fail(f"unknown cases {sorted(unknown)}; known: fanout, idle, consume")
    counts = [int(n) for n in args.observers.split(",")]
    raise_nofile(1024)
    args.src, code = source_tree(args.commit)
    log(f"machine: {machine_line()}")
    log(f"code: {code}; storage.sync {'off' if args.no_sync else 'on'}, 2 shards, 1 gateway "
        f"worker; {args.rounds} rounds; WebSocket frames read by "
        + ("the clients (--lean)" if args.lean else "websockets' protocol"))
    bench = Bench(args)
    fanouts: dict[int, list[FanoutRun]] = {n: [] for n in counts}
    idles: list[IdleRun] = []
    consumes: dict[str, list[ConsumeRun]] = {"websocket": [], "rest": []}
    t0 = time.monotonic()
    for round_no in range(args.rounds):
        log(f"round {round_no + 1}/{args.rounds}")
        flip = round_no % 2 == 1  # every other round in the opposite order
        if "fanout" in cases:
            for n in counts[::-1] if flip else counts:
                run = bench.fanout(n)
                fanouts[n].append(run)
                log(f"  fanout {n} observers: {describe_fanout(run)}")
        if "idle" in cases:
            idle = bench.idle()
            idles.append(idle)
            log(f"  idle: {describe_idle(idle)}")
        if "consume" in cases:
            sides: list[tuple[str, Callable[[], ConsumeRun]]] = [
                ("websocket", bench.consume_ws), ("rest", bench.consume_rest)]
            for side, measure in sides[::-1] if flip else sides:
                result = measure()
                consumes[side].append(result)
                log(f"  consume {side}: {describe_consume(result)}")
    if args.profile:
        if "fanout" in cases:
            for n in counts:
                log(f"profile (py-spy, not counted): fanout {n} observers")
                log(f"  {describe_fanout(bench.fanout(n, Path(args.profile) / f'fanout{n}'))}")
        if "consume" in cases:
            for side, measure in (("websocket", bench.consume_ws), ("rest", bench.consume_rest)):
                log(f"profile (py-spy, not counted): consume {side}")
                log(f"  {describe_consume(measure(Path(args.profile) / f'consume-{side}'))}")
    log(f"({time.monotonic() - t0:.0f} s in all)")
    summary = summarize(fanouts, idles, consumes)
    if args.json:
        Path(args.json).write_text(json.dumps({
            "machine": machine_line(), "code": code, "lean": args.lean, "summary": summary,
            "fanout": {n: [asdict(r) for r in runs] for n, runs in fanouts.items()},
            "idle": [asdict(r) for r in idles],
            "consume": {side: [asdict(r) for r in runs] for side, runs in consumes.items()},
        }, indent=1))


if __name__ == "__main__":
    try:
        main()
    except RuntimeError as exc:
        fail(str(exc))
