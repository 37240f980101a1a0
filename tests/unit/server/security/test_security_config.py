"""The node's authentication keys (server/config.py) and the settings the node builds from them.

Goal: security is off by default, each key is parsed and a bad value refused naming the key, the
bootstrap password is read from its file at load and never shown. Method: load_node_config with
explicit inputs, as tests/unit/server/test_server_config.py.
"""

from __future__ import annotations

import pytest
from freshet.server.config import load_node_config
from freshet.server.errors import NodeConfigError
from freshet.server.node_security import security_settings
from freshet.server.security import certificates

QUORUM = "1@127.0.0.1:9093"


def load(*sets: str):
    flags = {"node.id": 1, "data.dir": "/tmp/freshet-test-node", "listen": "127.0.0.1:9092", "controller.quorum": QUORUM}
    return load_node_config(flags, list(sets), None, environ={})


def test_security_is_off_by_default():
    config = load()
    assert config.security_protocol == "PLAINTEXT"
    assert not config.is_secure and not config.is_sasl
    assert config.super_users == frozenset()
    assert config.allow_everyone_if_no_acl_found is False
    assert config.sasl_enabled_mechanisms == ("SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN")
    assert config.bootstrap_user is None and config.bootstrap_password is None
    assert security_settings(config).enabled is False


def test_security_keys_are_parsed(tmp_path):
    password_file = tmp_path / "admin.password"
    password_file.write_text("correct horse battery staple\n")
    ca = certificates.create_ca()
    node = certificates.issue(ca, "freshet-node", ("localhost", "127.0.0.1"))
    for name, data in (("ca.pem", ca.certificate_pem), ("node.pem", node.certificate_pem), ("node.key", node.key_pem)):
        certificates.write_private(str(tmp_path / name), data)
    config = load(
        "security.protocol=sasl_ssl",
        f"ssl.certificate.location={tmp_path / 'node.pem'}",
        f"ssl.key.location={tmp_path / 'node.key'}",
        f"ssl.ca.location={tmp_path / 'ca.pem'}",
        "super.users=User:admin; User:freshet-node",
        "allow.everyone.if.no.acl.found=true",
        "sasl.enabled.mechanisms=SCRAM-SHA-512,plain",
        "security.bootstrap.user=admin",
        f"security.bootstrap.password.file={password_file}",
    )
    assert config.security_protocol == "SASL_SSL" and config.is_sasl and config.is_secure
    assert config.super_users == frozenset({"User:admin", "User:freshet-node"})
    assert config.sasl_enabled_mechanisms == ("SCRAM-SHA-512", "PLAIN")
    assert config.bootstrap_user == "admin"
    assert config.bootstrap_password == "correct horse battery staple"
    assert "correct horse" not in repr(config)
    settings = security_settings(config)
    assert settings.enabled and settings.allow_if_no_acl
    assert settings.super_users == config.super_users


@pytest.mark.parametrize(
    ("setting", "key"),
    [
        ("security.protocol=SASL_PLAINTEXT", "security.protocol"),
        ("super.users=admin", "super.users"),
        ("super.users=Group:x", "super.users"),
        ("allow.everyone.if.no.acl.found=maybe", "allow.everyone.if.no.acl.found"),
        ("sasl.enabled.mechanisms=GSSAPI", "sasl.enabled.mechanisms"),
        ("sasl.enabled.mechanisms=", "sasl.enabled.mechanisms"),
        ("security.bootstrap.user=a:b", "security.bootstrap.user"),
    ],
)
def test_bad_security_values_are_refused_naming_the_key(setting, key):
    with pytest.raises(NodeConfigError) as refused:
        load(setting)
    assert key in str(refused.value)


def test_the_bootstrap_user_needs_both_keys_and_a_readable_file(tmp_path):
    with pytest.raises(NodeConfigError, match="security.bootstrap.password.file"):
        load("security.bootstrap.user=admin")
    with pytest.raises(NodeConfigError, match="security.bootstrap.user"):
        load(f"security.bootstrap.password.file={tmp_path / 'p'}")
    with pytest.raises(NodeConfigError, match="cannot read"):
        load("security.bootstrap.user=admin", f"security.bootstrap.password.file={tmp_path / 'missing'}")
    empty = tmp_path / "empty"
    empty.write_text("")
    with pytest.raises(NodeConfigError, match="empty") as refused:
        load("security.bootstrap.user=admin", f"security.bootstrap.password.file={empty}")
    assert "\n" not in str(refused.value)
