"""`gortms bench`: load a running broker and report throughput and latency percentiles.

    gortms bench [--url URL] [--publishers N] [--consumers N] [--size BYTES] [--rate MSG/S]
                 [--duration S] [--messages N] [--batch N] [--ack|--no-ack]
                 [--transport http|ws] [--json PATH] ...   (docs/CLIENT.md, gortms bench)

It talks only to the broker at --url, through gortms.client. Without --domain/--queue it
creates a bench-<id> domain with a queue `q` and deletes it afterwards (unless --keep); on an
existing queue it adds only its own consumer group (start: latest), deleted afterwards.
Ctrl-C ends publishing at once; consumers drain, then it cleans up and reports as usual.

Exit codes: 0 the run happened (its results say how it went), 1 it could not run (the broker
unreachable, a refused setup), 2 bad options.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time

import uvloop

from gortms.client import AsyncClient
from gortms.errors import GortmsError
from gortms.loadtest.options import BenchOptions, parse
from gortms.loadtest.report import Progress, print_summary, results, write_json
from gortms.loadtest.run import Run, client_for, consume_all, publish_all

EXIT_FAILED = 1
MAX_QUEUE_SIZE = 2**40  # the bench queue never refuses for maxSize (the broker's upper bound)


def main(argv: list[str]) -> int:
    options = parse(argv)
    try:
        return uvloop.run(bench(options))
    except GortmsError as exc:
        print(f"gortms bench: {exc.code}: {exc.message}", file=sys.stderr)
        return EXIT_FAILED


async def bench(options: BenchOptions) -> int:
    run = Run(options)
    terminal = sys.stdout.isatty()
    async with client_for(options) as admin:
        health = await admin.health()
        if not health.ok:
            print(f"gortms bench: the broker is {health.status} ({health.shards.up} of "
                  f"{health.shards.total} shards up)", file=sys.stderr)
        made: set[str] = set()
        try:
            await prepare(admin, run, made)
            await measure(run, terminal)
            data = results(run)
        finally:
            await clean_up(admin, run, made)
    print_summary(data, terminal)
    if options.json_path:
        write_json(options.json_path, data)
    return 0


async def prepare(client: AsyncClient, run: Run, made: set[str]) -> None:
    """The run's domain and queue (unless given) and group (if it consumes), noted in `made`
    as they are created, so that a failure half-way leaves nothing behind either."""
    options = run.options
    if options.domain is None:
        await client.create_domain(run.domain)
        made.add("domain")
        await client.create_queue(run.domain, run.queue, {"maxSize": MAX_QUEUE_SIZE})
    if options.consumers:
        await client.create_group(run.domain, run.queue, run.group,
                                  ack_mode="explicit" if options.ack else "auto",
                                  start="latest")
        made.add("group")


async def clean_up(client: AsyncClient, run: Run, made: set[str]) -> None:
    if run.options.keep:
        return
    try:
        if "domain" in made:
            await client.delete_domain(run.domain)
        elif "group" in made:
            await client.delete_group(run.domain, run.queue, run.group)
    except GortmsError as exc:
        print(f"gortms bench: cleaning up {run.domain}: {exc.code}: {exc.message}",
              file=sys.stderr)


async def measure(run: Run, terminal: bool) -> None:
    """Publishers and consumers until their deadlines, with live progress meanwhile."""
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGINT, _stop_publishing, run)
    done = asyncio.Event()
    progress = asyncio.ensure_future(Progress(run).show(done, terminal))
    run.start()
    try:
        async with asyncio.TaskGroup() as group:
            group.create_task(publish_all(run))
            if run.options.consumers:
                group.create_task(consume_all(run))
    except ExceptionGroup as failures:  # a worker could not connect: say why, not a trace
        first = next((e for e in failures.exceptions if isinstance(e, GortmsError)), None)
        if first is None:
            raise
        raise first from None
    finally:
        loop.remove_signal_handler(signal.SIGINT)
        done.set()
        await progress


def _stop_publishing(run: Run) -> None:
    run.publish_deadline = min(run.publish_deadline, time.monotonic())
