"""Free loopback ports for tests and benchmarks: one place, so parallel runs rarely collide.

Not a test module. `free_ports(n)`: n distinct ports the kernel just handed out (released before
returning). `free_port_block(n)`: n consecutive free ports (node layouts: gRPC P, Raft P+1, HTTP P+2).
"""

from __future__ import annotations

import random
import socket
import threading


def free_ports(count: int) -> list[int]:
    """Ports the kernel just handed out on 127.0.0.1 (distinct; released before returning)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


_FREE_BLOCK_LOCK = threading.Lock()


def port_block_is_free(base: int, count: int, hosts: tuple[str, ...] = ("127.0.0.1",)) -> bool:
    """Whether ports base..base+count-1 can be bound on every one of `hosts` right now."""
    sockets = []
    try:
        for host in hosts:
            for port in range(base, base + count):
                s = socket.socket()
                sockets.append(s)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind((host, port))
        return True
    except OSError:
        return False
    finally:
        for s in sockets:
            s.close()


def free_port_block(count: int, low: int = 20_000, high: int = 32_000, hosts: tuple[str, ...] = ("127.0.0.1",)) -> int:
    """The first of `count` consecutive ports that are free on every one of `hosts` right now.

    Node layouts need consecutive ports (gRPC P, Raft P+1, HTTP P+2: the controller-listener
    convention). Candidates are random, so parallel test runs rarely collide; each port is
    checked by binding it. The range stays below Linux's ephemeral ports (32768+), which
    outgoing connections could take between this check and the node binding the port.
    """
    with _FREE_BLOCK_LOCK:
        for _ in range(1000):
            base = random.randrange(low, high - count)
            if port_block_is_free(base, count, hosts):
                return base
    raise RuntimeError(f"no {count} consecutive free ports found")
