"""NodeConfig from flags, --set, a TOML file, the environment and defaults (server/config.py).

Goal: precedence flags > --set > file > defaults (the secret also reads FRESHET_CLUSTER_SECRET
between --set and the file), every bad key or value is refused naming the key, and the
relationships between settings are enforced. Method: load_node_config with explicit inputs (an
empty environment unless the test sets one).
"""

from __future__ import annotations

import pytest
from freshet.server.config import SECRET_ENV, HostPort, derived_secret, load_node_config, parse_host_port
from freshet.server.errors import NodeConfigError

QUORUM = "1@127.0.0.1:9093,2@127.0.0.1:9103,3@127.0.0.1:9113"


def flags(**overrides):
    values = {"node.id": 1, "data.dir": "/tmp/freshet-test-node", "listen": "127.0.0.1:9092", "controller.quorum": QUORUM}
    values.update(overrides)
    return values


def load(flag_values=None, sets=(), config_file=None, environ=None):
    return load_node_config(flags() if flag_values is None else flag_values, list(sets), config_file, environ=environ or {})


def refused(fragment_key: str, **kwargs) -> str:
    with pytest.raises(NodeConfigError) as raised:
        load(**kwargs)
    assert fragment_key in str(raised.value), str(raised.value)
    return str(raised.value)


def test_defaults_and_the_controller_listener_convention():
    config = load()
    assert config.roles == frozenset({"broker", "controller"})
    assert config.raft_listen == HostPort("127.0.0.1", 9093)
    assert config.http_listen == HostPort("127.0.0.1", 9094)
    assert config.advertised == config.listen
    assert config.controller_listeners == {1: HostPort("127.0.0.1", 9092), 2: HostPort("127.0.0.1", 9102), 3: HostPort("127.0.0.1", 9112)}
    assert config.static_broker_config.broker_session_timeout_ms == 6000
    assert (config.reconnect_grace_ms, config.request_timeout_ms, config.metadata_fsync) == (1000, 30000, True)


def test_precedence_is_flags_then_set_then_file_then_defaults(tmp_path):
    path = tmp_path / "node.toml"
    path.write_text(
        'rack = "file-rack"\n'
        "[broker.session]\ntimeout.ms = 4000\n"
        "[broker.heartbeat]\ninterval.ms = 300\n"
        '[log]\nlevel = "debug"\n'
    )
    config = load(flags(rack="flag-rack"), sets=["rack=set-rack", "broker.session.timeout.ms=5000"], config_file=str(path))
    assert config.rack == "flag-rack"
    assert config.static_broker_config.broker_session_timeout_ms == 5000
    assert config.static_broker_config.broker_heartbeat_interval_ms == 300
    assert config.log_level == "DEBUG"
    assert load(sets=["rack=set-rack"], config_file=str(path)).rack == "set-rack"
    assert load(config_file=str(path)).rack == "file-rack"


def test_node_keys_may_all_come_from_the_file(tmp_path):
    path = tmp_path / "node.toml"
    path.write_text(
        'node.id = 2\ndata.dir = "/tmp/x"\nlisten = "127.0.0.1:9102"\nroles = ["broker", "controller"]\n'
        f'controller.quorum = "{QUORUM}"\n'
    )
    config = load({}, config_file=str(path))
    assert (config.node_id, config.listen.port, config.raft_listen.port) == (2, 9102, 9103)


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        (dict(sets=["no.such.key=1"]), "--set no.such.key: unknown configuration key"),
        (dict(sets=["retention.ms=5"]), "--set retention.ms: a topic configuration"),
        (dict(sets=["lag.alert.seconds=5"]), "--set lag.alert.seconds: a consumer group configuration"),
        (dict(sets=["group.lag.refresh.interval.ms=50"]), "--set group.lag.refresh.interval.ms: must be >= 100"),
        (dict(sets=["broker.session.timeout.ms=soon"]), "--set broker.session.timeout.ms: must be an integer"),
        (dict(sets=["novalue"]), "--set: expected key=value"),
        (dict(flag_values=flags(listen="nowhere")), "--listen"),
        (dict(flag_values=flags(listen="127.0.0.1:70000")), "--listen"),
        (dict(flag_values=flags(**{"controller.quorum": "1@127.0.0.1:9093,2@127.0.0.1:9103"})), "odd number"),
        (dict(flag_values=flags(**{"controller.quorum": "x@y"})), "--controller-quorum"),
        (dict(flag_values=flags(roles="broker,chef")), "--roles"),
        (dict(flag_values=flags(**{"node.id": 7})), "node.id: node 7 runs the controller role but is not in controller.quorum"),
        (dict(flag_values=flags(roles="broker")), "needs an id of its own"),
        (dict(flag_values=flags(**{"data.dir": None})), "--data-dir: is required"),
        (dict(sets=["broker.heartbeat.interval.ms=6000"]), "must be less than broker.session.timeout.ms"),
        (dict(sets=["broker.reconnect.grace.ms=7000"]), "broker.reconnect.grace.ms"),
        (dict(flag_values=flags(listen="127.0.0.1:9000")), "controller.listeners: controller 1 is reached at 127.0.0.1:9092"),
        (dict(flag_values=flags(**{"http.listen": "127.0.0.1:9093"})), "is also"),
        (dict(flag_values=flags(listen="0.0.0.0:9092")), "--advertised: is required"),
    ],
)
def test_bad_settings_are_refused_naming_the_key(kwargs, key):
    refused(key, **kwargs)


