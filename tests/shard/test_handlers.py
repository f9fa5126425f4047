"""shard/handlers.py called directly on a ShardState over a MemoryStore, every turn committed
the way shard/server.py commits it: the replies, the state, and what each commit writes —
with an fsync, through the WAL without one, or without the WAL.

Time is the state's `now_ms`, set by the tests; nothing here sleeps.
"""

from __future__ import annotations

import logging
import os
import typing
from typing import Any, Callable

import msgspec
import pytest

from gortms.checks import Duration
from gortms.errors import (ConsumerNotFound, DomainExists, DomainNotFound, GortmsError,
                           GroupExists, GroupNotFound, InvalidParameter, QueueExists,
                           QueueNotFound, Conflict, Unauthorized)
from gortms.models import AckMode, GroupSpec, QueueConfig, format_ts
from gortms.monitoring import Sampler
from gortms.protocol import (MetricsGet, Report, ResourcesGet, StatsGet)
from gortms.protocol import LogLevel, LogLevelSet
from gortms.protocol import (Ack, Acked, AnyRequest, Cancel, CatalogEvent, ConsumerAdd,
                             ConsumerRemove, DomainCreate, DomainDelete, DomainDrop, DomainGet,
                             DomainList, DomainRecord, DomainStatsGet, Extend, Fetch,
                             GroupCreate, GroupDelete, GroupGet, GroupList, GroupListAll,
                             GroupSeek, GroupTtl, Nack, PendingGet, Ping, Publish, Published,
                             QueueCreate, QueueDelete, QueueGet, QueueList, Redrive, Request,
                             Settle, ShardInfoGet, encode_message, record_id, Release, Watch,
                             Browse, LiveHello, ts_bytes, RecordWrite, RecordsRead, RecordsWrite,
                             ReplayCheck, RecordCondition)
from shard import chunks, handlers, loader
from shard.groups import Delivery, decode_lease
from shard.handlers import HANDLERS
from shard.memory import MemoryBatch, MemoryStore
from shard.state import Limits, ShardState
from shard.store import (counter_key, counters_key, cursor_key, dedup_prefix, domain_key,
                         group_key, message_prefix, name_key, pos_bytes, prefix_end, queue_key,
                         redelivery_prefix)

T0 = 1_751_193_000_000  # epoch ms
DOMAIN, QUEUE, GROUP = "shop", "orders", "g"

# How a batch reached the store, and the kinds (first key bytes) of the keys it touched.
Write = tuple[str, str]


class RecordingStore(MemoryStore):
    """A MemoryStore that also notes how each batch was written: ("fsync" | "wal" | "nowal",
    the sorted key kinds it touched)."""

    def __init__(self) -> None:
        super().__init__()
        self.written: list[Write] = []

    def write(self, batch: MemoryBatch, sync: bool, wal: bool = True) -> None:
        mode = "fsync" if sync else ("wal" if wal else "nowal")
        kinds = "".join(sorted({chr(key[0]) for _, key, _ in batch.ops}))
        self.written.append((mode, kinds))
        super().write(batch, sync, wal)


class Shard:
    """One ShardState, driven as the server drives it: handlers, then the turn's commit."""

    def __init__(self, limits: Limits = Limits()) -> None:
        self.store = RecordingStore()
        self.state = ShardState(0, self.store, limits)
        self.state.now_ms = T0
        self.state.replays.started_ms = T0
        self.announced: list[CatalogEvent] = []

    def call(self, request: Request) -> Any:
        """The handler's reply; its writes wait in the turn."""
        return HANDLERS[type(request)](self.state, request)

    def commit(self) -> list[Write]:
        """Commit the turn (as ShardServer._commit does); how its batches were written."""
        state = self.state
        before = len(self.store.written)
        turn, state.turn = state.turn, state.new_turn()
        turn.commit()
        self.announced += state.catalog_events
        state.catalog_events.clear()
        state.published.clear()
        return self.store.written[before:]

    def do(self, request: Request) -> Any:
        reply = self.call(request)
        self.commit()
        return reply

    def writes_of(self, request: Request) -> list[Write]:
        """What committing this one request writes."""
        assert not self.state.turn, "an earlier call left writes in the turn"
        self.call(request)
        return self.commit()

    # --- set-ups ------------------------------------------------------------------------------

    def queue(self, name: str = QUEUE, epoch: int = 1, **config: Any) -> None:
        self.do(QueueCreate(domain=DOMAIN, queue=name, epoch=epoch, config=QueueConfig(**config)))

    def publish(self, count: int = 1, queue: str = QUEUE, key: str | None = None,
                epoch: int = 1) -> Any:
        first = self.state.queues[(DOMAIN, queue)].last + 1
        records = [message(f"m{first + i}") for i in range(count)]
        return self.do(Publish(domain=DOMAIN, queue=queue, epoch=epoch, records=records, key=key))

    def group(self, name: str = GROUP, queue: str = QUEUE, **spec: Any) -> None:
        self.do(GroupCreate(**at(queue), spec=GroupSpec(group_id=name, **spec)))

    def fetch(self, consumer: str = "c1", count: int = 10, group: str = GROUP,
              queue: str = QUEUE) -> list[Delivery]:
        """What the server does for a Fetch (fetches have no handler: they may park)."""
        state = self.state
        found = handlers.queue_of(state, Fetch(**at(queue), group=group)).groups[group]
        out = found.deliver(state.store, state.turn, consumer, count, state.now_ms,
                            state.limits.max_pending_per_group)
        state.track_timers(found)
        return out

    def keys(self, kind: bytes) -> list[bytes]:
        return [key for key, _ in self.store.scan(kind, prefix_end(kind))]


