"""``calicoctl get -o ...``: YAML, JSON and the ps-style tables, as calicoctl prints them.

``get`` produces a sequence of printable objects: a ``Resource`` for each one fetched by
name, a ``Listed`` for each list. Tables are printed one per object (so a list is one
table and each named resource its own), each followed by a blank line; YAML and JSON
print a single object as itself, several as an array and none as null (Go text: see _gofmt).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Union

from node.cli.ctl._common import CommandFailed
from node.cli.ctl._gofmt import go_value, marshal_json, marshal_yaml
from node.model import API_VERSION, KindInfo, Resource
from node.model.kinds import KINDS, NAMESPACE
from node.model.schema import Collector, canonical_struct


@dataclass
class Listed:
    """The result of listing one kind (calicoctl prints it as a ``<Kind>List``)."""

    info: KindInfo
    items: list[Resource] = field(default_factory=list)
    revision: str = ""  # the datastore revision of the list (its resourceVersion)


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
        # calicoctl never adds NAMESPACE to custom columns (-A and -n notwithstanding).
        return Printer("table", headings=tuple(value.split(",")))
    if key in ("go-template", "go-template-file"):
        raise CommandFailed(f"output format '{key}' is not supported by this calicoctl; "
                            "use yaml, json, ps, wide or custom-columns=<HEADING>,...")
    raise CommandFailed(f"unrecognized output format '{output}'")


# --------------------------------------------------------------------------------------
# calicoctl v3.32.1's tables: per kind, the ps headings, the wide headings and the value of
# every heading it knows (calicoctl/calicoctl/resourcemgr/<kind>.go), printed as its Go
# templates print them: a missing pointer field is "<nil>", floats are Go's %v (1e+06),
# lists are joined with "," (maps as sorted k=v), NETS and CIDRS cut at 80 characters.

# A column's value from the resource dict and the config lookup (``{{config "asnumber"}}``).
Value = Callable[[dict, Callable[[str], str]], str]


@dataclass(frozen=True)
class Table:
    ps: tuple[str, ...]
    wide: tuple[str, ...]
    values: dict


def _spec(res: dict) -> dict:
    spec = res.get("spec") if isinstance(res, dict) else None
    return spec if isinstance(spec, dict) else {}


def _meta(field_name: str) -> Value:
    def get(res: dict, _cfg) -> str:
        meta = res.get("metadata") if isinstance(res, dict) else None
        return str((meta if isinstance(meta, dict) else {}).get(field_name, ""))
    return get


def _plain(key: str, zero: str = "") -> Value:
    """A non-pointer field: its zero value when absent."""
    return lambda res, _cfg: go_value(_spec(res)[key]) if key in _spec(res) else zero


def _pointer(key: str) -> Value:
    """A pointer field: ``<nil>`` when absent."""
    return lambda res, _cfg: go_value(_spec(res).get(key))


def _order(res: dict, _cfg) -> str:
    """``{{.Spec.Order}}``, a *float64: Go's %v (1e+06), ``<nil>`` when absent."""
    order = _spec(res).get("order")
    if isinstance(order, (int, float)) and not isinstance(order, bool):
        return go_value(float(order))
    return go_value(order)


def _or_else(key: str, other: str) -> Value:
    """``{{if .Spec.X}}{{.Spec.X}}{{else}}other{{end}}``."""
    def get(res: dict, _cfg) -> str:
        value = _spec(res).get(key)
        return other if value in (None, "", False, 0, [], {}) else go_value(value)
    return get


def _join_items(value: Any) -> list[str]:
    if isinstance(value, dict):
        return sorted(f"{k}={_fprint(v)}" for k, v in value.items())
    if isinstance(value, list):
        return [_fprint(v) for v in value]
    return [] if value is None else [_fprint(value)]


def _fprint(value: Any) -> str:
    """fmt.Fprint of one element: structs (an IPNAT) as {field field}."""
    if isinstance(value, dict):
        return "{" + " ".join(_fprint(v) for v in value.values()) + "}"
    return go_value(value)


