"""gortms/configfile.py: the running config file read, changed, validated and written as the
settings API does it (the HTTP side and the live log level are in tests/e2e/test_settings.py)."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import orjson
import pytest
import yaml

from gortms import configfile
from gortms.config import Settings, load_settings, settings_from_json, to_json
from gortms.configfile import REDACTED
from gortms.errors import ConfigError, ConfigFileUnavailable

COMMENTED = """\
# our broker (a comment of ours)
general:
  nodeId: "alpha"   # the name in the logs
  dataDir: "{data}"
http:
  port: 9090
  maxBodyBytes: 1048576  # one MiB
  cors:
    allowedOrigins: ["a"]
  jwt:
    secret: "hush-hush-hush"
"""


def _broker_file(tmp_path: Path, text: str = COMMENTED) -> tuple[Path, Settings]:
    path = tmp_path / "config.yaml"
    path.write_text(text.format(data=tmp_path / "data"), encoding="utf-8")
    return path, load_settings({}, str(path))


def test_load_settings_records_the_file_and_the_keys_the_environment_set(tmp_path) -> None:
    path, _ = _broker_file(tmp_path)
    settings = load_settings({"GORTMS_HTTP_PORT": "0", "GORTMS_STORAGE_SYNC": "false"},
                             os.path.relpath(path))
    assert settings.config_file == str(path)  # absolute, whatever the cwd was
    assert settings.from_environment == ("http.port", "storage.sync")
    copy = settings_from_json(to_json(settings))  # as children get it
    assert (copy.config_file, copy.from_environment) == (str(path), settings.from_environment)
    assert load_settings({}).config_file == ""


def test_a_change_replaces_values_where_they_stand_and_keeps_every_comment(tmp_path) -> None:
    path, running = _broker_file(tmp_path)
    before = path.read_text()
    state = configfile.change(str(path), {"HTTP": {"maxbodybytes": 2048},
                                          "general": {"nodeId": "beta"}}, running)
    after = path.read_text()
    assert after == before.replace("1048576  # one", "2048  # one").replace(
        '"alpha"   #', '"beta"   #')
    assert state.settings is not None and state.settings.http.max_body_bytes == 2048
    assert state.values["http.maxBodyBytes"] == 2048
    assert configfile.restart_required(state.settings, running) == ["general.nodeId",
                                                                    "http.maxBodyBytes"]


def test_a_key_the_file_lacks_rewrites_it_in_the_generated_shape_with_its_values(tmp_path):
    path, running = _broker_file(tmp_path)
    state = configfile.change(str(path), {"storage": {"sync": False}}, running)
    text = path.read_text()
    assert "# our broker" not in text  # our own comments go ...
    assert "# fsync every committed batch" in text  # ... the keys' doc comments come
    again = load_settings({}, str(path))
    assert again.storage.sync is False and again.http.port == 9090
    assert again.general.node_id == "alpha" and again.http.jwt.secret == "hush-hush-hush"
    assert state.settings == again


def test_null_gives_a_key_or_a_whole_section_its_default(tmp_path) -> None:
    path, running = _broker_file(tmp_path)
    configfile.change(str(path), {"http": {"port": None, "cors": None}}, running)
    again = load_settings({}, str(path))
    assert again.http.port == 8080 and again.http.cors.allowed_origins == ("*",)
    assert again.http.max_body_bytes == 1048576 and "# one MiB" in path.read_text()


@pytest.mark.parametrize("change, named", [
    ({"http": {"port": "high"}}, "http.port: must be an integer from 0 to 65535, got 'high'"),
    ({"http": {"prot": 1}}, "http.prot: unknown key"),
    ({"nosuch": {"x": 1}}, "nosuch: unknown key"),  # as a start says it
    ({"http": 5}, "http: a section: send an object of its keys, or null"),
    ({"http": {"address": "0.0.0.0"}}, "http.address: 0.0.0.0 is not a loopback address"),
    ({"http": {"certFile": "/x.pem"}}, "http.certFile and http.keyFile must be given together"),
    ({"shards": {"count": 3}}, "shards.count: the data dir"),
])
def test_a_bad_change_names_the_key_and_writes_nothing(tmp_path, change, named) -> None:
    path, running = _broker_file(tmp_path)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "cluster.json").write_bytes(orjson.dumps({"shardCount": 2}))
    before = path.read_bytes(), path.stat().st_mtime_ns
    with pytest.raises(ConfigError) as info:
        configfile.change(str(path), change, running)
    assert any(problem.startswith(named) for problem in info.value.problems), info.value
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before


def test_every_problem_is_named_at_once(tmp_path) -> None:
    path, running = _broker_file(tmp_path)
    with pytest.raises(ConfigError) as info:
        configfile.change(str(path), {"http": {"port": -1, "tls": "maybe"}}, running)
    assert [p.split(":")[0] for p in info.value.problems] == ["http.port", "http.tls"]


def test_secrets_are_shown_redacted_and_a_redacted_one_sent_back_keeps_its_value(tmp_path):
    path, running = _broker_file(tmp_path)
    state = configfile.read(str(path), running)
    shown = configfile.as_tree(state.values)
    assert shown["http"]["jwt"]["secret"] == REDACTED
    assert "hush" not in orjson.dumps(configfile.settings_tree(running)).decode()
    configfile.change(str(path), shown, running)  # what a UI sends back after a GET
    assert load_settings({}, str(path)).http.jwt.secret == "hush-hush-hush"
    configfile.change(str(path), {"http": {"jwt": {"secret": "another-one"}}}, running)
    assert load_settings({}, str(path)).http.jwt.secret == "another-one"


def test_the_environment_is_validated_with_the_file_and_wins_over_it(tmp_path) -> None:
    path, _ = _broker_file(tmp_path)
    running = load_settings({"GORTMS_SECURITY_ENABLEAUTHENTICATION": "true",
                             "GORTMS_HTTP_PORT": "7000"}, str(path))
    # allowed only because the environment turns authentication on, as at a start
    state = configfile.change(str(path), {"http": {"address": "0.0.0.0", "port": 7001}},
                              running)
    assert state.settings is not None and state.settings.http.port == 7000
    assert configfile.restart_required(state.settings, running) == ["http.address"]
    assert load_settings({"GORTMS_SECURITY_ENABLEAUTHENTICATION": "true"},
                         str(path)).http.port == 7001  # the file has it all the same


def test_an_unknown_key_in_the_file_is_a_problem_until_set_to_null(tmp_path) -> None:
    path, running = _broker_file(tmp_path)
    path.write_text(path.read_text() + "extra:\n  thing: 1\n")  # edited by hand meanwhile
    state = configfile.read(str(path), running)
    assert state.settings is None and state.problems == ["extra: unknown key"]
    with pytest.raises(ConfigError):
        configfile.change(str(path), {"http": {"port": 9091}}, running)
    configfile.change(str(path), {"extra": None}, running)
    assert "extra" not in path.read_text() and configfile.read(str(path), running).problems == []


def test_reset_writes_the_defaults_but_what_placement_identity_and_security_need(tmp_path):
    path, running = _broker_file(tmp_path, COMMENTED + "shards:\n  count: 2\nsecurity:\n"
                                 "  enableAuthentication: true\n")
    state = configfile.reset(str(path), running)
    again = load_settings({}, str(path))
    assert again == state.settings
    assert (again.general.node_id, again.general.data_dir) == ("alpha", str(tmp_path / "data"))
    assert again.shards.count == 2 and again.http.jwt.secret == "hush-hush-hush"
    assert again.security.enable_authentication is True
    assert again.http.port == 8080 and again.http.max_body_bytes == 1048576
    assert again.http.cors.allowed_origins == ("*",)
    assert "# Log level: debug, info, warn or error." in path.read_text()


def test_the_file_is_replaced_atomically_keeping_its_mode_and_its_symlink(tmp_path) -> None:
    real, running = _broker_file(tmp_path)
    real.chmod(0o640)
    link = tmp_path / "link.yaml"
    link.symlink_to(real)
    configfile.change(str(link), {"http": {"port": 9191}}, running)
    assert link.is_symlink() and load_settings({}, str(real)).http.port == 9191
    assert stat.S_IMODE(real.stat().st_mode) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml", "config.yaml.lock",
                                                         "link.yaml"]


def test_a_write_that_fails_leaves_the_file_and_no_temp_file(tmp_path, monkeypatch) -> None:
    path, running = _broker_file(tmp_path)
    before = path.read_bytes()

    def fail(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", fail)
    with pytest.raises(ConfigFileUnavailable, match="No space left on device"):
        configfile.change(str(path), {"http": {"port": 9191}}, running)
    assert path.read_bytes() == before
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_a_missing_or_broken_file_is_unavailable_not_a_crash(tmp_path) -> None:
    path, running = _broker_file(tmp_path)
    path.write_text("http: [unclosed\n")
    with pytest.raises(ConfigFileUnavailable, match="not valid YAML at line"):
        configfile.read(str(path), running)
    path.unlink()
    with pytest.raises(ConfigFileUnavailable, match="not found"):
        configfile.change(str(path), {}, running)


def test_concurrent_changes_of_different_keys_are_all_kept(tmp_path) -> None:
    path, running = _broker_file(tmp_path)
    changes = [("http", "maxHeaderBytes", 2048), ("gateway", "maxBatchMessages", 77),
               ("gateway", "maxInFlight", 78), ("shards", "maxWaiters", 79),
               ("shards", "maxPendingPerGroup", 80), ("storage", "recentCacheBytes", 81),
               ("http", "port", 9999), ("supervisor", "hangTimeout", "11s")]
    start = threading.Barrier(len(changes))
    errors: list[BaseException] = []

    def one(section: str, key: str, value: object) -> None:
        start.wait()
        try:
            configfile.change(str(path), {section: {key: value}}, running)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=one, args=change) for change in changes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors
    tree = yaml.safe_load(path.read_text())
    assert [tree[section][key] for section, key, _ in changes] == [v for *_, v in changes]
