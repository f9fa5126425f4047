"""A shard's handlers driven in-process: CPU per message of consume+ack, with and without nacks.

    .venv/bin/python bench/shard_drive.py [--messages 400000] [--rounds 3] [--commit REV]

No HTTP, no ZeroMQ, no fsync: one ShardState over a real RocksStore (storage.sync off) in a
temp dir, a queue preloaded with `--messages` messages of about 100 bytes in batches of
1,000, then four consumers taking turns in a random order (seeded, the same every run) as
the server's loop would: each fetches 100, then acks them in one request, or settles them
with the 1% (`--nack-percent`) of first deliveries chosen by id nacked (retries on, 100 ms
backoff, as `compare.py --cases nack1`). Each turn commits, as ShardServer._process does,
and advances the shard's clock 1 ms; the expiry timer runs every 50 ms of that clock.

What it reports is the process CPU time of the drive, which does not depend on the machine's
load the way a throughput does: a change to the shard's hot paths shows here in one run, and
so does what nacks cost the shard beyond the plain drive (compare.py's nack1 measures that
through the whole broker, where it is noisy). Each run is a fresh interpreter; plain and
nack runs alternate; medians and the ratio are printed.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

from harness import RETRIES, fail, log, machine_line, median, source_tree

CONSUMERS = 4
FETCH = 100
PRELOAD_BATCH = 1000
PAYLOAD = b'{"order":12345,"customer":"c-42","items":[1,2,3],"total":99.5,"note":"xxxxxxxxxxxxxxx"}'


def drive(messages: int, nack_percent: int) -> dict[str, float]:
    """In the child: the drive itself, imported from the tree on sys.path."""
    from gortms.checks import convert
    from gortms.lifecycle import tune_gc
    from gortms.models import GroupSpec, QueueConfig
    from gortms.protocol import (Ack, DomainCreate, GroupCreate, Publish, QueueCreate, Settle,
                                 encode_message, record_id)
    from shard import deadletters
    from shard.handlers import HANDLERS
    from shard.rocks import RocksStore
    from shard.state import Limits, ShardState

    domain, queue, group_name = "bench", "q", "g"
    where = {"domain": domain, "queue": queue, "epoch": 1}
    with tempfile.TemporaryDirectory(prefix="gortms-drive-", dir="/tmp") as tmp:
        store = RocksStore(str(Path(tmp) / "shard"))
        state = ShardState(0, store, Limits(sync=False))
        state.now_ms = 1_751_193_000_000

        def commit() -> None:
            turn, state.turn = state.turn, state.new_turn()
            turn.commit(False)
            state.catalog_events.clear()
            state.published.clear()

        def do(request: object) -> object:
            reply = HANDLERS[type(request)](state, request)
            commit()
            return reply

        config = {"maxSize": 100_000_000, **(RETRIES if nack_percent else {})}
        do(DomainCreate(name=domain))
        do(QueueCreate(**where, config=convert(config, QueueConfig)))
        do(GroupCreate(**where, spec=GroupSpec(group_id=group_name)))
        for first in range(0, messages, PRELOAD_BATCH):
            count = min(PRELOAD_BATCH, messages - first)
            do(Publish(**where, records=[encode_message(f"id{n:09d}", b"{}", PAYLOAD)
                                         for n in range(first, first + count)]))
        group = state.queues[(domain, queue)].groups[group_name]
        rng = random.Random(7)
        consumers = [f"c{i}" for i in range(CONSUMERS)]
        held: dict[str, list | None] = dict.fromkeys(consumers)
        acked = turns = 0
        last_tick = state.now_ms
        tune_gc()
        cpu0 = time.process_time()
        while acked < messages:
            turns += 1
            if turns > 100 * messages // FETCH + 10_000:
                raise RuntimeError(f"not drained: {acked} of {messages} acked")
            state.now_ms += 1
            rng.shuffle(consumers)
            for consumer in consumers:
                deliveries = held[consumer]
                if deliveries is None:
                    held[consumer] = group.deliver(state.store, state.turn, consumer, FETCH,
                                                   state.now_ms, 1_000_000)
                    state.track_timers(group)
                    continue
                held[consumer] = None
                if not deliveries:
                    continue
                ids, failed = [], []
                for _, count, record in deliveries:
                    message_id = record_id(record)
                    if count == 1 and zlib.crc32(message_id.encode()) % 100 < nack_percent:
                        failed.append(message_id)
                    else:
                        ids.append(message_id)
                if failed:
                    reply = HANDLERS[Settle](state, Settle(**where, group=group_name, ack=ids,
                                                           nack=failed))
                else:
                    reply = HANDLERS[Ack](state, Ack(**where, group=group_name, ids=ids))
                acked += reply.acked
            if state.now_ms - last_tick >= 50:
                last_tick = state.now_ms
                for timed in list(state.timed_groups):
                    timed.expire(state.now_ms, state.turn)
                    deadletters.move(state, timed)
            commit()
        cpu = time.process_time() - cpu0
        if group.pending or group.acks.floor != messages + 1:
            raise RuntimeError(f"{len(group.pending)} still pending, ack floor "
                               f"{group.acks.floor}")
        store.close()
    return {"cpu_s": cpu, "us_per_message": cpu / messages * 1e6, "turns": turns}


def run_child(src: Path, messages: int, nack_percent: int) -> dict[str, float]:
    out = subprocess.run([sys.executable, __file__, "--child", str(src), "--messages",
                          str(messages), "--nack-percent", str(nack_percent)],
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"the drive failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=400_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--nack-percent", type=int, default=1)
    parser.add_argument("--commit", metavar="REV", help="drive this commit's snapshot")
    parser.add_argument("--child", metavar="SRC", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        sys.path.insert(0, args.child)
        print(json.dumps(drive(args.messages, args.nack_percent)))
        return
    src, code = source_tree(args.commit)
    log(f"machine: {machine_line()}")
    log(f"code: {code}; {args.messages:,} messages, {CONSUMERS} consumers fetching {FETCH}, "
        f"{args.rounds} rounds")
    sides: dict[int, list[dict[str, float]]] = {0: [], args.nack_percent: []}
    for round_no in range(args.rounds):
        order = [0, args.nack_percent] if round_no % 2 == 0 else [args.nack_percent, 0]
        for percent in order:
            result = run_child(src, args.messages, percent)
            sides[percent].append(result)
            log(f"  round {round_no + 1}, {percent}% nacked: {result['cpu_s']:.3f} s CPU, "
                f"{result['us_per_message']:.2f} us/message, {result['turns']} turns")
    plain = median(r["cpu_s"] for r in sides[0])
    nacks = median(r["cpu_s"] for r in sides[args.nack_percent])
    log(f"medians: plain {plain:.3f} s, {args.nack_percent}% nacked {nacks:.3f} s: nacks cost "
        f"the shard {nacks / plain:.2f}x the CPU of the plain drive "
        f"({(nacks - plain) / args.messages * 1e6:+.2f} us per message)")


if __name__ == "__main__":
    try:
        main()
    except RuntimeError as exc:
        fail(str(exc))
