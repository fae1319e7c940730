"""``calico-node startup`` end to end: a real process, a real etcd, a real namespace.

Each test gives the node a fresh network namespace with the links it needs (``ifb``
links stand in for dummies), runs the command as calico/node would run it, and then
reads the datastore. Bad settings must exit 1 with a message naming the problem and
leave the datastore untouched (same revision, no keys).
"""
from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import time

import pytest

from node import __version__
from node.config import DatastoreConfig
from node.datastore.etcd import EtcdKV
from node.model import API_VERSION, from_dict
from startup_harness import STARTED, NodeHost, datastore, explain, revisions, v3_key
from startup_netns import add_address, add_link

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


@pytest.fixture
def node_host(etcd_clean, tmp_path):
    with NodeHost(etcd_clean, tmp_path) as host:
        add_link(host.ns, "eth0", "10.0.0.11/24", "fd00:10::11/64")
        yield host


def ok(result):
    assert result.returncode == 0, explain(result)
    assert result.stdout.splitlines()[-1] == STARTED, explain(result)
    return result


def create(client, kind, name, spec):
    return client.create(from_dict({"kind": kind, "apiVersion": API_VERSION, "metadata": {"name": name},
                                    "spec": spec}))


def strip_meta(obj: dict) -> dict:
    """The stored object with uid and creationTimestamp checked and removed."""
    meta = dict(obj["metadata"])
    assert UUID.match(meta.pop("uid")), obj
    assert STAMP.match(meta.pop("creationTimestamp")), obj
    return {**obj, "metadata": meta}


# -- the first start ---------------------------------------------------------------------

def test_first_start_writes_what_calico_writes(node_host, etcd_kv):
    result = ok(node_host.startup(IP="autodetect", AS="64513", CALICO_K8S_NODE_REF="node1",
                                  CALICO_IPV4POOL_IPIP="Always", CLUSTER_TYPE="k8s,bgp",
                                  CALICO_IPV6POOL_CIDR="fd5f:2b12:a3c4::/48", CALICO_NETWORKING_BACKEND="bird"))
    assert result.stdout == STARTED + "\n"
    data = datastore(etcd_kv)
    assert sorted(data) == sorted([
        v3_key("nodes", "node1"), v3_key("ippools", "default-ipv4-ippool"),
        v3_key("ippools", "default-ipv6-ippool"), v3_key("clusterinformations", "default"),
        v3_key("tiers", "default"), v3_key("tiers", "kube-admin"), v3_key("tiers", "kube-baseline"),
        v3_key("felixconfigurations", "default"), v3_key("felixconfigurations", "node.node1"),
        v3_key("bgpconfigurations", "default")])

    def obj(kind, name, spec, status=None):
        out = {"kind": kind, "apiVersion": API_VERSION, "metadata": {"name": name}, "spec": spec}
        if status is not None:
            out["status"] = status
        return out

    assert strip_meta(data[v3_key("nodes", "node1")]) == obj("Node", "node1", {
        "bgp": {"asNumber": 64513, "ipv4Address": "10.0.0.11/24"},
        "orchRefs": [{"nodeName": "node1", "orchestrator": "k8s"}],
        "interfaces": [{"name": "eth0", "addresses": ["10.0.0.11"]}]}, status={})
    assert strip_meta(data[v3_key("ippools", "default-ipv4-ippool")]) == obj("IPPool", "default-ipv4-ippool", {
        "cidr": "192.168.0.0/16", "vxlanMode": "Never", "ipipMode": "Always", "natOutgoing": True,
        "blockSize": 26, "nodeSelector": "all()", "allowedUses": ["Workload", "Tunnel"],
        "assignmentMode": "Automatic"})
    assert strip_meta(data[v3_key("ippools", "default-ipv6-ippool")]) == obj("IPPool", "default-ipv6-ippool", {
        "cidr": "fd5f:2b12:a3c4::/48", "vxlanMode": "Never", "ipipMode": "Never", "blockSize": 122,
        "nodeSelector": "all()", "allowedUses": ["Workload", "Tunnel"], "assignmentMode": "Automatic"})
    info = strip_meta(data[v3_key("clusterinformations", "default")])
    assert re.fullmatch(r"[0-9a-f]{32}", info["spec"].pop("clusterGUID"))
    assert info == obj("ClusterInformation", "default", {"clusterType": "k8s,bgp", "calicoVersion": __version__,
                                                         "datastoreReady": True})
    assert strip_meta(data[v3_key("tiers", "default")]) == obj(
        "Tier", "default", {"order": 1000000, "defaultAction": "Deny"}, status={})
    assert strip_meta(data[v3_key("tiers", "kube-admin")]) == obj(
        "Tier", "kube-admin", {"order": 1000, "defaultAction": "Pass"}, status={})
    assert strip_meta(data[v3_key("tiers", "kube-baseline")]) == obj(
        "Tier", "kube-baseline", {"order": 10000000, "defaultAction": "Pass"}, status={})
    # Go always writes FelixConfigurationSpec.bpfLogLevel (it has no omitempty).
    assert strip_meta(data[v3_key("felixconfigurations", "default")]) == obj(
        "FelixConfiguration", "default", {"logSeverityScreen": "Info", "reportingInterval": "0s", "bpfLogLevel": ""})
    assert strip_meta(data[v3_key("felixconfigurations", "node.node1")]) == obj(
        "FelixConfiguration", "node.node1", {"defaultEndpointToHostAction": "Return", "bpfLogLevel": ""})
    assert strip_meta(data[v3_key("bgpconfigurations", "default")]) == obj("BGPConfiguration", "default", {})

    # Stored compactly, as Go writes it.
    raw = etcd_kv.get(v3_key("nodes", "node1")).value.decode()
    assert raw == json.dumps(json.loads(raw), separators=(",", ":"))

    nodename = node_host.lib_dir / "nodename"
    assert nodename.read_bytes() == b"node1"
    assert stat.S_IMODE(nodename.stat().st_mode) == 0o644
    for path in (node_host.run_dir, node_host.lib_dir, node_host.log_dir):
        assert path.is_dir()
        assert "Expected %s to be mounted into the container but it wasn't present" % path in result.stderr
    for line in ("Using NODENAME environment for node name node1", "Determined node name: node1",
                 f"Starting node node1 with version {__version__}", "Skipping datastore connection test",
                 "Upgrading any IPAM affinities from older versions....",
                 "No affinities needed to be upgraded.",  # etcd keeps v1 affinities: no labels
                 "Using autodetected IPv4 address on interface eth0: 10.0.0.11/24",
                 "Using AS number specified in environment (AS=64513)",
                 "Created default IPv4 pool (192.168.0.0/16) with NAT outgoing true. IPIP mode: Always, "
                 "VXLAN mode: Never, DisableBGPExport: false", "Using node name: node1"):
        assert line in result.stderr, line
    assert re.search(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} \[INFO\]\[\d+\] startup/\S+\.py \d+: ",
                     result.stderr, re.M)


