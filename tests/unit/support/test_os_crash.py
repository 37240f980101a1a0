"""The OS-crash model (tests/support/os_crash.py): what survives a simulated power loss.

Goal: after kill -9 and `roll_back`, a file holds exactly what it held at its last fsync or
fdatasync (file objects and raw descriptors alike), a file never fsynced is empty, a file created
on a recycled inode number does not inherit a deleted file's image, files outside the data
directory are untouched, and a process without the switch is not wrapped at all.
Method: a real child process with the site directory on PYTHONPATH, killed with SIGKILL.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from tests.support import os_crash

CHILD = textwrap.dedent(
    """
    import os, signal, sys
    data = sys.argv[sys.argv.index("--data-dir") + 1]
    fd = os.open(os.path.join(data, "segment.log"), os.O_RDWR | os.O_CREAT, 0o644)
    os.write(fd, b"synced-")
    os.fdatasync(fd)
    os.write(fd, b"lost")
    with open(os.path.join(data, "checkpoint"), "wb") as f:
        f.write(b"v1")
        f.flush()
        os.fsync(f)
    with open(os.path.join(data, "checkpoint"), "r+b") as f:
        f.write(b"v2-unsynced")
    with open(os.path.join(data, "never-synced"), "wb") as f:
        f.write(b"gone")
    for round in range(20):                      # recycle inode numbers
        old = os.path.join(data, "old")
        with open(old, "wb") as f:
            f.write(b"old image")
            os.fsync(f.fileno())
        os.unlink(old)
        with open(os.path.join(data, f"new-{round}"), "wb") as f:
            f.write(b"new, unsynced")
    with open(sys.argv[1], "wb") as f:           # outside the data directory
        f.write(b"outside")
        os.fsync(f.fileno())
    print("wrapped" if os.fsync.__module__ != "posix" else "plain", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
    """
)


def run_child(tmp_path, enabled: bool) -> tuple[str, str]:
    data = tmp_path / "node-1"
    data.mkdir()
    env = dict(os.environ)
    env.update(os_crash.node_environment())
    if not enabled:
        env[os_crash.ENABLE_ENV] = "0"
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path / "outside"), "--data-dir", str(data)],
        env=env, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == -9, result.stderr
    return str(data), result.stdout.strip()


def test_roll_back_keeps_exactly_what_was_fsynced(tmp_path):
    data, wrapped = run_child(tmp_path, enabled=True)
    assert wrapped == "wrapped"
    changed = os_crash.roll_back(data)
    assert (tmp_path / "node-1" / "segment.log").read_bytes() == b"synced-"
    assert (tmp_path / "node-1" / "checkpoint").read_bytes() == b"v1"
    assert (tmp_path / "node-1" / "never-synced").read_bytes() == b""
    for round in range(20):
        assert (tmp_path / "node-1" / f"new-{round}").read_bytes() == b"", "a recycled inode kept an old image"
    assert (tmp_path / "outside").read_bytes() == b"outside"
    assert "segment.log: 11 -> 7 bytes" in changed
    assert os_crash.roll_back(data) == [], "a second roll-back changes nothing"


def test_without_the_switch_nothing_is_wrapped(tmp_path):
    data, wrapped = run_child(tmp_path, enabled=False)
    assert wrapped == "plain"
    assert not os.path.exists(os_crash.image_directory(data))
