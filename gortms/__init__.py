"""GoRTMS: a durable, sharded, HTTP/WebSocket-first message broker."""

__version__ = "0.1.0"
