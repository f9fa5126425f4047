"""A shard: the only owner of a hash-partitioned set of queues and of its own RocksDB."""
