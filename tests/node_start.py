"""A whole node for tests of ``calico-node start``: a network namespace running the real
entrypoint (startup, then supervisord with the policy agent, the renderer, BIRD...),
reaching the test's etcd through a forwarder on its own 127.0.0.1:2379, joined by a veth
pair to a "peer" namespace where a test can run a BGP speaker.

Everything is removed on ``close()``, also after a failure: ``calico-node start`` gets
SIGTERM (SIGKILL if it ignores it), any process still in the node namespace is killed
by its pid, the namespaces, the forwarder and the node's directories go.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from netns import Closing, Namespace, open_linked
from node.supervise.rpc import Supervisor, SupervisorError
from nsforward import Forwarder
from e2e.probes import eventually as wait_for  # noqa: F401 (used here and by importers)

ROOT = Path(__file__).resolve().parents[1]
CALICO_NODE = [sys.executable, "-m", "node.cli.calico_node"]
ETCD_PORT = 2379
HEALTH_PORT = 9099


def ns_pids(ns_name: str) -> list[int]:
    out = subprocess.run(["ip", "netns", "pids", ns_name], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0")[:-1]]


class StartedNode(Closing):
    """One node namespace running ``calico-node start``, and a peer namespace beside it."""

    def __init__(self, etcd_endpoint: str, name: str, node_ip: str, peer_ip: str, env: dict | None = None,
                 prefix: str = "cns"):
        self.name = name
        self.node_ip = node_ip
        self.peer_ip = peer_ip
        self._etcd_port = int(etcd_endpoint.rsplit(":", 1)[1])
        self.env_extra = dict(env or {})
        self.ns = Namespace(prefix)
        self.peer = Namespace(prefix + "p")
        # Short: BIRD's and supervisord's sockets live under it (unix paths are <108 bytes).
        self.root = Path(tempfile.mkdtemp(prefix=f"{prefix}-"))
        self.run_dir = self.root / "run"
        self.lib_dir = self.root / "lib"
        self.config_dir = self.root / "etc"
        self.log_dir = self.root / "log"
        self.output_path = self.root / "start.out"
        self.proc: subprocess.Popen | None = None
        self._forwarder: Forwarder | None = None

    def setup(self) -> None:
        """Run by ``with``; on failure ``close()`` undoes what was done."""
        open_linked(self.ns, self.node_ip, self.peer, self.peer_ip)
        self._forwarder = Forwarder(self.ns.name, ETCD_PORT, ("127.0.0.1", self._etcd_port))

    # -- the node -------------------------------------------------------------------------

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("CALICO_", "ETCD_", "DATASTORE", "FELIX_", "NODENAME", "IP", "BGP_"))}
        env.update({
            "ETCD_ENDPOINTS": f"http://127.0.0.1:{ETCD_PORT}", "DATASTORE_TYPE": "etcdv3",
            "NODENAME": self.name, "IP": self.node_ip, "IP6": "none",
            "CALICO_RUN_DIR": str(self.run_dir), "CALICO_LIB_DIR": str(self.lib_dir),
            "CALICO_CONFIG_DIR": str(self.config_dir), "CALICO_LOG_DIR": str(self.log_dir),
            "CALICO_ENDPOINT_STATUS_PATH_PREFIX": str(self.run_dir / "status"),
            "FELIX_HEALTHENABLED": "true", "FELIX_HEALTHPORT": str(HEALTH_PORT),
            "FELIX_LOGSEVERITYSCREEN": "info",
            **self.env_extra,
        })
        return env

    def start(self, *args: str) -> None:
        with open(self.output_path, "a") as out:
            self.proc = self.ns.popen(*CALICO_NODE, "start", *args, env=self.env(),
                                      stdout=out, stderr=subprocess.STDOUT, cwd=str(ROOT))

    def output(self) -> str:
        return self.output_path.read_text() if self.output_path.exists() else ""

    def logs(self, program: str) -> str:
        path = self.log_dir / program / "current"
        return path.read_text(errors="replace") if path.exists() else ""

    def diagnostics(self) -> str:
        parts = [f"--- calico-node start output:\n{self.output()[-6000:]}"]
        if self.log_dir.exists():
            for d in sorted(self.log_dir.iterdir()):
                if d.is_dir():
                    parts.append(f"--- {d.name}:\n{self.logs(d.name)[-3000:]}")
        return "\n".join(parts)

    @property
    def supervisor(self) -> Supervisor:
        return Supervisor(f"unix://{self.run_dir / 'supervisor.sock'}", timeout=5)

    def states(self) -> dict[str, str]:
        """Program name -> supervisord state (empty while supervisord is not answering)."""
        try:
            return {info["name"]: info["statename"] for info in self.supervisor.all_process_info()}
        except SupervisorError:
            return {}

    def wait_running(self, programs: set[str], timeout: float = 40) -> bool:
        """Until exactly ``programs`` are all RUNNING; gives up early if start exited."""
        def done() -> bool:
            states = self.states()
            return set(states) == programs and set(states.values()) == {"RUNNING"}

        wait_for(lambda: done() or (self.proc is not None and self.proc.poll() is not None), timeout)
        return done()

    def pid_of(self, program: str) -> int:
        try:
            return int(self.supervisor.process_info(program)["pid"])
        except SupervisorError:
            return 0

    def calico_node(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        """Run a calico-node command in the node namespace with the node's environment."""
        return self.ns.run(*CALICO_NODE, *args, env=self.env(), cwd=str(ROOT), check=False, timeout=timeout)

    def processes(self) -> dict[int, list[str]]:
        return {pid: cmdline(pid) for pid in ns_pids(self.ns.name)}

    def stop(self, timeout: float = 40) -> int | None:
        """SIGTERM to calico-node start (supervisord by then); its exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    # -- teardown -------------------------------------------------------------------------

    def close(self) -> None:
        try:
            self.stop()
        finally:
            for ns in (self.ns, self.peer):
                if ns._open:
                    for pid in ns_pids(ns.name):
                        try:
                            os.kill(pid, signal.SIGKILL)
                        except ProcessLookupError:
                            pass
            if self._forwarder is not None:
                self._forwarder.close()
                self._forwarder = None
            self.peer.close()
            self.ns.close()
            shutil.rmtree(self.root, ignore_errors=True)
