"""Failed logins are rate limited per source, and the limiter's memory is bounded."""

from __future__ import annotations

from freshet.server.security.rate_limit import LoginRateLimiter


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_source_is_refused_after_its_failures_until_the_oldest_leaves_the_window():
    clock = FakeClock()
    limiter = LoginRateLimiter(failures_max=3, window_s=60, clock=clock)
    for _ in range(2):
        assert limiter.retry_after_s("10.0.0.1") == 0
        limiter.failed("10.0.0.1")
        clock.now += 10
    limiter.failed("10.0.0.1")                       # third failure at t=1020; first was at 1000
    assert limiter.retry_after_s("10.0.0.1") == 40   # until 1000 + 60
    assert limiter.retry_after_s("10.0.0.2") == 0    # per source
    clock.now = 1059.9
    assert limiter.retry_after_s("10.0.0.1") > 0
    clock.now = 1060.0
    assert limiter.retry_after_s("10.0.0.1") == 0    # one failure left the window: one more try
    limiter.failed("10.0.0.1")
    assert limiter.retry_after_s("10.0.0.1") == 10   # now the one at 1010 is oldest


def test_a_success_forgets_the_sources_failures():
    clock = FakeClock()
    limiter = LoginRateLimiter(failures_max=2, window_s=60, clock=clock)
    limiter.failed("h")
    limiter.succeeded("h")
    limiter.failed("h")
    assert limiter.retry_after_s("h") == 0
    limiter.failed("h")
    assert limiter.retry_after_s("h") > 0


def test_the_table_is_bounded_and_forgets_expired_then_stalest_sources():
    clock = FakeClock()
    limiter = LoginRateLimiter(failures_max=1, window_s=60, sources_max=3, clock=clock)
    for host in ("a", "b", "c"):
        limiter.failed(host)
        clock.now += 1
    limiter.failed("d")                               # full: "a" (stalest) is forgotten
    assert len(limiter) == 3
    assert limiter.retry_after_s("a") == 0
    assert all(limiter.retry_after_s(host) > 0 for host in ("b", "c", "d"))
    clock.now += 120                                  # all expired: room without evicting anyone live
    limiter.failed("e")
    assert len(limiter) == 1
