from freshet.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ConfigResourceType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CONFIG_RESOURCE_UNSPECIFIED: _ClassVar[ConfigResourceType]
    CONFIG_RESOURCE_CLUSTER: _ClassVar[ConfigResourceType]
    CONFIG_RESOURCE_BROKER: _ClassVar[ConfigResourceType]
    CONFIG_RESOURCE_TOPIC: _ClassVar[ConfigResourceType]
    CONFIG_RESOURCE_GROUP: _ClassVar[ConfigResourceType]
CONFIG_RESOURCE_UNSPECIFIED: ConfigResourceType
CONFIG_RESOURCE_CLUSTER: ConfigResourceType
CONFIG_RESOURCE_BROKER: ConfigResourceType
CONFIG_RESOURCE_TOPIC: ConfigResourceType
CONFIG_RESOURCE_GROUP: ConfigResourceType

class MetadataCommand(_message.Message):
    __slots__ = ("request_id", "controller_epoch", "noop", "init_cluster", "claim_controller", "register_broker", "fence_broker", "unfence_broker", "begin_controlled_shutdown", "create_topic", "delete_topic", "create_partitions", "change_partition", "reassign_partition", "alter_configs", "allocate_producer_ids", "atomic_batch", "upsert_user_credential", "delete_user_credential", "create_acls", "delete_acls", "decommission_broker", "cancel_decommission_broker")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    CONTROLLER_EPOCH_FIELD_NUMBER: _ClassVar[int]
    NOOP_FIELD_NUMBER: _ClassVar[int]
    INIT_CLUSTER_FIELD_NUMBER: _ClassVar[int]
    CLAIM_CONTROLLER_FIELD_NUMBER: _ClassVar[int]
    REGISTER_BROKER_FIELD_NUMBER: _ClassVar[int]
    FENCE_BROKER_FIELD_NUMBER: _ClassVar[int]
    UNFENCE_BROKER_FIELD_NUMBER: _ClassVar[int]
    BEGIN_CONTROLLED_SHUTDOWN_FIELD_NUMBER: _ClassVar[int]
    CREATE_TOPIC_FIELD_NUMBER: _ClassVar[int]
    DELETE_TOPIC_FIELD_NUMBER: _ClassVar[int]
    CREATE_PARTITIONS_FIELD_NUMBER: _ClassVar[int]
    CHANGE_PARTITION_FIELD_NUMBER: _ClassVar[int]
    REASSIGN_PARTITION_FIELD_NUMBER: _ClassVar[int]
    ALTER_CONFIGS_FIELD_NUMBER: _ClassVar[int]
    ALLOCATE_PRODUCER_IDS_FIELD_NUMBER: _ClassVar[int]
    ATOMIC_BATCH_FIELD_NUMBER: _ClassVar[int]
    UPSERT_USER_CREDENTIAL_FIELD_NUMBER: _ClassVar[int]
    DELETE_USER_CREDENTIAL_FIELD_NUMBER: _ClassVar[int]
    CREATE_ACLS_FIELD_NUMBER: _ClassVar[int]
    DELETE_ACLS_FIELD_NUMBER: _ClassVar[int]
    DECOMMISSION_BROKER_FIELD_NUMBER: _ClassVar[int]
    CANCEL_DECOMMISSION_BROKER_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    controller_epoch: int
    noop: Noop
    init_cluster: InitCluster
    claim_controller: ClaimController
    register_broker: RegisterBroker
    fence_broker: FenceBroker
    unfence_broker: UnfenceBroker
    begin_controlled_shutdown: BeginControlledShutdown
    create_topic: CreateTopic
    delete_topic: DeleteTopic
    create_partitions: CreatePartitions
    change_partition: ChangePartition
    reassign_partition: ReassignPartition
    alter_configs: AlterConfigs
    allocate_producer_ids: AllocateProducerIds
    atomic_batch: AtomicBatch
    upsert_user_credential: UpsertUserCredential
    delete_user_credential: DeleteUserCredential
    create_acls: CreateAcls
    delete_acls: DeleteAcls
    decommission_broker: DecommissionBroker
    cancel_decommission_broker: CancelDecommissionBroker
    def __init__(self, request_id: _Optional[str] = ..., controller_epoch: _Optional[int] = ..., noop: _Optional[_Union[Noop, _Mapping]] = ..., init_cluster: _Optional[_Union[InitCluster, _Mapping]] = ..., claim_controller: _Optional[_Union[ClaimController, _Mapping]] = ..., register_broker: _Optional[_Union[RegisterBroker, _Mapping]] = ..., fence_broker: _Optional[_Union[FenceBroker, _Mapping]] = ..., unfence_broker: _Optional[_Union[UnfenceBroker, _Mapping]] = ..., begin_controlled_shutdown: _Optional[_Union[BeginControlledShutdown, _Mapping]] = ..., create_topic: _Optional[_Union[CreateTopic, _Mapping]] = ..., delete_topic: _Optional[_Union[DeleteTopic, _Mapping]] = ..., create_partitions: _Optional[_Union[CreatePartitions, _Mapping]] = ..., change_partition: _Optional[_Union[ChangePartition, _Mapping]] = ..., reassign_partition: _Optional[_Union[ReassignPartition, _Mapping]] = ..., alter_configs: _Optional[_Union[AlterConfigs, _Mapping]] = ..., allocate_producer_ids: _Optional[_Union[AllocateProducerIds, _Mapping]] = ..., atomic_batch: _Optional[_Union[AtomicBatch, _Mapping]] = ..., upsert_user_credential: _Optional[_Union[UpsertUserCredential, _Mapping]] = ..., delete_user_credential: _Optional[_Union[DeleteUserCredential, _Mapping]] = ..., create_acls: _Optional[_Union[CreateAcls, _Mapping]] = ..., delete_acls: _Optional[_Union[DeleteAcls, _Mapping]] = ..., decommission_broker: _Optional[_Union[DecommissionBroker, _Mapping]] = ..., cancel_decommission_broker: _Optional[_Union[CancelDecommissionBroker, _Mapping]] = ...) -> None: ...

