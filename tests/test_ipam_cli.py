"""``calicoctl ipam show|release|check`` against a real etcd, output compared line by line."""
from __future__ import annotations

import json

import pytest

from ipam_fixtures import make_node, make_pool
from node.cli.calicoctl import main
from node.ipam.allocator import IPAM
from node.errors import NotFound
from node.model import from_dict

pytestmark = pytest.mark.etcd


@pytest.fixture
def ipam(etcd_kv, etcd_clean_config, monkeypatch):
    monkeypatch.setenv("ETCD_ENDPOINTS", etcd_clean_config.etcd_endpoints[0])
    monkeypatch.delenv("DATASTORE_TYPE", raising=False)
    return IPAM(etcd_kv)


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def populated(ipam):
    make_pool(ipam.client, "p1", "10.80.0.0/24", blockSize=28)
    make_pool(ipam.client, "p2", "fd00:80::/120", blockSize=124)
    make_node(ipam.client, "n1")
    make_node(ipam.client, "n2")
    ipam.auto_assign(num4=3, num6=2, handle_id="k8s-pod-network.a", host="n1",
                     attrs={"namespace": "default", "node": "n1", "pod": "a"})
    return ipam


def test_show_pools_and_blocks(populated, capsys):
    code, out, _ = run(capsys, "ipam", "show")
    assert code == 0
    assert out == (
        "+----------+---------------+-----------+------------+--------------+-----------+\n"
        "| GROUPING | CIDR          | IPS TOTAL | IPS IN USE | IPS RESERVED | IPS FREE  |\n"
        "+----------+---------------+-----------+------------+--------------+-----------+\n"
        "| IP Pool  | 10.80.0.0/24  |       256 |     3 (1%) |       0 (0%) | 253 (99%) |\n"
        "| IP Pool  | fd00:80::/120 |       256 |     2 (1%) |       0 (0%) | 254 (99%) |\n"
        "+----------+---------------+-----------+------------+--------------+-----------+\n")
    block4 = populated.store.list_affinities("n1", 4)[0].cidr
    block6 = populated.store.list_affinities("n1", 6)[0].cidr
    code, out, _ = run(capsys, "ipam", "show", "--show-blocks")
    lines = out.splitlines()
    w = max(len("fd00:80::/120"), len(str(block4)), len(str(block6)))
    assert lines[3] == f"| IP Pool  | {'10.80.0.0/24':<{w}} |       256 |     3 (1%) |       0 (0%) | 253 (99%) |"
    assert lines[4] == f"| Block    | {str(block4):<{w}} |        16 |    3 (19%) |       0 (0%) |  13 (81%) |"
    assert lines[5] == f"| IP Pool  | {'fd00:80::/120':<{w}} |       256 |     2 (1%) |       0 (0%) | 254 (99%) |"
    assert lines[6] == f"| Block    | {str(block6):<{w}} |        16 |    2 (12%) |       0 (0%) |  14 (88%) |"
    assert len(lines) == 8


def test_show_counts_reservations(populated, capsys):
    populated.kv.put("/calico/resources/v3/projectcalico.org/ipreservations/r",
                     '{"kind":"IPReservation","apiVersion":"projectcalico.org/v3","metadata":{"name":"r"},'
                     '"spec":{"reservedCIDRs":["10.80.0.128/25"]}}')
    _, out, _ = run(capsys, "ipam", "show")
    assert out.splitlines()[3] == "| IP Pool  | 10.80.0.0/24  |       256 |     3 (1%) |    128 (50%) | 125 (49%) |"


def test_show_ip(populated, capsys):
    ip = populated.ips_by_handle("k8s-pod-network.a")[0]
    code, out, _ = run(capsys, "ipam", "show", "--ip", ip)
    assert code == 0
    assert out == (f"IP {ip} is in use\nHandle ID: k8s-pod-network.a\nActive Owner Attributes:\n"
                   "  namespace: default\n  node: n1\n  pod: a\n")
    _, out, _ = run(capsys, "ipam", "show", "--ip", "10.80.0.250")
    assert out == "10.80.0.250 is not assigned\n"
    with pytest.raises(SystemExit) as exc:
        run(capsys, "ipam", "show", "--ip", "10.80.0.999")
    assert exc.value.code == 1
    assert capsys.readouterr().out == "Error executing command: invalid IP address specified: 10.80.0.999\n"


