"""The node process's malloc policy: keep freed large buffers instead of handing them back.

Owns one decision taken at start-up, before any buffer is allocated: glibc's malloc serves a
request above its mmap threshold (128 KiB at first, raised dynamically up to 32 MiB) with a
fresh `mmap`, and returns freed memory at the top of a heap to the kernel once more than the
trim threshold is free. A node moves megabytes per request (a Fetch response, a replication
batch, a produce request), so with the defaults every such buffer is new anonymous memory: the
kernel zeroes and faults in each 4 KiB page on first touch and unmaps it on free. Profiling a
64 KiB-record consume found page faults, page clearing and unmapping at about a fifth of the
leader's CPU (and a third of a librdkafka reader's). The JVM under Kafka keeps its heap; this
does the same for glibc: requests up to MMAP_THRESHOLD_BYTES come from the heap, and up to
TRIM_THRESHOLD_BYTES of freed memory stays mapped for the next request.

The cost is resident memory: a node keeps up to about TRIM_THRESHOLD_BYTES per malloc arena of
memory it freed. `FRESHET_MALLOC_TUNING=off` leaves glibc's defaults, and a GLIBC_TUNABLES
variable that sets malloc options wins (the operator chose). Not glibc (musl, macOS): nothing
changes.

Imports: ctypes, os. Thread-safety: call once, before other threads allocate (mallopt is
process-wide).
"""

from __future__ import annotations

import ctypes
import logging
import os

logger = logging.getLogger(__name__)

#: Environment variable: "off" keeps glibc's malloc defaults.
MALLOC_TUNING_ENV = "FRESHET_MALLOC_TUNING"
#: Requests up to this size come from the heap (glibc's own ceiling for the threshold).
MMAP_THRESHOLD_BYTES = 32 * 1024 * 1024
#: Freed memory kept mapped at the top of a heap before any is returned to the kernel.
TRIM_THRESHOLD_BYTES = 256 * 1024 * 1024
#: mallopt parameter numbers from glibc's malloc.h.
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3


def keep_freed_memory(environ: dict[str, str] | None = None, libc=None) -> bool:
    """Set glibc's mmap and trim thresholds (see the module docstring); True when both took.

    `environ` (default os.environ) and `libc` (default the process's C library) are for tests.
    """
    environ = os.environ if environ is None else environ
    if environ.get(MALLOC_TUNING_ENV, "").lower() == "off":
        return False
    if "glibc.malloc." in environ.get("GLIBC_TUNABLES", ""):
        return False
    if libc is None:
        try:
            libc = ctypes.CDLL(None)
        except OSError:
            return False
    mallopt = getattr(libc, "mallopt", None)
    if mallopt is None:
        return False
    is_set = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES))
    if not is_set:
        logger.info("malloc thresholds not set (not glibc?): freed buffers go back to the kernel")
    return is_set
