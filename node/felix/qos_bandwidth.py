"""Workload bandwidth limits as tc token buckets (Felix's QoS bandwidth; pure part).

A workload endpoint's ``qosControls`` bandwidth settings become token bucket filters
(TBF qdiscs) around its host-side interface, as Felix does it:

* ingress (traffic to the workload): a TBF as the root qdisc of the interface, since
  that traffic leaves the host through it;
* egress (traffic from the workload): an ``ingress`` qdisc (ffff:) on the interface with
  one u32 filter (priority 1, every protocol, matching everything, class 1:1) whose
  mirred action redirects each packet to an IFB device, and a TBF as the root qdisc of
  that IFB device. The device is named ``bwcali`` followed by the start of the
  interface name's SHA-512 in hex, 15 characters in all (containernetworking's
  ``MustFormatHashWithPrefix``), and is created with the interface's MTU.

The bucket's numbers are Felix's ``GetTBFValues``: the rate in bytes per second, the
buffer as the time the burst takes at that rate, in the kernel's packet scheduler ticks,
and a limit of 25 ms of traffic at the rate plus that buffer (Felix adds the buffer's
tick count, not its bytes, and so does this); with a peakrate, the limit is the smaller
of that and 25 ms at the peakrate plus the minburst's buffer. Before the qdisc is
written, a peakrate's minburst is raised to the device MTU plus the Ethernet header
(the kernel's smallest useful value), and a bucket without rate, buffer or limit, or
with a minburst but no peakrate, is refused (Felix's ``makeTBF``).

This module computes what each interface should hold (``desired_bandwidth``), what the
kernel reports back for such a bucket (``tbf_matches``) and the operations that take
the kernel's current picture (``KernelView``) to it (``plan``); ``dataplane.qos``
reads the picture and applies the operations over netlink; ``render_bandwidth`` is
the dry run's text of the same buckets. The plan converges rather
than replays: an interface whose qdiscs already match gets no operation, so a restart
with unchanged inputs writes nothing.

What the plan owns: the root TBF and the ``ingress`` qdisc of workload interfaces (an
active endpoint's, and any other interface with a workload prefix: an endpoint that went
away loses its limits), the u32 filters on that ``ingress`` qdisc while egress is
limited (Felix removes every u32 filter there, and the CNI bandwidth plugin's ``bwp...``
and older ``bwcali...`` devices they redirect to), and every ``bwcali...`` IFB device.
Limits are only added or changed on an interface that is oper-up (the agent applies
again when it comes up); removals do not wait.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import Iterable, Mapping

from node.felix import types as t

IFB_PREFIX = "bwcali"  # Felix's IFB devices
CNI_IFB_PREFIX = "bwp"  # the CNI bandwidth plugin's, removed when Felix takes over egress
IFB_NAME_LENGTH = 15
LATENCY_USEC = 25_000.0
ETH_HLEN = 14
PSCHED_SHIFT = 6  # the kernel's nanoseconds per tick: 1 << 6
# Ticks per microsecond on any kernel since 2.6.31 (/proc/net/psched: 1000/64).
DEFAULT_TICK_IN_USEC = 15.625
_UINT32 = 0xFFFFFFFF
_UINT64 = (1 << 64) - 1

TC_H_ROOT = 0xFFFFFFFF
TC_H_INGRESS = 0xFFFFFFF1
INGRESS_HANDLE = 0xFFFF0000  # ffff:
TBF_HANDLE = 0x10000  # 1:
REDIRECT_PRIO = 1
REDIRECT_CLASSID = 0x10001  # 1:1
ETH_P_ALL = 0x0003
# A filter's tcm_info: its priority in the high half, its protocol (network order) below.
REDIRECT_INFO = (REDIRECT_PRIO << 16) | 0x0300


@lru_cache(maxsize=4096)
def ifb_device_name(iface: str) -> str:
    """Felix's IFB device for ``iface``: ``bwcali`` and the SHA-512 of the name in hex,
    cut to 15 characters."""
    return (IFB_PREFIX + hashlib.sha512(iface.encode()).hexdigest())[:IFB_NAME_LENGTH]


def tick_in_usec(psched: str) -> float:
    """Packet scheduler ticks per microsecond from /proc/net/psched's four hex numbers
    (as vishvananda/netlink reads them): ``t2us / us2t * clock_res / 1e6``, with the old
    kernels' quirk that a 1 GHz clock means ``t2us`` equals ``us2t``."""
    parts = psched.split()
    if len(parts) < 4:
        raise ValueError(f"/proc/net/psched: expected four numbers, got {psched!r}")
    t2us, us2t, clock_res, _hz = (int(p, 16) for p in parts[:4])
    if clock_res == 1_000_000_000:
        t2us = us2t
    if not us2t:
        raise ValueError(f"/proc/net/psched: zero ticks per microsecond in {psched!r}")
    return t2us / us2t * (clock_res / 1_000_000)


