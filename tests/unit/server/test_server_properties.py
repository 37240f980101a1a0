"""Kafka's server.properties for `freshet server start --config` (server/properties.py, server/config.py).

Goal: the java.util.Properties syntax is parsed as Java does (comments, three separators, line
continuations, escapes); every Kafka key of issue 17 maps to the Freshet setting it means, with
Kafka's precedence between spellings; flags and --set still override the file; ignored Kafka keys
give one warning line each and unknown keys fail naming the key, the file and the line; the CLI
exits 2 with one line. Method: parse_properties on literal text, load_node_config on files written
to tmp_path (empty environment), the real console entry point as a subprocess for exit codes.
Reference: java.util.Properties.load(Reader) javadoc; Kafka's KafkaConfig (listeners, log.dirs,
logRetentionTimeMillis).
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from freshet.server.config import HostPort, load_node_config
from freshet.server.errors import NodeConfigError
from freshet.server.properties import KAFKA_IGNORED, Entry, ignored_reason, parse_properties

# -- the parser ---------------------------------------------------------------------------------


def parsed(text: str) -> list[tuple[str, str, int]]:
    return [(entry.key, entry.value, entry.line) for entry in parse_properties(text)]


def test_comments_blank_lines_and_the_three_separators():
    text = "# a comment\n! another\n\n   \na=1\nb : 2\nc 3\n  d\t=\t4\ne\n"
    assert parsed(text) == [("a", "1", 5), ("b", "2", 6), ("c", "3", 7), ("d", "4", 8), ("e", "", 9)]


def test_value_keeps_its_separators_and_trailing_spaces():
    # Only the first separator ends the key; the value keeps '=' and ':' and its trailing blanks.
    assert parsed("url=http://h:1/x?a=b  \n") == [("url", "http://h:1/x?a=b  ", 1)]


def test_continuation_lines_join_and_drop_leading_blanks():
    text = "listeners=PLAINTEXT://:9092,\\\n    CONTROLLER://:9093\nnext=1\n"
    assert parsed(text) == [("listeners", "PLAINTEXT://:9092,CONTROLLER://:9093", 1), ("next", "1", 3)]


def test_an_even_number_of_backslashes_does_not_continue():
    assert parsed("path=C:\\\\\nnext=1\n") == [("path", "C:\\", 1), ("next", "1", 2)]


def test_a_continuation_line_starting_with_a_hash_is_not_a_comment():
    assert parsed("a=x\\\n  #y\n") == [("a", "x#y", 1)]


def test_escapes_in_keys_and_values():
    text = "key\\ with\\=sep=tab\\there\\n\\u00e9\\q\n"
    assert parsed(text) == [("key with=sep", "tab\there\né" + "q", 1)]


def test_crlf_and_cr_line_ends():
    assert parsed("a=1\r\nb=2\rc=3") == [("a", "1", 1), ("b", "2", 2), ("c", "3", 3)]


def test_a_malformed_unicode_escape_names_its_line():
    with pytest.raises(ValueError, match=r"line 2: malformed \\uxxxx escape"):
        parse_properties("a=1\nb=\\u12g4\n")


def test_entries_are_plain_records():
    assert parse_properties("x=y") == [Entry("x", "y", 1)]


# -- the mapping --------------------------------------------------------------------------------

VOTERS = "1@127.0.0.1:9093,2@127.0.0.1:9103,3@127.0.0.1:9113"
BASE = f"""process.roles=broker,controller
node.id=1
controller.quorum.voters={VOTERS}
listeners=FRESHET://127.0.0.1:9092,PLAINTEXT://127.0.0.1:9095,CONTROLLER://127.0.0.1:9093
log.dirs=/tmp/freshet-properties-test
"""


def write(tmp_path, text: str, name: str = "server.properties") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def load(tmp_path, extra: str = "", flags=None, sets=(), base: str = BASE, name: str = "server.properties"):
    return load_node_config(flags or {}, list(sets), write(tmp_path, base + extra, name), environ={})


def refused(tmp_path, extra: str, base: str = BASE) -> str:
    with pytest.raises(NodeConfigError) as raised:
        load(tmp_path, extra, base=base)
    return str(raised.value)


def test_identity_roles_listeners_voters_and_log_dir(tmp_path):
    config = load(tmp_path, "advertised.listeners=FRESHET://node-1:9092,PLAINTEXT://kafka-1:9095\nbroker.rack=r1\n")
    assert config.node_id == 1
    assert config.roles == frozenset({"broker", "controller"})
    assert config.listen == HostPort("127.0.0.1", 9092)
    assert config.advertised == HostPort("node-1", 9092)
    assert config.kafka_listen == HostPort("127.0.0.1", 9095)
    assert config.kafka_advertised == HostPort("kafka-1", 9095)
    assert config.raft_listen == HostPort("127.0.0.1", 9093)
    assert config.controller_quorum == {1: HostPort("127.0.0.1", 9093), 2: HostPort("127.0.0.1", 9103), 3: HostPort("127.0.0.1", 9113)}
    assert config.data_dir == "/tmp/freshet-properties-test"
    assert config.rack == "r1"
    assert config.security_protocol == "PLAINTEXT"
    assert config.config_warnings == ()


def test_broker_id_is_node_id_and_both_must_agree(tmp_path):
    base = BASE.replace("node.id=1\n", "broker.id=1\n")
    assert load(tmp_path, base=base).node_id == 1
    message = refused(tmp_path, "broker.id=2\n")
    assert "broker.id (in" in message and "line 6" in message and "disagrees with node.id = '1' (line 2)" in message


def test_broker_keys_keep_their_names(tmp_path):
    config = load(
        tmp_path,
        "num.partitions=6\ndefault.replication.factor=3\nauto.create.topics.enable=true\n"
        "auto.leader.rebalance.enable=false\nleader.imbalance.per.broker.percentage=20\n"
        "leader.imbalance.check.interval.seconds=60\noffsets.topic.num.partitions=5\n"
        "offsets.topic.replication.factor=1\ngroup.initial.rebalance.delay.ms=0\n"
        "log.retention.check.interval.ms=2000\nreplica.lag.time.max.ms=10000\n",
    )
    broker = config.static_broker_config
    assert (broker.num_partitions, broker.default_replication_factor) == (6, 3)
    assert (broker.auto_create_topics_enable, broker.auto_leader_rebalance_enable) == (True, False)
    assert (broker.leader_imbalance_per_broker_percentage, broker.leader_imbalance_check_interval_seconds) == (20, 60)
    assert (broker.offsets_topic_num_partitions, broker.offsets_topic_replication_factor) == (5, 1)
    assert broker.group_initial_rebalance_delay_ms == 0
    assert broker.log_retention_check_interval_ms == 2000
    assert broker.replica_lag_time_max_ms == 10000


def test_topic_defaults_become_cluster_defaults(tmp_path):
    config = load(
        tmp_path,
        "min.insync.replicas=2\nunclean.leader.election.enable=true\nlog.retention.bytes=1073741824\n"
        "log.segment.bytes=104857600\ncompression.type=zstd\nmessage.max.bytes=2000000\n"
        "log.cleanup.policy=compact\nlog.roll.hours=24\nlog.flush.interval.messages=1000\n",
    )
    assert config.topic_defaults == {
        "min.insync.replicas": "2",
        "unclean.leader.election.enable": "true",
        "retention.bytes": "1073741824",
        "segment.bytes": "104857600",
        "compression.type": "zstd",
        "max.message.bytes": "2000000",
        "cleanup.policy": "compact",
        "segment.ms": str(24 * 3_600_000),
        "flush.messages": "1000",
    }
    # Topic keys are not broker keys: nothing leaks into the static broker values.
    assert "min.insync.replicas" not in config.broker_configs


@pytest.mark.parametrize(
    ("lines", "retention_ms"),
    [
        ("log.retention.hours=168\n", 168 * 3_600_000),
        ("log.retention.hours=168\nlog.retention.minutes=30\n", 30 * 60_000),
        ("log.retention.hours=168\nlog.retention.minutes=30\nlog.retention.ms=1234\n", 1234),
        ("log.retention.ms=1234\nlog.retention.hours=1\n", 1234),
        ("log.retention.hours=-1\n", -1),
        ("log.retention.minutes=-5\n", -1),
    ],
)
def test_retention_time_ms_beats_minutes_beats_hours(tmp_path, lines, retention_ms):
    assert load(tmp_path, lines).topic_defaults == {"retention.ms": str(retention_ms)}


def test_a_bad_topic_default_names_kafkas_key_and_line(tmp_path):
    assert "Kafka's log.segment.bytes" in refused(tmp_path, "log.segment.bytes=10\n")
    assert "line 6" in refused(tmp_path, "log.segment.bytes=10\n")
    assert "log.retention.hours (in" in refused(tmp_path, "log.retention.hours=a week\n")


def test_log_cleaner_enable(tmp_path):
    assert load(tmp_path).log_cleaner_enable is True
    assert load(tmp_path, "log.cleaner.enable=false\n").log_cleaner_enable is False


def test_log_open_files_max(tmp_path):
    assert load(tmp_path).log_open_files_max == 0
    assert load(tmp_path, "log.open.files.max=5000\n").log_open_files_max == 5000
    assert "log.open.files.max" in refused(tmp_path, "log.open.files.max=-1\n")


def test_log_dir_and_log_dirs(tmp_path):
    base = BASE.replace("log.dirs=/tmp/freshet-properties-test\n", "log.dir=/tmp/one\n")
    assert load(tmp_path, base=base).data_dir == "/tmp/one"
    assert load(tmp_path, "log.dirs=/tmp/two\n", base=base).data_dir == "/tmp/two"   # log.dirs wins, as Kafka


def test_more_than_one_log_directory_is_refused_naming_them(tmp_path):
    message = refused(tmp_path, "log.dirs=/data/a, /data/b\n")
    assert message.startswith("log.dirs (in ")
    assert "line 6" in message
    assert "give exactly one (got 2: /data/a, /data/b)" in message


def test_flags_and_set_override_the_file(tmp_path):
    config = load(tmp_path, "num.partitions=6\nbroker.rack=file\n", flags={"node.id": 1, "rack": "flag"}, sets=["num.partitions=9"])
    assert config.rack == "flag"
    assert config.static_broker_config.num_partitions == 9
    other = load(tmp_path, flags={"data.dir": "/tmp/flag-dir", "listen": "127.0.0.1:9192", "controller.listeners": "1@127.0.0.1:9192,2@127.0.0.1:9102,3@127.0.0.1:9112"})
    assert other.data_dir == "/tmp/flag-dir"
    assert other.listen == HostPort("127.0.0.1", 9192)


def test_freshet_keys_pass_through_in_a_properties_file(tmp_path):
    config = load(tmp_path, "http.listen=127.0.0.1:9099\nbroker.session.timeout.ms=7000\n")
    assert config.http_listen == HostPort("127.0.0.1", 9099)
    assert config.static_broker_config.broker_session_timeout_ms == 7000


def test_ignored_kafka_keys_warn_once_each(tmp_path):
    config = load(
        tmp_path,
        "num.network.threads=3\nnum.io.threads=8\nsocket.receive.buffer.bytes=102400\n"
        "num.recovery.threads.per.data.dir=1\ntransaction.state.log.min.isr=1\nzookeeper.connect=zk:2181\n"
        "log.flush.scheduler.interval.ms=1000\n",
    )
    assert len(config.config_warnings) == 7
    assert config.config_warnings[0].startswith("ignoring Kafka setting num.network.threads (")
    assert "line 6)" in config.config_warnings[0]
    assert all(warning.startswith("ignoring Kafka setting ") for warning in config.config_warnings)


def test_socket_send_buffer_bytes_is_honoured_as_kafka_s_broker_key(tmp_path):
    config = load(tmp_path, "socket.send.buffer.bytes=1048576\nsocket.receive.buffer.bytes=102400\n")
    assert config.static_broker_config.socket_send_buffer_bytes == 1048576
    assert [warning.split(" (")[0] for warning in config.config_warnings] == ["ignoring Kafka setting socket.receive.buffer.bytes"]
    assert ignored_reason("socket.send.buffer.bytes") is None


def test_every_ignored_key_has_a_reason():
    assert all(reason for reason in KAFKA_IGNORED.values())
    assert ignored_reason("socket.request.max.bytes") is not None
    assert ignored_reason("log.flush.interval.messages") is not None   # the prefix; the mapping sees it first
    assert ignored_reason("no.such.key") is None


def test_an_unknown_key_names_the_key_file_and_line(tmp_path):
    message = refused(tmp_path, "no.such.setting=1\n")
    assert message.startswith("no.such.setting (in ")
    assert "server.properties line 6" in message
    assert message.endswith("unknown configuration key")


def test_a_dynamic_quorum_is_refused(tmp_path):
    assert "dynamic quorums are not supported" in refused(tmp_path, "controller.quorum.bootstrap.servers=h:9093\n")


# -- listeners and security ---------------------------------------------------------------------


def listeners_base(listeners: str, extra: str = "") -> str:
    lines = [line for line in BASE.splitlines() if not line.startswith("listeners=")]
    return "\n".join(lines) + f"\nlisteners={listeners}\n{extra}"


def test_an_empty_host_binds_every_interface_and_needs_advertised(tmp_path):
    base = listeners_base("FRESHET://:9092,PLAINTEXT://:9095,CONTROLLER://127.0.0.1:9093")
    assert "--advertised" in refused(tmp_path, "", base=base)
    config = load(tmp_path, "advertised.listeners=FRESHET://127.0.0.1:9092,PLAINTEXT://127.0.0.1:9095\n", base=base)
    assert config.listen == HostPort("0.0.0.0", 9092)
    assert config.kafka_listen == HostPort("0.0.0.0", 9095)
    assert config.kafka_advertised == HostPort("127.0.0.1", 9095)


def test_named_listeners_take_their_protocol_from_the_map(tmp_path):
    base = listeners_base(
        "FRESHET://127.0.0.1:9092,CLIENT://127.0.0.1:9095,RAFT://127.0.0.1:9093",
        "controller.listener.names=RAFT\nlistener.security.protocol.map=CLIENT:PLAINTEXT,RAFT:PLAINTEXT\n",
    )
    config = load(tmp_path, base=base)
    assert config.kafka_listen == HostPort("127.0.0.1", 9095)
    assert config.raft_listen == HostPort("127.0.0.1", 9093)


@pytest.mark.parametrize(
    ("listeners", "extra", "fragment"),
    [
        ("FRESHET://127.0.0.1:9092,CLIENT://127.0.0.1:9095,CONTROLLER://127.0.0.1:9093", "", "listener CLIENT has no security protocol"),
        ("FRESHET://127.0.0.1:9092,SASL_PLAINTEXT://127.0.0.1:9095,CONTROLLER://127.0.0.1:9093", "", "only over TLS"),
        ("FRESHET://127.0.0.1:9092,PLAINTEXT://127.0.0.1:9095,SSL://127.0.0.1:9096,CONTROLLER://127.0.0.1:9093", "", "one Kafka listener, not PLAINTEXT, SSL"),
        ("FRESHET://127.0.0.1:9092,SSL://127.0.0.1:9095,CONTROLLER://127.0.0.1:9093", "listener.security.protocol.map=FRESHET:PLAINTEXT\n", "one security protocol on every port"),
        ("FRESHET://127.0.0.1:9092,localhost:9095", "", "'localhost:9095' is not NAME://HOST:PORT"),
        ("FRESHET://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093", "advertised.listeners=PLAINTEXT://h:9095\n", "listener PLAINTEXT is not in listeners"),
    ],
)
def test_listener_mistakes_are_refused(tmp_path, listeners, extra, fragment):
    message = refused(tmp_path, "", base=listeners_base(listeners, extra))
    assert fragment in message, message
    assert " line " in message


def test_without_a_freshet_listener_the_error_says_how_to_add_one(tmp_path):
    message = refused(tmp_path, "", base=listeners_base("PLAINTEXT://127.0.0.1:9095,CONTROLLER://127.0.0.1:9093"))
    assert message.startswith("--listen: is required")
    assert "FRESHET://HOST:PORT" in message


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        ("ssl.keystore.location=/etc/kafka/broker.jks\n", "a JKS keystore is not supported: convert it to PEM"),
        ("ssl.keystore.type=PKCS12\nssl.keystore.location=/k.p12\n", "a PKCS12 keystore is not supported"),
        ("ssl.truststore.location=/etc/kafka/trust.jks\n", "a JKS truststore is not supported"),
        ("ssl.keystore.key=-----BEGIN PRIVATE KEY-----\n", "PEM given inline is not supported"),
        ("ssl.key.password=secret\n", "encrypted private keys are not supported"),
    ],
)
def test_key_stores_freshet_cannot_read_are_refused(tmp_path, extra, fragment):
    assert fragment in refused(tmp_path, extra)


def test_pem_key_stores_map_to_freshets_tls_files(tmp_path):
    from freshet.server.properties import map_kafka_properties

    text = "ssl.keystore.type=PEM\nssl.keystore.location=/etc/tls/node.pem\nssl.truststore.type=PEM\nssl.truststore.location=/etc/tls/ca.pem\nssl.client.auth=required\n"
    mapped = map_kafka_properties(parse_properties(text), "p")
    values = {key: value for key, value, _origin in mapped.values}
    assert values == {
        "ssl.certificate.location": "/etc/tls/node.pem",
        "ssl.key.location": "/etc/tls/node.pem",
        "ssl.ca.location": "/etc/tls/ca.pem",
        "ssl.client.auth": "required",
    }


def test_a_sasl_ssl_listener_turns_security_on(tmp_path):
    base = listeners_base("FRESHET://127.0.0.1:9092,SASL_SSL://127.0.0.1:9095,CONTROLLER://127.0.0.1:9093")
    message = refused(tmp_path, "", base=base)                  # no TLS files: security.protocol is SASL_SSL
    assert message.startswith("security.protocol (in ") and "SASL_SSL needs ssl.certificate.location" in message


# -- file format detection ----------------------------------------------------------------------


def test_properties_content_under_another_extension_is_detected(tmp_path):
    assert load(tmp_path, "log.retention.hours 1\n", name="server.conf").topic_defaults == {"retention.ms": "3600000"}


def test_toml_still_works_and_a_toml_extension_is_not_sniffed(tmp_path):
    toml = f'node.id = 1\ndata.dir = "/tmp/t"\nlisten = "127.0.0.1:9092"\ncontroller.quorum = "{VOTERS}"\nnum.partitions = 4\n'
    config = load_node_config({}, [], write(tmp_path, toml, "node.toml"), environ={})
    assert config.static_broker_config.num_partitions == 4
    assert load_node_config({}, [], write(tmp_path, toml, "node.cfg"), environ={}).data_dir == "/tmp/t"
    with pytest.raises(NodeConfigError, match="is not valid TOML"):
        load_node_config({}, [], write(tmp_path, "a = b = c\n", "bad.toml"), environ={})


# -- the command line ---------------------------------------------------------------------------


def freshet(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "freshet.cli.main", *args], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        ("bogus.key=1\n", "bogus.key (in "),
        ("log.dirs=/a,/b\n", "give exactly one (got 2: /a, /b)"),
    ],
)
def test_cli_exits_2_with_one_line(tmp_path, extra, fragment):
    result = freshet("server", "start", "--config", write(tmp_path, BASE + extra))
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("freshet server start: ")
    assert fragment in lines[0]
    assert "Traceback" not in result.stderr


def test_the_readme_table_names_every_mapped_kafka_key():
    """The README's "Kafka's server.properties" section lists every key the mapping tables know."""
    import pathlib

    from freshet.server.properties import KAFKA_RENAMED, KAFKA_TIME_KEYS, KAFKA_TOPIC_DEFAULTS

    readme = (pathlib.Path(__file__).resolve().parents[3] / "README.md").read_text()
    section = readme.split("### Kafka's server.properties", 1)[1].split("\n## ", 1)[0]
    keys = set(KAFKA_RENAMED) | set(KAFKA_TOPIC_DEFAULTS) | set(KAFKA_TOPIC_DEFAULTS.values())
    keys |= {kafka_key for spellings in KAFKA_TIME_KEYS.values() for kafka_key, _unit in spellings}
    missing = sorted(key for key in keys if f"`{key}`" not in section)
    assert missing == []


