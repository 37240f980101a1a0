"""TLS material of a node: its certificate, key and CA from disk, reloaded when the files change.

Owns everything the node's listeners and outgoing connections need to speak TLS:

- `TlsSettings`: the node keys `ssl.certificate.location`, `ssl.key.location`, `ssl.ca.location`
  and `ssl.client.auth` (none | requested | required), and `check_files()`, which proves the three
  files exist, parse and belong together (the key matches the certificate), raising ValueError with
  one readable line.
- `TlsMaterial`: the files' current contents. Every user asks it for what it needs at the moment it
  needs it (a new connection, a new handshake); at most once per `check_interval_s` it compares
  the files' (mtime, size, inode) with what it loaded and reloads them when they changed. A reload
  that fails (a half-written file, a key that does not match) keeps the previous material and logs
  a warning: rotation never takes a node's TLS down. `generation` counts successful loads.
- Builders: gRPC server credentials (`grpc.dynamic_ssl_server_credentials`, whose fetcher hands
  gRPC a new certificate config when the files changed), gRPC channel credentials for inter-node
  channels (the node presents its own certificate: mTLS; node_identity.py adds the node proof
  and makes the channels), and `ssl.SSLContext`s: one server
  context per listener whose SNI callback swaps in the current material's context for every new
  connection (the Kafka listener on asyncio, HTTP on ThreadingHTTPServer, the Raft terminator), and
  client contexts for the Raft tunnel.
- Principals from certificates: `principal_from_grpc(context)` and `principal_from_ssl(obj)`
  return `User:<CN>` of a verified peer certificate, else None (the caller decides between SASL
  and `User:ANONYMOUS`).

`ssl.client.auth` on gRPC: grpcio can either not request a client certificate or require one
(there is no "request but do not require" in its Python API, measured on grpcio 1.85). So on the
gRPC port `requested` behaves as `none` (clients authenticate with SASL-derived session tokens,
nodes with the certificate proof of node_identity.py) and `required` requires a certificate; the
Kafka, HTTP and Raft ports honour all three values (Raft always requires one: only nodes talk
there).

Imports: standard library (ssl, os, threading), grpc. Nothing of the rest of the server.
Thread-safety: `TlsMaterial` is thread-safe (a lock around reloads; loaded material is immutable),
called from the event loop, gRPC's threads, the HTTP threads and the Raft tunnel's thread.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import ssl
import threading
import time

import grpc

logger = logging.getLogger(__name__)

CLIENT_AUTH_NONE = "none"
CLIENT_AUTH_REQUESTED = "requested"
CLIENT_AUTH_REQUIRED = "required"
CLIENT_AUTH_VALUES = (CLIENT_AUTH_NONE, CLIENT_AUTH_REQUESTED, CLIENT_AUTH_REQUIRED)
#: How often (at most) the files are stat'ed for changes.
CHECK_INTERVAL_S = 1.0
ANONYMOUS = "User:ANONYMOUS"


@dataclasses.dataclass(frozen=True)
class TlsSettings:
    """Where the node's TLS files are and whether clients must present a certificate.
    Thread-safe (immutable)."""

    certificate_location: str
    key_location: str
    ca_location: str
    client_auth: str = CLIENT_AUTH_REQUESTED

    def __post_init__(self) -> None:
        assert self.client_auth in CLIENT_AUTH_VALUES, self.client_auth


def _read(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as file:
            data = file.read()
    except FileNotFoundError:
        raise ValueError(f"{what} {path} does not exist") from None
    except OSError as error:
        raise ValueError(f"cannot read {what} {path}: {error.strerror}") from None
    if b"-----BEGIN" not in data:
        raise ValueError(f"{what} {path} is not a PEM file")
    return data


@dataclasses.dataclass(frozen=True)
class Loaded:
    """One successful load of the three files, with the SSLContexts built from exactly these
    files. Thread-safe (immutable; the contexts are only read once built)."""

    certificate_pem: bytes
    key_pem: bytes
    ca_pem: bytes
    generation: int
    signature: tuple
    server_contexts: dict                 # client auth value -> server SSLContext
    client_context: ssl.SSLContext


def _signature(settings: TlsSettings) -> tuple:
    """(mtime_ns, size, inode) of each file; None for a file that cannot be stat'ed."""
    result = []
    for path in (settings.certificate_location, settings.key_location, settings.ca_location):
        try:
            stat = os.stat(path)
            result.append((stat.st_mtime_ns, stat.st_size, stat.st_ino))
        except OSError:
            result.append(None)
    return tuple(result)


