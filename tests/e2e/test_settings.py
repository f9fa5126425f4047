"""The settings API against the real broker (issue 10, point 4): GET|PUT /api/admin/settings
and POST .../reset read and change the config file the broker was started with, validated
as at a start, saying what waits for a restart; general.logLevel changes live everywhere.

These brokers are started with `--config` in a working directory of their own and without
the harness's GORTMS_GENERAL_LOGLEVEL, so that the file decides the level.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

import httpx2
import pytest
import yaml

from gortms.partition import shard_for
from tests.broker import Broker, launch as run_broker

CONFIG = """\
# the broker of one test (a comment that a change keeps)
general:
  dataDir: "{data}"
  logLevel: info
http:
  port: 0
  maxBodyBytes: 1048576  # one MiB
  jwt:
    secret: "{secret}"
shards:
  count: 2
gateway:
  workers: {workers}
"""
SECRET = "a-jwt-secret-nobody-may-read"
PASSWORD = "correct horse battery"


def launch(tmp_path: Path, config: Path | None, **env: str) -> Broker:
    """`gortms [--config PATH] serve` in `tmp_path/cwd`, with only the GORTMS_* variables
    given (the harness sets the log level, which would win over the file)."""
    cwd = tmp_path / "cwd"
    cwd.mkdir(exist_ok=True)
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("GORTMS_")}
    full_env.update(env)
    command = [sys.executable, "-m", "gortms", "serve"]
    if config is not None:
        command += ["--config", os.path.relpath(config, cwd)]  # made absolute by the broker
    return run_broker(command, full_env, cwd, tmp_path / "data")


def write_config(tmp_path: Path, workers: int = 1, extra: str = "") -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG.format(data=tmp_path / "data", secret=SECRET, workers=workers)
                    + extra, encoding="utf-8")
    return path


@pytest.fixture
def started(tmp_path: Path):
    """Start brokers on demand; each still running is stopped at the end, and must exit 0."""
    brokers: list[Broker] = []

    def start(config: Path | None, **env: str) -> Broker:
        broker = launch(tmp_path, config, **env)
        brokers.append(broker)
        return broker

    yield start
    for broker in brokers:
        if broker.process.poll() is None:
            assert broker.stop() == 0, broker.output()


def stop(broker: Broker) -> None:
    assert broker.stop() == 0, broker.output()


SETTINGS = "/api/admin/settings"


# --- reading ------------------------------------------------------------------------------------


def test_get_shows_the_file_the_effective_values_and_the_environment_secrets_redacted(
        tmp_path, started):
    config = write_config(tmp_path)
    broker = started(config, GORTMS_STORAGE_SYNC="false")
    with broker.client() as api:
        reply = api.get(SETTINGS)
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert SECRET not in reply.text
    assert body["file"] == str(config)  # absolute, though given relative to the cwd
    assert body["settings"] == {
        "general": {"dataDir": str(tmp_path / "data"), "logLevel": "info"},
        "http": {"port": 0, "maxBodyBytes": 1048576, "jwt": {"secret": "<redacted>"}},
        "shards": {"count": 2}, "gateway": {"workers": 1}}
    effective = body["effective"]
    assert effective["storage"]["sync"] is False  # the environment's
    assert effective["http"]["jwt"]["secret"] == "<redacted>"
    # every key, the file's or its default, as a file writes it
    assert effective["http"]["websocket"]["pingInterval"] == "20s"
    assert effective["general"]["nodeId"] == "node1"
    assert body["environment"] == ["storage.sync"]
    assert (body["restartRequired"], body["restartNeeded"], body["problems"]) == ([], False, [])


# --- changing -----------------------------------------------------------------------------------


BAD_CHANGES = [
    ({"http": {"maxBodyBytes": "lots"}}, "http.maxBodyBytes: must be an integer from 1024"),
    ({"http": {"maxBodyBytez": 2048}}, "http.maxBodyBytez: unknown key"),
    ({"general": {"logLevel": "loud"}}, "general.logLevel: must be one of debug, info"),
    ({"http": {"address": "0.0.0.0"}}, "http.address: 0.0.0.0 is not a loopback address"),
    ({"shards": {"count": 3}}, "shards.count: the data dir"),
    ({"storage": "fast"}, "storage: a section"),
]


def test_a_bad_put_is_a_400_naming_the_key_and_changes_nothing(tmp_path, started):
    config = write_config(tmp_path)
    broker = started(config)
    before = config.read_bytes(), config.stat().st_mtime_ns
    with broker.client() as api:
        for change, key in BAD_CHANGES:
            reply = api.put(SETTINGS, json=change)
            assert reply.status_code == 400, reply.text
            assert reply.json()["error"] == "invalid_config"
            assert reply.json()["message"].startswith(key), reply.text
        assert api.put(SETTINGS, content=b"{nope").json()["error"] == "invalid_json"
        assert api.put(SETTINGS, json=[1]).json()["error"] == "invalid_json"
        assert api.get(SETTINGS).json()["restartNeeded"] is False
    assert (config.read_bytes(), config.stat().st_mtime_ns) == before


def test_a_put_that_needs_a_restart_is_written_and_the_next_start_uses_it(tmp_path, started):
    config = write_config(tmp_path)
    broker = started(config)
    big = {"text": "x" * 3000}
    with broker.client() as api:
        api.post("/api/domains", json={"name": "d"})
        api.post("/api/domains/d/queues", json={"name": "q"})
        reply = api.put(SETTINGS, json={"http": {"maxBodyBytes": 2048}})
        assert reply.status_code == 200, reply.text
        body = reply.json()
        assert body["restartRequired"] == ["http.maxBodyBytes"] and body["restartNeeded"]
        assert body["applied"] == [] and body["warnings"] == []
        assert body["settings"]["http"]["maxBodyBytes"] == 2048
        assert body["effective"]["http"]["maxBodyBytes"] == 1048576  # until the restart
        assert api.get(SETTINGS).json()["restartRequired"] == ["http.maxBodyBytes"]
        assert api.post("/api/domains/d/queues/q/messages", json=big).status_code == 201
    text = config.read_text()
    assert "maxBodyBytes: 2048  # one MiB" in text and text.startswith("# the broker of")
    stop(broker)
    again = started(config)
    with again.client() as api:
        assert api.post("/api/domains/d/queues/q/messages", json=big).status_code == 413
        after = api.get(SETTINGS).json()
        assert after["effective"]["http"]["maxBodyBytes"] == 2048
        assert after["restartNeeded"] is False


def test_reset_writes_the_defaults_keeping_placement_identity_and_secrets(tmp_path, started):
    config = write_config(tmp_path, extra="storage:\n  sync: false\n")
    broker = started(config)
    with broker.client() as api:
        reply = api.post(f"{SETTINGS}/reset")
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["restartRequired"] == ["http.port", "storage.sync"] and body["restartNeeded"]
    assert SECRET not in reply.text
    written = yaml.safe_load(config.read_text())
    assert written["storage"]["sync"] is True and written["http"]["port"] == 8080
    assert written["http"]["maxBodyBytes"] == 1048576 and written["general"]["logLevel"] == "info"
    assert written["general"]["dataDir"] == str(tmp_path / "data")  # kept: the data
    assert written["shards"]["count"] == 2 and written["http"]["jwt"]["secret"] == SECRET
    assert "# Log level: debug, info, warn or error." in config.read_text()  # the generated form


def test_without_a_config_file_get_answers_put_and_reset_are_409_and_nothing_is_written(
        tmp_path, started):
    broker = started(None, GORTMS_GENERAL_DATADIR=str(tmp_path / "data"),
                     GORTMS_HTTP_PORT="0", GORTMS_SHARDS_COUNT="2")
    with broker.client() as api:
        body = api.get(SETTINGS).json()
        assert body["file"] is None and body["settings"] is None
        assert body["effective"]["shards"]["count"] == 2
        assert body["environment"] == ["general.dataDir", "http.port", "shards.count"]
        for reply in (api.put(SETTINGS, json={"general": {"logLevel": "debug"}}),
                      api.post(f"{SETTINGS}/reset")):
            assert reply.status_code == 409, reply.text
            assert reply.json()["error"] == "no_config_file"
            assert "--config PATH" in reply.json()["message"]
    assert list((tmp_path / "cwd").iterdir()) == []  # the working directory stays empty
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cwd", "data"]


def test_with_authentication_on_only_an_admin_reads_or_changes_settings(tmp_path, started):
    config = write_config(tmp_path, extra="security:\n  enableAuthentication: true\n")
    broker = started(config)
    with broker.client() as api:
        assert api.post("/api/auth/bootstrap",
                        json={"username": "root", "password": PASSWORD}).status_code == 201
        admin = login(api, "root")
        assert api.post("/api/admin/users", headers=admin,
                        json={"username": "bob", "password": PASSWORD}).status_code == 201
        bob = login(api, "bob")
        calls = [("GET", SETTINGS), ("PUT", SETTINGS), ("POST", f"{SETTINGS}/reset")]
        before = config.read_bytes()
        for method, path in calls:
            body = {"http": {"maxBodyBytes": 4096}}
            assert api.request(method, path, json=body).status_code == 401
            reply = api.request(method, path, json=body, headers=bob)
            assert reply.status_code == 403 and reply.json()["error"] == "forbidden"
        assert config.read_bytes() == before
        assert api.get(SETTINGS, headers=admin).status_code == 200
        changed = api.put(SETTINGS, headers=admin, json={"http": {"maxBodyBytes": 4096}})
        assert changed.json()["restartRequired"] == ["http.maxBodyBytes"]


def login(api: httpx2.Client, username: str) -> dict[str, str]:
    reply = api.post("/api/auth/login", json={"username": username, "password": PASSWORD})
    assert reply.status_code == 200, reply.text
    return {"Authorization": f"Bearer {reply.json()['token']}"}


def test_concurrent_puts_through_two_workers_lose_no_update(tmp_path, started):
    config = write_config(tmp_path, workers=2)
    broker = started(config)
    changes = [("http", "maxHeaderBytes", 2048), ("gateway", "maxBatchMessages", 77),
               ("gateway", "maxInFlight", 78), ("shards", "maxWaiters", 79),
               ("shards", "maxPendingPerGroup", 80), ("storage", "recentCacheBytes", 81),
               ("http", "maxBodyBytes", 4096), ("supervisor", "hangTimeout", "11s")]
    begin = threading.Barrier(len(changes))
    statuses: list[int] = []

    def put(section: str, key: str, value: object) -> None:
        with broker.client() as api:  # a connection each: the kernel spreads them
            begin.wait()
            statuses.append(api.put(SETTINGS, json={section: {key: value}}).status_code)

    threads = [threading.Thread(target=put, args=change) for change in changes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert statuses == [200] * len(changes)
    written = yaml.safe_load(config.read_text())
    assert [written[section][key] for section, key, _ in changes] == [v for *_, v in changes]
    with broker.client() as api:
        assert len(api.get(SETTINGS).json()["restartRequired"]) == len(changes)


# --- the live log level -------------------------------------------------------------------------

PROCESSES = ("supervisor", "shard-0", "shard-1", "gateway-0", "gateway-1")


def level_now(broker: Broker, level: str, after: int, processes=PROCESSES) -> None:
    """Wait until every process in `processes` said it runs at `level`."""
    for name in processes:
        broker.wait_for_line(rf" {name}\[\d+\] gortms\.logs: log level now {level}\b",
                             timeout_s=10, after=after)


def queue_on(shard: int, domain: str) -> str:
    return next(f"q{i}" for i in range(100) if shard_for(domain, f"q{i}", 2) == shard)


def catalog_changes(api: httpx2.Client, domain: str) -> None:
    """A domain (announced by shard 0) and a queue on shard 1 (announced by it), which every
    gateway worker hears of: a debug line in each process, at debug level."""
    for _ in range(100):  # a restarted child may take a moment to be reached again
        reply = api.post("/api/domains", json={"name": domain})
        if reply.status_code != 503:
            break
        time.sleep(0.05)
    assert reply.status_code == 201, reply.text
    for _ in range(100):
        reply = api.post(f"/api/domains/{domain}/queues", json={"name": queue_on(1, domain)})
        if reply.status_code != 503:
            break
        time.sleep(0.05)
    assert reply.status_code == 201, reply.text


def test_log_level_changes_at_once_in_every_process_and_back(tmp_path, started):
    config = write_config(tmp_path, workers=2)
    broker = started(config)
    with broker.client() as api:
        catalog_changes(api, "quiet")
        mark = len(broker.lines)
        reply = api.put(SETTINGS, json={"general": {"logLevel": "debug"}})
        assert reply.status_code == 200, reply.text
        assert reply.json()["applied"] == ["general.logLevel"]
        assert reply.json()["restartNeeded"] is False and reply.json()["warnings"] == []
        assert reply.json()["effective"]["general"]["logLevel"] == "debug"
        level_now(broker, "debug", mark)
        catalog_changes(api, "loud")
        for name in ("shard-0", "shard-1", "gateway-0", "gateway-1"):
            broker.wait_for_line(rf"DEBUG +{name}\[\d+\] .*'loud'", timeout_s=10, after=mark)
        assert not any("DEBUG" in line for line in broker.lines[:mark])  # none at info

        back = len(broker.lines)
        assert api.put(SETTINGS, json={"general": {"logLevel": "info"}}).status_code == 200
        level_now(broker, "info", back)
        catalog_changes(api, "quiet-again")
        # Each process's lines between its switch to info and its switch back to debug (a
        # signal that it handled what came before) hold no debug line.
        again = len(broker.lines)
        assert api.put(SETTINGS, json={"general": {"logLevel": "debug"}}).status_code == 200
        level_now(broker, "debug", again)
    for name in PROCESSES:
        lines = [line for line in broker.lines[back:] if f" {name}[" in line]
        switched = [i for i, line in enumerate(lines) if "log level now info" in line][0]
        returned = [i for i, line in enumerate(lines) if "log level now debug" in line][0]
        assert not [line for line in lines[switched:returned] if "DEBUG" in line], name
    assert 'logLevel: "debug"' in config.read_text()  # in place, as JSON writes it


def test_the_level_survives_a_child_killed_and_restarted_by_the_supervisor(tmp_path,
                                                                            started):
    config = write_config(tmp_path, workers=2)
    broker = started(config)
    with broker.client() as api:
        mark = len(broker.lines)
        assert api.put(SETTINGS, json={"general": {"logLevel": "debug"}}).status_code == 200
        level_now(broker, "debug", mark)  # the supervisor too: it starts children with it
        old_shard, old_gateway = broker.shard_pid(1), broker.gateway_pid(0)
        restarted = len(broker.lines)
        os.kill(old_shard, signal.SIGKILL)
        os.kill(old_gateway, signal.SIGKILL)
        for name in ("shard-1", "gateway-0"):
            broker.wait_for_line(rf"{name} ready", timeout_s=15, after=restarted)
        new_shard, new_gateway = broker.shard_pid(1), broker.gateway_pid(0)
        assert (new_shard, new_gateway) != (old_shard, old_gateway)
        catalog_changes(api, "after-restart")
        broker.wait_for_line(rf"DEBUG +shard-1\[{new_shard}\] .*'after-restart'", timeout_s=10,
                             after=restarted)
        broker.wait_for_line(rf"DEBUG +gateway-0\[{new_gateway}\] .*'after-restart'",
                             timeout_s=10, after=restarted)
        body = api.get(SETTINGS).json()
        assert body["effective"]["general"]["logLevel"] == "debug"


def test_a_level_changed_by_hand_in_the_file_applies_too(tmp_path, started):
    config = write_config(tmp_path)
    broker = started(config)
    mark = len(broker.lines)
    config.write_text(config.read_text().replace("logLevel: info", "logLevel: debug"))
    level_now(broker, "debug", mark, ("supervisor", "shard-0", "shard-1", "gateway-0"))
    with broker.client() as api:
        assert api.get(SETTINGS).json()["effective"]["general"]["logLevel"] == "debug"
