"""`freshet cluster up`: a local cluster of N combined nodes as child processes.

Owns the supervisor: the layout (node i, 1-based: gRPC base+(i-1)*10, Raft +1, HTTP +2, the Kafka
protocol +3, all on 127.0.0.1; data in <data-dir>/node-<i>, log in <data-dir>/node-<i>/node.log), the cluster secret
(generated once per data directory into <data-dir>/cluster.secret, mode 0600, and passed to the
children in FRESHET_CLUSTER_SECRET), starting the children (`python -m freshet.cli.main server
start ...`), waiting until every node's /readyz answers 200, printing the bootstrap string (or one
JSON line), staying in the foreground until SIGINT/SIGTERM, and stopping every child (SIGTERM,
then SIGKILL after a bound). Re-running with the same data directory restarts the same cluster
with its data; <data-dir>/cluster.json remembers the node count, which may not change (the voter
set of the metadata quorum is static).

`--secure` (TLS, and authentication once it is built): <data-dir>/security/ (mode 0700) holds a CA
(ca.pem, ca.key), one node certificate shared by the local nodes (node.pem, node.key: CN
freshet-node, SANs localhost, 127.0.0.1, ::1) and the superuser's generated password
(admin.password), every file mode 0600, made once and reused; every node starts with
security.protocol=SECURE_PROTOCOL and the ssl.* keys, plus the superuser and bootstrap-user keys
when this build's node config has them. The CA key stays there so an operator can issue a
rotated node certificate (`freshet.server.security.certificates.issue`).

Children run in their own session (Ctrl-C reaches only the supervisor, which stops them in order)
and, on Linux, get SIGTERM if the supervisor dies (PR_SET_PDEATHSIG).

Imports: standard library, freshet.server.config, freshet.server.security.certificates. Thread-safety: single-threaded (the
supervisor's main thread; signal handlers only set a flag).
"""

from __future__ import annotations

import ctypes
import dataclasses
import json
import os
import secrets
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from typing import TextIO

from freshet.server.config import SECRET_ENV, HostPort, format_node_addresses

HOST = "127.0.0.1"
READY_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 30.0
LAYOUT_FILE_NAME = "cluster.json"
SECRET_FILE_NAME = "cluster.secret"
SECURITY_DIR_NAME = "security"
#: security.protocol of a `--secure` cluster: TLS and authentication on every port.
SECURE_PROTOCOL = "SASL_SSL"
SUPERUSER = "admin"
NODE_COMMON_NAME = "freshet-node"
NODE_HOSTS = ("localhost", "127.0.0.1", "::1")


@dataclasses.dataclass(frozen=True)
class SecurityFiles:
    """Paths of a `--secure` cluster's files. Thread-safe (immutable)."""

    directory: str

    @property
    def ca_file(self) -> str:
        return os.path.join(self.directory, "ca.pem")

    @property
    def ca_key_file(self) -> str:
        return os.path.join(self.directory, "ca.key")

    @property
    def certificate_file(self) -> str:
        return os.path.join(self.directory, "node.pem")

    @property
    def key_file(self) -> str:
        return os.path.join(self.directory, "node.key")

    @property
    def password_file(self) -> str:
        return os.path.join(self.directory, f"{SUPERUSER}.password")

    def node_settings(self) -> list[str]:
        """The `--set key=value` options of every node: TLS and authentication on every port, the
        superuser (created by the active controller from its password file) and the node
        certificate's principal as super users."""
        settings = {
            "security.protocol": SECURE_PROTOCOL,
            "ssl.certificate.location": self.certificate_file,
            "ssl.key.location": self.key_file,
            "ssl.ca.location": self.ca_file,
            "super.users": f"User:{SUPERUSER};User:{NODE_COMMON_NAME}",
            "security.bootstrap.user": SUPERUSER,
            "security.bootstrap.password.file": self.password_file,
        }
        return [f"{key}={value}" for key, value in settings.items()]

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.ca_file)


def prepare_security(data_dir: str) -> SecurityFiles:
    """Create <data-dir>/security/ with the CA, the node certificate and the superuser's password,
    or reuse what is there. Raises ClusterStartError (a half-made directory) or OSError."""
    from freshet.server.security import certificates

    files = SecurityFiles(os.path.join(data_dir, SECURITY_DIR_NAME))
    os.makedirs(files.directory, mode=0o700, exist_ok=True)
    os.chmod(files.directory, 0o700)
    if os.path.exists(files.ca_file) != os.path.exists(files.ca_key_file):
        raise ClusterStartError(f"{files.directory} has only one of ca.pem and ca.key: delete the directory to start over")
    if not os.path.exists(files.ca_file):
        ca = certificates.create_ca()
        certificates.write_private(files.ca_key_file, ca.key_pem)
        certificates.write_private(files.ca_file, ca.certificate_pem)
    if not (os.path.exists(files.certificate_file) and os.path.exists(files.key_file)):
        ca = certificates.read_issued(files.ca_file, files.ca_key_file)
        node = certificates.issue(ca, NODE_COMMON_NAME, NODE_HOSTS)
        certificates.write_private(files.key_file, node.key_pem)
        certificates.write_private(files.certificate_file, node.certificate_pem)
    if not os.path.exists(files.password_file):
        certificates.write_private(files.password_file, (secrets.token_urlsafe(24) + "\n").encode())
    return files


