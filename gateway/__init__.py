"""The stateless gateway: HTTP/WebSocket in front, the shards behind, caches rebuilt from events."""
