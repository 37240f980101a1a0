"""The follower's handling of pushed bytes (server/replication/fetcher.py `_skip_held_batches`).

Goal: a push that overlaps what the follower holds is cut at the first batch it lacks without
copying the bytes (a view of the pushed buffer goes to `append_as_follower`), and a batch that
straddles the follower's log end is reported, not appended. Method: three batches of known offsets.
"""

from __future__ import annotations

from freshet.server.replication.fetcher import _skip_held_batches
from freshet.storage.record_batch import Record, encode_batch


def pushed() -> tuple[bytes, list[int]]:
    """Batches at offsets [0, 2), [2, 5), [5, 6) and where each starts in the bytes."""
    batches = [
        encode_batch([Record(1, None, b"a" * 100)] * 2, base_offset=0),
        encode_batch([Record(1, None, b"b" * 100)] * 3, base_offset=2),
        encode_batch([Record(1, None, b"c" * 100)], base_offset=5),
    ]
    starts = [0, len(batches[0]), len(batches[0]) + len(batches[1])]
    return b"".join(batches), starts


def test_held_batches_are_skipped_with_a_view_not_a_copy():
    records, starts = pushed()
    rest, base_offset, is_misaligned = _skip_held_batches(records, 2)
    assert (base_offset, is_misaligned) == (2, False)
    assert isinstance(rest, memoryview) and rest.obj is records
    assert rest == records[starts[1]:]


def test_every_batch_held_leaves_nothing():
    records, _ = pushed()
    assert _skip_held_batches(records, 6) == (b"", 6, False)


def test_a_batch_straddling_the_log_end_is_misaligned():
    records, _ = pushed()
    assert _skip_held_batches(records, 3) == (b"", 3, True)