# --------------------------------------------------------------------------------------
# The bucket.

@dataclass(frozen=True, slots=True)
class TokenBucket:
    """Felix's TokenBucketState: what the TBF qdisc is given."""

    rate: int  # bytes per second
    buffer: int  # ticks: the time the burst takes at ``rate``
    limit: int  # bytes queued at most
    peakrate: int = 0  # bytes per second; 0: bursts go at line rate
    minburst: int = 0  # bytes: the peakrate bucket's size


def _u32(value: float) -> int:
    """Go's ``uint32(min(value, math.MaxUint32))`` for the non-negative values here."""
    return int(min(value, float(_UINT32)))


def _per(numerator: float, denominator: float) -> float:
    """A float division as Go does it: a positive number over zero is +Inf."""
    return numerator / denominator if denominator else math.inf


@lru_cache(maxsize=1024)
def tbf_values(rate_bits: int, burst_bits: int, peakrate_bits: int = 0, minburst_bytes: int = 0,
               tick: float = DEFAULT_TICK_IN_USEC) -> TokenBucket:
    """Felix's GetTBFValues: the bucket for a rate and peakrate in bits per second, a
    burst in bits and a minburst in bytes (``tick``: ticks per microsecond)."""
    rate = rate_bits // 8
    burst = burst_bits // 8
    burst_usec = _u32(_per(float(burst) * 1_000_000.0, float(rate)))
    buffer = _u32(float(burst_usec) * tick)
    limit = _u32(float(rate) * LATENCY_USEC / 1_000_000.0 + float(buffer))
    peakrate = 0
    if peakrate_bits:
        peakrate = peakrate_bits // 8
        minburst_usec = _u32(_per(float(minburst_bytes) * 1_000_000.0, float(peakrate)))
        minburst_buffer = _u32(float(minburst_usec) * tick)
        peak_limit = _u32(float(peakrate) * LATENCY_USEC / 1_000_000.0 + float(minburst_buffer))
        limit = min(limit, peak_limit)
    return TokenBucket(rate, buffer, limit, peakrate, minburst_bytes & _UINT32)


def for_device(bucket: TokenBucket, mtu: int) -> TokenBucket:
    """The bucket as Felix writes it on a device of this MTU (makeTBF): a peakrate's
    minburst is at least the MTU plus the Ethernet header. ValueError for a bucket the
    kernel cannot use."""
    if (bucket.limit <= 0 or bucket.rate <= 0 or bucket.buffer <= 0
            or (bucket.peakrate == 0 and bucket.minburst != 0)):
        raise ValueError(f"invalid token bucket (rate {bucket.rate} B/s, buffer {bucket.buffer} ticks, "
                         f"limit {bucket.limit} B, peakrate {bucket.peakrate} B/s, minburst {bucket.minburst} B); "
                         f"check the bandwidth, burst, peakrate and minburst settings")
    if bucket.peakrate and bucket.minburst < mtu + ETH_HLEN:
        return TokenBucket(bucket.rate, bucket.buffer, bucket.limit, bucket.peakrate, mtu + ETH_HLEN)
    return bucket


# --------------------------------------------------------------------------------------
# What the kernel reports back.

@dataclass(frozen=True, slots=True)
class TbfReading:
    """A TBF qdisc as the kernel dumps it: the rates and limit as given, the buffer and
    the peak bucket's size (``mtu``) as ticks of its own."""

    handle: int
    rate: int
    buffer: int
    limit: int
    peakrate: int
    mtu: int


