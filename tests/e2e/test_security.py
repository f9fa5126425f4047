"""Security against the real broker with security.enableAuthentication on (issue 9): every
route guarded, users and tokens, secrets in the data dir, account requests, service
accounts and HMAC signatures, WebSockets and SSE, hardening."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import ssl
import stat
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator

import httpx2
import jwt
import orjson
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from gortms.config import load_settings
from gateway.app import create_app
from tests.conftest import Broker, start_broker, unique
from tests.gateway.fakes import FakeShards

PASSWORD = "correct horse battery"


class Secure:
    """A broker with authentication on, its admin, a plain user and a domain with a queue."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.api = broker.client()
        reply = self.api.post("/api/auth/bootstrap",
                              json={"username": "root", "password": PASSWORD})
        assert reply.status_code == 201, reply.text
        self.admin = self.login("root")
        created = self.api.post("/api/admin/users", headers=self.admin,
                                json={"username": "alice", "password": PASSWORD})
        assert created.status_code == 201, created.text
        self.alice_id = created.json()["id"]
        self.user = self.login("alice")
        self.domain = unique("sec")
        for path, body in (("/api/domains", {"name": self.domain}),
                           (f"/api/domains/{self.domain}/queues", {"name": "q"})):
            assert self.api.post(path, json=body, headers=self.admin).status_code == 201

    def login(self, username: str, password: str = PASSWORD) -> dict[str, str]:
        reply = self.api.post("/api/auth/login",
                              json={"username": username, "password": password})
        assert reply.status_code == 200, reply.text
        return {"Authorization": f"Bearer {reply.json()['token']}"}

    def service(self, permissions: list[str], **more) -> dict:
        reply = self.api.post("/api/services", headers=self.admin,
                              json={"name": unique("svc"), "permissions": permissions, **more})
        assert reply.status_code == 201, reply.text
        return reply.json()

    @property
    def queue(self) -> str:
        return f"/api/domains/{self.domain}/queues/q"


def sign(service: dict, method: str, path: str, body: bytes = b"",
         when: datetime | None = None, secret: str | None = None) -> dict[str, str]:
    stamp = (when or datetime.now(timezone.utc)).isoformat()
    digest = hmac.new((secret or service["secret"]).encode(),
                      b"%s\n%s\n%s\n%s" % (method.encode(), path.encode(), body, stamp.encode()),
                      hashlib.sha256).hexdigest()
    return {"X-Service-ID": service["id"], "X-Timestamp": stamp,
            "X-Signature": f"sha256={digest}", "Content-Type": "application/json"}


@pytest.fixture(scope="module")
def secure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secure]:
    broker = start_broker(tmp_path_factory.mktemp("secure") / "data",
                          GORTMS_SECURITY_ENABLEAUTHENTICATION="true",
                          GORTMS_HTTP_JWT_EXPIRATIONMINUTES="30")
    world = Secure(broker)
    yield world
    world.api.close()
    assert broker.stop() == 0, broker.output()


# --- every route guarded ------------------------------------------------------------------------

PUBLIC = {("POST", "/api/auth/login"), ("POST", "/api/auth/bootstrap"),
          ("POST", "/api/account-requests"), ("GET", "/health"), ("GET", "/api/health"),
          ("GET", "/api/openapi.json"), ("GET", "/api/docs"),
          ("GET", "/ui"), ("GET", "/ui/{path:path}")}  # the web UI's files (gateway/ui.py)


def route_table() -> list[tuple[str, str]]:
    """(method, path template) of every route the gateway serves."""
    app = create_app(load_settings({}), FakeShards(lambda shard, request: None))
    out = []
    for route in app.router.routes:
        for method in sorted(route.methods or ()):
            if method != "HEAD":
                out.append((method, route.path))
    return out


def concrete(path: str, secure: Secure) -> str:
    return (path.replace("{domain}", secure.domain).replace("{queue}", "q")
            .replace("{group}", "g").replace("{consumer}", "c")
            .replace("{id}", "00000000-0000-4000-8000-000000000000"))


