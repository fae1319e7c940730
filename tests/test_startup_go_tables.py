"""calico-node v3.32.1's own startup and autodetection Go tests, replayed against ours.

Each test names the Go test it replays (``node/pkg/lifecycle/startup/startup_test.go``,
``autodetection/{filtered_test,interfaces_linux_test}.go``, ``autodetection/ipv4/
poolselector_test.go``) by its Describe/Entry text and checks the same expectation through
our code: the pool, Node and ClusterInformation tests write to the test etcd (or the
Kubernetes stand-in), the interface tests read real links in a throwaway namespace.

Where a Go test drives a function through a mock of ``getInterfaces``, the links given to
our ``HostView`` are what that mock returns. The mocks ignore the IP versions they are
asked for (a real enumeration does not), so where that matters the replay says so.
"""
from __future__ import annotations

import ipaddress
import logging
import threading
import time

import pytest

from kdd_fixtures import kube, kube_config, kube_kv  # noqa: F401  (fixtures)
from kdd_fixtures import k8s_node
from netns import Namespace
from node.config import ETCDV3, KUBERNETES
from node.datastore.client import DatastoreClient
from node.datastore.etcd import EtcdKV
from node.datastore.kubernetes import conversion as conv
from node.datastore.kubernetes.kv import KubeKV
from node.model import API_VERSION, from_dict
from startup import cluster
from startup.autodetect import K8S_INTERNAL_IP, HostView, autodetect_cidr, local_cidr
from startup.datastore import maybe_wait, upgrade_host_ipam
from startup.env import poll_interval
from startup.hostnet import read_links
from startup.interfaces import DEFAULT_INTERFACES_TO_EXCLUDE, Link, first_usable, get_interfaces
from startup.ipconfig import IPConfigError, configure_ips
from startup.k8s import extract_kubeadm_cidrs
from startup.logs import Fatal
from startup.node import clear_node_ips, configure_addresses, configure_orch_ref, desired_node
from startup.nodename import determine_node_name
from startup.pools import (
    DEFAULT_IPV4_POOL_CIDR,
    DEFAULT_IPV4_POOL_NAME,
    DEFAULT_IPV6_POOL_NAME,
    create_pools,
    existing_blocks,
    generate_ula_prefix,
    plan_default_pools,
    select_default_ipv4_pool,
    validate_plans,
)
from startup_netns import add_address, add_link, in_netns

# The Kubernetes stand-in's fixtures, re-exported so that pytest finds them here.
__all__ = ["kube", "kube_config", "kube_kv"]

# startup_test.go's kubeadmConfig, handed to configureIPPools in every pool test.
KUBEADM = {"ClusterConfiguration": "podSubnet: 192.168.0.0/16"}
ULA = "<random ULA pool>"
V1 = "crd.projectcalico.org/v1"


def link(index: int, name: str, *addrs: str) -> Link:
    return Link(index, name, tuple(ipaddress.ip_interface(a) for a in addrs))


def no_reach(dest, version):
    raise AssertionError("no socket expected")


def host(*links: Link) -> HostView:
    return HostView(list(links), no_reach)


def node_res(name: str, spec: dict):
    return from_dict({"kind": "Node", "apiVersion": API_VERSION, "metadata": {"name": name}, "spec": spec})


def configure_ip_pools(client: DatastoreClient, env: dict, host_ipv4=(), kubeadm=KUBEADM) -> None:
    """configureIPPools as ``startup.run`` performs it: plan, check, create."""
    existing = client.list("IPPool")
    plans = plan_default_pools(env, existing, host_ipv4, lambda: True, kubeadm)
    validate_plans(plans, existing, existing_blocks(client))
    create_pools(client, plans)


# == startup_test.go: DescribeTable "Node IP detection failure cases" =====================

@pytest.mark.parametrize("desc,backend,fails,rr_cluster_id", [
    ("startup should terminate if IP is set to none and Calico is used for networking", "bird", True, ""),
    ("startup should NOT terminate if IP is set to none and Calico is policy-only", "none", False, ""),
    ("startup should NOT terminate and BGPSpec shouldn't be set", "none", False, "rrClusterID"),
])
def test_node_ip_detection_failure_cases(client, desc, backend, fails, rr_cluster_id):
    env = {"CALICO_NETWORKING_BACKEND": backend, "IP": "none", "IP6": ""}
    spec = {}
    if backend != "none" and rr_cluster_id:
        spec["bgp"] = {"routeReflectorClusterID": rr_cluster_id}
    node = node_res("node1", spec)
    if fails:
        with pytest.raises(IPConfigError, match="no IPv4 or IPv6 addresses configured or detected"):
            configure_addresses(client, node, env, host(), None)
        # ... which startup turns into Terminate (exit 1).
        with pytest.raises(Fatal, match="Failed to configure IP addresses"):
            desired_node(client, "node1", env, host(), None)
        return
    assert configure_addresses(client, node, env, host(), None) is False
    assert "bgp" not in node.spec
    plan = desired_node(client, "node1", env, host(), None)
    assert "bgp" not in plan.desired.spec and not plan.needs_write


def test_ip_none_with_bird_terminates_even_with_a_route_reflector_id(client):
    # The same table's first row, with the BGP spec the third row gives a non-"none" backend.
    node = node_res("node1", {"bgp": {"routeReflectorClusterID": "224.0.0.1"}})
    with pytest.raises(IPConfigError):
        configure_addresses(client, node, {"CALICO_NETWORKING_BACKEND": "bird", "IP": "none"}, host(), None)


# == startup_test.go: Describe "Default IPv4 pool CIDR" ===================================

def test_default_pool_must_be_valid():
    ipaddress.ip_network(DEFAULT_IPV4_POOL_CIDR)


