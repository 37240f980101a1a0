"""`cluster up --secure`'s files: made once per data directory, private, reused, passed to nodes.

Goal: the CA, node certificate and superuser password are created with modes 0700/0600, not
remade on the next run (a restarted secure cluster keeps its CA, so clients keep trusting it),
and every node gets the TLS keys its config accepts. Method: call prepare_security twice on a
tmp_path and read the files and the node settings back.
"""

from __future__ import annotations

import os
import stat

from cryptography import x509
from freshet.server.config import NODE_KEYS
from freshet.server.tools import local_cluster


def test_security_files_are_private_made_once_and_reused(tmp_path):
    first = local_cluster.prepare_security(str(tmp_path))
    names = ("ca.pem", "ca.key", "node.pem", "node.key", "admin.password")
    contents = {name: (tmp_path / "security" / name).read_bytes() for name in names}
    assert stat.S_IMODE(os.stat(first.directory).st_mode) == 0o700
    for name in names:
        assert stat.S_IMODE(os.stat(tmp_path / "security" / name).st_mode) == 0o600, name
    node = x509.load_pem_x509_certificate(contents["node.pem"])
    assert node.subject.rfc4514_string() == "CN=freshet-node"
    sans = node.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sorted(str(value) for value in sans.get_values_for_type(x509.IPAddress)) == ["127.0.0.1", "::1"]
    assert sans.get_values_for_type(x509.DNSName) == ["localhost"]

    second = local_cluster.prepare_security(str(tmp_path))
    assert second == first
    assert {name: (tmp_path / "security" / name).read_bytes() for name in names} == contents


def test_nodes_get_the_tls_keys_and_only_keys_their_config_knows(tmp_path):
    files = local_cluster.prepare_security(str(tmp_path))
    settings = dict(option.split("=", 1) for option in files.node_settings())
    assert settings["security.protocol"] == local_cluster.SECURE_PROTOCOL
    assert settings["ssl.ca.location"] == files.ca_file
    assert settings["ssl.certificate.location"] == files.certificate_file
    assert settings["ssl.key.location"] == files.key_file
    assert set(settings) <= set(NODE_KEYS)
    if "super.users" in NODE_KEYS:
        assert settings["super.users"] == "User:admin;User:freshet-node"
        assert settings["security.bootstrap.password.file"] == files.password_file
