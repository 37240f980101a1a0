"""A test-only model of an OS crash (power loss, kernel panic): every write not yet fsynced is lost.

Two halves:

- `install(data_dir)`, run inside a node process by `os_crash_site/sitecustomize.py` (put that
  directory on PYTHONPATH and set FRESHET_OS_CRASH=1; the data directory comes from the node's
  `--data-dir` argument). It wraps `os.fsync` and `os.fdatasync`: before the real call, the file's
  whole content is copied to `<data_dir>.fsynced/<inode>` (its "durable image"). It also wraps
  `os.open` and `open` so that a newly created file drops any image a deleted file with the same
  inode number left behind.
- `roll_back(data_dir)`, run by the test after the node was killed (kill -9): every regular file
  under the data directory gets its durable image back, or is cut to zero bytes if it was never
  fsynced. That is what the disk holds after the machine lost power at the moment of the kill.

The model, stated plainly: file *contents* are durable only through fsync/fdatasync of that file
(the worst case the kernel allows: no background writeback happened); *names* (create, rename,
unlink, mkdir) are kept as they were, like a journaling file system whose metadata commit went
through (Freshet fsyncs directories after renames anyway). Memory-mapped writes are not modelled:
Freshet maps index files read-only and its Raft journal (metadata/journal.py) writes with
os.write, so every durable byte here goes through the two wrapped calls.

Why not FUSE or lazyfs: lazyfs is not packaged and needs a C++ build; a FUSE passthrough needs
libfuse and a Python binding on every CI machine and puts every read and write of a running
cluster through a userspace file system on a 2-core machine. Every file Freshet and pysyncobj make
durable goes through os.fsync/os.fdatasync in Python, so wrapping those two calls sees exactly the
fsync boundaries at no cost to reads and writes.

The image is copied before the real fsync starts, so it never holds more than the fsync
guarantees, except bytes another thread writes during the copy (a torn tail recovery cuts).

Imports: standard library only (loaded by path inside node processes). Thread-safety: `install`
once per process before threads start; the wrappers serialise their copies under one lock.
"""

from __future__ import annotations

import builtins
import io
import os
import stat
import threading

#: Environment switch read by os_crash_site/sitecustomize.py.
ENABLE_ENV = "FRESHET_OS_CRASH"
SITE_DIRECTORY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "os_crash_site")
IMAGE_SUFFIX = ".fsynced"

_CREATING_FLAGS = os.O_CREAT
_WRITING_MODES = frozenset("wxa+")


def image_directory(data_dir: str) -> str:
    """Where the durable images of `data_dir`'s files live (next to it, outside it)."""
    return os.path.realpath(data_dir).rstrip(os.sep) + IMAGE_SUFFIX


def node_environment() -> dict[str, str]:
    """What a node process's environment needs for `install` to run at its start."""
    path = os.environ.get("PYTHONPATH", "")
    return {ENABLE_ENV: "1", "PYTHONPATH": SITE_DIRECTORY + (os.pathsep + path if path else "")}


def install(data_dir: str) -> None:
    """Wrap os.fsync, os.fdatasync, os.open and open in this process (see the module docstring)."""
    root = os.path.realpath(data_dir).rstrip(os.sep) + os.sep
    images = image_directory(data_dir)
    os.makedirs(images, exist_ok=True)
    lock = threading.Lock()
    real_fsync, real_fdatasync, real_open, real_builtin_open = os.fsync, os.fdatasync, os.open, builtins.open

    def capture(fd) -> None:
        fd = fd if isinstance(fd, int) else fd.fileno()
        try:
            path = os.readlink(f"/proc/self/fd/{fd}")
            status = os.fstat(fd)
        except OSError:
            return
        if not path.startswith(root) or not stat.S_ISREG(status.st_mode):
            return
        with lock:
            _copy_image(fd, os.path.join(images, str(status.st_ino)), real_open)

    def fsync(fd) -> None:
        capture(fd)
        real_fsync(fd)

    def fdatasync(fd) -> None:
        capture(fd)
        real_fdatasync(fd)

    def forget_if_new(path, existed: bool, fd: int) -> None:
        if existed:
            return
        try:
            if not os.path.realpath(path).startswith(root):
                return
            inode = os.fstat(fd).st_ino
        except (OSError, TypeError, ValueError):
            return
        with lock, _suppress_missing():
            os.unlink(os.path.join(images, str(inode)))

    def tracked_open(path, flags, mode=0o777, *, dir_fd=None):
        existed = dir_fd is not None or not (flags & _CREATING_FLAGS) or os.path.lexists(path)
        fd = real_open(path, flags, mode, dir_fd=dir_fd)
        forget_if_new(path, existed, fd)
        return fd

    def tracked_builtin_open(file, mode="r", *args, **kwargs):
        creating = isinstance(file, (str, bytes, os.PathLike)) and bool(_WRITING_MODES & set(mode))
        existed = not creating or os.path.lexists(file)
        handle = real_builtin_open(file, mode, *args, **kwargs)
        if not existed:
            forget_if_new(file, False, handle.fileno())
        return handle

    os.fsync, os.fdatasync, os.open = fsync, fdatasync, tracked_open
    builtins.open = io.open = tracked_builtin_open


class _suppress_missing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, error, traceback) -> bool:
        return kind is not None and issubclass(kind, FileNotFoundError)


def _copy_image(fd: int, target: str, real_open) -> None:
    """Copy the whole file behind `fd` to `target` atomically (temp file, rename)."""
    temporary = f"{target}.{threading.get_ident()}.tmp"
    source = real_open(f"/proc/self/fd/{fd}", os.O_RDONLY)     # `fd` may be write-only
    out = real_open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        size = os.fstat(source).st_size
        position = 0
        while position < size:
            copied = os.copy_file_range(source, out, size - position, position, position)
            if copied == 0:
                break
            position += copied
    finally:
        os.close(out)
        os.close(source)
    os.replace(temporary, target)


def roll_back(data_dir: str) -> list[str]:
    """Give every file under `data_dir` its durable image (or zero bytes: never fsynced). Call only
    while no process uses the directory. Returns one line per file that changed."""
    images = image_directory(data_dir)
    changed = []
    for directory, _, names in os.walk(data_dir):
        for name in sorted(names):
            path = os.path.join(directory, name)
            status = os.lstat(path)
            if not stat.S_ISREG(status.st_mode):
                continue
            image = os.path.join(images, str(status.st_ino))
            durable = _read(image) if os.path.exists(image) else b""
            with open(path, "r+b") as file:
                current = file.read()
                if current == durable:
                    continue
                file.seek(0)
                file.write(durable)
                file.truncate()
            changed.append(f"{os.path.relpath(path, data_dir)}: {len(current)} -> {len(durable)} bytes")
    return changed


def _read(path: str) -> bytes:
    with open(path, "rb") as file:
        return file.read()
