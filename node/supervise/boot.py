"""``calico-node start``: the image's entrypoint (Calico's start_runit and rc.local).

In order, in the foreground:

1. ``CALICO_NETWORKING`` (deprecated) becomes ``CALICO_NETWORKING_BACKEND``: ``false`` is
   ``none``, anything else ``bird``.
2. The program set is worked out (and its executables found) before anything is written.
3. The startup stage: ``calico-node startup`` (the Node, pools...; kernel preparation
   only with ``--kernel-prep``: like Calico's, the node changes nothing in the kernel
   by itself).
   Its ``Calico node started successfully`` line is held back: it is printed once the
   whole boot has succeeded, as rc.local prints it last.
4. ``NODENAME`` is read from the nodename file startup wrote (missing: exit 1).
5. ``calico-node allocate-tunnel-addrs --run-once``.
6. When BIRD runs: the renderer's previous output is removed, so BIRD starts only from a
   config rendered for this boot (Calico's confd output lives in the container and is
   empty at every start).
7. supervisord's configuration is written (``node.supervise.config``), then
   ``Calico node started successfully``, then this process becomes
   ``supervisord -n -c $CALICO_CONFIG_DIR/supervisord.conf``.

A failing step prints ``Calico node failed to start`` on stderr and exits with the
step's code. SIGTERM or SIGINT during steps 3-7 stops the running step and exits 143 /
130; afterwards they go to supervisord, which stops every program (each program's whole
process group) and exits.
"""
from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence, TextIO

from node.config import Paths
from node.supervise import config as svconfig
from node.supervise.layout import Layout
from node.supervise.programs import (BACKEND_ENV, Program, ProgramError, Python, backend, enabled_programs,
                                     runs_bird)

log = logging.getLogger("node.supervise.boot")

STARTED_LINE = "Calico node started successfully"
FAILED_LINE = "Calico node failed to start"
MAX_UNIX_PATH = 107  # sun_path holds 108 bytes with the terminating NUL


class BootError(Exception):
    """A boot step failed; ``code`` is the exit code."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class StartOptions:
    kernel_prep: bool = False
    sysctl_root: str = "/proc/sys"
    modprobe: str = "modprobe"


def apply_legacy_networking(env: dict[str, str], out: TextIO | None = None) -> None:
    value = env.get("CALICO_NETWORKING", "")
    if not value:
        return
    print("WARNING: CALICO_NETWORKING will be deprecated: use CALICO_NETWORKING_BACKEND instead",
          file=out or sys.stdout, flush=True)
    env[BACKEND_ENV] = "none" if value == "false" else "bird"


def check_socket_path(path: Path, variable: str) -> None:
    if len(os.fsencode(str(path))) > MAX_UNIX_PATH:
        raise BootError(f"{path} is too long for a unix socket path ({MAX_UNIX_PATH} bytes at most); "
                        f"set {variable} to a shorter directory")


def _configure_logging(env: Mapping[str, str]) -> None:
    from startup.logs import GoFormatter, level_number, parse_level

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(GoFormatter("start"))
    log.addHandler(handler)
    log.propagate = False
    # logrus's level names, as every role reads CALICO_STARTUP_LOGLEVEL: a value it does
    # not know (CRITICAL and NONE included, though the docs list them) means info.
    log.setLevel(level_number(parse_level(env.get("CALICO_STARTUP_LOGLEVEL", ""))[0]))


class _Steps:
    """Runs the boot's child steps, passing SIGTERM/SIGINT on to the one running."""

    def __init__(self) -> None:
        self.current: subprocess.Popen | None = None
        self.signalled: int | None = None

    def install(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)

    def _on_signal(self, signum, _frame) -> None:
        self.signalled = signum
        if self.current is not None and self.current.poll() is None:
            self.current.send_signal(signum)

    def check(self) -> None:
        if self.signalled is not None:
            raise BootError(f"stopped by signal {signal.Signals(self.signalled).name}", 128 + self.signalled)

    def run(self, what: str, argv: Sequence[str], env: Mapping[str, str], hold_back: str | None = None) -> None:
        """Run one step (stderr passed through; stdout too, except the line ``hold_back``)."""
        self.check()
        log.info("Running %s", what)
        try:
            self.current = subprocess.Popen(list(argv), env=dict(env), stdout=subprocess.PIPE if hold_back else None,
                                            text=True)
        except OSError as exc:
            raise BootError(f"cannot run {what}: {exc}") from None
        try:
            if hold_back:
                assert self.current.stdout is not None
                for line in self.current.stdout:
                    if line.rstrip("\n") != hold_back:
                        sys.stdout.write(line)
                        sys.stdout.flush()
            code = self.current.wait()
        finally:
            self.current = None
        self.check()
        if code != 0:
            raise BootError(f"{what} failed (exit code {code})", 1)


