"""``-f FILE|DIR|-``: the resources a calicoctl command reads, as calicoctl finds them.

A directory stands for every ``*.yaml``/``*.yml``/``*.json`` file in it (names compared
case-insensitively), in lexical order; ``-R`` descends into subdirectories, which are
otherwise skipped. Each file is parsed on its own, so an error names the file it is in.
Every resource is validated as it will be written: a namespaced one without a namespace
in ``-n``'s namespace (else ``default``), as calicoctl puts it there; whether its
namespace agrees with ``-n`` is the command's per-resource check (``resolve_namespace``).
"""
from __future__ import annotations

import json
import os
import sys

from node.cli.ctl._common import CommandFailed
from node.errors import CalicoError
from node.model import KINDS, Resource, UnknownKind, from_dict, load_documents, validate_resource

MANIFEST_EXTENSIONS = (".yaml", ".yml", ".json")


class FileInvalid(CommandFailed):
    """A file could not be read or parsed (calicoctl's "failed to execute command")."""


def manifest_files(directory: str, recursive: bool) -> list[str]:
    """The manifest files under ``directory``, in the order filepath.Walk visits them."""
    out: list[str] = []

    def walk(path: str, top: bool) -> None:
        if not top and not recursive:
            return
        try:
            names = sorted(os.listdir(path))
        except OSError as exc:
            raise CommandFailed(f"could not read directory {path}: {exc.strerror}") from exc
        for name in names:
            full = os.path.join(path, name)
            if os.path.isdir(full) and not os.path.islink(full):
                walk(full, False)
            elif os.path.splitext(name)[1].lower() in MANIFEST_EXTENSIONS:
                out.append(full)

    walk(directory, True)
    return out


def _read(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except OSError as exc:
        raise FileInvalid(f"failed to execute command: could not read {path}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise FileInvalid(f"failed to execute command: {path}: not UTF-8 text ({exc.reason} at byte {exc.start})") \
            from exc


def parse_file(path: str, namespace: str | None = None, validate: bool = True) -> list[Resource]:
    """Every resource in one file (or stdin for ``-``), strictly parsed and (unless not
    ``validate``) validated, namespaced ones as if in ``namespace`` or ``default`` when
    they name none."""
    text = _read(path)
    where = "" if path == "-" else f"{path}: "
    try:
        docs = _expand_sequences(text, "stdin" if path == "-" else path)
        for doc in docs:
            _check_calicoctl_kind(doc)
        resources = [from_dict(doc, strict=True, validate=False) for doc in docs]
        for res in resources if validate else ():
            _validate_as_placed(res, namespace)
        return resources
    except (CalicoError, UnknownKind) as exc:
        raise FileInvalid(f"failed to execute command: {where}{exc}") from exc


def _validate_as_placed(res: Resource, namespace: str | None) -> None:
    """Validate ``res`` in the namespace calicoctl will give it; a namespace on a kind
    that has none is left to the command's own check, which names it as calicoctl does."""
    placed = res.copy()
    if placed.info.namespaced and not placed.namespace:
        placed.metadata["namespace"] = namespace or "default"
    elif not placed.info.namespaced:
        placed.metadata.pop("namespace", None)
    validate_resource(placed)


def _expand_sequences(text: str, source: str) -> list:
    """The documents of a stream; as calicoctl's createResourcesFromBytes, a document that
    is a sequence (a JSON array, a YAML list) stands for its items."""
    docs = load_documents(text, source, unique_keys=True)
    if not any(isinstance(d, list) for d in docs):
        return docs
    out: list = []
    for doc in docs:
        if isinstance(doc, list):
            for item in doc:
                out.extend(load_documents(json.dumps(item, default=str), source) if isinstance(item, dict) else [item])
        else:
            out.append(doc)
    return out


def _check_calicoctl_kind(doc) -> None:
    """Kinds the node knows but calicoctl does not (Calico's internal ones, and those it
    only presents to Felix) are refused as calicoctl refuses a kind it has no helper for."""
    kind = doc.get("kind") if isinstance(doc, dict) else None
    info = KINDS.get(kind) if isinstance(kind, str) else None
    if info is not None and info.extra.get("not_in_calicoctl"):
        raise UnknownKind(f"unknown resource type ({kind}) and/or version ({doc.get('apiVersion') or ''})")


def load_resources(path: str, recursive: bool = False, skip_empty: bool = False,
                   namespace: str | None = None, validate: bool = True) -> list[Resource]:
    """The resources ``-f path`` names; an empty file or directory is an error unless
    ``skip_empty`` (then the result is simply empty). ``namespace``: ``-n``'s;
    ``validate=False`` leaves validation to the caller (``calicoctl validate``)."""
    if path != "-" and os.path.isdir(path):
        resources: list[Resource] = []
        for file in manifest_files(path, recursive):
            found = parse_file(file, namespace, validate)
            if not found and not skip_empty:
                raise CommandFailed(f"no resources specified in file {file}")
            resources.extend(found)
        if not resources and not skip_empty:
            raise CommandFailed(f"no resources specified in directory {path}")
        return resources
    resources = parse_file(path, namespace, validate)
    if not resources and not skip_empty:
        raise CommandFailed(f"no resources specified in file {path}")
    return resources
