"""``calicoctl ipam show|release|check`` against a real etcd, output compared line by line."""
from __future__ import annotations

import json

import pytest

from ipam_fixtures import make_node, make_pool
from node.cli.calicoctl import main
from node.ipam.allocator import IPAM
from node.errors import NotFound
from node.model import from_dict
from node.model.ipam import block_key

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


# `ipam show` as calicoctl v3.32.1 prints it (calicoctl/calicoctl/commands/ipam/show.go):
# olekukonko/tablewriter v0.0.5's default table, five columns, headings centred, numbers
# right-aligned and "N (P%)" cells left-aligned; a block's "in use" is its size less its
# free list, a pool's is the sum over its blocks, its total the whole CIDR.

@pytest.fixture
def fixed(ipam):
    """Blocks at known places: 10.80.0.16/28 (two addresses), 10.80.0.128/28 (one) and
    fd00:80::/124 (one), all affine to n1."""
    make_pool(ipam.client, "p1", "10.80.0.0/24", blockSize=28)
    make_pool(ipam.client, "p2", "fd00:80::/120", blockSize=124)
    make_node(ipam.client, "n1")
    make_node(ipam.client, "n2")
    for ip, pod in (("10.80.0.20", "a"), ("10.80.0.21", "b"), ("10.80.0.130", "c"), ("fd00:80::5", "d")):
        ipam.assign_ip(ip, handle_id=f"k8s-pod-network.{pod}", host="n1",
                       attrs={"namespace": "default", "node": "n1", "pod": pod})
    return ipam


def test_show_pools(fixed, capsys):
    code, out, err = run(capsys, "ipam", "show")
    assert (code, err) == (0, "")
    # 3/256 is 1.2%, 253/256 98.8%, 1/256 0.4%: rounded to the nearest percent.
    assert out == (
        "+----------+---------------+-----------+------------+------------+\n"
        "| GROUPING |     CIDR      | IPS TOTAL | IPS IN USE |  IPS FREE  |\n"
        "+----------+---------------+-----------+------------+------------+\n"
        "| IP Pool  | 10.80.0.0/24  |       256 | 3 (1%)     | 253 (99%)  |\n"
        "| IP Pool  | fd00:80::/120 |       256 | 1 (0%)     | 255 (100%) |\n"
        "+----------+---------------+-----------+------------+------------+\n")


def test_show_blocks_in_datastore_order(fixed, capsys):
    """Blocks follow each pool in the order the datastore lists them, by key: the block
    key 10.80.0.128-28 sorts before 10.80.0.16-28. 2/16 is 12.5% and 14/16 87.5%: Go
    rounds a half to even."""
    code, out, err = run(capsys, "ipam", "show", "--show-blocks")
    assert (code, err) == (0, "")
    assert out == (
        "+----------+----------------+-----------+------------+------------+\n"
        "| GROUPING |      CIDR      | IPS TOTAL | IPS IN USE |  IPS FREE  |\n"
        "+----------+----------------+-----------+------------+------------+\n"
        "| IP Pool  | 10.80.0.0/24   |       256 | 3 (1%)     | 253 (99%)  |\n"
        "| Block    | 10.80.0.128/28 |        16 | 1 (6%)     | 15 (94%)   |\n"
        "| Block    | 10.80.0.16/28  |        16 | 2 (12%)    | 14 (88%)   |\n"
        "| IP Pool  | fd00:80::/120  |       256 | 1 (0%)     | 255 (100%) |\n"
        "| Block    | fd00:80::/124  |        16 | 1 (6%)     | 15 (94%)   |\n"
        "+----------+----------------+-----------+------------+------------+\n")


