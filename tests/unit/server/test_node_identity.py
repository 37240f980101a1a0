"""server/security/node_identity.py: a calling node is `User:<CN>` on gRPC without TLS client auth.

Goal: with ssl.client.auth=requested (grpcio then sends no CertificateRequest) a node calling
another node is still identified by its certificate, and nothing else is: a client without the
proof, a certificate from another CA, a stale or forged proof give no principal. Method: a real
grpc.aio server with the node's dynamic TLS credentials on loopback, called through
`inter_node_channel` and through a plain TLS channel; the verifier fed hand-made metadata.
"""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from freshet.server.security import certificates, node_identity, tls


@pytest.fixture
def material(tmp_path):
    def make(ca, common_name, directory):
        directory.mkdir()
        issued = certificates.issue(ca, common_name, ("localhost", "127.0.0.1"))
        paths = {name: str(directory / name) for name in ("ca.pem", "node.pem", "node.key")}
        certificates.write_private(paths["ca.pem"], ca.certificate_pem)
        certificates.write_private(paths["node.pem"], issued.certificate_pem)
        certificates.write_private(paths["node.key"], issued.key_pem)
        return tls.TlsMaterial(tls.TlsSettings(paths["node.pem"], paths["node.key"], paths["ca.pem"], "requested"))

    ca = certificates.create_ca()
    return {
        "server": make(ca, "freshet-node", tmp_path / "server"),
        "node": make(ca, "freshet-node-2", tmp_path / "node"),
        "stranger": make(certificates.create_ca("other"), "freshet-node", tmp_path / "stranger"),
    }


def test_a_node_is_named_by_its_certificate_over_grpc_and_a_plain_tls_client_is_not(material):
    async def scenario():
        server_material = material["server"]
        verifier = node_identity.NodeProofVerifier(server_material)
        seen = []

        async def handler(request, context):
            seen.append(node_identity.principal_from_call(context, verifier))
            return b"ok"

        server = grpc.aio.server()
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler("t.T", {"M": grpc.unary_unary_rpc_method_handler(handler)}),)
        )
        port = server.add_secure_port("127.0.0.1:0", server_material.grpc_server_credentials())
        await server.start()
        try:
            for name in ("node", "stranger"):
                channel = node_identity.inter_node_channel(f"127.0.0.1:{port}", [], material[name])
                try:
                    await channel.unary_unary("/t.T/M")(b"x", timeout=5)
                except grpc.aio.AioRpcError as error:
                    seen.append(f"refused: {error.code().name}")
                await channel.close()
            ca_pem = server_material.current().ca_pem
            plain = grpc.aio.secure_channel(f"127.0.0.1:{port}", grpc.ssl_channel_credentials(ca_pem))
            await plain.unary_unary("/t.T/M")(b"x", timeout=5)
            await plain.close()
        finally:
            await server.stop(None)
        return seen

    seen = asyncio.run(scenario())
    # The stranger does not trust the server's CA: its TLS handshake fails before any call.
    assert seen == ["User:freshet-node-2", "refused: UNAVAILABLE", None]


def proof_metadata(material: tls.TlsMaterial, time_ms: int) -> list[tuple[str, object]]:
    loaded = material.current()
    key = serialization.load_pem_private_key(loaded.key_pem, password=None)
    der = x509.load_pem_x509_certificate(loaded.certificate_pem).public_bytes(serialization.Encoding.DER)
    return [
        (node_identity.CERTIFICATE_KEY, der),
        (node_identity.PROOF_KEY, node_identity._sign(key, node_identity._payload(time_ms))),
        (node_identity.TIME_KEY, str(time_ms)),
    ]


def test_the_verifier_refuses_strangers_stale_and_forged_proofs(material):
    verifier = node_identity.NodeProofVerifier(material["server"])
    now = int(time.time() * 1000)
    assert verifier.principal(proof_metadata(material["node"], now), now) == "User:freshet-node-2"
    assert verifier.principal(proof_metadata(material["stranger"], now), now) is None
    stale = now - node_identity.PROOF_WINDOW_MS - 1
    assert verifier.principal(proof_metadata(material["node"], stale), now) is None
    forged = dict(proof_metadata(material["node"], now))
    forged[node_identity.TIME_KEY] = str(now + 1)                   # signature over another time
    assert verifier.principal(list(forged.items()), now) is None
    assert verifier.principal([], now) is None