# == startup_test.go: DescribeTable "Test IP pool env variables" ==========================
# (description, env, IPv4 CIDR, IPv6 CIDR, IPv4 IPIP, IPv4 VXLAN, IPv6 VXLAN, IPv4 NAT,
#  IPv6 NAT, IPv4 block, IPv6 block, IPv4 selector, IPv6 selector, IPv4 no-export, IPv6 no-export)
POOL_ENV_TABLE = [
    ("No env variables set", {}, "192.168.0.0/16", ULA, "Off", "Off", "Off", True, False, 26, 122, "all()", "all()", False, False),
    ("IPv4 Pool env var set", {"CALICO_IPV4POOL_CIDR": "172.16.0.0/24"}, "172.16.0.0/24", ULA, "Off", "Off", "Off", True, False, 26, 122, "all()", "all()", False, False),
    ("IPv6 Pool env var set", {"CALICO_IPV6POOL_CIDR": "fdff:ffff:ffff:ffff:ffff::/80"}, "192.168.0.0/16", "fdff:ffff:ffff:ffff:ffff::/80", "Off", "Off", "Off", True, False, 26, 122, "all()", "all()", False, False),
    ("Both IPv4 and IPv6 Pool env var set", {"CALICO_IPV4POOL_CIDR": "172.16.0.0/24", "CALICO_IPV6POOL_CIDR": "fdff:ffff:ffff:ffff:ffff::/80"}, "172.16.0.0/24", "fdff:ffff:ffff:ffff:ffff::/80", "Off", "Off", "Off", True, False, 26, 122, "all()", "all()", False, False),
    ("CALICO_IPV4POOL_IPIP set off", {"CALICO_IPV4POOL_IPIP": "off"}, "192.168.0.0/16", ULA, "Off", "Off", "Off", True, False, 26, 122, "all()", "all()", False, False),
    ("CALICO_IPV4POOL_IPIP set Off", {"CALICO_IPV4POOL_IPIP": "Off"}, "192.168.0.0/16", ULA, "Off", "Off", "Off", True, False, 26, 122, "all()", "all()", False, False),
    ("CALICO_IPV4POOL_IPIP set Never", {"CALICO_IPV4POOL_IPIP": "Never"}, "192.168.0.0/16", ULA, "Never", "Off", "Off", True, False, 26, 122, "all()", "all()", False, False),
    ("CALICO_IPV4POOL_IPIP set empty string", {"CALICO_IPV4POOL_IPIP": ""}, "192.168.0.0/16", ULA, "Off", "Off", "Off", True, False, 26, 122, "all()", "all()", False, False),
    ("CALICO_IPV4POOL_IPIP set always", {"CALICO_IPV4POOL_IPIP": "always"}, "192.168.0.0/16", ULA, "Always", "Off", "Off", True, False, 26, 122, "all()", "all()", False, False),
    ("CALICO_IPV4POOL_IPIP set Always", {"CALICO_IPV4POOL_IPIP": "Always"}, "192.168.0.0/16", ULA, "Always", "Off", "Off", True, False, 26, 122, "all()", "all()", False, False),
    ("CALICO_IPV4POOL_IPIP set cross-subnet", {"CALICO_IPV4POOL_IPIP": "cross-subnet"}, "192.168.0.0/16", ULA, "CrossSubnet", "Off", "Off", True, False, 26, 122, "all()", "all()", False, False),
    ("CALICO_IPV4POOL_IPIP set CrossSubnet", {"CALICO_IPV4POOL_IPIP": "CrossSubnet"}, "192.168.0.0/16", ULA, "CrossSubnet", "Off", "Off", True, False, 26, 122, "all()", "all()", False, False),
    ("CALICO_IPV4POOL_BLOCK_SIZE set 27", {"CALICO_IPV4POOL_BLOCK_SIZE": "27"}, "192.168.0.0/16", ULA, "Off", "Off", "Off", True, False, 27, 122, "all()", "all()", False, False),
    ("IPv6 Pool and IPIP set", {"CALICO_IPV6POOL_CIDR": "fdff:ffff:ffff:ffff:ffff::/80", "CALICO_IPV4POOL_IPIP": "always"}, "192.168.0.0/16", "fdff:ffff:ffff:ffff:ffff::/80", "Always", "Off", "Off", True, False, 26, 122, "all()", "all()", False, False),
    ("IPv6 NATOutgoing Set Enabled", {"CALICO_IPV6POOL_NAT_OUTGOING": "true"}, "192.168.0.0/16", ULA, "Off", "Off", "Off", True, True, 26, 122, "all()", "all()", False, False),
    ("IPv6 NATOutgoing Set Disabled", {"CALICO_IPV6POOL_NAT_OUTGOING": "false"}, "192.168.0.0/16", ULA, "Off", "Off", "Off", True, False, 26, 122, "all()", "all()", False, False),
    ("IPv4 NATOutgoing Set Disabled", {"CALICO_IPV4POOL_NAT_OUTGOING": "false"}, "192.168.0.0/16", ULA, "Off", "Off", "Off", False, False, 26, 122, "all()", "all()", False, False),
    ("IPv6 NAT OUTGOING and IPV4 NAT OUTGOING SET", {"CALICO_IPV4POOL_NAT_OUTGOING": "false", "CALICO_IPV6POOL_NAT_OUTGOING": "true"}, "192.168.0.0/16", ULA, "Off", "Off", "Off", False, True, 26, 122, "all()", "all()", False, False),
    ("CALICO_IPV6POOL_BLOCK_SIZE set 123", {"CALICO_IPV6POOL_BLOCK_SIZE": "123"}, "192.168.0.0/16", ULA, "Off", "Off", "Off", True, False, 26, 123, "all()", "all()", False, False),
    ("CALICO_IPV4POOL_NODE_SELECTOR set all()", {"CALICO_IPV4POOL_NODE_SELECTOR": "all()"}, "192.168.0.0/16", ULA, "Off", "Off", "Off", True, False, 26, 122, "all()", "all()", False, False),
    ("CALICO_IPV4POOL_NODE_SELECTOR set has(something)", {"CALICO_IPV4POOL_NODE_SELECTOR": "key == 'something'"}, "192.168.0.0/16", ULA, "Off", "Off", "Off", True, False, 26, 122, "key == 'something'", "all()", False, False),
    ("CALICO_IPV6POOL_NODE_SELECTOR set failed", {"CALICO_IPV6POOL_NODE_SELECTOR": "has(something)"}, "192.168.0.0/16", ULA, "Off", "Off", "Off", True, False, 26, 122, "all()", "has(something)", False, False),
    ("CALICO_IPV4POOL_VXLAN set off", {"CALICO_IPV4POOL_VXLAN": "off"}, "192.168.0.0/16", ULA, "Off", "Off", "Off", True, False, 26, 122, "all()", "all()", False, False),
    ("CALICO_IPV4POOL_VXLAN set Off", {"CALICO_IPV4POOL_VXLAN": "Off"}, "192.168.0.0/16", ULA, "Off", "Off", "Off", True, False, 26, 122, "all()", "all()", False, False),
    ("CALICO_IPV4POOL_VXLAN set Never", {"CALICO_IPV4POOL_VXLAN": "Never"}, "192.168.0.0/16", ULA, "Off", "Never", "Off", True, False, 26, 122, "all()", "all()", False, False),
    ("CALICO_IPV4POOL_VXLAN set empty string", {"CALICO_IPV4POOL_VXLAN": ""}, "192.168.0.0/16", ULA, "Off", "Off", "Off", True, False, 26, 122, "all()", "all()", False, False),
    ("CALICO_IPV4POOL_VXLAN set always", {"CALICO_IPV4POOL_VXLAN": "always"}, "192.168.0.0/16", ULA, "Off", "Always", "Off", True, False, 26, 122, "all()", "all()", False, False),
    ("CALICO_IPV4POOL_VXLAN set Always", {"CALICO_IPV4POOL_VXLAN": "Always"}, "192.168.0.0/16", ULA, "Off", "Always", "Off", True, False, 26, 122, "all()", "all()", False, False),
    ("CALICO_IPV4POOL_VXLAN set cross-subnet", {"CALICO_IPV4POOL_VXLAN": "cross-subnet"}, "192.168.0.0/16", ULA, "Off", "CrossSubnet", "Off", True, False, 26, 122, "all()", "all()", False, False),
    ("CALICO_IPV4POOL_VXLAN set CrossSubnet", {"CALICO_IPV4POOL_VXLAN": "CrossSubnet"}, "192.168.0.0/16", ULA, "Off", "CrossSubnet", "Off", True, False, 26, 122, "all()", "all()", False, False),
    ("CALICO_IPV6POOL_VXLAN set off", {"CALICO_IPV4POOL_VXLAN": "off", "CALICO_IPV6POOL_VXLAN": "off"}, "192.168.0.0/16", ULA, "Off", "Off", "Off", True, False, 26, 122, "all()", "all()", False, False),
    ("CALICO_IPV6POOL_VXLAN set Off", {"CALICO_IPV6POOL_VXLAN": "Off"}, "192.168.0.0/16", ULA, "Off", "Off", "Off", True, False, 26, 122, "all()", "all()", False, False),
    ("CALICO_IPV6POOL_VXLAN set Never", {"CALICO_IPV6POOL_VXLAN": "Never"}, "192.168.0.0/16", ULA, "Off", "Off", "Never", True, False, 26, 122, "all()", "all()", False, False),
    ("CALICO_IPV6POOL_VXLAN set empty string", {"CALICO_IPV6POOL_VXLAN": ""}, "192.168.0.0/16", ULA, "Off", "Off", "Off", True, False, 26, 122, "all()", "all()", False, False),
    ("CALICO_IPV6POOL_VXLAN set always", {"CALICO_IPV6POOL_VXLAN": "always"}, "192.168.0.0/16", ULA, "Off", "Off", "Always", True, False, 26, 122, "all()", "all()", False, False),
    ("CALICO_IPV6POOL_VXLAN set Always", {"CALICO_IPV6POOL_VXLAN": "Always"}, "192.168.0.0/16", ULA, "Off", "Off", "Always", True, False, 26, 122, "all()", "all()", False, False),
    ("CALICO_IPV6POOL_VXLAN set cross-subnet", {"CALICO_IPV6POOL_VXLAN": "cross-subnet"}, "192.168.0.0/16", ULA, "Off", "Off", "CrossSubnet", True, False, 26, 122, "all()", "all()", False, False),
    ("CALICO_IPV6POOL_VXLAN set CrossSubnet", {"CALICO_IPV6POOL_VXLAN": "CrossSubnet"}, "192.168.0.0/16", ULA, "Off", "Off", "CrossSubnet", True, False, 26, 122, "all()", "all()", False, False),
    ("CALICO_IPV4POOL_VXLAN and CALICO_IPV6POOL_VXLAN set CrossSubnet", {"CALICO_IPV4POOL_VXLAN": "CrossSubnet", "CALICO_IPV6POOL_VXLAN": "CrossSubnet"}, "192.168.0.0/16", ULA, "Off", "CrossSubnet", "CrossSubnet", True, False, 26, 122, "all()", "all()", False, False),
    ("CALICO_IPV4POOL_VXLAN set CrossSubnet and CALICO_IPV6POOL_VXLAN set Always", {"CALICO_IPV4POOL_VXLAN": "CrossSubnet", "CALICO_IPV6POOL_VXLAN": "Always"}, "192.168.0.0/16", ULA, "Off", "CrossSubnet", "Always", True, False, 26, 122, "all()", "all()", False, False),
    ("CALICO_IPV4POOL_DISABLE_BGP_EXPORT set true", {"CALICO_IPV4POOL_DISABLE_BGP_EXPORT": "true"}, "192.168.0.0/16", ULA, "Off", "Off", "Off", True, False, 26, 122, "all()", "all()", True, False),
    ("CALICO_IPV6POOL_DISABLE_BGP_EXPORT set true", {"CALICO_IPV6POOL_CIDR": "fdff:ffff:ffff:ffff:ffff::/80", "CALICO_IPV6POOL_DISABLE_BGP_EXPORT": "true"}, "192.168.0.0/16", "fdff:ffff:ffff:ffff:ffff::/80", "Off", "Off", "Off", True, False, 26, 122, "all()", "all()", False, True),
    ("CALICO_IPV4POOL_DISABLE_BGP_EXPORT and CALICO_IPV6POOL_DISABLE_BGP_EXPORT set true", {"CALICO_IPV6POOL_CIDR": "fdff:ffff:ffff:ffff:ffff::/80", "CALICO_IPV4POOL_DISABLE_BGP_EXPORT": "true", "CALICO_IPV6POOL_DISABLE_BGP_EXPORT": "true"}, "192.168.0.0/16", "fdff:ffff:ffff:ffff:ffff::/80", "Off", "Off", "Off", True, False, 26, 122, "all()", "all()", True, True),
    ("CALICO_IPV4POOL_DISABLE_BGP_EXPORT and CALICO_IPV6POOL_DISABLE_BGP_EXPORT set false", {"CALICO_IPV4POOL_DISABLE_BGP_EXPORT": "false", "CALICO_IPV6POOL_DISABLE_BGP_EXPORT": "false"}, "192.168.0.0/16", ULA, "Off", "Off", "Off", True, False, 26, 122, "all()", "all()", False, False),
]