def at(queue: str = QUEUE, epoch: int = 1) -> dict[str, Any]:
    return {"domain": DOMAIN, "queue": queue, "epoch": epoch}


def of_group(group: str = GROUP, queue: str = QUEUE) -> dict[str, Any]:
    return {**at(queue), "group": group}


def message(message_id: str) -> bytes:
    return encode_message(message_id, b"{}", b'{"n":1}')


def positions(deliveries: list[Delivery]) -> list[int]:
    return [pos for pos, _, _ in deliveries]


@pytest.fixture
def shard() -> Shard:
    """A shard with domain shop (epoch 1) and its queue orders (persistent)."""
    shard = Shard()
    shard.do(DomainCreate(name=DOMAIN))
    shard.queue()
    shard.announced.clear()
    return shard


# --- the contract: every operation is handled ------------------------------------------------


def test_every_operation_has_a_handler_unless_the_server_handles_it_itself() -> None:
    operations = set(typing.get_args(AnyRequest))
    assert set(HANDLERS) <= operations  # no handler for an operation the wire cannot carry
    assert operations - set(HANDLERS) == {Fetch, Cancel}  # these two park or unpark fetches


def _sample(kind: type[Request]) -> Request:
    """One valid request of each handled operation, for the shard of the walk below."""
    group = of_group()
    samples: dict[type[Request], Request] = {
        Ping: Ping(), ShardInfoGet: ShardInfoGet(), DomainCreate: DomainCreate(name="other"),
        DomainGet: DomainGet(name=DOMAIN), DomainList: DomainList(),
        DomainDelete: DomainDelete(name=DOMAIN), DomainDrop: DomainDrop(domain=DOMAIN, epoch=1),
        DomainStatsGet: DomainStatsGet(epochs={DOMAIN: 1}),
        GroupListAll: GroupListAll(epochs={DOMAIN: 1}), QueueList: QueueList(domain=DOMAIN,
                                                                             epoch=1),
        QueueCreate: QueueCreate(**at("other")), QueueGet: QueueGet(**at()),
        QueueDelete: QueueDelete(**at()), Publish: Publish(**at(), records=[message("x")]),
        GroupCreate: GroupCreate(**at(), spec=GroupSpec(group_id="h")),
        GroupList: GroupList(**at()), GroupGet: GroupGet(**group),
        GroupDelete: GroupDelete(**group), GroupSeek: GroupSeek(**group, position=1),
        GroupTtl: GroupTtl(**group, ttl=Duration(60.0)),
        ConsumerAdd: ConsumerAdd(**group, consumer="c2"),
        ConsumerRemove: ConsumerRemove(**group, consumer="c1"),
        Ack: Ack(**group, ids=["m1"]), Nack: Nack(**group, ids=["m1"]),
        PendingGet: PendingGet(**group), Extend: Extend(**group, ids=["m1"]),
        Redrive: Redrive(**at()), Settle: Settle(**group, ack=["m1"], nack=["m2"]),
        Release: Release(**group, positions=[1]), Watch: Watch(**at(), token=7),
        Browse: Browse(**at(), from_position=1),
        RecordsRead: RecordsRead(collection="users"),
        RecordsWrite: RecordsWrite(writes=[RecordWrite("users", "u1", b"{}")]),
        ReplayCheck: ReplayCheck(digest=b"d", signed_ms=T0, until_ms=T0 + 1000),
        StatsGet: StatsGet(period_s=3600, granularity_s=300), ResourcesGet: ResourcesGet(limit=5),
        MetricsGet: MetricsGet(), Report: Report(sample=Sampler("gateway", 0).sample()),
        LogLevelSet: LogLevelSet(level="warn"),  # pytest's root level: changes nothing
    }
    return samples[kind]


@pytest.mark.parametrize("kind", list(HANDLERS), ids=lambda kind: kind.__name__)
def test_every_handler_answers_with_its_operations_reply_type(shard: Shard,
                                                               kind: type[Request]) -> None:
    shard.group()
    shard.publish(2)
    shard.fetch()
    shard.commit()
    reply = shard.call(_sample(kind))
    assert type(reply) is kind.reply
    shard.commit()


# --- liveness and inspection --------------------------------------------------------------------


def test_ping_answers_with_the_shard_index_and_pid() -> None:
    shard = Shard()
    shard.state.index = 3
    pong = shard.call(Ping())
    assert (pong.shard, pong.pid) == (3, os.getpid())
    assert shard.commit() == []


def test_shard_info_counts_domains_queues_groups_and_messages(shard: Shard) -> None:
    shard.queue("second")
    shard.group()
    shard.group("h", queue="second")
    shard.publish(3)
    info = shard.call(ShardInfoGet())
    assert (info.shard, info.domains, info.queues, info.groups, info.messages) == (0, 1, 2, 2, 3)
    assert info.state == "serving" and info.pid == os.getpid()


def test_log_level_set_applies_the_level_and_only_the_catalog_shard_announces_it() -> None:
    root = logging.getLogger()
    before = root.level
    try:
        catalog, other = Shard(), Shard()
        other.state.index = 1
        assert catalog.call(LogLevelSet(level="debug")) == LogLevel(shard=0, level="debug")
        assert root.level == logging.DEBUG
        assert catalog.commit() == []  # nothing to write
        assert catalog.announced == [CatalogEvent(kind="log_level", domain="", level="debug")]
        assert other.do(LogLevelSet(level="error")) == LogLevel(shard=1, level="error")
        assert root.level == logging.ERROR and other.announced == []
    finally:
        root.setLevel(before)


# --- the catalog ------------------------------------------------------------------------------


