from freshet.v1 import common_pb2 as _common_pb2
from freshet.v1 import metadata_pb2 as _metadata_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ElectionType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ELECTION_PREFERRED: _ClassVar[ElectionType]
    ELECTION_UNCLEAN: _ClassVar[ElectionType]

class ConfigOperation(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CONFIG_SET: _ClassVar[ConfigOperation]
    CONFIG_DELETE: _ClassVar[ConfigOperation]

class ConfigSource(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CONFIG_SOURCE_DEFAULT: _ClassVar[ConfigSource]
    CONFIG_SOURCE_STATIC_BROKER: _ClassVar[ConfigSource]
    CONFIG_SOURCE_DYNAMIC_CLUSTER: _ClassVar[ConfigSource]
    CONFIG_SOURCE_DYNAMIC_BROKER: _ClassVar[ConfigSource]
    CONFIG_SOURCE_DYNAMIC_TOPIC: _ClassVar[ConfigSource]
    CONFIG_SOURCE_DYNAMIC_GROUP: _ClassVar[ConfigSource]

class BrokerState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    BROKER_ACTIVE: _ClassVar[BrokerState]
    BROKER_FENCED: _ClassVar[BrokerState]
    BROKER_CONTROLLED_SHUTDOWN: _ClassVar[BrokerState]
ELECTION_PREFERRED: ElectionType
ELECTION_UNCLEAN: ElectionType
CONFIG_SET: ConfigOperation
CONFIG_DELETE: ConfigOperation
CONFIG_SOURCE_DEFAULT: ConfigSource
CONFIG_SOURCE_STATIC_BROKER: ConfigSource
CONFIG_SOURCE_DYNAMIC_CLUSTER: ConfigSource
CONFIG_SOURCE_DYNAMIC_BROKER: ConfigSource
CONFIG_SOURCE_DYNAMIC_TOPIC: ConfigSource
CONFIG_SOURCE_DYNAMIC_GROUP: ConfigSource
BROKER_ACTIVE: BrokerState
BROKER_FENCED: BrokerState
BROKER_CONTROLLED_SHUTDOWN: BrokerState

class BrokerRegistrationRequest(_message.Message):
    __slots__ = ("node_id", "incarnation_id", "host", "port", "rack", "listeners")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    INCARNATION_ID_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    RACK_FIELD_NUMBER: _ClassVar[int]
    LISTENERS_FIELD_NUMBER: _ClassVar[int]
    node_id: int
    incarnation_id: bytes
    host: str
    port: int
    rack: str
    listeners: _containers.RepeatedCompositeFieldContainer[_common_pb2.Listener]
    def __init__(self, node_id: _Optional[int] = ..., incarnation_id: _Optional[bytes] = ..., host: _Optional[str] = ..., port: _Optional[int] = ..., rack: _Optional[str] = ..., listeners: _Optional[_Iterable[_Union[_common_pb2.Listener, _Mapping]]] = ...) -> None: ...

class BrokerHeartbeatRequest(_message.Message):
    __slots__ = ("registration", "node_id", "broker_epoch", "metadata_offset", "want_shutdown", "log_dir_free_bytes", "log_dir_total_bytes", "is_log_dir_full")
    REGISTRATION_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    BROKER_EPOCH_FIELD_NUMBER: _ClassVar[int]
    METADATA_OFFSET_FIELD_NUMBER: _ClassVar[int]
    WANT_SHUTDOWN_FIELD_NUMBER: _ClassVar[int]
    LOG_DIR_FREE_BYTES_FIELD_NUMBER: _ClassVar[int]
    LOG_DIR_TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    IS_LOG_DIR_FULL_FIELD_NUMBER: _ClassVar[int]
    registration: BrokerRegistrationRequest
    node_id: int
    broker_epoch: int
    metadata_offset: int
    want_shutdown: bool
    log_dir_free_bytes: int
    log_dir_total_bytes: int
    is_log_dir_full: bool
    def __init__(self, registration: _Optional[_Union[BrokerRegistrationRequest, _Mapping]] = ..., node_id: _Optional[int] = ..., broker_epoch: _Optional[int] = ..., metadata_offset: _Optional[int] = ..., want_shutdown: _Optional[bool] = ..., log_dir_free_bytes: _Optional[int] = ..., log_dir_total_bytes: _Optional[int] = ..., is_log_dir_full: _Optional[bool] = ...) -> None: ...

class BrokerHeartbeatResponse(_message.Message):
    __slots__ = ("broker_epoch", "is_fenced", "should_shut_down", "controller_id", "controller_epoch", "is_caught_up")
    BROKER_EPOCH_FIELD_NUMBER: _ClassVar[int]
    IS_FENCED_FIELD_NUMBER: _ClassVar[int]
    SHOULD_SHUT_DOWN_FIELD_NUMBER: _ClassVar[int]
    CONTROLLER_ID_FIELD_NUMBER: _ClassVar[int]
    CONTROLLER_EPOCH_FIELD_NUMBER: _ClassVar[int]
    IS_CAUGHT_UP_FIELD_NUMBER: _ClassVar[int]
    broker_epoch: int
    is_fenced: bool
    should_shut_down: bool
    controller_id: int
    controller_epoch: int
    is_caught_up: bool
    def __init__(self, broker_epoch: _Optional[int] = ..., is_fenced: _Optional[bool] = ..., should_shut_down: _Optional[bool] = ..., controller_id: _Optional[int] = ..., controller_epoch: _Optional[int] = ..., is_caught_up: _Optional[bool] = ...) -> None: ...

class WatchMetadataRequest(_message.Message):
    __slots__ = ("from_offset", "watcher", "redact_secrets")
    FROM_OFFSET_FIELD_NUMBER: _ClassVar[int]
    WATCHER_FIELD_NUMBER: _ClassVar[int]
    REDACT_SECRETS_FIELD_NUMBER: _ClassVar[int]
    from_offset: int
    watcher: str
    redact_secrets: bool
    def __init__(self, from_offset: _Optional[int] = ..., watcher: _Optional[str] = ..., redact_secrets: _Optional[bool] = ...) -> None: ...

class MetadataSnapshotData(_message.Message):
    __slots__ = ("offset", "snapshot")
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    offset: int
    snapshot: bytes
    def __init__(self, offset: _Optional[int] = ..., snapshot: _Optional[bytes] = ...) -> None: ...

class MetadataDelta(_message.Message):
    __slots__ = ("offset", "command")
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    offset: int
    command: bytes
    def __init__(self, offset: _Optional[int] = ..., command: _Optional[bytes] = ...) -> None: ...

class MetadataDeltas(_message.Message):
    __slots__ = ("previous_offset", "deltas")
    PREVIOUS_OFFSET_FIELD_NUMBER: _ClassVar[int]
    DELTAS_FIELD_NUMBER: _ClassVar[int]
    previous_offset: int
    deltas: _containers.RepeatedCompositeFieldContainer[MetadataDelta]
    def __init__(self, previous_offset: _Optional[int] = ..., deltas: _Optional[_Iterable[_Union[MetadataDelta, _Mapping]]] = ...) -> None: ...

class WatchMetadataResponse(_message.Message):
    __slots__ = ("snapshot", "deltas")
    SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    DELTAS_FIELD_NUMBER: _ClassVar[int]
    snapshot: MetadataSnapshotData
    deltas: MetadataDeltas
    def __init__(self, snapshot: _Optional[_Union[MetadataSnapshotData, _Mapping]] = ..., deltas: _Optional[_Union[MetadataDeltas, _Mapping]] = ...) -> None: ...

class ReplicaAssignment(_message.Message):
    __slots__ = ("replicas",)
    REPLICAS_FIELD_NUMBER: _ClassVar[int]
    replicas: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, replicas: _Optional[_Iterable[int]] = ...) -> None: ...

class CreatableTopic(_message.Message):
    __slots__ = ("name", "num_partitions", "replication_factor", "assignments", "configs")
    NAME_FIELD_NUMBER: _ClassVar[int]
    NUM_PARTITIONS_FIELD_NUMBER: _ClassVar[int]
    REPLICATION_FACTOR_FIELD_NUMBER: _ClassVar[int]
    ASSIGNMENTS_FIELD_NUMBER: _ClassVar[int]
    CONFIGS_FIELD_NUMBER: _ClassVar[int]
    name: str
    num_partitions: int
    replication_factor: int
    assignments: _containers.RepeatedCompositeFieldContainer[ReplicaAssignment]
    configs: _containers.RepeatedCompositeFieldContainer[_metadata_pb2.ConfigEntry]
    def __init__(self, name: _Optional[str] = ..., num_partitions: _Optional[int] = ..., replication_factor: _Optional[int] = ..., assignments: _Optional[_Iterable[_Union[ReplicaAssignment, _Mapping]]] = ..., configs: _Optional[_Iterable[_Union[_metadata_pb2.ConfigEntry, _Mapping]]] = ...) -> None: ...

class CreateTopicsRequest(_message.Message):
    __slots__ = ("request_id", "topics", "validate_only")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    TOPICS_FIELD_NUMBER: _ClassVar[int]
    VALIDATE_ONLY_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    topics: _containers.RepeatedCompositeFieldContainer[CreatableTopic]
    validate_only: bool
    def __init__(self, request_id: _Optional[str] = ..., topics: _Optional[_Iterable[_Union[CreatableTopic, _Mapping]]] = ..., validate_only: _Optional[bool] = ...) -> None: ...

class CreateTopicResult(_message.Message):
    __slots__ = ("name", "error", "topic_id", "num_partitions", "replication_factor", "assignments")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    TOPIC_ID_FIELD_NUMBER: _ClassVar[int]
    NUM_PARTITIONS_FIELD_NUMBER: _ClassVar[int]
    REPLICATION_FACTOR_FIELD_NUMBER: _ClassVar[int]
    ASSIGNMENTS_FIELD_NUMBER: _ClassVar[int]
    name: str
    error: _common_pb2.ErrorDetail
    topic_id: bytes
    num_partitions: int
    replication_factor: int
    assignments: _containers.RepeatedCompositeFieldContainer[ReplicaAssignment]
    def __init__(self, name: _Optional[str] = ..., error: _Optional[_Union[_common_pb2.ErrorDetail, _Mapping]] = ..., topic_id: _Optional[bytes] = ..., num_partitions: _Optional[int] = ..., replication_factor: _Optional[int] = ..., assignments: _Optional[_Iterable[_Union[ReplicaAssignment, _Mapping]]] = ...) -> None: ...

class CreateTopicsResponse(_message.Message):
    __slots__ = ("results", "metadata_offset")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    METADATA_OFFSET_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[CreateTopicResult]
    metadata_offset: int
    def __init__(self, results: _Optional[_Iterable[_Union[CreateTopicResult, _Mapping]]] = ..., metadata_offset: _Optional[int] = ...) -> None: ...

class DeleteTopicsRequest(_message.Message):
    __slots__ = ("request_id", "names")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    NAMES_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    names: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, request_id: _Optional[str] = ..., names: _Optional[_Iterable[str]] = ...) -> None: ...

