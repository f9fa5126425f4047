"""Reporter: this gateway worker's own sample and HTTP figures, sent to the catalog shard every
`monitoring.interval`, so that whichever worker answers /metrics or /api/resources can show
every worker (each sees the others as of their last report, itself as of now).

A report is fire-and-forget: a catalog shard that is down misses some, nothing waits on it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Callable

from gortms.errors import GortmsError
from gortms.monitoring import Sampler
from gortms.partition import CATALOG_SHARD
from gortms.protocol.monitor import GatewayFigures, ProcessSample, Report
from gateway.httpmetrics import HttpMetrics
from gateway.shards import Shards

log = logging.getLogger(__name__)


class Reporter:
    def __init__(self, shards: Shards, metrics: HttpMetrics, worker: int, interval_s: float,
                 websockets: Callable[[], int], node: str = "") -> None:
        self.shards = shards
        self.metrics = metrics
        self.worker = worker
        self.interval_s = interval_s
        self.websockets = websockets
        self.sampler = Sampler("gateway", worker, node)
        self.last: ProcessSample = self.sampler.sample()
        self._task: asyncio.Task[None] | None = None

    def figures(self) -> GatewayFigures:
        self.metrics.open_websockets = self.websockets()
        return self.metrics.figures()

    def sample(self) -> ProcessSample:
        self.last = self.sampler.sample()
        return self.last

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _run(self) -> None:
        while True:
            try:
                await self.shards.call(CATALOG_SHARD, Report(sample=self.sample(),
                                                             http=self.figures()),
                                       timeout_s=max(1.0, self.interval_s))
            except GortmsError as exc:
                log.debug("gateway-%d: report not delivered: %s", self.worker, exc)
            await asyncio.sleep(self.interval_s)
