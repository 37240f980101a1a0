"""server/security/tls.py and the TLS node keys: loading, reload on change, principals, errors.

Goal: rotated files reach the next handshake without a restart; a broken rotation never takes TLS
down (the previous material stays until a good one arrives); certificates map to `User:<CN>`;
every misconfiguration is one readable line naming the key. Method: real certificates from
certificates.py in tmp_path, real TLS handshakes over a socketpair (no network), and the config
loader fed flags the way `server start` is.
"""

from __future__ import annotations

import os
import socket
import ssl
import threading

import pytest
from cryptography import x509
from freshet.server.config import load_node_config
from freshet.server.errors import NodeConfigError
from freshet.server.security import certificates, tls


@pytest.fixture
def pki(tmp_path):
    ca = certificates.create_ca()
    node = certificates.issue(ca, "freshet-node", ("localhost", "127.0.0.1"))
    paths = {name: str(tmp_path / name) for name in ("ca.pem", "node.pem", "node.key")}
    certificates.write_private(paths["ca.pem"], ca.certificate_pem)
    certificates.write_private(paths["node.pem"], node.certificate_pem)
    certificates.write_private(paths["node.key"], node.key_pem)
    return ca, node, paths


def settings_of(paths: dict, client_auth: str = "requested") -> tls.TlsSettings:
    return tls.TlsSettings(paths["node.pem"], paths["node.key"], paths["ca.pem"], client_auth)


def rotate(ca, paths) -> certificates.Issued:
    issued = certificates.issue(ca, "freshet-node", ("localhost", "127.0.0.1"))
    certificates.write_private(paths["node.key"], issued.key_pem)
    certificates.write_private(paths["node.pem"], issued.certificate_pem)
    return issued


def handshake(server_context: ssl.SSLContext, ca_file: str, client: certificates.Issued | None = None, tmp=None):
    """(serial the client was served, principal the server saw) over a socketpair. Raises the
    server's error when it refused the client (TLS 1.3: the client learns it only later)."""
    left, right = socket.socketpair()
    seen: dict = {}

    def serve() -> None:
        try:
            with server_context.wrap_socket(left, server_side=True) as server:
                seen["principal"] = tls.principal_from_ssl(server)
                server.recv(1)
        except (ssl.SSLError, OSError) as error:
            seen["error"] = error

    thread = threading.Thread(target=serve)
    thread.start()
    context = ssl.create_default_context(cafile=ca_file)
    if client is not None:
        certificate, key = os.path.join(tmp, "client.pem"), os.path.join(tmp, "client.key")
        certificates.write_private(certificate, client.certificate_pem)
        certificates.write_private(key, client.key_pem)
        context.load_cert_chain(certificate, key)
    with context.wrap_socket(right, server_hostname="localhost") as connection:
        serial = x509.load_der_x509_certificate(connection.getpeercert(binary_form=True)).serial_number
        connection.send(b"x")
    thread.join(5)
    if "error" in seen:
        raise seen["error"]
    return serial, seen.get("principal")


def test_a_listener_serves_rotated_files_to_the_next_handshake(pki, tmp_path):
    ca, node, paths = pki
    material = tls.TlsMaterial(settings_of(paths), check_interval_s=0)
    listener = material.server_context()
    assert handshake(listener, paths["ca.pem"]) == (node.serial_number, None)
    rotated = rotate(ca, paths)
    assert handshake(listener, paths["ca.pem"])[0] == rotated.serial_number     # same listener context
    assert material.generation == 2
    assert material.current().certificate_pem == rotated.certificate_pem


def test_no_reload_before_the_check_interval(pki):
    ca, node, paths = pki
    material = tls.TlsMaterial(settings_of(paths), check_interval_s=3600)
    rotate(ca, paths)
    assert material.current().certificate_pem == node.certificate_pem
    assert material.reload_now().generation == 2


def test_a_broken_rotation_keeps_the_previous_material_until_a_good_one(pki, tmp_path):
    ca, node, paths = pki
    material = tls.TlsMaterial(settings_of(paths), check_interval_s=0)
    other = certificates.issue(ca, "freshet-node", ("localhost",))
    certificates.write_private(paths["node.key"], other.key_pem)            # key first: a mismatch
    assert material.generation == 1 and material.reload_failures == 1
    assert handshake(material.server_context(), paths["ca.pem"])[0] == node.serial_number
    certificates.write_private(paths["node.pem"], other.certificate_pem)    # the pair is complete
    assert material.generation == 2
    assert handshake(material.server_context(), paths["ca.pem"])[0] == other.serial_number


