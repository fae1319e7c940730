"""Calico 3.32's "non-cluster hosts" install docs, followed as an operator would.

Pages (tigera/docs, calico_versioned_docs/version-3.32/):

* getting-started/bare-metal/installation/binary.mdx - the environment file
  (``FELIX_DATASTORETYPE``, ``FELIX_ETCDENDPOINTS``, ``FELIX_ETCD*FILE``), the systemd unit
  ``ExecStart=/usr/local/bin/calico-node -felix`` with ``Restart=on-failure``, and "Initialize
  the datastore": ``calicoctl create -f -`` of a YAML *list* holding the host's Node, named
  after the hostname.
* network-policy/hosts/protect-hosts.mdx - the GlobalNetworkPolicy ``k8s-worker``, the
  HostEndpoint for ``eth0``, the failsafe ports (``FailsafeInboundHostPorts``) and
  ``defaultEndpointToHostAction`` in FelixConfiguration ``default``.
* _includes/content/_docker-container-service.mdx (container.mdx) - the ``docker run --net=host
  --privileged ... IMAGE /bin/calico-node -felix`` unit, with the sample environment
  file's empty ``CALICO_NODENAME``/``CALICO_IP``/``CALICO_AS``.

The binary form runs the installed ``calico-node`` in a throwaway network namespace (and
UTS namespace, for its hostname); the container form runs the image in a private dockerd
(tests/docker_env.py). Nothing touches this machine's network.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from e2e.probes import eventually
from netns import Namespace
from nsforward import Forwarder

pytestmark = pytest.mark.etcd

BIN = Path(sys.executable).parent
HOST_IP = "10.232.0.1"


def _ctl(endpoint: str, *argv: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    env = {"PATH": os.environ["PATH"], "DATASTORE_TYPE": "etcdv3", "ETCD_ENDPOINTS": endpoint}
    return subprocess.run([str(BIN / "calicoctl"), *argv], input=stdin, env=env, capture_output=True,
                          text=True, timeout=60)


def _tables(ns: Namespace) -> str:
    return (ns.run("iptables-legacy-save", check=False).stdout
            + ns.run("iptables-nft-save", check=False).stdout)


# The docs' "Initialize the datastore" step: a list of one Node, named after the hostname.
NODE_LIST = """- apiVersion: projectcalico.org/v3
  kind: Node
  metadata:
    name: {name}
"""

PROTECT = """apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata:
  name: k8s-worker
spec:
  selector: "role == 'k8s-worker'"
  order: 0
  ingress:
    - action: Allow
      protocol: TCP
      source:
        nets: ['192.0.2.0/24']
      destination:
        ports: [22]
    - action: Allow
      protocol: ICMP
    - action: Allow
      protocol: TCP
      destination:
        ports: [10250]
  egress:
    - action: Allow
      protocol: TCP
      destination:
        nets: ['127.0.0.1/32']
        ports: [2379]
    - action: Allow
      protocol: UDP
      destination:
        ports: [53, 67]
---
apiVersion: projectcalico.org/v3
kind: HostEndpoint
metadata:
  name: my-host-eth0
  labels:
    role: k8s-worker
    environment: production
spec:
  interfaceName: eth0
  node: {node}
  expectedIPs: ['{ip}']
