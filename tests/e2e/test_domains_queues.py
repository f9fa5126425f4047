"""Domains and queues over HTTP, against a real broker."""

from __future__ import annotations

import pytest

from tests.conftest import unique

SEED_QUEUE_CONFIG = {
    "isPersistent": True, "maxSize": 10000, "ttl": "24h", "workerCount": 4,
    "retryEnabled": True,
    "retryConfig": {"maxRetries": 3, "initialDelay": "1s", "factor": 2.0, "maxDelay": "30s"},
    "circuitBreakerEnabled": True,
    "circuitBreakerConfig": {"errorThreshold": 0.5, "successThreshold": 5,
                             "minimumRequests": 10, "openTimeout": "30s"},
}


def test_health_answers_on_both_paths_with_shard_counts(api):
    for path in ("/health", "/api/health"):
        reply = api.get(path)
        assert reply.status_code == 200
        assert reply.json()["status"] == "ok"
        assert reply.json()["shards"] == {"up": 2, "total": 2}


def test_created_domain_is_listed_with_its_counts_and_schema(api):
    domain = unique("shop")
    schema = {"fields": {"order_id": "string", "amount": "number"}}
    created = api.post("/api/domains", json={"name": domain, "schema": schema})
    assert created.status_code == 201
    assert created.json() == {"status": "success", "domain": domain}
    api.post(f"/api/domains/{domain}/queues", json={"name": "a"})
    api.post(f"/api/domains/{domain}/queues", json={"name": "b"})
    api.post(f"/api/domains/{domain}/queues/a/messages", json={"order_id": "x", "amount": 1})
    listed = {d["name"]: d for d in api.get("/api/domains").json()["domains"]}
    assert listed[domain] == {"name": domain, "queueCount": 2, "messageCount": 1}
    detail = api.get(f"/api/domains/{domain}").json()
    assert detail["schema"] == schema
    assert [q["name"] for q in detail["queues"]] == ["a", "b"]
    assert detail["routes"] == []


def test_creating_an_existing_domain_is_a_conflict(api):
    domain = unique("dup")
    assert api.post("/api/domains", json={"name": domain}).status_code == 201
    again = api.post("/api/domains", json={"name": domain})
    assert again.status_code == 409
    assert again.json()["error"] == "domain_exists"


def test_deleting_a_domain_deletes_its_queues_and_messages(api):
    domain = unique("gone")
    api.post("/api/domains", json={"name": domain})
    for name in ("q1", "q2", "q3"):
        api.post(f"/api/domains/{domain}/queues", json={"name": name})
        api.post(f"/api/domains/{domain}/queues/{name}/messages", json={"n": 1})
    assert api.delete(f"/api/domains/{domain}").status_code == 200
    assert api.get(f"/api/domains/{domain}").status_code == 404
    assert domain not in [d["name"] for d in api.get("/api/domains").json()["domains"]]
    # Recreated under the same name, it starts empty: nothing of the old incarnation shows.
    api.post("/api/domains", json={"name": domain})
    assert api.get(f"/api/domains/{domain}/queues").json() == {"queues": []}
    api.post(f"/api/domains/{domain}/queues", json={"name": "q1"})
    queue = api.get(f"/api/domains/{domain}/queues/q1").json()
    assert (queue["messageCount"], queue["lastPosition"]) == (0, 0)


def test_queue_config_echoes_every_seed_default(api):
    domain = unique("cfg")
    api.post("/api/domains", json={"name": domain})
    created = api.post(f"/api/domains/{domain}/queues", json={"name": "plain"})
    assert created.status_code == 201
    assert created.json()["config"] == {
        "isPersistent": True, "maxSize": 1000, "ttl": "24h", "workerCount": 2,
        "retryEnabled": False,
        "retryConfig": {"maxRetries": 3, "initialDelay": "1s", "factor": 2.0, "maxDelay": "30s"},
        "circuitBreakerEnabled": False,
        "circuitBreakerConfig": {"errorThreshold": 0.5, "successThreshold": 5,
                                 "minimumRequests": 10, "openTimeout": "30s"},
        "ackTimeout": "30s", "retention": "limits",
    }