def _mode(word: str) -> str:
    return "Never" if word == "Off" else word  # the Go table's "Off" stands for Never


@pytest.mark.parametrize("row", POOL_ENV_TABLE, ids=[r[0] for r in POOL_ENV_TABLE])
def test_ip_pool_env_variables(client, row):
    (_, env, cidr4, cidr6, ipip4, vxlan4, vxlan6, nat4, nat6, block4, block6, sel4, sel6, noexp4, noexp6) = row
    assert client.list("IPPool") == []
    configure_ip_pools(client, env)
    found4 = found6 = False
    for pool in client.list("IPPool"):
        spec = pool.spec
        net = ipaddress.ip_network(spec["cidr"])
        if spec["cidr"] == cidr4:
            found4 = True
        if cidr6 == ULA:
            found6 = found6 or (net.version == 6 and net.prefixlen == 48 and net.network_address.packed[0] == 0xFD)
        elif spec["cidr"] == cidr6:
            found6 = True
        if net.version == 6:
            assert spec["ipipMode"] == "Never"
            expected = (_mode(vxlan6), nat6, block6, sel6, noexp6)
        else:
            assert spec["ipipMode"] == _mode(ipip4)
            expected = (_mode(vxlan4), nat4, block4, sel4, noexp4)
        assert (spec["vxlanMode"], spec.get("natOutgoing", False), spec["blockSize"], spec["nodeSelector"],
                spec.get("disableBGPExport", False)) == expected, spec
    assert found4 and found6


