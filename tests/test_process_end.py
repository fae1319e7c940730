"""How the commands end (node/cli/process_end.py): output flushed, exit code kept, and no
hang when a daemon thread holds a lock that finalization would wait for (as gRPC's
threads can, right after an etcd watch is cancelled)."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# A daemon thread holds a lock for good; garbage in a reference cycle (as a gRPC call can
# be) has a __del__ that wants it. Automatic collection is off, so that garbage is
# collected only by the interpreter's finalization, which then waits forever.
_TRAP = """
import gc, logging, sys, threading, time
gc.disable()
held = threading.Lock()
started = threading.Event()
def hold():
    with held:
        started.set()
        time.sleep(3600)
threading.Thread(target=hold, daemon=True).start()
started.wait()
class NeedsTheLock:
    def __init__(self):
        self.lock = held
        self.cycle = self
    def __del__(self):
        with self.lock:
            pass
NeedsTheLock()
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(message)s")
def main():
    print("said on stdout")             # buffered: a pipe is not a terminal
    logging.getLogger("x").info("said in the log")
    return 3
"""


def _run(body: str, timeout: float, **kwargs) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-c", textwrap.dedent(_TRAP) + body], env=env, timeout=timeout,
                          capture_output=True, text=True, **kwargs)


def test_finalization_would_hang_on_a_lock_a_daemon_thread_holds():
    # The trap is real: ending the ordinary way never returns.
    with pytest.raises(subprocess.TimeoutExpired):
        _run("sys.exit(main())\n", timeout=3)


def test_the_commands_end_without_waiting_and_lose_no_output():
    proc = _run("from node.cli.process_end import run_and_end\nrun_and_end(main)\n", timeout=30)
    assert proc.returncode == 3
    assert proc.stdout == "said on stdout\n"
    assert "said in the log" in proc.stderr


@pytest.mark.parametrize("body, code, stderr", [
    ("raise SystemExit('calicoctl: no such thing')", 1, "calicoctl: no such thing"),
    ("raise SystemExit(None)", 0, ""),
    ("raise SystemExit(4)", 4, ""),
    ("raise RuntimeError('unexpected')", 1, "RuntimeError: unexpected"),
    ("raise KeyboardInterrupt", 130, ""),
    ("return None", 0, ""),
])
def test_exit_codes_as_the_interpreter_gives_them(body, code, stderr):
    proc = _run(f"from node.cli.process_end import run_and_end\ndef failing():\n    {body}\nrun_and_end(failing)\n",
                timeout=30)
    assert proc.returncode == code
    assert stderr in proc.stderr
    if not stderr:
        assert proc.stderr == ""


def test_a_closed_stdout_is_a_broken_pipe():
    env = dict(os.environ, PYTHONPATH=str(REPO))
    body = ("import time\nfrom node.cli.process_end import run_and_end\n"
            "def talk():\n    time.sleep(0.5)\n    print('x' * 100)\n    return 0\nrun_and_end(talk)\n")
    proc = subprocess.Popen([sys.executable, "-c", body], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()                  # the reader went away (calicoctl get ... | head -0)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 141, err


def test_both_commands_end_this_way():
    # The console scripts and supervisor's programs all go through the entry functions.
    import tomllib

    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"calico-node": "node.cli.calico_node:entry", "calicoctl": "node.cli.calicoctl:entry"}
    from node.supervise.programs import Python

    boot = Python.current().role_named("calico-node", "version")
    assert "from node.cli.calico_node import entry;entry()" in boot[boot.index("-c", 3) + 1]
    proc = subprocess.run(list(boot), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip(), proc.stderr
