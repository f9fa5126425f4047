"""GET /api/openapi.json (the OpenAPI 3.1 document of every HTTP route) and GET /api/docs
(a page that renders it for people), both public.

The document is built once per gateway process, from the route list in
gateway/openapi_paths.py and the schemas in gateway/openapi_bodies.py, with the limits of this
process's settings (batch size), and served as the same bytes to every request. The page is
gateway/static/docs.html: plain HTML, CSS and JavaScript, with nothing fetched but the
document from this server, so it works offline. WebSockets are not HTTP operations: they are
described in the `x-websockets` extension and the document's description.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from gortms import __version__
from gortms.config import Settings
from gateway.openapi_bodies import broker_schemas
from gateway.openapi_paths import HMAC, JSON, NAMED, Op, operations
from gateway.openapi_schemas import Schema, ref
from gateway.ui import UI_ROUTES

STATIC = Path(__file__).parent / "static"
DOCS_PAGE = STATIC / "docs.html"
WEBSOCKET_PATH = "/api/ws/domains/{domain}/queues/{queue}"
# Served routes the document leaves out on purpose: the web UI's pages and files (gateway/ui.py)
# are HTML, CSS and JavaScript for browsers, not operations of the API.
NOT_API = UI_ROUTES

_STATUS_TEXT = {200: "OK", 201: "Created", 400: "Bad Request", 401: "Unauthorized",
                403: "Forbidden", 404: "Not Found", 409: "Conflict",
                413: "Payload Too Large", 422: "Unprocessable Content",
                429: "Too Many Requests", 431: "Request Header Fields Too Large",
                503: "Service Unavailable", 507: "Insufficient Storage"}
_ERROR_MEANING = {
    400: "malformed: bad JSON, name, parameter, header, duration or config",
    401: "no credential, or one that does not hold (authentication on)",
    403: "the credential lacks the role or permission",
    404: "no such domain, queue, group, consumer or record",
    409: "it exists already (or changed meanwhile)",
    413: "the body is over http.maxBodyBytes",
    422: "a message breaks its domain's schema",
    429: "queue full, too many parked long polls, or logins throttled",
    431: "the headers are over http.maxHeaderBytes",
    503: "a shard is down, restarting or overloaded, or its store cannot write",
    507: "the shard's free space is under storage.minFreeBytes",
}
_RETRY_AFTER = (429, 503, 507)

DESCRIPTION = f"""GoRTMS: a durable, sharded message broker over HTTP and WebSockets.

- JSON in and out. Request keys are matched case-insensitively (`groupId`, `groupID` and
  `groupid` are one key); this document names the canonical camelCase ones, which answers use.
- Every error is `{{"error": "<code>", "message": "..."}}` (the `Error` schema).
- Names of domains, queues, groups and consumers: 1-128 characters of `A-Z a-z 0-9 . _ : -`.
- Durations are Go-style strings (`"500ms"`, `"30s"`, `"1h30m"`); `"0"` means none.
- Integers are JSON integer literals: `5`, not `5.0` (a 400 names the field).
- `HEAD` works wherever `GET` does. A wrong method on a known path is a 405 with `Allow`; an
  unknown path is a 404.
- With `security.enableAuthentication` every operation without `security: []` needs a user's
  token (`Authorization: Bearer`) or a service's HMAC signature (`X-Service-ID`,
  `X-Timestamp`, `X-Signature`, see docs/security.md); with it off (the default) none is checked.

