"""The clients' security options (kafka-python's names) and the gRPC channels they make.

Owns `SecurityConfig`: every Producer, Consumer and Admin takes these keyword options and hands
them here, so one module decides how a client reaches a secure cluster:

    security_protocol  "PLAINTEXT" (default) | "SSL" | "SASL_SSL" (TLS on every connection)
    ssl_cafile         PEM bundle that signed the nodes' certificates (None: the system's roots)
    ssl_certfile       PEM client certificate, for mTLS (the principal is User:<its CN>)
    ssl_keyfile        its private key (both or neither)

Building a SecurityConfig checks the options and reads the files once (a bad option or an
unreadable file is a ValueError naming it, in one line); `channel_factory()` is what the
Transport makes its channels with. SASL options (mechanism, user name, password: call credentials
for a session token) belong here too, as further fields and a composite credential.

Imports: grpc only (`_transport` imports this module). Nothing of the server.
Thread-safety: immutable; the factory it returns is thread-safe (grpc channels are).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping

import grpc

PLAINTEXT = "PLAINTEXT"
SSL = "SSL"
SASL_SSL = "SASL_SSL"
SECURITY_PROTOCOLS = (PLAINTEXT, SSL, SASL_SSL)


def _read_pem(option: str, path: str) -> bytes:
    try:
        with open(path, "rb") as file:
            data = file.read()
    except OSError as error:
        raise ValueError(f"{option}: cannot read {path}: {error.strerror}") from None
    if b"-----BEGIN" not in data:
        raise ValueError(f"{option}: {path} is not a PEM file")
    return data


@dataclasses.dataclass(frozen=True)
class SecurityConfig:
    """A client's security options (see the module docstring). Validated when built.
    Thread-safe (immutable)."""

    security_protocol: str = PLAINTEXT
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    _pems: tuple = dataclasses.field(default=(None, None, None), repr=False, compare=False)

    def __post_init__(self) -> None:
        self.validate()

    @classmethod
    def from_options(cls, options: Mapping[str, object]) -> SecurityConfig:
        """From a client constructor's extra keyword options.

        Raises:
            TypeError: an option that is not a security option (as for any unknown keyword).
            ValueError: a bad value or an unreadable file.
        """
        known = {field.name for field in dataclasses.fields(cls) if not field.name.startswith("_")}
        for name in options:
            if name not in known:
                raise TypeError(f"unexpected keyword argument {name!r}")
        return cls(**options)  # type: ignore[arg-type]

    def validate(self) -> None:
        """Raises ValueError: an unknown protocol, a certificate without its key, an unreadable file."""
        protocol = self.security_protocol
        if not isinstance(protocol, str) or protocol.upper() not in SECURITY_PROTOCOLS:
            raise ValueError(f"security_protocol must be one of {', '.join(SECURITY_PROTOCOLS)}, not {protocol!r}")
        object.__setattr__(self, "security_protocol", protocol.upper())
        if (self.ssl_certfile is None) != (self.ssl_keyfile is None):
            raise ValueError("ssl_certfile and ssl_keyfile go together: give both (mTLS) or neither")
        if not self.is_tls:
            for name in ("ssl_cafile", "ssl_certfile"):
                if getattr(self, name) is not None:
                    raise ValueError(f"{name} needs security_protocol='SSL' or 'SASL_SSL', not {self.security_protocol!r}")
            return
        pems = tuple(
            _read_pem(name, path) if path is not None else None
            for name, path in (
                ("ssl_cafile", self.ssl_cafile),
                ("ssl_certfile", self.ssl_certfile),
                ("ssl_keyfile", self.ssl_keyfile),
            )
        )
        object.__setattr__(self, "_pems", pems)

    @property
    def is_tls(self) -> bool:
        return self.security_protocol != PLAINTEXT

    def channel_credentials(self) -> grpc.ChannelCredentials | None:
        """TLS credentials of every channel (None: plaintext)."""
        if not self.is_tls:
            return None
        ca, certificate, key = self._pems
        return grpc.ssl_channel_credentials(root_certificates=ca, private_key=key, certificate_chain=certificate)

    def channel_factory(self) -> Callable[[str, list[tuple[str, int]]], grpc.Channel]:
        """What the Transport makes its channels with (address, gRPC options) -> channel."""
        credentials = self.channel_credentials()
        if credentials is None:

            def plaintext_channel(address: str, options: list[tuple[str, int]]) -> grpc.Channel:
                return grpc.insecure_channel(address, options=options)

            return plaintext_channel

        def secure_channel(address: str, options: list[tuple[str, int]]) -> grpc.Channel:
            return grpc.secure_channel(address, credentials, options=options)

        return secure_channel
