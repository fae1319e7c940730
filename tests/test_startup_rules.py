"""Startup's decision rules as pure functions: node name, AS, booleans, addresses,
conflicts, default pools, cluster information. The end-to-end behaviour against a real
etcd is in test_startup_etcd.py."""
from __future__ import annotations

import ipaddress
import logging
import os
import stat

import pytest

from node.errors import ValidationError
from node.model import Resource
from startup import cluster, k8s
from startup.asnumber import parse_as_number
from startup.autodetect import HostView
from startup.env import env_bool, poll_interval
from startup.interfaces import Link
from startup.ipconfig import IPConfigError, configure_ips, find_conflicts, interfaces_for, parse_ip_environment
from startup.logs import Fatal, configure
from startup.nodename import determine_node_name, nodename_file, write_nodename_file
from startup.pools import (
    check_pool,
    generate_ula_prefix,
    parse_mode,
    plan_default_pools,
    select_default_ipv4_pool,
)


def link(index, name, *addrs):
    return Link(index, name, tuple(ipaddress.ip_interface(a) for a in addrs))


LINKS = [link(1, "lo", "127.0.0.1/8"), link(2, "eth0", "10.0.0.11/24", "fe80::5/64", "fd00::11/64"),
         link(3, "docker0", "172.17.0.1/16")]


def no_reach(dest, version):
    raise AssertionError("no socket expected")


HOST = HostView(LINKS, no_reach)


# -- node name -------------------------------------------------------------------------