class DeleteTopicResult(_message.Message):
    __slots__ = ("name", "error", "topic_id")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    TOPIC_ID_FIELD_NUMBER: _ClassVar[int]
    name: str
    error: _common_pb2.ErrorDetail
    topic_id: bytes
    def __init__(self, name: _Optional[str] = ..., error: _Optional[_Union[_common_pb2.ErrorDetail, _Mapping]] = ..., topic_id: _Optional[bytes] = ...) -> None: ...

class DeleteTopicsResponse(_message.Message):
    __slots__ = ("results", "metadata_offset")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    METADATA_OFFSET_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[DeleteTopicResult]
    metadata_offset: int
    def __init__(self, results: _Optional[_Iterable[_Union[DeleteTopicResult, _Mapping]]] = ..., metadata_offset: _Optional[int] = ...) -> None: ...

class PartitionsIncrease(_message.Message):
    __slots__ = ("topic", "count", "assignments")
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    ASSIGNMENTS_FIELD_NUMBER: _ClassVar[int]
    topic: str
    count: int
    assignments: _containers.RepeatedCompositeFieldContainer[ReplicaAssignment]
    def __init__(self, topic: _Optional[str] = ..., count: _Optional[int] = ..., assignments: _Optional[_Iterable[_Union[ReplicaAssignment, _Mapping]]] = ...) -> None: ...