def test_domain_create_stores_the_record_durably_and_announces_it() -> None:
    shard = Shard()
    schema = {"fields": {"amount": "number"}}
    record = shard.call(DomainCreate(name=DOMAIN, schema=schema))
    assert record == DomainRecord(name=DOMAIN, schema=schema, epoch=1, created_at=T0)
    assert shard.store.get(domain_key(DOMAIN)) is None  # not before the commit
    assert shard.commit() == [("fsync", "DS")]
    stored = shard.store.get(domain_key(DOMAIN))
    assert msgspec.json.decode(stored, type=DomainRecord) == record
    assert shard.announced == [CatalogEvent(kind="domain", domain=DOMAIN)]


def test_domain_epochs_are_never_reused_even_after_a_delete() -> None:
    shard = Shard()
    first = shard.do(DomainCreate(name=DOMAIN))
    shard.do(DomainDelete(name=DOMAIN))
    again = shard.do(DomainCreate(name=DOMAIN))
    other = shard.do(DomainCreate(name="other"))
    assert (first.epoch, again.epoch, other.epoch) == (1, 2, 3)
    assert shard.store.get(counter_key("next_epoch")) == (4).to_bytes(8, "big")


def test_domain_delete_removes_the_record_durably_and_announces_it(shard: Shard) -> None:
    deleted = shard.call(DomainDelete(name=DOMAIN))
    assert deleted.name == DOMAIN and DOMAIN not in shard.state.domains
    assert shard.commit() == [("fsync", "D")]
    assert shard.store.get(domain_key(DOMAIN)) is None
    assert shard.announced == [CatalogEvent(kind="domain", domain=DOMAIN, deleted=True)]


def test_domain_get_and_list_answer_from_the_catalog_in_name_order(shard: Shard) -> None:
    shard.do(DomainCreate(name="alpha"))
    assert shard.call(DomainGet(name="alpha")).epoch == 2
    assert [d.name for d in shard.call(DomainList()).domains] == ["alpha", DOMAIN]


# --- errors -------------------------------------------------------------------------------------


def _failing_requests() -> list[tuple[str, Request, type[GortmsError]]]:
    group = of_group()
    return [
        ("domain exists", DomainCreate(name=DOMAIN), DomainExists),
        ("schema not an object", DomainCreate(name="x", schema=[1]), InvalidParameter),
        ("schema field type", DomainCreate(name="x", schema={"fields": {"a": "money"}}),
         InvalidParameter),
        ("domain get", DomainGet(name="missing"), DomainNotFound),
        ("domain delete", DomainDelete(name="missing"), DomainNotFound),
        ("queue exists", QueueCreate(**at()), QueueExists),
        ("queue exists newer", QueueCreate(**at(epoch=0)), QueueExists),
        ("queue get", QueueGet(**at("missing")), QueueNotFound),
        ("queue delete", QueueDelete(**at("missing")), QueueNotFound),
        ("queue of another epoch", QueueGet(**at(epoch=0)), QueueNotFound),
        ("publish", Publish(**at("missing"), records=[message("x")]), QueueNotFound),
        ("group list", GroupList(**at("missing")), QueueNotFound),
        ("group exists", GroupCreate(**at(), spec=GroupSpec(group_id=GROUP,
                                                            ack_mode=AckMode.AUTO)), GroupExists),
        ("group get", GroupGet(**of_group("missing")), GroupNotFound),
        ("group delete", GroupDelete(**of_group("missing")), GroupNotFound),
        ("group seek", GroupSeek(**of_group("missing"), position=1), GroupNotFound),
        ("seek position", GroupSeek(**group, position="soon"), InvalidParameter),
        ("seek timestamp", GroupSeek(**group, timestamp="yesterday"), InvalidParameter),
        ("group ttl", GroupTtl(**of_group("missing"), ttl=Duration(1.0)), GroupNotFound),
        ("consumer add", ConsumerAdd(**of_group("missing"), consumer="c"), GroupNotFound),
        ("consumer remove", ConsumerRemove(**group, consumer="nobody"), ConsumerNotFound),
        ("ack", Ack(**of_group("missing"), ids=["m1"]), GroupNotFound),
        ("nack", Nack(**of_group("missing"), ids=["m1"]), GroupNotFound),
        ("pending", PendingGet(**of_group("missing")), GroupNotFound),
    ]


@pytest.mark.parametrize("request_, error", [(r, e) for _, r, e in _failing_requests()],
                         ids=[name for name, _, _ in _failing_requests()])
def test_a_failing_request_raises_its_error_and_stages_nothing(
        shard: Shard, request_: Request, error: type[GortmsError]) -> None:
    shard.group()
    shard.publish(2)
    shard.fetch()
    shard.commit()
    before = (shard.state.next_epoch, shard.state.next_qid, sorted(shard.state.domains),
              shard.call(QueueGet(**at())), shard.call(GroupGet(**of_group())))
    with pytest.raises(error) as caught:
        shard.call(request_)
    assert caught.value.code == error.code and type(caught.value) is error
    assert not shard.state.turn  # nothing that the next commit would write
    assert shard.state.catalog_events == []
    assert (shard.state.next_epoch, shard.state.next_qid, sorted(shard.state.domains),
            shard.call(QueueGet(**at())), shard.call(GroupGet(**of_group()))) == before


def test_a_publish_with_an_unreadable_record_is_refused_before_anything_is_staged(
        shard: Shard) -> None:
    unreadable = b"\x00\x02\xff\xfe" + b'"id":"?","headers":{},"payload":1}'
    with pytest.raises(GortmsError):
        shard.call(Publish(**at(), records=[message("good"), unreadable], key="k"))
    assert not shard.state.turn
    assert shard.state.queues[(DOMAIN, QUEUE)].last == 0


