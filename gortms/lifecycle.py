"""What every child process does at start: parse its arguments, die with its parent, read its
settings from the supervisor and set up logging."""

from __future__ import annotations

import argparse
import ctypes
import gc
import os
import signal
import sys

from gortms.config import Settings, settings_from_json
from gortms.errors import ConfigError
from gortms.logs import configure_logging

_PR_SET_PDEATHSIG = 1
# Allocations between young-generation collections (CPython's default is 700). A broker
# allocates a few objects per message and keeps few cycles: at 700 the collector ran often
# enough to take ~15-20% of a gateway worker's CPU (py-spy --native).
GC_THRESHOLDS = (50_000, 20, 100)


def die_with_parent(parent_pid: int) -> None:
    """Ask Linux to SIGTERM us when the supervisor dies: a killed supervisor leaves no orphans."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        return  # not Linux: the supervisor's own shutdown still stops us
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


def read_settings_fd(fd: int) -> Settings:
    """Settings JSON written by the supervisor into a pipe whose read end we inherited."""
    chunks = []
    with os.fdopen(fd, "rb") as pipe:
        while chunk := pipe.read(65536):
            chunks.append(chunk)
    return settings_from_json(b"".join(chunks))


def child_parser(module: str) -> argparse.ArgumentParser:
    """Arguments every child takes; a child adds its own."""
    parser = argparse.ArgumentParser(prog=f"python -m {module}")
    parser.add_argument("--settings-fd", type=int, required=True)
    parser.add_argument("--parent-pid", type=int, required=True)
    return parser


def start_child(args: argparse.Namespace, name: str) -> Settings:
    """Tie this process to the supervisor and take its settings; bad settings exit 2."""
    die_with_parent(args.parent_pid)
    try:
        settings = read_settings_fd(args.settings_fd)
    except ConfigError as exc:
        print(f"{name}: bad settings: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc
    configure_logging(settings.general.log_level, name, settings.logging.format)
    return settings


def tune_gc() -> None:
    """Call once the process has built what it keeps for its lifetime: those objects move to
    the permanent generation, which collections no longer scan, and young collections get
    rarer (GC_THRESHOLDS)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
