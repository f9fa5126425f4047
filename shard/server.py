"""ShardServer: the ROUTER/PUB sockets and the loop that turns requests into committed replies.

One loop turn drains every request waiting on the ROUTER socket (up to a bound), runs their
handlers, commits all their writes in one WriteBatch with at most one fsync, and only then
sends the replies: group commit. Fetches run after the commit, so they see what the same
turn published; a fetch that finds nothing parks until a publish, a redelivery or its
timeout wakes it.

Each gateway sends many requests in one frame and gets the turn's answers to all of them in
one frame back (see gortms/protocol/wire.py): a turn costs a few pyzmq calls, not a few per
request.

A write that fails (a full disk past the watermark, an I/O error) fails every request of its
turn, none of which was answered yet; memory, now ahead of the disk, is dropped and loaded
again from a read-only open of the store, which serves reads while writes are refused; the
timer reopens it read-write once it can (see shard/disk.py). No reply for a write is sent
before its commit, so nothing answered is lost and nothing refused half-happened.

The sockets are plain (non-asyncio) pyzmq sockets read through `loop.add_reader` on their
edge-triggered file descriptor: every recv or send can swallow the edge, so after each one
the server checks ZMQ_EVENTS itself instead of waiting for the next wake-up.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from time import perf_counter
from typing import Any, Callable, NoReturn

import zmq
from msgspec import Raw

from gortms.errors import BadRequest, GortmsError, GroupNotFound, StorageError, TooManyWaiters
from gortms.models import GroupSpec, now_ms
from gortms.protocol import (Cancel, Deliveries, DomainGet, DomainList, DomainStatsGet, Fetch,
                             GroupGet, GroupList, GroupListAll, PendingGet, Ping, ProtocolError,
                             QueueGet, QueueList, Request, ShardInfoGet, decode_request,
                             decode_requests, encode_event, encode_replies, failed, ok, Browse,
                             Watch, encode_live, parse_live_topic, RecordsRead, ReplayCheck,
                             ReplayChecked, Replay, Publish, Ack, Settle, MetricsGet, Report,
                             ResourcesGet, StatsGet, LogLevelSet)
from shard import deadletters, handlers, retention
from shard.circuit import OPEN
from shard.events import EVENTS
from shard.groups import Delivery, GroupState, Waiter
from shard.state import ShardState

log = logging.getLogger(__name__)

MAX_TURN_REQUESTS = 4096  # requests drained into one turn
MAX_TURN_BYTES = 32 * 1024 * 1024  # ... and bytes: bounds one WriteBatch and its latency
MAX_DENIED = 10_000  # requests refused by a failed ReplayCheck, remembered at most
# Requests that may carry a signature's replay check themselves (gortms/protocol/ops.py).
SIGNABLE = frozenset({Publish, Fetch, Ack, Settle})
TICK_S = 0.05  # ack deadlines and nack delays are checked this often
LIVE_S = 0.005  # live events are gathered this long, then sent one message per queue
SWEEP_EVERY_TICKS = 20  # idempotency keys and group TTLs, about once a second

ReplyItem = tuple[int, str, Any]
# What a shard whose store failed still answers from its read-only open: the rest would write.
READS = frozenset({Ping, ShardInfoGet, DomainGet, DomainList, DomainStatsGet, QueueGet, QueueList,
                   GroupGet, GroupList, GroupListAll, PendingGet, Cancel, Watch, Browse,
                   RecordsRead, ReplayCheck, StatsGet, ResourcesGet, MetricsGet, Report,
                   LogLevelSet})
# ... and when not even that open succeeded
NO_STORE = frozenset({Ping, Cancel, ReplayCheck, Report, LogLevelSet})
# Opens the store (read-only or not) and loads a ShardState from it; raises StorageError.
Opener = Callable[[bool], ShardState]


class ShardServer:
    def __init__(self, state: ShardState, request_endpoint: str, event_endpoint: str,
                 reopen: Opener | None = None) -> None:
        self.state = state
        self.reopen = reopen  # None: a failed write ends the process (tests, tools)
        self.disk = state.disk
        # The only request kinds answered while the store is read-only or closed (None: all).
        self.only: frozenset[type] | None = None
        self.request_endpoint = request_endpoint
        self.event_endpoint = event_endpoint
        self.context = zmq.Context.instance()
        self.router = self.context.socket(zmq.ROUTER)
        # XPUB: a PUB that also hands over its subscriptions, so the shard knows which
        # queues are watched (live events only for those; see gortms/protocol/wire.py).
        self.pub = self.context.socket(zmq.XPUB)
        self.watched: set[tuple[str, str]] = set()
        state.watched = self.watched
        self.waiters: dict[tuple[bytes, int], tuple[Waiter, GroupState]] = {}
        # (gateway, request id) -> why: requests whose ReplayCheck failed (shard/records.py)
        self.denied: dict[tuple[bytes, int], GortmsError] = {}
        self._live_outbox: dict[bytes, list[bytes]] = {}  # topic -> event bodies, in order
        self._live_timer: asyncio.TimerHandle | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stopping = asyncio.Event()
        self._turn_scheduled = False
        self._flush_scheduled = False
        self._tick_task: asyncio.Task[None] | None = None
        # The retry alarm (_arm): when it rings, and the groups with fetches waiting on it.
        self._alarm: asyncio.TimerHandle | None = None
        self._alarm_ms = 0
        self._alarmed: set[GroupState] = set()

    # --- lifecycle ----------------------------------------------------------------------------

    def bind(self) -> None:
        for sock in (self.router, self.pub):
            sock.setsockopt(zmq.LINGER, 1000)
            sock.setsockopt(zmq.SNDHWM, 1_000_000)
            sock.setsockopt(zmq.RCVHWM, 1_000_000)
        self.router.bind(self.request_endpoint)
        self.pub.bind(self.event_endpoint)

    async def serve(self, handle_signals: bool = True) -> None:
        self.loop = asyncio.get_running_loop()
        self.bind()
        self.loop.add_reader(self.router.getsockopt(zmq.FD), self._schedule_turn)
        self.loop.add_reader(self.pub.getsockopt(zmq.FD), self._drain_subscriptions)
        if handle_signals:
            for signum in (signal.SIGTERM, signal.SIGINT):
                self.loop.add_signal_handler(signum, self.stopping.set)
        self._tick_task = asyncio.create_task(self._tick_forever())
        log.info("shard %d listening on %s (events on %s)", self.state.index,
                 self.request_endpoint, self.event_endpoint)
        self._schedule_turn()  # requests may have queued before the reader was added
        await self.stopping.wait()
        await self._shutdown()

    async def _shutdown(self) -> None:
        assert self.loop is not None
        log.info("shard %d stopping", self.state.index)
        self.loop.remove_reader(self.router.getsockopt(zmq.FD))
        self.loop.remove_reader(self.pub.getsockopt(zmq.FD))
        if self._tick_task is not None:
            self._tick_task.cancel()
        if self._alarm is not None:
            self._alarm.cancel()
        for waiter, _ in list(self.waiters.values()):  # long polls end empty, not with an error
            self._finish(waiter, [])
        if self.disk.failure is None:
            self.state.turn.needs_sync = True
            self._commit()
        self._send_live()
        self._flush_live()
        self.router.close(linger=1000)
        self.pub.close(linger=0)
        try:
            self.state.store.close()
        except StorageError as exc:
            log.error("shard %d: closing its store failed: %s", self.state.index, exc)
        log.info("shard %d stopped", self.state.index)

    # --- the turn -----------------------------------------------------------------------------

    def _schedule_turn(self) -> None:
        if not self._turn_scheduled and self.loop is not None:
            self._turn_scheduled = True
            self.loop.call_soon(self._turn)

    def _turn(self) -> None:
        self._turn_scheduled = False
        if self.stopping.is_set():
            return
        messages = []
        size = 0
        recv = self.router.recv_multipart
        while len(messages) < MAX_TURN_REQUESTS and size < MAX_TURN_BYTES:
            try:
                message = recv(zmq.NOBLOCK)
            except zmq.Again:
                break
            messages.append(message)
            size += sum(map(len, message))
        if messages:
            self._process(messages)
        self._check_readable()

    def _check_readable(self) -> None:
        if self.router.getsockopt(zmq.EVENTS) & zmq.POLLIN:
            self._schedule_turn()

    def _process(self, messages: list[list[bytes]]) -> None:
        started = perf_counter()
        state = self.state
        # Never backwards (a clock step): records are stamped with it, and replay by time and
        # ttl expiry find positions by a binary search over the stamps.
        state.now_ms = max(now_ms(), state.now_ms)
        self.disk.refresh()
        only = self.only
        denied = self.denied
        replies: dict[bytes, list[ReplyItem]] = {}
        fetches: list[tuple[bytes, int, Fetch]] = []
        kinds: dict[type, int] = {}  # requests per operation, for the latency histograms
        # Fetches cancelled in the frame that brought them: they run after every other
        # request of the turn, so a Release behind the Cancel would be delivered to them.
        cancelled: set[tuple[bytes, int]] = set()
        for message in messages:
            if len(message) != 2:
                log.warning("dropping a malformed message of %d frames", len(message))
                continue
            identity, frame = message
            try:
                items = decode_requests(frame)
            except ProtocolError as exc:
                log.warning("dropping a malformed request frame: %s", exc)
                continue
            out = replies.setdefault(identity, [])
            for rid, deadline_ms, raw in items:
                if deadline_ms < state.now_ms:
                    continue  # the gateway gave up on it: doing it now would surprise the client
                try:
                    request = decode_request(raw)
                except ProtocolError as exc:
                    log.warning("refusing a malformed request: %s", exc)
                    out.append(failed(rid, BadRequest(str(exc))))
                    continue
                kind = type(request)
                kinds[kind] = kinds.get(kind, 0) + 1
                if kind in SIGNABLE and request.replay is not None:  # type: ignore[attr-defined]
                    try:
                        self._check_signature(request.replay)  # type: ignore[attr-defined]
                    except GortmsError as exc:
                        out.append(failed(rid, exc))
                        continue
                if denied and (identity, rid) in denied:  # its signature was replayed
                    out.append(failed(rid, denied.pop((identity, rid))))
                elif only is not None and kind not in only:
                    out.append(failed(rid, self.disk.refusal()))
                elif kind is Fetch:
                    fetches.append((identity, rid, request))
                elif kind is Cancel:
                    self._cancel(identity, request.target)
                    cancelled.add((identity, request.target))
                elif kind is ReplayCheck:
                    self._check_replay(identity, rid, request, out)
                else:
                    out.append(self._handle(rid, request))
        if fetches:
            # Before the commit, and answered before its fsync: a fetch delivers only what
            # earlier commits wrote (QueueState.durable), so its reply need not wait for
            # this turn's. One that created its group waits, like every durable change.
            early: dict[bytes, list[ReplyItem]] = {}
            for identity, rid, request in fetches:
                if cancelled and (identity, rid) in cancelled:
                    continue  # unanswered, like a parked fetch cancelled: the gateway let go
                reply, created = self._fetch(identity, rid, request)
                if reply is not None:
                    (replies if created else early).setdefault(identity, []).append(reply)
            self._send_all(early)
        if state.turn and not self._commit():
            # None of it happened: every reply of the turn becomes the failure (the fetches
            # answered early delivered only what was on disk; they are delivered again).
            error = self.disk.refusal()
            replies = {identity: [failed(item[0], error) for item in items]
                       for identity, items in replies.items()}
        self._announce()  # before the replies: a client's next request should meet fresh caches
        self._send_all(replies)
        state.monitor.turn_done(kinds, perf_counter() - started)
        self._send_live()
        self._after_commit()
        self._schedule_flush()

    def _send_all(self, replies: dict[bytes, list[ReplyItem]]) -> None:
        send = self.router.send_multipart
        for identity, items in replies.items():
            if items:
                send([identity, encode_replies(items)])

    def _commit(self, defer_lazy: bool = True) -> bool:
        """Commit the turn; one that holds only lazy writes stays open for the next turns,
        and the timer commits it within TICK_S. False if the store failed the write: the
        shard now serves from a read-only store (`_store_failed`)."""
        state = self.state
        turn = state.turn
        if self.only is not None:  # read-only: whatever a read staged stays in memory
            state.turn = state.new_turn()
            return True
        try:
            writes = turn.logged.len() + turn.unlogged.len()
            synced = turn.commit(defer_lazy)
            if synced is not None:
                state.monitor.committed(writes, synced)
                state.turn = state.new_turn()
                ranges = turn.deleted_ranges if self.disk.low else []
                if state.reclaim:
                    ranges, state.reclaim = ranges + state.reclaim, []
                if ranges and self.loop is not None:
                    self.loop.call_soon(self._reclaim, ranges)
        except StorageError as exc:
            self._store_failed(exc)
            return False
        except Exception:
            # A bug, not the disk: memory is ahead of the disk. Stop at once; the supervisor
            # restarts the shard from what RocksDB holds, and no reply for the lost writes
            # was sent.
            log.critical("shard %d cannot commit; exiting", state.index, exc_info=True)
            os._exit(70)
        return True

    def _reclaim(self, ranges: list[tuple[bytes, bytes]]) -> None:
        """Deleted while the disk is low, or a queue emptied by retention: free the space now
        (so writes resume soon). It runs after the replies went out; the loop waits for it
        (a flush and a compaction of the range: tens of milliseconds)."""
        if self.only is not None:
            return
        try:
            self.state.store.reclaim(ranges)
        except StorageError as exc:
            log.warning("shard %d: %s", self.state.index, exc)
        self.disk.refresh()

    # --- a failed store -----------------------------------------------------------------------

    def _store_failed(self, error: StorageError) -> None:
        """Memory is ahead of the disk and the store refuses writes: load what is on disk
        from a read-only open, and refuse writes until `_recover` reopens it."""
        self.disk.fail(error)
        if self.reopen is None:
            log.critical("shard %d cannot commit; exiting", self.state.index)
            os._exit(70)
        self.only = READS
        self._swap(read_only=True)

    def _swap(self, read_only: bool) -> bool:
        """Close the store, open it again and load a fresh state from it. False if it could
        not be opened that way; the shard then has no store and refuses everything."""
        assert self.reopen is not None
        for waiter, _ in list(self.waiters.values()):  # their groups are about to go
            self._finish(waiter, [])
        old = self.state
        old.turn = old.new_turn()  # what it held was never written, and will not be
        try:
            old.store.close()
        except StorageError as exc:
            log.info("shard %d: closing the failed store: %s", old.index, exc)
        try:
            self.state = self.reopen(read_only)
            self.state.watched = self.watched
        except StorageError as exc:
            log.error("shard %d: cannot open its store%s: %s", old.index,
                      " read-only" if read_only else "", exc)
            self.state = old  # closed: all but pings are refused until _recover reopens it
            self.only = NO_STORE
            return False
        except Exception:
            # Not the disk: a bug while loading. Nothing is served from a closed store, and
            # a restart loads from what is committed.
            self._crash("reopening the store")
        return True

    def _recover(self) -> None:
        """Reopen a failed store read-write once it is due (shard/disk.py, with backoff)."""
        disk = self.disk
        if not disk.may_retry():
            return
        log.info("shard %d: reopening its store", self.state.index)
        if self._swap(read_only=False):
            self.only = None
            disk.recovered()
            return
        disk.retry_failed()
        if self._swap(read_only=True):
            self.only = READS

    def _check_signature(self, replay: Replay) -> None:
        self.state.replays.check(replay.digest, replay.signed_ms, replay.until_ms,
                                 self.state.now_ms)

    def _check_replay(self, identity: bytes, rid: int, request: ReplayCheck,
                      out: list[ReplyItem]) -> None:
        """A refused check refuses the request it guards (next in the same frame) too."""
        try:
            handlers.replay_check(self.state, request)
        except GortmsError as exc:
            if len(self.denied) >= MAX_DENIED:  # guarded requests that never came
                self.denied.clear()
            self.denied[(identity, request.guards)] = exc
            out.append(failed(rid, exc))
            return
        out.append(ok(rid, ReplayChecked()))

    def _handle(self, rid: int, request: Request) -> ReplyItem:
        try:
            body = handlers.HANDLERS[type(request)](self.state, request)
        except GortmsError as exc:
            return failed(rid, exc)
        except Exception:
            self._crash(type(request).__name__)
        return ok(rid, Raw(body) if type(body) is bytes else body)

    def _crash(self, what: str) -> NoReturn:
        """A bug in a handler: it may have changed memory and staged part of its writes, and
        neither can be taken back. Committing would persist the half; going on would serve
        from state the disk does not hold. Exit instead: the supervisor restarts the shard
        from what is committed, and no request of this turn was answered yet."""
        log.critical("shard %d: a bug in %s; exiting so that it restarts from what is "
                     "committed", self.state.index, what, exc_info=True)
        os._exit(70)

    def _announce(self) -> None:
        """Committed: send the turn's catalog events (before the replies: a client's next
        request should meet fresh caches)."""
        state = self.state
        if state.catalog_events:
            send = self.pub.send_multipart
            debug = log.isEnabledFor(logging.DEBUG)
            for event in state.catalog_events:
                if debug:
                    log.debug("shard %d announces %s", state.index, event)
                send(encode_event(event))
            state.catalog_events.clear()

    def _send_live(self) -> None:
        """... and its live events, after the replies and gathered for LIVE_S: one message
        per watched queue per interval, however many publishes it had (observers are not
        waited for, and a publisher's answer does not queue behind them)."""
        state = self.state
        if state.live_events:
            outbox = self._live_outbox
            for live in state.live_events:
                topic, body = encode_live(live)
                outbox.setdefault(topic, []).append(body)
            state.live_events.clear()
            if self._live_timer is None and self.loop is not None:
                self._live_timer = self.loop.call_later(LIVE_S, self._flush_live)

    def _flush_live(self) -> None:
        self._live_timer = None
        outbox, self._live_outbox = self._live_outbox, {}
        send = self.pub.send_multipart
        for topic, bodies in outbox.items():
            send([topic, *bodies])
        self._drain_subscriptions()  # a send may have taken the socket's readable edge

    def _drain_subscriptions(self) -> None:
        """XPUB hands over the first subscription to a topic and the last unsubscription
        (b"\x01topic", b"\x00topic"); a gateway that goes away unsubscribes implicitly."""
        recv = self.pub.recv
        while True:
            try:
                message = recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            name = parse_live_topic(message[1:])
            if name is None:
                continue
            if message[:1] == b"\x01":
                self.watched.add(name)
            else:
                self.watched.discard(name)

    def _after_commit(self) -> None:
        """Committed: announce catalog changes, serve parked fetches that can now proceed."""
        state = self.state
        self._announce()
        self._send_live()
        for queue in state.published:
            for group in queue.groups.values():
                if group.waiters:
                    self._wake(group)
        state.published.clear()
        for group in state.settled:  # acks and nacks may have made room under maxPending
            if group.waiters:
                self._wake(group)
        state.settled.clear()
        self._answer_orphans()

    def _schedule_flush(self) -> None:
        # Writes made after the commit (fetches, wake-ups, timers) go out with the next turn,
        # or with this flush if no turn comes first.
        if self.state.turn and not self._flush_scheduled and self.loop is not None:
            self._flush_scheduled = True
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self.state.turn and not self.stopping.is_set():
            self._commit()
            self._after_commit()

    # --- fetches and parked waiters -----------------------------------------------------------

    def _fetch(self, identity: bytes, rid: int, request: Fetch
               ) -> tuple[ReplyItem | None, bool]:
        """Deliver what there is, or park the fetch: its reply (None if parked), and whether
        it created its group."""
        state = self.state
        created = False
        try:
            group, created = self._fetch_group(request)
            deliveries = group.deliver(state.store, state.turn, request.consumer, request.max,
                                       state.now_ms, state.limits.max_pending_per_group)
            state.monitor.consumed += len(deliveries)
            state.track_timers(group)
            circuit = group.circuit
            if deliveries or request.timeout_ms == 0 or (
                    circuit is not None and circuit.state == OPEN):  # say so, rather than park
                return ok(rid, _deliveries(deliveries, group, state.now_ms)), created
            if state.parked >= state.limits.max_waiters:
                raise TooManyWaiters(f"shard {state.index} already holds {state.parked} "
                                     "long polls; retry shortly or use a shorter timeout")
            self._park(identity, rid, group, request.consumer, request.max, request.timeout_ms)
            return None, created
        except GortmsError as exc:
            return failed(rid, exc), created
        except Exception:
            self._crash("fetch")

    def _fetch_group(self, request: Fetch) -> tuple[GroupState, bool]:
        """The group, and whether this fetch created it (the queue form creates it)."""
        queue = handlers.queue_of(self.state, request)
        group = queue.groups.get(request.group)
        if group is not None:
            return group, False
        if not request.create:
            raise GroupNotFound(f"consumer group '{request.group}' not found on queue "
                                f"'{queue.domain}/{queue.name}'")
        return handlers.create_group(self.state, queue, GroupSpec(group_id=request.group)), True

    def _park(self, identity: bytes, rid: int, group: GroupState, consumer: str,
              max_count: int, timeout_ms: int) -> None:
        assert self.loop is not None
        key = (identity, rid)
        waiter = Waiter(key, consumer, max_count)
        waiter.timer = self.loop.call_later(timeout_ms / 1000, self._expire_waiter, waiter)
        group.waiters.append(waiter)
        self.waiters[key] = (waiter, group)
        self.state.parked += 1
        if group.delayed:
            self._arm(group)

    def _expire_waiter(self, waiter: Waiter) -> None:
        self._finish(waiter, [])
        self._check_readable()

    def _finish(self, waiter: Waiter, deliveries: list[Delivery]) -> None:
        if waiter.done:
            return
        waiter.done = True
        if waiter.timer is not None:
            waiter.timer.cancel()
        self.waiters.pop(waiter.key, None)
        self.state.parked -= 1
        self._send_deliveries(*waiter.key, deliveries)

    def _send_deliveries(self, identity: bytes, rid: int, deliveries: list[Delivery]) -> None:
        self.router.send_multipart([identity, encode_replies([ok(rid, _deliveries(deliveries))])])

    def _wake(self, group: GroupState) -> None:
        """Serve parked fetches of `group`, oldest first, while it has messages for them."""
        state = self.state
        while group.waiters and group.can_deliver(state.limits.max_pending_per_group):
            waiter = group.waiters.popleft()
            if waiter.done:
                continue
            deliveries = group.deliver(state.store, state.turn, waiter.consumer,
                                       waiter.max_count, state.now_ms,
                                       state.limits.max_pending_per_group)
            if not deliveries:
                group.waiters.appendleft(waiter)
                break
            state.monitor.consumed += len(deliveries)
            self._finish(waiter, deliveries)
        while group.waiters and group.waiters[0].done:
            group.waiters.popleft()
        state.track_timers(group)
        if group.waiters and group.delayed:
            self._arm(group)

    # --- the retry alarm ----------------------------------------------------------------------

    def _arm(self, group: GroupState) -> None:
        """A parked fetch waits on a group with retries (or delayed messages) to come: wake it
        when the first one is due, not at the next tick (up to TICK_S later). One timer for
        the shard, at the earliest such time."""
        assert self.loop is not None
        self._alarmed.add(group)
        due_ms = group.delayed[0][0]
        if self._alarm is not None and self._alarm_ms <= due_ms:
            return
        if self._alarm is not None:
            self._alarm.cancel()
        self._alarm_ms = due_ms
        self._alarm = self.loop.call_later(max(0.0, (due_ms - now_ms()) / 1000), self._ring)

    def _ring(self) -> None:
        self._alarm = None
        state = self.state
        if self.only is not None or self.stopping.is_set():
            self._alarmed.clear()
            return
        state.now_ms = max(now_ms(), state.now_ms)
        groups, self._alarmed = self._alarmed, set()
        for group in groups:
            if not group.waiters or group.queue.groups.get(group.name) is not group:
                continue  # no fetch waits any more, or the group is gone
            if group.promote_delayed(state.now_ms):
                self._wake(group)  # re-arms itself if fetches still wait on later ones
            elif group.delayed:
                self._arm(group)
        if state.turn:
            self._commit(defer_lazy=False)
            self._after_commit()
        self._check_readable()

    def _cancel(self, identity: bytes, rid: int) -> None:
        """The gateway's client went away: drop its parked fetch, if it is still parked."""
        entry = self.waiters.get((identity, rid))
        if entry is not None:
            waiter, group = entry
            waiter.done = True
            waiter.timer.cancel()
            del self.waiters[waiter.key]
            self.state.parked -= 1

    def _answer_orphans(self) -> None:
        """Parked fetches whose group or queue was deleted get an error, not a timeout."""
        for key, (waiter, group) in list(self.waiters.items()):
            queue = group.queue
            if self.state.queues.get((queue.domain, queue.name)) is queue and \
                    queue.groups.get(group.name) is group:
                continue
            waiter.done = True
            waiter.timer.cancel()
            del self.waiters[key]
            self.state.parked -= 1
            error = GroupNotFound(f"consumer group '{group.name}' was deleted")
            self.router.send_multipart([key[0], encode_replies([failed(key[1], error)])])

    # --- timers -------------------------------------------------------------------------------

    async def _tick_forever(self) -> None:
        ticks = 0
        while True:
            await asyncio.sleep(TICK_S)
            ticks += 1
            try:
                self._tick(sweep=ticks % SWEEP_EVERY_TICKS == 0)
            except Exception:
                log.exception("shard %d timer failed", self.state.index)

    def _tick(self, sweep: bool) -> None:
        state = self.state
        state.now_ms = max(now_ms(), state.now_ms)
        self.disk.refresh()
        state.monitor.tick(state.now_ms, self._disk_bytes)
        if self.only is not None:  # read-only: no timer may write; try to recover
            self._recover()
            self._check_readable()
            return
        for group in list(state.timed_groups):
            due = group.expire(state.now_ms, state.turn)
            deadletters.move(state, group)  # leases that ran out past maxRetries
            if due and group.waiters:
                self._wake(group)
            if not group.has_timers():
                state.timed_groups.discard(group)
        if sweep:
            self._sweep()
        if state.turn:
            self._commit(defer_lazy=False)
            self._after_commit()
        self._check_readable()

    def _disk_bytes(self) -> int:
        try:
            return self.state.store.stats()["diskBytes"]
        except (StorageError, OSError):
            return -1

    def _sweep(self) -> None:
        state = self.state
        for queue in list(state.queues.values()):
            queue.forget_expired(state.now_ms, state.turn)
            if queue.schedules:
                queue.forget_schedules(state.now_ms, state.turn)
            retention.sweep(state, queue)
            for group in list(queue.groups.values()):
                idle_ms = state.now_ms - group.last_active_ms
                if group.ttl > 0 and idle_ms > group.ttl * 1000 and not any(
                        not w.done for w in group.waiters):
                    log.info("consumer group %s/%s/%s expired after %.0fs unused", queue.domain,
                             queue.name, group.name, idle_ms / 1000)
                    EVENTS.add("group_expired", f"consumer group {group.name} of "
                               f"{queue.domain}/{queue.name} expired after "
                               f"{idle_ms / 1000:.0f}s unused", domain=queue.domain,
                               queue=queue.name, group=group.name)
                    handlers.delete_group(state, group)



def _deliveries(deliveries: list[Delivery], group: GroupState | None = None,
                now_ms: int = 0) -> Deliveries:
    if not deliveries:
        circuit = group.circuit if group is not None else None
        if circuit is not None and circuit.state == OPEN:
            return Deliveries(circuit=OPEN, retry_after_s=circuit.retry_after_s(now_ms))
        return Deliveries()
    positions, counts, records = zip(*deliveries)
    return Deliveries(positions=positions, counts=counts, records=records)
