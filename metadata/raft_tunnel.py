"""TLS for the Raft port: a tunnel around pysyncobj's plaintext TCP transport.

pysyncobj speaks its own framing over plain TCP and has no TLS. With TLS on, the voter's traffic
goes through this tunnel instead, so nothing of the quorum crosses the network in plaintext:

    voter A (pysyncobj)                                                 voter B (pysyncobj)
    connects to 127.0.0.1:<forwarder for B>                             listens on 127.0.0.1:<eph>
        -> A's forwarder ==== TLS (mTLS, both verified against the CA) ====> B's terminator
                                                                         on B's public Raft address

- The terminator listens on the voter's public Raft address (raft.listen), requires a client
  certificate signed by the CA, and forwards each connection to pysyncobj's loopback port.
- One local forwarder per other voter listens on 127.0.0.1:<ephemeral>; a connection to it is
  carried over TLS to that voter's public Raft address (the server's certificate is verified
  against the CA, hostname included; this node presents its own certificate).
- pysyncobj keeps the voters' public addresses as their identities: it names a node by the self
  address sent first on every connection, not by the source address, so only where the
  transport connects changes (quorum.py's transport asks `forwarder_address(peer)`).
- pysyncobj's Fernet `password` stays on as a second layer: frames are authenticated before they
  are unpickled even if a CA-signed certificate leaks.

Rotation: the client context factory is called for every outgoing connection, and the server
context (made once) is expected to serve the current certificate per handshake (the server's
contexts swap it in from their SNI callback), so rotated certificates apply to new connections
without a restart.

Imports: standard library only (asyncio, socket, ssl, threading). The server injects the context
factories; this module knows nothing of where certificates come from.
Thread-safety: `RaftTunnel` runs its own event loop on its own thread; `start`, `close`,
`forwarder_address` and the attributes may be used from any thread.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import socket
import ssl
import threading
from collections.abc import Callable, Mapping

logger = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
HANDSHAKE_TIMEOUT_S = 5.0
CONNECT_TIMEOUT_S = 3.0
CHUNK_BYTES = 256 * 1024


@dataclasses.dataclass(frozen=True)
class RaftTls:
    """How the Raft tunnel gets its TLS contexts. Thread-safe (immutable).

    Attributes:
        server_context: makes the terminator's server SSLContext (called once, at start): it must
            require and verify client certificates, and serve the current certificate per handshake.
        client_context: a client SSLContext presenting this node's certificate and verifying
            the server (hostname included). Called once per outgoing connection.
    """

    server_context: Callable[[], ssl.SSLContext]
    client_context: Callable[[], ssl.SSLContext]


def _split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


def free_loopback_port() -> int:
    """A currently free TCP port on 127.0.0.1 (for pysyncobj's loopback bind)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]


class RaftTunnel:
    """The terminator and the forwarders of one voter (see the module docstring). Thread-safe."""

    def __init__(self, tls: RaftTls, public_address: str, local_port: int, peers: Mapping[str, str]) -> None:
        """
        Args:
            tls: the context factories.
            public_address: "host:port" where the terminator listens (the voter's raft.listen).
            local_port: pysyncobj's loopback port the terminator forwards to.
            peers: public Raft address of every other voter -> itself (the keys are what
                pysyncobj calls them; the values where to connect).
        """
        self._tls = tls
        self._public_address = public_address
        self._local_port = local_port
        self._peers = dict(peers)
        self._forwarders: dict[str, int] = {}
        self._loop = asyncio.new_event_loop()
        self._servers: list[asyncio.AbstractServer] = []
        self._tasks: set[asyncio.Task] = set()
        self._thread = threading.Thread(target=self._loop.run_forever, name="raft-tls-tunnel", daemon=True)
        self.handshake_failures = 0
        self.connections = 0

    def start(self) -> None:
        """Bind the terminator and the forwarders. Raises OSError when an address cannot be bound."""
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._start(), self._loop)
        try:
            future.result(10)
        except BaseException:
            self.close()
            raise

    async def _start(self) -> None:
        host, port = _split(self._public_address)
        terminator = await asyncio.start_server(
            self._terminate,
            host,
            port,
            reuse_address=True,
            ssl=self._tls.server_context(),
            ssl_handshake_timeout=HANDSHAKE_TIMEOUT_S,
        )
        self._servers.append(terminator)
        for name, address in self._peers.items():
            forwarder = await asyncio.start_server(
                lambda reader, writer, address=address: self._forward(reader, writer, address), LOOPBACK, 0
            )
            self._servers.append(forwarder)
            self._forwarders[name] = forwarder.sockets[0].getsockname()[1]
        logger.info(
            "Raft TLS tunnel: %s (TLS) -> %s:%d; forwarders %s",
            self._public_address,
            LOOPBACK,
            self._local_port,
            ", ".join(f"{LOOPBACK}:{port} -> {name}" for name, port in sorted(self._forwarders.items())),
        )

    def forwarder_address(self, peer: str) -> tuple[str, int]:
        """Where pysyncobj connects to reach `peer` (its public Raft address)."""
        return LOOPBACK, self._forwarders[peer]

    def close(self) -> None:
        """Stop listening and drop every tunnelled connection. Idempotent."""
        if self._loop.is_closed():
            return
        if self._thread.is_alive():
            future = asyncio.run_coroutine_threadsafe(self._close(), self._loop)
            try:
                future.result(5)
            except (TimeoutError, RuntimeError) as error:
                logger.warning("Raft TLS tunnel did not close cleanly: %s", error)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
        if not self._loop.is_running():
            self._loop.close()

    async def _close(self) -> None:
        for server in self._servers:
            server.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            try:
                await task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 - closing
                pass

    # -- connections (tunnel thread) --------------------------------------------------------------

    def _track(self, coroutine) -> None:
        task = self._loop.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _terminate(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._track(self._terminate_one(reader, writer))

    async def _terminate_one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """An incoming connection on the public Raft port whose TLS handshake (client certificate
        required) succeeded: only now does a byte reach pysyncobj. (asyncio drops connections
        whose handshake fails, or does not finish in HANDSHAKE_TIMEOUT_S, before calling this.)"""
        try:
            local_reader, local_writer = await asyncio.open_connection(LOOPBACK, self._local_port)
        except OSError as error:
            logger.debug("Raft tunnel: pysyncobj's port is not answering: %s", error)
            writer.close()
            return
        self.connections += 1
        await _pump_both(reader, writer, local_reader, local_writer)

    def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, address: str) -> None:
        self._track(self._forward_one(reader, writer, address))

    async def _forward_one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, address: str) -> None:
        """pysyncobj connected to a forwarder: carry the connection over TLS to the peer."""
        host, port = _split(address)
        try:
            remote_reader, remote_writer = await asyncio.wait_for(
                asyncio.open_connection(
                    host, port, ssl=self._tls.client_context(), server_hostname=host,
                    ssl_handshake_timeout=HANDSHAKE_TIMEOUT_S,
                ),
                CONNECT_TIMEOUT_S + HANDSHAKE_TIMEOUT_S,
            )
        except (ssl.SSLError, OSError, TimeoutError) as error:
            if isinstance(error, ssl.SSLError):
                self.handshake_failures += 1
                logger.warning("Raft tunnel: TLS to %s failed: %s", address, error)
            writer.close()
            return
        self.connections += 1
        await _pump_both(reader, writer, remote_reader, remote_writer)


async def _pump_both(
    reader_a: asyncio.StreamReader, writer_a: asyncio.StreamWriter, reader_b: asyncio.StreamReader, writer_b: asyncio.StreamWriter
) -> None:
    """Copy bytes both ways until either side closes; then close both."""
    for writer in (writer_a, writer_b):
        sock = writer.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
    pumps = [asyncio.ensure_future(_pump(reader_a, writer_b)), asyncio.ensure_future(_pump(reader_b, writer_a))]
    try:
        await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for pump in pumps:
            pump.cancel()
        for writer in (writer_a, writer_b):
            writer.close()
        for pump in pumps:
            try:
                await pump
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 - closing
                pass


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            data = await reader.read(CHUNK_BYTES)
            if not data:
                return
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError, ssl.SSLError):
        return
