"""The one logging configuration. Each process calls `configure_logging` once at start.

`logging.format` chooses plain lines or one JSON object per line (for log collectors):

    2026-12-01 20:45:32,637 INFO    shard-1[17951] shard.server: shard 1 stopped
    {"ts":"2026-12-01T20:45:32.637Z","level":"info","process":"shard-1","pid":17951,
     "logger":"shard.server","message":"shard 1 stopped"}

(one line; an exception adds "error" with its traceback). Nothing is logged per message at
info level: the access log (`logging.accessLog`, logger `gortms.access`) is one line per
HTTP request or WebSocket session, and is off by default.
"""

from __future__ import annotations

import logging
import logging.config
import time
from typing import Any

import orjson

_LEVELS = {"debug": "DEBUG", "info": "INFO", "warn": "WARNING", "error": "ERROR"}
ACCESS = "gortms.access"


class JsonFormatter(logging.Formatter):
    """One JSON object per record; fields given with `extra=` are kept."""

    _STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
        "message", "asctime"}

    def __init__(self, process: str) -> None:
        super().__init__()
        self.process = process

    def format(self, record: logging.LogRecord) -> str:
        ms = int(record.created * 1000)
        body: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) +
            f".{ms % 1000:03d}Z",
            "level": record.levelname.lower(), "process": self.process, "pid": record.process,
            "logger": record.name, "message": record.getMessage()}
        for key, value in vars(record).items():
            if key not in self._STANDARD and not key.startswith("_"):
                body[key] = value
        if record.exc_info:
            body["error"] = self.formatException(record.exc_info)
        return orjson.dumps(body, default=str).decode()


def configure_logging(level: str, process: str, fmt: str = "plain") -> None:
    """Lines on stderr (plain or JSON), tagged with the process role ("supervisor",
    "shard-0", ...)."""
    formatter: dict[str, Any] = {
        "format": f"%(asctime)s %(levelname)-7s {process}[%(process)d] %(name)s: "
                  "%(message)s"}
    if fmt == "json":
        formatter = {"()": JsonFormatter, "process": process}
    logging.config.dictConfig({
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"main": formatter},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "main",
                                "stream": "ext://sys.stderr"}},
        "root": {"handlers": ["stderr"], "level": _LEVELS.get(level, "INFO")},
        "loggers": {
            # uvicorn's own lines duplicate ours; keep its errors only.
            "uvicorn": {"level": "WARNING"},
            "uvicorn.error": {"level": "WARNING"},
            "uvicorn.access": {"level": "WARNING", "propagate": False},
            # the access log, when on, is info lines: keep them at any general level
            ACCESS: {"level": "INFO"},
        },
    })


def set_level(level: str) -> bool:
    """Change this process's level at once (general.logLevel is live); False if it already
    was. The line saying so is logged under the lower of the two levels, so it shows."""
    root = logging.getLogger()
    new = logging.getLevelName(_LEVELS.get(level, "INFO"))
    if root.level == new:
        return False
    if new < root.level:
        root.setLevel(new)
    logging.getLogger("gortms.logs").info("log level now %s (general.logLevel)", level)
    root.setLevel(new)
    return True
