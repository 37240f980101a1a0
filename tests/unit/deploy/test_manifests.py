"""The Kubernetes manifests render and validate offline, and agree with the image.

Goal: a user who runs `kubectl apply -k deploy/kubernetes/...` gets objects the API server
accepts, wired the way the Dockerfile and the node expect. Method: render the base and every
overlay with `kubectl kustomize` (offline), validate every object against the Kubernetes JSON
schemas of a current release (kubernetes-validate, strict: unknown fields are errors), then check
the wiring: ports, probes, data volume, non-root, secret handling, disruption budget.

Security (issue 15): every layout but overlays/insecure-plaintext runs TLS and authentication on
(security.protocol SASL_SSL) with the node certificate from Secret freshet-tls (cert-manager's
names) and the superuser's password from Secret freshet-admin, both mounted read-only as whole
volumes (the kubelet updates them in place: rotation without restart), never in the environment;
probes speak HTTPS. The cert-manager component issues freshet-tls for exactly the names pods are
reached at, with the common name super.users names. The node configuration each pod gets is
loaded with those Secrets "mounted" (a test CA's certificate in a kubelet-style volume), so the
files the ConfigMap names are the files the Secrets hold.
"""

from __future__ import annotations

import pathlib
import re
import subprocess
import tomllib

import kubernetes_validate
import pytest
import yaml

from tests.support.kube_secrets import SecretVolume, TestCa, localize_config

REPO = pathlib.Path(__file__).resolve().parents[3]
KUBERNETES = REPO / "deploy" / "kubernetes"
SECURE_KUSTOMIZATIONS = ["base", "overlays/single-node", "overlays/dedicated-controllers", "overlays/cert-manager"]
INSECURE_KUSTOMIZATIONS = ["overlays/insecure-plaintext"]
KUSTOMIZATIONS = SECURE_KUSTOMIZATIONS + INSECURE_KUSTOMIZATIONS
# Ports of the image (deploy/Dockerfile EXPOSE) and of `cluster up`'s layout: gRPC, Raft (+1), HTTP (+2),
# Kafka protocol (+3).
PORTS = {"grpc": 9092, "raft": 9093, "http": 9094, "kafka": 9095}
DATA_DIR = "/var/lib/freshet"
# The Secrets the secure layouts mount: name -> the keys the node reads (cert-manager's names for
# a kubernetes.io/tls Secret; the superuser's password).
TLS_SECRET = "freshet-tls"
TLS_KEYS = {"ssl.certificate.location": "tls.crt", "ssl.key.location": "tls.key", "ssl.ca.location": "ca.crt"}
ADMIN_SECRET = "freshet-admin"
ADMIN_KEY = "password"
NODE_COMMON_NAME = "freshet-node"


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


def is_cert_manager(doc: dict) -> bool:
    return doc["apiVersion"].startswith("cert-manager.io/")


def server_settings(docs: list[dict]) -> dict:
    (config_map,) = by_kind(docs, "ConfigMap")
    return tomllib.loads(config_map["data"]["server.toml"])


def test_every_object_validates_against_current_kubernetes_schemas(rendered):
    """cert-manager's kinds are custom resources the Kubernetes schemas do not hold: checked by
    test_cert_manager_issues_the_secret_the_pods_mount_for_the_names_they_are_reached_at."""
    name, docs = rendered
    version = kubernetes_validate.latest_version()
    assert docs, f"{name} rendered nothing"
    for doc in docs:
        if not is_cert_manager(doc):
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
        # The HTTP port speaks TLS in the secure layouts: so do the kubelet's probes.
        scheme = "HTTP" if name in INSECURE_KUSTOMIZATIONS else "HTTPS"
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http", "scheme": scheme}, where
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http", "scheme": scheme}, where
        assert container["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http", "scheme": scheme}, where
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
        assert annotations["prometheus.io/scheme"] == scheme.lower(), where
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


