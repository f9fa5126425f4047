"""gortms/config.py: the KEYS table, the generated file, the environment, and the checks."""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from gortms.config import (KEYS, Settings, SpaceLimit, generate_config, load_settings,
                           parse_space, settings_from_json, to_json)
from gortms.errors import ConfigError
from gortms.models import parse_duration


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


def _get(settings: Settings, path: str) -> Any:
    node: Any = settings
    for part in path.split("."):
        node = getattr(node, _snake(part))
    return node


def _expected(path: str) -> Any:
    """A KEYS default in the form the frozen tree holds it."""
    key = next(k for k in KEYS if k.path == path)
    if key.kind == "duration":
        return parse_duration(key.default, key.path)
    if key.kind == "list":
        return tuple(key.default)
    if key.kind == "space":
        return parse_space(key.default)
    return key.default


def _write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def _problems(environ: dict[str, str], path: str | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_settings(environ, path)
    return info.value.problems


PATHS_BUT_DATA_DIR = [k.path for k in KEYS if k.path != "general.dataDir"]


# --- defaults -----------------------------------------------------------------------------------


def test_key_paths_are_unique() -> None:
    paths = [k.path.lower() for k in KEYS]
    assert len(paths) == len(set(paths))


@pytest.mark.parametrize("path", PATHS_BUT_DATA_DIR)
def test_loaded_default_equals_the_keys_table(path: str) -> None:
    assert _get(load_settings(environ={}), path) == _expected(path)


@pytest.mark.parametrize("path", PATHS_BUT_DATA_DIR)
def test_dataclass_default_equals_the_keys_table(path: str) -> None:
    assert _get(Settings(), path) == _expected(path)


def test_default_data_dir_is_the_tables_path_made_absolute() -> None:
    settings = load_settings(environ={})
    assert settings.data_dir == os.path.abspath("./data")
    assert _expected("general.dataDir") == "./data"


def test_generated_config_binds_the_loopback_address() -> None:
    assert yaml.safe_load(generate_config())["http"]["address"] == "127.0.0.1"


# --- the generated file -------------------------------------------------------------------------


def test_generated_config_is_valid_yaml() -> None:
    assert isinstance(yaml.safe_load(generate_config()), dict)


def test_generated_config_loads_back_to_the_defaults(tmp_path: Path) -> None:
    path = _write(tmp_path, generate_config())
    assert load_settings(environ={}, path=path) == load_settings(environ={})


@pytest.mark.parametrize("key", KEYS, ids=lambda k: k.path)
def test_generated_config_holds_every_key_with_its_doc_comment(key: Any) -> None:
    tree = yaml.safe_load(generate_config())
    node = tree
    for part in key.path.split("."):
        node = node[part]
    assert node == key.default
    leaf = key.path.rsplit(".", 1)[-1]
    lines = generate_config().splitlines()
    docs = [i for i, line in enumerate(lines) if line.strip() == f"# {key.doc}"]
    assert docs, f"no doc comment for {key.path}"
    assert any(lines[i + 1].strip().startswith(f"{leaf}:") for i in docs)


def test_a_section_with_every_key_commented_out_is_accepted(tmp_path: Path) -> None:
    # What a user gets by commenting out the keys of one section of the generated file.
    path = _write(tmp_path, "http:\n  # port: 8080\ngeneral:\n  nodeId: n2\n")
    settings = load_settings(environ={}, path=path)
    assert settings.general.node_id == "n2"
    assert settings.http.port == 8080


def test_an_empty_file_gives_the_defaults(tmp_path: Path) -> None:
    assert load_settings(environ={}, path=_write(tmp_path, "")) == load_settings(environ={})


def test_file_values_override_defaults(tmp_path: Path) -> None:
    path = _write(tmp_path, "http:\n  port: 9090\n  cors:\n    allowedOrigins: [a, b]\n"
                            "supervisor:\n  hangTimeout: 1h30m\n")
    settings = load_settings(environ={}, path=path)
    assert settings.http.port == 9090
    assert settings.http.cors.allowed_origins == ("a", "b")
    assert settings.supervisor.hang_timeout == 5400.0


def test_file_keys_match_case_insensitively(tmp_path: Path) -> None:
    path = _write(tmp_path, "HTTP:\n  PORT: 9091\ngeneral:\n  nodeid: n3\n")
    settings = load_settings(environ={}, path=path)
    assert (settings.http.port, settings.general.node_id) == (9091, "n3")


# --- environment ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["GORTMS_GENERAL_DATADIR", "GORTMS_GENERAL_DATA_DIR"])
def test_data_dir_is_read_from_either_environment_spelling(name: str, tmp_path: Path) -> None:
    settings = load_settings(environ={name: str(tmp_path / "d")})
    assert settings.data_dir == str(tmp_path / "d")


@pytest.mark.parametrize("name", ["GORTMS_HTTP_CORS_ALLOWEDORIGINS",
                                  "GORTMS_HTTP_CORS_ALLOWED_ORIGINS"])
def test_lists_are_read_comma_separated_from_the_environment(name: str) -> None:
    settings = load_settings(environ={name: "https://a.example, https://b.example"})
    assert settings.http.cors.allowed_origins == ("https://a.example", "https://b.example")


@pytest.mark.parametrize(("text", "value"), [("true", True), ("false", False), ("1", True),
                                              ("0", False), ("TRUE", True), ("False", False)])
def test_booleans_are_read_from_the_environment(text: str, value: bool) -> None:
    assert load_settings(environ={"GORTMS_STORAGE_SYNC": text}).storage.sync is value
    assert load_settings(environ={"GORTMS_HTTP_CORS_ENABLED": text}).http.cors.enabled is value


def test_integers_and_durations_are_read_from_the_environment() -> None:
    settings = load_settings(environ={"GORTMS_HTTP_PORT": "9090",
                                      "GORTMS_SUPERVISOR_HANG_TIMEOUT": "1h30m",
                                      "GORTMS_SECURITY_HMAC_TIMESTAMPWINDOW": "500ms"})
    assert settings.http.port == 9090
    assert settings.supervisor.hang_timeout == 5400.0
    assert settings.security.hmac.timestamp_window == 0.5


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "http:\n  port: 9090\n")
    assert load_settings(environ={"GORTMS_HTTP_PORT": "9191"}, path=path).http.port == 9191


