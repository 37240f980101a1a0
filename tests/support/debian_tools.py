"""Debian command-line tools the tests run (kubectl, kcat), found or installed once per machine.

Not a test module; the `kubectl` fixture (tests/conftest.py) and the `kcat` fixture
(tests/cluster/conftest.py) call `debian_tool`. Neither tool is on PyPI or on a fresh machine;
.ci/run installs both up front, and this covers a developer's machine:

1. the command on PATH;
2. as root with apt-get: `apt-get install package` (refreshing the package lists once if that
   fails), as .ci/run does;
3. otherwise `apt-get download package` (no root needed when the package lists are present)
   unpacked with dpkg-deb under `cache_dir`, once per machine: enough for a self-contained binary
   (kubectl), and kept only if it runs (`probe`), since a binary that needs shared libraries the
   machine lacks (kcat needs librdkafka1) does not.

Thread-safety: none needed (pytest's session fixtures call it from one thread).
"""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import tempfile

_APT_TIMEOUT_S = 300


def debian_tool(command: str, package: str, cache_dir: pathlib.Path, probe: list[str]) -> str | None:
    """The path of `command` (module docstring), or None when it is missing and cannot be had.

    Args:
        command: the executable's name, e.g. "kcat".
        package: the Debian package that ships it in /usr/bin, e.g. "kcat".
        cache_dir: where an unprivileged download is unpacked (kept between sessions).
        probe: arguments that make the command exit 0 when it works, e.g. ["-V"].
    """
    found = shutil.which(command)
    if found:
        return found
    if not shutil.which("apt-get"):
        return None
    if os.geteuid() == 0:
        return _apt_install(command, package)
    unpacked = _download_and_unpack(command, package, cache_dir)
    if unpacked is None or not _runs([unpacked, *probe]):
        return None
    return unpacked


def _apt_install(command: str, package: str) -> str | None:
    install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", package]
    environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    result = subprocess.run(install, capture_output=True, timeout=_APT_TIMEOUT_S, env=environment)
    if result.returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], capture_output=True, timeout=_APT_TIMEOUT_S)
        subprocess.run(install, capture_output=True, timeout=_APT_TIMEOUT_S, env=environment)
    return shutil.which(command)


def _download_and_unpack(command: str, package: str, cache_dir: pathlib.Path) -> str | None:
    binary = cache_dir / "usr" / "bin" / command
    if binary.exists():
        return str(binary)
    if not shutil.which("dpkg-deb"):
        return None
    with tempfile.TemporaryDirectory() as work:
        result = subprocess.run(
            ["apt-get", "download", "-qq", package], cwd=work, capture_output=True, timeout=_APT_TIMEOUT_S
        )
        packages = list(pathlib.Path(work).glob(f"{package}_*.deb"))
        if result.returncode != 0 or not packages:
            return None
        cache_dir.mkdir(parents=True, exist_ok=True)
        subprocess.run(["dpkg-deb", "-x", str(packages[0]), str(cache_dir)], check=True, timeout=120)
    return str(binary) if binary.exists() else None


def _runs(argv: list[str]) -> bool:
    try:
        return subprocess.run(argv, capture_output=True, timeout=30).returncode == 0
    except OSError:
        return False