# --- epochs: a queue belongs to one incarnation of its domain -----------------------------------


def test_a_request_of_a_newer_epoch_drops_the_older_incarnations_queue_durably(
        shard: Shard) -> None:
    shard.group()
    shard.publish(3)
    with pytest.raises(QueueNotFound):
        shard.call(QueueGet(**at(epoch=2)))
    assert (DOMAIN, QUEUE) not in shard.state.queues
    assert shard.commit() == [("fsync", "AEGIKLMNQRT")]
    assert [shard.keys(kind) for kind in (b"Q", b"N", b"L", b"M", b"G", b"K")] == [[]] * 6
    assert shard.announced == [
        CatalogEvent(kind="queue", domain=DOMAIN, queue=QUEUE, deleted=True)]


def test_a_request_of_an_older_epoch_neither_sees_nor_touches_a_newer_queue() -> None:
    shard = Shard()
    shard.queue(epoch=5)
    with pytest.raises(QueueNotFound):
        shard.call(Publish(**at(epoch=4), records=[message("x")]))
    assert not shard.state.turn
    assert shard.state.queues[(DOMAIN, QUEUE)].epoch == 5


def test_queue_create_of_a_newer_epoch_replaces_the_stale_queue_with_a_fresh_one(
        shard: Shard) -> None:
    shard.group()
    shard.publish(3)
    old_qid = shard.state.queues[(DOMAIN, QUEUE)].qid
    info = shard.do(QueueCreate(**at(epoch=2)))
    fresh = shard.state.queues[(DOMAIN, QUEUE)]
    assert (fresh.epoch, info.message_count, info.last_position, info.groups) == (2, 0, 0, 0)
    assert fresh.qid != old_qid  # so no key of the old queue can be read as the new one's
    assert shard.keys(message_prefix(old_qid)) == []
    assert shard.keys(b"Q") == [queue_key(fresh.qid)]


def test_domain_drop_deletes_this_shards_queues_of_that_epoch_and_older_only() -> None:
    shard = Shard()
    shard.queue("old", epoch=1)
    shard.queue("same", epoch=2)
    shard.queue("newer", epoch=3)
    shard.do(QueueCreate(domain="other", queue="kept", epoch=1))
    dropped = shard.call(DomainDrop(domain=DOMAIN, epoch=2))
    assert dropped.dropped == 2
    assert shard.commit()[0][0] == "fsync"
    assert sorted(shard.state.queues) == [("other", "kept"), (DOMAIN, "newer")]
    assert len(shard.keys(b"Q")) == 2


def test_domain_stats_count_only_queues_of_the_epochs_asked_for() -> None:
    shard = Shard()
    shard.queue("a", epoch=2)
    shard.queue("b", epoch=2)
    shard.queue("stale", epoch=1)
    shard.do(QueueCreate(domain="unasked", queue="q", epoch=1))
    shard.publish(3, queue="a", epoch=2)
    shard.publish(1, queue="stale", epoch=1)
    stats = shard.call(DomainStatsGet(epochs={DOMAIN: 2, "absent": 1})).domains
    assert list(stats) == [DOMAIN]
    counts = stats[DOMAIN]
    assert (counts.queue_count, counts.message_count) == (2, 3)
    assert counts.bytes == shard.state.queues[(DOMAIN, "a")].bytes > 0
    assert shard.commit() == []


def test_group_list_all_lists_only_groups_of_queues_of_the_epochs_asked_for() -> None:
    shard = Shard()
    shard.queue("b", epoch=2)
    shard.queue("a", epoch=2)
    shard.queue("stale", epoch=1)
    for queue, epoch, group in (("b", 2, "g2"), ("a", 2, "g1"), ("a", 2, "g0"),
                                ("stale", 1, "old")):
        shard.do(GroupCreate(**at(queue, epoch), spec=GroupSpec(group_id=group)))
    groups = shard.call(GroupListAll(epochs={DOMAIN: 2})).groups
    assert [(g.queue, g.group_id) for g in groups] == [("a", "g0"), ("a", "g1"), ("b", "g2")]
    assert shard.call(GroupListAll(epochs={})).groups == []


def test_queue_list_lists_one_incarnations_queues_in_name_order() -> None:
    shard = Shard()
    for name, epoch in (("zeta", 2), ("alpha", 2), ("stale", 1)):
        shard.queue(name, epoch=epoch)
    assert [q.name for q in shard.call(QueueList(domain=DOMAIN, epoch=2)).queues] == [
        "alpha", "zeta"]


# --- queues -------------------------------------------------------------------------------------


def test_queue_create_writes_record_name_index_counters_and_next_id_in_one_fsync() -> None:
    shard = Shard()
    info = shard.call(QueueCreate(**at(), config=QueueConfig(max_size=5)))
    assert (info.name, info.domain, info.config.max_size) == (QUEUE, DOMAIN, 5)
    assert (info.first_position, info.last_position, info.message_count) == (1, 0, 0)
    assert shard.commit() == [("fsync", "LNQS")]
    qid = shard.state.queues[(DOMAIN, QUEUE)].qid
    assert shard.store.get(name_key(DOMAIN, QUEUE)) == qid.to_bytes(4, "big")
    assert shard.store.get(counter_key("next_qid")) == (qid + 1).to_bytes(8, "big")
    assert shard.announced == [CatalogEvent(kind="queue", domain=DOMAIN, queue=QUEUE)]


