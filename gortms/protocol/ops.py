"""Every gateway -> shard operation as a declared type: its request, and the type of its reply.

A request is a tagged msgspec Struct (the tag, in field "op", is the operation's wire name);
`Request.reply` names the Struct its answer decodes into. Both sides decode and check a body
once, in one C pass: a body that does not fit its type is a ProtocolError, never a KeyError.
Reply Structs that an HTTP client sees use the API's camelCase names, so the gateway encodes
them to JSON as they are.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal, Union

from msgspec import Meta, Struct

from gortms.checks import Duration, Name, Position
from gortms.models import AckMode, GroupSpec, QueueConfig

__all__ = [
    "MAX_FETCH", "MAX_REASON", "Reply", "Pong", "ShardInfo", "DomainRecord", "Domains", "Dropped",
    "DomainCounts", "DomainStats", "QueueInfo", "Queues", "Deleted", "Published", "Consumer",
    "GroupInfo", "GroupCreated", "Groups", "Deliveries", "Acked", "Nacked", "PendingEntry",
    "PendingList", "NoReply", "Request", "Ping", "ShardInfoGet", "DomainCreate", "DomainGet",
    "DomainList", "DomainDelete", "DomainDrop", "DomainStatsGet", "GroupListAll", "QueueList",
    "QueueRequest", "QueueCreate", "QueueGet", "QueueDelete", "Publish", "GroupCreate",
    "GroupList", "GroupRequest", "GroupGet", "GroupDelete", "GroupSeek", "GroupTtl", "ConsumerAdd",
    "ConsumerRemove", "Fetch", "Cancel", "Ack", "Nack", "PendingGet", "Extend", "Extended",
    "Redrive", "Redriven", "Settle", "Settled", "Watch", "Watching", "Browse", "Browsed",
    "Release", "Released", "RecordWrite", "RecordCondition", "RecordsRead", "Records",
    "RecordsWrite", "RecordsWritten", "ReplayCheck", "ReplayChecked", "Replay", "AnyRequest",
    "LogLevel", "LogLevelSet",
]

MAX_FETCH = 10_000
MAX_REASON = 1024


# --- replies ------------------------------------------------------------------------------------


class Reply(Struct, frozen=True, kw_only=True, rename="camel"):
    """A reply body; camelCase, as the API shows it."""


class Pong(Reply):
    shard: int
    pid: int
    storage: str = "ok"  # ok | low | full (shard/disk.py)
    free_bytes: int = -1  # on the shard's file system; -1 unknown


class ShardInfo(Reply):
    shard: int
    pid: int
    state: str
    started_at: str
    queues: int
    groups: int
    domains: int
    messages: int
    parked_fetches: int
    keys: int
    disk_bytes: int
    storage: str = "ok"  # ok | low | full (shard/disk.py)
    free_bytes: int = -1  # on the shard's file system; -1 unknown
    min_free_bytes: int = 0  # storage.minFreeBytes, in bytes on that file system
    refused_writes: int = 0  # refused for storage (507 or 503) since the shard started


class DomainRecord(Reply):
    """A domain in the catalog. `epoch` tells this incarnation from a deleted namesake."""

    name: str
    schema: Any
    epoch: int
    created_at: int


class Domains(Reply):
    domains: list[DomainRecord]


class Dropped(Reply):
    dropped: int


class DomainCounts(Reply):
    queue_count: int = 0
    message_count: int = 0
    bytes: int = 0


class DomainStats(Reply):
    domains: dict[str, DomainCounts]


class QueueInfo(Reply):
    name: str
    domain: str
    config: QueueConfig
    message_count: int
    bytes: int
    first_position: int
    last_position: int
    groups: int
    created_at: str
    expired: int = 0  # messages deleted by the queue's ttl since it was created


class Queues(Reply):
    queues: list[QueueInfo]


class Deleted(Reply):
    deleted: str


class Published(Reply):
    """`message_ids` and `duplicate` only for a publish with an Idempotency-Key."""

    first_position: int
    count: int
    message_ids: list[str] | None = None
    duplicate: bool = False


class Consumer(Reply):
    id: str
    last_seen: str


class GroupInfo(Reply):
    group_id: str
    domain: str
    queue: str
    position: int
    lag: int
    pending: int
    ack_floor: int
    consumers: list[Consumer]
    ttl: Duration
    ack_mode: AckMode
    start: str | int
    created_at: str
    last_activity: str
    waiting: int
    circuit: str
    expired: int = 0  # messages that expired (queue ttl) before this group acknowledged them


class GroupCreated(Reply):
    created: bool
    group: GroupInfo


class Groups(Reply):
    groups: list[GroupInfo]


class Deliveries(Reply):
    """Delivered messages: position, delivery count and stored record of each."""

    positions: list[int] = []
    counts: list[int] = []
    records: list[bytes] = []
    circuit: str | None = None  # "open": the group's circuit breaker holds deliveries back
    retry_after_s: int = 0  # ... for about this long


class Acked(Reply):
    acked: int
    unknown: list[str | int]


class Nacked(Reply):
    nacked: int
    unknown: list[str | int]
    dead_lettered: int = 0  # of them, moved to {q}.dlq (retries used up)


class Extended(Reply):
    extended: int
    unknown: list[str | int]
    deadline: str  # the new deadline of the extended leases


class Redriven(Reply):
    redriven: int


class Settled(Reply):
    acked: int
    nacked: int
    dead_lettered: int
    unknown: list[str | int]


class PendingEntry(Reply):
    id: str
    position: int
    consumer: str
    delivery_count: int
    deadline: str | None
    state: str
    last_nack_reason: str | None


class PendingList(Reply):
    group_id: str
    count: int
    messages: list[PendingEntry]


class Watching(Reply):
    next_position: int  # the position the queue's next message will take


class Browsed(Reply):
    """Stored records from a position on, in order (holes skipped)."""

    next_position: int  # where the next read starts (past the end: nothing more yet)
    positions: list[int] = []
    records: list[bytes] = []


class Released(Reply):
    released: int


class Records(Reply):
    items: dict[str, bytes] = {}


class RecordsWritten(Reply):
    written: int


class ReplayChecked(Reply):
    pass


class NoReply(Reply):
    """For requests that are never answered (cancel)."""


# --- requests -----------------------------------------------------------------------------------


class Request(Struct, frozen=True, kw_only=True, tag_field="op"):
    reply: ClassVar[type[Reply]]


class Ping(Request, tag="ping"):
    reply = Pong


class ShardInfoGet(Request, tag="shard_info"):
    reply = ShardInfo


# the catalog (owned by the catalog shard)


class DomainCreate(Request, tag="domain_create"):
    reply = DomainRecord
    name: Name
    schema: Any = None  # already checked by gortms.schema.check_schema


class DomainGet(Request, tag="domain_get"):
    reply = DomainRecord
    name: Name


class DomainList(Request, tag="domain_list"):
    reply = Domains


class DomainDelete(Request, tag="domain_delete"):
    reply = DomainRecord
    name: Name


# every shard, for its own queues of a domain


class DomainDrop(Request, tag="domain_drop"):
    """Delete this shard's queues of a deleted domain (that epoch and older)."""

    reply = Dropped
    domain: Name
    epoch: int


