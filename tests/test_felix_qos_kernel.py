"""The bandwidth limits against the real kernel, in throwaway network namespaces.

The production code runs unmodified in a thread that joined the namespace; the checks
read the namespace back with iproute2's ``tc`` and ``ip`` (an independent reader), in the
forms Felix's own fv test matches (``qdisc tbf ...: dev <iface> root ... rate 10Mbit ...
peakrate 100Mbit``, ``qdisc ingress ffff: dev <iface> parent ffff:fff1``). ``tc monitor``
shows that an apply with nothing to do changes nothing. This kernel has no ``dummy``
link type: workloads are veth pairs. The last test sends real traffic through a limited
veth and measures it.
"""
from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from netns import Namespace, veth_pair
from node.felix import qos_bandwidth as qb
from node.felix import types as t
from node.felix.dataplane.interfaces import read_interfaces
from node.felix.dataplane.qos import QoSDataplane
from startup_netns import in_netns

W = "cali1234567890a"
IFB = "bwcali800c13c17"  # "bwcali" + sha512("cali1234567890a") in hex, 15 characters
W2 = "cali2b3c4d5e6f7"
WID = t.WorkloadEndpointID("k8s", "ns1/pod1", "eth0")
WID2 = t.WorkloadEndpointID("k8s", "ns1/pod2", "eth0")
FV = dict(bandwidth=10_000_000, burst=300_000_000, peakrate=100_000_000)  # felix/fv/qos_controls_test.go


def limits(ingress: dict | None = None, egress: dict | None = None) -> t.QoSControls:
    values = {}
    for side, settings in (("ingress", ingress), ("egress", egress)):
        for key, value in (settings or {}).items():
            values[f"{side}_{key}"] = value
    return t.QoSControls(**values)


def endpoints(*items) -> dict:
    """(id, interface, QoSControls or None) -> the active endpoints mapping."""
    return {wid: t.WorkloadEndpoint(name=name, qos_controls=qos) for wid, name, qos in items}


@pytest.fixture
def ns():
    with Namespace("cqos") as ns:
        yield ns


def add_workload(ns: Namespace, name: str = W, up: bool = True, mtu: int = 1400) -> None:
    peer = "wl" + name[4:12]
    ns.run("ip", "link", "add", name, "mtu", str(mtu), "type", "veth", "peer", "name", peer, "mtu", str(mtu))
    if up:
        set_up(ns, name)


def set_up(ns: Namespace, name: str = W) -> None:
    """Both ends up, and back only once the kernel calls the interface oper-up: that
    follows asynchronously, and the agent applies limits to oper-up interfaces only."""
    ns.run("ip", "link", "set", "wl" + name[4:12], "up")
    ns.run("ip", "link", "set", name, "up")
    deadline = time.monotonic() + 10
    while (link(ns, name) or {}).get("operstate") != "UP":
        assert time.monotonic() < deadline, f"{name} did not come up: {link(ns, name)}"
        time.sleep(0.02)


def apply(ns: Namespace, dp: QoSDataplane, eps: dict, *, monitor: bool = True):
    """``dp.apply`` in the namespace with a fresh interface picture (``monitor=False``:
    without one, going by the kernel's link states)."""
    return in_netns(ns, lambda: dp.apply(eps, read_interfaces() if monitor else None))


def qdiscs(ns: Namespace) -> str:
    return ns.run("tc", "qdisc", "show").stdout


def qdisc_json(ns: Namespace, dev: str) -> list[dict]:
    return json.loads(ns.run("tc", "-j", "qdisc", "show", "dev", dev).stdout)


def ingress_filters(ns: Namespace, dev: str) -> str:
    return ns.run("tc", "filter", "show", "dev", dev, "parent", "ffff:").stdout


def link(ns: Namespace, dev: str) -> dict | None:
    run = ns.run("ip", "-j", "-d", "link", "show", "dev", dev, check=False)
    return json.loads(run.stdout)[0] if run.returncode == 0 else None


def tbf_re(dev: str, rate: str, peakrate: str | None = None) -> str:
    pattern = rf"qdisc tbf \w+: dev {re.escape(dev)} root refcnt \d+ rate {re.escape(rate)} "
    if peakrate is not None:
        pattern += rf".*peakrate {re.escape(peakrate)} "
    return pattern


