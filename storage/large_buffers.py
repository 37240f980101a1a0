"""Keeping batch-sized buffers in the C heap: glibc malloc tuning for the produce and replication path.

Owns one process-wide setting. Every byte a broker or a producer moves passes through a few
C-level buffers of batch size (256 KiB batches, up to 4 MiB replication messages): protobuf's
arena when a message is built, the bytes SerializeToString returns, gRPC core's slices on both
ends. glibc serves an allocation above its mmap threshold (128 KiB by default; the dynamic
raise does not hold for protobuf's growing arena blocks) with a fresh `mmap`, and returns freed
memory above its trim threshold to the kernel: each such buffer then costs a page fault and a
zeroed page per 4 KiB touched, far more than the memcpy that fills it. Measured with
`time.process_time` on the bench machine, for a 196 KiB produce request: building the
ProduceRequest 265 us -> 30 us and SerializeToString 230 us -> 11 us once both thresholds are
raised (raising either alone changes nothing).

`keep_large_buffers()` raises the mmap threshold to glibc's maximum (32 MiB) and the trim
threshold to `TRIM_THRESHOLD_BYTES`, so buffers up to 32 MiB are reused from the heap; the cost
is that up to `TRIM_THRESHOLD_BYTES` of freed memory stays mapped to the process. The broker
(server/node.py) and every SDK client (client/_transport.py) call it once; setting the
environment variable `FRESHET_KEEP_LARGE_BUFFERS=0` leaves malloc as it is. Elsewhere than glibc
(no `mallopt`) it does nothing.

Imports: standard library only (ctypes). Thread-safety: thread-safe (mallopt takes malloc's lock;
the once-flag is set under a lock).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import threading

logger = logging.getLogger(__name__)

#: The environment variable that turns the tuning off ("0").
ENV_VARIABLE = "FRESHET_KEEP_LARGE_BUFFERS"
#: glibc's mallopt parameter numbers (malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
#: glibc's largest mmap threshold on 64-bit (DEFAULT_MMAP_THRESHOLD_MAX): allocations below it
#: come from the heap.
MMAP_THRESHOLD_BYTES = 32 * 1024 * 1024
#: Free memory at the top of the heap kept before it is returned to the kernel.
TRIM_THRESHOLD_BYTES = 128 * 1024 * 1024

_lock = threading.Lock()
_state: dict[str, bool] = {}


def keep_large_buffers() -> bool:
    """Raise glibc's mmap and trim thresholds once per process (module docstring).

    Returns:
        True when both thresholds are set (now or by an earlier call); False when turned off by
        the environment variable or when the C library has no `mallopt` (not glibc).
    """
    with _lock:
        if "is_set" not in _state:
            _state["is_set"] = _apply()
        return _state["is_set"]


def _apply() -> bool:
    if os.environ.get(ENV_VARIABLE, "1") == "0":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    # mallopt answers 1 on success, 0 when it refuses a value.
    is_set = mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1 and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES) == 1
    if not is_set:
        logger.warning("mallopt refused the large-buffer thresholds; batch-sized buffers keep costing page faults")
    return is_set
