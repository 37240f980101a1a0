"""The console's data layer with security on: the viewer's refusals are the CLI's.

Goal: an action or a read the viewer's ACLs do not allow is refused with the code and the message
the CLI (the SDK logged in as that user) gets, and the group listing shows only the groups the
viewer may Describe. Method: one combined node with SASL_SSL and TLS (the CA and node certificate
of test_authentication_node.py), a super user `admin` (bootstrap user) and `bob` with no rights
but those granted in a test; the SDK logs in as bob over gRPC, the console functions get
`Caller("User:bob", ...)`.
"""

from __future__ import annotations

import uuid

import pytest
from freshet.client import Admin
from freshet.client.admin_groups import GroupAdmin
from freshet.client.admin_security import ACL, ACLOperation, ACLPermissionType, ResourcePattern, ResourceType
from freshet.client.errors import FreshetError
from freshet.metadata.security import ScramMechanism
from freshet.server.http.console_data import actions, groups, logs, messages
from freshet.server.http.console_data.backend import ActionRefused
from freshet.server.security.authorizer import Caller

from tests.integration.server.test_authentication_node import NODE_PRINCIPAL, write_tls_files
from tests.support.inprocess_nodes import InProcessCluster
from tests.support.waiting import wait_until

ADMIN_PASSWORD = "console-admin-Pa55"
BOB_PASSWORD = "console-bob-Pa55"
BOB = Caller("User:bob", "127.0.0.1")
ADMIN = Caller("User:admin", "127.0.0.1")


@pytest.fixture(scope="module")
def secure(tmp_path_factory):
    root = tmp_path_factory.mktemp("console-secure")
    tls_files = write_tls_files(root)
    password_file = root / "admin.password"
    password_file.write_text(ADMIN_PASSWORD + "\n")
    sets = [
        "security.protocol=SASL_SSL",
        *(f"{key}={path}" for key, path in tls_files.items()),
        f"super.users=User:admin;{NODE_PRINCIPAL}",
        "security.bootstrap.user=admin",
        f"security.bootstrap.password.file={password_file}",
    ]
    with InProcessCluster(root, controllers=1, extra_sets=sets) as nodes:
        nodes.start_all()
        node = nodes.nodes[1]
        wait_until(lambda: all(node.publisher.image.scram_credential("admin", m) for m in ScramMechanism), 15, "admin")
        nodes.bootstrap = f"127.0.0.1:{nodes.ports[1]}"
        nodes.ca_file = tls_files["ssl.ca.location"]
        with Admin(nodes.bootstrap, **_login(nodes, "admin", ADMIN_PASSWORD)) as admin:
            admin.create_user("bob", BOB_PASSWORD)
        wait_until(lambda: node.publisher.image.users.get("bob"), 15, "bob")
        yield nodes


def _login(secure, user: str, password: str) -> dict:
    return {
        "security_protocol": "SASL_SSL", "ssl_cafile": secure.ca_file, "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": user, "sasl_plain_password": password,
    }


def _cli_refusal(call) -> FreshetError:
    with pytest.raises(FreshetError) as refused:
        call()
    return refused.value


def test_a_refused_action_gets_the_clis_refusal(secure):
    backend = secure.nodes[1].console
    topic = f"console-sec-{uuid.uuid4().hex[:6]}"
    actions.create_topic(backend, ADMIN, topic, partitions=1, replication_factor=1)
    with Admin(secure.bootstrap, **_login(secure, "bob", BOB_PASSWORD)) as bob:
        cli = _cli_refusal(lambda: bob.delete_topic(topic))
    with pytest.raises(ActionRefused) as console:
        actions.delete_topic(backend, BOB, topic)
    assert console.value.code_name == cli.code_name == "TOPIC_AUTHORIZATION_FAILED"
    assert console.value.message == cli.message.split(": ", 1)[1]      # the SDK prefixes "DeleteTopics on HOST"
    assert "User:bob" in console.value.message
    with pytest.raises(ActionRefused) as create:
        actions.create_topic(backend, BOB, topic + "-b", partitions=1, replication_factor=1)
    assert create.value.code_name == "TOPIC_AUTHORIZATION_FAILED"
    with pytest.raises(ActionRefused) as alter:
        actions.alter_configs(backend, BOB, "cluster", "", {"log.retention.ms": "60000"})
    assert alter.value.code_name == "CLUSTER_AUTHORIZATION_FAILED"
    assert backend.image().topic(topic) is not None                 # nothing was deleted


