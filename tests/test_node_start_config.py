"""``calico-node start`` without a node: which programs run for which settings, the
supervisord configuration (read back by supervisord's own parser), the policy agent's
process name, the restarter, and the boot's failure paths."""
from __future__ import annotations

import io
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from node.config import Paths
from node.supervise import config as svconfig
from node.supervise.boot import FAILED_LINE, STARTED_LINE
from node.supervise.layout import Layout
from node.supervise.programs import Python, enabled_programs, names
from node.supervise.restarter import Backoff, Restarter, serve

ROOT = Path(__file__).resolve().parents[1]
CALICO_NODE = [sys.executable, "-m", "node.cli.calico_node"]
SYSTEM_PYTHON = "/usr/bin/python3"  # supervisor is a Debian package, importable from the system Python


@pytest.fixture
def node_root():
    root = Path(tempfile.mkdtemp(prefix="sc-"))
    yield root
    shutil.rmtree(root, ignore_errors=True)


def paths_env(root: Path) -> dict[str, str]:
    return {"CALICO_RUN_DIR": str(root / "run"), "CALICO_LIB_DIR": str(root / "lib"),
            "CALICO_CONFIG_DIR": str(root / "etc"), "CALICO_LOG_DIR": str(root / "log")}


# -- the program set -------------------------------------------------------------------------

@pytest.mark.parametrize("env,expected", [
    ({}, ["felix", "confd", "bird", "bird6", "node-services"]),
    ({"CALICO_NETWORKING_BACKEND": "bird"}, ["felix", "confd", "bird", "bird6", "node-services"]),
    ({"CALICO_NETWORKING_BACKEND": "vxlan"}, ["felix", "node-services"]),
    ({"CALICO_NETWORKING_BACKEND": "none"}, ["felix", "node-services"]),
    ({"CALICO_DISABLE_FELIX": "true"}, ["confd", "bird", "bird6", "node-services"]),
    ({"CALICO_DISABLE_FELIX": "true", "CALICO_NETWORKING_BACKEND": "none"}, ["node-services"]),
])
def test_program_set(env, expected):
    assert names(enabled_programs(env, Paths.from_env({}))) == expected


def test_bird_runs_as_calico_starts_it(node_root):
    paths = Paths.from_env(paths_env(node_root))
    programs = {p.name: p for p in enabled_programs({}, paths)}
    for binary, ctl in (("bird", "bird.ctl"), ("bird6", "bird6.ctl")):
        argv = programs[binary].argv
        cfg = str(node_root / "etc" / "confd" / "config" / f"{binary}.cfg")
        # the waiting wrapper, then exactly Calico's command line
        assert argv[:2] == ("/bin/sh", "-c") and argv[4] == cfg
        assert argv[5:] == (binary, "-R", "-s", str(node_root / "run" / ctl), "-d", "-c", cfg)