@pytest.fixture(scope="module", params=SECURE_KUSTOMIZATIONS)
def secure_rendered(request, kubectl) -> tuple[str, list[dict]]:
    return request.param, render(kubectl, request.param)


def _secret_volume(statefulset: dict, secret_name: str) -> tuple[dict, dict]:
    """(volume, its one container mount) of Secret SECRET_NAME in STATEFULSET's pods."""
    pod = statefulset["spec"]["template"]["spec"]
    volumes = [v for v in pod["volumes"] if v.get("secret", {}).get("secretName") == secret_name]
    assert len(volumes) == 1, f"{statefulset['metadata']['name']}: one volume of Secret {secret_name}, got {volumes}"
    (volume,) = volumes
    mounts = [m for m in pod["containers"][0]["volumeMounts"] if m["name"] == volume["name"]]
    assert len(mounts) == 1, f"{statefulset['metadata']['name']}: {volume['name']} mounted once"
    return volume, mounts[0]


def test_secure_layouts_mount_the_certificate_and_the_password_read_only_never_in_the_environment(secure_rendered):
    """TLS and authentication are on by default, from the Secrets' files: the config names exactly
    the files the Secret volumes hold; the volumes are read-only, not world-readable and whole
    (a subPath mount never sees the kubelet's updates: no rotation); the environment carries no
    credential but the Raft password it always carried."""
    name, docs = secure_rendered
    settings = server_settings(docs)
    assert settings["security.protocol"] == "SASL_SSL", name
    # The kubelet's HTTPS probes present no client certificate: `required` would fail them.
    assert settings.get("ssl.client.auth", "requested") in ("none", "requested"), name
    super_users = settings["super.users"].split(";")
    assert f"User:{settings['security.bootstrap.user']}" in super_users, name
    assert f"User:{NODE_COMMON_NAME}" in super_users, f"{name}: nodes call each other as User:<their CN>"
    assert not by_kind(docs, "Secret"), name
    for statefulset in by_kind(docs, "StatefulSet"):
        where = f"{name}: {statefulset['metadata']['name']}"
        container = statefulset["spec"]["template"]["spec"]["containers"][0]
        tls_volume, tls_mount = _secret_volume(statefulset, TLS_SECRET)
        admin_volume, admin_mount = _secret_volume(statefulset, ADMIN_SECRET)
        for volume, mount in ((tls_volume, tls_mount), (admin_volume, admin_mount)):
            assert mount.get("readOnly") is True, where
            assert "subPath" not in mount and "subPathExpr" not in mount, where
            assert volume["secret"]["defaultMode"] == 0o440, f"{where}: readable by the freshet group only"
        tls_files = {item["key"]: item["path"] for item in tls_volume["secret"].get("items", [])} or {
            key: key for key in TLS_KEYS.values()
        }
        for setting, key in TLS_KEYS.items():
            assert settings[setting] == f"{tls_mount['mountPath']}/{tls_files[key]}", f"{where}: {setting}"
        admin_files = {item["key"]: item["path"] for item in admin_volume["secret"]["items"]}
        assert settings["security.bootstrap.password.file"] == f"{admin_mount['mountPath']}/{admin_files[ADMIN_KEY]}", where
        assert "envFrom" not in container, where
        from_secrets = {item["name"] for item in container["env"] if "secretKeyRef" in item.get("valueFrom", {})}
        assert from_secrets <= {"FRESHET_CLUSTER_SECRET"}, f"{where}: credentials in the environment: {from_secrets}"
        for item in container["env"]:
            assert not re.search(r"PASSWORD|TLS|KEY|CERT", item["name"]), f"{where}: {item['name']}"
            assert ADMIN_SECRET not in str(item) and TLS_SECRET not in str(item), where


def _covers(dns_names: list[str], host: str) -> bool:
    """Whether a certificate with DNS_NAMES is valid for HOST (a wildcard covers one leftmost label)."""
    for pattern in dns_names:
        if pattern.startswith("*."):
            first, _, rest = host.partition(".")
            if first and rest == pattern[2:]:
                return True
        elif pattern == host:
            return True
    return False


