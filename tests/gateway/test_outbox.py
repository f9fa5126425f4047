"""The frames gateway/outbox.py writes by itself must be what a WebSocket client parses."""

from __future__ import annotations

import pytest
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from gateway.outbox import text_frame


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536, 200_000])
def test_a_server_text_frame_parses_as_one_final_unmasked_text_frame(size: int) -> None:
    payload = ("é" * (size // 2) + "x" * (size % 2)).encode()
    reader = StreamReader()
    reader.feed_data(text_frame(payload))
    reader.feed_eof()
    parser = Frame.parse(reader.read_exact, mask=False)
    try:
        next(parser)
        while True:
            next(parser)
    except StopIteration as done:
        frame = done.value
    assert frame.opcode is Opcode.TEXT and frame.fin and frame.data == payload
