"""The data directory's layout: cluster.json, one RocksDB per shard, runtime state, TLS files.

    <dataDir>/cluster.json         shard count and format, fixed at the first start
    <dataDir>/supervisor.lock      held (flock) by the running supervisor
    <dataDir>/shards/<i>/          shard i's RocksDB
    <dataDir>/run/state.json       the running supervisor's children (pids, endpoints)
    <dataDir>/run/s<i>.req|.pub    shard i's ZeroMQ endpoints (ipc), unless the path is too long
    <dataDir>/tls/server.crt|.key  the generated certificate
    <dataDir>/secrets/jwt.secret   the generated JWT signing secret (0600)
    <dataDir>/secrets/services.key the key service-account secrets are encrypted under (0600)
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass

import orjson

from gortms.errors import ConfigError

FORMAT_VERSION = 1
# Unix socket paths are limited to 108 bytes (sun_path); keep a margin.
MAX_IPC_PATH = 100


@dataclass(frozen=True, slots=True)
class Layout:
    root: str

    @property
    def cluster_file(self) -> str:
        return os.path.join(self.root, "cluster.json")

    @property
    def lock_file(self) -> str:
        return os.path.join(self.root, "supervisor.lock")

    @property
    def shards_dir(self) -> str:
        return os.path.join(self.root, "shards")

    @property
    def run_dir(self) -> str:
        return os.path.join(self.root, "run")

    @property
    def state_file(self) -> str:
        return os.path.join(self.run_dir, "state.json")

    @property
    def tls_dir(self) -> str:
        return os.path.join(self.root, "tls")

    @property
    def secrets_dir(self) -> str:
        return os.path.join(self.root, "secrets")

    def shard_dir(self, index: int) -> str:
        return os.path.join(self.shards_dir, str(index))

    def socket_dir(self) -> str:
        """Where ipc endpoints live: run/, or a short private dir when run/ is too deep."""
        if len(os.path.join(self.run_dir, "s000.req")) <= MAX_IPC_PATH:
            return self.run_dir
        digest = hashlib.blake2b(self.root.encode(), digest_size=6).hexdigest()
        return os.path.join(tempfile.gettempdir(), f"gortms-{os.getuid()}-{digest}")

    def endpoints(self, index: int) -> tuple[str, str]:
        """(request, event) endpoints of shard `index`."""
        base = os.path.join(self.socket_dir(), f"s{index}")
        return f"ipc://{base}.req", f"ipc://{base}.pub"


def read_cluster(layout: Layout) -> dict | None:
    try:
        with open(layout.cluster_file, "rb") as handle:
            return orjson.loads(handle.read())
    except FileNotFoundError:
        return None
    except ValueError as exc:
        raise ConfigError([f"{layout.cluster_file} is corrupt; restore it from a backup"]) from exc


def fix_shard_count(layout: Layout, requested: int, cpu_count: int) -> int:
    """The shard count of this data dir: recorded at the first start, checked on later ones."""
    cluster = read_cluster(layout)
    if cluster is not None:
        recorded = int(cluster["shardCount"])
        if requested and requested != recorded:
            raise ConfigError([
                f"shards.count: the data dir {layout.root} was created with {recorded} shards "
                f"and its queues are placed by that count; set shards.count to {recorded} "
                f"(or 0 to use what was recorded), or use a new data dir"])
        return recorded
    count = requested or max(1, cpu_count)
    os.makedirs(layout.root, exist_ok=True)
    tmp = layout.cluster_file + ".tmp"
    with open(tmp, "wb") as handle:
        handle.write(orjson.dumps({"formatVersion": FORMAT_VERSION, "shardCount": count},
                                  option=orjson.OPT_INDENT_2))
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, layout.cluster_file)
    return count


def read_state(layout: Layout) -> dict | None:
    try:
        with open(layout.state_file, "rb") as handle:
            return orjson.loads(handle.read())
    except (FileNotFoundError, ValueError):
        return None


def write_state(layout: Layout, state: dict) -> None:
    """Replace run/state.json whole; an OSError (a full disk) leaves the old file in place."""
    os.makedirs(layout.run_dir, exist_ok=True)
    tmp = layout.state_file + ".tmp"
    try:
        with open(tmp, "wb") as handle:
            handle.write(orjson.dumps(state, option=orjson.OPT_INDENT_2))
        os.replace(tmp, layout.state_file)
    except OSError:
        # A half-written tmp file holds space a full disk needs back. Anything else at that
        # path (a directory) is not ours to remove.
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
