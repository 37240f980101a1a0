"""The nemesis checker: Jepsen's Kafka-suite anomalies over one run's history and final logs.

Not a test module; pure functions over plain data (lists and dicts, as History and the runner
collect them), so tests/unit/test_nemesis_checker.py drives each anomaly with a made-up history.

Inputs:
- sends: {"producer", "sequence", "partition", "value", "acked" (time or None), "offset"} in send
  order per producer;
- polls: {"consumer", "session", "partition", "offset", "value"} in poll order per consumer;
- logs: {partition: {node: {offset: value}}}, every replica's log read from its segment files
  after the cluster healed and converged (tests/support/replica_logs.py); `reference` names the
  node whose log is the partition's truth (its leader).

Anomalies (Jepsen's names; each entry is a short text naming the records):
- lost-write: an acknowledged value that is not in the final log (at its offset or anywhere);
- duplicate: a value at more than one offset (in the log, or among acknowledgements and polls);
- inconsistent-offsets: one offset of one partition holding different values in different
  observations (acknowledgement, polls, final log);
- nonmonotonic-send: one producer's acknowledged offsets in a partition not increasing in send order;
- nonmonotonic-poll: one consumer session's polled offsets in a partition not increasing;
- poll-skip: one consumer session jumping over offsets that hold records in the final log;
- unseen: an acknowledged value that no consumer ever polled (after the final drain);
- divergence: a replica whose log differs from the reference's (offsets or values).
Thread-safety: no shared state.
"""

from __future__ import annotations

from collections import defaultdict

KINDS = ("lost-write", "duplicate", "inconsistent-offsets", "nonmonotonic-send", "nonmonotonic-poll",
         "poll-skip", "unseen", "divergence")
_EXAMPLES = 5


def check(sends: list[dict], polls: list[dict], logs: dict[int, dict[int, dict[int, str]]],
          reference: dict[int, int]) -> dict[str, list[str]]:
    """Every anomaly found, by kind (each kind present, possibly empty)."""
    truth = {number: logs[number][reference[number]] for number in logs}
    found: dict[str, list[str]] = {kind: [] for kind in KINDS}
    found["lost-write"] = _lost_writes(sends, truth)
    found["duplicate"] = _duplicates(sends, polls, truth)
    found["inconsistent-offsets"] = _inconsistent_offsets(sends, polls, truth)
    found["nonmonotonic-send"] = _nonmonotonic_sends(sends)
    found["nonmonotonic-poll"], found["poll-skip"] = _poll_order(polls, truth)
    found["unseen"] = _unseen(sends, polls)
    found["divergence"] = _divergence(logs, reference)
    return found


def _acked(sends: list[dict]) -> list[dict]:
    return [send for send in sends if send["acked"] is not None]


def _lost_writes(sends, truth) -> list[str]:
    present = {(number, value) for number, log in truth.items() for value in log.values()}
    return [f"{send['value']} acked at {send['partition']}/{send['offset']}" for send in _acked(sends)
            if (send["partition"], send["value"]) not in present]


def _duplicates(sends, polls, truth) -> list[str]:
    where: dict[str, set[tuple[int, int]]] = defaultdict(set)
    for number, log in truth.items():
        for offset, value in log.items():
            where[value].add((number, offset))
    for send in _acked(sends):
        where[send["value"]].add((send["partition"], send["offset"]))
    for poll in polls:
        where[poll["value"]].add((poll["partition"], poll["offset"]))
    return [f"{value} at {sorted(places)}" for value, places in sorted(where.items()) if len(places) > 1]


def _inconsistent_offsets(sends, polls, truth) -> list[str]:
    seen: dict[tuple[int, int], set[str]] = defaultdict(set)
    for number, log in truth.items():
        for offset, value in log.items():
            seen[(number, offset)].add(value)
    for send in _acked(sends):
        seen[(send["partition"], send["offset"])].add(send["value"])
    for poll in polls:
        seen[(poll["partition"], poll["offset"])].add(poll["value"])
    return [f"{number}/{offset}: {sorted(map(str, values))}" for (number, offset), values in sorted(seen.items())
            if len(values) > 1]


def _nonmonotonic_sends(sends) -> list[str]:
    last: dict[tuple[str, int], tuple[int, str]] = {}
    found = []
    for send in sorted(_acked(sends), key=lambda s: (s["producer"], s["sequence"])):
        key = (send["producer"], send["partition"])
        if key in last and send["offset"] <= last[key][0]:
            found.append(f"{send['producer']} partition {send['partition']}: {last[key][1]} at {last[key][0]}, "
                         f"then {send['value']} at {send['offset']}")
        last[key] = (send["offset"], send["value"])
    return found


def _poll_order(polls, truth) -> tuple[list[str], list[str]]:
    last: dict[tuple[str, int, int], int] = {}
    offsets = {number: sorted(log) for number, log in truth.items()}
    nonmonotonic, skips = [], []
    for poll in polls:
        key = (poll["consumer"], poll["partition"], poll["session"])
        offset = poll["offset"]
        if key in last:
            previous = last[key]
            where = f"{poll['consumer']} partition {poll['partition']} session {poll['session']}"
            if offset <= previous:
                nonmonotonic.append(f"{where}: {previous} then {offset}")
            elif offset > previous + 1 and _any_between(offsets.get(poll["partition"], []), previous, offset):
                skips.append(f"{where}: {previous} then {offset}")
        last[key] = offset
    return nonmonotonic, skips


def _any_between(sorted_offsets: list[int], low: int, high: int) -> bool:
    """Whether some offset o in sorted_offsets has low < o < high."""
    import bisect

    at = bisect.bisect_right(sorted_offsets, low)
    return at < len(sorted_offsets) and sorted_offsets[at] < high


def _unseen(sends, polls) -> list[str]:
    polled = {(poll["partition"], poll["value"]) for poll in polls}
    return [f"{send['value']} acked at {send['partition']}/{send['offset']}" for send in _acked(sends)
            if (send["partition"], send["value"]) not in polled]


def _divergence(logs, reference) -> list[str]:
    found = []
    for number, replicas in sorted(logs.items()):
        truth = replicas[reference[number]]
        for node, log in sorted(replicas.items()):
            if log == truth:
                continue
            differing = sorted(o for o in set(log) | set(truth) if log.get(o) != truth.get(o))
            found.append(f"partition {number}: node {node} differs from node {reference[number]} at "
                         f"{len(differing)} offsets, first {differing[:3]}")
    return found


def summary(found: dict[str, list[str]]) -> dict[str, int]:
    return {kind: len(found[kind]) for kind in KINDS}


def examples(found: dict[str, list[str]]) -> dict[str, list[str]]:
    return {kind: entries[:_EXAMPLES] for kind, entries in found.items() if entries}
