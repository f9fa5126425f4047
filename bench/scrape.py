"""What a Prometheus scrape costs with many queues (issue 10, point 3).

    .venv/bin/python bench/scrape.py [--queues 1000] [--scrapes 30] [--commit REV] [--json PATH]

One broker (2 shards, 1 gateway worker, storage.sync on) with --queues queues over 10
domains, each with one consumer group that took and acked some of its 5 messages. Then:

  scrape       --scrapes sequential GET /metrics: latency median, p90 and max, body size and
               lines; the shards' own time per scrape (their request-duration histogram for
               the `metrics` operation: how long a scrape holds a shard's loop)
  reference    as many GET /api/health in the same run (a request that also asks every
               shard), for scale
  under load   wrk -t2 -c32 single publishes for 8 s: without scrapes, with a scrape every
               second (15 times Prometheus' default rate), without again; the ratio of the
               scraped run to the median of the others is what scraping costs the hot path

Prints the figures; --json writes them.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx2

from harness import BenchBroker, log, machine_line, median, percentile, source_tree
from loads import lua_script, wrk

DOMAINS = 10


def _setup(url: str, queues: int) -> None:
    with httpx2.Client(base_url=url, timeout=60) as client:
        for d in range(DOMAINS):
            assert client.post("/api/domains", json={"name": f"d{d}"}).status_code == 201
        for i in range(queues):
            base = f"/api/domains/d{i % DOMAINS}/queues"
            assert client.post(base, json={"name": f"q{i}"}).status_code == 201
            queue = f"{base}/q{i}"
            client.post(f"{queue}/messages/batch", json={"messages": [{"n": n}
                                                                      for n in range(5)]})
            client.post(f"{queue}/consumer-groups", json={"groupId": "g"})
            got = client.get(f"{queue}/consumer-groups/g/messages", params={"count": 2})
            ids = [m["id"] for m in got.json()["messages"]]
            client.post(f"{queue}/consumer-groups/g/ack", json={"ids": ids[:1]})


def _timed(client: httpx2.Client, path: str, count: int) -> tuple[list[float], int, int]:
    times, size, lines = [], 0, 0
    for _ in range(count):
        start = time.perf_counter()
        reply = client.get(path)
        times.append(time.perf_counter() - start)
        assert reply.status_code == 200, reply.text
        size, lines = len(reply.content), reply.text.count("\n")
    return sorted(times), size, lines


def _shard_scrape_s(text: str) -> list[float]:
    sums: dict[str, float] = {}
    counts: dict[str, float] = {}
    for line in text.splitlines():
        if 'op="metrics"' not in line:
            continue
        name, value = line.rsplit(" ", 1)
        shard = name.split('shard="')[1].split('"')[0]
        if name.startswith("gortms_shard_request_duration_seconds_sum"):
            sums[shard] = float(value)
        elif name.startswith("gortms_shard_request_duration_seconds_count"):
            counts[shard] = float(value)
    return [sums[s] / counts[s] for s in sorted(sums) if counts.get(s)]


def _publish_load(url: str, scrape_every_s: float | None, duration_s: int,
                  script: Path) -> float:
    stop = threading.Event()

    def scraper() -> None:
        with httpx2.Client(base_url=url, timeout=30) as client:
            while not stop.wait(scrape_every_s or 1.0):
                client.get("/metrics")

    thread = threading.Thread(target=scraper) if scrape_every_s else None
    if thread is not None:
        thread.start()
    try:
        load, _ = wrk(url + "/api/domains/d0/queues/q0/messages", script, 32, duration_s)
    finally:
        stop.set()
        if thread is not None:
            thread.join()
    return load.messages_per_s


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--queues", type=int, default=1000)
    parser.add_argument("--scrapes", type=int, default=30)
    parser.add_argument("--duration", type=int, default=8)
    parser.add_argument("--commit")
    parser.add_argument("--json")
    args = parser.parse_args()
    src, rev = source_tree(args.commit)
    log(machine_line())
    broker = BenchBroker(src=src)
    try:
        started = time.monotonic()
        _setup(broker.url, args.queues)
        log(f"{args.queues} queues with a group each, in {time.monotonic() - started:.0f}s")
        with httpx2.Client(base_url=broker.url, timeout=60) as client:
            client.get("/metrics")  # warm
            scrape, size, lines = _timed(client, "/metrics", args.scrapes)
            health, _, _ = _timed(client, "/api/health", args.scrapes)
            shard_s = _shard_scrape_s(client.get("/metrics").text)
        script = Path(tempfile.mkdtemp()) / "publish.lua"
        script.write_text(lua_script(0))
        quiet = _publish_load(broker.url, None, args.duration, script)
        scraped = _publish_load(broker.url, 1.0, args.duration, script)
        quiet2 = _publish_load(broker.url, None, args.duration, script)
    finally:
        broker.stop()
    result = {
        "commit": rev, "queues": args.queues, "groups": args.queues,
        "scrapeMs": {"median": median(scrape) * 1000, "p90": percentile(scrape, 90) * 1000,
                     "max": scrape[-1] * 1000},
        "healthMs": {"median": median(health) * 1000},
        "bodyBytes": size, "lines": lines,
        "shardMsPerScrape": [s * 1000 for s in shard_s],
        "publishRate": {"noScrapes": [quiet, quiet2], "scrapeEverySecond": scraped,
                        "ratio": scraped / median([quiet, quiet2])},
    }
    log(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
