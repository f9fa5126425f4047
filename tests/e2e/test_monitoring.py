"""Monitoring against the real broker (issue 10, points 1-3): /api/stats, /api/resources and
/metrics, merged across every shard, every gateway worker and the supervisor."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from typing import Any, Callable, Iterator

import httpx2
import psutil
import pytest
from jsonschema import Draft202012Validator
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from gortms.partition import shard_for
from tests.conftest import Broker, start_broker, unique
from tests.e2e.test_messages import consume

FAST = {"GORTMS_MONITORING_INTERVAL": "200ms", "GORTMS_MONITORING_HISTORYSIZE": "5",
        "GORTMS_GATEWAY_WORKERS": "2"}


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """Two shards, two gateway workers, reports every 200 ms, 5 samples of history."""
    broker = start_broker(tmp_path_factory.mktemp("monitoring") / "data", **FAST)
    yield broker
    assert broker.stop() == 0, broker.output()


@pytest.fixture
def api(broker: Broker) -> Iterator[httpx2.Client]:
    with broker.client() as client:
        yield client


def eventually(what: str, check: Callable[[], Any], timeout_s: float = 20.0) -> Any:
    """Poll `check` (bounded) until it answers something true; that answer."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, f"{what}: not within {timeout_s}s"
        time.sleep(0.05)


def names_on_both_shards(prefix: str, domain: str) -> list[str]:
    """Two queue names of `domain`, one owned by each shard."""
    found: dict[int, str] = {}
    for i in range(1000):
        found.setdefault(shard_for(domain, f"{prefix}{i}", 2), f"{prefix}{i}")
        if len(found) == 2:
            return [found[0], found[1]]
    raise AssertionError("no names for both shards")


def make(api: httpx2.Client, domain: str, queue: str, **config: Any) -> str:
    if api.get(f"/api/domains/{domain}").status_code == 404:
        assert api.post("/api/domains", json={"name": domain}).status_code == 201
    reply = api.post(f"/api/domains/{domain}/queues", json={"name": queue, "config": config})
    assert reply.status_code == 201, reply.text
    return f"/api/domains/{domain}/queues/{queue}"


def publish(api: httpx2.Client, queue: str, count: int) -> None:
    reply = api.post(f"{queue}/messages/batch",
                     json={"messages": [{"n": i} for i in range(count)]})
    assert reply.status_code == 201, reply.text


def metric(text: str, name: str, **labels: str) -> float | None:
    """The value of the sample `name{labels...}` (the labels given must all match)."""
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        sample_name, _, rest = line.partition("{") if "{" in line else (line.split()[0], "", "")
        if sample_name != name:
            continue
        found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', rest))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


# --- /api/stats -----------------------------------------------------------------------------


def test_stats_count_across_shards_with_rates_top_queues_alerts_and_events(api):
    domain = unique("stats")
    first, second = names_on_both_shards("q", domain)
    a = make(api, domain, first, maxSize=20)
    b = make(api, domain, second, maxSize=20)
    publish(api, a, 15)  # 75 %: a warning
    publish(api, b, 18)  # 90 %: critical
    api.post(f"{a}/consumer-groups", json={"groupId": "g"})
    assert len(consume(api, a, "g", count=5)) == 5
    assert api.delete(f"{a}/consumer-groups/g").status_code == 200

    stats = api.get("/api/stats", params={"period": "1h", "granularity": "1m"})
    assert stats.status_code == 200
    body = stats.json()
    assert body["shards"] == {"up": 2, "total": 2, "down": []}
    mine = [q for q in api.get(f"/api/domains/{domain}/queues").json()["queues"]]
    assert len(mine) == 2
    assert body["queues"] >= 2 and body["messages"] >= 33 and body["domains"] >= 1
    rates = body["messageRates"]
    assert len(rates) == 60  # 1h in 1m buckets, the last one running
    assert rates == sorted(rates, key=lambda r: r["timestamp"])
    assert sum(r["published"] for r in rates) == rates[-1]["publishedTotal"] >= 33
    assert sum(r["consumed"] for r in rates) == rates[-1]["consumedTotal"] >= 5
    assert domain in [d["name"] for d in body["activeDomains"]]
    top = {(q["domain"], q["queue"]): q for q in body["topQueues"]}
    assert top[(domain, second)]["usage"] == 90.0 and top[(domain, first)]["usage"] == 75.0
    alerts = {(q["domain"], q["queue"]): q["level"] for q in body["queueAlerts"]}
    assert alerts[(domain, first)] == "warning" and alerts[(domain, second)] == "critical"
    events = [(e["type"], e["queue"], e["group"]) for e in body["recentEvents"]
              if e["domain"] == domain]
    for expected in [("domain_created", None, None), ("queue_created", first, None),
                     ("queue_created", second, None), ("capacity_warning", first, None),
                     ("capacity_critical", second, None), ("group_created", first, "g"),
                     ("group_deleted", first, "g")]:
        assert expected in events, (expected, events)
    stamps = [e["timestamp"] for e in body["recentEvents"]]
    assert stamps == sorted(stamps, reverse=True)


