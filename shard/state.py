"""ShardState: everything one shard holds in memory, and the turn its changes are written with.

Handlers change state and hand their writes to `turn` (see shard/turn.py); the server commits
the turn once per loop turn (group commit) and only then sends the replies, then starts a
new one. Nothing here decides whether to fsync: the turn knows from what was written.
"""

from __future__ import annotations

from dataclasses import dataclass

from gortms.config import SpaceLimit
from gortms.errors import QueueNotFound
from gortms.models import now_ms
from gortms.protocol import CatalogEvent, DomainRecord, LiveHello, LiveMessages
from shard.disk import DiskGuard
from shard.events import EVENTS
from shard.groups import GroupState
from shard.monitor import Monitor
from shard.queues import QueueState
from shard.recent import Recent
from shard.records import RecordStore, ReplayCache
from shard.store import Store, counter_key, drop_queue, name_key
from shard.turn import Turn


@dataclass(frozen=True, slots=True)
class Limits:
    sync: bool = True
    dedup_window_ms: int = 120_000
    max_waiters: int = 10_000
    max_pending_per_group: int = 10_000
    recent_cache_bytes: int = 64 * 1024 * 1024


class ShardState:
    def __init__(self, index: int, store: Store, limits: Limits,
                 disk: DiskGuard | None = None, monitor: Monitor | None = None) -> None:
        self.index = index
        self.store = store
        self.limits = limits
        # Outlives the state: a store reopened after a failure gets a new ShardState.
        self.disk = disk if disk is not None else DiskGuard(index, None, SpaceLimit())
        self.monitor = monitor if monitor is not None else Monitor(index)  # outlives it too
        self.queues: dict[tuple[str, str], QueueState] = {}
        self.domains: dict[str, DomainRecord] = {}  # the catalog (on the catalog shard)
        self.next_qid = 1
        self.next_epoch = 1
        self.now_ms = now_ms()
        self.turn = self.new_turn()
        self.timed_groups: set[GroupState] = set()  # groups with ack deadlines or delays
        self.published: set[QueueState] = set()  # this turn, for wake-ups and events
        self.settled: set[GroupState] = set()  # acked or nacked this turn, for wake-ups
        self.catalog_events: list[CatalogEvent] = []
        # Live events (wire.py): the queues some gateway subscribed to (kept by the server,
        # which shares its set with every state it loads), and this turn's events for them,
        # sent once the turn is committed.
        self.watched: set[tuple[str, str]] = set()
        self.live_events: list[LiveMessages | LiveHello] = []
        # Key ranges whose space should go back to the disk after the commit (retention.py).
        self.reclaim: list[tuple[bytes, bytes]] = []
        self.parked = 0  # long polls waiting, over all groups
        self.recent = Recent(limits.recent_cache_bytes)
        self.records = RecordStore()
        self.replays = ReplayCache(self.now_ms)

    def new_turn(self) -> Turn:
        return Turn(self.store, self.limits.sync)

    # --- lookups ------------------------------------------------------------------------------

    def queue(self, domain: str, name: str, epoch: int) -> QueueState:
        """The queue `domain/name` of domain incarnation `epoch`; a stale one is dropped."""
        queue = self.queues.get((domain, name))
        if queue is not None and queue.epoch != epoch:
            if queue.epoch < epoch:  # left over from a deleted domain of the same name
                self.drop_queue(queue)
            queue = None
        if queue is None:
            raise QueueNotFound(f"queue '{name}' not found in domain '{domain}'")
        return queue

    def queues_of(self, domain: str, epoch: int) -> list[QueueState]:
        return [q for (d, _), q in self.queues.items() if d == domain and q.epoch == epoch]

    # --- changes --------------------------------------------------------------------------

    def allocate_qid(self) -> int:
        qid = self.next_qid
        self.next_qid += 1
        self.turn.put(counter_key("next_qid"), self.next_qid.to_bytes(8, "big"))
        return qid

    def allocate_epoch(self) -> int:
        epoch = self.next_epoch
        self.next_epoch += 1
        self.turn.put(counter_key("next_epoch"), self.next_epoch.to_bytes(8, "big"))
        return epoch

    def add_queue(self, queue: QueueState, loaded: bool = False) -> None:
        """A new queue, or (`loaded`) one read back from the store at start."""
        self.queues[(queue.domain, queue.name)] = queue
        self.recent.tails[queue.qid] = queue.tail
        if loaded:
            return
        queue.create(self.turn)
        self.turn.put(name_key(queue.domain, queue.name), queue.qid.to_bytes(4, "big"))
        EVENTS.add("queue_created", f"queue {queue.domain}/{queue.name} created",
                   domain=queue.domain, queue=queue.name)
        self.catalog_events.append(CatalogEvent(kind="queue", domain=queue.domain,
                                                queue=queue.name))

    def drop_queue(self, queue: QueueState) -> None:
        del self.queues[(queue.domain, queue.name)]
        for group in queue.groups.values():
            self.forget_group(group)
        self.turn.forget(queue)
        self.recent.drop(queue.qid)
        queue.chunk_cache.forget()  # its chunks' share of the shard's chunk budget
        drop_queue(self.turn, queue.qid, queue.domain, queue.name)
        self.published.discard(queue)
        EVENTS.add("queue_deleted", f"queue {queue.domain}/{queue.name} deleted",
                   domain=queue.domain, queue=queue.name)
        self.catalog_events.append(CatalogEvent(kind="queue", domain=queue.domain,
                                                queue=queue.name, deleted=True))

    def forget_group(self, group: GroupState) -> None:
        """Drop a group's in-memory traces; parked fetches are answered by the server."""
        self.turn.forget(group)
        self.timed_groups.discard(group)
        self.settled.discard(group)

    def track_timers(self, group: GroupState) -> None:
        """`group` may now have ack deadlines or delays for the timer to watch."""
        if group.has_timers():
            self.timed_groups.add(group)