def test_second_start_changes_nothing(node_host, etcd_kv):
    env = dict(IP="autodetect", IP6="autodetect", AS="1.10", CALICO_K8S_NODE_REF="k8s-node1", CLUSTER_TYPE="k8s")
    ok(node_host.startup(**env))
    before = revisions(etcd_kv)
    revision = etcd_kv.current_revision()
    nodename = node_host.lib_dir / "nodename"
    os.utime(nodename, (1, 1))
    result = ok(node_host.startup(**env))
    assert etcd_kv.current_revision() == revision, explain(result)
    assert revisions(etcd_kv) == before
    assert nodename.stat().st_mtime > 1  # rewritten on every start
    node = datastore(etcd_kv)[v3_key("nodes", "node1")]
    assert node["spec"]["bgp"] == {"asNumber": 65546, "ipv4Address": "10.0.0.11/24", "ipv6Address": "fd00:10::11/64"}
    assert node["spec"]["orchRefs"] == [{"nodeName": "k8s-node1", "orchestrator": "k8s"}]


def test_changed_setting_updates_the_existing_node(node_host, etcd_kv):
    ok(node_host.startup(AS="64513"))
    created = datastore(etcd_kv)[v3_key("nodes", "node1")]
    ok(node_host.startup(AS="64514"))
    updated = datastore(etcd_kv)[v3_key("nodes", "node1")]
    assert updated["spec"]["bgp"]["asNumber"] == 64514
    assert updated["metadata"] == created["metadata"]  # same uid and creation time: an update