def test_a_bad_config_file_is_refused_naming_it(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("this is = not = toml")
    refused(f"{path} is not valid TOML", config_file=str(path))
    refused("cannot read", config_file=str(tmp_path / "missing.toml"))
    path.write_text("[broker]\nunknown = 1\n")
    message = refused("broker.unknown (in config file", config_file=str(path))
    assert "unknown configuration key" in message


def test_cluster_secret_sources_and_their_order(tmp_path):
    secret_file = tmp_path / "secret"
    secret_file.write_text("from-file\n")
    config_file = tmp_path / "node.toml"
    config_file.write_text('cluster.secret = "from-config"\n')
    env = {SECRET_ENV: "from-env"}
    assert load(flags(**{"cluster.secret.file": str(secret_file)}), sets=["cluster.secret=from-set"], environ=env).cluster_secret == "from-file"
    assert load(sets=["cluster.secret=from-set"], environ=env, config_file=str(config_file)).cluster_secret == "from-set"
    assert load(environ=env, config_file=str(config_file)).cluster_secret == "from-env"
    with_file = load(config_file=str(config_file))
    assert (with_file.cluster_secret, with_file.cluster_secret_source) == ("from-config", "config file")
    derived = load()
    assert derived.cluster_secret_source == "derived" and derived.cluster_secret == derived_secret(
        "1@127.0.0.1:9093,2@127.0.0.1:9103,3@127.0.0.1:9113"
    )
    empty = tmp_path / "empty"
    empty.write_text("\n")
    refused("is empty", flag_values=flags(**{"cluster.secret.file": str(empty)}))


def test_no_secret_on_a_non_loopback_raft_address_refuses_to_start():
    quorum = "1@10.1.2.3:9093,2@10.1.2.4:9093,3@10.1.2.5:9093"
    message = refused(
        "cluster.secret: required when the Raft listener (10.1.2.3:9093) is not a loopback address",
        flag_values=flags(listen="10.1.2.3:9092", **{"controller.quorum": quorum}),
    )
    assert SECRET_ENV in message
    config = load(flags(listen="10.1.2.3:9092", **{"controller.quorum": quorum}), environ={SECRET_ENV: "s3cret"})
    assert config.cluster_secret == "s3cret"


def test_broker_only_nodes_need_no_secret_and_no_raft_listener():
    config = load(flags(roles="broker", **{"node.id": 4, "listen": "127.0.0.1:9122"}))
    assert config.cluster_secret is None and config.raft_listen is None and not config.is_controller


def test_explicit_controller_listeners_override_the_convention():
    config = load(flags(**{"controller.listeners": "1@127.0.0.1:9092,2@h2:7000,3@h3:7000"}))
    assert config.controller_listeners[2] == HostPort("h2", 7000)
    refused("no gRPC endpoint for controller 3", flag_values=flags(**{"controller.listeners": "1@127.0.0.1:9092,2@h2:7000"}))


def test_host_port_parsing():
    assert parse_host_port("[::1]:9092") == HostPort("::1", 9092)
    assert str(HostPort("::1", 9092)) == "[::1]:9092"
    assert HostPort("localhost", 1).is_loopback and HostPort("127.0.0.2", 1).is_loopback
    assert not HostPort("10.0.0.1", 1).is_loopback
    for bad in ("9092", ":9092", "::1:9092", "host:0", "host:x"):
        with pytest.raises(ValueError):
            parse_host_port(bad)