def test_variables_outside_the_gortms_namespace_and_gortms_config_are_ignored() -> None:
    settings = load_settings(environ={"HOME": "/root", "PATH": "/bin",
                                      "GORTMS_CONFIG": "/etc/gortms.yaml"})
    assert settings == load_settings(environ={})


def test_a_bad_boolean_in_the_environment_names_the_key_and_value() -> None:
    [problem] = _problems({"GORTMS_STORAGE_SYNC": "maybe"})
    assert "storage.sync" in problem and "maybe" in problem


# --- problems --------------------------------------------------------------------------------


def test_unknown_key_in_the_file_is_named(tmp_path: Path) -> None:
    [problem] = _problems({}, _write(tmp_path, "http:\n  prot: 8080\n"))
    assert "http.prot" in problem and "unknown" in problem


def test_unknown_section_in_the_file_is_named(tmp_path: Path) -> None:
    [problem] = _problems({}, _write(tmp_path, "htp:\n  port: 8080\n"))
    assert problem.startswith("htp")


def test_unknown_gortms_variable_is_named() -> None:
    [problem] = _problems({"GORTMS_HTTP_PROT": "8080"})
    assert "GORTMS_HTTP_PROT" in problem


def test_several_problems_are_reported_together(tmp_path: Path) -> None:
    path = _write(tmp_path, "http:\n  port: 70000\n  bogus: 1\ngeneral:\n  logLevel: loud\n")
    problems = _problems({"GORTMS_NOPE": "1", "GORTMS_STORAGE_SYNC": "perhaps"}, path)
    assert len(problems) == 5
    text = "\n".join(problems)
    for needle in ("http.port", "70000", "http.bogus", "general.logLevel", "loud", "GORTMS_NOPE",
                   "storage.sync", "perhaps"):
        assert needle in text
    with pytest.raises(ConfigError) as info:
        load_settings({"GORTMS_NOPE": "1", "GORTMS_STORAGE_SYNC": "perhaps"}, path)
    assert all(problem in str(info.value) for problem in problems)


@pytest.mark.parametrize(("text", "line"), [("a: 1\nb: 2\nc: d: e\n", 3),
                                             ("general:\n  nodeId: x\n  logLevel: [info\n", 4)])
def test_bad_yaml_names_the_line(tmp_path: Path, text: str, line: int) -> None:
    [problem] = _problems({}, _write(tmp_path, text))
    assert "YAML" in problem and f"line {line}" in problem


def test_a_file_that_is_not_a_mapping_is_refused(tmp_path: Path) -> None:
    [problem] = _problems({}, _write(tmp_path, "- a\n- b\n"))
    assert "mapping" in problem


def test_missing_file_message_suggests_generate_config(tmp_path: Path) -> None:
    path = str(tmp_path / "nope.yaml")
    [problem] = _problems({}, path)
    assert path in problem and "--generate-config" in problem