class ClusterUsageError(Exception):
    """Bad arguments for `cluster up` (exit code 2). Thread-safe (immutable)."""


class ClusterStartError(Exception):
    """The cluster could not start (exit code 1). Thread-safe (immutable)."""


def node_ports(base_port: int, index: int) -> tuple[int, int, int]:
    """(gRPC, Raft, HTTP) ports of node `index` (1-based)."""
    grpc_port = base_port + (index - 1) * 10
    return grpc_port, grpc_port + 1, grpc_port + 2


def kafka_port(base_port: int, index: int) -> int:
    """The Kafka protocol port of node `index` (1-based): its gRPC port + 3."""
    return node_ports(base_port, index)[0] + 3


def _check_arguments(nodes: int, base_port: int) -> None:
    if nodes < 1 or nodes % 2 == 0:
        raise ClusterUsageError(f"--nodes must be odd (1, 3, 5, ...): the metadata quorum needs a majority, not {nodes}")
    if nodes > 9:
        raise ClusterUsageError(f"--nodes {nodes}: at most 9 local nodes")
    if base_port < 1024 or kafka_port(base_port, nodes) > 65535:
        raise ClusterUsageError(f"--base-port {base_port}: the ports {base_port}..{kafka_port(base_port, nodes)} must be in 1024..65535")


