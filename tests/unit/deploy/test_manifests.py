"""The Kubernetes manifests render and validate offline, and agree with the image.

Goal: a user who runs `kubectl apply -k deploy/kubernetes/...` gets objects the API server
accepts, wired the way the Dockerfile and the node expect. Method: render the base and every
overlay with `kubectl kustomize` (offline), validate every object against the Kubernetes JSON
schemas of a current release (kubernetes-validate, strict: unknown fields are errors), then check
the wiring: ports, probes, data volume, non-root, secret handling, disruption budget.
"""

from __future__ import annotations

import pathlib
import re
import subprocess
import tomllib

import kubernetes_validate
import pytest
import yaml

REPO = pathlib.Path(__file__).resolve().parents[3]
KUBERNETES = REPO / "deploy" / "kubernetes"
KUSTOMIZATIONS = ["base", "overlays/single-node", "overlays/dedicated-controllers"]
# Ports of the image (deploy/Dockerfile EXPOSE) and of `cluster up`'s layout: gRPC, Raft (+1), HTTP (+2),
# Kafka protocol (+3).
PORTS = {"grpc": 9092, "raft": 9093, "http": 9094, "kafka": 9095}
DATA_DIR = "/var/lib/freshet"


def render(kubectl: str, kustomization: str) -> list[dict]:
    result = subprocess.run(
        [kubectl, "kustomize", str(KUBERNETES / kustomization)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(scope="module", params=KUSTOMIZATIONS)
def rendered(request, kubectl) -> tuple[str, list[dict]]:
    return request.param, render(kubectl, request.param)


def by_kind(docs: list[dict], kind: str) -> list[dict]:
    return [doc for doc in docs if doc["kind"] == kind]


def test_every_object_validates_against_current_kubernetes_schemas(rendered):
    name, docs = rendered
    version = kubernetes_validate.latest_version()
    assert docs, f"{name} rendered nothing"
    for doc in docs:
        kubernetes_validate.validate(doc, version, strict=True)


def test_the_validator_rejects_what_the_api_server_would(rendered):
    """Guards the test above against a validator that accepts anything."""
    _, docs = rendered
    statefulset = by_kind(docs, "StatefulSet")[0]
    broken = yaml.safe_load(yaml.safe_dump(statefulset))
    broken["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["port"] = {"bad": 1}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, kubernetes_validate.latest_version(), strict=True)


def test_statefulsets_run_the_image_as_the_server_expects(rendered):
    name, docs = rendered
    for statefulset in by_kind(docs, "StatefulSet"):
        spec = statefulset["spec"]
        pod = spec["template"]["spec"]
        container = pod["containers"][0]
        where = f"{name}: {statefulset['metadata']['name']}"
        assert spec["podManagementPolicy"] == "Parallel", where
        assert container["args"] == ["--from-env"], where
        ports = {port["name"]: port["containerPort"] for port in container["ports"]}
        assert all(PORTS[port_name] == number for port_name, number in ports.items()), where
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}, where
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}, where
        assert container["startupProbe"]["httpGet"]["path"] == "/healthz", where
        env = {item["name"]: item for item in container["env"]}
        assert env["FRESHET_DATA_DIR"]["value"] == DATA_DIR, where
        mounts = {mount["name"]: mount["mountPath"] for mount in container["volumeMounts"]}
        assert mounts["data"] == DATA_DIR, where
        assert [claim["metadata"]["name"] for claim in spec["volumeClaimTemplates"]] == ["data"], where
        assert pod["securityContext"]["runAsNonRoot"] is True, where
        assert container["securityContext"]["readOnlyRootFilesystem"] is True, where
        assert container["securityContext"]["allowPrivilegeEscalation"] is False, where
        assert "/tmp" in mounts.values(), f"{where}: a read-only root needs a writable /tmp"
        # Controlled shutdown is bounded by the node's shutdown.timeout.ms (20 s by default).
        assert pod["terminationGracePeriodSeconds"] > 20, where
        annotations = spec["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/port"] == str(PORTS["http"]), where
        assert annotations["prometheus.io/path"] == "/metrics", where
        assert "resources" in container and "limits" in container["resources"], where


def test_voters_get_the_cluster_secret_from_a_secret_never_from_the_image(rendered):
    name, docs = rendered
    for statefulset in by_kind(docs, "StatefulSet"):
        env = {item["name"]: item for item in statefulset["spec"]["template"]["spec"]["containers"][0]["env"]}
        roles = env["FRESHET_ROLES"]["value"]
        if "controller" in roles:
            secret = env["FRESHET_CLUSTER_SECRET"]
            assert "value" not in secret, name
            assert secret["valueFrom"]["secretKeyRef"]["name"] == "freshet-cluster-secret", name
    assert not by_kind(docs, "Secret"), f"{name} must not ship a secret value"
    dockerfile = (REPO / "deploy" / "Dockerfile").read_text()
    instructions = [line for line in dockerfile.splitlines() if not line.lstrip().startswith("#")]
    assert not [line for line in instructions if "SECRET" in line.upper()], (
        "the image must not carry a secret"
    )


def test_the_quorum_is_odd_and_reachable_through_a_headless_service(rendered):
    name, docs = rendered
    services = {svc["metadata"]["name"]: svc for svc in by_kind(docs, "Service")}
    for statefulset in by_kind(docs, "StatefulSet"):
        env = {
            item["name"]: item.get("value")
            for item in statefulset["spec"]["template"]["spec"]["containers"][0]["env"]
        }
        replicas = int(env["FRESHET_QUORUM_REPLICAS"])
        assert replicas % 2 == 1, name
        headless = services[env["FRESHET_QUORUM_SERVICE"]]
        assert headless["spec"]["clusterIP"] == "None", name
        assert headless["spec"]["publishNotReadyAddresses"] is True, name
        if "controller" in env["FRESHET_ROLES"]:
            assert statefulset["spec"]["replicas"] == replicas, name
            assert statefulset["spec"]["serviceName"] == env["FRESHET_QUORUM_SERVICE"], name
            assert {p["name"]: p["port"] for p in headless["spec"]["ports"]}["raft"] == PORTS["raft"], name


def test_services_route_only_to_ports_their_pods_have_and_both_expose_kafka_for_brokers(rendered):
    """The headless Service (stable names) and the client Service (bootstrap) of every broker
    carry the Kafka port; no Service sends a port to pods without that named container port."""
    name, docs = rendered
    services = {svc["metadata"]["name"]: svc for svc in by_kind(docs, "Service")}
    pods = []
    for statefulset in by_kind(docs, "StatefulSet"):
        container = statefulset["spec"]["template"]["spec"]["containers"][0]
        pods.append((statefulset, statefulset["spec"]["template"]["metadata"]["labels"], container))
    for service_name, service in services.items():
        selected = [(ss, c) for ss, labels, c in pods if service["spec"]["selector"].items() <= labels.items()]
        assert selected, f"{name}: Service {service_name} selects no pod"
        for port in service["spec"]["ports"]:
            assert port["port"] == PORTS[port["name"]] and port["targetPort"] == port["name"], name
            for statefulset, container in selected:
                assert port["name"] in {p["name"] for p in container["ports"]}, (
                    f"{name}: Service {service_name} port {port['name']} -> {statefulset['metadata']['name']}, "
                    "which has no such container port"
                )
    brokers = [(ss, c) for ss, _, c in pods if "broker" in {e["name"]: e.get("value") for e in c["env"]}["FRESHET_ROLES"]]
    assert brokers, name
    for statefulset, container in brokers:
        assert {p["name"]: p["containerPort"] for p in container["ports"]}.get("kafka") == PORTS["kafka"], name
        for service_name in (statefulset["spec"]["serviceName"], "freshet"):
            service = services[service_name]
            assert {p["name"]: p["port"] for p in service["spec"]["ports"]}.get("kafka") == PORTS["kafka"], (
                f"{name}: Service {service_name} does not expose Kafka"
            )
            labels = statefulset["spec"]["template"]["metadata"]["labels"]
            assert service["spec"]["selector"].items() <= labels.items(), f"{name}: {service_name}"


def test_a_disruption_budget_lets_one_node_at_a_time_go(rendered):
    name, docs = rendered
    budgets = by_kind(docs, "PodDisruptionBudget")
    assert budgets, name
    assert all(budget["spec"]["maxUnavailable"] == 1 for budget in budgets), name
    pod_labels = [ss["spec"]["template"]["metadata"]["labels"] for ss in by_kind(docs, "StatefulSet")]
    for budget in budgets:
        selector = budget["spec"]["selector"]["matchLabels"]
        assert any(selector.items() <= labels.items() for labels in pod_labels), (
            f"{name}: {selector} selects no pod"
        )


def test_config_map_holds_valid_toml(kubectl):
    for kustomization in KUSTOMIZATIONS:
        for config_map in by_kind(render(kubectl, kustomization), "ConfigMap"):
            tomllib.loads(config_map["data"]["server.toml"])


def test_dockerfile_matches_the_manifests():
    dockerfile = (REPO / "deploy" / "Dockerfile").read_text()
    exposed = {int(port) for line in re.findall(r"^EXPOSE (.+)$", dockerfile, re.M) for port in line.split()}
    assert exposed == set(PORTS.values())
    assert re.search(r"^USER freshet$", dockerfile, re.M), "the image runs as a non-root user"
    assert f'VOLUME ["{DATA_DIR}"]' in dockerfile
    assert 'ENTRYPOINT ["freshet", "server", "start"]' in dockerfile
    assert (REPO / "deploy" / "Dockerfile.dockerignore").exists()


def _pod_environment(statefulset: dict, ordinal: int) -> dict[str, str]:
    """The environment Kubernetes gives pod ORDINAL of STATEFULSET (downward API filled in)."""
    container = statefulset["spec"]["template"]["spec"]["containers"][0]
    environ = {"POD_NAME": f"{statefulset['metadata']['name']}-{ordinal}", "POD_NAMESPACE": "streaming"}
    for item in container["env"]:
        if "value" in item:
            environ[item["name"]] = item["value"]
        elif "secretKeyRef" in item["valueFrom"]:
            environ[item["name"]] = "secret-from-a-kubernetes-secret"
    return environ


def test_the_manifests_agree_with_the_servers_defaults_and_make_valid_node_configs(rendered, tmp_path):
    """Every pod's env, read by `--from-env` with the ConfigMap file, is a valid node config."""
    from freshet.server.config import HostPort, load_node_config
    from freshet.server.tools import local_cluster, pod_env

    name, docs = rendered
    assert {key: port for key, port in PORTS.items() if key != "kafka"} == {
        "grpc": pod_env.DEFAULT_PORT,
        "raft": pod_env.DEFAULT_PORT + pod_env.RAFT_PORT_OFFSET,
        "http": pod_env.DEFAULT_PORT + pod_env.HTTP_PORT_OFFSET,
    }
    # The Kafka port sits where `cluster up` puts it: gRPC + 3.
    assert PORTS["kafka"] == local_cluster.kafka_port(pod_env.DEFAULT_PORT, 1)
    assert DATA_DIR == pod_env.DEFAULT_DATA_DIR
    (config_map,) = by_kind(docs, "ConfigMap")
    seen_ids: set[int] = set()
    for statefulset in by_kind(docs, "StatefulSet"):
        container = statefulset["spec"]["template"]["spec"]["containers"][0]
        unknown = {item["name"] for item in container["env"]} - set(pod_env.ENV_VARS)
        assert not unknown, f"{name}: env vars the server does not read: {unknown}"
        environ = _pod_environment(statefulset, 0)
        mounts = {mount["name"]: mount["mountPath"] for mount in container["volumeMounts"]}
        config_path = pathlib.PurePosixPath(environ["FRESHET_CONFIG"])
        assert str(config_path.parent) == mounts["config"], name
        assert config_path.name in config_map["data"], name
        local_config = tmp_path / config_path.name
        local_config.write_text(config_map["data"][config_path.name])
        for ordinal in range(statefulset["spec"]["replicas"]):
            environ = _pod_environment(statefulset, ordinal)
            identity = pod_env.pod_identity(environ)
            config = load_node_config(identity.flags, (), str(local_config), environ=environ)
            assert config.data_dir == DATA_DIR and config.listen.port == PORTS["grpc"], name
            assert config.http_listen.port == PORTS["http"], name
            assert config.node_id not in seen_ids, f"{name}: two pods would be node {config.node_id}"
            seen_ids.add(config.node_id)
            assert config.advertised.host.endswith(f".{statefulset['spec']['serviceName']}.streaming.svc"), name
            if config.is_controller:
                assert config.raft_listen is not None and config.raft_listen.port == PORTS["raft"], name
                assert config.cluster_secret_source == "env", name
            # Kafka: every broker listens on the kafka container port and advertises its stable
            # name there (what Kafka clients get in Metadata); controller-only pods have none.
            ports = {port["name"]: port["containerPort"] for port in container["ports"]}
            stable_name = f"{environ['POD_NAME']}.{statefulset['spec']['serviceName']}.streaming.svc"
            if config.is_broker:
                assert environ["FRESHET_KAFKA_PORT"] == str(ports["kafka"]) == str(PORTS["kafka"]), name
                assert config.kafka_listen == HostPort("0.0.0.0", PORTS["kafka"]), name
                assert config.kafka_advertised == HostPort(stable_name, PORTS["kafka"]), name
                assert config.advertised == HostPort(stable_name, PORTS["grpc"]), name
                assert config.listeners == (("kafka", stable_name, PORTS["kafka"]),), name
            else:
                assert config.kafka_listen is None and config.kafka_advertised is None, name
                assert "kafka" not in ports and "FRESHET_KAFKA_PORT" not in environ, name
