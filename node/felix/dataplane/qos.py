"""Workload bandwidth limits applied with tc over netlink (the imperative shell of
``node.felix.qos_bandwidth``).

``QoSDataplane.apply(endpoints, interfaces)`` works out the token buckets the active
workload endpoints ask for, reads what the kernel holds (the IFB devices, every qdisc,
and the u32 filters of the workload interfaces that have an ``ingress`` qdisc; the other
links are the interface monitor's picture), and makes only the changes the plan lists,
over route netlink (pyroute2; never the ``tc`` program). TBF qdiscs are written with
their 64-bit rate attributes and the peak bucket size (``TCA_TBF_PBURST``), as Felix's
netlink library writes them; pyroute2's own TBF support has neither, so this module
carries the message layout. The qdisc dump is parsed here too, for speed (see there).

The kernel is read again when the endpoints' limits or the interface monitor's picture
change, after the apply changed something or failed, and every ``refresh_interval``
seconds (drift is repaired then); an apply whose inputs did not change sends nothing.
Each interface's changes are applied on their own: one that fails is logged with the
interface and its endpoint and retried at the next apply, the others go ahead. Limits
wait for an interface to be oper-up (the agent applies again when the interface monitor
sees it come up).
"""
from __future__ import annotations

import asyncio
import errno
import logging
import os
import socket
import struct
import time
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping

from node.felix import qos_bandwidth as qb
from node.felix import types as t
from node.felix.dataplane.interfaces import Interface, link_oper_up
from node.felix.dataplane.routes import ApplyResult
from node.rtnl import AsyncIPRoute, NetlinkError

# After node.rtnl, which loads pyroute2 without the package's __init__ (see there).
from pyroute2.netlink import (NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REPLACE,
                              NLM_F_REQUEST, nla, nlmsg)
from pyroute2.netlink.rtnl import RTM_DELQDISC, RTM_DELTFILTER, RTM_GETLINK, RTM_NEWQDISC
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg
from pyroute2.netlink.rtnl.tcmsg import tcmsg

log = logging.getLogger(__name__)

PSCHED_PATH = "/proc/net/psched"
# How soon the agent applies again after a failure here.
RETRY_INTERVAL = 5.0
IFF_UP = 0x1
TCA_EGRESS_REDIR = 1
TC_ACT_STOLEN = 4
TC_U32_TERMINAL = 0x1
_GONE = (errno.ENODEV, errno.ENOENT)


# --------------------------------------------------------------------------------------
# The TBF message (linux/pkt_sched.h: TCA_TBF_*, struct tc_tbf_qopt).

class _tbf_options(nla):
    nla_map = (
        ("TCA_TBF_UNSPEC", "none"),
        ("TCA_TBF_PARMS", "tbf_parms"),
        ("TCA_TBF_RTAB", "hex"),
        ("TCA_TBF_PTAB", "hex"),
        ("TCA_TBF_RATE64", "uint64"),
        ("TCA_TBF_PRATE64", "uint64"),
        ("TCA_TBF_BURST", "uint32"),
        ("TCA_TBF_PBURST", "uint32"),
        ("TCA_TBF_PAD", "hex"),
    )

    class tbf_parms(nla):
        fields = (
            ("rate_cell_log", "B"), ("rate_linklayer", "B"), ("rate_overhead", "H"),
            ("rate_cell_align", "h"), ("rate_mpu", "H"), ("rate", "I"),
            ("peak_cell_log", "B"), ("peak_linklayer", "B"), ("peak_overhead", "H"),
            ("peak_cell_align", "h"), ("peak_mpu", "H"), ("peak", "I"),
            ("limit", "I"), ("buffer", "I"), ("mtu", "I"),
        )


class qdisc_msg(nlmsg):
    """The qdisc requests this module sends, with the whole of a TBF qdisc's options.
    Its own class rather than a subclass of pyroute2's tcmsg: pyroute2 resolves the
    attribute table once per class hierarchy, so a subclass would go on using tcmsg's
    TBF options (no 64-bit rates, no peak bucket size)."""

    prefix = "TCA_"
    fields = tcmsg.fields
    nla_map = (
        ("TCA_UNSPEC", "none"),
        ("TCA_KIND", "asciiz"),
        ("TCA_OPTIONS", "get_options"),
    )

    @staticmethod
    def get_options(self, *argv, **kwarg):
        if self.get_attr("TCA_KIND") == "tbf":
            return _tbf_options
        return self.hex


