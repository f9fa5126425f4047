"""The stored message record, and deliveries as the API's JSON, spliced without re-encoding.

A record is  ts (8 bytes, epoch ms) | id length (2) | id | suffix,  where suffix is the tail of
the delivered JSON object: `"id":..,"headers":{..},"payload":..}`. The gateway builds
everything but the timestamp from the client's bytes, the owner shard prepends the
timestamp, and a delivery is the suffix behind position, delivery count and timestamp.
"""

from __future__ import annotations

from typing import Any, Iterable

import orjson

from gortms.models import format_ts
from gortms.protocol.ops import Deliveries

__all__ = [
    "TS_BYTES", "encode_message", "unstamped_id", "ts_bytes", "record_ts", "record_id",
    "record_suffix", "record_to_dict", "spliced", "deliveries_json",
]

TS_BYTES = 8


def encode_message(message_id: str, headers_json: bytes, payload_json: bytes) -> bytes:
    """Everything of a stored record but its timestamp, which the owner shard prepends."""
    id_bytes = message_id.encode()
    return b"%s%s\"id\":%s,\"headers\":%s,\"payload\":%s}" % (
        len(id_bytes).to_bytes(2, "big"), id_bytes, orjson.dumps(message_id), headers_json,
        payload_json)


def unstamped_id(unstamped: bytes) -> str:
    size = int.from_bytes(unstamped[:2], "big")
    return unstamped[2:2 + size].decode()


def ts_bytes(ms: int) -> bytes:
    return ms.to_bytes(TS_BYTES, "big")


def record_ts(record: bytes) -> int:
    return int.from_bytes(record[:TS_BYTES], "big")


def record_id(record: bytes) -> str:
    # errors="replace": a record is the gateway's work, but a stored one that is malformed
    # must not make every delivery of its queue fail.
    size = int.from_bytes(record[TS_BYTES:TS_BYTES + 2], "big")
    return record[TS_BYTES + 2:TS_BYTES + 2 + size].decode(errors="replace")


def record_suffix(record: bytes) -> bytes:
    size = int.from_bytes(record[TS_BYTES:TS_BYTES + 2], "big")
    return record[TS_BYTES + 2 + size:]


def record_to_dict(record: bytes) -> dict[str, Any]:
    """Decode a record fully (for tools; the hot path splices bytes instead)."""
    data = orjson.loads(b"{" + record_suffix(record))
    data["timestamp"] = record_ts(record)
    return data


def spliced(template: bytes, records: Iterable[bytes], fields: Iterable[tuple]) -> list[bytes]:
    """Each record as a JSON object: `template` with the record's timestamp for its `%s`
    gives a head whose `%%d` slots the record's `fields` fill, and the record's suffix
    follows. A fetch's records mostly share a few timestamps: one head per timestamp."""
    heads: dict[bytes, bytes] = {}
    out = []
    append = out.append
    for record, values in zip(records, fields):
        stamp = record[:TS_BYTES]
        head = heads.get(stamp)
        if head is None:
            head = heads[stamp] = template % format_ts(int.from_bytes(stamp, "big")).encode()
        append(head % values
               + record[TS_BYTES + 2 + ((record[TS_BYTES] << 8) | record[TS_BYTES + 1]):])
    return out


DELIVERY = b'{"position":%%d,"deliveryCount":%%d,"timestamp":"%s",'


def deliveries_json(deliveries: Deliveries) -> bytes:
    """{"messages": [...], "count": n}, each message spliced from its record."""
    out = spliced(DELIVERY, deliveries.records, zip(deliveries.positions, deliveries.counts))
    if deliveries.circuit is not None:
        return b'{"messages":[%s],"count":%d,"circuit":"%s"}' % (
            b",".join(out), len(out), deliveries.circuit.encode())
    return b'{"messages":[%s],"count":%d}' % (b",".join(out), len(out))
