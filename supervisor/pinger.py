"""Pinger: asks each shard "are you serving?" through its own request socket.

A ping is answered by the shard's event loop like any request, so a shard whose loop is
stuck stops answering and counts as hung, even though its process is alive.
"""

from __future__ import annotations

import time

import zmq

from gortms.errors import GortmsError
from gortms.protocol import (Ping, Pong, ProtocolError, Request, decode_replies,
                             encode_requests, reply_value)


class Pinger:
    def __init__(self, endpoints: list[str], deadline_s: float) -> None:
        self.context = zmq.Context.instance()
        self.deadline_s = deadline_s
        self.sockets = []
        for endpoint in endpoints:
            sock = self.context.socket(zmq.DEALER)
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.RECONNECT_IVL, 50)
            sock.setsockopt(zmq.SNDHWM, 16)
            sock.connect(endpoint)
            self.sockets.append(sock)
        self._seq = 0

    def ping(self, index: int) -> None:
        self.tell(index, Ping())

    def tell(self, index: int, request: Request) -> None:
        """Send `request` to the shard; its answer, unless a pong, is dropped unread."""
        self._seq += 1
        deadline_ms = int((time.time() + self.deadline_s) * 1000)
        try:
            self.sockets[index].send(encode_requests([(self._seq, deadline_ms, request)]),
                                     zmq.NOBLOCK)
        except zmq.Again:
            pass  # not connected (yet): no answer, which is what counts

    def answered(self, index: int) -> bool:
        """Drain the shard's answers; True if any ping was answered."""
        sock = self.sockets[index]
        answered = False
        while True:
            try:
                frame = sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                return answered
            try:
                replies = decode_replies(frame)
            except ProtocolError:
                continue
            for _, status, body in replies:  # a shard answers a turn's requests in one frame
                try:
                    reply_value(status, body, Pong)
                    answered = True
                except (GortmsError, ProtocolError):
                    pass  # an answer that is not a pong does not count

    def close(self) -> None:
        for sock in self.sockets:
            sock.close(linger=0)
