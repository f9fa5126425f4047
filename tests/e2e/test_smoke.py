"""A first end-to-end check: the seed's flow against a real broker."""

from tests.conftest import unique


def test_publish_then_consume_through_a_group(api):
    domain = unique("shop")
    assert api.post("/api/domains", json={"name": domain}).status_code == 201
    assert api.post(f"/api/domains/{domain}/queues", json={"name": "orders"}).status_code == 201
    sent = api.post(f"/api/domains/{domain}/queues/orders/messages", json={"order_id": "o1"})
    assert sent.status_code == 201
    got = api.get(f"/api/domains/{domain}/queues/orders/messages",
                  params={"group": "g", "max": 10, "timeout": 1}).json()
    assert got["count"] == 1
    assert got["messages"][0]["payload"] == {"order_id": "o1"}
    assert got["messages"][0]["id"] == sent.json()["messageId"]
