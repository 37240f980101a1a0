"""The nemesis checker and availability measure on made-up histories (tests/support/nemesis/).

Goal: each of Jepsen's Kafka-suite anomalies is reported when, and only when, its history shows
it, so a clean nemesis run means something. Method: a small clean history (two producers, one
group consumer, one reader, three replicas), then one change per anomaly.
Reference: Jepsen's Kafka suite (jepsen.tests.kafka) anomaly definitions.
"""

from __future__ import annotations

import copy

import pytest

from tests.support.nemesis import checker
from tests.support.nemesis.faults import FaultRecord
from tests.support.nemesis.report import availability, longest_gap


def send(producer: str, sequence: int, partition: int, offset: int | None) -> dict:
    return {"producer": producer, "sequence": sequence, "partition": partition, "value": f"{producer}-{sequence}",
            "sent": 0.0, "acked": None if offset is None else 1.0, "offset": offset, "error": None}


def poll(consumer: str, partition: int, offset: int, value: str, session: int = 0) -> dict:
    return {"consumer": consumer, "session": session, "partition": partition, "offset": offset, "value": value, "at": 0.0}


@pytest.fixture
def clean():
    sends = [send("p0", 0, 0, 0), send("p1", 0, 0, 1), send("p0", 1, 0, 2), send("p1", 1, 0, 3)]
    log = {0: "p0-0", 1: "p1-0", 2: "p0-1", 3: "p1-1"}
    polls = [poll("r0", 0, offset, value) for offset, value in log.items()]
    polls += [poll("g0", 0, 0, "p0-0"), poll("g0", 0, 1, "p1-0"), poll("g0", 0, 1, "p1-0", session=1),
              poll("g0", 0, 2, "p0-1", session=1)]
    logs = {0: {1: dict(log), 2: dict(log), 3: dict(log)}}
    return sends, polls, logs, {0: 1}


def only(found: dict[str, list[str]]) -> dict[str, int]:
    return {kind: len(entries) for kind, entries in found.items() if entries}


def test_a_clean_history_has_no_anomaly(clean):
    assert only(checker.check(*clean)) == {}


def test_an_acknowledged_value_missing_from_the_log_is_a_lost_write_and_unseen(clean):
    sends, polls, logs, reference = clean
    for replica in logs[0].values():
        del replica[3]
    polls = [p for p in polls if p["value"] != "p1-1"]
    assert only(checker.check(sends, polls, logs, reference)) == {"lost-write": 1, "unseen": 1}


def test_an_unacknowledged_value_may_be_missing(clean):
    sends, polls, logs, reference = clean
    sends.append(send("p0", 2, 0, None))
    assert only(checker.check(sends, polls, logs, reference)) == {}


def test_a_value_at_two_offsets_is_a_duplicate(clean):
    sends, polls, logs, reference = clean
    for replica in logs[0].values():
        replica[4] = "p0-0"
    polls.append(poll("r0", 0, 4, "p0-0"))
    assert only(checker.check(sends, polls, logs, reference)) == {"duplicate": 1}


def test_two_values_at_one_offset_are_inconsistent_offsets(clean):
    sends, polls, logs, reference = clean
    polls.append(poll("g1", 0, 2, "p1-7"))
    found = only(checker.check(sends, polls, logs, reference))
    assert found["inconsistent-offsets"] == 1


def test_a_later_send_acknowledged_at_a_lower_offset_is_nonmonotonic_send(clean):
    sends, _, _, reference = clean
    sends[0]["offset"], sends[2]["offset"] = 2, 0          # p0-0 (sent first) acked after p0-1
    log = {0: "p0-1", 1: "p1-0", 2: "p0-0", 3: "p1-1"}      # and the log agrees with the acks
    logs = {0: {node: dict(log) for node in (1, 2, 3)}}
    polls = [poll("r0", 0, offset, value) for offset, value in log.items()]
    assert only(checker.check(sends, polls, logs, reference)) == {"nonmonotonic-send": 1}


def test_going_back_within_one_session_is_nonmonotonic_poll(clean):
    sends, polls, logs, reference = clean
    polls.append(poll("r0", 0, 1, "p1-0"))
    assert only(checker.check(sends, polls, logs, reference)) == {"nonmonotonic-poll": 1}


def test_going_back_in_a_new_session_is_allowed(clean):
    sends, polls, logs, reference = clean
    polls.append(poll("r0", 0, 1, "p1-0", session=5))
    assert only(checker.check(sends, polls, logs, reference)) == {}


def test_jumping_over_a_record_is_a_poll_skip(clean):
    sends, polls, logs, reference = clean
    polls = [p for p in polls if not (p["consumer"] == "r0" and p["offset"] == 2)]
    assert only(checker.check(sends, polls, logs, reference)) == {"poll-skip": 1}


def test_a_replica_that_differs_from_the_leader_is_divergence(clean):
    sends, polls, logs, reference = clean
    logs = copy.deepcopy(logs)
    logs[0][3][3] = "p9-9"
    assert only(checker.check(sends, polls, logs, reference)) == {"divergence": 1}
    del logs[0][3][3]
    assert only(checker.check(sends, polls, logs, reference)) == {"divergence": 1}


def test_unavailability_is_the_longest_stretch_without_an_acknowledgement():
    acks = [0.0, 1.0, 1.5, 5.0, 5.2, 9.0]
    assert longest_gap(acks, start=1.2, stop=2.0, run_end=10.0) == pytest.approx(3.5)    # 1.5 -> 5.0
    assert longest_gap(acks, start=5.1, stop=5.15, run_end=10.0) == pytest.approx(0.1)   # until 5.2
    assert longest_gap(acks, start=9.5, stop=9.8, run_end=10.0) == pytest.approx(0.5)    # no ack after: run end


def fault(kind: str, start: float, stop: float) -> FaultRecord:
    return FaultRecord(kind=kind, detail="", start=start, hold_s=stop - start, heal=lambda: None, stop=stop)


def test_a_fault_still_unrecovered_when_the_next_begins_is_counted_apart():
    # Partition 0 answers throughout; partition 1 is silent from 1.0 until 9.0. The first fault
    # (1.0-2.0) has not recovered when the second begins at 2.5, so its 8 s include the second's
    # effect: it stays in the majority-kept column but not in the recovered-first one.
    acks = {0: [0.5, 1.5, 2.2, 3.0, 4.0, 9.5, 10.0], 1: [0.5, 1.0, 9.0, 9.6, 10.5]}
    records = [fault("isolate-leader", 1.0, 2.0), fault("isolate-leader", 2.5, 3.0), fault("pause", 9.8, 10.2)]
    table = availability(records, acks, origin=0.0)
    assert [record.ran_into_next for record in records] == [True, False, False]
    assert records[0].unavailable_s == pytest.approx(8.0)
    row = table["isolate-leader"]
    assert row["longest_majority_s"] == pytest.approx(8.0)
    assert row["longest_majority_recovered_s"] == pytest.approx(6.5)    # the second fault: 2.5 -> 9.0
    assert table["pause"]["longest_majority_recovered_s"] == pytest.approx(0.7)   # partition 1: 9.8 -> 10.5 (run end)