def test_show_borrowed(populated, capsys):
    block = populated.store.list_affinities("n1", 4)[0].cidr
    target = str(block.network_address + 9)
    populated.assign_ip(target, handle_id="k8s-pod-network.b", host="n2",
                        attrs={"namespace": "ns", "node": "n2", "pod": "b"})
    populated.assign_ip(str(block.network_address + 10), host="n2")  # no node attribute
    _, out, _ = run(capsys, "ipam", "show", "--show-borrowed")
    width = len(str(block))
    assert out.splitlines()[3] == f"| {target:<10} | n2             | {str(block):<{width}} | n1          | pod  | ns/b         |"
    assert out.endswith("\nNote: found 1 IP allocations without an explicit node association. "
                        "Unable to determine if they are borrowed.\n")


def test_release(populated, capsys, etcd_kv):
    ip = populated.ips_by_handle("k8s-pod-network.a")[1]
    code, out, _ = run(capsys, "ipam", "release", "--ip", ip)
    assert (code, out) == (0, f"Successfully released IP address {ip}\n")
    code, out, err = run(capsys, "ipam", "release", "--ip", ip)
    assert (code, out, err) == (1, "", f"IP address {ip} is not assigned\n")
    counts = json.loads(etcd_kv.get("/calico/ipam/v2/handle/k8s-pod-network.a").value)["block"]
    assert sum(counts.values()) == 4


def test_check_clean_and_with_problems(populated, capsys, tmp_path):
    ips = populated.ips_by_handle("k8s-pod-network.a")
    populated.client.create(from_dict({
        "apiVersion": "projectcalico.org/v3", "kind": "WorkloadEndpoint",
        "metadata": {"name": "n1-k8s-a-eth0", "namespace": "default"},
        "spec": {"orchestrator": "k8s", "node": "n1", "pod": "a", "endpoint": "eth0",
                 "ipNetworks": [f"{ip}/{32 if ':' not in ip else 128}" for ip in ips],
                 "interfaceName": "cali0123456789a"}}))
    code, out, _ = run(capsys, "ipam", "check")
    assert code == 0
    block4 = populated.store.list_affinities("n1", 4)[0].cidr
    block6 = populated.store.list_affinities("n1", 6)[0].cidr
    assert out == (
        "Checking IPAM for inconsistencies...\n\n"
        "Loading all IPAM blocks...\n"
        "Found 2 IPAM blocks.\n"
        f" IPAM block {block4} affinity=host:n1:\n"
        f" IPAM block {block6} affinity=host:n1:\n"
        "IPAM blocks record 5 allocations.\n\n"
        "Loading all IPAM pools...\n  10.80.0.0/24\n  fd00:80::/120\nFound 2 active IP pools.\n\n"
        "Loading all nodes.\nFound 0 node tunnel IPs.\n\n"
        "Loading all service load balancer IPs.\n"
        "No Kubernetes API in an etcd datastore, skipping service check\n\n"
        "Loading all workload endpoints.\nFound 5 workload IPs.\nWorkloads and nodes are using 5 IPs.\n\n"
        "Loading all handles\n"
        "Looking for top (up to 20) nodes by allocations...\n  n1 has 5 allocations\n"
        "Node with most allocations has 5; median is 5\n\n"
        "Scanning for IPs that are allocated but not actually in use...\n"
        "Found 0 IPs that are allocated in IPAM but not actually in use.\n"
        "Scanning for IPs that are in use by a workload or node but not allocated in IPAM...\n"
        "Found 0 in-use IPs that are not in active IP pools.\n"
        "Found 0 in-use IPs that are in active IP pools but have no corresponding IPAM allocation.\n\n"
        "Scanning for IPAM handles with no matching IPs...\n"
        "Found 0 handles with no matching IPs (and 1 handles with matches).\n"
        "Scanning for IPs with missing handle...\n"
        "Found 0 handles mentioned in blocks with no matching handle resource.\n"
        "Validating IPAMBlock structures...\n"
        "Found 0 invalid IPAMBlocks.\n"
        "Scanning for IPAM handles whose counts do not match the blocks...\n"
        "Found 0 handle counts that do not match the blocks.\n"
        "Scanning for IPAM blocks and affinities that do not match...\n"
        "Found 0 affine blocks with no matching affinity, and 0 affinities with no matching block.\n"
        "Scanning for IPAM handles and affinities that cannot be read...\n"
        "Found 0 unreadable IPAM handles and affinities.\n"
        "Check complete; found 0 problems.\n")

    # Now break things: a leaked address, a handle with a wrong count, a block whose
    # affinity record is gone, and a node whose tunnel address was never allocated.
    populated.auto_assign(num4=1, handle_id="k8s-pod-network.leak", host="n1")
    handle_key = "/calico/ipam/v2/handle/k8s-pod-network.a"
    doc = json.loads(populated.kv.get(handle_key).value)
    doc["block"][str(block4)] += 2
    populated.kv.put(handle_key, json.dumps(doc))
    populated.kv.delete(f"/calico/ipam/v2/host/n1/ipv6/block/{str(block6).replace('/', '-')}")
    node = populated.client.get("Node", "n2")
    node.spec["ipv4VXLANTunnelAddr"] = "10.80.0.200"
    populated.client.update(node)
    report = tmp_path / "report.json"
    code, out, _ = run(capsys, "ipam", "check", "--show-problem-ips", "-o", str(report))
    leak = populated.ips_by_handle("k8s-pod-network.leak")[0]
    assert code == 1  # problems found: non-zero (calicoctl itself exits 0 here)
    assert (f"Scanning for IPs that are allocated but not actually in use...\n"
            f"  {leak} leaked; attrs Main:k8s-pod-network.leak Extra:\n"
            "Found 1 IPs that are allocated in IPAM but not actually in use.\n") in out
    assert ("  10.80.0.200 in use by Node(n2) and in active IPAM pool but has no IPAM allocation.\n"
            "Found 0 in-use IPs that are not in active IP pools.\n"
            "Found 1 in-use IPs that are in active IP pools but have no corresponding IPAM allocation.\n") in out
    assert (f"  handle k8s-pod-network.a records 5 addresses in block {block4}, the block has 3.\n"
            "Found 1 handle counts that do not match the blocks.\n") in out
    assert (f"  IPAM block {block6} is affine to host:n1 but that host has no affinity for it.\n"
            "Found 1 affine blocks with no matching affinity, and 0 affinities with no matching block.\n") in out
    assert out.endswith("Check complete; found 4 problems.\n")
    data = json.loads(report.read_text())
    assert data["allocations"][leak] == [{"ip": leak, "handle": "k8s-pod-network.leak",
                                          "sequenceNumber": data["allocations"][leak][0]["sequenceNumber"],
                                          "node": "n1", "inUse": False, "owners": None}]
    assert data["allocations"][ips[0]][0]["owners"] == ["Workload(default/n1-k8s-a-eth0)"]
    assert "leakedHandles" not in data


