"""Settings: read once (file, then `GORTMS_*` environment variables), validated once, frozen.

`KEYS` is the single table of every setting: its path in config.yaml, type, default and meaning.
The generated config file, the environment variable names and docs/CONFIG.md all come from it.
The supervisor hands children their settings as JSON (`to_json` / `settings_from_json`), so
no child reads the environment or the file again.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
from dataclasses import dataclass, field, fields, replace
from typing import Annotated, Any, Literal, Mapping

import msgspec
import orjson
import yaml

from gortms.checks import Duration, convert, format_duration
from gortms.errors import ConfigError, GortmsError


@dataclass(frozen=True, slots=True)
class Key:
    path: str  # dotted camelCase path, as in config.yaml
    kind: str  # str | bool | int | duration | list | choice | space
    default: Any
    doc: str
    low: int = 0
    high: int = 2**31
    choices: tuple[str, ...] = ()
    live: bool = False  # a change applies to the running broker (gateway/settings.py)
    secret: bool = False  # never shown by the settings API


KEYS: tuple[Key, ...] = (
    Key("general.nodeId", "str", "node1", "Name of this broker node, shown in logs."),
    Key("general.dataDir", "str", "./data",
        "Where the shards keep their RocksDB databases and the supervisor its runtime state."),
    Key("general.logLevel", "choice", "info", "Log level: debug, info, warn or error.",
        choices=("debug", "info", "warn", "error"), live=True),
    Key("logging.format", "choice", "plain",
        "Log lines as plain text or as one JSON object per line (json: for log collectors).",
        choices=("plain", "json")),
    Key("logging.accessLog", "bool", False,
        "One line per HTTP request and WebSocket (method, path, status, duration, client), "
        "on the gortms.access logger at info level."),
    Key("http.enabled", "bool", True, "Serve the HTTP/WebSocket API (false runs the shards only)."),
    Key("http.address", "str", "127.0.0.1",
        "Address to listen on. A non-loopback address needs authentication on, or "
        "security.allowAnonymousRemote: true."),
    Key("http.port", "int", 8080, "Port to listen on (0 picks a free port and logs it).",
        high=65535),
    Key("http.tls", "bool", False,
        "Serve HTTPS. Without certFile/keyFile a self-signed certificate is generated under "
        "<dataDir>/tls/."),
    Key("http.certFile", "str", "", "PEM certificate for HTTPS (empty: auto-generated)."),
    Key("http.keyFile", "str", "", "PEM private key for HTTPS (empty: auto-generated)."),
    Key("http.maxBodyBytes", "int", 1_048_576, "Largest request body accepted (larger: 413).",
        low=1024, high=256 * 1_048_576),
    Key("http.maxHeaderBytes", "int", 16384,
        "Largest total size of a request's headers (larger: 431).", low=1024,
        high=1_048_576),
    Key("http.websocket.sendBufferBytes", "int", 1_048_576,
        "What a WebSocket or SSE client may have waiting to be sent to it; past it, live "
        "messages for that client are dropped and reported to it in a `lagged` frame.",
        low=4096, high=1 << 30),
    Key("http.websocket.maxMessageBytes", "int", 1_048_576,
        "Largest client WebSocket message accepted (larger: an error frame; over four times "
        "this, the connection is closed with 1009).", low=1024, high=64 * 1_048_576),
    Key("http.websocket.pingInterval", "duration", "20s",
        "How often the server pings each WebSocket client (0: never)."),
    Key("http.websocket.pingTimeout", "duration", "20s",
        "A client that has not answered a ping within this is disconnected."),
    Key("http.websocket.maxCredits", "int", 10_000,
        "Most unspent credits a WebSocket consumer may hold.", low=1, high=1_000_000),
    Key("http.cors.enabled", "bool", False, "Answer CORS preflights and add CORS headers."),
    Key("http.cors.allowedOrigins", "list", ["*"], "Origins allowed by CORS."),
    Key("http.jwt.secret", "str", "",
        "HS256 secret for user tokens (empty: generated and stored in the data dir when "
        "authentication is on).", secret=True),
    Key("http.jwt.expirationMinutes", "int", 60, "Lifetime of a user token, in minutes.", low=1),
    Key("security.enableAuthentication", "bool", False,
        "Require a JWT or an HMAC signature on every route but health and login."),
    Key("security.allowAnonymousRemote", "bool", False,
        "Allow a non-loopback http.address while authentication is off."),
    Key("security.hmac.enabled", "bool", True, "Accept HMAC-signed service requests."),
    Key("security.hmac.timestampWindow", "duration", "5m",
        "How far X-Timestamp may be from the server's clock."),
    Key("security.hmac.requireTLS", "bool", False, "Reject HMAC requests over plain HTTP (404)."),
    Key("storage.sync", "bool", True,
        "fsync every committed batch before acknowledging it (group commit). false trades "
        "durability against power loss for speed; a process crash still loses nothing."),
    Key("storage.dedupWindow", "duration", "2m",
        "How long an Idempotency-Key is remembered."),
    Key("storage.recentCacheBytes", "int", 64 * 1024 * 1024,
        "Memory each shard gives to the newest messages of its queues, so consumers near the "
        "end of a queue read them without touching disk (0: none).", high=2**40),
    Key("storage.minFreeBytes", "space", "1GiB",
        "Free space each shard keeps on its file system: below it, writes that add data "
        "(publish, create) are refused with 507 until space is freed; reads, acks and deletes "
        "go on. Bytes (\"512MiB\", \"2GB\", 1073741824) or a share of the file system "
        "(\"5%\"); 0 turns the check off."),
    Key("shards.count", "int", 0,
        "Shard processes. 0: one per CPU, decided at the first start and recorded in "
        "<dataDir>/cluster.json; later starts must agree.", high=256),
    Key("shards.maxWaiters", "int", 10_000,
        "Long-poll fetches a shard keeps parked at once (more: 429).", low=1),
    Key("shards.maxPendingPerGroup", "int", 10_000,
        "Delivered-but-unacknowledged messages a consumer group may hold; fetches wait "
        "beyond it.", low=1),
    Key("gateway.workers", "int", 1, "Gateway (HTTP) worker processes.", low=1, high=256),
    Key("gateway.requestTimeout", "duration", "10s",
        "Deadline of a gateway-to-shard request (a long poll adds its own timeout)."),
    Key("gateway.maxBatchMessages", "int", 10_000, "Most messages in one batch publish.",
        low=1, high=1_000_000),
    Key("gateway.maxInFlight", "int", 10_000,
        "Requests a gateway worker keeps in flight per shard (more: 503).", low=1),
    Key("supervisor.pingInterval", "duration", "1s", "How often children are checked."),
    Key("supervisor.hangTimeout", "duration", "10s",
        "A child that has not answered a ping for this long is killed and restarted."),
    Key("supervisor.stopTimeout", "duration", "15s",
        "How long each stage of shutdown (gateways, then shards) may take before SIGKILL."),
    Key("monitoring.interval", "duration", "5s",
        "How often every process samples its CPU, memory, threads and open files, and "
        "gateway workers and the supervisor report to the catalog shard (/api/resources, "
        "/metrics: other workers' HTTP figures are this old at most)."),
    Key("monitoring.historySize", "int", 720,
        "Resource samples kept per process for /api/resources/history (720 at 5s: an hour).",
        low=1, high=100_000),
    Key("monitoring.publicMetrics", "bool", False,
        "Serve /metrics without a credential when authentication is on (for a Prometheus "
        "on a trusted network; the figures name every domain, queue and group)."),
)

# Environment variables that are not settings.
OTHER_ENV = frozenset({"GORTMS_CONFIG"})


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


def env_names(path: str) -> tuple[str, str]:
    """GORTMS_HTTP_CORS_ALLOWEDORIGINS and GORTMS_HTTP_CORS_ALLOWED_ORIGINS for one key."""
    parts = path.split(".")
    return ("GORTMS_" + "_".join(p.upper() for p in parts),
            "GORTMS_" + "_".join(_snake(p).upper() for p in parts))


# --- the frozen tree --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GeneralSettings:
    node_id: str = "node1"
    data_dir: str = "./data"
    log_level: str = "info"


@dataclass(frozen=True, slots=True)
class LoggingSettings:
    format: str = "plain"
    access_log: bool = False


@dataclass(frozen=True, slots=True)
class CorsSettings:
    enabled: bool = False
    allowed_origins: tuple[str, ...] = ("*",)


@dataclass(frozen=True, slots=True)
class JwtSettings:
    secret: str = ""
    expiration_minutes: int = 60


@dataclass(frozen=True, slots=True)
class WebSocketSettings:
    send_buffer_bytes: int = 1_048_576
    max_message_bytes: int = 1_048_576
    ping_interval: float = 20.0
    ping_timeout: float = 20.0
    max_credits: int = 10_000


@dataclass(frozen=True, slots=True)
class HttpSettings:
    enabled: bool = True
    address: str = "127.0.0.1"
    port: int = 8080
    tls: bool = False
    cert_file: str = ""
    key_file: str = ""
    max_body_bytes: int = 1_048_576
    max_header_bytes: int = 16384
    websocket: WebSocketSettings = field(default_factory=WebSocketSettings)
    cors: CorsSettings = field(default_factory=CorsSettings)
    jwt: JwtSettings = field(default_factory=JwtSettings)


@dataclass(frozen=True, slots=True)
class HmacSettings:
    enabled: bool = True
    timestamp_window: float = 300.0
    require_tls: bool = False


@dataclass(frozen=True, slots=True)
class SecuritySettings:
    enable_authentication: bool = False
    allow_anonymous_remote: bool = False
    hmac: HmacSettings = field(default_factory=HmacSettings)


@dataclass(frozen=True, slots=True)
class SpaceLimit:
    """A free-space watermark: a number of bytes, or a percentage of the file system."""

    bytes: int = 0
    percent: float = 0.0

    def of(self, total_bytes: int) -> int:
        """The watermark in bytes on a file system of `total_bytes`."""
        return int(total_bytes * self.percent / 100) if self.percent else self.bytes

    def __str__(self) -> str:
        if self.percent:
            return f"{self.percent:g}%"
        for unit, size in reversed(_SPACE_UNITS):
            if size > 1 and self.bytes and self.bytes % size == 0:
                return f"{self.bytes // size}{unit}"
        return str(self.bytes)


_SPACE_UNITS = (("B", 1), ("KB", 10**3), ("KiB", 2**10), ("MB", 10**6), ("MiB", 2**20),
                ("GB", 10**9), ("GiB", 2**30), ("TB", 10**12), ("TiB", 2**40))
_SPACE_UNIT_SIZES = {unit.lower(): size for unit, size in _SPACE_UNITS}
_SPACE = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*(%|[a-z]*)\s*", re.IGNORECASE)


def parse_space(value: Any) -> SpaceLimit:
    """1073741824, "1GiB", "512 MB" or "5%" -> SpaceLimit; ValueError if it is none of them."""
    if isinstance(value, SpaceLimit):
        return value
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return SpaceLimit(bytes=value)
    if not isinstance(value, str):
        raise ValueError("not a size")
    match = _SPACE.fullmatch(value)
    if match is None:
        raise ValueError("not a size")
    number, unit = float(match.group(1)), match.group(2).lower()
    if unit == "%":
        if number >= 100:
            raise ValueError("a percentage under 100")
        return SpaceLimit(percent=number)
    size = _SPACE_UNIT_SIZES.get(unit or "b")
    if size is None:
        raise ValueError("unknown unit")
    return SpaceLimit(bytes=int(number * size))


@dataclass(frozen=True, slots=True)
class StorageSettings:
    sync: bool = True
    dedup_window: float = 120.0
    recent_cache_bytes: int = 64 * 1024 * 1024
    min_free_bytes: SpaceLimit = field(default_factory=lambda: SpaceLimit(bytes=2**30))


@dataclass(frozen=True, slots=True)
class ShardSettings:
    count: int = 0
    max_waiters: int = 10_000
    max_pending_per_group: int = 10_000


@dataclass(frozen=True, slots=True)
class GatewaySettings:
    workers: int = 1
    request_timeout: float = 10.0
    max_batch_messages: int = 10_000
    max_in_flight: int = 10_000


@dataclass(frozen=True, slots=True)
class SupervisorSettings:
    ping_interval: float = 1.0
    hang_timeout: float = 10.0
    stop_timeout: float = 15.0


@dataclass(frozen=True, slots=True)
class MonitoringSettings:
    interval: float = 5.0
    history_size: int = 720
    public_metrics: bool = False


@dataclass(frozen=True, slots=True)
class Settings:
    general: GeneralSettings = field(default_factory=GeneralSettings)
    logging: LoggingSettings = field(default_factory=LoggingSettings)
    http: HttpSettings = field(default_factory=HttpSettings)
    security: SecuritySettings = field(default_factory=SecuritySettings)
    storage: StorageSettings = field(default_factory=StorageSettings)
    shards: ShardSettings = field(default_factory=ShardSettings)
    gateway: GatewaySettings = field(default_factory=GatewaySettings)
    supervisor: SupervisorSettings = field(default_factory=SupervisorSettings)
    monitoring: MonitoringSettings = field(default_factory=MonitoringSettings)
    # Where the values came from, for the settings API (gateway/settings.py): the config
    # file's absolute path ("" without one) and the keys that GORTMS_* variables set. Not
    # values: two Settings with the same values are equal wherever they came from.
    config_file: str = field(default="", compare=False)
    from_environment: tuple[str, ...] = field(default=(), compare=False)

    @property
    def data_dir(self) -> str:
        return self.general.data_dir

    @property
    def scheme(self) -> str:
        return "https" if self.http.tls else "http"


# --- reading ------------------------------------------------------------------------------------


_REASONS = {
    "bool": "must be true or false",
    "int": "must be an integer from {low} to {high}",
    "duration": "must be a duration like \"500ms\", \"30s\" or \"1h30m\"",
    "list": "must be a list of strings",
    "choice": "must be one of {choices}",
    "str": "must be a string",
    "space": "must be a size like \"1GiB\", \"500MB\" or 1073741824 (bytes), or a share "
             "of the file system like \"5%\"",
}


_TYPES: dict[str, Any] = {}


def _type_of(key: Key) -> Any:
    """The msgspec type a key's value is checked against (gortms.checks, like all input)."""
    found = _TYPES.get(key.path)
    if found is None:
        found = _TYPES[key.path] = _new_type(key)
    return found


