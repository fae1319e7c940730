"""``calicoctl ipam check``: cross-check blocks, handles, affinities, nodes and workloads.

``collect`` reads a snapshot; ``analyse`` is a pure function from the snapshot to a
``CheckResult``; ``render`` prints it in calicoctl's layout. Beyond calicoctl's checks
(leaked addresses, addresses in use but not allocated, leaked and missing handles,
malformed blocks) this also reports handles whose per-block counts disagree with the
blocks, blocks and affinities that do not point at each other (the traces a crashed or
interrupted IPAM client leaves behind), and handles and affinities whose stored values
cannot be read. Unreadable pools, nodes and workload endpoints are skipped with a
warning naming their keys, as every resource list does.

The addresses of the LoadBalancer Services Calico's kube-controllers manages count as in
use, as in calicoctl (listed through a Kubernetes API when there is one). Without a
LoadBalancer controller configuration (KubeControllersConfiguration ``default``) there
are none to look for.

Like calicoctl, the command exits 0 whatever it finds; the last line gives the count.
"""
from __future__ import annotations

import ipaddress
import json
import logging
from dataclasses import dataclass, field
from typing import Any

from node.errors import NotFound
from node.ipam.block import WINDOWS_RESERVED_HANDLE, Block, validate_block
from node.ipam.store import Affinity, Handle, IPAMStore, Unreadable
from node.model import ipam as records
from node.model.resource import Resource

log = logging.getLogger(__name__)

TOP_NODES = 20


@dataclass
class Snapshot:
    blocks: list[tuple[str, Block | None, str]]  # (key, block or None when unreadable, read error)
    handles: list[tuple[Handle | None, str, int]]
    affinities: list[Affinity]
    pools: list[Resource]
    nodes: list[Resource]
    workloads: list[Resource]
    cluster_info: Resource | None
    now_ns: int
    unreadable_affinities: list[Unreadable] = field(default_factory=list)
    # KubeControllersConfiguration default's spec.controllers.loadBalancer (None: none),
    # and the cluster's Services (None: no Kubernetes API was given to list them).
    load_balancer: dict | None = None
    services: list[dict] | None = None


@dataclass
class Allocation:
    ip: str
    block: str
    ordinal: int
    attrs_text: str
    handle: str = ""
    sequence_number: int | None = None
    pod: str = ""
    namespace: str = ""
    node: str = ""
    type: str = ""
    creation_timestamp: str = ""
    in_use: bool = False
    borrowed: bool = False
    cooling_down: bool = False
    owners: list[str] = field(default_factory=list)

    def to_report(self) -> dict:
        out: dict[str, Any] = {"ip": self.ip}
        if self.handle:
            out["handle"] = self.handle
        if self.sequence_number is not None:
            out["sequenceNumber"] = self.sequence_number
        for key, value in (("pod", self.pod), ("namespace", self.namespace), ("node", self.node),
                           ("type", self.type), ("creationTimestamp", self.creation_timestamp)):
            if value:
                out[key] = value
        out["inUse"] = self.in_use
        if self.borrowed:
            out["borrowed"] = True
        if self.cooling_down:
            out["coolingDown"] = True
        out["owners"] = list(self.owners) if self.owners else None
        return out


@dataclass
class CountMismatch:
    handle: str
    block: str
    recorded: int
    actual: int


@dataclass
class CheckResult:
    lines: list[str]
    problem_lines: list[tuple[str, str]]  # (section, line) printed with --show-problem-ips
    allocations: dict[str, list[Allocation]]
    leaked_ips: list[str]
    in_use_not_allocated: list[str]
    not_in_pool: list[str]
    leaked_handles: list[tuple[str, int]]
    missing_handles: list[str]
    invalid_blocks: list[str]
    count_mismatches: list[CountMismatch]
    blocks_without_affinity: list[str]
    affinities_without_block: list[str]
    cluster_info: dict
    unreadable_records: list[str] = field(default_factory=list)  # keys of handles and affinities

    @property
    def problems(self) -> int:
        return (len(self.leaked_ips) + len(self.in_use_not_allocated) + len(self.not_in_pool)
                + len(self.leaked_handles) + len(self.missing_handles) + len(self.invalid_blocks)
                + len(self.count_mismatches) + len(self.blocks_without_affinity)
                + len(self.affinities_without_block) + len(self.unreadable_records))

    @property
    def clean(self) -> bool:
        return self.problems == 0