def _load(settings: TlsSettings, generation: int) -> Loaded:
    """Read and check the files and build their contexts. Raises ValueError (one line) naming the
    bad file, or saying the files changed while being read (the next check retries)."""
    signature = _signature(settings)
    certificate_pem = _read(settings.certificate_location, "ssl.certificate.location")
    key_pem = _read(settings.key_location, "ssl.key.location")
    ca_pem = _read(settings.ca_location, "ssl.ca.location")
    server_contexts = {value: _context(ssl.PROTOCOL_TLS_SERVER, settings, value) for value in CLIENT_AUTH_VALUES}
    client_context = _context(ssl.PROTOCOL_TLS_CLIENT, settings)
    if _signature(settings) != signature:
        raise ValueError(f"{settings.certificate_location}, {settings.key_location} or {settings.ca_location} changed while being read")
    return Loaded(certificate_pem, key_pem, ca_pem, generation, signature, server_contexts, client_context)


def check_files(settings: TlsSettings) -> None:
    """Check that the certificate, key and CA files exist, parse and match.

    Raises:
        ValueError: one line naming the file and the problem.
    """
    _load(settings, 0)


def _context(protocol: int, settings: TlsSettings, client_auth: str | None = None) -> ssl.SSLContext:
    """An SSLContext presenting the node's certificate and trusting the CA bundle (read from the
    files). Server contexts ask for client certificates as `client_auth` says (default:
    ssl.client.auth); client contexts verify the server, hostname included.

    Raises:
        ValueError: a file that does not parse, or a key that does not match the certificate.
    """
    context = ssl.SSLContext(protocol)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_verify_locations(cafile=settings.ca_location)
    except (ssl.SSLError, OSError) as error:
        reason = getattr(error, "reason", None) or getattr(error, "strerror", None) or str(error)
        raise ValueError(f"ssl.ca.location {settings.ca_location} holds no usable CA certificate ({reason})") from None
    try:
        context.load_cert_chain(settings.certificate_location, settings.key_location)
    except (ssl.SSLError, OSError) as error:
        reason = getattr(error, "reason", None) or getattr(error, "strerror", None) or str(error)
        if "MISMATCH" in str(reason).upper():
            raise ValueError(
                f"ssl.key.location {settings.key_location} is not the key of ssl.certificate.location "
                f"{settings.certificate_location}"
            ) from None
        raise ValueError(
            f"ssl.certificate.location {settings.certificate_location} or ssl.key.location "
            f"{settings.key_location} does not parse ({reason})"
        ) from None
    if protocol == ssl.PROTOCOL_TLS_SERVER:
        context.verify_mode = _VERIFY_MODES[client_auth or settings.client_auth]
    else:
        context.check_hostname = True
        context.verify_mode = ssl.CERT_REQUIRED
    return context


_VERIFY_MODES = {
    CLIENT_AUTH_NONE: ssl.CERT_NONE,
    CLIENT_AUTH_REQUESTED: ssl.CERT_OPTIONAL,
    CLIENT_AUTH_REQUIRED: ssl.CERT_REQUIRED,
}