def _join(key: str, limit: int = 0) -> Value:
    """``{{join .Spec.X ","}}`` and ``{{joinAndTruncate .Spec.X "," limit}}``."""
    def get(res: dict, _cfg) -> str:
        text = ",".join(_join_items(_spec(res).get(key)))
        return text[:limit - 3] + "..." if limit and len(text) > limit else text
    return get


def _count(key: str) -> Value:
    return lambda res, _cfg: str(len(_spec(res).get(key) or []))


def _node_bgp(key: str) -> Value:
    def get(res: dict, cfg) -> str:
        bgp = _spec(res).get("bgp")
        if not isinstance(bgp, dict):
            return ""
        if bgp.get(key) is not None and bgp.get(key) != "":
            return go_value(bgp[key])
        return f"({cfg('asnumber')})" if key == "asNumber" else ""
    return get


def _workload(res: dict, _cfg) -> str:
    spec = _spec(res)
    return str(spec.get("workload") or spec.get("pod") or "")


def _peer_node(res: dict, _cfg) -> str:
    spec = _spec(res)
    return str(spec.get("node") or spec.get("nodeSelector") or "(global)")


def _tier(res: dict, _cfg) -> str:
    # v3.32.1's client stores the CRD default "default" on every write; ours stores what it
    # was given, so a policy without a tier shows the tier v3.32.1 would have stored.
    return str(_spec(res).get("tier") or "default")


_NAME, _NAMESPACE = _meta("name"), _meta("namespace")
_POLICY = {"NAME": _NAME, "ORDER": _order, "SELECTOR": _plain("selector"), "TIER": _tier}
_NAMESPACED_POLICY = {**_POLICY, "NAMESPACE": _NAMESPACE}