ADMIN_ROUTES = re.compile(r"^/api/(admin|services)")
# Any valid credential may: listings across domains, and creating a domain (which checks
# manage on the name in the body, after reading it).
ANY_CREDENTIAL = {("GET", "/api/domains"), ("POST", "/api/domains"),
                  ("GET", "/api/consumer-groups"),
                  # monitoring: names and counts of the whole broker, never messages
                  ("GET", "/api/stats"), ("GET", "/api/resources/current"),
                  ("GET", "/api/resources/history"), ("GET", "/metrics")}


def test_every_route_but_the_public_ones_needs_a_credential_and_the_right_to_act(secure):
    table = route_table()
    assert len(table) >= 40 and PUBLIC <= set(table)
    nobody = secure.service([])  # a valid signature, no permission at all
    for method, template in table:
        if (method, template) in PUBLIC:
            continue
        path = concrete(template, secure)
        reply = secure.api.request(method, path, content=b"{}",
                                   headers={"Content-Type": "application/json"})
        assert reply.status_code == 401, (method, path, reply.text)
        assert reply.json()["error"] == "unauthorized"
        if ADMIN_ROUTES.match(template):  # a user without the admin role
            reply = secure.api.request(method, path, content=b"{}", headers=secure.user)
            assert reply.status_code == 403, (method, path, reply.text)
            assert reply.json()["error"] == "forbidden"
        if (method, template) not in ANY_CREDENTIAL:  # a service with no permission
            headers = sign(nobody, method, path, b"{}")
            reply = secure.api.request(method, path, content=b"{}", headers=headers)
            assert reply.status_code == 403, (method, path, reply.text)
    # and the fast paths too, by the same rule
    publish = f"{secure.queue}/messages"
    assert secure.api.post(publish, json={"a": 1}).status_code == 401
    assert secure.api.post(publish, content=b'{"a": 1}',
                           headers=sign(nobody, "POST", publish, b'{"a": 1}')).status_code == 403


# --- users --------------------------------------------------------------------------------------


def test_there_is_no_default_account_and_bootstrap_works_once(secure):
    for password in ("admin", "password", "changeme"):
        reply = secure.api.post("/api/auth/login",
                                json={"username": "admin", "password": password})
        assert reply.status_code == 401
    again = secure.api.post("/api/auth/bootstrap",
                            json={"username": "second", "password": PASSWORD})
    assert again.status_code == 409


def test_a_login_token_is_hs256_with_the_claims_and_the_configured_lifetime(secure):
    reply = secure.api.post("/api/auth/login", json={"username": "alice", "password": PASSWORD})
    body = reply.json()
    assert body["user"]["username"] == "alice" and "passwordHash" not in body["user"]
    assert jwt.get_unverified_header(body["token"])["alg"] == "HS256"
    claims = jwt.decode(body["token"], options={"verify_signature": False})
    assert claims["sub"] == secure.alice_id and claims["username"] == "alice"
    assert claims["role"] == "user" and claims["exp"] - claims["iat"] == 30 * 60
    profile = secure.api.get("/api/auth/profile", headers={
        "Authorization": f"Bearer {body['token']}"})
    assert profile.status_code == 200 and profile.json()["id"] == secure.alice_id


def test_changing_the_password_ends_the_old_tokens(secure):
    api = secure.api
    name = unique("bob")[:30]
    assert api.post("/api/admin/users", headers=secure.admin,
                    json={"username": name, "password": PASSWORD}).status_code == 201
    old = secure.login(name)
    wrong = api.put("/api/auth/change-password", headers=old,
                    json={"oldPassword": "nope-nope", "newPassword": "another password"})
    assert wrong.status_code == 401
    changed = api.put("/api/auth/change-password", headers=old,
                      json={"oldPassword": PASSWORD, "newPassword": "another password"})
    assert changed.status_code == 200
    assert api.get("/api/auth/profile", headers=old).status_code == 401
    fresh = {"Authorization": f"Bearer {changed.json()['token']}"}
    assert api.get("/api/auth/profile", headers=fresh).status_code == 200
    assert api.post("/api/auth/login", json={"username": name, "password": PASSWORD}
                    ).status_code == 401
    secure.login(name, "another password")