def test_existing_pools_are_left_alone(node_host, etcd_kv, client):
    create(client, "IPPool", "mine", {"cidr": "10.10.0.0/16", "disabled": True, "ipipMode": "Always"})
    before = revisions(etcd_kv)[v3_key("ippools", "mine")]
    ok(node_host.startup(CALICO_IPV4POOL_CIDR="192.168.0.0/16", CALICO_IPV4POOL_IPIP="not-even-valid"))
    data = revisions(etcd_kv)
    assert data[v3_key("ippools", "mine")] == before
    assert v3_key("ippools", "default-ipv4-ippool") not in data
    assert v3_key("ippools", "default-ipv6-ippool") in data


def test_default_pool_avoids_host_addresses(node_host, etcd_kv):
    add_link(node_host.ns, "eth1", "192.168.1.5/24", "172.16.0.9/24")
    ok(node_host.startup(CALICO_IPV6POOL_CIDR="none"))
    pools = {k: v for k, v in datastore(etcd_kv).items() if "/ippools/" in k}
    assert [p["spec"]["cidr"] for p in pools.values()] == ["172.17.0.0/16"]


# -- the IP conflict check ------------------------------------------------------------

def test_ip_conflict_with_another_node_is_fatal(node_host, etcd_kv, client):
    create(client, "Node", "node2", {"bgp": {"ipv4Address": "10.0.0.11/16"}})
    revision = etcd_kv.current_revision()
    result = node_host.startup()
    assert result.returncode == 1, explain(result)
    assert "Calico node 'node2' is already using the IPv4 address 10.0.0.11." in result.stderr
    assert "Failed to configure IP addresses" in result.stderr and "IPv4 address conflict" in result.stderr
    assert result.stderr.rstrip().endswith("Terminating")
    assert STARTED not in result.stdout
    assert etcd_kv.current_revision() == revision
    assert not (node_host.lib_dir / "nodename").exists()


def test_ip_conflict_check_can_be_disabled(node_host, etcd_kv, client):
    create(client, "Node", "node2", {"bgp": {"ipv4Address": "10.0.0.11/16"}})
    ok(node_host.startup(DISABLE_NODE_IP_CHECK="true"))
    assert node_host.startup(DISABLE_NODE_IP_CHECK="True").returncode == 0  # unchanged now: no check needed


def test_conflict_clears_a_stale_autodetected_address(node_host, etcd_kv, client):
    ok(node_host.startup(IP="autodetect"))
    node_host.ns.run("ip", "addr", "del", "10.0.0.11/24", "dev", "eth0")
    add_address(node_host.ns, "eth0", "10.0.0.12/24")
    create(client, "Node", "node2", {"bgp": {"ipv4Address": "10.0.0.12/24"}})
    result = node_host.startup(IP="autodetect")
    assert result.returncode == 1, explain(result)
    assert "Clearing out-of-date IPv4 address from this node" in result.stderr
    node = datastore(etcd_kv)[v3_key("nodes", "node1")]
    assert "bgp" not in node["spec"]


# -- environment variables that succeed ------------------------------------------------

def stored_node(kv) -> dict:
    return datastore(kv)[v3_key("nodes", "node1")]


def stored_pools(kv) -> dict[str, dict]:
    return {k.rsplit("/", 1)[1]: v["spec"] for k, v in datastore(kv).items() if "/ippools/" in k}


# docker0 is left out of spec.interfaces (default exclude list); names are sorted.
V4_IFACES = [{"name": "eth0", "addresses": ["10.0.0.11"]}, {"name": "eth1", "addresses": ["192.168.7.7"]}]


