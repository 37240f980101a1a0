"""The crash-safe metadata quorum: one voter of the Raft group, built on pysyncobj 0.3.17.

Owns the voter: its configuration, its thread, the pysyncobj adapter (one replicated dispatcher,
the durable transport, the injected journal, pysyncobj's configuration), proposals (futures), the
published MetadataImage, leadership and status. This is the only module that imports pysyncobj.
Two helpers hold what needs no pysyncobj: quorum_snapshots.py (our snapshot file: read at start,
written on compaction, loaded from the leader) and quorum_publication.py (the ring of recent
commands served to watchers, and the apply / reset / leadership listeners).

How pysyncobj is used (each point neutralises a measured defect of ../shared/notes/pysyncobj.md):

- One `@replicated` method takes the encoded MetadataCommand (protobuf bytes). pysyncobj journals a
  method by its position among replicated methods; with a single dispatcher that can never shift.
- The Raft log is our RaftJournal (journal.py): fsynced before any AppendEntries success is sent
  (follower) and before the leader counts its own log towards the commit index; term and vote are
  fsynced before a vote or vote request leaves. pysyncobj has no journal hook, so the journal is
  injected while pysyncobj's constructor runs (`_build_raft_node`), and a transport subclass defers
  acknowledgements until the journal is synced (group commit: one fdatasync per batch of entries).
- Snapshots use our own serializer (snapshot.py, no pickle, no fork): pysyncobj never forks a child
  that would inherit sockets and gRPC threads, and state that cannot be pickled cannot block
  compaction. On start, before pysyncobj loads the snapshot, the journal is trimmed to begin at the
  snapshot's entries (journal.align_with_snapshot): pysyncobj would otherwise discard the whole
  journal after a crash between renaming the snapshot and trimming the journal, losing
  acknowledged commands on every voter at once.
- apply never raises (state_machine.apply catches bugs), so an exception can never be retried by
  pysyncobj every tick forever; anything that still escapes stops this voter (fatal) instead.
- Security: `password` is mandatory (pysyncobj unpickles whatever reaches the Raft port; with a
  password every frame is authenticated by Fernet before it is unpickled) and the port binds to
  an explicit address, never 0.0.0.0 by accident. With `tls` (the node runs SSL / SASL_SSL)
  pysyncobj binds to a loopback port only and every byte between voters goes through the TLS
  tunnel of raft_tunnel.py (mTLS against the cluster's CA); the transport connects to the
  tunnel's local forwarders instead of the voters' addresses, which stay their identities.
- Speed and failover: appendEntriesUseBatch=False (sub-ms commits instead of one per heartbeat),
  tuned election timeouts, a long connectionTimeout with TCP keepalive (idle follower-follower
  links survive, so the first RequestVote after a leader dies is delivered), a short
  leaderFallbackTimeout (an isolated leader steps down in about a second), commandsWaitLeader off
  (a proposal without a leader fails at once instead of waiting).

Metadata offsets are Raft indexes: the command in log entry i is applied with offset i, so every
replica (and every broker replaying the log) assigns the same offsets; entries that are not
commands (pysyncobj's no-ops) leave gaps.

Imports pysyncobj (the only module that may) but no grpc, storage, server, client or cli.

Threading: pysyncobj runs with autoTick=False on one thread owned by this class ("the quorum
thread"). It does networking, Raft, applies commands, runs listeners and future callbacks, and
writes snapshots; nothing on it may block for long. Every public method of MetadataQuorum is
thread-safe; work that must touch pysyncobj's state (status, leadership transfer) is handed to the
quorum thread and awaited.
"""

from __future__ import annotations

import collections
import dataclasses
import errno
import fcntl
import functools
import heapq
import itertools
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future

from freshet.metadata import commands, snapshot, state_machine
from freshet.metadata.errors import (
    CommandDiscardedError,
    CommandTooLargeError,
    DataDirectoryError,
    JournalFullError,
    LeaderChangedError,
    MetadataError,
    NotLeaderError,
    OutcomeUnknownError,
    ProposalTimeoutError,
    QuorumBusyError,
    QuorumClosedError,
    RaftBindError,
    SnapshotFormatError,
    TransferDeniedError,
)
from freshet.metadata.image import MetadataImage
from freshet.metadata.journal import RaftJournal
from freshet.metadata.prevote import PreVote
from freshet.metadata.quorum_publication import (
    AppliedCommand,
    ApplyListener,
    CommandRing,
    LeadershipChange,
    LeadershipListener,
    Listeners,
    ResetListener,
)
from freshet.metadata.quorum_snapshots import SnapshotStore
from freshet.metadata.raft_tunnel import LOOPBACK, RaftTls, RaftTunnel, free_loopback_port
from freshet.v1 import metadata_pb2
from pysyncobj import FAIL_REASON, SyncObj, SyncObjConf, replicated
from pysyncobj import syncobj as pysyncobj_syncobj
from pysyncobj.monotonic import monotonic as pysyncobj_monotonic
from pysyncobj.poller import POLL_EVENT_TYPE
from pysyncobj.syncobj import _RAFT_STATE, SyncObjException
from pysyncobj.tcp_connection import CONNECTION_STATE
from pysyncobj.transport import TCPTransport

logger = logging.getLogger(__name__)

SNAPSHOT_FILE_NAME = "metadata.snapshot"
LOCK_FILE_NAME = "metadata.lock"
COMMAND_BYTES_MAX = 512 * 1024
# Larger than any entry (COMMAND_BYTES_MAX plus pickle framing), so every entry travels in one
# AppendEntries message and pysyncobj's multi-message path for oversized entries is never used.
APPEND_ENTRIES_BYTES_MAX = 2 * 1024 * 1024
SNAPSHOT_CHUNK_BYTES = 256 * 1024
assert APPEND_ENTRIES_BYTES_MAX > 2 * COMMAND_BYTES_MAX

