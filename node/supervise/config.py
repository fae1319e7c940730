"""supervisord's configuration for one node, from ``rootfs/etc/calico/supervisord.conf.j2``.

The template only lays the file out; this module decides every value. All paths come
from the node's ``Layout`` (``CALICO_*_DIR``), so a second node with other directories
gets a configuration that shares nothing with the first.

Logging follows Calico's runit setup (each service's ``log/run``: ``tee >(svlogd -ttt
DIR)``): each program's output (stderr folded into stdout) goes to the container log
(supervisord's stdout) and, with a svlogd ``-ttt`` timestamp on every line, to
``$CALICO_LOG_DIR/<program>/current``, rotated at 10 MB with 5 files kept. One logging
process per program does both (``node.supervise.logtee``, which the program's command
starts before it execs the program, so supervisord still watches the program itself).
With ``CALICO_DISABLE_FILE_LOGGING=true`` the output goes only to the container log,
straight from supervisord, and no log directory is used. The restarter's stderr is
handled the same way (its stdout is supervisord's event protocol). supervisord's own log
(starts, exits, restarts) is always on its stdout, and also in
``$CALICO_LOG_DIR/supervisord.log`` when file logging is on.

``CALICO_SUPERVISORD_TEMPLATE`` points at another template.
"""
from __future__ import annotations

import os
import re
import shlex
import time
from pathlib import Path
from typing import Mapping, Sequence

import jinja2

from node.files import write_atomically
from node.supervise.layout import LOG_BACKUPS, LOG_MAX_BYTES, Layout
from node.supervise.programs import Program, Python, backend

TEMPLATE_ENV = "CALICO_SUPERVISORD_TEMPLATE"
DEFAULT_TEMPLATE = Path(__file__).resolve().parents[2] / "rootfs" / "etc" / "calico" / "supervisord.conf.j2"
DISABLE_FILE_LOGGING_ENV = "CALICO_DISABLE_FILE_LOGGING"

# supervisord's "don't give up yet" settings: a program must stay up this long to count
# as started; this many quick failures in a row (waiting 1 s, 2 s, 3 s... between them)
# and supervisord stops trying, until the restarter starts it again.
START_SECS = 1
START_RETRIES = 5

_INLINE_COMMENT = re.compile(r"\s[;#]")


class SupervisorConfigError(Exception):
    """A value cannot be written into supervisord's configuration."""


def file_logging(env: Mapping[str, str]) -> bool:
    """Calico's rc.local removes the log services only when the value is exactly "true"."""
    return env.get(DISABLE_FILE_LOGGING_ENV, "") != "true"


def template_path(env: Mapping[str, str]) -> Path:
    return Path(env.get(TEMPLATE_ENV) or DEFAULT_TEMPLATE)


def escape(value: object, expansions: int = 1) -> str:
    """A value as supervisord reads it back: ``%`` doubled for each time supervisord
    expands ``%(name)s`` in that setting (twice for programs' log file names).

    Newlines and a ``;`` or ``#`` after whitespace (an inline comment to supervisord's
    parser) cannot be written; refused with the value named.
    """
    text = str(value)
    if "\n" in text or "\r" in text:
        raise SupervisorConfigError(f"cannot write {text!r} into supervisord's configuration: it has a newline")
    if _INLINE_COMMENT.search(text):
        raise SupervisorConfigError(f"cannot write {text!r} into supervisord's configuration: supervisord "
                                    "would read ' ;' or ' #' as the start of a comment")
    return text.replace("%", "%" * (2 ** expansions))


def log_file_value(path: str) -> str:
    """A program's ``stdout_logfile``/``stderr_logfile``, which supervisord expands twice."""
    return escape(path, expansions=2)


def command_line(argv: Sequence[str]) -> str:
    return escape(shlex.join(argv))


# Every program's output reaches the container log through supervisord's stdout (not
# seekable: supervisord's own rotation stays off); the files are logtee's.
CONTAINER_LOG = "/dev/stdout"
LOGTEE = Path(__file__).resolve().with_name("logtee.py")


def logged_argv(executable: str, argv: Sequence[str], directory: Path, streams: str = "out") -> tuple[str, ...]:
    """``argv`` run under ``node.supervise.logtee``: its output (``streams`` "out": stdout
    and stderr, "err": stderr only) copied to the container log and, timestamped and
    rotated, to ``directory/current``."""
    return (executable, "-I", "-S", str(LOGTEE), "--parent-stdout", str(directory), str(LOG_MAX_BYTES),
            str(LOG_BACKUPS), streams, "--", *argv)


def log_dirs(layout: Layout, programs: Sequence[Program], env: Mapping[str, str]) -> list[Path]:
    """The directories the configuration logs into (to create before supervisord starts)."""
    if not file_logging(env):
        return []
    return [layout.paths.log_dir, *(layout.program_log_dir(p.name) for p in programs),
            layout.program_log_dir("restarter")]


def render(env: Mapping[str, str], layout: Layout, programs: Sequence[Program], nodename: str,
           python: Python | None = None) -> str:
    python = python or Python.current()
    to_files = file_logging(env)
    path = template_path(env)
    if not path.is_file():
        raise SupervisorConfigError(f"supervisord template {path} not found (set {TEMPLATE_ENV})")
    jenv = jinja2.Environment(loader=jinja2.FileSystemLoader(str(path.parent)), undefined=jinja2.StrictUndefined,
                              trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True, autoescape=False)
    rendered_programs = []
    for program in programs:
        argv = program.argv
        if to_files:
            argv = logged_argv(python.executable, argv, layout.program_log_dir(program.name))
        rendered_programs.append({
            "name": program.name, "command": command_line(argv), "stop_wait": program.stop_wait,
            "comment": program.comment.replace("\n", " "), "log_file": log_file_value(CONTAINER_LOG),
        })
    restarter_argv: tuple[str, ...] = (python.executable, "-m", "node.supervise.restarter",
                                       "--server-url", layout.server_url)
    if to_files:
        restarter_argv = logged_argv(python.executable, restarter_argv, layout.program_log_dir("restarter"), "err")
    restarter = {"command": command_line(restarter_argv), "log_file": log_file_value(CONTAINER_LOG)}
    context = {
        "written_at": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "backend": backend(env) or "(unset: bird)",
        "conf_file": escape(layout.conf_file),
        "user": "root" if os.geteuid() == 0 else "",
        "log_file": escape(layout.log_file if to_files else "/dev/null"),
        "log_max_bytes": LOG_MAX_BYTES if to_files else 0,
        "log_backups": LOG_BACKUPS if to_files else 0,
        "pidfile": escape(layout.pidfile),
        "child_log_dir": escape(layout.paths.log_dir if to_files else layout.paths.run_dir),
        "identifier": escape(f"calico-node-{nodename}" if nodename else "calico-node"),
        "socket": escape(layout.socket),
        "server_url": escape(layout.server_url),
        "programs": rendered_programs,
        "start_secs": START_SECS,
        "start_retries": START_RETRIES,
        "restarter": restarter,
    }
    return jenv.get_template(path.name).render(**context)


def write(text: str, layout: Layout) -> Path:
    """Write the configuration atomically (0644) and return its path."""
    target = layout.conf_file
    target.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(target, text, 0o644)
    return target
