"""`python -m shard --index I --settings-fd FD --parent-pid PID`: run one shard until SIGTERM.

Exit codes: 0 stopped cleanly, 2 bad arguments or settings, 70 the store cannot be opened
even read-only, or a bug left memory ahead of the disk. A full or failing disk is not an exit:
the shard serves reads from a read-only open and recovers in place (shard/disk.py).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys

import uvloop

from gortms.datadir import Layout, read_cluster
from gortms.errors import GortmsError, StorageError
from gortms.partition import shard_for
from gortms.lifecycle import child_parser, start_child, tune_gc
from shard import loader
from shard.disk import DiskGuard
from shard.monitor import Monitor
from shard.rocks import RocksStore
from shard.server import READS, ShardServer
from shard.state import Limits, ShardState

log = logging.getLogger("shard")


def main(argv: list[str] | None = None) -> int:
    parser = child_parser("shard")
    parser.add_argument("--index", type=int, required=True)
    args = parser.parse_args(argv)
    settings = start_child(args, f"shard-{args.index}")
    layout = Layout(settings.data_dir)
    limits = Limits(sync=settings.storage.sync,
                    dedup_window_ms=int(settings.storage.dedup_window * 1000),
                    max_waiters=settings.shards.max_waiters,
                    max_pending_per_group=settings.shards.max_pending_per_group,
                    recent_cache_bytes=settings.storage.recent_cache_bytes)
    path = layout.shard_dir(args.index)
    monitor = Monitor(args.index, float(settings.monitoring.interval),
                      node=settings.general.node_id,
                      history_size=settings.monitoring.history_size)
    disk = DiskGuard(args.index, path if os.path.isdir(path) else settings.data_dir,
                     settings.storage.min_free_bytes)

    def open_state(read_only: bool) -> ShardState:
        store = RocksStore(path, read_only=read_only)
        try:
            state = ShardState(args.index, store, limits, disk, monitor)
            loader.load(state)
        except BaseException:
            with contextlib.suppress(StorageError):
                store.close()  # or its lock outlives it, and the next open fails
            raise
        disk.path = path
        return state

    try:
        state = open_state(read_only=False)
    except StorageError as exc:
        # A full or failing disk: serve reads from a read-only open while the server retries
        # (shard/disk.py), rather than exit and be restarted into the same failure.
        disk.fail(exc)
        try:
            state = open_state(read_only=True)
        except GortmsError as again:
            log.critical("%s", again)
            return 70
    except GortmsError as exc:
        log.critical("%s", exc)
        return 70
    _warn_misplaced(state, layout)
    request_endpoint, event_endpoint = layout.endpoints(args.index)
    server = ShardServer(state, request_endpoint, event_endpoint, reopen=open_state)
    if disk.failure is not None:
        server.only = READS
    tune_gc()
    uvloop.run(server.serve())
    return 0


def _warn_misplaced(state: ShardState, layout: Layout) -> None:
    """A queue this shard holds that placement now puts elsewhere: one named `x.dlq` created
    before dead-letter queues were placed with their origin (gortms/partition.py)."""
    cluster = read_cluster(layout)
    count = int(cluster["shardCount"]) if cluster else 0
    for domain, name in state.queues:
        owner = shard_for(domain, name, count) if count else state.index
        if owner != state.index:
            log.error("queue %s/%s is stored on shard %d but placed on shard %d since "
                      "dead-letter queues live with their origin: it cannot be reached (its "
                      "data stays on disk until the domain is deleted)",
                      domain, name, state.index, owner)


if __name__ == "__main__":
    sys.exit(main())