@pytest.mark.parametrize("address", ["0.0.0.0", "192.168.1.10", "::", "broker.example.com"])
def test_non_loopback_address_without_authentication_is_refused_naming_both_fixes(
        address: str) -> None:
    [problem] = _problems({"GORTMS_HTTP_ADDRESS": address})
    assert address in problem
    assert "security.enableAuthentication" in problem
    assert "security.allowAnonymousRemote" in problem


def test_non_loopback_address_is_accepted_with_anonymous_remote_allowed() -> None:
    settings = load_settings(environ={"GORTMS_HTTP_ADDRESS": "0.0.0.0",
                                      "GORTMS_SECURITY_ALLOWANONYMOUSREMOTE": "true"})
    assert settings.http.address == "0.0.0.0"


@pytest.mark.parametrize("address", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_loopback_addresses_need_no_authentication(address: str) -> None:
    assert load_settings(environ={"GORTMS_HTTP_ADDRESS": address}).http.address == address


def test_cert_file_without_key_file_is_refused() -> None:
    [problem] = _problems({"GORTMS_HTTP_CERTFILE": "/tmp/cert.pem"})
    assert "certFile" in problem and "keyFile" in problem


# --- storage.minFreeBytes: a size or a share of the file system -------------------------------


@pytest.mark.parametrize("given,limit", [
    (1073741824, SpaceLimit(bytes=2**30)), ("1GiB", SpaceLimit(bytes=2**30)),
    ("512 MB", SpaceLimit(bytes=512 * 10**6)), ("16mib", SpaceLimit(bytes=16 * 2**20)),
    ("1.5GiB", SpaceLimit(bytes=3 * 2**29)), ("0", SpaceLimit()), (0, SpaceLimit()),
    ("5%", SpaceLimit(percent=5.0)), ("2.5 %", SpaceLimit(percent=2.5)),
    ("100B", SpaceLimit(bytes=100)),
])
def test_min_free_bytes_takes_sizes_and_percentages(given: Any, limit: SpaceLimit) -> None:
    assert parse_space(given) == limit
    assert parse_space(str(limit)) == limit  # what children get back from to_json


def test_min_free_bytes_from_the_environment_reaches_children_unchanged() -> None:
    settings = load_settings(environ={"GORTMS_STORAGE_MINFREEBYTES": "5%"})
    assert settings.storage.min_free_bytes == SpaceLimit(percent=5.0)
    assert settings_from_json(to_json(settings)).storage.min_free_bytes.of(2000) == 100


@pytest.mark.parametrize("bad", ["lots", "-1", "5 parsecs", "100%", "150%", "1e9", "true",
                                 "1.5", "[]"])
def test_min_free_bytes_refuses_what_is_not_a_size(tmp_path: Path, bad: str) -> None:
    path = _write(tmp_path, f"storage:\n  minFreeBytes: {bad}\n")
    with pytest.raises(ConfigError) as info:
        load_settings(environ={}, path=path)
    [problem] = info.value.problems
    assert problem.startswith("storage.minFreeBytes: must be a size like")


# --- JSON for children -------------------------------------------------------------------------


def test_default_settings_round_trip_through_json() -> None:
    settings = load_settings(environ={})
    assert settings_from_json(to_json(settings)) == settings


def test_changed_settings_round_trip_through_json(tmp_path: Path) -> None:
    settings = load_settings(environ={
        "GORTMS_GENERAL_DATADIR": str(tmp_path), "GORTMS_HTTP_PORT": "0",
        "GORTMS_STORAGE_SYNC": "false", "GORTMS_HTTP_CORS_ALLOWEDORIGINS": "a,b",
        "GORTMS_SUPERVISOR_HANGTIMEOUT": "1h30m", "GORTMS_STORAGE_DEDUPWINDOW": "1.5s",
        "GORTMS_GENERAL_LOGLEVEL": "DEBUG"})
    copy = settings_from_json(to_json(settings))
    assert copy == settings
    assert dataclasses.asdict(copy)["supervisor"]["hang_timeout"] == 5400.0
    assert copy.general.log_level == "debug"


def test_docs_config_md_holds_the_table_the_keys_table_generates() -> None:
    from gortms.config import with_reference
    path = Path(__file__).resolve().parents[2] / "docs" / "CONFIG.md"
    text = path.read_text(encoding="utf-8")
    assert with_reference(text) == text, "docs/CONFIG.md is stale: run `make docs`"
    for key in KEYS:
        assert f"| `{key.path}` |" in text


def test_a_duration_setting_given_as_a_bare_number_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, "supervisor:\n  hangTimeout: 10\n  stopTimeout: 0\n")
    with pytest.raises(ConfigError) as info:
        load_settings(environ={}, path=path)
    assert [p.split(":")[0] for p in info.value.problems] == ["supervisor.hangTimeout"]