def tbf_message(index: int, bucket: qb.TokenBucket) -> qdisc_msg:
    """``tc qdisc replace dev <index> root handle 1: tbf ...`` as Felix sends it: rates
    above 32 bits in their 64-bit attributes, the peak bucket's size in bytes."""
    parms = {"rate": min(bucket.rate, 0xFFFFFFFF), "peak": min(bucket.peakrate, 0xFFFFFFFF),
             "limit": bucket.limit, "buffer": bucket.buffer, "mtu": 0}
    attrs: list = [["TCA_TBF_PARMS", parms]]
    if bucket.rate > 0xFFFFFFFF:
        attrs.append(["TCA_TBF_RATE64", bucket.rate])
    if bucket.peakrate > 0xFFFFFFFF:
        attrs.append(["TCA_TBF_PRATE64", bucket.peakrate])
    if bucket.peakrate:
        attrs.append(["TCA_TBF_PBURST", bucket.minburst])
    return _tc_message(qdisc_msg(), index, qb.TBF_HANDLE, qb.TC_H_ROOT, "tbf", {"attrs": attrs})


def _tc_message(msg: nlmsg, index: int, handle: int, parent: int, kind: str | None, options=None, info: int = 0):
    msg["family"] = 0
    msg["index"] = index
    msg["handle"] = handle
    msg["parent"] = parent
    msg["info"] = info
    attrs: list = []
    if kind is not None:
        attrs.append(["TCA_KIND", kind])
    if options is not None:
        attrs.append(["TCA_OPTIONS", options])
    msg["attrs"] = attrs
    return msg


# --------------------------------------------------------------------------------------
# The qdisc dump, read straight off a route-netlink socket. pyroute2 decodes every
# attribute of every message (statistics included) into objects, about 0.1 ms a message:
# a node's dump holds a qdisc per interface, and this reader needs two attributes.

_NLMSGHDR = struct.Struct("=IHHII")
_TCMSG = struct.Struct("=BxxxiIII")
_RTATTR = struct.Struct("=HH")
_TBF_QOPT = struct.Struct("=BBHhHIBBHhHIIII")  # struct tc_tbf_qopt: rate, peakrate, limit, buffer, mtu
_U64 = struct.Struct("=Q")
NLMSG_ERROR, NLMSG_DONE = 2, 3
RTM_GETQDISC_TYPE, RTM_NEWQDISC_TYPE = 38, 36
TCA_KIND, TCA_OPTIONS = 1, 2
TCA_TBF_PARMS, TCA_TBF_RATE64, TCA_TBF_PRATE64 = 1, 4, 5


@dataclass(frozen=True, slots=True)
class Qdisc:
    index: int
    handle: int
    parent: int
    kind: str
    tbf: qb.TbfReading | None = None


def _rtattrs(data: bytes, start: int, end: int):
    """(type, value start, value end) of each attribute between ``start`` and ``end``."""
    while start + 4 <= end:
        length, kind = _RTATTR.unpack_from(data, start)
        if length < 4:
            return
        yield kind & 0x3FFF, start + 4, start + length  # without NLA_F_NESTED / NET_BYTEORDER
        start += (length + 3) & ~3


def _tbf_reading(data: bytes, start: int, end: int, handle: int) -> qb.TbfReading | None:
    parms = rate64 = prate64 = None
    for kind, vstart, vend in _rtattrs(data, start, end):
        if kind == TCA_TBF_PARMS and vend - vstart >= _TBF_QOPT.size:
            parms = _TBF_QOPT.unpack_from(data, vstart)
        elif kind == TCA_TBF_RATE64 and vend - vstart >= 8:
            rate64 = _U64.unpack_from(data, vstart)[0]
        elif kind == TCA_TBF_PRATE64 and vend - vstart >= 8:
            prate64 = _U64.unpack_from(data, vstart)[0]
    if parms is None:
        return None
    rate, peakrate, limit, buffer, mtu = parms[5], parms[11], parms[12], parms[13], parms[14]
    return qb.TbfReading(handle, rate64 or rate, buffer, limit, prate64 or peakrate, mtu)


