"""A queue WebSocket's protocol (docs/API.md, WebSockets), free of I/O: the frames to send,
and what the frames received mean. Both socket clients (gortms/client/sockets.py) feed it
what they read and send what it builds.

Requests carry a `requestId` that the broker echoes; their answers come in request order,
between the message frames. Received messages wait in `received`, at most `buffer` of them:
an observer that does not keep up loses the newest past that, counted in `dropped` with what
the broker reported as `lagged`. A consumer's deliveries are bounded by its credits, which
never exceed the buffer, so none is ever dropped; with `refill`, credits are granted again
as the messages are taken, so at most `credits` are delivered and not yet taken.
"""

from __future__ import annotations

import collections
import ssl
from dataclasses import dataclass
from typing import Any, Iterable, Mapping
from urllib.parse import urlsplit

import msgspec
import orjson

from gortms.client.calls import (Duration, Settings, Targets, duration_text, publish_headers,
                                 queue_path, targets_body)
from gortms.client.errors import BrokerUnreachable, error_from_close
from gortms.client.models import Acked, Extended, Message, Nacked, Published
from gortms.errors import GortmsError, error_for

DEFAULT_BUFFER = 10_000
MAX_FRAME_BYTES = 64 * 1024 * 1024  # a `messages` frame holds a whole fetch


class _Frame(msgspec.Struct, frozen=True, rename="camel", tag_field="type"):
    pass


class Connected(_Frame, tag="connected"):
    position: int  # where the live stream starts: the next message published gets it
    subscription_id: str = ""


class MessagesFrame(_Frame, tag="messages"):
    messages: list[Message]


class Consuming(_Frame, tag="consuming"):
    group: str
    consumer: str
    credits: int
    batch: bool = False


class Lagged(_Frame, tag="lagged"):
    dropped: int


class Circuit(_Frame, tag="circuit"):
    state: str
    retry_after: float = 0


class Pong(_Frame, tag="pong"):
    pass


class ErrorFrame(_Frame, tag="error"):
    error: str
    message: str = ""
    request_id: Any = None


class PublishedFrame(Published, tag="published"):
    request_id: Any = None


class AckedFrame(Acked, tag="acked"):
    request_id: Any = None


class NackedFrame(Nacked, tag="nacked"):
    request_id: Any = None


class ExtendedFrame(Extended, tag="extended"):
    request_id: Any = None


_FRAMES = msgspec.json.Decoder(
    Message | MessagesFrame | Connected | Consuming | Lagged | Circuit | Pong | ErrorFrame
    | PublishedFrame | AckedFrame | NackedFrame | ExtendedFrame)
# How the broker's observer frames begin (gateway/live.py, gateway/sockets.py): a socket
# that keeps none of them skips them unread.
_OBSERVED = (b'{"type":"message', '{"type":"message')
_ANSWERS = (PublishedFrame, AckedFrame, NackedFrame, ExtendedFrame, ErrorFrame)


@dataclass(frozen=True, slots=True)
class Target:
    """Where and how a socket connects: URL, credential headers, TLS."""

    url: str
    headers: Mapping[str, str]
    ssl: ssl.SSLContext | None
    timeout_s: float


def socket_target(settings: Settings, tls: ssl.SSLContext | None, domain: str, queue: str,
                  batch: bool, observe: bool = True) -> Target:
    parts = urlsplit(settings.url)
    scheme = "wss" if parts.scheme == "https" else "ws"
    path = "/api/ws" + queue_path(domain, queue)[4:]  # /api/ws/domains/{d}/queues/{q}
    headers = {} if settings.authorize is None else \
        dict(settings.authorize("GET", path, b""))  # signed as a GET with an empty body
    flags = [flag for flag, on in (("batch=true", batch), ("observe=false", not observe)) if on]
    url = f"{scheme}://{parts.netloc}{path}" + ("?" + "&".join(flags) if flags else "")
    return Target(url, headers, tls if scheme == "wss" else None, settings.timeout_s)