def test_show_reports_an_ipv6_pools_real_size(ipam, capsys):
    make_pool(ipam.client, "big6", "fd00:90::/48")
    make_node(ipam.client, "n1")
    ipam.auto_assign(num6=2, handle_id="h", host="n1")
    code, out, _ = run(capsys, "ipam", "show")
    assert code == 0
    # 2**80 addresses, as calicoctl's %.5g prints it (not clamped to a 64-bit int).
    assert out.splitlines()[3] == ("| IP Pool  | fd00:90::/48 | 1.2089e+24 |     2 (0%) |       0 (0%) "
                                   "| 1.2089e+24 (100%) |")


def test_show_lists_blocks_in_address_order(ipam, capsys):
    make_pool(ipam.client, "p", "10.80.0.0/24", blockSize=26)
    make_node(ipam.client, "n1")
    for ip in ("10.80.0.130", "10.80.0.70", "10.80.0.5"):  # etcd lists ...128-26 before ...64-26
        ipam.assign_ip(ip, handle_id=f"h{ip}", host="n1")
    code, out, _ = run(capsys, "ipam", "show", "--show-blocks")
    assert code == 0
    assert [line.split("|")[2].strip() for line in out.splitlines()[4:7]] == [
        "10.80.0.0/26", "10.80.0.64/26", "10.80.0.128/26"]


