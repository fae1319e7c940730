"""``calicoctl get -o ...``: YAML, JSON and the ps-style tables, as calicoctl prints them.

``get`` produces a sequence of printable objects: a ``Resource`` for each one fetched by
name, a ``Listed`` for each list. Tables are printed one per object (so a list is one
table and each named resource its own), each followed by a blank line; YAML and JSON
print a single object as itself and several as an array.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Union

import yaml

from node.cli.ctl._common import CommandFailed
from node.model import API_VERSION, KindInfo, Resource
from node.model.kinds import NAMESPACE
from node.model.schema import Collector, canonical_struct


@dataclass
class Listed:
    """The result of listing one kind (calicoctl prints it as a ``<Kind>List``)."""

    info: KindInfo
    items: list[Resource] = field(default_factory=list)


Printable = Union[Resource, Listed]


@dataclass(frozen=True)
class Printer:
    """How to print: ``yaml``, ``json`` or ``table``; tables take default headings (ps or
    wide) unless ``headings`` lists them (custom-columns)."""

    format: str
    wide: bool = False
    headings: tuple[str, ...] | None = None
    print_namespace: bool = False


def printer_for(output: str, print_namespace: bool) -> Printer:
    """Parse ``-o``; fails before anything is fetched, as calicoctl does."""
    if output in ("yaml", "yml"):
        return Printer("yaml")
    if output == "json":
        return Printer("json")
    if output in ("ps", "wide"):
        return Printer("table", wide=output == "wide", print_namespace=print_namespace)
    key, _, value = output.partition("=")
    if key == "custom-columns":
        if not value:
            raise CommandFailed("need to specify at least one column")
        return Printer("table", headings=tuple(value.split(",")))
    if key in ("go-template", "go-template-file"):
        raise CommandFailed(f"output format '{key}' is not supported by this calicoctl; "
                            "use yaml, json, ps, wide or custom-columns=<HEADING>,...")
    raise CommandFailed(f"unrecognized output format '{output}'")


def headings_map(info: KindInfo) -> dict:
    """Every heading a kind's tables know (its ps and wide columns, and NAMESPACE for
    namespaced kinds): what custom-columns accepts."""
    columns = dict(info.columns)
    columns.update(dict(info.wide_columns))
    if info.namespaced:
        columns[NAMESPACE[0]] = NAMESPACE[1]
    return columns


def render(printer: Printer, objects: list[Printable], export: bool = False) -> str:
    if printer.format == "table":
        return "".join(_table_for(printer, obj) for obj in objects)
    docs = [_doc(obj, printer.format, export) for obj in objects]
    if not docs:
        return ""
    doc = docs[0] if len(docs) == 1 else docs
    if printer.format == "yaml":
        # calicoctl renders YAML through JSON, so keys come out sorted.
        return yaml.safe_dump(doc, default_flow_style=False, sort_keys=True, allow_unicode=True)
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


# --------------------------------------------------------------------------------------

def output_dict(res: Resource, export: bool = False) -> dict:
    """The resource as calicoctl prints it; ``export`` drops the cluster-specific metadata."""
    out = res.to_dict()
    meta = dict(out["metadata"])
    if export:
        for key in ("namespace", "uid", "resourceVersion", "creationTimestamp", "deletionTimestamp",
                    "deletionGracePeriodSeconds"):
            meta.pop(key, None)
    meta = canonical_struct(meta, "ObjectMeta", "", Collector(), strict=False)
    return {**out, "metadata": meta}


def _rv_key(rv: str) -> int:
    return int(rv) if rv.isdigit() else -1


def _doc(obj: Printable, fmt: str, export: bool) -> dict:
    if isinstance(obj, Resource):
        return output_dict(obj, export)
    rv = max((r.resource_version for r in obj.items), key=_rv_key, default="")
    meta = {"resourceVersion": rv} if rv else {}
    items = [output_dict(r) for r in obj.items]
    kind = f"{obj.info.kind}List"
    if fmt == "json":
        return {"kind": kind, "apiVersion": API_VERSION, "metadata": meta, "items": items}
    return {"apiVersion": API_VERSION, "items": items, "kind": kind, "metadata": meta}


def _table_for(printer: Printer, obj: Printable) -> str:
    info = obj.info
    resources = [obj] if isinstance(obj, Resource) else obj.items
    if printer.headings is not None:
        headings = list(printer.headings)
    else:
        columns = info.wide_columns if printer.wide and info.wide_columns else info.columns
        headings = [title for title, _ in columns]
        if printer.print_namespace and info.namespaced:
            headings.insert(0, NAMESPACE[0])
    known = headings_map(info)
    for heading in headings:
        if heading not in known:
            raise CommandFailed(f"unknown heading {heading}, valid values are: {', '.join(sorted(known))}")
    rows = [headings] + [[known[h](r.to_dict()) for h in headings] for r in resources]
    return table(rows) + "\n"


def table(rows: list[list[str]]) -> str:
    """Go's tabwriter(minwidth=5, tabwidth=1, padding=3, ' ') over tab-terminated cells:
    every cell, the last one included, is padded to its column's width."""
    widths = [max(max(len(row[i]) for row in rows) + 3, 5) for i in range(len(rows[0]))]
    return "".join("".join(cell.ljust(widths[i]) for i, cell in enumerate(row)) + "\n" for row in rows)
