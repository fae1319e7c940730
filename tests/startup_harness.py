"""Run ``calico-node startup`` / ``monitor-addresses`` as a real process in a namespace.

``NodeHost`` owns a fresh network namespace (so autodetection sees only the links a
test creates), a relay that makes the test etcd reachable from inside it, and
temporary CALICO_LIB_DIR / RUN_DIR / LOG_DIR. Commands run with a clean environment:
only what ``env()`` builds plus the test's overrides.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from etcd_server import EtcdServer
from netns import Namespace
from startup_netns import NetnsRelay

CALICO_NODE = str(Path(sys.executable).parent / "calico-node")
STARTED = "Calico node started successfully"


class NodeHost:
    def __init__(self, etcd: EtcdServer, root: Path, name: str = "node1"):
        self.etcd = etcd
        self.root = root
        self.name = name
        self.ns = Namespace("cst")
        self.relay: NetnsRelay | None = None

    def __enter__(self) -> "NodeHost":
        self.ns.__enter__()
        try:
            self.relay = NetnsRelay(self.ns, ("127.0.0.1", self.etcd.client_port)).__enter__()
        except BaseException:
            self.ns.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        try:
            if self.relay is not None:
                self.relay.__exit__(*exc)
        finally:
            self.ns.close()

    @property
    def lib_dir(self) -> Path:
        return self.root / "lib"

    @property
    def run_dir(self) -> Path:
        return self.root / "run"

    @property
    def log_dir(self) -> Path:
        return self.root / "log"

    def env(self, **overrides: str | None) -> dict[str, str]:
        """NODENAME, ETCD_ENDPOINTS (through the relay) and the three dirs; ``None`` drops one."""
        assert self.relay is not None
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "NODENAME": self.name,
               "ETCD_ENDPOINTS": self.relay.endpoint, "CALICO_LIB_DIR": str(self.lib_dir),
               "CALICO_RUN_DIR": str(self.run_dir), "CALICO_LOG_DIR": str(self.log_dir)}
        for key, value in overrides.items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        return env

    def command(self, *args: str) -> list[str]:
        return ["ip", "netns", "exec", self.ns.name, CALICO_NODE, *args]

    def run(self, *args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(self.command(*args), env=env, capture_output=True, text=True, timeout=timeout)

    def startup(self, *args: str, timeout: float = 60, **env: str | None) -> subprocess.CompletedProcess:
        """``calico-node startup`` (no kernel preparation unless ``args`` say ``--kernel-prep``)."""
        return self.run("startup", *(args or ("--no-kernel-prep",)), env=self.env(**env), timeout=timeout)

    def popen(self, *args: str, env: dict[str, str]) -> subprocess.Popen:
        return subprocess.Popen(self.command(*args), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)


def datastore(kv) -> dict[str, dict]:
    """Every key under /calico/ with its decoded value."""
    items, _ = kv.list("/calico/")
    return {item.key: json.loads(item.value) for item in items}


def revisions(kv) -> dict[str, int]:
    items, _ = kv.list("/calico/")
    return {item.key: item.mod_revision for item in items}


def v3_key(plural: str, name: str) -> str:
    return f"/calico/resources/v3/projectcalico.org/{plural}/{name}"


def explain(result: subprocess.CompletedProcess) -> str:
    return f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
