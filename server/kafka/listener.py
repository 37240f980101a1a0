"""The Kafka protocol listener: one asyncio TCP server, one task per connection.

Owns the connection life cycle of Kafka's binary protocol (Kafka's SocketServer + Processor):

- framing: a 4-byte size, then the request; a size <= 0 or above `socket.request.max.bytes`
  closes the connection (a log line), as Kafka does, before reading the rest;
- decoding through `codec` (kio); a frame that does not decode, an API key the broker does not
  serve, or a version outside what ApiVersions advertised closes that connection with a log line
  (Kafka's InvalidRequestException). ApiVersions itself with an unknown version gets
  UNSUPPORTED_VERSION and the supported ranges (KIP-511), so a newer client can fall back;
- pipelining: requests are read and dispatched in order, each as a task (so an acks=all produce
  waiting for replication does not hold up the fetch behind it), and the responses leave in
  request order from one writer. At most `in_flight_max` requests per connection are unanswered;
  reading stops until the oldest is written (backpressure). Requests that get no response (acks=0
  produce) take no place in the order;
- zero-copy Fetch (Kafka's FileRecords.writeTo): a response may come as `codec.ResponseParts`,
  the framing as bytes and the records as FileRegions of segment files; the writer sends each
  region with os.sendfile from the file to the socket after the bytes before it left the
  transport's buffer (sendfile.py: asyncio's `loop.sendfile`, or a thread on uvloop, which has
  none), so the order of parts and of responses holds. TLS connections copy instead (the bytes
  must pass through the cipher; asyncio has no kernel TLS), as does a transport without a socket. Bytes per path are counted (`Transfers`);
- a bug while answering closes the connection (logged with its traceback); other connections and
  the node are untouched;
- TLS (security.protocol SSL / SASL_SSL): the listener is given a server SSLContext (from
  security.tls, which swaps in the current certificate per handshake, so rotation needs no
  restart); a client that does not complete the TLS handshake within HANDSHAKE_TIMEOUT_S (a
  plaintext client, an untrusted certificate) is dropped before any request is read.
- authentication, when the node has security on (`connection_auth`, server/kafka/sasl_api.py):
  each connection gets a ConnectionAuth; before it is authenticated only ApiVersions,
  SaslHandshake and SaslAuthenticate are served (anything else closes the connection, as Kafka),
  raw SASL frames after a v0 handshake go to it, a failed login closes the connection once its
  answer is written, and once authenticated its Caller is bound in the reader task, so every
  later request and the tasks it spawns see it (`current_caller()`).

What each API does is the dispatcher's (`KafkaApis`, server/kafka/apis.py); this module knows no
API but ApiVersions' error answer.

Imports: asyncio, logging, ssl, threading, freshet.server.kafka, freshet.server.metrics,
freshet.server.security (the caller), freshet.storage (FileRegion). Thread-safety: not thread-safe; runs on the node's
event loop.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import threading
from collections.abc import Awaitable, Callable
from typing import Protocol

from freshet.server.kafka import codec, sendfile
from freshet.server.kafka.sasl_api import ConnectionAuth, enter_connection
from freshet.server.limits import REQUESTS_IN_FLIGHT_PER_CONNECTION_MAX
from freshet.server.metrics import BrokerMetrics
from freshet.server.security.authorizer import bind_caller
from freshet.storage.errors import StorageError
from freshet.storage.file_region import FileRegion

logger = logging.getLogger(__name__)

#: Kafka's socket.request.max.bytes default.
REQUEST_BYTES_MAX_DEFAULT = 100 * 1024 * 1024
#: A client gets this long to complete its TLS handshake.
HANDSHAKE_TIMEOUT_S = 10.0
#: Kafka's connection.failed.authentication.delay.ms default (100 ms).
FAILED_AUTHENTICATION_DELAY_S = 0.1
_END = object()
#: The kernel's cap on SO_SNDBUF (a larger request is silently cut to it).
WMEM_MAX_PATH = "/proc/sys/net/core/wmem_max"
#: The two ways Fetch records leave (Transfers): zero-copy from the segment file, or read and copied.
SENDFILE = "sendfile"
COPY = "copy"


class Dispatcher(Protocol):
    """What the listener asks of the APIs it serves."""

    def supports(self, api_key: int, api_version: int) -> bool:
        """Whether (api key, version) is served (and advertised by ApiVersions)."""
        ...

    def unsupported_api_versions(self, request: codec.UnsupportedRequestError) -> bytes:
        """The whole ApiVersions v0 error response for a version kio cannot read."""
        ...

    def dispatch(self, request: codec.Request, peer: str) -> Awaitable[bytes | None] | None | bool:
        """Start answering `request` (synchronously up to its first await: appends happen in
        request order). An awaitable of the whole response frame (None: no response), None when
        the request gets no response at all (acks=0 produce), or False to close the connection
        (a failed acks=0 produce, as Kafka)."""
        ...


class Transfers:
    """Counts the Fetch record bytes a listener sent, by path (SENDFILE or COPY), in the
    broker's metrics (none: not counted). Thread-safe (prometheus_client)."""

    def __init__(self, metrics: BrokerMetrics | None) -> None:
        self._counters = {path: metrics.kafka_fetch_bytes.labels(path) for path in (SENDFILE, COPY)} if metrics else {}

    def count(self, path: str, size: int) -> None:
        counter = self._counters.get(path)
        if counter is not None:
            counter.inc(size)