# == startup_test.go: It "should properly clear node IPs" =================================

def test_should_properly_clear_node_ips(client):
    client.create(node_res("clearips.test.node", {"bgp": {"ipv4Address": "192.168.0.1/24",
                                                          "ipv6Address": "fdff:ffff:ffff:ffff:ffff::/80"}}))
    n = client.get("Node", "clearips.test.node")
    assert n.resource_version
    clear_node_ips(client, n, True, False)
    stored = client.get("Node", "clearips.test.node")
    assert stored.spec["bgp"].get("ipv4Address", "") == ""
    assert stored.spec["bgp"]["ipv6Address"] == "fdff:ffff:ffff:ffff:ffff::/80"
    clear_node_ips(client, stored, False, True)
    assert "bgp" not in client.get("Node", "clearips.test.node").spec


# == startup_test.go: It "should properly handle NO_DEFAULT_POOLS env variable" ===========

def test_should_properly_handle_no_default_pools(client):
    configure_ip_pools(client, {"NO_DEFAULT_POOLS": "true"})
    assert client.list("IPPool") == []


# == startup_test.go: DescribeTable "Test skip pool creation via 'none' CALICO_IPVxPOOL_CIDR ..."

@pytest.mark.parametrize("desc,env,count,want4,want6", [
    ("CALICO_IPV4POOL_CIDR=none", {"CALICO_IPV4POOL_CIDR": "none"}, 1, False, True),
    ("CALICO_IPV6POOL_CIDR=none", {"CALICO_IPV6POOL_CIDR": "none"}, 1, True, False),
    ("CALICO_IPV4POOL_CIDR=none and CALICO_IPV6POOL_CIDR=none",
     {"CALICO_IPV4POOL_CIDR": "none", "CALICO_IPV6POOL_CIDR": "none"}, 0, False, False),
])
def test_skip_pool_creation_via_none(client, desc, env, count, want4, want6):
    configure_ip_pools(client, env)
    names = [p.name for p in client.list("IPPool")]
    assert len(names) == count
    assert (DEFAULT_IPV4_POOL_NAME in names, DEFAULT_IPV6_POOL_NAME in names) == (want4, want6)


# == startup_test.go: DescribeTable "Test IP pool env variables that cause exit" ==========

@pytest.mark.parametrize("desc,env", [
    ("Bad IPv4 Pool CIDR", {"CALICO_IPV4POOL_CIDR": "172.16.0.0a/24"}),
    ("Too small IPv4 Pool CIDR", {"CALICO_IPV4POOL_CIDR": "172.16.0.0/27"}),
    ("Single IPv4 is too small for a pool CIDR", {"CALICO_IPV4POOL_CIDR": "10.0.0.0/32"}),
    ("Small IPv6 is too small for a pool CIDR", {"CALICO_IPV6POOL_CIDR": "fd00::/123"}),
    ("Bad IPv4 Pool with good IPv6 Pool env var set",
     {"CALICO_IPV4POOL_CIDR": "172.16.0.0a/24", "CALICO_IPV6POOL_CIDR": "fdff:ffff:ffff:ffff:ffff::/80"}),
    ("Invalid Env Var combo", {"NO_DEFAULT_POOLS": "true", "CALICO_IPV4POOL_CIDR": "172.16.0.0/24"}),
    ("Bad IPv4 Pool IPIP Mode", {"CALICO_IPV4POOL_IPIP": "badVal"}),
    ("v6 Address in IPv4 Pool CIDR", {"CALICO_IPV4POOL_CIDR": "fdff:ffff:ffff:ffff:ffff::/80"}),
    ("v4 Address in IPv6 Pool CIDR", {"CALICO_IPV6POOL_CIDR": "172.16.0.0/24"}),
    ("bad IPv4 node selector", {"CALICO_IPV4POOL_NODE_SELECTOR": "all(nothing)"}),
    ("bad IPv6 node selector", {"CALICO_IPV6POOL_NODE_SELECTOR": "all(nothing)"}),
    ("CALICO_IPV4POOL_BLOCK_SIZE set too small (19)", {"CALICO_IPV4POOL_BLOCK_SIZE": "19"}),
    ("CALICO_IPV4POOL_BLOCK_SIZE set too large (33)", {"CALICO_IPV4POOL_BLOCK_SIZE": "33"}),
    ("CALICO_IPV6POOL_BLOCK_SIZE set too small (115)", {"CALICO_IPV6POOL_BLOCK_SIZE": "115"}),
    ("CALICO_IPV6POOL_BLOCK_SIZE set too large (129)", {"CALICO_IPV6POOL_BLOCK_SIZE": "129"}),
])
def test_ip_pool_env_variables_that_cause_exit(client, desc, env):
    with pytest.raises(Fatal):
        configure_ip_pools(client, env)


# == startup_test.go: Describe "Test we properly wait for the etcd datastore" =============

def test_we_properly_wait_for_the_etcd_datastore(client):
    started = time.monotonic()
    maybe_wait({"WAIT_FOR_DATASTORE": "true"}, client)
    assert time.monotonic() - started < 5


# == startup_test.go: Describe "Test CLUSTER_TYPE env variable" ===========================