def test_groups_show_only_what_the_viewer_may_describe(secure):
    backend = secure.nodes[1].console
    topic = f"console-sec-g-{uuid.uuid4().hex[:6]}"
    actions.create_topic(backend, ADMIN, topic, partitions=1, replication_factor=1)
    mine, theirs = f"bob-{uuid.uuid4().hex[:6]}", f"other-{uuid.uuid4().hex[:6]}"
    for group in (mine, theirs):
        actions.reset_group_offsets(backend, ADMIN, group, topic, to_earliest=True, execute=True)
    with Admin(secure.bootstrap, **_login(secure, "admin", ADMIN_PASSWORD)) as admin:
        admin.create_acls([ACL("User:bob", "*", ACLOperation.DESCRIBE, ACLPermissionType.ALLOW,
                               ResourcePattern(ResourceType.GROUP, mine))])
    wait_until(lambda: len(backend.image().acls) > 0, 15, "the ACL")
    assert {mine, theirs} <= {g.group for g in groups.cluster_groups(backend, ADMIN).groups}
    seen = groups.cluster_groups(backend, BOB)
    assert [g.group for g in seen.groups] == [mine]
    with GroupAdmin(secure.bootstrap, **_login(secure, "bob", BOB_PASSWORD)) as bob:
        cli_describe = _cli_refusal(lambda: bob.describe_group(theirs))
        cli_delete = _cli_refusal(lambda: bob.delete_group(mine))
    with pytest.raises(ActionRefused) as describe:
        groups.describe_group(backend, BOB, theirs)
    assert describe.value.code_name == cli_describe.code_name == "GROUP_AUTHORIZATION_FAILED"
    assert describe.value.message == cli_describe.message.split(": ", 1)[1]
    with pytest.raises(ActionRefused) as delete:
        actions.delete_group(backend, BOB, mine)
    assert delete.value.code_name == cli_delete.code_name == "GROUP_AUTHORIZATION_FAILED"
    assert delete.value.message == cli_delete.message.split(": ", 1)[1]
    with pytest.raises(ActionRefused) as reset:
        actions.reset_group_offsets(backend, BOB, mine, topic, to_latest=True, execute=True)
    assert reset.value.code_name == "GROUP_AUTHORIZATION_FAILED"
    assert groups.describe_group(backend, ADMIN, mine).partitions[0].committed_offset == 0


def test_browsing_needs_read_on_the_topic(secure):
    backend = secure.nodes[1].console
    topic = f"console-sec-m-{uuid.uuid4().hex[:6]}"
    actions.create_topic(backend, ADMIN, topic, partitions=1, replication_factor=1)
    with pytest.raises(ActionRefused) as refused:
        messages.browse(backend, BOB, messages.BrowseQuery(topic))
    assert refused.value.code_name == "TOPIC_AUTHORIZATION_FAILED"
    assert refused.value.message == f"User:bob is not authorized to Read topic {topic!r}"
    assert messages.browse(backend, ADMIN, messages.BrowseQuery(topic)).rows == ()


def test_the_topic_pages_logs_are_read_with_the_nodes_identity(secure):
    """DescribeLogDirs needs Describe on the cluster: the node's own identity (TLS certificate and
    node proof) has it, so the topic page shows the logs to any viewer allowed to Describe the topic."""
    backend = secure.nodes[1].console
    topic = f"console-sec-l-{uuid.uuid4().hex[:6]}"
    actions.create_topic(backend, ADMIN, topic, partitions=2, replication_factor=1)
    image = wait_until(lambda: (i := backend.image()).topic(topic) and i, 10, "topic in the image")
    first = logs.topic_logs(backend, image.topic(topic))
    assert not any("AUTHORIZATION" in why for why in first.unknown.values()), first.unknown
    # The broker creates a new partition's log right after the image has it: until then "?".
    found = wait_until(lambda: (f := logs.topic_logs(backend, image.topic(topic))) and not f.unknown and f, 10,
                       "both partitions' logs")
    assert found.failures == ()
    assert [(p.log_start_offset, p.high_watermark) for _, p in sorted(found.partitions.items())] == [(0, 0), (0, 0)]
