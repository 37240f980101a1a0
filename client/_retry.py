"""The client's one "retry until the deadline" loop, and the deadline it runs against.

Owns

- `Deadline`: a point in monotonic time with the arithmetic every blocking call repeats (time
  left, a per-request gRPC timeout bounded by it, a backoff sleep that never oversleeps it);
- `retry_until_deadline`: calls an attempt until it returns, sleeping a backoff between attempts,
  and gives up with the caller's error when the deadline (or an attempt limit) is reached. An
  attempt asks for another try by raising `Retry`, carrying the error that made it fail (the cause
  of the final error); any other exception propagates at once, so each call site keeps deciding
  which errors are worth retrying.

Imports: stdlib and `freshet.client.errors` only.

Thread-safety: pure functions and per-call objects; thread-safe.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from freshet.client.errors import FreshetError

T = TypeVar("T")

#: The shortest timeout given to a request: gRPC treats 0 as "no deadline" on some paths.
MIN_REQUEST_TIMEOUT_S = 0.001


class Deadline:
    """`timeout_s` from now, on the monotonic clock. Not shared between threads."""

    __slots__ = ("timeout_s", "at_s")

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.at_s = time.monotonic() + timeout_s

    def remaining(self) -> float:
        """Seconds left; negative once passed."""
        return self.at_s - time.monotonic()

    def has_passed(self) -> bool:
        return time.monotonic() >= self.at_s

    def request_timeout(self, request_timeout_s: float) -> float:
        """A gRPC timeout for one request: `request_timeout_s`, cut to the time left (at least 1 ms)."""
        return max(min(request_timeout_s, self.remaining()), MIN_REQUEST_TIMEOUT_S)

    def sleep(self, seconds: float) -> None:
        """Sleep `seconds`, or until the deadline if that comes first."""
        time.sleep(min(seconds, max(self.remaining(), 0)))


class Retry(Exception):  # noqa: N818 - a control-flow signal, not an error
    """Raised by an attempt to ask `retry_until_deadline` for another one.

    Args:
        error: why this attempt failed (None keeps the previous attempt's error).
        is_backoff: sleep the backoff before the next attempt (False: try again at once, for an
            attempt that already waited, e.g. for a metadata update).
    """

    def __init__(self, error: FreshetError | None = None, *, is_backoff: bool = True) -> None:
        super().__init__(error)
        self.error = error
        self.is_backoff = is_backoff


def retry_until_deadline(
    attempt: Callable[[Deadline], T],
    deadline: Deadline,
    *,
    backoff_s: float | Callable[[int], float],
    give_up: Callable[[FreshetError | None], BaseException],
    max_attempts: int | None = None,
    is_cause_kept: bool = True,
) -> T:
    """Call `attempt(deadline)` until it returns something other than raising `Retry`.

    Args:
        attempt: one try; raises `Retry` to be called again, anything else to stop at once.
        deadline: when to give up; checked before every attempt and after every failed one.
        backoff_s: seconds to sleep between attempts, or a function of the number of attempts
            made so far (1 after the first).
        give_up: builds the error raised when the deadline passes or `max_attempts` attempts
            failed, from the last attempt's error (None if no attempt gave one).
        max_attempts: give up after this many failed attempts even if time is left.
        is_cause_kept: raise the give_up error `from` the last attempt's error (else `from None`).

    Returns:
        What the first successful attempt returned.
    """
    last_error: FreshetError | None = None
    attempts = 0
    while True:
        if deadline.has_passed():
            raise give_up(last_error) from (last_error if is_cause_kept else None)
        attempts += 1
        try:
            return attempt(deadline)
        except Retry as retry:
            last_error = retry.error or last_error
            is_backoff = retry.is_backoff
        if (max_attempts is not None and attempts >= max_attempts) or deadline.has_passed():
            raise give_up(last_error) from (last_error if is_cause_kept else None)
        if is_backoff:
            deadline.sleep(backoff_s(attempts) if callable(backoff_s) else backoff_s)
