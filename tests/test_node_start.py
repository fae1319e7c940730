"""``calico-node start`` in a network namespace against a real etcd: the whole node comes
up under supervisord, turns ready once BIRD has a BGP session with a peer (a real BIRD in
the next namespace) and the policy agent is in sync, restarts what dies, and leaves
nothing behind on SIGTERM."""
from __future__ import annotations

import os
import re
import signal

import pytest

import confd_fixtures as fx
from confd_bird import BirdProcess
from node_start import ROOT, StartedNode, wait_for

pytestmark = pytest.mark.etcd

NODE_IP, PEER_IP = "10.231.0.1", "10.231.0.2"
SVLOGD_STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{5} ")
ALL = {"felix", "confd", "bird", "bird6", "node-services", "restarter"}

PEER_CONFIG = f"""router id {PEER_IP};
protocol device {{ scan time 2; }}
protocol bgp node1 {{
  local {PEER_IP} as 64512;
  neighbor {NODE_IP} as 64512;
  connect delay time 1;
  connect retry time 1;
  error wait time 1,2;
  graceful restart;
  import all;
  export none;
}}
"""


def calicoctl_sees_felix(processes: dict[int, list[str]]) -> bool:
    """calicoctl node status's rule: some process whose argv matches ["calico-felix"] or
    ["calico-node", "-felix"] position by position, any one position being enough."""
    for argv in processes.values():
        for wanted in (["calico-felix"], ["calico-node", "-felix"]):
            if any(i < len(argv) and argv[i] == w for i, w in enumerate(wanted)):
                return True
    return False


def by_program(node: StartedNode, program: str) -> list[list[str]]:
    pid = node.pid_of(program)
    return [argv for p, argv in node.processes().items() if p == pid]


def health(node: StartedNode, *flags: str) -> tuple[int, str]:
    run = node.calico_node(*flags)
    return run.returncode, run.stdout.strip()


def test_bgp_node_lifecycle(etcd_clean, client):
    with StartedNode(etcd_clean.endpoint, "node1", NODE_IP, PEER_IP, prefix="cst") as node:
        client.create(fx.node("peer", ipv4=f"{PEER_IP}/24"))  # a mesh peer for node1's BIRD
        node.start()
        assert node.wait_running(ALL), node.diagnostics()

        # rc.local's order: startup, tunnel addresses, then the line tools wait for, once.
        out = node.output()
        assert out.count("Calico node started successfully") == 1
        assert out.index("Running allocate-tunnel-addrs --run-once") < out.index("Calico node started successfully")
        # Every file of this node is under its own directories.
        assert (node.config_dir / "supervisord.conf").is_file()
        assert (node.run_dir / "supervisor.sock").exists() and (node.run_dir / "supervisord.pid").is_file()
        assert (node.lib_dir / "nodename").read_text() == "node1"

        # The processes as Calico's tools expect them.
        procs = node.processes()
        assert calicoctl_sees_felix({p: a for p, a in procs.items() if p == node.pid_of("felix")})
        assert by_program(node, "felix")[0][0] == "calico-node" and by_program(node, "felix")[0][-1] == "-felix"
        assert wait_for(lambda: by_program(node, "bird") and by_program(node, "bird")[0] == [
            "bird", "-R", "-s", str(node.run_dir / "bird.ctl"), "-d", "-c",
            str(node.config_dir / "confd" / "config" / "bird.cfg")], 20), node.diagnostics()
        assert wait_for(lambda: by_program(node, "bird6") and by_program(node, "bird6")[0][0] == "bird6", 20)

        # BIRD has its peer configured but nobody answers: not ready, in Calico's words.
        assert wait_for(lambda: health(node, "-bird-ready")[1] ==
                        f"calico/node is not ready: BIRD is not ready: BGP not established with {PEER_IP}", 20), \
            health(node, "-bird-ready")
        with BirdProcess(node.peer, _peer_config(node), node.root / "peer.ctl"):
            assert wait_for(lambda: health(node, "-felix-ready", "-bird-ready") == (0, ""), 40, interval=0.5), \
                (health(node, "-felix-ready", "-bird-ready"), node.diagnostics())
            assert health(node, "health", "--felix-live", "--bird-live", "--bird6-live") == (0, "")

            # A killed policy agent is restarted, and the exit is logged.
            old = node.pid_of("felix")
            os.kill(old, signal.SIGKILL)
            assert wait_for(lambda: node.pid_of("felix") not in (0, old) and node.states()["felix"] == "RUNNING", 20)
            assert wait_for(lambda: "exited: felix (terminated by SIGKILL; not expected)" in node.output(), 5)
            assert wait_for(lambda: health(node, "-felix-ready") == (0, ""), 30), node.logs("felix")[-3000:]

            # So is BIRD, which takes up its session again.
            old = node.pid_of("bird")
            os.kill(old, signal.SIGKILL)
            assert wait_for(lambda: node.pid_of("bird") not in (0, old), 20)
            assert wait_for(lambda: "exited: bird (terminated by SIGKILL; not expected)" in node.output(), 5)
            assert wait_for(lambda: health(node, "-bird-ready", "-bird-live") == (0, ""), 30, interval=0.5), \
                (health(node, "-bird-ready"), node.logs("bird")[-2000:])

            # birdcl/birdcl6 (Debian's birdc behind them) find the node's BIRD sockets.
            for client, socket in (("birdcl", "bird.ctl"), ("birdcl6", "bird6.ctl")):
                path = str(ROOT / "rootfs" / "usr" / "bin" / client)
                for argv in ([path, "show", "status"], [path, "-s", str(node.run_dir / socket), "show", "status"]):
                    shown = node.ns.run(*argv, env=node.env(), check=False)
                    assert shown.returncode == 0 and "Daemon is up and running" in shown.stdout, \
                        (argv, shown.stdout, shown.stderr)
            shown = node.ns.run(str(ROOT / "rootfs" / "usr" / "bin" / "birdcl"), "show", "protocols",
                                env=node.env(), check=False)
            assert "Established" in shown.stdout, shown.stdout

            # Calico's helper restarts the renderer.
            old = node.pid_of("confd")
            helper = node.ns.run(str(ROOT / "rootfs" / "usr" / "sbin" / "restart-calico-confd"), env=node.env(),
                                 check=False)
            assert helper.returncode == 0, helper.stdout + helper.stderr
            assert node.pid_of("confd") not in (0, old)

        # SIGTERM: every program stops, supervisord exits 0, nothing is left in the namespace.
        assert node.stop(timeout=40) == 0, node.output()[-3000:]
        assert node.processes() == {}
        assert not (node.run_dir / "supervisord.pid").exists()
        assert "Calico node failed to start" not in node.output()
        # As Calico's log services do: every program's output reaches the container log
        # (calico-node start's stdout) and, each line timestamped as svlogd -ttt does, the
        # program's own file.
        out = node.output()
        assert "Felix (calico-node-py) starting for host node1" in out
        assert "confd starting for node node1" in out
        for program in ("felix", "confd", "bird", "bird6", "node-services"):
            lines = node.logs(program).splitlines()
            assert lines, program
            assert all(SVLOGD_STAMP.match(line) for line in lines), (program, lines[:3])
            # the files hold what the container log shows, stamps aside
            assert all(line[26:] in out for line in lines[:20]), (program, lines[:3])
        # BIRD's own lines carry no time: the files' do.
        assert any("bird: " in line for line in node.logs("bird").splitlines()), node.logs("bird")[:2000]


