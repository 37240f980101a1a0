"""Packet reordering for the nemesis: hold some packets back in an NFQUEUE so that later ones pass them.

This kernel has no `tc netem` (../shared/notes/fault-injection.md), but it has nfnetlink_queue:
an nftables rule `queue num N` hands each matching packet to a userspace program, which must give
a verdict for it, and the kernel sends the packets in the order of their verdicts. This program
accepts most packets at once and holds `--hold-percent` of them for `--hold-ms` (plus up to
`--jitter-ms`), so the packets behind a held one overtake it: reordering, with nothing lost
(netem's "reorder" does the same with its gap). It speaks the nfnetlink queue protocol itself
(a netlink socket and struct packing: bind, copy metadata only, verdicts), so nothing needs
building; Network.reorder in netns.py runs it inside the sender's namespace with
`ip netns exec` and adds the nft rule (with `bypass`: should it die, packets pass instead of
being dropped).

Usage (as root, inside the namespace whose output is queued):
    python -m tests.support.nemesis.reorder --queue 7 --hold-percent 25 --hold-ms 20 --jitter-ms 10 --seed 1

It prints "ready" once bound and runs until SIGTERM/SIGINT, then accepts every packet it still
holds and prints one line of counts. Not a test module. Thread-safety: one thread.
"""

from __future__ import annotations

import argparse
import heapq
import random
import select
import signal
import socket
import struct
import sys
import time

NETLINK_NETFILTER = 12
NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET, NFQNL_MSG_VERDICT, NFQNL_MSG_CONFIG = 0, 1, 2
NFQA_CFG_CMD, NFQA_CFG_PARAMS = 1, 2
NFQNL_CFG_CMD_BIND, NFQNL_CFG_CMD_UNBIND = 1, 2
NFQNL_COPY_META = 1
NFQA_PACKET_HDR, NFQA_VERDICT_HDR = 1, 2
NF_ACCEPT = 1
NLM_F_REQUEST, NLM_F_ACK = 1, 4
NLMSG_ERROR = 2
_NLMSGHDR = struct.Struct("=IHHII")
_NFGENMSG = struct.Struct("=BBH")       # family, version, queue number (big-endian, packed by hand)


def _attribute(kind: int, payload: bytes) -> bytes:
    length = 4 + len(payload)
    return struct.pack("=HH", length, kind) + payload + b"\0" * (-length % 4)


def _message(message_type: int, queue: int, attributes: bytes, flags: int, sequence: int) -> bytes:
    body = _NFGENMSG.pack(socket.AF_UNSPEC, 0, socket.htons(queue)) + attributes
    return _NLMSGHDR.pack(_NLMSGHDR.size + len(body), (NFNL_SUBSYS_QUEUE << 8) | message_type, flags, sequence, 0) + body


class Queue:
    """One bound NFQUEUE: packet ids in, verdicts out. Not thread-safe."""

    def __init__(self, number: int) -> None:
        self.number = number
        self.socket = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.socket.bind((0, 0))
        self._sequence = 0
        self._configure(_attribute(NFQA_CFG_CMD, struct.pack("!BxH", NFQNL_CFG_CMD_BIND, socket.AF_INET)))
        self._configure(_attribute(NFQA_CFG_PARAMS, struct.pack("!IB", 0, NFQNL_COPY_META)))

    def _configure(self, attributes: bytes) -> None:
        self._sequence += 1
        self.socket.send(_message(NFQNL_MSG_CONFIG, self.number, attributes, NLM_F_REQUEST | NLM_F_ACK, self._sequence))
        reply = self.socket.recv(65536)
        length, kind = struct.unpack_from("=IH", reply)
        if kind == NLMSG_ERROR:
            (error,) = struct.unpack_from("=i", reply, _NLMSGHDR.size)
            if error != 0:
                raise OSError(-error, f"nfqueue {self.number}: configuration refused")

    def packet_ids(self) -> list[int]:
        """The ids of the packets in one receive (each must get a verdict)."""
        data = self.socket.recv(1 << 20)
        ids, offset = [], 0
        while offset + _NLMSGHDR.size <= len(data):
            length, kind, _, _, _ = _NLMSGHDR.unpack_from(data, offset)
            if length < _NLMSGHDR.size:
                break
            if kind == (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET:
                position = offset + _NLMSGHDR.size + _NFGENMSG.size
                while position + 4 <= offset + length:
                    attribute_length, attribute_kind = struct.unpack_from("=HH", data, position)
                    if attribute_length < 4:
                        break
                    if attribute_kind & 0x7FFF == NFQA_PACKET_HDR:
                        ids.append(struct.unpack_from("!I", data, position + 4)[0])
                    position += attribute_length + (-attribute_length % 4)
            offset += length + (-length % 4)
        return ids

    def accept(self, packet_id: int) -> None:
        verdict = _attribute(NFQA_VERDICT_HDR, struct.pack("!II", NF_ACCEPT, packet_id))
        self.socket.send(_message(NFQNL_MSG_VERDICT, self.number, verdict, NLM_F_REQUEST, 0))

    def close(self) -> None:
        self.socket.close()


def serve(queue: Queue, rng: random.Random, hold_percent: float, hold_ms: float, jitter_ms: float, stop) -> dict:
    """Accept or hold every packet until `stop()`; then release what is held. Returns counts."""
    held: list[tuple[float, int]] = []
    counts = {"packets": 0, "held": 0}
    while not stop():
        timeout = max(0.0, held[0][0] - time.monotonic()) if held else 0.2
        ready, _, _ = select.select([queue.socket], [], [], min(timeout, 0.2))
        if ready:
            for packet_id in queue.packet_ids():
                counts["packets"] += 1
                if rng.random() * 100 < hold_percent:
                    counts["held"] += 1
                    release = time.monotonic() + (hold_ms + rng.random() * jitter_ms) / 1000
                    heapq.heappush(held, (release, packet_id))
                else:
                    queue.accept(packet_id)
        now = time.monotonic()
        while held and held[0][0] <= now:
            queue.accept(heapq.heappop(held)[1])
    while held:
        queue.accept(heapq.heappop(held)[1])
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.support.nemesis.reorder", description=__doc__.splitlines()[0])
    parser.add_argument("--queue", type=int, required=True)
    parser.add_argument("--hold-percent", type=float, default=25.0)
    parser.add_argument("--hold-ms", type=float, default=20.0)
    parser.add_argument("--jitter-ms", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=0)
    options = parser.parse_args(argv)
    stopping = []
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.append(True))
    queue = Queue(options.queue)
    print("ready", flush=True)
    try:
        counts = serve(queue, random.Random(options.seed), options.hold_percent, options.hold_ms, options.jitter_ms,
                       lambda: bool(stopping))
    finally:
        queue.close()
    print(f"reorder queue {options.queue}: {counts['packets']} packets, {counts['held']} held back", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