def test_show_counts_reserved_addresses_as_free(fixed, capsys):
    """v3.32.1 has no reserved column and does not subtract IPReservations."""
    fixed.kv.put("/calico/resources/v3/projectcalico.org/ipreservations/r",
                 '{"kind":"IPReservation","apiVersion":"projectcalico.org/v3","metadata":{"name":"r"},'
                 '"spec":{"reservedCIDRs":["10.80.0.128/25"]}}')
    _, out, _ = run(capsys, "ipam", "show", "--show-blocks")
    assert out.splitlines()[3:5] == ["| IP Pool  | 10.80.0.0/24   |       256 | 3 (1%)     | 253 (99%)  |",
                                     "| Block    | 10.80.0.128/28 |        16 | 1 (6%)     | 15 (94%)   |"]


def test_show_orphaned_blocks(fixed, capsys):
    """Blocks no pool covers: IPv4 ones are listed (with --show-blocks only) under no pool
    row, after every pool; IPv6 ones are not listed at all."""
    from node.model.resource import etcd_key

    fixed.kv.delete(etcd_key("IPPool", "p1"))
    _, out, _ = run(capsys, "ipam", "show")
    assert out.splitlines()[3:] == ["| IP Pool  | fd00:80::/120 |       256 | 1 (0%)     | 255 (100%) |",
                                    "+----------+---------------+-----------+------------+------------+"]
    _, out, _ = run(capsys, "ipam", "show", "--show-blocks")
    assert out.splitlines()[3:] == [
        "| IP Pool  | fd00:80::/120  |       256 | 1 (0%)     | 255 (100%) |",
        "| Block    | fd00:80::/124  |        16 | 1 (6%)     | 15 (94%)   |",
        "| Block    | 10.80.0.128/28 |        16 | 1 (6%)     | 15 (94%)   |",
        "| Block    | 10.80.0.16/28  |        16 | 2 (12%)    | 14 (88%)   |",
        "+----------+----------------+-----------+------------+------------+"]
    fixed.kv.delete(etcd_key("IPPool", "p2"))
    _, out, _ = run(capsys, "ipam", "show", "--show-blocks")
    assert out == (
        "+----------+----------------+-----------+------------+----------+\n"
        "| GROUPING |      CIDR      | IPS TOTAL | IPS IN USE | IPS FREE |\n"
        "+----------+----------------+-----------+------------+----------+\n"
        "| Block    | 10.80.0.128/28 |        16 | 1 (6%)     | 15 (94%) |\n"
        "| Block    | 10.80.0.16/28  |        16 | 2 (12%)    | 14 (88%) |\n"
        "+----------+----------------+-----------+------------+----------+\n")
    for cidr in ("10.80.0.128/28", "10.80.0.16/28"):
        fixed.kv.delete(block_key(cidr))
    _, out, _ = run(capsys, "ipam", "show")
    assert out == ("+----------+------+-----------+------------+----------+\n"
                   "| GROUPING | CIDR | IPS TOTAL | IPS IN USE | IPS FREE |\n"
                   "+----------+------+-----------+------------+----------+\n"
                   "+----------+------+-----------+------------+----------+\n")


def test_show_reports_an_ipv6_pools_real_size(ipam, capsys):
    make_pool(ipam.client, "big6", "fd00:90::/48")
    make_pool(ipam.client, "big4", "10.0.0.0/8")
    make_node(ipam.client, "n1")
    ipam.auto_assign(num6=2, handle_id="h", host="n1")
    code, out, _ = run(capsys, "ipam", "show")
    assert code == 0
    # 2**24 and 2**80 addresses, as Go's %.5g prints them (tablewriter does not read
    # 1.2089e+24 as a number: it would be left-aligned in a wider column).
    assert out == (
        "+----------+--------------+------------+------------+-------------------+\n"
        "| GROUPING |     CIDR     | IPS TOTAL  | IPS IN USE |     IPS FREE      |\n"
        "+----------+--------------+------------+------------+-------------------+\n"
        "| IP Pool  | 10.0.0.0/8   | 1.6777e+07 | 0 (0%)     | 1.6777e+07 (100%) |\n"
        "| IP Pool  | fd00:90::/48 | 1.2089e+24 | 2 (0%)     | 1.2089e+24 (100%) |\n"
        "+----------+--------------+------------+------------+-------------------+\n")