def test_stats_record_queue_deletion_circuit_transitions_and_dead_letters(api):
    domain = unique("events")
    queue = make(api, domain, "q", retryEnabled=True,
                 retryConfig={"maxRetries": 0, "initialDelay": "1s"},
                 circuitBreakerEnabled=True,
                 circuitBreakerConfig={"minimumRequests": 1, "errorThreshold": 0.5,
                                       "successThreshold": 1, "openTimeout": "30s"})
    publish(api, queue, 1)
    api.post(f"{queue}/consumer-groups", json={"groupId": "g"})
    [message] = consume(api, queue, "g", count=1)
    reply = api.post(f"{queue}/consumer-groups/g/nack", json={"ids": [message["id"]]})
    assert reply.json()["deadLettered"] == 1
    assert api.delete(f"{queue}.dlq").status_code == 200
    events = {e["type"] for e in api.get("/api/stats").json()["recentEvents"]
              if e["domain"] == domain}
    assert {"dead_lettered", "circuit_open", "queue_deleted"} <= events, events


@pytest.mark.parametrize("query", [
    {"period": "2h"}, {"granularity": "7m"}, {"period": "1h", "granularity": ""},
    {"period": "bogus"}])
def test_invalid_stats_parameters_are_a_400_naming_the_choices(api, query):
    reply = api.get("/api/stats", params=query)
    assert reply.status_code == 400
    assert reply.json()["error"] == "invalid_parameter"
    assert "must be one of" in reply.json()["message"]


def test_a_granularity_as_long_as_the_period_gives_one_bucket(api):
    reply = api.get("/api/stats", params={"period": "1h", "granularity": "1h"})
    assert reply.status_code == 200 and len(reply.json()["messageRates"]) == 1
    assert api.get("/api/stats", params={"period": "6h", "granularity": "1h"}).status_code == 200


# --- /api/resources -------------------------------------------------------------------------


def test_resources_list_every_process_with_its_real_pid_and_totals(api, broker):
    pids = broker.pids()

    def everyone() -> dict | None:
        body = api.get("/api/resources/current").json()
        found = {(p["role"], p["index"]) for p in body["processes"]}
        want = {("supervisor", 0), ("shard", 0), ("shard", 1), ("gateway", 0), ("gateway", 1)}
        return body if found == want else None

    body = eventually("every process in /api/resources/current", everyone)
    for process in body["processes"]:
        name = "supervisor" if process["role"] == "supervisor" else \
            f"{process['role']}-{process['index']}"
        assert process["pid"] == pids[name]
        real = psutil.Process(process["pid"])
        assert process["threads"] >= 1 and process["openFiles"] > 0
        assert 0.5 * real.memory_info().rss < process["rssBytes"] < 2 * real.memory_info().rss
    totals = body["totals"]
    assert totals["processes"] == 5
    assert totals["rssBytes"] == sum(p["rssBytes"] for p in body["processes"])
    assert totals["threads"] == sum(p["threads"] for p in body["processes"])
    shards = [p for p in body["processes"] if p["role"] == "shard"]
    assert all(p["diskBytes"] > 0 for p in shards)
    assert body["disk"]["totalBytes"] == sum(p["diskBytes"] for p in shards)


