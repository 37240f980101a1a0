"""The nemesis' numbers: unavailability per fault and the printed result table.

Not a test module; pure functions (tests/unit/test_nemesis_checker.py covers `longest_gap`).
Unavailability of one fault: the longest time one partition went without any acknowledgement
(from any producer) between the fault's start and that partition's first acknowledgement after the
fault healed, the largest over the partitions (a paused leader stops its partitions' acks while
the others' go on, so a cluster-wide measure would hide it). A fault whose window is still open
when the next fault begins (some partition had no acknowledgement between its heal and the next
fault's start) "ran into the next": its figure then includes the next fault's effect, so the table
gives the longest over those that recovered first in a column of its own, next to the longest over
all. Thread-safety: none needed.
"""

from __future__ import annotations

import bisect
from collections import defaultdict

from tests.support.nemesis.checker import KINDS
from tests.support.nemesis.faults import registry


def longest_gap(ack_times: list[float], start: float, stop: float, run_end: float) -> float:
    """The longest stretch without an acknowledgement in [start, first ack after stop] (sorted times)."""
    after = bisect.bisect_right(ack_times, stop)
    end = ack_times[after] if after < len(ack_times) else run_end
    inside = ack_times[bisect.bisect_left(ack_times, start):after]
    points = [start, *inside, end]
    return max(b - a for a, b in zip(points, points[1:], strict=False))


def recovered_by(ack_times: dict[int, list[float]], stop: float, run_end: float) -> float:
    """When every partition had its first acknowledgement after `stop` (run_end if one never did)."""
    firsts = []
    for times in ack_times.values():
        after = bisect.bisect_right(times, stop)
        firsts.append(times[after] if after < len(times) else run_end)
    return max(firsts, default=stop)


def availability(records, ack_times: dict[int, list[float]], origin: float) -> dict[str, dict]:
    """Per fault kind: count, longest unavailability overall, over faults that kept a majority
    connected without overlapping a restart (`longest_majority_s`, the ones the goal is judged on),
    and over those of them that recovered before the next fault began (`longest_majority_recovered_s`;
    module docstring). `ack_times`: each partition's acknowledgement times, sorted. `records` in
    the order the faults began."""
    table = registry()
    run_end = max((times[-1] for times in ack_times.values() if times), default=origin)
    by_kind: dict[str, dict] = defaultdict(
        lambda: {"faults": 0, "longest_s": 0.0, "longest_majority_s": None, "longest_majority_recovered_s": None}
    )
    for index, record in enumerate(records):
        gap = max((longest_gap(times, record.start, record.stop, run_end) for times in ack_times.values()),
                  default=record.stop - record.start)
        record.unavailable_s = round(gap, 2)
        if index + 1 < len(records):
            record.ran_into_next = recovered_by(ack_times, record.stop, run_end) > records[index + 1].start
        row = by_kind[record.kind]
        row["faults"] += 1
        row["longest_s"] = round(max(row["longest_s"], gap), 2)
        keeps_majority = table[record.kind].keeps_majority if record.keeps_majority is None else record.keeps_majority
        if keeps_majority and not record.overlapped_restart:
            row["longest_majority_s"] = round(max(row["longest_majority_s"] or 0.0, gap), 2)
            if not record.ran_into_next:
                row["longest_majority_recovered_s"] = round(max(row["longest_majority_recovered_s"] or 0.0, gap), 2)
    return dict(sorted(by_kind.items()))


def result_table(result: dict, records) -> str:
    """The run's table: faults by kind with their longest unavailability, then records and anomalies."""
    goal = result["session_timeout_s"] + 2
    lines = [f"{'fault kind':26s} {'faults':>6s} {'longest no-ack s':>17s} {'(majority kept) s':>18s} "
             f"{'(and recovered before the next) s':>34s}"]
    for kind, row in result["unavailability_s"].items():
        majority, recovered = ("-" if row[key] is None else f"{row[key]:.2f}"
                               for key in ("longest_majority_s", "longest_majority_recovered_s"))
        lines.append(f"{kind:26s} {row['faults']:6d} {row['longest_s']:17.2f} {majority:>18s} {recovered:>34s}")
    lines.append(f"{'total':26s} {len(records):6d}   (goal for majority-kept faults: <= {goal:.1f} s)")
    lines.append(f"records sent {result['records_sent']}, acknowledged {result['records_acked']}, "
                 f"polled {result['records_polled']}, acknowledged after the last heal {result['acks_after_heal']}")
    lines.append("anomalies: " + ", ".join(f"{kind} {result['anomalies'][kind]}" for kind in KINDS))
    for kind, entries in result["examples"].items():
        lines.append(f"  {kind}: " + "; ".join(entries))
    return "\n".join(lines)
