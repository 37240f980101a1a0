"""The Kafka protocol front-end of one broker: the handler table wired to the broker's parts,
and the listener serving it.

Owns which handlers a broker serves and what each is given (the metadata image, the data plane,
the controller channels, the group runtime: group coordination, offsets and the classic group
protocol, the authorizer and the audit of user and ACL changes), and the start and stop of the
listener. The node creates one when `kafka.listen` is set. With security on it also holds the
node's `authenticator` (each connection gets a ConnectionAuth; SaslHandshake and SaslAuthenticate
are served, and advertised, only with SASL_SSL).

Imports: freshet.server (broker, cluster, config, groups, kafka, metrics, security). Thread-safety: not
thread-safe (loop).
"""

from __future__ import annotations

import logging

from freshet.server.broker.data_plane import DataPlane
from freshet.server.broker.service import AUTO_CREATE_TIMEOUT_S, auto_create_topics
from freshet.server.cluster.channels import ControllerChannels
from freshet.server.cluster.publisher import MetadataPublisher
from freshet.server.config import NodeConfig
from freshet.server.errors import NodeStartError
from freshet.server.groups.runtime import GroupRuntime
from freshet.server.kafka import acls_api, admin_api, config_api, groups_api, scram_credentials_api
from freshet.server.kafka.apis import KafkaApis
from freshet.server.kafka.classic_group_api import classic_group_handlers
from freshet.server.kafka.consumer_group_api import ConsumerGroupHeartbeatHandler
from freshet.server.kafka.delete_records_api import DeleteRecordsHandler
from freshet.server.kafka.fetch_api import FetchHandler, ListOffsetsHandler
from freshet.server.kafka.listener import KafkaListener
from freshet.server.kafka.log_dirs_api import DescribeLogDirsHandler, DescribeProducersHandler
from freshet.server.kafka.metadata_api import DescribeClusterHandler, MetadataHandler
from freshet.server.kafka.produce_api import InitProducerIdHandler, ProduceHandler
from freshet.server.kafka.sasl_api import ConnectionAuth, SaslAuthenticateHandler, SaslHandshakeHandler
from freshet.server.kafka.transactions_api import REFUSED_APIS
from freshet.server.security import rules
from freshet.server.security.authentication import Authenticator
from freshet.server.security.authorizer import Authorizer
from freshet.server.security.changes import SecurityChanges
from freshet.server.security.tls import TlsMaterial

logger = logging.getLogger(__name__)


