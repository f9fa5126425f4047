"""HTTP publish throughput with wrk: single messages, or batches of N.

    python bench/wrk_publish.py single [--workers 1,2] [--runs 3] [--duration 10]
    python bench/wrk_publish.py batch  [--batch-sizes 100,1000] [--workers 1,2] ...

Every run starts a fresh broker (2 shards, storage.sync on) in a temp dir on a free port,
creates domain `bench` / queue `q` (maxSize 100,000,000), warms up, runs wrk with a Lua
script that POSTs a ~100-byte JSON object (or {"messages": [N of them]}), checks that
every response was a 2xx and that the queue holds at least what wrk counted, and stops the
broker with SIGTERM. Configurations are run alternately (w1, w2, w1, w2, ...) so a noisy
neighbour hurts both alike; the summary quotes medians.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from harness import (DOMAIN, QUEUE, Broker, CpuMeter, Profiler, add_common_args, fail,
                     format_cpu, log, machine_line, median, payload, source_tree, wait_for_quiet)

WRK = "/usr/bin/wrk"
WARMUP_S = 2


@dataclass
class Run:
    config: str
    requests_per_s: float
    messages_per_s: float
    latency_ms: dict[str, float]
    cpu: dict[str, float]


def lua_script(batch: int) -> str:
    if batch == 0:
        body = payload(1)
    else:
        body = json.dumps({"messages": [json.loads(payload(i)) for i in range(batch)]},
                          separators=(",", ":"))
    return ('wrk.method = "POST"\n'
            'wrk.headers["Content-Type"] = "application/json"\n'
            f"wrk.body = [==[{body}]==]\n")


def parse_wrk(text: str) -> tuple[int, float, dict[str, float], int]:
    """(requests, requests/s, latency percentiles in ms, failed responses) from wrk --latency."""
    def ms(value: str, unit: str) -> float:
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]

    latency = {f"p{m.group(1)}": ms(m.group(2), m.group(3)) for m in re.finditer(
        r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.M)}
    requests = int(re.search(r"(\d+) requests in", text).group(1))
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    failed = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", text))
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                       text)
    if errors:
        failed += sum(int(n) for n in errors.groups())
    return requests, rate, latency, failed


def run_wrk(url: str, script: Path, args: argparse.Namespace, duration_s: float
            ) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [WRK, f"-t{args.threads}", f"-c{args.connections}", f"-d{int(duration_s)}s",
         "--latency", "-s", str(script), url], stdout=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen[str]) -> tuple[str, float]:
    """Wait for wrk: its output and the CPU seconds it used (from wait4's rusage)."""
    assert proc.stdout is not None
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return out, usage.ru_utime + usage.ru_stime


def one_run(workers: int, batch: int, script: Path, args: argparse.Namespace,
            profile_dir: Path | None = None) -> Run:
    path = f"/api/domains/{DOMAIN}/queues/{QUEUE}/messages" + ("/batch" if batch else "")
    broker = Broker.start(workers=workers, shards=2, sync=not args.no_sync, src=args.src)
    try:
        broker.setup_queue()
        url = broker.url + path
        warm = run_wrk(url, script, args, WARMUP_S)
        warm_out, _ = warm.communicate()
        idle = wait_for_quiet(args.quiet_wait)
        if idle > 25:
            log(f"  (the machine was {idle:.0f}% busy before this run)")
        before = broker.get(f"/api/domains/{DOMAIN}/queues/{QUEUE}")["messageCount"]
        wrk = run_wrk(url, script, args, args.duration)
        pids = broker.pids()
        meter = CpuMeter({k: v for k, v in pids.items() if k != "supervisor"})
        meter.start()
        profiler = None
        if profile_dir is not None:
            targets = {k: v for k, v in pids.items() if k != "supervisor"}
            profiler = Profiler(targets, profile_dir)
            profiler.start()
        out, wrk_cpu_s = finish(wrk)
        cpu = meter.stop({"wrk": 100 * wrk_cpu_s / args.duration})
        profile = profiler.finish() if profiler is not None else ""
        if wrk.returncode != 0:
            raise RuntimeError(f"wrk failed:\n{out}")
        requests, rate, latency, failed = parse_wrk(out)
        if failed or parse_wrk(warm_out)[3]:
            raise RuntimeError(f"{failed} failed responses:\n{out}\n{broker.output()}")
        stored = broker.get(f"/api/domains/{DOMAIN}/queues/{QUEUE}")["messageCount"] - before
        per_request = batch or 1
        # wrk stops with requests in flight, which may still be stored: at least, not exactly.
        if stored < requests * per_request:
            raise RuntimeError(f"wrk counted {requests} requests x {per_request} but the queue "
                               f"gained only {stored} messages")
        if broker.restarts():
            raise RuntimeError(f"a broker process restarted during the run:\n{broker.output()}")
    finally:
        broker.stop()
    name = f"{'single' if not batch else f'batch {batch}'}, {workers} worker" + \
        ("s" if workers > 1 else "")
    run = Run(name, rate, rate * per_request, latency, cpu)
    if profile:
        log(profile)
    return run


def report(run: Run) -> None:
    lat = " ".join(f"{k} {v:.2f}ms" for k, v in run.latency_ms.items())
    log(f"  {run.config}: {run.requests_per_s:,.0f} req/s = {run.messages_per_s:,.0f} msg/s; "
        f"latency {lat}; CPU {format_cpu(run.cpu)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=("single", "batch"))
    parser.add_argument("--batch-sizes", default="100,1000", help="batch mode (default 100,1000)")
    parser.add_argument("--duration", type=int, default=10, help="seconds per run (default 10)")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    add_common_args(parser)
    args = parser.parse_args()
    workers = [int(w) for w in args.workers.split(",")]
    batches = [0] if args.mode == "single" else [int(b) for b in args.batch_sizes.split(",")]
    args.src, code = source_tree(args.commit)
    log(f"machine: {machine_line()}")
    log(f"code: {code}")
    log(f"wrk -t{args.threads} -c{args.connections} -d{args.duration}s, storage.sync "
        f"{'off' if args.no_sync else 'on'}, 2 shards, {args.runs} runs per configuration")
    configs = [(w, b) for b in batches for w in workers]
    results: dict[tuple[int, int], list[Run]] = {c: [] for c in configs}
    with tempfile.TemporaryDirectory(prefix="gortms-wrk-") as tmp:
        scripts = {}
        for batch in batches:
            scripts[batch] = Path(tmp) / f"publish-{batch}.lua"
            scripts[batch].write_text(lua_script(batch))
        for i in range(args.runs):
            log(f"run {i + 1}/{args.runs}")
            for workers_n, batch in configs:
                run = one_run(workers_n, batch, scripts[batch], args)
                results[(workers_n, batch)].append(run)
                report(run)
        if args.profile:
            for workers_n, batch in configs:
                log(f"profile (py-spy, not counted): {workers_n} worker(s), batch {batch or 1}")
                report(one_run(workers_n, batch, scripts[batch], args,
                               Path(args.profile) / f"w{workers_n}-b{batch or 1}"))
    if args.runs:
        log("medians:")
    for config, runs in results.items():
        if not runs:
            continue
        msgs = median(r.messages_per_s for r in runs)
        reqs = median(r.requests_per_s for r in runs)
        p50 = median(r.latency_ms.get("p50", float("nan")) for r in runs)
        p99 = median(r.latency_ms.get("p99", float("nan")) for r in runs)
        cpu_names = runs[0].cpu.keys()
        cpu = {n: median(r.cpu[n] for r in runs) for n in cpu_names}
        log(f"  {runs[0].config}: {msgs:,.0f} msg/s ({reqs:,.0f} req/s), latency p50 "
            f"{p50:.2f}ms p99 {p99:.2f}ms; CPU {format_cpu(cpu)}; runs: "
            + ", ".join(f"{r.messages_per_s:,.0f}" for r in runs))


if __name__ == "__main__":
    try:
        main()
    except RuntimeError as exc:
        fail(str(exc))