class CreatePartitionsRequest(_message.Message):
    __slots__ = ("request_id", "topics", "validate_only")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    TOPICS_FIELD_NUMBER: _ClassVar[int]
    VALIDATE_ONLY_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    topics: _containers.RepeatedCompositeFieldContainer[PartitionsIncrease]
    validate_only: bool
    def __init__(self, request_id: _Optional[str] = ..., topics: _Optional[_Iterable[_Union[PartitionsIncrease, _Mapping]]] = ..., validate_only: _Optional[bool] = ...) -> None: ...

class CreatePartitionsResult(_message.Message):
    __slots__ = ("topic", "error", "assignments")
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ASSIGNMENTS_FIELD_NUMBER: _ClassVar[int]
    topic: str
    error: _common_pb2.ErrorDetail
    assignments: _containers.RepeatedCompositeFieldContainer[ReplicaAssignment]
    def __init__(self, topic: _Optional[str] = ..., error: _Optional[_Union[_common_pb2.ErrorDetail, _Mapping]] = ..., assignments: _Optional[_Iterable[_Union[ReplicaAssignment, _Mapping]]] = ...) -> None: ...

class CreatePartitionsResponse(_message.Message):
    __slots__ = ("results", "metadata_offset")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    METADATA_OFFSET_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[CreatePartitionsResult]
    metadata_offset: int
    def __init__(self, results: _Optional[_Iterable[_Union[CreatePartitionsResult, _Mapping]]] = ..., metadata_offset: _Optional[int] = ...) -> None: ...

class ElectLeadersRequest(_message.Message):
    __slots__ = ("request_id", "type", "partitions")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    PARTITIONS_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    type: ElectionType
    partitions: _containers.RepeatedCompositeFieldContainer[_common_pb2.TopicPartition]
    def __init__(self, request_id: _Optional[str] = ..., type: _Optional[_Union[ElectionType, str]] = ..., partitions: _Optional[_Iterable[_Union[_common_pb2.TopicPartition, _Mapping]]] = ...) -> None: ...

class ElectLeaderResult(_message.Message):
    __slots__ = ("partition", "error", "leader")
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    LEADER_FIELD_NUMBER: _ClassVar[int]
    partition: _common_pb2.TopicPartition
    error: _common_pb2.ErrorDetail
    leader: int
    def __init__(self, partition: _Optional[_Union[_common_pb2.TopicPartition, _Mapping]] = ..., error: _Optional[_Union[_common_pb2.ErrorDetail, _Mapping]] = ..., leader: _Optional[int] = ...) -> None: ...

class ElectLeadersResponse(_message.Message):
    __slots__ = ("results", "metadata_offset")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    METADATA_OFFSET_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[ElectLeaderResult]
    metadata_offset: int
    def __init__(self, results: _Optional[_Iterable[_Union[ElectLeaderResult, _Mapping]]] = ..., metadata_offset: _Optional[int] = ...) -> None: ...

class PartitionReassignment(_message.Message):
    __slots__ = ("partition", "target_replicas")
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    TARGET_REPLICAS_FIELD_NUMBER: _ClassVar[int]
    partition: _common_pb2.TopicPartition
    target_replicas: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, partition: _Optional[_Union[_common_pb2.TopicPartition, _Mapping]] = ..., target_replicas: _Optional[_Iterable[int]] = ...) -> None: ...

class AlterPartitionReassignmentsRequest(_message.Message):
    __slots__ = ("request_id", "reassignments")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    REASSIGNMENTS_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    reassignments: _containers.RepeatedCompositeFieldContainer[PartitionReassignment]
    def __init__(self, request_id: _Optional[str] = ..., reassignments: _Optional[_Iterable[_Union[PartitionReassignment, _Mapping]]] = ...) -> None: ...

class ReassignmentResult(_message.Message):
    __slots__ = ("partition", "error")
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    partition: _common_pb2.TopicPartition
    error: _common_pb2.ErrorDetail
    def __init__(self, partition: _Optional[_Union[_common_pb2.TopicPartition, _Mapping]] = ..., error: _Optional[_Union[_common_pb2.ErrorDetail, _Mapping]] = ...) -> None: ...

class AlterPartitionReassignmentsResponse(_message.Message):
    __slots__ = ("results", "metadata_offset")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    METADATA_OFFSET_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[ReassignmentResult]
    metadata_offset: int
    def __init__(self, results: _Optional[_Iterable[_Union[ReassignmentResult, _Mapping]]] = ..., metadata_offset: _Optional[int] = ...) -> None: ...

