"""Logs against the real broker (issue 10, point 7): JSON lines from every process, an
access line per request when asked for, nothing per message at info level."""

from __future__ import annotations

import orjson

from tests.e2e.test_messages import make_queue


def test_json_logs_from_every_process_and_an_access_line_per_request(broker_factory):
    broker = broker_factory(GORTMS_LOGGING_FORMAT="json", GORTMS_LOGGING_ACCESSLOG="true")
    with broker.client() as api:
        queue = make_queue(api)
        assert api.post(f"{queue}/messages", json={"a": 1}).status_code == 201
        assert api.get(f"{queue}/nope").status_code == 404
    lines = [line for line in broker.lines if line.startswith("{")]
    records = [orjson.loads(line) for line in lines]
    assert {"supervisor", "shard-0", "shard-1", "gateway-0"} <= {r["process"] for r in records}
    access = [r for r in records if r["logger"] == "gortms.access"]
    published = [r for r in access if r["method"] == "POST" and r["path"] == f"{queue}/messages"]
    assert [r["status"] for r in published] == [201]
    assert published[0]["durationMs"] >= 0 and published[0]["client"] == "127.0.0.1"
    assert [r["status"] for r in access if r["path"] == f"{queue}/nope"] == [404]


def test_no_access_log_by_default_and_nothing_per_message_at_info(broker_factory):
    broker = broker_factory()
    with broker.client() as api:
        queue = make_queue(api)
        before = len(broker.lines)
        for batch in range(5):
            reply = api.post(f"{queue}/messages/batch",
                             json={"messages": [{"n": i} for i in range(200)]})
            assert reply.status_code == 201
        for _ in range(20):
            assert api.post(f"{queue}/messages", json={"n": 1}).status_code == 201
        consumed = api.get(f"{queue}/messages", params={"group": "g", "max": 1000})
        assert consumed.status_code == 200
    assert broker.lines[before:] == []  # 1,020 messages in, 1,000 out: not a line
    assert not any("gortms.access" in line for line in broker.lines)