def read_nodename(env: Mapping[str, str]) -> str:
    from startup.nodename import nodename_file

    path = nodename_file(env)
    try:
        name = path.read_text().strip()
    except FileNotFoundError:
        print(f"{path} does not exist, exiting", flush=True)
        raise BootError(f"{path} does not exist") from None
    except OSError as exc:
        raise BootError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not name:
        raise BootError(f"{path} is empty")
    return name


def remove_stale_bird_config(paths: Paths) -> list[Path]:
    from node.confd.render import OUTPUTS

    removed = []
    for name in OUTPUTS:
        target = paths.confd_output_dir / name
        try:
            target.unlink()
            removed.append(target)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise BootError(f"cannot remove the previous BIRD config {target}: {exc.strerror or exc}") from None
    return removed


def prepare(env: Mapping[str, str], nodename: str,
            python: Python | None = None) -> tuple[Layout, list[Program], str]:
    """Work out the program set and render supervisord's configuration (nothing written)."""
    paths = Paths.from_env(env)
    layout = Layout(paths)
    check_socket_path(layout.socket, "CALICO_RUN_DIR")
    try:
        programs = enabled_programs(env, paths, python)
    except ProgramError as exc:
        raise BootError(str(exc)) from None
    if runs_bird(env):
        check_socket_path(paths.bird_socket, "CALICO_RUN_DIR")
        check_socket_path(paths.bird6_socket, "CALICO_RUN_DIR")
    try:
        text = svconfig.render(env, layout, programs, nodename, python)
    except svconfig.SupervisorConfigError as exc:
        raise BootError(str(exc)) from None
    return layout, programs, text


def print_config(env: Mapping[str, str] | None = None) -> int:
    """``calico-node start --print-config``: the configuration this environment gets."""
    env = dict(os.environ if env is None else env)
    apply_legacy_networking(env, out=sys.stderr)  # stdout is the configuration
    nodename = env.get("NODENAME", "")
    try:
        _, _, text = prepare(env, nodename)
    except BootError as exc:
        print(f"calico-node start: {exc}", file=sys.stderr)
        return exc.code
    sys.stdout.write(text)
    return 0


def boot(options: StartOptions, env: Mapping[str, str] | None = None) -> int:
    """Run the boot sequence; on success this process becomes supervisord (no return)."""
    env = dict(os.environ if env is None else env)
    _configure_logging(env)
    steps = _Steps()
    steps.install()
    try:
        supervisord = shutil.which("supervisord", path=env.get("PATH"))
        if not supervisord:
            raise BootError("supervisord not found on PATH; install Debian's supervisor package "
                            "(scripts/install-system-packages.sh)")
        apply_legacy_networking(env)
        python = Python.current()
        prepare(env, env.get("NODENAME", ""), python)  # fail before anything is written

        startup = ["startup"]
        if options.kernel_prep:
            startup += ["--kernel-prep", "--sysctl-root", options.sysctl_root, "--modprobe", options.modprobe]
        steps.run("the startup stage", python.role(*startup), env, hold_back=STARTED_LINE)
        env["NODENAME"] = read_nodename(env)
        steps.run("allocate-tunnel-addrs --run-once", python.role("allocate-tunnel-addrs", "--run-once"), env)

        if backend(env) == "none":
            print("CALICO_NETWORKING_BACKEND is none - no BGP daemon running", flush=True)
        elif backend(env) == "vxlan":
            print("CALICO_NETWORKING_BACKEND is vxlan - no need to run a BGP daemon", flush=True)
        paths = Paths.from_env(env)
        if runs_bird(env):
            for removed in remove_stale_bird_config(paths):
                log.info("Removed %s from a previous run; BIRD waits for this boot's config", removed)
        layout, programs, text = prepare(env, env["NODENAME"], python)
        try:
            for directory in (paths.run_dir, *svconfig.log_dirs(layout, programs, env)):
                directory.mkdir(parents=True, exist_ok=True)
            conf = svconfig.write(text, layout)
        except OSError as exc:
            raise BootError(f"cannot write supervisord's configuration: {exc}") from None
        steps.check()
        log.info("Starting supervisord with %s (programs: %s)", conf, ", ".join(p.name for p in programs))
        print(STARTED_LINE, flush=True)
    except BootError as exc:
        if exc.code < 128:
            print(f"calico-node start: {exc}", file=sys.stderr)
        print(FAILED_LINE, file=sys.stderr, flush=True)
        return exc.code
    sys.stderr.flush()
    # From here a signal's default action ends this process (nothing else runs yet); one
    # that came before is caught by the check after the handlers are reset.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_DFL)
    if steps.signalled is not None:
        return 128 + steps.signalled
    try:
        os.execve(supervisord, ["supervisord", "-n", "-c", str(conf)], env)
    except OSError as exc:
        print(f"calico-node start: cannot run {supervisord}: {exc.strerror or exc}", file=sys.stderr)
        print(FAILED_LINE, file=sys.stderr, flush=True)
    return 1
