"""The node image for real: ``make image``, then ``calicoctl node run`` starts it.

Safety: the node container runs with host networking and its policy agent programs
iptables, so it must not run in this machine's network namespace. ``calicoctl node run``
(unchanged: the same ``--net=host`` container it starts anywhere) is pointed with
DOCKER_HOST at a private dockerd that lives in a network namespace made for the test and
in a mount namespace whose /run and /var/lib are empty (tests/docker_env.py). calicoctl
itself runs in that namespace too, so its forwarding sysctls are the namespace's. etcd
runs on this machine's loopback and is reached from the namespace's 127.0.0.1:2379
through a relay (tests/nsforward.py). The test compares this machine's iptables before
and after, and removes containers, daemon and namespace even when it fails.
"""
from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from docker_env import NamespacedDockerd, node_image, ns_command, system_docker
from node import __version__
from node.config import DatastoreConfig
from node.datastore.client import DatastoreClient
from node.datastore.etcd import EtcdKV
from node.model import from_dict
from nsforward import Forwarder
from e2e.probes import eventually

pytestmark = [pytest.mark.docker, pytest.mark.etcd]

NODE = "img-node"
NODE_IP = "192.0.2.10"


@pytest.fixture(scope="module")
def image():
    return node_image()


def _host_tables() -> dict[str, str]:
    """This machine's iptables rules (both backends present here), without counters."""
    out = {}
    for tool in ("iptables-legacy-save", "ip6tables-legacy-save", "iptables-nft-save", "ip6tables-nft-save"):
        run = subprocess.run([tool], capture_output=True, text=True)
        if run.returncode == 0:
            out[tool] = "\n".join(line for line in run.stdout.splitlines()
                                  if not line.startswith("#") and not line.startswith(":"))
    return out


def _exec(container, *argv: str) -> tuple[int, str]:
    code, output = container.exec_run(list(argv))
    return code, output.decode(errors="replace")


def _wait(predicate, timeout: float, interval: float = 1.0):
    return eventually(predicate, timeout, interval)


def test_image_contents(image):
    """Entry point, templates and the tools the node runs are in the image."""
    client = system_docker()
    attrs = client.images.get(image).attrs["Config"]
    # tini is the init; the node is only the default command (Calico's image has CMD
    # start_runit and no ENTRYPOINT), so a command given to docker run replaces it.
    assert attrs["Entrypoint"] == ["/usr/bin/tini", "-g", "--"]
    assert attrs["Cmd"] == ["calico-node", "start"]
    assert "CALICO_TEMPLATES_DIR=/usr/share/calico-node/templates/bird" in attrs["Env"]
    script = ("set -e; bird --version 2>&1; bird6 --version 2>&1; iptables --version; command -v ipset; "
              "supervisord --version; calico-node version; calicoctl version --client; "
              "ls $CALICO_TEMPLATES_DIR; test -f $CALICO_SUPERVISORD_TEMPLATE && echo template-ok; "
              "for tool in birdcl birdcl6 versions restart-calico-confd; do command -v $tool; done; "
              # calicoctl datastore migrate import installs Calico's CRDs from the image.
              "/opt/calico-node/bin/python -c 'from node.cli.ctl.datastore import calico_crds; "
              "print(len(calico_crds()), \"CRDs for import\")'")
    output = client.containers.run(image, ["-c", script], entrypoint="sh", network_mode="none", remove=True)
    text = output.decode()
    for expected in ("BIRD version 1.6", "iptables v1.8", "/usr/sbin/ipset", "Client Version:", "bird.cfg.j2",
                     "template-ok", "/usr/bin/birdcl\n", "/usr/bin/birdcl6\n", "/usr/sbin/versions\n",
                     "/usr/sbin/restart-calico-confd\n", "23 CRDs for import"):
        assert expected in text, text
    # docker run IMAGE <command> runs that command (under tini), not the node.
    for argv in (["calico-node", "version"], ["calico-node", "-v"]):
        output = client.containers.run(image, argv, network_mode="none", remove=True)
        assert output.decode().strip() == __version__
    output = client.containers.run(image, ["versions"], network_mode="none", remove=True).decode()
    assert output.startswith(f"{__version__}\n\n") and "BIRD version 1.6" in output, output


