"""A node for policy-agent tests: a network namespace running the real ``calico-node
felix``, pods wired into it the way Calico's CNI plugin wires them, and an "external"
namespace on the node's eth0 link (spec Appendix B's topology).

The agent reaches the test's etcd through a forwarder (``nsforward``) listening on the
node namespace's 127.0.0.1:2379; the test writes resources straight into that etcd with
the datastore client. Everything is removed on ``close()``, also after a failure.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from e2e.pods import Pod, unwire, wire
from e2e.probes import Listener, eventually, probe
from netns import Closing, Namespace, open_linked
from node.datastore.client import DatastoreClient
from node.errors import AlreadyExists, NotFound
from node.model import Resource
from nsforward import Forwarder

ROOT = Path(__file__).resolve().parents[1]
NODE_IP = "10.88.0.1"
EXTERNAL_IP = "10.88.0.2"
ETCD_PORT = 2379
HEALTH_PORT = 9099

# Short intervals so drift is repaired within a test's patience.
FAST = {"FELIX_IPTABLESREFRESHINTERVAL": "2", "FELIX_IPSETSREFRESHINTERVAL": "2",
        "FELIX_ROUTEREFRESHINTERVAL": "2", "FELIX_INTERFACEREFRESHINTERVAL": "2",
        "FELIX_IPTABLESPOSTWRITECHECKINTERVALSECS": "1"}


def _resource(kind: str, name: str, spec: dict, namespace: str = "", labels: dict | None = None) -> Resource:
    meta = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    if labels:
        meta["labels"] = labels
    return Resource(kind, meta, spec)


class FelixNode(Closing):
    """One node namespace with the policy agent, its pods and an external peer."""

    def __init__(self, client: DatastoreClient, etcd_endpoint: str, name: str = "node1", env: dict | None = None):
        self.client = client
        self.name = name
        self.env_extra = dict(env or {})
        self._etcd_port = int(etcd_endpoint.rsplit(":", 1)[1])
        self.ns = Namespace("fxn")
        self.external = Namespace("fxx")
        self.pods: dict[str, Pod] = {}
        self._pod_ns: dict[str, Namespace] = {}
        self._listeners: list[Listener] = []
        self.proc: subprocess.Popen | None = None
        self.log_path: Path | None = None
        self._log_dir: Path | None = None
        self._forwarder: Forwarder | None = None

    # -- lifecycle ------------------------------------------------------------------------

    def setup(self) -> None:
        """Run by ``with``; on failure ``close()`` undoes what was done."""
        open_linked(self.ns, NODE_IP, self.external, EXTERNAL_IP)
        # The external peer routes the pool through the node (a router upstream would).
        self.external.run("ip", "route", "add", "10.65.0.0/16", "via", NODE_IP)
        # Like any real host, a default route (upstream via the external peer): proxy ARP
        # answers pods for 169.254.1.1 only when that address routes via another interface.
        self.ns.run("ip", "route", "add", "default", "via", EXTERNAL_IP)
        self.ns.run("sysctl", "-qw", "net.ipv4.ip_forward=1")
        self._forwarder = Forwarder(self.ns.name, ETCD_PORT, ("127.0.0.1", self._etcd_port))
        self._ensure_basics()

    def close(self) -> None:
        self.stop_agent()
        for lst in self._listeners:
            lst.close()
        self._listeners.clear()
        for pod in list(self.pods.values()):
            unwire(pod, self.ns.name)
        for ns in self._pod_ns.values():
            ns.close()
        self._pod_ns.clear()
        if self._forwarder is not None:
            self._forwarder.close()
            self._forwarder = None
        self.external.close()
        self.ns.close()

    def _ensure_basics(self) -> None:
        """What startup would have created: the Node, the tiers, a pool (no NAT)."""
        for res in (
            _resource("Node", self.name, {"bgp": {"ipv4Address": f"{NODE_IP}/24"}}),
            _resource("Tier", "default", {"order": 1000000, "defaultAction": "Deny"}),
            _resource("Tier", "kube-admin", {"order": 1000, "defaultAction": "Pass"}),
            _resource("Tier", "kube-baseline", {"order": 10000000, "defaultAction": "Pass"}),
        ):
            try:
                self.client.create(res)
            except AlreadyExists:
                pass

    def agent_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("CALICO_", "ETCD_", "DATASTORE", "FELIX_", "NODENAME"))}
        env.update({"NODENAME": self.name, "ETCD_ENDPOINTS": f"http://127.0.0.1:{ETCD_PORT}",
                    "FELIX_HEALTHENABLED": "true", "FELIX_HEALTHPORT": str(HEALTH_PORT),
                    "FELIX_LOGSEVERITYSCREEN": "info", **FAST, **self.env_extra})
        if self._log_dir is not None:
            # Endpoint status files go under the test's own directory, not the host's /var/run,
            # and so does the MTU file (not the host's /var/lib/calico).
            env.setdefault("FELIX_ENDPOINTSTATUSPATHPREFIX", str(self.status_prefix))
            env.setdefault("CALICO_LIB_DIR", str(self.lib_dir))
        return env

    @property
    def status_prefix(self) -> Path:
        return self._log_dir / f"run-{self.name}"

    @property
    def lib_dir(self) -> Path:
        return self._log_dir / f"lib-{self.name}"

    def start_agent(self, log_dir: Path) -> None:
        """Start the agent, restarted (like supervisor would) whenever it exits with
        Felix's config-changed code 129."""
        self._log_dir = log_dir
        self.log_path = log_dir / f"felix-{self.name}-{int(time.time() * 1000)}.log"
        self.restarts = 0
        self._supervising = True
        self._spawn()
        self._supervisor = threading.Thread(target=self._supervise, daemon=True)
        self._supervisor.start()

    def _spawn(self) -> None:
        with open(self.log_path, "a") as log:
            self.proc = self.ns.popen(sys.executable, "-m", "node.cli.calico_node", "felix", env=self.agent_env(),
                                      stdout=log, stderr=subprocess.STDOUT, cwd=str(ROOT))

    def _supervise(self) -> None:
        while self._supervising:
            proc = self.proc
            if proc is not None and proc.poll() == 129 and self._supervising:
                self.restarts += 1
                self._spawn()
            time.sleep(0.1)

    def stop_agent(self, sig: int = signal.SIGTERM) -> int | None:
        self._supervising = False
        if getattr(self, "_supervisor", None) is not None:
            self._supervisor.join(5)
            self._supervisor = None
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        code = self.proc.returncode
        self.proc = None
        return code

    def log_text(self) -> str:
        return self.log_path.read_text() if self.log_path and self.log_path.exists() else ""

    def ready(self) -> bool:
        run = self.ns.run("python3", "-c", (
            "import urllib.request,sys\n"
            f"try:\n  sys.exit(0 if urllib.request.urlopen('http://localhost:{HEALTH_PORT}/readiness', timeout=1)"
            ".status in (200, 204) else 1)\nexcept Exception:\n  sys.exit(1)"), check=False)
        return run.returncode == 0

    def wait_ready(self, timeout: float = 30.0) -> None:
        if not eventually(self.ready, timeout):
            raise AssertionError(f"agent not ready within {timeout}s; log:\n{self.log_text()[-4000:]}")

    # -- pods ---------------------------------------------------------------------------

    def add_pod(self, name: str, ip: str, namespace: str = "ns1", labels: dict | None = None,
                ports: list | None = None, write: bool = True) -> Pod:
        pod = Pod(namespace, name, self.name, [ip], dict(labels or {}), list(ports or []))
        ns = Namespace("fxp")
        ns.__enter__()
        self._pod_ns[name] = ns
        wire(pod, self.ns.name, ns.name)
        self.pods[name] = pod
        if write:
            self.write(pod.endpoint())
        return pod

    def _netns_of(self, where: str) -> str:
        return {"external": self.external.name, "node": self.ns.name}.get(where) or self.pods[where].netns

    def listen(self, where: str, port: int) -> None:
        self._listeners.append(Listener(self._netns_of(where), port))

    def can(self, src: str, proto: str, dst: str, port: int = 0, timeout: float = 1.0, mark: int = 0) -> bool:
        """One probe from a pod (or "external"/"node") to a pod (or "external"/"node", or an
        address), its packets carrying ``mark`` when given."""
        return self.probe(src, proto, dst, port, timeout, mark).ok

    def probe(self, src: str, proto: str, dst: str, port: int = 0, timeout: float = 1.0, mark: int = 0):
        """``dst``: a pod, "external", "node", or an address."""
        host = {"external": EXTERNAL_IP, "node": NODE_IP}.get(dst) or (
            self.pods[dst].ipv4 if dst in self.pods else dst)
        return probe(self._netns_of(src), proto, host, port, timeout, mark)

    # -- datastore --------------------------------------------------------------------------

    def write(self, res: Resource) -> None:
        """Create or replace (the way calicoctl apply does)."""
        self.client.apply(res)

    def delete(self, kind: str, name: str, namespace: str = "") -> None:
        try:
            self.client.delete(kind, name, namespace)
        except NotFound:
            pass

    def namespace_profile(self, namespace: str, labels: dict | None = None) -> None:
        """The profiles Calico's Kubernetes backend derives from a namespace and its
        default service account (allow-all namespace profile, as in KDD)."""
        apply = {f"pcns.{k}": v for k, v in (labels or {}).items()}
        apply["pcns.projectcalico.org/name"] = namespace
        self.write(_resource("Profile", f"kns.{namespace}", {"ingress": [{"action": "Allow"}],
                                                            "egress": [{"action": "Allow"}],
                                                            "labelsToApply": apply}))
        self.write(_resource("Profile", f"ksa.{namespace}.default",
                             {"labelsToApply": {"pcsa.projectcalico.org/name": "default"}}))

    def iptables_save(self, table: str = "filter", backend: str = "legacy") -> str:
        return self.ns.run(f"iptables-{backend}-save", "-t", table).stdout


@contextmanager
def felix_node_on_etcd(env: dict | None = None) -> Iterator[FelixNode]:
    """A FelixNode (agent not started yet) following a private etcd; both go afterwards."""
    from etcd_server import EtcdServer
    from node.config import DatastoreConfig
    from node.datastore.etcd import EtcdKV

    server = EtcdServer()
    server.start()
    kv = EtcdKV(DatastoreConfig(etcd_endpoints=(server.endpoint,)))
    try:
        with FelixNode(DatastoreClient(kv), server.endpoint, env=env) as node:
            yield node
    finally:
        kv.close()
        server.close()