def _new_type(key: Key) -> Any:
    if key.kind == "bool":
        return bool
    if key.kind == "int":
        return Annotated[int, msgspec.Meta(ge=key.low, le=key.high)]
    if key.kind == "duration":
        return Duration
    if key.kind == "list":
        return list[str]
    if key.kind == "choice":
        return Literal[key.choices]  # type: ignore[valid-type]
    return str


def _convert(key: Key, value: Any, from_env: bool) -> Any:
    """Check one value against its key; return the typed value or raise ValueError(reason)."""
    if from_env and isinstance(value, str):
        value = _from_env_text(key.kind, value)
    if key.kind == "space":
        try:
            return parse_space(value)
        except ValueError:
            raise ValueError(_REASONS["space"]) from None
    if key.kind == "choice" and isinstance(value, str):
        value = value.lower()
    elif key.kind == "str" and isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)  # YAML reads `nodeId: 1` as a number
    try:
        checked = convert(value, _type_of(key), key.path)
    except GortmsError:
        raise ValueError(_REASONS[key.kind].format(
            low=key.low, high=key.high, choices=", ".join(key.choices))) from None
    return tuple(checked) if key.kind == "list" else checked


def _from_env_text(kind: str, text: str) -> Any:
    lowered = text.strip().lower()
    if kind == "bool":
        truth = {"true": True, "1": True, "yes": True, "on": True,
                 "false": False, "0": False, "no": False, "off": False}
        return truth.get(lowered, text)
    if kind == "int":
        return int(lowered) if re.fullmatch(r"-?\d+", lowered) else text
    if kind == "list":
        if text.strip().startswith("["):
            try:
                return json.loads(text)
            except ValueError:
                return text
        return [part.strip() for part in text.split(",") if part.strip()]
    return text


