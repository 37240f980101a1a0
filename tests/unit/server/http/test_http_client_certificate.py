"""A verified client certificate (mTLS) logs in to the console and authenticates scrapers as
`User:<CN>`, without a form. The TLS wrapping of the HTTP port belongs to the TLS branch; here the
test wraps the real server's listening socket itself (CA-verified, client certificate optional),
which is what the handler sees either way: an `ssl.SSLSocket` with a verified peer certificate."""

from __future__ import annotations

import datetime
import http.client
import ipaddress
import json
import logging
import ssl

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.support.console_server import console_server


def _certificate(path, common_name: str, issuer=None, is_ca: bool = False, ip: str | None = None):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    issuer_name, issuer_key = (name, key) if issuer is None else (issuer[0].subject, issuer[1])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder().subject_name(name).issuer_name(issuer_name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
    )
    if ip is not None:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]), critical=False)
    certificate = builder.sign(issuer_key, hashes.SHA256())
    (path / f"{common_name}.crt").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    (path / f"{common_name}.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return certificate, key


@pytest.fixture
def tls(tmp_path):
    ca = _certificate(tmp_path, "test-ca", is_ca=True)
    _certificate(tmp_path, "node", issuer=ca, ip="127.0.0.1")
    for user in ("alice", "scraper"):
        _certificate(tmp_path, user, issuer=ca)
    with console_server() as server:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(tmp_path / "test-ca.crt"))
        context.load_cert_chain(tmp_path / "node.crt", tmp_path / "node.key")
        context.verify_mode = ssl.CERT_OPTIONAL           # Kafka's ssl.client.auth=requested
        server._server.socket = context.wrap_socket(server._server.socket, server_side=True)
        yield server, tmp_path


def get(server, directory, path: str, user: str | None):
    context = ssl.create_default_context(cafile=str(directory / "test-ca.crt"))
    if user is not None:
        context.load_cert_chain(directory / f"{user}.crt", directory / f"{user}.key")
    connection = http.client.HTTPSConnection("127.0.0.1", server.port, context=context, timeout=10)
    connection.request("GET", path)
    response = connection.getresponse()
    body = response.read().decode()
    connection.close()
    return response, body


def test_a_client_certificate_logs_in_to_the_console_without_a_form(tls, caplog):
    server, directory = tls
    response, _ = get(server, directory, "/", None)
    assert response.status == 303 and response.headers["Location"] == "/login"
    with caplog.at_level(logging.INFO, logger="freshet.audit"):
        response, page = get(server, directory, "/", "alice")
    assert response.status == 200
    assert 'signed in as <b id="principal">User:alice</b>' in page
    assert "<h3>orders " in page and "<h3>audit-log " not in page
    assert response.headers["Set-Cookie"].startswith("__Host-freshet-session=")
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "freshet.audit"]
    assert {"event": "authentication_succeeded", "principal": "User:alice", "host": "127.0.0.1",
            "method": "certificate", "via": "http"} in lines
    response, page = get(server, directory, "/login", "alice")
    assert "Your client certificate identifies you as <b>User:alice</b>" in page


def test_a_scraper_with_a_certificate_needs_no_password_but_still_describe_on_the_cluster(tls):
    server, directory = tls
    assert get(server, directory, "/metrics", "scraper")[0].status == 200
    response, text = get(server, directory, "/metrics", "alice")
    assert response.status == 403 and text == "User:alice is not authorized to Describe the cluster\n"
    assert get(server, directory, "/metrics", None)[0].status == 401