def _ratecfg(rate: int) -> tuple[int, int]:
    """The kernel's psched_ratecfg_precompute__: (mult, shift) with
    ``ns = (bytes * mult) >> shift``."""
    if rate <= 0:
        return 1, 0
    factor, shift = 1_000_000_000, 0
    while True:
        mult = (factor // rate) & _UINT32
        if mult & (1 << 31) or factor & (1 << 63):
            return mult, shift
        factor = (factor << 1) & _UINT64
        shift += 1


def _ticks_to_ns(ticks: int) -> int:
    return ticks << PSCHED_SHIFT


def tbf_matches(bucket: TokenBucket, reading: TbfReading) -> bool:
    """Whether the kernel's TBF is this bucket. The buffer comes back as given, or (older
    kernels keep it in 32 bits of nanoseconds) cut to that; the peak bucket comes back as
    the time the minburst takes at the peakrate, in ticks, as the kernel works it out."""
    if (reading.rate, reading.limit, reading.peakrate) != (bucket.rate, bucket.limit, bucket.peakrate):
        return False
    if reading.buffer not in (bucket.buffer, min(_ticks_to_ns(bucket.buffer), _UINT32) >> PSCHED_SHIFT):
        return False
    if not bucket.peakrate:
        return reading.mtu == 0
    mult, shift = _ratecfg(bucket.peakrate)
    return reading.mtu == ((bucket.minburst * mult) >> shift >> PSCHED_SHIFT) & _UINT32


# --------------------------------------------------------------------------------------
# What each interface should hold.

@dataclass(frozen=True, slots=True)
class InterfaceBandwidth:
    """One active workload's buckets (before the device's MTU is known); None: that
    direction is not limited."""

    endpoint: t.WorkloadEndpointID
    ingress: TokenBucket | None = None
    egress: TokenBucket | None = None


@dataclass(frozen=True)
class BandwidthTargets:
    """The limited interfaces, and the interface of every active workload endpoint (to
    name the endpoint when one of its interfaces fails, and to clear limits it no longer
    has)."""

    limits: Mapping[str, InterfaceBandwidth] = field(default_factory=dict)
    endpoints: Mapping[str, t.WorkloadEndpointID] = field(default_factory=dict)


def desired_bandwidth(endpoints: Mapping[t.WorkloadEndpointID, t.WorkloadEndpoint],
                      tick: float = DEFAULT_TICK_IN_USEC) -> BandwidthTargets:
    """The buckets of each active workload endpoint's interface (``endpoints``: the
    endpoint in charge of each interface, as ``DesiredDataplane.active_workload_endpoints``
    gives them). A direction is limited when its bandwidth is not zero."""
    limits: dict[str, InterfaceBandwidth] = {}
    names: dict[str, t.WorkloadEndpointID] = {}
    for wid, wep in endpoints.items():
        names[wep.name] = wid
        qos = wep.qos_controls
        if qos is None or not (qos.ingress_bandwidth or qos.egress_bandwidth):
            continue
        ingress = (tbf_values(qos.ingress_bandwidth, qos.ingress_burst, qos.ingress_peakrate, qos.ingress_minburst,
                              tick) if qos.ingress_bandwidth else None)
        egress = (tbf_values(qos.egress_bandwidth, qos.egress_burst, qos.egress_peakrate, qos.egress_minburst,
                             tick) if qos.egress_bandwidth else None)
        limits[wep.name] = InterfaceBandwidth(wid, ingress, egress)
    return BandwidthTargets(limits, names)


def endpoint_text(wid: t.WorkloadEndpointID | None) -> str:
    """An endpoint as logs name it: ``k8s/ns/pod/eth0``, or ``no endpoint``."""
    if wid is None:
        return "no endpoint"
    return f"{wid.orchestrator}/{wid.workload}/{wid.endpoint}"


# --------------------------------------------------------------------------------------
# The kernel's picture.

@dataclass(frozen=True, slots=True)
class LinkInfo:
    name: str
    index: int
    kind: str  # IFLA_INFO_KIND: "veth", "ifb", ... ("" when none)
    admin_up: bool
    oper_up: bool
    mtu: int


@dataclass(frozen=True, slots=True)
class U32Filter:
    """One u32 filter instance (a priority and protocol) on an ``ingress`` qdisc, with
    its rules: ``redirects`` are the devices (by index) its mirred actions send to."""

    info: int  # tcm_info: priority << 16 | protocol in network order
    redirects: tuple[int, ...] = ()
    # Exactly Felix's rule: one node matching everything, class 1:1, one mirred
    # action redirecting to egress of the device ``redirects[0]``, packet stolen.
    felix_shaped: bool = False


@dataclass(frozen=True, slots=True)
class DeviceTc:
    """A device's qdiscs as far as the limits go."""

    root_tbf: TbfReading | None = None
    ingress: bool = False  # an ``ingress`` qdisc (ffff:)
    filters: tuple[U32Filter, ...] = ()  # the u32 filters on it


@dataclass(frozen=True)
class KernelView:
    links: Mapping[str, LinkInfo]
    tc: Mapping[str, DeviceTc]  # by device name (a device without an entry has none of it)

    def device(self, name: str) -> DeviceTc:
        return self.tc.get(name, DeviceTc())

    @cached_property
    def by_index(self) -> dict[int, LinkInfo]:
        return {link.index: link for link in self.links.values()}


def is_workload(name: str, prefixes: Iterable[str]) -> bool:
    return name.startswith(tuple(prefixes))


def managed_interfaces(targets: BandwidthTargets, names: Iterable[str], prefixes: Iterable[str]) -> set[str]:
    """The existing interfaces whose qdiscs the plan looks after: workload interfaces by
    prefix, and any interface of an active endpoint."""
    prefixes = tuple(prefixes)
    return {n for n in names if n in targets.endpoints or n in targets.limits or n.startswith(prefixes)}


# --------------------------------------------------------------------------------------
# The operations.

@dataclass(frozen=True)
class Op:
    """One netlink change; ``iface`` and ``endpoint`` say whose limits it serves."""

    iface: str
    endpoint: t.WorkloadEndpointID | None

    def describe(self) -> str:
        raise NotImplementedError


@dataclass(frozen=True)
class ReplaceTbf(Op):
    device: str = ""
    bucket: TokenBucket | None = None

    def describe(self) -> str:
        b = self.bucket
        return (f"set the token bucket on {self.device} (rate {b.rate} B/s, buffer {b.buffer} ticks, limit {b.limit} B, "
                f"peakrate {b.peakrate} B/s, minburst {b.minburst} B)")


@dataclass(frozen=True)
class DeleteTbf(Op):
    device: str = ""
    handle: int = 0

    def describe(self) -> str:
        return f"remove the token bucket from {self.device}"


@dataclass(frozen=True)
class CreateIfb(Op):
    device: str = ""
    mtu: int = 0

    def describe(self) -> str:
        return f"create IFB device {self.device} (MTU {self.mtu})"


@dataclass(frozen=True)
class ConfigureIfb(Op):
    device: str = ""
    mtu: int = 0

    def describe(self) -> str:
        return f"set IFB device {self.device} up with MTU {self.mtu}"


@dataclass(frozen=True)
class AddIngressQdisc(Op):
    def describe(self) -> str:
        return f"add an ingress qdisc to {self.iface}"


@dataclass(frozen=True)
class DeleteIngressQdisc(Op):
    def describe(self) -> str:
        return f"remove the ingress qdisc from {self.iface}"


@dataclass(frozen=True)
class DeleteFilter(Op):
    info: int = 0

    def describe(self) -> str:
        return f"remove u32 filter priority {self.info >> 16} from {self.iface}'s ingress qdisc"


@dataclass(frozen=True)
class AddRedirect(Op):
    device: str = ""

    def describe(self) -> str:
        return f"redirect {self.iface}'s incoming packets to {self.device}"


@dataclass(frozen=True)
class DeleteLink(Op):
    device: str = ""

    def describe(self) -> str:
        return f"delete device {self.device}"


def _egress_ours(tc: DeviceTc, ifb: LinkInfo | None) -> U32Filter | None:
    """The u32 filter that is Felix's redirect to ``ifb`` (None when there is none)."""
    if ifb is None:
        return None
    for f in tc.filters:
        if f.info == REDIRECT_INFO and f.felix_shaped and f.redirects == (ifb.index,):
            return f
    return None


def plan_interface(name: str, want: InterfaceBandwidth | None, endpoint: t.WorkloadEndpointID | None,
                   view: KernelView, oper_up: bool) -> tuple[list[list[Op]], list[str]]:
    """The operations for one existing interface, as independent groups (the ingress
    direction's, the egress direction's; within a group each needs the ones before it),
    and its problems (buckets the kernel cannot use: those stay as they are)."""
    link = view.links[name]
    tc = view.device(name)
    groups: list[list[Op]] = []
    problems: list[str] = []
    ingress = want.ingress if want is not None else None
    egress = want.egress if want is not None else None

    # Traffic to the workload: the interface's root TBF.
    if ingress is not None:
        if oper_up:
            try:
                bucket = for_device(ingress, link.mtu)
            except ValueError as exc:
                problems.append(f"ingress: {exc}")
            else:
                if tc.root_tbf is None or not tbf_matches(bucket, tc.root_tbf):
                    groups.append([ReplaceTbf(name, endpoint, name, bucket)])
    elif tc.root_tbf is not None:
        groups.append([DeleteTbf(name, endpoint, name, tc.root_tbf.handle)])

    # Traffic from the workload: ingress qdisc, redirect, IFB device and its TBF.
    if egress is not None:
        if oper_up:
            try:
                bucket = for_device(egress, link.mtu)
            except ValueError as exc:
                problems.append(f"egress: {exc}")
            else:
                ops = _egress_ops(name, endpoint, link, tc, bucket, view)
                if ops:
                    groups.append(ops)
    else:
        ops = _egress_removal(name, endpoint, tc, view)
        if ops:
            groups.append(ops)
    return groups, problems


def _egress_ops(name: str, endpoint: t.WorkloadEndpointID | None, link: LinkInfo, tc: DeviceTc,
                bucket: TokenBucket, view: KernelView) -> list[Op]:
    """Felix's egress set-up, for what is missing or different: the IFB device (up,
    with the interface's MTU), the ``ingress`` qdisc, only Felix's u32 redirect on it
    (other u32 filters go, with the ``bwp``/other ``bwcali`` devices they redirect to),
    and the TBF on the device."""
    ifb_name = ifb_device_name(name)
    ifb = view.links.get(ifb_name)
    by_index = view.by_index
    ops: list[Op] = []
    if ifb is None:
        ops.append(CreateIfb(name, endpoint, ifb_name, link.mtu))
    elif not ifb.admin_up or ifb.mtu != link.mtu:
        ops.append(ConfigureIfb(name, endpoint, ifb_name, link.mtu))
    if not tc.ingress:
        ops.append(AddIngressQdisc(name, endpoint))
    ours = _egress_ours(tc, ifb)
    for f in tc.filters:
        if f is ours:
            continue
        ops.append(DeleteFilter(name, endpoint, f.info))
        for target in f.redirects:
            other = by_index.get(target)
            if other is not None and other.name != ifb_name and other.name.startswith((CNI_IFB_PREFIX, IFB_PREFIX)):
                ops.append(DeleteLink(name, endpoint, other.name))
    if ours is None:
        ops.append(AddRedirect(name, endpoint, ifb_name))
    current = view.device(ifb_name).root_tbf if ifb is not None else None
    if current is None or not tbf_matches(bucket, current):
        ops.append(ReplaceTbf(name, endpoint, ifb_name, bucket))
    return ops


def _egress_removal(name: str, endpoint: t.WorkloadEndpointID | None, tc: DeviceTc, view: KernelView) -> list[Op]:
    """Felix's egress tear-down: the ``ingress`` qdisc when it is Felix's (its IFB device
    exists, or a filter redirects to a ``bwcali`` device), then the IFB device."""
    ifb_name = ifb_device_name(name)
    ifb = view.links.get(ifb_name)
    redirects_to_felix = any(target in view.by_index and view.by_index[target].name.startswith(IFB_PREFIX)
                             for f in tc.filters for target in f.redirects)
    ops: list[Op] = []
    if tc.ingress and (ifb is not None or redirects_to_felix):
        ops.append(DeleteIngressQdisc(name, endpoint))
    if ifb is not None:
        ops.append(DeleteLink(name, endpoint, ifb_name))
    return ops


def plan(targets: BandwidthTargets, view: KernelView, oper_up: Mapping[str, bool],
         prefixes: Iterable[str]) -> tuple[list[list[Op]], dict[str, str]]:
    """Everything to do, as groups of operations (each operation depends on the ones
    before it in its group, none on another group's): each interface's ingress and
    egress changes, then the leftover ``bwcali`` devices; and the problems found, by
    interface. ``oper_up``: which interfaces are oper-up."""
    groups: list[list[Op]] = []
    problems: dict[str, str] = {}
    deleted: set[str] = set()
    for name in sorted(managed_interfaces(targets, view.links, prefixes)):
        endpoint = targets.endpoints.get(name)
        want = targets.limits.get(name)
        if want is not None:
            endpoint = want.endpoint
        found_groups, found = plan_interface(name, want, endpoint, view, oper_up.get(name, False))
        if found:
            problems[name] = "; ".join(found)
        for ops in found_groups:
            groups.append(ops)
            deleted.update(op.device for op in ops if isinstance(op, DeleteLink))
    wanted = {ifb_device_name(name) for name, want in targets.limits.items() if want.egress is not None}
    for link in sorted(view.links.values(), key=lambda li: li.name):
        if (link.kind == "ifb" and link.name.startswith(IFB_PREFIX) and link.name not in wanted
                and link.name not in deleted):
            groups.append([DeleteLink(link.name, None, link.name)])
    return groups, problems


# --------------------------------------------------------------------------------------
# The dry run's text.

def render_tbf(device: str, bucket: TokenBucket, mtu_of: str | None = None) -> str:
    """A TBF qdisc at the root of ``device``, in ``tc qdisc show``'s order, with the
    numbers the kernel is given: rates in bytes per second, the buffer in ticks, the
    limit and minburst in bytes. ``mtu_of``: the interface whose MTU is not known, so a
    peakrate's minburst may still be raised to it."""
    text = (f"qdisc tbf {TBF_HANDLE >> 16:x}: dev {device} root rate {bucket.rate} B/s buffer {bucket.buffer} ticks "
            f"limit {bucket.limit} B")
    if bucket.peakrate:
        text += f" peakrate {bucket.peakrate} B/s minburst {bucket.minburst} B"
        if mtu_of is not None:
            text += f" (at least the MTU of {mtu_of} + {ETH_HLEN})"
    return text


def render_bandwidth(targets: BandwidthTargets, mtus: Mapping[str, int]) -> tuple[list[str], list[str]]:
    """Each limited interface's qdiscs, filters and IFB device as text, interface by
    interface in name order, each as the plan sets it up: the ingress direction's root
    TBF, then the egress direction's IFB device, ``ingress`` qdisc, redirect filter and
    the TBF on the device. ``mtus``: the interfaces' MTUs (one not given is not on this
    host: its IFB device and minburst are named after its MTU). Also the problems, as
    the dataplane words them: a bucket the kernel cannot use is left out."""
    lines: list[str] = []
    problems: list[str] = []
    for name in sorted(targets.limits):
        want = targets.limits[name]
        mtu = mtus.get(name) or 0
        mtu_of = None if mtu else name
        found: list[str] = []
        if want.ingress is not None:
            try:
                bucket = for_device(want.ingress, mtu)
            except ValueError as exc:
                found.append(f"ingress: {exc}")
            else:
                lines.append(render_tbf(name, bucket if mtu else want.ingress, mtu_of))
        if want.egress is not None:
            try:
                bucket = for_device(want.egress, mtu)
            except ValueError as exc:
                found.append(f"egress: {exc}")
            else:
                ifb = ifb_device_name(name)
                lines += [
                    f"link {ifb} type ifb mtu {mtu or 'of ' + name} up",
                    f"qdisc ingress {INGRESS_HANDLE >> 16:x}: dev {name} parent {TC_H_INGRESS >> 16:x}:"
                    f"{TC_H_INGRESS & 0xFFFF:x}",
                    f"filter u32 dev {name} parent {INGRESS_HANDLE >> 16:x}: protocol all prio {REDIRECT_PRIO} "
                    f"match all classid {REDIRECT_CLASSID >> 16:x}:{REDIRECT_CLASSID & 0xFFFF:x} "
                    f"action mirred egress redirect dev {ifb} stolen",
                    render_tbf(ifb, bucket if mtu else want.egress, mtu_of),
                ]
        if found:
            problems.append(f"interface {name} (endpoint {endpoint_text(want.endpoint)}): {'; '.join(found)}")
    return lines, problems
