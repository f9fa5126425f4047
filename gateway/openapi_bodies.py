"""The broker's request and reply bodies as OpenAPI components.

Bodies the endpoints decode into a Struct (queue configs, group specs, acks, nacks, replay,
...) and reply Structs the gateway encodes as they are (queues, groups, ack results, the
pending list) are read off those types (gateway/openapi_schemas.py); the bodies endpoints
build by hand (publish answers, deliveries spliced from stored records, users, services,
health) are written out here, from the endpoint code they describe.
"""

from __future__ import annotations

from gortms.config import Settings
from gortms.models import GroupSpec, QueueConfig, SettleTargets
from gortms.passwords import MAX_PASSWORD, MIN_PASSWORD
from gortms.protocol import (Acked, Extended, Groups, Nacked, PendingList, QueueInfo, Queues,
                             Redriven, Settled)
from gateway.domains import QueueBody
from gateway.groups import (ConsumerBody, ExtendBody, NackBody, RedriveBody, SeekBody,
                            SettleBody, TtlBody)
from gateway.openapi_monitoring import monitoring_schemas
from gateway.openapi_schemas import (Schema, Schemas, nullable, obj, ref, shared_schemas,
                                     success, with_status)

USERNAME_REGEX = r"^[A-Za-z0-9._@-]{3,64}$"
PERMISSION_REGEX = r"^(\*|publish|consume|manage)(:(\*|[A-Za-z0-9._:-]{1,128}))?$"
TEXT_1024 = {"type": "string", "maxLength": 1024}


def _non_empty(*fields: str) -> Schema:
    """At least one of these lists holds an entry (checked in __post_init__)."""
    return {"anyOf": [{"required": [f], "properties": {f: {"minItems": 1}}} for f in fields]}


def broker_schemas(settings: Settings) -> Schemas:
    schemas = Schemas()
    shared_schemas(schemas)
    _queues_and_groups(schemas)
    _messages(schemas, settings)
    _domains_and_health(schemas)
    _people(schemas)
    _services(schemas)
    _monitoring(schemas)
    return schemas


def _queues_and_groups(s: Schemas) -> None:
    for reply in (QueueInfo, Queues, Groups, Acked, Nacked, Extended, Settled, PendingList):
        s.struct(reply)
    s.add("GroupStatus", with_status("GroupInfo"))
    s.add("Redriven", with_status("RedrivenCount"))
    s.struct(Redriven, name="RedrivenCount")
    s.add("QueueCreated", success(queue=ref("Name"), config=ref("QueueConfig")))
    s.add("Deleted", success(deleted={"type": "string"}))
    s.struct(QueueBody, reply=False, name="QueueCreate",
             overrides={"config": nullable(ref("QueueConfigInput"))})
    s.struct(QueueConfig, reply=False)
    s.struct(GroupSpec, reply=False, name="GroupCreate", overrides={"start": ref("Start")})
    s.struct(SettleTargets, reply=False, name="Ack", **_non_empty("ids", "positions"))
    s.struct(NackBody, reply=False, name="Nack",
             overrides={"reason": nullable({"type": "string", "description":
                                            "kept up to 1,024 characters"})},
             **_non_empty("ids", "positions"))
    s.struct(ExtendBody, reply=False, name="Extend",
             overrides={"by": nullable(ref("DurationInput")) | {
                 "description": "a duration > 0; default: the queue's ackTimeout"}},
             **_non_empty("ids", "positions"))
    s.struct(SettleBody, reply=False, name="Settle", **_non_empty("ack", "nack"))
    s.struct(RedriveBody, reply=False, name="Redrive")
    s.struct(SeekBody, reply=False, name="Seek", overrides={
        "position": ref("Start"), "timestamp": nullable({"type": "string",
                                                         "format": "date-time"})},
        anyOf=[{"required": ["position"], "properties": {"position": ref("Start")}},
               {"required": ["timestamp"],
                "properties": {"timestamp": {"type": "string", "format": "date-time"}}}])
    s.struct(TtlBody, reply=False, name="GroupTtl")
    s.struct(ConsumerBody, reply=False, name="ConsumerAdd")


