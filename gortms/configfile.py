"""The running broker's config file, as the settings API reads and changes it: its values, a
change merged onto them, the result validated as a start validates it (gortms/config.py),
and the file written back atomically under a lock.

A change is a partial tree in the shape of config.yaml, keys in any case as in the file. A
key set to null takes its default; a section set to null, every key of it. A secret sent
back as REDACTED keeps its value. What `GORTMS_*` variables set is validated with the file
and wins over it, as at a start.

Writing keeps the text where it can: when every key that changes is already in the file as
a plain value, those values are replaced where they stand (comments, order and layout
stay). Otherwise the file is written anew in the shape of `gortms --generate-config` (every
key under its doc comment, the file's own comments lost). Either way the new text is read
back and must give the settings that were validated, or the fresh form is written instead.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import stat
import tempfile
import time
from dataclasses import dataclass, replace
from typing import Any, Iterator, Mapping

import yaml

from gortms.config import (KEYS, Key, Settings, check_values, config_values, file_value,
                           generate_config, key_for, read_config_text, settings_from_values)
from gortms.datadir import Layout, read_cluster
from gortms.errors import ConfigError, ConfigFileUnavailable

REDACTED = "<redacted>"
LOCK_TIMEOUT_S = 5.0
LOCK_RETRY_S = 0.01
# Kept by a reset: the queues' placement (shards.count) and the data's place and name, the
# secrets, and what would open a broker that asks for credentials or TLS.
RESET_KEEPS = ("general.nodeId", "general.dataDir", "shards.count", "http.jwt.secret",
               "security.enableAuthentication", "http.tls", "http.certFile", "http.keyFile")


@dataclass(frozen=True, slots=True)
class FileState:
    values: dict[str, Any]  # the file's values by key path (an unknown key as written)
    settings: Settings | None  # what a start would run with; None while the file has problems
    problems: list[str]


# --- reading ------------------------------------------------------------------------------------


def _text(path: str) -> str:
    try:
        return read_config_text(path)
    except ConfigError as exc:
        raise ConfigFileUnavailable(exc.message) from None


def _values(text: str, path: str) -> dict[str, Any]:
    try:
        given = config_values(text, path)
    except ConfigError as exc:
        raise ConfigFileUnavailable(f"{exc.message}; fix it by hand") from None
    out: dict[str, Any] = {}
    for raw, value in given.items():
        key = key_for(raw)
        out[key.path if key is not None else raw] = value
    return out


def read(path: str, running: Settings) -> FileState:
    values = _values(_text(path), path)
    try:
        return FileState(values, validate(values, running), [])
    except ConfigError as exc:
        return FileState(values, None, exc.problems)


def validate(values: Mapping[str, Any], running: Settings) -> Settings:
    """What a start would make of a file holding `values`, in the environment `running`
    was started in: the same checks, the same messages (ConfigError)."""
    problems: list[str] = []
    checked = check_values(values, problems)
    environment = {path: file_value(running, key) for path in running.from_environment
                   if (key := key_for(path)) is not None}
    checked.update(check_values(environment, problems))
    if problems:
        raise ConfigError(problems)
    settings = settings_from_values(checked)
    _check_shard_count(settings)
    return replace(settings, config_file=running.config_file,
                   from_environment=running.from_environment)


def _check_shard_count(settings: Settings) -> None:
    """As the supervisor checks at a start (gortms/datadir.py `fix_shard_count`)."""
    layout = Layout(settings.data_dir)
    cluster = read_cluster(layout)
    count = settings.shards.count
    if cluster is not None and count and count != int(cluster["shardCount"]):
        recorded = int(cluster["shardCount"])
        raise ConfigError([f"shards.count: the data dir {layout.root} was created with "
                           f"{recorded} shards and its queues are placed by that count; set "
                           f"shards.count to {recorded} (or 0 to use what was recorded)"])


def restart_required(after: Settings, running: Settings) -> list[str]:
    """The keys whose value a restart would change (live keys apply without one)."""
    return [key.path for key in KEYS
            if not key.live and file_value(after, key) != file_value(running, key)]


# --- changing -----------------------------------------------------------------------------------


def change(path: str, tree: Mapping[str, Any], running: Settings) -> FileState:
    """Merge `tree` onto the file, validate, write. ConfigError (nothing written) names
    every bad key."""
    with locked(path):
        text = _text(path)
        current = _values(text, path)
        problems: list[str] = []
        merged = _merge(current, _changes(tree, "", problems), problems)
        if problems:
            raise ConfigError(problems)
        return _write(path, text, current, merged, running)


def reset(path: str, running: Settings) -> FileState:
    """The embedded defaults, but for RESET_KEEPS as the file has them."""
    with locked(path):
        text = _text(path)
        current = _values(text, path)
        kept = {key.path: key.default for key in KEYS}
        kept.update({p: current[p] for p in RESET_KEEPS if p in current})
        return _write(path, text, current, kept, running, fresh=True)


def _write(path: str, text: str, current: dict[str, Any], values: dict[str, Any],
           running: Settings, fresh: bool = False) -> FileState:
    settings = validate(values, running)
    new_text = None if fresh else _edit_in_place(text, current, values)
    if new_text is None or _settings_of(new_text, path, running) != settings:
        new_text = generate_config(values)
        if _settings_of(new_text, path, running) != settings:
            raise RuntimeError("the config file written would not read back as validated")
    if new_text != text:
        write_atomically(path, new_text)
    return FileState(_values(new_text, path), settings, [])


def _settings_of(text: str, path: str, running: Settings) -> Settings | None:
    try:
        return validate(_values(text, path), running)
    except (ConfigError, ConfigFileUnavailable):
        return None


def _keys_under(section: str) -> list[Key]:
    prefix = section.lower() + "."
    return [key for key in KEYS if key.path.lower().startswith(prefix)]


def _changes(tree: Mapping[str, Any], prefix: str, problems: list[str]) -> dict[str, Any]:
    """A change tree -> {dotted path as written: value}; null sections become their keys."""
    out: dict[str, Any] = {}
    for name, value in tree.items():
        path = f"{prefix}{name}"
        keys = _keys_under(path)
        if keys and isinstance(value, dict):
            out.update(_changes(value, path + ".", problems))
        elif keys and value is None:
            out.update({key.path: None for key in keys})
        elif keys:
            problems.append(f"{path}: a section: send an object of its keys, or null")
        else:
            out[path] = value
    return out


def _merge(current: dict[str, Any], changes: dict[str, Any],
           problems: list[str]) -> dict[str, Any]:
    merged = dict(current)
    for raw, value in changes.items():
        key = key_for(raw)
        if key is None:
            written = [p for p in merged if p.lower() == raw.lower()]
            if value is None and written:  # an unknown key the file holds: out it goes
                del merged[written[0]]
            else:
                problems.append(f"{raw}: unknown key")
        elif value is None:
            if key.path in merged:  # absent, it has its default already
                merged[key.path] = key.default
        elif not (key.secret and value == REDACTED):  # a redacted secret sent back: kept
            merged[key.path] = value
    return merged


# --- the text -----------------------------------------------------------------------------------


def _edit_in_place(text: str, current: dict[str, Any], values: dict[str, Any]) -> str | None:
    """`text` with the values that change replaced where they stand; None unless every key
    that changes is in the file already, as a plain value."""
    changed = {p for p in current.keys() | values.keys()
               if current.get(p, _MISSING) != values.get(p, _MISSING)}
    if not changed:
        return text
    if changed - current.keys() or changed - values.keys():
        return None  # a key to add or to remove
    try:
        root = yaml.compose(text)
    except yaml.YAMLError:
        return None
    nodes: dict[str, yaml.Node] = {}
    if isinstance(root, yaml.MappingNode):
        _index(root, "", nodes)
    spans = []
    for path in changed:
        node = nodes.get(path)
        plain = isinstance(node, yaml.ScalarNode) and node.style in (None, "'", '"')
        if not (plain or isinstance(node, yaml.SequenceNode) and node.flow_style):
            return None
        assert node is not None
        spans.append((node.start_mark.index, node.end_mark.index, json.dumps(values[path])))
    for start, end, replacement in sorted(spans, reverse=True):
        text = text[:start] + replacement + text[end:]
    return text


_MISSING = object()


def _index(mapping: yaml.MappingNode, prefix: str, nodes: dict[str, yaml.Node]) -> None:
    for key_node, value_node in mapping.value:
        if not isinstance(key_node, yaml.ScalarNode):
            continue
        path = f"{prefix}{key_node.value}"
        if isinstance(value_node, yaml.MappingNode) and _keys_under(path):
            _index(value_node, path + ".", nodes)
            continue
        key = key_for(path)
        nodes[key.path if key is not None else path] = value_node


def write_atomically(path: str, text: str) -> None:
    """A temp file beside the file (through a symlink: beside its target), fsynced, given
    the file's mode, renamed over it; then the directory fsynced. A failure leaves the file
    as it was."""
    target = os.path.realpath(path)
    directory = os.path.dirname(target)
    try:
        mode = stat.S_IMODE(os.stat(target).st_mode)
        fd, temp = tempfile.mkstemp(prefix=f".{os.path.basename(target)}.", suffix=".tmp",
                                    dir=directory)
    except OSError as exc:
        raise ConfigFileUnavailable(f"config file {path} cannot be written: the broker may "
                                    f"not write in {directory} ({exc.strerror})") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fchmod(handle.fileno(), mode)
            os.fsync(handle.fileno())
        os.replace(temp, target)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise ConfigFileUnavailable(f"config file {path} cannot be written: "
                                    f"{exc.strerror}") from None
    directory_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(directory_fd)
    finally:
        os.close(directory_fd)


@contextlib.contextmanager
def locked(path: str) -> Iterator[None]:
    """Hold `<file>.lock` (beside the file's target): changes from every gateway worker
    are made one at a time, so none is lost."""
    lock_path = os.path.realpath(path) + ".lock"
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise ConfigFileUnavailable(f"config file {path} cannot be locked: {lock_path}: "
                                    f"{exc.strerror}") from None
    try:
        deadline = time.monotonic() + LOCK_TIMEOUT_S
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise ConfigFileUnavailable(
                        f"config file {path} stayed locked ({lock_path}) for "
                        f"{LOCK_TIMEOUT_S:g}s; try again") from None
                time.sleep(LOCK_RETRY_S)
        yield
    finally:
        os.close(fd)  # releases the lock


# --- shown to people ----------------------------------------------------------------------------


def as_tree(values: Mapping[str, Any]) -> dict[str, Any]:
    """Values by dotted path -> the config.yaml tree, secrets redacted."""
    tree: dict[str, Any] = {}
    for path, value in values.items():
        key = key_for(path)
        if key is not None and key.secret and value:
            value = REDACTED
        *parents, leaf = path.split(".")
        node = tree
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                break
        else:
            node[leaf] = _plain(value)
    return tree


def settings_tree(settings: Settings) -> dict[str, Any]:
    return as_tree({key.path: file_value(settings, key) for key in KEYS})


def _plain(value: Any) -> Any:
    """A value YAML read, as JSON can carry it (a date, say, becomes its text)."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return str(value)
