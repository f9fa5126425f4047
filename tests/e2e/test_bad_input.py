"""Hundreds of malformed bodies, paths and parameters: every answer is a 4xx JSON error, none
changes anything, and the broker is healthy afterwards."""

from __future__ import annotations

import itertools

import httpx2
import pytest

from tests.conftest import unique

pytestmark = pytest.mark.slow

BAD_JSON = [
    b"", b" ", b"{", b"}", b"[", b"{'a': 1}", b'{"a":}', b'{"a" 1}', b"nul", b"tru",
    b'{"a":1,}', b"\xff\xfe\x00", b'{"a":"\xff"}', b"\x00", b'"unterminated', b"{}{}",
    b"[" * 2000 + b"]" * 2000, b'{"a":' * 600 + b"1" + b"}" * 600, b"1e999999", b"NaN",
    b'{"a": 123456789012345678901234567890}', b'{"id": "\\ud800"}', b"\xef\xbb\xbf{}",
]
WRONG_SHAPES = [b"[]", b"[1,2]", b"1", b"-1", b"3.5", b'"text"', b"null", b"true"]
BAD_NAMES = ["a b", "a%2Fb", "%00", "x" * 129, "é", "a*b", "a,b", "a;b", "%20", "a%0Ab"]
BAD_FIELDS = [None, 1, -1, 3.5, True, "", "x" * 300, [], {}, ["a"], {"a": 1}, "\u0000",
              2**70, -2**70, "é" * 200]
BAD_NAMES_IN_QUERY = ["", " ", "%00", "inf%20x", "a/b"]
BAD_PARAMS = ["inf%20x", "a/b", "-1", "0", "abc", "1e9", "1.5", "", "nan", "inf", "-inf",
              "99999999999999999999", " ", "0x10", "%00"]


def assert_clean_error(reply: httpx2.Response, what: str) -> None:
    assert 400 <= reply.status_code < 500, f"{what}: {reply.status_code} {reply.text[:300]}"
    body = reply.json()
    assert isinstance(body.get("error"), str) and body["error"], what
    assert isinstance(body.get("message"), str) and body["message"], what


@pytest.fixture
def world(api):
    """A domain with a schema, a queue and a group, plus a snapshot to compare against."""
    domain = unique("fuzz")
    api.post("/api/domains", json={"name": domain, "schema": {"fields": {"n": "number"}}})
    api.post(f"/api/domains/{domain}/queues", json={"name": "q"})
    api.post(f"/api/domains/{domain}/queues/q/consumer-groups", json={"groupId": "g"})
    api.post(f"/api/domains/{domain}/queues/q/messages", json={"n": 1})
    return domain


def snapshot(api: httpx2.Client, domain: str) -> tuple:
    queue = api.get(f"/api/domains/{domain}/queues/q").json()
    group = api.get(f"/api/domains/{domain}/queues/q/consumer-groups/g").json()
    domains = sorted(d["name"] for d in api.get("/api/domains").json()["domains"])
    return (queue["messageCount"], queue["lastPosition"], queue["config"], group["position"],
            group["pending"], group["ttl"], domains)


def body_targets(domain: str) -> list[tuple[str, str]]:
    q = f"/api/domains/{domain}/queues/q"
    g = f"{q}/consumer-groups/g"
    return [("POST", "/api/domains"), ("POST", f"/api/domains/{domain}/queues"),
            ("POST", f"{q}/messages"), ("POST", f"{q}/messages/batch"),
            ("POST", f"{q}/consumer-groups"), ("PUT", g), ("POST", f"{g}/ack"),
            ("POST", f"{g}/nack"), ("PUT", f"{g}/ttl"), ("POST", f"{g}/consumers")]


def test_malformed_bodies_are_4xx_and_change_nothing(api, world):
    before = snapshot(api, world)
    sent = 0
    for (method, path), body in itertools.product(body_targets(world), BAD_JSON + WRONG_SHAPES):
        reply = api.request(method, path, content=body,
                            headers={"Content-Type": "application/json"})
        assert_clean_error(reply, f"{method} {path} {body[:40]!r}")
        sent += 1
    assert sent > 300
    assert snapshot(api, world) == before


