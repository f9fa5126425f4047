"""`python -m shard --index I --settings-fd FD --parent-pid PID`: run one shard until SIGTERM.

Exit codes: 0 stopped cleanly, 2 bad arguments or settings, 70 storage failure.
"""

from __future__ import annotations

import logging
import sys

import uvloop

from gortms.datadir import Layout
from gortms.errors import GortmsError
from gortms.lifecycle import child_parser, start_child, tune_gc
from shard import loader
from shard.rocks import RocksStore
from shard.server import ShardServer
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
    try:
        store = RocksStore(layout.shard_dir(args.index))
    except GortmsError as exc:
        log.critical("%s", exc)
        return 70
    state = ShardState(args.index, store, limits)
    loader.load(state)
    request_endpoint, event_endpoint = layout.endpoints(args.index)
    server = ShardServer(state, request_endpoint, event_endpoint)
    tune_gc()
    uvloop.run(server.serve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