class DomainStatsGet(Request, tag="domain_stats"):
    """Counts of this shard's queues of the domains named, each of the epoch given."""

    reply = DomainStats
    epochs: dict[str, int]


class GroupListAll(Request, tag="group_list_all"):
    reply = Groups
    epochs: dict[str, int]


class QueueList(Request, tag="queue_list"):
    reply = Queues
    domain: Name
    epoch: int


# one queue (owned by the queue's shard), named with its domain's epoch


class QueueRequest(Request):
    domain: Name
    queue: Name
    epoch: int


class QueueCreate(QueueRequest, tag="queue_create"):
    reply = QueueInfo
    config: QueueConfig = QueueConfig()


class QueueGet(QueueRequest, tag="queue_get"):
    reply = QueueInfo


class QueueDelete(QueueRequest, tag="queue_delete"):
    reply = Deleted


class Replay(Struct, frozen=True):
    """A signed request's signature, for the owner shard's replay cache (shard/records.py):
    carried by the data-plane requests themselves, so the check costs nothing extra."""

    digest: Annotated[bytes, Meta(max_length=64)]
    signed_ms: int
    until_ms: int


class Publish(QueueRequest, tag="publish"):
    """Unstamped message records (see records.py); the shard stamps and stores them."""

    reply = Published
    records: Annotated[list[bytes], Meta(min_length=1)]
    key: str | None = None  # Idempotency-Key
    # Delayed delivery: invisible to groups until the later of these (on the shard's clock).
    deliver_at_ms: Annotated[int, Meta(ge=0)] = 0  # Deliver-At
    delay_ms: Annotated[int, Meta(ge=0)] = 0  # Delay
    replay: Replay | None = None