def test_queue_ids_are_never_reused(shard: Shard) -> None:
    first = shard.state.queues[(DOMAIN, QUEUE)].qid
    shard.do(QueueDelete(**at()))
    shard.queue()
    assert shard.state.queues[(DOMAIN, QUEUE)].qid == first + 1


def test_queue_delete_removes_every_key_of_the_queue_and_its_groups_durably(
        shard: Shard) -> None:
    shard.group()
    shard.publish(3, key="k")
    shard.fetch()
    shard.commit()
    assert shard.call(QueueDelete(**at())).deleted == QUEUE
    assert shard.commit()[0][0] == "fsync"
    remaining = [key for key, _ in shard.store.scan(b"\x00", b"\xff")]
    assert remaining == [domain_key(DOMAIN), counter_key("next_epoch"),
                         counter_key("next_qid")]
    assert (DOMAIN, QUEUE) not in shard.state.queues


def test_a_queue_published_to_and_deleted_in_one_turn_leaves_no_keys(shard: Shard) -> None:
    shard.call(Publish(**at(), records=[message("m1")]))
    shard.call(QueueDelete(**at()))
    shard.commit()  # the queue's counters must not be written back after its delete
    assert [shard.keys(kind) for kind in (b"L", b"M", b"Q")] == [[], [], []]


def test_a_non_persistent_queue_published_to_and_deleted_in_one_turn_leaves_no_messages(
        shard: Shard) -> None:
    shard.queue("loose", is_persistent=False)
    shard.call(Publish(**at("loose"), records=[message("m1")]))
    shard.call(QueueDelete(**at("loose")))
    shard.commit()
    assert shard.keys(b"M") == []


# --- publishing and its durability ------------------------------------------------------------


def test_publish_assigns_consecutive_positions_stored_only_at_the_commit(shard: Shard) -> None:
    first = shard.call(Publish(**at(), records=[message("a"), message("b")]))
    second = shard.call(Publish(**at(), records=[message("c")]))
    assert (first, second) == (Published(first_position=1, count=2),
                               Published(first_position=3, count=1))
    assert shard.keys(b"M") == []  # staged in the turn, not yet on disk
    assert shard.state.queues[(DOMAIN, QUEUE)] in shard.state.published  # wakes parked fetches
    shard.commit()
    prefix = message_prefix(shard.state.queues[(DOMAIN, QUEUE)].qid)
    # One chunk from position 1: a turn's records for a queue are one key (shard/chunks.py).
    assert shard.keys(b"M") == [prefix + pos_bytes(1)]
    stored = chunks.decode(shard.store.get(prefix + pos_bytes(1)))
    assert [record_id(r) for r in stored] == ["a", "b", "c"]
    assert int.from_bytes(stored[0][:8], "big") == T0  # stamped with the turn's time


def test_a_publish_to_a_persistent_queue_is_fsynced_with_its_counters(shard: Shard) -> None:
    assert shard.writes_of(Publish(**at(), records=[message("m1")])) == [("fsync", "LM")]


def test_a_publish_to_a_non_persistent_queue_skips_the_wal_and_the_fsync(shard: Shard) -> None:
    shard.queue("loose", is_persistent=False)
    written = shard.writes_of(Publish(**at("loose"), records=[message("m1")]))
    assert written == [("nowal", "M"), ("wal", "L")]


def test_storage_sync_off_writes_even_persistent_publishes_without_fsync() -> None:
    shard = Shard(Limits(sync=False))
    shard.queue()
    assert shard.writes_of(Publish(**at(), records=[message("m1")])) == [("wal", "LM")]
    assert shard.store.synced_writes == 0


def test_many_publishes_in_one_turn_share_one_fsynced_batch(shard: Shard) -> None:
    synced_before = shard.store.synced_writes
    for i in range(50):
        shard.call(Publish(**at(), records=[message(f"m{i}")]))
    assert shard.commit() == [("fsync", "LM")]
    assert shard.store.synced_writes == synced_before + 1
    assert shard.store.get(counters_key(shard.state.queues[(DOMAIN, QUEUE)].qid)) is not None


# --- Idempotency-Key ----------------------------------------------------------------------------


def _published(reply: Any) -> Published:
    return msgspec.msgpack.decode(reply, type=Published) if type(reply) is bytes else reply


def test_a_repeated_idempotency_key_answers_the_original_and_stores_nothing(
        shard: Shard) -> None:
    first = shard.call(Publish(**at(), records=[message("a"), message("b")], key="k1"))
    assert first == Published(first_position=1, count=2, message_ids=["a", "b"])
    assert shard.commit() == [("fsync", "ILM")]  # the key is durable with its publish
    shard.state.now_ms += 60_000
    repeat = shard.call(Publish(**at(), records=[message("other")], key="k1"))
    assert _published(repeat) == Published(first_position=1, count=2, message_ids=["a", "b"],
                                           duplicate=True)
    assert shard.commit() == []
    assert shard.state.queues[(DOMAIN, QUEUE)].last == 2


def test_a_repeat_in_the_same_turn_is_answered_with_the_original(shard: Shard) -> None:
    shard.call(Publish(**at(), records=[message("a")], key="k1"))
    repeat = shard.call(Publish(**at(), records=[message("a")], key="k1"))
    assert _published(repeat).duplicate and _published(repeat).first_position == 1
    shard.commit()
    assert len(shard.keys(b"M")) == 1


def test_an_idempotency_key_is_forgotten_after_the_dedup_window() -> None:
    shard = Shard(Limits(dedup_window_ms=1_000))
    shard.queue()
    shard.publish(1, key="k1")
    shard.state.now_ms += 999
    assert _published(shard.publish(1, key="k1")).duplicate
    shard.state.now_ms += 1
    again = shard.publish(1, key="k1")
    assert again == Published(first_position=2, count=1, message_ids=["m2"])