def test_users_change_themselves_admins_change_anyone_and_disabled_users_are_out(secure):
    api = secure.api
    name = unique("carol")[:30]
    created = api.post("/api/admin/users", headers=secure.admin,
                       json={"username": name, "password": PASSWORD, "email": "c@example.com"})
    carol_id = created.json()["id"]
    carol = secure.login(name)
    mine = api.patch(f"/api/users/{carol_id}", headers=carol, json={"email": "new@example.com"})
    assert mine.status_code == 200 and mine.json()["email"] == "new@example.com"
    assert api.patch(f"/api/users/{carol_id}", headers=carol,
                     json={"role": "admin"}).status_code == 403
    assert api.patch(f"/api/users/{secure.alice_id}", headers=carol,
                     json={"email": "x@example.com"}).status_code == 403
    assert api.get("/api/admin/users", headers=carol).status_code == 403
    promoted = api.patch(f"/api/users/{carol_id}", headers=secure.admin, json={"role": "admin"})
    assert promoted.json()["role"] == "admin"
    assert api.get("/api/admin/users", headers=carol).status_code == 200  # the stored role
    names = [u["username"] for u in api.get("/api/admin/users", headers=secure.admin
                                            ).json()["users"]]
    assert {"root", "alice", name} <= set(names)
    disabled = api.patch(f"/api/users/{carol_id}", headers=secure.admin, json={"disabled": True})
    assert disabled.status_code == 200
    assert api.get("/api/auth/profile", headers=carol).status_code == 401
    assert api.post("/api/auth/login", json={"username": name, "password": PASSWORD}
                    ).status_code == 401


def test_repeated_failed_logins_are_throttled_per_user(secure):
    api = secure.api
    name = unique("dave")[:30]
    assert api.post("/api/admin/users", headers=secure.admin,
                    json={"username": name, "password": PASSWORD}).status_code == 201
    codes = [api.post("/api/auth/login", json={"username": name, "password": "wrong-pass"}
                      ).status_code for _ in range(7)]
    assert codes[:5] == [401] * 5 and 429 in codes[5:]
    locked = api.post("/api/auth/login", json={"username": name, "password": PASSWORD})
    assert locked.status_code == 429  # even the right password, while locked
    assert int(locked.headers["Retry-After"]) >= 1
    assert locked.json()["error"] == "login_throttled"


# --- secrets ------------------------------------------------------------------------------------


def test_secrets_are_generated_in_the_data_dir_0600_and_service_secrets_stored_sealed(secure):
    secrets_dir = secure.broker.data_dir / "secrets"
    for name in ("jwt.secret", "services.key"):
        mode = stat.S_IMODE((secrets_dir / name).stat().st_mode)
        assert mode == 0o600, (name, oct(mode))
    assert stat.S_IMODE(secrets_dir.stat().st_mode) == 0o700
    service = secure.service(["publish:*"])
    listed = secure.api.get(f"/api/services/{service['id']}", headers=secure.admin).json()
    assert "secret" not in listed  # shown once
    secure.api.post("/api/domains/none/queues", headers=secure.admin)  # any write: a flush
    stored = b"".join(p.read_bytes() for p in (secure.broker.data_dir / "shards").rglob("*")
                      if p.is_file())
    assert service["secret"].encode() not in stored
    jwt_secret = (secrets_dir / "jwt.secret").read_bytes().strip()
    assert len(base64.urlsafe_b64decode(jwt_secret)) == 48


# --- account requests ---------------------------------------------------------------------------


def test_an_account_request_is_reviewed_by_an_admin_and_the_approved_user_logs_in(secure):
    api = secure.api
    name, other = unique("erin")[:30], unique("frank")[:30]
    asked = api.post("/api/account-requests", json={"username": name, "password": PASSWORD,
                                                    "email": "e@example.com"})
    assert asked.status_code == 201 and asked.json()["status"] == "pending"
    second = api.post("/api/account-requests", json={"username": other, "password": PASSWORD})
    assert api.post("/api/auth/login", json={"username": name, "password": PASSWORD}
                    ).status_code == 401
    pending = api.get("/api/admin/account-requests", params={"status": "pending"},
                      headers=secure.admin).json()["requests"]
    assert {asked.json()["id"], second.json()["id"]} <= {r["id"] for r in pending}
    assert api.get("/api/admin/account-requests", params={"status": "bogus"},
                   headers=secure.admin).status_code == 400
    review = f"/api/admin/account-requests/{asked.json()['id']}/review"
    approved = api.post(review, headers=secure.admin,
                        json={"approve": True, "approvedRole": "user"})
    assert approved.status_code == 200 and approved.json()["status"] == "approved"
    assert api.post(review, headers=secure.admin, json={"approve": True}).status_code == 409
    secure.login(name)
    rejected = api.post(f"/api/admin/account-requests/{second.json()['id']}/review",
                        headers=secure.admin, json={"approve": False, "rejectReason": "no"})
    assert rejected.json()["status"] == "rejected" and rejected.json()["rejectReason"] == "no"
    assert api.post("/api/auth/login", json={"username": other, "password": PASSWORD}
                    ).status_code == 401
    gone = api.delete(f"/api/admin/account-requests/{second.json()['id']}",
                      headers=secure.admin)
    assert gone.status_code == 200
    assert api.get(f"/api/admin/account-requests/{second.json()['id']}",
                   headers=secure.admin).status_code == 404