class GroupCreate(QueueRequest, tag="group_create"):
    reply = GroupCreated
    spec: GroupSpec


class GroupList(QueueRequest, tag="group_list"):
    reply = Groups


# one consumer group


class GroupRequest(QueueRequest):
    group: Name


class GroupGet(GroupRequest, tag="group_get"):
    reply = GroupInfo


class GroupDelete(GroupRequest, tag="group_delete"):
    reply = Deleted


class GroupSeek(GroupRequest, tag="group_seek"):
    """Replay from a position ("earliest", "latest" or a number) or from a time."""

    reply = GroupInfo
    position: str | int | None = None
    timestamp: str | None = None


class GroupTtl(GroupRequest, tag="group_ttl"):
    reply = GroupInfo
    ttl: Duration


class ConsumerAdd(GroupRequest, tag="consumer_add"):
    reply = GroupCreated
    consumer: Name


class ConsumerRemove(GroupRequest, tag="consumer_remove"):
    reply = GroupInfo
    consumer: Name


class Fetch(GroupRequest, tag="fetch"):
    """Up to `max` messages; waits up to `timeout_ms` for one. `create`: make the group."""

    reply = Deliveries
    consumer: Name = "default"
    max: Annotated[int, Meta(ge=1, le=MAX_FETCH)] = 10
    timeout_ms: Annotated[int, Meta(ge=0)] = 0
    create: bool = False
    replay: Replay | None = None


class Cancel(Request, tag="cancel"):
    """The client of request `target` (a parked fetch) went away. Never answered."""

    reply = NoReply
    target: int


class Ack(GroupRequest, tag="ack"):
    reply = Acked
    ids: list[str] = []
    positions: list[Position] = []
    replay: Replay | None = None


class Nack(GroupRequest, tag="nack"):
    reply = Nacked
    ids: list[str] = []
    positions: list[Position] = []
    delay_ms: Annotated[int, Meta(ge=0)] | None = None  # None: the queue's retry backoff
    reason: Annotated[str, Meta(max_length=MAX_REASON)] | None = None


class Extend(GroupRequest, tag="extend"):
    reply = Extended
    ids: list[str] = []
    positions: list[Position] = []
    by_ms: Annotated[int, Meta(ge=1)] | None = None  # None: the queue's ackTimeout


class Settle(GroupRequest, tag="settle"):
    """A batch's acks and nacks in one request (nacks first, then acks, one turn)."""

    reply = Settled
    ack: list[str] = []
    nack: list[str] = []
    delay_ms: Annotated[int, Meta(ge=0)] | None = None  # for the nacks, as in Nack
    reason: Annotated[str, Meta(max_length=MAX_REASON)] | None = None
    replay: Replay | None = None