def test_cert_manager_issues_the_secret_the_pods_mount_for_the_names_they_are_reached_at(kubectl):
    """The cert-manager component: a node certificate into the Secret the pods mount, signed by a
    CA chain that resolves, with the CN super.users names, usable as server and client (mTLS
    between nodes), valid for every name a pod is dialled at: each pod's advertised gRPC and Kafka
    name and Raft address (as --from-env derives them, with and without the cluster domain), in
    the base and in dedicated-controllers (brokers scaled beyond 3 too), and the client Service."""
    from freshet.server.config import parse_host_port
    from freshet.server.tools import pod_env

    docs = render(kubectl, "overlays/cert-manager")
    namespaces = {doc["metadata"].get("namespace") for doc in docs}
    assert namespaces == {"streaming"}, namespaces
    namespace = namespaces.pop()
    certificates = {doc["metadata"]["name"]: doc for doc in docs if doc["kind"] == "Certificate" and is_cert_manager(doc)}
    issuers = {doc["metadata"]["name"]: doc for doc in docs if doc["kind"] == "Issuer" and is_cert_manager(doc)}
    (node,) = [c for c in certificates.values() if c["spec"]["secretName"] == TLS_SECRET]
    spec = node["spec"]
    assert not spec.get("isCA"), spec
    assert {"server auth", "client auth"} <= set(spec["usages"]), spec["usages"]
    settings = server_settings(docs)
    assert f"User:{spec['commonName']}" in settings["super.users"].split(";")
    assert spec["commonName"] == NODE_COMMON_NAME
    # The chain: node <- CA Issuer (CA from a Certificate with isCA) <- self-signed Issuer.
    ca_issuer = issuers[spec["issuerRef"]["name"]]
    assert spec["issuerRef"]["kind"] == "Issuer"
    (ca,) = [c for c in certificates.values() if c["spec"]["secretName"] == ca_issuer["spec"]["ca"]["secretName"]]
    assert ca["spec"]["isCA"] is True
    assert "selfSigned" in issuers[ca["spec"]["issuerRef"]["name"]]["spec"]
    for statefulset in by_kind(docs, "StatefulSet"):
        _secret_volume(statefulset, TLS_SECRET)

    names = spec["dnsNames"]
    dialled = set()
    for layout in ("base", "overlays/dedicated-controllers"):
        layout_docs = render(kubectl, layout)
        for service in by_kind(layout_docs, "Service"):
            if service["spec"].get("clusterIP") != "None":
                service_name = service["metadata"]["name"]
                dialled |= {service_name, f"{service_name}.{namespace}.svc", f"{service_name}.{namespace}.svc.cluster.local"}
        for statefulset in by_kind(layout_docs, "StatefulSet"):
            environ = _pod_environment(statefulset, 0)
            ordinals = range(statefulset["spec"]["replicas"])
            if environ["FRESHET_ROLES"] == "broker":
                ordinals = range(statefulset["spec"]["replicas"] + 5)     # scaled out
            for ordinal, domain in ((o, d) for o in ordinals for d in ("", "cluster.local")):
                environ = {**_pod_environment(statefulset, ordinal), "POD_NAMESPACE": namespace, "FRESHET_CLUSTER_DOMAIN": domain}
                flags = pod_env.pod_identity(environ).flags
                for key in ("advertised", "kafka.advertised"):
                    if key in flags:
                        dialled.add(parse_host_port(flags[key]).host)
                for voter in flags["controller.quorum"].split(","):
                    dialled.add(parse_host_port(voter.partition("@")[2]).host)
    assert len(dialled) > 10, dialled
    uncovered = sorted(host for host in dialled if not _covers(names, host))
    assert not uncovered, f"the node certificate is not valid for {uncovered}"
    assert not _covers(names, "freshet-0.freshet-headless.other-namespace.svc"), "the check must be able to fail"


