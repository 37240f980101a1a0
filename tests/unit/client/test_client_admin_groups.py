"""Group administration (client/admin_groups.py) and `freshet group` against the fake cluster
running the real coordinator: list, describe with lag and owners, delete and reset offsets only for
groups without active members, and the JSON shape INTERFACE.md fixes."""

from __future__ import annotations

import datetime
import json
import subprocess
import sys

import pytest
from freshet.client import Admin, Consumer, TopicPartition
from freshet.client.admin_groups import GroupAdmin
from freshet.client.errors import GroupIdNotFoundError, NonEmptyGroupError

from tests.support.waiting import wait_until


def member(cluster, group="g"):
    consumer = Consumer(cluster.bootstrap, group_id=group, auto_offset_reset="earliest", enable_auto_commit=False,
                        session_timeout_ms=2000)
    consumer.subscribe(["orders"])
    return consumer


def test_describe_reports_members_owners_committed_log_end_and_lag(cluster, groups):
    cluster.create_topic("orders", 2)
    cluster.append("orders", 0, [b"a"] * 10)
    cluster.append("orders", 1, [b"b"] * 4)
    consumer = member(cluster)
    admin = Admin(cluster.bootstrap)  # Admin inherits the group methods
    try:
        wait_until(lambda: consumer.poll(timeout_ms=50) is not None and len(consumer.assignment()) == 2, what="assigned")
        consumer.commit({TopicPartition("orders", 0): 7})
        described = admin.describe_group("g")
        assert described.state == "stable" and described.generation >= 1
        assert len(described.members) == 1
        member_id = described.members[0].member_id
        rows = {(o.topic, o.partition): o for o in described.offsets}
        assert (rows[("orders", 0)].committed_offset, rows[("orders", 0)].log_end_offset, rows[("orders", 0)].lag) == (7, 10, 3)
        assert rows[("orders", 1)].committed_offset is None and rows[("orders", 1)].lag is None
        assert rows[("orders", 1)].log_end_offset == 4
        assert {o.member_id for o in described.offsets} == {member_id}
        document = described.to_json()
        assert set(document) >= {"group", "state", "generation", "members", "offsets"}
        assert set(document["members"][0]) >= {"member_id", "client_id", "host", "assignment"}
        assert set(document["offsets"][0]) >= {"topic", "partition", "committed_offset", "log_end_offset", "lag", "member_id"}
        assert [g.group_id for g in admin.list_groups()] == ["g"]
    finally:
        consumer.close()
        admin.close()


def test_delete_and_reset_need_an_empty_group(cluster, groups):
    cluster.create_topic("orders", 2)
    cluster.append("orders", 0, [b"a"] * 10, timestamps=[1_000 + n for n in range(10)])
    cluster.append("orders", 1, [b"b"] * 4, timestamps=[1_000 + n for n in range(4)])
    consumer = member(cluster)
    admin = GroupAdmin(cluster.bootstrap)
    try:
        wait_until(lambda: consumer.poll(timeout_ms=50) is not None and len(consumer.assignment()) == 2, what="assigned")
        with pytest.raises(NonEmptyGroupError, match="active member"):
            admin.delete_group("g")
        with pytest.raises(NonEmptyGroupError, match="active member"):
            admin.reset_offsets("g", "orders", to_earliest=True)
        consumer.close()
        plan = admin.reset_offsets("g", "orders", to_latest=True)  # dry run
        assert [(r.partition, r.new_offset) for r in plan] == [(0, 10), (1, 4)]
        assert admin.describe_group("g").offsets == ()
        admin.reset_offsets("g", "orders", to_offset=6, execute=True)
        assert {(o.partition, o.committed_offset) for o in admin.describe_group("g").offsets} == {(0, 6), (1, 4)}
        when = datetime.datetime.fromtimestamp(1.003, tz=datetime.UTC)
        admin.reset_offsets("g", "orders", to_datetime=when, execute=True)
        assert {(o.partition, o.committed_offset) for o in admin.describe_group("g").offsets} == {(0, 3), (1, 3)}
        with pytest.raises(ValueError, match="exactly one"):
            admin.reset_offsets("g", "orders", to_earliest=True, to_latest=True)
        # --shift-by: from the committed offset, clamped to the log; one partition only.
        plan = admin.reset_offsets("g", "orders", shift_by=-2, partitions=[0], execute=True)
        assert [(r.partition, r.current_offset, r.new_offset) for r in plan] == [(0, 3, 1)]
        plan = admin.reset_offsets("g", "orders", shift_by=100)
        assert [(r.partition, r.current_offset, r.new_offset) for r in plan] == [(0, 1, 10), (1, 3, 4)]
        with pytest.raises(ValueError, match="no partition 5"):
            admin.reset_offsets("g", "orders", to_earliest=True, partitions=[5])
        admin.delete_group("g")
        with pytest.raises(ValueError, match="no committed offset"):
            admin.reset_offsets("g", "orders", shift_by=1)
        with pytest.raises(GroupIdNotFoundError):
            admin.describe_group("g")
    finally:
        consumer.close()
        admin.close()


