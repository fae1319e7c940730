"""The programs ``calico-node start`` runs under supervisord, and their command lines.

Which ones run follows Calico v3.32's rc.local:

| program | enabled when |
|---|---|
| felix (the policy agent) | ``CALICO_DISABLE_FELIX`` is empty |
| confd, bird, bird6 | ``CALICO_NETWORKING_BACKEND`` is neither ``none`` nor ``vxlan`` (unset: BIRD runs) |
| node-services | always |

``node-services`` is one process running, each in a thread, complete-startup, the
tunnel address allocator, the CalicoNodeStatus reporter, the address monitor (unless
the backend is ``none``) and the CNI token monitor (when ``CALICO_MANAGE_CNI`` is not
``false`` and a Kubernetes configuration exists); see ``node.cli.roles.node_services``.

Command lines:

* The policy agent runs with argv[0] ``calico-node`` and ``-felix`` as its last argument,
  so that ``calicoctl node status`` (which looks for a process whose argv[0] is
  ``calico-node`` or ``calico-felix``) sees it. A Python interpreter started with
  another argv[0] cannot find its own installation, so the launcher hands it the
  current ``sys.path`` and site directories explicitly (``-S -c``); see ``Python``.
* BIRD and BIRD6 run as Calico starts them, ``bird -R -s <ctl> -d -c <cfg>``, with the
  control sockets in ``$CALICO_RUN_DIR`` and the renderer's output in
  ``$CALICO_CONFIG_DIR/confd/config``. Until the renderer has written the config a small
  shell loop waits (Calico's runit just lets BIRD die and restarts it every second;
  supervisord would give up on a program that keeps dying at once), then execs BIRD, so
  the process supervisord signals is BIRD itself.
* The other roles run as ``<python> -m node.cli.calico_node <role>``.
"""
from __future__ import annotations

import json
import os
import shutil
import site
import sys
from dataclasses import dataclass, field
from typing import Mapping, Sequence

from node.config import Paths

BACKEND_ENV = "CALICO_NETWORKING_BACKEND"
DISABLE_FELIX_ENV = "CALICO_DISABLE_FELIX"
MANAGE_CNI_ENV = "CALICO_MANAGE_CNI"
NO_BGP_BACKENDS = ("none", "vxlan")

# Waits for the config file ($1) to exist and be non-empty, then execs the rest.
WAIT_FOR_CONFIG = ('cfg=$1; shift; '
                   'if [ ! -s "$cfg" ]; then '
                   'echo "Waiting for the renderer to write $cfg before starting $1"; '
                   'while [ ! -s "$cfg" ]; do sleep 1; done; '
                   'fi; '
                   'exec "$@"')

# Keeps argv[0] of the exec'd program as given in $0.
EXEC_AS = 'exec -a "$0" "$@"'


class ProgramError(Exception):
    """The program set cannot be built (a required executable is missing)."""


@dataclass(frozen=True)
class Program:
    name: str
    argv: tuple[str, ...]
    stop_wait: int = 10
    comment: str = ""


@dataclass(frozen=True)
class Python:
    """How to start this installation's Python roles."""

    executable: str
    path: tuple[str, ...] = field(default=())
    site_dirs: tuple[str, ...] = field(default=())

    @classmethod
    def current(cls) -> "Python":
        # Real directories and archives only (not path-hook markers, which the site
        # directories' .pth files add back).
        path = tuple(p for p in sys.path if p and os.path.exists(p))
        candidates = [*site.getsitepackages(), site.getusersitepackages()]
        site_dirs = tuple(d for d in dict.fromkeys(candidates) if d in path)
        return cls(sys.executable, path, site_dirs)

    def role(self, *args: str) -> tuple[str, ...]:
        return (self.executable, "-m", "node.cli.calico_node", *args)

    def role_named(self, argv0: str, *args: str, bash: str = "/bin/bash") -> tuple[str, ...]:
        """``role(*args)`` but with the process's argv[0] set to ``argv0``.

        The interpreter is started without ``site`` (``-S``) and given this process's
        ``sys.path`` and site directories (whose .pth files it then processes), so it
        finds the same modules whatever its argv[0] says.
        """
        # JSON lists and strings are Python literals, and need no quoting inside '...'.
        boot = (f"import sys,site;sys.path[:]={json.dumps(list(self.path))};"
                f"[site.addsitedir(d) for d in {json.dumps(list(self.site_dirs))}];"
                f"sys.argv[0]={json.dumps(argv0)};"
                "from node.cli.calico_node import entry;entry()")
        return (bash, "-c", EXEC_AS, argv0, self.executable, "-S", "-c", boot, *args)


def backend(env: Mapping[str, str]) -> str:
    return env.get(BACKEND_ENV, "")


def runs_bird(env: Mapping[str, str]) -> bool:
    return backend(env) not in NO_BGP_BACKENDS


def runs_felix(env: Mapping[str, str]) -> bool:
    return not env.get(DISABLE_FELIX_ENV, "")


def runs_monitor(env: Mapping[str, str]) -> bool:
    return backend(env) != "none"


def runs_token_monitor(env: Mapping[str, str]) -> bool:
    """Calico's ``CALICO_MANAGE_CNI`` test, and a Kubernetes configuration to get tokens
    from (``KUBECONFIG``, or the in-cluster service account's environment)."""
    if env.get(MANAGE_CNI_ENV) == "false":
        return False
    return bool(env.get("KUBECONFIG") or env.get("KUBERNETES_SERVICE_HOST"))


def bird_argv(binary: str, socket: str, config: str) -> tuple[str, ...]:
    return (binary, "-R", "-s", socket, "-d", "-c", config)


def _which(name: str, what: str) -> str:
    found = shutil.which(name)
    if not found:
        raise ProgramError(f"{name} not found on PATH ({what}); "
                           "scripts/install-system-packages.sh installs it")
    return found


def enabled_programs(env: Mapping[str, str], paths: Paths, python: Python | None = None) -> list[Program]:
    """The programs to supervise for this environment, in start order."""
    python = python or Python.current()
    programs: list[Program] = []
    if runs_felix(env):
        bash = _which("bash", "it launches the policy agent under the name calico-node")
        programs.append(Program("felix", python.role_named("calico-node", "-felix", bash=bash),
                                comment="the policy agent, named as calicoctl node status expects"))
    if runs_bird(env):
        _which("bird", "the BGP daemon")
        _which("bird6", "the IPv6 BGP daemon")
        output = paths.confd_output_dir
        programs.append(Program("confd", python.role("confd"), comment="renders BIRD's config, reloads BIRD"))
        for family, binary, socket in ((4, "bird", paths.bird_socket), (6, "bird6", paths.bird6_socket)):
            config = str(output / f"{binary}.cfg")
            argv = ("/bin/sh", "-c", WAIT_FOR_CONFIG, "wait-for-config", config,
                    *bird_argv(binary, str(socket), config))
            programs.append(Program(binary, argv, comment=f"BGP for IPv{family}, once the renderer wrote {config}"))
    programs.append(Program("node-services", python.role("node-services"),
                            comment="complete-startup, tunnel addresses, node status, address and token monitors"))
    return programs


def names(programs: Sequence[Program]) -> list[str]:
    return [p.name for p in programs]
