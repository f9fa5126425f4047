"""The frames between gateway and shard, sans I/O: one ZeroMQ frame carries many requests.

A request frame is  b"G2" + msgpack [[request id, deadline (epoch ms), request], ...]  and a
reply frame is  b"G2" + msgpack [[request id, status, body], ...], where status is "ok" (body:
the request's reply type) or an error code from `gortms.errors` (body: {"error", "message"}).
Coalescing matters: pyzmq pays a Python-level send and receive per frame, so a gateway sends
whatever it has for a shard in one loop tick as one frame, and a shard answers each gateway
once per turn. The envelope is decoded first and every body on its own, so one body that does
not fit its type fails alone (ProtocolError), not its neighbours.

Events go out on each shard's XPUB socket as [topic, b"G2" + msgpack event]: topic b"c" for
catalog changes (a domain or queue was created or deleted), so gateways drop what they cached,
and for a new general.logLevel (kind "log_level", from the catalog shard).

Live events (WebSocket observers, SSE) use one topic per queue, `live_topic(domain, queue)`:
b"m" + "domain/queue" + NUL (names hold neither "/" nor NUL, and ZeroMQ matches topics by
prefix, so the NUL keeps "d/q" from matching "d/q2"). A shard learns from its XPUB socket
which topics someone subscribed to and publishes only those queues' messages: a queue nobody
watches costs nothing. Every committed publish to a watched queue is one `LiveMessages`
(first position, stamp, the records as stored); a shard gathers a queue's events for a few
milliseconds and sends them as one message, [topic, event, event, ...]. Subscriptions take
effect asynchronously, so a gateway that subscribes sends a `Watch` request with a token,
and the shard answers it on the topic itself with `LiveHello`: once the hello arrives, every
later publish will too.
Positions are contiguous per queue, so a gap in them tells the gateway that events were lost
(a slow subscriber past the high-water mark, a shard restart) and how many.
"""

from __future__ import annotations

from typing import Any, Sequence, TypeVar

import msgspec
from msgspec import Raw, Struct

from gortms.checks import dec_hook, enc_hook
from gortms.errors import GortmsError, error_for
from gortms.protocol.ops import AnyRequest, Reply, Request

__all__ = [
    "VERSION", "STATUS_OK", "TOPIC_CATALOG", "ProtocolError", "ErrorBody", "CatalogEvent",
    "encode_requests", "decode_requests", "decode_request", "encode_replies", "ok", "failed",
    "decode_replies", "reply_value", "encode_body", "encode_event", "decode_event",
    "TOPIC_LIVE", "LiveMessages", "LiveHello", "live_topic", "parse_live_topic",
    "encode_live", "decode_live",
]

VERSION = b"G2"
STATUS_OK = "ok"
TOPIC_CATALOG = b"c"
TOPIC_LIVE = b"m"

R = TypeVar("R", bound=Reply)


class ProtocolError(ValueError):
    """Frames that do not follow this module's format (a peer bug or a version mismatch)."""


class ErrorBody(Struct, frozen=True):
    error: str
    message: str


class CatalogEvent(Struct, frozen=True, kw_only=True):
    kind: str  # "domain" or "queue"
    domain: str
    queue: str | None = None
    deleted: bool = False  # else created
    level: str = ""  # kind "log_level": the new general.logLevel (gateway/settings.py)


class LiveMessages(Struct, frozen=True, kw_only=True, tag="m"):
    """Messages just committed to a watched queue: positions first, first + 1, ..."""

    domain: str
    queue: str
    first: int
    ts_ms: int
    records: list[bytes]  # unstamped (records.py): the stamp is ts_ms


class LiveHello(Struct, frozen=True, kw_only=True, tag="h"):
    """The answer to a Watch, on the queue's topic (see the module doc)."""

    domain: str
    queue: str
    token: int
    next_position: int


_encoder = msgspec.msgpack.Encoder(enc_hook=enc_hook)
_requests = msgspec.msgpack.Decoder(list[tuple[int, int, Raw]])
_request = msgspec.msgpack.Decoder(AnyRequest, dec_hook=dec_hook)  # type: ignore[arg-type]
_replies = msgspec.msgpack.Decoder(list[tuple[int, str, Raw]])
_error = msgspec.msgpack.Decoder(ErrorBody)
_event = msgspec.msgpack.Decoder(CatalogEvent)
_live = msgspec.msgpack.Decoder(LiveMessages | LiveHello)
_reply_decoders: dict[type, msgspec.msgpack.Decoder[Any]] = {}


