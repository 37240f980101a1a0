"""A filesystem filling up, for the ENOSPC tests: one os write function replaced by a fake.

Not a test module; imported by the storage and metadata unit tests of a full disk.
"""

from __future__ import annotations

import errno
import os

import pytest


class FillingDisk:
    """Replaces `os.<name>` (pwrite or write) until the test's monkeypatch is undone: the next
    `room` bytes are written for real, then every call raises ENOSPC, as a filesystem that fills
    up part-way through a write does."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, name: str, room: int) -> None:
        self.real = getattr(os, name)
        self.room = room
        self.failures = 0
        monkeypatch.setattr(os, name, self)

    def __call__(self, fd, data, *position):
        view = memoryview(data)
        if self.room <= 0:
            self.failures += 1
            raise OSError(errno.ENOSPC, "No space left on device")
        written = self.real(fd, view[: min(self.room, len(view))], *position)
        self.room -= written
        return written
