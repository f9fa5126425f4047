"""The data directory's layout: endpoints that fit in a Unix socket path, the fixed shard count."""

from __future__ import annotations

import pytest

from gortms.datadir import MAX_IPC_PATH, Layout, fix_shard_count, read_cluster
from gortms.errors import ConfigError


def test_endpoints_live_in_run_when_the_path_is_short(tmp_path):
    layout = Layout(str(tmp_path / "d"))
    request, events = layout.endpoints(3)
    assert request == f"ipc://{tmp_path}/d/run/s3.req"
    assert events == f"ipc://{tmp_path}/d/run/s3.pub"


def test_endpoints_move_to_a_short_private_dir_when_the_data_dir_is_deep(tmp_path):
    deep = Layout(str(tmp_path / ("x" * 120)))
    request, _ = deep.endpoints(255)
    assert len(request.removeprefix("ipc://")) <= MAX_IPC_PATH
    assert deep.endpoints(255) == Layout(str(tmp_path / ("x" * 120))).endpoints(255)  # stable
    other = Layout(str(tmp_path / ("y" * 120)))
    assert other.endpoints(0) != deep.endpoints(0)  # one dir per data dir


def test_shard_count_is_recorded_at_the_first_start_and_enforced_after(tmp_path):
    layout = Layout(str(tmp_path / "d"))
    assert read_cluster(layout) is None
    assert fix_shard_count(layout, 0, cpu_count=6) == 6  # auto: one per CPU
    assert read_cluster(layout)["shardCount"] == 6
    assert fix_shard_count(layout, 0, cpu_count=2) == 6  # auto later: what was recorded
    assert fix_shard_count(layout, 6, cpu_count=2) == 6
    with pytest.raises(ConfigError, match="created with 6 shards"):
        fix_shard_count(layout, 4, cpu_count=2)


def test_a_corrupt_cluster_file_is_a_config_error_not_a_traceback(tmp_path):
    layout = Layout(str(tmp_path))
    (tmp_path / "cluster.json").write_text("{not json")
    with pytest.raises(ConfigError, match="corrupt"):
        read_cluster(layout)