class Noop(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class InitCluster(_message.Message):
    __slots__ = ("cluster_id",)
    CLUSTER_ID_FIELD_NUMBER: _ClassVar[int]
    cluster_id: str
    def __init__(self, cluster_id: _Optional[str] = ...) -> None: ...

class ClaimController(_message.Message):
    __slots__ = ("node_id", "term")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    TERM_FIELD_NUMBER: _ClassVar[int]
    node_id: int
    term: int
    def __init__(self, node_id: _Optional[int] = ..., term: _Optional[int] = ...) -> None: ...

class RegisterBroker(_message.Message):
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

class FenceBroker(_message.Message):
    __slots__ = ("node_id", "broker_epoch")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    BROKER_EPOCH_FIELD_NUMBER: _ClassVar[int]
    node_id: int
    broker_epoch: int
    def __init__(self, node_id: _Optional[int] = ..., broker_epoch: _Optional[int] = ...) -> None: ...

class UnfenceBroker(_message.Message):
    __slots__ = ("node_id", "broker_epoch")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    BROKER_EPOCH_FIELD_NUMBER: _ClassVar[int]
    node_id: int
    broker_epoch: int
    def __init__(self, node_id: _Optional[int] = ..., broker_epoch: _Optional[int] = ...) -> None: ...

class BeginControlledShutdown(_message.Message):
    __slots__ = ("node_id", "broker_epoch")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    BROKER_EPOCH_FIELD_NUMBER: _ClassVar[int]
    node_id: int
    broker_epoch: int
    def __init__(self, node_id: _Optional[int] = ..., broker_epoch: _Optional[int] = ...) -> None: ...

class DecommissionBroker(_message.Message):
    __slots__ = ("node_id",)
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    node_id: int
    def __init__(self, node_id: _Optional[int] = ...) -> None: ...

class CancelDecommissionBroker(_message.Message):
    __slots__ = ("node_id",)
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    node_id: int
    def __init__(self, node_id: _Optional[int] = ...) -> None: ...

class PartitionAssignment(_message.Message):
    __slots__ = ("replicas", "isr", "leader")
    REPLICAS_FIELD_NUMBER: _ClassVar[int]
    ISR_FIELD_NUMBER: _ClassVar[int]
    LEADER_FIELD_NUMBER: _ClassVar[int]
    replicas: _containers.RepeatedScalarFieldContainer[int]
    isr: _containers.RepeatedScalarFieldContainer[int]
    leader: int
    def __init__(self, replicas: _Optional[_Iterable[int]] = ..., isr: _Optional[_Iterable[int]] = ..., leader: _Optional[int] = ...) -> None: ...

class ConfigEntry(_message.Message):
    __slots__ = ("key", "value")
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    key: str
    value: str
    def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...

class CreateTopic(_message.Message):
    __slots__ = ("topic_id", "name", "partitions", "configs")
    TOPIC_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PARTITIONS_FIELD_NUMBER: _ClassVar[int]
    CONFIGS_FIELD_NUMBER: _ClassVar[int]
    topic_id: bytes
    name: str
    partitions: _containers.RepeatedCompositeFieldContainer[PartitionAssignment]
    configs: _containers.RepeatedCompositeFieldContainer[ConfigEntry]
    def __init__(self, topic_id: _Optional[bytes] = ..., name: _Optional[str] = ..., partitions: _Optional[_Iterable[_Union[PartitionAssignment, _Mapping]]] = ..., configs: _Optional[_Iterable[_Union[ConfigEntry, _Mapping]]] = ...) -> None: ...

class DeleteTopic(_message.Message):
    __slots__ = ("topic_id",)
    TOPIC_ID_FIELD_NUMBER: _ClassVar[int]
    topic_id: bytes
    def __init__(self, topic_id: _Optional[bytes] = ...) -> None: ...

class CreatePartitions(_message.Message):
    __slots__ = ("topic_id", "partition_count", "new_partitions")
    TOPIC_ID_FIELD_NUMBER: _ClassVar[int]
    PARTITION_COUNT_FIELD_NUMBER: _ClassVar[int]
    NEW_PARTITIONS_FIELD_NUMBER: _ClassVar[int]
    topic_id: bytes
    partition_count: int
    new_partitions: _containers.RepeatedCompositeFieldContainer[PartitionAssignment]
    def __init__(self, topic_id: _Optional[bytes] = ..., partition_count: _Optional[int] = ..., new_partitions: _Optional[_Iterable[_Union[PartitionAssignment, _Mapping]]] = ...) -> None: ...

class ReplicaList(_message.Message):
    __slots__ = ("replicas",)
    REPLICAS_FIELD_NUMBER: _ClassVar[int]
    replicas: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, replicas: _Optional[_Iterable[int]] = ...) -> None: ...