def _cluster_info(ipam, guid: str, ready: bool):
    try:
        info = ipam.client.get("ClusterInformation", "default")
    except NotFound:
        return ipam.client.create(from_dict({"apiVersion": "projectcalico.org/v3", "kind": "ClusterInformation",
                                             "metadata": {"name": "default"},
                                             "spec": {"clusterGUID": guid, "datastoreReady": ready}}))
    info.spec = {**info.spec, "clusterGUID": guid, "datastoreReady": ready}
    return ipam.client.update(info)


def _workload(ipam, pod: str, ips: list[str]) -> None:
    ipam.client.create(from_dict({
        "apiVersion": "projectcalico.org/v3", "kind": "WorkloadEndpoint",
        "metadata": {"name": f"n1-k8s-{pod}-eth0", "namespace": "default"},
        "spec": {"orchestrator": "k8s", "node": "n1", "pod": pod, "endpoint": "eth0",
                 "ipNetworks": [f"{ip}/{32 if ':' not in ip else 128}" for ip in ips],
                 "interfaceName": f"cali{pod:0<11}"[:15]}}))


def test_release_from_reports(populated, capsys, tmp_path, etcd_kv):
    """calicoctl's leak clean-up: ``ipam check -o`` reports, then ``ipam release
    --from-report`` releases only what every report calls leaked, refusing reports of
    another cluster, stale reports and an unlocked datastore (unless --force)."""
    from node.ipam.store import Handle

    v4 = sorted(ip for ip in populated.ips_by_handle("k8s-pod-network.a") if ":" not in ip)
    v6 = [ip for ip in populated.ips_by_handle("k8s-pod-network.a") if ":" in ip]
    _workload(populated, "a", v6)  # the three IPv4 addresses are leaked
    populated.store.write_handle(Handle("k8s-pod-network.gone", {}))  # a handle with no addresses
    _cluster_info(populated, "guid-1", ready=True)
    r1, r2, other = tmp_path / "r1.json", tmp_path / "r2.json", tmp_path / "other.json"
    assert run(capsys, "ipam", "check", "-o", str(r1))[0] == 1

    code, out, err = run(capsys, "ipam", "release", "--from-report", str(r1))
    assert (code, out, err) == (1, "", "data store is not locked. Either lock the data store, or re-run with --force\n")
    other.write_text(json.dumps({**json.loads(r1.read_text()), "clusterGUID": "guid-2"}))
    code, out, err = run(capsys, "ipam", "release", "--from-report", str(other), "--force")
    assert (code, err) == (1, f"cluster does not match the provided report ({other}): mismatched cluster GUID. "
                              "Refusing to release\n")
    other.write_text(json.dumps({**json.loads(r1.read_text()), "version": "v0.0.1"}))
    code, out, err = run(capsys, "ipam", "release", "--from-report", str(other))
    assert (code, err) == (1, f"the provided report ({other}) was produced using a different version (v0.0.1) "
                              "of calicoctl. Refusing to release\n")

    _cluster_info(populated, "guid-1", ready=False)  # lock the datastore: r1 is now stale
    code, out, err = run(capsys, "ipam", "release", "--from-report", str(r1))
    assert (code, err) == (1, "the provided reports are all stale - at least one should be up-to-date. Please "
                              "generate a new report while the data store is locked and try again\n")

    # Between the two reports a pod took up one of the leaked addresses: only the two
    # addresses both reports call leaked are released, and the unused handle is deleted.
    _workload(populated, "b", v4[:1])
    assert run(capsys, "ipam", "check", "-o", str(r2))[0] == 1
    code, out, err = run(capsys, "ipam", "release", "--from-report", str(r1), "--from-report", str(r2))
    assert (code, err) == (0, "")
    assert out == ("Releasing 2 old IPs...\nReleased 2 IPs successfully\n"
                   "Deleting 1 handles...\nKey: '.' = Deleted OK; 'x' = skip, handle missing/changed.\n.\n"
                   "Released 1 handles; 0 skipped; 0 errors.\nYou may now unlock the data store.\n")
    assert sorted(populated.ips_by_handle("k8s-pod-network.a")) == sorted(v4[:1] + v6)
    assert etcd_kv.get("/calico/ipam/v2/handle/k8s-pod-network.gone") is None
    assert run(capsys, "ipam", "check")[0] == 0

    # Replaying the report changes nothing: as in libcalico-go, a released address no
    # longer has the report's sequence number (a conflict), and the handle is gone.
    code, out, _ = run(capsys, "ipam", "release", "--from-report", str(r2))
    assert code == 0
    assert out.startswith("Releasing 2 old IPs...\nAn error occurred while releasing some IPs: update conflict: ")
    assert out.endswith("Try regenerating the IPAM report and retry.\n"
                        "Deleting 1 handles...\nKey: '.' = Deleted OK; 'x' = skip, handle missing/changed.\n"
                        "x\nReleased 0 handles; 1 skipped; 0 errors.\nYou may now unlock the data store.\n")
    assert sorted(populated.ips_by_handle("k8s-pod-network.a")) == sorted(v4[:1] + v6)