def test_a_client_certificate_maps_to_its_common_name(pki, tmp_path):
    ca, _, paths = pki
    material = tls.TlsMaterial(settings_of(paths, "requested"))
    alice = certificates.issue(ca, "alice")
    assert handshake(material.server_context(), paths["ca.pem"], alice, str(tmp_path))[1] == "User:alice"
    assert handshake(material.server_context(), paths["ca.pem"])[1] is None      # requested, not required


def test_required_client_auth_refuses_a_client_without_certificate(pki):
    _, _, paths = pki
    material = tls.TlsMaterial(settings_of(paths, "required"))
    with pytest.raises((ssl.SSLError, OSError)):
        handshake(material.server_context(), paths["ca.pem"])


def test_a_certificate_from_another_ca_is_not_a_principal(pki, tmp_path):
    _, _, paths = pki
    material = tls.TlsMaterial(settings_of(paths, "requested"))
    stranger = certificates.issue(certificates.create_ca("other"), "mallory")
    with pytest.raises((ssl.SSLError, OSError)):
        handshake(material.server_context(), paths["ca.pem"], stranger, str(tmp_path))


def test_principal_helpers():
    class Context:
        def __init__(self, auth):
            self._auth = auth

        def auth_context(self):
            return self._auth

    assert tls.principal_from_grpc(Context({"x509_common_name": [b"freshet-node"]})) == "User:freshet-node"
    assert tls.principal_from_grpc(Context({"transport_security_type": [b"ssl"]})) is None
    assert tls.principal_from_peercert({"subject": ((("organizationName", "x"),), (("commonName", "bob"),))}) == "User:bob"
    assert tls.principal_from_peercert({}) is None
    assert tls.principal_from_ssl(None) is None


# -- the node keys ---------------------------------------------------------------------------------

BASE = {"node.id": 1, "data.dir": "/tmp/unused", "listen": "127.0.0.1:19092", "controller.quorum": "1@127.0.0.1:19093"}


def tls_options(paths: dict, **overrides) -> list[str]:
    values = {
        "security.protocol": "SSL",
        "ssl.certificate.location": paths["node.pem"],
        "ssl.key.location": paths["node.key"],
        "ssl.ca.location": paths["ca.pem"],
        **overrides,
    }
    return [f"{key}={value}" for key, value in values.items() if value is not None]


def config_error(options: list[str]) -> str:
    with pytest.raises(NodeConfigError) as error:
        load_node_config(BASE, options)
    message = str(error.value)
    assert "\n" not in message
    return message


def test_ssl_config_loads_and_defaults(pki):
    _, _, paths = pki
    config = load_node_config(BASE, tls_options(paths))
    assert config.is_tls and config.security_protocol == "SSL"
    assert config.tls == tls.TlsSettings(paths["node.pem"], paths["node.key"], paths["ca.pem"], "requested")
    plain = load_node_config(BASE, [])
    assert plain.security_protocol == "PLAINTEXT" and plain.tls is None and not plain.is_tls


def test_ssl_config_errors_are_one_line_naming_the_key(pki, tmp_path):
    ca, _, paths = pki
    assert config_error(["security.protocol=TLS"]).startswith("--set security.protocol: 'TLS' is not one of")
    assert "needs ssl.certificate.location, ssl.key.location, ssl.ca.location" in config_error(["security.protocol=SASL_SSL"])
    missing = config_error(tls_options(paths, **{"ssl.ca.location": str(tmp_path / "nope.pem")}))
    assert missing.startswith("--set ssl.ca.location:") and "does not exist" in missing
    (tmp_path / "junk.pem").write_text("not a certificate")
    assert "is not a PEM file" in config_error(tls_options(paths, **{"ssl.certificate.location": str(tmp_path / "junk.pem")}))
    other = certificates.issue(ca, "x")
    certificates.write_private(str(tmp_path / "other.key"), other.key_pem)
    mismatch = config_error(tls_options(paths, **{"ssl.key.location": str(tmp_path / "other.key")}))
    assert mismatch.startswith("--set ssl.key.location:") and "is not the key of" in mismatch
    assert "is not one of none, requested, required" in config_error(tls_options(paths, **{"ssl.client.auth": "maybe"}))
    assert config_error(["http.metrics.plaintext.listen=127.0.0.1:19099"]).startswith("http.metrics.plaintext.listen: only with")
    assert "is also" in config_error(tls_options(paths, **{"http.metrics.plaintext.listen": "127.0.0.1:19092"}))
