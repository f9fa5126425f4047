"""GET /health and /api/health: every shard pinged, 503 "degraded" while any is down.

Each shard's answer carries its storage state (shard/disk.py): "ok", "low" (free space under
storage.minFreeBytes: writes that add data get 507) or "full" (its store failed a write and is
read-only), listed in "shardStorage"; "storage" is the worst of them. A shard that is up but
low or full leaves the status "ok": it still serves reads, and taking the node out of a load
balancer would stop consumers from draining it.

"authentication" says whether security.enableAuthentication is on, so a client that holds no
credential yet (the web UI, gateway/ui.py) knows whether to ask for a sign-in.
"""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import Response

from gortms import __version__
from gortms.errors import GortmsError
from gortms.protocol import Ping, Pong
from gateway.context import Gateway
from gateway.responses import json_response

PING_TIMEOUT_S = 1.0
_SEVERITY = {"ok": 0, "low": 1, "full": 2}


class HealthApi:
    def __init__(self, gw: Gateway) -> None:
        self.gw = gw

    async def _ping(self, shard: int) -> Pong | None:
        try:
            return await self.gw.shards.call(shard, Ping(), timeout_s=PING_TIMEOUT_S)
        except GortmsError:
            return None

    async def health(self, request: Request) -> Response:
        total = self.gw.shards.count
        pongs = await asyncio.gather(*(self._ping(i) for i in range(total)))
        up = sum(pong is not None for pong in pongs)
        status = "ok" if up == total else "degraded"
        shards = [{"shard": i, "up": False} if pong is None else
                  {"shard": i, "up": True, "storage": pong.storage, "freeBytes": pong.free_bytes}
                  for i, pong in enumerate(pongs)]
        storage = max((pong.storage for pong in pongs if pong is not None),
                      key=lambda state: _SEVERITY.get(state, 2), default="ok")
        body = {"status": status, "shards": {"up": up, "total": total},
                "storage": storage, "shardStorage": shards,
                "nodeId": self.gw.settings.general.node_id, "version": __version__,
                "authentication": self.gw.settings.security.enable_authentication}
        return json_response(body, 200 if status == "ok" else 503,
                             None if status == "ok" else {"Retry-After": "1"})
