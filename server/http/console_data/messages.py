"""The console's message browser and server-side search: `browse(backend, caller, query)`.

What it reads: committed records only (below the high watermark), no group. How: the consumer's
own path, the Broker service's Fetch and ListOffsets RPCs (the calls the SDK's fetcher makes),
sent to each partition's leader with this node's identity over `backend.transport`; the viewer's
Read right on the topic is checked first with the Fetch handler's rule (backend.py explains why
the node cannot call as the viewer on other nodes). The leader may be another node, so this works
for every partition, not only those hosted here; batches arrive as stored, decoded here with the
storage codec (the SDK's decoder, CRC checked).

Order: newest first. A partition is read backwards in chunks of offsets [lo, hi): each chunk is
fetched forward (whole batches) and walked from its last batch to its first. With "all
partitions" the partitions' newest-first lists are merged by timestamp, each partition's rows
staying in offset order, so `BrowseResult.positions[p].next_offset` is exactly where "older"
continues for partition p (pass them back as `BrowseQuery.resume`).

Search (`SearchSpec`): a literal text or a regular expression over the key, the value, and the
header keys and values, run here on the server with a budget (`ScanBudget`: records, bytes,
seconds; the first reached stops the scan and is reported in `stopped_by`). Fast paths:
- a literal is matched as UTF-8 bytes against the raw bytes of a whole uncompressed batch first,
  so a batch without it is skipped without being decoded (case-insensitive ASCII literals compare
  lower-cased bytes); compressed batches and regular expressions decode every batch; a
  case-insensitive search with non-ASCII text decodes each field to text (bytes fold ASCII only);
- each batch is decoded once, records are matched on bytes (never rendered to text), and only the
  rows shown are rendered (UTF-8 text, JSON pretty-printed, else hex; each capped at
  DISPLAY_CHARS_MAX with `is_truncated`).
`ScanStats` reports what was scanned (records, bytes, batches skipped unread, seconds).

Thread-safety: thread-safe (no state of its own); blocks the calling thread up to the budget's
seconds plus one fetch (backend.request_timeout_s).
"""

from __future__ import annotations

import dataclasses
import json
import re
import time
from collections.abc import Mapping

import grpc
from freshet.client._transport import raise_for_detail, translate_rpc_error
from freshet.client.errors import LeaderNotAvailableError, UnknownTopicError
from freshet.metadata.image import NO_LEADER
from freshet.metadata.security import Operation, ResourceType
from freshet.server.errors import AuthorizationError
from freshet.server.http.console_data.backend import (
    ActionRefused,
    ConsoleBackend,
    refused_by_error,
    sdk_call,
    viewer_bound,
)
from freshet.server.security import rules
from freshet.server.security.authorizer import Caller
from freshet.storage.errors import StorageError
from freshet.storage.record_batch import decode_batch, iter_batches
from freshet.v1 import broker_pb2, common_pb2

#: Rows one page may ask for.
LIMIT_MAX = 500
#: Characters of a rendered key, value or header value (hex: 2 per byte plus spaces).
DISPLAY_CHARS_MAX = 4096
#: Values up to this size are tried as JSON (larger ones are shown as text).
JSON_PARSE_BYTES_MAX = 256 * 1024
#: Bytes one Fetch may return.
FETCH_BYTES_MAX = 8 * 1024 * 1024
#: Offsets per chunk when searching: the first chunk, doubled up to the last.
SEARCH_CHUNK_FIRST = 2_000
SEARCH_CHUNK_MAX = 64_000
#: Compression codec bits of a batch's attributes (0: none).
_COMPRESSION_MASK = 0x07
_TIMESTAMP_TYPES = ("CreateTime", "LogAppendTime")


@dataclasses.dataclass(frozen=True)
class ScanBudget:
    """How far one search may scan: the first bound reached stops it."""

    records_max: int = 2_000_000
    bytes_max: int = 512 * 1024 * 1024
    seconds_max: float = 5.0


@dataclasses.dataclass(frozen=True)
class SearchSpec:
    """What to look for: `text` as a literal (default) or a regular expression (`is_regex`), in
    keys, values, header keys and header values (each can be left out)."""

    text: str
    is_regex: bool = False
    ignore_case: bool = False
    in_keys: bool = True
    in_values: bool = True
    in_headers: bool = True


