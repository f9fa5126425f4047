"""What every benchmark shares: a throw-away broker, CPU accounting, py-spy, medians.

`BenchBroker` runs `gortms serve` through the tests' own harness (`tests.broker`) from this
checkout's .venv in a fresh temp dir on a free port (2 shards, storage.sync on unless told
otherwise), and `stop()` ends it with SIGTERM and checks it exits 0. `CpuMeter`
turns psutil CPU times of the broker's processes (and the load generator) into CPU% over a
measured interval, so a report can say which process saturates. `Profiler` runs
`py-spy record` on the gateway and shard processes during a run and summarises the hottest
functions.
"""

from __future__ import annotations

import argparse
import atexit
import collections
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterable, Sequence

import httpx2
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # for tests.broker, the one broker harness

from tests.broker import start_broker  # noqa: E402

PYTHON = ROOT / ".venv" / "bin" / "python"
DOMAIN = "bench"
QUEUE = "q"
# nack1's queue: retries on, a 100 ms first backoff (compare.py and shard_drive.py alike)
RETRIES = {"retryEnabled": True,
           "retryConfig": {"maxRetries": 3, "initialDelay": "100ms", "factor": 2.0}}
MAX_SIZE = 100_000_000

# A ~100-byte JSON object: the payload of every benchmark message.
PAYLOAD_TEMPLATE = ('{"orderId":"o-%08d","customer":"alice@example.com","amount":123.45,'
                    '"currency":"EUR","items":3,"note":"x"}')


def payload(seq: int) -> str:
    return PAYLOAD_TEMPLATE % seq


# --- what is measured ---------------------------------------------------------------------------


def _git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(ROOT), *args], check=True, capture_output=True,
                          text=True).stdout.strip()


def source_tree(commit: str | None) -> tuple[Path, str]:
    """(the tree to run the broker from, what it is). With `commit`, a snapshot of it
    (git archive), so that edits made meanwhile in the shared checkout do not leak in."""
    if commit is None:
        rev = _git("rev-parse", "--short", "HEAD")
        dirty = _git("status", "--porcelain", "--", "gortms", "gateway", "shard", "supervisor")
        return ROOT, f"working tree at {rev}" + (" with uncommitted changes" if dirty else "")
    rev = _git("rev-parse", "--short", commit)
    tree = Path(tempfile.mkdtemp(prefix="gortms-src-", dir="/tmp"))
    atexit.register(shutil.rmtree, tree, True)
    archive = subprocess.Popen(["git", "-C", str(ROOT), "archive", rev],
                               stdout=subprocess.PIPE)
    subprocess.run(["tar", "-x", "-C", str(tree)], stdin=archive.stdout, check=True)
    if archive.wait() != 0:
        raise RuntimeError(f"git archive {rev} failed")
    return tree, f"commit {rev}"


def add_common_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workers", default="1",
                        help="gateway worker counts, e.g. 1,2 to compare them (run "
                             "alternately); default 1")
    parser.add_argument("--runs", type=int, default=3, help="runs per configuration (3)")
    parser.add_argument("--quiet-wait", type=float, default=30,
                        help="before each measurement, wait up to this many seconds for the "
                             "shared machine to be idle (default 30)")
    parser.add_argument("--commit", metavar="REV",
                        help="measure this commit (a git archive snapshot) instead of the "
                             "working tree")
    parser.add_argument("--no-sync", action="store_true",
                        help="storage.sync off (for comparison; the targets are with sync on)")
    parser.add_argument("--profile", metavar="DIR",
                        help="after the runs, one more run per configuration with py-spy on "
                             "the gateway worker(s) and shards; raw stacks go to DIR")


# --- the broker ---------------------------------------------------------------------------------


