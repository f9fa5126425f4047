"""GET /health and /api/health: every shard pinged, 503 "degraded" while any is down."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import Response

from gortms import __version__
from gortms.errors import GortmsError
from gortms.protocol import Ping
from gateway.context import Gateway
from gateway.responses import json_response

PING_TIMEOUT_S = 1.0


class HealthApi:
    def __init__(self, gw: Gateway) -> None:
        self.gw = gw

    async def _ping(self, shard: int) -> bool:
        try:
            await self.gw.shards.call(shard, Ping(), timeout_s=PING_TIMEOUT_S)
        except GortmsError:
            return False
        return True

    async def health(self, request: Request) -> Response:
        total = self.gw.shards.count
        up = sum(await asyncio.gather(*(self._ping(i) for i in range(total))))
        status = "ok" if up == total else "degraded"
        body = {"status": status, "shards": {"up": up, "total": total},
                "nodeId": self.gw.settings.general.node_id, "version": __version__}
        return json_response(body, 200 if status == "ok" else 503,
                             None if status == "ok" else {"Retry-After": "1"})