def _default_config(client, env, kubeadm, rancher, datastore_type=ETCDV3, name="node1"):
    cluster_type = cluster.cluster_type_for(env.get("CLUSTER_TYPE", ""), kubeadm, rancher)
    cluster.ensure_default_config(client, name, "v3.32.1", cluster_type, datastore_type)
    return client.get("ClusterInformation", "default").spec.get("clusterType", "")


def _cluster_info(client, cluster_type=""):
    spec = {"clusterType": cluster_type} if cluster_type else {}
    client.create(cluster.build("ClusterInformation", "default", spec))


def test_cluster_type_should_support_an_empty_env_var(client):
    assert _default_config(client, {}, False, False) == ""


def test_cluster_type_should_respect_the_env_var(client):
    # Go runs this one as Windows (",win" at the end); we are Linux only.
    assert _default_config(client, {"CLUSTER_TYPE": "theType"}, True, True) == "theType,kubeadm,rancher"


def test_cluster_type_should_merge_existing_cluster_type_with_the_env_var(client):
    _cluster_info(client, "prePopulated")
    got = _default_config(client, {"CLUSTER_TYPE": "theType"}, True, False)
    assert "theType" in got and "prePopulated" in got


def test_cluster_type_should_append_kdd_in_kdd_mode_with_env_var_also_set(kube_kv):
    client = DatastoreClient(kube_kv)
    _cluster_info(client, "prePopulated")
    got = _default_config(client, {"CLUSTER_TYPE": "theType"}, True, False, KUBERNETES)
    assert "theType" in got and "prePopulated" in got and got.endswith(",kdd")


def test_cluster_type_should_set_kdd_with_no_env_var(kube_kv):
    client = DatastoreClient(kube_kv)
    _cluster_info(client)
    assert _default_config(client, {"CLUSTER_TYPE": ""}, True, False, KUBERNETES) == "kubeadm,kdd"


def test_cluster_type_should_handle_same_value_in_env_var_and_cluster_info(client):
    _cluster_info(client, "type1,type2")
    got = _default_config(client, {"CLUSTER_TYPE": "type1,type1"}, True, False)
    assert got.count("type1") == 1 and got.count("type2") == 1


# == startup_test.go: Describe "Test OrchRef configuration" ===============================

def test_orchref_valid_single_k8s_env_var():
    node = node_res("n", {})
    assert configure_orch_ref(node, {"CALICO_K8S_NODE_REF": "node1"}) is True
    assert node.spec["orchRefs"][0] == {"nodeName": "node1", "orchestrator": "k8s"}


def test_orchref_should_not_configure_any_orchrefs_when_no_valid_env_vars_are_passed():
    node = node_res("n", {})
    assert configure_orch_ref(node, {"CALICO_UNKNOWN_NODE_REF": "node1"}) is False
    assert node.spec.get("orchRefs", []) == []


def test_orchref_should_not_set_an_orchref_if_it_is_already_set():
    node = node_res("n", {"orchRefs": [{"nodeName": "node1", "orchestrator": "k8s"}]})
    assert configure_orch_ref(node, {"CALICO_K8S_NODE_REF": "node1"}) is True
    assert len(node.spec["orchRefs"]) == 1


# == startup_test.go: DescribeTable "Test variations on how IPs are detected." ============
# The Go mock of getInterfaces returns no interface; first-found (the first row) reads the
# real host instead, which always has an address there: eth0 plays that part here.

def _bgp(v4, v6=""):
    bgp = {"ipv4Address": v4}
    if v6:
        bgp["ipv6Address"] = v6
    return {"bgp": bgp}


V6A = "2001:db8:85a3:8d3:1319:8a2e:370:7348/32"
V6B = "2001:db8:85a3:8d3:1319:8a2e:370:7349/32"


@pytest.mark.parametrize("desc,spec,env,links,expected", [
    ('Test with no "IP" env var set', {}, {"IP": ""}, [link(2, "eth0", "10.0.0.11/24")], True),
    ('Test with "IP" env var set to IP', {}, {"IP": "192.168.1.10/24"}, [], True),
    ('Test with "IP" env var set to IP and BGP spec populated with same IP', _bgp("192.168.1.10/24"),
     {"IP": "192.168.1.10/24"}, [], False),
    ('Test with "IP" env var set to IP and BGP spec populated with different IP', _bgp("192.168.1.10/24"),
     {"IP": "192.168.1.11/24"}, [], True),
    ('Test with no "IP6" env var set', {}, {"IP6": ""}, [link(2, "eth0", "10.0.0.11/24")], True),
    ('Test with "IP6" env var set to IP', {}, {"IP6": V6A}, [link(2, "eth0", "10.0.0.11/24")], True),
    ('Test with "IP6" env var set to IP and BGP spec populated with same IP', _bgp("192.168.1.10/24", V6A),
     {"IP": "192.168.1.10/24", "IP6": V6A}, [], False),
    ('Test with "IP6" env var set to IP and BGP spec populated with different IP', _bgp("192.168.1.10/24", V6A),
     {"IP": "192.168.1.10/24", "IP6": V6B}, [], True),
])
def test_variations_on_how_ips_are_detected(desc, spec, env, links, expected):
    assert configure_ips(spec, env, host(*links)) is expected


# == startup_test.go: DescribeTable "Test variations on k8s-internal-ip" ==================

ETH1 = link(2, "eth1", "192.168.1.10/24", "2001:db8:85a3:8d3:1319:8a2e:370:7348/128")


def k8s_node_obj(v4: str, v6: str) -> dict:
    return {"status": {"addresses": [{"type": "InternalIP", "address": v4}, {"type": "InternalIP", "address": v6}]}}


@pytest.mark.parametrize("desc,k8s,expected", [
    ('Test with "IP" env = autodetect ,IP_AUTODETECTION_METHOD = k8s-internal-ip. k8snode = nil', None, False),
    ('Test with "IP" env = autodetect ,IP_AUTODETECTION_METHOD = k8s-internal-ip. k8snode = valid addr',
     k8s_node_obj("192.168.1.10", "2001:db8:85a3:8d3:1319:8a2e:370:7348"), True),
    ('Test with "IP" env = autodetect ,IP_AUTODETECTION_METHOD = k8s-internal-ip. k8snode = addr mismatch',
     k8s_node_obj("192.168.1.1", "2001:db8:85a3:8d3:1319:8a2e:370:7349"), False),
])
def test_variations_on_k8s_internal_ip(desc, k8s, expected):
    env = {"IP": "autodetect", "IP_AUTODETECTION_METHOD": "kubernetes-internal-ip"}
    spec: dict = {}
    try:
        changed = configure_ips(spec, env, host(ETH1), k8s)
    except IPConfigError:
        changed = False  # Go: (false, err)
    assert changed is expected
    if expected:
        assert spec["bgp"]["ipv4Address"] == "192.168.1.10/24"