# Messages that acknowledge log entries: never sent before the journal is durable.
_ACKNOWLEDGEMENTS = frozenset({"next_node_idx"})


@dataclasses.dataclass(frozen=True)
class QuorumConfig:
    """How to run one voter. Thread-safe (immutable).

    Attributes:
        node_id: this voter's node id (a key of `voters`).
        voters: node id -> "host:raftport" of every voter (an odd number; 1 for development).
        data_dir: directory for the journal, meta and snapshot files (created if missing).
        password: the cluster's Raft secret; every Raft frame is encrypted and authenticated with
            it. Mandatory: without it anyone reaching the port could make pysyncobj unpickle code.
        bind_address: "host:port" to listen on; default: this voter's address in `voters`.
        election_timeout_min_s, election_timeout_max_s: a follower that hears no leader for a random
            time in this range starts an election.
        heartbeat_interval_s: leader's AppendEntries period (< election_timeout_min_s / 3).
        leader_fallback_timeout_s: a leader without answers from a majority for this long steps down.
        connection_timeout_s: a Raft link with no traffic for this long is closed (long on purpose).
        connection_retry_s: how often to re-dial a voter that is down.
        tcp_keepalive: (idle seconds, probe interval seconds, probe count) for Raft links.
        proposal_timeout_s: default time a proposal waits for its result.
        snapshot_min_entries: compact the log (write a snapshot) once it holds this many entries.
        snapshot_min_interval_s: ... or once this much time passed since the last snapshot.
        fsync: make the journal, meta and snapshot durable before acknowledging (see README).
        recent_commands_max: commands kept in memory for watchers that are behind.
        proposal_queue_max: proposals waiting for the quorum thread before QuorumBusyError.
        tick_interval_s: longest the quorum thread sleeps when nothing happens.
        bind_timeout_s: how long to wait for the Raft port to become free at start.
        tls: TLS contexts for the Raft tunnel (None: pysyncobj's own plaintext TCP, with Fernet).
    """

    node_id: int
    voters: Mapping[int, str]
    data_dir: str
    password: str
    bind_address: str | None = None
    election_timeout_min_s: float = 0.25
    election_timeout_max_s: float = 0.5
    heartbeat_interval_s: float = 0.05
    leader_fallback_timeout_s: float = 1.0
    connection_timeout_s: float = 30.0
    connection_retry_s: float = 0.5
    tcp_keepalive: tuple[int, int, int] = (10, 3, 3)
    proposal_timeout_s: float = 5.0
    snapshot_min_entries: int = 20_000
    snapshot_min_interval_s: float = 600.0
    fsync: bool = True
    recent_commands_max: int = 10_000
    proposal_queue_max: int = 10_000
    tick_interval_s: float = 0.02
    bind_timeout_s: float = 10.0
    tls: RaftTls | None = None

    def validate(self) -> None:
        """Assert the relationships between the settings (a wrong config is a bug)."""
        assert self.node_id in self.voters, f"node {self.node_id} is not among the voters {sorted(self.voters)}"
        assert len(self.voters) % 2 == 1, "the metadata quorum needs an odd number of voters"
        addresses = list(self.voters.values())
        assert len(set(addresses)) == len(addresses), "two voters share an address"
        for address in [*addresses, self.bind_address or addresses[0]]:
            host, _, port = address.rpartition(":")
            assert host and port.isdigit() and 0 < int(port) < 65536, f"bad address {address!r}"
        assert isinstance(self.password, str) and self.password, "a Raft password is mandatory"
        assert self.heartbeat_interval_s > 0
        assert self.election_timeout_min_s > 3 * self.heartbeat_interval_s
        assert self.election_timeout_max_s > self.election_timeout_min_s
        assert self.leader_fallback_timeout_s > self.heartbeat_interval_s
        assert self.connection_timeout_s >= self.election_timeout_max_s
        assert self.connection_retry_s > 0
        assert len(self.tcp_keepalive) == 3 and all(isinstance(v, int) and v > 0 for v in self.tcp_keepalive)
        assert self.proposal_timeout_s > 0
        assert self.snapshot_min_entries >= 2
        assert self.snapshot_min_interval_s > 0
        assert self.recent_commands_max > 0
        assert self.proposal_queue_max > 0
        assert 0 < self.tick_interval_s <= self.heartbeat_interval_s
        assert self.bind_timeout_s >= 0


@dataclasses.dataclass(frozen=True, slots=True)
class VoterStatus:
    """One voter as seen from this node. Thread-safe (immutable).

    Attributes:
        match_raft_index: the last log entry the leader knows the voter has (None when this node
            is not the leader and so does not know).
        lag: entries the voter is behind the leader's log end (None when unknown).
    """

    node_id: int
    address: str
    is_self: bool
    is_connected: bool
    match_raft_index: int | None
    lag: int | None


@dataclasses.dataclass(frozen=True, slots=True)
class QuorumStatus:
    """A consistent status snapshot taken on the quorum thread. Thread-safe (immutable)."""

    node_id: int
    term: int
    leader_id: int | None
    is_leader: bool
    has_quorum: bool
    commit_raft_index: int
    last_raft_index: int
    applied_raft_index: int
    applied_offset: int
    snapshot_raft_index: int
    journal_entries: int
    journal_bytes: int
    is_fsync_enabled: bool
    voters: tuple[VoterStatus, ...]
    failure: str | None

    def to_json(self) -> dict:
        """The `quorum` object of `cluster status --output json` (INTERFACE.md), plus details."""
        return {
            "leader": self.leader_id,
            "term": self.term,
            "voters": [
                {
                    "id": v.node_id,
                    "address": v.address,
                    "lag": v.lag,
                    "connected": v.is_connected,
                    "match_raft_index": v.match_raft_index,
                }
                for v in self.voters
            ],
            "node_id": self.node_id,
            "is_leader": self.is_leader,
            "has_quorum": self.has_quorum,
            "commit_raft_index": self.commit_raft_index,
            "last_raft_index": self.last_raft_index,
            "applied_raft_index": self.applied_raft_index,
            "applied_offset": self.applied_offset,
            "snapshot_raft_index": self.snapshot_raft_index,
            "journal_entries": self.journal_entries,
            "journal_bytes": self.journal_bytes,
            "fsync": self.is_fsync_enabled,
            "failure": self.failure,
        }


