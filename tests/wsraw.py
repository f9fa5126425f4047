"""A raw WebSocket client on a plain socket, for what a library client will not do: stop
reading (a slow observer), never answer pings (a dead peer), look at every frame."""

from __future__ import annotations

import base64
import os
import socket
import time
from urllib.parse import urlsplit

import orjson

TEXT, CLOSE, PING, PONG = 0x1, 0x8, 0x9, 0xA


class RawSocket:
    def __init__(self, url: str, path: str, rcvbuf: int | None = None) -> None:
        parts = urlsplit(url)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:  # before connect, so the window is small from the start
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.connect((parts.hostname, parts.port))
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET {path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                           "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                           f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
                           ).encode())
        self.buffer = b""
        while b"\r\n\r\n" not in self.buffer:
            self._more(10.0)
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        if not head.startswith(b"HTTP/1.1 101"):
            raise RuntimeError(f"no upgrade: {head!r}")

    def _more(self, timeout_s: float) -> bool:
        self.sock.settimeout(timeout_s)
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            return False
        self.buffer += chunk
        return True

    def frame(self, timeout_s: float = 10.0) -> tuple[int, bytes] | None:
        """The next (opcode, payload); None once the server closed the TCP connection."""
        deadline = time.monotonic() + timeout_s
        while True:
            parsed = self._parse()
            if parsed is not None:
                return parsed
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no frame")
            if not self._more(left):
                return None

    def _parse(self) -> tuple[int, bytes] | None:
        data = self.buffer
        if len(data) < 2:
            return None
        opcode, size, offset = data[0] & 0x0F, data[1] & 0x7F, 2
        if size == 126:
            if len(data) < 4:
                return None
            size, offset = int.from_bytes(data[2:4], "big"), 4
        elif size == 127:
            if len(data) < 10:
                return None
            size, offset = int.from_bytes(data[2:10], "big"), 10
        if len(data) < offset + size:
            return None
        self.buffer = data[offset + size:]
        return opcode, data[offset:offset + size]

    def json_frames(self, timeout_s: float = 10.0) -> list[dict]:
        """Every text frame until the server closes the connection (pings skipped)."""
        out = []
        while (got := self.frame(timeout_s)) is not None:
            opcode, payload = got
            if opcode == TEXT:
                out.append(orjson.loads(payload))
            elif opcode == CLOSE:
                out.append({"close": int.from_bytes(payload[:2], "big"),
                            "reason": payload[2:].decode()})
        return out

    def send_text(self, payload: bytes) -> None:
        mask = os.urandom(4)
        size = len(payload)
        head = bytes([0x81, 0x80 | size]) if size < 126 else \
            bytes([0x81, 0x80 | 126]) + size.to_bytes(2, "big")
        self.sock.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def close(self) -> None:
        self.sock.close()
