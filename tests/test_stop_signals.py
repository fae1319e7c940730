"""``node.cli.stop_signals``: SIGTERM and SIGINT stop a long-running role without the
signal handler touching a lock.

The hazard it removes: a handler that calls ``Event.set()`` runs in the main thread,
between two bytecodes; when the main thread is inside ``stop.wait()`` holding the Event's
internal lock, ``set()`` blocks on that lock for ever. A role whose main thread waits in
a tight loop hits that window within a few signals.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# The main thread hammers the Event's lock (a wait with a tiny timeout, over and over),
# as a role's loop does at the worst moment, until a signal stops it.
HAMMER = textwrap.dedent("""
    import logging, sys, threading
    sys.path.insert(0, sys.argv[1])
    from node.cli.stop_signals import stop_on_signals
    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(threadName)s %(message)s")
    stop = threading.Event()
    stop_on_signals(stop, logging.getLogger("role"))
    print("ready", flush=True)
    while not stop.wait(0.000001):
        pass
    print("stopped", flush=True)
""")


def test_a_signal_always_stops_a_main_thread_waiting_on_the_event():
    children = [subprocess.Popen([sys.executable, "-c", HAMMER, str(ROOT)], stdout=subprocess.PIPE, text=True)
                for _ in range(24)]
    try:
        for child in children:
            assert child.stdout.readline() == "ready\n"
        time.sleep(0.2)
        for n, child in enumerate(children):
            child.send_signal(signal.SIGTERM if n % 2 else signal.SIGINT)
        outputs = []
        for child in children:
            out, _ = child.communicate(timeout=20)  # a deadlock would time out here
            assert child.returncode == 0
            outputs.append(out)
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.communicate()
    for n, out in enumerate(outputs):
        name = "SIGTERM" if n % 2 else "SIGINT"
        # Logged from the helper thread, not from inside the handler.
        assert out.splitlines() == [f"stop-signals Received {name}; stopping", "stopped"], out


RESTORE = textwrap.dedent("""
    import os, signal, sys, threading, time
    sys.path.insert(0, sys.argv[1])
    from node.cli.stop_signals import stop_on_signals
    calls = []
    called = threading.Event()
    def target():
        calls.append(threading.current_thread().name)
        called.set()
    before = signal.getsignal(signal.SIGTERM)
    restore = stop_on_signals(target)
    os.kill(os.getpid(), signal.SIGTERM)
    assert called.wait(5)
    print(calls)
    os.kill(os.getpid(), signal.SIGTERM)   # every signal, not only the first
    deadline = time.monotonic() + 5
    while len(calls) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    print(len(calls))
    restore()
    restore()  # twice is harmless
    print(signal.getsignal(signal.SIGTERM) is before)
    time.sleep(0.2)
    print(sorted(t.name for t in threading.enumerate()))
""")


def test_a_callable_is_called_outside_the_handler_and_the_old_handlers_come_back():
    run = subprocess.run([sys.executable, "-c", RESTORE, str(ROOT)], capture_output=True, text=True, timeout=30)
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == ["['stop-signals']", "2", "True", "['MainThread']"]


def test_outside_the_main_thread_it_refuses_and_leaks_nothing():
    script = textwrap.dedent("""
        import os, sys, threading
        sys.path.insert(0, sys.argv[1])
        from node.cli.stop_signals import stop_on_signals
        fds = len(os.listdir("/proc/self/fd"))
        errors = []
        def install():
            try:
                stop_on_signals(threading.Event())
            except ValueError as exc:
                errors.append(str(exc))
        t = threading.Thread(target=install)
        t.start(); t.join()
        print(len(errors), len(os.listdir("/proc/self/fd")) == fds)
    """)
    run = subprocess.run([sys.executable, "-c", script, str(ROOT)], capture_output=True, text=True, timeout=30)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["1", "True"]


def test_the_roles_use_it():
    """No role installs a handler of its own that would touch a lock."""
    roles = ROOT / "node" / "cli" / "roles"
    for path in sorted(roles.glob("*.py")):
        text = path.read_text()
        assert "signal.signal(" not in text, f"{path.name} installs its own signal handler"
    for name in ("monitor_token", "status_reporter", "allocate_tunnel_addrs", "complete_startup", "confd", "felix"):
        assert "stop_on_signals(" in (roles / f"{name}.py").read_text(), name
    assert os.path.exists(ROOT / "node" / "cli" / "stop_signals.py")