# --- service accounts and HMAC ------------------------------------------------------------------


def test_signed_requests_work_once_within_the_window_and_only_with_the_current_secret(secure):
    api = secure.api
    service = secure.service([f"publish:{secure.domain}", f"consume:{secure.domain}"])
    path = f"{secure.queue}/messages"
    body = b'{"signed": true}'
    headers = sign(service, "POST", path, body)
    first = api.post(path, content=body, headers=headers)
    assert first.status_code == 201, first.text
    replayed = api.post(path, content=body, headers=headers)
    assert replayed.status_code == 401 and "used already" in replayed.json()["message"]
    late = sign(service, "POST", path, body,
                when=datetime.now(timezone.utc) - timedelta(minutes=6))
    assert api.post(path, content=body, headers=late).status_code == 401
    tampered = sign(service, "POST", path, body)
    assert api.post(path, content=b'{"signed": false}', headers=tampered).status_code == 401
    upper = sign(service, "POST", path, body)
    upper["X-Signature"] = upper["X-Signature"].upper().replace("SHA256=", "sha256=")
    assert api.post(path, content=body, headers=upper).status_code == 401
    # rotate: the old secret stops at once
    rotated = api.post(f"/api/services/{service['id']}/rotate-secret", headers=secure.admin)
    assert rotated.status_code == 200 and rotated.json()["secret"] != service["secret"]
    assert api.post(path, content=body, headers=sign(service, "POST", path, body)
                    ).status_code == 401
    fresh = sign(service, "POST", path, body, secret=rotated.json()["secret"])
    assert api.post(path, content=body, headers=fresh).status_code == 201
    # permissions: publish yes, manage no
    assert api.delete(secure.queue, headers=sign(service, "DELETE", secure.queue,
                                                 secret=rotated.json()["secret"])
                      ).status_code == 403


def test_service_permissions_are_validated_and_wildcards_match(secure):
    api = secure.api
    for bad in (["write:orders"], ["publish:"], "publish:*", [5], ["publish:a b"]):
        reply = api.post("/api/services", headers=secure.admin,
                         json={"name": unique("bad"), "permissions": bad})
        assert reply.status_code == 400, bad
    anything = secure.service(["*"])
    domain_only = secure.service([f"*:{secure.domain}"])
    other = secure.service(["manage:elsewhere"])
    for service, expected in ((anything, 200), (domain_only, 200), (other, 403)):
        reply = api.get(secure.queue, headers=sign(service, "GET", secure.queue))
        assert reply.status_code == expected, (service["permissions"], reply.text)
    changed = api.put(f"/api/services/{other['id']}/permissions", headers=secure.admin,
                      json={"permissions": [f"consume:{secure.domain}"]})
    assert changed.status_code == 200 and changed.json()["permissions"] == [
        f"consume:{secure.domain}"]
    assert api.get(secure.queue, headers=sign(other, "GET", secure.queue)).status_code == 200
    assert api.put(f"/api/services/{other['id']}/permissions", headers=secure.admin,
                   json={"permissions": ["nope"]}).status_code == 400
    assert api.delete(f"/api/services/{other['id']}", headers=secure.admin).status_code == 200
    assert api.get(secure.queue, headers=sign(other, "GET", secure.queue)).status_code == 401