def test_show_ip(fixed, capsys):
    code, out, _ = run(capsys, "ipam", "show", "--ip", "10.80.0.20")
    assert code == 0
    assert out == ("IP 10.80.0.20 is in use\nHandle ID: k8s-pod-network.a\nActive Owner Attributes:\n"
                   "  namespace: default\n  node: n1\n  pod: a\n")
    fixed.assign_ip("10.80.0.22", host="n1")
    _, out, _ = run(capsys, "ipam", "show", "--ip=10.80.0.22")
    assert out == "IP 10.80.0.22 is in use\nHandle ID: <none>\nNo Active Owner attributes defined\n"
    # An IPv4-mapped IPv6 address is the IPv4 address, as Go parses it.
    _, out, _ = run(capsys, "ipam", "show", "--ip", "::ffff:10.80.0.20")
    assert out.startswith("IP 10.80.0.20 is in use\n")
    # Free in a block, in no block, in no pool: all "not assigned".
    for ip in ("10.80.0.23", "10.80.0.250", "192.0.2.1", "fd00:80::0:7"):
        _, out, _ = run(capsys, "ipam", "show", "--ip", ip)
        assert out == f"{ip.replace('::0:7', '::7')} is not assigned\n"
    for bad in ("10.80.0.999", " 10.80.0.20", "fe80::1%eth0", ""):
        with pytest.raises(SystemExit) as exc:
            run(capsys, "ipam", "show", f"--ip={bad}")
        assert exc.value.code == 1
        assert capsys.readouterr().out == f"Error executing command: invalid IP address specified: {bad}\n"


def test_show_alternate_owner_attributes(fixed, capsys):
    key = block_key("10.80.0.16/28")
    doc = json.loads(fixed.kv.get(key).value)
    index = doc["allocations"][4]
    doc["attributes"][index]["alternateOwnerAttrs"] = {"pod": "a-new", "namespace": "default"}
    fixed.kv.put(key, json.dumps(doc))
    _, out, _ = run(capsys, "ipam", "show", "--ip", "10.80.0.20")
    assert out == ("IP 10.80.0.20 is in use\nHandle ID: k8s-pod-network.a\nActive Owner Attributes:\n"
                   "  namespace: default\n  node: n1\n  pod: a\n"
                   "Alternate Owner Attributes:\n  namespace: default\n  pod: a-new\n")


def test_show_borrowed(fixed, capsys):
    """Addresses whose node is not the block's owner, block by block in datastore order;
    an address with no node attribute is only counted."""
    for ip, attrs in (("10.80.0.25", {"namespace": "ns", "node": "n2", "pod": "b"}),
                      ("10.80.0.26", {"node": "n2", "type": "ipipTunnelAddress"}),
                      ("10.80.0.27", {"namespace": "vm", "node": "n2", "pod": "virt-launcher-v1", "vmi-name": "v1"}),
                      ("10.80.0.28", None)):
        fixed.assign_ip(ip, host="n2", attrs=attrs)
    # A block with no owner any more: its addresses are all borrowed.
    key = block_key("fd00:80::/124")
    doc = json.loads(fixed.kv.get(key).value)
    doc["affinity"] = None
    fixed.kv.put(key, json.dumps(doc))
    code, out, err = run(capsys, "ipam", "show", "--show-borrowed")
    assert (code, err) == (0, "")
    assert out == (
        "+------------+----------------+---------------+-------------+-------------------+--------------+\n"
        "|     IP     | BORROWING-NODE |     BLOCK     | BLOCK OWNER |       TYPE        | ALLOCATED-TO |\n"
        "+------------+----------------+---------------+-------------+-------------------+--------------+\n"
        "| 10.80.0.25 | n2             | 10.80.0.16/28 | n1          | pod               | ns/b         |\n"
        "| 10.80.0.26 | n2             | 10.80.0.16/28 | n1          | ipipTunnelAddress |              |\n"
        "| 10.80.0.27 | n2             | 10.80.0.16/28 | n1          | vmi               | vm/v1        |\n"
        "| fd00:80::5 | n1             | fd00:80::/124 |             | pod               | default/d    |\n"
        "+------------+----------------+---------------+-------------+-------------------+--------------+\n"
        "\n"
        "Note: found 1 IP allocations without an explicit node association. Unable to determine if they are "
        "borrowed.\n")