# kube-controllers' LoadBalancer controller (loadbalancer_controller.go): its class and
# the annotations that ask it for addresses.
CALICO_LOAD_BALANCER_CLASS = "calico"
LOAD_BALANCER_ANNOTATIONS = ("projectcalico.org/ipv4pools", "projectcalico.org/ipv6pools",
                             "projectcalico.org/loadBalancerIPs")


def is_calico_managed_load_balancer(svc: dict, assign_ips: str) -> bool:
    """Whether kube-controllers assigns this Service's LoadBalancer addresses (its
    IsCalicoManagedLoadBalancer): every LoadBalancer Service of no other class with
    ``AllServices``; with ``RequestedServicesOnly`` those of class ``calico`` and those
    that name pools or addresses in Calico's annotations (and no other class)."""
    spec = svc.get("spec") or {}
    if spec.get("type") != "LoadBalancer":
        return False
    lb_class = spec.get("loadBalancerClass")
    if assign_ips == "AllServices":
        return lb_class is None or lb_class == CALICO_LOAD_BALANCER_CLASS
    if assign_ips == "RequestedServicesOnly":
        if lb_class == CALICO_LOAD_BALANCER_CLASS:
            return True
        annotations = (svc.get("metadata") or {}).get("annotations") or {}
        if any(annotations.get(name) for name in LOAD_BALANCER_ANNOTATIONS):
            return lb_class is None
    return False


def load_balancer_config(kv) -> dict | None:
    """KubeControllersConfiguration default's LoadBalancer controller configuration, or
    None when there is none (no such resource, or no loadBalancer in it)."""
    from node.datastore.client import DatastoreClient, DatastoreParseError

    try:
        kcc = DatastoreClient(kv).get("KubeControllersConfiguration", "default")
    except NotFound:
        return None
    except DatastoreParseError as exc:
        log.warning("Ignoring the kube-controllers configuration: %s", exc)
        return None
    lb = ((kcc.spec or {}).get("controllers") or {}).get("loadBalancer")
    return lb if isinstance(lb, dict) else None


def collect(kv, now_ns: int, kube_api=None) -> Snapshot:
    """Everything the check reads; ``kube_api`` (node.datastore.kubernetes.api.KubeAPI)
    lists the Services when the LoadBalancer controller is configured."""
    from node.datastore.client import DatastoreClient, DatastoreParseError

    store = IPAMStore(kv)
    client = DatastoreClient(kv)
    blocks: list[tuple[str, Block | None, str]] = []
    for key, value, _ in store.list_block_values():
        try:
            blocks.append((key, Block.decode(value), ""))
        except Exception as exc:  # noqa: BLE001 - an unreadable block is itself a finding
            blocks.append((key, None, str(exc)))
    try:
        info = client.get("ClusterInformation", "default")
    except NotFound:
        info = None
    except DatastoreParseError as exc:
        log.warning("Ignoring the cluster information: %s", exc)
        info = None
    host_affs, bad_host = store.scan_affinities()
    virtual_affs, bad_virtual = store.scan_affinities(affinity_type="virtual")
    load_balancer = load_balancer_config(kv)
    services = None
    if load_balancer is not None and kube_api is not None:
        services = kube_api.list("/api/v1/services")[0]
    return Snapshot(blocks=blocks, handles=store.list_handles(), affinities=host_affs + virtual_affs,
                    pools=client.list("IPPool"), nodes=client.list("Node"),
                    workloads=client.list("WorkloadEndpoint"), cluster_info=info, now_ns=now_ns,
                    unreadable_affinities=bad_host + bad_virtual, load_balancer=load_balancer,
                    services=services)


def _normalise(addr: str) -> str:
    text = addr.strip()
    if "/" in text:
        return str(ipaddress.ip_interface(text).ip)
    return str(ipaddress.ip_address(text))