def parse_qdisc_messages(data: bytes) -> tuple[list[Qdisc], bool]:
    """The qdiscs in one read of a qdisc dump, and whether the dump ended there. OSError
    for an error the kernel answered with."""
    qdiscs: list[Qdisc] = []
    offset = 0
    while offset + _NLMSGHDR.size <= len(data):
        length, msg_type, _flags, _seq, _pid = _NLMSGHDR.unpack_from(data, offset)
        if length < _NLMSGHDR.size or offset + length > len(data):
            raise OSError(errno.EBADMSG, "truncated netlink message in the qdisc dump")
        body = offset + _NLMSGHDR.size
        if msg_type == NLMSG_DONE:
            return qdiscs, True
        if msg_type == NLMSG_ERROR:
            code = -struct.unpack_from("=i", data, body)[0]
            if code:
                raise OSError(code, f"qdisc dump: {os.strerror(code)}")
        elif msg_type == RTM_NEWQDISC_TYPE:
            _family, index, handle, parent, _info = _TCMSG.unpack_from(data, body)
            kind, options = "", None
            for attr, vstart, vend in _rtattrs(data, body + _TCMSG.size, offset + length):
                if attr == TCA_KIND:
                    kind = data[vstart:vend].split(b"\0", 1)[0].decode()
                elif attr == TCA_OPTIONS:
                    options = (vstart, vend)
            tbf = _tbf_reading(data, options[0], options[1], handle) if kind == "tbf" and options else None
            qdiscs.append(Qdisc(index, handle, parent, kind, tbf))
        offset += (length + 3) & ~3
    return qdiscs, False


def dump_qdiscs() -> list[Qdisc]:
    """Every qdisc of this network namespace (RTM_GETQDISC dump)."""
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE) as sock:
        sock.bind((0, 0))
        sock.settimeout(10)
        request = _TCMSG.pack(0, 0, 0, 0, 0)
        sock.send(_NLMSGHDR.pack(_NLMSGHDR.size + len(request), RTM_GETQDISC_TYPE, NLM_F_REQUEST | NLM_F_DUMP, 1, 0)
                  + request)
        qdiscs: list[Qdisc] = []
        while True:
            data, _, flags, _ = sock.recvmsg(1 << 17)
            if flags & socket.MSG_TRUNC:
                raise OSError(errno.EMSGSIZE, "qdisc dump: a netlink read was cut short")
            found, done = parse_qdisc_messages(data)
            qdiscs.extend(found)
            if done:
                return qdiscs


def _attrs(value) -> list:
    return [(pair[0], pair[1]) for pair in (value.get("attrs") or [])] if value is not None else []


def parse_u32_node(msg) -> tuple[tuple[int, ...], bool] | None:
    """A u32 rule (a message with a selector): the devices its mirred actions send to,
    and whether it is exactly Felix's match-everything redirect (None: not a rule, e.g.
    the filter's hash table)."""
    options = msg.get_attr("TCA_OPTIONS")
    sel = options.get_attr("TCA_U32_SEL") if options is not None else None
    if sel is None:
        return None
    keys = sel.get("keys") or []
    match_all = (sel["flags"] & TC_U32_TERMINAL and len(keys) == 1
                 and keys[0]["key_mask"] == 0 and keys[0]["key_val"] == 0 and keys[0]["key_off"] == 0)
    redirects: list[int] = []
    shaped = []
    for _prio, act in _attrs(options.get_attr("TCA_U32_ACT")):
        kind = act.get_attr("TCA_ACT_KIND")
        act_options = act.get_attr("TCA_ACT_OPTIONS")
        parms = act_options.get_attr("TCA_MIRRED_PARMS") if kind == "mirred" and act_options is not None else None
        if parms is None:
            shaped.append(False)
            continue
        redirects.append(parms["ifindex"])
        shaped.append(parms["eaction"] == TCA_EGRESS_REDIR and parms["action"] == TC_ACT_STOLEN)
    felix = bool(match_all) and options.get_attr("TCA_U32_CLASSID") == qb.REDIRECT_CLASSID and shaped == [True]
    return tuple(redirects), felix


