"""What a bench run shows: live progress (rich on a terminal, a plain line a second
otherwise, on stderr), the results as a table, and the results as JSON."""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any, Iterable, TextIO

import orjson
from rich.console import Console
from rich.live import Live
from rich.table import Table

from gortms.loadtest.run import Run
from gortms.loadtest.stats import PERCENTILES, percentile

PROGRESS_INTERVAL_S = 1.0
MIB = 1024 * 1024


def results(run: Run) -> dict[str, Any]:
    """Everything the run measured, as the JSON it writes (docs/CLIENT.md)."""
    options = run.options
    ended = run.publishing_ended or time.monotonic()
    publishing_s = max(1e-9, ended - run.started)
    consuming_s = max(1e-9, run.last_received - run.started)
    return {
        "url": options.url, "transport": options.transport,
        "domain": run.domain, "queue": run.queue,
        "group": run.group if options.consumers else None,
        "options": {"publishers": options.publishers, "consumers": options.consumers,
                    "size": options.size, "rate": options.rate,
                    "duration_s": options.duration_s, "messages": options.messages,
                    "batch": options.batch, "fetch": options.fetch, "ack": options.ack},
        "elapsed_s": {"publishing": round(publishing_s, 3),
                      "total": round(time.monotonic() - run.started, 3)},
        "published": run.published,
        "consumed": run.consumed,
        "unconsumed": run.published - run.consumed if options.consumers else None,
        "redelivered": run.redelivered,
        "foreign": run.foreign,
        "acked": run.acked,
        "errors": {side: dict(counts) for side, counts in run.errors.items()},
        "throughput": {
            "publish_msgs_per_s": round(run.published / publishing_s, 1),
            "publish_mib_per_s": round(run.published * options.size / MIB / publishing_s, 3),
            "consume_msgs_per_s": round(run.consumed / consuming_s, 1)
            if options.consumers else None},
        "latency_ms": {"publish": _rounded(run.publish_latency.summary()),
                       "end_to_end": _rounded(run.end_to_end.summary())},
        "sample_cap": run.end_to_end.cap,
    }


def _rounded(summary: dict[str, Any]) -> dict[str, Any]:
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in summary.items()}


def write_json(path: str, data: dict[str, Any]) -> None:
    with open(path, "wb") as handle:
        handle.write(orjson.dumps(data, option=orjson.OPT_INDENT_2) + b"\n")


# --- live progress ------------------------------------------------------------------------------


class Progress:
    """Counts and rates every second until the run is over."""

    def __init__(self, run: Run, stream: TextIO = sys.stderr) -> None:
        self.run = run
        self.stream = stream
        self.last = (time.monotonic(), 0, 0)

    def snapshot(self) -> dict[str, Any]:
        run = self.run
        now = time.monotonic()
        then, published, consumed = self.last
        span = max(1e-9, now - then)
        self.last = (now, run.published, run.consumed)
        return {"elapsed": now - run.started, "published": run.published,
                "publish_rate": (run.published - published) / span,
                "consumed": run.consumed, "consume_rate": (run.consumed - consumed) / span,
                "p50": _recent(run.recent, 50), "p99": _recent(run.recent, 99),
                "errors": sum(sum(c.values()) for c in run.errors.values())}

    def line(self) -> str:
        s = self.snapshot()
        return (f"{s['elapsed']:6.1f}s  published {s['published']} ({s['publish_rate']:.0f}/s)"
                f"  consumed {s['consumed']} ({s['consume_rate']:.0f}/s)  end-to-end p50 "
                f"{s['p50']:.2f} ms p99 {s['p99']:.2f} ms  errors {s['errors']}")

    def table(self) -> Table:
        s = self.snapshot()
        table = Table(title=f"gortms bench {self.run.domain}/{self.run.queue}", expand=False)
        for name in ("elapsed", "published", "published/s", "consumed", "consumed/s",
                     "e2e p50 ms", "e2e p99 ms", "errors"):
            table.add_column(name, justify="right")
        table.add_row(f"{s['elapsed']:.1f}s", str(s["published"]), f"{s['publish_rate']:.0f}",
                      str(s["consumed"]), f"{s['consume_rate']:.0f}", f"{s['p50']:.2f}",
                      f"{s['p99']:.2f}", str(s["errors"]))
        return table

    async def show(self, done: asyncio.Event, terminal: bool) -> None:
        """Until `done` is set (the run's own deadlines set it)."""
        if terminal:
            with Live(self.table(), console=Console(), auto_refresh=False,
                      transient=True) as live:
                while not await _wait(done, PROGRESS_INTERVAL_S):
                    live.update(self.table(), refresh=True)
            return
        while not await _wait(done, PROGRESS_INTERVAL_S):
            print(self.line(), file=self.stream, flush=True)


def _recent(values: Iterable[float], q: float) -> float:
    """A percentile of the latest end-to-end latencies (a bounded window: cheap each second)."""
    return percentile(sorted(values), q)


async def _wait(event: asyncio.Event, timeout_s: float) -> bool:
    try:
        await asyncio.wait_for(event.wait(), timeout_s)
    except TimeoutError:
        return False
    return True


# --- the results --------------------------------------------------------------------------------


def summary_lines(data: dict[str, Any], latency_lines: bool = True) -> list[str]:
    throughput, latency = data["throughput"], data["latency_ms"]
    lines = [f"{data['transport']} {data['domain']}/{data['queue']}: published "
             f"{data['published']} in {data['elapsed_s']['publishing']} s "
             f"({throughput['publish_msgs_per_s']} msg/s, {throughput['publish_mib_per_s']} "
             f"MiB/s)"]
    if data["options"]["consumers"]:
        lines.append(f"consumed {data['consumed']} ({throughput['consume_msgs_per_s']} msg/s), "
                     f"unconsumed {data['unconsumed']}, redelivered {data['redelivered']}, "
                     f"acked {data['acked']}")
    names = [name for name, _ in PERCENTILES] + ["max"]
    for series in ("publish", "end_to_end") if latency_lines else ():
        values = latency[series]
        if values["count"]:
            lines.append(f"{series} latency ms (n={values['count']}): " +
                         "  ".join(f"{n} {values[n]:.3f}" for n in names))
    errors = {side: counts for side, counts in data["errors"].items() if counts}
    if errors:
        lines.append(f"errors: {errors}")
    return lines


def print_summary(data: dict[str, Any], terminal: bool) -> None:
    if not terminal:
        print("\n".join(summary_lines(data)), flush=True)
        return
    console = Console()
    table = Table(title="latency (ms)")
    table.add_column("series")
    table.add_column("count", justify="right")
    names = [name for name, _ in PERCENTILES] + ["max"]
    for name in names:
        table.add_column(name, justify="right")
    for series in ("publish", "end_to_end"):
        values = data["latency_ms"][series]
        table.add_row(series, str(values["count"]), *(f"{values[n]:.3f}" for n in names))
    for line in summary_lines(data, latency_lines=False):
        console.print(line)
    console.print(table)
