"""Server-Sent Events against the real broker (issue 8, point 6): GET .../queues/{q}/stream,
event id = position, and resuming from Last-Event-ID replays from that position."""

from __future__ import annotations

import time
from typing import Iterator

import httpx2
import orjson

from tests.e2e.test_messages import make_queue


def events(lines: Iterator[str], count: int, timeout_s: float = 20.0) -> list[dict]:
    """The next `count` events (id, event, data) of an event stream."""
    out: list[dict] = []
    event: dict = {}
    deadline = time.monotonic() + timeout_s
    for line in lines:
        assert time.monotonic() < deadline, "the stream went quiet"
        if line == "":
            if "event" in event:
                out.append(event)
                if len(out) == count:
                    return out
            event = {}
        elif line.startswith(":") or line.startswith("retry:"):
            continue
        else:
            name, _, value = line.partition(": ")
            event[name] = orjson.loads(value) if name == "data" else value
    raise AssertionError(f"the stream ended after {len(out)} events")


def publish(api: httpx2.Client, queue: str, count: int, start: int = 0) -> list[str]:
    reply = api.post(f"{queue}/messages/batch",
                     json={"messages": [{"n": start + i} for i in range(count)]})
    assert reply.status_code == 201, reply.text
    return reply.json()["messageIds"]


def test_a_stream_sends_every_new_message_with_its_position_as_event_id(shared_broker, api):
    queue = make_queue(api)
    publish(api, queue, 2)  # before the stream: not sent to a stream that does not resume
    with shared_broker.client() as reader, reader.stream("GET", f"{queue}/stream") as reply:
        assert reply.status_code == 200
        assert reply.headers["content-type"].startswith("text/event-stream")
        lines = reply.iter_lines()
        ids = publish(api, queue, 3, start=2)
        pretty = api.post(f"{queue}/messages", content=b'{\n  "n": 5\n}',
                          headers={"content-type": "application/json"})
        assert pretty.status_code == 201
        got = events(lines, 4)
    assert [e["id"] for e in got] == ["3", "4", "5", "6"]
    assert {e["event"] for e in got} == {"message"}
    assert [e["data"]["id"] for e in got] == ids + [pretty.json()["messageId"]]
    assert [e["data"]["payload"]["n"] for e in got] == [2, 3, 4, 5]
    assert all(e["data"]["position"] == int(e["id"]) for e in got)


def test_resuming_from_last_event_id_replays_from_that_position_then_goes_live(
        shared_broker, api):
    queue = make_queue(api)
    ids = publish(api, queue, 5)
    for headers, params in (({"Last-Event-ID": "2"}, {}), ({}, {"from": "2"})):
        with shared_broker.client() as reader, reader.stream(
                "GET", f"{queue}/stream", headers=headers, params=params) as reply:
            assert reply.status_code == 200
            lines = reply.iter_lines()
            replayed = events(lines, len(ids) - 2)
            assert [e["id"] for e in replayed] == [str(p) for p in range(3, len(ids) + 1)]
            assert [e["data"]["id"] for e in replayed] == ids[2:]
            more = publish(api, queue, 1, start=5)
            live = events(lines, 1)
            assert [e["data"]["id"] for e in live] == more
        ids += more


def test_a_stream_of_an_unknown_queue_or_a_bad_resume_point_is_a_json_error(api):
    queue = make_queue(api)
    missing = api.get(queue.replace("/queues/q", "/queues/nope") + "/stream")
    assert missing.status_code == 404 and missing.json()["error"] == "queue_not_found"
    bad = api.get(f"{queue}/stream", headers={"Last-Event-ID": "soon"})
    assert bad.status_code == 400 and "Last-Event-ID" in bad.json()["message"]


def test_deleting_the_queue_ends_its_streams(shared_broker, api):
    queue = make_queue(api)
    with shared_broker.client() as reader, reader.stream("GET", f"{queue}/stream") as reply:
        lines = reply.iter_lines()
        assert api.delete(queue).status_code == 200
        [end] = events(lines, 1)
        assert end["event"] == "end" and "deleted" in end["data"]["reason"]
