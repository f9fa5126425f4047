"""LiveHub: this gateway worker's live feeds, one per watched queue, fanned out to observers.

An observer is a WebSocket in observe mode or an SSE stream (gateway/sockets.py,
gateway/stream.py). The first observer of a queue in this worker opens its feed: subscribe
to the queue's topic on the shards' event socket, then a `Watch` to the owner shard, whose
`LiveHello` on the topic says the subscription is in effect (gortms/protocol/wire.py). The
last observer to leave closes it, and the shard stops publishing that queue's messages to
this worker. A queue no observer watches costs its shard one set lookup per publish.

Each committed publish reaches the hub as one `LiveMessages`; its message frames are built
once and handed to every observer, which buffers them within its own bound and counts what
it had to drop (`lagged`). Positions are contiguous, so events lost on the way (the event
socket's high-water mark, a shard restart) show as a gap, reported to every observer as lost.
The hub never waits for an observer: fan-out is a loop of appends, run every DELIVERY_S over
the events that came meanwhile (a gap first hands over what came before it).
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import os
import time
from typing import Any, Callable, Protocol

from gortms.errors import GortmsError
from gortms.models import format_ts
from gortms.protocol import (CatalogEvent, LiveHello, LiveMessages, Watch, Watching,
                             live_topic)
from gateway.catalog import Domain
from gateway.context import Gateway

log = logging.getLogger(__name__)

HELLO_ATTEMPTS = 12  # Watch requests before giving up on the hello (then: best effort)
HELLO_WAIT_S = 0.05  # the first wait for a hello; each attempt waits one step longer
# Fan-out runs this often over the events that came meanwhile: per observer, one hand-over
# and one write per interval rather than per publish (what keeps a hundred observers from
# costing a hundred times a publish), for that much delay at most.
DELIVERY_S = 0.02
WORK_SLICE_S = 0.0002
MAX_WORK = 100_000  # hand-overs queued at most; past it they run at once

GONE = 4410  # close code: the queue or its domain was deleted


class Observer(Protocol):
    def live(self, frames: list[bytes], first: int) -> None:
        """Message frames for positions first, first + 1, ... (never blocks)."""

    def lost(self, count: int) -> None:
        """`count` messages were published that this observer will never get."""

    def end(self, code: int, reason: str) -> None:
        """The queue is gone: close."""


class Feed:
    """One watched queue: its observers, and the position of the next message expected."""

    __slots__ = ("domain", "queue", "topic", "observers", "next_position", "ready", "hello",
                 "token", "joining", "pending", "pending_first")

    def __init__(self, domain: str, queue: str) -> None:
        self.domain = domain
        self.queue = queue
        self.topic = live_topic(domain, queue)
        self.observers: set[Observer] = set()
        self.next_position: int | None = None  # None until the feed is open
        self.ready: asyncio.Future[None] | None = None
        self.hello: asyncio.Future[int] | None = None
        self.token = 0
        self.joining = 0
        # Message frames not handed to the observers yet (positions pending_first, ...):
        # fan-out runs every DELIVERY_S over what came meanwhile, not once per publish.
        self.pending: list[bytes] = []
        self.pending_first = 0


def message_frames(event: LiveMessages, skip: int) -> list[bytes]:
    """The observers' `message` frames of `event`'s records from index `skip` on, spliced
    from the stored bytes (the record's tail is already `"id":..,"headers":..,"payload":..}`)."""
    head = b'{"type":"message","position":%%d,"timestamp":"%s",' % format_ts(
        event.ts_ms).encode()
    out = []
    position = event.first + skip
    for record in event.records[skip:]:
        out.append(head % position + record[2 + ((record[0] << 8) | record[1]):])
        position += 1
    return out


class LiveHub:
    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self.feeds: dict[tuple[str, str], Feed] = {}
        self._pending: set[Feed] = set()
        self._work: collections.deque[tuple[Callable[..., None], tuple]] = collections.deque()
        self._working = False
        self._delivery: asyncio.TimerHandle | None = None
        # Called after each delivery: the observers' writers flush what they were given.
        self.flushers: list[Callable[[], None]] = []
        self._tokens = itertools.count(int.from_bytes(os.urandom(4), "big"))

    def attach(self) -> None:
        """Listen to the shards' events (once, at startup)."""
        self.gw.shards.on_live_event(self.on_live)
        self.gw.shards.on_catalog_event(self.on_catalog)
        self.gw.shards.on_reconnect(self.on_reconnect)

    # --- observers ----------------------------------------------------------------------------

    async def join(self, domain: str, queue: str, observer: Observer) -> int:
        """Send `observer` the queue's messages from now on; the position of the first one
        it may get. Raises DomainNotFound, QueueNotFound, ShardUnavailable."""
        key = (domain, queue)
        feed = self.feeds.get(key)
        if feed is None:
            feed = self.feeds[key] = Feed(domain, queue)
            feed.ready = asyncio.ensure_future(self._open(feed))
        assert feed.ready is not None
        feed.joining += 1
        try:
            await asyncio.shield(feed.ready)
        finally:
            feed.joining -= 1
            if self.feeds.get(key) is feed and not feed.observers and not feed.joining and \
                    feed.ready.done() and (feed.ready.cancelled() or feed.ready.exception()):
                self._close(feed)
        feed.observers.add(observer)
        assert feed.next_position is not None
        return feed.next_position

    def leave(self, domain: str, queue: str, observer: Observer) -> None:
        feed = self.feeds.get((domain, queue))
        if feed is None:
            return
        feed.observers.discard(observer)
        if not feed.observers and not feed.joining:
            self._close(feed)

    async def _open(self, feed: Feed) -> None:
        record = await self.gw.catalog.domain(feed.domain)
        self.gw.shards.subscribe_live(feed.topic)
        await self._handshake(feed, record)

    async def _handshake(self, feed: Feed, record: Domain) -> None:
        """Watch until the hello comes through the subscription (on_live takes the position
        from it, and reports a gap since the last event as lost)."""
        loop = asyncio.get_running_loop()
        reply: Watching | None = None
        for attempt in range(HELLO_ATTEMPTS):
            feed.token = next(self._tokens) & 0x7FFF_FFFF_FFFF
            feed.hello = loop.create_future()
            reply = await self.gw.send_to_queue(record, feed.queue, Watch, token=feed.token)
            try:
                async with asyncio.timeout(HELLO_WAIT_S * (attempt + 1)):
                    await feed.hello
                return
            except TimeoutError:
                continue  # the subscription had not reached the shard yet: ask again
        # Never seen: events may still come (the subscription is in place); start from the
        # position the shard gave, and let a gap, if any, be reported as lost.
        log.warning("no hello on %s/%s after %d watches; observing without it", feed.domain,
                    feed.queue, HELLO_ATTEMPTS)
        assert reply is not None
        if feed.next_position is None:
            feed.next_position = reply.next_position

    def on_reconnect(self, shard: int) -> None:
        """A shard came back (restarted, or the link dropped): events of its queues may have
        been lost meanwhile, and the last ones would show no gap until the next publish. A
        new handshake per feed finds out at once."""
        for feed in list(self.feeds.values()):
            if feed.next_position is not None and \
                    self.gw.owner(feed.domain, feed.queue) == shard:
                asyncio.ensure_future(self._resync(feed))

    async def _resync(self, feed: Feed) -> None:
        try:
            await self._handshake(feed, await self.gw.catalog.domain(feed.domain))
        except GortmsError as exc:  # gone or down again: its observers hear it otherwise
            log.info("resyncing %s/%s: %s", feed.domain, feed.queue, exc)

    def _close(self, feed: Feed) -> None:
        if self.feeds.get((feed.domain, feed.queue)) is feed:
            del self.feeds[(feed.domain, feed.queue)]
            self.gw.shards.unsubscribe_live(feed.topic)

    # --- events -------------------------------------------------------------------------------

    def on_live(self, event: LiveMessages | LiveHello) -> None:
        feed = self.feeds.get((event.domain, event.queue))
        if feed is None:
            return
        if type(event) is LiveHello:
            hello = feed.hello
            if event.token != feed.token or hello is None or hello.done():
                return  # another worker's, or an earlier attempt's
            # In stream order: every event before the hello has been seen, so what is still
            # missing up to its position was lost.
            if feed.next_position is None:
                feed.next_position = event.next_position
            elif event.next_position > feed.next_position:
                for observer in list(feed.observers):
                    self._do(observer.lost, event.next_position - feed.next_position)
                feed.next_position = event.next_position
            hello.set_result(event.next_position)
            return
        expected = feed.next_position
        if expected is None:
            return  # not open yet: observers start at the hello's position
        assert type(event) is LiveMessages
        count = len(event.records)
        end = event.first + count
        if end <= expected:
            return  # from before this feed opened
        skip = max(0, expected - event.first)
        feed.next_position = end
        if event.first > expected:
            self._deliver(feed)  # what came before the gap goes first
            for observer in list(feed.observers):
                self._do(observer.lost, event.first - expected)
        if not feed.pending:
            feed.pending_first = event.first + skip
        feed.pending += message_frames(event, skip)
        self._pending.add(feed)
        if self._delivery is None:
            self._delivery = asyncio.get_running_loop().call_later(DELIVERY_S, self._deliver_all)

    def _do(self, action: Callable[..., None], *args: Any) -> None:
        """Queue one hand-over to an observer: they run in order, a slice of WORK_SLICE_S
        per loop iteration, so that a publish arriving meanwhile waits for a slice, not for
        the whole fan-out."""
        self._work.append((action, args))
        if len(self._work) > MAX_WORK:  # behind: catch up now rather than grow without end
            self._run_work(sliced=False)
            return
        if not self._working:
            self._working = True
            asyncio.get_running_loop().call_soon(self._run_work)

    def _run_work(self, sliced: bool = True) -> None:
        work = self._work
        until = time.perf_counter() + WORK_SLICE_S
        while work:
            action, args = work.popleft()
            action(*args)
            if sliced and time.perf_counter() > until:
                break
        if work:
            if not self._working or sliced:
                self._working = True
                asyncio.get_running_loop().call_soon(self._run_work)
        else:
            self._working = False

    def _deliver_all(self) -> None:
        """Hand the feeds' pending frames to their observers, and write them out."""
        self._delivery = None
        pending, self._pending = self._pending, set()
        for feed in pending:
            self._deliver(feed)
        for flush in self.flushers:
            self._do(flush)

    def _deliver(self, feed: Feed) -> None:
        frames, first = feed.pending, feed.pending_first
        if not frames:
            return
        feed.pending = []
        for observer in list(feed.observers):
            self._do(observer.live, frames, first)

    def on_catalog(self, event: CatalogEvent) -> None:
        # Only queue and domain deletions: the catalog topic also carries account records
        # ("records", whose `domain` is a collection such as "logins") and log levels.
        if not event.deleted or event.kind not in ("queue", "domain"):
            return
        if event.kind == "queue":
            gone = [self.feeds.get((event.domain, event.queue or ""))]
            reason = f"queue '{event.domain}/{event.queue}' was deleted"
        else:
            gone = [f for (domain, _), f in self.feeds.items() if domain == event.domain]
            reason = f"domain '{event.domain}' was deleted"
        for feed in gone:
            if feed is None:
                continue
            self._deliver(feed)  # what was published before the delete
            self._close(feed)
            for observer in list(feed.observers):
                self._do(observer.end, GONE, reason)
            feed.observers.clear()