def test_idempotency_keys_are_remembered_per_queue(shard: Shard) -> None:
    shard.queue("second")
    shard.publish(1, key="k1")
    other = shard.publish(1, queue="second", key="k1")
    assert not _published(other).duplicate
    qids = [shard.state.queues[(DOMAIN, q)].qid for q in (QUEUE, "second")]
    assert [len(shard.keys(dedup_prefix(qid))) for qid in qids] == [1, 1]


# --- fetching (the server's own operation, through the same turn) ------------------------------


def test_a_fetch_moves_the_position_with_a_lazy_write_and_no_fsync(shard: Shard) -> None:
    shard.group()
    shard.publish(3)
    assert positions(shard.fetch(count=2)) == [1, 2]
    assert shard.commit() == [("wal", "EK")]  # the lease; after a crash these are delivered again
    qid = shard.state.queues[(DOMAIN, QUEUE)].qid
    position, floor, *_ = msgspec.json.decode(shard.store.get(cursor_key(qid, GROUP)))
    assert (position, floor) == (3, 1)


def test_a_redelivery_records_its_delivery_count_without_fsync(shard: Shard) -> None:
    shard.group()
    shard.publish(1)
    shard.fetch()
    shard.do(Nack(**of_group(), ids=["m1"]))
    [(pos, count, _)] = shard.fetch()
    assert (pos, count) == (1, 2)
    assert shard.commit() == [("wal", "EKR")]
    qid = shard.state.queues[(DOMAIN, QUEUE)].qid
    assert shard.store.get(redelivery_prefix(qid, GROUP) + pos_bytes(1)) == (2).to_bytes(4, "big")


# --- consumer groups ----------------------------------------------------------------------------


def _publish_over_time(shard: Shard) -> None:
    """m1 at T0, m2 at T0 + 1 s, m3 at T0 + 2 s."""
    for i in range(3):
        shard.state.now_ms = T0 + 1000 * i
        shard.publish(1)


@pytest.mark.parametrize("start, expected", [
    ("earliest", 1), ("latest", 4), (2, 2), (format_ts(T0 + 1000), 2),
    (format_ts(T0 + 1500), 3), (format_ts(T0 + 5000), 4)])
def test_a_group_starts_where_its_spec_says(shard: Shard, start: str | int,
                                            expected: int) -> None:
    _publish_over_time(shard)
    created = shard.call(GroupCreate(**at(), spec=GroupSpec(group_id=GROUP, start=start)))
    assert created.created and created.group.position == expected
    assert shard.commit() == [("fsync", "GK")]


def test_group_create_with_the_same_settings_answers_created_false_and_writes_nothing(
        shard: Shard) -> None:
    shard.group(ttl=Duration(60.0))
    again = shard.call(GroupCreate(**at(), spec=GroupSpec(group_id=GROUP, ttl=Duration(60.0))))
    assert again.created is False and again.group.group_id == GROUP
    assert shard.commit() == []


def test_group_get_and_list_report_the_queues_groups_in_name_order(shard: Shard) -> None:
    shard.group("zeta")
    shard.group("alpha", ack_mode=AckMode.AUTO)
    assert shard.call(GroupGet(**of_group("alpha"))).ack_mode is AckMode.AUTO
    assert [g.group_id for g in shard.call(GroupList(**at())).groups] == ["alpha", "zeta"]


def test_group_delete_removes_record_cursor_and_delivery_counts_durably(shard: Shard) -> None:
    shard.group()
    shard.publish(1)
    shard.fetch()
    shard.do(Nack(**of_group(), ids=["m1"]))
    shard.fetch()
    shard.commit()
    assert shard.call(GroupDelete(**of_group())).deleted == GROUP
    assert shard.commit() == [("fsync", "AEGKR")]
    assert [shard.keys(kind) for kind in (b"G", b"K", b"R")] == [[], [], []]
    assert GROUP not in shard.state.queues[(DOMAIN, QUEUE)].groups


def test_a_group_acked_and_deleted_in_one_turn_leaves_no_cursor(shard: Shard) -> None:
    shard.group()
    shard.publish(1)
    shard.fetch()
    shard.commit()
    shard.call(Ack(**of_group(), ids=["m1"]))
    shard.call(GroupDelete(**of_group()))
    shard.commit()  # the deleted group's cursor must not be written back
    assert shard.keys(b"K") == []


@pytest.mark.parametrize("seek, expected", [
    ({"position": 2}, 2), ({"position": "earliest"}, 1), ({"position": "latest"}, 4),
    ({"timestamp": format_ts(T0 + 1000)}, 2)])
def test_group_seek_replays_from_the_target_forgetting_pending_durably(
        shard: Shard, seek: dict[str, Any], expected: int) -> None:
    _publish_over_time(shard)
    shard.group()
    shard.fetch()
    shard.commit()
    shard.state.now_ms = T0 + 10_000
    info = shard.call(GroupSeek(**of_group(), **seek))
    assert (info.position, info.pending, info.ack_floor) == (expected, 0, expected)
    assert info.last_activity == format_ts(T0 + 10_000)
    assert shard.commit() == [("fsync", "AEKR")]  # cursor; acks, delivery counts, leases cleared
    assert positions(shard.fetch()) == list(range(expected, 4))


def test_group_ttl_changes_the_stored_settings_durably(shard: Shard) -> None:
    shard.group()
    info = shard.call(GroupTtl(**of_group(), ttl=Duration(3600.0)))
    assert info.ttl == 3600.0
    assert shard.commit() == [("fsync", "GK")]
    qid = shard.state.queues[(DOMAIN, QUEUE)].qid
    assert msgspec.json.decode(shard.store.get(group_key(qid, GROUP)))["ttlSeconds"] == 3600.0