class BenchBroker:
    """`tests.broker`'s broker (the tests' harness), in a short temp dir, for one run."""

    def __init__(self, workers: int = 1, shards: int = 2, sync: bool = True, src: Path = ROOT,
                 extra_env: dict[str, str] | None = None) -> None:
        # A short path: shard endpoints are ipc:// sockets under it (~100-byte limit).
        self.data_dir = Path(tempfile.mkdtemp(prefix="gb-", dir="/tmp"))
        env = {"GORTMS_SHARDS_COUNT": str(shards), "GORTMS_GATEWAY_WORKERS": str(workers),
               "GORTMS_STORAGE_SYNC": "true" if sync else "false", **(extra_env or {})}
        try:
            self.broker = start_broker(self.data_dir, src=src, python=str(PYTHON), **env)
        except AssertionError as exc:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            raise RuntimeError(str(exc)) from None
        self.url = self.broker.url

    def pids(self) -> dict[str, int]:
        return self.broker.pids()

    def restarts(self) -> int:
        return self.broker.restarts()

    def output(self) -> str:
        return self.broker.output(60)

    def stop(self, check: bool = True) -> int:
        """SIGTERM and wait; the data dir is removed. A non-zero exit is an error."""
        try:
            code = self.broker.stop()
        except AssertionError:
            code = -9
        shutil.rmtree(self.data_dir, ignore_errors=True)
        if check and code != 0:
            raise RuntimeError(f"broker exited with {code}:\n{self.output()}")
        return code

    def setup_queue(self, group: str | None = None, queue: str = QUEUE,
                    config: dict | None = None, headers: dict | None = None) -> None:
        """Domain `bench`, queue `q` (maxSize 100M) and optionally a consumer group
        (`headers`: a credential, with authentication on)."""
        base = f"/api/domains/{DOMAIN}/queues"
        with httpx2.Client(base_url=self.url, timeout=30, headers=headers) as client:
            response = client.post("/api/domains", json={"name": DOMAIN})
            if response.status_code != 409:
                _expect(response, 201)
            _expect(client.post(base, json={"name": queue, "config": {
                "maxSize": MAX_SIZE, **(config or {})}}), 201)
            if group is not None:
                _expect(client.post(f"{base}/{queue}/consumer-groups",
                                    json={"groupId": group}), 201)

    def get(self, path: str) -> dict:
        with httpx2.Client(base_url=self.url, timeout=30) as client:
            response = client.get(path)
            _expect(response, 200)
            return response.json()


def _expect(response: httpx2.Response, status: int) -> None:
    if response.status_code != status:
        raise RuntimeError(f"{response.request.method} {response.request.url} -> "
                           f"{response.status_code} {response.text}")


# --- CPU per process ----------------------------------------------------------------------------


