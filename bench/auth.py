"""What authentication costs on the hot path: single publishes with authentication off, with a
user's JWT, and signed with HMAC-SHA256 (issue 9, point 8: each at least 0.9x the figure
with authentication off, in the same run).

    .venv/bin/python bench/auth.py [--rounds 3] [--duration 10] [--clients 4] [--pipeline 8]
        [--commit REV]

Each round runs the three cases in turn (rotating the order from round to round), each on a
fresh broker (2 shards, 1 gateway worker, storage.sync on): `--clients` client processes,
each a keep-alive connection publishing one ~100-byte message per request, `--pipeline`
requests sent at a time (HTTP/1.1 pipelining, so that a few Python clients saturate the
gateway), for `--duration` seconds. The same Python client serves all three (wrk cannot
sign a request); every client prepares (and signs) all its requests before the start, so
its own work per request is the same in all three cases.
Every answer must be 201; the queue must have grown by what was counted. Prints each run
with the gateway's CPU per publish, then medians and the ratios to the case without
authentication.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx2

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (DOMAIN, QUEUE, BenchBroker, CpuMeter, format_cpu, log,  # noqa: E402
                     machine_line, payload, source_tree, wait_for_quiet)
from loads import SyncHttp, run_clients  # noqa: E402

CASES = ("off", "jwt", "hmac")
PATH = f"/api/domains/{DOMAIN}/queues/{QUEUE}/messages"
PASSWORD = "bench password 1"
MAX_RATE_PER_CLIENT = 4000  # requests prepared per client and second of the run


def publisher(host: str, port: int, index: int, duration_s: float, case: str,
              credential: dict[str, str], pipeline: int, *, ready: Any, start: Any
              ) -> tuple[int, float]:
    """(publishes answered 201, seconds). `pipeline` requests are sent at once (HTTP/1.1
    pipelining), then their answers read, so that a few Python clients load the gateway
    to saturation."""
    conn = SyncHttp(host, port)
    token = b"Authorization: Bearer %s\r\n" % credential["token"].encode() \
        if case == "jwt" else b""
    secret = credential.get("secret", "").encode()
    service = credential.get("id", "").encode()
    # Every request is built (and signed) before the start, so what is measured is the
    # broker, not the clients' signing; a signature is valid for the whole window.
    requests = []
    seq = index * 100_000_000
    for _ in range(int(MAX_RATE_PER_CLIENT * duration_s)):
        body = payload(seq).encode()
        seq += 1
        headers = token
        if case == "hmac":
            stamp = datetime.now(timezone.utc).isoformat().encode()
            digest = hmac.new(secret, b"POST\n%s\n%s\n%s" % (PATH.encode(), body, stamp),
                              hashlib.sha256).hexdigest().encode()
            headers = (b"X-Service-ID: %s\r\nX-Timestamp: %s\r\nX-Signature: sha256=%s"
                       b"\r\n" % (service, stamp, digest))
        requests.append(conn.encode("POST", PATH, body, headers))
    ready.release()
    start.wait()
    count = 0
    t0 = time.monotonic()
    deadline = t0 + duration_s
    while time.monotonic() < deadline and count + pipeline <= len(requests):
        conn.sock.sendall(b"".join(requests[count:count + pipeline]))
        for _ in range(pipeline):
            status, data = conn.response()
            if status != 201:
                raise RuntimeError(f"{case}: publish answered {status}: {data[:200]!r}")
            count += 1
    if count + pipeline > len(requests):
        raise RuntimeError(f"{case}: a client ran out of prepared requests ({len(requests)}); "
                           "raise MAX_RATE_PER_CLIENT")
    elapsed = time.monotonic() - t0
    conn.close()
    return count, elapsed


def prepare(broker: BenchBroker, case: str) -> tuple[dict[str, str], dict[str, str]]:
    """Set up the queue; (headers for setup calls, the clients' credential)."""
    if case == "off":
        broker.setup_queue()
        return {}, {}
    with httpx2.Client(base_url=broker.url, timeout=30) as api:
        api.post("/api/auth/bootstrap", json={"username": "bench", "password": PASSWORD}
                 ).raise_for_status()
        login = api.post("/api/auth/login", json={"username": "bench", "password": PASSWORD})
        login.raise_for_status()
        admin = {"Authorization": f"Bearer {login.json()['token']}"}
        broker.setup_queue(headers=admin)
        if case == "jwt":
            return admin, {"token": login.json()["token"]}
        service = api.post("/api/services", headers=admin, json={
            "name": "bench", "permissions": [f"publish:{DOMAIN}"]})
        service.raise_for_status()
        return admin, {"id": service.json()["id"], "secret": service.json()["secret"]}


def run(case: str, clients: int, duration_s: float, src: Path, quiet_wait: float,
        pipeline: int) -> dict[str, Any]:
    extra = {"GORTMS_SECURITY_ENABLEAUTHENTICATION": "true"} if case != "off" else {}
    broker = BenchBroker(src=src, extra_env=extra)
    try:
        headers, credential = prepare(broker, case)
        wait_for_quiet(quiet_wait)
        host, port = broker.url.split("//")[1].split(":")
        meter = CpuMeter(broker.pids())
        meter.start()
        results = run_clients(publisher, [(host, int(port), i, duration_s, case, credential,
                                           pipeline) for i in range(clients)])
        cpu = meter.stop()
        published = sum(r[0] for r in results)
        elapsed = max(r[1] for r in results)
        with httpx2.Client(base_url=broker.url, headers=headers, timeout=30) as api:
            stored = api.get(f"/api/domains/{DOMAIN}/queues/{QUEUE}").json()["lastPosition"]
        if stored != published:
            raise RuntimeError(f"{case}: {published} publishes answered 201, {stored} stored")
        if broker.restarts():
            raise RuntimeError(f"{case}: a broker process restarted")
        rate = published / elapsed
        gateway_us = cpu.get("gateway-0", 0.0) / 100 * elapsed / published * 1e6
        log(f"  {case}: {rate:,.0f} msg/s, gateway {gateway_us:.0f} us CPU per publish; "
            f"CPU {format_cpu(cpu)}")
        return {"case": case, "rate": rate, "gateway_us": gateway_us, "cpu": cpu}
    finally:
        broker.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--pipeline", type=int, default=8,
                        help="requests each client sends before reading their answers")
    parser.add_argument("--quiet-wait", type=float, default=30.0)
    parser.add_argument("--commit", default=None)
    parser.add_argument("--json", default=None)
    parser.add_argument("--cases", default=",".join(CASES),
                        help="which of off,jwt,hmac (default all)")
    args = parser.parse_args()
    src, code = source_tree(args.commit)
    log(machine_line())
    log(f"code: {code}; storage.sync on, 2 shards, 1 gateway worker; {args.rounds} rounds, "
        f"{args.clients} clients x {args.pipeline} pipelined, {args.duration:g}s per load")
    runs: list[dict[str, Any]] = []
    cases = tuple(c for c in CASES if c in args.cases.split(","))
    for round_no in range(args.rounds):
        log(f"round {round_no + 1}/{args.rounds}")
        shift = round_no % len(cases)
        order = cases[shift:] + cases[:shift]
        for case in order:
            runs.append(run(case, args.clients, args.duration, src, args.quiet_wait,
                            args.pipeline))
    medians = {case: statistics.median(r["rate"] for r in runs if r["case"] == case)
               for case in cases}
    base = medians.get("off")
    log("medians:")
    for case in cases:
        gateway = statistics.median(r["gateway_us"] for r in runs if r["case"] == case)
        ratio = f" ({medians[case] / base:.2f}x off)" if base else ""
        log(f"  {case}: {medians[case]:,.0f} msg/s{ratio}, gateway {gateway:.0f} us CPU per "
            "publish")
    if args.json:
        Path(args.json).write_text(json.dumps({"runs": runs, "medians": medians}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