def _flatten(tree: Mapping[str, Any], prefix: str, out: dict[str, Any]) -> None:
    for name, value in tree.items():
        path = f"{prefix}{name}"
        if _is_section(path) and value is None:
            continue  # a section whose keys are all commented out
        if isinstance(value, dict) and _is_section(path):
            _flatten(value, path + ".", out)
        else:
            out[path] = value


_SECTIONS = {k.path.rsplit(".", 1)[0].lower() for k in KEYS} | {
    k.path.split(".")[0].lower() for k in KEYS}
_BY_LOWER_PATH = {k.path.lower(): k for k in KEYS}


def _is_section(path: str) -> bool:
    return path.lower() in _SECTIONS


def read_config_text(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except FileNotFoundError:
        raise ConfigError([f"config file {path} not found (create one with "
                           f"`gortms --generate-config --config {path}`)"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "it is not UTF-8 text"
        raise ConfigError([f"config file {path} cannot be read: {reason}"]) from exc


def _parse(text: str, path: str) -> dict[str, Any]:
    try:
        tree = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError([f"config file {path} is not valid YAML{where}"]) from exc
    if tree is None:
        return {}
    if not isinstance(tree, dict):
        raise ConfigError([f"config file {path} must hold a mapping of sections"])
    return tree


def key_for(path: str) -> Key | None:
    """The key of a dotted path written in any case ("http.Port" is http.port)."""
    return _BY_LOWER_PATH.get(path.lower())


def read_file_values(path: str) -> dict[str, Any]:
    """A config file's values by dotted path as written, unchecked; ConfigError if the file
    cannot be read or is not YAML."""
    return config_values(read_config_text(path), path)


def config_values(text: str, path: str) -> dict[str, Any]:
    """The values of a config file's text (`path` names it in errors), as read_file_values."""
    given: dict[str, Any] = {}
    _flatten(_parse(text, path), "", given)
    return given


def check_values(given: Mapping[str, Any], problems: list[str]) -> dict[str, Any]:
    """Values as a file gives them (dotted paths in any case) -> checked values by key path;
    each unknown key or bad value adds a line to `problems`."""
    values: dict[str, Any] = {}
    for raw_path, value in given.items():
        key = key_for(raw_path)
        if key is None:
            problems.append(f"{raw_path}: unknown key")
            continue
        _set(values, key, value, False, problems)
    return values


def load_settings(environ: Mapping[str, str], path: str | None = None) -> Settings:
    """File (optional) then GORTMS_* variables -> validated Settings; all problems in one go."""
    problems: list[str] = []
    values = check_values(read_file_values(path) if path else {}, problems)
    from_environment = set()
    env_keys = {name: key for key in KEYS for name in env_names(key.path)}
    for name, value in sorted(environ.items()):
        if not name.startswith("GORTMS_") or name in OTHER_ENV:
            continue
        key = env_keys.get(name)
        if key is None:
            problems.append(f"{name}: unknown environment variable (names look like "
                            f"GORTMS_HTTP_PORT)")
            continue
        _set(values, key, value, True, problems)
        from_environment.add(key.path)
    if problems:
        raise ConfigError(problems)
    return replace(settings_from_values(values),
                   config_file=os.path.abspath(path) if path else "",
                   from_environment=tuple(sorted(from_environment)))


def _set(values: dict[str, Any], key: Key, value: Any, from_env: bool,
         problems: list[str]) -> None:
    try:
        values[key.path] = _convert(key, value, from_env)
    except ValueError as exc:
        problems.append(f"{key.path}: {exc}, got {value!r}")


def settings_from_values(values: Mapping[str, Any]) -> Settings:
    """Build the tree from checked values by dotted path; check what spans keys."""
    tree: dict[str, Any] = {}
    for key in KEYS:
        value = values.get(key.path)
        if value is None:
            value = _convert(key, key.default, False)
        node = tree
        parts = [_snake(p) for p in key.path.split(".")]
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    tree["general"]["data_dir"] = os.path.abspath(tree["general"]["data_dir"])
    settings = _build(Settings, tree)
    _check_whole(settings)
    return settings


def _build(cls: type, tree: Mapping[str, Any]) -> Any:
    kwargs = {}
    for f in fields(cls):
        if f.name not in tree:
            continue  # not a setting (Settings.config_file): its default
        value = tree[f.name]
        kwargs[f.name] = _build(f.default_factory, value) if isinstance(value, dict) else value
    return cls(**kwargs)


def _is_loopback(address: str) -> bool:
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def _check_whole(settings: Settings) -> None:
    problems = []
    if (not _is_loopback(settings.http.address) and not settings.security.enable_authentication
            and not settings.security.allow_anonymous_remote):
        problems.append(f"http.address: {settings.http.address} is not a loopback address and "
                        "authentication is off; turn security.enableAuthentication on, or set "
                        "security.allowAnonymousRemote: true")
    if bool(settings.http.cert_file) != bool(settings.http.key_file):
        problems.append("http.certFile and http.keyFile must be given together")
    if problems:
        raise ConfigError(problems)


# --- writing --------------------------------------------------------------------------------------


def file_value(settings: Settings, key: Key) -> Any:
    """The key's value in `settings` as a config file (or JSON) writes it: "20s", "1GiB"."""
    node: Any = settings
    for part in key.path.split("."):
        node = getattr(node, _snake(part))
    if key.kind == "duration":
        return format_duration(node)
    if key.kind == "list":
        return list(node)
    if key.kind == "space":
        return str(node)
    return node


_SOURCE = "@source"  # where the settings came from; not a key path


def to_json(settings: Settings) -> bytes:
    """Settings as a flat {path: value} JSON document, for child processes."""
    flat: dict[str, Any] = {key.path: file_value(settings, key) for key in KEYS}
    flat[_SOURCE] = {"configFile": settings.config_file,
                     "environment": list(settings.from_environment)}
    return orjson.dumps(flat)


def settings_from_json(data: bytes) -> Settings:
    flat = orjson.loads(data)
    problems: list[str] = []
    values: dict[str, Any] = {}
    for key in KEYS:
        if key.path in flat:
            _set(values, key, flat[key.path], False, problems)
    if problems:
        raise ConfigError(problems)
    source = flat.get(_SOURCE) or {}
    return replace(settings_from_values(values), config_file=source.get("configFile", ""),
                   from_environment=tuple(source.get("environment", ())))


def generate_config(values: Mapping[str, Any] | None = None) -> str:
    """A complete, commented config.yaml holding every key with its default, or with its
    value in `values` (by key path, as a file writes it) where that has one."""
    lines = [
        "# GoRTMS configuration. Every key is optional: a missing key takes the default shown.",
        "# Environment variables override keys: the path in capitals with _ between parts,",
        "# e.g. GORTMS_HTTP_PORT=9090, GORTMS_STORAGE_SYNC=false, GORTMS_GENERAL_DATADIR=/srv",
        "",
    ]
    section: list[str] = []
    for key in KEYS:
        *parents, leaf = key.path.split(".")
        shared = 0
        while shared < min(len(section), len(parents)) and section[shared] == parents[shared]:
            shared += 1
        for depth in range(shared, len(parents)):
            if depth == 0 and lines[-1]:
                lines.append("")
            lines.append("  " * depth + parents[depth] + ":")
        section = parents
        indent = "  " * len(parents)
        lines.append(f"{indent}# {key.doc}")
        value = key.default if values is None else values.get(key.path, key.default)
        lines.append(f"{indent}{leaf}: {json.dumps(value)}")
    return "\n".join(lines) + "\n"



# --- the reference in docs/CONFIG.md --------------------------------------------------------------

REFERENCE_BEGIN = "<!-- keys: generated by `make docs` from gortms/config.py KEYS -->"
REFERENCE_END = "<!-- /keys -->"


def reference_table() -> str:
    """Every key as a Markdown table row: path, type, default, environment variable, meaning."""
    rows = ["| key | type | default | environment | meaning |",
            "| --- | --- | --- | --- | --- |"]
    for key in KEYS:
        default = json.dumps(key.default)
        rows.append(f"| `{key.path}` | {key.kind} | `{default}` | `{env_names(key.path)[0]}` "
                    f"| {key.doc} |")
    return "\n".join(rows) + "\n"


def with_reference(document: str) -> str:
    """`document` (docs/CONFIG.md) with the table between its markers made current."""
    begin = document.index(REFERENCE_BEGIN) + len(REFERENCE_BEGIN)
    end = document.index(REFERENCE_END, begin)
    return document[:begin] + "\n" + reference_table() + document[end:]


if __name__ == "__main__":  # `python -m gortms.config docs/CONFIG.md` (`make docs`)
    import sys

    for doc_path in sys.argv[1:]:
        with open(doc_path, encoding="utf-8") as doc:
            text = doc.read()
        with open(doc_path, "w", encoding="utf-8") as doc:
            doc.write(with_reference(text))
