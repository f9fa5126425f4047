"""The one logging configuration. Each process calls `configure_logging` once at start."""

from __future__ import annotations

import logging.config

_LEVELS = {"debug": "DEBUG", "info": "INFO", "warn": "WARNING", "error": "ERROR"}


def configure_logging(level: str, process: str, fmt: str = "plain") -> None:
    """Plain lines on stderr, tagged with the process role ("supervisor", "shard-0", ...)."""
    logging.config.dictConfig({
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"plain": {
            "format": f"%(asctime)s %(levelname)-7s {process}[%(process)d] %(name)s: "
                      "%(message)s",
        }},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain",
                                "stream": "ext://sys.stderr"}},
        "root": {"handlers": ["stderr"], "level": _LEVELS.get(level, "INFO")},
        "loggers": {
            # uvicorn's own lines duplicate ours; keep its errors only.
            "uvicorn": {"level": "WARNING"},
            "uvicorn.error": {"level": "WARNING"},
            "uvicorn.access": {"level": "WARNING", "propagate": False},
        },
    })
