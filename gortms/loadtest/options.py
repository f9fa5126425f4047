"""`gortms bench`'s command line: parsed and checked once into a frozen BenchOptions."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

MAX_BODY_BYTES = 1024 * 1024  # the broker's default http.maxBodyBytes
MAX_BATCH = 10_000  # the broker's default gateway.maxBatchMessages
MAX_FETCH = 1000
MAX_DURATION_S = 86_400.0
MESSAGES_ONLY_CAP_S = 3600.0  # --messages without --duration still ends by then


@dataclass(frozen=True, slots=True)
class BenchOptions:
    url: str
    token: str | None
    service_id: str | None
    service_secret: str | None
    domain: str | None
    queue: str | None
    keep: bool
    publishers: int
    consumers: int
    size: int
    rate: float  # messages per second, all publishers together; 0: as fast as they can
    duration_s: float
    messages: int | None
    batch: int
    fetch: int
    ack: bool
    transport: str
    json_path: str | None
    drain_s: float


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="gortms bench", description="Load a running broker (only the one at --url) and "
        "report throughput and latency percentiles (docs/CLIENT.md, gortms bench).")
    p.add_argument("--url", default="http://127.0.0.1:8080",
                   help="the broker (default %(default)s)")
    p.add_argument("--token", help="a user's token (POST /api/auth/login)")
    p.add_argument("--service-id", help="a service account's id (requests signed)")
    p.add_argument("--service-secret", help="its secret")
    p.add_argument("--domain", help="an existing domain (with --queue); default: a new "
                   "bench-<id> domain and queue, deleted after the run")
    p.add_argument("--queue", help="an existing queue of --domain")
    p.add_argument("--keep", action="store_true",
                   help="keep what the run created (domain and queue, or its group)")
    p.add_argument("--publishers", type=int, default=1, help="concurrent publishers (1)")
    p.add_argument("--consumers", type=int, default=1, help="concurrent consumers of one "
                   "group (1; 0: publish only)")
    p.add_argument("--size", type=int, default=256, help="payload bytes per message (256)")
    p.add_argument("--rate", type=float, default=0.0,
                   help="messages per second, all publishers together (0: no limit)")
    p.add_argument("--duration", type=float, default=None,
                   help="seconds of publishing (10; with --messages: until they are sent)")
    p.add_argument("--messages", type=int, default=None, help="stop after publishing N")
    p.add_argument("--batch", type=int, default=1, help="messages per publish request "
                   "(HTTP: the batch route past 1; WebSocket: frames pipelined) (1)")
    p.add_argument("--fetch", type=int, default=100,
                   help="messages per fetch (HTTP) or credits (WebSocket) per consumer (100)")
    p.add_argument("--ack", action=argparse.BooleanOptionalAction, default=True,
                   help="ack every delivery (default); --no-ack: an auto-ack group")
    p.add_argument("--transport", choices=("http", "ws"), default="http",
                   help="publish and consume over HTTP (default) or WebSocket")
    p.add_argument("--json", dest="json_path", metavar="PATH", help="write the results as JSON")
    p.add_argument("--drain", type=float, default=10.0, help="seconds consumers go on after "
                   "publishing stops, to receive what is still on its way (10)")
    return p


def parse(argv: list[str]) -> BenchOptions:
    """The options, or argparse's usage error (exit 2) naming what is wrong."""
    p = parser()
    args = p.parse_args(argv)
    problem = _problem(args)
    if problem:
        p.error(problem)
    duration = args.duration if args.duration is not None else \
        (MESSAGES_ONLY_CAP_S if args.messages is not None else 10.0)
    return BenchOptions(
        url=args.url, token=args.token, service_id=args.service_id,
        service_secret=args.service_secret, domain=args.domain, queue=args.queue,
        keep=args.keep, publishers=args.publishers, consumers=args.consumers, size=args.size,
        rate=args.rate, duration_s=duration, messages=args.messages, batch=args.batch,
        fetch=args.fetch, ack=args.ack, transport=args.transport, json_path=args.json_path,
        drain_s=args.drain)


def _problem(args: argparse.Namespace) -> str | None:
    checks = [
        (args.publishers < 1, "--publishers must be at least 1"),
        (args.consumers < 0, "--consumers must be 0 or more"),
        (not 1 <= args.size <= MAX_BODY_BYTES, f"--size must be from 1 to {MAX_BODY_BYTES}"),
        (args.rate < 0, "--rate must be 0 (no limit) or more"),
        (args.duration is not None and not 0 < args.duration <= MAX_DURATION_S,
         f"--duration must be more than 0 and at most {MAX_DURATION_S:g} seconds"),
        (args.messages is not None and args.messages < 1, "--messages must be at least 1"),
        (not 1 <= args.batch <= MAX_BATCH, f"--batch must be from 1 to {MAX_BATCH}"),
        (args.transport == "http" and args.batch > 1 and
         args.batch * (args.size + 64) > MAX_BODY_BYTES,
         "--batch x --size is over the broker's 1 MiB request body limit"),
        (not 1 <= args.fetch <= MAX_FETCH, f"--fetch must be from 1 to {MAX_FETCH}"),
        (not 0 <= args.drain <= MAX_DURATION_S, "--drain must be 0 or more seconds"),
        ((args.domain is None) != (args.queue is None),
         "give --domain and --queue together (or neither: a new domain and queue)"),
        (args.token is not None and args.service_id is not None,
         "give --token or --service-id/--service-secret, not both"),
        ((args.service_id is None) != (args.service_secret is None),
         "--service-id and --service-secret go together"),
    ]
    return next((message for failed, message in checks if failed), None)
