"""A node's certificate as proof of identity on gRPC calls, where TLS cannot carry it.

grpcio's server credentials either do not request a client certificate or require one (measured
on grpcio 1.85: `require_client_authentication=False` sends no CertificateRequest at all), so with
`ssl.client.auth=requested` (the default) a node calling another node over TLS is anonymous to
the TLS layer. Nodes must still be known as `User:<CN of their certificate>` (super users) for
replication, heartbeats and forwarding. So inter-node channels add call credentials:

    x-freshet-node-certificate-bin   the node's certificate (DER)
    x-freshet-node-proof-bin         its private key's signature over "freshet-node-proof|<time ms>"
    x-freshet-node-time              that time (ms since the epoch)

The server accepts the proof when the certificate verifies against its CA bundle (as a TLS
client certificate would: chain, validity, clientAuth usage), the signature verifies with the
certificate's key, and the time is within PROOF_WINDOW_MS of its clock. The metadata only travels
inside TLS (channels without TLS never get these credentials), so a proof can only be replayed by
someone who already sees inside the TLS session; the window bounds even that.

`inter_node_channel(address, options, material)` makes every node-to-node channel (TLS with the
node's certificate, plus the proof). `principal_from_call(context, verifier)` is the one function
servicers need: the TLS client certificate's principal when there is one, else the node proof's,
else None.

Imports: grpc, cryptography, freshet.server.security.tls. Thread-safety: the credentials plugin
and the verification are thread-safe (the verified-certificate cache is a dict guarded by a lock).
"""

from __future__ import annotations

import threading
import time

import grpc
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError
from freshet.server.security import tls

CERTIFICATE_KEY = "x-freshet-node-certificate-bin"
PROOF_KEY = "x-freshet-node-proof-bin"
TIME_KEY = "x-freshet-node-time"
PROOF_WINDOW_MS = 60_000
_CACHE_MAX = 256


def _payload(time_ms: int) -> bytes:
    return f"freshet-node-proof|{time_ms}".encode()


def _sign(key, data: bytes) -> bytes:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(data, ec.ECDSA(hashes.SHA256()))
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    raise ValueError(f"unsupported node key type {type(key).__name__}")


def _verify(public_key, signature: bytes, data: bytes) -> bool:
    try:
        if isinstance(public_key, ec.EllipticCurvePublicKey):
            public_key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
        elif isinstance(public_key, rsa.RSAPublicKey):
            public_key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
        else:
            return False
    except InvalidSignature:
        return False
    return True


class _ProofPlugin(grpc.AuthMetadataPlugin):
    """Adds the node proof to every call of an inter-node channel. Thread-safe."""

    def __init__(self, material: tls.TlsMaterial) -> None:
        self._material = material
        self._parsed: tuple[int, bytes, object] | None = None     # (generation, DER, private key)

    def _identity(self) -> tuple[bytes, object]:
        loaded = self._material.current()
        parsed = self._parsed
        if parsed is None or parsed[0] != loaded.generation:
            certificate = x509.load_pem_x509_certificate(loaded.certificate_pem)
            key = serialization.load_pem_private_key(loaded.key_pem, password=None)
            parsed = self._parsed = (loaded.generation, certificate.public_bytes(serialization.Encoding.DER), key)
        return parsed[1], parsed[2]

    def __call__(self, context, callback) -> None:
        try:
            der, key = self._identity()
            now_ms = int(time.time() * 1000)
            metadata = (
                (CERTIFICATE_KEY, der),
                (PROOF_KEY, _sign(key, _payload(now_ms))),
                (TIME_KEY, str(now_ms)),
            )
        except (ValueError, TypeError) as error:
            callback((), error)
            return
        callback(metadata, None)


def node_call_credentials(material: tls.TlsMaterial) -> grpc.CallCredentials:
    """Call credentials proving this node's identity (compose with the TLS channel credentials)."""
    return grpc.metadata_call_credentials(_ProofPlugin(material), name="freshet-node-proof")


def inter_node_channel(address: str, options: list, material: tls.TlsMaterial | None) -> grpc.aio.Channel:
    """A grpc.aio channel to another node: TLS presenting this node's certificate, and the node
    proof on every call, when `material` is given; plaintext with security.protocol=PLAINTEXT."""
    if material is None:
        return grpc.aio.insecure_channel(address, options=options)
    credentials = grpc.composite_channel_credentials(
        material.grpc_channel_credentials(), node_call_credentials(material)
    )
    return grpc.aio.secure_channel(address, credentials, options=options)


class NodeProofVerifier:
    """Verifies node proofs against the current CA bundle. Thread-safe."""

    def __init__(self, material: tls.TlsMaterial) -> None:
        self._material = material
        self._lock = threading.Lock()
        self._verified: dict[tuple[bytes, int], str | None] = {}    # (DER, CA generation) -> principal

    def principal(self, metadata, now_ms: int | None = None) -> str | None:
        """`User:<CN>` of a valid proof in the call's `metadata` ((key, value) pairs), else None."""
        values = {key: value for key, value in (metadata or ())}
        der, proof, sent = values.get(CERTIFICATE_KEY), values.get(PROOF_KEY), values.get(TIME_KEY)
        if not isinstance(der, bytes) or not isinstance(proof, bytes) or not isinstance(sent, str) or not sent.isdigit():
            return None
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        if abs(now_ms - int(sent)) > PROOF_WINDOW_MS:
            return None
        principal = self._certificate_principal(der)
        if principal is None:
            return None
        certificate = x509.load_der_x509_certificate(der)
        if not _verify(certificate.public_key(), proof, _payload(int(sent))):
            return None
        return principal

    def _certificate_principal(self, der: bytes) -> str | None:
        loaded = self._material.current()
        key = (der, loaded.generation)
        with self._lock:
            if key in self._verified:
                return self._verified[key]
        principal = None
        try:
            certificate = x509.load_der_x509_certificate(der)
            store = Store(x509.load_pem_x509_certificates(loaded.ca_pem))
            PolicyBuilder().store(store).build_client_verifier().verify(certificate, [])
            names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
            principal = tls.principal_from_common_name(str(names[0].value)) if names else None
        except (ValueError, VerificationError):
            principal = None
        with self._lock:
            if len(self._verified) >= _CACHE_MAX:
                self._verified.clear()
            self._verified[key] = principal
        return principal


def principal_from_call(context, verifier: NodeProofVerifier | None) -> str | None:
    """The principal a gRPC call proves by certificate: its TLS client certificate's
    (`ssl.client.auth=required`, or a peer that sent one), else a node proof's, else None."""
    principal = tls.principal_from_grpc(context)
    if principal is not None or verifier is None:
        return principal
    return verifier.principal(context.invocation_metadata())