def test_bird_wrapper_waits_for_the_config_then_execs(node_root):
    paths = Paths.from_env(paths_env(node_root))
    bird = next(p for p in enabled_programs({}, paths) if p.name == "bird")
    cfg = Path(bird.argv[4])
    # Same wrapper, with `sh -c 'echo $$ "$@"'` standing in for BIRD: it must be exec'd
    # (same pid as the wrapper) and only once the config exists.
    argv = [*bird.argv[:5], "sh", "-c", 'echo "$$ $0 $*"', "bird", "-R"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(1.2)
        assert proc.poll() is None  # still waiting
        cfg.parent.mkdir(parents=True)
        cfg.write_text("router id 10.0.0.1;\n")
        out, _ = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    lines = out.splitlines()
    assert lines[0] == f"Waiting for the renderer to write {cfg} before starting sh"
    assert lines[-1] == f"{proc.pid} bird -R"


def test_policy_agent_runs_as_calico_node():
    """argv[0] is calico-node (what calicoctl node status looks for), and it still finds
    this installation's modules."""
    argv = Python.current().role_named("calico-node", "version")
    probe = subprocess.run(list(argv), capture_output=True, text=True, timeout=30, cwd="/")
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.startswith("v")
    sleeper = subprocess.Popen([*argv[:4], "/bin/sleep", "30"])  # the same exec -a, on a process we can inspect
    try:
        assert wait_cmdline(sleeper.pid)[0] == "calico-node"
    finally:
        sleeper.kill()
        sleeper.wait()


def wait_cmdline(pid: int) -> list[str]:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        argv = psutil.Process(pid).cmdline()
        if argv and argv[0] != "/usr/bin/bash" and argv[0] != "/bin/bash":
            return argv
        time.sleep(0.05)
    return psutil.Process(pid).cmdline()


# -- the configuration, read back by supervisord ---------------------------------------

def supervisord_view(conf: Path) -> dict:
    """What supervisord itself makes of the file: programs with their argv and log files."""
    script = textwrap.dedent("""
        import json, shlex, sys
        from supervisor.datatypes import RestartUnconditionally
        from supervisor.options import ServerOptions
        o = ServerOptions()
        o.realize(["-c", sys.argv[1]])
        out = {"socket": o.server_configs[0]["file"], "pidfile": o.pidfile, "logfile": o.logfile,
               "childlogdir": o.childlogdir, "programs": {}}
        for group in o.process_group_configs:
            for p in group.process_configs:
                out["programs"][p.name] = {"argv": shlex.split(p.command), "stdout": p.stdout_logfile,
                                           "stderr": p.stderr_logfile, "stopasgroup": p.stopasgroup,
                                           "killasgroup": p.killasgroup,
                                           "autorestart": p.autorestart is RestartUnconditionally,
                                           "maxbytes": p.stdout_logfile_maxbytes}
        print(json.dumps(out, default=str))
    """)
    run = subprocess.run([SYSTEM_PYTHON, "-c", script, str(conf)], capture_output=True, text=True, timeout=30)
    assert run.returncode == 0, run.stderr
    import json
    return json.loads(run.stdout)


@pytest.mark.parametrize("file_logging", [True, False])
def test_configuration_round_trips_through_supervisord(node_root, file_logging):
    odd = node_root / "node 1%x'"  # a space, a percent sign and a quote, all kept as they are
    env = paths_env(odd)
    if not file_logging:
        env["CALICO_DISABLE_FILE_LOGGING"] = "true"
    layout = Layout(Paths.from_env(env))
    programs = enabled_programs(env, layout.paths)
    for directory in (layout.paths.run_dir, *svconfig.log_dirs(layout, programs, env)):
        directory.mkdir(parents=True, exist_ok=True)
    conf = svconfig.write(svconfig.render(env, layout, programs, "node1"), layout)
    assert conf == odd / "etc" / "supervisord.conf"
    view = supervisord_view(conf)
    assert view["socket"] == str(odd / "run" / "supervisor.sock")
    assert view["pidfile"] == str(odd / "run" / "supervisord.pid")
    assert set(view["programs"]) == {*names(programs), "restarter"}
    python = Python.current().executable
    for program in programs:
        seen = view["programs"][program.name]
        if file_logging:
            # logtee first: output to the container log and, timestamped, rotated at 10 MB
            # with 5 kept, to the program's own file; then the program itself.
            assert seen["argv"] == [python, "-I", "-S", str(svconfig.LOGTEE), "--parent-stdout",
                                    str(odd / "log" / program.name), "10000000", "5", "out", "--",
                                    *program.argv]
        else:
            assert seen["argv"] == list(program.argv)
        assert seen["stopasgroup"] and seen["killasgroup"] and seen["autorestart"]
        # Both ways the output reaches the container log through supervisord's stdout.
        assert seen["stdout"] == "/dev/stdout" and seen["maxbytes"] == 0
    restarter = view["programs"]["restarter"]
    assert restarter["stderr"] == "/dev/stdout"
    assert (restarter["argv"][:10] == [python, "-I", "-S", str(svconfig.LOGTEE), "--parent-stdout",
                                       str(odd / "log" / "restarter"), "10000000", "5", "err", "--"]) == file_logging
    if file_logging:
        assert view["logfile"] == str(odd / "log" / "supervisord.log")
        assert view["childlogdir"] == str(odd / "log")
        assert svconfig.log_dirs(layout, programs, env)[0] == odd / "log"
    else:
        assert view["logfile"] == "/dev/null"
        assert svconfig.log_dirs(layout, programs, env) == []
    # Nothing outside the node's own directories (besides binaries and /dev).
    text = conf.read_text()
    for shared in ("/var/run/calico", "/var/lib/calico", "/etc/calico", "/var/log/calico"):
        assert shared not in text


@pytest.mark.parametrize("bad,why", [("/tmp/a\nb", "newline"), ("/tmp/a ;b", "comment"), ("/tmp/a #b", "comment")])
def test_unwritable_values_are_refused(bad, why):
    with pytest.raises(svconfig.SupervisorConfigError, match=why):
        svconfig.escape(bad)


def test_print_config_cli(node_root):
    env = dict(os.environ, **paths_env(node_root), CALICO_NETWORKING_BACKEND="vxlan", NODENAME="n1")
    run = subprocess.run([*CALICO_NODE, "start", "--print-config"], env=env, cwd=ROOT, capture_output=True,
                         text=True, timeout=30)
    assert run.returncode == 0, run.stderr
    assert "[program:felix]" in run.stdout and "[program:bird]" not in run.stdout
    assert "identifier=calico-node-n1" in run.stdout
    assert not (node_root / "etc").exists()  # printing writes nothing


def test_legacy_calico_networking(node_root):
    env = dict(os.environ, **paths_env(node_root), CALICO_NETWORKING="false")
    env.pop("CALICO_NETWORKING_BACKEND", None)
    run = subprocess.run([*CALICO_NODE, "start", "--print-config"], env=env, cwd=ROOT, capture_output=True,
                         text=True, timeout=30)
    assert run.returncode == 0, run.stderr
    assert "CALICO_NETWORKING will be deprecated: use CALICO_NETWORKING_BACKEND instead" in run.stderr
    assert "CALICO_NETWORKING_BACKEND=none" in run.stdout
    assert "[program:node-services]" in run.stdout and "[program:confd]" not in run.stdout


def test_missing_bird_is_reported_before_anything_runs(node_root):
    bin_dir = node_root / "bin"
    bin_dir.mkdir()
    (bin_dir / "bash").symlink_to(shutil.which("bash"))
    (bin_dir / "supervisord").symlink_to(shutil.which("supervisord"))
    env = dict(os.environ, **paths_env(node_root), PATH=str(bin_dir), NODENAME="n1")
    run = subprocess.run([*CALICO_NODE, "start", "--no-kernel-prep"], env=env, cwd=ROOT, capture_output=True,
                         text=True, timeout=30)
    assert run.returncode == 1
    assert "bird not found on PATH (the BGP daemon)" in run.stderr
    assert run.stderr.rstrip().endswith(FAILED_LINE)
    assert "startup" not in run.stderr and not (node_root / "lib").exists()


# -- boot failures ---------------------------------------------------------------------

def test_failed_startup_stage_stops_the_boot(node_root):
    env = dict(os.environ, **paths_env(node_root), NODENAME="n1", ETCD_ENDPOINTS="ftp://nowhere:1",
               DATASTORE_TYPE="etcdv3")
    run = subprocess.run([*CALICO_NODE, "start", "--no-kernel-prep"], env=env, cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 1
    assert "ETCD_ENDPOINTS='ftp://nowhere:1' has unsupported scheme" in run.stdout  # startup's own message
    assert run.stderr.rstrip().endswith(FAILED_LINE)
    assert STARTED_LINE not in run.stdout
    assert not (node_root / "etc" / "supervisord.conf").exists()


def test_start_leaves_the_kernel_alone_unless_asked(node_root):
    """Calico's node loads no module and sets no sysctl by itself (calicoctl node run and
    the policy agent do); ``--kernel-prep`` has the startup stage do it first. The
    datastore here is unusable, so the boot stops right after that point."""
    sysctls = node_root / "sys"
    (sysctls / "net/ipv4").mkdir(parents=True)
    (sysctls / "net/ipv4/ip_forward").write_text("0\n")
    calls = node_root / "modprobe.log"
    modprobe = node_root / "modprobe"
    modprobe.write_text(f"#!/bin/sh\necho \"$@\" >> {calls}\n")
    modprobe.chmod(0o755)
    env = dict(os.environ, **paths_env(node_root), NODENAME="n1", ETCD_ENDPOINTS="ftp://nowhere:1",
               DATASTORE_TYPE="etcdv3")
    kernel_args = ["--sysctl-root", str(sysctls), "--modprobe", str(modprobe)]
    run = subprocess.run([*CALICO_NODE, "start", *kernel_args], env=env, cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 1 and "has unsupported scheme" in run.stdout, run.stdout + run.stderr
    assert not calls.exists()
    assert (sysctls / "net/ipv4/ip_forward").read_text() == "0\n"
    assert "Running command to load modules" not in run.stdout + run.stderr

    run = subprocess.run([*CALICO_NODE, "start", "--kernel-prep", *kernel_args], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 1 and "has unsupported scheme" in run.stdout, run.stdout + run.stderr
    assert "xt_set" in calls.read_text().split()
    assert (sysctls / "net/ipv4/ip_forward").read_text() == "1"


def test_sigterm_during_startup_stops_the_step(node_root):
    """startup waits for an unreachable datastore; SIGTERM to calico-node start ends it
    and the waiting startup stage with it."""
    env = dict(os.environ, **paths_env(node_root), NODENAME="n1", ETCD_ENDPOINTS="http://127.0.0.1:9",
               DATASTORE_TYPE="etcdv3", WAIT_FOR_DATASTORE="true")
    proc = subprocess.Popen([*CALICO_NODE, "start", "--no-kernel-prep"], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        children: list[psutil.Process] = []
        while time.monotonic() < deadline and not children:
            children = psutil.Process(proc.pid).children(recursive=True)
            time.sleep(0.1)
        assert children, "the startup stage never started"
        time.sleep(1.0)  # let it get to its wait loop
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert err.rstrip().endswith(FAILED_LINE)
    gone, alive = psutil.wait_procs(children, timeout=5)
    assert not alive


# -- the restarter ---------------------------------------------------------------------

def test_backoff_doubles_caps_and_resets():
    now = [0.0]
    backoff = Backoff(first=5, maximum=60, reset_after=600, clock=lambda: now[0])
    delays = []
    for _ in range(6):
        delays.append(backoff.next_delay("felix:felix"))
        now[0] += 30
    assert delays == [5, 10, 20, 40, 60, 60]
    assert backoff.next_delay("confd:confd") == 5  # per program
    now[0] += 601
    assert backoff.next_delay("felix:felix") == 5


def test_listener_protocol():
    class Recorder(Restarter):
        def __init__(self):
            self.seen = []

        def on_fatal(self, group, process):
            self.seen.append((group, process))
            return 0.0

    fatal = "processname:felix groupname:felix from_state:BACKOFF"
    other = "processname:bird groupname:bird from_state:STARTING pid:7"
    stdin = io.StringIO(f"ver:3.0 server:supervisor serial:1 pool:restarter poolserial:1 eventname:PROCESS_STATE_FATAL "
                        f"len:{len(fatal)}\n{fatal}"
                        f"ver:3.0 server:supervisor serial:2 pool:restarter poolserial:2 eventname:PROCESS_STATE_RUNNING "
                        f"len:{len(other)}\n{other}")
    stdout = io.StringIO()
    recorder = Recorder()
    serve(recorder, stdin, stdout)
    assert recorder.seen == [("felix", "felix")]
    assert stdout.getvalue() == "READY\nRESULT 2\nOKREADY\nRESULT 2\nOKREADY\n"


def test_restarter_revives_a_fatal_program(node_root):
    """Real supervisord: a program that always fails at once goes FATAL; the restarter
    starts it again, each time a little later."""
    sock = node_root / "s.sock"
    conf = node_root / "supervisord.conf"
    conf.write_text(textwrap.dedent(f"""
        [supervisord]
        nodaemon=true
        logfile={node_root}/supervisord.log
        pidfile={node_root}/supervisord.pid
        childlogdir={node_root}
        [unix_http_server]
        file={sock}
        [rpcinterface:supervisor]
        supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface
        [program:crasher]
        command=/bin/sh -c 'echo crashing; exit 3'
        startsecs=1
        startretries=0
        autorestart=true
        [eventlistener:restarter]
        command={shlex.join([sys.executable, '-m', 'node.supervise.restarter', '--server-url', f'unix://{sock}',
                             '--first-delay', '0.3', '--max-delay', '0.6'])}
        events=PROCESS_STATE_FATAL
        stderr_logfile={node_root}/restarter.log
    """))
    proc = subprocess.Popen(["supervisord", "-n", "-c", str(conf)], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    try:
        def read(name: str) -> str:
            path = node_root / name
            return path.read_text() if path.exists() else ""

        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and ("starting it again in 0.6s" not in read("restarter.log")
                                               or read("supervisord.log").count("spawned: 'crasher'") < 3):
            time.sleep(0.2)
        text = read("supervisord.log")
        assert text.count("spawned: 'crasher'") >= 3, text
        assert "gave up: crasher entered FATAL state" in text
        restarts = read("restarter.log")
        assert "crasher entered FATAL" in restarts and "starting it again in 0.3s" in restarts
        assert "starting it again in 0.6s" in restarts and "started crasher again" in restarts
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
