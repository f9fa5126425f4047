"""`gortms bench` run as a subprocess against a real broker, over HTTP and WebSocket: its JSON
is sane, and the broker holds exactly what it reports. Also its bounded percentile series."""

from __future__ import annotations

import json
import os
import pty
import random
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gortms.client import Client
from gortms.errors import DomainNotFound
from gortms.loadtest.stats import Series, percentile
from tests.conftest import Broker, unique

BENCH_TIMEOUT_S = 120
ORDER = ("p50", "p90", "p99", "p99.9", "max")


def bench(broker_url: str, tmp_path: Path, *args: str) -> tuple[dict, subprocess.CompletedProcess]:
    out = tmp_path / f"bench-{random.randrange(10**9)}.json"
    done = subprocess.run([sys.executable, "-m", "gortms", "bench", "--url", broker_url,
                           "--json", str(out), *args], capture_output=True, text=True,
                          timeout=BENCH_TIMEOUT_S)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(out.read_text()), done


def assert_sane_latency(series: dict, count: int) -> None:
    assert series["count"] == count
    values = [series[name] for name in ORDER]
    assert 0 < values[0] and values == sorted(values), series
    assert series["mean"] <= series["max"]


def assert_broker_holds_what_was_reported(broker: Broker, data: dict) -> None:
    with Client(broker.url) as client:
        queue = client.queue(data["domain"], data["queue"])
        group = client.group(data["domain"], data["queue"], data["group"])
    assert queue.last_position == queue.message_count == data["published"]
    assert group.position == data["published"] + 1  # every message delivered ...
    assert group.pending == 0 and group.ack_floor == data["published"] + 1  # ... and acked