def test_calicoctl_node_run_starts_the_image(image, etcd, tmp_path):
    source = system_docker()
    tables_before = _host_tables()
    kv = EtcdKV(DatastoreConfig(etcd_endpoints=(etcd.endpoint,)))
    client = DatastoreClient(kv)
    # Felix keeps its health endpoint off unless asked (as calicoctl-run nodes have it);
    # the operator's way to turn it on for such a node is FelixConfiguration.
    client.create(from_dict({"apiVersion": "projectcalico.org/v3", "kind": "FelixConfiguration",
                             "metadata": {"name": "default"}, "spec": {"healthEnabled": True}}))
    config = tmp_path / "calicoctl.cfg"
    config.write_text("apiVersion: projectcalico.org/v3\nkind: CalicoAPIConfig\nmetadata: {}\n"
                      "spec:\n  datastoreType: etcdv3\n  etcdEndpoints: http://127.0.0.1:2379\n")
    log_dir = tmp_path / "log"
    try:
        with NamespacedDockerd() as daemon, Forwarder(daemon.ns.name, 2379, ("127.0.0.1", etcd.client_port)):
            ns = daemon.ns
            ns.run("ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth0-peer")
            ns.run("ip", "addr", "add", f"{NODE_IP}/24", "dev", "eth0")
            ns.run("ip", "link", "set", "eth0", "up")
            ns.run("ip", "link", "set", "eth0-peer", "up")
            started = time.monotonic()
            daemon.load_image(source, image)
            load_seconds = time.monotonic() - started

            argv = ["calicoctl", "node", "run", f"--node-image={image}", f"--name={NODE}",
                    f"--log-dir={log_dir}", "-c", str(config)]
            started = time.monotonic()
            run = subprocess.run(ns_command(ns, [_calicoctl(), *argv[1:]], daemon.env),
                                 capture_output=True, text=True, timeout=120)
            run_seconds = time.monotonic() - started
            assert run.returncode == 0, f"{run.stdout}\n{run.stderr}\n{daemon.log_tail()}"
            lines = run.stdout.splitlines()
            assert "Calico node started successfully" in lines
            assert lines[:2] == ["Running command to load modules: modprobe -a xt_set ip6_tables",
                                 "Enabling IPv4 forwarding"]
            assert "Removing old calico-node container (if running)." in lines
            assert "Container started, checking progress logs." in lines
            # The namespace's forwarding was switched on by calicoctl's kernel preparation.
            assert ns.run("cat", "/proc/sys/net/ipv4/ip_forward").stdout.strip() == "1"
            command = next(line for line in lines if line.startswith("docker run "))
            privileged = "--privileged" in command.split()
            note = [line for line in lines if line.startswith("Note: this host's capability bounding set lacks")]
            assert privileged == (not note), run.stdout
            assert f"-e NODENAME={NODE}" in command and f"-v {log_dir}:/var/log/calico" in command

            # The Node resource is in etcd with the namespace's address.
            node = client.get("Node", NODE)
            assert node.spec["bgp"]["ipv4Address"] == f"{NODE_IP}/24"

            container = daemon.client.containers.get("calico-node")
            assert container.attrs["HostConfig"]["NetworkMode"] == "host"
            assert container.attrs["HostConfig"]["RestartPolicy"]["Name"] == "always"

            # Readiness and liveness as the DaemonSet's probes ask for them.
            assert _wait(lambda: _exec(container, "calico-node", "-felix-ready", "-bird-ready")[0] == 0, 90), \
                _exec(container, "calico-node", "-felix-ready", "-bird-ready")[1]
            code, text = _exec(container, "calico-node", "health", "--felix-live", "--bird-live")
            assert code == 0, text

            # calicoctl node status inside the container sees the agent (argv calico-node
            # ... -felix) and BIRD; a single node has no peers.
            code, text = _exec(container, "calicoctl", "node", "status")
            assert code == 0, text
            assert text.startswith("Calico process is running.\n\nIPv4 BGP status\nNo IPv4 peers found.\n"), text

            # birdcl talks to the node's BIRD on its socket in /var/run/calico.
            code, text = _exec(container, "birdcl", "show", "protocols")
            assert code == 0 and "BIRD 1.6" in text and "device1" in text, text
            code, text = _exec(container, "birdcl6", "show", "status")
            assert code == 0 and "Daemon is up and running" in text, text

            # File logging is on (calicoctl node run leaves it on): each program's lines are
            # in the container log and, timestamped, under --log-dir.
            logs = container.logs().decode(errors="replace")
            assert "Felix (calico-node-py) starting" in logs and "confd starting for node" in logs, logs[-3000:]
            felix_log = (log_dir / "felix" / "current").read_text().splitlines()
            assert felix_log and all(re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{5} ", line)
                                     for line in felix_log), felix_log[:3]
            assert (log_dir / "bird" / "current").read_text().strip()

            # The agent programmed the test namespace, not this machine.
            rules = ns.run("iptables-legacy-save").stdout + ns.run("iptables-nft-save", check=False).stdout
            assert ":cali-INPUT" in rules, rules[:2000]

            # docker stop ends it cleanly (SIGTERM handled, exit status 0, well within the grace period).
            started = time.monotonic()
            container.stop(timeout=30)
            stop_seconds = time.monotonic() - started
            container.reload()
            assert container.attrs["State"]["Status"] == "exited"
            assert container.attrs["State"]["ExitCode"] == 0, container.logs()[-3000:].decode(errors="replace")
            assert stop_seconds < 25
            container.remove()

            _run_init_system(daemon, argv, log_dir)
            print(f"\nimage load {load_seconds:.1f}s, node run {run_seconds:.1f}s, docker stop {stop_seconds:.1f}s")
    finally:
        kv.close()
    assert _host_tables() == tables_before