def node_tunnel_ips(node: Resource) -> list[tuple[str, str]]:
    """(field, address) for every tunnel address the node records (IPv6 ones included)."""
    spec = node.spec
    found = [("ipv4VXLANTunnelAddr", spec.get("ipv4VXLANTunnelAddr", "")),
             ("ipv6VXLANTunnelAddr", spec.get("ipv6VXLANTunnelAddr", "")),
             ("wireguard.interfaceIPv4Address", (spec.get("wireguard") or {}).get("interfaceIPv4Address", "")),
             ("wireguard.interfaceIPv6Address", (spec.get("wireguard") or {}).get("interfaceIPv6Address", "")),
             ("bgp.ipv4IPIPTunnelAddr", (spec.get("bgp") or {}).get("ipv4IPIPTunnelAddr", ""))]
    return [(name, value) for name, value in found if value]


def _attrs_text(attr) -> str:
    if attr is None:
        return "<missing>"
    primary = attr.handle_id if attr.handle_id is not None else "<none>"
    text = f"Main:{primary} Extra:{_kvs(attr.secondary)}"
    if attr.alternate:
        text += f" Alternate:{_kvs(attr.alternate)}"
    return text


def _kvs(values: dict | None) -> str:
    return ",".join(f"{k}={values[k]}" for k in sorted(values or {}))


