"""The pure part of the workload bandwidth limits: Felix's token bucket numbers, its IFB
device names, what the kernel reports back for a bucket, and the plan that takes a
kernel picture to the endpoints' limits.

Calico has no unit test vectors for GetTBFValues (felix/dataplane/linux/qos/qos.go);
the vectors here are worked out by hand from its formulas (each derivation is written
out), the fv test's settings (felix/fv/qos_controls_test.go: 10 Mbit/s, a 300 Mbit
burst, a 100 Mbit/s peakrate) among them. The IFB name algorithm is checked against the
CNI bandwidth plugin's own fixture (``bwpa8eda89404b7``), which comes from the same
containernetworking function. The kernel's read-back of a peak bucket was observed on
this machine with iproute2's ``tc`` (``peakrate 100mbit minburst 1514`` dumps as 1892
ticks), an independent writer. Last, the qdisc dump parser's edge cases (the kernel
tests read real dumps)."""
from __future__ import annotations

import dataclasses
import errno
import hashlib
import struct

import pytest

from node.felix import qos_bandwidth as qb
from node.felix import types as t
from node.felix.dataplane import qos

TICK = 15.625  # this kernel's /proc/net/psched: 0x3e8 / 0x40 * 0xf4240 / 1e6
WID = t.WorkloadEndpointID("k8s", "ns1/pod1", "eth0")
W = "cali1234567890a"
IFB = "bwcali800c13c17"


# --------------------------------------------------------------------------------------
# Names and the clock.

def test_ifb_names_are_the_interface_names_sha512_after_the_prefix():
    # hashlib.sha512(b"cali1234567890a").hexdigest() starts 800c13c17...
    assert qb.ifb_device_name(W) == IFB
    assert len(qb.ifb_device_name("cali0")) == 15 and qb.ifb_device_name("cali0").startswith("bwcali")
    assert qb.ifb_device_name("cali0") != qb.ifb_device_name("cali1")
    # The same containernetworking function names the CNI bandwidth plugin's devices: its
    # test expects "bwpa8eda89404b7" for network "cni-plugin-bandwidth-test", container "dummy".
    assert ("bwp" + hashlib.sha512(b"cni-plugin-bandwidth-testdummy").hexdigest())[:15] == "bwpa8eda89404b7"


def test_ticks_per_microsecond_from_proc_net_psched():
    assert qb.tick_in_usec("000003e8 00000040 000f4240 3b9aca00\n") == 15.625
    # A 1 GHz clock resolution: the old kernels' layout, where t2us is taken as us2t.
    assert qb.tick_in_usec("00000001 00000040 3b9aca00 3b9aca00") == 1000.0
    with pytest.raises(ValueError, match="four numbers"):
        qb.tick_in_usec("000003e8")


# --------------------------------------------------------------------------------------
# Felix's numbers.

def test_token_bucket_of_the_fv_settings():
    # rate 10e6/8 = 1.25e6 B/s; burst 300e6/8 = 37.5e6 B takes 30 s = 30e6 us = 468.75e6
    # ticks; limit 1.25e6 * 0.025 + 468.75e6 = 468_781_250, but the peakrate's is smaller:
    # 12.5e6 * 0.025 + 0 (no minburst) = 312_500.
    bucket = qb.tbf_values(10_000_000, 300_000_000, 100_000_000, 0, TICK)
    assert bucket == qb.TokenBucket(1_250_000, 468_750_000, 312_500, 12_500_000, 0)
    # Written on a 1500-byte MTU device, the minburst becomes 1500 + 14.
    assert qb.for_device(bucket, 1500) == qb.TokenBucket(1_250_000, 468_750_000, 312_500, 12_500_000, 1514)
    assert qb.for_device(bucket, 9000).minburst == 9014


def test_token_bucket_with_a_minburst():
    # The minburst of 100_000 B takes 8 ms at 12.5e6 B/s = 125_000 ticks: peak limit
    # 312_500 + 125_000 = 437_500. A minburst above the MTU's stays.
    bucket = qb.tbf_values(10_000_000, 300_000_000, 100_000_000, 100_000, TICK)
    assert bucket == qb.TokenBucket(1_250_000, 468_750_000, 437_500, 12_500_000, 100_000)
    assert qb.for_device(bucket, 1500) is bucket


