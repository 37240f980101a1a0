"""The server's SASL state machines (SCRAM-SHA-256/512, PLAIN), the session table and the login
rate limiter, driven with messages and a fake clock.

Goal: a password is accepted exactly when it is right, no answer tells an unknown user from a
wrong password, and messages out of order or from another exchange are refused. Method: the RFC
7677 example exchange replayed through ScramServer with the RFC's nonces (reference: RFC 7677
section 3; RFC 5802 sections 5 and 7), the SDK's ScramClient against the server, and hand-made
malformed messages.
"""

from __future__ import annotations

import base64
import dataclasses

import pytest
from freshet.client._security import ScramClient
from freshet.metadata.image import EMPTY_IMAGE
from freshet.metadata.security import ScramCredential, ScramMechanism
from freshet.server.errors import AuthenticationError, IllegalSaslStateError, UnsupportedSaslMechanismError
from freshet.server.security import sasl
from freshet.server.security.authentication import Authenticator
from freshet.server.security.sessions import SessionTable

SHA256 = ScramMechanism.SCRAM_SHA_256
SHA512 = ScramMechanism.SCRAM_SHA_512

# RFC 7677 section 3: user "user", password "pencil".
RFC_SALT = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
RFC_CLIENT_NONCE = "rOprNGfwEbeRWgbNEkqO"
RFC_SERVER_NONCE_TEXT = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
RFC_CLIENT_FIRST = b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
RFC_SERVER_FIRST = b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
RFC_CLIENT_FINAL = (
    b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
)
RFC_SERVER_FINAL = b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="


def users(**passwords: str) -> dict:
    table = {}
    for name, password in passwords.items():
        for mechanism in (SHA256, SHA512):
            table[(name, mechanism)] = ScramCredential.from_password(mechanism, password, iterations=4096)
    return table


def lookup(table: dict):
    return lambda user, mechanism: table.get((user, mechanism))


class _RfcNonceServer(sasl.ScramServer):
    """A ScramServer whose server nonce is the RFC's text (the class takes bytes it base64s)."""

    def __init__(self, credential_of):
        super().__init__(SHA256, credential_of)
        self._server_nonce = RFC_SERVER_NONCE_TEXT


def rfc_table() -> dict:
    return {("user", SHA256): ScramCredential.from_password(SHA256, "pencil", iterations=4096, salt=RFC_SALT)}


def test_rfc7677_exchange_through_the_state_machine():
    server = _RfcNonceServer(lookup(rfc_table()))
    assert server.evaluate(RFC_CLIENT_FIRST) == RFC_SERVER_FIRST
    assert not server.is_complete
    assert server.evaluate(RFC_CLIENT_FINAL) == RFC_SERVER_FINAL
    assert server.is_complete
    assert server.user == "user"


def test_the_sdk_scram_client_produces_the_rfc7677_messages():
    client = ScramClient("SCRAM-SHA-256", "user", "pencil", nonce=RFC_CLIENT_NONCE)
    assert client.first_message() == RFC_CLIENT_FIRST
    assert client.final_message(RFC_SERVER_FIRST) == RFC_CLIENT_FINAL
    client.verify_final(RFC_SERVER_FINAL)


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_sdk_client_against_server_accepts_the_right_password(mechanism):
    server = sasl.new_sasl_server(mechanism, lookup(users(alice="s3cret")), ("SCRAM-SHA-256", "SCRAM-SHA-512"))
    client = ScramClient(mechanism, "alice", "s3cret")
    final = client.final_message(server.evaluate(client.first_message()))
    client.verify_final(server.evaluate(final))
    assert server.is_complete and server.user == "alice"


def test_wrong_password_and_unknown_user_fail_alike():
    messages = []
    for user, password in (("alice", "wrong"), ("mallory", "anything")):
        server = sasl.ScramServer(SHA512, lookup(users(alice="s3cret")))
        client = ScramClient("SCRAM-SHA-512", user, password)
        server_first = server.evaluate(client.first_message())
        assert b",s=" in server_first and b",i=" in server_first      # an unknown user gets a salt too
        with pytest.raises(AuthenticationError) as refused:
            server.evaluate(client.final_message(server_first))
        messages.append(str(refused.value))
        assert not server.is_complete and server.user is None
    assert messages[0] == messages[1] == (
        "Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512"
    )