class ChangePartition(_message.Message):
    __slots__ = ("topic_id", "partition", "expected_partition_epoch", "leader", "isr", "replicas", "is_unclean")
    TOPIC_ID_FIELD_NUMBER: _ClassVar[int]
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_PARTITION_EPOCH_FIELD_NUMBER: _ClassVar[int]
    LEADER_FIELD_NUMBER: _ClassVar[int]
    ISR_FIELD_NUMBER: _ClassVar[int]
    REPLICAS_FIELD_NUMBER: _ClassVar[int]
    IS_UNCLEAN_FIELD_NUMBER: _ClassVar[int]
    topic_id: bytes
    partition: int
    expected_partition_epoch: int
    leader: int
    isr: ReplicaList
    replicas: ReplicaList
    is_unclean: bool
    def __init__(self, topic_id: _Optional[bytes] = ..., partition: _Optional[int] = ..., expected_partition_epoch: _Optional[int] = ..., leader: _Optional[int] = ..., isr: _Optional[_Union[ReplicaList, _Mapping]] = ..., replicas: _Optional[_Union[ReplicaList, _Mapping]] = ..., is_unclean: _Optional[bool] = ...) -> None: ...

class ReassignPartition(_message.Message):
    __slots__ = ("topic_id", "partition", "target_replicas", "by_balancer")
    TOPIC_ID_FIELD_NUMBER: _ClassVar[int]
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    TARGET_REPLICAS_FIELD_NUMBER: _ClassVar[int]
    BY_BALANCER_FIELD_NUMBER: _ClassVar[int]
    topic_id: bytes
    partition: int
    target_replicas: _containers.RepeatedScalarFieldContainer[int]
    by_balancer: bool
    def __init__(self, topic_id: _Optional[bytes] = ..., partition: _Optional[int] = ..., target_replicas: _Optional[_Iterable[int]] = ..., by_balancer: _Optional[bool] = ...) -> None: ...