@dataclasses.dataclass(slots=True)
class _Proposal:
    """A proposal awaiting its result. Not thread-safe: `is_done` is read and written only on the
    quorum thread (the caller's thread only creates it)."""

    future: Future
    request_id: str
    timeout_s: float
    deadline: float
    is_done: bool = False


class _PendingProposals:
    """Proposals awaiting their result, ordered by deadline. `add` may be called from any thread
    (a deque append is atomic); everything else runs on the quorum thread."""

    def __init__(self) -> None:
        self._new: collections.deque[_Proposal] = collections.deque()
        self._by_deadline: list[tuple[float, int, _Proposal]] = []
        self._sequence = itertools.count()

    def add(self, proposal: _Proposal) -> None:
        self._new.append(proposal)

    def expire(self, now: float) -> None:
        """Fail every proposal whose deadline (time.monotonic() seconds) is at or before `now`
        with ProposalTimeoutError; forget those already done."""
        while self._new:
            proposal = self._new.popleft()
            heapq.heappush(self._by_deadline, (proposal.deadline, next(self._sequence), proposal))
        while self._by_deadline and (self._by_deadline[0][2].is_done or self._by_deadline[0][0] <= now):
            _, _, proposal = heapq.heappop(self._by_deadline)
            if not proposal.is_done:
                proposal.is_done = True
                proposal.future.set_exception(ProposalTimeoutError(proposal.request_id, proposal.timeout_s))

    def fail_all(self, reason: str) -> None:
        """Fail every pending proposal with QuorumClosedError (the voter stopped)."""
        for proposal in [*self._new, *(entry[2] for entry in self._by_deadline)]:
            if not proposal.is_done:
                proposal.is_done = True
                proposal.future.set_exception(QuorumClosedError(reason))


class _DurableTransport(TCPTransport):
    """pysyncobj's TCP transport, made safe for Raft:

    - It never acknowledges log entries before they are durable: acknowledgements (and, to keep
      order, anything sent to the same node after one) are queued and sent by `flush_deferred()`,
      which first syncs the journal. The quorum thread flushes right after pysyncobj's tick has
      processed a batch of incoming messages, so one fdatasync covers them all.
    - It strips the leader's commit index from AppendEntries messages that do not prove the
      follower's log matches the leader's (snapshot transmission chunks carry no prevLogIdx).
      pysyncobj sets commitIndex = min(leaderCommit, own last index) for those too, so a voter
      holding uncommitted entries of a deposed leader applied them while a snapshot was arriving
      (Raft §5.3: a follower may only commit entries known to match the leader's log).
    - On the leader, it keeps a success acknowledgement from moving the follower's next index
      backwards. pysyncobj sets nextIndex = acknowledged + 1 on every success, although it has
      already sent further: with proposals in flight it re-sent entries all the time, followers
      truncated and re-appended them, and right after a compaction a follower a few entries
      behind was sent a whole (possibly older) snapshot. nextIndex is only the leader's optimistic
      send position: followers still reject mismatches and a reset still moves it back.
    - On a follower, it drops a snapshot this voter already holds: its last entry is applied here,
      or is in this voter's log with the same term (Raft §7: keep the log after it). pysyncobj
      would install it anyway: replace the newer snapshot file, clear the log (entries already
      acknowledged to the leader included) and roll the applied index back. A leader sends one when
      a rejection the follower sent before an earlier snapshot arrived is read after it (pysyncobj's
      replies carry no term or sequence); killing every voter during compaction found it.

    Not thread-safe: used by the quorum thread only.
    """

    def __init__(
        self, syncObj, selfNode, otherNodes, *, journal: RaftJournal,  # noqa: N803
        connect_address: Callable[[str], tuple[str, int]] | None = None,
    ) -> None:
        self._journal = journal
        self._connect_address = connect_address
        self._deferred: dict = {}
        self.acknowledgements_sent = 0
        self.unverified_commits_stripped = 0
        self.rewinds_prevented = 0
        self.held_snapshots_dropped = 0
        self._incoming_snapshot: bytearray | None = None
        super().__init__(syncObj, selfNode, otherNodes)

    def _onMessageReceived(self, node, message) -> None:  # noqa: N802 - pysyncobj's name
        kind = message.get("type") if isinstance(message, dict) else None
        if kind == "append_entries" and "prevLogIdx" not in message:
            self.unverified_commits_stripped += message.get("commit_index", 0) > 0
            message["commit_index"] = 0
            if self._completes_a_held_snapshot(message.get("serialized")):
                message["serialized"] = None        # still a heartbeat from the leader
        if kind == "next_node_idx" and message["success"] and not message["reset"] and self._syncObj._isLeader():
            next_index = self._syncObj._SyncObj__raftNextIndex      # pysyncobj's leader state
            sent_up_to = next_index.get(node)
            super()._onMessageReceived(node, message)
            if sent_up_to is not None and next_index.get(node, sent_up_to) < sent_up_to:
                next_index[node] = sent_up_to
                self.rewinds_prevented += 1
            return
        super()._onMessageReceived(node, message)

    def _completes_a_held_snapshot(self, chunk) -> bool:
        """Follow a snapshot transmission (chunks of the leader's snapshot file: data, is first,
        is last); True when `chunk` completes one whose last entry this voter already holds."""
        if chunk is None:
            return False
        data, is_first, is_last = chunk
        if is_first:
            self._incoming_snapshot = bytearray()
        if self._incoming_snapshot is None:     # joined mid-transmission: pysyncobj ignores it too
            return False
        self._incoming_snapshot += data
        if not is_last:
            return False
        received, self._incoming_snapshot = bytes(self._incoming_snapshot), None
        try:
            last = snapshot.decode_snapshot_file(received).last_applied
        except SnapshotFormatError:
            return False                        # loading it fails and stops the voter, loudly
        applied = self._syncObj.raftLastApplied
        if last.raft_index > applied and self._journal.term_at(last.raft_index) != last.term:
            return False
        self.held_snapshots_dropped += 1
        logger.info(
            "metadata quorum: dropped a snapshot up to raft index %d from the leader: already held "
            "(applied %d, log ends at %d)", last.raft_index, applied, self._journal.last_index,
        )
        return True

    def _connectIfNecessarySingle(self, node) -> bool:  # noqa: N802 - pysyncobj's name
        """pysyncobj's, except that with the TLS tunnel it connects to the local forwarder of
        `node` (the node keeps its address as identity: pysyncobj sends its self address first)."""
        if self._connect_address is None:
            return super()._connectIfNecessarySingle(node)
        connection = self._connections.get(node)
        if connection is not None and connection.state != CONNECTION_STATE.DISCONNECTED:
            return True
        if not self._shouldConnect(node):
            return False
        assert connection is not None       # pysyncobj makes one for every node it should connect to
        now = pysyncobj_monotonic()
        last = self._lastConnectAttempt.get(node)
        if last is not None and now - last < self._syncObj.conf.connectionRetryTime:
            return False
        self._lastConnectAttempt[node] = now
        host, port = self._connect_address(node.address)
        return connection.connect(host, port)

    def send(self, node, message) -> bool:
        kind = message.get("type") if isinstance(message, dict) else None
        if kind not in _ACKNOWLEDGEMENTS and node not in self._deferred:
            return super().send(node, message)
        queue = self._deferred.setdefault(node, [])
        if queue and kind == "next_node_idx" and message["success"] and not message["reset"]:
            last = queue[-1]
            # A later cumulative success supersedes an earlier one (the leader keeps the maximum).
            if (
                last.get("type") == "next_node_idx"
                and last["success"]
                and not last["reset"]
                and last["next_node_idx"] <= message["next_node_idx"]
            ):
                queue[-1] = message
                return True
        queue.append(message)
        return True

    def flush_deferred(self) -> None:
        if not self._deferred:
            return
        self._journal.sync()
        deferred, self._deferred = self._deferred, {}
        for node, messages in deferred.items():
            for message in messages:
                if message.get("type") == "next_node_idx" and message["success"]:
                    # Invariant: an acknowledged entry is on stable storage (Raft §5.3 / Figure 2).
                    assert message["next_node_idx"] - 1 <= self._journal.durable_last_index, (
                        message,
                        self._journal.durable_last_index,
                    )
                    self.acknowledgements_sent += 1
                super().send(node, message)


