"""``calicoctl ipam show|release|check`` against a real etcd, output compared line by line."""
from __future__ import annotations

import json

import pytest

from ipam_fixtures import make_node, make_pool
from node.cli.calicoctl import main
from node.ipam.allocator import IPAM
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