TABLES: dict[str, Table] = {
    # bgpconfig.go:33-40
    "BGPConfiguration": Table(("NAME", "LOGSEVERITY", "MESHENABLED", "ASNUMBER"),
                              ("NAME", "LOGSEVERITY", "MESHENABLED", "ASNUMBER"),
                              {"NAME": _NAME, "LOGSEVERITY": _plain("logSeverityScreen"),
                               "MESHENABLED": lambda r, _c: go_value(_spec(r)["nodeToNodeMeshEnabled"])
                               if _spec(r).get("nodeToNodeMeshEnabled") is not None else "-",
                               "ASNUMBER": lambda r, _c: go_value(_spec(r)["asNumber"])
                               if _spec(r).get("asNumber") is not None else "-"}),
    # bgpfilter.go:33-41
    "BGPFilter": Table(("NAME", "NUMEXPORTV4", "NUMIMPORTV4", "NUMEXPORTV6", "NUMIMPORTV6"),
                       ("NAME", "NUMEXPORTV4", "NUMIMPORTV4", "NUMEXPORTV6", "NUMIMPORTV6"),
                       {"NAME": _NAME, "NUMEXPORTV4": _count("exportV4"), "NUMIMPORTV4": _count("importV4"),
                        "NUMEXPORTV6": _count("exportV6"), "NUMIMPORTV6": _count("importV6")}),
    # bgppeer.go:33-40
    "BGPPeer": Table(("NAME", "PEERIP", "NODE", "ASN"), ("NAME", "PEERIP", "NODE", "ASN"),
                     {"NAME": _NAME, "PEERIP": _plain("peerIP"), "NODE": _peer_node,
                      "ASN": _plain("asNumber", "0")}),
    # clusterinfo.go:34-42
    "ClusterInformation": Table(("NAME", "CLUSTERGUID", "CLUSTERTYPE", "CALICOVERSION", "DATASTOREREADY"),
                                ("NAME", "CLUSTERGUID", "CLUSTERTYPE", "CALICOVERSION", "DATASTOREREADY"),
                                {"NAME": _NAME, "CLUSTERGUID": _plain("clusterGUID"),
                                 "CLUSTERTYPE": _plain("clusterType"), "CALICOVERSION": _plain("calicoVersion"),
                                 "DATASTOREREADY": _pointer("datastoreReady")}),
    # felixconfig.go:33-37
    "FelixConfiguration": Table(("NAME",), ("NAME",), {"NAME": _NAME}),
    # globalnetworkpolicy.go:33-40
    "GlobalNetworkPolicy": Table(("NAME", "TIER"), ("NAME", "TIER", "ORDER", "SELECTOR"), _POLICY),
    # globalnetworkset.go:33-38
    "GlobalNetworkSet": Table(("NAME",), ("NAME", "NETS"), {"NAME": _NAME, "NETS": _join("nets", 80)}),
    # hostendpoint.go:33-41
    "HostEndpoint": Table(("NAME", "NODE"), ("NAME", "NODE", "INTERFACE", "IPS", "PROFILES"),
                          {"NAME": _NAME, "NODE": _plain("node"), "INTERFACE": _plain("interfaceName"),
                           "IPS": _join("expectedIPs"), "PROFILES": _join("profiles")}),
    # ippool.go:33-45
    "IPPool": Table(("NAME", "CIDR", "SELECTOR"),
                    ("NAME", "CIDR", "NAT", "IPIPMODE", "VXLANMODE", "DISABLED", "DISABLEBGPEXPORT", "SELECTOR",
                     "ASSIGNMENTMODE"),
                    {"NAME": _NAME, "CIDR": _plain("cidr"), "NAT": _plain("natOutgoing", "false"),
                     "IPIPMODE": _or_else("ipipMode", "Never"), "VXLANMODE": _or_else("vxlanMode", "Never"),
                     "DISABLED": _plain("disabled", "false"), "DISABLEBGPEXPORT": _plain("disableBGPExport", "false"),
                     "SELECTOR": _plain("nodeSelector"), "ASSIGNMENTMODE": _pointer("assignmentMode")}),
    # ipreservation.go:33-38
    "IPReservation": Table(("NAME",), ("NAME", "CIDRS"), {"NAME": _NAME, "CIDRS": _join("reservedCIDRs", 80)}),
    # kubecontrollersconfig.go:33-37
    "KubeControllersConfiguration": Table(("NAME",), ("NAME",), {"NAME": _NAME}),
    # networkpolicy.go:36-45
    "NetworkPolicy": Table(("NAME", "TIER"), ("NAME", "TIER", "ORDER", "SELECTOR"), _NAMESPACED_POLICY),
    # networkset.go:33-39
    "NetworkSet": Table(("NAME",), ("NAME", "NETS"),
                        {"NAME": _NAME, "NAMESPACE": _NAMESPACE, "NETS": _join("nets", 80)}),
    # node.go:31-38
    "Node": Table(("NAME",), ("NAME", "ASN", "IPV4", "IPV6"),
                  {"NAME": _NAME, "ASN": _node_bgp("asNumber"), "IPV4": _node_bgp("ipv4Address"),
                   "IPV6": _node_bgp("ipv6Address")}),
    # profile.go:33-38
    "Profile": Table(("NAME",), ("NAME", "LABELS"), {"NAME": _NAME, "LABELS": _join("labelsToApply")}),
    # stagedglobalnetworkpolicy.go:32-39
    "StagedGlobalNetworkPolicy": Table(("NAME", "TIER"), ("NAME", "TIER", "ORDER", "SELECTOR"), _POLICY),
    # stagedkubernetesnetworkpolicy.go:32-39 (PODSELECTOR: the LabelSelector's Go String())
    "StagedKubernetesNetworkPolicy": Table(
        ("NAME",), ("NAME", "PODSELECTOR"),
        {"NAME": _NAME, "NAMESPACE": _NAMESPACE,
         "PODSELECTOR": lambda r, _c: dict(KINDS["StagedKubernetesNetworkPolicy"].wide_columns)["PODSELECTOR"](r)}),
    # stagednetworkpolicy.go:32-41
    "StagedNetworkPolicy": Table(("NAME", "TIER"), ("NAME", "TIER", "ORDER", "SELECTOR"), _NAMESPACED_POLICY),
    # tier.go:21-26
    "Tier": Table(("NAME", "ORDER"), ("NAME", "ORDER"), {"NAME": _NAME, "ORDER": _order}),
    # workloadendpoint.go:31-44
    "WorkloadEndpoint": Table(("WORKLOAD", "NODE", "NETWORKS", "INTERFACE"),
                              ("NAME", "WORKLOAD", "NODE", "NETWORKS", "INTERFACE", "PROFILES", "NATS"),
                              {"NAME": _NAME, "NAMESPACE": _NAMESPACE, "NODE": _plain("node"),
                               "ORCHESTRATOR": _plain("orchestrator"), "WORKLOAD": _workload,
                               "NETWORKS": _join("ipNetworks"), "NATS": _join("ipNATs"),
                               "PROFILES": _join("profiles"), "INTERFACE": _plain("interfaceName")}),
}