def analyse(snap: Snapshot, show_all: bool = False) -> CheckResult:
    out: list[str] = []
    problems: list[tuple[str, str]] = []
    allocations: dict[str, list[Allocation]] = {}
    by_node: dict[str, list[Allocation]] = {}
    in_use: dict[str, list[str]] = {}
    handles_in_blocks: set[str] = set()
    live_counts: dict[str, dict[str, int]] = {}

    def record_in_use(ip: str, owner: str) -> None:
        if show_all:
            out.append(f"  {ip} belongs to {owner}")
        in_use.setdefault(ip, []).append(owner)
        for alloc in allocations.get(ip, []):
            alloc.in_use = True
            alloc.owners.append(owner)

    out += ["Checking IPAM for inconsistencies...", "", "Loading all IPAM blocks..."]
    out.append(f"Found {len(snap.blocks)} IPAM blocks.")
    readable: list[Block] = []
    num_allocs = 0
    for key, block, _ in snap.blocks:
        if block is None:
            out.append(f" IPAM block {records.parse_block_key(key) or key} affinity=<unreadable>:")
            continue
        readable.append(block)
        out.append(f" IPAM block {block.cidr} affinity={block.affinity or '<none>'}:")
        owner = block.host() if block.affinity_type() == "host" else ""
        for ordinal, idx in enumerate(block.allocations):
            if idx is None:
                continue
            num_allocs += 1
            attr = block.attributes[idx] if block.attributes and idx < len(block.attributes) else None
            ip = str(block.ordinal_to_ip(ordinal))
            alloc = Allocation(ip=ip, block=str(block.cidr), ordinal=ordinal, attrs_text=_attrs_text(attr),
                               sequence_number=block.sequence_for(ordinal))
            node = owner
            if attr is not None:
                if attr.handle_id == WINDOWS_RESERVED_HANDLE:
                    record_in_use(ip, "Reserved for Windows")
                elif attr.handle_id is not None:
                    alloc.handle = attr.handle_id
                    handles_in_blocks.add(attr.handle_id)
                alloc.cooling_down = attr.released_at is not None
                sec = attr.secondary or {}
                node = sec.get("node") or node
                alloc.pod = sec.get("pod", "")
                alloc.namespace = sec.get("namespace", "")
                alloc.type = sec.get("type", "")
                alloc.creation_timestamp = sec.get("timestamp", "")
            alloc.node = node
            alloc.borrowed = node != owner
            allocations.setdefault(ip, []).append(alloc)
            by_node.setdefault(node, []).append(alloc)
            if show_all:
                out.append(f"  {ip} allocated; attrs {alloc.attrs_text}")
        for handle, count in block.count_by_handle().items():
            live_counts.setdefault(handle, {})[str(block.cidr)] = count
    out += [f"IPAM blocks record {num_allocs} allocations.", ""]

    out.append("Loading all IPAM pools...")
    active = []
    for pool in snap.pools:
        if pool.spec.get("disabled"):
            continue
        out.append(f"  {pool.spec.get('cidr', '')}")
        try:
            active.append(ipaddress.ip_network(pool.spec.get("cidr", ""), strict=False))
        except ValueError:
            out.append(f"  (pool {pool.name} has an unreadable CIDR)")
    out += [f"Found {len(active)} active IP pools.", ""]

    out.append("Loading all nodes.")
    num_node_ips = 0
    for node in snap.nodes:
        for name, value in node_tunnel_ips(node):
            try:
                ip = _normalise(value)
            except ValueError:
                problems.append(("nodes", f"  Node {node.name} has an unreadable {name} {value!r}"))
                continue
            record_in_use(ip, f"Node({node.name})")
            num_node_ips += 1
    out += [f"Found {num_node_ips} node tunnel IPs.", ""]

    out.append("Loading all service load balancer IPs.")
    if snap.load_balancer is None:
        out.append("No configuration for LoadBalancer kubecontroller found, skipping service check")
    elif snap.services is None:
        out.append("No Kubernetes API to list the Services with, skipping service check")
    else:
        managed = 0
        for svc in snap.services:
            if not is_calico_managed_load_balancer(svc, snap.load_balancer.get("assignIPs") or ""):
                continue
            managed += 1
            name = (svc.get("metadata") or {}).get("name", "")
            for ingress in ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []:
                try:
                    record_in_use(_normalise(ingress.get("ip") or ""), name)
                except ValueError:
                    continue  # a hostname-only ingress holds no address of ours
        out.append(f"Found {managed} service load balancer(s).")
    out.append("")

    out.append("Loading all workload endpoints.")
    num_wep_ips = 0
    for wep in snap.workloads:
        for net in wep.spec.get("ipNetworks") or []:
            try:
                ip = _normalise(net)
            except ValueError:
                problems.append(("workloads", f"  Workload {wep.namespace}/{wep.name} has an unreadable IP {net!r}"))
                continue
            record_in_use(ip, f"Workload({wep.namespace}/{wep.name})")
            num_wep_ips += 1
    out.append(f"Found {num_wep_ips} workload IPs.")
    out += [f"Workloads and nodes are using {len(in_use)} IPs.", ""]

    out.append("Loading all handles")
    stored_handles: dict[str, tuple[Handle | None, int]] = {}
    for handle, key, revision in snap.handles:
        handle_id = records.parse_handle_key(key) or key
        stored_handles[handle_id] = (handle, revision)

    out.append(f"Looking for top (up to {TOP_NODES}) nodes by allocations...")
    ranked = sorted(by_node, key=lambda n: len(by_node[n]), reverse=True)
    for name in ranked[:TOP_NODES]:
        out.append(f"  {name} has {len(by_node[name])} allocations")
    if ranked:
        out.append(f"Node with most allocations has {len(by_node[ranked[0]])}; "
                   f"median is {len(by_node[ranked[len(ranked) // 2]])}")
    out.append("")

    out.append("Scanning for IPs that are allocated but not actually in use...")
    leaked = []
    for ip, allocs in allocations.items():
        if ip in in_use or any(a.cooling_down for a in allocs):
            continue
        for alloc in allocs:
            problems.append(("leaked", f"  {ip} leaked; attrs {alloc.attrs_text}"))
        leaked.append(ip)
    out.append(f"Found {len(leaked)} IPs that are allocated in IPAM but not actually in use.")

    out.append("Scanning for IPs that are in use by a workload or node but not allocated in IPAM...")
    not_allocated, outside = [], []
    for ip, owners in in_use.items():
        if len(owners) > 1:
            problems.append(("owners", f"  {ip} has multiple owners."))
        if ip in allocations:
            continue
        addr = ipaddress.ip_address(ip)
        if not any(addr.version == n.version and addr in n for n in active):
            for owner in owners:
                problems.append(("outside", f"  {ip} in use by {owner} is not in any active IP pool."))
            outside.append(ip)
            continue
        for owner in owners:
            problems.append(("unallocated",
                             f"  {ip} in use by {owner} and in active IPAM pool but has no IPAM allocation."))
        not_allocated.append(ip)
    out.append(f"Found {len(outside)} in-use IPs that are not in active IP pools.")
    out.append(f"Found {len(not_allocated)} in-use IPs that are in active IP pools but have no "
               "corresponding IPAM allocation.")
    out.append("")

    out.append("Scanning for IPAM handles with no matching IPs...")
    leaked_handles, good = [], 0
    for handle_id, (handle, revision) in sorted(stored_handles.items()):
        if handle is None:
            continue  # reported as unreadable below
        if handle_id in handles_in_blocks:
            good += 1
            continue
        if show_all:
            out.append(f"  {handle_id} doesn't have any active IPs.")
        leaked_handles.append((handle_id, revision))
    out.append(f"Found {len(leaked_handles)} handles with no matching IPs (and {good} handles with matches).")

    out.append("Scanning for IPs with missing handle...")
    missing = sorted(h for h in handles_in_blocks if h not in stored_handles)
    for handle_id in missing:
        problems.append(("missing", f"  {handle_id} is in use in a block but doesn't exist."))
    out.append(f"Found {len(missing)} handles mentioned in blocks with no matching handle resource.")

    out.append("Validating IPAMBlock structures...")
    invalid = []
    for key, block, error in snap.blocks:
        reason = error if block is None else validate_block(block, snap.now_ns)
        if reason:
            out.append(f"  IPAMBlock {key} is invalid: {reason}")
            invalid.append(key)
    out.append(f"Found {len(invalid)} invalid IPAMBlocks.")

    out.append("Scanning for IPAM handles whose counts do not match the blocks...")
    mismatches = []
    for handle_id, (handle, _) in sorted(stored_handles.items()):
        if handle is None:
            continue
        actual = live_counts.get(handle_id, {})
        for cidr in sorted(set(handle.blocks) | set(actual)):
            recorded, real = handle.blocks.get(cidr, 0), actual.get(cidr, 0)
            if recorded != real:
                mismatches.append(CountMismatch(handle_id, cidr, recorded, real))
    for m in mismatches:
        problems.append(("counts", f"  handle {m.handle} records {m.recorded} addresses in block {m.block}, "
                                   f"the block has {m.actual}."))
    out.append(f"Found {len(mismatches)} handle counts that do not match the blocks.")

    out.append("Scanning for IPAM blocks and affinities that do not match...")
    affinity_keys = {(a.affinity_type, a.host, a.cidr): a for a in snap.affinities}
    unreadable_affinity_keys = {(u.affinity_type, u.host, u.cidr) for u in snap.unreadable_affinities}
    blocks_by_cidr = {b.cidr: b for b in readable}
    orphan_blocks = []
    for block in readable:
        kind, owner = block.affinity_type(), block.host()
        key = (kind, owner, block.cidr)
        if kind and key not in affinity_keys and key not in unreadable_affinity_keys:
            orphan_blocks.append(str(block.cidr))
            problems.append(("affinity", f"  IPAM block {block.cidr} is affine to {block.affinity} "
                                         "but that host has no affinity for it."))
    orphan_affinities = []
    for (kind, owner, cidr), aff in sorted(affinity_keys.items(), key=lambda kv: aff_sort(kv[0])):
        block = blocks_by_cidr.get(cidr)
        if block is None or block.affinity != f"{kind}:{owner}":
            orphan_affinities.append(aff.key)
            holder = "does not exist" if block is None else f"is affine to {block.affinity or '<none>'}"
            problems.append(("affinity", f"  affinity {aff.key} ({aff.state}): the block {holder}."))
    out.append(f"Found {len(orphan_blocks)} affine blocks with no matching affinity, and "
               f"{len(orphan_affinities)} affinities with no matching block.")

    out.append("Scanning for IPAM handles and affinities that cannot be read...")
    unreadable = sorted([key for handle, key, _ in snap.handles if handle is None]
                        + [u.key for u in snap.unreadable_affinities])
    out += [f"  {key} cannot be read." for key in unreadable]
    out.append(f"Found {len(unreadable)} unreadable IPAM handles and affinities.")

    info = snap.cluster_info
    cluster = {"clusterGUID": "", "clusterType": "", "clusterInformationRevision": "", "datastoreLocked": False}
    if info is not None:
        ready = info.spec.get("datastoreReady")
        cluster = {"clusterGUID": info.spec.get("clusterGUID", ""), "clusterType": info.spec.get("clusterType", ""),
                   "clusterInformationRevision": info.resource_version,
                   "datastoreLocked": ready is not None and not ready}
    result = CheckResult(lines=out, problem_lines=problems, allocations=allocations, leaked_ips=leaked,
                         in_use_not_allocated=not_allocated, not_in_pool=outside, leaked_handles=leaked_handles,
                         missing_handles=missing, invalid_blocks=invalid, count_mismatches=mismatches,
                         blocks_without_affinity=orphan_blocks, affinities_without_block=orphan_affinities,
                         cluster_info=cluster, unreadable_records=unreadable)
    return result