def test_resource_history_is_bounded_and_limited(api):
    def full() -> dict | None:
        body = api.get("/api/resources/history", params={"limit": 1000}).json()
        counts = [len(p["samples"]) for p in body["processes"]]
        return body if len(counts) == 5 and min(counts) == 5 else None

    body = eventually("5 samples of history for every process", full)
    # monitoring.historySize is 5: never more, however long it ran
    assert max(len(p["samples"]) for p in body["processes"]) == 5
    time.sleep(0.5)  # more samples were taken meanwhile (every 200 ms)
    again = api.get("/api/resources/history", params={"limit": 1000}).json()
    assert max(len(p["samples"]) for p in again["processes"]) == 5
    two = api.get("/api/resources/history", params={"limit": 2}).json()
    assert {len(p["samples"]) for p in two["processes"]} == {2}
    assert 1 <= len(two["totals"]) <= 2
    for process in two["processes"]:
        stamps = [s["timestamp"] for s in process["samples"]]
        assert stamps == sorted(stamps)


@pytest.mark.parametrize("limit", ["0", "1001", "ten", "-1"])
def test_a_bad_history_limit_is_a_400(api, limit):
    reply = api.get("/api/resources/history", params={"limit": limit})
    assert reply.status_code == 400 and reply.json()["error"] == "invalid_parameter"


def test_domain_resources_show_each_queue_with_its_shard_messages_and_bytes(api):
    domain = unique("res")
    first, second = names_on_both_shards("r", domain)
    make(api, domain, first)
    make(api, domain, second)
    publish(api, f"/api/domains/{domain}/queues/{first}", 3)
    body = api.get(f"/api/resources/domains/{domain}").json()
    queues = {q["queue"]: q for q in body["queues"]}
    assert queues[first]["shard"] == shard_for(domain, first, 2)
    assert queues[second]["shard"] == shard_for(domain, second, 2)
    assert queues[first]["messages"] == 3 and queues[first]["bytes"] > 0
    assert queues[second]["messages"] == 0 and queues[second]["bytes"] == 0
    assert body["totals"] == {"queues": 2, "messages": 3, "bytes": queues[first]["bytes"]}
    assert len(body["disk"]["shards"]) == 2
    missing = api.get(f"/api/resources/domains/{unique('none')}")
    assert missing.status_code == 404 and missing.json()["error"] == "domain_not_found"
    assert api.get("/api/resources/domains/bad%20name").status_code == 400


# --- /metrics --------------------------------------------------------------------------------