def _prepare_data_dir(data_dir: str, nodes: int, base_port: int) -> str:
    """Create or check the data directory; return the cluster secret."""
    os.makedirs(data_dir, exist_ok=True)
    layout_path = os.path.join(data_dir, LAYOUT_FILE_NAME)
    if os.path.exists(layout_path):
        try:
            with open(layout_path, encoding="utf-8") as file:
                layout = json.load(file)
        except (OSError, ValueError) as error:
            raise ClusterStartError(f"{layout_path} is unreadable ({error}): fix or delete it") from None
        if layout.get("nodes") != nodes:
            raise ClusterUsageError(
                f"{data_dir} holds a {layout.get('nodes')}-node cluster: run with --nodes {layout.get('nodes')} "
                f"or use another --data-dir"
            )
    with open(layout_path + ".tmp", "w", encoding="utf-8") as file:
        json.dump({"nodes": nodes, "base_port": base_port}, file)
    os.replace(layout_path + ".tmp", layout_path)
    secret_path = os.path.join(data_dir, SECRET_FILE_NAME)
    try:
        fd = os.open(secret_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        with open(secret_path, encoding="utf-8") as file:
            secret = file.read().strip()
        if not secret:
            raise ClusterStartError(f"{secret_path} is empty: delete it to generate a new secret") from None
        return secret
    secret = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        file.write(secret + "\n")
    return secret


def _port_in_use(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError:
            return True
    return False


def _die_with_parent() -> None:
    """preexec_fn: SIGTERM this child when the supervisor dies (Linux)."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)            # PR_SET_PDEATHSIG
    except OSError:
        pass


def _ready(http_port: int, security: SecurityFiles | None) -> bool:
    scheme = "https" if security is not None else "http"
    context = security.client_context() if security is not None else None
    try:
        with urllib.request.urlopen(f"{scheme}://{HOST}:{http_port}/readyz", timeout=1, context=context) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _tail(path: str, lines: int = 5) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as file:
            return "".join(file.readlines()[-lines:])
    except OSError:
        return ""


class _Stop:
    """Set by SIGINT/SIGTERM. Thread-safe enough: written by the signal handler only."""

    requested = False
    signal_name = ""


def run(
    nodes: int,
    data_dir: str,
    base_port: int,
    as_json: bool,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
    secure: bool = False,
) -> int:
    """Run the cluster in the foreground; the exit code (0 after a clean stop). `secure`: TLS
    (and authentication) with the files of <data-dir>/security/.

    Raises:
        ClusterUsageError: bad arguments (the CLI exits 2).
    """
    _check_arguments(nodes, base_port)
    data_dir = os.path.abspath(data_dir)
    secret = _prepare(nodes, data_dir, base_port, err)
    if secret is None:
        return 1
    security: SecurityFiles | None = None
    if secure:
        try:
            security = prepare_security(data_dir)
        except (ClusterStartError, OSError) as error:
            print(f"freshet cluster up: cannot prepare {data_dir}/{SECURITY_DIR_NAME}: {error}", file=err)
            return 1
    stop = _Stop()
    previous = _catch_stop_signals(stop)
    children: dict[int, subprocess.Popen] = {}
    logs: dict[int, str] = {}
    print(f"starting {nodes} nodes in {data_dir} (logs: {data_dir}/node-<i>/node.log)", file=err, flush=True)
    try:
        _start_children(nodes, data_dir, base_port, secret, children, logs, security)
        started = time.monotonic()
        failed = _wait_until_ready(children, logs, base_port, stop, started, err, security)
        if failed is not None:
            return failed
        _print_ready(nodes, base_port, children, as_json, started, out, security)
        _supervise(children, logs, stop, err)
        print(f"freshet cluster up: {stop.signal_name}: stopping {len(children)} nodes", file=err, flush=True)
        return _stop_all(children, err, failed=False)
    finally:
        for child in children.values():
            if child.poll() is None:
                child.kill()
                child.wait()
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _prepare(nodes: int, data_dir: str, base_port: int, err: TextIO) -> str | None:
    """The cluster secret once the data directory is ready and every port is free; None (after
    printing why) when the cluster cannot start."""
    try:
        secret = _prepare_data_dir(data_dir, nodes, base_port)
    except (ClusterStartError, OSError) as error:
        print(f"freshet cluster up: {error}", file=err)
        return None
    busy = [port for index in range(1, nodes + 1) for port in node_ports(base_port, index) if _port_in_use(port)]
    if busy:
        print(
            f"freshet cluster up: port {busy[0]} on {HOST} is in use (another cluster running?): stop it or pass --base-port",
            file=err,
        )
        return None
    return secret


def _catch_stop_signals(stop: _Stop) -> dict:
    """Route SIGINT and SIGTERM to `stop`; the previous handlers, to restore."""

    def on_signal(signum, frame) -> None:
        stop.requested = True
        stop.signal_name = signal.Signals(signum).name

    return {signum: signal.signal(signum, on_signal) for signum in (signal.SIGINT, signal.SIGTERM)}


def _start_children(
    nodes: int,
    data_dir: str,
    base_port: int,
    secret: str,
    children: dict[int, subprocess.Popen],
    logs: dict[int, str],
    security: SecurityFiles | None = None,
) -> None:
    """Start every node; fills `children` and `logs` as it goes so the caller can kill the ones
    already started if a later one fails."""
    quorum = format_node_addresses({i: HostPort(HOST, node_ports(base_port, i)[1]) for i in range(1, nodes + 1)})
    environment = dict(os.environ)
    environment[SECRET_ENV] = secret
    for index in range(1, nodes + 1):
        grpc_port, _, http_port = node_ports(base_port, index)
        node_dir = os.path.join(data_dir, f"node-{index}")
        os.makedirs(node_dir, exist_ok=True)
        logs[index] = os.path.join(node_dir, "node.log")
        argv = [
            sys.executable, "-m", "freshet.cli.main", "server", "start",
            "--node-id", str(index),
            "--data-dir", node_dir,
            "--listen", f"{HOST}:{grpc_port}",
            "--http-listen", f"{HOST}:{http_port}",
            "--kafka-listen", f"{HOST}:{kafka_port(base_port, index)}",
            "--controller-quorum", quorum,
        ]
        for setting in security.node_settings() if security is not None else []:
            argv += ["--set", setting]
        with open(logs[index], "ab") as log:
            children[index] = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=environment,
                start_new_session=True,
                preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
            )


def _wait_until_ready(
    children: dict[int, subprocess.Popen],
    logs: dict[int, str],
    base_port: int,
    stop: _Stop,
    started: float,
    err: TextIO,
    security: SecurityFiles | None = None,
) -> int | None:
    """Poll every node's /readyz until all answer; None then, else the exit code after stopping
    every child (a stop signal, a node that exited, or READY_TIMEOUT_S passed)."""
    waiting = set(children)
    while waiting:
        if stop.requested:
            print(f"freshet cluster up: {stop.signal_name} before the cluster was ready; stopping", file=err)
            return _stop_all(children, err, failed=True)
        for index in sorted(waiting):
            code = children[index].poll()
            if code is not None:
                print(
                    f"freshet cluster up: node {index} exited with code {code} while starting; "
                    f"the end of {logs[index]}:\n{_tail(logs[index])}",
                    file=err,
                    end="",
                )
                return _stop_all(children, err, failed=True)
            if _ready(node_ports(base_port, index)[2], security):
                waiting.discard(index)
        if time.monotonic() - started > READY_TIMEOUT_S:
            print(
                f"freshet cluster up: nodes {sorted(waiting)} not ready after {READY_TIMEOUT_S:.0f} s; see their node.log",
                file=err,
            )
            return _stop_all(children, err, failed=True)
        time.sleep(0.1)
    return None


def _print_ready(
    nodes: int,
    base_port: int,
    children: dict[int, subprocess.Popen],
    as_json: bool,
    started: float,
    out: TextIO,
    security: SecurityFiles | None = None,
) -> None:
    """The bootstrap string and each node's addresses (and how to connect to a secure cluster):
    a table, or one JSON line."""
    bootstrap = ",".join(f"{HOST}:{node_ports(base_port, i)[0]}" for i in sorted(children))
    kafka_bootstrap = ",".join(f"{HOST}:{kafka_port(base_port, i)}" for i in sorted(children))
    scheme = "https" if security is not None else "http"
    if as_json:
        document: dict = {
            "bootstrap": bootstrap,
            "kafka_bootstrap": kafka_bootstrap,
            "nodes": [
                {
                    "id": index,
                    "listen": f"{HOST}:{node_ports(base_port, index)[0]}",
                    "http": f"{scheme}://{HOST}:{node_ports(base_port, index)[2]}",
                    "kafka": f"{HOST}:{kafka_port(base_port, index)}",
                    "pid": children[index].pid,
                }
                for index in sorted(children)
            ],
        }
        if security is not None:
            document["security"] = {
                "ca_file": security.ca_file,
                "user": SUPERUSER,
                "password_file": security.password_file,
                "protocol": SECURE_PROTOCOL,
            }
        print(json.dumps(document), file=out, flush=True)
        return
    print(f"{nodes} nodes ready in {time.monotonic() - started:.1f} s", file=out)
    for index in sorted(children):
        grpc_port, raft_port, http_port = node_ports(base_port, index)
        print(
            f"  node {index}: gRPC {HOST}:{grpc_port}  raft {HOST}:{raft_port}  "
            f"{scheme}://{HOST}:{http_port}  kafka {HOST}:{kafka_port(base_port, index)}  pid {children[index].pid}",
            file=out,
        )
    print(f"bootstrap: {bootstrap}", file=out)
    print(f"kafka bootstrap: {kafka_bootstrap}", file=out)
    if security is not None:
        _print_how_to_connect(security, bootstrap, out)
    print("Ctrl-C stops the cluster.", file=out, flush=True)


def _print_how_to_connect(security: SecurityFiles, bootstrap: str, out: TextIO) -> None:
    """The CLI flags and a Kafka client properties snippet for the secure cluster (the password
    is named by its file, never printed)."""
    is_sasl = SECURE_PROTOCOL == "SASL_SSL"
    user_flags = f" --user {SUPERUSER} --password-file {security.password_file}" if is_sasl else ""
    print(f"security: {SECURE_PROTOCOL} on every port; CA {security.ca_file}", file=out)
    print(f"  freshet --tls-ca {security.ca_file}{user_flags} cluster status -b {bootstrap}", file=out)
    print("  Kafka clients (properties):", file=out)
    print(f"    security.protocol={SECURE_PROTOCOL}", file=out)
    print(f"    ssl.ca.location={security.ca_file}", file=out)
    if is_sasl:
        print("    sasl.mechanism=SCRAM-SHA-512", file=out)
        print(f"    sasl.username={SUPERUSER}", file=out)
        print(f"    sasl.password=<the contents of {security.password_file}>", file=out)


def _supervise(children: dict[int, subprocess.Popen], logs: dict[int, str], stop: _Stop, err: TextIO) -> None:
    """Stay in the foreground until a stop signal, reporting each node that exits (once)."""
    reported: set[int] = set()
    while not stop.requested:
        for index, child in children.items():
            code = child.poll()
            if code is not None and index not in reported:
                reported.add(index)
                print(f"freshet cluster up: node {index} exited with code {code} (see {logs[index]})", file=err, flush=True)
        time.sleep(0.2)


def _stop_all(children: dict[int, subprocess.Popen], err: TextIO, failed: bool) -> int:
    """SIGTERM every child, SIGKILL those still alive after STOP_TIMEOUT_S; 1 when `failed`."""
    for child in children.values():
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for index, child in sorted(children.items()):
        try:
            child.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            print(f"freshet cluster up: node {index} did not stop in {STOP_TIMEOUT_S:.0f} s: killing it", file=err)
            child.kill()
            child.wait()
    codes = {index: child.returncode for index, child in children.items()}
    unclean = {index: code for index, code in codes.items() if code != 0}
    if not failed:
        print(
            "freshet cluster up: stopped" + (f" (exit codes {unclean})" if unclean else ""), file=err, flush=True
        )
    return 1 if failed else 0