class ConfigResource(_message.Message):
    __slots__ = ("type", "broker_id", "topic_id", "topic_name", "group_id")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    BROKER_ID_FIELD_NUMBER: _ClassVar[int]
    TOPIC_ID_FIELD_NUMBER: _ClassVar[int]
    TOPIC_NAME_FIELD_NUMBER: _ClassVar[int]
    GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    type: ConfigResourceType
    broker_id: int
    topic_id: bytes
    topic_name: str
    group_id: str
    def __init__(self, type: _Optional[_Union[ConfigResourceType, str]] = ..., broker_id: _Optional[int] = ..., topic_id: _Optional[bytes] = ..., topic_name: _Optional[str] = ..., group_id: _Optional[str] = ...) -> None: ...

class AlterConfigs(_message.Message):
    __slots__ = ("resource", "set_configs", "delete_keys")
    RESOURCE_FIELD_NUMBER: _ClassVar[int]
    SET_CONFIGS_FIELD_NUMBER: _ClassVar[int]
    DELETE_KEYS_FIELD_NUMBER: _ClassVar[int]
    resource: ConfigResource
    set_configs: _containers.RepeatedCompositeFieldContainer[ConfigEntry]
    delete_keys: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, resource: _Optional[_Union[ConfigResource, _Mapping]] = ..., set_configs: _Optional[_Iterable[_Union[ConfigEntry, _Mapping]]] = ..., delete_keys: _Optional[_Iterable[str]] = ...) -> None: ...

class AllocateProducerIds(_message.Message):
    __slots__ = ("broker_id", "broker_epoch")
    BROKER_ID_FIELD_NUMBER: _ClassVar[int]
    BROKER_EPOCH_FIELD_NUMBER: _ClassVar[int]
    broker_id: int
    broker_epoch: int
    def __init__(self, broker_id: _Optional[int] = ..., broker_epoch: _Optional[int] = ...) -> None: ...

class AtomicBatch(_message.Message):
    __slots__ = ("commands",)
    COMMANDS_FIELD_NUMBER: _ClassVar[int]
    commands: _containers.RepeatedCompositeFieldContainer[MetadataCommand]
    def __init__(self, commands: _Optional[_Iterable[_Union[MetadataCommand, _Mapping]]] = ...) -> None: ...

class ScramCredentialRecord(_message.Message):
    __slots__ = ("mechanism", "salt", "stored_key", "server_key", "iterations")
    MECHANISM_FIELD_NUMBER: _ClassVar[int]
    SALT_FIELD_NUMBER: _ClassVar[int]
    STORED_KEY_FIELD_NUMBER: _ClassVar[int]
    SERVER_KEY_FIELD_NUMBER: _ClassVar[int]
    ITERATIONS_FIELD_NUMBER: _ClassVar[int]
    mechanism: int
    salt: bytes
    stored_key: bytes
    server_key: bytes
    iterations: int
    def __init__(self, mechanism: _Optional[int] = ..., salt: _Optional[bytes] = ..., stored_key: _Optional[bytes] = ..., server_key: _Optional[bytes] = ..., iterations: _Optional[int] = ...) -> None: ...

class UpsertUserCredential(_message.Message):
    __slots__ = ("user", "credential")
    USER_FIELD_NUMBER: _ClassVar[int]
    CREDENTIAL_FIELD_NUMBER: _ClassVar[int]
    user: str
    credential: ScramCredentialRecord
    def __init__(self, user: _Optional[str] = ..., credential: _Optional[_Union[ScramCredentialRecord, _Mapping]] = ...) -> None: ...

class DeleteUserCredential(_message.Message):
    __slots__ = ("user", "mechanism")
    USER_FIELD_NUMBER: _ClassVar[int]
    MECHANISM_FIELD_NUMBER: _ClassVar[int]
    user: str
    mechanism: int
    def __init__(self, user: _Optional[str] = ..., mechanism: _Optional[int] = ...) -> None: ...

class AclBindingRecord(_message.Message):
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

class CreateAcls(_message.Message):
    __slots__ = ("acls",)
    ACLS_FIELD_NUMBER: _ClassVar[int]
    acls: _containers.RepeatedCompositeFieldContainer[AclBindingRecord]
    def __init__(self, acls: _Optional[_Iterable[_Union[AclBindingRecord, _Mapping]]] = ...) -> None: ...

class DeleteAcls(_message.Message):
    __slots__ = ("acls",)
    ACLS_FIELD_NUMBER: _ClassVar[int]
    acls: _containers.RepeatedCompositeFieldContainer[AclBindingRecord]
    def __init__(self, acls: _Optional[_Iterable[_Union[AclBindingRecord, _Mapping]]] = ...) -> None: ...

