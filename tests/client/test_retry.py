"""Retries: on 503 and 429, after Retry-After, only for what is safe to repeat, within the
policy's bounds. A scripted HTTP server on 127.0.0.1 stands in for the broker where its
answers must be exact; a shard stopped for a moment makes a real 503."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator

import orjson
import pytest

from gortms.client import NO_RETRY, AsyncClient, BrokerUnreachable, Client, RetryPolicy
from gortms.errors import GortmsError, NotFound, QueueFull, ShardUnavailable
from gortms.partition import shard_for
from tests.conftest import unique

FETCHED = b'{"messages":[],"count":0}'
PUBLISHED = b'{"status":"success","messageId":"m","position":1}'
UNAVAILABLE = b'{"error":"shard_unavailable","message":"shard 1 is down"}'


class Script:
    """A fake broker: answers requests with the scripted (status, headers, body) in turn
    (the last one again once they run out), and records when each came and its headers."""

    def __init__(self, *answers: tuple[int, dict[str, str], bytes]) -> None:
        self.answers = list(answers)
        self.requests: list[tuple[float, dict[str, str]]] = []
        script = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                self.rfile.read(length)
                script.requests.append((time.monotonic(), dict(self.headers)))
                status, headers, body = script.answers[min(len(script.requests),
                                                           len(script.answers)) - 1]
                self.send_response(status)
                for name, value in {**headers, "Content-Length": str(len(body))}.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def gaps(self) -> list[float]:
        times = [t for t, _ in self.requests]
        return [b - a for a, b in zip(times, times[1:])]


@pytest.fixture
def serve() -> Iterator:
    started: list[Script] = []

    def start(*answers: tuple[int, dict[str, str], bytes]) -> Script:
        script = Script(*answers)
        script.thread.start()
        started.append(script)
        return script

    yield start
    for script in started:
        script.server.shutdown()
        script.server.server_close()


def retry_after(seconds: str, code: str = "shard_unavailable", status: int = 503):
    return (status, {"Retry-After": seconds, "Content-Type": "application/json"},
            orjson.dumps({"error": code, "message": code}))


def ok(body: bytes, status: int = 200):
    return (status, {"Content-Type": "application/json"}, body)


def test_a_503_is_retried_after_its_retry_after(serve):
    script = serve(retry_after("1"), ok(FETCHED))
    with Client(script.url) as client:
        assert client.fetch("d", "q", "g").messages == []
    assert len(script.requests) == 2
    assert script.gaps()[0] >= 0.95


def test_retry_after_as_an_http_date_is_honoured(serve):
    when = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=2), usegmt=True)
    script = serve(retry_after(when), ok(FETCHED))
    with Client(script.url) as client:
        client.fetch("d", "q", "g")
    assert len(script.requests) == 2 and script.gaps()[0] >= 0.9  # dates have whole seconds


def test_a_publish_without_a_key_is_not_repeated_after_a_503_that_may_have_stored_it(serve):
    script = serve(retry_after("0"), ok(PUBLISHED, 201))
    with Client(script.url) as client, pytest.raises(ShardUnavailable) as failed:
        client.publish("d", "q", {"n": 1})
    assert len(script.requests) == 1
    assert (failed.value.status, failed.value.retry_after_s) == (503, 0.0)


def test_a_publish_with_a_key_is_repeated_after_a_503(serve):
    script = serve(retry_after("0"), ok(PUBLISHED, 201))
    with Client(script.url) as client:
        assert client.publish("d", "q", {"n": 1}, idempotency_key="k").position == 1
    assert len(script.requests) == 2
    assert all(headers["Idempotency-Key"] == "k" for _, headers in script.requests)


@pytest.mark.parametrize("refusal", [retry_after("0", "queue_full", 429),
                                     retry_after("0", "storage_error", 503)],
                         ids=["429 queue_full", "503 storage_error"])
def test_a_refusal_that_applied_nothing_is_repeated_even_for_a_publish_without_a_key(
        serve, refusal):
    script = serve(refusal, ok(PUBLISHED, 201))
    with Client(script.url) as client:
        client.publish("d", "q", {"n": 1})
    assert len(script.requests) == 2


def test_retries_stop_after_the_attempts_of_the_policy(serve):
    script = serve(retry_after("0", "queue_full", 429))
    with Client(script.url, retry=RetryPolicy(attempts=3)) as client:
        with pytest.raises(QueueFull) as full:
            client.fetch("d", "q", "g")
    assert len(script.requests) == 3 and full.value.code == "queue_full"


def test_a_retry_after_past_the_total_time_gives_up_at_once(serve):
    script = serve(retry_after("10"), ok(FETCHED))
    started = time.monotonic()
    with Client(script.url, retry=RetryPolicy(total_s=2)) as client:
        with pytest.raises(ShardUnavailable):
            client.fetch("d", "q", "g")
    assert time.monotonic() - started < 1 and len(script.requests) == 1


def test_no_retry_tries_once_and_other_errors_are_never_retried(serve):
    script = serve(retry_after("0"), ok(FETCHED))
    with Client(script.url, retry=NO_RETRY) as client, pytest.raises(ShardUnavailable):
        client.fetch("d", "q", "g")
    missing = serve((404, {}, b'{"error":"group_not_found","message":"no"}'), ok(FETCHED))
    with Client(missing.url) as client, pytest.raises(NotFound):
        client.fetch("d", "q", "g")
    assert len(script.requests) == 1 and len(missing.requests) == 1


def test_every_attempt_of_a_signed_request_is_signed_anew(serve):
    script = serve(retry_after("0"), retry_after("0"), ok(FETCHED))
    with Client(script.url, service_id="svc", service_secret="s3cret") as client:
        client.fetch("d", "q", "g")
    signatures = [h["X-Signature"] for _, h in script.requests]
    stamps = [h["X-Timestamp"] for _, h in script.requests]
    assert len(set(signatures)) == 3 and stamps == sorted(stamps)


def test_unknown_codes_and_foreign_answers_become_the_class_of_their_status(serve):
    newer = serve((404, {}, b'{"error":"route_not_found","message":"a newer broker"}'))
    proxy = serve((502, {"Content-Type": "text/html"}, b"<html>Bad Gateway</html>"))
    with Client(newer.url) as client, pytest.raises(NotFound) as unknown:
        client.fetch("d", "q", "g")
    assert (unknown.value.code, unknown.value.message) == ("route_not_found", "a newer broker")
    with Client(proxy.url) as client, pytest.raises(GortmsError) as foreign:
        client.fetch("d", "q", "g")
    assert foreign.value.status == 502 and "Bad Gateway" in foreign.value.message
    not_json = serve(ok(b"<html>hello</html>"))
    with Client(not_json.url) as client, pytest.raises(GortmsError) as odd:
        client.fetch("d", "q", "g")
    assert "not what this client expects" in odd.value.message


def test_a_broker_that_cannot_be_reached_is_broker_unreachable_with_nothing_sent():
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with Client(f"http://127.0.0.1:{port}", retry=RetryPolicy(attempts=2)) as client:
        with pytest.raises(BrokerUnreachable) as failed:
            client.publish("d", "q", {"n": 1})
    assert failed.value.sent is False and isinstance(failed.value, ConnectionError)


@pytest.mark.anyio
async def test_the_async_client_retries_alike(serve):
    script = serve(retry_after("1"), ok(FETCHED))
    async with AsyncClient(script.url) as client:
        await client.fetch("d", "q", "g")
    assert len(script.requests) == 2 and script.gaps()[0] >= 0.95


# --- a real 503 ---------------------------------------------------------------------------------


def test_a_keyed_publish_outlives_a_shard_stopped_for_a_moment_and_is_stored_once(
        broker_factory):
    broker = broker_factory(GORTMS_GATEWAY_REQUESTTIMEOUT="1s")
    domain = unique("retry")
    with Client(broker.url) as client:
        client.create_domain(domain)
        client.create_queue(domain, "q")
        shard = broker.shard_pid(shard_for(domain, "q", 2))
        os.kill(shard, signal.SIGSTOP)
        resume = threading.Timer(1.5, os.kill, (shard, signal.SIGCONT))
        try:
            with Client(broker.url, retry=NO_RETRY) as once, \
                    pytest.raises(ShardUnavailable) as down:
                once.publish(domain, "q", {"keyed": False})
            assert down.value.status == 503 and down.value.retry_after_s == 1
            resume.start()
            started = time.monotonic()
            published = client.publish(domain, "q", {"keyed": True}, idempotency_key="once")
            # the first attempt timed out (a 503), the second waited its Retry-After: 1
            assert time.monotonic() - started >= 1.9
        finally:
            resume.cancel()
            os.kill(shard, signal.SIGCONT)
        stored = [m for m in client.fetch(domain, "q", "g", count=100, create_group=True)
                  if m.payload["keyed"]]
        assert [m.position for m in stored] == [published.position]