def run_cli(cluster, *args):
    return subprocess.run(
        [sys.executable, "-m", "freshet.cli.main", "group", *args, "--bootstrap", cluster.bootstrap],
        capture_output=True, text=True, timeout=60,
    )


@pytest.mark.slow
def test_cli_group_commands(cluster, groups):
    cluster.create_topic("orders", 1)
    cluster.append("orders", 0, [b"a"] * 5)
    with Consumer(cluster.bootstrap, group_id="cli", enable_auto_commit=False) as consumer:
        consumer.assign([TopicPartition("orders", 0)])
        consumer.commit({TopicPartition("orders", 0): 2})
    described = run_cli(cluster, "describe", "cli", "--output", "json")
    assert described.returncode == 0, described.stderr
    document = json.loads(described.stdout)
    assert document["group"] == "cli" and document["members"] == []
    assert document["offsets"] == [
        {"topic": "orders", "partition": 0, "committed_offset": 2, "log_end_offset": 5, "lag": 3, "lag_seconds": None,
         "lag_alert": False, "member_id": None}
    ]
    listed = run_cli(cluster, "list", "--output", "json")
    assert json.loads(listed.stdout) == [{"group": "cli", "state": "empty", "members": 0}]
    reset = run_cli(cluster, "reset-offsets", "cli", "--topic", "orders", "--to-earliest", "--execute")
    assert reset.returncode == 0, reset.stderr
    assert json.loads(run_cli(cluster, "describe", "cli", "--output", "json").stdout)["offsets"][0]["committed_offset"] == 0
    usage = run_cli(cluster, "reset-offsets", "cli", "--topic", "orders")
    assert usage.returncode == 2 and usage.stderr.startswith("error: give exactly one")
    missing = run_cli(cluster, "describe", "nope")
    assert missing.returncode == 1 and "does not exist" in missing.stderr and len(missing.stderr.strip().splitlines()) == 1
    assert "freshet group list" in missing.stderr
    deleted = run_cli(cluster, "delete", "cli")
    assert deleted.returncode == 0, deleted.stderr


def test_cli_consume_with_a_group_resumes_from_its_committed_offset(cluster, groups):
    """`freshet consume --group` joins the group, prints records and commits what it printed, so
    a second run continues where the first stopped."""
    cluster.create_topic("orders", 1)
    cluster.append("orders", 0, [f"r{n}".encode() for n in range(6)])

    def consume(count):
        result = subprocess.run(
            [sys.executable, "-m", "freshet.cli.main", "consume", "orders", "--group", "console", "--from-beginning",
             "--max-messages", str(count), "--timeout-ms", "20000", "--bootstrap", cluster.bootstrap],
            capture_output=True, text=True, timeout=60,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout.split()

    assert consume(4) == ["r0", "r1", "r2", "r3"]
    assert consume(2) == ["r4", "r5"]
    admin = Admin(cluster.bootstrap)
    try:
        assert [(o.partition, o.committed_offset) for o in admin.describe_group("console").offsets] == [(0, 6)]
    finally:
        admin.close()


def test_describe_reports_lag_seconds_zero_when_caught_up_and_none_when_unmeasured(cluster, groups):
    """Goal: JSON "lag_seconds" on every offsets row (INTERFACE.md): 0 for a partition whose
    committed offset is the log end, null while the coordinator has not measured (the fake
    cluster's coordinator has no lag tracker); the CLI prints the LAG-TIME column."""
    cluster.create_topic("orders", 2)
    cluster.append("orders", 0, [b"a"] * 5)
    cluster.append("orders", 1, [b"b"] * 3)
    admin = Admin(cluster.bootstrap)
    try:
        admin.reset_offsets("g", "orders", to_offset=3, execute=True)
        rows = {o["partition"]: o for o in admin.describe_group("g").to_json()["offsets"]}
        assert rows[1]["lag"] == 0 and rows[1]["lag_seconds"] == 0
        assert rows[0]["lag"] == 2 and rows[0]["lag_seconds"] is None
        assert rows[0]["lag_alert"] is False
    finally:
        admin.close()
    table = run_cli(cluster, "describe", "g")
    assert table.returncode == 0, table.stderr
    header = table.stdout.splitlines()[1].split()
    assert header == ["TOPIC", "PARTITION", "COMMITTED", "LOG-END", "LAG", "LAG-TIME", "OWNER"]