def test_an_unknown_user_gets_the_same_salt_twice():
    first = sasl.ScramServer(SHA512, lookup({})).evaluate(b"n,,n=ghost,r=abc")
    second = sasl.ScramServer(SHA512, lookup({})).evaluate(b"n,,n=ghost,r=abc")
    salt = lambda answer: answer.split(b",")[1]  # noqa: E731
    assert salt(first) == salt(second)


def test_a_tampered_proof_is_refused():
    server = sasl.ScramServer(SHA256, lookup(users(alice="s3cret")))
    client = ScramClient("SCRAM-SHA-256", "alice", "s3cret")
    final = client.final_message(server.evaluate(client.first_message()))
    without, _, proof = final.rpartition(b",p=")
    flipped = bytearray(base64.b64decode(proof))
    flipped[0] ^= 1
    with pytest.raises(AuthenticationError):
        server.evaluate(without + b",p=" + base64.b64encode(bytes(flipped)))


def test_a_final_message_with_another_nonce_is_refused():
    server = sasl.ScramServer(SHA256, lookup(users(alice="s3cret")))
    client = ScramClient("SCRAM-SHA-256", "alice", "s3cret")
    server_first = server.evaluate(client.first_message())
    nonce = server_first.split(b",")[0][2:]
    final = client.final_message(server_first)
    with pytest.raises(IllegalSaslStateError, match="nonce"):
        server.evaluate(final.replace(nonce, nonce[:-1] + (b"A" if nonce[-1:] != b"A" else b"B")))


def test_a_replayed_final_message_fails_in_a_new_exchange():
    """A recorded client-final belongs to the server nonce of its exchange (RFC 5802 section 9)."""
    table = users(alice="s3cret")
    server = sasl.ScramServer(SHA256, lookup(table))
    client = ScramClient("SCRAM-SHA-256", "alice", "s3cret")
    first = client.first_message()
    final = client.final_message(server.evaluate(first))
    server.evaluate(final)
    replay = sasl.ScramServer(SHA256, lookup(table))
    replay.evaluate(first)
    with pytest.raises(IllegalSaslStateError, match="nonce"):
        replay.evaluate(final)


def test_messages_out_of_order_are_illegal_state():
    table = users(alice="s3cret")
    with pytest.raises(IllegalSaslStateError):
        sasl.ScramServer(SHA256, lookup(table)).evaluate(b"c=biws,r=abc,p=AAAA")      # a final message first
    complete = sasl.ScramServer(SHA256, lookup(table))
    client = ScramClient("SCRAM-SHA-256", "alice", "s3cret")
    complete.evaluate(client.final_message(complete.evaluate(client.first_message())))
    with pytest.raises(IllegalSaslStateError, match="complete"):
        complete.evaluate(client.first_message())
    failed = sasl.ScramServer(SHA256, lookup(table))
    with pytest.raises(IllegalSaslStateError):
        failed.evaluate(b"n,,n=alice")
    with pytest.raises(IllegalSaslStateError, match="failed"):
        failed.evaluate(b"n,,n=alice,r=abc")                                      # no second chance


@pytest.mark.parametrize(
    "message",
    [
        b"p=tls-unique,,n=alice,r=abc",        # channel binding
        b"n,,m=ext,n=alice,r=abc",             # mandatory extension
        b"n,,n=alice",                         # no nonce
        b"x,,n=alice,r=abc",                   # bad GS2 flag
        b"n,a=bob,n=alice,r=abc",              # authzid of another user
        b"n,,n=al=ZZice,r=abc",                # bad escape
        b"\xff\xfe",                           # not UTF-8
    ],
)
def test_malformed_client_first_messages_are_refused(message):
    with pytest.raises(IllegalSaslStateError):
        sasl.ScramServer(SHA256, lookup(users(alice="s3cret"))).evaluate(message)


def test_channel_binding_must_be_biws():
    server = sasl.ScramServer(SHA256, lookup(users(alice="s3cret")))
    client = ScramClient("SCRAM-SHA-256", "alice", "s3cret")
    final = client.final_message(server.evaluate(client.first_message()))
    with pytest.raises(IllegalSaslStateError, match="channel binding"):
        server.evaluate(final.replace(b"c=biws", b"c=eSws"))


def test_escaped_user_names_are_unescaped():
    server = sasl.ScramServer(SHA256, lambda user, mechanism: None)
    server.evaluate(b"n,,n=a=3Db=2Cc,r=abc")
    assert server.claimed_user == "a=b,c"