def test_token_bucket_with_the_default_burst_saturates_at_32_bits():
    # 4Gi bits = 536_870_912 B at 1.25e6 B/s: 429_496_729 us (truncated), times 15.625
    # ticks is over 2^32: buffer and limit are both MaxUint32, as Go's uint32(min(...)).
    assert qb.tbf_values(10_000_000, 4 * 2**30, 0, 0, TICK) == qb.TokenBucket(1_250_000, 0xFFFFFFFF, 0xFFFFFFFF)


def test_token_bucket_limit_adds_the_buffers_ticks_as_felix_does():
    # 8000 bit/s = 1000 B/s, 80 bits = 10 B: 10_000 us = 156_250 ticks; limit
    # 1000 * 0.025 + 156_250 = 156_275 (the CNI plugin, which adds the burst's bytes, has 35).
    assert qb.tbf_values(8000, 80, 0, 0, TICK) == qb.TokenBucket(1000, 156_250, 156_275)


def test_token_bucket_beyond_32_bit_rates():
    # 1e12 bit/s = 1.25e11 B/s; the largest burst, 0xFFFFFFFF B, takes 34_359 us =
    # 536_859 ticks; limit 1.25e11 * 0.025 + 536_859 = 3_125_536_859.
    assert qb.tbf_values(10**12, 0xFFFFFFFF * 8, 0, 0, TICK) == qb.TokenBucket(125_000_000_000, 536_859,
                                                                                3_125_536_859)


def test_buckets_the_kernel_cannot_use_are_refused():
    # 1000 bits at 1.25e14 B/s take less than a microsecond: no buffer.
    tiny = qb.tbf_values(10**15, 1000, 0, 0, TICK)
    assert tiny.buffer == 0
    with pytest.raises(ValueError, match="invalid token bucket.*buffer 0 ticks"):
        qb.for_device(tiny, 1500)
    with pytest.raises(ValueError, match="minburst 2000 B"):
        qb.for_device(qb.TokenBucket(1000, 10, 10, 0, 2000), 1500)
    with pytest.raises(ValueError):
        qb.for_device(qb.TokenBucket(0, 10, 10), 1500)


# --------------------------------------------------------------------------------------
# The kernel's read-back.

def test_read_back_of_a_bucket():
    bucket = qb.for_device(qb.tbf_values(10_000_000, 300_000_000, 100_000_000, 0, TICK), 1500)
    # tc's "peakrate 100mbit minburst 1514" read back as 1892 ticks: 1514 B at 12.5e6 B/s
    # is 121_120 ns, and 121_120 >> 6 = 1892.
    reading = qb.TbfReading(0x10000, 1_250_000, 468_750_000, 312_500, 12_500_000, 1892)
    assert qb.tbf_matches(bucket, reading)
    for field, value in (("mtu", 1891), ("limit", 312_501), ("rate", 1_250_001), ("peakrate", 0), ("buffer", 1)):
        assert not qb.tbf_matches(bucket, dataclasses.replace(reading, **{field: value})), field
    # Older kernels keep the buffer in 32 bits of nanoseconds: 468.75e6 ticks come back as
    # (2^32 - 1) >> 6 = 67_108_863.
    assert qb.tbf_matches(bucket, qb.TbfReading(0x10000, 1_250_000, 67_108_863, 312_500, 12_500_000, 1892))
    # Without a peakrate the peak bucket reads back as nothing.
    plain = qb.TokenBucket(1000, 156_250, 156_275)
    assert qb.tbf_matches(plain, qb.TbfReading(0x10000, 1000, 156_250, 156_275, 0, 0))
    # A 64-bit peakrate (2^34 B/s) and 100_000 B: 5_820 ns, 90 ticks (seen on this kernel).
    big = qb.TokenBucket(2**33, 1000, 300_000, 2**34, 100_000)
    assert qb.tbf_matches(big, qb.TbfReading(0x10000, 2**33, 1000, 300_000, 2**34, 90))


