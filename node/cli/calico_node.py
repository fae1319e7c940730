"""``calico-node``: the image's own roles, one subcommand each.

Each role (startup, confd, felix, health...) lives in ``node/cli/roles/<role>.py`` as a
thin wrapper that parses its flags and calls into the package that owns the role.
``main`` is the one place an unexpected exception is turned into a short message and
exit code 1: an operator reading a container log sees what failed and which variable
gives the details, never a bare traceback.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import NoReturn, Sequence

from node import __version__
from node.cli import legacy_flags
from node.cli.plugins import register_all
from node.cli.process_end import run_and_end
from node.cli.role_logging import ROLE_LOG_LEVEL_ENV  # each role's log level variables
from node.cli.roles.health import FLAGS as HEALTH_FLAGS, THRESHOLD_FLAG

log = logging.getLogger("node.cli.calico_node")


# Calico's released flag-style command lines, as its runit services, DaemonSets and
# helper scripts spell them: ``calico-node -felix`` (the policy agent; ``calicoctl node
# status`` looks for that process), ``-startup``, ``-confd``, ``-monitor-token``,
# ``-status-reporter``, ``-shutdown`` (the preStop hook), ``-felix-live -bird-live`` (the
# health probes), ``-v``...: see ``node.cli.legacy_flags``.
LEGACY_ROLE_FLAGS = {f"{dash}{flag}": role for flag, role in legacy_flags.ROLES if role and flag != "v"
                     for dash in ("-", "--")}
LEGACY_HEALTH_FLAGS = (*HEALTH_FLAGS, THRESHOLD_FLAG)


def translate_legacy(argv: Sequence[str]) -> list[str]:
    """Map a legacy flag-style command line onto the subcommand form (``LegacyUsage``
    when Calico's binary would refuse it)."""
    return legacy_flags.translate(argv)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="calico-node", description="Calico node roles.")
    sub = parser.add_subparsers(dest="role", required=True)
    p = sub.add_parser("version", help="print the version")
    p.set_defaults(func=lambda args: print(__version__) or 0)
    register_all("node.cli.roles", sub)
    return parser


def _one_line(text: str) -> str:
    return " | ".join(line.strip() for line in text.splitlines() if line.strip())


def _debug_requested(env_vars: tuple[str, ...]) -> bool:
    level = next((os.environ[v] for v in env_vars if os.environ.get(v)), "")
    return level.strip().lower() in ("debug", "trace")


def _log_traceback(what: str, exc: BaseException) -> None:
    """Log the traceback at debug level on stderr, through the role's handler when the
    role set one up, else through one added for this record."""
    root = logging.getLogger()
    to_stderr = any(isinstance(h, logging.StreamHandler) and getattr(h, "stream", None) is sys.stderr
                    for h in root.handlers)
    extra = None if to_stderr else logging.StreamHandler(sys.stderr)
    if extra is not None:
        log.addHandler(extra)
    old_level = log.level
    log.setLevel(logging.DEBUG)
    try:
        log.debug("%s failed", what, exc_info=exc)
    finally:
        log.setLevel(old_level)
        if extra is not None:
            log.removeHandler(extra)


def report_unexpected(role: str | None, exc: BaseException) -> None:
    """One line saying what failed, then how to get the traceback (or, with debug logs
    on, the traceback itself through logging)."""
    what = f"calico-node {role}" if role else "calico-node"
    env_vars = ROLE_LOG_LEVEL_ENV.get(role or "", ())
    debug = _debug_requested(env_vars)
    if debug:
        _log_traceback(what, exc)
    print(f"{what} failed: unexpected {type(exc).__name__}: {_one_line(str(exc))}", file=sys.stderr)
    if not debug:
        hint = (f"Set {env_vars[0]}=debug to log the traceback." if env_vars
                else "Rerun with this role's log level set to debug to log the traceback.")
        print(hint, file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    role = None
    try:
        try:
            translated = translate_legacy(sys.argv[1:] if argv is None else argv)
        except legacy_flags.LegacyUsage as exc:
            print(exc.message, flush=True)
            if exc.details:
                print(exc.details, file=sys.stderr)
            return exc.code
        args = build_parser().parse_args(translated)
        role = args.role
        return args.func(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 141
    except Exception as exc:
        report_unexpected(role, exc)
        return 1


def entry() -> NoReturn:
    """The ``calico-node`` command (see ``node.cli.process_end`` for why it ends so)."""
    run_and_end(main)


if __name__ == "__main__":
    entry()