class KafkaListener:
    """The Kafka protocol's TCP server (see the module docstring). Not thread-safe (loop)."""

    def __init__(
        self,
        host: str,
        port: int,
        dispatcher: Dispatcher,
        request_bytes_max: int = REQUEST_BYTES_MAX_DEFAULT,
        in_flight_max: int = REQUESTS_IN_FLIGHT_PER_CONNECTION_MAX,
        ssl_context: ssl.SSLContext | None = None,
        connection_auth: Callable[[str, object], ConnectionAuth] | None = None,
        metrics: BrokerMetrics | None = None,
        send_buffer_bytes: Callable[[], int] | None = None,
    ) -> None:
        """`connection_auth(host, ssl_object)`: a connection's authentication state (None: the
        node has security off and every request is served). `metrics`: where the Fetch record
        bytes are counted by path (sendfile or copy). `send_buffer_bytes()`: the SO_SNDBUF each
        new connection gets (Kafka's socket.send.buffer.bytes; -1 or None: the OS default)."""
        assert request_bytes_max > 0 and in_flight_max > 0
        self.ssl_context = ssl_context
        self._connection_auth = connection_auth
        self.host = host
        self.port = port
        self._dispatcher = dispatcher
        self._request_bytes_max = request_bytes_max
        self._in_flight_max = in_flight_max
        self._server: asyncio.AbstractServer | None = None
        self._connections: set[asyncio.Task] = set()
        self._transfers = Transfers(metrics)
        self._send_buffer_bytes = send_buffer_bytes
        self._wmem_max_warned = False

    @property
    def connection_count(self) -> int:
        return len(self._connections)

    async def start(self) -> None:
        """Bind and start accepting (port 0: a free port, then `self.port` is it).

        Raises:
            OSError: the address cannot be bound.
        """
        self._server = await asyncio.start_server(
            self._accept,
            self.host,
            self.port,
            reuse_address=True,
            ssl=self.ssl_context,
            ssl_handshake_timeout=HANDSHAKE_TIMEOUT_S if self.ssl_context is not None else None,
        )
        self.port = self._server.sockets[0].getsockname()[1]
        logger.info("Kafka protocol listener on %s:%d%s", self.host, self.port, " (TLS)" if self.ssl_context else "")

    async def close(self) -> None:
        """Stop accepting and close every connection."""
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        for task in list(self._connections):
            try:
                await task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 - closing
                pass
        if self._server is not None:
            await self._server.wait_closed()

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.get_running_loop().create_task(self._serve(reader, writer), name="kafka-connection")
        self._connections.add(task)
        task.add_done_callback(self._connections.discard)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peername = writer.get_extra_info("peername")
        peer = f"{peername[0]}:{peername[1]}" if isinstance(peername, tuple) else str(peername)
        auth = None
        if self._connection_auth is not None:
            host = peername[0] if isinstance(peername, tuple) else ""
            auth = self._connection_auth(host, writer.get_extra_info("ssl_object"))
        self._set_send_buffer(writer.get_extra_info("socket"))
        connection = _Connection(
            reader, writer, peer, self._dispatcher, self._request_bytes_max, self._in_flight_max, auth, self._transfers
        )
        try:
            await connection.run()
        finally:
            writer.close()
            try:
                await writer.wait_closed()
            except (ConnectionError, OSError):
                pass


    def _set_send_buffer(self, sock: socket.socket | None) -> None:
        """Give a new connection's socket the configured send buffer (Kafka's
        socket.send.buffer.bytes; -1, the default, keeps the kernel's autotuned size). A value above
        the kernel's cap (net.core.wmem_max) would be cut to the cap and turn the kernel's
        autotuning off, so then the OS default stays (one warning)."""
        wanted = self._send_buffer_bytes() if self._send_buffer_bytes is not None else -1
        if wanted <= 0 or sock is None:
            return
        cap = _wmem_max()
        if cap is not None and wanted > cap:
            if not self._wmem_max_warned:
                logger.warning("socket.send.buffer.bytes=%d is above the kernel's net.core.wmem_max (%d); the Kafka "
                               "listener keeps the OS default send buffer", wanted, cap)
                self._wmem_max_warned = True
            return
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, wanted)
        except OSError as error:
            logger.warning("Kafka listener: setting SO_SNDBUF to %d failed: %s; keeping the OS default", wanted, error)


