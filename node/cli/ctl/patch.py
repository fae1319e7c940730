"""``calicoctl patch KIND NAME -p PATCH [-t strategic|merge]``: change fields in place.

calicoctl applies a Kubernetes strategic merge patch to the stored resource. Calico's
v3 types declare no list merge keys, so a strategic merge patch is a JSON merge patch
(RFC 7386: objects merge, lists and scalars replace, null deletes) plus the ``$patch``
directives on objects (replace, delete, merge) and ``$deleteFromPrimitiveList/<field>``.
calicoctl v3.32.1 documents ``--type`` (``json`` and ``merge`` "not yet implemented")
but never reads it: every patch is a strategic merge patch whatever the type, and so it
is here (the reference page's own example passes ``--type json``). The result is parsed
and validated like any input and written at the revision that was read.
"""
from __future__ import annotations

import copy
import json

from node.cli.ctl._common import (CommandFailed, UsageError, check_version_mismatch, client_from_args, kind_or_fail,
                                   resolve_namespace)
from node.cli.ctl._printers import output_dict
from node.errors import CalicoError
from node.model import Resource, UnknownKind, from_dict, load_documents

class PatchError(ValueError):
    """The patch cannot be applied (bad directive, unparsable text)."""


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "patch", help="patch a resource in place",
        description="Patch one existing resource in place with a strategic merge patch.",
        usage="calicoctl patch KIND NAME -p PATCH [-t TYPE] [-n NS] [-c CONFIG]")
    p.add_argument("kind", metavar="KIND")
    p.add_argument("name", metavar="NAME")
    p.add_argument("-p", "--patch", default="", help="the patch, as JSON (YAML is accepted too)")
    p.add_argument("-t", "--type", default="strategic",
                   help="accepted as calicoctl accepts it and, as there, not used: every patch is a "
                        "strategic merge patch")
    p.add_argument("-n", "--namespace", default=None, help="namespace of a namespaced resource (default: default)")
    p.set_defaults(func=cmd_patch)


# --------------------------------------------------------------------------------------
# The patch algorithms, over plain JSON data.

def merge_patch(target, patch):
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


_DELETE_FROM_LIST = "$deleteFromPrimitiveList/"


def strategic_merge_patch(target, patch):
    """A strategic merge patch for types without merge keys (see the module docstring)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    patch = dict(patch)
    directive = patch.pop("$patch", "merge")
    if directive == "replace":
        return strategic_merge_patch({}, patch)
    if directive == "delete":
        return None
    if directive != "merge":
        raise PatchError(f"unknown patch type: {directive} in map")
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key.startswith(_DELETE_FROM_LIST):
            field = key[len(_DELETE_FROM_LIST):]
            if not isinstance(value, list):
                raise PatchError(f"{key} must be a list, got {json.dumps(value)}")
            current = out.get(field)
            if isinstance(current, list):
                out[field] = [v for v in current if v not in value]
            continue
        if key.startswith("$"):
            raise PatchError(f"directive {key} is not supported (Calico's types have no merge keys)")
        if value is None:
            out.pop(key, None)
            continue
        merged = strategic_merge_patch(out.get(key), value)
        if merged is None:  # {"$patch": "delete"}
            out.pop(key, None)
        else:
            out[key] = merged
    return out


def parse_patch(text: str):
    """The patch as data: JSON as calicoctl takes it, or the same in YAML."""
    try:
        return json.loads(text)
    except ValueError as json_error:
        try:
            docs = load_documents(text, "patch")
        except CalicoError:
            raise PatchError(f"the patch is neither JSON nor YAML: {json_error}") from None
        if len(docs) != 1:
            raise PatchError(f"the patch must be one document, found {len(docs)}") from None
        return docs[0]


def patched_resource(current: Resource, patch, patch_type: str = "strategic") -> Resource:
    """``current`` with ``patch`` applied, parsed and validated; the patch may not move
    the resource to another kind, name or namespace. ``patch_type`` "merge" is RFC 7386
    (the command line never asks for it: calicoctl's patches are all strategic)."""
    apply = merge_patch if patch_type == "merge" else strategic_merge_patch
    if patch_type != "merge" and not isinstance(patch, dict):
        # Kubernetes' StrategicMergePatch decodes the patch into a map (an RFC 6902 list
        # given as ``--type json`` fails here in calicoctl too).
        raise CommandFailed(f"hit error: performing strategic merge patch: the patch must be a JSON object, "
                            f"not {json.dumps(patch)}")
    try:
        doc = apply(output_dict(current), patch)
    except PatchError as exc:
        raise CommandFailed(f"hit error: performing {patch_type} merge patch: {exc}") from exc
    if not isinstance(doc, dict):
        raise CommandFailed(f"hit error: creating resource from patched data: the patched document is "
                            f"{json.dumps(doc)}, not a resource")
    meta = doc.get("metadata") if isinstance(doc.get("metadata"), dict) else {}
    for field, before, after in (("kind", current.kind, doc.get("kind")),
                                 ("metadata.name", current.name, meta.get("name")),
                                 ("metadata.namespace", current.namespace, meta.get("namespace", ""))):
        if after != before:
            raise CommandFailed(f"hit error: creating resource from patched data: {current.identifier()}: "
                                f"the patch may not change {field} (from '{before}' to '{after}')")
    try:
        return from_dict(doc, strict=True)
    except (CalicoError, UnknownKind) as exc:
        raise CommandFailed(f"hit error: creating resource from patched data: {exc}") from exc


def cmd_patch(args) -> int:
    if not args.patch:
        raise UsageError("calicoctl patch: a patch is required (-p/--patch)")
    info = kind_or_fail(args.kind, "")
    if not args.name:
        raise CommandFailed("resource name may not be empty")
    try:
        patch = parse_patch(args.patch)
    except PatchError as exc:
        raise CommandFailed(f"hit error: performing strategic merge patch: {exc}") from exc
    check_version_mismatch(args)
    client = client_from_args(args)
    target = Resource(info.kind, {"name": args.name})
    try:
        resolve_namespace(target, args.namespace)
        current = client.get(info.kind, target.name, target.namespace)
    except CalicoError as exc:
        raise CommandFailed(f"hit error: {exc}") from exc
    updated = patched_resource(current, patch)
    try:
        client.update(updated)  # at the revision read: a concurrent change is a conflict
    except CalicoError as exc:
        raise CommandFailed(f"hit error: updating existing resource: {exc}") from exc
    print(f"Successfully patched 1 '{info.kind}' resource")
    return 0