class ListPartitionReassignmentsRequest(_message.Message):
    __slots__ = ("partitions",)
    PARTITIONS_FIELD_NUMBER: _ClassVar[int]
    partitions: _containers.RepeatedCompositeFieldContainer[_common_pb2.TopicPartition]
    def __init__(self, partitions: _Optional[_Iterable[_Union[_common_pb2.TopicPartition, _Mapping]]] = ...) -> None: ...

class OngoingReassignment(_message.Message):
    __slots__ = ("partition", "replicas", "adding_replicas", "removing_replicas", "isr", "leader", "by_balancer")
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    REPLICAS_FIELD_NUMBER: _ClassVar[int]
    ADDING_REPLICAS_FIELD_NUMBER: _ClassVar[int]
    REMOVING_REPLICAS_FIELD_NUMBER: _ClassVar[int]
    ISR_FIELD_NUMBER: _ClassVar[int]
    LEADER_FIELD_NUMBER: _ClassVar[int]
    BY_BALANCER_FIELD_NUMBER: _ClassVar[int]
    partition: _common_pb2.TopicPartition
    replicas: _containers.RepeatedScalarFieldContainer[int]
    adding_replicas: _containers.RepeatedScalarFieldContainer[int]
    removing_replicas: _containers.RepeatedScalarFieldContainer[int]
    isr: _containers.RepeatedScalarFieldContainer[int]
    leader: int
    by_balancer: bool
    def __init__(self, partition: _Optional[_Union[_common_pb2.TopicPartition, _Mapping]] = ..., replicas: _Optional[_Iterable[int]] = ..., adding_replicas: _Optional[_Iterable[int]] = ..., removing_replicas: _Optional[_Iterable[int]] = ..., isr: _Optional[_Iterable[int]] = ..., leader: _Optional[int] = ..., by_balancer: _Optional[bool] = ...) -> None: ...

class ListPartitionReassignmentsResponse(_message.Message):
    __slots__ = ("reassignments", "metadata_offset")
    REASSIGNMENTS_FIELD_NUMBER: _ClassVar[int]
    METADATA_OFFSET_FIELD_NUMBER: _ClassVar[int]
    reassignments: _containers.RepeatedCompositeFieldContainer[OngoingReassignment]
    metadata_offset: int
    def __init__(self, reassignments: _Optional[_Iterable[_Union[OngoingReassignment, _Mapping]]] = ..., metadata_offset: _Optional[int] = ...) -> None: ...

class AlterableConfig(_message.Message):
    __slots__ = ("key", "value", "operation")
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    OPERATION_FIELD_NUMBER: _ClassVar[int]
    key: str
    value: str
    operation: ConfigOperation
    def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ..., operation: _Optional[_Union[ConfigOperation, str]] = ...) -> None: ...

class AlterConfigsResource(_message.Message):
    __slots__ = ("resource", "configs", "replace_all")
    RESOURCE_FIELD_NUMBER: _ClassVar[int]
    CONFIGS_FIELD_NUMBER: _ClassVar[int]
    REPLACE_ALL_FIELD_NUMBER: _ClassVar[int]
    resource: _metadata_pb2.ConfigResource
    configs: _containers.RepeatedCompositeFieldContainer[AlterableConfig]
    replace_all: bool
    def __init__(self, resource: _Optional[_Union[_metadata_pb2.ConfigResource, _Mapping]] = ..., configs: _Optional[_Iterable[_Union[AlterableConfig, _Mapping]]] = ..., replace_all: _Optional[bool] = ...) -> None: ...

class IncrementalAlterConfigsRequest(_message.Message):
    __slots__ = ("request_id", "resources", "validate_only")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    VALIDATE_ONLY_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    resources: _containers.RepeatedCompositeFieldContainer[AlterConfigsResource]
    validate_only: bool
    def __init__(self, request_id: _Optional[str] = ..., resources: _Optional[_Iterable[_Union[AlterConfigsResource, _Mapping]]] = ..., validate_only: _Optional[bool] = ...) -> None: ...

class AlterConfigsResult(_message.Message):
    __slots__ = ("resource", "error")
    RESOURCE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    resource: _metadata_pb2.ConfigResource
    error: _common_pb2.ErrorDetail
    def __init__(self, resource: _Optional[_Union[_metadata_pb2.ConfigResource, _Mapping]] = ..., error: _Optional[_Union[_common_pb2.ErrorDetail, _Mapping]] = ...) -> None: ...

class IncrementalAlterConfigsResponse(_message.Message):
    __slots__ = ("results", "metadata_offset")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    METADATA_OFFSET_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[AlterConfigsResult]
    metadata_offset: int
    def __init__(self, results: _Optional[_Iterable[_Union[AlterConfigsResult, _Mapping]]] = ..., metadata_offset: _Optional[int] = ...) -> None: ...

class DescribeConfigsRequest(_message.Message):
    __slots__ = ("resources", "keys")
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    resources: _containers.RepeatedCompositeFieldContainer[_metadata_pb2.ConfigResource]
    keys: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, resources: _Optional[_Iterable[_Union[_metadata_pb2.ConfigResource, _Mapping]]] = ..., keys: _Optional[_Iterable[str]] = ...) -> None: ...

class DescribedConfig(_message.Message):
    __slots__ = ("key", "value", "source", "doc")
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    DOC_FIELD_NUMBER: _ClassVar[int]
    key: str
    value: str
    source: ConfigSource
    doc: str
    def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ..., source: _Optional[_Union[ConfigSource, str]] = ..., doc: _Optional[str] = ...) -> None: ...

class DescribeConfigsResult(_message.Message):
    __slots__ = ("resource", "error", "configs")
    RESOURCE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    CONFIGS_FIELD_NUMBER: _ClassVar[int]
    resource: _metadata_pb2.ConfigResource
    error: _common_pb2.ErrorDetail
    configs: _containers.RepeatedCompositeFieldContainer[DescribedConfig]
    def __init__(self, resource: _Optional[_Union[_metadata_pb2.ConfigResource, _Mapping]] = ..., error: _Optional[_Union[_common_pb2.ErrorDetail, _Mapping]] = ..., configs: _Optional[_Iterable[_Union[DescribedConfig, _Mapping]]] = ...) -> None: ...

