"""Credentials against a broker with authentication on: a service's HMAC signatures on every
request and WebSocket handshake (as gateway/credentials.py verifies them), a user's token."""

from __future__ import annotations

from typing import Iterator

import httpx2
import pytest

from gortms.client import Client
from gortms.errors import Forbidden, Unauthorized
from tests.conftest import Broker, start_broker, unique

PASSWORD = "correct horse battery"


class Secured:
    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        with broker.client() as api:
            assert api.post("/api/auth/bootstrap", json={"username": "root",
                                                         "password": PASSWORD}).status_code == 201
            login = api.post("/api/auth/login", json={"username": "root", "password": PASSWORD})
            self.token = login.json()["token"]
            self.domain = unique("auth")
            reply = api.post("/api/services", headers={"Authorization": f"Bearer {self.token}"},
                             json={"name": unique("svc"), "permissions": [
                                 f"publish:{self.domain}", f"consume:{self.domain}",
                                 f"manage:{self.domain}"]})
            assert reply.status_code == 201, reply.text
            self.service = reply.json()

    def as_service(self, secret: str | None = None) -> Client:
        return Client(self.broker.url, service_id=self.service["id"],
                      service_secret=secret or self.service["secret"])


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    broker = start_broker(tmp_path_factory.mktemp("auth") / "data",
                          GORTMS_SECURITY_ENABLEAUTHENTICATION="true")
    yield Secured(broker)
    assert broker.stop() == 0, broker.output()


def test_a_service_signs_every_request_and_socket_of_its_work(secured):
    domain = secured.domain
    with secured.as_service() as client:
        client.create_domain(domain)
        client.create_queue(domain, "q")
        # identical requests back to back: each signature differs, none is taken for a replay
        positions = [client.publish(domain, "q", {"same": 1}).position for _ in range(20)]
        assert positions == list(range(1, 21))
        with client.observe(domain, "q") as live:
            live.publish({"same": 2})
            assert live.receive(timeout_s=10).position == 21
        with client.consumer(domain, "q", "g", credits=30) as socket:
            taken = []
            while len(taken) < 21:
                taken += socket.receive_batch(timeout_s=10)
            assert socket.ack(taken).acked == 21
        assert client.group(domain, "q", "g").pending == 0
        with pytest.raises(Forbidden) as denied:
            client.create_domain(unique("other"))
        assert denied.value.status == 403


def test_a_wrong_secret_or_no_credential_is_unauthorized_and_not_retried(secured):
    with secured.as_service("not the secret") as client, pytest.raises(Unauthorized) as bad:
        client.health()  # public: it answers whatever the credential
        client.queue(secured.domain, "q")
    assert bad.value.status == 401
    with Client(secured.broker.url) as anonymous, pytest.raises(Unauthorized):
        anonymous.queue(secured.domain, "q")


def test_a_users_token_goes_as_a_bearer_on_requests_and_sockets(secured):
    domain = unique("auth")
    with Client(secured.broker.url, token=secured.token) as client:
        client.create_domain(domain)
        client.create_queue(domain, "q")
        with client.observe(domain, "q") as live:
            client.publish(domain, "q", {"by": "root"})
            assert live.receive(timeout_s=10).payload == {"by": "root"}
    with httpx2.Client(base_url=secured.broker.url) as raw:  # the same token, by hand
        reply = raw.get(f"/api/domains/{domain}/queues/q",
                        headers={"Authorization": f"Bearer {secured.token}"})
        assert reply.json()["lastPosition"] == 1