def test_metrics_count_every_outcome_exactly(api):
    domain = unique("metrics")
    queue = make(api, domain, "q", retryEnabled=True, ackTimeout="1s",
                 retryConfig={"maxRetries": 1, "initialDelay": "1s"})
    publish(api, queue, 6)
    api.post(f"{queue}/consumer-groups", json={"groupId": "g"})
    first = consume(api, queue, "g", count=4)
    api.post(f"{queue}/consumer-groups/g/ack", json={"ids": [m["id"] for m in first[:2]]})
    api.post(f"{queue}/consumer-groups/g/nack", json={"ids": [first[2]["id"]], "delay": "0"})
    # first[3] is left to time out (ackTimeout 1s); the nacked one comes back at once
    again = consume(api, queue, "g", count=1)
    assert again[0]["id"] == first[2]["id"] and again[0]["deliveryCount"] == 2
    api.post(f"{queue}/consumer-groups/g/nack", json={"ids": [again[0]["id"]]})  # dead now

    def timed_out() -> str | None:
        text = api.get("/metrics").text
        labels = {"domain": domain, "queue": "q", "group": "g"}
        return text if metric(text, "gortms_ack_timeouts_total", **labels) == 1 else None

    text = eventually("the lease of the 4th message running out", timed_out)
    q = {"domain": domain, "queue": "q"}
    g = {**q, "group": "g"}
    assert metric(text, "gortms_messages_published_total", **q) == 6
    assert metric(text, "gortms_messages_dead_lettered_total", **q) == 1
    assert metric(text, "gortms_messages_published_total", domain=domain, queue="q.dlq") == 1
    assert metric(text, "gortms_messages_delivered_total", **g) == 5
    assert metric(text, "gortms_messages_redelivered_total", **g) == 1
    assert metric(text, "gortms_messages_acked_total", **g) == 2
    assert metric(text, "gortms_messages_nacked_total", **g) == 2
    assert metric(text, "gortms_queue_messages", **q) == 6
    assert metric(text, "gortms_queue_bytes", **q) > 0
    assert metric(text, "gortms_group_lag_messages", **g) == 2  # 2 never delivered
    assert metric(text, "gortms_group_oldest_undelivered_age_seconds", **g) > 0
    assert metric(text, "gortms_group_pending_messages", **g) == 1  # the timed-out one waits
    assert metric(text, "gortms_group_oldest_unacked_age_seconds", **g) >= 1


def test_metrics_expired_and_circuit_state(api):
    domain = unique("circ")
    queue = make(api, domain, "q", ttl="1s", circuitBreakerEnabled=True,
                 circuitBreakerConfig={"minimumRequests": 1, "errorThreshold": 0.5,
                                       "successThreshold": 1, "openTimeout": "30s"})
    publish(api, queue, 3)
    api.post(f"{queue}/consumer-groups", json={"groupId": "g"})
    [message] = consume(api, queue, "g", count=1)
    api.post(f"{queue}/consumer-groups/g/nack", json={"ids": [message["id"]]})
    g = {"domain": domain, "queue": "q", "group": "g"}

    def expired() -> str | None:
        text = api.get("/metrics").text
        value = metric(text, "gortms_messages_expired_total", domain=domain, queue="q")
        return text if value == 3 else None

    text = eventually("the ttl deleting all 3 messages", expired)
    assert metric(text, "gortms_group_circuit_state", **g, state="open") == 1
    assert metric(text, "gortms_group_circuit_state", **g, state="closed") == 0
    assert metric(text, "gortms_queue_messages", domain=domain, queue="q") == 0