class Redrive(QueueRequest, tag="redrive"):
    reply = Redriven
    limit: Annotated[int, Meta(ge=1, le=10_000)] = 10_000


class PendingGet(GroupRequest, tag="pending"):
    reply = PendingList
    limit: Annotated[int, Meta(ge=1, le=10_000)] = 1000


class Watch(QueueRequest, tag="watch"):
    """A gateway subscribed to the queue's live topic: where the stream stands now, and the
    `token` announced on that topic, so the gateway knows its subscription is in effect
    (gortms/protocol/wire.py, live events)."""

    reply = Watching
    token: int


class Browse(QueueRequest, tag="browse"):
    """Read the queue's records from `from_position` on, without a consumer group."""

    reply = Browsed
    from_position: Annotated[int, Meta(ge=0)] = 0
    max: Annotated[int, Meta(ge=1, le=MAX_FETCH)] = 100


class Release(GroupRequest, tag="release"):
    """A consumer went away (its WebSocket closed): the in-flight deliveries at `positions`
    are due again at once, and it is not counted as a failure (no retry used)."""

    reply = Released
    positions: list[Position] = []


# the catalog shard's small record store (users, service accounts, account requests, login
# failures: gateway/accounts.py) and the replay cache of signed requests (any shard)


class RecordWrite(Struct, frozen=True):
    collection: Name
    key: Annotated[str, Meta(min_length=1, max_length=512)]
    value: bytes | None  # None: delete


class RecordCondition(Struct, frozen=True):
    """`key` exists (or, with exists=False, does not); key None: the collection is not empty
    (or is empty)."""

    collection: Name
    key: Annotated[str, Meta(min_length=1, max_length=512)] | None
    exists: bool


class RecordsRead(Request, tag="records_read"):
    """Records of a collection: those named, or all of them (`keys` empty)."""

    reply = Records
    collection: Name
    keys: list[str] = []


class RecordsWrite(Request, tag="records_write"):
    """All the writes or none: refused with 409 `conflict` (the message) unless every
    condition holds."""

    reply = RecordsWritten
    writes: list[RecordWrite]
    conditions: list[RecordCondition] = []
    conflict: Annotated[str, Meta(max_length=1024)] = "the records changed meanwhile"


class ReplayCheck(Request, tag="replay_check"):
    """A signed request's signature, seen at most once while its timestamp is in the window.
    Sent in the same frame right before the request it `guards` (that request's id): when
    the signature was seen before, the guarded request is refused with 401 too, unapplied."""

    reply = ReplayChecked
    digest: Annotated[bytes, Meta(max_length=64)]
    signed_ms: int
    until_ms: int
    guards: int = 0


class LogLevel(Reply):
    shard: int
    level: str


class LogLevelSet(Request, tag="log_level_set"):
    """general.logLevel changed (gateway/settings.py): this shard's process takes it at once,
    and the catalog shard announces it to every gateway worker (catalog event "log_level")."""

    reply = LogLevel
    level: Literal["debug", "info", "warn", "error"]


# The monitoring operations live in their own module (monitor.py), which builds on this one.
from gortms.protocol.monitor import MetricsGet, Report, ResourcesGet, StatsGet  # noqa: E402

AnyRequest = Union[
    StatsGet, ResourcesGet, MetricsGet, Report,
    Ping, ShardInfoGet, DomainCreate, DomainGet, DomainList, DomainDelete, DomainDrop,
    DomainStatsGet, GroupListAll, QueueList, QueueCreate, QueueGet, QueueDelete, Publish,
    GroupCreate, GroupList, GroupGet, GroupDelete, GroupSeek, GroupTtl, ConsumerAdd,
    ConsumerRemove, Fetch, Cancel, Ack, Nack, PendingGet, Extend, Redrive, Settle, Watch,
    Browse, Release, RecordsRead, RecordsWrite, ReplayCheck,
    LogLevelSet,
]
