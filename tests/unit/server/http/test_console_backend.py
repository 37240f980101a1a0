"""ConsoleBackend.run_handler: a Controller handler run in-process as the viewer.

Goal: the handler sees the viewer as the current caller (so its own authorization decides), its
domain errors become the refusal a gRPC client gets (code and message from server/status.py), a
handler that does not finish in time is REQUEST_TIMED_OUT, and the caller is unbound afterwards.
Method: a servicer with `status.handler`-decorated methods on an event loop in a thread.
"""

from __future__ import annotations

import asyncio
import threading

import pytest
from freshet.metadata.image import EMPTY_IMAGE
from freshet.server import status
from freshet.server.errors import AuthorizationError
from freshet.server.http.console_data.backend import ActionRefused, ConsoleBackend, node_transport
from freshet.server.security import rules
from freshet.server.security.authorizer import Caller, current_caller
from freshet.v1 import common_pb2


class FakeController:
    node_id = 1

    @status.handler()
    async def WhoAmI(self, request, context):  # noqa: N802 - gRPC name
        assert context.time_remaining() > 0
        if current_caller().principal == "User:bob":
            raise AuthorizationError(common_pb2.TOPIC_AUTHORIZATION_FAILED, "User:bob is not authorized to Delete topic 'a'")
        return (current_caller(), request)

    @status.handler()
    async def Slow(self, request, context):  # noqa: N802
        await asyncio.sleep(30)


@pytest.fixture
def backend():
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    transport = node_transport("127.0.0.1:1", None)
    yield ConsoleBackend(1, lambda: EMPTY_IMAGE, rules.allow_all(), loop, FakeController(), transport)
    transport.close()
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    loop.close()


def test_the_handler_runs_as_the_viewer(backend):
    caller, request = backend.run_handler(Caller("User:alice", "10.0.0.7"), "WhoAmI", "req")
    assert (caller.principal, caller.host, request) == ("User:alice", "10.0.0.7", "req")
    assert current_caller().principal == "User:ANONYMOUS"            # nothing left bound on this thread


def test_a_refusal_is_the_grpc_clients(backend):
    with pytest.raises(ActionRefused) as refused:
        backend.run_handler(Caller("User:bob", "10.0.0.8"), "WhoAmI", "req")
    assert refused.value.code == common_pb2.TOPIC_AUTHORIZATION_FAILED
    assert refused.value.code_name == "TOPIC_AUTHORIZATION_FAILED"
    assert str(refused.value) == "TOPIC_AUTHORIZATION_FAILED: User:bob is not authorized to Delete topic 'a'"


def test_a_handler_that_takes_too_long_is_timed_out(backend):
    with pytest.raises(ActionRefused) as refused:
        backend.run_handler(Caller(), "Slow", None, timeout_s=0.2)
    assert refused.value.code_name == "REQUEST_TIMED_OUT"
