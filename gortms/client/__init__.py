"""A client of the broker, sync (`Client`) and asyncio (`AsyncClient`), on httpx2 and
websockets (docs/CLIENT.md).

    from gortms.client import Client

    with Client("http://127.0.0.1:8080") as client:
        client.publish("shop", "orders", {"order_id": 1})
        for message in client.consume("shop", "orders", "billing", limit=1):
            client.ack("shop", "orders", "billing", [message])

Errors are the broker's own tree (gortms/errors.py: QueueNotFound, ShardUnavailable, ...),
plus BrokerUnreachable and SocketClosed (gortms/client/errors.py).
"""

from gortms.client.errors import BrokerUnreachable, SocketClosed
from gortms.client.http import AsyncClient, Client
from gortms.client.models import (Acked, BatchPublished, Extended, Fetched, GroupInfo, Health,
                                  Message, Nacked, Published, QueueInfo, Settled)
from gortms.client.retry import NO_RETRY, RetryPolicy
from gortms.client.sockets import AsyncQueueSocket, QueueSocket

__all__ = ["Acked", "AsyncClient", "AsyncQueueSocket", "BatchPublished", "BrokerUnreachable",
           "Client", "Extended", "Fetched", "GroupInfo", "Health", "Message", "NO_RETRY",
           "Nacked", "Published", "QueueInfo", "QueueSocket", "RetryPolicy", "Settled",
           "SocketClosed"]