def test_plain_accepts_the_password_and_refuses_others_alike():
    table = users(alice="s3cret")
    server = sasl.PlainServer(lookup(table))
    assert server.evaluate(b"\0alice\0s3cret") == b""
    assert server.is_complete and server.user == "alice"
    texts = []
    for message in (b"\0alice\0wrong", b"\0nobody\0s3cret"):
        with pytest.raises(AuthenticationError) as refused:
            sasl.PlainServer(lookup(table)).evaluate(message)
        texts.append(str(refused.value))
    assert texts[0] == texts[1]
    with pytest.raises(IllegalSaslStateError):
        sasl.PlainServer(lookup(table)).evaluate(b"alice\0s3cret")
    with pytest.raises(IllegalSaslStateError):
        sasl.PlainServer(lookup(table)).evaluate(b"bob\0alice\0s3cret")
    with pytest.raises(IllegalSaslStateError):
        server.evaluate(b"\0alice\0s3cret")                        # after completion


def test_a_mechanism_not_enabled_is_refused():
    with pytest.raises(UnsupportedSaslMechanismError, match="PLAIN"):
        sasl.new_sasl_server("PLAIN", lookup({}), ("SCRAM-SHA-512",))
    with pytest.raises(UnsupportedSaslMechanismError):
        sasl.new_sasl_server("GSSAPI", lookup({}), ("SCRAM-SHA-512",))


def test_no_secret_in_repr():
    server = sasl.PlainServer(lookup(users(alice="s3cret")))
    server.evaluate(b"\0alice\0s3cret")
    client = ScramClient("SCRAM-SHA-512", "alice", "s3cret")
    assert "s3cret" not in repr(server) + repr(client)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_session_tokens_expire():
    clock = FakeClock()
    table = SessionTable(lifetime_ms=10_000, clock=clock)
    token = table.issue("User:alice")
    assert table.principal(token) == "User:alice"
    assert table.principal(token + "x") is None
    clock.now += 9.9
    assert table.principal(token) == "User:alice"
    clock.now += 0.2
    assert table.principal(token) is None
    assert len(table) == 0
    assert token not in repr(table)


def test_the_session_table_is_bounded_and_drops_expired_then_oldest():
    clock = FakeClock()
    table = SessionTable(lifetime_ms=10_000, sessions_max=3, clock=clock)
    old = table.issue("User:a")
    clock.now += 11
    tokens = [table.issue(f"User:{n}") for n in "bcd"]
    assert table.principal(old) is None
    assert len(table) == 3
    newest = table.issue("User:e")                                 # full, none expired: the oldest goes
    assert len(table) == 3
    assert table.principal(tokens[0]) is None
    assert table.principal(newest) == "User:e"
    assert table.revoke_principal("User:e") == 1
    assert table.principal(newest) is None





class _Call:
    """The little of a grpc ServicerContext that Authenticator.caller_of reads."""

    def __init__(self, token: str) -> None:
        self._metadata = (("authorization", f"Bearer {token}"),)

    def peer(self):
        return "ipv4:10.0.0.5:4242"

    def invocation_metadata(self):
        return self._metadata

    def auth_context(self):
        return {}


def test_a_session_ends_when_its_users_password_changes_or_the_user_goes():
    images = {"now": dataclasses.replace(EMPTY_IMAGE, users={"alice": {SHA512: ScramCredential.from_password(SHA512, "pw", 4096)}})}
    authenticator = Authenticator("SASL_SSL", ("SCRAM-SHA-512",), lambda: images["now"])
    token = authenticator.issue_session("User:alice")
    assert authenticator.caller_of(_Call(token)).principal == "User:alice"
    images["now"] = dataclasses.replace(images["now"], users={"alice": {SHA512: ScramCredential.from_password(SHA512, "new", 4096)}})
    with pytest.raises(AuthenticationError, match="authenticate again"):
        authenticator.caller_of(_Call(token))
    assert authenticator.sessions.session(token) is None             # revoked, not just refused
    token = authenticator.issue_session("User:alice")
    assert authenticator.caller_of(_Call(token)).principal == "User:alice"
    images["now"] = dataclasses.replace(images["now"], users={})
    with pytest.raises(AuthenticationError):
        authenticator.caller_of(_Call(token))
