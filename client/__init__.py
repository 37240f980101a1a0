"""Freshet client SDK: Producer and Consumer over gRPC (Admin follows with the controller RPCs).

Owns the public names of `freshet.client`. Everything a user needs is importable from here:

    from freshet.client import Producer, TopicPartition, RecordMetadata
    from freshet.client.errors import FreshetError, DeliveryTimeoutError

Imports the wire contract (`freshet.v1`), grpc and storage's batch codec only (`record_batch`,
`compression`, `errors`); never server or metadata code (import-linter contract).

Thread-safety: see each class; `Producer` is thread-safe.
"""

from freshet.client import errors
from freshet.client.producer import Producer
from freshet.client.structs import ConsumerRecord, Node, OffsetAndTimestamp, RecordMetadata, TopicPartition

__all__ = [
    "ConsumerRecord",
    "Node",
    "OffsetAndTimestamp",
    "Producer",
    "RecordMetadata",
    "TopicPartition",
    "errors",
]
