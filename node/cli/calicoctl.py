"""``calicoctl``: the operator's tool. Resource commands (create/apply/replace/delete/get).

Output lines and exit codes follow calicoctl: a summary such as
``Successfully applied 3 'IPPool' resource(s)`` on stdout, errors on stderr, exit 1 on
any failure (including partial ones).
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from typing import Callable, Sequence

import yaml

from node.cli.plugins import register_all
from node.config import calicoctl_datastore_config
from node.errors import AlreadyExists, CalicoError, ConfigError, NotFound
from node.model import API_VERSION, Resource, UnknownKind, kind_info, load_documents
from node.model.resource import from_dict
from node.model.schema import Collector, canonical_struct

PAST = {"create": "created", "apply": "applied", "replace": "replaced", "delete": "deleted"}


class CommandFailed(Exception):
    """A user-facing failure: the message is printed as is and calicoctl exits 1."""


def client_from_args(args) -> "object":
    from node.datastore.factory import client_for

    return client_for(calicoctl_datastore_config(args.config))


# --------------------------------------------------------------------------------------
# Reading resources from -f.

def _read_source(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except OSError as exc:
        raise CommandFailed(f"failed to execute command: could not read {path}: {exc.strerror}") from exc


def _load_file_resources(path: str) -> list[Resource]:
    text = _read_source(path)
    try:
        return [from_dict(doc, strict=True) for doc in load_documents(text, path)]
    except (CalicoError, UnknownKind) as exc:
        raise CommandFailed(f"failed to execute command: {exc}") from exc


def _apply_namespace(res: Resource, namespace: str | None) -> None:
    """calicoctl's namespace rules for -f input."""
    if res.info.namespaced:
        if not res.namespace:
            res.metadata["namespace"] = namespace or "default"
        elif namespace and res.namespace != namespace:
            raise CalicoError(f"resource namespace does not match client namespace. {res.namespace} != {namespace}")
    elif namespace:
        raise CalicoError(f"{res.kind} is not namespaced")


@dataclass
class Results:
    resources: list[Resource] = field(default_factory=list)
    handled: list[Resource] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def single_kind(self) -> str:
        kinds = {r.kind for r in self.resources}
        return kinds.pop() if len(kinds) == 1 else ""


def _errors_text(errors: list[str]) -> str:
    return "[" + " ".join(errors) + "]"


def _run_each(resources: list[Resource], action: Callable[[Resource], object], stop_on_error: bool,
               skip: tuple[type, ...] = ()) -> Results:
    results = Results(resources=resources)
    for res in resources:
        try:
            action(res)
        except skip:
            pass
        except CalicoError as exc:
            results.errors.append(str(exc))
            if stop_on_error:
                break
            continue
        results.handled.append(res)
    return results


def _report(verb: str, results: Results, stop_on_error: bool) -> int:
    past = PAST[verb]
    kind = results.single_kind
    total, done = len(results.resources), len(results.handled)
    what = f"'{kind}' " if kind else ""
    if total == 0:
        print("No resources specified")
        return 0
    if done == 0:
        if total == 1:
            raise CommandFailed(f"failed to {verb} {what}resource: {_errors_text(results.errors)}")
        raise CommandFailed(f"failed to {verb} any {what}resources: {_errors_text(results.errors)}")
    if not results.errors:
        print(f"Successfully {past} {done} {what}resource(s)")
        return 0
    print(f"Partial success: {past} the first {done} out of {total} {what}resources:")
    raise CommandFailed(f"hit error: {_errors_text(results.errors)}")


def cmd_write(args, verb: str) -> int:
    resources = _load_file_resources(args.filename)
    client = client_from_args(args)

    def act(res: Resource):
        _apply_namespace(res, args.namespace)
        if verb == "create":
            return client.create(res)
        if verb == "apply":
            return client.apply(res)
        return client.replace(res)

    skip = (AlreadyExists,) if verb == "create" and args.skip_exists else ()
    stop = verb == "replace"
    return _report(verb, _run_each(resources, act, stop_on_error=stop, skip=skip), stop)


def cmd_delete(args) -> int:
    client = client_from_args(args)
    if args.filename:
        if args.kind:
            raise CommandFailed("cannot specify both a file and a resource type")
        resources = _load_file_resources(args.filename)
    else:
        if not args.kind or not args.names:
            raise CommandFailed("specify a file with -f, or a resource type and one or more names")
        info = _kind(args.kind)
        resources = [Resource(info.kind, {"name": n}) for n in args.names]

    def act(res: Resource):
        _apply_namespace(res, args.namespace)
        return client.delete(res.kind, res.name, res.namespace, res.resource_version)

    skip = (NotFound,) if args.skip_not_exists else ()
    results = _run_each(resources, act, stop_on_error=False, skip=skip)
    kind = results.single_kind
    what = f"'{kind}' " if kind else ""
    if not resources:
        print("No resources specified")
        return 0
    if results.handled:
        print(f"Successfully deleted {len(results.handled)} {what}resource(s)")
    if results.errors:
        raise CommandFailed("".join(f"Failed to delete {what}resource: {e}\n" for e in results.errors).rstrip("\n"))
    return 0


# --------------------------------------------------------------------------------------
# get

def _kind(name: str):
    try:
        return kind_info(name)
    except UnknownKind as exc:
        raise CommandFailed(f"failed to get resources: {exc}") from exc


def _output_dict(res: Resource, export: bool = False) -> dict:
    out = res.to_dict()
    meta = dict(out["metadata"])
    if export:
        for key in ("namespace", "uid", "resourceVersion", "creationTimestamp"):
            meta.pop(key, None)
    meta = canonical_struct(meta, "ObjectMeta", "", Collector(), strict=False)
    return {**out, "metadata": meta}


