"""shard/recent.py: each queue's tail of recent records, and the budget the tails share."""

from __future__ import annotations

from shard.recent import RECORD_OVERHEAD, Recent, Tail


def records(first: int, count: int, size: int = 10) -> list[bytes]:
    return [b"%0*d" % (size, first + i) for i in range(count)]


def test_a_tail_holds_a_run_of_positions_and_slices_it() -> None:
    tail = Tail()
    tail.extend(1, records(1, 5))
    tail.extend(6, records(6, 5))
    assert (tail.first, tail.end) == (1, 11)
    assert tail.slice(3, 6) == records(3, 3)
    assert tail.get(10) == records(10, 1)[0]
    assert tail.slice(8, 12) is None and tail.get(11) is None and tail.get(0) is None
    assert tail.bytes == 10 * (10 + RECORD_OVERHEAD)


def test_a_gap_starts_the_tail_again() -> None:
    tail = Tail()
    tail.extend(1, records(1, 5))
    tail.extend(9, records(9, 2))
    assert (tail.first, tail.end) == (9, 11)
    assert tail.slice(1, 3) is None
    assert tail.bytes == 2 * (10 + RECORD_OVERHEAD)


def test_trim_drops_the_oldest_first() -> None:
    tail = Tail()
    tail.extend(1, records(1, 10))
    freed = tail.trim(keep_bytes=3 * (10 + RECORD_OVERHEAD))
    assert freed == 7 * (10 + RECORD_OVERHEAD)
    assert (tail.first, tail.end) == (8, 11)
    assert tail.slice(8, 11) == records(8, 3)


def test_a_discarded_record_reads_as_a_hole() -> None:
    tail = Tail()
    tail.extend(1, records(1, 3))
    assert tail.discard(2) == 10
    assert tail.slice(1, 4) == [records(1, 1)[0], None, records(3, 1)[0]]
    assert tail.discard(2) == 0


def test_the_shared_budget_is_never_exceeded() -> None:
    recent = Recent(budget=100 * (10 + RECORD_OVERHEAD))
    for qid in (1, 2, 3):
        recent.tail(qid)
    last = {1: 0, 2: 0, 3: 0}
    for i in range(300):
        qid = 1 + i % 3
        recent.add(qid, last[qid] + 1, records(last[qid] + 1, 7))
        last[qid] += 7
        assert recent.bytes <= recent.budget
        assert recent.bytes == sum(t.bytes for t in recent.tails.values())
    for qid, tail in recent.tails.items():
        assert tail.end == last[qid] + 1  # what is kept is the newest
        assert tail.records  # every queue keeps some


def test_a_queue_that_writes_alone_may_use_the_whole_budget() -> None:
    recent = Recent(budget=50 * (10 + RECORD_OVERHEAD))
    recent.add(1, 1, records(1, 10))
    recent.add(2, 1, records(1, 1000))
    assert recent.bytes <= recent.budget
    assert len(recent.tails[2].records) > 30


def test_a_zero_budget_keeps_nothing_and_dropping_frees() -> None:
    none = Recent(0)
    none.add(1, 1, records(1, 5))
    assert none.bytes == 0
    recent = Recent(1 << 20)
    recent.add(1, 1, records(1, 5))
    recent.drop(1)
    assert recent.bytes == 0 and 1 not in recent.tails
