"""The transaction APIs, refused: answered at once with a non-retriable error, never advertised.

Freshet has no transactions yet (no transaction coordinator, no control batches: storage refuses
transactional batches). AddPartitionsToTxn (24), AddOffsetsToTxn (25), EndTxn (26),
WriteTxnMarkers (27), TxnOffsetCommit (28), DescribeTransactions (65) and ListTransactions (66)
are registered with `KafkaApis.refuse`: ApiVersions does not list them. A transactional client
first asks FindCoordinator for its transaction coordinator, which answers
TRANSACTIONAL_ID_AUTHORIZATION_FAILED (server/kafka/groups_api.py), fatal in librdkafka,
kafka-python and the Java client; and a client that sends
one anyway gets a well-formed response of the version it asked, at once, with
TRANSACTIONAL_ID_AUTHORIZATION_FAILED (53) on every entry — the error InitProducerId also answers
to a transactional id (server/kafka/produce_api.py), which clients treat as fatal rather than
retrying — instead of a closed connection or a hang. Lists the response has (topics, partitions,
transactional ids) echo the request's entries, each with the error.

Imports: freshet.server.kafka. Thread-safety: stateless; runs on the node's event loop.
"""

from __future__ import annotations

from typing import Any

from freshet.server.kafka import codec

#: The error every refused transaction API answers with (non-retriable in every client).
REFUSED = 53


class RefusedTransactionApi:
    """One refused transaction API (module docstring). Stateless."""

    def __init__(self, api_key: int, name: str, versions: tuple[int, int]) -> None:
        self.api_key = api_key
        self.name = name
        self.versions = versions

    def handle(self, request: codec.Request) -> Any:
        schema = codec.response_schema(self.api_key, request.api_version)
        return _ANSWERS[self.api_key](schema, request.body)



def _add_partitions_to_txn(schema: type, body: Any) -> Any:
    if codec.has_field(schema, "results_by_transaction"):                          # v4+: batched
        return codec.build(schema, throttle_time=0, error_code=REFUSED, results_by_transaction=())
    topic_type = codec.nested(schema, "AddPartitionsToTxnTopicResult")
    partition_type = codec.nested(schema, "AddPartitionsToTxnPartitionResult")
    topics = tuple(
        codec.build(topic_type, name=topic.name, results_by_partition=tuple(
            codec.build(partition_type, partition_index=index, partition_error_code=REFUSED) for index in topic.partitions
        ))
        for topic in body.v3_and_below_topics
    )
    return codec.build(schema, throttle_time=0, results_by_topic_v3_and_below=topics)


def _add_offsets_to_txn(schema: type, body: Any) -> Any:
    return codec.build(schema, throttle_time=0, error_code=REFUSED)


def _end_txn(schema: type, body: Any) -> Any:
    return codec.build(schema, throttle_time=0, error_code=REFUSED, producer_id=-1, producer_epoch=-1)


def _txn_offset_commit(schema: type, body: Any) -> Any:
    topic_type = codec.nested(schema, "TxnOffsetCommitResponseTopic")
    partition_type = codec.nested(schema, "TxnOffsetCommitResponsePartition")
    topics = tuple(
        codec.build(topic_type, name=topic.name, partitions=tuple(
            codec.build(partition_type, partition_index=partition.partition_index, error_code=REFUSED)
            for partition in topic.partitions
        ))
        for topic in body.topics
    )
    return codec.build(schema, throttle_time=0, topics=topics)


def _write_txn_markers(schema: type, body: Any) -> Any:
    marker_type = codec.nested(schema, "WritableTxnMarkerResult")
    topic_type = codec.nested(schema, "WritableTxnMarkerTopicResult")
    partition_type = codec.nested(schema, "WritableTxnMarkerPartitionResult")
    markers = tuple(
        codec.build(marker_type, producer_id=marker.producer_id, topics=tuple(
            codec.build(topic_type, name=topic.name, partitions=tuple(
                codec.build(partition_type, partition_index=index, error_code=REFUSED) for index in topic.partition_indexes
            ))
            for topic in marker.topics
        ))
        for marker in body.markers
    )
    return codec.build(schema, markers=markers)


def _describe_transactions(schema: type, body: Any) -> Any:
    state_type = codec.nested(schema, "TransactionState")
    states = tuple(
        codec.build(state_type, error_code=REFUSED, transactional_id=transactional_id, transaction_state="",
                    transaction_timeout=0, transaction_start_time=-1, producer_id=-1, producer_epoch=-1, topics=())
        for transactional_id in body.transactional_ids
    )
    return codec.build(schema, throttle_time=0, transaction_states=states)


def _list_transactions(schema: type, body: Any) -> Any:
    return codec.build(schema, throttle_time=0, error_code=REFUSED, unknown_state_filters=(), transaction_states=())


_ANSWERS = {
    24: _add_partitions_to_txn,
    25: _add_offsets_to_txn,
    26: _end_txn,
    27: _write_txn_markers,
    28: _txn_offset_commit,
    65: _describe_transactions,
    66: _list_transactions,
}

#: Every refused transaction API at every version kio has a schema for.
REFUSED_APIS = (
    RefusedTransactionApi(24, "AddPartitionsToTxn", (0, 5)),
    RefusedTransactionApi(25, "AddOffsetsToTxn", (0, 4)),
    RefusedTransactionApi(26, "EndTxn", (0, 5)),
    RefusedTransactionApi(27, "WriteTxnMarkers", (1, 2)),
    RefusedTransactionApi(28, "TxnOffsetCommit", (0, 5)),
    RefusedTransactionApi(65, "DescribeTransactions", (0, 0)),
    RefusedTransactionApi(66, "ListTransactions", (0, 2)),
)