def test_the_insecure_overlay_is_plaintext_and_says_so(kubectl):
    """The one layout without TLS or authentication: a single node for local experiments, named
    and annotated as insecure, mounting no Secret but the Raft password."""
    (name,) = INSECURE_KUSTOMIZATIONS
    assert "insecure" in name
    docs = render(kubectl, name)
    settings = server_settings(docs)
    assert settings.get("security.protocol", "PLAINTEXT") == "PLAINTEXT"
    assert not [key for key in settings if key.startswith(("ssl.", "security.bootstrap", "sasl."))], settings
    (statefulset,) = by_kind(docs, "StatefulSet")
    assert statefulset["spec"]["replicas"] == 1
    pod = statefulset["spec"]["template"]
    assert pod["metadata"]["annotations"]["freshet.io/security"] == "insecure-plaintext"
    assert not [v for v in pod["spec"]["volumes"] if "secret" in v], pod["spec"]["volumes"]
    kustomization = (KUBERNETES / name / "kustomization.yaml").read_text()
    assert "INSECURE" in kustomization.splitlines()[0], "the file says what it is in its first line"


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


def _mount_secrets(statefulset: dict, root: pathlib.Path, secrets: dict[str, dict[str, bytes]]) -> dict[str, pathlib.Path]:
    """The pod's Secret volumes laid out under ROOT as the kubelet does: {mountPath: local dir}."""
    container = statefulset["spec"]["template"]["spec"]["containers"][0]
    volumes = {volume["name"]: volume for volume in statefulset["spec"]["template"]["spec"]["volumes"]}
    mounts = {}
    for mount in container["volumeMounts"]:
        source = volumes.get(mount["name"], {}).get("secret")
        if source is None:
            continue
        items = {item["key"]: item["path"] for item in source["items"]} if "items" in source else None
        local = root / mount["name"]
        if not local.exists():
            SecretVolume(local, secrets[source["secretName"]], items)
        mounts[mount["mountPath"]] = local
    return mounts


def test_the_manifests_agree_with_the_servers_defaults_and_make_valid_node_configs(rendered, tmp_path):
    """Every pod's env, read by `--from-env` with the ConfigMap file and the Secrets mounted where
    the pod spec mounts them, is a valid node config: TLS and authentication on (but for the
    insecure overlay), from the files the Secrets hold."""
    from freshet.server.config import HostPort, load_node_config
    from freshet.server.tools import local_cluster, pod_env

    ca = TestCa()
    secrets = {
        TLS_SECRET: ca.tls_secret(NODE_COMMON_NAME, ["*.freshet-headless.streaming.svc"]),
        ADMIN_SECRET: {ADMIN_KEY: b"admin-password-from-a-secret\n"},
    }

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
        mounts = _mount_secrets(statefulset, tmp_path / "volumes", secrets)
        local_config = tmp_path / config_path.name
        local_config.write_text(localize_config(config_map["data"][config_path.name], mounts))
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
            if name in INSECURE_KUSTOMIZATIONS:
                assert config.security_protocol == "PLAINTEXT" and config.tls is None, name
                assert config.bootstrap_user is None, name
            else:
                # The node reads the certificate, key and CA from the freshet-tls volume and the
                # superuser's password from the freshet-admin volume.
                tls_dir = mounts[next(m["mountPath"] for m in container["volumeMounts"] if m["name"] == "tls")]
                assert config.security_protocol == "SASL_SSL", name
                assert config.tls is not None, name
                assert (config.tls.certificate_location, config.tls.key_location, config.tls.ca_location) == (
                    str(tls_dir / "tls.crt"), str(tls_dir / "tls.key"), str(tls_dir / "ca.crt"),
                ), name
                assert config.bootstrap_user == "admin", name
                assert config.bootstrap_password == "admin-password-from-a-secret", name
                assert {"User:admin", f"User:{NODE_COMMON_NAME}"} <= set(config.super_users), name
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
