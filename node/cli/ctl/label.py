"""``calicoctl label KIND NAME KEY=VALUE [--overwrite] | KEY --remove``: edit one label.

The resource is read, its labels changed, and written back at the revision that was
read, so a concurrent change is a conflict rather than a lost update. Messages are
calicoctl's ("Successfully set label ...", "... key K is already present ...").
"""
from __future__ import annotations

from node.cli.ctl._common import CommandFailed, UsageError, check_version_mismatch, client_from_args, resolve_namespace
from node.errors import CalicoError, NotFound
from node.model import Resource, UnknownKind, kind_info


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "label", help="add, update or remove a label of a resource",
        description="Add, update or remove one label of an existing resource.",
        usage="calicoctl label KIND NAME (KEY=VALUE [--overwrite] | KEY --remove) [-n NS] [-c CONFIG]")
    p.add_argument("kind", metavar="KIND")
    p.add_argument("name", metavar="NAME")
    p.add_argument("label", metavar="KEY=VALUE|KEY")
    p.add_argument("-n", "--namespace", default=None, help="namespace of a namespaced resource (default: default)")
    p.add_argument("--overwrite", action="store_true", help="replace the value when the key is already present")
    p.add_argument("--remove", action="store_true", help="remove the label with this key")
    p.set_defaults(func=cmd_label)


def relabel(labels: dict, key: str, value: str | None, overwrite: bool, subject: str) -> tuple[dict, str]:
    """The new labels and what happened ("removed", "updated" or "set"); ``value`` None
    removes ``key``. ``subject`` ("KIND NAME" as typed) names the resource in errors."""
    out = dict(labels)
    if value is None:
        if key not in out:
            raise CommandFailed(f"cannot remove label of {subject}, key {key} does not exist")
        del out[key]
        return out, "removed"
    if key in out:
        if not overwrite and out[key] != value:
            raise CommandFailed(f"failed to update label of {subject}, key {key} is already present. "
                                "please use '--overwrite' to set a new value")
        out[key] = value
        return out, "updated"
    out[key] = value
    return out, "set"


def cmd_label(args) -> int:
    if args.remove and args.overwrite:
        raise UsageError("calicoctl label: --overwrite cannot be used with --remove")
    subject = f"{args.kind} {args.name}"
    if args.remove:
        key, value = args.label, None
    else:
        # calicoctl splits KEY=VALUE on every "=" and wants exactly two parts.
        parts = args.label.split("=")
        if len(parts) != 2:
            raise CommandFailed(f"invalid label {args.label}")
        key, value = parts
    if not args.name:
        raise CommandFailed("resource name may not be empty")
    try:
        info = kind_info(args.kind)
        if info.extra.get("not_in_calicoctl"):
            raise UnknownKind(f"resource type '{args.kind}' is not supported")
    except UnknownKind as exc:
        raise CommandFailed(f"failed to get {subject}, error {exc}") from exc
    check_version_mismatch(args, f"failed to get {subject}, error ")
    client = client_from_args(args)
    target = Resource(info.kind, {"name": args.name})
    try:
        resolve_namespace(target, args.namespace)
        current = client.get(info.kind, target.name, target.namespace)
    except NotFound:
        raise CommandFailed(f"{subject} not found") from None
    except CalicoError as exc:
        raise CommandFailed(f"failed to get {subject}, error {exc}") from exc

    labels, happened = relabel(current.labels, key, value, args.overwrite, subject)
    if labels:
        current.metadata["labels"] = labels
    else:
        current.metadata.pop("labels", None)
    try:
        client.replace(current)  # at the revision read: a concurrent change is a conflict
    except CalicoError as exc:
        raise CommandFailed(f"failed to update {subject}, label not changed: {exc}") from exc
    where = "from" if happened == "removed" else "on"
    print(f"Successfully {happened} label {key} {where} {subject}")
    return 0