class DescribeConfigsResponse(_message.Message):
    __slots__ = ("results", "metadata_offset")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    METADATA_OFFSET_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[DescribeConfigsResult]
    metadata_offset: int
    def __init__(self, results: _Optional[_Iterable[_Union[DescribeConfigsResult, _Mapping]]] = ..., metadata_offset: _Optional[int] = ...) -> None: ...

class DescribedBroker(_message.Message):
    __slots__ = ("endpoint", "state", "broker_epoch", "incarnation_id", "has_disk_report", "log_dir_free_bytes", "log_dir_total_bytes", "is_log_dir_full", "is_decommissioning", "replica_count", "leader_count")
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    BROKER_EPOCH_FIELD_NUMBER: _ClassVar[int]
    INCARNATION_ID_FIELD_NUMBER: _ClassVar[int]
    HAS_DISK_REPORT_FIELD_NUMBER: _ClassVar[int]
    LOG_DIR_FREE_BYTES_FIELD_NUMBER: _ClassVar[int]
    LOG_DIR_TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    IS_LOG_DIR_FULL_FIELD_NUMBER: _ClassVar[int]
    IS_DECOMMISSIONING_FIELD_NUMBER: _ClassVar[int]
    REPLICA_COUNT_FIELD_NUMBER: _ClassVar[int]
    LEADER_COUNT_FIELD_NUMBER: _ClassVar[int]
    endpoint: _common_pb2.BrokerEndpoint
    state: BrokerState
    broker_epoch: int
    incarnation_id: bytes
    has_disk_report: bool
    log_dir_free_bytes: int
    log_dir_total_bytes: int
    is_log_dir_full: bool
    is_decommissioning: bool
    replica_count: int
    leader_count: int
    def __init__(self, endpoint: _Optional[_Union[_common_pb2.BrokerEndpoint, _Mapping]] = ..., state: _Optional[_Union[BrokerState, str]] = ..., broker_epoch: _Optional[int] = ..., incarnation_id: _Optional[bytes] = ..., has_disk_report: _Optional[bool] = ..., log_dir_free_bytes: _Optional[int] = ..., log_dir_total_bytes: _Optional[int] = ..., is_log_dir_full: _Optional[bool] = ..., is_decommissioning: _Optional[bool] = ..., replica_count: _Optional[int] = ..., leader_count: _Optional[int] = ...) -> None: ...

class GenerateReassignmentRequest(_message.Message):
    __slots__ = ("topics", "broker_ids")
    TOPICS_FIELD_NUMBER: _ClassVar[int]
    BROKER_IDS_FIELD_NUMBER: _ClassVar[int]
    topics: _containers.RepeatedScalarFieldContainer[str]
    broker_ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, topics: _Optional[_Iterable[str]] = ..., broker_ids: _Optional[_Iterable[int]] = ...) -> None: ...

class ProposedReassignment(_message.Message):
    __slots__ = ("partition", "current_replicas", "proposed_replicas")
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    CURRENT_REPLICAS_FIELD_NUMBER: _ClassVar[int]
    PROPOSED_REPLICAS_FIELD_NUMBER: _ClassVar[int]
    partition: _common_pb2.TopicPartition
    current_replicas: _containers.RepeatedScalarFieldContainer[int]
    proposed_replicas: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, partition: _Optional[_Union[_common_pb2.TopicPartition, _Mapping]] = ..., current_replicas: _Optional[_Iterable[int]] = ..., proposed_replicas: _Optional[_Iterable[int]] = ...) -> None: ...

class GenerateReassignmentResponse(_message.Message):
    __slots__ = ("partitions", "metadata_offset")
    PARTITIONS_FIELD_NUMBER: _ClassVar[int]
    METADATA_OFFSET_FIELD_NUMBER: _ClassVar[int]
    partitions: _containers.RepeatedCompositeFieldContainer[ProposedReassignment]
    metadata_offset: int
    def __init__(self, partitions: _Optional[_Iterable[_Union[ProposedReassignment, _Mapping]]] = ..., metadata_offset: _Optional[int] = ...) -> None: ...

class DecommissionBrokerRequest(_message.Message):
    __slots__ = ("request_id", "node_id", "cancel")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    CANCEL_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    node_id: int
    cancel: bool
    def __init__(self, request_id: _Optional[str] = ..., node_id: _Optional[int] = ..., cancel: _Optional[bool] = ...) -> None: ...

class DecommissionBrokerResponse(_message.Message):
    __slots__ = ("error", "metadata_offset")
    ERROR_FIELD_NUMBER: _ClassVar[int]
    METADATA_OFFSET_FIELD_NUMBER: _ClassVar[int]
    error: _common_pb2.ErrorDetail
    metadata_offset: int
    def __init__(self, error: _Optional[_Union[_common_pb2.ErrorDetail, _Mapping]] = ..., metadata_offset: _Optional[int] = ...) -> None: ...

class ControllerNode(_message.Message):
    __slots__ = ("node_id", "host", "port")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    node_id: int
    host: str
    port: int
    def __init__(self, node_id: _Optional[int] = ..., host: _Optional[str] = ..., port: _Optional[int] = ...) -> None: ...

class DescribeClusterRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class DescribeClusterResponse(_message.Message):
    __slots__ = ("cluster_id", "controller_id", "controller_epoch", "controller", "brokers", "controllers", "metadata_offset", "topic_count", "partition_count", "under_replicated_partitions", "offline_partitions", "answering_node_id")
    CLUSTER_ID_FIELD_NUMBER: _ClassVar[int]
    CONTROLLER_ID_FIELD_NUMBER: _ClassVar[int]
    CONTROLLER_EPOCH_FIELD_NUMBER: _ClassVar[int]
    CONTROLLER_FIELD_NUMBER: _ClassVar[int]
    BROKERS_FIELD_NUMBER: _ClassVar[int]
    CONTROLLERS_FIELD_NUMBER: _ClassVar[int]
    METADATA_OFFSET_FIELD_NUMBER: _ClassVar[int]
    TOPIC_COUNT_FIELD_NUMBER: _ClassVar[int]
    PARTITION_COUNT_FIELD_NUMBER: _ClassVar[int]
    UNDER_REPLICATED_PARTITIONS_FIELD_NUMBER: _ClassVar[int]
    OFFLINE_PARTITIONS_FIELD_NUMBER: _ClassVar[int]
    ANSWERING_NODE_ID_FIELD_NUMBER: _ClassVar[int]
    cluster_id: str
    controller_id: int
    controller_epoch: int
    controller: _common_pb2.BrokerEndpoint
    brokers: _containers.RepeatedCompositeFieldContainer[DescribedBroker]
    controllers: _containers.RepeatedCompositeFieldContainer[ControllerNode]
    metadata_offset: int
    topic_count: int
    partition_count: int
    under_replicated_partitions: int
    offline_partitions: int
    answering_node_id: int
    def __init__(self, cluster_id: _Optional[str] = ..., controller_id: _Optional[int] = ..., controller_epoch: _Optional[int] = ..., controller: _Optional[_Union[_common_pb2.BrokerEndpoint, _Mapping]] = ..., brokers: _Optional[_Iterable[_Union[DescribedBroker, _Mapping]]] = ..., controllers: _Optional[_Iterable[_Union[ControllerNode, _Mapping]]] = ..., metadata_offset: _Optional[int] = ..., topic_count: _Optional[int] = ..., partition_count: _Optional[int] = ..., under_replicated_partitions: _Optional[int] = ..., offline_partitions: _Optional[int] = ..., answering_node_id: _Optional[int] = ...) -> None: ...

class DescribeQuorumRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class VoterDescription(_message.Message):
    __slots__ = ("node_id", "raft_address", "is_connected", "match_raft_index", "lag")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    RAFT_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    IS_CONNECTED_FIELD_NUMBER: _ClassVar[int]
    MATCH_RAFT_INDEX_FIELD_NUMBER: _ClassVar[int]
    LAG_FIELD_NUMBER: _ClassVar[int]
    node_id: int
    raft_address: str
    is_connected: bool
    match_raft_index: int
    lag: int
    def __init__(self, node_id: _Optional[int] = ..., raft_address: _Optional[str] = ..., is_connected: _Optional[bool] = ..., match_raft_index: _Optional[int] = ..., lag: _Optional[int] = ...) -> None: ...

class DescribeQuorumResponse(_message.Message):
    __slots__ = ("leader_id", "term", "commit_raft_index", "last_raft_index", "applied_offset", "voters", "has_quorum", "snapshot_raft_index")
    LEADER_ID_FIELD_NUMBER: _ClassVar[int]
    TERM_FIELD_NUMBER: _ClassVar[int]
    COMMIT_RAFT_INDEX_FIELD_NUMBER: _ClassVar[int]
    LAST_RAFT_INDEX_FIELD_NUMBER: _ClassVar[int]
    APPLIED_OFFSET_FIELD_NUMBER: _ClassVar[int]
    VOTERS_FIELD_NUMBER: _ClassVar[int]
    HAS_QUORUM_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_RAFT_INDEX_FIELD_NUMBER: _ClassVar[int]
    leader_id: int
    term: int
    commit_raft_index: int
    last_raft_index: int
    applied_offset: int
    voters: _containers.RepeatedCompositeFieldContainer[VoterDescription]
    has_quorum: bool
    snapshot_raft_index: int
    def __init__(self, leader_id: _Optional[int] = ..., term: _Optional[int] = ..., commit_raft_index: _Optional[int] = ..., last_raft_index: _Optional[int] = ..., applied_offset: _Optional[int] = ..., voters: _Optional[_Iterable[_Union[VoterDescription, _Mapping]]] = ..., has_quorum: _Optional[bool] = ..., snapshot_raft_index: _Optional[int] = ...) -> None: ...

class ScramCredentialUpsertion(_message.Message):
    __slots__ = ("name", "mechanism", "iterations", "salt", "salted_password")
    NAME_FIELD_NUMBER: _ClassVar[int]
    MECHANISM_FIELD_NUMBER: _ClassVar[int]
    ITERATIONS_FIELD_NUMBER: _ClassVar[int]
    SALT_FIELD_NUMBER: _ClassVar[int]
    SALTED_PASSWORD_FIELD_NUMBER: _ClassVar[int]
    name: str
    mechanism: int
    iterations: int
    salt: bytes
    salted_password: bytes
    def __init__(self, name: _Optional[str] = ..., mechanism: _Optional[int] = ..., iterations: _Optional[int] = ..., salt: _Optional[bytes] = ..., salted_password: _Optional[bytes] = ...) -> None: ...

class UpsertUserScramCredentialsRequest(_message.Message):
    __slots__ = ("request_id", "upsertions")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    UPSERTIONS_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    upsertions: _containers.RepeatedCompositeFieldContainer[ScramCredentialUpsertion]
    def __init__(self, request_id: _Optional[str] = ..., upsertions: _Optional[_Iterable[_Union[ScramCredentialUpsertion, _Mapping]]] = ...) -> None: ...