def test_wrong_field_types_are_4xx_and_change_nothing(api, world):
    q = f"/api/domains/{world}/queues/q"
    g = f"{q}/consumer-groups/g"
    fields = [
        ("POST", "/api/domains", "name"), ("POST", "/api/domains", "schema"),
        ("POST", "/api/domains", "queueConfigs"), ("POST", "/api/domains", "routingRules"),
        ("POST", f"/api/domains/{world}/queues", "name"),
        ("POST", f"/api/domains/{world}/queues", "config"),
        ("POST", f"{q}/messages/batch", "messages"),
        ("POST", f"{q}/consumer-groups", "groupId"), ("POST", f"{q}/consumer-groups", "ttl"),
        ("POST", f"{q}/consumer-groups", "ackMode"), ("POST", f"{q}/consumer-groups", "start"),
        ("PUT", g, "position"), ("PUT", g, "timestamp"), ("PUT", f"{g}/ttl", "ttl"),
        ("POST", f"{g}/ack", "ids"), ("POST", f"{g}/ack", "positions"),
        ("POST", f"{g}/nack", "ids"), ("POST", f"{g}/nack", "delay"),
        ("POST", f"{g}/consumers", "consumerId"),
    ]
    before = snapshot(api, world)
    for (method, path, field), value in itertools.product(fields, BAD_FIELDS):
        name = unique("new")
        body = {"name": name, "groupId": "g", "ids": ["x"], field: value}
        reply = api.request(method, path, json=body)
        if reply.status_code < 300:
            # Some values are legitimately accepted ({"schema": null}, {"ids": ["a"]} acks
            # nothing, ...); the point is that nothing answers 5xx.
            continue
        assert_clean_error(reply, f"{method} {path} {field}={value!r}"[:200])
        if path == "/api/domains":  # refused: nothing was created
            assert api.get(f"/api/domains/{name}").status_code == 404
        elif path.endswith("/queues") and isinstance(body["name"], str) and body["name"].isalnum():
            assert api.get(f"{path}/{body['name']}").status_code in (400, 404)
    after = snapshot(api, world)
    assert after[:3] == before[:3]


def test_bad_publish_payloads_and_headers_are_4xx(api, world):
    q = f"/api/domains/{world}/queues/q"
    cases = [
        ({"n": "not a number"}, {}), ({}, {}), ({"n": 1}, {"X-Message-Id": "x" * 300}),
        ({"n": 1}, {"Idempotency-Key": "k" * 300}), ({"n": 1, "id": "i" * 300}, {}),
        ({"n": 1}, {f"X-Header-h{i}": "v" for i in range(70)}),
    ]
    before = snapshot(api, world)
    for payload, headers in cases:
        reply = api.post(f"{q}/messages", json=payload, headers=headers)
        assert_clean_error(reply, f"{payload} {list(headers)[:2]}")
    batch = api.post(f"{q}/messages/batch", json={"messages": [{"n": 1}]},
                     headers={"X-Message-Id": "one"})
    assert_clean_error(batch, "batch with X-Message-Id")
    too_many = api.post(f"{q}/messages/batch", json={"messages": [{"n": 1}] * 10_001})
    assert_clean_error(too_many, "batch too large")
    assert snapshot(api, world) == before


def test_bad_names_in_paths_are_4xx(api, world):
    sent = 0
    for name in BAD_NAMES:
        for path in (f"/api/domains/{name}", f"/api/domains/{name}/queues",
                     f"/api/domains/{world}/queues/{name}",
                     f"/api/domains/{world}/queues/{name}/messages",
                     f"/api/domains/{world}/queues/q/consumer-groups/{name}",
                     f"/api/domains/{world}/queues/q/consumer-groups/{name}/messages",
                     f"/api/domains/{world}/queues/q/consumer-groups/g/consumers/{name}"):
            for method in ("GET", "POST", "PUT", "DELETE"):
                reply = api.request(method, path, json={"n": 1})
                assert_clean_error(reply, f"{method} {path}")
                sent += 1
    assert sent > 250


def test_bad_query_parameters_are_400(api, world):
    q = f"/api/domains/{world}/queues/q"
    before = snapshot(api, world)
    for value in BAD_PARAMS:
        for path, param in ((f"{q}/consumer-groups/g/messages", "count"),
                            (f"{q}/consumer-groups/g/messages", "timeout"),
                            (f"{q}/messages?group=g", "max"),
                            (f"{q}/messages?group=g", "timeout"),
                            (f"{q}/messages?max=1", "group"),
                            (f"{q}/consumer-groups/g/messages", "consumer"),
                            (f"{q}/consumer-groups/g/pending", "limit")):
            if param == "timeout" and value in ("0", "1.5"):
                continue  # valid: don't wait / fractional seconds
            if param in ("group", "consumer") and value not in BAD_NAMES_IN_QUERY:
                continue  # "-1", "abc", "0x10" ... are valid names
            joiner = "&" if "?" in path else "?"
            reply = api.get(f"{path}{joiner}{param}={value}")
            assert_clean_error(reply, f"{path} {param}={value!r}")
    assert snapshot(api, world)[:2] == before[:2]