# --------------------------------------------------------------------------------------
# Reading.

def read_tick_in_usec(path: str = PSCHED_PATH) -> float:
    """The kernel's packet scheduler ticks per microsecond (Felix's netlink library reads
    the same file); the kernel's fixed value when the file cannot be read."""
    try:
        with open(path) as fh:
            return qb.tick_in_usec(fh.read())
    except (OSError, ValueError) as exc:
        log.warning("Cannot read the packet scheduler clock from %s (%s); assuming %s ticks per microsecond",
                    path, exc, qb.DEFAULT_TICK_IN_USEC)
        return qb.DEFAULT_TICK_IN_USEC


def _link_info(msg) -> qb.LinkInfo:
    info = msg.get_attr("IFLA_LINKINFO")
    kind = (info.get_attr("IFLA_INFO_KIND") if info is not None else None) or ""
    return qb.LinkInfo(msg.get_attr("IFLA_IFNAME"), msg["index"], kind, bool(msg["flags"] & IFF_UP),
                       link_oper_up(msg), msg.get_attr("IFLA_MTU") or 0)


async def read_all_links(ipr: AsyncIPRoute) -> dict[str, qb.LinkInfo]:
    return {info.name: info for info in map(_link_info, [m async for m in await ipr.get_links()])}


async def read_ifbs(ipr: AsyncIPRoute) -> dict[str, qb.LinkInfo]:
    """The IFB devices, from a link dump the kernel filters by kind (so a node with
    thousands of workload interfaces costs no more than its IFB devices)."""
    msg = ifinfmsg()
    msg["family"] = 0
    msg["attrs"] = [["IFLA_LINKINFO", {"attrs": [["IFLA_INFO_KIND", "ifb"]]}]]
    links = {}
    async for reply in await ipr.nlm_request(msg, RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP):
        info = _link_info(reply)
        if info.kind == "ifb":
            links[info.name] = info
    return links


def links_from_picture(interfaces: Mapping[str, Interface], ifbs: Mapping[str, qb.LinkInfo]) -> dict[str, qb.LinkInfo]:
    """The interface monitor's picture (no kinds: only IFB devices need one, and those
    come from their own dump, which also says whether they are up; a ``bwcali`` device
    the picture still has but the dump has not is gone)."""
    links = {name: qb.LinkInfo(name, i.index, "", i.oper_up, i.oper_up, i.mtu) for name, i in interfaces.items()
             if name in ifbs or not name.startswith(qb.IFB_PREFIX)}
    links.update(ifbs)
    return links


async def _read_filters(ipr: AsyncIPRoute, index: int) -> tuple[qb.U32Filter, ...]:
    """The u32 filters on the device's ``ingress`` qdisc, one per priority and protocol."""
    rules: dict[int, list[tuple[tuple[int, ...], bool]]] = {}
    async for msg in await ipr.get_filters(index=index, parent=qb.INGRESS_HANDLE):
        if msg.get_attr("TCA_KIND") != "u32":
            continue
        found = rules.setdefault(msg["info"], [])
        node = parse_u32_node(msg)
        if node is not None:
            found.append(node)
    filters = []
    for info, nodes in rules.items():
        redirects = tuple(target for targets, _ in nodes for target in targets)
        filters.append(qb.U32Filter(info, redirects, len(nodes) == 1 and nodes[0][1]))
    return tuple(filters)


