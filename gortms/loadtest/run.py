"""One bench run: what it counts, and its publishers and consumers (asyncio tasks on
gortms.client, each with its own connection).

Every loop ends by a deadline: publishers at the end of --duration (or when --messages are
sent), consumers once they have received everything published or --drain seconds after
publishing stopped, whichever comes first. A payload is stamped with the run's id and the
time it was sent (`{"r": id, "t": ns since the epoch, "p": padding}`), so a consumer measures
publish-to-receive latency on it, and counts as `foreign` any message of someone else.
"""

from __future__ import annotations

import asyncio
import collections
import time
import uuid
from typing import Any, Awaitable, Callable

from gortms.client import AsyncClient, Message, RetryPolicy
from gortms.errors import GortmsError
from gortms.loadtest.options import BenchOptions
from gortms.loadtest.stats import Series

POLL_S = 0.5  # a consumer's long poll: how late it notices that the run is over
ERROR_PAUSE_S = 0.05  # after a failed request, before the next
RECENT = 5000  # end-to-end latencies the live progress takes its percentiles from
STAMP_OVERHEAD = len(b'{"r":"00000000","t":0000000000000000000,"p":""}')


class Run:
    """A run's shared state: what was published and received, when it stops."""

    def __init__(self, options: BenchOptions) -> None:
        self.options = options
        self.run_id = uuid.uuid4().hex[:8]
        self.domain = options.domain or f"bench-{self.run_id}"
        self.queue = options.queue or "q"
        self.group = f"bench-{self.run_id}"
        self.published = 0
        self.consumed = 0
        self.redelivered = 0
        self.foreign = 0
        self.acked = 0
        self.errors: dict[str, collections.Counter[str]] = {
            "publish": collections.Counter(), "consume": collections.Counter()}
        self.publish_latency = Series()
        self.end_to_end = Series()
        self.recent: collections.deque[float] = collections.deque(maxlen=RECENT)  # progress
        self._padding = b"x" * max(0, options.size - STAMP_OVERHEAD)
        self._left = options.messages  # None: no count limit
        self._next_slot = 0.0  # the rate limiter's next free send time (monotonic)
        self.started = time.monotonic()
        self.publish_deadline = self.started + options.duration_s
        self.publishing_ended: float | None = None
        self.last_received = self.started

    def start(self) -> None:
        self.started = self._next_slot = time.monotonic()
        self.publish_deadline = self.started + self.options.duration_s

    # --- publishing ---------------------------------------------------------------------------

    async def slot(self) -> int:
        """How many messages a publisher sends next (0: publishing is over), once the rate
        limit lets it."""
        want = self.options.batch
        if self._left is not None:
            want = min(want, self._left)
            self._left -= want
        if want <= 0 or time.monotonic() >= self.publish_deadline:
            return 0
        if self.options.rate:
            now = time.monotonic()
            at = max(now, self._next_slot)
            self._next_slot = at + want / self.options.rate
            if at >= self.publish_deadline:
                return 0
            await asyncio.sleep(at - now)
        return want

    def payloads(self, count: int) -> list[bytes]:
        head = b'{"r":"%s","t":%d,"p":"' % (self.run_id.encode(), time.time_ns())
        one = head + self._padding + b'"}'
        return [one] * count

    def sent(self, count: int, started: float) -> None:
        self.published += count
        self.publish_latency.add((time.perf_counter() - started) * 1000)

    def failed(self, side: str, exc: GortmsError) -> None:
        self.errors[side][exc.code] += 1

    # --- consuming ----------------------------------------------------------------------------

    def received(self, messages: list[Message]) -> None:
        now_ns = time.time_ns()
        run_id = self.run_id
        for message in messages:
            payload = message.payload
            if not isinstance(payload, dict) or payload.get("r") != run_id:
                self.foreign += 1
            elif message.delivery_count > 1:
                self.redelivered += 1
            else:
                self.consumed += 1
                latency_ms = (now_ns - payload["t"]) / 1e6
                self.end_to_end.add(latency_ms)
                self.recent.append(latency_ms)
        self.last_received = time.monotonic()

    def consuming(self) -> bool:
        """Whether consumers go on: until all that was published came, or the drain ends."""
        if self.publishing_ended is None:
            return time.monotonic() < self.publish_deadline + self.options.drain_s
        if self.consumed >= self.published:
            return False
        return time.monotonic() < self.publishing_ended + self.options.drain_s