@pytest.mark.parametrize("transport", ["http", "ws"])
def test_bench_reports_what_the_broker_received(shared_broker, tmp_path, transport):
    data, done = bench(shared_broker.url, tmp_path, "--transport", transport, "--duration", "2",
                       "--publishers", "2", "--consumers", "2", "--batch", "5", "--size", "300",
                       "--keep")
    published = data["published"]
    assert published > 0 and published % 5 == 0
    assert data["consumed"] == published and data["unconsumed"] == 0
    assert data["acked"] == published and data["redelivered"] == data["foreign"] == 0
    assert data["errors"] == {"publish": {}, "consume": {}}
    assert_sane_latency(data["latency_ms"]["publish"], published // 5)
    assert_sane_latency(data["latency_ms"]["end_to_end"], published)
    assert 1.9 <= data["elapsed_s"]["publishing"] < 10
    throughput = data["throughput"]["publish_msgs_per_s"]
    assert throughput == pytest.approx(published / data["elapsed_s"]["publishing"], rel=0.01)
    assert_broker_holds_what_was_reported(shared_broker, data)
    assert f"published {published}" in done.stdout and "end_to_end latency" in done.stdout
    assert "published" in done.stderr  # progress: plain lines, stdout not being a terminal


def test_bench_stops_after_its_messages_and_cleans_up_after_itself(shared_broker, tmp_path):
    data, _ = bench(shared_broker.url, tmp_path, "--messages", "300", "--batch", "7",
                    "--no-ack", "--transport", "ws", "--consumers", "3")
    assert data["published"] == data["consumed"] == 300 and data["acked"] == 0
    assert data["latency_ms"]["publish"]["count"] == 43  # 42 bursts of 7 and one of 6
    with Client(shared_broker.url) as client, pytest.raises(DomainNotFound):
        client.queue(data["domain"], data["queue"])


def test_bench_keeps_to_its_rate(shared_broker, tmp_path):
    data, _ = bench(shared_broker.url, tmp_path, "--rate", "100", "--duration", "2",
                    "--publishers", "3", "--consumers", "0")
    assert 0 < data["published"] <= 203  # at most 2 s at 100/s (the first slot at once)
    assert data["consumed"] == 0 and data["group"] is None
    assert data["latency_ms"]["end_to_end"]["count"] == 0


def test_bench_on_an_existing_queue_adds_only_its_group_and_reads_only_its_messages(
        shared_broker, tmp_path):
    domain = unique("bench")
    with Client(shared_broker.url) as client:
        client.create_domain(domain)
        client.create_queue(domain, "orders", {"maxSize": 100_000})
        client.publish_batch(domain, "orders", [{"old": n} for n in range(10)])
        data, _ = bench(shared_broker.url, tmp_path, "--domain", domain, "--queue", "orders",
                        "--messages", "50")
        assert (data["published"], data["consumed"], data["foreign"]) == (50, 50, 0)
        info = client.queue(domain, "orders")
        assert (info.last_position, info.groups) == (60, 0)  # its group deleted after


def test_bench_refuses_bad_options_and_says_when_the_broker_is_unreachable(tmp_path):
    bad = subprocess.run([sys.executable, "-m", "gortms", "bench", "--batch", "0"],
                         capture_output=True, text=True, timeout=BENCH_TIMEOUT_S)
    assert bad.returncode == 2 and "--batch must be from 1" in bad.stderr
    half = subprocess.run([sys.executable, "-m", "gortms", "bench", "--domain", "d"],
                          capture_output=True, text=True, timeout=BENCH_TIMEOUT_S)
    assert half.returncode == 2 and "--domain and --queue together" in half.stderr
    nowhere = subprocess.run([sys.executable, "-m", "gortms", "bench", "--url",
                              "http://127.0.0.1:9", "--duration", "1"],
                             capture_output=True, text=True, timeout=BENCH_TIMEOUT_S)
    assert nowhere.returncode == 1 and "broker_unreachable" in nowhere.stderr
    assert "Traceback" not in nowhere.stderr


# --- the series ---------------------------------------------------------------------------------


def test_percentiles_are_nearest_rank_and_exact_below_the_cap():
    series = Series(cap=1000)
    for value in range(1, 1001):
        series.add(float(value))
    summary = series.summary()
    assert (summary["p50"], summary["p90"], summary["p99"], summary["p99.9"], summary["max"]) \
        == (500.0, 900.0, 990.0, 999.0, 1000.0)
    assert percentile([], 50) == 0.0


def test_a_series_past_its_cap_keeps_a_bounded_uniform_sample_and_exact_count_and_max():
    series = Series(cap=1000, seed=1)
    for value in range(100_000):
        series.add(float(value))
    summary = series.summary()
    assert len(series.sample) == summary["sampled"] == 1000
    assert summary["count"] == 100_000 and summary["max"] == 99_999.0
    assert summary["mean"] == pytest.approx(49_999.5)
    assert summary["p50"] == pytest.approx(50_000, rel=0.1)  # a uniform sample, not the tail


def test_bench_on_a_terminal_shows_a_live_rich_table(shared_broker, tmp_path):
    """stdout a pseudo-terminal: the progress is rich's live table, redrawn in place."""
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "gortms", "bench", "--url", shared_broker.url,
         "--duration", "3", "--publishers", "1", "--consumers", "1"],
        stdin=follower, stdout=follower, stderr=follower, close_fds=True,
        env={**os.environ, "TERM": "xterm-256color", "COLUMNS": "160"})
    os.close(follower)
    out = b""
    deadline = time.monotonic() + BENCH_TIMEOUT_S
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 1.0)
            if not ready:
                if process.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            out += chunk
    finally:
        os.close(leader)
        assert process.wait(BENCH_TIMEOUT_S) == 0, out.decode(errors="replace")
    text = out.decode(errors="replace")
    assert "gortms bench" in text and "published/s" in text and "e2e p99 ms" in text
    assert "\x1b[" in text  # drawn with terminal control sequences (the live redraw)
    assert "━" in text or "─" in text or "┃" in text  # a table's box lines
