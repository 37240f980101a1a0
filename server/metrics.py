"""The broker's data-plane metrics (Prometheus), in the spirit of Kafka's names.

Owns the counters and histograms the data plane updates as it works, registered in the node's
own `CollectorRegistry` (never the process-global one, so in-process test nodes do not collide):

    freshet_server_brokertopicmetrics_messages_in_total{topic}    records appended as leader
    freshet_server_brokertopicmetrics_bytes_in_total{topic}       bytes appended as leader (producers)
    freshet_server_brokertopicmetrics_bytes_out_total{topic}      bytes sent to consumers
    freshet_server_brokertopicmetrics_replication_bytes_in_total{topic}   bytes appended as follower
    freshet_server_brokertopicmetrics_replication_bytes_out_total{topic}  bytes pushed to followers
    freshet_server_brokertopicmetrics_failed_produce_requests_total{topic}  partitions refused
    freshet_network_requests_total{api}                          requests (stream messages) per API
    freshet_network_request_latency_seconds{api}                  histogram: receipt to answer
    freshet_replica_manager_isr_shrinks_total / _isr_expands_total   ISR changes this leader made
    freshet_replica_manager_alter_partition_failures_total        AlterPartition items refused or lost
    freshet_kafka_fetch_record_bytes_total{path}                  Kafka Fetch record bytes: sendfile | copy
    freshet_replication_pushes_total                              messages a leader wrote on ReplicaFetch streams

Gauges that are a function of current state (under-replicated and offline partitions, leader and
partition counts, max follower lag, purgatory sizes) are read at scrape time by
`server/http/server.py` through the node's view, so nothing has to keep them in sync.

Imports: prometheus_client. Thread-safety: prometheus_client metrics are thread-safe; the loop
updates them and the HTTP thread reads them.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

# Request latencies from 50 us (an acks=1 append) to 30 s (a long poll or an acks timeout).
_LATENCY_BUCKETS = (
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0
)


class BrokerMetrics:
    """The data plane's counters and histograms. Thread-safe (prometheus_client)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        topic = ["topic"]
        prefix = "freshet_server_brokertopicmetrics_"
        self.messages_in = Counter(prefix + "messages_in", "records appended as partition leader", topic, registry=registry)
        self.bytes_in = Counter(prefix + "bytes_in", "bytes appended as partition leader (from producers)", topic, registry=registry)
        self.bytes_out = Counter(prefix + "bytes_out", "record bytes sent to consumers", topic, registry=registry)
        self.replication_bytes_in = Counter(
            prefix + "replication_bytes_in", "bytes appended as follower (from leaders)", topic, registry=registry
        )
        self.replication_bytes_out = Counter(
            prefix + "replication_bytes_out", "bytes pushed to followers", topic, registry=registry
        )
        self.failed_produce = Counter(
            prefix + "failed_produce_requests", "partitions of produce requests answered with an error", topic, registry=registry
        )
        self.requests = Counter("freshet_network_requests", "requests (or stream messages) received per API", ["api"], registry=registry)
        self.request_latency = Histogram(
            "freshet_network_request_latency_seconds",
            "time from a request's receipt to its answer, per API",
            ["api"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.isr_shrinks = Counter("freshet_replica_manager_isr_shrinks", "ISR shrinks this broker made as leader", registry=registry)
        self.isr_expands = Counter("freshet_replica_manager_isr_expands", "ISR expansions this broker made as leader", registry=registry)
        self.alter_partition_failures = Counter(
            "freshet_replica_manager_alter_partition_failures",
            "AlterPartition items the controller refused or that got no answer",
            registry=registry,
        )
        self.kafka_fetch_bytes = Counter(
            "freshet_kafka_fetch_record_bytes",
            "record bytes the Kafka listener sent in Fetch responses, by path (sendfile: zero-copy from the segment "
            "file; copy: read into memory first, as on TLS connections)",
            ["path"],
            registry=registry,
        )
        self.durable_flush_rounds = Counter(
            "freshet_log_durable_flush_rounds", "group-commit rounds of the durable flusher (write.caching=false)", registry=registry
        )
        self.durable_flushes = Counter(
            "freshet_log_durable_flushes", "logs the durable flusher synced (one fsync per dirty log per round)", registry=registry
        )
        self.durable_flush_round_seconds = Histogram(
            "freshet_log_durable_flush_round_seconds", "time of one group-commit round (all its fsyncs)",
            buckets=_LATENCY_BUCKETS, registry=registry,
        )
        self.replication_pushes = Counter(
            "freshet_replication_pushes", "messages this broker wrote to followers on ReplicaFetch streams", registry=registry
        )
        self._latency_children: dict[str, object] = {}
        self._request_children: dict[str, object] = {}

    def count_request(self, api: str) -> None:
        """Count one request (stream message) of `api` whose latency is not meaningful."""
        counter = self._request_children.get(api)
        if counter is None:
            counter = self._request_children[api] = self.requests.labels(api)
            self._latency_children[api] = self.request_latency.labels(api)
        counter.inc()

    def observe_request(self, api: str, seconds: float) -> None:
        """Count one request of `api` that took `seconds` (cached label children: the hot path)."""
        counter = self._request_children.get(api)
        if counter is None:
            counter = self._request_children[api] = self.requests.labels(api)
            self._latency_children[api] = self.request_latency.labels(api)
        counter.inc()
        self._latency_children[api].observe(seconds)


class TopicCounters:
    """One topic's label children of BrokerMetrics, cached by the partitions of that topic.
    Thread-safe (prometheus_client children)."""

    __slots__ = ("messages_in", "bytes_in", "bytes_out", "replication_bytes_in", "replication_bytes_out", "failed_produce")

    def __init__(self, metrics: BrokerMetrics, topic: str) -> None:
        self.messages_in = metrics.messages_in.labels(topic)
        self.bytes_in = metrics.bytes_in.labels(topic)
        self.bytes_out = metrics.bytes_out.labels(topic)
        self.replication_bytes_in = metrics.replication_bytes_in.labels(topic)
        self.replication_bytes_out = metrics.replication_bytes_out.labels(topic)
        self.failed_produce = metrics.failed_produce.labels(topic)