def test_queue_config_from_the_seed_is_kept_as_given(api):
    domain = unique("seedcfg")
    api.post("/api/domains", json={"name": domain})
    created = api.post(f"/api/domains/{domain}/queues",
                       json={"name": "orders", "config": SEED_QUEUE_CONFIG})
    assert created.status_code == 201
    config = api.get(f"/api/domains/{domain}/queues/orders").json()["config"]
    for key, value in SEED_QUEUE_CONFIG.items():
        assert config[key] == value


def test_queue_config_keys_are_matched_case_insensitively(api):
    domain = unique("case")
    api.post("/api/domains", json={"name": domain})
    created = api.post(f"/api/domains/{domain}/queues",
                       json={"NAME": "q", "config": {"maxsize": 7, "ISPERSISTENT": False}})
    assert created.status_code == 201
    assert created.json()["config"]["maxSize"] == 7
    assert created.json()["config"]["isPersistent"] is False


@pytest.mark.parametrize("config, names", [
    ({"maxSize": "big"}, "maxSize"),
    ({"maxSize": 0}, "maxSize"),
    ({"ttl": "forever"}, "ttl"),
    ({"retryConfig": {"factor": "x"}}, "factor"),
    ({"retention": "sometimes"}, "retention"),
    ({"maxSzie": 3}, "maxSzie"),
])
def test_bad_queue_config_is_a_400_naming_the_key_and_creates_nothing(api, config, names):
    domain = unique("badcfg")
    api.post("/api/domains", json={"name": domain})
    reply = api.post(f"/api/domains/{domain}/queues", json={"name": "q", "config": config})
    assert reply.status_code == 400
    assert reply.json()["error"] == "invalid_config"
    assert names in reply.json()["message"]
    assert api.get(f"/api/domains/{domain}/queues").json() == {"queues": []}


def test_queue_in_an_unknown_domain_is_a_404(api):
    reply = api.post(f"/api/domains/{unique('nope')}/queues", json={"name": "q"})
    assert reply.status_code == 404
    assert reply.json()["error"] == "domain_not_found"


def test_domain_with_queue_configs_creates_its_queues(api):
    domain = unique("withq")
    reply = api.post("/api/domains", json={
        "name": domain, "queueConfigs": {"a": {"maxSize": 5}, "b": {}}})
    assert reply.status_code == 201
    queues = {q["name"]: q for q in api.get(f"/api/domains/{domain}/queues").json()["queues"]}
    assert set(queues) == {"a", "b"}
    assert queues["a"]["config"]["maxSize"] == 5


def test_deleted_queue_is_gone_and_a_new_one_starts_at_position_one(api):
    domain = unique("qdel")
    api.post("/api/domains", json={"name": domain})
    api.post(f"/api/domains/{domain}/queues", json={"name": "q"})
    api.post(f"/api/domains/{domain}/queues/q/messages", json={"n": 1})
    assert api.delete(f"/api/domains/{domain}/queues/q").status_code == 200
    assert api.get(f"/api/domains/{domain}/queues/q").status_code == 404
    assert api.delete(f"/api/domains/{domain}/queues/q").status_code == 404
    api.post(f"/api/domains/{domain}/queues", json={"name": "q"})
    again = api.post(f"/api/domains/{domain}/queues/q/messages", json={"n": 2})
    assert again.json()["position"] == 1


def test_queues_are_spread_over_both_shards(api, shared_broker):
    domain = unique("spread")
    api.post("/api/domains", json={"name": domain})
    for i in range(12):
        api.post(f"/api/domains/{domain}/queues", json={"name": f"q{i}"})
    with shared_broker.client() as client:
        assert len(client.get(f"/api/domains/{domain}/queues").json()["queues"]) == 12
    from gortms.partition import shard_for
    owners = {shard_for(domain, f"q{i}", 2) for i in range(12)}
    assert owners == {0, 1}