def test_creating_and_deleting_domains_queues_and_groups_needs_manage(secure):
    api = secure.api
    publisher = secure.service([f"publish:{secure.domain}", f"consume:{secure.domain}"])
    manager = secure.service([f"manage:{secure.domain}", f"consume:{secure.domain}"])
    name = secure.domain
    cases = [("POST", f"/api/domains/{name}/queues", b'{"name": "q2"}'),
             ("POST", f"{secure.queue}/consumer-groups", b'{"groupId": "g2"}'),
             ("GET", f"{secure.queue}/messages?group=g3&max=1", b"")]
    for method, path, body in cases:
        bare = path.split("?")[0]
        refused = api.request(method, path, content=body,
                              headers=sign(publisher, method, bare, body))
        assert refused.status_code == 403, (path, refused.text)
        allowed = api.request(method, path, content=body, headers=sign(manager, method, bare,
                                                                       body))
        assert allowed.status_code in (200, 201), (path, allowed.text)
    new_domain = b'{"name": "%s"}' % unique("d").encode()
    assert api.post("/api/domains", content=new_domain,
                    headers=sign(manager, "POST", "/api/domains", new_domain)
                    ).status_code == 403  # manage on this domain, not on a new one


def test_an_ip_allowlist_admits_exact_addresses_prefixes_and_cidr_blocks(secure):
    api = secure.api
    for allow, expected in ((["127.0.0.1"], 200), (["127.0.*"], 200),
                            (["127.0.0.0/8"], 200), (["10.0.0.0/8", "192.168.*"], 401)):
        service = secure.service([f"consume:{secure.domain}"], ipAllowlist=allow)
        reply = api.get(secure.queue, headers=sign(service, "GET", secure.queue))
        assert reply.status_code == expected, (allow, reply.text)
    bad = api.post("/api/services", headers=secure.admin, json={
        "name": unique("x"), "permissions": [], "ipAllowlist": ["not-an-ip"]})
    assert bad.status_code == 400


def test_require_tls_answers_404_to_a_signed_request_over_plain_http(broker_factory):
    broker = broker_factory(GORTMS_SECURITY_ENABLEAUTHENTICATION="true",
                            GORTMS_SECURITY_HMAC_REQUIRETLS="true")
    world = Secure(broker)
    service = world.service(["*"])
    reply = world.api.get(world.queue, headers=sign(service, "GET", world.queue))
    assert reply.status_code == 404
    assert world.api.get(world.queue, headers=world.admin).status_code == 200  # tokens still
    world.api.close()


# --- tokens: hardening --------------------------------------------------------------------------


def test_forged_none_foreign_and_expired_tokens_are_refused(secure):
    claims = {"sub": secure.alice_id, "username": "alice", "role": "admin",
              "iat": int(time.time()), "exp": int(time.time()) + 600, "ver": 1}
    unsigned = jwt.encode(claims, key="", algorithm="none")
    foreign = jwt.encode(claims, "another-secret-of-thirty-two-bytes!!", algorithm="HS256")
    secret = (secure.broker.data_dir / "secrets" / "jwt.secret").read_bytes().strip()
    other_alg = jwt.encode(claims, secret, algorithm="HS512")
    expired = jwt.encode({**claims, "iat": int(time.time()) - 7200,
                          "exp": int(time.time()) - 3600}, secret, algorithm="HS256")
    garbage = "not.a.token"
    for token in (unsigned, foreign, other_alg, expired, garbage, "x" * 9000):
        reply = secure.api.get("/api/auth/profile", headers={"Authorization": f"Bearer {token}"})
        assert reply.status_code in (401, 431), token[:40]
    assert secure.api.get("/api/auth/profile", headers={"Authorization": "Basic abc"}
                          ).status_code == 401
    genuine = jwt.encode(claims, secret, algorithm="HS256")  # right key: the stored role wins
    assert secure.api.get("/api/admin/users", headers={"Authorization": f"Bearer {genuine}"}
                          ).status_code == 403


# --- WebSockets and SSE -------------------------------------------------------------------------


def ws_url(secure: Secure, query: str = "") -> str:
    return (secure.broker.url.replace("http://", "ws://") +
            secure.queue.replace("/api/domains/", "/api/ws/domains/") + query)


def close_code(url: str, headers: dict | None = None) -> int:
    with connect(url, additional_headers=headers or {}, open_timeout=10).__enter__() as ws:
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=10)
    assert info.value.rcvd is not None
    return info.value.rcvd.code