class KafkaFrontEnd:
    """The broker's Kafka listener and APIs (module docstring). Not thread-safe (loop)."""

    def __init__(
        self,
        config: NodeConfig,
        publisher: MetadataPublisher,
        data_plane: DataPlane,
        channels: ControllerChannels,
        controller_hint,
        groups: GroupRuntime,
        tls: TlsMaterial | None = None,
        authorizer: Authorizer | None = None,
        security_changes: SecurityChanges | None = None,
        authenticator: Authenticator | None = None,
    ) -> None:
        assert config.kafka_listen is not None
        self.authenticator = authenticator
        self.authorizer = authorizer = authorizer or rules.allow_all()
        self.config = config
        self._publisher = publisher
        self._data_plane = data_plane
        self._channels = channels
        self._controller_hint = controller_hint
        self.apis = KafkaApis(data_plane.metrics)
        def image():
            return publisher.image

        def may_auto_create() -> bool:
            return data_plane.broker_config().auto_create_topics_enable

        self.apis.add(MetadataHandler(config.node_id, image, self._auto_create, authorizer, may_auto_create))
        self.apis.add(ProduceHandler(data_plane, image, authorizer))
        self.apis.add(FetchHandler(data_plane, image, authorizer))
        self.apis.add(ListOffsetsHandler(data_plane, authorizer))
        self.apis.add(InitProducerIdHandler(data_plane, config.request_timeout_ms, authorizer))
        self.apis.add(DescribeLogDirsHandler(data_plane, config.logs_dir, authorizer))
        self.apis.add(DescribeProducersHandler(data_plane, authorizer))
        self.apis.add(DeleteRecordsHandler(data_plane, authorizer))
        self.apis.add(ConsumerGroupHeartbeatHandler(groups.coordinator, image, config.node_id, authorizer))
        for handler in classic_group_handlers(groups.coordinator, authorizer):
            self.apis.add(handler)
        for handler in admin_handlers(config, publisher, channels, controller_hint, authorizer):
            self.apis.add(handler)
        changes = security_changes if security_changes is not None else SecurityChanges()
        for handler in security_handlers(config, publisher, channels, controller_hint, authorizer, changes):
            self.apis.add(handler)
        for handler in groups_api.group_handlers(groups.locate, groups.coordinator, image, config.node_id, authorizer):
            self.apis.add(handler)
        for refused in REFUSED_APIS:
            self.apis.refuse(refused)
        connection_auth = None
        if authenticator is not None:
            if authenticator.is_sasl:
                self.apis.add(SaslHandshakeHandler(authenticator.mechanisms))
                self.apis.add(SaslAuthenticateHandler())

            def connection_auth(host: str, ssl_object) -> ConnectionAuth:
                return ConnectionAuth(authenticator, host, ssl_object)

        self.listener = KafkaListener(
            config.kafka_listen.host,
            config.kafka_listen.port,
            self.apis,
            ssl_context=tls.server_context() if tls is not None else None,
            connection_auth=connection_auth,
            metrics=data_plane.metrics,
            send_buffer_bytes=lambda: data_plane.broker_config().socket_send_buffer_bytes,
        )

    async def _auto_create(self, names: list[str]) -> bool:
        if not self._data_plane.broker_config().auto_create_topics_enable:
            return False
        return await auto_create_topics(self._channels, self._controller_hint, self._publisher, names, AUTO_CREATE_TIMEOUT_S)

    async def start(self) -> None:
        """Start listening.

        Raises:
            NodeStartError: the Kafka address cannot be bound.
        """
        try:
            await self.listener.start()
        except OSError as error:
            raise NodeStartError(f"cannot listen on {self.config.kafka_listen} (Kafka protocol): {error.strerror}") from error

    async def close(self) -> None:
        await self.listener.close()


def admin_handlers(
    config: NodeConfig,
    publisher: MetadataPublisher,
    channels: ControllerChannels,
    controller_hint,
    authorizer: Authorizer | None = None,
) -> list:
    """The Kafka admin APIs: topics, partitions, configs, cluster (admin_api, config_api)."""
    link = admin_api.ControllerLink(
        config.node_id, channels, controller_hint, publisher, config.request_timeout_ms, config.broker_configs
    )
    return [
        admin_api.CreateTopicsHandler(link, config_api.topic_config_entries, authorizer),
        admin_api.DeleteTopicsHandler(link, authorizer),
        config_api.DescribeConfigsHandler(link, authorizer),
        config_api.AlterConfigsHandler(link, authorizer),
        admin_api.CreatePartitionsHandler(link, authorizer),
        admin_api.ElectLeadersHandler(link, authorizer),
        config_api.IncrementalAlterConfigsHandler(link, authorizer),
        admin_api.AlterPartitionReassignmentsHandler(link, authorizer),
        admin_api.ListPartitionReassignmentsHandler(link, authorizer),
        DescribeClusterHandler(config.node_id, lambda: publisher.image, authorizer),
    ]


def security_handlers(
    config: NodeConfig, publisher: MetadataPublisher, channels: ControllerChannels, controller_hint,
    authorizer: Authorizer, changes: SecurityChanges,
) -> list:
    """The Kafka APIs of users and ACLs (acls_api, scram_credentials_api)."""
    link = admin_api.ControllerLink(config.node_id, channels, controller_hint, publisher, config.request_timeout_ms)
    return [
        acls_api.DescribeAclsHandler(link, authorizer),
        acls_api.CreateAclsHandler(link, authorizer, changes),
        acls_api.DeleteAclsHandler(link, authorizer, changes),
        scram_credentials_api.DescribeUserScramCredentialsHandler(link, authorizer),
        scram_credentials_api.AlterUserScramCredentialsHandler(link, authorizer, changes),
    ]
