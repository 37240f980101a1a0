"""The nemesis' network: one Linux network namespace per member (node or client), joined by veth
pairs to one bridge that lives in a namespace of its own, plus the link faults on top of it.

Not a test module. Owns every namespace, link and nftables table it creates; `close()` deletes the
namespaces, which takes their links, routes and nft tables with them (the bridge is in the hub
namespace, so nothing is ever created in the host's namespace and the host has no address on it).
Names carry the run's tag (pid-based), so parallel runs never collide; every run uses the same
10.88.0.0/24 addresses, which is safe because each run's addresses live only in its own namespaces.

Faults on links (what this kernel can do, /work/shared/notes/fault-injection.md):
- cut: `ip route add blackhole PEER/32` inside a member namespace: packets to PEER are dropped
  silently (peers see timeouts, as in a real partition). On both sides it is a partition; on one
  side only it is a one-way partition (A cannot send to B, B's packets still reach A).
- loss: an nftables rule `ip daddr PEER numgen random mod 100 < P drop` on a member's output.
- delay and jitter are not kernel faults here (no `tc netem`): tests/support/nemesis/proxy.py.
- reorder: an iptables rule `-d PEER -j NFQUEUE --queue-bypass` on a member's OUTPUT (nftables'
  own `queue` expression is not in this kernel; iptables' NFQUEUE target is, through nft_compat)
  hands those packets to tests/support/nemesis/reorder.py running in the member's namespace,
  which holds some back so that later ones overtake them.

Thread-safety: not thread-safe (the nemesis thread alone changes links).
"""

from __future__ import annotations

import ctypes
import os
import pathlib
import subprocess
import sys

SUBNET = "10.88.0"
CLIENT_HOST = 100
_CLONE_NEWNET = 0x40000000
_TABLE = "nemesis"
_REORDER_QUEUE = 1
_REPO = pathlib.Path(__file__).resolve().parents[3]


def run_ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    """`ip ARGS` (a failure names the command and its stderr)."""
    result = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and result.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed: {result.stderr.strip()}")
    return result


def run_nft(namespace: str, script: str, check: bool = True) -> subprocess.CompletedProcess:
    """An nft script run inside `namespace`."""
    result = subprocess.run(["ip", "netns", "exec", namespace, "nft", "-f", "-"], input=script,
                            capture_output=True, text=True, timeout=30)
    if check and result.returncode != 0:
        raise RuntimeError(f"nft in {namespace} failed: {result.stderr.strip()}\n{script}")
    return result