@pytest.mark.parametrize("env,bgp,interfaces", [
    ({"IP": "10.0.0.11"}, {"ipv4Address": "10.0.0.11/24"}, V4_IFACES),
    ({"IP": "10.0.0.99"}, {"ipv4Address": "10.0.0.99/32"}, V4_IFACES),
    ({"IP": "10.0.0.11/16"}, {"ipv4Address": "10.0.0.11/16"}, V4_IFACES),
    ({"IP": "none", "IP6": "autodetect"}, {"ipv6Address": "fd00:10::11/64"}, "v6"),
    # first-found: eth1 has the higher index.
    ({"IP6": "fd00:10::11"}, {"ipv4Address": "192.168.7.7/24", "ipv6Address": "fd00:10::11/128"}, "v6"),
    ({"AS": "4294967295"}, {"asNumber": 4294967295, "ipv4Address": "192.168.7.7/24"}, None),
    ({"IP_AUTODETECTION_METHOD": "interface=eth1"}, {"ipv4Address": "192.168.7.7/24"}, None),
    ({"IP_AUTODETECTION_METHOD": "skip-interface=eth1"}, {"ipv4Address": "10.0.0.11/24"}, None),
    ({"IP_AUTODETECTION_METHOD": "cidr=172.17.0.0/16"}, {"ipv4Address": "172.17.0.1/16"}, None),
    ({"IP_AUTODETECTION_METHOD": "can-reach=203.0.113.9"}, {"ipv4Address": "192.168.7.7/24"}, None),
    ({"IP": "autodetect", "IP6": "autodetect", "IP6_AUTODETECTION_METHOD": "interface=eth0"},
     {"ipv4Address": "192.168.7.7/24", "ipv6Address": "fd00:10::11/64"}, "both"),
])
def test_address_settings(node_host, etcd_kv, env, bgp, interfaces):
    add_link(node_host.ns, "eth1", "192.168.7.7/24")
    add_link(node_host.ns, "docker0", "172.17.0.1/16")
    node_host.ns.run("ip", "route", "add", "203.0.113.0/24", "dev", "eth1")
    ok(node_host.startup(**env))
    spec = stored_node(etcd_kv)["spec"]
    assert spec["bgp"] == bgp
    if interfaces is None:
        assert "interfaces" not in spec
    elif interfaces == "v6":
        assert [i["name"] for i in spec["interfaces"]] == ["eth0", "eth1"]
        assert "fd00:10::11" in spec["interfaces"][0]["addresses"]
        assert all(":" in a for i in spec["interfaces"] for a in i["addresses"])
    elif interfaces == "both":
        eth0 = spec["interfaces"][0]
        assert eth0["name"] == "eth0" and eth0["addresses"][:2] == ["10.0.0.11", "fd00:10::11"]
    else:
        assert spec["interfaces"] == interfaces


def test_policy_only_backend_writes_no_addresses(node_host, etcd_kv):
    result = ok(node_host.startup(CALICO_NETWORKING_BACKEND="none", AS="64513"))
    data = datastore(etcd_kv)
    # Nothing marks a new Node for writing in policy-only mode (Calico behaves the same).
    assert v3_key("nodes", "node1") not in data
    assert "Using autodetected" not in result.stderr
    assert not node_host.run_dir.exists()
    ok(node_host.startup(CALICO_NETWORKING_BACKEND="none", CALICO_K8S_NODE_REF="k1"))
    assert stored_node(etcd_kv)["spec"] == {"orchRefs": [{"nodeName": "k1", "orchestrator": "k8s"}]}


def test_vxlan_backend_needs_no_run_dir(node_host, etcd_kv):
    ok(node_host.startup(CALICO_NETWORKING_BACKEND="vxlan", CALICO_DISABLE_FILE_LOGGING="TRUE"))
    assert stored_node(etcd_kv)["spec"]["bgp"] == {"ipv4Address": "10.0.0.11/24"}
    assert not node_host.run_dir.exists() and not node_host.log_dir.exists()
    assert node_host.lib_dir.is_dir()