class UserScramCredentialResult(_message.Message):
    __slots__ = ("user", "mechanism", "error")
    USER_FIELD_NUMBER: _ClassVar[int]
    MECHANISM_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    user: str
    mechanism: int
    error: _common_pb2.ErrorDetail
    def __init__(self, user: _Optional[str] = ..., mechanism: _Optional[int] = ..., error: _Optional[_Union[_common_pb2.ErrorDetail, _Mapping]] = ...) -> None: ...

class UpsertUserScramCredentialsResponse(_message.Message):
    __slots__ = ("results", "metadata_offset")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    METADATA_OFFSET_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[UserScramCredentialResult]
    metadata_offset: int
    def __init__(self, results: _Optional[_Iterable[_Union[UserScramCredentialResult, _Mapping]]] = ..., metadata_offset: _Optional[int] = ...) -> None: ...

class ScramCredentialDeletion(_message.Message):
    __slots__ = ("name", "mechanism")
    NAME_FIELD_NUMBER: _ClassVar[int]
    MECHANISM_FIELD_NUMBER: _ClassVar[int]
    name: str
    mechanism: int
    def __init__(self, name: _Optional[str] = ..., mechanism: _Optional[int] = ...) -> None: ...

class DeleteUserScramCredentialsRequest(_message.Message):
    __slots__ = ("request_id", "deletions")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    DELETIONS_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    deletions: _containers.RepeatedCompositeFieldContainer[ScramCredentialDeletion]
    def __init__(self, request_id: _Optional[str] = ..., deletions: _Optional[_Iterable[_Union[ScramCredentialDeletion, _Mapping]]] = ...) -> None: ...

class DeleteUserScramCredentialsResponse(_message.Message):
    __slots__ = ("results", "metadata_offset")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    METADATA_OFFSET_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[UserScramCredentialResult]
    metadata_offset: int
    def __init__(self, results: _Optional[_Iterable[_Union[UserScramCredentialResult, _Mapping]]] = ..., metadata_offset: _Optional[int] = ...) -> None: ...

class DescribeUserScramCredentialsRequest(_message.Message):
    __slots__ = ("names",)
    NAMES_FIELD_NUMBER: _ClassVar[int]
    names: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, names: _Optional[_Iterable[str]] = ...) -> None: ...

class ScramCredentialInfo(_message.Message):
    __slots__ = ("mechanism", "iterations")
    MECHANISM_FIELD_NUMBER: _ClassVar[int]
    ITERATIONS_FIELD_NUMBER: _ClassVar[int]
    mechanism: int
    iterations: int
    def __init__(self, mechanism: _Optional[int] = ..., iterations: _Optional[int] = ...) -> None: ...

class DescribedUser(_message.Message):
    __slots__ = ("name", "error", "credentials")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    CREDENTIALS_FIELD_NUMBER: _ClassVar[int]
    name: str
    error: _common_pb2.ErrorDetail
    credentials: _containers.RepeatedCompositeFieldContainer[ScramCredentialInfo]
    def __init__(self, name: _Optional[str] = ..., error: _Optional[_Union[_common_pb2.ErrorDetail, _Mapping]] = ..., credentials: _Optional[_Iterable[_Union[ScramCredentialInfo, _Mapping]]] = ...) -> None: ...

class DescribeUserScramCredentialsResponse(_message.Message):
    __slots__ = ("users", "metadata_offset")
    USERS_FIELD_NUMBER: _ClassVar[int]
    METADATA_OFFSET_FIELD_NUMBER: _ClassVar[int]
    users: _containers.RepeatedCompositeFieldContainer[DescribedUser]
    metadata_offset: int
    def __init__(self, users: _Optional[_Iterable[_Union[DescribedUser, _Mapping]]] = ..., metadata_offset: _Optional[int] = ...) -> None: ...

class CreateAclsRequest(_message.Message):
    __slots__ = ("request_id", "acls")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    ACLS_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    acls: _containers.RepeatedCompositeFieldContainer[_metadata_pb2.AclBindingRecord]
    def __init__(self, request_id: _Optional[str] = ..., acls: _Optional[_Iterable[_Union[_metadata_pb2.AclBindingRecord, _Mapping]]] = ...) -> None: ...

class AclResult(_message.Message):
    __slots__ = ("acl", "error")
    ACL_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    acl: _metadata_pb2.AclBindingRecord
    error: _common_pb2.ErrorDetail
    def __init__(self, acl: _Optional[_Union[_metadata_pb2.AclBindingRecord, _Mapping]] = ..., error: _Optional[_Union[_common_pb2.ErrorDetail, _Mapping]] = ...) -> None: ...

class CreateAclsResponse(_message.Message):
    __slots__ = ("results", "metadata_offset")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    METADATA_OFFSET_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[AclResult]
    metadata_offset: int
    def __init__(self, results: _Optional[_Iterable[_Union[AclResult, _Mapping]]] = ..., metadata_offset: _Optional[int] = ...) -> None: ...

class AclBindingFilter(_message.Message):
    __slots__ = ("resource_type", "resource_name", "pattern_type", "principal", "host", "operation", "permission")
    RESOURCE_TYPE_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_NAME_FIELD_NUMBER: _ClassVar[int]
    PATTERN_TYPE_FIELD_NUMBER: _ClassVar[int]
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    OPERATION_FIELD_NUMBER: _ClassVar[int]
    PERMISSION_FIELD_NUMBER: _ClassVar[int]
    resource_type: int
    resource_name: str
    pattern_type: int
    principal: str
    host: str
    operation: int
    permission: int
    def __init__(self, resource_type: _Optional[int] = ..., resource_name: _Optional[str] = ..., pattern_type: _Optional[int] = ..., principal: _Optional[str] = ..., host: _Optional[str] = ..., operation: _Optional[int] = ..., permission: _Optional[int] = ...) -> None: ...

