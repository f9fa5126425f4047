"""The gateway's domain cache follows catalog changes made elsewhere, through shard events."""

from __future__ import annotations

import time

import zmq

from gortms.datadir import Layout
from gortms.partition import CATALOG_SHARD, shard_for
from gortms.protocol import (DomainCreate, DomainDelete, QueueCreate, Request, decode_replies,
                             encode_requests, reply_value)


def shard_call(broker, shard: int, request: Request):
    """What another gateway would do: ask a shard directly over its request socket."""
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(Layout(str(broker.data_dir)).endpoints(shard)[0])
    try:
        sock.send(encode_requests([(1, int((time.time() + 5) * 1000), request)]))
        assert sock.poll(5000), f"shard {shard} did not answer {request}"
        (_, status, body), = decode_replies(sock.recv())
        return reply_value(status, body, request.reply)
    finally:
        sock.close()


def test_a_domain_recreated_behind_the_gateways_back_is_seen_at_once(broker_factory):
    broker = broker_factory()
    base = "/api/domains/d/queues/q/messages"
    with broker.client() as client:
        client.post("/api/domains", json={"name": "d", "schema": {"fields": {"a": "number"}}})
        client.post("/api/domains/d/queues", json={"name": "q"})
        assert client.post(base, json={"a": 1}).status_code == 201  # schema now cached
        # Elsewhere, the domain is deleted and created again with another schema.
        old = shard_call(broker, CATALOG_SHARD, DomainDelete(name="d"))
        new = shard_call(broker, CATALOG_SHARD,
                         DomainCreate(name="d", schema={"fields": {"b": "string"}}))
        assert new.epoch > old.epoch
        shard_call(broker, shard_for("d", "q", 2),
                   QueueCreate(domain="d", queue="q", epoch=new.epoch))
        # The catalog shard's event reaches the gateway within moments (the cache would
        # otherwise keep the old schema and epoch for 30 s).
        for _ in range(200):
            reply = client.post(base, json={"a": 1})
            if reply.status_code == 422:
                break
            time.sleep(0.01)
        assert reply.status_code == 422
        assert "'b'" in reply.json()["message"]
        fresh = client.post(base, json={"b": "x"})
        assert fresh.status_code == 201
        assert fresh.json()["position"] == 1  # the new incarnation's queue
