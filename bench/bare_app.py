"""The reference HTTP endpoint: a bare Starlette app that orjson-parses the body and answers 201.

Served by uvicorn exactly as the gateway is (1 worker, uvloop, httptools, no access log), so
the side-by-side benchmark shows what the framework alone costs per request.
"""

from __future__ import annotations

import socket
import sys

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


async def publish(request: Request) -> Response:
    payload = orjson.loads(await request.body())
    return Response(orjson.dumps({"status": "success", "fields": len(payload)}), 201,
                    media_type="application/json")


app = Starlette(routes=[Route("/api/domains/{domain}/queues/{queue}/messages", publish,
                              methods=["POST"])])


def main() -> None:
    """`python bare_app.py FD`: serve on an open listening socket, as the gateway does."""
    sock = socket.socket(fileno=int(sys.argv[1]))
    config = uvicorn.Config(app, loop="uvloop", http="httptools", lifespan="on",
                            access_log=False, server_header=False)
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