def _peer_config(node: StartedNode):
    path = node.root / "peer.cfg"
    path.write_text(PEER_CONFIG)
    return path


@pytest.mark.parametrize("backend,env,expected", [
    ("vxlan", {}, {"felix", "node-services", "restarter"}),
    # Policy-only startup writes no BGP details, so the Node exists only because it names
    # its Kubernetes node (as in a cluster); without a Node the tunnel-address step fails,
    # as in Calico.
    ("none", {"CALICO_DISABLE_FELIX": "true", "CALICO_DISABLE_FILE_LOGGING": "true",
              "CALICO_K8S_NODE_REF": "k8s-node-none"},
     {"node-services", "restarter"}),
])
def test_no_bgp_backends(etcd_clean, backend, env, expected):
    with StartedNode(etcd_clean.endpoint, f"node-{backend}", NODE_IP, PEER_IP, prefix="csn",
                     env={"CALICO_NETWORKING_BACKEND": backend, **env}) as node:
        node.start()
        assert node.wait_running(expected), (node.states(), node.diagnostics())
        out = node.output()
        reason = "no BGP daemon running" if backend == "none" else "no need to run a BGP daemon"
        assert f"CALICO_NETWORKING_BACKEND is {backend} - {reason}" in out
        assert not any(argv and argv[0] in ("bird", "bird6") for argv in node.processes().values())
        # Calico's `sv status` of the removed confd service exits 1 (node/pkg/health/health.go).
        assert health(node, "-bird-live") == (1, "calico/node is not ready: bird/confd is not live: exit status 1")
        if "CALICO_DISABLE_FILE_LOGGING" in env:
            # Program output goes to calico-node start's own stdout; no log directory at all.
            assert wait_for(lambda: "tunnel-ip-allocator" in node.output(), 10)
            assert not node.log_dir.exists()
        else:
            assert wait_for(lambda: health(node, "-felix-ready") == (0, ""), 30), node.logs("felix")[-3000:]
            # The DaemonSet's probes without their BIRD flags, as the manifests' comment
            # says to run them for this backend (Calico's calico-vxlan.yaml).
            assert health(node, "-felix-live") == (0, "") and health(node, "-felix-ready") == (0, "")
        assert node.stop(timeout=40) == 0
        assert node.processes() == {}