@contextmanager
def tc_events(ns: Namespace):
    """Everything ``tc monitor`` (qdiscs, classes, filters) and ``ip monitor link`` see."""
    procs = [ns.popen("tc", "monitor", stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True),
             ns.popen("ip", "-o", "monitor", "link", stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)]
    time.sleep(0.3)  # subscribed before anything happens
    events: list[str] = []
    try:
        yield events
        time.sleep(0.3)  # anything in flight arrives
    finally:
        for proc in procs:
            proc.terminate()
            out, _ = proc.communicate(timeout=5)
            events.extend(line for line in out.splitlines() if line.strip())


# --------------------------------------------------------------------------------------

def test_limits_applied_changed_and_removed(ns):
    add_workload(ns)
    dp = QoSDataplane()
    eps = endpoints((WID, W, limits(FV, FV)))
    result = apply(ns, dp, eps)
    assert result.in_sync and result.changes == 5

    # Traffic to the workload: a TBF at the interface's root, Felix's numbers.
    text = qdiscs(ns)
    assert re.search(tbf_re(W, "10Mbit", "100Mbit"), text), text
    [tbf] = [q for q in qdisc_json(ns, W) if q["kind"] == "tbf"]
    assert tbf["handle"] == "1:" and tbf["root"] and tbf["options"]["rate"] == 1_250_000
    assert tbf["options"]["burst"] == 37_500_000  # the 300 Mbit burst, from the buffer's ticks
    assert tbf["options"]["minburst"] in (1412, 1414)  # the MTU (1400) + 14, as tc rounds it back
    # Traffic from it: ingress qdisc, a match-everything redirect, and the IFB device with
    # Felix's name, the interface's MTU, up, holding the same TBF.
    assert re.search(rf"qdisc ingress ffff: dev {W} parent ffff:fff1", text), text
    assert re.search(tbf_re(IFB, "10Mbit", "100Mbit"), text), text
    filters = ingress_filters(ns, W)
    assert re.search(r"filter protocol all pref 1 u32 chain 0 fh 800::800 .*flowid 1:1", filters), filters
    assert "match 00000000/00000000 at 0" in filters
    assert f"mirred (Egress Redirect to device {IFB}) stolen" in filters
    ifb = link(ns, IFB)
    assert ifb["linkinfo"]["info_kind"] == "ifb" and ifb["mtu"] == 1400 and "UP" in ifb["flags"]

    # Change: ingress to 20 Mbit without a peakrate, egress off.
    eps = endpoints((WID, W, limits({"bandwidth": 20_000_000, "burst": 1_000_000})))
    result = apply(ns, dp, eps)
    assert result.in_sync and result.changes == 3  # the TBF; the ingress qdisc; the IFB device
    text = qdiscs(ns)
    assert re.search(tbf_re(W, "20Mbit"), text) and "peakrate" not in text, text
    assert "ingress" not in text and link(ns, IFB) is None

    # Egress alone.
    eps = endpoints((WID, W, limits(egress={"bandwidth": 5_000_000, "burst": 1_000_000})))
    result = apply(ns, dp, eps)
    assert result.in_sync and result.changes == 5  # the TBF goes; IFB, qdisc, filter, its TBF
    text = qdiscs(ns)
    assert not re.search(rf"tbf \w+: dev {W} ", text) and re.search(tbf_re(IFB, "5Mbit"), text), text

    # No limits: nothing of Felix's is left.
    result = apply(ns, dp, endpoints((WID, W, None)))
    assert result.in_sync and result.changes == 2
    text = qdiscs(ns)
    assert "tbf" not in text and "ingress" not in text and link(ns, IFB) is None, text
    assert apply(ns, dp, endpoints((WID, W, None))).changes == 0