def test_show_borrowed_with_none(fixed, capsys):
    code, out, _ = run(capsys, "ipam", "show", "--show-borrowed")
    assert (code, out) == (0, "+----+----------------+-------+-------------+------+--------------+\n"
                              "| IP | BORROWING-NODE | BLOCK | BLOCK OWNER | TYPE | ALLOCATED-TO |\n"
                              "+----+----------------+-------+-------------+------+--------------+\n"
                              "+----+----------------+-------+-------------+------+--------------+\n")


def test_show_configuration(ipam, capsys, etcd_kv):
    """libcalico-go's IPAMConfig field by field, each value as Go's %#v: the KubeVirt
    setting is a pointer, printed as its type and an address (or nil)."""
    import re

    code, out, err = run(capsys, "ipam", "show", "--show-configuration")
    assert (code, err) == (0, "")
    assert re.sub(r"\(0x[0-9a-f]{10}\)", "(0xc000123456)", out) == (
        "+------------------------------+--------------------------------------------+\n"
        "|           PROPERTY           |                   VALUE                    |\n"
        "+------------------------------+--------------------------------------------+\n"
        "| StrictAffinity               | false                                      |\n"
        "| AutoAllocateBlocks           | true                                       |\n"
        "| MaxBlocksPerHost             |                                          0 |\n"
        "| KubeVirtVMAddressPersistence | (*ipam.VMAddressPersistence)(0xc000123456) |\n"
        "+------------------------------+--------------------------------------------+\n")
    etcd_kv.put("/calico/ipam/v2/config",
                '{"strict_affinity":true,"auto_allocate_blocks":false,"maxBlocksPerHost":3}')
    code, out, err = run(capsys, "ipam", "show", "--show-configuration")
    assert (code, out, err) == (0, "+------------------------------+-----------------------------------+\n"
                                   "|           PROPERTY           |               VALUE               |\n"
                                   "+------------------------------+-----------------------------------+\n"
                                   "| StrictAffinity               | true                              |\n"
                                   "| AutoAllocateBlocks           | false                             |\n"
                                   "| MaxBlocksPerHost             |                                 3 |\n"
                                   "| KubeVirtVMAddressPersistence | (*ipam.VMAddressPersistence)(nil) |\n"
                                   "+------------------------------+-----------------------------------+\n", "")


def test_show_options_exclude_each_other(ipam, capsys):
    """``[--ip=<IP> | --show-blocks | --show-borrowed | --show-configuration]``."""
    for pair in (("--show-blocks", "--show-borrowed"), ("--ip=10.0.0.1", "--show-configuration")):
        with pytest.raises(SystemExit) as exc:
            run(capsys, "ipam", "show", *pair)
        assert exc.value.code == 1
        assert "not allowed with argument" in capsys.readouterr().err


def test_tablewriter_wraps_long_cells_of_several_words():
    """tablewriter v0.0.5 wraps a cell of several words wider than 30 columns at word
    boundaries (its column then at least 30 wide), never a single long word; a missing
    line of a shorter cell is blank, and "1,234" reads as a number."""
    from node.tablewriter import table as tablewriter_table

    assert tablewriter_table(["a_b", "detail"], [["1,234", "the quick brown fox jumps over the lazy dog"],
                                                 ["x", "aaaaaaaaaaaaaaaa bbbbbbbbbbbbbbbbbb"],
                                                 ["y", "c" * 33]]) == (
        "+-------+-----------------------------------+\n"
        "|  A B  |              DETAIL               |\n"
        "+-------+-----------------------------------+\n"
        "| 1,234 | the quick brown fox jumps over    |\n"
        "|       | the lazy dog                      |\n"
        "| x     | aaaaaaaaaaaaaaaa                  |\n"
        "|       | bbbbbbbbbbbbbbbbbb                |\n"
        "| y     | ccccccccccccccccccccccccccccccccc |\n"
        "+-------+-----------------------------------+\n")


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
        "No configuration for LoadBalancer kubecontroller found, skipping service check\n\n"
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
    # calicoctl reads the configuration first (libcalico-go creates it with its defaults
    # then), so even a refused change leaves the default record behind.
    assert json.loads(etcd_kv.get("/calico/ipam/v2/config").value) == {
        "auto_allocate_blocks": True, "kubeVirtVMAddressPersistence": "Enabled"}
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


