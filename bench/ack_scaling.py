"""Ack latency against the number of ids (or positions) in one ack request.

    .venv/bin/python bench/ack_scaling.py [--sizes 1000,2000,5000,10000] [--commit REV]

For each size N: publish N messages, fetch them (1000 per fetch) into one consumer, then time
one POST .../ack carrying all N ids, and once more with N positions. Work linear in N should
make 10,000 ids cost about 10x what 1,000 cost; the shard runs the ack inside its loop turn,
so whatever it costs, every other request to that shard waits as long.
"""

from __future__ import annotations

import argparse
import time

import httpx2 as httpx

from harness import DOMAIN, QUEUE, BenchBroker, fail, log, machine_line, payload, source_tree

GROUP = "g"
BATCH = 1000


def fill_and_fetch(client: httpx.Client, base: str, count: int) -> list[dict]:
    body = '{"messages":[%s]}' % ",".join(payload(i) for i in range(BATCH))
    for _ in range(0, count, BATCH):
        if client.post(f"{base}/messages/batch", content=body).status_code != 201:
            raise RuntimeError("batch publish failed")
    got: list[dict] = []
    while len(got) < count:
        reply = client.get(f"{base}/consumer-groups/{GROUP}/messages",
                           params={"count": BATCH, "consumer": "c1"})
        messages = reply.json()["messages"]
        if not messages:
            raise RuntimeError(f"fetched {len(got)} of {count}")
        got += messages
    return got


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,2000,5000,10000",
                        help="ids per ack (multiples of 1000; the gateway accepts up to 10000)")
    parser.add_argument("--commit", metavar="REV", help="measure this commit (git archive)")
    args = parser.parse_args()
    src, code = source_tree(args.commit)
    log(f"machine: {machine_line()}")
    log(f"code: {code}")
    broker = BenchBroker(workers=1, shards=2, src=src)
    try:
        broker.setup_queue(group=GROUP)
        base = f"/api/domains/{DOMAIN}/queues/{QUEUE}"
        with httpx.Client(base_url=broker.url, timeout=120) as client:
            for size in (int(s) for s in args.sizes.split(",")):
                for key in ("ids", "positions"):
                    got = fill_and_fetch(client, base, size)
                    targets = [m["id" if key == "ids" else "position"] for m in got]
                    t0 = time.perf_counter()
                    reply = client.post(f"{base}/consumer-groups/{GROUP}/ack",
                                        json={key: targets})
                    elapsed_ms = (time.perf_counter() - t0) * 1000
                    acked = reply.json().get("acked")
                    if acked != size:
                        raise RuntimeError(f"acked {acked} of {size}: {reply.text[:300]}")
                    log(f"  ack of {size:>6,} {key:<9} {elapsed_ms:8.1f} ms "
                        f"({elapsed_ms * 1000 / size:6.1f} us per message)")
    finally:
        broker.stop()


if __name__ == "__main__":
    try:
        main()
    except RuntimeError as exc:
        fail(str(exc))