def test_release_from_a_stale_report_spares_a_reused_address(populated, capsys, tmp_path):
    """An address the report calls leaked that a new pod has taken since is not released:
    the report's handle and sequence number no longer match."""
    v4 = sorted(ip for ip in populated.ips_by_handle("k8s-pod-network.a") if ":" not in ip)
    v6 = [ip for ip in populated.ips_by_handle("k8s-pod-network.a") if ":" in ip]
    _workload(populated, "a", v4[1:] + v6)
    _cluster_info(populated, "guid-1", ready=False)
    report = tmp_path / "r.json"
    run(capsys, "ipam", "check", "-o", str(report))
    assert [ip for ip, allocs in json.loads(report.read_text())["allocations"].items()
            if not allocs[0]["inUse"]] == v4[:1]
    populated.release_ips(v4[:1])
    populated.assign_ip(v4[0], handle_id="k8s-pod-network.new", host="n1")
    code, out, _ = run(capsys, "ipam", "release", "--from-report", str(report))
    assert code == 0
    assert out.startswith("Releasing 1 old IPs...\nAn error occurred while releasing some IPs: update conflict: "
                          f"{v4[0]} ")
    assert out.endswith("Problems are often caused by an out-of-date IPAM report.  Try regenerating the IPAM "
                        "report and retry.\nReport didn't contain any handles to clean up.\n"
                        "You may now unlock the data store.\n")
    assert populated.get_assignment_attributes(v4[0]).handle_id == "k8s-pod-network.new"


def test_configure(ipam, capsys, etcd_kv):
    """``ipam configure`` writes the library configuration libcalico-go reads; its rules
    (MaxBlocksPerHost needs StrictAffinity) and messages are calicoctl's."""
    code, out, err = run(capsys, "ipam", "configure")
    assert (code, err) == (1, "at least one configuration option must be specified\n")
    code, out, err = run(capsys, "ipam", "configure", "--strictaffinity=yes")
    assert (code, err) == (1, "invalid value. Use true or false to set strictaffinity\n")
    code, out, err = run(capsys, "ipam", "configure", "--max-blocks-per-host=3")
    assert (code, err) == (1, "error: MaxBlocksPerHost requires StrictAffinity to be enabled\n")
    assert etcd_kv.get("/calico/ipam/v2/config") is None
    code, out, err = run(capsys, "ipam", "configure", "--strictaffinity=true", "--max-blocks-per-host", "3")
    assert (code, out, err) == (0, "Successfully set StrictAffinity to: true\n"
                                   "Successfully set MaxBlocksPerHost to: 3\n", "")
    assert json.loads(etcd_kv.get("/calico/ipam/v2/config").value) == {
        "strict_affinity": True, "auto_allocate_blocks": True, "maxBlocksPerHost": 3,
        "kubeVirtVMAddressPersistence": "Enabled"}
    code, out, _ = run(capsys, "ipam", "configure", "--kubevirt-ip-persistence=Disabled")
    assert (code, out) == (0, "Successfully set KubeVirtVMAddressPersistence to: Disabled\n")
    code, out, err = run(capsys, "ipam", "configure", "--strictaffinity=F")
    assert (code, err) == (1, "error: MaxBlocksPerHost requires StrictAffinity to be enabled\n")
    code, out, _ = run(capsys, "ipam", "configure", "--strictaffinity=false", "--max-blocks-per-host=0")
    assert code == 0
    assert json.loads(etcd_kv.get("/calico/ipam/v2/config").value) == {
        "auto_allocate_blocks": True, "kubeVirtVMAddressPersistence": "Disabled"}
    assert ipam.get_config().strict_affinity is False
