"""The OpenAPI document against the real broker (issue 10): a valid OpenAPI 3.1 document that
describes exactly the routes the gateway serves, a page that renders it, both public with
authentication on, and schemathesis finding no 5xx and no answer the document does not allow.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any, Iterator

import httpx2
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from openapi_spec_validator import validate
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (content_type_conformance,
                                               response_headers_conformance,
                                               response_schema_conformance,
                                               status_code_conformance)

from gortms.config import generate_config, load_settings
from gateway.app import create_app
from gateway.openapi import NOT_API, WEBSOCKET_PATH
from tests.conftest import Broker, start_broker, unique
from tests.gateway.fakes import FakeShards

# What schemathesis checks on every answer: no 5xx but the documented ones, and status code,
# content type, headers and body as the document says.
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_headers_conformance, response_schema_conformance]
MAX_EXAMPLES = 12  # per operation: about 50 operations within the 90 s budget on 2 cores
LONG_POLL_S = 0.2  # generated consume timeouts are cut to this
Q_STREAM = "/api/domains/{domain}/queues/{queue}/stream"
NOT_FUZZED = {("GET", Q_STREAM)}  # an endless stream: checked on its own below


def served_routes() -> set[tuple[str, str]]:
    """(method, path template) of every HTTP route in the gateway's Starlette table (HEAD
    follows GET and is not listed; WebSockets are not in it: gateway/sockets.py), but those
    the document leaves out on purpose (NOT_API: the web UI's files)."""
    app = create_app(load_settings({}), FakeShards(lambda shard, request: None))
    return {(method, route.path) for route in app.router.routes
            for method in route.methods or () if method != "HEAD"} - NOT_API


def documented(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, item in document["paths"].items()
            for method in item}


class World:
    """Resources for generated requests to hit now and then: a domain, a queue with messages,
    a group holding deliveries to a registered consumer, and a user, a service account and an
    account request. The queue's are restored before a request that names them, since
    generated requests delete and change them too."""

    def __init__(self, api: httpx2.Client) -> None:
        self.api = api
        self.domain = unique("oa")
        self.names = {"domain": self.domain, "queue": "q", "group": "g", "consumer": "c"}
        self.ids = {"/api/users/": self._created("/api/admin/users", "user"),
                    "/api/services/": self._created("/api/services", "svc"),
                    "/api/admin/account-requests/": self._created("/api/account-requests",
                                                                  "req")}
        self.restore()

    def _created(self, path: str, prefix: str) -> str:
        body = {"username": unique(prefix), "password": "a long passphrase",
                "name": unique(prefix), "permissions": ["*"]}
        reply = self.api.post(path, json=body)
        assert reply.status_code == 201, reply.text
        return reply.json()["id"]

    def restore(self) -> None:
        q = f"/api/domains/{self.domain}/queues/q"
        self.api.post("/api/domains", json={"name": self.domain})
        created = self.api.post(f"/api/domains/{self.domain}/queues", json={"name": "q"})
        self.api.post(f"{q}/consumer-groups", json={"groupId": "g"})
        self.api.post(f"{q}/consumer-groups/g/consumers", json={"consumerId": "c"})
        if created.status_code == 201:  # a new queue: messages, some delivered to "c"
            batch = {"messages": [{"n": n} for n in range(50)]}
            assert self.api.post(f"{q}/messages/batch", json=batch).status_code == 201
            self.api.get(f"{q}/consumer-groups/g/messages", params={"count": 20,
                                                                    "consumer": "c"})

    def ensure_record(self, case: Any) -> None:
        """A record the case names that an earlier request deleted (or an account request
        already reviewed) is made again, and the case names the new one."""
        for prefix, record in self.ids.items():
            if case.path_parameters.get("id") != record:
                continue
            found = self.api.get(prefix.replace("/api/users/", "/api/admin/users/") + record)
            if prefix == "/api/users/" or (found.status_code == 200 and
                                           found.json().get("status", "pending") == "pending"):
                return  # users are not deleted through the API
            path = {"/api/services/": "/api/services",
                    "/api/admin/account-requests/": "/api/account-requests"}[prefix]
            self.ids[prefix] = case.path_parameters["id"] = self._created(path, "again")

    def names_in(self, path: str) -> dict[str, str]:
        found = {k: v for k, v in self.names.items() if "{" + k + "}" in path}
        for prefix, record in self.ids.items():
            if path.startswith(prefix + "{id}"):
                found["id"] = record
        return found


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    # With a config file of its own, for the settings routes to change.
    where = tmp_path_factory.mktemp("openapi")
    config = where / "config.yaml"
    config.write_text(generate_config())
    broker = start_broker(where / "data", GORTMS_CONFIG=str(config))
    yield broker
    assert broker.stop() == 0, broker.output()


@pytest.fixture(scope="module")
def api(broker: Broker) -> Iterator[httpx2.Client]:
    with broker.client() as client:
        yield client


@pytest.fixture(scope="module")
def document(api: httpx2.Client) -> dict[str, Any]:
    reply = api.get("/api/openapi.json")
    assert reply.status_code == 200
    assert reply.headers["content-type"] == "application/json"
    return reply.json()


# --- the document -------------------------------------------------------------------------------


def test_the_document_is_valid_openapi_3_1(document):
    assert document["openapi"] == "3.1.0"
    validate(document)  # openapi-spec-validator: the 3.1 meta-schema and its rules


def test_every_served_route_is_documented_and_every_documented_route_is_served(document):
    served = served_routes()
    assert len(served) >= 45
    assert served - documented(document) == set(), "routes without documentation"
    assert documented(document) - served == set(), "documented routes the gateway lacks"


def test_websockets_are_described_apart_from_the_http_operations(document):
    assert WEBSOCKET_PATH not in document["paths"]
    [socket] = document["x-websockets"]
    assert socket["path"] == WEBSOCKET_PATH and "consume" in socket["clientFrames"]
    assert WEBSOCKET_PATH in document["info"]["description"]


def test_every_error_answer_is_the_shared_error_shape(document):
    errors = 0
    for path, item in document["paths"].items():
        for method, op in item.items():
            for status, response in op["responses"].items():
                if int(status) >= 400 and path not in ("/health", "/api/health"):
                    assert response == {"$ref": f"#/components/responses/E{status}"}, \
                        (method, path, status)
                    errors += 1
    assert errors > 200
    for response in document["components"]["responses"].values():
        assert response["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/Error"}


def test_the_document_states_what_the_code_enforces(document):
    schemas = document["components"]["schemas"]
    params = document["components"]["parameters"]
    assert schemas["Name"]["pattern"] == r"^(?!\.\.?$)[A-Za-z0-9._:-]{1,128}$"
    assert params["domain"]["schema"]["allOf"][0] == {"$ref": "#/components/schemas/Name"}
    config = schemas["QueueConfigInput"]
    assert config["additionalProperties"] is False  # unknown keys are a 400
    assert config["properties"]["workerCount"] == {"type": "integer", "minimum": 1,
                                                   "maximum": 1024}
    consume = document["paths"]["/api/domains/{domain}/queues/{queue}/messages"]["get"]
    query = {p["name"]: p for p in consume["parameters"] if p.get("in") == "query"}
    assert query["max"]["schema"] == {"type": "integer", "minimum": 1, "maximum": 1000}
    assert query["timeout"]["schema"]["maximum"] == 60 and query["group"]["required"]
    batch = schemas["BatchPublish"]["properties"]["messages"]
    assert batch["maxItems"] == 10_000  # gateway.maxBatchMessages


# --- public, and the page -----------------------------------------------------------------------


def test_the_document_and_the_page_need_no_credential_with_authentication_on(broker_factory):
    secure = broker_factory(GORTMS_SECURITY_ENABLEAUTHENTICATION="true")
    with secure.client() as client:
        assert client.get("/api/domains").status_code == 401
        assert client.get("/api/openapi.json").json()["openapi"] == "3.1.0"
        assert client.get("/api/docs").status_code == 200


def test_the_docs_page_is_html_that_loads_the_document_and_nothing_else(api):
    reply = api.get("/api/docs")
    assert reply.status_code == 200
    assert reply.headers["content-type"] == "text/html; charset=utf-8"
    page = reply.text
    assert page.startswith("<!doctype html>")
    # The page fetches the document next to it: /api/docs -> /api/openapi.json.
    [url] = re.findall(r'DOCUMENT_URL = "([^"]+)"', page)
    assert httpx2.URL(api.base_url).join("/api/docs").join(url).path == "/api/openapi.json"
    assert "fetch(DOCUMENT_URL" in page
    # Self-contained: no script, style, font or image from anywhere else.
    assert not re.search(r"\b(src|href)\s*=\s*[\"']?(https?:)?//", page)
    assert not re.search(r"@import|url\(", page)


def test_the_stream_answers_server_sent_events_as_documented(api, document, world):
    op = document["paths"][Q_STREAM]["get"]
    assert list(op["responses"]["200"]["content"]) == ["text/event-stream"]
    path = f"/api/domains/{world.domain}/queues/q/stream"
    with api.stream("GET", path) as reply:
        assert reply.status_code == 200
        assert reply.headers["content-type"].startswith("text/event-stream")
    missing = api.get(f"/api/domains/{world.domain}/queues/nope/stream")
    assert missing.status_code == 404 and "404" in op["responses"]
    assert set(missing.json()) == {"error", "message"}


# --- schemathesis against the live broker ---------------------------------------------------------


@pytest.fixture(scope="module")
def world(api: httpx2.Client) -> World:
    return World(api)


@pytest.fixture(scope="module")
def live_schema(broker: Broker, world: World, document: dict[str, Any]) -> Any:
    """The document the broker serves, loaded by schemathesis, for the routes that exist."""
    config = schemathesis.Config.from_dict({
        "base-url": broker.url, "request-timeout": 15,
        "generation": {"mode": "all", "max-examples": MAX_EXAMPLES, "database": "none"},
        "phases": {"stateful": {"enabled": False}},
    })
    schema = schemathesis.openapi.from_dict(document, config=config)
    lacking = documented(document) - served_routes() | NOT_FUZZED
    for method, path in lacking:
        schema = schema.exclude(method=method, path=path)

    @schema.hook
    def flatmap_path_parameters(context: Any, path_parameters: dict[str, Any]) -> Any:
        # Half the time, the names of resources that exist (else every request is a 404).
        real = world.names_in(context.operation.path)
        if not real or not isinstance(path_parameters, dict):
            return st.just(path_parameters)
        return st.sampled_from([path_parameters, {**path_parameters, **real}])

    @schema.hook
    def map_body(context: Any, body: Any) -> Any:
        # JSON Schema's "integer" takes 5.0 too, and hypothesis generates such numbers; the
        # server wants integer literals (the document says so in words): send them as such.
        return _integral_floats_as_ints(body)

    @schema.hook
    def map_query(context: Any, query: dict[str, Any]) -> dict[str, Any]:
        # A long poll waits up to its timeout when nothing is deliverable: keep it short.
        timeout = query.get("timeout") if isinstance(query, dict) else None
        if isinstance(timeout, (int, float)) and not isinstance(timeout, bool) and \
                timeout > LONG_POLL_S:
            query["timeout"] = LONG_POLL_S
        return query
    return schema


def _integral_floats_as_ints(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**63:
        return int(value)
    if isinstance(value, list):
        return [_integral_floats_as_ints(item) for item in value]
    if isinstance(value, dict):
        return {key: _integral_floats_as_ints(item) for key, item in value.items()}
    return value


def test_generated_requests_get_no_5xx_and_answers_the_document_allows(live_schema, world):
    """Each operation gets MAX_EXAMPLES valid and MAX_EXAMPLES invalid requests; every
    failure of every operation is collected, so one run shows them all."""
    failures = []
    answered: dict[str, Counter[int]] = {}
    operations = [result.ok() for result in live_schema.get_all_operations()]
    assert len(operations) >= 45
    for operation in operations:
        statuses = answered.setdefault(operation.label, Counter())
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                _fuzz(operation, mode, world, statuses)
            except Unsatisfiable:  # nothing to get wrong: no parameter, no body
                assert mode is GenerationMode.NEGATIVE, operation.label
            except (Exception, BaseExceptionGroup) as exc:  # a check failed: go on
                failures.append(f"{operation.label} ({mode.value}): {exc}")
    print("\n".join(f"{label}: {dict(sorted(c.items()))}" for label, c in answered.items()))
    assert not failures, "\n\n".join(failures)
    # The generated requests reached real resources, not only 4xx answers.
    succeeded = [label for label, c in answered.items() if any(s < 300 for s in c)]
    assert len(succeeded) >= len(operations) * 2 // 3, sorted(set(answered) - set(succeeded))


def _fuzz(operation: Any, mode: GenerationMode, world: World, statuses: Counter[int]) -> None:
    @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None,
              phases=(Phase.explicit, Phase.generate), suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        if world.domain in (case.path_parameters or {}).values():
            world.restore()  # generated requests delete and change it too
        if "id" in (case.path_parameters or {}):
            world.ensure_record(case)
        response = case.call_and_validate(checks=CHECKS, timeout=15)
        statuses[response.status_code] += 1

    run()
