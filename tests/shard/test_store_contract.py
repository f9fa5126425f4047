"""The Store port (shard/store.py), once, against MemoryStore and RocksStore."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest

from shard.memory import MemoryStore
from shard.rocks import RocksStore, StorageError
from shard.store import message_prefix, pos_bytes, prefix_end


@pytest.fixture(params=["memory", "rocks"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    opened = MemoryStore() if request.param == "memory" else RocksStore(str(tmp_path / "db"))
    yield opened
    opened.close()


def _put(store: Any, items: dict[bytes, bytes], sync: bool = False) -> None:
    batch = store.batch()
    for key, value in items.items():
        batch.put(key, value)
    store.write(batch, sync=sync)


def _all(store: Any) -> list[tuple[bytes, bytes]]:
    return list(store.scan(b"", b"\xff" * 8))


# --- batches ------------------------------------------------------------------------------------


def test_a_batch_counts_its_operations(store: Any) -> None:
    batch = store.batch()
    assert batch.len() == 0
    batch.put(b"a", b"1")
    batch.delete(b"b")
    batch.delete_range(b"c", b"d")
    assert batch.len() == 3


def test_nothing_is_visible_before_the_batch_is_written(store: Any) -> None:
    batch = store.batch()
    batch.put(b"a", b"1")
    assert store.get(b"a") is None
    store.write(batch, sync=False)
    assert store.get(b"a") == b"1"


def test_a_batch_applies_its_operations_in_order(store: Any) -> None:
    _put(store, {b"k1": b"old", b"k2": b"x", b"k3": b"y", b"k4": b"z"})
    batch = store.batch()
    batch.put(b"k1", b"new")
    batch.put(b"k5", b"first")
    batch.delete(b"k5")
    batch.put(b"k6", b"a")
    batch.put(b"k6", b"b")
    batch.delete_range(b"k2", b"k4")
    batch.put(b"k3", b"back")
    batch.delete(b"missing")
    store.write(batch, sync=False)
    assert _all(store) == [(b"k1", b"new"), (b"k3", b"back"), (b"k4", b"z"), (b"k6", b"b")]


def test_a_batch_is_applied_as_a_whole(store: Any) -> None:
    _put(store, {b"m%03d" % i: b"v" for i in range(100)})
    batch = store.batch()
    batch.delete_range(b"m", b"n")
    for i in range(50):
        batch.put(b"n%03d" % i, b"w")
    store.write(batch, sync=True)
    assert [k for k, _ in _all(store)] == [b"n%03d" % i for i in range(50)]


def test_delete_range_is_half_open(store: Any) -> None:
    _put(store, {b"a": b"1", b"b": b"2", b"b\x00": b"3", b"c": b"4", b"c\x00": b"5"})
    batch = store.batch()
    batch.delete_range(b"b", b"c")
    store.write(batch, sync=False)
    assert [k for k, _ in _all(store)] == [b"a", b"c", b"c\x00"]


def test_an_empty_batch_changes_nothing(store: Any) -> None:
    _put(store, {b"a": b"1"})
    store.write(store.batch(), sync=True)
    assert _all(store) == [(b"a", b"1")]


@pytest.mark.parametrize(("sync", "wal"), [(True, True), (False, True), (False, False)])
def test_every_write_mode_makes_the_batch_readable(store: Any, sync: bool, wal: bool) -> None:
    batch = store.batch()
    batch.put(b"k", b"v")
    store.write(batch, sync=sync, wal=wal)
    assert store.get(b"k") == b"v"


def test_binary_keys_and_values_are_kept_exactly(store: Any) -> None:
    items = {bytes([i, 0, 255 - i]): bytes(range(i, 256)) for i in range(0, 256, 17)}
    items[b"\x00"] = b""
    _put(store, items)
    assert dict(_all(store)) == items
    assert store.get(b"\x00") == b""


# --- reads --------------------------------------------------------------------------------------


def test_get_of_a_missing_key_is_none(store: Any) -> None:
    assert store.get(b"nope") is None


def test_get_many_answers_in_the_order_asked_with_none_for_missing(store: Any) -> None:
    _put(store, {b"a": b"1", b"b": b"2", b"c": b"3"})
    assert store.get_many([b"c", b"x", b"a", b"a"]) == [b"3", None, b"1", b"1"]
    assert store.get_many([]) == []


def test_scan_is_half_open_and_in_byte_order(store: Any) -> None:
    keys = [b"b", b"a", b"ab", b"a\xff", b"b\x00", b"\x01", b"c", b"B", b"a\x00"]
    _put(store, {k: k.upper() for k in keys})
    assert [k for k, _ in store.scan(b"a", b"b")] == [b"a", b"a\x00", b"ab", b"a\xff"]
    assert [k for k, _ in store.scan(b"a\x00", b"b\x00")] == [b"a\x00", b"ab", b"a\xff", b"b"]
    assert list(store.scan(b"ab", b"ab")) == []
    assert list(store.scan(b"x", b"z")) == []
    assert [k for k, _ in _all(store)] == sorted(keys)
    assert dict(store.scan(b"a", b"b"))[b"ab"] == b"AB"


def test_scan_orders_big_endian_positions_numerically(store: Any) -> None:
    prefix = message_prefix(7)
    positions = [1, 255, 256, 65_536, 2, 10**12, 300]
    _put(store, {prefix + pos_bytes(p): b"%d" % p for p in positions})
    _put(store, {message_prefix(8) + pos_bytes(1): b"other queue"})
    scanned = [int.from_bytes(k[-8:], "big") for k, _ in store.scan(prefix, prefix_end(prefix))]
    assert scanned == sorted(positions)


def test_last_key_is_the_greatest_key_below_the_end(store: Any) -> None:
    _put(store, {b"a": b"", b"b": b"", b"b\x01": b"", b"c": b"", b"d": b""})
    assert store.last_key(b"a", b"c") == b"b\x01"
    assert store.last_key(b"a", b"c\x00") == b"c"
    assert store.last_key(b"a", b"zz") == b"d"
    assert store.last_key(b"b", b"b\x00") == b"b"
    assert store.last_key(b"a\x00", b"b") is None
    assert store.last_key(b"e", b"f") is None
    assert store.last_key(b"c", b"c") is None


def test_last_key_of_an_empty_store_is_none(store: Any) -> None:
    assert store.last_key(b"", b"\xff") is None


def test_last_key_finds_the_newest_position_of_a_queue(store: Any) -> None:
    prefix = message_prefix(3)
    _put(store, {prefix + pos_bytes(p): b"" for p in (1, 2, 900)})
    _put(store, {message_prefix(4) + pos_bytes(1): b""})
    last = store.last_key(prefix, prefix_end(prefix))
    assert last is not None and int.from_bytes(last[-8:], "big") == 900


def test_stats_count_keys(store: Any) -> None:
    _put(store, {b"k%d" % i: b"v" for i in range(10)})
    stats = store.stats()
    assert set(stats) >= {"keys", "diskBytes"}
    assert stats["keys"] == 10  # an estimate for RocksDB, exact for a fresh memtable


# --- prefix_end ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("prefix", "end"), [
    (b"a", b"b"), (b"M\x00\x00\x00\x01", b"M\x00\x00\x00\x02"), (b"a\xff", b"b"),
    (b"a\xff\xff", b"b"), (b"\x00", b"\x01"),
    (b"K\x00\x00\x00\x01g\xfe", b"K\x00\x00\x00\x01g\xff"),
])
def test_prefix_end_is_the_first_key_after_the_prefix(prefix: bytes, end: bytes) -> None:
    assert prefix_end(prefix) == end


@pytest.mark.parametrize("prefix", [b"a", b"a\xff", b"M\x00\x00\x00\x09", b"\x01\xff\x00"])
def test_every_key_with_the_prefix_sorts_before_prefix_end(prefix: bytes) -> None:
    end = prefix_end(prefix)
    for tail in (b"", b"\x00", b"\xff", b"\xff" * 20, b"zzz"):
        assert prefix <= prefix + tail < end
    assert not prefix_end(prefix).startswith(prefix)


# --- RocksStore on disk -------------------------------------------------------------------------


def test_rocks_store_keeps_data_after_close_and_reopen(tmp_path: Path) -> None:
    path = str(tmp_path / "db")
    store = RocksStore(path)
    _put(store, {b"a": b"1", b"b": b"2"}, sync=True)
    batch = store.batch()
    batch.delete(b"b")
    batch.put(b"c", b"3")
    store.write(batch, sync=False)
    store.close()
    reopened = RocksStore(path)
    try:
        assert _all(reopened) == [(b"a", b"1"), (b"c", b"3")]
    finally:
        reopened.close()


def test_rocks_store_keeps_writes_without_wal_across_a_clean_close(tmp_path: Path) -> None:
    path = str(tmp_path / "db")
    store = RocksStore(path)
    batch = store.batch()
    batch.put(b"nowal", b"kept")
    store.write(batch, sync=False, wal=False)
    store.close()
    reopened = RocksStore(path)
    try:
        assert reopened.get(b"nowal") == b"kept"
    finally:
        reopened.close()


def test_rocks_store_opened_read_only_reads_an_existing_database(tmp_path: Path) -> None:
    path = str(tmp_path / "db")
    store = RocksStore(path)
    _put(store, {b"a": b"1", b"b": b"2"}, sync=True)
    store.close()
    reader = RocksStore(path, read_only=True)
    assert _all(reader) == [(b"a", b"1"), (b"b", b"2")]
    assert reader.get_many([b"b", b"z"]) == [b"2", None]
    assert reader.last_key(b"a", b"z") == b"b"


def test_rocks_store_opened_read_only_closes_cleanly(tmp_path: Path) -> None:
    # `gortms inspect`/`dump` read a stopped broker's data dir this way and then close it.
    path = str(tmp_path / "db")
    store = RocksStore(path)
    _put(store, {b"a": b"1"}, sync=True)
    store.close()
    reader = RocksStore(path, read_only=True)
    assert reader.get(b"a") == b"1"
    reader.close()
    assert RocksStore(path, read_only=True).get(b"a") == b"1"


def test_rocks_store_opened_read_only_refuses_writes_with_storage_error(tmp_path: Path) -> None:
    path = str(tmp_path / "db")
    RocksStore(path).close()
    reader = RocksStore(path, read_only=True)
    batch = reader.batch()
    batch.put(b"a", b"1")
    with pytest.raises(StorageError):
        reader.write(batch, sync=True)
    assert reader.get(b"a") is None


def test_rocks_store_read_only_on_a_missing_database_fails_and_creates_nothing(
        tmp_path: Path) -> None:
    path = tmp_path / "missing"
    with pytest.raises(StorageError):
        RocksStore(str(path), read_only=True)
    assert not path.exists()


def test_rocks_store_stats_report_keys_and_disk_use(tmp_path: Path) -> None:
    store = RocksStore(str(tmp_path / "db"))
    _put(store, {b"k%d" % i: b"v" * 100 for i in range(100)}, sync=True)
    stats = store.stats()
    store.close()
    assert stats["diskBytes"] > 0


# --- floor_scan -------------------------------------------------------------------------------


def _put_all(store: Any, keys: list[bytes]) -> None:
    batch = store.batch()
    for key in keys:
        batch.put(key, key.upper())
    store.write(batch, sync=False)


@pytest.mark.parametrize(("key", "expected"), [
    (b"p3", [b"p2", b"p5"]),  # starts at the greatest key at or below
    (b"p2", [b"p2", b"p5"]),
    (b"p1", [b"p2", b"p5"]),  # none at or below within the prefix: the first after it
    (b"p9", [b"p5"]),
])
def test_floor_scan_starts_at_the_greatest_key_at_or_below(store: Any, key: bytes,
                                                           expected: list[bytes]) -> None:
    _put_all(store, [b"a1", b"p2", b"p5", b"q1"])
    assert [k for k, _ in store.floor_scan(b"p", key, b"q")] == expected


def test_floor_scan_stays_within_begin_and_end(store: Any) -> None:
    _put_all(store, [b"a9", b"p2", b"p5", b"p7"])
    assert [k for k, _ in store.floor_scan(b"p", b"p6", b"p7")] == [b"p5"]
    assert list(store.floor_scan(b"x", b"x5", b"y")) == []
    assert [v for _, v in store.floor_scan(b"p", b"p2", b"p3")] == [b"P2"]


# --- RocksStore's message column family -----------------------------------------------------


def _raw(path: str, families: dict | None = None) -> Any:
    from rocksdict import Options, Rdict
    options = Options(raw_mode=True)
    options.create_if_missing(True)
    return Rdict(path, options, column_families=families)


def test_message_keys_live_in_their_own_column_family(tmp_path: Path) -> None:
    from rocksdict import Options, Rdict
    path = str(tmp_path / "db")
    store = RocksStore(path)
    _put(store, {b"K1": b"cursor", b"M\x00\x00\x00\x01" + b"\x00" * 8: b"chunk", b"Z": b"z"})
    store.close()
    assert sorted(Rdict.list_cf(path, Options(raw_mode=True))) == ["default", "messages"]
    raw = _raw(path, {"messages": Options(raw_mode=True)})
    try:
        assert [k for k, _ in raw.items()] == [b"K1", b"Z"]
        assert [k for k, _ in raw.get_column_family("messages").items()] == [
            b"M\x00\x00\x00\x01" + b"\x00" * 8]
    finally:
        raw.close()


def test_a_data_dir_from_before_the_split_has_its_messages_moved_and_all_reads_alike(
        tmp_path: Path) -> None:
    path = str(tmp_path / "db")
    old = _raw(path)
    for i in range(2500):  # more than one migration batch
        old[message_prefix(1) + pos_bytes(i + 1)] = b"record %d" % i
    old[b"K\x00\x00\x00\x01g"] = b"cursor"
    old.close()
    looked = RocksStore(path, read_only=True)  # looking does not change it
    try:
        assert looked.get(message_prefix(1) + pos_bytes(7)) == b"record 6"
    finally:
        looked.close()
    store = RocksStore(path)
    try:
        assert store.get(message_prefix(1) + pos_bytes(2500)) == b"record 2499"
        assert len(list(store.scan(message_prefix(1), prefix_end(message_prefix(1))))) == 2500
        assert store.get(b"K\x00\x00\x00\x01g") == b"cursor"
        assert [k for k, _ in store._iterate(store._db, b"M", b"N")] == []  # moved
    finally:
        store.close()


def test_a_range_delete_across_the_families_deletes_in_both(tmp_path: Path) -> None:
    store = RocksStore(str(tmp_path / "db"))
    try:
        _put(store, {b"L1": b"l", b"M1": b"m", b"N1": b"n", b"Z1": b"z"})
        batch = store.batch()
        batch.delete_range(b"L", b"O")
        store.write(batch, sync=False)
        assert _all(store) == [(b"Z1", b"z")]
    finally:
        store.close()
