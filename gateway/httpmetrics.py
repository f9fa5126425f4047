"""HttpMetrics: this gateway worker's HTTP requests, counted by route, method and status, with
a latency histogram per route and method.

The route is the template (`/api/domains/{domain}/queues/{queue}/messages`), never the path:
label values stay bounded however many queues exist. Requests that match no route count
under "unmatched". The figures go to the catalog shard with every report (gateway/reporter.py),
so /metrics answered by any worker shows every worker's.
"""

from __future__ import annotations

from time import perf_counter
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gortms.monitoring import LATENCY_BUCKETS_S, Histogram
from gortms.protocol.monitor import GatewayFigures, HttpCount, HttpLatency

UNMATCHED = "unmatched"
# Set by FastPaths for the routes it serves itself (Starlette's router sets scope["route"]).
ROUTE_KEY = "gortms.route"
# Set by `measured` once a request is answered: its status, for the access log (app.py).
STATUS_KEY = "gortms.status"


class HttpMetrics:
    def __init__(self) -> None:
        self.counts: dict[tuple[str, str, int], int] = {}
        self.latency: dict[tuple[str, str], Histogram] = {}
        self.open_websockets = 0

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, status)
        self.counts[key] = self.counts.get(key, 0) + 1
        histogram = self.latency.get((route, method))
        if histogram is None:
            histogram = self.latency[(route, method)] = Histogram(LATENCY_BUCKETS_S)
        histogram.observe(seconds)

    def figures(self) -> GatewayFigures:
        return GatewayFigures(
            requests=[HttpCount(r, m, s, n) for (r, m, s), n in sorted(self.counts.items())],
            latency=[HttpLatency(r, m, h.data()) for (r, m), h in sorted(self.latency.items())],
            websockets=self.open_websockets)


def route_of(scope: Scope) -> str:
    fast = scope.get(ROUTE_KEY)
    if fast is not None:
        return fast
    route: Any = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else UNMATCHED


async def measured(app: ASGIApp, metrics: HttpMetrics, scope: Scope, receive: Receive,
                   send: Send) -> None:
    """Serve one HTTP request through `app`, counting it (a request that fails before its
    response starts counts as a 500, as the client sees it)."""
    start = perf_counter()
    status = 500

    async def sending(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        await send(message)

    try:
        await app(scope, receive, sending)
    finally:
        metrics.observe(route_of(scope), scope["method"], status, perf_counter() - start)
        scope[STATUS_KEY] = status
