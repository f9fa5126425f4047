"""`gortms shards`: each shard of a broker, running or stopped, as a table or JSON.

A running broker (its supervisor's run/state.json names a live pid) is asked: every shard
is sent SHARD_INFO at once through the endpoints state.json names, and one that does not
answer by the deadline is reported as not answering rather than waited for. Without one, the
shards' databases are read read-only (shard/survey.py) and every shard is "stopped".
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from typing import Any

import orjson
import psutil
import zmq

from gortms.config import Settings
from gortms.datadir import Layout, read_state
from gortms.errors import GortmsError
from gortms.checks import to_builtins
from gortms.protocol import (ProtocolError, ShardInfo, ShardInfoGet, decode_replies,
                             encode_requests, reply_value)

# Long enough for a shard busy with a group commit, short enough for a person at a terminal.
ANSWER_DEADLINE_S = 2.0
NOT_ANSWERING = "not answering"

SHARD_COLUMNS = ("shard", "pid", "state", "queues", "groups", "messages", "keys", "disk", "free",
                 "storage")
GATEWAY_COLUMNS = ("gateway", "pid", "state", "restarts")


def main(settings: Settings, args: argparse.Namespace) -> int:
    layout = Layout(settings.data_dir)
    try:
        state = read_state(layout)
    except OSError:  # the data dir is a file, say: stopped_report says what is wrong with it
        state = None
    stale = _not_running(layout, state)
    if state is not None and not stale:
        endpoints = [s.get("endpoint") or layout.endpoints(s["index"])[0]
                     for s in state["shards"]]
        report = build_report(state, ask_shards(endpoints, ANSWER_DEADLINE_S))
        healthy = all(s["answered"] for s in report["shards"])
    else:
        try:
            report = stopped_report(settings, layout, stale)
        except GortmsError as exc:
            why = f" ({stale})" if stale else ""
            print(f"gortms shards: no running broker{why}, and {exc.message}", file=sys.stderr)
            return 1
        healthy = all(s["read"] for s in report["shards"])
    print(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode() if args.json
          else render(report))
    return 0 if healthy else 1


def _not_running(layout: Layout, state: dict | None) -> str:
    """Why a state.json left behind does not describe a live broker ("" when it does)."""
    if state is None:
        return ""
    pid = state.get("pid")
    # The supervisor removes state.json when it stops; one left behind means it was killed.
    if not isinstance(pid, int) or not psutil.pid_exists(pid):
        return f"{layout.state_file} names supervisor pid {pid}, which is not running"
    return ""


def stopped_report(settings: Settings, layout: Layout, stale: str) -> dict[str, Any]:
    """The shards as their databases hold them (GortmsError: not a broker's data dir)."""
    # The supervisor imports no shard code (it starts shards by module name); the shard's own
    # module reads their databases, loaded by name as gortms/cli.py loads commands.
    survey = importlib.import_module("shard.survey")
    return {"running": False,
            "supervisor": {"pid": None, "state": "stopped", "dataDir": layout.root},
            "warnings": [f"{stale} (killed?)"] if stale else [],
            "shards": survey.stored_shards(layout, settings.storage.min_free_bytes),
            "gateways": []}


# --- asking the shards ------------------------------------------------------------------------


def ask_shards(endpoints: list[str], deadline_s: float) -> list[dict[str, Any] | str]:
    """SHARD_INFO from every endpoint at once: each shard's answer, or why there is none."""
    context = zmq.Context()
    sockets = [_connect(context, endpoint) for endpoint in endpoints]
    try:
        deadline_ms = int((time.time() + deadline_s) * 1000)
        for sock in sockets:
            sock.send(encode_requests([(1, deadline_ms, ShardInfoGet())]))
        return _collect(sockets, time.monotonic() + deadline_s)
    finally:
        for sock in sockets:
            sock.close(linger=0)
        context.term()


def _connect(context: zmq.Context, endpoint: str) -> zmq.Socket:
    sock = context.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RECONNECT_IVL, 50)
    # Without this a send waits for the connection; with it the request queues in the pipe.
    sock.setsockopt(zmq.IMMEDIATE, 0)
    sock.connect(endpoint)
    return sock