async def read_tc(ipr: AsyncIPRoute, links: Mapping[str, qb.LinkInfo], names: set[str],
                  known_filters: Mapping[str, tuple[qb.U32Filter, ...]]) -> tuple[dict[str, qb.DeviceTc], int]:
    """The qdiscs of the named devices, from one dump of every qdisc (the kernel has no
    per-device qdisc dump, and recent kernels answer a per-qdisc ``get`` with a
    notification to every tc listener), and the u32 filters of each of them with an ``ingress`` qdisc: those in
    ``known_filters`` as they are there, the others dumped. Also: how many were dumped."""
    by_index = {links[name].index: name for name in names if name in links}
    roots: dict[str, qb.TbfReading] = {}
    ingress: set[str] = set()
    for qdisc in dump_qdiscs():
        name = by_index.get(qdisc.index)
        if name is None:
            continue
        if qdisc.parent == qb.TC_H_ROOT and qdisc.tbf is not None:
            roots[name] = qdisc.tbf
        elif qdisc.parent == qb.TC_H_INGRESS and qdisc.kind == "ingress":
            ingress.add(name)
    tc = {name: qb.DeviceTc(root_tbf=reading) for name, reading in roots.items()}
    dumped = 0
    for name in ingress:
        filters = known_filters.get(name)
        if filters is None:
            filters = await _read_filters(ipr, links[name].index)
            dumped += 1
        tc[name] = qb.DeviceTc(roots.get(name), True, filters)
    return tc, dumped


# --------------------------------------------------------------------------------------
# Applying.

@dataclass
class QoSStats:
    writes: int = 0
    errors: int = 0
    reads: int = 0  # qdisc dumps
    filter_reads: int = 0  # filter dumps (one device each)


def _changed(old: Mapping, new: Mapping) -> set:
    """The keys whose values differ (or that are in only one of the two)."""
    return {k for k in old.keys() | new.keys() if old.get(k) != new.get(k)}