# --------------------------------------------------------------------------------------
# Desired state.

def endpoint(name=W, **qos) -> t.WorkloadEndpoint:
    return t.WorkloadEndpoint(name=name, qos_controls=t.QoSControls(**qos) if qos else None)


def test_desired_buckets_per_interface():
    other = t.WorkloadEndpointID("k8s", "ns1/pod2", "eth0")
    plain = t.WorkloadEndpointID("k8s", "ns1/pod3", "eth0")
    rates = t.WorkloadEndpointID("k8s", "ns1/pod4", "eth0")
    targets = qb.desired_bandwidth({
        WID: endpoint(ingress_bandwidth=10_000_000, ingress_burst=300_000_000, ingress_peakrate=100_000_000),
        other: endpoint("cali2", egress_bandwidth=8000, egress_burst=80),
        plain: endpoint("cali3"),
        rates: endpoint("cali4", ingress_packet_rate=100, ingress_packet_burst=5),
    }, TICK)
    assert targets.limits == {
        W: qb.InterfaceBandwidth(WID, qb.TokenBucket(1_250_000, 468_750_000, 312_500, 12_500_000, 0), None),
        "cali2": qb.InterfaceBandwidth(other, None, qb.TokenBucket(1000, 156_250, 156_275)),
    }
    assert targets.endpoints == {W: WID, "cali2": other, "cali3": plain, "cali4": rates}
    assert qb.endpoint_text(WID) == "k8s/ns1/pod1/eth0" and qb.endpoint_text(None) == "no endpoint"


# --------------------------------------------------------------------------------------
# The plan.

def link(name, index, kind="veth", up=True, mtu=1500) -> qb.LinkInfo:
    return qb.LinkInfo(name, index, kind, up, up, mtu)


ING = qb.tbf_values(10_000_000, 300_000_000, 100_000_000, 0, TICK)
EGR = qb.tbf_values(8000, 80, 0, 0, TICK)
ING_DEV = qb.for_device(ING, 1500)
ING_READ = qb.TbfReading(0x10000, 1_250_000, 468_750_000, 312_500, 12_500_000, 1892)
EGR_READ = qb.TbfReading(0x10000, 1000, 156_250, 156_275, 0, 0)
OURS = qb.U32Filter(qb.REDIRECT_INFO, (7,), True)


def targets_for(ingress=ING, egress=EGR, name=W) -> qb.BandwidthTargets:
    return qb.BandwidthTargets({name: qb.InterfaceBandwidth(WID, ingress, egress)}, {name: WID})


def run_plan(targets, links, tc=None, up=None):
    view = qb.KernelView({li.name: li for li in links}, tc or {})
    oper = {li.name: li.oper_up for li in links} if up is None else up
    return qb.plan(targets, view, oper, ("cali",))


def test_plan_from_nothing():
    groups, problems = run_plan(targets_for(), [link(W, 3)])
    assert problems == {}
    assert groups == [
        [qb.ReplaceTbf(W, WID, W, ING_DEV)],
        [qb.CreateIfb(W, WID, IFB, 1500), qb.AddIngressQdisc(W, WID), qb.AddRedirect(W, WID, IFB),
         qb.ReplaceTbf(W, WID, IFB, EGR)],
    ]


def test_plan_with_everything_in_place_is_empty():
    tc = {W: qb.DeviceTc(ING_READ, True, (OURS,)), IFB: qb.DeviceTc(EGR_READ)}
    assert run_plan(targets_for(), [link(W, 3), link(IFB, 7, "ifb")], tc) == ([], {})


def test_plan_changes_only_what_differs():
    other_limit = qb.TbfReading(0x10000, 1_250_000, 468_750_000, 312_499, 12_500_000, 1892)
    tc = {W: qb.DeviceTc(other_limit, True, (OURS,)), IFB: qb.DeviceTc(EGR_READ)}
    groups, _ = run_plan(targets_for(), [link(W, 3), link(IFB, 7, "ifb", up=False, mtu=1400)], tc)
    assert groups == [[qb.ReplaceTbf(W, WID, W, ING_DEV)], [qb.ConfigureIfb(W, WID, IFB, 1500)]]