@pytest.mark.parametrize("env,expected", [
    ({"NO_DEFAULT_POOLS": "true"}, {}),
    ({"CALICO_IPV4POOL_CIDR": "10.244.5.0/16", "CALICO_IPV4POOL_BLOCK_SIZE": "28",
      "CALICO_IPV4POOL_VXLAN": "CrossSubnet", "CALICO_IPV4POOL_NAT_OUTGOING": "false",
      "CALICO_IPV4POOL_DISABLE_BGP_EXPORT": "yes", "CALICO_IPV4POOL_NODE_SELECTOR": "!has(edge)",
      "CALICO_IPV6POOL_CIDR": "none"},
     {"default-ipv4-ippool": {"cidr": "10.244.0.0/16", "vxlanMode": "CrossSubnet", "ipipMode": "Never",
                              "disableBGPExport": True, "blockSize": 28, "nodeSelector": "!has(edge)",
                              "allowedUses": ["Workload", "Tunnel"], "assignmentMode": "Automatic"}}),
    ({"CALICO_IPV4POOL_CIDR": "none", "CALICO_IPV6POOL_CIDR": "fd00:77::/64", "CALICO_IPV6POOL_BLOCK_SIZE": "124",
      "CALICO_IPV6POOL_VXLAN": "always", "CALICO_IPV6POOL_NAT_OUTGOING": "",
      "CALICO_IPV6POOL_DISABLE_BGP_EXPORT": "true", "CALICO_IPV6POOL_NODE_SELECTOR": "all()"},
     # Calico reads CALICO_IPV6POOL_VXLAN only while the IPv4 pool is enabled (startup.go
     # configureIPPools), so with CALICO_IPV4POOL_CIDR=none the IPv6 pool's mode is Never.
     {"default-ipv6-ippool": {"cidr": "fd00:77::/64", "vxlanMode": "Never", "ipipMode": "Never",
                              "natOutgoing": True, "disableBGPExport": True, "blockSize": 124,
                              "nodeSelector": "all()", "allowedUses": ["Workload", "Tunnel"],
                              "assignmentMode": "Automatic"}}),
    ({"FELIX_IPV6SUPPORT": "false", "CALICO_IPV4POOL_CIDR": "10.1.0.0/16", "CALICO_IPV4POOL_IPIP": "off"},
     {"default-ipv4-ippool": {"cidr": "10.1.0.0/16", "vxlanMode": "Never", "ipipMode": "Never",
                              "natOutgoing": True, "blockSize": 26, "nodeSelector": "all()",
                              "allowedUses": ["Workload", "Tunnel"], "assignmentMode": "Automatic"}}),
])
def test_pool_settings(node_host, etcd_kv, env, expected):
    ok(node_host.startup(**env))
    assert stored_pools(etcd_kv) == expected


def test_cluster_type_merges_into_existing_information(node_host, etcd_kv, client):
    create(client, "ClusterInformation", "default", {"clusterGUID": "abc", "clusterType": "k8s,bgp",
                                                    "calicoVersion": "v3.0.0", "datastoreReady": False})
    create(client, "FelixConfiguration", "default", {"logSeverityScreen": "Debug"})
    ok(node_host.startup(CLUSTER_TYPE="k8s,kubeadm"))
    data = datastore(etcd_kv)
    assert data[v3_key("clusterinformations", "default")]["spec"] == {
        "clusterGUID": "abc", "clusterType": "k8s,bgp,kubeadm", "calicoVersion": __version__,
        "datastoreReady": False}
    assert data[v3_key("felixconfigurations", "default")]["spec"] == {
        "logSeverityScreen": "Debug", "reportingInterval": "0s", "bpfLogLevel": ""}


def test_node_name_from_hostname_and_from_the_nodename_file(node_host, etcd_kv):
    ok(node_host.startup(NODENAME=None, HOSTNAME="  Worker-7 "))
    assert v3_key("nodes", "worker-7") in datastore(etcd_kv)
    assert (node_host.lib_dir / "nodename").read_text() == "worker-7"
    # Next start without NODENAME or HOSTNAME: the stored name wins over the OS hostname.
    result = ok(node_host.startup(NODENAME=None))
    assert f"Using stored node name worker-7 from {node_host.lib_dir / 'nodename'}" in result.stderr
    other = node_host.root / "elsewhere"
    other.write_text("named-by-file")
    ok(node_host.startup(NODENAME=None, CALICO_NODENAME_FILE=str(other), DISABLE_NODE_IP_CHECK="true"))
    assert v3_key("nodes", "named-by-file") in datastore(etcd_kv)
    assert other.read_text() == "named-by-file"


def test_log_level_and_kubeconfig(node_host, etcd_kv, tmp_path):
    result = ok(node_host.startup(CALICO_STARTUP_LOGLEVEL="debug"))
    assert "Early log level set to debug" in result.stderr and "[DEBUG]" in result.stderr
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\n")
    result = ok(node_host.startup(CALICO_STARTUP_LOGLEVEL="chatty", KUBECONFIG=str(kubeconfig)))
    assert "Failed to parse log level, defaulting to info" in result.stderr
    assert "Early log level set to info" in result.stderr and "[DEBUG]" not in result.stderr
    assert "Kubernetes configuration found" in result.stderr


def test_calico_prefixed_datastore_variables_win(node_host, etcd_kv):
    ok(node_host.startup(ETCD_ENDPOINTS="http://127.0.0.1:1", CALICO_ETCD_ENDPOINTS=node_host.relay.endpoint))
    assert v3_key("nodes", "node1") in datastore(etcd_kv)