# == startup_test.go: It "Verify that CIDR value returned using autodetection method
#    k8s-internal-ip is not masked" ==================================================

def test_k8s_internal_ip_cidr_is_not_masked():
    links = host(link(2, "eth1", "192.168.1.10/24", "2001:db8:85a3:8d3:1319:8a2e:370:7348/64"))
    k8s = k8s_node_obj("192.168.1.10", "2001:db8:85a3:8d3:1319:8a2e:370:7348")
    assert str(autodetect_cidr(K8S_INTERNAL_IP, 4, links, k8s)) == "192.168.1.10/24"
    assert str(autodetect_cidr(K8S_INTERNAL_IP, 6, links, k8s)) == "2001:db8:85a3:8d3:1319:8a2e:370:7348/64"


# == startup_test.go: DescribeTable "Test interface is correctly set on Node" =============

def test_interface_is_correctly_set_on_node():
    # 'Test with "IP" env = autodetect. k8snode = nil'. Go's mock lists both families even
    # when asked for IPv4 only; asking for both (IP6=autodetect) gives the same list here.
    spec: dict = {}
    configure_ips(spec, {"IP": "autodetect", "IP6": "autodetect"}, host(ETH1))
    assert spec["interfaces"] == [{"name": "eth1",
                                   "addresses": ["192.168.1.10", "2001:db8:85a3:8d3:1319:8a2e:370:7348"]}]
    # A real enumeration for IP alone (GetInterfaces(..., 4)) keeps only the IPv4 address.
    spec = {}
    configure_ips(spec, {"IP": "autodetect"}, host(ETH1))
    assert spec["interfaces"] == [{"name": "eth1", "addresses": ["192.168.1.10"]}]


# == startup_test.go: Describe "FV tests against K8s API server." =========================