class ProducerIdBlock(_message.Message):
    __slots__ = ("broker_id", "first_producer_id", "size")
    BROKER_ID_FIELD_NUMBER: _ClassVar[int]
    FIRST_PRODUCER_ID_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    broker_id: int
    first_producer_id: int
    size: int
    def __init__(self, broker_id: _Optional[int] = ..., first_producer_id: _Optional[int] = ..., size: _Optional[int] = ...) -> None: ...

class PartitionChangeResult(_message.Message):
    __slots__ = ("leader", "leader_epoch", "partition_epoch", "isr", "replicas")
    LEADER_FIELD_NUMBER: _ClassVar[int]
    LEADER_EPOCH_FIELD_NUMBER: _ClassVar[int]
    PARTITION_EPOCH_FIELD_NUMBER: _ClassVar[int]
    ISR_FIELD_NUMBER: _ClassVar[int]
    REPLICAS_FIELD_NUMBER: _ClassVar[int]
    leader: int
    leader_epoch: int
    partition_epoch: int
    isr: _containers.RepeatedScalarFieldContainer[int]
    replicas: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, leader: _Optional[int] = ..., leader_epoch: _Optional[int] = ..., partition_epoch: _Optional[int] = ..., isr: _Optional[_Iterable[int]] = ..., replicas: _Optional[_Iterable[int]] = ...) -> None: ...

class MetadataResult(_message.Message):
    __slots__ = ("error_code", "error_message", "offset", "broker_epoch", "producer_ids", "topic_id", "partition", "batch")
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    BROKER_EPOCH_FIELD_NUMBER: _ClassVar[int]
    PRODUCER_IDS_FIELD_NUMBER: _ClassVar[int]
    TOPIC_ID_FIELD_NUMBER: _ClassVar[int]
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    error_code: _common_pb2.ErrorCode
    error_message: str
    offset: int
    broker_epoch: int
    producer_ids: ProducerIdBlock
    topic_id: bytes
    partition: PartitionChangeResult
    batch: AtomicBatchResult
    def __init__(self, error_code: _Optional[_Union[_common_pb2.ErrorCode, str]] = ..., error_message: _Optional[str] = ..., offset: _Optional[int] = ..., broker_epoch: _Optional[int] = ..., producer_ids: _Optional[_Union[ProducerIdBlock, _Mapping]] = ..., topic_id: _Optional[bytes] = ..., partition: _Optional[_Union[PartitionChangeResult, _Mapping]] = ..., batch: _Optional[_Union[AtomicBatchResult, _Mapping]] = ...) -> None: ...