@dataclasses.dataclass(frozen=True)
class BrowseQuery:
    """One page of the browser.

    Attributes:
        topic: the topic.
        partition: one partition, or None for all.
        start_offset: show records at or below this offset (None: from the newest).
        start_timestamp_ms: show records written at or before this time (used when no start_offset).
        limit: rows on the page (1..LIMIT_MAX).
        search: only records matching it (None: every record).
        budget: bound of a search's scan.
        resume: partition -> next_offset from a previous page's positions ("older" / "scan
            further"): each partition continues below it (overrides the start_*).
    """

    topic: str
    partition: int | None = None
    start_offset: int | None = None
    start_timestamp_ms: int | None = None
    limit: int = 50
    search: SearchSpec | None = None
    budget: ScanBudget = ScanBudget()
    resume: Mapping[int, int] | None = None


@dataclasses.dataclass(frozen=True)
class Rendered:
    """Bytes for display: kind "null" (no bytes), "text" (UTF-8), "json" (pretty-printed) or "hex";
    `text` is what to show, `size_bytes` the original size, `is_truncated` whether `text` was cut."""

    kind: str
    text: str
    size_bytes: int
    is_truncated: bool


@dataclasses.dataclass(frozen=True)
class MessageRow:
    """One record: where it is, its timestamp (ms since the epoch; type "CreateTime" or
    "LogAppendTime"), and key, value and headers rendered for display."""

    partition: int
    offset: int
    timestamp_ms: int
    timestamp_type: str
    key: Rendered
    value: Rendered
    headers: tuple[tuple[str, Rendered], ...]


@dataclasses.dataclass(frozen=True)
class PartitionPosition:
    """Where a partition's reading stopped: `next_offset` is the exclusive upper bound of what is
    still unread below (pass it back in `resume`); None when the log start was reached."""

    partition: int
    next_offset: int | None
    log_start_offset: int
    high_watermark: int