def aff_sort(key: tuple[str, str, Any]) -> tuple[str, str, int, int]:
    kind, owner, cidr = key
    return kind, owner, cidr.version, int(cidr.network_address)


# Where each kind of problem line is printed, after the summary line it belongs to.
_SECTION_AFTER = {
    "leaked": "Scanning for IPs that are allocated but not actually in use...",
    "owners": "Scanning for IPs that are in use by a workload or node but not allocated in IPAM...",
    "outside": "Scanning for IPs that are in use by a workload or node but not allocated in IPAM...",
    "unallocated": "Scanning for IPs that are in use by a workload or node but not allocated in IPAM...",
    "missing": "Scanning for IPs with missing handle...",
    "counts": "Scanning for IPAM handles whose counts do not match the blocks...",
    "affinity": "Scanning for IPAM blocks and affinities that do not match...",
    "nodes": "Loading all nodes.",
    "workloads": "Loading all workload endpoints.",
}


def render(result: CheckResult, show_problem_ips: bool) -> str:
    """The text calicoctl prints; problem details follow their section's heading."""
    details: dict[str, list[str]] = {}
    for section, line in result.problem_lines:
        if show_problem_ips or section in ("nodes", "workloads"):
            details.setdefault(_SECTION_AFTER[section], []).append(line)
    lines: list[str] = []
    for line in result.lines:
        lines.append(line)
        lines.extend(details.pop(line, []))
    lines.append(f"Check complete; found {result.problems} problems.")
    return "\n".join(lines) + "\n"


