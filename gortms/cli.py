"""The `gortms` command.

    gortms [--config PATH]                 run the broker (same as `gortms serve`)
    gortms --generate-config [--config P]  write a complete, commented config.yaml
    gortms --version
    gortms shards [--json]                 each shard: pid, state, queues, ... (asked, or read
                                           read-only from a stopped broker's data dir)
    gortms inspect DOMAIN/QUEUE [--json]   a queue's positions, groups with lag and pending,
                                           dead letters and disk use, read-only
    gortms dump DOMAIN/QUEUE [--from N] [--limit M]
                                           a queue's stored messages as JSON lines, read-only
    gortms check [--json]                  verify every shard's database, read-only
    gortms bench [--url URL] [options]     load a running broker, report throughput and
                                           latency (its own options: gortms bench --help)

Commands that run the broker or open its data are loaded by module name (like the
supervisor starts its children), so `gortms` depends on no other package of this project.

Exit codes: 0 success, 1 failure, 2 bad configuration or usage (including a data dir this
process cannot write: gortms/access.py).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from gortms import __version__
from gortms.config import Settings, generate_config, load_settings
from gortms.errors import ConfigError
from gortms.logs import configure_logging

EXIT_FAILURE = 1
EXIT_CONFIG = 2

COMMANDS = {
    "serve": "supervisor.main",
    "shards": "supervisor.status",
    "inspect": "shard.inspect",
    "dump": "shard.dump",
    "check": "shard.check",
}
# Commands with options of their own: they parse the rest of the line themselves, and need
# no broker settings (a client of the broker at its --url).
OWN_OPTIONS = {"bench": "gortms.loadtest"}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gortms", description="GoRTMS message broker")
    parser.add_argument("--config", metavar="PATH",
                        help="config file (default: embedded defaults; env GORTMS_CONFIG)")
    parser.add_argument("--generate-config", action="store_true",
                        help="write a complete, commented config file and exit")
    parser.add_argument("--force", action="store_true",
                        help="with --generate-config: overwrite an existing file")
    parser.add_argument("--version", action="version", version=f"gortms {__version__}")
    parser.add_argument("command", nargs="?", default="serve", choices=sorted(COMMANDS),
                        help="serve (default), shards, inspect, dump, check; also bench "
                             "(gortms bench --help)")
    parser.add_argument("target", nargs="?", help="inspect, dump: DOMAIN/QUEUE")
    parser.add_argument("--json", action="store_true",
                        help="shards, inspect, check: print JSON (dump always prints JSON lines)")
    # Validated by `dump` itself (integers >= 1), for a one-line message.
    parser.add_argument("--from", dest="from_", metavar="N",
                        help="dump: from position N (default: the first retained)")
    parser.add_argument("--limit", metavar="M", help="dump: at most M messages (default: all)")
    return parser


def _generate(path: str, force: bool) -> int:
    if os.path.exists(path) and not force:
        print(f"gortms: {path} exists; pass --force to overwrite it", file=sys.stderr)
        return EXIT_FAILURE
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(generate_config())
    print(f"wrote {path}")
    return 0


def _config_failed(exc: ConfigError) -> int:
    for problem in exc.problems:
        print(f"gortms: config: {problem}", file=sys.stderr)
    return EXIT_CONFIG


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in OWN_OPTIONS:
        try:
            return int(importlib.import_module(OWN_OPTIONS[argv[0]]).main(argv[1:]) or 0)
        except KeyboardInterrupt:
            return EXIT_FAILURE
    args = _parser().parse_args(argv)
    path = args.config or os.environ.get("GORTMS_CONFIG")
    if args.generate_config:
        return _generate(path or "config.yaml", args.force)
    try:
        settings: Settings = load_settings(os.environ, path)
        configure_logging(settings.general.log_level, "supervisor" if args.command == "serve"
                          else "gortms", settings.logging.format)
        command = importlib.import_module(COMMANDS[args.command])
        return int(command.main(settings, args) or 0)
    except ConfigError as exc:
        return _config_failed(exc)
    except KeyboardInterrupt:
        return EXIT_FAILURE
    except BrokenPipeError:
        # The reader went away (`gortms shards --json | head`): stop quietly, as other tools
        # do; stdout goes to /dev/null so the interpreter's own flush at exit fails no more.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