def test_nodename_precedence(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    f = tmp_path / "nodename"
    env = {"NODENAME": "  Node-A ", "HOSTNAME": "host", "CALICO_NODENAME_FILE": str(f)}
    assert determine_node_name(env, lambda: "os") == "Node-A"  # trimmed, case kept
    assert "Using NODENAME environment for node name Node-A" in caplog.text
    f.write_text("stored-name\n")
    env.pop("NODENAME")
    assert determine_node_name(env, lambda: "os") == "stored-name\n"  # verbatim, newline and all
    f.unlink()
    env["HOSTNAME"] = "  Host-B  "
    assert determine_node_name(env, lambda: "os") == "host-b"
    assert "Using HOSTNAME environment (lowercase) for node name host-b" in caplog.text
    env.pop("HOSTNAME")
    assert determine_node_name(env, lambda: " OS-Host ") == "os-host"
    assert "Using auto-detected node name. It is recommended" in caplog.text
    assert "Determined node name: os-host" in caplog.text


def test_nodename_file_default_follows_lib_dir(tmp_path):
    assert nodename_file({"CALICO_LIB_DIR": str(tmp_path)}) == tmp_path / "nodename"
    assert str(nodename_file({})) == "/var/lib/calico/nodename"
    assert nodename_file({"CALICO_NODENAME_FILE": "/x/y", "CALICO_LIB_DIR": "/z"}) == type(tmp_path)("/x/y")


def test_unreadable_nodename_file_is_fatal(tmp_path):
    (tmp_path / "dir").mkdir()
    with pytest.raises(Fatal, match="Failed to read"):
        determine_node_name({"CALICO_NODENAME_FILE": str(tmp_path / "dir")}, lambda: "os")


def test_hostname_failure_is_fatal():
    def broken():
        raise OSError("no hostname")

    with pytest.raises(Fatal, match="Unable to determine hostname"):
        determine_node_name({"CALICO_NODENAME_FILE": "/nonexistent/x"}, broken)


def test_nodename_file_written_without_newline_mode_0644(tmp_path):
    path = tmp_path / "nodename"
    path.write_text("old-and-longer-name\n")
    os.chmod(path, 0o600)
    write_nodename_file(path, "node1")
    assert path.read_bytes() == b"node1"
    fresh = tmp_path / "fresh"
    old_umask = os.umask(0)
    try:
        write_nodename_file(fresh, "n")
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o644
    with pytest.raises(Fatal, match="Unable to write to"):
        write_nodename_file(tmp_path / "missing" / "nodename", "n")


# -- small parsers ----------------------------------------------------------------------

@pytest.mark.parametrize("text,value", [("64512", 64512), ("0", 0), ("4294967295", 4294967295),
                                        ("1.10", 65546), ("65535.65535", 4294967295), ("007", 7)])
def test_as_number(text, value):
    assert parse_as_number(text) == value


@pytest.mark.parametrize("text", ["", "-1", "+5", " 64512", "4294967296", "1.65536", "1.2.3", "a", "1.", ".1",
                                  "64_512", "0x10"])
def test_bad_as_number(text):
    with pytest.raises(ValueError, match="invalid AS Number format"):
        parse_as_number(text)


@pytest.mark.parametrize("env,value", [({}, True), ({"X": ""}, True), ({"X": "true"}, True), ({"X": "yes"}, True),
                                       ({"X": "junk"}, True), ({"X": "FALSE"}, False), ({"X": "0"}, False),
                                       ({"X": "No"}, False), ({"X": "n"}, False), ({"X": "F"}, False)])
def test_env_bool(env, value, caplog):
    caplog.set_level(logging.INFO)
    assert env_bool(env, "X", True) is value
    assert ("X is %s" % ("true" if value else "false")) in caplog.text
    assert ("(defaulted)" in caplog.text) is (env == {})


@pytest.mark.parametrize("text,seconds", [("", 60.0), ("5s", 5.0), ("1m30s", 90.0), ("250ms", 0.25),
                                          ("5", 60.0), ("soon", 60.0), ("0s", 60.0), ("-5s", 60.0)])
def test_poll_interval(text, seconds):
    assert poll_interval({"AUTODETECT_POLL_INTERVAL": text}) == seconds


@pytest.fixture
def root_logging():
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for h in list(root.handlers):
        root.removeHandler(h)
    for h in handlers:
        root.addHandler(h)
    root.setLevel(level)


def test_log_level(root_logging):
    assert configure("startup", {"CALICO_STARTUP_LOGLEVEL": "DEBUG"}) == logging.DEBUG
    assert configure("startup", {"CALICO_STARTUP_LOGLEVEL": "warn"}) == logging.WARNING
    assert configure("startup", {"CALICO_STARTUP_LOGLEVEL": "loud"}) == logging.INFO
    assert configure("startup", {}) == logging.INFO


# -- addresses -------------------------------------------------------------------------

def configured(spec, env, host=HOST):
    changed = configure_ips(spec, env, host)
    return changed, spec


def test_ip_unset_new_node_autodetects_ipv4_only():
    changed, spec = configured({}, {})
    assert changed
    assert spec == {"bgp": {"ipv4Address": "10.0.0.11/24"}}  # IP unset: no spec.interfaces


def test_ip_unset_keeps_existing_address():
    changed, spec = configured({"bgp": {"ipv4Address": "10.9.9.9/16"}}, {})
    assert not changed
    assert spec["bgp"]["ipv4Address"] == "10.9.9.9/16"


def test_ip_autodetect_replaces_existing_and_records_interfaces():
    changed, spec = configured({"bgp": {"ipv4Address": "10.9.9.9/16"}}, {"IP": "autodetect"})
    assert changed
    assert spec == {"bgp": {"ipv4Address": "10.0.0.11/24"}, "interfaces": [
        {"name": "eth0", "addresses": ["10.0.0.11"]}]}


def test_ip_none_keeps_existing_and_writes_nothing_new(caplog):
    caplog.set_level(logging.INFO)
    changed, spec = configured({"bgp": {"ipv4Address": "10.9.9.9/16"}}, {"IP": "none", "IP6": "autodetect"})
    assert spec["bgp"] == {"ipv4Address": "10.9.9.9/16", "ipv6Address": "fd00::11/64"}
    assert "Autodetection for IPv4 disabled, keeping existing value: 10.9.9.9/16" in caplog.text
    assert "Unable to confirm IPv4 address 10.9.9.9 is assigned to this host" in caplog.text
    # Only IPv6 is enumerated for spec.interfaces; link-local included, sorted by name.
    assert spec["interfaces"] == [{"name": "eth0", "addresses": ["fe80::5", "fd00::11"]}]
    assert changed


def test_explicit_ip_takes_local_prefix_or_32():
    _, spec = configured({}, {"IP": "10.0.0.11"})
    assert spec["bgp"]["ipv4Address"] == "10.0.0.11/24"
    _, spec = configured({}, {"IP": "10.5.5.5"})
    assert spec["bgp"]["ipv4Address"] == "10.5.5.5/32"
    _, spec = configured({}, {"IP": "10.0.0.11/16"})
    assert spec["bgp"]["ipv4Address"] == "10.0.0.11/16"


def test_explicit_ip6_gets_no_prefix_lookup():
    _, spec = configured({}, {"IP": "none", "IP6": "fd00::11"})
    assert spec["bgp"] == {"ipv6Address": "fd00::11/128"}


@pytest.mark.parametrize("env,message", [
    ({"IP": "fd00::1"}, "Environment does not contain a valid IPv4 address: IP=fd00::1"),
    ({"IP": "10.0.0.300"}, "Environment does not contain a valid IPv4 address: IP=10.0.0.300"),
    ({"IP": "Autodetect"}, "Environment does not contain a valid IPv4 address: IP=Autodetect"),
    ({"IP": "none", "IP6": "10.0.0.1"}, "Environment does not contain a valid IPv6 address: IP6=10.0.0.1"),
    ({"IP_AUTODETECTION_METHOD": "nope"}, "Invalid IP autodetection method: nope"),
])
def test_bad_ip_values_are_fatal(env, message):
    with pytest.raises(Fatal, match=message.replace(".", r"\.")):
        configure_ips({}, env, HOST)


def test_detection_failures():
    bare = HostView([link(1, "lo", "127.0.0.1/8")], no_reach)
    with pytest.raises(IPConfigError, match="failed to autodetect an IPv4 address"):
        configure_ips({}, {}, bare)
    with pytest.raises(IPConfigError, match="failed to autodetect an IPv6 address"):
        configure_ips({}, {"IP": "10.1.1.1", "IP6": "autodetect"}, bare)
    # An address is kept when detection fails and one is stored (lo is excluded, so
    # spec.interfaces stays empty and nothing changed).
    spec = {"bgp": {"ipv4Address": "10.1.1.1/24"}}
    assert configure_ips(spec, {"IP": "autodetect"}, bare) is False
    assert spec == {"bgp": {"ipv4Address": "10.1.1.1/24"}}


def test_parse_ip_environment_keeps_host_bits():
    assert parse_ip_environment("IP", "10.1.2.3/8", 4) == "10.1.2.3/8"
    assert parse_ip_environment("IP6", "fd00::1", 6) == "fd00::1/128"
    # An IPv4-mapped address is IPv4 (Go's IP.To4), so IP takes it and IP6 refuses it.
    assert parse_ip_environment("IP", "::ffff:10.1.2.3", 4) == "10.1.2.3/32"
    with pytest.raises(Fatal):
        parse_ip_environment("IP6", "::ffff:10.1.2.3", 6)


def test_interfaces_for_families():
    assert interfaces_for({}, LINKS) == []
    assert interfaces_for({"IP": "none", "IP6": "none"}, LINKS) == []
    assert interfaces_for({"IP": "1.2.3.4", "IP6": "autodetect"}, LINKS) == [
        {"name": "eth0", "addresses": ["10.0.0.11", "fe80::5", "fd00::11"]}]
    links = [link(1, "zeta", "10.1.1.1/24"), link(2, "alpha"), link(3, "veth9", "10.2.2.2/24")]
    assert interfaces_for({"IP": "autodetect"}, links) == [{"name": "alpha"},
                                                          {"name": "zeta", "addresses": ["10.1.1.1"]}]


def node(name, **bgp):
    spec = {"bgp": bgp} if bgp else {}
    return Resource("Node", {"name": name}, spec, {})


def test_conflicts_compare_addresses_not_prefixes(caplog):
    ours = {"bgp": {"ipv4Address": "10.0.0.11/24", "ipv6Address": "fd00::11/64"}}
    others = [node("a", ipv4Address="10.0.0.11/16"), node("b", ipv6Address="fd00::11"), node("c")]
    assert find_conflicts("me", ours, others) == (True, True, "IPv6 address conflict")
    assert "Calico node 'a' is already using the IPv4 address 10.0.0.11." in caplog.text
    assert find_conflicts("me", ours, [node("d", ipv4Address="10.0.0.12/24")]) == (False, False, "")


def test_same_name_with_other_address_only_warns(caplog):
    ours = {"bgp": {"ipv4Address": "10.0.0.11/24"}}
    assert find_conflicts("me", ours, [node("me", ipv4Address="10.0.0.99/24")]) == (False, False, "")
    assert "IPv4 address has changed. This could happen if there are multiple nodes with the same name." \
        in caplog.text


def test_unparsable_address_on_another_node_is_an_error():
    with pytest.raises(IPConfigError, match="Error parsing IPv4 CIDR 'junk' for node 'x'"):
        find_conflicts("me", {"bgp": {"ipv4Address": "10.0.0.11/24"}}, [node("x", ipv4Address="junk")])


# -- default pools ---------------------------------------------------------------------

def plan(env, existing=(), host=(ipaddress.ip_address("10.0.0.11"),), v6=True, kubeadm=None):
    return plan_default_pools(env, list(existing), list(host), lambda: v6, kubeadm,
                              ula=lambda: "fd5f:2b12:a3c4::/48")


def pool(name, cidr, **spec):
    return Resource("IPPool", {"name": name}, {"cidr": cidr, **spec})


def test_default_pools():
    plans = plan({})
    assert [p.resource.to_dict()["spec"] for p in plans] == [
        {"cidr": "192.168.0.0/16", "vxlanMode": "Never", "ipipMode": "Never", "natOutgoing": True, "blockSize": 26,
         "nodeSelector": "all()", "allowedUses": ["Workload", "Tunnel"], "assignmentMode": "Automatic"},
        {"cidr": "fd5f:2b12:a3c4::/48", "vxlanMode": "Never", "ipipMode": "Never", "blockSize": 122,
         "nodeSelector": "all()", "allowedUses": ["Workload", "Tunnel"], "assignmentMode": "Automatic"}]
    assert [p.resource.name for p in plans] == ["default-ipv4-ippool", "default-ipv6-ippool"]


def test_default_ipv4_pool_avoids_host_addresses():
    a = ipaddress.ip_address
    assert select_default_ipv4_pool([a("10.0.0.1")]) == "192.168.0.0/16"
    assert select_default_ipv4_pool([a("192.168.1.1")]) == "172.16.0.0/16"
    assert select_default_ipv4_pool([a("192.168.1.1"), a("172.16.9.9"), a("172.17.0.1")]) == "172.18.0.0/16"
    taken = [a("192.168.0.1")] + [a(f"172.{i}.0.1") for i in range(16, 32)]
    assert select_default_ipv4_pool(taken) == "192.168.0.0/16"
    assert plan({"CALICO_IPV6POOL_CIDR": "none"}, host=[a("192.168.3.3")])[0].cidr == "172.16.0.0/16"


def test_ula_prefix_shape():
    prefix = generate_ula_prefix(lambda n: bytes([0x5f, 0x2b, 0x12, 0xa3, 0xc4]))
    assert prefix == "fd5f:2b12:a3c4::/48"
    net = ipaddress.ip_network(generate_ula_prefix())
    assert net.prefixlen == 48 and net.subnet_of(ipaddress.ip_network("fd00::/8"))


def test_pool_settings_from_env():
    env = {"CALICO_IPV4POOL_CIDR": "10.244.7.0/16", "CALICO_IPV4POOL_BLOCK_SIZE": "24",
           "CALICO_IPV4POOL_IPIP": "Cross-Subnet", "CALICO_IPV4POOL_NAT_OUTGOING": "no",
           "CALICO_IPV4POOL_DISABLE_BGP_EXPORT": "", "CALICO_IPV4POOL_NODE_SELECTOR": "has(edge)",
           "CALICO_IPV6POOL_CIDR": "fd00:1::/64", "CALICO_IPV6POOL_BLOCK_SIZE": "+120",
           "CALICO_IPV6POOL_VXLAN": "ALWAYS", "CALICO_IPV6POOL_NAT_OUTGOING": "true",
           "CALICO_IPV6POOL_IPIP": "Always"}  # never read: IPv6 pools cannot use IPIP
    v4, v6 = plan(env)
    assert v4.resource.spec == {"cidr": "10.244.0.0/16", "vxlanMode": "Never", "ipipMode": "CrossSubnet",
                                "disableBGPExport": True, "blockSize": 24, "nodeSelector": "has(edge)",
                                "allowedUses": ["Workload", "Tunnel"], "assignmentMode": "Automatic"}
    assert v6.resource.spec == {"cidr": "fd00:1::/64", "vxlanMode": "Always", "ipipMode": "Never",
                                "natOutgoing": True, "blockSize": 120, "nodeSelector": "all()",
                                "allowedUses": ["Workload", "Tunnel"], "assignmentMode": "Automatic"}


def test_pools_skipped():
    assert plan({"NO_DEFAULT_POOLS": "TRUE"}) == []
    assert [p.version for p in plan({"CALICO_IPV4POOL_CIDR": "none"})] == [6]
    assert [p.version for p in plan({"CALICO_IPV6POOL_CIDR": "none"})] == [4]
    assert [p.version for p in plan({}, v6=False)] == [4]
    existing = [pool("other", "10.10.0.0/16", disabled=True)]
    assert [p.version for p in plan({"CALICO_IPV4POOL_IPIP": "bogus"}, existing)] == [6]


@pytest.mark.parametrize("env,message", [
    ({"NO_DEFAULT_POOLS": "true", "CALICO_IPV4POOL_CIDR": "none"},
     "Invalid configuration with NO_DEFAULT_POOLS defined and CALICO_IPV4POOL_CIDR or CALICO_IPV6POOL_CIDR defined."),
    ({"CALICO_IPV4POOL_BLOCK_SIZE": "26x"}, "Unable to convert blocksize to int"),
    ({"CALICO_IPV4POOL_BLOCK_SIZE": "19"}, "Invalid blocksize 19 for version 4"),
    ({"CALICO_IPV4POOL_BLOCK_SIZE": "33"}, "Invalid blocksize 33 for version 4"),
    ({"CALICO_IPV6POOL_BLOCK_SIZE": "115"}, "Invalid blocksize 115 for version 6"),
    ({"CALICO_IPV6POOL_BLOCK_SIZE": " 122"}, "Unable to convert blocksize to int"),
    ({"CALICO_IPV4POOL_NODE_SELECTOR": "a =="}, "Invalid node selector 'a ==' for version 4"),
    ({"CALICO_IPV6POOL_NODE_SELECTOR": "has("}, "Invalid node selector 'has(' for version 6"),
    ({"CALICO_IPV4POOL_CIDR": "10.0.0.0"}, "Invalid CIDR specified in CALICO_IPV4POOL_CIDR '10.0.0.0'"),
    ({"CALICO_IPV4POOL_CIDR": "fd00::/48"}, "Invalid CIDR specified in CALICO_IPV4POOL_CIDR 'fd00::/48'"),
    ({"CALICO_IPV6POOL_CIDR": "10.0.0.0/8"}, "Invalid CIDR specified in CALICO_IPV6POOL_CIDR '10.0.0.0/8'"),
    ({"CALICO_IPV4POOL_IPIP": "sometimes"}, "Unrecognized IPIP mode specified in CALICO_IPV4POOL_IPIP 'sometimes'"),
    ({"CALICO_IPV4POOL_VXLAN": "maybe"}, "Unrecognized VXLAN mode specified in CALICO_IPV4POOL_VXLAN 'maybe'"),
    ({"CALICO_IPV6POOL_VXLAN": "x"}, "Unrecognized VXLAN mode specified in CALICO_IPV6POOL_VXLAN 'x'"),
])
def test_bad_pool_settings_are_fatal(env, message):
    with pytest.raises(Fatal) as info:
        plan(env)
    assert message in str(info.value)


def test_parse_mode():
    assert [parse_mode(m) for m in ("", "off", "never", "crosssubnet", "cross-subnet", "always", "on")] == [
        "Never", "Never", "Never", "CrossSubnet", "CrossSubnet", "Always", None]


def test_kubeadm_pod_subnets_are_used_when_no_cidr_is_set():
    kubeadm = {"ClusterConfiguration": "networking:\n  podSubnet: 10.244.0.0/16,fd00:44::/56\n  x: y\n"}
    v4, v6 = plan({}, kubeadm=kubeadm)
    assert (v4.cidr, v6.cidr) == ("10.244.0.0/16", "fd00:44::/56")
    v4, v6 = plan({"CALICO_IPV4POOL_CIDR": "10.9.0.0/16"}, kubeadm=kubeadm)
    assert (v4.cidr, v6.cidr) == ("10.9.0.0/16", "fd00:44::/56")


def test_kubeadm_extraction_stops_at_first_bad_entry():
    assert k8s.extract_kubeadm_cidrs({"a": "podSubnet: 10.244.0.0/16, fd00::/48"}) == ("10.244.0.0/16", "")
    assert k8s.extract_kubeadm_cidrs({"a": "podSubnet: fd00::/48,10.1.0.0/16"}) == ("10.1.0.0/16", "fd00::/48")
    assert k8s.extract_kubeadm_cidrs({"a": "nothing here"}) == ("", "")


@pytest.mark.parametrize("spec,reason", [
    ({"cidr": "10.0.0.0/16", "ipipMode": "Always", "vxlanMode": "Always"}, "IPIP and VXLAN cannot both be enabled"),
    ({"cidr": "fd00::/48", "ipipMode": "Always"}, "IPIP is not supported on an IPv6 pool"),
    ({"cidr": "10.0.0.1/16"}, "IPPool CIDR is not strictly masked"),
    ({"cidr": "169.254.0.0/16"}, "overlaps with the link-local range"),
    ({"cidr": "fe80::/64", "blockSize": 122}, "overlaps with the link-local range"),
    ({"cidr": "10.0.0.0/28", "blockSize": 26}, "is longer than the block size"),
    ({"cidr": "10.1.0.0/16"}, "IPPool(new) CIDR overlaps with IPPool(old) CIDR 10.0.0.0/8"),
    ({"cidr": "10.200.0.0/16", "blockSize": 26}, "IPPool blocksSize conflicts with existing allocations"),
])
def test_pool_create_rules(spec, reason):
    existing = [pool("old", "10.0.0.0/8"), pool("v6", "fd00::/48")] if "overlaps with IPPool" in reason else []
    blocks = ["10.200.1.0/24"]
    with pytest.raises(ValidationError) as info:
        check_pool(pool("new", **spec), existing, blocks)
    assert reason in str(info.value)


def test_pool_create_rules_accept_good_pool():
    check_pool(pool("new", "10.200.0.0/16", blockSize=24), [pool("v6", "fd00::/48")], ["10.200.1.0/24"])


# -- cluster information ---------------------------------------------------------------

def test_cluster_type():
    assert cluster.cluster_type_for("", False, False) == ""
    assert cluster.cluster_type_for("k8s,bgp", True, True) == "k8s,bgp,kubeadm,rancher"
    assert cluster.cluster_type_for("", False, True) == "rancher"
    assert cluster.datastore_cluster_type("k8s,bgp,", "kubernetes") == "k8s,bgp,kdd"
    assert cluster.datastore_cluster_type("", "kubernetes") == "kdd"
    assert cluster.datastore_cluster_type("k8s", "etcdv3") == "k8s"
    assert cluster.merge_cluster_type("k8s,bgp", "bgp,kubeadm,k8s,x") == "k8s,bgp,kubeadm,x"
    assert cluster.merge_cluster_type("", "a") == "a"
    assert cluster.merge_cluster_type("a", "") == "a"


def test_cluster_information_update_rules():
    spec = cluster.updated_cluster_info_spec({"clusterGUID": "g", "calicoVersion": "v1", "datastoreReady": False},
                                             "v2", "k8s")
    assert spec == {"clusterGUID": "g", "calicoVersion": "v2", "datastoreReady": False, "clusterType": "k8s"}
    spec = cluster.updated_cluster_info_spec({}, "", "")
    assert len(spec["clusterGUID"]) == 32 and spec["datastoreReady"] is True and "calicoVersion" not in spec


# -- kubernetes ----------------------------------------------------------------------

def test_kube_config_detection(tmp_path):
    kubeconfig = tmp_path / "kubeconfig"
    assert k8s.kube_config_source({"KUBECONFIG": str(kubeconfig)}) is None
    kubeconfig.write_text("apiVersion: v1\n")
    assert k8s.kube_config_source({"KUBECONFIG": str(kubeconfig)}) == str(kubeconfig)
    token = tmp_path / "token"
    in_cluster = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    assert k8s.kube_config_source(in_cluster, str(token)) is None
    token.write_text("t")
    assert k8s.kube_config_source(in_cluster, str(token)) == "in-cluster service account"
    assert k8s.k8s_node_name({"CALICO_K8S_NODE_REF": "k"}, "n") == "k"
    assert k8s.k8s_node_name({}, "n") == "n"