# -- environment variables that must stop startup ----------------------------------------

BAD = [
    ({"AS": "65536.1"}, "The AS number specified in the environment (AS=65536.1) is not valid"),
    ({"AS": "-1"}, "The AS number specified in the environment (AS=-1) is not valid"),
    ({"IP": "10.0.0.300"}, "Environment does not contain a valid IPv4 address: IP=10.0.0.300"),
    ({"IP": "fd00::1"}, "Environment does not contain a valid IPv4 address: IP=fd00::1"),
    ({"IP6": "10.0.0.1"}, "Environment does not contain a valid IPv6 address: IP6=10.0.0.1"),
    ({"IP": "none"}, "no IPv4 or IPv6 addresses configured or detected, required for Calico networking"),
    ({"IP_AUTODETECTION_METHOD": "bogus"}, "Invalid IP autodetection method: bogus"),
    ({"IP_AUTODETECTION_METHOD": "interface=nomatch"}, "failed to autodetect an IPv4 address"),
    ({"IP6": "autodetect", "IP6_AUTODETECTION_METHOD": "cidr=fd99::/16"}, "failed to autodetect an IPv6 address"),
    ({"NO_DEFAULT_POOLS": "true", "CALICO_IPV6POOL_CIDR": "none"},
     "Invalid configuration with NO_DEFAULT_POOLS defined and CALICO_IPV4POOL_CIDR or CALICO_IPV6POOL_CIDR defined."),
    ({"CALICO_IPV4POOL_CIDR": "10.0.0.0"}, "Invalid CIDR specified in CALICO_IPV4POOL_CIDR '10.0.0.0'"),
    ({"CALICO_IPV6POOL_CIDR": "fd00::/129"}, "Invalid CIDR specified in CALICO_IPV6POOL_CIDR 'fd00::/129'"),
    ({"CALICO_IPV4POOL_BLOCK_SIZE": "big"}, "Unable to convert blocksize to int"),
    ({"CALICO_IPV4POOL_BLOCK_SIZE": "16"}, "Invalid blocksize 16 for version 4"),
    ({"CALICO_IPV6POOL_BLOCK_SIZE": "129"}, "Invalid blocksize 129 for version 6"),
    ({"CALICO_IPV4POOL_IPIP": "sometimes"}, "Unrecognized IPIP mode specified in CALICO_IPV4POOL_IPIP 'sometimes'"),
    ({"CALICO_IPV4POOL_VXLAN": "on"}, "Unrecognized VXLAN mode specified in CALICO_IPV4POOL_VXLAN 'on'"),
    ({"CALICO_IPV6POOL_VXLAN": "on"}, "Unrecognized VXLAN mode specified in CALICO_IPV6POOL_VXLAN 'on'"),
    ({"CALICO_IPV4POOL_IPIP": "Always", "CALICO_IPV4POOL_VXLAN": "Always"},
     "IPIP and VXLAN cannot both be enabled on the same pool"),
    ({"CALICO_IPV4POOL_CIDR": "10.9.0.0/28"}, "is longer than the block size"),
    ({"CALICO_IPV4POOL_CIDR": "169.254.0.0/16"}, "overlaps with the link-local range"),
    ({"CALICO_IPV6POOL_CIDR": "fe80::/64", "CALICO_IPV6POOL_BLOCK_SIZE": "122"}, "overlaps with the link-local range"),
    ({"CALICO_IPV4POOL_NODE_SELECTOR": "role ="}, "Invalid node selector 'role =' for version 4"),
    ({"CALICO_IPV6POOL_NODE_SELECTOR": "has(x"}, "Invalid node selector 'has(x' for version 6"),
    ({"NODENAME": "Bad_Name"}, "Unable to set node resource configuration"),
]


@pytest.mark.parametrize("env,message", BAD, ids=[next(iter(e)) + "=" + next(iter(e.values())) for e, _ in BAD])
def test_bad_value_stops_startup_and_writes_nothing(node_host, etcd_kv, env, message):
    revision = etcd_kv.current_revision()
    result = node_host.startup(**env)
    assert result.returncode == 1, explain(result)
    assert message in result.stderr, explain(result)
    assert result.stderr.rstrip().endswith("Terminating")
    assert STARTED not in result.stdout
    assert etcd_kv.current_revision() == revision
    assert datastore(etcd_kv) == {}
    assert not (node_host.lib_dir / "nodename").exists()