def _yaml(value) -> str:
    # calicoctl renders YAML through JSON, so keys come out sorted.
    return yaml.safe_dump(value, default_flow_style=False, sort_keys=True, allow_unicode=True)


def _table(rows: list[list[str]]) -> str:
    """Go's tabwriter(minwidth=5, tabwidth=1, padding=3, ' ') over tab-terminated cells:
    every cell, the last one included, is padded to its column's width."""
    widths = [max(max(len(row[i]) for row in rows) + 3, 5) for i in range(len(rows[0]))]
    return "".join("".join(cell.ljust(widths[i]) for i, cell in enumerate(row)) + "\n" for row in rows)


def cmd_get(args) -> int:
    info = _kind(args.kind)
    if args.all_namespaces and args.namespace:
        raise CommandFailed("cannot use both --namespace and --all-namespaces flags at the same time")
    if not info.namespaced and (args.namespace or args.all_namespaces):
        if args.namespace:
            raise CommandFailed(f"failed to get resources: {info.kind} is not namespaced")
    client = client_from_args(args)
    namespace = "" if args.all_namespaces else (args.namespace or "default") if info.namespaced else ""
    errors: list[str] = []
    if args.names:
        found = []
        for name in args.names:
            try:
                found.append(client.get(info.kind, name, namespace))
            except NotFound as exc:
                errors.append(str(exc))
            except CalicoError as exc:
                raise CommandFailed(f"failed to get resources: {exc}") from exc
        listed = False
    else:
        try:
            found = client.list(info.kind, namespace)
        except CalicoError as exc:
            raise CommandFailed(f"failed to get resources: {exc}") from exc
        found.sort(key=lambda r: (r.namespace, r.name))
        listed = True

    output = args.output
    if output in ("yaml", "json"):
        if listed:
            doc = {"apiVersion": API_VERSION, "kind": f"{info.kind}List",
                   "items": [_output_dict(r, args.export) for r in found],
                   "metadata": {"resourceVersion": max((r.resource_version for r in found), key=_rv_key, default="")}}
            if not doc["metadata"]["resourceVersion"]:
                doc["metadata"] = {}
            if output == "json":
                doc = {"kind": doc["kind"], "apiVersion": API_VERSION, "metadata": doc["metadata"], "items": doc["items"]}
        elif len(found) == 1:
            doc = _output_dict(found[0], args.export)
        else:
            doc = [_output_dict(r, args.export) for r in found]
        if found or listed:
            if output == "yaml":
                sys.stdout.write(_yaml(doc))
            else:
                sys.stdout.write(json.dumps(doc, indent=2, ensure_ascii=False))
                sys.stdout.write("\n")
    elif output in ("ps", "wide"):
        columns = info.wide_columns if output == "wide" and info.wide_columns else info.columns
        if info.namespaced and args.all_namespaces:
            from node.model.kinds import NAMESPACE
            columns = (NAMESPACE,) + tuple(columns)
        rows = [[title for title, _ in columns]]
        rows += [[fn(r.to_dict()) for _, fn in columns] for r in found]
        sys.stdout.write(_table(rows))
        sys.stdout.write("\n")
    else:
        raise CommandFailed(f"unrecognized output format '{output}'")
    if errors:
        raise CommandFailed("\n".join(errors))
    return 0


def _rv_key(rv: str) -> int:
    return int(rv) if rv.isdigit() else -1


# --------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="calicoctl", description="Manage Calico resources.")
    parser.add_argument("-c", "--config", default=None,
                        help="path to a CalicoAPIConfig file (default /etc/calico/calicoctl.cfg, then the environment)")
    parser.add_argument("-l", "--log-level", default="panic", help=argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", required=True)

    for verb, help_text in (("create", "create resources from a file"), ("apply", "create or replace resources"),
                            ("replace", "replace existing resources")):
        p = sub.add_parser(verb, help=help_text)
        p.add_argument("-f", "--filename", required=True, help="file to read, or - for stdin")
        p.add_argument("-n", "--namespace", default=None)
        p.add_argument("-c", "--config", default=argparse.SUPPRESS)
        if verb == "create":
            p.add_argument("--skip-exists", action="store_true", help="do not fail on resources that already exist")
        p.set_defaults(func=lambda a, v=verb: cmd_write(a, v))

    p = sub.add_parser("delete", help="delete resources by file or by type and name")
    p.add_argument("kind", nargs="?")
    p.add_argument("names", nargs="*")
    p.add_argument("-f", "--filename", default=None)
    p.add_argument("-n", "--namespace", default=None)
    p.add_argument("-c", "--config", default=argparse.SUPPRESS)
    p.add_argument("--skip-not-exists", action="store_true")
    p.set_defaults(func=cmd_delete)

    p = sub.add_parser("get", help="show resources")
    p.add_argument("kind")
    p.add_argument("names", nargs="*")
    p.add_argument("-o", "--output", default="ps", help="yaml, json, ps (default) or wide")
    p.add_argument("-n", "--namespace", default=None)
    p.add_argument("-A", "-a", "--all-namespaces", action="store_true", dest="all_namespaces")
    p.add_argument("--export", action="store_true")
    p.add_argument("-c", "--config", default=argparse.SUPPRESS)
    p.set_defaults(func=cmd_get)
    register_all("node.cli.ctl", sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except CommandFailed as exc:
        print(exc, file=sys.stderr)
        return 1
    except ConfigError as exc:
        print(f"Failed to create Calico API client: {exc}", file=sys.stderr)
        return 1
    except CalicoError as exc:
        print(f"failed to execute command: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