# `ipam split` as calicoctl v3.32.1 does it (calicoctl/calicoctl/commands/ipam/split.go).

def test_split_refuses_without_a_pool_or_a_locked_datastore(fixed, capsys, etcd_kv):
    code, out, err = run(capsys, "ipam", "split", "2")
    assert (code, out, err) == (1, "", "no name or CIDR provided. Provide a name or CIDR to denote the IP pool "
                                       "to split\n")
    code, out, err = run(capsys, "ipam", "split", "2", "--name=p1")
    assert (code, out, err) == (1, "", "error while checking if datastore was locked: error retrieving "
                                       "ClusterInformation: resource does not exist: ClusterInformation(default) "
                                       "with error: <nil>\n")
    _cluster_info(fixed, "guid-1", ready=True)
    code, out, err = run(capsys, "ipam", "split", "2", "--cidr=10.80.0.0/24")
    assert (code, out, err) == (1, "", "datastore is not locked. Run the `calicoctl datastore migrate lock` "
                                       "command in order split the IP pools\n")
    _cluster_info(fixed, "guid-1", ready=False)
    code, out, err = run(capsys, "ipam", "split", "2", "--name", "nope")
    assert (code, out, err) == (1, "", "unable to find IP pool with name nope: resource does not exist: "
                                       "IPPool(nope) with error: <nil>\n")
    # The CIDR must be written as the pool's is.
    code, out, err = run(capsys, "ipam", "split", "2", "--cidr", "10.80.0.1/24")
    assert (code, out, err) == (1, "", "unable to find IP pool  covering the specified CIDR 10.80.0.1/24\n")
    assert fixed.client.get("IPPool", "p1").spec.get("disabled") is None


@pytest.mark.parametrize("number, reason", [
    ("two", 'error reading number to split IP pools into. two is not a valid number: strconv.Atoi: parsing "two": '
            "invalid syntax"),
    ("99999999999999999999", "error reading number to split IP pools into. 99999999999999999999 is not a valid "
                             'number: strconv.Atoi: parsing "99999999999999999999": value out of range'),
    ("3", "error splitting the CIDR 10.80.0.0/24 into 3 CIDRs: number to split CIDR into is not a valid power of 2: 3"),
    ("1", "error splitting the CIDR 10.80.0.0/24 into 1 CIDRs: number to split CIDR into is not a valid power of 2: 1"),
    ("-2", "error splitting the CIDR 10.80.0.0/24 into -2 CIDRs: number to split CIDR into is not a valid power of "
           "2: -2"),
    # calicoctl v3.32.1 lets 0 through and deletes the pool, creating none: refused here.
    ("0", "error splitting the CIDR 10.80.0.0/24 into 0 CIDRs: number to split CIDR into is not a valid power of 2: 0"),
    ("512", "error splitting the CIDR 10.80.0.0/24 into 512 CIDRs: the CIDR 10.80.0.0/24 is not large enough to be "
            "split into 512 parts"),
])
def test_split_refuses_a_bad_number_after_disabling_the_pool(fixed, capsys, number, reason):
    """calicoctl disables the pool before it reads the number, and leaves it disabled."""
    _cluster_info(fixed, "guid-1", ready=False)
    code, out, err = run(capsys, "ipam", "split", "--name=p1", "--", number)
    assert (code, out, err) == (1, "", reason + "\n")
    assert fixed.client.get("IPPool", "p1").spec["disabled"] is True
    assert [p.name for p in fixed.client.list("IPPool")] == ["p1", "p2"]