class TlsMaterial:
    """The node's current certificate, key and CA (see the module docstring). Thread-safe."""

    def __init__(self, settings: TlsSettings, check_interval_s: float = CHECK_INTERVAL_S) -> None:
        """Load the files. Raises ValueError (one line) when they are unusable."""
        self.settings = settings
        self._check_interval_s = check_interval_s
        self._lock = threading.Lock()
        self._loaded = _load(settings, 1)
        self._checked_at = time.monotonic()
        self.reload_failures = 0

    @property
    def generation(self) -> int:
        """Successful loads so far (1 after start); changes when a rotation was picked up."""
        return self.current().generation

    def current(self) -> Loaded:
        """The current material, reloaded first when the files changed (checked at most once per
        check interval)."""
        now = time.monotonic()
        if now - self._checked_at < self._check_interval_s:
            return self._loaded
        with self._lock:
            if now - self._checked_at < self._check_interval_s:
                return self._loaded
            self._checked_at = now
            loaded = self._loaded
            signature = _signature(self.settings)
            if signature == loaded.signature:
                return loaded
            try:
                self._loaded = _load(self.settings, loaded.generation + 1)
            except ValueError as error:
                self.reload_failures += 1
                logger.warning("TLS files changed but cannot be loaded (keeping the previous ones): %s", error)
                # Remember what was seen before this attempt: the warning is not repeated every
                # check, and any later change (the rest of a rotation) is tried again.
                self._loaded = dataclasses.replace(loaded, signature=signature)
                return self._loaded
            logger.info("TLS certificate reloaded from %s (generation %d)", self.settings.certificate_location, self._loaded.generation)
            return self._loaded

    def reload_now(self) -> Loaded:
        """Check the files at once (tests, operators' signals), ignoring the check interval."""
        with self._lock:
            self._checked_at = float("-inf")
        return self.current()

    # -- ssl.SSLContext --------------------------------------------------------------------------

    def server_context(self, client_auth: str | None = None) -> ssl.SSLContext:
        """A server SSLContext for one listener. It serves whatever material is current when a
        client connects: its SNI callback, which OpenSSL calls for every ClientHello (with or
        without a server name), swaps in the current generation's context, whose certificate and
        CA then apply to that handshake. `client_auth` overrides ssl.client.auth (the Raft port
        passes "required": only nodes talk there)."""
        value = client_auth or self.settings.client_auth
        # The listener's own context holds no certificate: every handshake gets the current one
        # (its verify mode is copied into each connection first, so it is set here too).
        listener = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        listener.minimum_version = ssl.TLSVersion.TLSv1_2
        listener.verify_mode = _VERIFY_MODES[value]

        def swap(ssl_object, server_name, initial_context) -> None:
            ssl_object.context = self.current().server_contexts[value]
            return None

        listener.sni_callback = swap
        return listener

    def client_context(self) -> ssl.SSLContext:
        """A client SSLContext presenting this node's certificate and verifying the server
        against the CA, hostname included (a new one after each rotation)."""
        return self.current().client_context

    # -- gRPC ------------------------------------------------------------------------------------

    def grpc_server_credentials(self) -> grpc.ServerCredentials:
        """Credentials for `add_secure_port`: gRPC asks the fetcher before each handshake; it
        returns a new certificate config only when the files changed."""
        served = {"generation": self.current().generation}
        require = self.settings.client_auth == CLIENT_AUTH_REQUIRED

        def config(loaded: Loaded):
            return grpc.ssl_server_certificate_configuration(
                [(loaded.key_pem, loaded.certificate_pem)], root_certificates=loaded.ca_pem
            )

        def fetch():
            loaded = self.current()
            if loaded.generation == served["generation"]:
                return None
            served["generation"] = loaded.generation
            return config(loaded)

        return grpc.dynamic_ssl_server_credentials(config(self.current()), fetch, require_client_authentication=require)

    def grpc_channel_credentials(self) -> grpc.ChannelCredentials:
        """Credentials of an inter-node channel: trust the CA and present this node's certificate."""
        loaded = self.current()
        return grpc.ssl_channel_credentials(
            root_certificates=loaded.ca_pem, private_key=loaded.key_pem, certificate_chain=loaded.certificate_pem
        )


# -- principals ------------------------------------------------------------------------------------


def principal_from_common_name(common_name: str | None) -> str | None:
    """`User:<CN>` (Kafka's default `RULE:^CN=(.*?),.*$/$1/` mapping), None without a CN."""
    if not common_name:
        return None
    return f"User:{common_name}"


def principal_from_grpc(context) -> str | None:
    """The principal of a gRPC call's verified client certificate (`User:<CN>`), None when the
    client presented none (or the port is plaintext). `context`: a grpc(.aio) ServicerContext."""
    try:
        auth = context.auth_context()
    except (AttributeError, ValueError):
        return None
    names = auth.get("x509_common_name") or []
    if not names:
        return None
    return principal_from_common_name(names[0].decode("utf-8", "replace"))


def principal_from_peercert(peercert: dict | None) -> str | None:
    """`User:<CN>` from `getpeercert()`'s dict (a verified certificate), None without one."""
    if not peercert:
        return None
    for relative_name in peercert.get("subject", ()):
        for key, value in relative_name:
            if key == "commonName":
                return principal_from_common_name(value)
    return None


def principal_from_ssl(ssl_object: ssl.SSLObject | ssl.SSLSocket | None) -> str | None:
    """`User:<CN>` of the verified client certificate on an ssl socket or asyncio's SSLObject
    (`writer.get_extra_info("ssl_object")`), None when there is none (or no TLS)."""
    if ssl_object is None:
        return None
    try:
        return principal_from_peercert(ssl_object.getpeercert())
    except (ValueError, OSError):
        return None

