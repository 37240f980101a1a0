"""client/_security.py and the CLI's global --tls-ca: the SDK's security options (kafka-python's
names) and how the CLI hands them to every client.

Goal: bad options fail at construction with one line naming the option; TLS options make TLS
channels; the CLI accepts --tls-ca before or after the command. Method: build configs and clients
directly (no network: channels connect lazily), and call the CLI's argv lifting.
"""

from __future__ import annotations

import grpc
import pytest
from freshet.cli import common
from freshet.client import Admin, Consumer, Producer
from freshet.client._security import SecurityConfig
from freshet.server.security import certificates


@pytest.fixture
def ca_file(tmp_path):
    path = tmp_path / "ca.pem"
    path.write_bytes(certificates.create_ca().certificate_pem)
    return str(path)


def test_plaintext_is_the_default_and_makes_no_credentials():
    config = SecurityConfig()
    assert not config.is_tls and config.channel_credentials() is None


def test_ssl_reads_the_ca_and_makes_tls_channels(ca_file):
    config = SecurityConfig(security_protocol="ssl", ssl_cafile=ca_file)
    assert config.security_protocol == "SSL" and config.is_tls
    assert isinstance(config.channel_credentials(), grpc.ChannelCredentials)
    channel = config.channel_factory()("127.0.0.1:1", [])
    channel.close()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"security_protocol": "TLS"}, "security_protocol must be one of PLAINTEXT, SSL, SASL_SSL"),
        ({"security_protocol": "SSL", "ssl_cafile": "/nonexistent.pem"}, "ssl_cafile: cannot read /nonexistent.pem"),
        ({"security_protocol": "SSL", "ssl_certfile": "/x.pem"}, "ssl_certfile and ssl_keyfile go together"),
        ({"ssl_cafile": "/x.pem"}, "ssl_cafile needs security_protocol='SSL' or 'SASL_SSL'"),
    ],
)
def test_bad_options_are_one_line_value_errors(options, message):
    with pytest.raises(ValueError) as error:
        SecurityConfig(**options)
    assert str(error.value).startswith(message) and "\n" not in str(error.value)


def test_every_client_takes_the_options_and_refuses_unknown_ones(ca_file):
    for client in (
        Admin("127.0.0.1:1", security_protocol="SSL", ssl_cafile=ca_file),
        Producer("127.0.0.1:1", security_protocol="SSL", ssl_cafile=ca_file),
        Consumer("127.0.0.1:1", security_protocol="SSL", ssl_cafile=ca_file),
    ):
        client.close()
    with pytest.raises(TypeError, match="unexpected keyword argument 'ssl_truststore'"):
        Admin("127.0.0.1:1", ssl_truststore="x")
    with pytest.raises(ValueError, match="ssl_cafile: cannot read"):
        Producer("127.0.0.1:1", security_protocol="SSL", ssl_cafile="/nonexistent.pem")


def test_the_cli_lifts_tls_ca_from_after_the_command(monkeypatch, tmp_path):
    assert common.lift_global_options(["topic", "list", "--tls-ca", "ca.pem", "-b", "h:1"]) == [
        "--tls-ca", "ca.pem", "topic", "list", "-b", "h:1",
    ]
    assert common.lift_global_options(["cluster", "status", "--tls-ca=ca.pem"]) == ["--tls-ca", "ca.pem", "cluster", "status"]
    assert common.lift_global_options(["--tls-ca", "ca.pem", "topic", "list"]) == ["--tls-ca", "ca.pem", "topic", "list"]
    monkeypatch.setattr(common, "SECURITY", {})
    common.set_client_security(None, None, None, None)
    assert common.client_security() == {}
    ca = tmp_path / "ca.pem"
    ca.write_bytes(certificates.create_ca().certificate_pem)
    common.set_client_security(str(ca), None, None, None)
    assert common.client_security() == {"security_protocol": "SSL", "ssl_cafile": str(ca)}


class _RefusedCall(grpc.RpcError, grpc.Call):
    """A streaming call the node refused (`code`), as grpc's rendezvous raises itself."""

    def __init__(self, code: grpc.StatusCode) -> None:
        self._code = code

    def code(self):
        return self._code

    def details(self):
        return "the session token is expired or unknown to this node: authenticate again"

    def trailing_metadata(self):
        return ()

    def initial_metadata(self):
        return ()

    def is_active(self):
        return False

    def time_remaining(self):
        return None

    def cancel(self):
        return False

    def add_callback(self, callback):
        return False

    def __next__(self):
        raise self


def test_a_stream_refused_for_its_session_token_fails_retriable_and_other_refusals_pass_through():
    """A node that forgot the session (restart, expiry) refuses the token UNAUTHENTICATED: for the
    clients that is a dropped connection (retriable BrokerUnavailableError), as a Kafka client
    logs in again after a broker restart. Any other status is the call's own."""
    from freshet.client._security import _SessionCall
    from freshet.client._transport import translate_rpc_error
    from freshet.client.errors import BrokerUnavailableError

    refused = _SessionCall(_RefusedCall(grpc.StatusCode.UNAUTHENTICATED))
    with pytest.raises(grpc.RpcError) as raised:
        next(iter(refused))
    error = translate_rpc_error(raised.value, "127.0.0.1:1", "produce stream")
    assert isinstance(error, BrokerUnavailableError) and error.retriable
    assert refused.code() == grpc.StatusCode.UNAVAILABLE
    other = _SessionCall(_RefusedCall(grpc.StatusCode.PERMISSION_DENIED))
    with pytest.raises(grpc.RpcError) as raised:
        next(iter(other))
    assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED
