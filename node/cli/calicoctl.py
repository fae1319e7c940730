"""``calicoctl``: the operator's tool. Resource commands (create/apply/replace/delete/get).

Output lines and exit codes follow calicoctl: a summary such as
``Successfully applied 3 'IPPool' resource(s)`` on stdout, errors on stderr, exit 1 on
any failure (including partial ones). Options may come anywhere on the command line, as
they may in calicoctl. Other command groups (ipam, label, patch, version...) live in
``node/cli/ctl/``.
"""
from __future__ import annotations

import argparse
import io
import json
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, NoReturn, Sequence

from node.cli.ctl._common import (
    CommandFailed,
    UsageError,
    check_version_mismatch,
    client_from_args,
    kind_or_fail,
    resolve_namespace,
    summary_kind,
)
from node.cli.ctl._printers import Listed, printer_for, render
from node.cli.ctl._source import load_resources
from node.cli.plugins import register_all
from node.cli.process_end import run_and_end
from node.config import ConfigFileUnreadable
from node.errors import AlreadyExists, CalicoError, ConfigError, ConnectionFailed, NotFound, Unauthorized
from node.model import Resource, validate_resource

__all__ = ["CommandFailed", "UsageError", "client_from_args", "build_parser", "main"]

log = logging.getLogger("node.cli.calicoctl")

PAST = {"create": "created", "apply": "applied", "replace": "replaced", "delete": "deleted",
        "validate": "validated"}

# logrus's level names, as calicoctl's --log-level takes them. panic is calicoctl's
# default: nothing at all is logged.
LOG_LEVELS = {"panic": logging.CRITICAL + 1, "fatal": logging.CRITICAL, "error": logging.ERROR,
              "warn": logging.WARNING, "warning": logging.WARNING, "info": logging.INFO,
              "debug": logging.DEBUG, "trace": logging.DEBUG}
DEBUG_HINT = "Rerun with --log-level=debug to log the details."


# --------------------------------------------------------------------------------------
# Running one action per resource, and saying truthfully what happened.

@dataclass(frozen=True)
class Stop:
    """Why a run ended before the last resource: ``index`` is the resource it failed on."""

    index: int
    reason: str  # "error" (replace stops at its first error), "datastore" or "unexpected"


@dataclass
class Run:
    """What a bulk command did, by position in its input."""

    resources: list[Resource]
    done: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    stop: Stop | None = None


# The datastore is unreachable or refuses us: every later request would fail the same way.
# (Other datastore errors, such as an entry that does not decode, concern one resource.)
DATASTORE_DOWN = (ConnectionFailed, Unauthorized)


def run_each(resources: list[Resource], action: Callable[[Resource], object], stop_on_error: bool,
             skip: tuple[type, ...] = ()) -> Run:
    """Apply ``action`` to each resource in order. Errors about one resource are recorded
    and (unless ``stop_on_error``) the run goes on; losing the datastore or an unexpected
    exception ends it there, since every later resource would fail the same way."""
    run = Run(resources)
    for index, res in enumerate(resources):
        try:
            action(res)
        except skip:
            run.skipped.append(index)
            continue
        except DATASTORE_DOWN as exc:
            run.errors.append(str(exc))
            run.stop = Stop(index, "datastore")
            break
        except CalicoError as exc:
            run.errors.append(str(exc))
            if stop_on_error:
                run.stop = Stop(index, "error")
                break
            continue
        except Exception as exc:  # a bug: report the progress made, then the failure
            log.debug("unexpected failure on %s", res.identifier(), exc_info=True)
            run.errors.append(f"unexpected {type(exc).__name__}: {_one_line(str(exc))}")
            run.stop = Stop(index, "unexpected")
            break
        run.done.append(index)
    return run


def _one_line(text: str) -> str:
    return " | ".join(line.strip() for line in text.splitlines() if line.strip())


def _stop_lines(run: Run, past: str) -> list[str]:
    stop = run.stop
    if stop is None or stop.reason == "error":
        return []
    total = len(run.resources)
    lines = [f"stopped at {run.resources[stop.index].identifier()} (resource {stop.index + 1} of {total}, "
             f"which may or may not have been {past}); {total - stop.index - 1} resource(s) not attempted"]
    if stop.reason == "unexpected" and not log.isEnabledFor(logging.DEBUG):
        lines.append(DEBUG_HINT)
    return lines


def write_report(verb: str, run: Run) -> tuple[list[str], str | None]:
    """stdout lines and the stderr message (None on success) for create/apply/replace.

    calicoctl's wording; "the first N" is said only when the N written resources are the
    first N of the input, and skipped resources are not counted as written.
    """
    past = PAST[verb]
    kind = summary_kind(run.resources)
    what = f"'{kind}' " if kind else ""
    total, done = len(run.resources), len(run.done)
    out: list[str] = []
    skipped = [f"Skipped {len(run.skipped)} {what}resource(s) that already exist"] if run.skipped else []
    if not run.errors:
        if done or not run.skipped:
            out.append(f"Successfully {past} {done} {what}resource(s)")
        return out + skipped, None
    # replace stops at its one error and calicoctl prints that error bare; create and
    # apply collect theirs in brackets, one per line.
    errors = run.errors[0] if verb == "replace" else "[" + "\n".join(run.errors) + "]"
    if done == 0:
        out += skipped
        if total == 1:
            message = f"failed to {verb} {what}resource: {errors}"
        else:
            message = f"failed to {verb} any {what}resources: {errors}"
    else:
        first = "the first " if run.done == list(range(done)) else ""
        out.append(f"Partial success: {past} {first}{done} out of {total} {what}resources:")
        out += skipped
        message = f"hit error{'(s)' if verb == 'validate' else ''}: {errors}"
    return out, "\n".join([message] + _stop_lines(run, past))


def delete_report(run: Run) -> tuple[list[str], str | None]:
    """stdout lines and the stderr message for delete: only what was really deleted is
    counted; resources skipped with --skip-not-exists are reported on their own line."""
    kind = summary_kind(run.resources)
    what = f"'{kind}' " if kind else ""
    out: list[str] = []
    if run.done:
        out.append(f"Successfully deleted {len(run.done)} {what}resource(s)")
    if run.skipped:
        out.append(f"Skipped {len(run.skipped)} {what}resource(s) that did not exist")
    lines = [f"Failed to delete {what}resource: {e}" for e in run.errors] + _stop_lines(run, "deleted")
    return out, ("\n".join(lines) if lines else None)


def _emit(report: tuple[list[str], str | None]) -> int:
    out, err = report
    for line in out:
        print(line)
    if err is not None:
        raise CommandFailed(err)
    return 0


# --------------------------------------------------------------------------------------
# create / apply / replace / delete

class NotSupported(CalicoError):
    """libcalico-go's ErrorOperationNotSupported, as calicoctl's resource helpers raise it."""

    def __init__(self, operation: str, identifier: str, reason: str = ""):
        super().__init__(f"operation {operation} is not supported on {identifier}" + (f": {reason}" if reason else ""))


# In etcd mode Calico keeps Kubernetes NetworkPolicies as NetworkPolicies named with this
# prefix, so calicoctl refuses to write or delete Calico ones so named (networkpolicy.go).
KNP_PREFIX = "knp.default."
KNP_REASON = "kubernetes network policies must be managed through the kubernetes API"


def _refuse(verb: str, res: Resource, client) -> None:
    """calicoctl's resource helpers that refuse an operation: ClusterInformation is calico/
    node's to write (clusterinfo.go, resourcemgr.go's Apply); a ``knp.default.`` NetworkPolicy
    is Kubernetes'. apply and replace of the latter look it up first, as calicoctl's Update
    does, so a missing one is "resource does not exist"."""
    if res.kind == "ClusterInformation":
        operation = {"create": "create or apply", "apply": "apply", "replace": "apply or replace"}.get(verb, verb)
        raise NotSupported(operation, "ClusterInformation", "resource is readonly" if verb == "apply" else "")
    if res.kind == "NetworkPolicy" and res.name.startswith(KNP_PREFIX):
        ident = f"NetworkPolicy({res.namespace}/{res.name})"
        if verb in ("apply", "replace"):
            client.get(res.kind, res.name, res.namespace)
        raise NotSupported({"create": "create or apply", "apply": "apply or replace",
                            "replace": "apply or replace"}.get(verb, verb), ident, KNP_REASON)


def cmd_write(args, verb: str) -> int:
    check_version_mismatch(args)
    resources = load_resources(args.filename, args.recursive, args.skip_empty, getattr(args, "namespace", None))
    if not resources:
        print("No resources specified")
        return 0
    client = client_from_args(args)
    _try_ensure_initialized(client, args)
    write = {"create": client.create, "apply": client.apply, "replace": client.replace}[verb]

    def act(res: Resource):
        resolve_namespace(res, args.namespace)
        _refuse(verb, res, client)
        return write(res)

    skip = (AlreadyExists,) if verb == "create" and args.skip_exists else ()
    return _emit(write_report(verb, run_each(resources, act, stop_on_error=verb == "replace", skip=skip)))


def _try_ensure_initialized(client, args) -> None:
    """As calicoctl does before it writes (tryEnsureInitialized): the ClusterInformation
    and the default tiers, so that a policy can be written to a datastore no calico/node
    has initialized yet; a failure is only logged (the writes then say what is wrong)."""
    from node.config import calicoctl_datastore_config
    from startup.cluster import ensure_initialized

    try:
        ensure_initialized(client, "", "", calicoctl_datastore_config(args.config).datastore_type)
    except Exception as exc:  # noqa: BLE001 - as calicoctl, whatever it was, the writes go on
        log.info("Unable to initialize datastore: %s", exc)
        log.debug("datastore initialization failed", exc_info=True)


def cmd_validate(args) -> int:
    """calicoctl's ``validate``: each resource through Calico's validation, offline (no
    datastore, so no version check either), one by one, reported as create reports its
    writes."""
    resources = load_resources(args.filename, args.recursive, args.skip_empty, validate=False)
    if not resources:
        print("No resources specified")
        return 0

    def act(res: Resource):
        resolve_namespace(res, None)
        validate_resource(res)

    return _emit(write_report("validate", run_each(resources, act, stop_on_error=False)))


def _named(args, verb: str) -> list[Resource]:
    """Resources named on the command line (KIND NAME...), for delete and get."""
    info = kind_or_fail(args.kind, "" if verb == "delete" else "failed to get resources: ")
    if any(not n for n in args.names):
        raise CommandFailed("resource name may not be empty")
    return [Resource(info.kind, {"name": n}) for n in args.names or [""]]


def cmd_delete(args) -> int:
    if args.filename:
        if args.kind:
            raise UsageError("calicoctl delete: give either -f FILE or KIND NAME..., not both")
        check_version_mismatch(args)
        resources = load_resources(args.filename, args.recursive, args.skip_empty, getattr(args, "namespace", None))
        if not resources:
            print("No resources specified")
            return 0
    else:
        if not args.kind or not args.names:
            raise UsageError("calicoctl delete: a resource KIND and one or more NAMEs are required (or -f FILE)")
        check_version_mismatch(args)
        resources = _named(args, "delete")
    client = client_from_args(args)

    def act(res: Resource):
        resolve_namespace(res, args.namespace)
        _refuse("delete", res, client)
        return client.delete(res.kind, res.name, res.namespace, res.resource_version)

    skip = (NotFound,) if args.skip_not_exists else ()
    return _emit(delete_report(run_each(resources, act, stop_on_error=False, skip=skip)))


# --------------------------------------------------------------------------------------
# get

