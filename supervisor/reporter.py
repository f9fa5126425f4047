"""Reporter: the supervisor's own sample, and its events (a child exited and is restarted, a
child hung and was killed), sent to the catalog shard every `monitoring.interval` over the
shard's request socket, like a gateway worker's report. /api/resources and /metrics then
show the supervisor, and /api/stats' recentEvents its restarts, from whichever worker answers.

Events wait here (bounded) while the catalog shard is down: the restart of shard 0 itself is
reported once it is back.
"""

from __future__ import annotations

import time
from collections import deque

import zmq

from gortms.monitoring import Sampler
from gortms.protocol import encode_requests
from gortms.protocol.monitor import MAX_REPORT_EVENTS, Event, Report


class Reporter:
    def __init__(self, endpoint: str, interval_s: float, node: str = "") -> None:
        self.interval_s = interval_s
        self.sampler = Sampler("supervisor", 0, node)
        self.events: deque[Event] = deque(maxlen=MAX_REPORT_EVENTS)
        self.socket = zmq.Context.instance().socket(zmq.DEALER)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.setsockopt(zmq.SNDHWM, 4)
        self.socket.connect(endpoint)
        self._next = 0.0
        self._seq = 0

    def event(self, type_: str, message: str, severity: str = "warning") -> None:
        self.events.append(Event(timestamp=int(time.time() * 1000), type=type_,
                                 severity=severity, message=message))

    def step(self, now: float) -> None:
        """From the supervisor's loop: report when due; drop the shard's answers."""
        self._drain()
        if now < self._next:
            return
        self._next = now + self.interval_s
        self._seq += 1
        events = list(self.events)
        deadline_ms = int((time.time() + max(1.0, self.interval_s)) * 1000)
        report = Report(sample=self.sampler.sample(), events=events)
        try:
            self.socket.send(encode_requests([(self._seq, deadline_ms, report)]), zmq.NOBLOCK)
        except zmq.Again:
            return  # not connected: the events wait for the next report
        # Sent is not received: a shard that dies before reading it loses these events.
        # Keeping them until an answer comes would report them twice after a timeout; a
        # restart is also in the log, so at most once it is.
        self.events.clear()

    def _drain(self) -> None:
        while True:
            try:
                self.socket.recv(zmq.NOBLOCK)
            except zmq.Again:
                return

    def close(self) -> None:
        self.socket.close(linger=0)
