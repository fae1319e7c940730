"""``make demo``: a three-host Calico cluster on this machine, shown working.

Three host namespaces on a shared bridge each run the real entrypoint ``calico-node
start`` (BGP full meshes through BIRD and BIRD6, the policy agent, the renderer), against
an etcd in its own namespace. The cluster is dual-stack: two pods per host are added the
way the CNI plugin adds them, each with an IPv4 and an IPv6 address. The demo prints each
host's ``calicoctl node status``, a connectivity table between all pods over both
families, then applies a policy (only ``api`` pods may reach ``db`` pods) and prints the
table again.

Everything is torn down at the end, on Ctrl-C and on failure. ``KEEP=1`` leaves the
cluster running and prints how to use it and how to tear it down.
"""
from __future__ import annotations

import os
import shlex
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from e2e.cluster import Cluster
from e2e.probes import eventually

PORT = 8080
PODS = [  # (host index, pod, role)
    (0, "web-1", "web"), (0, "api-1", "api"),
    (1, "api-2", "api"), (1, "db-1", "db"),
    (2, "web-2", "web"), (2, "db-2", "db"),
]
POLICY = """\
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: db-only-from-api, namespace: demo}
spec:
  selector: role == 'db'
  types: [Ingress]
  ingress:
  - action: Allow
    protocol: TCP
    source: {selector: role == 'api'}
    destination: {ports: [8080]}
"""
NAMESPACE_PROFILE = """\
apiVersion: projectcalico.org/v3
kind: Profile
metadata: {name: kns.demo}
spec:
  ingress: [{action: Allow}]
  egress: [{action: Allow}]
  labelsToApply: {pcns.projectcalico.org/name: demo}
"""


def say(text: str) -> None:
    print(text, flush=True)


def matrix(cluster: Cluster, pods: dict[str, tuple[str, list[str]]]) -> list[list[tuple[bool, ...]]]:
    """For each (from, to) pair, whether TCP gets through over each of ``to``'s addresses
    (IPv4, IPv6)."""
    names = list(pods)

    def one(pair):
        src, dst = pair
        return tuple(cluster.probe(pods[src][0], "tcp", ip, PORT, timeout=1.0).ok for ip in pods[dst][1])

    pairs = [(s, d) for s in names for d in names]
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(one, pairs))
    return [results[i * len(names):(i + 1) * len(names)] for i in range(len(names))]


def _cell(oks: tuple[bool, ...]) -> str:
    if all(oks):
        return "yes"
    if not any(oks):
        return "-"
    return "/".join(family for family, ok in zip(("v4", "v6"), oks) if ok)  # the families disagree


def print_matrix(title: str, names: list[str], grid: list[list[tuple[bool, ...]]]) -> None:
    width = max(len(n) for n in names)
    say(f"\n{title}  (rows: from, columns: to; TCP {PORT}; yes: over IPv4 and IPv6, v4 or v6: over that one only)")
    say(" " * (width + 2) + "  ".join(n.rjust(width) for n in names))
    for name, row in zip(names, grid):
        cells = "  ".join(_cell(oks).rjust(width) for oks in row)
        say(f"{name.rjust(width)}  {cells}")


def run(keep: bool) -> int:
    started = time.monotonic()
    cluster = Cluster(hosts=3, prefix=f"demo{os.getpid() % 10000}", ipv6=True)
    try:
        say("Starting a 3-host dual-stack Calico cluster in network namespaces...")
        cluster.start(progress=lambda msg: say(f"  {msg}"))
        host = cluster.hosts[0]
        host.calicoctl("apply", "-f", "-", stdin=NAMESPACE_PROFILE)
        say("Adding two pods per host (IPAM, cali veths, WorkloadEndpoints)...")
        pods: dict[str, tuple[str, list[str]]] = {}
        for index, name, role in PODS:
            netns, ips = cluster.add_pod_addresses(cluster.hosts[index], name, "demo", {"role": role})
            pods[name] = (netns, ips)
            cluster.listen(netns, PORT)
            say(f"  {name:6s} on {cluster.hosts[index].name}: {', '.join(ips)}")
        say("\nWaiting for BGP to carry every host's pod routes...")
        names = list(pods)
        full = eventually(lambda: all(all(oks) for row in matrix(cluster, pods) for oks in row), 60, interval=1.0)
        for h in cluster.hosts:
            say(f"\n== calicoctl node status on {h.name}")
            say(h.calicoctl("node", "status", check=False).stdout.rstrip())
        print_matrix("Connectivity before any policy", names, matrix(cluster, pods))
        if not full:
            say("\nNot every pod could reach every other pod; see the host logs under " + str(cluster.workdir))
            return 1
        say("\nApplying a policy: only api pods may reach db pods")
        say("\n".join("    " + line for line in POLICY.splitlines()))
        host.calicoctl("apply", "-f", "-", stdin=POLICY)

        def expected(grid):
            for i, src in enumerate(names):
                for j, dst in enumerate(names):
                    # A pod reaching itself never leaves its own namespace: always allowed.
                    want = src == dst or not dst.startswith("db") or src.startswith("api")
                    if any(ok != want for ok in grid[i][j]):
                        return False
            return True

        eventually(lambda: expected(matrix(cluster, pods)), 30, interval=1.0)
        grid = matrix(cluster, pods)
        print_matrix("Connectivity with the policy", names, grid)
        say(f"\nDone in {time.monotonic() - started:.0f} s.")
        if not expected(grid):
            say("The policy did not take effect as expected; see the host logs under " + str(cluster.workdir))
            return 1
        if keep:
            _print_keep_help(cluster)
            cluster = None  # left running on purpose
        return 0
    except KeyboardInterrupt:
        say("\nInterrupted; tearing down.")
        return 130
    finally:
        if cluster is not None:
            say("Tearing down the cluster...")
            cluster.close()


def _print_keep_help(cluster: Cluster) -> None:
    h = cluster.hosts[0]
    env = " ".join(f"{k}={shlex.quote(h.env[k])}" for k in ("ETCD_ENDPOINTS", "NODENAME", "CALICO_RUN_DIR"))
    say(f"""
The cluster is still running (KEEP=1). Try, as root:
  ip netns exec {h.netns} env {env} {sys.executable.rsplit('/', 1)[0]}/calicoctl node status
  ip netns exec {h.netns} env {env} {sys.executable.rsplit('/', 1)[0]}/calicoctl get workloadendpoints -A
  ip netns exec {h.netns} env {env} {sys.executable.rsplit('/', 1)[0]}/calico-node pod add extra -n demo
  ip netns exec {cluster.pod_netns(cluster.hosts[0], 'web-1', 'demo')} ping -c1 <a pod IP>
Host logs: {cluster.workdir}
Tear it down with:
  {sys.executable} -m e2e.cluster --cleanup {cluster.prefix} && rm -rf {cluster.workdir}""")


def main() -> int:
    if os.geteuid() != 0:
        say("make demo needs root (it creates network namespaces)")
        return 1
    return run(keep=os.environ.get("KEEP", "") not in ("", "0"))


if __name__ == "__main__":
    sys.exit(main())
