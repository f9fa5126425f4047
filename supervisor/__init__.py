"""The supervisor: starts, watches, restarts and stops the shards and the gateway workers."""