class CpuMeter:
    """CPU% (100 = one core) of named processes between `start()` and `stop()`."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.procs = {name: psutil.Process(pid) for name, pid in pids.items()}
        self.before: dict[str, float] = {}
        self.t0 = 0.0
        self.result: dict[str, float] = {}

    @staticmethod
    def _busy(proc: psutil.Process) -> float:
        times = proc.cpu_times()
        return times.user + times.system

    def start(self) -> None:
        self.t0 = time.monotonic()
        psutil.cpu_percent(None)  # starts the machine-wide interval
        self.before = {name: self._busy(p) for name, p in self.procs.items()}

    def stop(self, extra: dict[str, float] | None = None) -> dict[str, float]:
        """CPU% per process (plus `extra`, measured elsewhere), the machine, and the rest."""
        wall = time.monotonic() - self.t0
        machine = psutil.cpu_percent(None) * psutil.cpu_count()
        for name, proc in self.procs.items():
            try:
                self.result[name] = 100 * (self._busy(proc) - self.before[name]) / wall
            except psutil.NoSuchProcess:
                self.result[name] = float("nan")
        self.result.update(extra or {})
        # Everything else: other people's work on this shared machine, plus kernel time
        # (softirq) not charged to any process.
        self.result["others"] = max(0.0, machine - sum(self.result.values()))
        self.result["machine"] = machine
        return self.result


def wait_for_quiet(max_wait_s: float, busy_limit: float = 25.0) -> float:
    """Wait (at most `max_wait_s`) until the machine is nearly idle for a second: the
    machine is shared, so this keeps another engineer's test run out of a measurement.
    Returns the CPU% (100 per core) seen in the last second."""
    deadline = time.monotonic() + max_wait_s
    while True:
        busy = psutil.cpu_percent(1.0) * psutil.cpu_count()
        if busy <= busy_limit or time.monotonic() >= deadline:
            return busy


def format_cpu(cpu: dict[str, float]) -> str:
    """Per process, then everything else, then the whole machine (100% per core)."""
    names = sorted(cpu, key=lambda n: (n == "machine", n == "others"))
    return ", ".join(f"{name} {cpu[name]:.0f}%" for name in names)


# --- py-spy -------------------------------------------------------------------------------------


def find_py_spy() -> str | None:
    for candidate in (os.environ.get("PY_SPY"), str(PYTHON.parent / "py-spy"),
                      shutil.which("py-spy")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


class Profiler:
    """`py-spy record --format raw` on each process from `start()` to `finish()`.

    py-spy is stopped with SIGINT, on which it writes what it has. `--nonblocking` keeps it
    from pausing the target for each sample (cheaper, and the figures stay comparable).
    """

    RATE_HZ = 200

    def __init__(self, pids: dict[str, int], out_dir: Path) -> None:
        self.py_spy = find_py_spy()
        if self.py_spy is None:
            raise RuntimeError("py-spy not found: set PY_SPY=/path/to/py-spy")
        self.pids = pids
        self.out_dir = out_dir
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.t0 = 0.0

    def start(self) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for name, pid in self.pids.items():
            out = self.out_dir / f"{name}.txt"
            self.procs[name] = subprocess.Popen(
                [self.py_spy, "record", "--pid", str(pid), "--rate", str(self.RATE_HZ),
                 "--format", "raw", "--nonblocking", "--output", str(out)],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.t0 = time.monotonic()

    def finish(self, top: int = 12) -> str:
        elapsed = time.monotonic() - self.t0
        for proc in self.procs.values():
            proc.send_signal(signal.SIGINT)
        report = []
        for name, proc in self.procs.items():
            _, err = proc.communicate(timeout=60)
            path = self.out_dir / f"{name}.txt"
            if not path.exists():
                report.append(f"{name}: py-spy failed: {err.decode(errors='replace')[-300:]}")
                continue
            report.append(summarize_raw(path, name, elapsed * self.RATE_HZ, top))
        return "\n".join(report)


def _function(frame: str) -> str:
    # py-spy raw frames look like "handle (gateway/messages.py:97)"; drop the line number.
    return re.sub(r":\d+\)$", ")", frame.strip())


def summarize_raw(path: Path, name: str, expected_samples: float, top: int) -> str:
    """Self and inclusive share of each function, as % of wall time (100 = always busy)."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_function(f) for f in stack.split(";")]
        frames = [f for f in frames if not f.startswith("process ") and not f.startswith("thread ")]
        if not frames:
            continue
        samples += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    scale = 100 / max(expected_samples, 1)
    lines = [f"{name}: busy {samples * scale:.0f}% of wall time ({samples} samples)",
             "  self%  total%  function"]
    for frame, count in own.most_common(top):
        lines.append(f"  {count * scale:5.1f}  {inclusive[frame] * scale:6.1f}  {frame}")
    return "\n".join(lines)


# --- figures ------------------------------------------------------------------------------------


def median(values: Iterable[float]) -> float:
    values = list(values)
    return statistics.median(values) if values else float("nan")


def percentile(sorted_values: Sequence[float], p: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(p / 100 * len(sorted_values)) - 1))
    return sorted_values[index]


def machine_line() -> str:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (f"{psutil.cpu_count()} x {model}, Python {platform.python_version()}, "
            f"{platform.system()} {platform.release()}, load average {load}")


def log(message: str) -> None:
    print(message, flush=True)


def fail(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)
    sys.exit(1)