class QoSDataplane:
    """Keeps the workload interfaces' token buckets equal to the endpoints' limits (see
    the module doc). ``tick``: ticks per microsecond (read from /proc/net/psched when
    not given).

    Reading, at every apply whose inputs changed: with the interface monitor's picture,
    the links come from it (and the IFB devices from a dump filtered by kind, so a node
    with thousands of interfaces pays for no link dump); the qdiscs from one dump; the
    u32 filters are dumped again only for the devices whose interface, limits or
    endpoint changed and those the last apply changed, and for all of them at the first
    apply, after a failure, every ``refresh_interval`` and without a picture."""

    def __init__(self, *, workload_prefixes: Iterable[str] = ("cali",), refresh_interval: float = 90.0,
                 tick: float | None = None, clock: Callable[[], float] = time.monotonic):
        self.prefixes = tuple(workload_prefixes)
        self.refresh_interval = refresh_interval
        self.tick = tick if tick is not None else read_tick_in_usec()
        self.stats = QoSStats()
        self._clock = clock
        self._view: qb.KernelView | None = None  # the kernel as last read (None: read it all)
        self._read_at = 0.0
        self._picture: dict[str, tuple] = {}  # the interfaces at the last apply
        self._targets = qb.BandwidthTargets()  # the limits at the last apply
        self._touched: set[str] = set()  # devices the last apply changed
        self._reported: set[str] = set()  # failures and problems already logged as warnings

    @classmethod
    def from_felix(cls, config, **kwargs) -> "QoSDataplane":
        """From a ``FelixConfig``: InterfacePrefix, and RouteRefreshInterval as the
        re-read interval."""
        return cls(workload_prefixes=tuple(config.InterfacePrefix), refresh_interval=config.RouteRefreshInterval,
                   **kwargs)

    def refresh(self) -> None:
        """Read the kernel again at the next apply."""
        self._view = None

    def apply(self, endpoints: Mapping[t.WorkloadEndpointID, t.WorkloadEndpoint],
              interfaces: Mapping[str, Interface] | None = None) -> ApplyResult:
        """Converge on the limits of ``endpoints`` (the active endpoint of each local
        interface); ``interfaces``: the interface monitor's picture (which interfaces are
        oper-up), or None to go by the kernel's own link states."""
        return self.apply_targets(qb.desired_bandwidth(endpoints, self.tick), interfaces)

    def apply_targets(self, targets: qb.BandwidthTargets,
                      interfaces: Mapping[str, Interface] | None = None) -> ApplyResult:
        picture = {name: (i.index, i.oper_up, i.mtu) for name, i in interfaces.items()} if interfaces else {}
        due = self.refresh_interval > 0 and self._clock() - self._read_at >= self.refresh_interval
        dirty: set[str] | None = None  # None: read everything
        if interfaces is not None and self._view is not None and not due:
            dirty = (self._touched | _changed(self._picture, picture)
                     | _changed(self._targets.limits, targets.limits) | _changed(self._targets.endpoints,
                                                                                 targets.endpoints))
            if not dirty:
                return ApplyResult(0)
        loop = asyncio.new_event_loop()
        try:
            changes, failures, problems = loop.run_until_complete(self._apply(targets, interfaces, dirty))
        except (NetlinkError, OSError) as exc:
            changes, failures, problems = 0, [f"cannot read the links and qdiscs: {exc}"], []
        finally:
            loop.close()
        self._report(failures, problems)
        self.stats.errors += len(failures)
        self._picture, self._targets = picture, targets
        if failures or interfaces is None:
            self._view = None  # read it all next time
        return ApplyResult(changes, tuple(failures))

    def _report(self, failures: list[str], problems: list[str]) -> None:
        """A warning the first time a failure or problem is seen (until it goes away),
        a debug line when it repeats."""
        current = set(failures) | set(problems)
        for text in problems:
            if text not in self._reported:
                log.warning("QoS bandwidth: %s; not applied", text)
        for text in failures:
            (log.warning if text not in self._reported else log.debug)("QoS bandwidth: %s; will retry", text)
        self._reported = current

    async def _read(self, ipr: AsyncIPRoute, targets: qb.BandwidthTargets,
                    interfaces: Mapping[str, Interface] | None, dirty: set[str] | None) -> qb.KernelView:
        """The kernel's picture. ``dirty``: the devices whose interface, limits or
        endpoint changed, or that the last apply changed (their filters are dumped again,
        the others' come from the last picture); None: everything is read afresh."""
        if interfaces is None:
            links = await read_all_links(ipr)
        else:
            links = links_from_picture(interfaces, await read_ifbs(ipr))
        names = qb.managed_interfaces(targets, links, self.prefixes) | {
            name for name, link in links.items() if link.kind == "ifb"}
        known: dict[str, tuple[qb.U32Filter, ...]] = {}
        old = self._view
        if dirty is not None and old is not None:
            again = dirty | {qb.ifb_device_name(name) for name in dirty}
            known = {name: state.filters for name, state in old.tc.items()
                     if state.ingress and name not in again and name in old.links and name in links
                     and old.links[name].index == links[name].index}
        else:
            self._read_at = self._clock()
        tc, dumped = await read_tc(ipr, links, names, known)
        self.stats.reads += 1
        self.stats.filter_reads += dumped
        return qb.KernelView(links, tc)

    async def _apply(self, targets: qb.BandwidthTargets, interfaces: Mapping[str, Interface] | None,
                     dirty: set[str] | None) -> tuple[int, list[str], list[str]]:
        ipr = AsyncIPRoute()
        try:
            view = await self._read(ipr, targets, interfaces, dirty)
            self._view = view
            if interfaces is not None:
                oper_up = {name: iface.oper_up for name, iface in interfaces.items()}
            else:
                oper_up = {name: link.oper_up for name, link in view.links.items()}
            groups, problems = qb.plan(targets, view, oper_up, self.prefixes)
            indexes = {name: link.index for name, link in view.links.items()}
            changes, failures = 0, []
            self._touched = set()
            for ops in groups:
                for op in ops:
                    self._touched.update(name for name in (op.iface, getattr(op, "device", "")) if name)
                    try:
                        if await self._execute(ipr, op, indexes):
                            changes += 1
                            self.stats.writes += 1
                    except (NetlinkError, OSError, LookupError) as exc:
                        failures.append(f"interface {op.iface} (endpoint {qb.endpoint_text(op.endpoint)}): "
                                        f"cannot {op.describe()}: {exc}")
                        break  # the rest of this group builds on it
            texts = [f"interface {name} (endpoint {qb.endpoint_text(_endpoint(targets, name))}): {text}"
                     for name, text in sorted(problems.items())]
            return changes, failures, texts
        finally:
            ipr.close()

    async def _execute(self, ipr: AsyncIPRoute, op: qb.Op, indexes: dict[str, int]) -> bool:
        """One operation; False when there was nothing to do after all (already gone)."""
        if isinstance(op, qb.ReplaceTbf):
            await _request(ipr, tbf_message(await _index(ipr, indexes, op.device), op.bucket), RTM_NEWQDISC,
                           NLM_F_CREATE | NLM_F_REPLACE)
        elif isinstance(op, qb.DeleteTbf):
            # Gone already: ENOENT, or EINVAL when the root is the default qdisc again.
            msg = _tc_message(qdisc_msg(), indexes[op.device], op.handle, qb.TC_H_ROOT, None)
            return await _tolerate(_request(ipr, msg, RTM_DELQDISC), _GONE + (errno.EINVAL,))
        elif isinstance(op, qb.CreateIfb):
            try:
                await ipr.link("add", ifname=op.device, kind="ifb", mtu=op.mtu, state="up")
            except NetlinkError as exc:
                if exc.code != errno.EEXIST:
                    raise
                indexes.pop(op.device, None)
                await ipr.link("set", index=await _index(ipr, indexes, op.device), state="up", mtu=op.mtu)
            indexes.pop(op.device, None)
            await _index(ipr, indexes, op.device)
        elif isinstance(op, qb.ConfigureIfb):
            await ipr.link("set", index=indexes[op.device], state="up", mtu=op.mtu)
        elif isinstance(op, qb.AddIngressQdisc):
            msg = _tc_message(qdisc_msg(), indexes[op.iface], qb.INGRESS_HANDLE, qb.TC_H_INGRESS, "ingress")
            return await _tolerate(_request(ipr, msg, RTM_NEWQDISC, NLM_F_CREATE | NLM_F_EXCL), (errno.EEXIST,))
        elif isinstance(op, qb.DeleteIngressQdisc):
            msg = _tc_message(qdisc_msg(), indexes[op.iface], qb.INGRESS_HANDLE, qb.TC_H_INGRESS, None)
            return await _tolerate(_request(ipr, msg, RTM_DELQDISC), _GONE)
        elif isinstance(op, qb.DeleteFilter):
            msg = _tc_message(tcmsg(), indexes[op.iface], 0, qb.INGRESS_HANDLE, "u32", info=op.info)
            return await _tolerate(_request(ipr, msg, RTM_DELTFILTER), _GONE)
        elif isinstance(op, qb.AddRedirect):
            target = await _index(ipr, indexes, op.device)
            await ipr.tc("add-filter", "u32", indexes[op.iface], parent=qb.INGRESS_HANDLE, prio=qb.REDIRECT_PRIO,
                         protocol=qb.ETH_P_ALL, target=qb.REDIRECT_CLASSID, keys=["0x0/0x0+0"],
                         action={"kind": "mirred", "direction": "egress", "action": "redirect", "ifindex": target})
        elif isinstance(op, qb.DeleteLink):
            index = indexes.pop(op.device, None)
            if index is None:
                return False
            return await _tolerate(ipr.link("del", index=index), _GONE)
        else:
            raise TypeError(f"unknown QoS operation {op!r}")
        return True


def _endpoint(targets: qb.BandwidthTargets, name: str) -> t.WorkloadEndpointID | None:
    want = targets.limits.get(name)
    return want.endpoint if want is not None else targets.endpoints.get(name)


async def _request(ipr: AsyncIPRoute, msg, msg_type: int, flags: int = 0) -> None:
    async for _ in await ipr.nlm_request(msg, msg_type, NLM_F_REQUEST | NLM_F_ACK | flags):
        pass


async def _tolerate(request, codes: tuple[int, ...]) -> bool:
    """Run a request; False when it fails with one of ``codes`` (already done)."""
    try:
        await request
    except NetlinkError as exc:
        if exc.code in codes:
            return False
        raise
    return True


async def _index(ipr: AsyncIPRoute, indexes: dict[str, int], name: str) -> int:
    index = indexes.get(name)
    if index is None:
        found = await ipr.link_lookup(ifname=name)
        if not found:
            raise LookupError(f"no device {name}")
        index = indexes[name] = found[0]
    return index