def _body(frame: bytes | memoryview) -> memoryview:
    view = memoryview(frame)
    if view[:2] != VERSION:
        raise ProtocolError("not a GoRTMS G2 frame (version or format)")
    return view[2:]


# --- requests -----------------------------------------------------------------------------------


def encode_requests(requests: Sequence[tuple[int, int, Request]]) -> bytes:
    """(request id, deadline ms, request) triples -> one frame."""
    return VERSION + _encoder.encode(requests)


def decode_requests(frame: bytes | memoryview) -> list[tuple[int, int, Raw]]:
    """One frame -> (request id, deadline ms, undecoded request) triples."""
    try:
        return _requests.decode(_body(frame))
    except msgspec.DecodeError as exc:
        raise ProtocolError(f"malformed request frame: {exc}") from None


def decode_request(raw: Raw | bytes) -> Request:
    try:
        return _request.decode(raw)
    except msgspec.DecodeError as exc:
        raise ProtocolError(f"malformed request: {exc}") from None


# --- replies ------------------------------------------------------------------------------------


def encode_replies(replies: Sequence[tuple[int, str, Any]]) -> bytes:
    """(request id, status, body) triples -> one frame; see `ok` and `failed`."""
    return VERSION + _encoder.encode(replies)


def ok(rid: int, body: Reply | Raw) -> tuple[int, str, Reply | Raw]:
    return rid, STATUS_OK, body


def failed(rid: int, error: GortmsError) -> tuple[int, str, ErrorBody]:
    return rid, error.code, ErrorBody(error.code, error.message)


def decode_replies(frame: bytes | memoryview) -> list[tuple[int, str, Raw]]:
    try:
        return _replies.decode(_body(frame))
    except msgspec.DecodeError as exc:
        raise ProtocolError(f"malformed reply frame: {exc}") from None


def reply_value(status: str, body: Raw | bytes, reply_type: type[R]) -> R:
    """A reply body as `reply_type`; an error status is raised as its GortmsError class."""
    try:
        if status != STATUS_OK:
            error = _error.decode(body)
            raise error_for(error.error, error.message)
        decoder = _reply_decoders.get(reply_type)
        if decoder is None:
            decoder = _reply_decoders[reply_type] = msgspec.msgpack.Decoder(
                reply_type, dec_hook=dec_hook)
        return decoder.decode(body)
    except msgspec.DecodeError as exc:
        raise ProtocolError(f"malformed {reply_type.__name__} reply: {exc}") from None


def encode_body(body: Reply) -> bytes:
    """A reply body encoded ahead of time, to keep and answer with later (an Idempotency-Key's
    original reply): `ok(rid, Raw(those bytes))` sends it as it is."""
    return _encoder.encode(body)


# --- events -------------------------------------------------------------------------------------


def encode_event(event: CatalogEvent) -> list[bytes]:
    return [TOPIC_CATALOG, VERSION + _encoder.encode(event)]


def decode_event(frame: bytes | memoryview) -> CatalogEvent:
    try:
        return _event.decode(_body(frame))
    except msgspec.DecodeError as exc:
        raise ProtocolError(f"malformed event: {exc}") from None


def live_topic(domain: str, queue: str) -> bytes:
    return b"%s%s/%s\x00" % (TOPIC_LIVE, domain.encode(), queue.encode())


def parse_live_topic(topic: bytes) -> tuple[str, str] | None:
    """(domain, queue) of a live topic; None for any other topic."""
    if not topic.startswith(TOPIC_LIVE) or not topic.endswith(b"\x00"):
        return None
    domain, sep, queue = topic[1:-1].decode(errors="replace").partition("/")
    return (domain, queue) if sep else None


def encode_live(event: LiveMessages | LiveHello) -> list[bytes]:
    return [live_topic(event.domain, event.queue), VERSION + _encoder.encode(event)]


def decode_live(frame: bytes | memoryview) -> LiveMessages | LiveHello:
    try:
        return _live.decode(_body(frame))
    except msgspec.DecodeError as exc:
        raise ProtocolError(f"malformed live event: {exc}") from None
