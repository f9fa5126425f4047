"""The `gortms` command as a new user meets it: config file, defaults, env, errors, TLS."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx2
import pytest
import yaml

from gortms import __version__
from gortms.config import KEYS

pytestmark = pytest.mark.slow


def gortms(*args: str, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gortms", *args], capture_output=True,
                          text=True, timeout=60, cwd=cwd, env={**os.environ, **env})


def test_version_is_printed():
    result = gortms("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"gortms {__version__}"


def test_generated_config_holds_every_key_and_starts_the_broker(tmp_path, broker_factory):
    path = tmp_path / "config.yaml"
    result = gortms("--generate-config", "--config", str(path))
    assert result.returncode == 0
    text = path.read_text()
    tree = yaml.safe_load(text)
    for key in KEYS:
        node = tree
        for part in key.path.split("."):
            node = node[part]
        assert node == key.default, key.path
        assert f"# {key.doc}" in text
    assert tree["http"]["address"] == "127.0.0.1"
    again = gortms("--generate-config", "--config", str(path))
    assert again.returncode == 1 and "--force" in again.stderr
    tree["http"]["port"] = 0
    tree["general"]["dataDir"] = str(tmp_path / "from-file")
    tree["general"]["nodeId"] = "from-file"
    path.write_text(yaml.safe_dump(tree))
    broker = broker_factory(tmp_path / "ignored", GORTMS_CONFIG=str(path),
                            GORTMS_GENERAL_DATADIR=str(tmp_path / "from-env"))
    assert "Node ID: from-file" in broker.output()  # the file's value
    assert f"Data directory: {tmp_path / 'from-env'}" in broker.output()  # env beats the file


def test_generate_config_defaults_to_config_yaml_in_the_current_dir(tmp_path):
    assert gortms("--generate-config", cwd=tmp_path).returncode == 0
    assert (tmp_path / "config.yaml").exists()


@pytest.mark.parametrize("content, key", [
    ("http:\n  port: seventy\n", "http.port"),
    ("http:\n  prot: 80\n", "http.prot"),
    ("storage:\n  sync: maybe\n", "storage.sync"),
    ("general: [1, 2\n", "line"),
    ("http:\n  address: 0.0.0.0\n", "security.allowAnonymousRemote"),
])
def test_bad_config_is_one_line_naming_the_key_and_exit_code_2(tmp_path, content, key):
    path = tmp_path / "config.yaml"
    path.write_text(content)
    result = gortms("--config", str(path), GORTMS_GENERAL_DATADIR=str(tmp_path / "data"))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert key in lines[0]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "data").exists()  # refused before touching anything


def test_missing_config_file_and_bad_environment_are_named(tmp_path):
    missing = gortms("--config", str(tmp_path / "nope.yaml"))
    assert missing.returncode == 2
    assert "--generate-config" in missing.stderr
    bad_env = gortms(GORTMS_HTTP_PORT="x", GORTMS_HTPP_PORT="1")
    assert bad_env.returncode == 2
    assert "http.port" in bad_env.stderr and "GORTMS_HTPP_PORT" in bad_env.stderr


def test_without_a_config_file_the_embedded_defaults_apply(tmp_path, broker_factory):
    broker = broker_factory(tmp_path / "data")
    text = broker.output()
    assert "Node ID: node1" in text
    assert broker.url.startswith("http://127.0.0.1:")


def test_tls_with_a_generated_self_signed_certificate(tmp_path, broker_factory):
    broker = broker_factory(tmp_path / "data", GORTMS_HTTP_TLS="true")
    assert broker.url.startswith("https://127.0.0.1:")
    assert "HTTPS server listening on" in broker.output()
    cert = tmp_path / "data" / "tls" / "server.crt"
    assert cert.exists() and (tmp_path / "data" / "tls" / "server.key").exists()
    import ssl
    context = ssl.create_default_context(cafile=str(cert))  # it names 127.0.0.1 too
    with httpx2.Client(base_url=broker.url, verify=context) as client:
        assert client.get("/api/health").json()["status"] == "ok"


def test_a_data_dir_too_deep_for_unix_sockets_still_works(tmp_path, broker_factory):
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    broker = broker_factory(deep)
    endpoint = broker.state()["shards"][0]["endpoint"]
    assert not endpoint.startswith(f"ipc://{deep}")  # moved to a short private dir
    with broker.client() as client:
        assert client.get("/health").json()["status"] == "ok"