def _race_default_config(make_client, names, datastore_type):
    errors = []
    barrier = threading.Barrier(len(names))

    def one(name):
        client = make_client()
        try:
            barrier.wait()
            cluster.ensure_default_config(client, name, "v3.32.1", "k8s,bgp", datastore_type)
        except Exception as exc:  # collected, as the Go test does
            errors.append(exc)
        finally:
            client.kv.close()

    threads = [threading.Thread(target=one, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def test_multiple_nodes_configure_the_same_global_crd_value_without_error(kube, kube_config):
    names = [f"racenode{i:02d}" for i in range(1, 11)]
    for name in names:
        k8s_node(kube, name)
    assert _race_default_config(lambda: DatastoreClient(KubeKV(kube_config, env={})), names, KUBERNETES) == []
    client = DatastoreClient(KubeKV(kube_config, env={}))
    try:
        assert client.get("ClusterInformation", "default").spec["clusterType"] == "k8s,bgp,kdd"
        assert [f.name for f in client.list("FelixConfiguration")] == ["default"]
    finally:
        client.kv.close()


def test_multiple_nodes_configure_the_same_global_value_without_error_on_etcd(client, etcd_clean_config):
    names = [f"racenode{i:02d}" for i in range(1, 11)]
    assert _race_default_config(lambda: DatastoreClient(EtcdKV(etcd_clean_config)), names, ETCDV3) == []
    assert sorted(f.name for f in client.list("FelixConfiguration")) == ["default"] + [f"node.{n}" for n in names]


def test_should_upgrade_block_affinities_on_startup_if_needed(kube, kube_kv):
    name = conv.affinity_name("upgrade-test-node", "10.11.0.0/26")
    kube.create(V1, "blockaffinities", {"apiVersion": V1, "kind": "BlockAffinity", "metadata": {"name": name},
                                        "spec": {"state": "confirmed", "node": "upgrade-test-node",
                                                 "cidr": "10.11.0.0/26"}})
    upgrade_host_ipam(DatastoreClient(kube_kv), "upgrade-test-node")
    labels = kube.get(V1, "blockaffinities", name)["metadata"]["labels"]
    for key in ("projectcalico.org/affinity-type", "projectcalico.org/ip-version", "projectcalico.org/hostname-hash"):
        assert key in labels


# == startup_test.go: DescribeTable "Test variations on how node names are detected." =====

@pytest.mark.parametrize("desc,nodename,hostname,expected", [
    ("Valid NODENAME and valid HOSTNAME", "abc-def.ghi123", "foo1.bar2-baz3", "abc-def.ghi123"),
    ("Uppercase NODENAME and valid HOSTNAME (leaves uppercase)", "MyHostname-123", "valid.hostname",
     "MyHostname-123"),
    ("Whitespace NODENAME, valid HOSTNAME", "  ", "host123", "host123"),
    ("No NODENAME, uppercase HOSTNAME", "", "HOSTName", "hostname"),
    ("No NODENAME, no HOSTNAME", "", "", "os-host"),
    ("Whitespace NODENAME and HOSTNAME", "  ", "  ", "os-host"),
])
def test_node_name_determination(tmp_path, desc, nodename, hostname, expected):
    env = {"CALICO_NODENAME_FILE": str(tmp_path / "absent")}
    if nodename:
        env["NODENAME"] = nodename
    if hostname:
        env["HOSTNAME"] = hostname
    # names.Hostname() lowercases and trims the OS hostname.
    assert determine_node_name(env, lambda: " OS-Host\n") == expected


# == startup_test.go: Describe "UT for GenerateIPv6ULAPrefix" =============================

def test_ula_prefix_should_generate_a_different_address_each_time():
    seen = {generate_ula_prefix() for _ in range(100)}
    assert len(seen) == 100


def test_ula_prefix_should_generate_a_valid_48_cidr():
    net = ipaddress.ip_network(generate_ula_prefix())
    assert net.version == 6 and net.prefixlen == 48
    packed = net.network_address.packed
    assert packed[0] == 0xFD and any(packed[1:])


# == startup_test.go: DescribeTable "UT for extractKubeadmCIDRs" ===========================

FULL_KUBEADM = """    apiServerCertSANs:
    - 35.223.231.224
    - 127.0.0.1
    apiVersion: kubeadm.k8s.io/v1alpha3
    kind: ClusterConfiguration
    kubernetesVersion: v1.12.7
    networking:
      dnsDomain: cluster.local
      podSubnet: 192.168.0.0/16
      serviceSubnet: 10.96.0.0/12
    unifiedControlPlaneImage: ""
  ClusterStatus: |
    apiEndpoints:
      rafael-cluster-1-kadm-ms:
        advertiseAddress: 10.128.0.73
        bindPort: 6443"""


@pytest.mark.parametrize("desc,data,v4,v6", [
    # "nil config map" is an error in Go; ours is never called without one (neither is Go's).
    ("empty config map", {}, "", ""),
    ("v4 only config map", {"ClusterConfiguration": "podSubnet: 192.168.0.0/16"}, "192.168.0.0/16", ""),
    ("dual v4 config map", {"ClusterConfiguration": "podSubnet: 192.168.0.0/16,10.10.0.0/16"}, "192.168.0.0/16", ""),
    ("v6 only config map", {"ClusterConfiguration": "podSubnet: fdff:ffff:ffff:ffff:ffff::/80"}, "",
     "fdff:ffff:ffff:ffff:ffff::/80"),
    ("dual v6 config map",
     {"ClusterConfiguration": "podSubnet: fdff:ffff:ffff:ffff:ffff::/80,fdff:ffff:ffff:ffff:ffff::/80"}, "",
     "fdff:ffff:ffff:ffff:ffff::/80"),
    ("dual-stack config map", {"ClusterConfiguration": "podSubnet: 192.168.0.0/16,fdff:ffff:ffff:ffff:ffff::/80"},
     "192.168.0.0/16", "fdff:ffff:ffff:ffff:ffff::/80"),
    ("full config map", {"ClusterConfiguration": FULL_KUBEADM}, "192.168.0.0/16", ""),
])
def test_extract_kubeadm_cidrs(desc, data, v4, v6):
    assert extract_kubeadm_cidrs(data) == (v4, v6)


# == startup_test.go: Describe "UTs for monitor-addresses option" =========================

def test_poll_interval_handles_invalid_values():
    assert poll_interval({"AUTODETECT_POLL_INTERVAL": "foobar"}) == 60.0


def test_poll_interval_handles_valid_values():
    assert poll_interval({"AUTODETECT_POLL_INTERVAL": "30m"}) == 1800.0


# == startup_test.go: Describe "UT for IP and IP6" (GetLocalCIDR) =========================

@pytest.mark.parametrize("desc,value,version,links,expected", [
    ("get the local cidr", "1.2.3.4", 4, [link(2, "eth1", "1.2.3.4/24")], "1.2.3.4/24"),
    ("get the original cidr", "4.3.2.1/25", 4, [link(2, "eth1", "1.2.3.4/24")], "4.3.2.1/25"),
    ("get the original ip(v4)", "1.2.3.5", 4, [link(2, "eth1", "1.2.3.4/24")], "1.2.3.5"),
    ("get the local cidr", "1:2:3:4::5", 6, [link(2, "eth1", "1:2:3:4::5/120")], "1:2:3:4::5/120"),
    ("get the original cidr", "5:4:3:2::1/64", 6, [link(2, "eth1", "1:2:3:4::5/120")], "5:4:3:2::1/64"),
    ("get the original ip(v6)", "1:2:3:4::1111", 6, [link(2, "eth1", "1:2:3:4::5/120")], "1:2:3:4::1111"),
])
def test_get_local_cidr(desc, value, version, links, expected):
    assert local_cidr(value, version, links) == expected


# == autodetection/ipv4/poolselector_test.go: "Pool selector tests" =======================

def _a(text):
    return ipaddress.ip_interface(text).ip


def test_pool_selector_select_default_because_not_overlapping():
    assert select_default_ipv4_pool([_a("192.169.64.2/24")]) == "192.168.0.0/16"


def test_pool_selector_select_first_from_range_because_it_is_overlapping():
    assert select_default_ipv4_pool([_a("192.168.64.2/24")]) == "172.16.0.0/16"


def test_pool_selector_select_second_from_range_because_it_is_overlapping():
    assert select_default_ipv4_pool([_a("192.168.64.2/24"), _a("172.16.0.1/16")]) == "172.17.0.0/16"


def test_pool_selector_should_fail_because_all_are_overlapping():
    hosts = [_a("192.168.64.2/24")] + [_a(f"172.{i}.0.0/16") for i in range(16, 32)]
    assert select_default_ipv4_pool(hosts) == "192.168.0.0/16"


def test_get_default_ipv4_pool_select_first_from_range_because_it_is_overlapping(client):
    # "Get default IPv4 pool tests": the host's addresses steer the default pool (no
    # kubeadm ConfigMap, no CALICO_IPV4POOL_CIDR).
    configure_ip_pools(client, {"CALICO_IPV6POOL_CIDR": "none"}, [_a("192.168.64.2/24")], kubeadm=None)
    assert [p.spec["cidr"] for p in client.list("IPPool")] == ["172.16.0.0/16"]


# == autodetection/interfaces_linux_test.go: DescribeTable "GetInterfaces" ================

@pytest.mark.parametrize("desc,names,expected", [
    ("should not skip ibmveth", ["lo", "ibmvetha"], "ibmvetha"),
    ("should skip veth", ["veth123126312783"], None),
    ("should skip vxlan.calico", ["vxlan.calico"], None),
    ("should skip vxlan-v6.calico", ["vxlan-v6.calico"], None),
    ("should skip wireguard.cali", ["wireguard.cali"], None),
    ("should skip wg-v6.cali", ["wg-v6.cali"], None),
    ("should skip nodelocaldns", ["nodelocaldns"], None),
    ("should skip podman", ["podman"], None),
    ("should skip Docker network bridge", ["br-1234deadbeaf"], None),
])
def test_get_interfaces_default_excludes(desc, names, expected):
    found = get_interfaces([link(i, n) for i, n in enumerate(names)], (), DEFAULT_INTERFACES_TO_EXCLUDE, (4,))
    if expected is None:
        assert found == []
    else:
        assert found and found[0].name == expected


def test_get_interfaces_should_use_bulk_fetched_addresses():
    # "GetInterfaces with netlink optimization": addresses attach by index, reverse order.
    ifaces = get_interfaces([link(1, "eth0", "192.168.1.10/24"), link(2, "eth1", "10.0.0.5/16")], (), (), (4,))
    assert [(i.name, [str(c.ip) for c in i.cidrs]) for i in ifaces] == [("eth1", ["10.0.0.5"]),
                                                                        ("eth0", ["192.168.1.10"])]


@pytest.fixture
def ns():
    with Namespace("cgt") as ns:
        ns.run("ip", "link", "add", "eth0", "type", "veth", "peer", "name", "peer0")
        add_address(ns, "eth0", "192.168.1.10/24")
        add_address(ns, "eth0", "fd00:1::10/64")
        ns.run("ip", "link", "set", "eth0", "up")
        ns.run("ip", "link", "set", "peer0", "up")
        add_link(ns, "eth1", "10.0.0.5/8")
        yield ns


def test_get_interfaces_default_interface(ns):
    # "default interface": the real enumeration finds something with the default excludes.
    links = in_netns(ns, read_links)
    found = get_interfaces(links, (), DEFAULT_INTERFACES_TO_EXCLUDE, (4,))
    by_index = sorted((lk for lk in links if lk.name != "lo"), key=lambda lk: -lk.index)
    assert [i.name for i in found] == [lk.name for lk in by_index]  # highest ifindex first, lo skipped
    assert found[0].name == "eth1"


def test_get_all_interface_addrs_groups_addresses_by_interface_index(ns):
    # "getAllInterfaceAddrs: should group addresses by interface index".
    by_name = {lk.name: lk for lk in in_netns(ns, read_links)}
    eth0 = [str(a) for a in by_name["eth0"].addresses]
    assert eth0[0] == "192.168.1.10/24" and "fd00:1::10/64" in eth0
    assert any(a.version == 6 and a.ip.is_link_local for a in by_name["eth0"].addresses)
    assert [str(a) for a in by_name["eth1"].addresses if a.version == 4] == ["10.0.0.5/8"]


# == autodetection/filtered_test.go: Describe "Filtered enumeration tests" / "No filters" ==

def test_filtered_enumeration_no_filters(ns):
    ifaces = get_interfaces(in_netns(ns, read_links), (), (), (4,))
    iface, addr = first_usable(ifaces, 4)
    # "should have enumerated at least IP address for one given known network cidr"
    liface, laddr = first_usable(ifaces, 4, [addr.network])
    assert (liface.name, laddr) == (iface.name, addr)


# == Differences the replay turned up, pinned to Calico v3.32.1's code ====================

def test_ipv6_pool_vxlan_is_not_read_when_the_ipv4_pool_is_disabled(client, caplog):
    # startup.go configureIPPools reads CALICO_IPV6POOL_VXLAN inside `if ipv4PoolEnabled`
    # (v3.32.1 line 972): with CALICO_IPV4POOL_CIDR=none the IPv6 pool gets Never.
    caplog.set_level(logging.WARNING)
    configure_ip_pools(client, {"CALICO_IPV4POOL_CIDR": "none", "CALICO_IPV6POOL_VXLAN": "Always"})
    (pool,) = client.list("IPPool")
    assert (pool.name, pool.spec["vxlanMode"]) == (DEFAULT_IPV6_POOL_NAME, "Never")
    assert "CALICO_IPV6POOL_VXLAN=Always is ignored" in caplog.text
    # ... so not even a bad value stops startup.
    client.delete("IPPool", pool.name)
    configure_ip_pools(client, {"CALICO_IPV4POOL_CIDR": "none", "CALICO_IPV6POOL_VXLAN": "bogus"})
    assert [p.spec["vxlanMode"] for p in client.list("IPPool")] == ["Never"]


def test_ipv6_pool_vxlan_is_read_when_the_ipv4_pool_is_enabled(client):
    configure_ip_pools(client, {"CALICO_IPV6POOL_VXLAN": "Always"})
    assert {p.name: p.spec["vxlanMode"] for p in client.list("IPPool")} == {
        DEFAULT_IPV4_POOL_NAME: "Never", DEFAULT_IPV6_POOL_NAME: "Always"}
    with pytest.raises(Fatal, match="Unrecognized VXLAN mode specified in CALICO_IPV6POOL_VXLAN 'bogus'"):
        plan_default_pools({"CALICO_IPV6POOL_VXLAN": "bogus"}, [], [], lambda: True)


def test_cluster_type_repeated_local_entries_are_all_appended(client):
    # libcalico-go's ensureClusterInformation checks each CLUSTER_TYPE entry against the
    # existing entries only (clientv3/client.go, v3.32.1 lines 418-428).
    _cluster_info(client, "prePopulated")
    assert _default_config(client, {"CLUSTER_TYPE": "a,a"}, False, False) == "prePopulated,a,a"


def test_point_to_point_addresses_read_as_host_routes():
    # vishvananda/netlink v1.3.1 parseAddr: with IFA_LOCAL present (and, for IPv4, differing
    # from IFA_ADDRESS, the peer) the address is IFA_LOCAL with a full-length mask.
    with Namespace("cpp") as ns:
        ns.run("ip", "link", "add", "ppp0", "type", "veth", "peer", "name", "ppp0-peer")
        ns.run("ip", "addr", "add", "10.1.1.1", "peer", "10.1.1.2/24", "dev", "ppp0")
        ns.run("ip", "-6", "addr", "add", "fd00:77::1", "peer", "fd00:77::2/64", "dev", "ppp0", "nodad")
        add_address(ns, "ppp0", "10.2.2.2/24")  # an ordinary address keeps its prefix
        ns.run("ip", "link", "set", "ppp0", "up")
        links = in_netns(ns, read_links)
    ppp0 = {lk.name: lk for lk in links}["ppp0"]
    got = {str(a) for a in ppp0.addresses if not a.ip.is_link_local}
    assert got == {"10.1.1.1/32", "fd00:77::1/128", "10.2.2.2/24"}
    cidr = autodetect_cidr("interface=ppp0", 4, HostView(links, no_reach))
    assert str(cidr) == "10.1.1.1/32"


@pytest.mark.parametrize("subnet,expected", [
    ("fe80::1%eth0/64,10.244.0.0/16", ("", "")),  # Go's ParseCIDR refuses a zone: parsing stops
    ("10.244.0.0/\u0661\u0666", ("", "")),          # ... and non-ASCII digits
    ("10.244.0.0/16,fd00:1::/48", ("10.244.0.0/16", "fd00:1::/48")),
])
def test_kubeadm_entries_parse_as_gos_parse_cidr(subnet, expected):
    assert extract_kubeadm_cidrs({"ClusterConfiguration": f"podSubnet: {subnet}"}) == expected


def test_non_ascii_prefix_digits_are_not_a_cidr(client):
    with pytest.raises(Fatal, match="Invalid CIDR specified in CALICO_IPV4POOL_CIDR"):
        configure_ip_pools(client, {"CALICO_IPV4POOL_CIDR": "10.244.0.0/\u0661\u0666"})