def cmd_get(args) -> int:
    if args.filename and args.kind:
        raise UsageError("calicoctl get: give either -f FILE or KIND [NAME...], not both")
    if not args.filename and not args.kind:
        raise UsageError("calicoctl get: a resource KIND is required (NAMEs are optional; "
                         "without them every resource of that KIND is listed), or -f FILE")
    printer = printer_for(args.output, args.all_namespaces or bool(args.namespace))
    check_version_mismatch(args, "failed to get resources: ")
    if args.filename:
        targets = load_resources(args.filename, args.recursive, args.skip_empty, getattr(args, "namespace", None))
    else:
        targets = _named(args, "get")
    client = client_from_args(args)
    objects: list[Resource | Listed] = []
    errors: list[str] = []
    for target in targets:
        try:
            resolve_namespace(target, args.namespace, args.all_namespaces)
            if not target.name:
                items, revision = client.list_at(target.kind, target.namespace)
                objects.append(Listed(target.info, sorted(items, key=lambda r: (r.namespace, r.name)), revision))
            elif target.info.namespaced and not target.namespace:
                raise CalicoError("cannot use --all-namespace flag for getting a single resource")
            else:
                objects.append(client.get(target.kind, target.name, target.namespace))
        except DATASTORE_DOWN as exc:
            raise CommandFailed(f"failed to get resources: {exc}") from exc
        except CalicoError as exc:
            errors.append(str(exc))
    # --export applies to resources named on the command line only, as in calicoctl.
    sys.stdout.write(render(printer, objects, export=args.export and bool(args.kind and args.names),
                            config=_config_lookup(client)))
    if errors:
        raise CommandFailed("\n".join(errors))
    return 0


def _config_lookup(client) -> Callable[[str], str]:
    """calicoctl's ``{{config "asnumber"}}`` for node tables: the default BGPConfiguration's
    asNumber, 64512 when it or its asNumber is missing, "unknown" when it cannot be read.
    Read at most once, and only when a table needs it."""
    cache: dict[str, str] = {}

    def lookup(name: str) -> str:
        if name.lower() != "asnumber":
            raise ValueError(f"unhandled config type {name}")
        if "asnumber" not in cache:
            try:
                asn = client.get("BGPConfiguration", "default").spec.get("asNumber")
                cache["asnumber"] = "64512" if asn is None else str(asn)
            except NotFound:
                cache["asnumber"] = "64512"
            except CalicoError:
                cache["asnumber"] = "unknown"
        return cache["asnumber"]

    return lookup


# --------------------------------------------------------------------------------------
# The command line.

class Parser(argparse.ArgumentParser):
    """argparse with calicoctl's habits: options and positionals mix freely (as docopt and
    cobra allow: ``get ippool -o yaml pool1``) and a bad command line exits 1."""

    _intermixing = False

    def parse_known_args(self, args=None, namespace=None):
        has_subcommands = any(isinstance(a, argparse._SubParsersAction) for a in self._actions)
        if self._intermixing or has_subcommands:
            return super().parse_known_args(args, namespace)
        self._intermixing = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._intermixing = False

    def error(self, message: str):
        self.print_usage(sys.stderr)
        self.exit(1, f"{self.prog}: error: {message}\n")


def _add_file_options(p: argparse.ArgumentParser, what: str, required: bool = False) -> None:
    p.add_argument("-f", "--filename", default=None, required=required,
                   help=f"file or directory of resources to {what}, or - for stdin "
                        "(a directory means its *.yaml, *.yml and *.json files)")
    p.add_argument("-R", "--recursive", action="store_true", help="with -f DIR, descend into subdirectories")
    p.add_argument("--skip-empty", action="store_true", help="do not fail on files or directories without data")
    p.add_argument("-n", "--namespace", default=None, help="namespace of namespaced resources (default: default)")