def _messages(s: Schemas, settings: Settings) -> None:
    s.add("Published", obj({"status": {"const": "success"}, "messageId": {"type": "string"},
                            "position": ref("Position"),
                            "duplicate": {"const": True, "description":
                                          "only on a repeat of an Idempotency-Key (200)"}},
                           ["status", "messageId", "position"]))
    s.add("BatchPublish", obj({"messages": {
        "type": "array", "minItems": 1, "maxItems": settings.gateway.max_batch_messages,
        "items": ref("Object")}}, ["messages"], description="all or nothing; a message's "
        "string `id` field is its id"))
    s.add("BatchPublished", obj({
        "status": {"const": "success"}, "count": {"type": "integer", "minimum": 1},
        "messageIds": {"type": "array", "items": {"type": "string"}},
        "firstPosition": ref("Position"), "duplicate": {"const": True}},
        ["status", "count", "messageIds", "firstPosition"]))
    s.add("Delivery", obj({
        "position": ref("Position"), "deliveryCount": {"type": "integer", "minimum": 1},
        "timestamp": ref("Timestamp"), "id": {"type": "string"},
        "headers": {"type": "object", "additionalProperties": {"type": "string"}},
        "payload": ref("Object")},
        ["position", "deliveryCount", "timestamp", "id", "headers", "payload"]))
    s.add("Deliveries", obj({
        "messages": {"type": "array", "items": ref("Delivery")},
        "count": {"type": "integer", "minimum": 0},
        "circuit": {"const": "open", "description": "the group's circuit breaker is open: "
                    "nothing is delivered; Retry-After says for how long"}},
        ["messages", "count"]))


def _domains_and_health(s: Schemas) -> None:
    shard = obj({"shard": {"type": "integer"}, "up": {"type": "boolean"},
                 "storage": {"enum": ["ok", "low", "full"]},
                 "freeBytes": {"type": "integer"}}, ["shard", "up"])
    s.add("Health", obj({
        "status": {"enum": ["ok", "degraded"]},
        "shards": obj({"up": {"type": "integer"}, "total": {"type": "integer"}},
                      ["up", "total"]),
        "storage": {"enum": ["ok", "low", "full"]},
        "shardStorage": {"type": "array", "items": shard},
        "nodeId": {"type": "string"}, "version": {"type": "string"},
        "authentication": {"type": "boolean", "description":
                           "security.enableAuthentication: whether a credential is needed"}},
        ["status", "shards", "storage", "shardStorage", "nodeId", "version", "authentication"]))
    config_or_null = nullable(ref("QueueConfigInput"))
    s.add("DomainCreate", obj({
        "name": ref("Name"),
        "schema": nullable({"type": "object"}) | {"description":
                  "{\"fields\": {\"order_id\": \"string\", ...}} (types string number "
                  "boolean object array) or a JSON Schema document; {} or null: none"},
        "queueConfigs": {"anyOf": [
            {"type": "object", "propertyNames": ref("Name"),
             "additionalProperties": config_or_null},
            {"type": "array", "items": obj({"name": ref("Name"), "config": config_or_null},
                                           ["name"])}],
            "description": "queues created with the domain: {queue: config} or "
                           "[{name, config}]"},
        "routingRules": {"type": "array", "maxItems": 0,
                         "description": "not built yet: absent or empty"}}, ["name"]))
    s.add("DomainCreated", success(domain=ref("Name")))
    s.add("DomainList", obj({"domains": {"type": "array", "items": obj({
        "name": ref("Name"), "queueCount": {"type": "integer"},
        "messageCount": {"type": "integer"}}, ["name", "queueCount", "messageCount"])}},
        ["domains"]))
    s.add("DomainDetail", obj({
        "name": ref("Name"), "schema": {"description": "as given at creation, or null"},
        "queues": {"type": "array", "items": ref("QueueInfo")},
        "routes": {"type": "array", "maxItems": 0}}, ["name", "schema", "queues", "routes"]))