class DescribeAclsRequest(_message.Message):
    __slots__ = ("filter",)
    FILTER_FIELD_NUMBER: _ClassVar[int]
    filter: AclBindingFilter
    def __init__(self, filter: _Optional[_Union[AclBindingFilter, _Mapping]] = ...) -> None: ...

class DescribeAclsResponse(_message.Message):
    __slots__ = ("acls", "metadata_offset")
    ACLS_FIELD_NUMBER: _ClassVar[int]
    METADATA_OFFSET_FIELD_NUMBER: _ClassVar[int]
    acls: _containers.RepeatedCompositeFieldContainer[_metadata_pb2.AclBindingRecord]
    metadata_offset: int
    def __init__(self, acls: _Optional[_Iterable[_Union[_metadata_pb2.AclBindingRecord, _Mapping]]] = ..., metadata_offset: _Optional[int] = ...) -> None: ...

class DeleteAclsRequest(_message.Message):
    __slots__ = ("request_id", "filters")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    filters: _containers.RepeatedCompositeFieldContainer[AclBindingFilter]
    def __init__(self, request_id: _Optional[str] = ..., filters: _Optional[_Iterable[_Union[AclBindingFilter, _Mapping]]] = ...) -> None: ...

class DeleteAclsFilterResult(_message.Message):
    __slots__ = ("error", "acls")
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ACLS_FIELD_NUMBER: _ClassVar[int]
    error: _common_pb2.ErrorDetail
    acls: _containers.RepeatedCompositeFieldContainer[_metadata_pb2.AclBindingRecord]
    def __init__(self, error: _Optional[_Union[_common_pb2.ErrorDetail, _Mapping]] = ..., acls: _Optional[_Iterable[_Union[_metadata_pb2.AclBindingRecord, _Mapping]]] = ...) -> None: ...

class DeleteAclsResponse(_message.Message):
    __slots__ = ("results", "metadata_offset")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    METADATA_OFFSET_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[DeleteAclsFilterResult]
    metadata_offset: int
    def __init__(self, results: _Optional[_Iterable[_Union[DeleteAclsFilterResult, _Mapping]]] = ..., metadata_offset: _Optional[int] = ...) -> None: ...

class PartitionIsrChange(_message.Message):
    __slots__ = ("topic_id", "partition", "leader_epoch", "partition_epoch", "new_isr")
    TOPIC_ID_FIELD_NUMBER: _ClassVar[int]
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    LEADER_EPOCH_FIELD_NUMBER: _ClassVar[int]
    PARTITION_EPOCH_FIELD_NUMBER: _ClassVar[int]
    NEW_ISR_FIELD_NUMBER: _ClassVar[int]
    topic_id: bytes
    partition: int
    leader_epoch: int
    partition_epoch: int
    new_isr: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, topic_id: _Optional[bytes] = ..., partition: _Optional[int] = ..., leader_epoch: _Optional[int] = ..., partition_epoch: _Optional[int] = ..., new_isr: _Optional[_Iterable[int]] = ...) -> None: ...

class AlterPartitionRequest(_message.Message):
    __slots__ = ("request_id", "broker_id", "broker_epoch", "changes")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    BROKER_ID_FIELD_NUMBER: _ClassVar[int]
    BROKER_EPOCH_FIELD_NUMBER: _ClassVar[int]
    CHANGES_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    broker_id: int
    broker_epoch: int
    changes: _containers.RepeatedCompositeFieldContainer[PartitionIsrChange]
    def __init__(self, request_id: _Optional[str] = ..., broker_id: _Optional[int] = ..., broker_epoch: _Optional[int] = ..., changes: _Optional[_Iterable[_Union[PartitionIsrChange, _Mapping]]] = ...) -> None: ...

class AlterPartitionResult(_message.Message):
    __slots__ = ("topic_id", "partition", "error", "partition_state")
    TOPIC_ID_FIELD_NUMBER: _ClassVar[int]
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    PARTITION_STATE_FIELD_NUMBER: _ClassVar[int]
    topic_id: bytes
    partition: int
    error: _common_pb2.ErrorDetail
    partition_state: _metadata_pb2.PartitionChangeResult
    def __init__(self, topic_id: _Optional[bytes] = ..., partition: _Optional[int] = ..., error: _Optional[_Union[_common_pb2.ErrorDetail, _Mapping]] = ..., partition_state: _Optional[_Union[_metadata_pb2.PartitionChangeResult, _Mapping]] = ...) -> None: ...

class AlterPartitionResponse(_message.Message):
    __slots__ = ("results", "metadata_offset")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    METADATA_OFFSET_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[AlterPartitionResult]
    metadata_offset: int
    def __init__(self, results: _Optional[_Iterable[_Union[AlterPartitionResult, _Mapping]]] = ..., metadata_offset: _Optional[int] = ...) -> None: ...

class AllocateProducerIdsRequest(_message.Message):
    __slots__ = ("request_id", "broker_id", "broker_epoch")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    BROKER_ID_FIELD_NUMBER: _ClassVar[int]
    BROKER_EPOCH_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    broker_id: int
    broker_epoch: int
    def __init__(self, request_id: _Optional[str] = ..., broker_id: _Optional[int] = ..., broker_epoch: _Optional[int] = ...) -> None: ...

class AllocateProducerIdsResponse(_message.Message):
    __slots__ = ("first_producer_id", "size", "metadata_offset")
    FIRST_PRODUCER_ID_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    METADATA_OFFSET_FIELD_NUMBER: _ClassVar[int]
    first_producer_id: int
    size: int
    metadata_offset: int
    def __init__(self, first_producer_id: _Optional[int] = ..., size: _Optional[int] = ..., metadata_offset: _Optional[int] = ...) -> None: ...