def test_consumer_add_registers_a_consumer_durably_once(shard: Shard) -> None:
    shard.group()
    added = shard.call(ConsumerAdd(**of_group(), consumer="c1"))
    assert added.created and [c.id for c in added.group.consumers] == ["c1"]
    assert shard.commit() == [("fsync", "GK")]
    again = shard.call(ConsumerAdd(**of_group(), consumer="c1"))
    assert again.created is False
    assert shard.commit() == []


def test_removing_a_registered_consumer_is_durable_and_frees_its_messages(
        shard: Shard) -> None:
    shard.group()
    shard.do(ConsumerAdd(**of_group(), consumer="c1"))
    shard.publish(2)
    shard.fetch("c1")
    shard.commit()
    info = shard.call(ConsumerRemove(**of_group(), consumer="c1"))
    assert info.consumers == [] and info.pending == 2
    assert shard.commit() == [("fsync", "EGKR")]
    assert [(pos, count) for pos, count, _ in shard.fetch("c2")] == [(1, 2), (2, 2)]


def test_removing_a_consumer_only_seen_frees_its_messages_with_lazy_writes_only(
        shard: Shard) -> None:
    shard.group()
    shard.publish(1)
    shard.fetch("c1")
    shard.commit()
    assert shard.call(ConsumerRemove(**of_group(), consumer="c1")).consumers == []
    assert shard.commit() == [("wal", "ER")]  # lease gone, retry marker: lazy
    assert positions(shard.fetch("c2")) == [1]


def test_an_ack_on_a_persistent_queue_is_fsynced_before_its_reply(shard: Shard) -> None:
    shard.group()
    shard.publish(3)
    shard.fetch()
    shard.commit()
    acked = shard.call(Ack(**of_group(), ids=["m1", "m3"], positions=[2]))
    assert acked == Acked(acked=3, unknown=[])
    assert shard.commit() == [("fsync", "EK")]
    assert shard.call(GroupGet(**of_group())).ack_floor == 4


def test_an_ack_on_a_non_persistent_queue_is_lazy(shard: Shard) -> None:
    shard.queue("loose", is_persistent=False)
    shard.group(queue="loose")
    shard.publish(1, queue="loose")
    shard.fetch(queue="loose")
    shard.commit()
    shard.call(Ack(**of_group(queue="loose"), ids=["m1"]))
    assert shard.commit() == [("wal", "EK")]


def test_an_ack_of_nothing_pending_reports_it_unknown_and_writes_nothing(shard: Shard) -> None:
    shard.group()
    shard.publish(1)
    acked = shard.call(Ack(**of_group(), ids=["m1", "nope"], positions=[9]))
    assert acked == Acked(acked=0, unknown=["m1", "nope", 9])  # m1 was never delivered
    assert shard.commit() == []


def test_a_nack_is_lazy_and_makes_the_message_due_again(shard: Shard) -> None:
    shard.group()
    shard.publish(2)
    shard.fetch()
    shard.commit()
    nacked = shard.call(Nack(**of_group(), ids=["m2", "nope"]))
    assert (nacked.nacked, nacked.unknown) == (1, ["nope"])
    assert shard.commit() == [("wal", "KR")]  # the retry record says it is no longer leased
    assert [(pos, count) for pos, count, _ in shard.fetch()] == [(2, 2)]


def test_a_fetch_of_a_retry_and_new_messages_leases_them_in_one_record(shard: Shard) -> None:
    shard.group()
    shard.publish(2)
    shard.fetch(count=1)
    shard.do(Nack(**of_group(), ids=["m1"], delay_ms=0))
    shard.publish(1)
    before = set(shard.keys(b"E"))
    assert [(pos, count) for pos, count, _ in shard.fetch(count=3)] == [(1, 2), (2, 1), (3, 1)]
    shard.commit()
    [record] = set(shard.keys(b"E")) - before
    _, consumer, positions = decode_lease(shard.store.get(record))
    assert (consumer, sorted(positions)) == ("c1", [1, 2, 3])


def test_a_delayed_nack_puts_the_group_under_the_timer(shard: Shard) -> None:
    shard.group()
    shard.publish(1)
    shard.fetch()
    shard.do(Nack(**of_group(), ids=["m1"], delay_ms=5_000, reason="later"))
    group = shard.state.queues[(DOMAIN, QUEUE)].groups[GROUP]
    assert group in shard.state.timed_groups
    [entry] = shard.call(PendingGet(**of_group())).messages
    assert (entry.state, entry.deadline, entry.last_nack_reason) == (
        "delayed", format_ts(T0 + 5_000), "later")


def test_a_retry_goes_to_the_first_fetch_after_its_delay_without_waiting_for_the_timer(
        shard: Shard) -> None:
    shard.group()
    shard.publish(1)
    shard.fetch()
    shard.do(Nack(**of_group(), ids=["m1"], delay_ms=5_000))
    shard.state.now_ms = T0 + 4_999
    assert shard.fetch("c2") == []  # not yet
    shard.state.now_ms = T0 + 5_000  # due, and no timer tick has run
    [(pos, count, _)] = shard.fetch("c2")
    assert (pos, count) == (1, 2)


def test_pending_lists_deliveries_with_their_consumer_and_count(shard: Shard) -> None:
    shard.group()
    shard.publish(3)
    shard.fetch("c1", count=2)
    shard.fetch("c2", count=1)
    listed = shard.call(PendingGet(**of_group(), limit=2))
    assert (listed.group_id, listed.count) == (GROUP, 3)
    assert [(e.id, e.position, e.consumer, e.delivery_count) for e in listed.messages] == [
        ("m1", 1, "c1", 1), ("m2", 2, "c1", 1)]


