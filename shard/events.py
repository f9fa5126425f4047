"""Events: what happened on this shard that an operator wants to see in /api/stats'
`recentEvents`: domains, queues and groups created or deleted, capacity alerts, circuit
breaker transitions, messages dead-lettered, and (on the catalog shard) what the supervisor
reports, such as restarts.

One bounded ring per shard process. It outlives the ShardState (a store reopened after a
failure gets a new state, not a new history), so it is a module-level object, the one here.
Events are kept in memory only: a restarted shard starts an empty ring, and the supervisor's
report of the restart is the first event the catalog shard keeps after it.
"""

from __future__ import annotations

import time
from collections import deque

from gortms.monitoring import CRITICAL_FILL, WARNING_FILL
from gortms.protocol.monitor import Event

MAX_EVENTS = 1000


class Events:
    def __init__(self, size: int = MAX_EVENTS) -> None:
        self.ring: deque[Event] = deque(maxlen=size)

    def add(self, type_: str, message: str, severity: str = "info", domain: str = "",
            queue: str = "", group: str = "", timestamp: int | None = None) -> None:
        self.ring.append(Event(timestamp=timestamp or int(time.time() * 1000), type=type_,
                               severity=severity, message=message, domain=domain,
                               queue=queue, group=group))

    def extend(self, events: list[Event]) -> None:
        self.ring.extend(events)

    def since(self, since_ms: int) -> list[Event]:
        """Newest first."""
        out = []
        for event in reversed(self.ring):
            if event.timestamp < since_ms:
                break
            out.append(event)
        return out


EVENTS = Events()


def fill_level(count: int, max_size: int) -> int:
    """0 under 75 % of maxSize, 1 warning, 2 critical."""
    if max_size <= 0:
        return 0
    fill = count / max_size
    return 2 if fill >= CRITICAL_FILL else 1 if fill >= WARNING_FILL else 0


def capacity(domain: str, queue: str, before: int, after: int, max_size: int) -> None:
    """A publish took a queue from `before` to `after` messages: an event if it crossed a
    level upwards (going back down is not news; the next crossing up is)."""
    level = fill_level(after, max_size)
    if level > fill_level(before, max_size):
        severity = "critical" if level == 2 else "warning"
        EVENTS.add(f"capacity_{severity}", f"queue {domain}/{queue} holds {after} of its "
                   f"{max_size} messages ({after * 100 // max_size}%)", severity, domain, queue)