class _RaftNode(SyncObj):
    """pysyncobj with exactly one replicated method and PreVote (metadata/prevote.py: the
    `prevote_*` methods are its view of pysyncobj's private state). Not thread-safe (quorum
    thread only), except `_apply_command(data, callback=...)`, which pysyncobj makes safe to call
    from any thread."""

    def __init__(self, quorum: MetadataQuorum, self_address: str, other_addresses: list[str], conf: SyncObjConf, transport_class) -> None:
        self._quorum = quorum
        self.prevote = PreVote(self, conf.raftMinTimeout, pysyncobj_monotonic)
        super().__init__(self_address, other_addresses, conf, transportClass=transport_class)
        raft_receive = self._SyncObj__onMessageReceived

        def receive(node, message) -> None:
            if not (isinstance(message, dict) and self.prevote.on_message(node, message)):
                raft_receive(node, message)

        self._SyncObj__transport.setOnMessageReceivedCallback(receive)     # PreVote sees every message first

    def _onTick(self, timeToWait: float = 0.0) -> None:  # noqa: N802, N803 - pysyncobj's names
        self.prevote.before_tick()
        super()._onTick(timeToWait)

    def prevote_peers(self) -> list:
        return list(self._SyncObj__otherNodes)

    def prevote_term(self) -> int:
        return self._SyncObj__raftCurrentTerm

    def prevote_last_log(self) -> tuple[int, int]:
        return self._SyncObj__getCurrentLogTerm(), self._SyncObj__getCurrentLogIndex()

    def prevote_is_leader(self) -> bool:
        return self._SyncObj__raftState == _RAFT_STATE.LEADER

    def prevote_election_due(self, now: float) -> bool:
        return self._SyncObj__raftState != _RAFT_STATE.LEADER and self._SyncObj__raftElectionDeadline < now

    def prevote_transfer_in_progress(self) -> bool:
        return self._SyncObj__transferInProgress

    def prevote_postpone_election(self, now: float) -> None:
        self._SyncObj__raftElectionDeadline = now + self._SyncObj__generateRaftTimeout()

    def prevote_elect_now(self) -> None:
        self._SyncObj__raftElectionDeadline = 0

    def prevote_send(self, peer, message: dict) -> None:
        self._SyncObj__transport.send(peer, message)

    @replicated
    def _apply_command(self, data: bytes) -> metadata_pb2.MetadataResult | None:
        return self._quorum._on_replicated(data)


# pysyncobj 0.3.17 has no way to pass a journal object: SyncObj.__init__ calls the module-level
# createJournal(conf.journalFile). While one constructor runs, that name returns our journal; the
# lock serialises constructions in one process (tests run several voters in-process).
_JOURNAL_INJECTION_LOCK = threading.Lock()