def _people(s: Schemas) -> None:
    username = {"type": "string", "pattern": USERNAME_REGEX}
    password = {"type": "string", "minLength": MIN_PASSWORD, "maxLength": MAX_PASSWORD,
                "description": f"at least {MIN_PASSWORD} characters, at most "
                               f"{MAX_PASSWORD} bytes"}
    email = nullable({"type": "string", "pattern": r"^[^\x00-\x1f\x7f]{0,254}$",
                      "description": "printable text of at most 254 characters, never "
                                     "sent to"})
    role = {"type": "string", "enum": ["admin", "user"]}
    s.add("User", obj({
        "id": {"type": "string"}, "username": {"type": "string"}, "email": email,
        "role": role, "disabled": {"type": "boolean"}, "createdAt": ref("Timestamp"),
        "updatedAt": ref("Timestamp")},
        ["id", "username", "email", "role", "disabled", "createdAt", "updatedAt"]))
    s.add("UserList", obj({"users": {"type": "array", "items": ref("User")}}, ["users"]))
    s.add("NewAccount", obj({"username": username, "password": password, "email": email},
                            ["username", "password"]))
    s.add("UserCreate", obj({"username": username, "password": password, "email": email,
                             "role": role}, ["username", "password"]))
    s.add("UserPatch", obj({"email": email, "password": password, "role": role,
                            "disabled": {"type": "boolean"}}, additionalProperties=False,
                           description="role and disabled: an admin only"))
    s.add("Bootstrapped", success(user=ref("User")))
    s.add("Login", obj({"username": {"type": "string"},
                        "password": {"type": "string", "maxLength": MAX_PASSWORD}},
                       ["username", "password"]))
    token = {"type": "string", "description": "a JWT (HS256)"}
    expires = {"type": "integer", "description": "when the token expires, epoch seconds"}
    s.add("LoginReply", obj({"token": token, "expiresAt": expires, "user": ref("User")},
                            ["token", "expiresAt", "user"]))
    s.add("PasswordChange", obj({"oldPassword": {"type": "string"}, "newPassword": password},
                                ["oldPassword", "newPassword"],
                                description="oldPassword may also be sent as currentPassword"))
    s.add("PasswordChanged", success(token=token, expiresAt=expires))
    nullable_text = nullable({"type": "string"})
    s.add("AccountRequest", obj({
        "id": {"type": "string"}, "username": {"type": "string"}, "email": email,
        "status": {"enum": ["pending", "approved", "rejected"]},
        "createdAt": ref("Timestamp"), "reviewedAt": nullable(ref("Timestamp")),
        "reviewedBy": nullable_text, "approvedRole": nullable(role),
        "rejectReason": nullable_text},
        ["id", "username", "email", "status", "createdAt", "reviewedAt", "reviewedBy",
         "approvedRole", "rejectReason"]))
    s.add("AccountRequests", obj({"requests": {"type": "array", "items": ref("AccountRequest")},
                                  "count": {"type": "integer"}}, ["requests", "count"]))
    s.add("Review", obj({"approve": {"type": "boolean"}, "approvedRole": role,
                         "rejectReason": nullable(TEXT_1024)}, ["approve"]))


def _services(s: Schemas) -> None:
    permissions = {"type": "array", "items": {"type": "string", "pattern": PERMISSION_REGEX},
                   "description": "publish:<domain>, consume:<domain>, manage:<domain>, with "
                                  "* for any action or domain"}
    allowlist = {"type": "array", "items": {"type": "string", "pattern": "^[0-9a-fA-F.:/*]+$"},
                 "description": "exact addresses, \"10.0.*\" prefixes, CIDR blocks"}
    service = {"id": {"type": "string"}, "name": {"type": "string"},
               "description": nullable({"type": "string"}), "permissions": permissions,
               "ipAllowlist": allowlist, "enabled": {"type": "boolean"},
               "createdAt": ref("Timestamp"), "secretRotatedAt": ref("Timestamp")}
    s.add("Service", obj(service, list(service)))
    s.add("ServiceWithSecret", obj(
        {**service, "secret": {"type": "string", "description": "shown once"}},
        [*service, "secret"]))
    s.add("ServiceList", obj({"services": {"type": "array", "items": ref("Service")},
                              "count": {"type": "integer"}}, ["services", "count"]))
    s.add("ServiceCreate", obj({
        "name": ref("Name"), "description": nullable(TEXT_1024), "permissions": permissions,
        "ipAllowlist": allowlist}, ["name"]))
    s.add("Permissions", obj({"permissions": permissions, "ipAllowlist": allowlist},
                             ["permissions"]))


def _loose(*keys: str, description: str = "") -> Schema:
    """A reply whose exact shape is not fixed yet: the top-level keys API.md names."""
    return obj({key: {} for key in keys}, keys, additionalProperties=True,
               description=description)


def _monitoring(s: Schemas) -> None:
    monitoring_schemas(s)  # gateway/openapi_monitoring.py
    settings = ("file", "settings", "effective", "environment", "problems",
                "restartRequired", "restartNeeded")
    s.add("Settings", _loose(*settings, description="the config file the broker was started "
                                                    "with, and the settings in effect"))
    s.add("SettingsChange", {"type": "object", "description": "a partial tree in the shape of "
                             "config.yaml, merged onto the file; null: the default"})
    s.add("SettingsChanged", _loose(*settings, "applied", "warnings",
                                    description="as GET, and the live keys changed"))
