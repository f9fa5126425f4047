"""Every HTTP operation of the gateway, as the OpenAPI document describes it.

One `Op` per (method, path) of gateway/app.py's route table, grouped as it is: the success
answers with their bodies, the request body and query parameters (consume and pending read
their query with the same Structs as the endpoints), and the error statuses the route can
answer. Errors that follow from the route's shape are added by `Op.errors`: 431 for every
request (headers over http.maxHeaderBytes), 401 and 403 behind a credential, 400 and 404
for names in the path, 400 and 413 for a body, 503 for a shard's answer; the others are
named per route. tests/e2e/test_openapi.py fails when a route and this list disagree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import msgspec
import msgspec.inspect as mi

from gortms.config import Settings
from gateway.groups import PendingQuery
from gateway.messages import MAX_HEADERS, MAX_IDEMPOTENCY_KEY, ConsumeQuery
from gateway.openapi_schemas import Schema, Schemas, ref

JSON = "application/json"
PROMETHEUS = "text/plain; version=0.0.4"

Q = "/api/domains/{domain}/queues/{queue}"
G = Q + "/consumer-groups/{group}"

# The three headers of a signed request, required together (docs/security.md).
HMAC = {"serviceId": [], "timestamp": [], "signature": []}
NAMED = ("domain", "queue", "group", "consumer")  # path parameters checked as names
# An account record written on a condition (gateway/accounts.py): 409 when it changed
# meanwhile (or the name is taken), 507 when the catalog shard's disk is low.
RECORD_WRITE = (409, 507)
_PARAM = re.compile(r"{(\w+)}")


@dataclass(frozen=True, slots=True)
class Op:
    method: str
    path: str
    summary: str
    ok: dict[int, str | tuple[str, Schema]]  # status: component, or (media type, schema)
    tag: str
    body: str | None = None
    body_required: bool = True
    query: tuple[Schema, ...] = ()
    headers: tuple[Schema, ...] = ()
    extra_errors: tuple[int, ...] = ()
    public: bool = False
    shards: bool = True  # answered from a shard (503 when it is down)
    retry_after: bool = False  # a success may carry Retry-After (an open circuit)
    description: str = ""
    security: list[dict[str, list[str]]] | None = None  # None: the document's default

    @property
    def path_params(self) -> list[str]:
        return _PARAM.findall(self.path)

    @property
    def errors(self) -> list[int]:
        found = {431, *self.extra_errors}
        if not self.public:
            found |= {401, 403}
        if self.path_params:
            found |= {404} | ({400} if set(self.path_params) & set(NAMED) else set())
        if self.body is not None:
            found |= {400, 413}
        if self.query:
            found.add(400)
        if self.shards:
            found.add(503)
        return sorted(found - set(self.ok))


def query_parameters(schemas: Schemas, struct: type[msgspec.Struct], required: tuple[str, ...]
                     = (), leave_out: tuple[str, ...] = (),
                     descriptions: dict[str, str] | None = None) -> tuple[Schema, ...]:
    """The query parameters an endpoint reads with `query_as(request, struct)`."""
    info = mi.type_info(struct)
    assert isinstance(info, mi.StructType)
    out = []
    for f in info.fields:
        if f.encode_name in leave_out:
            continue
        schema = schemas.type(f.type, reply=False)
        if not f.required and f.default is not None and f.default is not msgspec.NODEFAULT:
            schema = {**schema, "default": f.default}
        if "anyOf" in schema and {"type": "null"} in schema["anyOf"]:  # absent is None
            schema = next(s for s in schema["anyOf"] if s != {"type": "null"})
        param = {"name": f.encode_name, "in": "query", "schema": schema,
                 "required": f.encode_name in required}
        if descriptions and f.encode_name in descriptions:
            param["description"] = descriptions[f.encode_name]
        out.append(param)
    return tuple(out)


def _query(name: str, schema: Schema, description: str = "") -> Schema:
    return {"name": name, "in": "query", "schema": schema, "description": description}


def _header(name: str, schema: Schema, description: str) -> Schema:
    return {"name": name, "in": "header", "schema": schema, "description": description}


def operations(settings: Settings, schemas: Schemas) -> list[Op]:
    return [*_health_and_docs(), *_domains(), *_messages(schemas), *_groups(schemas),
            *_people(), *_services(), *_monitoring(settings)]


def _health_and_docs() -> list[Op]:
    health = {200: "Health", 503: "Health"}
    summary = "every shard answers a ping? (503 \"degraded\" while any is down)"
    return [
        Op("GET", "/health", summary, health, "health", public=True, shards=False),
        Op("GET", "/api/health", summary, health, "health", public=True, shards=False),
        Op("GET", "/api/openapi.json", "this document (OpenAPI 3.1)",
           {200: (JSON, {"type": "object"})}, "docs", public=True, shards=False),
        Op("GET", "/api/docs", "this document, rendered for people",
           {200: ("text/html; charset=utf-8", {"type": "string"})}, "docs", public=True,
           shards=False),
    ]


def _domains() -> list[Op]:
    d = "/api/domains/{domain}"
    return [
        Op("GET", "/api/domains", "list domains with queue and message counts",
           {200: "DomainList"}, "domains"),
        Op("POST", "/api/domains", "create a domain (and optionally its queues)",
           {201: "DomainCreated"}, "domains", body="DomainCreate", extra_errors=(409, 507),
           description="Needs manage on the name in the body. The schema and every queue "
                       "config are checked before anything is created."),
        Op("GET", d, "a domain: schema, queues", {200: "DomainDetail"}, "domains"),
        Op("DELETE", d, "delete a domain and everything in it", {200: "Deleted"}, "domains"),
        Op("GET", d + "/queues", "list a domain's queues", {200: "Queues"}, "queues"),
        Op("POST", d + "/queues", "create a queue", {201: "QueueCreated"}, "queues",
           body="QueueCreate", extra_errors=(409, 507)),
        Op("GET", Q, "a queue: config, positions, counts", {200: "QueueInfo"}, "queues"),
        Op("DELETE", Q, "delete a queue, its messages and groups", {200: "Deleted"},
           "queues"),
    ]


def _publish_headers(single: bool) -> tuple[Schema, ...]:
    found = [
        _header("Idempotency-Key", {"type": "string", "minLength": 1,
                                    "maxLength": MAX_IDEMPOTENCY_KEY},
                "a repeat within storage.dedupWindow stores nothing and answers 200 with the "
                "original result and \"duplicate\": true"),
        _header("Deliver-At", {"type": "string", "format": "date-time"},
                "keep the messages from every group until then (not with Delay)"),
        _header("Delay", ref("Duration"),
                "keep the messages from every group for this long (not with Deliver-At)"),
    ]
    if single:
        found.insert(0, _header("X-Message-Id", {"type": "string", "minLength": 1,
                                                 "maxLength": 256},
                                "the message id (wins over the payload's \"id\"); at most "
                                "256 bytes"))
    return tuple(found)


_HEADERS_NOTE = (f"`X-Header-<name>: <value>` request headers (at most {MAX_HEADERS}) become "
                 "the message's headers, names lower-cased.")


def _messages(schemas: Schemas) -> list[Op]:
    consume = {"count": "most messages returned (default 10); `count` wins over `max`",
               "max": "the same as count", "timeout": "seconds to wait when nothing is "
               "deliverable (0: answer at once)", "consumer": "who is consuming",
               "group": "the consumer group (created with the defaults if missing)"}
    return [
        Op("POST", Q + "/messages", "publish one message (the body is its payload)",
           {201: "Published", 200: "Published"}, "messages", body="Object",
           headers=_publish_headers(True), extra_errors=(422, 429, 507),
           description="Answered once the message is durable. 200: a repeat of an "
                       "Idempotency-Key. " + _HEADERS_NOTE),
        Op("GET", Q + "/messages", "consume through a group, creating it if need be",
           {200: "Deliveries"}, "messages", extra_errors=(429,), retry_after=True,
           query=query_parameters(schemas, ConsumeQuery, required=("group",),
                                  descriptions=consume),
           description="Long-polls up to `timeout` seconds. Creating the group needs "
                       "manage on the domain (else 403)."),
        Op("POST", Q + "/messages/batch", "publish many messages, all or nothing",
           {201: "BatchPublished", 200: "BatchPublished"}, "messages", body="BatchPublish",
           headers=_publish_headers(False), extra_errors=(422, 429, 507),
           description="X-Message-Id is refused (400): give each message an \"id\". "
                       + _HEADERS_NOTE),
        Op("GET", Q + "/stream", "Server-Sent Events: the queue's new messages (resumable)",
           {200: ("text/event-stream", {"type": "string"})}, "messages",
           query=(_query("from", {"type": "integer", "minimum": 0, "maximum": 2**53},
                         "replay what was stored after this position first"),),
           headers=(_header("Last-Event-ID", {"type": "string", "pattern": "^[0-9]*$"},
                            "as `from`; browsers' EventSource sends it by itself"),),
           security=[{"bearer": []}, {"tokenQuery": []}, HMAC],
           description="`id: <position>`, `event: message`, `data: <message JSON>`; "
                       "`event: lagged` with {\"dropped\": n} for a client too slow; "
                       "`event: end` when the queue is deleted."),
        Op("GET", G + "/messages", "consume (404 if no such group)", {200: "Deliveries"},
           "consumer groups", extra_errors=(429,), retry_after=True,
           query=query_parameters(schemas, ConsumeQuery, leave_out=("group",),
                                  descriptions=consume)),
    ]


def _groups(schemas: Schemas) -> list[Op]:
    pending = query_parameters(schemas, PendingQuery)
    group = "consumer groups"
    return [
        Op("GET", Q + "/consumer-groups", "list a queue's groups", {200: "Groups"}, group),
        Op("POST", Q + "/consumer-groups", "create a consumer group",
           {201: "GroupStatus", 200: "GroupStatus"}, group, body="GroupCreate",
           extra_errors=(409, 507),
           description="200: it exists with the same settings; 409: with other settings."),
        Op("POST", Q + "/dlq/redrive", "move dead letters from {queue}.dlq back to {queue}",
           {200: "Redriven"}, group, body="Redrive", body_required=False),
        Op("GET", G, "group status", {200: "GroupInfo"}, group),
        Op("PUT", G, "replay: move the group's position", {200: "GroupInfo"}, group,
           body="Seek"),
        Op("DELETE", G, "delete the group", {200: "Deleted"}, group),
        Op("POST", G + "/ack", "acknowledge deliveries", {200: "Acked"}, group, body="Ack"),
        Op("POST", G + "/nack", "a failure: retried with backoff, dead-lettered past "
           "maxRetries", {200: "Nacked"}, group, body="Nack"),
        Op("POST", G + "/extend", "lengthen the leases of in-flight deliveries",
           {200: "Extended"}, group, body="Extend"),
        Op("POST", G + "/settle", "a batch's acks and nacks in one request",
           {200: "Settled"}, group, body="Settle"),
        Op("GET", G + "/pending", "delivered, not yet acknowledged", {200: "PendingList"},
           group, query=pending),
        Op("PUT", G + "/ttl", "change the group's TTL", {200: "GroupInfo"}, group,
           body="GroupTtl"),
        Op("POST", G + "/consumers", "register a consumer",
           {201: "GroupStatus", 200: "GroupStatus"}, group, body="ConsumerAdd"),
        Op("DELETE", G + "/consumers/{consumer}", "remove a consumer", {200: "GroupStatus"},
           group, description="`self` names the calling service account (400 with "
                              "authentication off)."),
        Op("GET", "/api/consumer-groups", "every group of every domain", {200: "Groups"},
           group),
    ]


def _people() -> list[Op]:
    users, requests = "users", "account requests"
    request = "/api/admin/account-requests/{id}"
    return [
        Op("POST", "/api/auth/bootstrap", "create the first admin (only while no user "
           "exists)", {201: "Bootstrapped"}, users, body="NewAccount", public=True,
           extra_errors=RECORD_WRITE),
        Op("POST", "/api/auth/login", "a token for a user", {200: "LoginReply"}, users,
           body="Login", public=True, extra_errors=(401, 429, 507),
           description="429 login_throttled (Retry-After) after repeated failures."),
        Op("GET", "/api/auth/profile", "the calling user", {200: "User"}, users),
        Op("PUT", "/api/auth/change-password", "change the caller's password (old tokens "
           "end)", {200: "PasswordChanged"}, users, body="PasswordChange",
           extra_errors=RECORD_WRITE),
        Op("GET", "/api/admin/users", "list users (admin)", {200: "UserList"}, users),
        Op("POST", "/api/admin/users", "create a user (admin)", {201: "User"}, users,
           body="UserCreate", extra_errors=RECORD_WRITE),
        Op("PATCH", "/api/users/{id}", "change a user (itself, or an admin)", {200: "User"},
           users, body="UserPatch", extra_errors=RECORD_WRITE),
        Op("POST", "/api/account-requests", "ask for an account", {201: "AccountRequest"},
           requests, body="NewAccount", public=True, extra_errors=RECORD_WRITE),
        Op("GET", "/api/admin/account-requests", "list account requests (admin)",
           {200: "AccountRequests"}, requests, query=(_query("status", {
               "type": "string", "enum": ["pending", "approved", "rejected"]}),)),
        Op("GET", request, "one account request (admin)", {200: "AccountRequest"}, requests),
        Op("DELETE", request, "delete an account request (admin)", {200: "Deleted"},
           requests, extra_errors=(409,)),
        Op("POST", request + "/review", "approve or reject (admin)", {200: "AccountRequest"},
           requests, body="Review", extra_errors=RECORD_WRITE),
    ]


def _services() -> list[Op]:
    one, tag = "/api/services/{id}", "service accounts"
    return [
        Op("GET", "/api/services", "list service accounts (admin)", {200: "ServiceList"},
           tag),
        Op("POST", "/api/services", "create a service account (admin; the secret shown "
           "once)", {201: "ServiceWithSecret"}, tag, body="ServiceCreate",
           extra_errors=RECORD_WRITE),
        Op("GET", one, "one service account (admin)", {200: "Service"}, tag),
        Op("DELETE", one, "delete a service account (admin)", {200: "Deleted"}, tag,
           extra_errors=(409,)),
        Op("POST", one + "/rotate-secret", "a new secret, shown once (admin)",
           {200: "ServiceWithSecret"}, tag, extra_errors=RECORD_WRITE),
        Op("PUT", one + "/permissions", "set permissions (and allow-list) (admin)",
           {200: "Service"}, tag, body="Permissions", extra_errors=RECORD_WRITE),
    ]


def _monitoring(settings: Settings) -> list[Op]:
    tag = "monitoring"
    stats = (_query("period", {"type": "string", "enum": ["1h", "6h", "12h", "24h"],
                               "default": "1h"}),
             _query("granularity", {"type": "string", "enum": ["10s", "1m", "5m", "15m",
                                                                "30m", "1h"],
                                    "default": "5m"}))
    history = (_query("limit", {"type": "integer", "minimum": 1, "maximum": 1000,
                                "default": 100}),)
    return [
        Op("GET", "/api/stats", "broker statistics over a period", {200: "Stats"}, tag,
           query=stats),
        Op("GET", "/api/resources/current", "CPU, memory, threads, files, disk per process",
           {200: "Resources"}, tag),
        Op("GET", "/api/resources/history", "earlier resource samples",
           {200: "ResourceHistory"}, tag, query=history),
        Op("GET", "/api/resources/domains/{domain}", "a domain's queues, messages, bytes",
           {200: "DomainResources"}, tag),
        Op("GET", "/metrics", "Prometheus text format", {200: (PROMETHEUS, {"type": "string"})},
           tag, public=settings.monitoring.public_metrics,
           description="Public with monitoring.publicMetrics: true."),
        Op("GET", "/api/admin/settings", "the running config file's settings (admin)",
           {200: "Settings"}, "settings"),
        Op("PUT", "/api/admin/settings", "change the running config file (admin)",
           {200: "SettingsChanged"}, "settings", body="SettingsChange", extra_errors=(409,)),
        Op("POST", "/api/admin/settings/reset", "the config file back to the defaults "
           "(admin)", {200: "SettingsChanged"}, "settings", extra_errors=(409,)),
    ]

