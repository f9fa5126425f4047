"""The gateway <-> shard wire format, sans I/O: operations, frames, stored-message records.

Requests travel DEALER -> ROUTER as multipart frames
    [b"G1 <request id> <op> <deadline, epoch ms>", body (orjson), *blobs]
and replies come back as
    [b"G1 <request id> <status>", body (orjson), *blobs]
where status is b"ok" or an error code from `gortms.errors` (the body then holds
{"error", "message"}). Blobs carry message records without a JSON round trip, packed into
two frames whatever their number: their sizes (big-endian uint32 each) and their bytes end to
end. Few frames on purpose: pyzmq pays a Python-level send and receive per frame, which was
most of a 1,000-message batch's time when every record had a frame of its own.

Events go out on each shard's PUB socket as [topic, body]: topic b"c" for catalog changes
(a domain or queue was created or deleted), so that gateways drop what they cached.

A stored message record is  ts (8 bytes, epoch ms) | id length (2) | id | suffix,
where suffix is the tail of the delivered JSON object: `"id":..,"headers":{..},"payload":..}`.
The gateway builds everything but the timestamp, the shard stamps it, and a delivery is the
suffix spliced behind position, delivery count and timestamp: no JSON is re-encoded.
"""

from __future__ import annotations

import struct
from enum import StrEnum
from typing import Any, Sequence

import orjson

from gortms.errors import GortmsError, error_for

PROTOCOL_VERSION = b"G1"
STATUS_OK = b"ok"
TOPIC_CATALOG = b"c"


class Op(StrEnum):
    PING = "ping"
    SHARD_INFO = "shard_info"
    # catalog (owned by the catalog shard)
    DOMAIN_CREATE = "domain_create"
    DOMAIN_GET = "domain_get"
    DOMAIN_LIST = "domain_list"
    DOMAIN_DELETE = "domain_delete"
    # every shard, for its own queues of a domain
    DOMAIN_DROP = "domain_drop"
    DOMAIN_STATS = "domain_stats"
    # queues (owned by the queue's shard)
    QUEUE_CREATE = "queue_create"
    QUEUE_GET = "queue_get"
    QUEUE_LIST = "queue_list"
    QUEUE_DELETE = "queue_delete"
    PUBLISH = "publish"
    # consumer groups
    GROUP_CREATE = "group_create"
    GROUP_GET = "group_get"
    GROUP_LIST = "group_list"
    GROUP_DELETE = "group_delete"
    GROUP_SEEK = "group_seek"
    GROUP_TTL = "group_ttl"
    CONSUMER_ADD = "consumer_add"
    CONSUMER_REMOVE = "consumer_remove"
    FETCH = "fetch"
    CANCEL = "cancel"
    ACK = "ack"
    NACK = "nack"
    PENDING = "pending"


_OPS_BY_WIRE = {op.value.encode(): op for op in Op}
_WIRE_OF_OP = {op: wire for wire, op in _OPS_BY_WIRE.items()}


class ProtocolError(ValueError):
    """Frames that do not follow this module's format (a peer bug or a version mismatch)."""


# --- requests ---------------------------------------------------------------------------------


def pack_blobs(blobs: Sequence[bytes]) -> list[bytes]:
    """Blobs -> [] or [sizes, bytes]."""
    if not blobs:
        return []
    return [struct.pack(">%dI" % len(blobs), *map(len, blobs)), b"".join(blobs)]


