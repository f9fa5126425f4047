"""Log lines: plain or JSON (logging.format), the access logger's level."""

from __future__ import annotations

import logging

import orjson
import pytest

from gortms.logs import ACCESS, configure_logging


@pytest.fixture(autouse=True)
def plain_again():
    yield
    configure_logging("info", "test")


def test_json_lines_carry_time_level_process_logger_message_extras_and_errors(capsys):
    configure_logging("info", "gateway-3", "json")
    logging.getLogger("gortms.x").info("hello %s", "there", extra={"status": 201})
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("gortms.x").exception("failed")
    first, second = [orjson.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert first["message"] == "hello there" and first["level"] == "info"
    assert (first["process"], first["logger"], first["status"]) == ("gateway-3", "gortms.x", 201)
    assert first["ts"].endswith("Z") and isinstance(first["pid"], int)
    assert second["level"] == "error" and "ValueError: boom" in second["error"]


def test_plain_lines_and_the_access_log_at_info_whatever_the_level(capsys):
    configure_logging("warn", "shard-0")
    logging.getLogger("gortms.x").info("hidden")
    logging.getLogger(ACCESS).info("GET /health 200")
    err = capsys.readouterr().err
    assert "hidden" not in err
    assert "INFO    shard-0[" in err and "gortms.access: GET /health 200" in err
