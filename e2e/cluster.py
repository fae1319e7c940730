"""A Calico cluster on one machine: network namespaces on a shared bridge.

    fabric namespace: bridge br0 (172.30.0.0/24), no address of its own
      etcd-N   namespaces: one etcd member each (172.30.0.2, .3, .4)
      host-N   namespaces: one node each (172.30.0.11, .12, ...), running the real
               entrypoint ``calico-node start`` with its own CALICO_*_DIRs and NODENAME
      outside  namespace: 172.30.0.254, the hosts' default gateway ("the internet")

``Cluster(ipv6=True)`` makes it dual-stack, as a dual-stack Calico cluster is configured:
the fabric also carries fd00:30::/64 (hosts fd00:30::11, ::12, ..., the outside
fd00:30::254 and their IPv6 default gateway), each host autodetects its IPv6 address
(``IP6=autodetect``), startup creates the default IPv6 pool fd00:244::/48 (/122 blocks,
Calico's default), the policy agent runs with ``FELIX_IPV6SUPPORT=true`` and pods get an
IPv6 address too (the CNI plugin's ``assign_ipv6``). etcd stays on IPv4. Duplicate
address detection is off in every namespace the cluster makes (new addresses would
otherwise stay tentative for a second or more), and the bridge does no multicast
snooping (with no MLD querier on the fabric it could stop forwarding neighbour
discovery).

Pods are added on a host with ``calico-node pod add`` run inside that host's namespace,
exactly as the CNI plugin would run there; they live in namespaces named
``<prefix>-<host>-<k8s namespace>-<pod>``. Everything the cluster created is removed by
``close()``: processes, namespaces (and with them every veth), scratch directories; also
after a failure, and ``python -m e2e.cluster --cleanup PREFIX`` removes leftovers of a
run that was killed.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from e2e.probes import Listener, Result, eventually, probe

FABRIC_NET = "172.30.0"
OUTSIDE_IP = f"{FABRIC_NET}.254"
FABRIC_NET6 = "fd00:30:"
OUTSIDE_IP6 = f"{FABRIC_NET6}:254"
IPV6_POOL = "fd00:244::/48"
ETCD_CLIENT_PORT, ETCD_PEER_PORT = 2379, 2380
ROOT = Path(__file__).resolve().parents[1]


def _run(*argv: str, check: bool = True, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), check=check, capture_output=True, text=True, **kw)


def in_ns(netns: str, *argv: str, check: bool = True, **kw) -> subprocess.CompletedProcess:
    return _run("ip", "netns", "exec", netns, *argv, check=check, **kw)


def _bin(name: str) -> str:
    """A console script of this project (next to the running interpreter)."""
    candidate = Path(sys.executable).with_name(name)
    return str(candidate) if candidate.exists() else name


@dataclass
class Host:
    name: str
    netns: str
    ip: str
    dirs: Path
    env: dict = field(default_factory=dict)
    proc: subprocess.Popen | None = None
    ip6: str = ""  # in a dual-stack cluster: the address on eth0, which startup autodetects

    @property
    def log_path(self) -> Path:
        return self.dirs / "start.log"

    def run(self, *argv: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        """A command inside the host's namespace with the host's environment."""
        return subprocess.run(["ip", "netns", "exec", self.netns, *argv], env=self.env, capture_output=True,
                              text=True, check=check, timeout=timeout)

    def calicoctl(self, *args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(["ip", "netns", "exec", self.netns, _bin("calicoctl"), *args], env=self.env,
                              input=stdin, capture_output=True, text=True, check=check, timeout=120)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class Cluster:
    """The namespaces, etcd members and hosts of one cluster (see the module docstring)."""

    def __init__(self, hosts: int = 3, *, etcd_members: int = 1, backend: str = "bird", prefix: str | None = None,
                 workdir: Path | None = None, host_env: dict | None = None, ipv6: bool = False):
        self.prefix = prefix or f"cc{os.getpid() % 100000}"
        self.backend = backend
        self.ipv6 = ipv6
        self.n_hosts = hosts
        self.n_etcd = etcd_members
        self.host_env = dict(host_env or {})
        self._own_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix=f"{self.prefix}-"))
        self.fabric = f"{self.prefix}-fabric"
        self.outside = f"{self.prefix}-outside"
        self.etcd: list[tuple[str, str, subprocess.Popen | None]] = []  # (netns, ip, process)
        self.hosts: list[Host] = []
        self._namespaces: list[str] = []
        self._listeners: list[Listener] = []

    # -- building -----------------------------------------------------------------------------

    def _netns(self, name: str) -> str:
        _run("ip", "netns", "add", name)
        self._namespaces.append(name)
        self._no_dad(name)
        in_ns(name, "ip", "link", "set", "lo", "up")
        return name

    def _no_dad(self, netns: str) -> None:
        """Dual-stack: no duplicate address detection on the links made in ``netns`` from
        now on (``default``; ``all`` for good measure)."""
        if self.ipv6:
            in_ns(netns, "sysctl", "-q", "-w", "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0")

    def _attach(self, netns: str, ip: str, index: int) -> None:
        """A veth from the fabric bridge into ``netns`` as eth0 with ``ip``/24 (and, dual-stack,
        fd00:30::<index>/64). Made inside the fabric namespace with its peer placed straight
        into ``netns``: nothing is ever created in the host's namespace, and no name can
        collide with another run's."""
        outer = f"f{index}"
        in_ns(self.fabric, "ip", "link", "add", outer, "type", "veth", "peer", "name", "eth0", "netns", netns)
        in_ns(self.fabric, "ip", "link", "set", outer, "master", "br0")
        in_ns(self.fabric, "ip", "link", "set", outer, "up")
        in_ns(netns, "ip", "addr", "add", f"{ip}/24", "dev", "eth0")
        if self.ipv6:
            in_ns(netns, "ip", "addr", "add", f"{FABRIC_NET6}:{index}/64", "dev", "eth0", "nodad")
        in_ns(netns, "ip", "link", "set", "eth0", "up")

    @property
    def etcd_endpoints(self) -> str:
        return ",".join(f"http://{ip}:{ETCD_CLIENT_PORT}" for _, ip, _ in self.etcd)

    def start(self, progress=lambda msg: None) -> "Cluster":
        try:
            self._netns(self.fabric)
            in_ns(self.fabric, "ip", "link", "add", "br0", "type", "bridge",
                  *(("mcast_snooping", "0") if self.ipv6 else ()))
            in_ns(self.fabric, "ip", "link", "set", "br0", "up")
            self._netns(self.outside)
            self._attach(self.outside, OUTSIDE_IP, 254)
            if self.ipv6:
                progress(f"fabric {FABRIC_NET}.0/24 and {FABRIC_NET6}:/64, the outside namespace ({OUTSIDE_IP}, "
                         f"{OUTSIDE_IP6}) are up")
            else:
                progress(f"fabric {FABRIC_NET}.0/24 and the outside namespace ({OUTSIDE_IP}) are up")
            self._start_etcd()
            progress(f"etcd: {self.etcd_endpoints}")
            for i in range(self.n_hosts):
                self.add_host(i + 1)
            for host in self.hosts:
                self.start_host(host)
                progress(f"{host.name}: calico-node start launched ({host.ip})")
            for host in self.hosts:
                self.wait_started(host)
                progress(f"{host.name}: Calico node started successfully")
        except BaseException:
            self.close()
            raise
        return self

    def _start_etcd(self) -> None:
        members = [(f"{self.prefix}-etcd{i + 1}", f"{FABRIC_NET}.{i + 2}") for i in range(self.n_etcd)]
        initial = ",".join(f"etcd{i + 1}=http://{ip}:{ETCD_PEER_PORT}" for i, (_, ip) in enumerate(members))
        for i, (netns, ip) in enumerate(members):
            self._netns(netns)
            self._attach(netns, ip, i + 2)
            self.etcd.append((netns, ip, None))
        for i in range(len(members)):
            self.start_etcd_member(i, initial_cluster=initial)
        if not eventually(self._etcd_healthy, 30):
            raise RuntimeError("etcd did not become healthy")

    def start_etcd_member(self, i: int, initial_cluster: str | None = None) -> None:
        netns, ip, _ = self.etcd[i]
        data = self.workdir / f"etcd{i + 1}"
        initial_cluster = initial_cluster or ",".join(
            f"etcd{j + 1}=http://{mip}:{ETCD_PEER_PORT}" for j, (_, mip, _) in enumerate(self.etcd))
        log = open(self.workdir / f"etcd{i + 1}.log", "a")
        proc = subprocess.Popen(
            ["ip", "netns", "exec", netns, "etcd", "--name", f"etcd{i + 1}", "--data-dir", str(data),
             "--listen-client-urls", f"http://{ip}:{ETCD_CLIENT_PORT}",
             "--advertise-client-urls", f"http://{ip}:{ETCD_CLIENT_PORT}",
             "--listen-peer-urls", f"http://{ip}:{ETCD_PEER_PORT}",
             "--initial-advertise-peer-urls", f"http://{ip}:{ETCD_PEER_PORT}",
             "--initial-cluster", initial_cluster, "--initial-cluster-state", "new",
             "--initial-cluster-token", self.prefix],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self.etcd[i] = (netns, ip, proc)

    def stop_etcd_member(self, i: int, sig: int = signal.SIGKILL) -> None:
        netns, ip, proc = self.etcd[i]
        if proc is not None and proc.poll() is None:
            proc.send_signal(sig)
            proc.wait(15)
        self.etcd[i] = (netns, ip, None)

    def _etcd_healthy(self) -> bool:
        netns, ip, _ = self.etcd[0]
        run = in_ns(netns, "etcdctl", "--endpoints", self.etcd_endpoints, "endpoint", "health", check=False,
                    env={**os.environ, "ETCDCTL_API": "3"})
        return run.returncode == 0

    def add_host(self, index: int) -> Host:
        name = f"host{index}"
        ip = f"{FABRIC_NET}.{10 + index}"
        netns = self._netns(f"{self.prefix}-{name}")
        self._attach(netns, ip, 10 + index)
        in_ns(netns, "ip", "route", "add", "default", "via", OUTSIDE_IP)
        if self.ipv6:
            in_ns(netns, "ip", "-6", "route", "add", "default", "via", OUTSIDE_IP6)
        dirs = self.workdir / name
        for sub in ("run", "lib", "etc", "log"):
            (dirs / sub).mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("CALICO_", "ETCD_", "DATASTORE", "FELIX_", "NODENAME", "IP"))}
        env.update({
            "NODENAME": name, "IP": ip, "ETCD_ENDPOINTS": self.etcd_endpoints, "DATASTORE_TYPE": "etcdv3",
            "CALICO_RUN_DIR": str(dirs / "run"), "CALICO_LIB_DIR": str(dirs / "lib"),
            "CALICO_CONFIG_DIR": str(dirs / "etc"), "CALICO_LOG_DIR": str(dirs / "log"),
            "CALICO_NETWORKING_BACKEND": self.backend,
            "CALICO_IPV4POOL_CIDR": "10.244.0.0/16", "CALICO_IPV4POOL_BLOCK_SIZE": "26",
            "CALICO_IPV4POOL_IPIP": "Never", "CALICO_IPV4POOL_NAT_OUTGOING": "true",
            "CALICO_IPV4POOL_VXLAN": "Always" if self.backend == "vxlan" else "Never",
            "NO_DEFAULT_POOLS": "false", "FELIX_HEALTHENABLED": "true", "FELIX_IPV6SUPPORT": "false",
            "FELIX_DEFAULTENDPOINTTOHOSTACTION": "ACCEPT", "FELIX_IPTABLESREFRESHINTERVAL": "10",
            "FELIX_ROUTEREFRESHINTERVAL": "10", "FELIX_IPSETSREFRESHINTERVAL": "10",
        })
        if self.ipv6:
            env.update({"IP6": "autodetect", "CALICO_IPV6POOL_CIDR": IPV6_POOL, "CALICO_IPV6POOL_BLOCK_SIZE": "122",
                        "FELIX_IPV6SUPPORT": "true"})
        env.update(self.host_env)
        host = Host(name, netns, ip, dirs, env, ip6=f"{FABRIC_NET6}:{10 + index}" if self.ipv6 else "")
        self.hosts.append(host)
        return host

    def start_host(self, host: Host) -> None:
        log = open(host.log_path, "a")
        host.proc = subprocess.Popen(["ip", "netns", "exec", host.netns, _bin("calico-node"), "start"], env=host.env,
                                     stdout=log, stderr=subprocess.STDOUT, cwd=str(ROOT), start_new_session=True)
        log.close()

    def wait_started(self, host: Host, timeout: float = 90) -> None:
        if not eventually(lambda: "Calico node started successfully" in host.log_text()
                          or (host.proc is not None and host.proc.poll() is not None), timeout):
            raise RuntimeError(f"{host.name} did not start within {timeout}s:\n{host.log_text()[-3000:]}")
        if host.proc.poll() is not None:
            raise RuntimeError(f"{host.name}: calico-node start exited with {host.proc.returncode}:\n"
                               f"{host.log_text()[-3000:]}")

    def stop_host(self, host: Host, sig: int = signal.SIGTERM, timeout: float = 30) -> int | None:
        if host.proc is None:
            return None
        if host.proc.poll() is None:
            host.proc.send_signal(sig)
            try:
                host.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(host.proc.pid, signal.SIGKILL)
                host.proc.wait()
        code = host.proc.returncode
        host.proc = None
        return code

    # -- pods and probes --------------------------------------------------------------------------

    def add_pod(self, host: Host, name: str, namespace: str = "default", labels: dict | None = None,
                ports: str = "") -> tuple[str, str]:
        """(pod namespace, pod IPv4 address)."""
        netns, ips = self.add_pod_addresses(host, name, namespace, labels, ports)
        return netns, ips[0]

    def add_pod_addresses(self, host: Host, name: str, namespace: str = "default", labels: dict | None = None,
                          ports: str = "") -> tuple[str, list[str]]:
        """(pod namespace, the pod's addresses: IPv4, then IPv6 in a dual-stack cluster)."""
        label_text = ",".join(f"{k}={v}" for k, v in (labels or {}).items())
        netns = self.pod_netns(host, name, namespace)
        # The runtime's part: the pod's namespace, made here where it stays visible.
        _run("ip", "netns", "add", netns)
        self._namespaces.append(netns)
        argv = [_bin("calico-node"), "pod", "add", name, "-n", namespace, "--netns", netns]
        if label_text:
            argv += ["--labels", label_text]
        if ports:
            argv += ["--ports", ports]
        if self.ipv6:
            argv.append("--ipv6")
        return netns, host.run(*argv).stdout.split()

    def pod_netns(self, host: Host, name: str, namespace: str = "default") -> str:
        return f"{self.prefix}-{host.name}-{namespace}-{name}"

    def del_pod(self, host: Host, name: str, namespace: str = "default") -> None:
        netns = self.pod_netns(host, name, namespace)
        host.run(_bin("calico-node"), "pod", "del", name, "-n", namespace, "--netns", netns)
        _run("ip", "netns", "del", netns, check=False)

    def listen(self, netns: str, port: int) -> None:
        self._listeners.append(Listener(netns, port, 46 if self.ipv6 else 4))

    def probe(self, src_netns: str, proto: str, dst_ip: str, port: int = 0, timeout: float = 1.0) -> Result:
        return probe(src_netns, proto, dst_ip, port, timeout)

    # -- teardown ----------------------------------------------------------------------------------

    def close(self) -> None:
        for lst in self._listeners:
            lst.close()
        self._listeners.clear()
        for host in self.hosts:
            try:
                self.stop_host(host)
            except (OSError, subprocess.SubprocessError):
                pass
        for i in range(len(self.etcd)):
            try:
                self.stop_etcd_member(i)
            except (OSError, subprocess.SubprocessError):
                pass
        cleanup(self.prefix)
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> "Cluster":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()


def cleanup(prefix: str) -> list[str]:
    """Remove every namespace whose name starts with ``prefix`` (the cluster's own and its
    pods'), after killing what still runs in them."""
    names = [line.split()[0] for line in _run("ip", "netns", "list").stdout.splitlines() if line.strip()]
    ours = sorted((n for n in names if n.startswith(prefix + "-")), key=lambda n: n.count("-"), reverse=True)
    removed = []
    for name in ours:
        pids = _run("ip", "netns", "pids", name, check=False).stdout.split()
        for pid in pids:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
        time.sleep(0.05 if pids else 0)
        if _run("ip", "netns", "del", name, check=False).returncode == 0:
            removed.append(name)
    return removed


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--cleanup":
        print("\n".join(cleanup(sys.argv[2])) or "nothing to remove")
    else:
        print("usage: python -m e2e.cluster --cleanup PREFIX", file=sys.stderr)
        sys.exit(2)