def _global_options(p: argparse.ArgumentParser, top: bool) -> None:
    """The options every calicoctl command takes; below the top they only override."""
    taken = p._option_string_actions
    hidden = {} if top else {"default": argparse.SUPPRESS}
    if "-l" not in taken and "--log-level" not in taken:
        p.add_argument("-l", "--log-level", **({"default": "panic"} if top else hidden),
                       help="log to stderr at this level: panic (default: nothing), fatal, error, warn, info, debug")
    if "-c" not in taken and "--config" not in taken:
        p.add_argument("-c", "--config", **({"default": None} if top else hidden),
                       help="CalicoAPIConfig file (default /etc/calico/calicoctl.cfg, then the environment)")
    if "--context" not in taken:
        p.add_argument("--context", **({"default": None} if top else hidden),
                       help="the kubeconfig context to use (sets K8S_CURRENT_CONTEXT)")
    if "--allow-version-mismatch" not in taken:
        p.add_argument("--allow-version-mismatch", action="store_true", **({"default": False} if top else hidden),
                       help="do not refuse to work with a cluster of another Calico release")


def _finish(parser: argparse.ArgumentParser, path: list[str]) -> None:
    """Give every (nested) subcommand the global options, its name and its parser."""
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        for name, sub in action.choices.items():
            sub_path = path + [name]
            sub.set_defaults(_cmd_path=" ".join(sub_path), _parser=sub)
            _global_options(sub, top=False)
            _finish(sub, sub_path)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="calicoctl", description="Manage Calico resources.")
    _global_options(parser, top=True)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    for verb, help_text in (("create", "create resources from a file, directory or stdin"),
                            ("apply", "create or replace resources"),
                            ("replace", "replace existing resources")):
        p = sub.add_parser(verb, help=help_text, description=help_text)
        _add_file_options(p, verb, required=True)
        p.set_defaults(func=lambda a, v=verb: cmd_write(a, v))
        if verb == "create":
            p.add_argument("--skip-exists", action="store_true", help="skip resources that already exist")

    p = sub.add_parser("validate", help="validate resources from a file, directory or stdin, offline",
                       description="Check resources as Calico would before writing them, without a datastore.")
    p.add_argument("-f", "--filename", required=True,
                   help="file or directory of resources to validate, or - for stdin "
                        "(a directory means its *.yaml, *.yml and *.json files)")
    p.add_argument("-R", "--recursive", action="store_true", help="with -f DIR, descend into subdirectories")
    p.add_argument("--skip-empty", action="store_true", help="do not fail on files or directories without data")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("delete", help="delete resources by file or by type and name",
                       usage="calicoctl delete (KIND NAME... | -f FILE [-R] [--skip-empty]) "
                             "[-s] [-n NS] [-c CONFIG]")
    p.add_argument("kind", nargs="?", metavar="KIND")
    p.add_argument("names", nargs="*", metavar="NAME")
    _add_file_options(p, "delete")
    p.add_argument("-s", "--skip-not-exists", action="store_true", help="skip resources that do not exist")
    p.set_defaults(func=cmd_delete)

    p = sub.add_parser("get", help="show resources",
                       usage="calicoctl get (KIND [NAME...] | -f FILE [-R] [--skip-empty]) "
                             "[-o OUTPUT] [-n NS | -A] [--export] [-c CONFIG]")
    p.add_argument("kind", nargs="?", metavar="KIND")
    p.add_argument("names", nargs="*", metavar="NAME")
    _add_file_options(p, "get")
    p.add_argument("-o", "--output", default="ps",
                   help="yaml, json, ps (default), wide or custom-columns=HEADING,...")
    p.add_argument("-A", "-a", "--all-namespaces", action="store_true", dest="all_namespaces")
    p.add_argument("--export", action="store_true", help="strip cluster-specific metadata (named resources only)")
    p.set_defaults(func=cmd_get)
    register_all("node.cli.ctl", sub)
    _finish(parser, [])
    return parser


# --------------------------------------------------------------------------------------
# Logging and the top-level handler.

class _StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is at the time of each record."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value):
        pass


