"""`--from-env`: a StatefulSet pod's environment decides the node's identity and quorum."""

from __future__ import annotations

import pathlib
import re

import pytest
from freshet.server.config import load_node_config
from freshet.server.errors import NodeConfigError
from freshet.server.tools import pod_env
from freshet.server.tools.pod_env import ENV_VARS, parse_host_aliases, pod_identity

COMBINED = {
    "POD_NAME": "freshet-2",
    "POD_NAMESPACE": "streaming",
    "FRESHET_SERVICE": "freshet-headless",
    "FRESHET_QUORUM_REPLICAS": "3",
    "FRESHET_CONFIG": "/etc/freshet/server.toml",
    "FRESHET_CLUSTER_SECRET": "s3cret",
}
BROKER = {
    "POD_NAME": "freshet-broker-4",
    "POD_NAMESPACE": "streaming",
    "FRESHET_ROLES": "broker",
    "FRESHET_SERVICE": "freshet-broker-headless",
    "FRESHET_QUORUM_STATEFULSET": "freshet",
    "FRESHET_QUORUM_SERVICE": "freshet-headless",
    "FRESHET_QUORUM_REPLICAS": "3",
    "FRESHET_NODE_ID_OFFSET": "100",
}


def test_a_combined_pod_is_node_ordinal_plus_one_with_the_voters_on_stable_dns_names():
    identity = pod_identity(COMBINED)
    assert identity.flags == {
        "node.id": "3",
        "data.dir": "/var/lib/freshet",
        "listen": "0.0.0.0:9092",
        "advertised": "freshet-2.freshet-headless.streaming.svc:9092",
        "http.listen": "0.0.0.0:9094",
        "raft.listen": "0.0.0.0:9093",
        "roles": "broker,controller",
        "controller.quorum": "1@freshet-0.freshet-headless.streaming.svc:9093,"
        "2@freshet-1.freshet-headless.streaming.svc:9093,3@freshet-2.freshet-headless.streaming.svc:9093",
    }
    assert identity.config_file == "/etc/freshet/server.toml"


def test_the_derived_flags_make_a_valid_node_config_with_the_secret_from_the_environment():
    config = load_node_config(pod_identity(COMBINED).flags, environ=COMBINED)
    assert config.node_id == 3 and config.is_controller and config.is_broker
    assert config.cluster_secret == "s3cret" and config.cluster_secret_source == "env"
    # The controller endpoint convention (Raft port - 1) lands on the gRPC port every pod listens on.
    assert str(config.controller_listeners[1]) == "freshet-0.freshet-headless.streaming.svc:9092"


def test_a_voter_refuses_to_start_without_a_secret_off_loopback():
    environ = {key: value for key, value in COMBINED.items() if key != "FRESHET_CLUSTER_SECRET"}
    with pytest.raises(NodeConfigError, match="cluster.secret: required"):
        load_node_config(pod_identity(environ).flags, environ=environ)


def test_a_broker_only_pod_takes_its_own_id_range_and_the_voters_of_the_other_statefulset():
    identity = pod_identity(BROKER)
    assert identity.flags["node.id"] == "104"
    assert identity.flags["roles"] == "broker"
    assert "raft.listen" not in identity.flags
    assert identity.flags["advertised"] == "freshet-broker-4.freshet-broker-headless.streaming.svc:9092"
    assert identity.flags["controller.quorum"].startswith("1@freshet-0.freshet-headless.streaming.svc:9093,")
    config = load_node_config(identity.flags, environ=BROKER)
    assert config.cluster_secret is None and not config.is_controller


def test_without_a_namespace_names_are_relative_and_a_cluster_domain_is_appended_when_given():
    bare = {key: value for key, value in COMBINED.items() if key != "POD_NAMESPACE"}
    assert pod_identity(bare).flags["advertised"] == "freshet-2.freshet-headless:9092"
    with_domain = {**COMBINED, "FRESHET_CLUSTER_DOMAIN": "cluster.local"}
    assert pod_identity(with_domain).flags["advertised"] == "freshet-2.freshet-headless.streaming.svc.cluster.local:9092"


def test_host_aliases_replace_derived_names_and_a_listed_pod_binds_its_own_address():
    aliases = ",".join(f"freshet-{i}.freshet-headless.streaming.svc=127.0.0.{11 + i}" for i in range(3))
    identity = pod_identity({**COMBINED, "FRESHET_HOST_ALIASES": aliases, "FRESHET_PORT": "19092"})
    assert identity.flags["listen"] == "127.0.0.13:19092"
    assert identity.flags["advertised"] == "127.0.0.13:19092"
    assert identity.flags["raft.listen"] == "127.0.0.13:19093"
    assert identity.flags["http.listen"] == "127.0.0.13:19094"
    assert identity.flags["controller.quorum"] == "1@127.0.0.11:19093,2@127.0.0.12:19093,3@127.0.0.13:19093"


def test_a_kafka_port_gives_a_kafka_listener_advertising_the_pods_stable_name():
    identity = pod_identity({**COMBINED, "FRESHET_KAFKA_PORT": "9095"})
    assert identity.flags["kafka.listen"] == "0.0.0.0:9095"
    assert identity.flags["kafka.advertised"] == "freshet-2.freshet-headless.streaming.svc:9095"
    environ = {**COMBINED, "FRESHET_KAFKA_PORT": "9095"}
    config = load_node_config(identity.flags, environ=environ)
    assert str(config.kafka_listen) == "0.0.0.0:9095"
    assert config.listeners == (("kafka", "freshet-2.freshet-headless.streaming.svc", 9095),)
    with_domain = {**environ, "FRESHET_CLUSTER_DOMAIN": "cluster.local"}
    assert pod_identity(with_domain).flags["kafka.advertised"] == (
        "freshet-2.freshet-headless.streaming.svc.cluster.local:9095"
    )