WebSocket: `{WEBSOCKET_PATH}` (not an HTTP operation: see `x-websockets`) observes a queue,
publishes and consumes with credits."""

WEBSOCKETS = [{
    "path": WEBSOCKET_PATH,
    "summary": "observe a queue's new messages, publish, consume with credit-based flow control",
    "query": {"batch": "true: one `messages` frame per hand-over instead of one `message` "
                       "frame per message", "token": "a JWT, for browsers"},
    "clientFrames": ["ping", "publish", "consume", "credit", "ack", "nack", "extend"],
    "serverFrames": ["connected", "message", "messages", "pong", "published", "consuming",
                     "acked", "nacked", "extended", "circuit", "lagged", "error"],
    "closeCodes": {"1001": "the broker is stopping", "1009": "a message too large",
                   "1011": "no answer to the server's pings",
                   "4400": "a malformed path", "4401": "no valid credential",
                   "4403": "no permission", "4404": "unknown domain or queue",
                   "4410": "the queue or its domain was deleted", "4503": "shard unavailable"},
    "reference": "docs/API.md, Real-time: WebSockets and Server-Sent Events",
}]


def build_document(settings: Settings) -> dict[str, Any]:
    schemas = broker_schemas(settings)
    ops = operations(settings, schemas)
    paths: dict[str, dict[str, Any]] = {}
    for op in ops:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op)
    return {
        "openapi": "3.1.0",
        "info": {"title": "GoRTMS", "version": __version__, "description": DESCRIPTION,
                 "license": {"name": "MIT", "identifier": "MIT"}},
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}, HMAC],
        "tags": [{"name": tag} for tag in dict.fromkeys(op.tag for op in ops)],
        "paths": paths,
        "components": {"schemas": schemas.components, "parameters": _path_parameters(),
                       "responses": _error_responses(), "headers": _headers(),
                       "securitySchemes": _security_schemes()},
        "x-websockets": WEBSOCKETS,
    }


def _operation(op: Op) -> dict[str, Any]:
    out: dict[str, Any] = {"operationId": _operation_id(op), "summary": op.summary,
                           "tags": [op.tag]}
    if op.description:
        out["description"] = op.description
    parameters = [{"$ref": f"#/components/parameters/{name}"} for name in op.path_params]
    out["parameters"] = parameters + list(op.query) + list(op.headers)
    if op.body is not None:
        out["requestBody"] = {"required": op.body_required,
                              "content": {JSON: {"schema": ref(op.body)}}}
    responses = {str(status): _success(op, status, body) for status, body in op.ok.items()}
    responses |= {str(status): {"$ref": f"#/components/responses/E{status}"}
                  for status in op.errors}
    out["responses"] = dict(sorted(responses.items()))
    if op.public:
        out["security"] = []
    elif op.security is not None:
        out["security"] = op.security
    return out


def _operation_id(op: Op) -> str:
    words = re.sub(r"[{}]", "", op.path).strip("/").replace(".", "_")
    return op.method.lower() + "_" + re.sub(r"[/-]", "_", words)


def _success(op: Op, status: int, body: str | tuple[str, Schema]) -> dict[str, Any]:
    media, schema = (JSON, ref(body)) if isinstance(body, str) else body
    out: dict[str, Any] = {"description": _STATUS_TEXT.get(status, str(status)),
                           "content": {media: {"schema": schema}}}
    if status == 503 or op.retry_after:
        out["headers"] = {"Retry-After": {"$ref": "#/components/headers/Retry-After"}}
    return out


def _path_parameters() -> dict[str, Any]:
    # "." and ".." cannot be addressed in a URL's path (clients remove them as dot segments,
    # RFC 3986 5.2.4): the naming rule refuses them, and an id path parameter too.
    not_dots = {"not": {"enum": [".", ".."]}}
    name = {"allOf": [ref("Name"), not_dots]}
    params = {kind: {"name": kind, "in": "path", "required": True, "schema": name,
                     "description": f"the {kind} name"} for kind in NAMED}
    params["consumer"]["description"] = "the consumer name, or `self`: the calling service"
    params["id"] = {"name": "id", "in": "path", "required": True,
                    "schema": {"type": "string", "pattern": "^[^/]+$", **not_dots},
                    "description": "the record's id (a UUID as the server makes them)"}
    return params


def _error_responses() -> dict[str, Any]:
    out = {}
    for status, meaning in _ERROR_MEANING.items():
        response: dict[str, Any] = {"description": f"{_STATUS_TEXT[status]}: {meaning}",
                                    "content": {JSON: {"schema": ref("Error")}}}
        if status in _RETRY_AFTER:
            response["headers"] = {"Retry-After": {"$ref": "#/components/headers/Retry-After"}}
        out[f"E{status}"] = response
    return out


def _headers() -> dict[str, Any]:
    return {"Retry-After": {"description": "seconds to wait before trying again",
                            "schema": {"type": "string", "pattern": "^[0-9]+$"}}}


def _security_schemes() -> dict[str, Any]:
    signed = ("HMAC-SHA256 signatures of service accounts: send X-Service-ID, X-Timestamp "
              "and X-Signature together.")
    return {
        "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                   "description": "a user's token from POST /api/auth/login (HS256)"},
        "tokenQuery": {"type": "apiKey", "in": "query", "name": "token",
                       "description": "the same token, where a browser cannot set headers "
                                      "(EventSource, WebSocket)"},
        "serviceId": {"type": "apiKey", "in": "header", "name": "X-Service-ID",
                      "description": signed + " The service account's id."},
        "timestamp": {"type": "apiKey", "in": "header", "name": "X-Timestamp",
                      "description": signed + " RFC 3339 with a zone, within "
                                     "security.hmac.timestampWindow of the server's clock."},
        "signature": {"type": "apiKey", "in": "header", "name": "X-Signature",
                      "description": signed + " `sha256=<lowercase hex HMAC-SHA256>` keyed "
                                     "with the secret's UTF-8 bytes, over METHOD \\n PATH "
                                     "(no query string) \\n BODY \\n TIMESTAMP. Each "
                                     "signature is accepted once."},
    }


class OpenApiDocs:
    """The two endpoints: the document's bytes and the page, both made once."""

    def __init__(self, settings: Settings) -> None:
        self.document = build_document(settings)
        self._json = orjson.dumps(self.document)
        self._page = DOCS_PAGE.read_bytes()

    async def openapi(self, request: Request) -> Response:
        return Response(self._json, media_type=JSON)

    async def docs(self, request: Request) -> Response:
        return Response(self._page, media_type="text/html; charset=utf-8")
