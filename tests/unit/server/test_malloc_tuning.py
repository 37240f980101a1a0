"""server/malloc_tuning.py: the node's glibc malloc thresholds, and when it leaves them alone."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest
from freshet.server import malloc_tuning


class FakeLibc:
    """Records mallopt calls; answers `answer` (glibc answers 1 on success, musl's stub 0)."""

    def __init__(self, answer: int = 1) -> None:
        self.calls: list[tuple[int, int]] = []
        self.answer = answer

    def mallopt(self, parameter: int, value: int) -> int:
        self.calls.append((parameter, value))
        return self.answer


def test_sets_the_mmap_and_trim_thresholds():
    libc = FakeLibc()
    assert malloc_tuning.keep_freed_memory({}, libc) is True
    assert libc.calls == [(malloc_tuning.M_MMAP_THRESHOLD, 32 * 1024 * 1024), (malloc_tuning.M_TRIM_THRESHOLD, 256 * 1024 * 1024)]


@pytest.mark.parametrize("environ", [
    {"FRESHET_MALLOC_TUNING": "off"},
    {"FRESHET_MALLOC_TUNING": "OFF"},
    {"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"},
])
def test_the_operator_s_choice_wins(environ):
    libc = FakeLibc()
    assert malloc_tuning.keep_freed_memory(environ, libc) is False
    assert libc.calls == []


def test_other_tunables_do_not_stop_it():
    libc = FakeLibc()
    assert malloc_tuning.keep_freed_memory({"GLIBC_TUNABLES": "glibc.pthread.rseq=0", "FRESHET_MALLOC_TUNING": "on"}, libc)
    assert len(libc.calls) == 2


def test_a_c_library_that_refuses_or_lacks_mallopt_changes_nothing():
    assert malloc_tuning.keep_freed_memory({}, FakeLibc(answer=0)) is False
    assert malloc_tuning.keep_freed_memory({}, object()) is False


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's mallopt only")
def test_the_real_glibc_takes_both_thresholds():
    """In a fresh interpreter (mallopt is process-wide): glibc accepts both thresholds."""
    code = (
        "from freshet.server import malloc_tuning\n"
        "print(malloc_tuning.keep_freed_memory({}))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True"


def test_the_node_tunes_malloc_before_it_starts(monkeypatch):
    """`freshet server start` (node.run) takes the thresholds first, even when the start then
    fails (here: an unknown event loop)."""
    from freshet.server import node

    steps: list[str] = []
    monkeypatch.setattr(node, "configure_logging", lambda *args: steps.append("logging"))
    monkeypatch.setattr(node.malloc_tuning, "keep_freed_memory", lambda: steps.append("malloc") or True)
    monkeypatch.setenv(node.EVENT_LOOP_ENV, "no-such-loop")
    config = type("Config", (), {"node_id": 1, "log_level": "INFO"})()
    assert node.run(config) == 1
    assert steps == ["logging", "malloc"]