def test_a_restart_with_unchanged_inputs_changes_nothing(ns):
    add_workload(ns)
    add_workload(ns, W2, mtu=1500)
    # W2: 64-bit rate and peakrate, and a minburst: the attributes beyond tc_tbf_qopt.
    big = {"bandwidth": 10**12, "burst": 0xFFFFFFFF * 8, "peakrate": 101 * 10**13, "minburst": 10**8}
    eps = endpoints((WID, W, limits(FV, FV)), (WID2, W2, limits(big, big)))
    first = QoSDataplane()
    assert apply(ns, first, eps).changes == 10
    text = qdiscs(ns)
    assert re.search(tbf_re(W2, "1Tbit", "1010Tbit"), text), text
    assert re.search(tbf_re(qb.ifb_device_name(W2), "1Tbit", "1010Tbit"), text), text
    before = (text, ingress_filters(ns, W), ingress_filters(ns, W2), link(ns, IFB)["ifindex"])

    with tc_events(ns) as events:
        again = apply(ns, QoSDataplane(), eps)  # a new agent: reads the kernel, finds it right
        also = apply(ns, QoSDataplane(), eps, monitor=False)
        repeat = apply(ns, first, eps)  # the same agent: the IFB devices are new, it reads again
        reads = (first.stats.reads, first.stats.filter_reads)
        quiet = apply(ns, first, eps)  # nothing changed since: no netlink request at all
    assert (again.changes, also.changes, repeat.changes, quiet.changes) == (0, 0, 0, 0) and again.in_sync
    assert events == []
    # The second read dumps the filters of the two interfaces it changed; the third none.
    assert reads == (2, 2) and (first.stats.reads, first.stats.filter_reads) == (2, 2)
    assert (qdiscs(ns), ingress_filters(ns, W), ingress_filters(ns, W2), link(ns, IFB)["ifindex"]) == before


def test_drift_is_repaired_at_the_refresh_interval(ns):
    add_workload(ns)
    now = [1000.0]
    dp = QoSDataplane(refresh_interval=90.0, clock=lambda: now[0])
    eps = endpoints((WID, W, limits(FV, FV)))
    picture = in_netns(ns, read_interfaces)
    assert in_netns(ns, lambda: dp.apply(eps, picture)).changes == 5
    picture = in_netns(ns, read_interfaces)  # with the IFB device
    assert in_netns(ns, lambda: dp.apply(eps, picture)).changes == 0
    ns.run("tc", "qdisc", "del", "dev", W, "root")
    ns.run("tc", "qdisc", "del", "dev", IFB, "root")
    now[0] += 30
    assert in_netns(ns, lambda: dp.apply(eps, picture)).changes == 0  # not read: nothing changed
    assert "tbf" not in qdiscs(ns)
    now[0] += 60
    assert in_netns(ns, lambda: dp.apply(eps, picture)).changes == 2  # read again, both TBFs back
    text = qdiscs(ns)
    assert re.search(tbf_re(W, "10Mbit", "100Mbit"), text) and re.search(tbf_re(IFB, "10Mbit", "100Mbit"), text)


def test_limits_wait_for_the_interface_to_come_up(ns):
    add_workload(ns, up=False)
    dp = QoSDataplane()
    eps = endpoints((WID, W, limits(FV, FV)))
    result = apply(ns, dp, eps)
    assert result.in_sync and result.changes == 0
    assert "tbf" not in qdiscs(ns) and link(ns, IFB) is None
    set_up(ns)
    result = apply(ns, dp, eps)  # the new picture says it is up
    assert result.changes == 5 and re.search(tbf_re(W, "10Mbit", "100Mbit"), qdiscs(ns))


def test_the_endpoint_and_its_interface_gone_leave_no_device(ns):
    add_workload(ns)
    dp = QoSDataplane()
    assert apply(ns, dp, endpoints((WID, W, limits(egress=FV)))).changes == 4
    assert link(ns, IFB) is not None
    ns.run("ip", "link", "del", W)
    result = apply(ns, dp, {})
    assert result.in_sync and result.changes == 1 and link(ns, IFB) is None
    # A leftover of an earlier run is found the same way.
    ns.run("ip", "link", "add", "bwcali0123456ab", "type", "ifb")
    assert apply(ns, QoSDataplane(), {}).changes == 1 and link(ns, "bwcali0123456ab") is None


def test_an_interface_without_an_active_endpoint_loses_felixs_limits(ns):
    add_workload(ns)
    dp = QoSDataplane()
    apply(ns, dp, endpoints((WID, W, limits(FV, FV))))
    result = apply(ns, QoSDataplane(), {})  # e.g. the endpoint was deleted while the agent was down
    assert result.in_sync and result.changes == 3
    assert "tbf" not in qdiscs(ns) and "ingress" not in qdiscs(ns) and link(ns, IFB) is None