def test_unknown_paths_are_404_and_wrong_methods_405_both_json(api, world):
    for path in ("/nope", "/api", "/api/domainz", f"/api/domains/{world}/queues/q/nothing",
                 "/api/domains/a/b/c/d/e/f"):
        reply = api.get(path)
        assert reply.status_code == 404
        assert reply.json()["error"] == "not_found"
    for method, path in (("PATCH", "/api/domains"), ("DELETE", "/api/health"),
                         ("PUT", f"/api/domains/{world}/queues/q/messages"),
                         ("GET", f"/api/domains/{world}/queues/q/consumer-groups/g/ack")):
        reply = api.request(method, path)
        assert reply.status_code == 405
        assert reply.json()["error"] == "method_not_allowed"
        assert "Allow" in reply.headers


def test_broker_is_healthy_and_working_after_the_abuse(api, world):
    test_malformed_bodies_are_4xx_and_change_nothing(api, world)
    assert api.get("/health").json()["status"] == "ok"
    q = f"/api/domains/{world}/queues/q"
    sent = api.post(f"{q}/messages", json={"n": 2})
    assert sent.status_code == 201
    got = api.get(f"{q}/consumer-groups/g/messages", params={"count": 10}).json()
    assert [m["payload"]["n"] for m in got["messages"]] == [1, 2]


# --- durations are strings (API.md): a bare number is refused, not read as seconds ------------


@pytest.mark.parametrize(("path", "body", "field"), [
    ("/queues", {"name": "t1", "config": {"ttl": 86400}}, "ttl"),
    ("/queues", {"name": "t2", "config": {"ackTimeout": 30}}, "ackTimeout"),
    ("/queues", {"name": "t3", "config": {"retryConfig": {"initialDelay": 1.5}}},
     "initialDelay"),
    ("/queues", {"name": "t4", "config": {"circuitBreakerConfig": {"openTimeout": 30}}},
     "openTimeout"),
    ("/queues/q/consumer-groups", {"groupId": "g2", "ttl": 3600}, "ttl"),
    ("/queues/q/consumer-groups/g/nack", {"ids": ["x"], "delay": 5}, "delay"),
    ("/queues", {"name": "t5", "config": {"retryConfig": {"maxDelay": 60}}}, "maxDelay"),
    ("/queues/q/consumer-groups/g/extend", {"ids": ["x"], "by": 60}, "by"),
    ("/queues/q/consumer-groups/g/settle", {"ack": [], "nack": ["x"], "delay": 5}, "delay"),
    ("/queues/q/consumer-groups/g/ttl", {"ttl": 3600}, "ttl"),
])
def test_a_duration_given_as_a_bare_number_is_a_400_naming_the_form(
        api, world, path: str, body: dict, field: str) -> None:
    before = snapshot(api, world)
    method = api.put if path.endswith("/ttl") else api.post
    reply = method(f"/api/domains/{world}{path}", json=body)
    assert reply.status_code == 400, reply.text
    message = reply.json()["message"]
    assert field in message and "duration string such as" in message, message
    assert snapshot(api, world) == before
    assert api.get(f"/api/domains/{world}/queues/t1").status_code == 404
    # The same settings as strings are taken, and "0" and 0 both mean none.
    reply = api.put(f"/api/domains/{world}/queues/q/consumer-groups/g/ttl", json={"ttl": 0})
    assert reply.status_code == 200, reply.text


@pytest.mark.parametrize("name", [".", ".."])
def test_dot_names_are_refused_since_no_url_could_reach_them(api, name):
    reply = api.post("/api/domains", json={"name": name})
    assert reply.status_code == 400 and reply.json()["error"] in ("invalid_name",
                                                                    "invalid_parameter")
    domain = unique("dots")
    assert api.post("/api/domains", json={"name": domain}).status_code == 201
    reply = api.post(f"/api/domains/{domain}/queues", json={"name": name})
    assert reply.status_code == 400
    assert ".." in reply.json()["message"]
