"""The nemesis workload (Jepsen's Kafka suite, on the Freshet SDK): producers, group consumers
that commit, and assign-mode readers, each a thread that records what it did in a `History`.

Not a test module. Every value is unique ("{producer}-{sequence}"), so the checker can follow one
record from its send to its acknowledgement, to every poll that returned it, to the replicas'
logs. Producers are idempotent acks=all (or acks=1 without idempotence, for the run that reports
losses); group consumers subscribe, poll and commit synchronously about once a second; readers
assign every partition from the beginning and never commit. Each consumer counts its "sessions"
per partition: a new one starts whenever the partition is (re)assigned or the consumer seeks, so
the checker compares consecutive polls only within one session.

Thread-safety: History is thread-safe (one lock); each actor is one thread plus its client's own.
"""

from __future__ import annotations

import threading
import time

from freshet.client import Consumer, Producer, TopicPartition
from freshet.client.errors import FreshetError


class History:
    """Sends (with their outcome) and polls of one run; times are time.monotonic() seconds."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        # Each send: {"producer", "sequence", "partition", "value", "sent", "acked", "offset", "error"}.
        self.sends: list[dict] = []
        # Each poll: {"consumer", "session", "partition", "offset", "value", "at"}.
        self.polls: list[dict] = []
        self.commit_failures = 0
        # partition -> time of its latest acknowledgement (kept as acks arrive, for --settle-s).
        self.last_ack: dict[int, float] = {}

    def ack_times(self) -> list[float]:
        with self.lock:
            return sorted(send["acked"] for send in self.sends if send["acked"] is not None)

    def acked_everywhere_since(self, since: float, partitions: int) -> bool:
        """Whether every partition 0..partitions-1 had an acknowledgement after `since`."""
        with self.lock:
            return all(self.last_ack.get(number, float("-inf")) > since for number in range(partitions))

    def ack_times_by_partition(self) -> dict[int, list[float]]:
        found: dict[int, list[float]] = {}
        with self.lock:
            for send in self.sends:
                if send["acked"] is not None:
                    found.setdefault(send["partition"], []).append(send["acked"])
        return {number: sorted(times) for number, times in sorted(found.items())}


class ProducerActor(threading.Thread):
    """Sends unique values round-robin over the partitions, at most `rate` a second."""

    def __init__(self, history: History, bootstrap: str, topic: str, partitions: int, name: str,
                 acks: str, rate: float, max_outstanding: int = 200) -> None:
        super().__init__(name=f"nemesis-{name}", daemon=True)
        idempotent = acks == "all"
        self.client = Producer(bootstrap, acks=acks, enable_idempotence=idempotent, linger_ms=2,
                               delivery_timeout_ms=60000, request_timeout_ms=5000, retry_backoff_ms=50)
        self.history, self.topic, self.partitions, self.actor = history, topic, partitions, name
        self.interval_s = 1.0 / rate
        self.max_outstanding = max_outstanding
        self.outstanding = 0
        self.stopping = threading.Event()

    def run(self) -> None:
        sequence = 0
        next_at = time.monotonic()
        while not self.stopping.is_set():
            if self.outstanding >= self.max_outstanding:
                time.sleep(0.01)
                continue
            send = {"producer": self.actor, "sequence": sequence, "partition": sequence % self.partitions,
                    "value": f"{self.actor}-{sequence:08d}", "sent": time.monotonic(), "acked": None,
                    "offset": None, "error": None}
            with self.history.lock:
                self.history.sends.append(send)
                self.outstanding += 1
            self.client.send(self.topic, value=send["value"].encode(), partition=send["partition"],
                             on_delivery=lambda metadata, error, send=send: self._delivered(send, metadata, error))
            sequence += 1
            next_at += self.interval_s
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            else:
                next_at = time.monotonic()

    def _delivered(self, send: dict, metadata, error) -> None:
        with self.history.lock:
            self.outstanding -= 1
            if error is None:
                send["acked"], send["offset"] = time.monotonic(), metadata.offset
                self.history.last_ack[send["partition"]] = send["acked"]
            else:
                send["error"] = repr(error)[:200]

    def stop(self, flush_s: float) -> None:
        self.stopping.set()
        self.join(10)
        try:
            self.client.flush(flush_s)
        except FreshetError:
            pass
        self.client.close(5)


class ConsumerActor(threading.Thread):
    """A group member (`group` set: subscribe, commit about once a second) or an assign-mode reader
    (every partition from the beginning). Records every polled record with its session."""

    def __init__(self, history: History, bootstrap: str, topic: str, partitions: int, name: str,
                 group: str | None) -> None:
        super().__init__(name=f"nemesis-{name}", daemon=True)
        self.client = Consumer(bootstrap, group_id=group, auto_offset_reset="earliest", enable_auto_commit=False,
                               request_timeout_ms=5000, retry_backoff_ms=50, session_timeout_ms=6000,
                               fetch_max_wait_ms=200)
        self.history, self.topic, self.actor, self.group = history, topic, name, group
        self.partition_list = [TopicPartition(topic, n) for n in range(partitions)]
        self.sessions: dict[int, int] = {n: 0 for n in range(partitions)}
        self.positions: dict[int, int] = {}
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        if group is None:
            self.client.assign(self.partition_list)
            self.client.seek_to_beginning(*self.partition_list)
        else:
            self.client.subscribe([topic], on_assigned=self._new_sessions, on_revoked=self._new_sessions,
                                  on_lost=self._new_sessions)

    def _new_sessions(self, partitions) -> None:
        with self.lock:
            for partition in partitions:
                self.sessions[partition.partition] += 1

    def run(self) -> None:
        last_commit = time.monotonic()
        while not self.stopping.is_set():
            try:
                records = self.client.poll(timeout_ms=200)
            except FreshetError:
                time.sleep(0.1)
                continue
            now = time.monotonic()
            with self.history.lock, self.lock:
                for record in records:
                    self.history.polls.append({
                        "consumer": self.actor, "session": self.sessions[record.partition], "partition": record.partition,
                        "offset": record.offset, "value": record.value.decode() if record.value is not None else None,
                        "at": now})
                    self.positions[record.partition] = record.offset + 1
            if self.group is not None and now - last_commit >= 1.0:
                last_commit = now
                try:
                    self.client.commit(timeout_ms=5000)
                except FreshetError:
                    with self.history.lock:
                        self.history.commit_failures += 1

    def caught_up(self, ends: dict[int, int]) -> bool:
        with self.lock:
            return all(self.positions.get(number, 0) >= end for number, end in ends.items() if end > 0)

    def position_map(self) -> dict[int, int]:
        with self.lock:
            return dict(self.positions)

    def stop(self) -> None:
        self.stopping.set()
        self.join(15)
        try:
            self.client.close()
        except FreshetError:
            pass