def table_for_kind(info: KindInfo) -> Table:
    """calicoctl's table for a kind; kinds calicoctl v3.32.1 has no table for (ours alone)
    take the columns the model gives them."""
    if info.kind in TABLES:
        return TABLES[info.kind]
    values = {title: (lambda fn: lambda res, _cfg: fn(res))(fn)
              for title, fn in info.columns + info.wide_columns + ((NAMESPACE,) if info.namespaced else ())}
    ps = tuple(title for title, _ in info.columns)
    wide = tuple(title for title, _ in info.wide_columns) or ps
    return Table(ps, wide, values)


def headings_map(info: KindInfo) -> dict:
    """Every heading a kind's tables know: what custom-columns accepts."""
    return table_for_kind(info).values


def render(printer: Printer, objects: list[Printable], export: bool = False,
           config: Callable[[str], str] | None = None) -> str:
    """The text calicoctl prints for ``objects``; ``config`` answers ``{{config NAME}}``
    (the default AS number) for node tables."""
    if printer.format == "table":
        cfg = config or (lambda _name: "64512")
        return "".join(_table_for(printer, obj, cfg) for obj in objects)
    docs = [_doc(obj, printer.format, export) for obj in objects]
    # One object prints as itself, none or several as an array (null when there are none).
    doc = docs[0] if len(docs) == 1 else (docs or None)
    if printer.format == "yaml":
        return "null\n" if doc is None else marshal_yaml(doc)
    return marshal_json(doc)


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


def _doc(obj: Printable, fmt: str, export: bool) -> dict:
    if isinstance(obj, Resource):
        return output_dict(obj, export)
    meta = {"resourceVersion": obj.revision} if obj.revision else {}
    items = [output_dict(r) for r in obj.items]
    kind = f"{obj.info.kind}List"
    if fmt == "json":
        return {"kind": kind, "apiVersion": API_VERSION, "metadata": meta, "items": items}
    return {"apiVersion": API_VERSION, "items": items, "kind": kind, "metadata": meta}


def _table_for(printer: Printer, obj: Printable, cfg: Callable[[str], str]) -> str:
    info = obj.info
    resources = [obj] if isinstance(obj, Resource) else obj.items
    tab = table_for_kind(info)
    if printer.headings is not None:
        headings = list(printer.headings)
    else:
        headings = list(tab.wide if printer.wide else tab.ps)
        # As calicoctl: NAMESPACE leads when -n or -A was given and the kind knows it.
        if printer.print_namespace and NAMESPACE[0] in tab.values:
            headings.insert(0, NAMESPACE[0])
    for heading in headings:
        if heading not in tab.values:
            raise CommandFailed(f"unknown heading {heading}, valid values are: {', '.join(sorted(tab.values))}")
    rows = [headings] + [[tab.values[h](r.to_dict(), cfg) for h in headings] for r in resources]
    return table(rows) + "\n"


def table(rows: list[list[str]]) -> str:
    """Go's tabwriter(minwidth=5, tabwidth=1, padding=3, ' ') over tab-terminated cells:
    every cell, the last one included, is padded to its column's width."""
    widths = [max(max(len(row[i]) for row in rows) + 3, 5) for i in range(len(rows[0]))]
    return "".join("".join(cell.ljust(widths[i]) for i, cell in enumerate(row)) + "\n" for row in rows)