def _run_init_system(daemon: NamespacedDockerd, argv: list[str], log_dir) -> None:
    """--init-system: in the foreground until SIGTERM, which stops (and removes) the container."""
    proc = subprocess.Popen(ns_command(daemon.ns, [_calicoctl(), *argv[1:], "--init-system"], daemon.env),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen: list[str] = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            seen.append(line.rstrip("\n"))
            if line.rstrip("\n") == "Calico node started successfully":
                break
        assert "Calico node started successfully" in seen, "\n".join(seen)
        assert " --rm " in next(line for line in seen if line.startswith("docker run "))
        assert proc.poll() is None  # still in the foreground
        # Stop it once it is up (a SIGTERM in the instant calico-node start hands over to
        # supervisord would be lost: PID 1 without a handler ignores it).
        container = daemon.client.containers.get("calico-node")
        assert container.attrs["HostConfig"]["AutoRemove"] is True
        assert _wait(lambda: _exec(container, "calico-node", "-felix-ready", "-bird-ready")[0] == 0, 90)
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0, rest[-3000:]
        assert "Stopping the calico-node container." in rest
        assert _wait(lambda: not daemon.client.containers.list(all=True), 20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _calicoctl() -> str:
    path = Path(sys.executable).parent / "calicoctl"
    return str(path) if path.exists() else shutil.which("calicoctl")


def test_namespaced_daemon_cleans_up_after_a_failure(image):
    """A test that fails mid-way still leaves no container, daemon, namespace or files."""
    source = system_docker()
    small = "calico-node-py-base:bookworm"  # the local base make image builds on, when it is used
    if not any(small in i.tags for i in source.images.list()):
        small = image
    daemon = NamespacedDockerd()

    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        with daemon:
            daemon.load_image(source, small)
            container = daemon.client.containers.run(small, ["-c", "sleep 600"], entrypoint="sh",
                                                     name="calico-node", network_mode="host", detach=True)
            container.reload()
            sleeper = container.attrs["State"]["Pid"]
            assert sleeper > 0 and Path(f"/proc/{sleeper}").exists()
            raise Boom()
    assert daemon.daemon.proc.poll() is not None
    assert not Path(f"/proc/{sleeper}").exists()
    assert not Path(f"/run/netns/{daemon.ns.name}").exists()
    assert not daemon.dir.exists()
