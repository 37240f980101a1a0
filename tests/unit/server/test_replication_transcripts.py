"""Golden transcripts of the pure replication core (server/replication/core.py).

Each file in testdata/ is replayed by `tests.support.transcript.run_transcript` with the commands
below; after each command the handler prints what the core decided and the state it keeps.
Rewrite the expected outputs after a deliberate change with FRESHET_REWRITE_TRANSCRIPTS=1, then
review the diff. Lists are comma separated (`isr=1,2,3`); times are `t=` in ms.

Leader (LeaderState):
    leader id= epoch= replicas= isr= leo= hw= [partition_epoch=1] [epoch_start=leo] [min_isr=1] [t=0]
    append leo= t=                            on_append
    ack replica= leo= t=                      on_follower_position
    tick t= lag_max= [ineligible=]            alter_isr (listed replicas are not eligible, KIP-841)
    Unknown or misspelt arguments fail the command.
    alter_result ok isr= partition_epoch= [leader_epoch=] [t=]      on_alter_isr_result(NONE)
    alter_result error=NAME [t=]              on_alter_isr_result(error), for the last alter_isr
    alter_lost                                on_alter_isr_lost, for the last alter_isr
    metadata replicas= isr= partition_epoch= [t=]                   update_partition
    min_isr value=                            set_min_insync_replicas
  prints `hw=.. [(moved)] leo=.. isr=[..] [maximal_isr=[..]] pending=.. partition_epoch=..
  [awaiting_metadata]` and `followers={id: leo=.. caught_up=..}`; tick prints the AlterIsr first.

Divergence (check_follower_position, truncation_offset, out_of_range_action) over real leader
epoch caches (storage's LeaderEpochCache; `epochs=1@0,3@40` is epoch 1 from offset 0, 3 from 40):
    leader_log epoch= topic= leo= epochs= [log_start=start of its first epoch]
    follower_log epoch= topic= leo= epochs= [log_start=start of its first epoch]
    position [fetch_offset=] [last_epoch=] [epoch=] [topic=] [replica=false]
        defaults: the follower's LEO, the latest epoch in its cache, its leader epoch and topic
    truncate [diverging_epoch= diverging_end=] [own=E@O leo=]
        defaults: the last `position` answer and the follower log (which is then truncated)
    out_of_range [leo=] [leader_log_start=] [leader_leo=]           defaults: both logs

Push window (PushCursor), each printing the cursor and wants_data for the leader LEO and window:
    push_cursor leo= window=                  a new cursor
    push_log [leo=] [window=]                 the leader's LEO or the window changed
    push_reset offset= | push_sent next= bytes= | push_ack offset= | push_refuse
"""

from __future__ import annotations

from pathlib import Path

import pytest
from freshet.server.replication.core import (
    UNKNOWN_OFFSET,
    AlterIsr,
    LeaderState,
    PositionCheck,
    PushCursor,
    check_follower_position,
    out_of_range_action,
    truncation_offset,
)
from freshet.storage.leader_epoch import LeaderEpochCache
from freshet.v1 import common_pb2

from tests.support.transcript import run_transcript

E = common_pb2.ErrorCode
TESTDATA = Path(__file__).parent / "testdata"
REQUIRED = ("isr_shrink_expand.txt", "high_watermark.txt", "divergence_truncation.txt", "push_window.txt")


def ints(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(",") if part)


def fmt(values) -> str:
    return "[" + ",".join(str(v) for v in values) + "]"


def epochs(text: str) -> list[tuple[int, int]]:
    pairs = []
    for part in text.split(","):
        if part:
            epoch, _, start = part.partition("@")
            pairs.append((int(epoch), int(start)))
    return pairs


class Args(dict):
    """The command's arguments, remembering which were read (a misspelt optional one fails)."""

    def __init__(self, args: dict[str, str]) -> None:
        super().__init__(args)
        self.read: set[str] = set()

    def __getitem__(self, key: str) -> str:
        self.read.add(key)
        return super().__getitem__(key)

    def __contains__(self, key: object) -> bool:
        self.read.add(key)
        return super().__contains__(key)

    def get(self, key: str, default=None):
        self.read.add(key)
        return super().get(key, default)


class Log:
    """One replica's log as the position checks see it: range, epoch cache, leader epoch, topic."""

    def __init__(self, directory: Path, args: dict[str, str]) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.cache = LeaderEpochCache(str(directory), epochs(args.get("epochs", "")))
        self.epoch = int(args["epoch"])
        self.topic = args["topic"]
        entries = self.cache.entries
        self.log_start = int(args.get("log_start", entries[0][1] if entries else 0))
        self.leo = int(args["leo"])

    def end_offset_for(self, epoch: int) -> tuple[int, int]:
        return self.cache.end_offset_for(epoch, self.leo)

    @property
    def last_epoch(self) -> int:
        return self.cache.latest_epoch

    def describe(self, name: str) -> str:
        entries = " ".join(f"{e}@{s}" for e, s in self.cache.entries) or "none"
        return f"{name}: epoch={self.epoch} topic={self.topic} log=[{self.log_start},{self.leo}) epochs={entries}"