@pytest.mark.parametrize("value", [None, "", "  "])
def test_no_kafka_port_means_no_kafka_listener_as_before(value):
    environ = dict(COMBINED) if value is None else {**COMBINED, "FRESHET_KAFKA_PORT": value}
    identity = pod_identity(environ)
    assert "kafka.listen" not in identity.flags and "kafka.advertised" not in identity.flags
    assert identity.flags == pod_identity(COMBINED).flags
    assert load_node_config(identity.flags, environ=environ).kafka_listen is None


def test_a_broker_only_pod_gets_the_kafka_listener_and_a_controller_only_pod_ignores_the_port():
    broker = pod_identity({**BROKER, "FRESHET_KAFKA_PORT": "9095"})
    assert broker.flags["kafka.advertised"] == "freshet-broker-4.freshet-broker-headless.streaming.svc:9095"
    # A broker-only pod binds no Raft port, so the Kafka port may take gRPC + 1.
    assert pod_identity({**BROKER, "FRESHET_KAFKA_PORT": "9093"}).flags["kafka.listen"] == "0.0.0.0:9093"
    controller = {**COMBINED, "FRESHET_ROLES": "controller", "FRESHET_KAFKA_PORT": "9095"}
    identity = pod_identity(controller)
    assert "kafka.listen" not in identity.flags and "kafka.advertised" not in identity.flags
    assert load_node_config(identity.flags, environ=controller).kafka_listen is None


def test_host_aliases_also_replace_the_kafka_advertised_name_and_the_kafka_listener_binds_the_alias():
    aliases = ",".join(f"freshet-{i}.freshet-headless.streaming.svc=127.0.0.{11 + i}" for i in range(3))
    identity = pod_identity(
        {**COMBINED, "FRESHET_HOST_ALIASES": aliases, "FRESHET_PORT": "19092", "FRESHET_KAFKA_PORT": "19095"}
    )
    assert identity.flags["kafka.listen"] == "127.0.0.13:19095"
    assert identity.flags["kafka.advertised"] == "127.0.0.13:19095"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"POD_NAME": "freshet"}, "POD_NAME: 'freshet' is not a StatefulSet pod name"),
        ({"FRESHET_SERVICE": ""}, "FRESHET_SERVICE: is required"),
        ({"FRESHET_QUORUM_REPLICAS": ""}, "FRESHET_QUORUM_REPLICAS: is required"),
        ({"FRESHET_QUORUM_REPLICAS": "4"}, "needs an odd number"),
        ({"FRESHET_QUORUM_REPLICAS": "x"}, "'x' is not an integer"),
        ({"FRESHET_PORT": "65534"}, "would not be a port"),
        ({"POD_NAME": "freshet-3"}, "FRESHET_ROLES: pod freshet-3 has the controller role but the voters are freshet-0..2"),
        ({"FRESHET_HOST_ALIASES": "freshet-0=not-an-ip"}, "is not NAME=IP"),
        ({"FRESHET_KAFKA_PORT": "x"}, "FRESHET_KAFKA_PORT: 'x' is not an integer"),
        ({"FRESHET_KAFKA_PORT": "0"}, "FRESHET_KAFKA_PORT: '0' is not an integer >= 1"),
        ({"FRESHET_KAFKA_PORT": "70000"}, "FRESHET_KAFKA_PORT: 70000 is not a port"),
        ({"FRESHET_KAFKA_PORT": "9092"}, r"FRESHET_KAFKA_PORT: 9092 is already the gRPC \(FRESHET_PORT\) port"),
        ({"FRESHET_KAFKA_PORT": "9093"}, r"FRESHET_KAFKA_PORT: 9093 is already the Raft"),
        ({"FRESHET_KAFKA_PORT": "9094"}, r"FRESHET_KAFKA_PORT: 9094 is already the HTTP"),
    ],
)
def test_a_wrong_environment_names_the_variable(change, message):
    with pytest.raises(NodeConfigError, match=message):
        pod_identity({**COMBINED, **change})


def test_the_pod_name_falls_back_to_the_hostname(monkeypatch):
    monkeypatch.setattr("socket.gethostname", lambda: "freshet-1.example")
    environ = {key: value for key, value in COMBINED.items() if key != "POD_NAME"}
    assert pod_identity(environ).flags["node.id"] == "2"


def test_host_aliases_are_name_equals_ip_pairs():
    assert parse_host_aliases(" A.b=127.0.0.1 , c=::1,") == {"a.b": "127.0.0.1", "c": "::1"}


def test_every_variable_read_is_documented_in_the_module_and_in_deploy_readme():
    source = pathlib.Path(pod_env.__file__).read_text()
    read = set(re.findall(r'environ(?:\.get\(|, )"([A-Z_]+)"', source))
    assert {"POD_NAME", "FRESHET_SERVICE", "FRESHET_QUORUM_REPLICAS", "FRESHET_HOST_ALIASES"} <= read
    assert read <= set(ENV_VARS)
    readme = (pathlib.Path(__file__).resolve().parents[4] / "deploy" / "README.md").read_text()
    documented = set(re.findall(r"^\| `([A-Z_]+)` \|", readme, re.M))
    assert documented == set(ENV_VARS)
