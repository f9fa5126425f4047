"""What every child process does at start: die with its parent, and read its settings."""

from __future__ import annotations

import ctypes
import os
import signal

from gortms.config import Settings, settings_from_json

_PR_SET_PDEATHSIG = 1


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
