"""Side by side: the product against its references, in interleaved rounds, medians and ratios.

    .venv/bin/python bench/compare.py [--rounds 3] [--cases single,batch100,...] [--commit REV]

Every case runs the product (a fresh broker: 2 shards, 1 gateway worker, storage.sync on)
and its reference (started fresh too) one after the other, in alternating order from round
to round, so a noisy neighbour hurts both alike. Cases:

  single     wrk -t2 -c32, one ~100-byte order per POST   | bare Starlette endpoint, same wrk
  batch100   wrk -t2 -c8, batches of 100 (8 in flight)    | 8 redis-py connections pipelining
                                                            100 XADD each
  batch1000  wrk -t2 -c8, batches of 1000                 | redis-benchmark -c 8 -P 100 XADD
  consume    200k preloaded, 4 consumers: fetch 100 + ack | XREADGROUP COUNT 100 + XACK,
                                                            4 consumers
  nack1      consume, 1% of first deliveries nacked and    | the same consume without nacks
             retried (retries on, 100 ms backoff)          | (the product against itself)
  conns1000  wrk -t2 -c1000, single publishes             | bare Starlette endpoint, same wrk

Redis is Debian's redis-server with appendonly yes and appendfsync always, fresh per case.
Consumers on both sides count duplicates and losses; a product run also fails if a publish
was not stored, a request failed (but in conns1000, where errors are reported), or a broker
process restarted. Prints every run, then per case the medians and their ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit

import uvloop

from harness import (DOMAIN, QUEUE, RETRIES, BenchBroker, CpuMeter, Profiler, fail,
                     format_cpu, log, machine_line, median, source_tree, wait_for_quiet)
from loads import (GROUP, Load, account, http_consumer, http_preload, lua_script,
                   redis_benchmark, redis_consumer, redis_group, redis_pipelines, redis_preload,
                   run_clients, wrk)
from refs import BareStarlette, RedisServer

WARMUP_S = 2
QUEUE_PATH = f"/api/domains/{DOMAIN}/queues/{QUEUE}"


@dataclass
class Result:
    load: Load
    cpu: dict[str, float]


class Bench:
    """The options of one invocation, and the scripts wrk posts."""

    def __init__(self, args: argparse.Namespace, scripts_dir: Path) -> None:
        self.args = args
        self.scripts = {}
        for batch in (0, 100, 1000):
            path = scripts_dir / f"publish-{batch}.lua"
            path.write_text(lua_script(batch))
            self.scripts[batch] = path

    def quiet(self) -> None:
        busy = wait_for_quiet(self.args.quiet_wait)
        if busy > 25:
            log(f"    (the machine was {busy:.0f}% busy before this run)")

    # --- the product ------------------------------------------------------------------------

    def _broker(self, group: str | None = None, config: dict | None = None) -> BenchBroker:
        broker = BenchBroker(workers=1, shards=2, sync=not self.args.no_sync, src=self.args.src)
        try:
            broker.setup_queue(group=group, config=config)
        except BaseException:
            broker.stop(check=False)
            raise
        return broker

    def _measure(self, broker: BenchBroker, work: Callable[[], Load], profile: str | None
                 ) -> Result:
        pids = {k: v for k, v in broker.pids().items() if k != "supervisor"}
        meter = CpuMeter(pids)
        profiler = Profiler(pids, Path(profile)) if profile else None
        meter.start()
        if profiler is not None:
            profiler.start()
        load = work()
        cpu = meter.stop(_client_cpu(load))
        if profiler is not None:
            log(profiler.finish())
        if broker.restarts():
            raise RuntimeError(f"a broker process restarted during the run:\n{broker.output()}")
        return Result(load, cpu)

    def product_wrk(self, batch: int, connections: int, strict: bool = True,
                    profile: str | None = None) -> Result:
        broker = self._broker()
        try:
            url = broker.url + QUEUE_PATH + ("/messages/batch" if batch else "/messages")
            warm, _ = wrk(url, self.scripts[batch], connections, WARMUP_S)
            self.quiet()
            before = broker.get(QUEUE_PATH)["messageCount"]
            requests = 0

            def work() -> Load:
                nonlocal requests
                load, requests = wrk(url, self.scripts[batch], connections, self.args.duration)
                return load

            result = self._measure(broker, work, profile)
            load = result.load
            if strict and (load.errors or load.timeouts or warm.errors):
                raise RuntimeError(f"{load.errors} failed requests, {load.timeouts} timeouts\n"
                                   f"{broker.output()}")
            stored = broker.get(QUEUE_PATH)["messageCount"] - before
            per_request = batch or 1
            # wrk stops with requests in flight, which may still be stored: at least, not exactly.
            if stored < requests * per_request:
                raise RuntimeError(f"wrk counted {requests} x {per_request} but the queue "
                                   f"gained only {stored} messages")
            load.messages_per_s = load.requests_per_s * per_request
        finally:
            broker.stop()
        return result

    def product_consume(self, profile: str | None = None, nack_percent: int = 0) -> Result:
        """Preloaded messages drained by consumers; with `nack_percent`, that share of first
        deliveries is nacked and retried (retries on, 100 ms backoff) before its ack."""
        broker = self._broker(group=GROUP, config=RETRIES if nack_percent else None)
        try:
            url = urlsplit(broker.url)
            total = self.args.messages
            ids = asyncio.run(http_preload(url.hostname, url.port, QUEUE_PATH + "/messages/batch",
                                           total))
            self.quiet()
            group_path = f"{QUEUE_PATH}/consumer-groups/{GROUP}"

            def work() -> Load:
                return account(ids, run_clients(http_consumer, [
                    (url.hostname, url.port, group_path, f"c{i}", 100, nack_percent)
                    for i in range(self.args.consumers)]))

            result = self._measure(broker, work, profile)
            group = broker.get(group_path)
            if result.load.errors or group["lag"] or group["pending"]:
                raise RuntimeError(f"not exactly once: {result.load.note}; group lag "
                                   f"{group['lag']}, pending {group['pending']}")
        finally:
            broker.stop()
        return result

    # --- the references ---------------------------------------------------------------------

    def bare_wrk(self, connections: int) -> Result:
        server = BareStarlette()
        try:
            url = server.url + QUEUE_PATH + "/messages"
            wrk(url, self.scripts[0], connections, WARMUP_S)
            self.quiet()
            meter = CpuMeter({"starlette": server.pid})
            meter.start()
            load, _ = wrk(url, self.scripts[0], connections, self.args.duration)
            return Result(load, meter.stop(_client_cpu(load)))
        finally:
            server.stop()

    def _redis(self, work: Callable[[RedisServer], Load],
               prepare: Callable[[RedisServer], None] | None = None) -> Result:
        server = RedisServer()
        try:
            if prepare is not None:
                prepare(server)
            self.quiet()
            meter = CpuMeter({"redis": server.pid})
            meter.start()
            load = work(server)
            return Result(load, meter.stop(_client_cpu(load)))
        finally:
            server.stop()

    def redis_batch100(self) -> Result:
        return self._redis(lambda s: redis_pipelines(s.port, 8, 100, self.args.duration))

    def redis_batch1000(self) -> Result:
        requests = int(self.args.duration * self.args.redis_rate)
        return self._redis(lambda s: redis_benchmark(s.port, 8, 100, requests))

    def redis_consume(self) -> Result:
        total = self.args.messages
        ids: list = []

        def prepare(server: RedisServer) -> None:
            ids.extend(redis_preload(server.port, total))
            redis_group(server.port)

        def work(server: RedisServer) -> Load:
            return account(ids, run_clients(redis_consumer, [
                (server.port, f"c{i}", 100) for i in range(self.args.consumers)]))

        result = self._redis(work, prepare)
        if result.load.errors:
            raise RuntimeError(f"Redis not exactly once: {result.load.note}")
        return result


def _client_cpu(load: Load) -> dict[str, float]:
    return {"client": 100 * load.client_cpu_s / load.elapsed_s} if load.elapsed_s else {}



CASES: dict[str, tuple[str, Callable[[Bench], Result], Callable[[Bench], Result]]] = {
    "single": ("bare Starlette",
               lambda b: b.product_wrk(0, 32), lambda b: b.bare_wrk(32)),
    "batch100": ("redis-py, 8 pipelines of 100 XADD",
                 lambda b: b.product_wrk(100, 8), Bench.redis_batch100),
    "batch1000": ("redis-benchmark -c 8 -P 100 XADD",
                  lambda b: b.product_wrk(1000, 8), Bench.redis_batch1000),
    "consume": ("XREADGROUP COUNT 100 + XACK",
                Bench.product_consume, Bench.redis_consume),
    "nack1": ("the same consume+ack without nacks",
              lambda b: b.product_consume(nack_percent=1), Bench.product_consume),
    "conns1000": ("bare Starlette",
                  lambda b: b.product_wrk(0, 1000, strict=False), lambda b: b.bare_wrk(1000)),
}


def describe(result: Result) -> str:
    load = result.load
    lat = " ".join(f"{k} {v:.1f}ms" for k, v in load.latency_ms.items())
    extra = f", {load.errors} errors, {load.timeouts} timeouts" if (
        load.errors or load.timeouts) else ""
    note = f"; {load.note}" if load.note else ""
    return (f"{load.messages_per_s:,.0f} msg/s ({load.requests_per_s:,.0f} req/s), {lat}"
            f"{extra}; CPU {format_cpu(result.cpu)}{note}")


def summarize(results: dict[str, dict[str, list[Result]]]) -> list[dict]:
    rows = []
    log("medians (product / reference):")
    for case, sides in results.items():
        product, reference = sides["product"], sides["reference"]
        if not product or not reference:
            continue
        p = median(r.load.messages_per_s for r in product)
        r = median(x.load.messages_per_s for x in reference)
        p99 = median(x.load.latency_ms.get("p99", float("nan")) for x in product)
        r99 = median(x.load.latency_ms.get("p99", float("nan")) for x in reference)
        rounds = [a.load.messages_per_s / b.load.messages_per_s
                  for a, b in zip(product, reference)]
        log(f"  {case}: {p:,.0f} vs {r:,.0f} msg/s = {p / r:.2f}x (rounds "
            + ", ".join(f"{x:.2f}" for x in rounds) + f"); p99 {p99:.1f} vs {r99:.1f} ms")
        rows.append({"case": case, "reference": CASES[case][0], "product": p,
                     "referenceValue": r, "ratio": p / r, "roundRatios": rounds,
                     "productP99Ms": p99, "referenceP99Ms": r99,
                     "runs": {side: [asdict(x) for x in sides[side]] for side in sides}})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cases", default=",".join(CASES), help="default: all")
    parser.add_argument("--duration", type=int, default=10, help="seconds per load (10)")
    parser.add_argument("--messages", type=int, default=200_000, help="consume preload")
    parser.add_argument("--consumers", type=int, default=4)
    parser.add_argument("--redis-rate", type=int, default=400_000,
                        help="redis-benchmark runs duration x this many XADD (400000)")
    parser.add_argument("--quiet-wait", type=float, default=30,
                        help="wait up to S seconds for an idle machine before each load")
    parser.add_argument("--commit", metavar="REV", help="measure this commit's snapshot")
    parser.add_argument("--no-sync", action="store_true", help="storage.sync off (not a target)")
    parser.add_argument("--profile", metavar="DIR",
                        help="after the rounds, one py-spy run of the product per case")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args()
    cases = args.cases.split(",")
    unknown = set(cases) - set(CASES)
    if unknown:
        fail(f"unknown cases {sorted(unknown)}; known: {', '.join(CASES)}")
    uvloop.install()
    args.src, code = source_tree(args.commit)
    log(f"machine: {machine_line()}")
    log(f"code: {code}; storage.sync {'off' if args.no_sync else 'on'}, 2 shards, 1 gateway "
        f"worker; {args.rounds} rounds, {args.duration}s per load")
    results: dict[str, dict[str, list[Result]]] = {
        c: {"product": [], "reference": []} for c in cases}
    with tempfile.TemporaryDirectory(prefix="gortms-compare-") as tmp:
        bench = Bench(args, Path(tmp))
        for round_no in range(args.rounds):
            log(f"round {round_no + 1}/{args.rounds}")
            for case in cases:
                name, product, reference = CASES[case]
                sides = [("product", product), ("reference", reference)]
                for side, run in sides if round_no % 2 == 0 else sides[::-1]:
                    result = run(bench)
                    results[case][side].append(result)
                    label = "product" if side == "product" else name
                    log(f"  {case} {label}: {describe(result)}")
        if args.profile:
            for case in cases:
                log(f"profile (py-spy, not counted): {case}")
                profile = str(Path(args.profile) / case)
                if case in ("consume", "nack1"):
                    result = bench.product_consume(profile, 1 if case == "nack1" else 0)
                else:
                    batch = {"batch100": 100, "batch1000": 1000}.get(case, 0)
                    conns = {"single": 32, "conns1000": 1000}.get(case, 8)
                    result = bench.product_wrk(batch, conns, case != "conns1000", profile)
                log(f"  {describe(result)}")
    rows = summarize(results)
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": machine_line(), "code": code,
                                               "cases": rows}, indent=1))


if __name__ == "__main__":
    try:
        main()
    except RuntimeError as exc:
        fail(str(exc))
        sys.exit(1)
