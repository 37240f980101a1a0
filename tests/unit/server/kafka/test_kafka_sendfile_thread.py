"""server/kafka/sendfile.py's thread path (uvloop has no native sendfile): a reader that stops
reading does not hold a pool thread for ever once the connection closes."""

from __future__ import annotations

import os
import socket
import threading
import time

import pytest
from freshet.server.kafka import sendfile


def test_a_send_to_a_reader_that_stopped_reading_ends_once_the_connection_closes(tmp_path):
    path = tmp_path / "segment"
    path.write_bytes(os.urandom(8 << 20))                 # far more than both socket buffers hold
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    stopped = threading.Event()
    outcome: list[object] = []
    with open(path, "rb") as file:

        def send():
            try:
                outcome.append(sendfile._send_blocking(ours.fileno(), file.fileno(), 0, 8 << 20, stopped))
            except ConnectionError as error:
                outcome.append(error)

        sender = threading.Thread(target=send)
        sender.start()
        time.sleep(0.3)
        assert sender.is_alive()                           # blocked: nobody reads
        stopped.set()
        sender.join(5)
    ours.close()
    theirs.close()
    assert not sender.is_alive()
    assert isinstance(outcome[0], ConnectionError) and "closed" in str(outcome[0])


def test_a_send_to_a_closed_peer_fails_with_a_connection_error(tmp_path):
    path = tmp_path / "segment"
    path.write_bytes(b"x" * 4096)
    ours, theirs = socket.socketpair()
    theirs.close()
    with open(path, "rb") as file, pytest.raises(ConnectionError):
        sendfile._send_blocking(ours.fileno(), file.fileno(), 0, 4096, threading.Event())
    ours.close()