def test_felix_takes_over_from_the_cni_bandwidth_plugin(ns):
    """The CNI bandwidth plugin's set-up (a TBF at the root, an ingress qdisc redirecting
    to its ``bwp`` device): Felix's egress set-up replaces the redirect and deletes the
    device; the root TBF goes when the endpoint has no ingress limit."""
    add_workload(ns)
    bwp = "bwpa8eda89404b7"
    ns.run("ip", "link", "add", bwp, "type", "ifb")
    ns.run("ip", "link", "set", bwp, "up")
    ns.run("tc", "qdisc", "add", "dev", W, "root", "tbf", "rate", "1mbit", "burst", "10kb", "latency", "25ms")
    ns.run("tc", "qdisc", "add", "dev", W, "ingress")
    ns.run("tc", "filter", "add", "dev", W, "parent", "ffff:", "protocol", "all", "prio", "1", "u32", "match", "u32",
           "0", "0", "flowid", "1:1", "action", "mirred", "egress", "redirect", "dev", bwp)
    result = apply(ns, QoSDataplane(), endpoints((WID, W, limits(egress=FV))))
    assert result.in_sync
    filters = ingress_filters(ns, W)
    assert f"Redirect to device {IFB}" in filters and bwp not in filters, filters
    assert filters.count("mirred") == 1
    assert link(ns, bwp) is None
    assert not re.search(rf"tbf \w+: dev {W} ", qdiscs(ns))


def test_a_root_qdisc_of_another_handle_is_replaced(ns):
    # felix/fv/qos_controls_test.go: "a non-default qdisc exists (handle != 0)".
    add_workload(ns)
    ns.run("tc", "qdisc", "replace", "dev", W, "root", "handle", "8001:", "noqueue")
    assert re.search(rf"qdisc noqueue 8001: dev {W} root", qdiscs(ns))
    result = apply(ns, QoSDataplane(), endpoints((WID, W, limits(FV))))
    assert result.in_sync and re.search(tbf_re(W, "10Mbit", "100Mbit"), qdiscs(ns))


def test_a_failing_interface_is_logged_and_retried_without_stopping_the_others(ns, caplog):
    """The kernel refuses a peakrate at or below the rate (the conversion never lets one
    through; here the target is made by hand): that interface fails, with its name and
    endpoint in the message, and the other is limited."""
    add_workload(ns)
    add_workload(ns, W2)
    bad = qb.TokenBucket(1_250_000, 100_000, 200_000, 1_000_000, 0)  # peakrate below the rate
    good = qb.tbf_values(10_000_000, 300_000_000)
    targets = qb.BandwidthTargets({W: qb.InterfaceBandwidth(WID, bad, bad), W2: qb.InterfaceBandwidth(WID2, good)},
                                  {W: WID, W2: WID2})
    dp = QoSDataplane()
    caplog.set_level(logging.DEBUG, logger="node.felix.dataplane.qos")

    def run():
        return in_netns(ns, lambda: dp.apply_targets(targets, read_interfaces()))
    result = run()
    assert not result.in_sync and len(result.failures) == 2
    assert all(f.startswith(f"interface {W} (endpoint k8s/ns1/pod1/eth0): cannot set the token bucket on ")
               for f in result.failures)
    assert any(IFB in f for f in result.failures)
    assert re.search(tbf_re(W2, "10Mbit"), qdiscs(ns))
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2 and "k8s/ns1/pod1/eth0" in warnings[0].getMessage()
    # Retried at the next apply (the picture is read again after a failure); the
    # repeated failure is logged at debug level only.
    caplog.clear()
    again = run()
    assert again.failures == result.failures and dp.stats.reads == 2
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]


