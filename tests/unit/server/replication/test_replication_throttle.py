"""The leader's replication throttle (server/replication/throttle.py) with an injected clock.

Goal: pushes to a replica that a reassignment adds are held to replication.throttle.bytes.per.second
(Kafka's leader.replication.throttled.rate) even though every read returns whole batches, and
replicas in the ISR (or with the rate 0) are never throttled.
Method: a pusher that sends whole 16 KiB batches whenever the bucket allows, over 10 simulated
seconds in 1 ms steps; the scripted metadata image decides who is throttled.
"""

from __future__ import annotations

from freshet.metadata import commands as c
from freshet.server.replication.throttle import BURST_S, ReplicationThrottle, TokenBucket

from tests.support.metadata_script import EPOCH, Script

BATCH_BYTES = 16 * 1024


def _push_for(bucket: TokenBucket, seconds: int) -> int:
    sent = 0
    for now_ms in range(seconds * 1000):
        while bucket.available(now_ms) > 0:
            bucket.consume(BATCH_BYTES, now_ms)      # a whole batch, more than the tokens left
            sent += BATCH_BYTES
    return sent


def test_token_bucket_holds_the_rate_despite_whole_batch_overshoot():
    for rate in (100_000, 1_000_000, 5_000_000):
        bucket = TokenBucket(rate, 0)
        sent = _push_for(bucket, 10)
        # At most the rate, plus the initial burst and one batch of debt.
        assert rate * 10 - BATCH_BYTES <= sent <= rate * 10 + rate * BURST_S + BATCH_BYTES, (rate, sent)


def test_token_bucket_waits_out_a_debt_and_follows_a_rate_change():
    bucket = TokenBucket(1000, 0)
    bucket.consume(3000, 0)                           # 100 tokens - 3000: a debt of 2900
    assert bucket.available(0) == 0
    assert 2900 <= bucket.wait_ms(0) <= 2902
    assert bucket.available(2000) == 0
    assert bucket.available(3000) > 0
    bucket.set_rate(10_000, 3000)
    assert bucket.capacity == 1000
    assert _push_for(TokenBucket(10_000, 0), 5) <= 10_000 * 5 + 1000 + BATCH_BYTES


def _image_with_a_move():
    s = Script()
    s.cluster(4)
    topic_id = s.topic("t", [([1, 2, 3], [1, 2, 3], 1)])
    s.ok(c.reassign_partition(s.rid(), EPOCH, topic_id, 0, [1, 2, 4]))
    return s, topic_id


def test_only_adding_replicas_outside_the_isr_are_throttled():
    s, topic_id = _image_with_a_move()
    rate = {"value": 50_000}
    now = {"ms": 0}
    throttle = ReplicationThrottle(lambda: rate["value"], lambda: s.image, lambda: now["ms"])
    assert throttle.is_throttled("t", 0, 4)                    # being added, catching up
    assert not throttle.is_throttled("t", 0, 2)                # an ISR follower
    assert not throttle.is_throttled("t", 0, 3)                # being removed, in the ISR
    assert not throttle.is_throttled("other", 0, 4)
    assert throttle.allowance() == 5_000                        # the burst: 100 ms at 50 kB/s
    throttle.consume(20_000)
    assert throttle.allowance() == 0
    assert throttle.wait_ms() > 0
    now["ms"] = 400
    assert throttle.allowance() > 0
    assert throttle.throttled_bytes == 20_000
    partition = s.image.partition("t", 0)
    s.ok(c.change_partition(s.rid(), EPOCH, topic_id, 0, partition.partition_epoch, isr=[1, 2, 3, 4]))
    assert not throttle.is_throttled("t", 0, 4)                # caught up: in the ISR
    rate["value"] = 0
    s2, _ = _image_with_a_move()
    unlimited = ReplicationThrottle(lambda: 0, lambda: s2.image, lambda: 0)
    assert not unlimited.is_throttled("t", 0, 4)
    assert unlimited.allowance() is None