class LogrusFormatter(logging.Formatter):
    """logrus's text layout, as calicoctl logs: ``time="..." level=debug msg="..."``."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(record.created))
        level = {"WARNING": "warning", "CRITICAL": "fatal"}.get(record.levelname, record.levelname.lower())
        text = f"time=\"{stamp}\" level={level} msg={json.dumps(record.getMessage(), ensure_ascii=False)}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def configure_logging(level_name: str) -> Callable[[], None]:
    """Log to stderr at ``level_name``; returns the function that undoes it (main runs
    in-process in tests and must not leave the root logger changed)."""
    level = LOG_LEVELS.get(level_name.lower())
    if level is None:
        raise CommandFailed(f"unknown log level: {level_name}, expected one of: "
                            "panic, fatal, error, warn, info, debug")
    root = logging.getLogger()
    handler = _StderrHandler()
    handler.setFormatter(LogrusFormatter())
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(level)

    def undo() -> None:
        root.removeHandler(handler)
        root.setLevel(old_level)

    return undo


def _docopt_help(argv: Sequence[str]) -> list[str]:
    """calicoctl's docopt reads a single-dash word as a stack of short options and takes
    letters it does not know, so ``calicoctl version -help`` (as Calico's troubleshooting
    page spells it) is ``-h`` and more: it shows the command's help. Such a word (before
    ``--``) becomes ``-h`` here."""
    out = list(argv)
    for index, word in enumerate(out):
        if word == "--":
            break
        if word.startswith("-h") and len(word) > 2 and not word.startswith("--") and "=" not in word:
            out[index] = "-h"
    return out


def _run(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(_docopt_help(sys.argv[1:] if argv is None else argv))
    undo = configure_logging(args.log_level)
    if args.context:
        os.environ["K8S_CURRENT_CONTEXT"] = args.context  # as calicoctl does, for the client it makes
    try:
        return args.func(args)
    except UsageError as exc:
        print(f"{exc}\n{args._parser.format_usage().rstrip()}", file=sys.stderr)
        return 1
    except CommandFailed as exc:
        print(exc, file=sys.stderr)
        return 1
    except ConfigFileUnreadable as exc:
        print(exc)  # calicoctl's clientmgr: on stdout, then exit 1
        return 1
    except ConfigError as exc:
        print(f"Failed to create Calico API client: {exc}", file=sys.stderr)
        return 1
    except CalicoError as exc:
        print(f"failed to execute command: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        raise
    except Exception as exc:
        what = f"calicoctl {getattr(args, '_cmd_path', '')}".rstrip()
        log.debug("%s failed", what, exc_info=True)
        print(f"{what} failed: unexpected {type(exc).__name__}: {_one_line(str(exc))}", file=sys.stderr)
        if not log.isEnabledFor(logging.DEBUG):
            print(DEBUG_HINT, file=sys.stderr)
        return 1
    finally:
        undo()


def main(argv: Sequence[str] | None = None) -> int:
    """Run one calicoctl command: its exit code, never a traceback."""
    try:
        return _run(argv)
    except CommandFailed as exc:  # raised before a command ran (e.g. a bad --log-level)
        print(exc, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (``calicoctl get ... | head``): stop quietly, as a Go
        # program killed by SIGPIPE does, and keep Python from complaining at exit.
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError, io.UnsupportedOperation):
            pass  # stdout is not a file descriptor (captured): nothing will flush to a pipe
        return 141
    except Exception as exc:
        print(f"calicoctl failed: unexpected {type(exc).__name__}: {_one_line(str(exc))}", file=sys.stderr)
        print(DEBUG_HINT, file=sys.stderr)
        return 1


def entry() -> NoReturn:
    """The ``calicoctl`` command (see ``node.cli.process_end`` for why it ends so)."""
    from node.cli.calicoctl import main as _main  # the module the command modules import

    run_and_end(_main)


if __name__ == "__main__":
    entry()