def unpack_blobs(frames: Sequence[bytes]) -> list[bytes]:
    """The inverse of `pack_blobs`, from the frames that follow the body."""
    if not frames:
        return []
    if len(frames) != 2 or len(frames[0]) % 4:
        raise ProtocolError("blobs must come as two frames: sizes and bytes")
    sizes = struct.unpack(">%dI" % (len(frames[0]) // 4), frames[0])
    data = frames[1]
    if sum(sizes) != len(data):
        raise ProtocolError("blob sizes do not add up to the blob bytes")
    blobs = []
    start = 0
    for size in sizes:
        blobs.append(data[start:start + size])
        start += size
    return blobs


def encode_request(rid: bytes, op: Op, deadline_ms: int, body: dict[str, Any],
                   blobs: Sequence[bytes] = ()) -> list[bytes]:
    return [b"%s %s %s %d" % (PROTOCOL_VERSION, rid, _WIRE_OF_OP[op], deadline_ms),
            orjson.dumps(body), *pack_blobs(blobs)]


def _head(frames: Sequence[bytes], parts: int) -> list[bytes]:
    if len(frames) < 2:
        raise ProtocolError("not a GoRTMS message (too few frames)")
    head = bytes(frames[0]).split(b" ")
    if len(head) != parts or head[0] != PROTOCOL_VERSION:
        raise ProtocolError("not a GoRTMS message (version or header)")
    return head


def decode_request(frames: Sequence[bytes]) -> tuple[bytes, Op, int, dict[str, Any], list[bytes]]:
    """Frames (identity already removed) -> (request id, op, deadline ms, body, blobs)."""
    _, rid, op_wire, deadline = _head(frames, 4)
    op = _OPS_BY_WIRE.get(op_wire)
    if op is None:
        raise ProtocolError(f"unknown op {op_wire!r}")
    try:
        body = orjson.loads(frames[1])
        deadline_ms = int(deadline)
    except ValueError as exc:
        raise ProtocolError("malformed request body or deadline") from exc
    if not isinstance(body, dict):
        raise ProtocolError("request body must be an object")
    return rid, op, deadline_ms, body, unpack_blobs(frames[2:])


# --- replies ----------------------------------------------------------------------------------


def encode_reply(rid: bytes, body: dict[str, Any] | bytes, blobs: Sequence[bytes] = ()
                 ) -> list[bytes]:
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    return [b"%s %s %s" % (PROTOCOL_VERSION, rid, STATUS_OK), data, *pack_blobs(blobs)]


def encode_error(rid: bytes, error: GortmsError) -> list[bytes]:
    return [b"%s %s %s" % (PROTOCOL_VERSION, rid, error.code.encode()),
            orjson.dumps(error.to_wire())]


def reply_id(frames: Sequence[bytes]) -> bytes | None:
    try:
        return _head(frames, 3)[1]
    except ProtocolError:
        return None


def decode_reply(frames: Sequence[bytes]) -> tuple[dict[str, Any], list[bytes]]:
    """A reply's body and blobs; an error status is raised as its GortmsError class."""
    _, _, status = _head(frames, 3)
    body = orjson.loads(frames[1])
    if status != STATUS_OK:
        raise error_for(status.decode(errors="replace"), str(body.get("message", "")))
    return body, unpack_blobs(frames[2:])


# --- stored message records -------------------------------------------------------------------

TS_BYTES = 8


def encode_message(message_id: str, headers_json: bytes, payload_json: bytes) -> bytes:
    """Everything of a stored record but its timestamp, which the owner shard prepends."""
    id_bytes = message_id.encode()
    return b"".join((len(id_bytes).to_bytes(2, "big"), id_bytes, b'"id":',
                     orjson.dumps(message_id), b',"headers":', headers_json, b',"payload":',
                     payload_json, b"}"))


def unstamped_id(unstamped: bytes) -> str:
    size = int.from_bytes(unstamped[:2], "big")
    return unstamped[2:2 + size].decode()


def ts_bytes(ms: int) -> bytes:
    return ms.to_bytes(TS_BYTES, "big")


def record_ts(record: bytes) -> int:
    return int.from_bytes(record[:TS_BYTES], "big")


def record_id(record: bytes) -> str:
    size = int.from_bytes(record[TS_BYTES:TS_BYTES + 2], "big")
    return record[TS_BYTES + 2:TS_BYTES + 2 + size].decode()


def record_suffix(record: bytes) -> bytes:
    size = int.from_bytes(record[TS_BYTES:TS_BYTES + 2], "big")
    return record[TS_BYTES + 2 + size:]


def record_json(record: bytes, prefix: bytes) -> bytes:
    """The record as a JSON object: `prefix` holds leading members, each followed by a comma."""
    return b"{" + prefix + record_suffix(record)


def record_to_dict(record: bytes) -> dict[str, Any]:
    """Decode a record fully (for tools; the hot path splices bytes instead)."""
    data = orjson.loads(record_json(record, b""))
    data["timestamp"] = record_ts(record)
    return data


# --- deliveries (fetch replies) -----------------------------------------------------------------


def encode_deliveries(deliveries: Sequence[tuple[int, int, bytes]]) -> tuple[bytes, list[bytes]]:
    """(position, delivery count, record) triples -> reply body and blobs."""
    body = orjson.dumps({"positions": [d[0] for d in deliveries],
                         "counts": [d[1] for d in deliveries]})
    return body, [d[2] for d in deliveries]


def decode_deliveries(body: dict[str, Any], blobs: list[bytes]
                      ) -> list[tuple[int, int, bytes]]:
    positions, counts = body.get("positions", []), body.get("counts", [])
    if not (len(positions) == len(counts) == len(blobs)):
        raise ProtocolError("a delivery reply's positions, counts and records disagree")
    return list(zip(positions, counts, blobs))