def test_metrics_merge_every_worker_and_every_shard(api, broker):
    domain = unique("merge")
    first, second = names_on_both_shards("m", domain)
    a, b = make(api, domain, first), make(api, domain, second)
    # New connections each time: the two workers share the listening socket, both serve.
    sent = 40
    for _ in range(sent // 2):
        for queue in (a, b):
            with broker.client() as fresh:
                assert fresh.post(f"{queue}/messages", json={}).status_code == 201
    route = "/api/domains/{domain}/queues/{queue}/messages"

    def merged() -> str | None:
        text = api.get("/metrics").text
        counts = [metric(text, "gortms_http_requests_total", worker=w, route=route,
                         method="POST", status="201") or 0 for w in ("0", "1")]
        return text if sum(counts) >= sent and all(counts) else None

    text = eventually("both workers' publishes in /metrics", merged)
    for shard in ("0", "1"):
        assert metric(text, "gortms_shard_up", shard=shard) == 1
        assert metric(text, "gortms_shard_request_duration_seconds_count", shard=shard,
                      op="publish") >= sent // 2
        assert metric(text, "gortms_shard_write_batch_writes_count", shard=shard) >= 1
        assert metric(text, "gortms_shard_fsyncs_total", shard=shard) >= 1
        assert metric(text, "gortms_shard_disk_bytes", shard=shard) > 0
    for role, index in [("supervisor", "0"), ("shard", "0"), ("shard", "1"),
                        ("gateway", "0"), ("gateway", "1")]:
        assert metric(text, "gortms_process_resident_memory_bytes", role=role,
                      index=index) > 0, (role, index)
    assert metric(text, "gortms_http_request_duration_seconds_count", route=route,
                  method="POST") > 0
    assert metric(text, "gortms_messages_published_total", domain=domain, queue=first) == 20
    assert metric(text, "gortms_messages_published_total", domain=domain, queue=second) == 20


def test_promtool_accepts_the_metrics(api):
    promtool = shutil.which("promtool")
    if promtool is None:
        if os.environ.get("CI_REQUIRE_TOOLS"):
            pytest.fail("promtool is not installed (apt-get install prometheus)")
        pytest.skip("promtool is not installed (apt-get install prometheus)")
    domain = unique("prom")
    queue = make(api, domain, "q.x", circuitBreakerEnabled=True)
    publish(api, queue, 2)
    api.post(f"{queue}/consumer-groups", json={"groupId": "g"})
    consume(api, queue, "g", count=1)
    reply = api.get("/metrics")
    assert reply.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    checked = subprocess.run([promtool, "check", "metrics"], input=reply.content,
                             capture_output=True, timeout=60)
    assert checked.returncode == 0, checked.stdout.decode() + checked.stderr.decode()


# --- restarts --------------------------------------------------------------------------------


def test_a_shard_restart_is_a_recent_event_and_its_figures_come_back(broker_factory):
    broker = broker_factory(GORTMS_MONITORING_INTERVAL="200ms")
    with broker.client() as api:
        old = broker.pids()["shard-1"]
        mark = len(broker.lines)
        os.kill(old, signal.SIGKILL)
        broker.wait_for_line(r"shard-1 ready", after=mark)

        def restarted() -> list | None:
            events = api.get("/api/stats").json()["recentEvents"]
            found = [e for e in events if e["type"] == "shard_restarted"]
            return found or None

        [event] = eventually("the restart in recentEvents", restarted)
        assert event["severity"] == "critical"
        assert f"pid {old}" in event["message"] and "SIGKILL" in event["message"]
        body = eventually("shard 1 sampled again", lambda: [
            p for p in api.get("/api/resources/current").json()["processes"]
            if p["role"] == "shard" and p["index"] == 1 and p["pid"] != old])
        assert body[0]["pid"] == broker.pids()["shard-1"]


def test_monitoring_answers_with_a_shard_down(broker_factory):
    broker = broker_factory(GORTMS_SUPERVISOR_HANGTIMEOUT="30s")
    with broker.client() as api:
        pid = broker.pids()["shard-1"]
        os.kill(pid, signal.SIGSTOP)
        try:
            stats = api.get("/api/stats")
            assert stats.status_code == 200
            assert stats.json()["shards"] == {"up": 1, "total": 2, "down": [1]}
            text = api.get("/metrics").text
            assert metric(text, "gortms_shard_up", shard="1") == 0
            assert metric(text, "gortms_shard_up", shard="0") == 1
            current = api.get("/api/resources/current").json()
            assert current["shards"]["down"] == [1]
        finally:
            os.kill(pid, signal.SIGCONT)


def test_every_monitoring_answer_matches_the_openapi_document(api):
    document = api.get("/api/openapi.json").json()
    registry = Registry().with_resource("urn:doc", DRAFT202012.create_resource(document))
    domain = unique("doc")
    queue = make(api, domain, "q")
    publish(api, queue, 2)
    for path, component in [("/api/stats?period=6h&granularity=10s", "Stats"),
                            ("/api/resources/current", "Resources"),
                            ("/api/resources/history?limit=3", "ResourceHistory"),
                            (f"/api/resources/domains/{domain}", "DomainResources")]:
        reply = api.get(path)
        assert reply.status_code == 200
        validator = Draft202012Validator({"$ref": f"urn:doc#/components/schemas/{component}"},
                                         registry=registry)
        errors = [e.message for e in validator.iter_errors(reply.json())]
        assert errors == [], (path, errors[:3])