def test_plan_waits_for_an_interface_to_come_up():
    groups, problems = run_plan(targets_for(), [link(W, 3, up=False)])
    assert (groups, problems) == ([], {})
    # The monitor's picture says down although the link reads up: it waits too.
    assert run_plan(targets_for(), [link(W, 3)], up={W: False}) == ([], {})


def test_plan_removes_limits_that_went_away():
    tc = {W: qb.DeviceTc(ING_READ, True, (OURS,)), IFB: qb.DeviceTc(EGR_READ)}
    links = [link(W, 3), link(IFB, 7, "ifb")]
    no_limits = qb.BandwidthTargets({}, {W: WID})
    expected = [[qb.DeleteTbf(W, WID, W, 0x10000)], [qb.DeleteIngressQdisc(W, WID), qb.DeleteLink(W, WID, IFB)]]
    assert run_plan(no_limits, links, tc) == (expected, {})
    # Removal does not wait for the interface to be up.
    assert run_plan(no_limits, links, tc, up={}) == (expected, {})
    # The endpoint gone as well, its interface left: the same, naming no endpoint.
    groups, _ = run_plan(qb.BandwidthTargets(), links, tc)
    assert groups == [[qb.DeleteTbf(W, None, W, 0x10000)],
                      [qb.DeleteIngressQdisc(W, None), qb.DeleteLink(W, None, IFB)]]
    # The interface gone too: its device is a leftover.
    assert run_plan(qb.BandwidthTargets(), [link(IFB, 7, "ifb")]) == ([[qb.DeleteLink(IFB, None, IFB)]], {})


def test_plan_leaves_what_is_not_felixs():
    tbf = qb.DeviceTc(EGR_READ, True, (qb.U32Filter(qb.REDIRECT_INFO, (9,), True),))
    links = [link("eth0", 2), link("bwp0123456789ab", 9, "ifb"), link("bwcaliveth", 10, "veth"), link("cali9", 4)]
    # eth0 is no workload interface; cali9's filter redirects to a CNI plugin device, which
    # Felix only replaces when it limits cali9's egress; a veth named bwcali... is no IFB.
    groups, _ = run_plan(qb.BandwidthTargets(), links, {"eth0": tbf, "cali9": qb.DeviceTc(None, True, tbf.filters)})
    assert groups == []


def test_plan_takes_over_from_the_cni_bandwidth_plugin():
    """Felix's egress set-up removes every u32 filter on the ingress qdisc, and the
    ``bwp`` (and older ``bwcali``) devices they redirect to; other filter kinds stay."""
    cni = qb.U32Filter(qb.REDIRECT_INFO, (9,), True)
    old = qb.U32Filter((2 << 16) | 0x0300, (10,), True)
    tc = {W: qb.DeviceTc(None, True, (cni, old))}
    links = [link(W, 3), link("bwp0123456789ab", 9, "ifb"), link("bwcaliold012345", 10, "ifb")]
    groups, _ = run_plan(targets_for(ingress=None), links, tc)
    assert groups == [[
        qb.CreateIfb(W, WID, IFB, 1500),
        qb.DeleteFilter(W, WID, qb.REDIRECT_INFO), qb.DeleteLink(W, WID, "bwp0123456789ab"),
        qb.DeleteFilter(W, WID, (2 << 16) | 0x0300), qb.DeleteLink(W, WID, "bwcaliold012345"),
        qb.AddRedirect(W, WID, IFB), qb.ReplaceTbf(W, WID, IFB, EGR)]]
    # With Felix's own redirect in place, a stray filter still goes (and nothing else).
    stray = qb.U32Filter((5 << 16) | 0x0800, (), False)
    tc = {W: qb.DeviceTc(None, True, (OURS, stray)), IFB: qb.DeviceTc(EGR_READ)}
    groups, _ = run_plan(targets_for(ingress=None), [link(W, 3), link(IFB, 7, "ifb")], tc)
    assert groups == [[qb.DeleteFilter(W, WID, (5 << 16) | 0x0800)]]
    # A redirect of the wrong shape, or to another device, is replaced.
    for bad in (qb.U32Filter(qb.REDIRECT_INFO, (7,), False), qb.U32Filter(qb.REDIRECT_INFO, (8,), True)):
        tc = {W: qb.DeviceTc(None, True, (bad,)), IFB: qb.DeviceTc(EGR_READ)}
        groups, _ = run_plan(targets_for(ingress=None), [link(W, 3), link(IFB, 7, "ifb")], tc)
        assert groups == [[qb.DeleteFilter(W, WID, qb.REDIRECT_INFO), qb.AddRedirect(W, WID, IFB)]]