class Script:
    """The command handler for one transcript (fresh state per file)."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.state: LeaderState | None = None
        self.last_action: AlterIsr | None = None
        self.leader_log: Log | None = None
        self.follower_log: Log | None = None
        self.last_position: PositionCheck | None = None
        self.cursor: PushCursor | None = None
        self.push_leo = 0
        self.push_window = 0

    def __call__(self, name: str, args: dict[str, str]) -> str:
        method = getattr(self, "cmd_" + name, None)
        if method is None:
            raise KeyError(f"unknown command {name!r}")
        used = Args(args)
        output = method(used)
        unknown = set(args) - used.read
        assert not unknown, f"{name}: unknown arguments {sorted(unknown)}"
        return output

    # -- leader ----------------------------------------------------------------------------------

    def show(self, moved: bool | None = None) -> str:
        s = self.state
        assert s is not None, "no `leader` yet"
        line = f"hw={s.high_watermark}" + (" (moved)" if moved else "") + f" leo={s.log_end_offset} isr={fmt(s.isr)}"
        if s.maximal_isr != s.isr:
            line += f" maximal_isr={fmt(s.maximal_isr)}"
        line += f" pending={fmt(s.pending.new_isr) if s.pending else 'none'} partition_epoch={s.partition_epoch}"
        if s.awaiting_metadata:
            line += " awaiting_metadata"
        followers = ", ".join(
            f"{r}: leo={'unknown' if f.log_end_offset == UNKNOWN_OFFSET else f.log_end_offset} caught_up={f.last_caught_up_ms}"
            for r, f in sorted(s.followers.items())
        )
        return line + "\nfollowers={" + followers + "}"

    def cmd_leader(self, a: dict[str, str]) -> str:
        leo = int(a["leo"])
        self.state = LeaderState(
            leader_id=int(a["id"]),
            leader_epoch=int(a["epoch"]),
            partition_epoch=int(a.get("partition_epoch", "1")),
            replicas=ints(a["replicas"]),
            isr=ints(a["isr"]),
            epoch_start_offset=int(a.get("epoch_start", leo)),
            high_watermark=int(a["hw"]),
            log_end_offset=leo,
            now_ms=int(a.get("t", "0")),
            min_insync_replicas=int(a.get("min_isr", "1")),
        )
        return self.show()

    def cmd_append(self, a: dict[str, str]) -> str:
        assert self.state is not None
        return self.show(self.state.on_append(int(a["leo"]), int(a["t"])))

    def cmd_ack(self, a: dict[str, str]) -> str:
        assert self.state is not None
        return self.show(self.state.on_follower_position(int(a["replica"]), int(a["leo"]), int(a["t"])))

    def cmd_tick(self, a: dict[str, str]) -> str:
        assert self.state is not None
        ineligible = set(ints(a.get("ineligible", "")))
        action = self.state.alter_isr(int(a["t"]), int(a["lag_max"]), lambda replica: replica not in ineligible)
        if action is None:
            return "alter_isr=none\n" + self.show()
        self.last_action = action
        return (
            f"alter_isr={fmt(action.new_isr)} removed={fmt(action.removed)} added={fmt(action.added)}"
            f" leader_epoch={action.leader_epoch} partition_epoch={action.partition_epoch}\n" + self.show()
        )

    def cmd_alter_result(self, a: dict[str, str]) -> str:
        assert self.state is not None and self.last_action is not None, "no alter_isr yet"
        now = int(a.get("t", "0"))
        if "ok" in a:
            moved = self.state.on_alter_isr_result(
                self.last_action,
                now,
                E.NONE,
                partition_epoch=int(a["partition_epoch"]),
                isr=ints(a["isr"]),
                leader_epoch=int(a.get("leader_epoch", self.state.leader_epoch)),
            )
        else:
            moved = self.state.on_alter_isr_result(self.last_action, now, E.Value(a["error"]))
        return self.show(moved)

    def cmd_alter_lost(self, a: dict[str, str]) -> str:
        assert self.state is not None and self.last_action is not None, "no alter_isr yet"
        self.state.on_alter_isr_lost(self.last_action)
        return self.show()

    def cmd_metadata(self, a: dict[str, str]) -> str:
        assert self.state is not None
        moved = self.state.update_partition(
            ints(a["replicas"]), ints(a["isr"]), int(a["partition_epoch"]), int(a.get("t", "0"))
        )
        return self.show(moved)

    def cmd_min_isr(self, a: dict[str, str]) -> str:
        assert self.state is not None
        moved = self.state.set_min_insync_replicas(int(a["value"]))
        return f"min_insync_replicas={self.state.min_insync_replicas}\n" + self.show(moved)

    # -- divergence ------------------------------------------------------------------------------

    def cmd_leader_log(self, a: dict[str, str]) -> str:
        self.leader_log = Log(self.tmp_path / "leader", a)
        return self.leader_log.describe("leader")

    def cmd_follower_log(self, a: dict[str, str]) -> str:
        self.follower_log = Log(self.tmp_path / "follower", a)
        return self.follower_log.describe("follower")

    def cmd_position(self, a: dict[str, str]) -> str:
        leader, follower = self.leader_log, self.follower_log
        assert leader is not None, "no leader_log yet"
        fetch_offset = int(a["fetch_offset"]) if "fetch_offset" in a else follower.leo
        last_epoch = int(a["last_epoch"]) if "last_epoch" in a else follower.last_epoch
        epoch = int(a["epoch"]) if "epoch" in a else follower.epoch
        topic = a["topic"] if "topic" in a else follower.topic
        check = check_follower_position(
            leader_epoch=leader.epoch,
            topic_id=leader.topic.encode(),
            is_replica=a.get("replica", "true") == "true",
            log_start_offset=leader.log_start,
            log_end_offset=leader.leo,
            end_offset_for_epoch=leader.end_offset_for,
            position_topic_id=topic.encode(),
            position_leader_epoch=epoch,
            fetch_offset=fetch_offset,
            last_fetched_epoch=last_epoch,
        )
        self.last_position = check
        head = f"position fetch_offset={fetch_offset} last_epoch={last_epoch} -> "
        if check.is_diverging:
            assert check.error_code == E.NONE
            return head + f"diverging epoch={check.diverging_epoch} end_offset={check.diverging_end_offset}"
        if check.error_code == E.NONE:
            return head + "ok"
        return head + f"{E.Name(check.error_code)}: {check.message}"

    def cmd_truncate(self, a: dict[str, str]) -> str:
        if "diverging_epoch" in a:
            diverging = int(a["diverging_epoch"]), int(a["diverging_end"])
        else:
            assert self.last_position is not None and self.last_position.is_diverging, "no diverging answer"
            diverging = self.last_position.diverging_epoch, self.last_position.diverging_end_offset
        if "own" in a:
            own_epoch, own_end = epochs(a["own"])[0]
            offset = truncation_offset(*diverging, (own_epoch, own_end), int(a["leo"]))
            return f"truncate_to={offset}"
        follower = self.follower_log
        assert follower is not None, "no follower_log yet"
        own = follower.end_offset_for(diverging[0])
        offset = truncation_offset(*diverging, own, follower.leo)
        follower.leo = offset
        follower.cache.truncate_from_end(offset)
        return f"own end_offset_for({diverging[0]})={own[0]}@{own[1]} truncate_to={offset}\n" + follower.describe(
            "follower"
        )

    def cmd_out_of_range(self, a: dict[str, str]) -> str:
        leo = int(a["leo"]) if "leo" in a else self.follower_log.leo
        start = int(a["leader_log_start"]) if "leader_log_start" in a else self.leader_log.log_start
        leader_leo = int(a["leader_leo"]) if "leader_leo" in a else self.leader_log.leo
        action, offset = out_of_range_action(leo, start, leader_leo)
        return f"follower leo={leo} leader log=[{start},{leader_leo}) -> {action} {offset}"

    # -- push window -----------------------------------------------------------------------------

    def show_cursor(self) -> str:
        c = self.cursor
        assert c is not None, "no push_cursor yet"
        in_flight = ",".join(f"{end}:{size}" for end, size in c.in_flight)
        return (
            f"next={c.next_offset} acked={c.acknowledged} in_flight=[{in_flight}] bytes={c.in_flight_bytes}"
            f" awaiting_reset={str(c.awaiting_reset).lower()}"
            f" wants_data(leo={self.push_leo},window={self.push_window})="
            f"{str(c.wants_data(self.push_leo, self.push_window)).lower()}"
        )

    def cmd_push_cursor(self, a: dict[str, str]) -> str:
        self.cursor = PushCursor()
        self.push_leo, self.push_window = int(a["leo"]), int(a["window"])
        return self.show_cursor()

    def cmd_push_log(self, a: dict[str, str]) -> str:
        self.push_leo = int(a.get("leo", self.push_leo))
        self.push_window = int(a.get("window", self.push_window))
        return self.show_cursor()

    def cmd_push_reset(self, a: dict[str, str]) -> str:
        self.cursor.reset(int(a["offset"]))
        return self.show_cursor()

    def cmd_push_sent(self, a: dict[str, str]) -> str:
        self.cursor.on_sent(int(a["next"]), int(a["bytes"]))
        return self.show_cursor()

    def cmd_push_ack(self, a: dict[str, str]) -> str:
        self.cursor.acknowledge(int(a["offset"]))
        return self.show_cursor()

    def cmd_push_refuse(self, a: dict[str, str]) -> str:
        self.cursor.refuse()
        return self.show_cursor()


def test_every_required_transcript_is_there():
    assert set(REQUIRED) <= {path.name for path in TESTDATA.glob("*.txt")}


@pytest.mark.parametrize("path", sorted(TESTDATA.glob("*.txt")), ids=lambda path: path.name)
def test_transcript(path: Path, tmp_path: Path):
    run_transcript(path, Script(tmp_path))