"""


class _Felix:
    """``calico-node -felix`` as the binary page's unit starts it, in ``ns`` with its own
    hostname (a UTS namespace); its output in ``log``."""

    def __init__(self, ns: Namespace, hostname: str, env: dict, log: Path):
        self.log = log
        with open(log, "a") as out:
            self.proc = ns.popen("unshare", "--uts", "sh", "-c", 'hostname "$1" && shift && exec "$@"', "sh",
                                 hostname, str(BIN / "calico-node"), "-felix", env=env, stdout=out,
                                 stderr=subprocess.STDOUT)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def test_binary_install_felix_then_protect_host(etcd_clean, tmp_path):
    """binary.mdx steps 3-5 and protect-hosts.mdx, on a host whose name has capitals."""
    hostname = f"BM-Host-{os.getpid()}"
    node = hostname.lower()  # libcalico-go's names.Hostname, which Felix and calicoctl use
    port = int(etcd_clean.endpoint.rsplit(":", 1)[1])
    # The environment file as the binary page gives it (no TLS here: the file paths empty),
    # plus a failsafe port of our own; the CALICO_*_DIR keep the run off this machine's /var.
    env = {"PATH": os.environ["PATH"], "FELIX_DATASTORETYPE": "etcdv3",
           "FELIX_ETCDENDPOINTS": "http://127.0.0.1:2379", "FELIX_ETCDCAFILE": "", "FELIX_ETCDCERTFILE": "",
           "FELIX_ETCDKEYFILE": "", "FELIX_FAILSAFEINBOUNDHOSTPORTS": "tcp:22,udp:68,tcp:179,tcp:2222",
           "CALICO_RUN_DIR": str(tmp_path / "run"), "CALICO_LIB_DIR": str(tmp_path / "lib"),
           "CALICO_LOG_DIR": str(tmp_path / "log")}
    (tmp_path / "run").mkdir()  # the unit's ExecStartPre=mkdir -p /var/run/calico
    felix = None
    with Namespace("cbm") as ns, Forwarder(ns.name, 2379, ("127.0.0.1", port)):
        ns.run("ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth0p")
        ns.run("ip", "addr", "add", f"{HOST_IP}/24", "dev", "eth0")
        ns.run("ip", "link", "set", "eth0", "up")
        ns.run("ip", "link", "set", "eth0p", "up")
        try:
            felix = _Felix(ns, hostname, env, tmp_path / "felix.out")
            assert eventually(lambda: f"starting for host {node}\n" in felix.text(), 30), felix.text()[-3000:]

            # Step 5: the datastore is initialised by creating the first Node.
            run = _ctl(etcd_clean.endpoint, "create", "-f", "-", stdin=NODE_LIST.format(name=node))
            assert run.returncode == 0, run.stdout + run.stderr
            assert "Successfully created 1 'Node' resource(s)" in run.stdout
            assert eventually(lambda: ":cali-INPUT" in _tables(ns), 40), felix.text()[-3000:]
            assert felix.proc.poll() is None

            # protect-hosts.mdx: the policy and the host endpoint for eth0.
            run = _ctl(etcd_clean.endpoint, "apply", "-f", "-", stdin=PROTECT.format(node=node, ip=HOST_IP))
            assert run.returncode == 0, run.stdout + run.stderr

            def programmed() -> bool:
                text = _tables(ns)
                return ":cali-th-eth0" in text and ":cali-fh-eth0" in text and "k8s-worker" in text

            assert eventually(programmed, 40), _tables(ns)[-4000:] + felix.text()[-3000:]
            text = _tables(ns)
            # Failsafe inbound ports come from FELIX_FAILSAFEINBOUNDHOSTPORTS.
            failsafe_in = [line for line in text.splitlines() if line.startswith("-A cali-failsafe-in ")]
            assert any(line.endswith("--dports 2222 -j ACCEPT") for line in failsafe_in), failsafe_in

            # defaultEndpointToHostAction in FelixConfiguration default: Felix exits to
            # restart (the unit's Restart=on-failure brings it back).
            run = _ctl(etcd_clean.endpoint, "apply", "-f", "-", stdin=(
                "apiVersion: projectcalico.org/v3\nkind: FelixConfiguration\nmetadata:\n  name: default\n"
                "spec:\n  logSeverityScreen: Info\n  reportingInterval: 0s\n"
                "  defaultEndpointToHostAction: Accept\n"))
            assert run.returncode == 0, run.stdout + run.stderr
            felix.proc.wait(40)
            assert felix.proc.returncode == 129, felix.text()[-3000:]
            felix = _Felix(ns, hostname, env, tmp_path / "felix.out")

            def accepting() -> bool:
                chain = [line for line in _tables(ns).splitlines() if line.startswith("-A cali-wl-to-host ")]
                return bool(chain) and "-j ACCEPT" in chain[-1]

            assert eventually(accepting, 40), _tables(ns)[-4000:]
        finally:
            if felix is not None:
                felix.stop()


def test_felix_hostname_is_lowercased(monkeypatch, tmp_path):
    """Without NODENAME/FELIX_FELIXHOSTNAME Felix uses the hostname as libcalico-go's
    names.Hostname gives it (trimmed, lower case): the name the docs' Node carries."""
    from node.cli.roles import felix
    from node.config import Paths

    for var in ("NODENAME", "FELIX_FELIXHOSTNAME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("CALICO_LIB_DIR", str(tmp_path))
    monkeypatch.setattr(felix.socket, "gethostname", lambda: "Web-01.Example.COM ")
    assert felix.hostname_from_env(Paths.from_env()) == "web-01.example.com"


@pytest.mark.docker
def test_container_install_unit(etcd_clean, tmp_path):
    """_docker-container-service.mdx: the unit's docker run, image command
    ``/bin/calico-node -felix``, with the sample environment file's values."""
    from docker_env import NamespacedDockerd, node_image, system_docker
    from node.cli.ctl._node_run import host_privileges

    image = node_image()
    source = system_docker()
    port = int(etcd_clean.endpoint.rsplit(":", 1)[1])
    # The sample EnvironmentFile, as systemd reads it (quotes removed), without TLS.
    calico_env = {"DATASTORE_TYPE": "etcdv3", "ETCD_ENDPOINTS": "http://127.0.0.1:2379",
                  "ETCD_CA_CERT_FILE": "", "ETCD_CERT_FILE": "", "ETCD_KEY_FILE": "",
                  "CALICO_NODENAME": "", "NO_DEFAULT_POOLS": "true", "CALICO_IP": "", "CALICO_IP6": "",
                  "CALICO_AS": "", "CALICO_NETWORKING_BACKEND": "bird", "KUBECONFIG": ""}
    name = f"calico-node-bm-{os.getpid()}"
    log_dir, pki = tmp_path / "log", tmp_path / "pki"  # (host paths the test must not create)
    pki.mkdir()
    with NamespacedDockerd() as daemon, Forwarder(daemon.ns.name, 2379, ("127.0.0.1", port)):
        ns = daemon.ns
        ns.run("ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth0p")
        ns.run("ip", "addr", "add", f"{HOST_IP}/24", "dev", "eth0")
        ns.run("ip", "link", "set", "eth0", "up")
        daemon.load_image(source, image)
        e = calico_env
        # --privileged, unless this machine's capability bounding set cannot grant it: then
        # the explicit equivalent calicoctl node run uses (a limit of this machine, not the docs').
        privileges = host_privileges()
        sys_mount = [f"-v={h}:{c}" for h, c in privileges.extra_volumes()]
        argv = ["docker", "run", "--net=host", *privileges.flags(), *sys_mount, f"--name={name}", "-d",
                "-e", f"NODENAME={e['CALICO_NODENAME']}", "-e", f"IP={e['CALICO_IP']}",
                "-e", f"IP6={e['CALICO_IP6']}", "-e", f"CALICO_NETWORKING_BACKEND={e['CALICO_NETWORKING_BACKEND']}",
                "-e", f"AS={e['CALICO_AS']}", "-e", f"NO_DEFAULT_POOLS={e['NO_DEFAULT_POOLS']}",
                "-e", f"DATASTORE_TYPE={e['DATASTORE_TYPE']}", "-e", f"ETCD_ENDPOINTS={e['ETCD_ENDPOINTS']}",
                "-e", f"ETCD_CA_CERT_FILE={e['ETCD_CA_CERT_FILE']}", "-e", f"ETCD_CERT_FILE={e['ETCD_CERT_FILE']}",
                "-e", f"ETCD_KEY_FILE={e['ETCD_KEY_FILE']}", "-e", f"KUBECONFIG={e['KUBECONFIG']}",
                "-v", f"{log_dir}:/var/log/calico", "-v", "/var/lib/calico:/var/lib/calico",
                "-v", "/var/run/calico:/var/run/calico", "-v", "/run/docker/plugins:/run/docker/plugins",
                "-v", "/lib/modules:/lib/modules", "-v", f"{pki}:/pki",
                image, "/bin/calico-node", "-felix"]
        docker_env = {**os.environ, **daemon.env}
        run = ns.run(*argv, env=docker_env, check=False, timeout=120)
        assert run.returncode == 0, run.stdout + run.stderr + daemon.log_tail()
        container = daemon.client.containers.get(name)

        def logs() -> str:
            return container.logs().decode(errors="replace")

        # The hostname (--net=host: the machine's, lower-cased) names the host; with
        # NODENAME empty Felix falls back to it.
        assert eventually(lambda: "starting for host " in logs(), 60), logs()[-3000:]
        node = logs().split("starting for host ", 1)[1].split()[0]
        assert node == node.lower()
        run = _ctl(etcd_clean.endpoint, "create", "-f", "-", stdin=NODE_LIST.format(name=node))
        assert run.returncode == 0, run.stdout + run.stderr
        assert eventually(lambda: ":cali-INPUT" in _tables(ns), 60), logs()[-3000:]
        container.reload()
        assert container.attrs["State"]["Running"], logs()[-3000:]
        # ExecStop=docker stop: a clean exit.
        started = time.monotonic()
        container.stop(timeout=30)
        container.reload()
        assert container.attrs["State"]["ExitCode"] == 0, logs()[-3000:]
        assert time.monotonic() - started < 25