def _run_iptables(namespace: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """`iptables ARGS` inside `namespace` (a failure names the command and its stderr)."""
    result = subprocess.run(["ip", "netns", "exec", namespace, "iptables", *args], capture_output=True, text=True,
                            timeout=30)
    if check and result.returncode != 0:
        raise RuntimeError(f"iptables {' '.join(args)} in {namespace} failed: {result.stderr.strip()}")
    return result


def enter_namespace(namespace: str) -> None:
    """Move the calling thread into `namespace` (network only). Called by the nemesis runner's main
    thread before any gRPC channel exists, so every socket the process opens lives there."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/run/netns/{namespace}", os.O_RDONLY)
    try:
        if libc.setns(fd, _CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns into {namespace}")
    finally:
        os.close(fd)


def leftover_namespaces(prefix: str) -> list[str]:
    """Namespaces whose name starts with `prefix` (what a crashed run may have left)."""
    result = run_ip("netns", "list", check=False)
    return [line.split()[0] for line in result.stdout.splitlines() if line.startswith(prefix)]


def delete_namespaces(prefix: str) -> None:
    for namespace in leftover_namespaces(prefix):
        run_ip("netns", "del", namespace, check=False)


class Network:
    """Members (1..n nodes, "client") each in a namespace `{tag}-{member}`, bridged in `{tag}-hub`."""

    def __init__(self, tag: str, node_ids: list[int]) -> None:
        self.tag = tag
        self.node_ids = list(node_ids)
        self.hosts = {str(n): n for n in node_ids} | {"client": CLIENT_HOST}
        self.hub = f"{tag}-hub"
        self.cuts: set[tuple[str, str]] = set()        # (from member, to member): blackholed
        self.losses: dict[tuple[str, str], int] = {}   # (from member, to member): drop percent
        self.reorders: set[tuple[str, str]] = set()    # (from member, to member): queued to reorder.py
        self._reorderers: dict[str, subprocess.Popen] = {}   # member -> its reorder.py process
        self.is_up = False

    def namespace(self, member: str | int) -> str:
        return f"{self.tag}-{member}"

    def address(self, member: str | int) -> str:
        return f"{SUBNET}.{self.hosts[str(member)]}"

    @property
    def members(self) -> list[str]:
        return list(self.hosts)

    def up(self) -> None:
        """Create the hub with its bridge, then each member's namespace and veth pair."""
        self.is_up = True
        run_ip("netns", "add", self.hub)
        run_ip("-n", self.hub, "link", "add", "br0", "type", "bridge")
        run_ip("-n", self.hub, "link", "set", "br0", "up")
        for member, host in self.hosts.items():
            namespace = self.namespace(member)
            run_ip("netns", "add", namespace)
            run_ip("-n", self.hub, "link", "add", f"v{host}", "type", "veth", "peer", "name", "eth0", "netns", namespace)
            run_ip("-n", self.hub, "link", "set", f"v{host}", "master", "br0", "up")
            run_ip("-n", namespace, "addr", "add", f"{SUBNET}.{host}/24", "dev", "eth0")
            run_ip("-n", namespace, "link", "set", "eth0", "up")
            run_ip("-n", namespace, "link", "set", "lo", "up")
            run_nft(namespace, f"add table inet {_TABLE}\n"
                               f"add chain inet {_TABLE} out {{ type filter hook output priority 0; }}\n")

    def close(self) -> None:
        """Delete every namespace of this run (links, routes and nft tables go with them)."""
        self._stop_reordering()
        if self.is_up:
            delete_namespaces(self.tag + "-")
            self.is_up = False

    # -- faults ------------------------------------------------------------------------------------

    def cut(self, source: str | int, target: str | int) -> None:
        """Drop everything `source` sends to `target` (one direction)."""
        key = (str(source), str(target))
        if key not in self.cuts:
            run_ip("-n", self.namespace(source), "route", "add", "blackhole", f"{self.address(target)}/32")
            self.cuts.add(key)

    def cut_both(self, first: str | int, second: str | int) -> None:
        self.cut(first, second)
        self.cut(second, first)

    def lose(self, source: str | int, target: str | int, percent: int) -> None:
        """Drop `percent`% of the packets `source` sends to `target`, at random (nft numgen)."""
        assert 0 < percent <= 100
        key = (str(source), str(target))
        assert key not in self.losses
        run_nft(self.namespace(source),
                f"add rule inet {_TABLE} out ip daddr {self.address(target)} numgen random mod 100 < {percent} drop\n")
        self.losses[key] = percent

    def reorder(self, source: str | int, target: str | int, hold_percent: float, hold_ms: float, jitter_ms: float,
                seed: int) -> None:
        """Reorder what `source` sends to `target`: `hold_percent`% of its packets are held back
        `hold_ms` + up to `jitter_ms` (one reorder.py per source namespace, started on first use;
        the settings of its first use hold until the heal)."""
        key = (str(source), str(target))
        if key in self.reorders:
            return
        namespace = self.namespace(source)
        if str(source) not in self._reorderers:
            process = subprocess.Popen(
                ["ip", "netns", "exec", namespace, sys.executable, "-m", "tests.support.nemesis.reorder",
                 "--queue", str(_REORDER_QUEUE), "--hold-percent", str(hold_percent), "--hold-ms", str(hold_ms),
                 "--jitter-ms", str(jitter_ms), "--seed", str(seed)],
                cwd=_REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            )
            self._reorderers[str(source)] = process
            first = process.stdout.readline().strip() if process.stdout else ""
            if first != "ready":
                process.kill()
                raise RuntimeError(f"reorder.py in {namespace} did not start: {first} {process.stdout.read() if process.stdout else ''}")
        _run_iptables(namespace, "-A", "OUTPUT", "-d", self.address(target), "-j", "NFQUEUE",
                      "--queue-num", str(_REORDER_QUEUE), "--queue-bypass")
        self.reorders.add(key)

    def _stop_reordering(self) -> None:
        for source in sorted({source for source, _ in self.reorders}):
            _run_iptables(self.namespace(source), "-F", "OUTPUT", check=False)
        self.reorders.clear()
        for process in self._reorderers.values():
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        self._reorderers.clear()

    def heal(self) -> None:
        """Remove every cut, loss rule and reordering."""
        self._stop_reordering()
        for source, target in sorted(self.cuts):
            run_ip("-n", self.namespace(source), "route", "del", "blackhole", f"{self.address(target)}/32", check=False)
        self.cuts.clear()
        for source in sorted({source for source, _ in self.losses}):
            run_nft(self.namespace(source), f"flush chain inet {_TABLE} out\n")
        self.losses.clear()

    def describe(self) -> str:
        cuts = ",".join(f"{a}->{b}" for a, b in sorted(self.cuts))
        losses = ",".join(f"{a}->{b}:{p}%" for (a, b), p in sorted(self.losses.items()))
        reorders = ",".join(f"{a}->{b}" for a, b in sorted(self.reorders))
        return f"cuts[{cuts}] loss[{losses}] reorder[{reorders}]"