class AtomicBatchResult(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[MetadataResult]
    def __init__(self, results: _Optional[_Iterable[_Union[MetadataResult, _Mapping]]] = ...) -> None: ...

class BrokerRecord(_message.Message):
    __slots__ = ("node_id", "incarnation_id", "host", "port", "rack", "broker_epoch", "is_fenced", "in_controlled_shutdown", "listeners", "is_decommissioning")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    INCARNATION_ID_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    RACK_FIELD_NUMBER: _ClassVar[int]
    BROKER_EPOCH_FIELD_NUMBER: _ClassVar[int]
    IS_FENCED_FIELD_NUMBER: _ClassVar[int]
    IN_CONTROLLED_SHUTDOWN_FIELD_NUMBER: _ClassVar[int]
    LISTENERS_FIELD_NUMBER: _ClassVar[int]
    IS_DECOMMISSIONING_FIELD_NUMBER: _ClassVar[int]
    node_id: int
    incarnation_id: bytes
    host: str
    port: int
    rack: str
    broker_epoch: int
    is_fenced: bool
    in_controlled_shutdown: bool
    listeners: _containers.RepeatedCompositeFieldContainer[_common_pb2.Listener]
    is_decommissioning: bool
    def __init__(self, node_id: _Optional[int] = ..., incarnation_id: _Optional[bytes] = ..., host: _Optional[str] = ..., port: _Optional[int] = ..., rack: _Optional[str] = ..., broker_epoch: _Optional[int] = ..., is_fenced: _Optional[bool] = ..., in_controlled_shutdown: _Optional[bool] = ..., listeners: _Optional[_Iterable[_Union[_common_pb2.Listener, _Mapping]]] = ..., is_decommissioning: _Optional[bool] = ...) -> None: ...

class PartitionRecord(_message.Message):
    __slots__ = ("partition", "replicas", "isr", "leader", "leader_epoch", "partition_epoch", "adding_replicas", "removing_replicas", "is_balancer_move")
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    REPLICAS_FIELD_NUMBER: _ClassVar[int]
    ISR_FIELD_NUMBER: _ClassVar[int]
    LEADER_FIELD_NUMBER: _ClassVar[int]
    LEADER_EPOCH_FIELD_NUMBER: _ClassVar[int]
    PARTITION_EPOCH_FIELD_NUMBER: _ClassVar[int]
    ADDING_REPLICAS_FIELD_NUMBER: _ClassVar[int]
    REMOVING_REPLICAS_FIELD_NUMBER: _ClassVar[int]
    IS_BALANCER_MOVE_FIELD_NUMBER: _ClassVar[int]
    partition: int
    replicas: _containers.RepeatedScalarFieldContainer[int]
    isr: _containers.RepeatedScalarFieldContainer[int]
    leader: int
    leader_epoch: int
    partition_epoch: int
    adding_replicas: _containers.RepeatedScalarFieldContainer[int]
    removing_replicas: _containers.RepeatedScalarFieldContainer[int]
    is_balancer_move: bool
    def __init__(self, partition: _Optional[int] = ..., replicas: _Optional[_Iterable[int]] = ..., isr: _Optional[_Iterable[int]] = ..., leader: _Optional[int] = ..., leader_epoch: _Optional[int] = ..., partition_epoch: _Optional[int] = ..., adding_replicas: _Optional[_Iterable[int]] = ..., removing_replicas: _Optional[_Iterable[int]] = ..., is_balancer_move: _Optional[bool] = ...) -> None: ...

class TopicRecord(_message.Message):
    __slots__ = ("topic_id", "name", "partitions", "configs")
    TOPIC_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PARTITIONS_FIELD_NUMBER: _ClassVar[int]
    CONFIGS_FIELD_NUMBER: _ClassVar[int]
    topic_id: bytes
    name: str
    partitions: _containers.RepeatedCompositeFieldContainer[PartitionRecord]
    configs: _containers.RepeatedCompositeFieldContainer[ConfigEntry]
    def __init__(self, topic_id: _Optional[bytes] = ..., name: _Optional[str] = ..., partitions: _Optional[_Iterable[_Union[PartitionRecord, _Mapping]]] = ..., configs: _Optional[_Iterable[_Union[ConfigEntry, _Mapping]]] = ...) -> None: ...

class BrokerConfigRecord(_message.Message):
    __slots__ = ("broker_id", "configs")
    BROKER_ID_FIELD_NUMBER: _ClassVar[int]
    CONFIGS_FIELD_NUMBER: _ClassVar[int]
    broker_id: int
    configs: _containers.RepeatedCompositeFieldContainer[ConfigEntry]
    def __init__(self, broker_id: _Optional[int] = ..., configs: _Optional[_Iterable[_Union[ConfigEntry, _Mapping]]] = ...) -> None: ...

class GroupConfigRecord(_message.Message):
    __slots__ = ("group_id", "configs")
    GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    CONFIGS_FIELD_NUMBER: _ClassVar[int]
    group_id: str
    configs: _containers.RepeatedCompositeFieldContainer[ConfigEntry]
    def __init__(self, group_id: _Optional[str] = ..., configs: _Optional[_Iterable[_Union[ConfigEntry, _Mapping]]] = ...) -> None: ...

class UserRecord(_message.Message):
    __slots__ = ("name", "credentials")
    NAME_FIELD_NUMBER: _ClassVar[int]
    CREDENTIALS_FIELD_NUMBER: _ClassVar[int]
    name: str
    credentials: _containers.RepeatedCompositeFieldContainer[ScramCredentialRecord]
    def __init__(self, name: _Optional[str] = ..., credentials: _Optional[_Iterable[_Union[ScramCredentialRecord, _Mapping]]] = ...) -> None: ...

class RequestRecord(_message.Message):
    __slots__ = ("request_id", "result")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    result: MetadataResult
    def __init__(self, request_id: _Optional[str] = ..., result: _Optional[_Union[MetadataResult, _Mapping]] = ...) -> None: ...

class MetadataSnapshot(_message.Message):
    __slots__ = ("format_version", "offset", "cluster_id", "controller_id", "controller_epoch", "next_producer_id", "brokers", "cluster_configs", "broker_configs", "recent_requests", "users", "acls", "group_configs", "topics")
    FORMAT_VERSION_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_ID_FIELD_NUMBER: _ClassVar[int]
    CONTROLLER_ID_FIELD_NUMBER: _ClassVar[int]
    CONTROLLER_EPOCH_FIELD_NUMBER: _ClassVar[int]
    NEXT_PRODUCER_ID_FIELD_NUMBER: _ClassVar[int]
    BROKERS_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_CONFIGS_FIELD_NUMBER: _ClassVar[int]
    BROKER_CONFIGS_FIELD_NUMBER: _ClassVar[int]
    RECENT_REQUESTS_FIELD_NUMBER: _ClassVar[int]
    USERS_FIELD_NUMBER: _ClassVar[int]
    ACLS_FIELD_NUMBER: _ClassVar[int]
    GROUP_CONFIGS_FIELD_NUMBER: _ClassVar[int]
    TOPICS_FIELD_NUMBER: _ClassVar[int]
    format_version: int
    offset: int
    cluster_id: str
    controller_id: int
    controller_epoch: int
    next_producer_id: int
    brokers: _containers.RepeatedCompositeFieldContainer[BrokerRecord]
    cluster_configs: _containers.RepeatedCompositeFieldContainer[ConfigEntry]
    broker_configs: _containers.RepeatedCompositeFieldContainer[BrokerConfigRecord]
    recent_requests: _containers.RepeatedCompositeFieldContainer[RequestRecord]
    users: _containers.RepeatedCompositeFieldContainer[UserRecord]
    acls: _containers.RepeatedCompositeFieldContainer[AclBindingRecord]
    group_configs: _containers.RepeatedCompositeFieldContainer[GroupConfigRecord]
    topics: _containers.RepeatedCompositeFieldContainer[TopicRecord]
    def __init__(self, format_version: _Optional[int] = ..., offset: _Optional[int] = ..., cluster_id: _Optional[str] = ..., controller_id: _Optional[int] = ..., controller_epoch: _Optional[int] = ..., next_producer_id: _Optional[int] = ..., brokers: _Optional[_Iterable[_Union[BrokerRecord, _Mapping]]] = ..., cluster_configs: _Optional[_Iterable[_Union[ConfigEntry, _Mapping]]] = ..., broker_configs: _Optional[_Iterable[_Union[BrokerConfigRecord, _Mapping]]] = ..., recent_requests: _Optional[_Iterable[_Union[RequestRecord, _Mapping]]] = ..., users: _Optional[_Iterable[_Union[UserRecord, _Mapping]]] = ..., acls: _Optional[_Iterable[_Union[AclBindingRecord, _Mapping]]] = ..., group_configs: _Optional[_Iterable[_Union[GroupConfigRecord, _Mapping]]] = ..., topics: _Optional[_Iterable[_Union[TopicRecord, _Mapping]]] = ...) -> None: ...

class RaftEntry(_message.Message):
    __slots__ = ("raft_index", "term", "data")
    RAFT_INDEX_FIELD_NUMBER: _ClassVar[int]
    TERM_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    raft_index: int
    term: int
    data: bytes
    def __init__(self, raft_index: _Optional[int] = ..., term: _Optional[int] = ..., data: _Optional[bytes] = ...) -> None: ...

class RaftSnapshotFile(_message.Message):
    __slots__ = ("format_version", "last_applied", "previous", "voters", "state")
    FORMAT_VERSION_FIELD_NUMBER: _ClassVar[int]
    LAST_APPLIED_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_FIELD_NUMBER: _ClassVar[int]
    VOTERS_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    format_version: int
    last_applied: RaftEntry
    previous: RaftEntry
    voters: _containers.RepeatedScalarFieldContainer[str]
    state: bytes
    def __init__(self, format_version: _Optional[int] = ..., last_applied: _Optional[_Union[RaftEntry, _Mapping]] = ..., previous: _Optional[_Union[RaftEntry, _Mapping]] = ..., voters: _Optional[_Iterable[str]] = ..., state: _Optional[bytes] = ...) -> None: ...