def _build_raft_node(
    quorum: MetadataQuorum,
    journal: RaftJournal,
    self_address: str,
    others: list[str],
    conf: SyncObjConf,
    connect_address: Callable[[str], tuple[str, int]] | None = None,
) -> tuple[_RaftNode, _DurableTransport]:
    transports: list[_DurableTransport] = []

    def make_transport(sync_obj, self_node, other_nodes) -> _DurableTransport:
        transport = _DurableTransport(sync_obj, self_node, other_nodes, journal=journal, connect_address=connect_address)
        transports.append(transport)
        return transport

    with _JOURNAL_INJECTION_LOCK:
        original = pysyncobj_syncobj.createJournal
        pysyncobj_syncobj.createJournal = lambda journal_file: journal
        try:
            node = _RaftNode(quorum, self_address, others, conf, make_transport)
        finally:
            pysyncobj_syncobj.createJournal = original
    assert len(transports) == 1
    return node, transports[0]


def _wait_until_bindable(address: str, timeout_s: float) -> None:
    """Wait until `address` can be bound (a restarted voter may race its predecessor's socket)."""
    host, _, port = address.rpartition(":")
    deadline = time.monotonic() + timeout_s
    while True:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        probe = socket.socket(family, socket.SOCK_STREAM)
        try:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, int(port)))
            return
        except OSError as error:
            if error.errno != errno.EADDRINUSE or time.monotonic() >= deadline:
                raise RaftBindError(address, str(error)) from error
        finally:
            probe.close()
        time.sleep(0.05)


def _syncobj_conf(
    config: QuorumConfig,
    bind_address: str,
    snapshots: SnapshotStore,
    serializer: Callable[[str, object], None],
    deserializer: Callable[[str], object],
) -> SyncObjConf:
    """pysyncobj's configuration for this voter: every choice of the module docstring's list."""
    return SyncObjConf(
        password=config.password,
        autoTick=False,
        commandsQueueSize=config.proposal_queue_max,
        raftMinTimeout=config.election_timeout_min_s,
        raftMaxTimeout=config.election_timeout_max_s,
        appendEntriesPeriod=config.heartbeat_interval_s,
        connectionTimeout=config.connection_timeout_s,
        connectionRetryTime=config.connection_retry_s,
        leaderFallbackTimeout=config.leader_fallback_timeout_s,
        appendEntriesUseBatch=False,
        appendEntriesBatchSizeBytes=APPEND_ENTRIES_BYTES_MAX,
        bindAddress=bind_address,
        logCompactionMinEntries=config.snapshot_min_entries,
        logCompactionMinTime=config.snapshot_min_interval_s,
        logCompactionSplit=False,
        logCompactionBatchSize=SNAPSHOT_CHUNK_BYTES,
        commandsWaitLeader=False,
        fullDumpFile=snapshots.path,
        journalFile=None,
        useFork=False,
        serializer=serializer,
        deserializer=deserializer,
        dynamicMembershipChange=False,
        tcp_keepalive=tuple(config.tcp_keepalive),
        bindRetryTime=0.1,
        maxBindRetries=3,
        pollerType="poll",
    )


