"""Zero-copy sends of a FileRegion to a connection's socket, on any event loop.

Owns the one question the listener's writer asks: "send these segment bytes after everything
already written, without copying them through Python". asyncio's own loop answers it natively
(`loop.sendfile`: os.sendfile whenever the socket is writable). uvloop, the node's default loop,
has no sendfile (`NotImplementedError`), so there the send runs on a small thread pool of its
own: the transport's buffer is drained first (write buffer limits at 0, so `drain()` returns
only once every byte written before left), then a blocking `os.sendfile` loop on a duplicate of
the socket's descriptor waits for writability with `poll`. Nothing else writes to the socket
meanwhile: the listener has one writer per connection, and it awaits this. The duplicate keeps
the descriptor number valid even if the loop closes the transport underneath (its writes then
fail with EPIPE/ECONNRESET); a reader that stops reading ends the send once `stopped` is set
(the connection closing) or after SEND_STALL_S without progress.

Imports: asyncio, os, select, threading, concurrent.futures, freshet.storage (FileRegion).
Thread-safety: `send_region` runs on the event loop; `_send_blocking` on the pool's threads, with
its own descriptors only.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import select
import threading

from freshet.storage.file_region import FileRegion

#: Threads sending on loops without native sendfile (each blocks only while its socket is full).
SEND_THREADS = 8
#: A send that made no progress for this long (a client that stopped reading) is abandoned.
SEND_STALL_S = 60.0
_POLL_MS = 500

_pool: concurrent.futures.ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


async def send_region(transport: asyncio.WriteTransport, writer: asyncio.StreamWriter, region: FileRegion,
                      stopped: threading.Event) -> int | None:
    """Send `region` after every byte already written on `writer`; return the bytes sent
    (fewer than `region.count` when the file is shorter), or None when this transport has no
    socket to send from a file to (nothing was sent: the caller copies instead).

    Raises:
        ConnectionError: the peer went away, stopped reading, or the connection closed.
    """
    loop = asyncio.get_running_loop()
    try:
        return await loop.sendfile(transport, region.file, region.position, region.count, fallback=False)
    except (asyncio.SendfileNotAvailableError, NotImplementedError):
        pass                                   # uvloop: no native sendfile; send from a thread
    sock = transport.get_extra_info("socket")
    if sock is None:
        return None
    await _drain_completely(transport, writer)
    socket_fd = os.dup(sock.fileno())
    try:
        return await loop.run_in_executor(_threads(), _send_blocking, socket_fd, region.file.fileno(),
                                          region.position, region.count, stopped)
    finally:
        os.close(socket_fd)


async def _drain_completely(transport: asyncio.WriteTransport, writer: asyncio.StreamWriter) -> None:
    """Wait until the transport's buffer is empty (drain() alone stops at the high-water mark)."""
    low, high = transport.get_write_buffer_limits()
    transport.set_write_buffer_limits(high=0, low=0)
    try:
        await writer.drain()
    finally:
        transport.set_write_buffer_limits(high=high, low=low)


def _send_blocking(socket_fd: int, file_fd: int, position: int, count: int, stopped: threading.Event) -> int:
    """os.sendfile until `count` bytes left or the file ended; runs on a pool thread."""
    poller = select.poll()
    poller.register(socket_fd, select.POLLOUT)
    sent = 0
    stalled_polls = 0
    while sent < count:
        try:
            n = os.sendfile(socket_fd, file_fd, position + sent, count - sent)
        except BlockingIOError:
            if stopped.is_set():
                raise ConnectionError("the connection closed during a sendfile") from None
            if poller.poll(_POLL_MS):
                stalled_polls = 0
            else:
                stalled_polls += 1
                if stalled_polls * _POLL_MS / 1000 >= SEND_STALL_S:
                    raise ConnectionError(f"the client read nothing for {SEND_STALL_S:.0f} s during a sendfile") from None
            continue
        except OSError as error:
            raise ConnectionError(f"sendfile failed: {error}") from error
        if n == 0:
            break
        sent += n
    return sent


def _threads() -> concurrent.futures.ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = concurrent.futures.ThreadPoolExecutor(SEND_THREADS, thread_name_prefix="kafka-sendfile")
        return _pool