def test_plan_keeps_the_device_of_an_endpoint_whose_interface_is_missing():
    links = [link(IFB, 7, "ifb"), link("bwcali000000000", 8, "ifb")]
    groups, _ = run_plan(targets_for(), links, {IFB: qb.DeviceTc(EGR_READ)})
    assert groups == [[qb.DeleteLink("bwcali000000000", None, "bwcali000000000")]]


def test_plan_reports_buckets_the_kernel_cannot_use_and_changes_nothing_for_them():
    tiny = qb.tbf_values(10**15, 1000, 0, 0, TICK)
    groups, problems = run_plan(targets_for(ingress=tiny, egress=tiny), [link(W, 3)],
                                {W: qb.DeviceTc(EGR_READ)})
    assert groups == []
    assert list(problems) == [W]
    assert problems[W].startswith("ingress: invalid token bucket") and "; egress: invalid" in problems[W]


# --------------------------------------------------------------------------------------
# The dry run's text.

FILTER = (f"filter u32 dev {W} parent ffff: protocol all prio 1 match all classid 1:1 "
          f"action mirred egress redirect dev {IFB} stolen")


def render(mtus=None, **qos):
    return qb.render_bandwidth(qb.desired_bandwidth({WID: endpoint(**qos)}, TICK), {W: 1500} if mtus is None else mtus)


def test_render_ingress_only():
    # 10 Mbit/s: 1.25e6 B/s; a 300 Mbit burst (37.5e6 B) takes 30 s = 468.75e6 ticks;
    # limit 1.25e6 * 0.025 + 468.75e6 = 468_781_250.
    assert render(ingress_bandwidth=10_000_000, ingress_burst=300_000_000) == ([
        f"qdisc tbf 1: dev {W} root rate 1250000 B/s buffer 468750000 ticks limit 468781250 B",
    ], [])


def test_render_egress_only():
    # 8000 bit/s: 1000 B/s; an 80 bit burst (10 B) takes 10 ms = 156_250 ticks; limit 25 + 156_250.
    assert render(egress_bandwidth=8000, egress_burst=80) == ([
        f"link {IFB} type ifb mtu 1500 up",
        f"qdisc ingress ffff: dev {W} parent ffff:fff1",
        FILTER,
        f"qdisc tbf 1: dev {IFB} root rate 1000 B/s buffer 156250 ticks limit 156275 B",
    ], [])


def test_render_both_directions_with_peakrates_and_minbursts():
    # Ingress: the fv settings (10 Mbit/s, 300 Mbit burst, 100 Mbit/s peakrate): the limit is
    # the peakrate's, 12.5e6 * 0.025 = 312_500; no minburst, so the MTU 1450 + 14.
    # Egress: the same with a 3000 B minburst: 240 us at the peakrate = 3750 ticks, limit
    # 312_500 + 3750; the minburst is above 1450 + 14 and stays.
    text, problems = render({W: 1450}, ingress_bandwidth=10_000_000, ingress_burst=300_000_000,
                            ingress_peakrate=100_000_000, egress_bandwidth=10_000_000, egress_burst=300_000_000,
                            egress_peakrate=100_000_000, egress_minburst=3000)
    assert problems == []
    assert text == [
        f"qdisc tbf 1: dev {W} root rate 1250000 B/s buffer 468750000 ticks limit 312500 B "
        "peakrate 12500000 B/s minburst 1464 B",
        f"link {IFB} type ifb mtu 1450 up",
        f"qdisc ingress ffff: dev {W} parent ffff:fff1",
        FILTER,
        f"qdisc tbf 1: dev {IFB} root rate 1250000 B/s buffer 468750000 ticks limit 316250 B "
        "peakrate 12500000 B/s minburst 3000 B",
    ]