def test_websockets_need_a_token_or_a_signature(secure):
    assert close_code(ws_url(secure)) == 4401
    token = secure.user["Authorization"].split()[1]
    assert close_code(ws_url(secure, "?token=bogus")) == 4401
    publisher_only = secure.service([f"publish:{secure.domain}"])
    ws_path = secure.queue.replace("/api/domains/", "/api/ws/domains/")
    assert close_code(ws_url(secure), sign(publisher_only, "GET", ws_path)) == 4403
    reader = secure.service([f"consume:{secure.domain}"])
    for url, headers in ((ws_url(secure, f"?token={token}"), {}),
                         (ws_url(secure), secure.user),
                         (ws_url(secure), sign(reader, "GET", ws_path))):
        with connect(url, additional_headers=headers, open_timeout=10).__enter__() as ws:
            assert orjson.loads(ws.recv(timeout=10))["type"] == "connected"
    with connect(ws_url(secure), additional_headers=sign(reader, "GET", ws_path),
                 open_timeout=10).__enter__() as ws:
        ws.recv(timeout=10)
        ws.send('{"type":"publish","payload":{"a":1}}')  # consume only: no publishing
        error = orjson.loads(ws.recv(timeout=10))
        assert error["type"] == "error" and error["error"] == "forbidden"


def test_sse_needs_a_credential_too(secure):
    stream = f"{secure.queue}/stream"
    assert secure.api.get(stream).status_code == 401
    token = secure.user["Authorization"].split()[1]
    with secure.api.stream("GET", stream, params={"token": token}) as reply:
        assert reply.status_code == 200


# --- TLS ----------------------------------------------------------------------------------------


def test_https_and_wss_verify_against_the_generated_certificate(broker_factory):
    broker = broker_factory(GORTMS_HTTP_TLS="true")
    cert = broker.data_dir / "tls" / "server.crt"
    key = broker.data_dir / "tls" / "server.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert str(cert) in broker.output() and str(key) in broker.output()
    context = ssl.create_default_context(cafile=str(cert))
    with httpx2.Client(base_url=broker.url, verify=context) as api:
        assert api.get("/health").status_code == 200
        assert api.post("/api/domains", json={"name": "tls"}).status_code == 201
        assert api.post("/api/domains/tls/queues", json={"name": "q"}).status_code == 201
    url = broker.url.replace("https://", "wss://") + "/api/ws/domains/tls/queues/q"
    with connect(url, ssl=context, open_timeout=10).__enter__() as ws:
        assert orjson.loads(ws.recv(timeout=10))["type"] == "connected"
    with pytest.raises(httpx2.ConnectError):  # and not against the system's roots
        httpx2.get(broker.url + "/health")


def test_a_certificate_near_its_end_is_regenerated(tmp_path):
    from cryptography import x509
    from supervisor.tls import ensure_certificate, RENEW_BEFORE_DAYS
    tls = tmp_path / "tls"
    cert_path, _ = ensure_certificate(str(tls), days=RENEW_BEFORE_DAYS - 1)
    old = x509.load_pem_x509_certificate(Path(cert_path).read_bytes())
    ensure_certificate(str(tls))
    new = x509.load_pem_x509_certificate(Path(cert_path).read_bytes())
    assert new.serial_number != old.serial_number
    assert (new.not_valid_after_utc - datetime.now(timezone.utc)).days >= 364
    sans = new.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {str(ip) for ip in sans.get_values_for_type(x509.IPAddress)} == {"127.0.0.1", "::1"}
    assert sans.get_values_for_type(x509.DNSName) == ["localhost"]
    again = ensure_certificate(str(tls))
    assert x509.load_pem_x509_certificate(Path(again[0]).read_bytes()).serial_number == \
        new.serial_number  # still fresh: kept
    assert os.stat(again[1]).st_mode & 0o777 == 0o600


def test_oversized_headers_are_refused_with_431(secure):
    reply = secure.api.get("/health", headers={"X-Padding": "x" * 20_000})
    assert reply.status_code == 431 and reply.json()["error"] == "headers_too_large"
    huge_token = {"Authorization": "Bearer " + "x" * 20_000}
    assert secure.api.get("/api/domains", headers=huge_token).status_code == 431