def test_the_dry_run_prints_what_the_dataplane_programs(ns):
    """The golden "two-tiers" scenario's local workload, its veth here with an MTU of 1450:
    ``felix --dry-run --qos`` run in the namespace prints the golden text, and the agent's
    QoS dataplane, given the endpoints the agent gives it, programs exactly that (read
    back with ``tc -raw``: the buffer is the burst's raw ticks)."""
    from node.datastore.syncer import SyncStatus
    from node.felix.calc.offline import updates_from_resources
    from node.felix.dryrun import dry_run, load_files
    from node.felix.pipeline import Pipeline

    golden = Path(__file__).parent / "felix_golden" / "two-tiers"
    web = "calia1b2c3d4e5f"
    add_workload(ns, web, mtu=1450)
    text = in_netns(ns, lambda: dry_run("node1", {}, files=[str(golden / "resources.yaml")], what="qos"))
    assert text == (golden / "qos.txt").read_text()

    pipeline = Pipeline("node1", {})
    pipeline.on_updates(updates_from_resources(load_files([str(golden / "resources.yaml")])[0]))
    pipeline.on_status(SyncStatus.IN_SYNC)
    pipeline.complete()
    pipeline.set_interfaces({web: []})
    active = pipeline.dataplanes[4].active_workload_endpoints()
    assert apply(ns, QoSDataplane(), active).changes == 5
    assert apply(ns, QoSDataplane(), active).changes == 0  # a fresh read finds the peak buckets right too
    kernel = {(q["dev"], q["kind"]): q for q in json.loads(ns.run("tc", "-j", "-raw", "qdisc", "show").stdout)}
    filters = json.loads(ns.run("tc", "-j", "filter", "show", "dev", web, "parent", "ffff:").stdout)
    for line in text.splitlines():
        words = line.split()
        if words[:2] == ["qdisc", "tbf"]:
            opts = kernel[(words[4], "tbf")]["options"]
            value = {words[i]: int(words[i + 1]) for i in range(5, len(words) - 1) if words[i + 1].isdigit()}
            assert (opts["rate"], int(opts["burst_raw"], 16), opts["limit"]) == (
                value["rate"], value["buffer"], value["limit"]), line
            assert ("minburst" in opts) == ("peakrate" in words), line
        elif words[0] == "link":
            dev = link(ns, words[1])
            assert dev["linkinfo"]["info_kind"] == "ifb" and dev["mtu"] == int(words[5]) and "UP" in dev["flags"]
        elif words[:2] == ["qdisc", "ingress"]:
            assert kernel[(words[4], "ingress")]["parent"] == words[6]
        else:
            assert words[:2] == ["filter", "u32"], line
            [rule] = [f for f in filters if "actions" in f.get("options", {})]
            assert rule["pref"] == 1 and rule["options"]["flowid"] == "1:1"
            assert rule["options"]["actions"][0]["to_dev"] == words[-2]


# --------------------------------------------------------------------------------------
# Traffic.

RECEIVER = r"""
import socket, sys, time
window = float(sys.argv[1])
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("0.0.0.0", 5201)); srv.listen(1)
print("ready", flush=True)
conn, _ = srv.accept()
conn.settimeout(5)
got = conn.recv(1 << 16)
total, start = len(got), time.monotonic()
while time.monotonic() - start < window:
    got = conn.recv(1 << 16)
    if not got:
        break
    total += len(got)
print(total / (time.monotonic() - start), flush=True)
"""

SENDER = r"""
import socket, sys, time
sock = socket.create_connection((sys.argv[1], 5201), timeout=5)
chunk = bytes(1 << 16)
deadline = time.monotonic() + float(sys.argv[2])
try:
    while time.monotonic() < deadline:
        sock.sendall(chunk)
except OSError:
    pass
"""


def throughput(receiver_ns: Namespace, sender_ns: Namespace, address: str, window: float) -> float:
    """Bytes per second the receiver saw over ``window`` seconds of one TCP stream."""
    receiver = receiver_ns.popen(sys.executable, "-c", RECEIVER, str(window), stdout=subprocess.PIPE, text=True)
    try:
        assert receiver.stdout.readline().strip() == "ready"
        sender = sender_ns.popen(sys.executable, "-c", SENDER, address, str(window + 2))
        try:
            out, _ = receiver.communicate(timeout=window + 10)
        finally:
            sender.kill()
            sender.wait()
    finally:
        if receiver.poll() is None:
            receiver.kill()
            receiver.wait()
    return float(out.strip())


def test_the_limits_bite_on_real_traffic(ns):
    """8 Mbit/s (1 MB/s) each way with a 10 KB burst: a TCP stream through the limited
    veth runs near 1 MB/s, where the same veth carries far more unlimited."""
    with Namespace("cqpod") as pod:
        veth_pair(ns, W, pod, "eth0")
        ns.run("ip", "addr", "add", "10.99.0.1/24", "dev", W)
        pod.run("ip", "addr", "add", "10.99.0.2/24", "dev", "eth0")
        baseline = throughput(pod, ns, "10.99.0.2", 0.4)
        setting = {"bandwidth": 8_000_000, "burst": 80_000}
        assert apply(ns, QoSDataplane(), endpoints((WID, W, limits(setting, setting)))).in_sync
        to_pod = throughput(pod, ns, "10.99.0.2", 1.0)  # the workload's ingress: the veth's TBF
        from_pod = throughput(ns, pod, "10.99.0.1", 1.0)  # its egress: redirected to the IFB's TBF
    assert 0.5e6 < to_pod < 1.3e6, (baseline, to_pod)
    assert 0.5e6 < from_pod < 1.3e6, (baseline, from_pod)
    assert baseline > 20 * max(to_pod, from_pod)