@dataclasses.dataclass(frozen=True)
class ScanStats:
    """What a page scanned: records and bytes examined (batches skipped unread included),
    batches skipped by the raw-bytes filter, seconds, and the rates they give."""

    records: int
    bytes: int
    batches_skipped: int
    seconds: float

    @property
    def records_per_s(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else 0.0

    @property
    def megabytes_per_s(self) -> float:
        return self.bytes / self.seconds / 1e6 if self.seconds > 0 else 0.0


@dataclasses.dataclass(frozen=True)
class BrowseResult:
    """A page: rows newest first; per partition where reading stopped; what was scanned; and
    why it stopped: "limit" (the page is full), "start_of_log" (nothing older), or the budget
    bound reached ("records", "bytes", "seconds": the UI offers "scan further")."""

    topic: str
    rows: tuple[MessageRow, ...]
    positions: tuple[PartitionPosition, ...]
    stats: ScanStats
    stopped_by: str

    @property
    def has_older(self) -> bool:
        return any(p.next_offset is not None for p in self.positions)


# -- rendering -------------------------------------------------------------------------------------


def render(data: bytes | None) -> Rendered:
    """Bytes for display: UTF-8 text, JSON pretty-printed when the text parses as a JSON object
    or array, else hex; capped at DISPLAY_CHARS_MAX characters."""
    if data is None:
        return Rendered("null", "", 0, False)
    size = len(data)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and (text.isprintable() or _is_text(text)):
        kind = "text"
        stripped = text.lstrip()
        if size <= JSON_PARSE_BYTES_MAX and stripped[:1] in ("{", "["):
            try:
                text = json.dumps(json.loads(text), indent=2, ensure_ascii=False, sort_keys=False)
                kind = "json"
            except ValueError:
                pass
        return Rendered(kind, text[:DISPLAY_CHARS_MAX], size, len(text) > DISPLAY_CHARS_MAX)
    shown = data[: DISPLAY_CHARS_MAX // 3]
    return Rendered("hex", shown.hex(" "), size, len(shown) < size)


def _is_text(text: str) -> bool:
    """Printable apart from line breaks and tabs (multi-line text is text, not binary)."""
    return text.replace("\n", "").replace("\r", "").replace("\t", "").isprintable()


def _row(partition: int, record, timestamp_type: int) -> MessageRow:
    offset, timestamp, key, value, headers = record
    return MessageRow(
        partition, offset, timestamp, _TIMESTAMP_TYPES[timestamp_type], render(key), render(value),
        tuple((name, render(header_value)) for name, header_value in headers),
    )


# -- matching --------------------------------------------------------------------------------------


class _Matcher:
    """A SearchSpec compiled for bytes. Not thread-safe (one per scan)."""

    def __init__(self, spec: SearchSpec) -> None:
        if not spec.text:
            raise ValueError("the search text is empty")
        if not (spec.in_keys or spec.in_values or spec.in_headers):
            raise ValueError("search at least one of keys, values, headers")
        self.spec = spec
        needle = spec.text.encode("utf-8")
        self._literal: bytes | None = None           # raw-batch prefilter (None: decode every batch)
        self._is_lowered = False
        if not spec.is_regex and not spec.ignore_case:
            self._literal = needle
        elif not spec.is_regex and needle.isascii():
            self._literal, self._is_lowered = needle.lower(), True
        # Bytes patterns fold ASCII case only: a case-insensitive non-ASCII search matches
        # text (each field decoded, slower); everything else matches bytes.
        is_text = spec.ignore_case and not needle.isascii()
        try:
            source = spec.text if is_text else needle if spec.is_regex else re.escape(needle)
            if is_text and not spec.is_regex:
                source = re.escape(spec.text)
            pattern = re.compile(source, re.IGNORECASE if spec.ignore_case else 0)
        except re.error as error:
            raise ValueError(f"not a valid regular expression: {error}") from error
        if is_text:
            self._search = lambda data: pattern.search(data.decode("utf-8", "replace"))
        else:
            self._search = pattern.search

    def batch_may_match(self, view: memoryview, attributes: int) -> bool:
        """False only when no record of this batch can match (an uncompressed batch whose raw
        bytes do not contain the literal): the batch is then skipped without decoding."""
        if self._literal is None or attributes & _COMPRESSION_MASK:
            return True
        raw = bytes(view)
        return self._literal in (raw.lower() if self._is_lowered else raw)

    def matches(self, key: bytes | None, value: bytes | None, headers) -> bool:
        search, spec = self._search, self.spec
        if spec.in_values and value is not None and search(value):
            return True
        if spec.in_keys and key is not None and search(key):
            return True
        if spec.in_headers:
            for name, header_value in headers:
                if search(name.encode("utf-8")) or (header_value is not None and search(header_value)):
                    return True
        return False


# -- reading ---------------------------------------------------------------------------------------


class _Budget:
    """Counts what a page scans and says which bound it reached. Not thread-safe (one scan)."""

    def __init__(self, budget: ScanBudget) -> None:
        self.budget = budget
        self.started = time.monotonic()
        self.records = 0
        self.bytes = 0
        self.batches_skipped = 0

    def reached(self) -> str | None:
        budget = self.budget
        if self.records >= budget.records_max:
            return "records"
        if self.bytes >= budget.bytes_max:
            return "bytes"
        if time.monotonic() - self.started >= budget.seconds_max:
            return "seconds"
        return None

    def stats(self) -> ScanStats:
        return ScanStats(self.records, self.bytes, self.batches_skipped, time.monotonic() - self.started)


class _Partition:
    """One partition being read backwards: its leader, bounds, where reading is (`upper`: the
    exclusive bound of what is unread) and the rows found, newest first. Not thread-safe."""

    def __init__(self, backend: ConsoleBackend, topic: str, partition: int) -> None:
        self.backend = backend
        self.topic = topic
        self.partition = partition
        self.address = ""                     # the leader's, looked up by each call
        self.high_watermark = -1
        self.log_start_offset = self.list_offset(-2)
        self.high_watermark = self.list_offset(-1)
        self.upper = self.high_watermark
        self.found: list[tuple] = []          # (offset, timestamp, key, value, headers, timestamp_type)

    @property
    def is_done(self) -> bool:
        return self.upper <= self.log_start_offset

    def list_offset(self, timestamp: int) -> int:
        """ListOffsets on the leader: -2 log start, -1 high watermark, else the first offset with a
        timestamp at or after `timestamp` (the high watermark when there is none)."""
        query = broker_pb2.PartitionOffsetQuery(topic=self.topic, partition=self.partition, timestamp=timestamp)
        request = broker_pb2.ListOffsetsRequest(partitions=[query])
        result = self._call("ListOffsets", request)
        return result.offset if result.offset >= 0 else self.high_watermark

    def _call(self, method: str, request):
        """`method` on the partition's leader: its one partition result. Retriable errors (a
        leader moving or taking over) are retried for up to backend.request_timeout_s, the leader
        looked up again each time.

        Raises:
            ActionRefused: the error's code and message.
        """

        def attempt():
            self.address = _leader_address(self.backend, self.topic, self.partition)
            try:
                response = getattr(self.backend.transport.stub(self.address), method)(
                    request, timeout=self.backend.request_timeout_s
                )
            except grpc.RpcError as error:
                raise translate_rpc_error(error, self.address, method) from None
            result = response.results[0]
            raise_for_detail(result.error, f"{self.topic}-{self.partition}")
            return result

        return sdk_call(attempt, self.backend.request_timeout_s)

    def batches(self, lo: int, hi: int) -> list[tuple]:
        """The batches holding offsets [lo, hi), in offset order: (header, view) pairs."""
        found = []
        offset = lo
        while offset < hi:
            wanted = broker_pb2.PartitionFetch(
                topic=self.topic, partition=self.partition, fetch_offset=offset, current_leader_epoch=-1
            )
            request = broker_pb2.FetchRequest(max_wait_ms=0, min_bytes=0, max_bytes=FETCH_BYTES_MAX, partitions=[wanted])
            result = self._call("Fetch", request)
            if not result.records:
                break
            try:
                for header, view in iter_batches(result.records):
                    if header.base_offset >= hi:
                        return found
                    offset = header.base_offset + header.last_offset_delta + 1
                    if offset > lo:
                        found.append((header, view))
            except StorageError as error:
                raise ActionRefused(common_pb2.CORRUPT_RECORD, f"{self.topic}-{self.partition}: {error}") from error
        return found


def _leader_address(backend: ConsoleBackend, topic: str, partition: int) -> str:
    """The gRPC address of the partition's leader in this node's image.

    Raises:
        UnknownTopicError: no such topic or partition; LeaderNotAvailableError (retriable): none.
    """
    image = backend.image()
    found = image.topic(topic)
    if found is None:
        raise UnknownTopicError(f"topic {topic!r} does not exist")
    if not 0 <= partition < len(found.partitions):
        raise UnknownTopicError(f"topic {topic!r} has no partition {partition}")
    leader = found.partitions[partition].leader
    broker = image.brokers.get(leader) if leader != NO_LEADER else None
    if broker is None:
        raise LeaderNotAvailableError(f"{topic}-{partition} has no leader")
    return f"{broker.host}:{broker.port}"


def _scan_chunk(part: _Partition, chunk: int, matcher: _Matcher | None, limit: int, budget: _Budget) -> str | None:
    """Read about `chunk` offsets below `part.upper`, newest first, adding matching records to
    `part.found` and moving `part.upper` down past what was read. The lowest batch fetched is
    read whole (its records below the chunk too), so the next chunk starts at a batch boundary and
    no batch is fetched or decoded twice. Returns "limit" when the partition has `limit` rows, the
    budget bound reached, or None."""
    hi = part.upper
    floor = part.log_start_offset
    lo = max(floor, hi - chunk)
    batches = part.batches(lo, hi)
    if not batches:                          # no record left in [lo, hi) (compaction, control batches)
        part.upper = lo
        return None
    for header, view in reversed(batches):
        base = max(floor, header.base_offset)
        budget.records += min(hi, header.base_offset + header.last_offset_delta + 1) - base
        budget.bytes += len(view)
        if matcher is not None and not matcher.batch_may_match(view, header.attributes):
            budget.batches_skipped += 1
        else:
            try:
                records = decode_batch(view).records
            except StorageError as error:
                raise ActionRefused(common_pb2.CORRUPT_RECORD, f"{part.topic}-{part.partition}: {error}") from error
            timestamp_type = header.attributes >> 3 & 1
            for record in reversed(records):
                offset = record[0]
                if not floor <= offset < hi:
                    continue
                if matcher is None or matcher.matches(record[2], record[3], record[4]):
                    part.found.append((*record, timestamp_type))
                    if len(part.found) >= limit:
                        part.upper = offset
                        return "limit"
        part.upper = base
        reached = budget.reached()
        if reached is not None:
            return reached
    return None


def _start(part: _Partition, query: BrowseQuery) -> int:
    """The exclusive upper offset a partition's reading starts below."""
    if query.resume is not None and part.partition in query.resume:
        upper = query.resume[part.partition]
    elif query.start_offset is not None:
        upper = query.start_offset + 1
    elif query.start_timestamp_ms is not None:
        upper = part.list_offset(query.start_timestamp_ms + 1)
    else:
        upper = part.high_watermark
    return max(part.log_start_offset, min(upper, part.high_watermark))


def _merge(parts: list[_Partition], limit: int) -> tuple[list[MessageRow], list[PartitionPosition]]:
    """Merge the partitions' newest-first rows by timestamp (each partition's own order kept) and
    say where each partition continues."""
    taken = {part.partition: 0 for part in parts}
    rows: list[MessageRow] = []
    while len(rows) < limit:
        best = None
        for part in parts:
            index = taken[part.partition]
            if index < len(part.found) and (best is None or part.found[index][1] > best.found[taken[best.partition]][1]):
                best = part
        if best is None:
            break
        record = best.found[taken[best.partition]]
        rows.append(_row(best.partition, record[:5], record[5]))
        taken[best.partition] += 1
    positions = []
    for part in parts:
        index = taken[part.partition]
        if index < len(part.found):
            next_offset: int | None = part.found[index][0] + 1      # the first row not shown is read again
        else:
            next_offset = part.upper if part.upper > part.log_start_offset else None
        positions.append(PartitionPosition(part.partition, next_offset, part.log_start_offset, part.high_watermark))
    return rows, positions


def _check_read(backend: ConsoleBackend, caller: Caller, topic: str) -> None:
    """The Fetch handler's rule on the viewer: Read on the topic (audited when refused)."""
    with viewer_bound(caller):
        try:
            rules.refuse(rules.denials(backend.authorizer, Operation.READ, ResourceType.TOPIC, [topic]), ResourceType.TOPIC)
        except AuthorizationError as error:
            raise refused_by_error(error, backend.node_id) from error


def browse(backend: ConsoleBackend, caller: Caller, query: BrowseQuery) -> BrowseResult:
    """One page of `query.topic`'s committed records, newest first, optionally searched.

    Raises:
        ValueError: a limit outside 1..LIMIT_MAX, a negative offset, an empty or invalid search.
        ActionRefused: TOPIC_AUTHORIZATION_FAILED (no Read on the topic), UNKNOWN_TOPIC,
            LEADER_NOT_AVAILABLE, OFFSET_OUT_OF_RANGE (retention removed what was being read), ...
    """
    if not 1 <= query.limit <= LIMIT_MAX:
        raise ValueError(f"limit must be within 1..{LIMIT_MAX}, not {query.limit}")
    if query.start_offset is not None and query.start_offset < 0:
        raise ValueError(f"start offset must be >= 0, not {query.start_offset}")
    matcher = _Matcher(query.search) if query.search is not None else None
    _check_read(backend, caller, query.topic)
    topic = backend.image().topic(query.topic)
    if topic is None:
        raise ActionRefused(common_pb2.UNKNOWN_TOPIC, f"topic {query.topic!r} does not exist")
    if query.partition is not None and not 0 <= query.partition < len(topic.partitions):
        raise ActionRefused(common_pb2.UNKNOWN_TOPIC, f"topic {query.topic!r} has no partition {query.partition}")
    numbers = [query.partition] if query.partition is not None else [p.partition for p in topic.partitions]
    parts = [_Partition(backend, query.topic, number) for number in numbers]
    for part in parts:
        part.upper = _start(part, query)
    budget = _Budget(query.budget)
    chunks = {part.partition: SEARCH_CHUNK_FIRST for part in parts}
    stopped_by = None
    while stopped_by is None:
        active = [part for part in parts if not part.is_done and len(part.found) < query.limit]
        if not active:
            break
        for part in active:
            if matcher is None:
                chunk = query.limit - len(part.found)
            else:
                chunk = chunks[part.partition]
                chunks[part.partition] = min(chunk * 2, SEARCH_CHUNK_MAX)
            reached = _scan_chunk(part, chunk, matcher, query.limit, budget)
            if reached not in (None, "limit"):
                stopped_by = reached
                break
    rows, positions = _merge(parts, query.limit)
    if stopped_by is None:
        stopped_by = "limit" if len(rows) >= query.limit else "start_of_log"
    return BrowseResult(query.topic, tuple(rows), tuple(positions), budget.stats(), stopped_by)