def test_a_pem_key_store_holding_key_and_chain_starts_an_ssl_node(tmp_path):
    """Kafka's PEM key store is one file with the private key and the certificate chain; Freshet
    reads it as both its certificate and its key file (the TLS check loads both from it)."""
    from freshet.server.security import certificates

    ca = certificates.create_ca()
    node = certificates.issue(ca, "freshet-node", ("localhost", "127.0.0.1"))
    store, trust = tmp_path / "node-store.pem", tmp_path / "ca.pem"
    certificates.write_private(str(store), node.key_pem + node.certificate_pem)
    certificates.write_private(str(trust), ca.certificate_pem)
    base = listeners_base(
        "FRESHET://127.0.0.1:9092,SSL://127.0.0.1:9095,CONTROLLER://127.0.0.1:9093",
        f"ssl.keystore.type=PEM\nssl.keystore.location={store}\nssl.truststore.type=PEM\nssl.truststore.location={trust}\n",
    )
    config = load(tmp_path, base=base)
    assert config.security_protocol == "SSL"
    assert config.tls is not None
    assert (config.tls.certificate_location, config.tls.key_location, config.tls.ca_location) == (str(store), str(store), str(trust))


def test_without_a_kafka_listener_the_freshet_listener_gives_the_protocol(tmp_path):
    base = listeners_base("FRESHET://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093", "listener.security.protocol.map=FRESHET:SSL\n")
    assert "SSL needs ssl.certificate.location" in refused(tmp_path, "", base=base)
    plain = load(tmp_path, base=listeners_base("FRESHET://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093"))
    assert (plain.security_protocol, plain.kafka_listen) == ("PLAINTEXT", None)


def test_tiered_storage_and_share_group_keys_are_ignored(tmp_path):
    config = load(tmp_path, "share.coordinator.state.topic.replication.factor=1\nremote.log.storage.system.enable=false\n")
    assert [warning.split(" (")[0] for warning in config.config_warnings] == [
        "ignoring Kafka setting share.coordinator.state.topic.replication.factor",
        "ignoring Kafka setting remote.log.storage.system.enable",
    ]