def test_unreadable_nodename_file_stops_startup(node_host, etcd_kv):
    (node_host.root / "a-dir").mkdir()
    result = node_host.startup(NODENAME=None, CALICO_NODENAME_FILE=str(node_host.root / "a-dir"))
    assert result.returncode == 1 and "Failed to read" in result.stderr, explain(result)
    assert datastore(etcd_kv) == {}


@pytest.mark.parametrize("env,message", [
    ({"DATASTORE_TYPE": "kubernetes"}, "ERROR: Error accessing the Calico datastore: "),
    ({"DATASTORE_TYPE": "consul"}, "ERROR: Error accessing the Calico datastore: unknown datastore type"),
    ({"ETCD_DISCOVERY_SRV": "example.com"},
     "ERROR: Error accessing the Calico datastore: multiple discovery or bootstrap options specified"),
    ({"ETCD_ENDPOINTS": None}, "ERROR: Error accessing the Calico datastore: "),
    # SRV discovery runs when the client is built; a .invalid domain has no records (and
    # the node's namespace may have no DNS at all): that failure names variable and domain.
    ({"ETCD_ENDPOINTS": None, "DATASTORE_TYPE": "etcdv3", "ETCD_DISCOVERY_SRV": "calico-srv-test.invalid"},
     "ERROR: Error accessing the Calico datastore: ETCD_DISCOVERY_SRV=calico-srv-test.invalid: "
     "failed to discover etcd endpoints through SRV discovery: _etcd-client-ssl._tcp.calico-srv-test.invalid: "),
    ({"ETCD_CA_CERT_FILE": "/nonexistent/ca.pem"}, "ERROR: Error accessing the Calico datastore: ETCD_CA_CERT_FILE"),
])
def test_datastore_config_errors(node_host, etcd_kv, env, message):
    result = node_host.startup(**env)
    assert result.returncode == 1, explain(result)
    assert result.stdout.startswith(message), explain(result)
    assert datastore(etcd_kv) == {}


# -- datastore availability -------------------------------------------------------------

@pytest.fixture
def private_host(etcd, tmp_path):
    with NodeHost(etcd, tmp_path) as host:
        add_link(host.ns, "eth0", "10.0.0.11/24")
        yield host


def test_wait_for_datastore_retries_until_it_answers(private_host, etcd, tmp_path):
    etcd.stop()
    log_path = tmp_path / "startup.log"
    with open(log_path, "w") as log_file:
        proc = subprocess.Popen(private_host.command("startup", "--no-kernel-prep"),
                                env=private_host.env(WAIT_FOR_DATASTORE="true"), stdout=subprocess.PIPE,
                                stderr=log_file, text=True)
    try:
        deadline = time.monotonic() + 30
        while "Hit error connecting to datastore - retry" not in log_path.read_text():
            assert proc.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.1)
        etcd.start()
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    err = log_path.read_text()
    assert proc.returncode == 0, err
    assert "Checking datastore connection" in err
    assert "Datastore connection verified" in err and "Datastore is ready" in err
    assert out.splitlines()[-1] == STARTED


def test_without_wait_an_unreachable_datastore_is_fatal(private_host, etcd):
    etcd.stop()
    result = private_host.startup(WAIT_FOR_DATASTORE="yes")  # only exactly "true" waits
    assert result.returncode == 1, explain(result)
    assert "Skipping datastore connection test" in result.stderr
    assert "Unable to access datastore to query node configuration" in result.stderr


def test_unauthorized_datastore_is_fatal(private_host, etcd):
    etcd.enable_auth("right-password")
    result = private_host.startup(WAIT_FOR_DATASTORE="true", ETCD_USERNAME="root", ETCD_PASSWORD="wrong")
    assert result.returncode == 1, explain(result)
    assert "Connection to the datastore is unauthorized" in result.stderr
    assert result.stderr.rstrip().endswith("Terminating")
    # The right credentials work, and everything is written through them.
    ok(private_host.startup(ETCD_USERNAME="root", ETCD_PASSWORD="right-password"))
    kv = EtcdKV(DatastoreConfig(etcd_endpoints=(etcd.endpoint,), etcd_username="root",
                                etcd_password="right-password"))
    try:
        assert v3_key("nodes", "node1") in datastore(kv)
    finally:
        kv.close()