class SocketProtocol:
    """One queue socket's state: what it received, the answers awaited, its credits."""

    def __init__(self, buffer: int = DEFAULT_BUFFER) -> None:
        self.buffer = buffer
        self.position: int | None = None
        self.received: collections.deque[Message] = collections.deque()
        self.dropped = 0
        self.answers: dict[int, Any] = {}  # request id -> its answer frame
        self.unawaited: set[int] = set()  # requests sent with wait=False
        self.failures = 0  # error frames nobody waited for (a fetch that failed, ...)
        self.last_error: GortmsError | None = None
        self.consuming: Consuming | None = None
        self.circuit: Circuit | None = None
        self.pongs = 0
        self.window = 0  # the credits to keep granted (consumer mode with refill)
        self.unspent = 0  # credits granted and not yet spent on a delivery
        self._last_id = 0

    # --- what to send -------------------------------------------------------------------------

    def request(self, frame: dict[str, Any], wait: bool = True) -> tuple[int, bytes]:
        self._last_id += 1
        frame["requestId"] = self._last_id
        if not wait:
            self.unawaited.add(self._last_id)
        return self._last_id, orjson.dumps(frame)

    def publish(self, payload: Any, headers: Mapping[str, str] | None, message_id: str | None,
                idempotency_key: str | None, delay: Duration | None,
                deliver_at: Any) -> dict[str, Any]:
        if isinstance(payload, (bytes, bytearray, memoryview)):  # JSON already encoded
            payload = orjson.Fragment(bytes(payload))
        frame: dict[str, Any] = {"type": "publish", "payload": payload}
        if headers:
            frame["headers"] = dict(headers)
        if message_id is not None:
            frame["id"] = message_id
        # The frame's fields say what the REST headers do; their values are written alike.
        for name, value in publish_headers(None, idempotency_key, delay, deliver_at).items():
            frame[{"Idempotency-Key": "idempotencyKey", "Delay": "delay",
                   "Deliver-At": "deliverAt"}[name]] = value
        return frame

    def settle(self, kind: str, targets: Targets, **fields: Any) -> dict[str, Any]:
        body = targets_body(targets)
        frame: dict[str, Any] = {"type": kind, "ids": body.get("positions", []) +
                                 body.get("ids", [])}
        for name, value in fields.items():
            if value is not None:
                frame[name] = duration_text(value) if name in ("delay", "by") else value
        return frame

    def consume(self, group: str, consumer: str | None, credits: int, batch: bool,
                refill: bool) -> dict[str, Any]:
        if credits > self.buffer:
            raise ValueError(f"credits ({credits}) must not exceed the buffer ({self.buffer})")
        self.window = credits if refill else 0
        self.unspent = credits
        frame: dict[str, Any] = {"type": "consume", "group": group, "credits": credits,
                                 "batch": batch}
        if consumer is not None:
            frame["consumer"] = consumer
        return frame

    def credit_due(self) -> int:
        """Credits to grant now: the window refilled once half of it is taken."""
        if not self.window:
            return 0
        due = self.window - self.unspent - len(self.received)
        return due if due >= max(1, self.window // 2) else 0

    def credit(self, count: int) -> bytes:
        """A credit frame. Without a requestId: the broker answers a credit only when it
        refuses it, and that error is counted in `failures` like any nobody waits for."""
        self.unspent += count
        return b'{"type":"credit","count":%d}' % count

    # --- what was received --------------------------------------------------------------------

    def feed(self, data: bytes | str) -> None:
        if not self.buffer and self.consuming is None and data[:16] in _OBSERVED:
            return  # buffer 0: observed messages are not wanted (a publishing socket)
        try:
            frame = _FRAMES.decode(data)
        except msgspec.ValidationError:
            return  # a frame this client cannot read: a type it does not know (a newer broker)
        if isinstance(frame, Message):
            self._arrived((frame,))
        elif isinstance(frame, MessagesFrame):
            self._arrived(frame.messages)
        elif isinstance(frame, _ANSWERS):
            self._answered(frame)
        elif isinstance(frame, Lagged):
            self.dropped += frame.dropped
        elif isinstance(frame, Connected):
            self.position = frame.position
        elif isinstance(frame, Consuming):
            self.consuming = frame
            self.received.clear()  # what came before was observed, not delivered
        elif isinstance(frame, Pong):
            self.pongs += 1
        elif isinstance(frame, Circuit):
            self.circuit = frame

    def _arrived(self, messages: Iterable[Message]) -> None:
        received = self.received
        for message in messages:
            if self.consuming is not None:
                self.unspent -= 1
            elif len(received) >= self.buffer:
                self.dropped += 1
                continue
            received.append(message)

    def _answered(self, frame: Any) -> None:
        request_id = frame.request_id
        if isinstance(frame, ErrorFrame):
            error = error_for(frame.error, frame.message)
            if request_id is None or request_id in self.unawaited:
                self.unawaited.discard(request_id)
                self.failures += 1
                self.last_error = error
                return
            self.answers[request_id] = error
        elif request_id in self.unawaited:
            self.unawaited.discard(request_id)
        else:
            self.answers[request_id] = frame

    def has_answer(self, request_id: int) -> bool:
        return request_id in self.answers

    def answer(self, request_id: int) -> Any:
        """The answer to a request (popped), or the error it was, raised."""
        answer = self.answers.pop(request_id)
        if isinstance(answer, GortmsError):
            raise answer
        return answer

    def take(self) -> Message:
        return self.received.popleft()

    def take_all(self, most: int) -> list[Message]:
        received = self.received
        return [received.popleft() for _ in range(min(most, len(received)))]

    @staticmethod
    def closed(code: int | None, reason: str) -> GortmsError:
        return error_from_close(code if code is not None else 1006, reason)


def timed_out(what: str, timeout_s: float) -> GortmsError:
    return BrokerUnreachable(f"no {what} from the broker within {timeout_s:g}s")