def test_security_events_are_logged_without_secrets(secure):
    service = secure.service(["publish:*"])
    secure.api.post(f"/api/services/{service['id']}/rotate-secret", headers=secure.admin)
    secure.api.post("/api/auth/login", json={"username": "root", "password": "wrong-password"})
    secure.login("root")
    text = secure.broker.output(last=5000)
    assert "bootstrap: created the first admin 'root'" in text
    assert "login failed for 'root'" in text and "login: 'root'" in text
    assert f"service account '{service['name']}'" in text and "rotated" in text
    assert PASSWORD not in text and "wrong-password" not in text
    assert service["secret"] not in text
    assert secure.admin["Authorization"].split()[1] not in text


def test_cors_is_exactly_what_http_cors_says_and_preflights_need_no_credential(
        broker_factory):
    broker = broker_factory(GORTMS_SECURITY_ENABLEAUTHENTICATION="true",
                            GORTMS_HTTP_CORS_ENABLED="true",
                            GORTMS_HTTP_CORS_ALLOWEDORIGINS="https://ui.example")
    with broker.client() as api:
        preflight = {"Origin": "https://ui.example", "Access-Control-Request-Method": "POST",
                     "Access-Control-Request-Headers": "authorization,content-type"}
        ok = api.options("/api/domains", headers=preflight)
        assert ok.status_code == 200
        assert ok.headers["access-control-allow-origin"] == "https://ui.example"
        assert "authorization" in ok.headers["access-control-allow-headers"].lower()
        other = api.options("/api/domains", headers={**preflight, "Origin": "https://evil.example"})
        assert other.status_code == 400 and "access-control-allow-origin" not in other.headers
        refused = api.get("/api/domains", headers={"Origin": "https://ui.example"})
        assert refused.status_code == 401  # CORS is no credential
        assert refused.headers["access-control-allow-origin"] == "https://ui.example"


def test_a_custom_certificate_is_used_as_given(tmp_path, broker_factory):
    from supervisor.tls import ensure_certificate
    cert, key = ensure_certificate(str(tmp_path / "mine"))
    broker = broker_factory(GORTMS_HTTP_TLS="true", GORTMS_HTTP_CERTFILE=cert,
                            GORTMS_HTTP_KEYFILE=key)
    assert not (broker.data_dir / "tls").exists()  # nothing generated
    context = ssl.create_default_context(cafile=cert)
    with httpx2.Client(base_url=broker.url, verify=context) as api:
        assert api.get("/health").status_code == 200


def test_a_data_dir_moved_elsewhere_keeps_its_users_and_service_secrets(tmp_path):
    first = start_broker(tmp_path / "here", GORTMS_SECURITY_ENABLEAUTHENTICATION="true")
    world = Secure(first)
    service = world.service([f"consume:{world.domain}"])
    queue = world.queue
    world.api.close()
    assert first.stop() == 0
    moved = tmp_path / "elsewhere"
    os.rename(tmp_path / "here", moved)
    second = start_broker(moved, GORTMS_SECURITY_ENABLEAUTHENTICATION="true")
    try:
        with second.client() as api:
            login = api.post("/api/auth/login", json={"username": "root", "password": PASSWORD})
            assert login.status_code == 200
            assert api.get(queue, headers=sign(service, "GET", queue)).status_code == 200
    finally:
        assert second.stop() == 0


def test_the_seeds_bootstrap_and_login_examples_work_with_authentication_off(broker_factory):
    broker = broker_factory()
    with broker.client() as api:
        created = api.post("/api/auth/bootstrap", json={
            "username": "admin", "password": "secure_password",
            "email": "[email protected]"})  # as the seed README shows it
        assert created.status_code == 201, created.text
        login = api.post("/api/auth/login",
                         json={"username": "admin", "password": "secure_password"})
        assert login.status_code == 200, login.text
        claims = jwt.decode(login.json()["token"], options={"verify_signature": False})
        assert claims["username"] == "admin" and claims["role"] == "admin"
        service = api.post("/api/services", json={"name": "svc", "permissions": ["*"]})
        assert service.status_code == 201 and service.json()["secret"]
    assert (broker.data_dir / "secrets" / "jwt.secret").exists()