def _wmem_max() -> int | None:
    """net.core.wmem_max, None where it cannot be read (not Linux)."""
    try:
        with open(WMEM_MAX_PATH, encoding="ascii") as file:
            return int(file.read().strip())
    except (OSError, ValueError):
        return None


class _Connection:
    """One client connection: a reader loop and a writer loop joined by an ordered queue."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        peer: str,
        dispatcher: Dispatcher,
        request_bytes_max: int,
        in_flight_max: int,
        auth: ConnectionAuth | None = None,
        transfers: Transfers | None = None,
    ) -> None:
        self._auth = auth
        self._transfers = transfers or Transfers(None)
        # sendfile bypasses the transport: a TLS connection's bytes must pass through its cipher.
        self._is_zero_copy = writer.get_extra_info("sslcontext") is None
        self._closed = threading.Event()   # set when the connection ends: a sendfile thread stops
        self._is_caller_bound = False
        self._reader = reader
        self._writer = writer
        self._peer = peer
        self._dispatcher = dispatcher
        self._request_bytes_max = request_bytes_max
        self._order: asyncio.Queue = asyncio.Queue(maxsize=in_flight_max)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        reading = loop.create_task(self._read_loop(), name=f"kafka-reader-{self._peer}")
        writing = loop.create_task(self._write_loop(), name=f"kafka-writer-{self._peer}")
        try:
            await asyncio.wait({reading, writing}, return_when=asyncio.FIRST_COMPLETED)
            if reading.done() and not reading.cancelled() and reading.exception() is None and reading.result():
                # A clean EOF: answer what was asked before closing (a client may half-close).
                await self._order.put(_END)
                await writing
        except (ConnectionError, OSError):
            pass
        finally:
            self._closed.set()
            for task in (reading, writing):
                task.cancel()
            for task in (reading, writing):
                try:
                    await task
                except (asyncio.CancelledError, ConnectionError, OSError):
                    pass
            self._drop_unwritten()

    def _drop_unwritten(self) -> None:
        """The connection is gone: cancel the answers nobody will write, and close the file
        regions of those already made."""
        while not self._order.empty():
            pending = self._order.get_nowait()
            if pending is _END:
                continue
            if not pending.done():
                pending.cancel()
            elif not pending.cancelled() and pending.exception() is None and isinstance(pending.result(), codec.ResponseParts):
                pending.result().close()

    async def _read_loop(self) -> bool:
        """Read and dispatch requests until EOF (True: answer what is queued, then close) or a
        protocol violation (False: close now)."""
        auth = self._auth
        if auth is not None:
            enter_connection(auth)              # this task's context: the SASL handlers find it
        while True:
            frame = await self._read_frame()
            if frame is None:
                return True
            if frame is False:
                return False
            if auth is not None and auth.expects_raw_token:
                await self._order.put(asyncio.get_running_loop().create_task(auth.raw_token(frame)))
                continue
            pending = self._start(frame)
            if pending is False:
                return False
            if pending is not None:
                await self._order.put(pending)

    async def _read_frame(self) -> bytes | None | bool:
        """The next frame, None at a clean EOF, False for a size outside (0, request_bytes_max]."""
        try:
            prefix = await self._reader.readexactly(4)
        except asyncio.IncompleteReadError:
            return None
        except (ConnectionError, OSError):
            return None
        size = codec.size_of(prefix)
        if not 0 < size <= self._request_bytes_max:
            logger.warning(
                "Kafka connection from %s: a request of %d bytes is outside (0, %d] (socket.request.max.bytes); closing",
                self._peer, size, self._request_bytes_max,
            )
            return False
        try:
            return await self._reader.readexactly(size)
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            return None

    def _start(self, frame: bytes) -> Awaitable[bytes | None] | None | bool:
        """Decode and dispatch one frame: what to queue for the writer, None (no response), or
        False (close the connection)."""
        try:
            request = codec.decode_request(frame)
        except codec.UnsupportedRequestError as error:
            if error.api_key == codec.API_VERSIONS_KEY:
                return _ready(self._dispatcher.unsupported_api_versions(error))
            logger.warning("Kafka connection from %s: %s; closing", self._peer, error)
            return False
        except codec.FrameError as error:
            logger.warning("Kafka connection from %s: %s; closing", self._peer, error)
            return False
        if not self._dispatcher.supports(request.api_key, request.api_version):
            if request.api_key == codec.API_VERSIONS_KEY:
                unsupported = codec.UnsupportedRequestError(request.api_key, request.api_version, request.correlation_id)
                return _ready(self._dispatcher.unsupported_api_versions(unsupported))
            logger.warning(
                "Kafka connection from %s (client %r): API key %d version %d is not served; closing",
                self._peer, request.client_id, request.api_key, request.api_version,
            )
            return False
        auth = self._auth
        if auth is not None:
            if not auth.may_serve(request.api_key):
                logger.warning(
                    "Kafka connection from %s (client %r): API key %d before authenticating; closing",
                    self._peer, request.client_id, request.api_key,
                )
                return False
            if auth.caller is not None and not self._is_caller_bound:
                bind_caller(auth.caller)        # the reader task's context, copied by what it spawns
                self._is_caller_bound = True
        return self._dispatcher.dispatch(request, self._peer)

    async def _write_loop(self) -> None:
        """Write responses in request order; a failed answer (a bug) ends the connection."""
        while True:
            pending = await self._order.get()
            if pending is _END:
                return
            try:
                data = await pending
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("Kafka connection from %s: answering a request failed; closing", self._peer)
                return
            if isinstance(data, codec.ResponseParts):
                try:
                    await self._write_parts(data)
                except StorageError as error:
                    # A region's file could not be read (TLS copy): its length is on the wire
                    # already, so the connection cannot go on; the client reconnects and refetches.
                    logger.error("Kafka connection from %s: sending fetched records failed: %s; closing", self._peer, error)
                    return
            elif data is not None:
                self._writer.write(data)
                await self._writer.drain()
            if self._auth is not None and self._auth.is_failed:
                # A failed login: its answer is written; close after a pause, as Kafka does
                # (connection.failed.authentication.delay.ms), which also slows password guessing
                # and lets the client read the answer before the connection goes.
                await asyncio.sleep(FAILED_AUTHENTICATION_DELAY_S)
                return


    async def _write_parts(self, response: codec.ResponseParts) -> None:
        """Write a response's parts in order: bytes as they are, each FileRegion with sendfile
        from its segment file (zero-copy) or, where sendfile cannot go (a TLS connection: the
        bytes must pass through the cipher; a transport without native sendfile), read and
        copied. A region the file cannot fill (cut short under us) ends the connection: its
        length is already on the wire. The regions are closed in the end, whatever happens."""
        writer = self._writer
        try:
            for part in response.parts:
                if not isinstance(part, FileRegion):
                    writer.write(part)
                elif self._is_zero_copy:
                    await self._sendfile(part)
                else:
                    writer.write(part.read())
                    self._transfers.count(COPY, part.count)
            await writer.drain()
        finally:
            response.close()

    async def _sendfile(self, region: FileRegion) -> None:
        sent = await sendfile.send_region(self._writer.transport, self._writer, region, self._closed)
        if sent is None:
            logger.info("Kafka connection from %s: no socket to send files to; records are copied", self._peer)
            self._is_zero_copy = False
            self._writer.write(region.read())
            self._transfers.count(COPY, region.count)
            return
        if sent != region.count:
            raise ConnectionError(f"sendfile of {region!r} sent {sent} bytes: the file is shorter than the region")
        self._transfers.count(SENDFILE, region.count)


def _ready(data: bytes) -> Awaitable[bytes]:
    future = asyncio.get_running_loop().create_future()
    future.set_result(data)
    return future