_READS: list[Callable[[], Request]] = [
    Ping, ShardInfoGet, DomainList, lambda: DomainGet(name=DOMAIN),
    lambda: DomainStatsGet(epochs={DOMAIN: 1}), lambda: GroupListAll(epochs={DOMAIN: 1}),
    lambda: QueueList(domain=DOMAIN, epoch=1), lambda: QueueGet(**at()),
    lambda: GroupList(**at()), lambda: GroupGet(**of_group()),
    lambda: PendingGet(**of_group()),
]


@pytest.mark.parametrize("read", _READS, ids=lambda read: type(read()).__name__)
def test_a_read_writes_nothing(shard: Shard, read: Callable[[], Request]) -> None:
    shard.group()
    shard.publish(1)
    shard.fetch()
    shard.commit()
    assert shard.writes_of(read()) == []


# --- live observation ---------------------------------------------------------------------------


def test_a_publish_stages_a_live_event_only_for_a_watched_queue(shard: Shard) -> None:
    shard.publish(2)
    assert shard.state.live_events == []  # nobody watches: nothing built, nothing sent
    shard.state.watched.add((DOMAIN, QUEUE))
    shard.publish(3)
    [event] = shard.state.live_events
    assert (event.domain, event.queue, event.first, event.ts_ms) == (DOMAIN, QUEUE, 3, T0)
    assert [record_id(ts_bytes(T0) + r) for r in event.records] == ["m3", "m4", "m5"]


def test_watch_answers_the_next_position_and_stages_its_hello(shard: Shard) -> None:
    shard.publish(4)
    reply = shard.call(Watch(**at(), token=77))
    assert reply.next_position == 5
    assert shard.state.live_events == [LiveHello(domain=DOMAIN, queue=QUEUE, token=77,
                                                 next_position=5)]
    with pytest.raises(QueueNotFound):
        shard.call(Watch(**at("nope"), token=1))


def test_browse_reads_committed_records_from_a_position_skipping_holes(shard: Shard) -> None:
    shard.publish(5)
    reply = shard.call(Browse(**at(), from_position=2, max=3))
    assert reply.positions == [2, 3, 4] and reply.next_position == 5
    assert [record_id(r) for r in reply.records] == ["m2", "m3", "m4"]
    assert shard.call(Browse(**at(), from_position=6)).positions == []
    shard.call(Publish(**at(), records=[message("late")]))  # not committed yet: not read
    assert shard.call(Browse(**at(), from_position=1, max=100)).next_position == 6


def test_release_makes_in_flight_deliveries_due_at_once_without_a_failure(shard: Shard
                                                                          ) -> None:
    shard.queue("r", retry_enabled=True)
    shard.group(queue="r")
    shard.publish(3, queue="r")
    shard.fetch(count=3, queue="r")
    reply = shard.do(Release(**of_group(queue="r"), positions=[1, 3, 99]))
    assert reply.released == 2
    again = shard.fetch(consumer="c2", count=10, queue="r")
    assert [(pos, count) for pos, count, _ in again] == [(1, 2), (3, 2)]


# --- records and replays -------------------------------------------------------------------------


def test_a_records_write_applies_all_or_nothing_and_announces_each_change(shard: Shard) -> None:
    first = RecordsWrite(writes=[RecordWrite("users", "u1", b"alice"),
                                 RecordWrite("usernames", "alice", b"u1")],
                         conditions=[RecordCondition("users", None, False)],
                         conflict="a user exists already")
    assert shard.call(first).written == 2
    assert shard.commit() == [("fsync", "Y")]  # one durable batch
    with pytest.raises(Conflict, match="a user exists already"):
        shard.call(first)  # the collection is no longer empty
    taken = RecordsWrite(writes=[RecordWrite("users", "u2", b"bob")],
                         conditions=[RecordCondition("usernames", "alice", False)])
    with pytest.raises(Conflict):
        shard.call(taken)
    assert shard.call(RecordsRead(collection="users")).items == {"u1": b"alice"}
    shard.call(RecordsWrite(writes=[RecordWrite("users", "u1", None)]))
    shard.commit()
    assert shard.call(RecordsRead(collection="users", keys=["u1", "u9"])).items == {}
    assert [(e.kind, e.domain, e.queue, e.deleted) for e in shard.announced] == [
        ("records", "users", "u1", False), ("records", "usernames", "alice", False),
        ("records", "users", "u1", True)]
    reloaded = Shard()
    reloaded.store = shard.store
    reloaded.state = ShardState(0, shard.store, Limits())  # type: ignore[arg-type]
    loader.load(reloaded.state)
    assert reloaded.state.records.read("usernames", []) == {"alice": b"u1"}


def test_a_signature_is_accepted_once_and_never_if_signed_before_the_shard_started(
        shard: Shard) -> None:
    check = ReplayCheck(digest=b"sig", signed_ms=T0, until_ms=T0 + 300_000)
    shard.call(check)
    with pytest.raises(Unauthorized, match="used already"):
        shard.call(check)
    with pytest.raises(Unauthorized, match="before this shard started"):
        shard.call(ReplayCheck(digest=b"old", signed_ms=T0 - 100_000, until_ms=T0 + 1))
    shard.state.now_ms = T0 + 300_001  # past the window: forgotten, and expired anyway
    shard.call(ReplayCheck(digest=b"new", signed_ms=T0 + 300_000, until_ms=T0 + 600_000))
    assert b"sig" not in shard.state.replays.seen