class MetadataQuorum:
    """One voter of the metadata Raft group (see the module docstring).

    Thread-safe: every public method and property may be called from any thread; `image` returns
    the current immutable MetadataImage. Listener and future callbacks run on the quorum thread and
    must be quick and must not block on the quorum (proposing is fine: it never blocks).
    """

    def __init__(self, config: QuorumConfig) -> None:
        config.validate()
        self.config = config
        self.node_id = config.node_id
        self._voters = dict(sorted(config.voters.items()))
        self._address_to_id = {address: node_id for node_id, address in self._voters.items()}
        self._self_address = self._voters[config.node_id]
        self._bind_address = config.bind_address or self._self_address
        self._data_dir = os.path.abspath(config.data_dir)
        self._snapshots = SnapshotStore(
            os.path.join(self._data_dir, SNAPSHOT_FILE_NAME), self._voters.values(), config.fsync
        )

        self._lock_fd = self._lock_data_dir()
        try:
            self._start()
        except BaseException:
            os.close(self._lock_fd)
            raise

    # -- start ----------------------------------------------------------------------------------

    def _lock_data_dir(self) -> int:
        try:
            os.makedirs(self._data_dir, exist_ok=True)
            fd = os.open(os.path.join(self._data_dir, LOCK_FILE_NAME), os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise DataDirectoryError(self._data_dir, str(error)) from error
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise DataDirectoryError(self._data_dir, "in use by another metadata quorum") from None
        return fd

    def _start(self) -> None:
        self._snapshots.remove_leftovers()
        self._journal = RaftJournal(self._data_dir, fsync=self.config.fsync)
        try:
            self._start_with_journal()
        except BaseException:
            self._journal.close()
            raise

    def _start_with_journal(self) -> None:
        config = self.config
        self._image: MetadataImage = self._snapshots.load_at_start(self._journal)

        # Published state (read by any thread; replaced, never mutated, by the quorum thread).
        self._view = LeadershipChange(term=0, leader_id=None, is_leader=False)
        self._has_quorum = False
        self._failure: str | None = None
        self._is_closed = False
        self._stopping = False

        self._changed = threading.Condition()
        self._waiters = 0
        self._listeners = Listeners()
        self._ring = CommandRing(config.recent_commands_max, floor=self._image.offset)

        self._proposals = _PendingProposals()
        self._tasks: collections.deque[tuple[Callable[[], object], Future]] = collections.deque()
        self.tick_errors = 0
        self.journal_full_errors = 0          # journal writes deferred by a full disk (retried each tick)
        # Held while writing to pipes that shutdown closes: a closed fd number may be reused at once.
        self._io_lock = threading.Lock()

        _wait_until_bindable(self._bind_address, config.bind_timeout_s)
        others = [address for node_id, address in self._voters.items() if node_id != self.node_id]
        self._tunnel: RaftTunnel | None = None
        raft_bind_address, connect_address = self._bind_address, None
        if config.tls is not None:
            local_port = free_loopback_port()
            self._tunnel = RaftTunnel(config.tls, self._bind_address, local_port, {peer: peer for peer in others})
            try:
                self._tunnel.start()
            except OSError as error:
                raise RaftBindError(self._bind_address, str(error)) from error
            raft_bind_address, connect_address = f"{LOOPBACK}:{local_port}", self._tunnel.forwarder_address
        conf = _syncobj_conf(config, raft_bind_address, self._snapshots, self._write_snapshot_file, self._load_snapshot_file)
        try:
            self._node, self._transport = _build_raft_node(
                self, self._journal, self._self_address, others, conf, connect_address
            )
        except SyncObjException as error:
            if self._tunnel is not None:
                self._tunnel.close()
            raise RaftBindError(self._bind_address, str(error)) from error
        assert len(self._node._idToMethod) == 1, "exactly one replicated dispatcher"
        self._journal.applied_index = lambda: self._node.raftLastApplied
        self._node.addOnTickCallback(self._sync_and_flush)

        # A pipe that wakes the quorum thread's poll() when another thread hands it work.
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_read, False)
        os.set_blocking(self._wake_write, False)
        self._node._poller.subscribe(self._wake_read, self._on_wake, POLL_EVENT_TYPE.READ)

        self._thread = threading.Thread(target=self._run, name=f"metadata-quorum-{self.node_id}", daemon=True)
        self._thread.start()

    # -- public read side -----------------------------------------------------------------------

    @property
    def image(self) -> MetadataImage:
        """The current image (immutable; a newer one replaces it after each apply)."""
        return self._image

    @property
    def offset(self) -> int:
        """The metadata offset of the last applied command."""
        return self._image.offset

    @property
    def leader_id(self) -> int | None:
        return self._view.leader_id

    @property
    def is_leader(self) -> bool:
        return self._view.is_leader

    @property
    def term(self) -> int:
        return self._view.term

    @property
    def has_quorum(self) -> bool:
        return self._has_quorum

    @property
    def failure(self) -> str | None:
        """Why this voter stopped (a fatal error), or None while it runs normally."""
        return self._failure

    @property
    def is_closed(self) -> bool:
        return self._is_closed

    # -- proposals ------------------------------------------------------------------------------

    def propose(self, command: metadata_pb2.MetadataCommand, timeout_s: float | None = None) -> Future:
        """Propose a command; never blocks.

        Args:
            command: the command (request id and controller epoch filled in by the proposer).
            timeout_s: how long the future may wait (default: config.proposal_timeout_s).

        Returns:
            A Future resolving to the MetadataResult once the command is committed and applied on
            this voter (the result may carry an error code: the state machine refused it), or
            failing with NotLeaderError / QuorumBusyError / CommandDiscardedError /
            CommandTooLargeError (not applied), ProposalTimeoutError / LeaderChangedError /
            OutcomeUnknownError / QuorumClosedError (outcome unknown: retry with the same request
            id). Done-callbacks run on the quorum thread.
        """
        future: Future = Future()
        future.set_running_or_notify_cancel()
        if self._is_closed or self._stopping or self._failure is not None:
            future.set_exception(QuorumClosedError(self._failure or "closed"))
            return future
        data = commands.encode(command)
        if len(data) > COMMAND_BYTES_MAX:
            future.set_exception(CommandTooLargeError(len(data), COMMAND_BYTES_MAX))
            return future
        view = self._view
        if not view.is_leader:
            future.set_exception(NotLeaderError(view.leader_id))
            return future
        timeout = self.config.proposal_timeout_s if timeout_s is None else timeout_s
        proposal = _Proposal(future, command.request_id, timeout, time.monotonic() + timeout)
        with self._io_lock:
            if self._is_closed or self._stopping:
                future.set_exception(QuorumClosedError(self._failure or "closed"))
                return future
            self._proposals.add(proposal)
            self._node._apply_command(data, callback=functools.partial(self._on_proposal_result, proposal))
        return future

    def _on_proposal_result(self, proposal: _Proposal, result, error) -> None:
        # Quorum thread. pysyncobj may call back after our own timeout fired: ignore it then.
        if proposal.is_done:
            return
        proposal.is_done = True
        if error == FAIL_REASON.SUCCESS and isinstance(result, metadata_pb2.MetadataResult):
            proposal.future.set_result(result)
            return
        if error == FAIL_REASON.SUCCESS:
            # Committed, but this voter did not apply it (it is stopping after a fatal error).
            proposal.future.set_exception(OutcomeUnknownError(proposal.request_id, "applied without a result"))
            return
        proposal.future.set_exception(self._proposal_error(proposal, error))

    def _proposal_error(self, proposal: _Proposal, error: int) -> Exception:
        if error in (FAIL_REASON.MISSING_LEADER, FAIL_REASON.NOT_LEADER):
            return NotLeaderError(self._view.leader_id)
        if error == FAIL_REASON.QUEUE_FULL:
            return QuorumBusyError(self.config.proposal_queue_max)
        if error == FAIL_REASON.DISCARDED:
            return CommandDiscardedError(proposal.request_id)
        if error == FAIL_REASON.LEADER_CHANGED:
            return LeaderChangedError(proposal.request_id)
        return OutcomeUnknownError(proposal.request_id, f"pysyncobj reported failure reason {error}")

    # -- listeners, watchers, waiting -----------------------------------------------------------

    def add_listener(self, on_apply: ApplyListener, on_reset: ResetListener | None = None) -> None:
        """Call on_apply(offset, command bytes, result) after each applied command, and on_reset(image)
        when the image is replaced wholesale by a snapshot from the leader (deltas were skipped).
        Both run on the quorum thread; exceptions are logged and ignored."""
        self._listeners.add(on_apply, on_reset)

    def remove_listener(self, on_apply: ApplyListener, on_reset: ResetListener | None = None) -> None:
        self._listeners.remove(on_apply, on_reset)

    def add_leadership_listener(self, listener: LeadershipListener) -> None:
        """Call listener(LeadershipChange) on the quorum thread whenever term, leader or this voter's
        leadership changes. The controller proposes ClaimController when is_leader turns True."""
        self._listeners.add_leadership(listener)

    def recent_commands(self, after_offset: int) -> list[AppliedCommand] | None:
        """Applied commands with offset > after_offset, oldest first; None when the ring no longer
        holds them all (the watcher must start from a snapshot of `image` instead)."""
        return self._ring.after(after_offset)

    def wait_for_offset(self, offset: int, timeout_s: float) -> bool:
        """Block until the image's offset is >= `offset`; False on timeout or when closed."""
        return self._wait_until(lambda: self._image.offset >= offset, timeout_s)

    def wait_for_leader(self, timeout_s: float) -> int | None:
        """Block until a leader is known; its node id, or None on timeout."""
        seen: list[int | None] = [None]       # the leader the condition saw, under the lock

        def is_known() -> bool:
            seen[0] = self._view.leader_id
            return seen[0] is not None

        return seen[0] if self._wait_until(is_known, timeout_s) else None

    def _wait_until(self, condition: Callable[[], bool], timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        with self._changed:
            self._waiters += 1
            try:
                while not condition():
                    remaining = deadline - time.monotonic()
                    if remaining <= 0 or self._is_closed:
                        return False
                    self._changed.wait(remaining)
                return True
            finally:
                self._waiters -= 1

    def _notify_waiters(self) -> None:
        if self._waiters:
            with self._changed:
                self._changed.notify_all()

    # -- work on the quorum thread --------------------------------------------------------------

    def _submit(self, task: Callable[[], object]) -> Future:
        future: Future = Future()
        future.set_running_or_notify_cancel()
        if self._is_closed or self._stopping:
            future.set_exception(QuorumClosedError(self._failure or "closed"))
            return future
        if threading.current_thread() is self._thread:
            try:
                future.set_result(task())
            except Exception as error:
                future.set_exception(error)
            return future
        self._tasks.append((task, future))
        self._wake()
        return future

    def _wake(self) -> None:
        with self._io_lock:
            if self._wake_write < 0:
                return
            try:
                os.write(self._wake_write, b"w")
            except BlockingIOError:
                pass                  # the pipe is full: the thread is awake anyway

    def _on_wake(self, descr, event) -> None:
        try:
            while os.read(self._wake_read, 4096):
                pass
        except BlockingIOError:
            pass

    def status(self, timeout_s: float = 2.0) -> QuorumStatus:
        """Term, leader, voters with per-voter lag, commit index, applied offset, quorum.

        Raises:
            QuorumClosedError: the quorum is closed.
            TimeoutError: the quorum thread did not answer in time.
        """
        return self._submit(self._collect_status).result(timeout_s)

    def transfer_leadership(self, to: int | None = None, timeout_s: float = 2.0) -> None:
        """Ask the leader (this voter) to hand leadership to voter `to` (default: the most caught-up).

        Returns once the request is sent; watch `leader_id` / a leadership listener to see it done.

        Raises:
            NotLeaderError: this voter is not the leader.
            TransferDeniedError: the target is unknown, not connected or not caught up.
        """
        if to is not None and (to not in self._voters or to == self.node_id):
            raise TransferDeniedError(to)
        outcome: Future = Future()

        def task() -> None:
            def on_done(result, error) -> None:
                if error == FAIL_REASON.SUCCESS:
                    outcome.set_result(None)
                elif error == FAIL_REASON.NOT_LEADER:
                    outcome.set_exception(NotLeaderError(self._view.leader_id))
                else:
                    outcome.set_exception(TransferDeniedError(to))

            self._node.transferLeadership(None if to is None else self._voters[to], on_done)

        self._submit(task).result(timeout_s)
        outcome.result(timeout_s)

    def force_snapshot(self, timeout_s: float = 2.0) -> None:
        """Compact the log at the next tick (operations and tests; normally size/time triggers it)."""
        self._submit(self._node.forceLogCompaction).result(timeout_s)

    # -- the quorum thread ----------------------------------------------------------------------

    def _run(self) -> None:
        node = self._node
        try:
            while not self._stopping and self._failure is None:
                try:
                    node.doTick(self.config.tick_interval_s)
                    self._sync_and_flush()
                except MetadataError as error:
                    self._fail(f"{type(error).__name__}: {error}")
                    break
                except AssertionError as error:
                    logger.critical("broken invariant in the metadata quorum", exc_info=True)
                    self._fail(f"broken invariant: {error!r}")
                    break
                except Exception:
                    # pysyncobj's own loop also logs and carries on (e.g. a malformed frame).
                    self.tick_errors += 1
                    logger.exception("error in a metadata quorum tick")
                self._after_tick()
        finally:
            self._shutdown_on_thread()

    def _sync_and_flush(self) -> None:
        # Runs after pysyncobj appended entries in a tick (as an on-tick callback, so the leader's
        # fdatasync overlaps its followers' work) and after each tick's poll: the leader counts its
        # own log towards the commit index only at the start of a tick, hence only durable entries.
        try:
            self._journal.sync()
        except JournalFullError as error:
            # A full disk: the records stay buffered and unacknowledged; the next tick retries
            # (the node's disk reserve is released below the low-water mark to make room).
            self.journal_full_errors += 1
            if self.journal_full_errors == 1 or self.journal_full_errors % 100 == 0:
                logger.error("metadata journal write deferred (%d times so far): %s", self.journal_full_errors, error)
            return
        self._transport.flush_deferred()

    def _after_tick(self) -> None:
        self._proposals.expire(time.monotonic())
        while self._tasks:
            task, future = self._tasks.popleft()
            try:
                future.set_result(task())
            except Exception as error:
                future.set_exception(error)
        self._publish_view()

    def _publish_view(self) -> None:
        node = self._node
        leader = node._getLeader()
        leader_id = None if leader is None else self._address_to_id.get(leader.address)
        view = LeadershipChange(term=node.raftCurrentTerm, leader_id=leader_id, is_leader=node._isLeader())
        self._has_quorum = node.hasQuorum
        if view != self._view:
            self._view = view
            self._notify_waiters()
            self._listeners.notify_leadership(view)

    def _on_replicated(self, data: bytes) -> metadata_pb2.MetadataResult | None:
        """The replicated dispatcher (quorum thread). Must return quickly and never raise."""
        offset = self._node.raftLastApplied + 1
        image = self._image
        if offset <= image.offset:
            # Already part of the snapshot loaded at start: pysyncobj replays its journal from the
            # commit index it persisted before it loads the snapshot.
            return None
        try:
            new_image, result = state_machine.apply_bytes(image, data, offset)
        except BaseException as error:      # apply catches every Exception: this is a real bug
            logger.critical("metadata apply escaped at offset %d", offset, exc_info=True)
            self._fail(f"apply escaped at offset {offset}: {error!r}")
            return None
        self._image = new_image
        self._ring.append(offset, data)
        self._listeners.notify_apply(offset, data, result)
        self._notify_waiters()
        return result

    def _fail(self, reason: str) -> None:
        if self._failure is None:
            logger.critical("metadata quorum voter %d stops: %s", self.node_id, reason)
            self._failure = reason

    # -- snapshots (called by pysyncobj on the quorum thread) -----------------------------------

    def _write_snapshot_file(self, path: str, data) -> None:
        self._snapshots.write(path, data, self._image)

    def _load_snapshot_file(self, path: str):
        try:
            image, entries = self._snapshots.load(path, self._image)
        except (OSError, SnapshotFormatError) as error:
            # pysyncobj swallows exceptions from here and would carry on with a stale state.
            self._fail(f"cannot load snapshot {path}: {error}")
            raise
        if image is not None:
            self._image = image
            self._ring.reset(image.offset)
            self._listeners.notify_reset(image)
            self._notify_waiters()
        return entries

    @property
    def snapshot_raft_index(self) -> int:
        """The raft index of the last entry the newest snapshot covers (0: none yet)."""
        return self._snapshots.raft_index

    # -- status ---------------------------------------------------------------------------------

    def _collect_status(self) -> QuorumStatus:
        node = self._node
        raw = node.getStatus()
        is_leader = node._isLeader()
        last_index = self._journal.last_index
        voters = []
        for node_id, address in self._voters.items():
            if node_id == self.node_id:
                match: int | None = last_index
                connected = True
            else:
                connected = raw.get(f"partner_node_status_server_{address}") == 2
                match = raw.get(f"match_idx_server_{address}") if is_leader else None
            lag = None if match is None or not is_leader else max(0, last_index - match)
            voters.append(VoterStatus(node_id, address, node_id == self.node_id, connected, match if is_leader else None, lag))
        view = self._view
        return QuorumStatus(
            node_id=self.node_id,
            term=raw["raft_term"],
            leader_id=view.leader_id,
            is_leader=is_leader,
            has_quorum=raw["has_quorum"],
            commit_raft_index=raw["commit_idx"],
            last_raft_index=last_index,
            applied_raft_index=raw["last_applied"],
            applied_offset=self._image.offset,
            snapshot_raft_index=self.snapshot_raft_index,
            journal_entries=len(self._journal),
            journal_bytes=self._journal.size_bytes,
            is_fsync_enabled=self.config.fsync,
            voters=tuple(voters),
            failure=self._failure,
        )

    # -- shutdown -------------------------------------------------------------------------------

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop the voter: leave the group's traffic, make the journal durable, release the data
        directory. Pending proposals fail with QuorumClosedError. Idempotent."""
        if self._is_closed:
            return
        self._stopping = True
        self._wake()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                logger.error("metadata quorum thread did not stop within %.1f s", timeout_s)

    def _shutdown_on_thread(self) -> None:
        node = self._node
        try:
            node._doDestroy()                 # closes the transport and the journal (durable)
        except Exception:
            logger.exception("error while stopping the metadata quorum")
        with self._io_lock:
            self._stopping = True
            # pysyncobj never closes the pipe of its command notifier; close it with ours.
            notifier = getattr(node, "_SyncObj__pipeNotifier", None)
            for name in ("_PipeNotifier__pipeR", "_PipeNotifier__pipeW"):
                fd = getattr(notifier, name, None)
                if fd is not None:
                    os.close(fd)
            os.close(self._wake_read)
            os.close(self._wake_write)
            self._wake_read = self._wake_write = -1
        if self._tunnel is not None:
            self._tunnel.close()
        reason = self._failure or "closed"
        self._proposals.fail_all(reason)
        while self._tasks:
            _, future = self._tasks.popleft()
            future.set_exception(QuorumClosedError(reason))
        self._view = LeadershipChange(term=self._view.term, leader_id=None, is_leader=False)
        self._has_quorum = False
        self._is_closed = True
        try:
            os.close(self._lock_fd)
        except OSError:
            pass
        with self._changed:
            self._changed.notify_all()
        self._listeners.notify_leadership(self._view)
