"""A data dir the broker cannot write stops `gortms serve` at once: exit code 2 and one message
naming the path, before any shard is started. A full disk does not: it is a warning.

The faults are real. A read-only data dir is a tmpfs remounted read-only (root passes
permission bits, so chmod would prove nothing); files of another user are the data dir of
a broker run as root, given to `nobody` but for one file, and the supervisor then run as
nobody. Both need root, and skip without it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Iterator

import pytest

from gortms.access import MAX_PROBLEMS, check_data_dir
from gortms.datadir import Layout
from tests.broker import BASE_ENV, ROOT, start_broker

NOBODY = 65534
RUN_TIMEOUT_S = 60.0
EXIT_CONFIG = 2

needs_root = pytest.mark.skipif(os.geteuid() != 0,
                                reason="needs root: to mount a tmpfs, and to own files "
                                       "as root and as nobody")


def serve(data_dir: Path, user: int | None = None,
          cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """`gortms serve` on `data_dir` that is expected to exit by itself, within RUN_TIMEOUT_S."""
    env = {k: v for k, v in os.environ.items() if k != "GORTMS_CONFIG"}
    env.update(BASE_ENV, GORTMS_GENERAL_DATADIR=str(data_dir), PYTHONDONTWRITEBYTECODE="1")
    ids = {} if user is None else {"user": user, "group": user, "extra_groups": []}
    return subprocess.run([sys.executable, "-m", "gortms", "serve"], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=RUN_TIMEOUT_S, **ids)


def make_data(data_dir: Path) -> None:
    """A data dir as a real broker leaves it: cluster.json, two RocksDB shards, run/."""
    broker = start_broker(data_dir)
    assert broker.stop() == 0, broker.output()


def mount(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["mount", *args], capture_output=True, text=True, timeout=30)


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 16 MiB tmpfs of this test's own, unmounted afterwards whatever happened."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    if shutil.which("mount") is None:
        pytest.skip("no mount command")
    point = tmp_path / "mnt"
    point.mkdir()
    mounted = mount("-t", "tmpfs", "-o", "size=16m", "tmpfs", str(point))
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield point
    finally:
        if subprocess.run(["umount", str(point)], timeout=30).returncode != 0:
            subprocess.run(["umount", "-l", str(point)], timeout=30)


# --- read-only ----------------------------------------------------------------------------------


def test_a_data_dir_on_a_read_only_file_system_exits_2_naming_it(tmpfs: Path) -> None:
    data_dir = tmpfs / "data"
    make_data(data_dir)
    remounted = mount("-o", "remount,ro", str(tmpfs))
    assert remounted.returncode == 0, remounted.stderr
    result = serve(data_dir)
    assert result.returncode == EXIT_CONFIG, result.stderr
    assert (f"gortms: config: general.dataDir: {data_dir} is on a read-only file system; "
            "remount it read-write") in result.stderr
    assert "Traceback" not in result.stderr
    assert "started (pid" not in result.stderr  # no shard was tried


def test_a_data_dir_that_cannot_be_created_on_a_read_only_file_system_exits_2(
        tmpfs: Path) -> None:
    assert mount("-o", "remount,ro", str(tmpfs)).returncode == 0
    result = serve(tmpfs / "data")
    assert result.returncode == EXIT_CONFIG, result.stderr
    assert f"cannot create {tmpfs / 'data'}: Read-only file system" in result.stderr


def test_a_full_disk_is_a_warning_not_a_reason_to_stay_down(tmpfs: Path) -> None:
    layout = Layout(str(tmpfs / "data"))
    os.makedirs(layout.shard_dir(0))
    with open(tmpfs / "filler", "wb", buffering=0) as filler:
        with pytest.raises(OSError, match="No space left"):
            while True:  # a short write takes what is left, and the next one fails
                filler.write(b"\0" * (1 << 20))
    warnings = check_data_dir(layout)
    assert warnings and all("no space left in " in w for w in warnings)
    assert any(layout.shard_dir(0) in w for w in warnings)
    assert not [name for _, _, names in os.walk(layout.root) for name in names]  # no probe left


def test_a_writable_data_dir_passes_and_keeps_no_probe_files(tmp_path: Path) -> None:
    layout = Layout(str(tmp_path / "data"))
    os.makedirs(layout.shard_dir(0))
    (tmp_path / "data" / "cluster.json").write_text("{}")
    assert check_data_dir(layout) == []
    assert sorted(os.listdir(layout.root)) == ["cluster.json", "shards"]
    assert os.listdir(layout.shard_dir(0)) == []


# --- files of another user ----------------------------------------------------------------------

# `gortms serve` whose effective uid and gid are nobody's, for when nobody cannot reach the
# interpreter itself (it lives under root's 0700 home here): everything serve runs is imported
# first, as root, then the process gives up root for nobody, as far as the data dir can tell.
SERVE_AS_EFFECTIVE_NOBODY = f"""
import os, sys
import gortms.cli, supervisor.main  # noqa
os.setgroups([])
os.setegid({NOBODY})
os.seteuid({NOBODY})
raise SystemExit(gortms.cli.main(["serve"]))
"""


@pytest.fixture
def nobody_dir() -> Iterator[Path]:
    """A dir owned by nobody that nobody can reach (tmp_path is root's alone)."""
    if os.geteuid() != 0:
        pytest.skip("needs root, to own files as root and to act as nobody")
    base = Path(tempfile.mkdtemp(prefix="gortms-nobody-"))
    try:
        os.chown(base, NOBODY, NOBODY)
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def nobody_can_run_this_checkout() -> None:
    """Skips unless a process of nobody's can run this interpreter and import this checkout."""
    if os.geteuid() != 0:
        pytest.skip("needs root, to run a process as nobody")
    try:
        probe = subprocess.run([sys.executable, "-c", "import gortms.cli, supervisor.main"],
                               cwd="/", user=NOBODY, group=NOBODY, extra_groups=[],
                               capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
        reason = (probe.stderr.strip().splitlines() or [""])[-1]
    except OSError as exc:  # the exec itself refused
        probe, reason = None, str(exc)
    if probe is None or probe.returncode != 0:
        pytest.skip(f"uid {NOBODY} cannot run {sys.executable} with this checkout (the "
                    f"interpreter, the venv or the repo is not reachable by it): {reason}")


@pytest.fixture
def foreign_data_dir(nobody_dir: Path, request: pytest.FixtureRequest) -> tuple[Path, Path]:
    """(data dir, path): a broker's data dir, made as root (as a restore run by root would
    leave it) and then given to nobody, but for `path`: root's, mode 0600."""
    data_dir = nobody_dir / "data"
    make_data(data_dir)
    chown_tree(data_dir, NOBODY)
    path = data_dir / request.param
    os.chown(path, 0, 0)
    os.chmod(path, 0o600)
    return data_dir, path


def chown_tree(path: Path, uid: int) -> None:
    os.chown(path, uid, uid)
    for directory, subdirs, files in os.walk(path):
        for name in subdirs + files:
            os.chown(os.path.join(directory, name), uid, uid)


def effective_nobody(args: list[str], data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "GORTMS_CONFIG"}
    env.update(BASE_ENV, GORTMS_GENERAL_DATADIR=str(data_dir), PYTHONDONTWRITEBYTECODE="1")
    return subprocess.run([sys.executable, "-c", *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=RUN_TIMEOUT_S)


def check_as_effective_nobody(data_dir: Path) -> subprocess.CompletedProcess[str]:
    """gortms.access.check_data_dir as nobody: prints its warnings, or its problems (exit 2)."""
    code = (f"import json, os, sys; from gortms.access import check_data_dir; "
            f"from gortms.datadir import Layout; from gortms.errors import ConfigError\n"
            f"os.setgroups([]); os.setegid({NOBODY}); os.seteuid({NOBODY})\n"
            f"try: print(json.dumps(check_data_dir(Layout(sys.argv[1]))))\n"
            f"except ConfigError as exc: print(json.dumps(exc.problems)); sys.exit(2)")
    return effective_nobody([code, str(data_dir)], data_dir)


def assert_refused(result: subprocess.CompletedProcess[str], data_dir: Path,
                   path: Path) -> None:
    assert result.returncode == EXIT_CONFIG, result.stderr
    assert (f"gortms: config: general.dataDir: {path} is owned by uid 0 (root), not by this "
            f"process (uid {NOBODY}, nobody); chown -R nobody {data_dir}") in result.stderr
    assert "Traceback" not in result.stderr
    assert "started (pid" not in result.stderr  # no shard was tried
    assert not (data_dir / "run" / "state.json").exists()


FOREIGN = pytest.mark.parametrize("foreign_data_dir", ["cluster.json", "shards/1/CURRENT"],
                                  indirect=True)


@FOREIGN
def test_a_file_of_another_user_exits_2_naming_the_file_and_its_owner(
        nobody_can_run_this_checkout: None, foreign_data_dir: tuple[Path, Path]) -> None:
    data_dir, path = foreign_data_dir
    assert_refused(serve(data_dir, user=NOBODY, cwd=data_dir.parent), data_dir, path)


@FOREIGN
def test_a_file_of_another_user_exits_2_when_only_the_effective_uid_is_unprivileged(
        foreign_data_dir: tuple[Path, Path]) -> None:
    data_dir, path = foreign_data_dir
    assert_refused(effective_nobody([SERVE_AS_EFFECTIVE_NOBODY], data_dir), data_dir, path)
    os.chown(path, NOBODY, NOBODY)  # the one file given back: nothing else was in the way
    result = check_as_effective_nobody(data_dir)
    assert (result.returncode, result.stdout.strip()) == (0, "[]"), result.stderr


def test_a_data_dir_restored_as_root_lists_the_first_problems_and_counts_the_rest(
        nobody_dir: Path) -> None:
    data_dir = nobody_dir / "data"
    make_data(data_dir)
    os.chown(data_dir, NOBODY, NOBODY)  # the top given away, what is inside still root's
    result = check_as_effective_nobody(data_dir)
    assert result.returncode == EXIT_CONFIG, result.stderr
    problems = json.loads(result.stdout)
    assert len(problems) == MAX_PROBLEMS + 1
    assert problems[0].startswith(f"general.dataDir: {data_dir / 'supervisor.lock'} is owned "
                                  "by uid 0 (root)")
    assert problems[1].startswith(f"general.dataDir: {data_dir / 'cluster.json'} is owned")
    assert problems[-1].startswith("general.dataDir: ... and ")
