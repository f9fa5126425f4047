"""Whether this process can write what the broker writes in its data dir, checked at start.

    the data dir, supervisor.lock, cluster.json, run/, shards/ and everything below it, tls/
    and its files: each must belong to this process's user (unless it runs as root) and be
    readable and writable, directories searchable too; then a probe file is created and
    removed in the data dir and in each shard's dir, which catches a read-only file system
    that permission bits and access() do not show (root-squashed NFS, a read-only FUSE mount)

Without this, a data dir that was made read-only or was left owned by another user (a
restore run as root) shows up as shards failing to open RocksDB until startup gives up;
here it is one message naming the path, and exit code 2. A full disk is not such a problem:
the broker starts, and its shards refuse writes until there is space again.
"""

from __future__ import annotations

import errno
import os
import pwd
import stat
import tempfile
from collections.abc import Iterator

from gortms.datadir import Layout
from gortms.errors import ConfigError

MAX_PROBLEMS = 5  # a data dir restored as root has thousands of root-owned files
PROBE_PREFIX = ".gortms-probe-"
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
READ_ONLY_ADVICE = "remount it read-write, or choose another data dir"


def check_data_dir(layout: Layout) -> list[str]:
    """Warnings (a full disk); raises ConfigError naming the paths this process cannot use
    (the first MAX_PROBLEMS of them)."""
    problems = list(_permission_problems(layout))
    warnings: list[str] = []
    if not problems:  # the probes would only repeat what was found
        for directory in _probed_dirs(layout):
            exc = _probe(directory)
            if exc is None:
                continue
            if exc.errno in DISK_FULL:
                warnings.append(f"no space left in {directory} ({exc.strerror}): starting "
                                "anyway; the shards refuse writes until there is space")
            elif exc.errno == errno.EROFS:
                problems.append(f"{directory} is on a read-only file system; "
                                f"{READ_ONLY_ADVICE}")
            else:
                problems.append(f"cannot create a file in {directory}: {exc.strerror}")
    if len(problems) > MAX_PROBLEMS:
        problems[MAX_PROBLEMS:] = [f"... and {len(problems) - MAX_PROBLEMS} more"]
    if problems:
        raise ConfigError([f"general.dataDir: {problem}" for problem in problems])
    return warnings


def ensure_data_dir(layout: Layout) -> None:
    try:
        os.makedirs(layout.root, exist_ok=True)
    except OSError as exc:
        raise ConfigError([f"general.dataDir: cannot create {layout.root}: "
                           f"{exc.strerror}"]) from None


# --- owner and permission bits ----------------------------------------------------------------


def _written_paths(layout: Layout) -> Iterator[str]:
    """Every path the broker writes that exists now (RocksDB's files included)."""
    yield from (layout.root, layout.lock_file, layout.cluster_file, layout.run_dir)
    for tree in (layout.shards_dir, layout.tls_dir):
        yield tree
        # Each entry comes from its parent's listing, so a directory that cannot be listed
        # (which os.walk skips silently) is still checked itself.
        for directory, subdirs, files in os.walk(tree):
            subdirs.sort()
            yield from (os.path.join(directory, name) for name in sorted(subdirs + files))


def _permission_problems(layout: Layout) -> Iterator[str]:
    euid = os.geteuid()
    read_only: dict[int, bool] = {}  # per device: one line per read-only mount, not per file
    for path in _written_paths(layout):
        try:
            info = os.stat(path)
        except FileNotFoundError:
            continue  # not created yet, or removed meanwhile (a compaction): nothing to check
        except PermissionError:
            continue  # its directory is not searchable, which is reported for the directory
        if info.st_dev not in read_only:
            read_only[info.st_dev] = _on_read_only_fs(path)
            if read_only[info.st_dev]:
                yield f"{path} is on a read-only file system; {READ_ONLY_ADVICE}"
        if not read_only[info.st_dev]:
            problem = _problem(path, info, euid, layout.root)
            if problem is not None:
                yield problem


def _problem(path: str, info: os.stat_result, euid: int, root: str) -> str | None:
    # Root writes whatever the bits say, so only a non-root process is held to ownership.
    if euid != 0 and info.st_uid != euid:
        return (f"{path} is owned by uid {info.st_uid} ({_user(info.st_uid)}), not by this "
                f"process (uid {euid}, {_user(euid)}); chown -R {_user(euid)} {root}")
    is_dir = stat.S_ISDIR(info.st_mode)
    wanted = os.R_OK | os.W_OK | (os.X_OK if is_dir else 0)
    if os.access(path, wanted, effective_ids=os.access in os.supports_effective_ids):
        return None
    needs = "readable, writable and searchable" if is_dir else "readable and writable"
    return (f"{path} is not {needs} by this process (uid {euid}): mode "
            f"{stat.filemode(info.st_mode)}, owner uid {info.st_uid} ({_user(info.st_uid)}); "
            f"chmod -R u+rwX {root}")


def _on_read_only_fs(path: str) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _user(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return "no such user"


# --- the write probe --------------------------------------------------------------------------


def _probed_dirs(layout: Layout) -> Iterator[str]:
    yield layout.root
    try:
        names = sorted(os.listdir(layout.shards_dir))
    except FileNotFoundError:
        return
    for name in names:
        path = os.path.join(layout.shards_dir, name)
        if name.isdigit() and os.path.isdir(path):
            yield path


def _probe(directory: str) -> OSError | None:
    """Why a small file cannot be created, written and removed in `directory`, if it cannot."""
    try:
        fd, path = tempfile.mkstemp(prefix=PROBE_PREFIX, dir=directory)
    except OSError as exc:
        return exc
    try:
        os.write(fd, b"gortms")
    except OSError as exc:
        return exc
    finally:
        os.close(fd)
        _remove(path)
    return None


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass  # a probe left behind is a few bytes; it must not be what stops the start