def report_json(result: CheckResult, version: str) -> str:
    """The machine-readable report (``-o FILE``), in calicoctl's CheckReport layout."""
    doc: dict[str, Any] = {
        "version": version,
        "clusterGUID": result.cluster_info["clusterGUID"],
        "datastoreLocked": result.cluster_info["datastoreLocked"],
        "clusterInformationRevision": result.cluster_info["clusterInformationRevision"],
        "clusterType": result.cluster_info["clusterType"],
        "allocations": {ip: [a.to_report() for a in allocs] for ip, allocs in sorted(result.allocations.items())},
    }
    if result.leaked_handles:
        doc["leakedHandles"] = [{"ID": h, "UID": None, "Revision": str(rev)} for h, rev in result.leaked_handles]
    return json.dumps(doc, indent=2)


def check(kv, now_ns: int, show_all: bool = False, kube_api=None) -> CheckResult:
    return analyse(collect(kv, now_ns, kube_api), show_all)


# --------------------------------------------------------------------------------------
# ``calicoctl ipam release --from-report``: what the reports agree is leaked.

@dataclass
class LeakedHandle:
    """One ``leakedHandles`` entry of a report: the handle and the revision (and, on the
    Kubernetes datastore, the UID) it had when the report was made."""

    handle_id: str
    revision: str
    uid: str | None = None


def merge_reports(reports: list[dict]) -> tuple[dict[str, dict], dict[str, LeakedHandle]]:
    """The allocations and handles every report calls leaked, as calicoctl merges them.

    An address is kept when it is not in use in each report (the release options, handle
    and sequence number, come from the last report). A handle is kept when each report
    lists it with the same revision. Returns ({ip: allocation}, {handle id: handle}).
    """
    ips: dict[str, dict] | None = None
    handles: dict[str, LeakedHandle] | None = None
    for report in reports:
        merged_ips: dict[str, dict] = {}
        for ip, allocs in (report.get("allocations") or {}).items():
            for alloc in allocs or []:
                if alloc.get("inUse"):
                    continue
                addr = alloc.get("ip") or ip
                if ips is not None and addr not in ips:
                    continue
                merged_ips[addr] = alloc
        ips = merged_ips
        merged_handles: dict[str, LeakedHandle] = {}
        for entry in report.get("leakedHandles") or []:
            handle = LeakedHandle(str(entry.get("ID") or ""), str(entry.get("Revision") or ""), entry.get("UID"))
            if not handle.handle_id:
                continue
            if handles is None:
                merged_handles[handle.handle_id] = handle
            else:
                earlier = handles.get(handle.handle_id)
                if earlier is not None and earlier.revision == handle.revision:
                    merged_handles[handle.handle_id] = handle
        handles = merged_handles
    return ips or {}, handles or {}