def _collect(sockets: list[zmq.Socket], until: float) -> list[dict[str, Any] | str]:
    answers: list[dict[str, Any] | str] = [NOT_ANSWERING] * len(sockets)
    waiting = {sock: i for i, sock in enumerate(sockets)}
    poller = zmq.Poller()
    for sock in sockets:
        poller.register(sock, zmq.POLLIN)
    while waiting:
        remaining_ms = int((until - time.monotonic()) * 1000)
        if remaining_ms <= 0:
            break
        for sock, _ in poller.poll(remaining_ms):
            frame = sock.recv()
            if sock in waiting:
                answers[waiting.pop(sock)] = _answer(frame)
                poller.unregister(sock)
    return answers


def _answer(frame: bytes) -> dict[str, Any] | str:
    try:
        (_, status, body), = decode_replies(frame)
        return to_builtins(reply_value(status, body, ShardInfo))
    except (GortmsError, ProtocolError, ValueError) as exc:
        return f"error: {exc}"


# --- the report -------------------------------------------------------------------------------


def build_report(state: dict[str, Any], answers: list[dict[str, Any] | str]) -> dict[str, Any]:
    return {
        "running": True,
        "supervisor": {**{key: state.get(key) for key in ("pid", "version", "nodeId",
                                                          "dataDir", "url")},
                       "state": "running"},
        "warnings": [],
        "shards": [_shard_row(entry, answer) for entry, answer in zip(state["shards"], answers)],
        "gateways": [{"gateway": g.get("index"), "pid": g.get("pid"), "state": g.get("state"),
                      "restarts": g.get("restarts", 0)} for g in state.get("gateways", [])],
    }


def _shard_row(entry: dict[str, Any], answer: dict[str, Any] | str) -> dict[str, Any]:
    """The shard's own answer, or what the supervisor knows of it when there is none."""
    row: dict[str, Any] = {"shard": entry.get("index"), "pid": entry.get("pid"),
                           "endpoint": entry.get("endpoint"),
                           "supervisorState": entry.get("state"),
                           "restarts": entry.get("restarts", 0)}
    if isinstance(answer, str):
        return {**row, "state": answer, "answered": False}
    return {**row, **answer, "answered": True}


def human_bytes(size: int) -> str:
    if size < 1024:
        return f"{size} B"
    value = size / 1024
    for unit in ("KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def render(report: dict[str, Any]) -> str:
    sup = report["supervisor"]
    if report["running"]:
        lines = [f"GoRTMS {sup['version']}  supervisor pid {sup['pid']}  node {sup['nodeId']}",
                 f"data dir {sup['dataDir']}" + (f"  url {sup['url']}" if sup.get("url")
                                                 else "")]
    else:
        lines = [f"data dir {sup['dataDir']}: no broker running; read from the shards' "
                 f"databases (read-only)"]
    lines += [f"warning: {w}" for w in report["warnings"]]
    lines.append("")
    lines += _table(SHARD_COLUMNS, [_shard_cells(row) for row in report["shards"]])
    problems = [f"shard {row['shard']}: {row['problem']}" for row in report["shards"]
                if row.get("problem")]
    if problems:
        lines += ["", *problems]
    if report["gateways"]:
        lines.append("")
        lines += _table(GATEWAY_COLUMNS, [[_cell(g[c]) for c in GATEWAY_COLUMNS]
                                          for g in report["gateways"]])
    return "\n".join(lines)


def _shard_cells(row: dict[str, Any]) -> list[str]:
    state = row["state"]
    if not row.get("answered", True) and row.get("supervisorState") not in (None, "serving"):
        state = f"{state} ({row['supervisorState']})"
    # Figures come from the shard's answer, or from its database when the broker is stopped.
    known = "diskBytes" in row
    disk = human_bytes(row["diskBytes"]) if known else "-"
    # Free space on the shard's file system, and whether writes are refused (shard/disk.py).
    free = human_bytes(row["freeBytes"]) if known and row.get("freeBytes", -1) >= 0 else "-"
    return [_cell(row["shard"]), _cell(row["pid"]), state,
            *(_cell(row.get(c)) for c in ("queues", "groups", "messages", "keys")), disk, free,
            _cell(row.get("storage"))]


def _cell(value: Any) -> str:
    return "-" if value is None else str(value)


def _table(header: tuple[str, ...], rows: list[list[str]]) -> list[str]:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows)]
    return ["  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip()
            for row in (list(header), *rows)]