def client_for(options: BenchOptions) -> AsyncClient:
    # A short retry budget: a retry must not outlast the run it measures.
    retry = RetryPolicy(attempts=3, total_s=min(5.0, options.duration_s))
    return AsyncClient(options.url, token=options.token, service_id=options.service_id,
                       service_secret=options.service_secret, retry=retry)


async def _attempt(run: Run, side: str, request: Awaitable[Any]) -> Any:
    """The request's result, or None after counting its failure (and a short pause)."""
    try:
        return await request
    except GortmsError as exc:
        run.failed(side, exc)
        await asyncio.sleep(ERROR_PAUSE_S)
        return None


# --- HTTP ---------------------------------------------------------------------------------------


async def http_publisher(run: Run) -> None:
    async with client_for(run.options) as client:
        while count := await run.slot():
            payloads = run.payloads(count)
            started = time.perf_counter()
            request = client.publish(run.domain, run.queue, payloads[0]) \
                if run.options.batch == 1 else \
                client.publish_batch(run.domain, run.queue, payloads)
            if await _attempt(run, "publish", request) is not None:
                run.sent(count, started)


async def http_consumer(run: Run, index: int) -> None:
    options = run.options
    async with client_for(options) as client:
        while run.consuming():
            fetched = await _attempt(run, "consume", client.fetch(
                run.domain, run.queue, run.group, count=options.fetch, timeout_s=POLL_S,
                consumer=f"bench-{index}"))
            if not fetched:
                continue
            run.received(fetched.messages)
            if options.ack:
                acked = await _attempt(run, "consume", client.ack(
                    run.domain, run.queue, run.group, fetched.messages))
                run.acked += acked.acked if acked is not None else 0


# --- WebSocket ----------------------------------------------------------------------------------


async def ws_publisher(run: Run) -> None:
    async with client_for(run.options) as client:
        # observe=False: no live stream to this socket (the broker does no fan-out for it)
        socket = await client.socket(run.domain, run.queue, buffer=0, observe=False)
        async with socket:
            while count := await run.slot():
                started = time.perf_counter()
                payloads = run.payloads(count)
                request = socket.publish(payloads[0]) if count == 1 else \
                    socket.publish_many(payloads)
                if await _attempt(run, "publish", request) is not None:
                    run.sent(count, started)


async def ws_consumer(run: Run, index: int) -> None:
    options = run.options
    async with client_for(options) as client:
        socket = await client.consumer(run.domain, run.queue, run.group,
                                       consumer=f"bench-{index}", credits=options.fetch,
                                       batch=True)
        async with socket:
            while run.consuming():
                try:
                    batch = await socket.receive_batch(POLL_S, options.fetch)
                except TimeoutError:
                    continue
                except GortmsError as exc:  # the socket is closed: this consumer is done
                    run.failed("consume", exc)
                    return
                run.received(batch)
                if options.ack:
                    acked = await _attempt(run, "consume", socket.ack(batch))
                    run.acked += acked.acked if acked is not None else 0


Worker = Callable[..., Awaitable[None]]
WORKERS: dict[str, tuple[Worker, Worker]] = {
    "http": (http_publisher, http_consumer),
    "ws": (ws_publisher, ws_consumer),
}


async def publish_all(run: Run) -> None:
    publisher = WORKERS[run.options.transport][0]
    await asyncio.gather(*(publisher(run) for _ in range(run.options.publishers)))
    run.publishing_ended = time.monotonic()


async def consume_all(run: Run) -> None:
    consumer = WORKERS[run.options.transport][1]
    await asyncio.gather(*(consumer(run, i) for i in range(run.options.consumers)))