def test_render_nothing_without_bandwidth_limits():
    assert render() == ([], [])
    assert render(ingress_packet_rate=100, ingress_packet_burst=5, egress_max_connections=10) == ([], [])
    assert qb.render_bandwidth(qb.BandwidthTargets(), {}) == ([], [])


def test_render_an_interface_that_is_not_here_names_its_mtu():
    text, _ = render({}, egress_bandwidth=10_000_000, egress_burst=300_000_000, egress_peakrate=100_000_000)
    assert text[0] == f"link {IFB} type ifb mtu of {W} up"
    assert text[3] == (f"qdisc tbf 1: dev {IFB} root rate 1250000 B/s buffer 468750000 ticks limit 312500 B "
                       f"peakrate 12500000 B/s minburst 0 B (at least the MTU of {W} + 14)")


def test_render_orders_interfaces_by_name_and_reports_unusable_buckets():
    tiny = qb.tbf_values(10**15, 1000, 0, 0, TICK)
    targets = qb.BandwidthTargets({
        "cali2": qb.InterfaceBandwidth(WID, EGR, None),
        "cali1": qb.InterfaceBandwidth(WID, tiny, EGR),
    })
    text, problems = qb.render_bandwidth(targets, {"cali1": 1500, "cali2": 1500})
    assert [line.split(" dev ")[1].split()[0] for line in text if line.startswith("qdisc tbf")] == [
        qb.ifb_device_name("cali1"), "cali2"]
    assert len(problems) == 1
    assert problems[0].startswith("interface cali1 (endpoint k8s/ns1/pod1/eth0): ingress: invalid token bucket")


# --------------------------------------------------------------------------------------
# The qdisc dump's parser.

def _attr(kind: int, value: bytes) -> bytes:
    raw = struct.pack("=HH", 4 + len(value), kind) + value
    return raw + b"\0" * (-len(raw) % 4)


def _message(msg_type: int, body: bytes) -> bytes:
    return struct.pack("=IHHII", 16 + len(body), msg_type, 2, 1, 0) + body


def test_qdisc_dump_parsing():
    parms = struct.pack("=BBHhHIBBHhHIIII", 0, 0, 0, 0, 0, 0xFFFFFFFF, 0, 0, 0, 0, 0, 12_500_000, 312_500,
                        468_750_000, 1892)
    options = _attr(1, parms) + _attr(4, struct.pack("=Q", 2**33))
    tbf = _message(36, struct.pack("=BxxxiIII", 0, 3, 0x10000, qb.TC_H_ROOT, 1)
                   + _attr(1, b"tbf\0") + _attr(2 | 0x8000, options) + _attr(7, b"\0" * 8))
    ingress = _message(36, struct.pack("=BxxxiIII", 0, 3, 0xFFFF0000, qb.TC_H_INGRESS, 1) + _attr(1, b"ingress\0"))
    done = struct.pack("=IHHII", 20, 3, 2, 1, 0) + b"\0" * 4
    found, ended = qos.parse_qdisc_messages(tbf + ingress)
    assert not ended
    assert found == [qos.Qdisc(3, 0x10000, qb.TC_H_ROOT, "tbf",
                               qb.TbfReading(0x10000, 2**33, 468_750_000, 312_500, 12_500_000, 1892)),
                     qos.Qdisc(3, 0xFFFF0000, qb.TC_H_INGRESS, "ingress")]
    assert qos.parse_qdisc_messages(done) == ([], True)
    with pytest.raises(OSError) as err:
        qos.parse_qdisc_messages(_message(2, struct.pack("=i", -errno.EPERM) + b"\0" * 16))
    assert err.value.errno == errno.EPERM
    with pytest.raises(OSError, match="truncated"):
        qos.parse_qdisc_messages(tbf[:-4])