def test_split(fixed, capsys, etcd_kv):
    """The pool gives way to NUMBER enabled pools with its settings and labels over its
    CIDR; its blocks, their affinities and every allocation stay as they were."""
    from ipam_fixtures import ipam_keys, update_pool

    update_pool(fixed.client, "p1", natOutgoing=True, ipipMode="CrossSubnet", nodeSelector="has(edge)")
    p1 = fixed.client.get("IPPool", "p1")
    p1.metadata["labels"] = {"team": "net"}
    fixed.client.update(p1)
    before = ipam_keys(etcd_kv)
    _cluster_info(fixed, "guid-1", ready=False)
    code, out, err = run(capsys, "ipam", "split", "4", "--cidr=10.80.0.0/24")
    assert (code, err) == (0, "")
    # calicoctl ends neither its first line nor its last with a newline.
    assert out == ("IP Pool p1 was successfully split into 4 smaller pools.Created split-p1-0 with CIDR 10.80.0.0/26.\n"
                   "Created split-p1-1 with CIDR 10.80.0.64/26.\nCreated split-p1-2 with CIDR 10.80.0.128/26.\n"
                   "Created split-p1-3 with CIDR 10.80.0.192/26.\nPlease refer to the documentation for final steps.")
    pools = {p.name: p for p in fixed.client.list("IPPool")}
    assert sorted(pools) == ["p2", "split-p1-0", "split-p1-1", "split-p1-2", "split-p1-3"]
    for i, cidr in enumerate(("10.80.0.0/26", "10.80.0.64/26", "10.80.0.128/26", "10.80.0.192/26")):
        child = pools[f"split-p1-{i}"]
        assert child.spec == {**p1.spec, "cidr": cidr}
        assert child.labels == {"team": "net"}
        assert child.metadata["uid"] != p1.metadata["uid"]
    assert ipam_keys(etcd_kv) == before
    _, out, _ = run(capsys, "ipam", "show", "--show-blocks")
    assert out.splitlines()[3:] == [
        "| IP Pool  | fd00:80::/120  |       256 | 1 (0%)     | 255 (100%) |",
        "| Block    | fd00:80::/124  |        16 | 1 (6%)     | 15 (94%)   |",
        "| IP Pool  | 10.80.0.0/26   |        64 | 2 (3%)     | 62 (97%)   |",
        "| Block    | 10.80.0.16/28  |        16 | 2 (12%)    | 14 (88%)   |",
        "| IP Pool  | 10.80.0.64/26  |        64 | 0 (0%)     | 64 (100%)  |",
        "| IP Pool  | 10.80.0.128/26 |        64 | 1 (2%)     | 63 (98%)   |",
        "| Block    | 10.80.0.128/28 |        16 | 1 (6%)     | 15 (94%)   |",
        "| IP Pool  | 10.80.0.192/26 |        64 | 0 (0%)     | 64 (100%)  |",
        "+----------+----------------+-----------+------------+------------+"]

    code, out, err = run(capsys, "ipam", "split", "--name", "p2", "2")
    assert (code, err) == (0, "")
    assert out == ("IP Pool p2 was successfully split into 2 smaller pools.Created split-p2-0 with CIDR fd00:80::/121.\n"
                   "Created split-p2-1 with CIDR fd00:80::80/121.\nPlease refer to the documentation for final steps.")
    assert "p2" not in [p.name for p in fixed.client.list("IPPool")]


def test_split_stops_at_a_child_pool_the_datastore_refuses(fixed, capsys):
    """Child pools smaller than the block size are refused; the pool stays, disabled."""
    _cluster_info(fixed, "guid-1", ready=False)
    code, out, err = run(capsys, "ipam", "split", "32", "--name=p1")
    assert (code, out) == (1, "")
    assert err.startswith("error using unsafe create to make split pool with cidr 10.80.0.0/29: error with field ")
    assert [p.name for p in fixed.client.list("IPPool")] == ["p1", "p2"]
    assert fixed.client.get("IPPool", "p1").spec["disabled"] is True
