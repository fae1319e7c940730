"""The BGP picture and its parts, on small hand-built clusters.

The golden corpus covers Calico's own scenarios; these tests pin decisions it does not
isolate (string-ordered passive side, first-emitter-wins, error isolation, WireGuard,
service ranges, endpoint status files, bad input).
"""
from __future__ import annotations

import logging

import pytest

import confd_fixtures as fx
from node.confd.filters import FilterError, bird_filters, function_symbol, shorten_name
from node.confd.inputs import LocalWorkload, Settings, load_files, parse_endpoint_status, read_endpoint_status_dir
from node.confd.picture import RenderError, build_picture, hash_router_id
from node.confd.render import render, render_family
from node.errors import ValidationError

ME = Settings(nodename="me")


def _peers(inputs, version=4, settings=ME):
    return {p.name: p for p in build_picture(inputs, settings).family(version).peers}


def test_hash_router_id_matches_calico():
    assert hash_router_id("kube-master") == "25.79.212.8"       # the spec's example
    for name in ("a", "node-1", "x" * 300):
        first = int(hash_router_id(name).split(".")[0])
        assert first <= 223                                       # never multicast or reserved


def test_mesh_passive_side_compares_addresses_as_strings():
    peers = _peers(fx.inputs(fx.node("me", ipv4="10.0.0.9/24"), fx.node("n10", ipv4="10.0.0.10/24"),
                             fx.node("n8", ipv4="10.0.0.8/24")))
    # "10.0.0.10" < "10.0.0.9" as strings, although 10 > 9 numerically: we connect to it.
    assert peers["Mesh_10_0_0_10"].passive is False
    assert peers["Mesh_10_0_0_8"].passive is False
    assert list(peers) == ["Mesh_10_0_0_10", "Mesh_10_0_0_8"]
    other = _peers(fx.inputs(fx.node("me", ipv4="10.0.0.10/24"), fx.node("n9", ipv4="10.0.0.9/24")))
    assert other["Mesh_10_0_0_9"].passive is True


def test_mesh_peer_as_falls_back_to_our_own_as_and_route_reflectors_leave_the_mesh():
    peers = _peers(fx.inputs(fx.bgp_config(asNumber=65000),
                             fx.node("me", ipv4="10.0.0.1/24", asn=65010),
                             fx.node("plain", ipv4="10.0.0.2/24"),
                             fx.node("own-as", ipv4="10.0.0.3/24", asn=65020),
                             fx.node("rr", ipv4="10.0.0.4/24", rr_cluster_id="1.1.1.1")))
    assert peers["Mesh_10_0_0_2"].as_number == "65010"            # ours, not the global 65000
    assert peers["Mesh_10_0_0_3"].as_number == "65020"
    assert "Mesh_10_0_0_4" not in peers
    rr = _peers(fx.inputs(fx.node("me", ipv4="10.0.0.1/24", rr_cluster_id="1.1.1.1"),
                          fx.node("plain", ipv4="10.0.0.2/24")))
    assert rr == {}


def test_global_peering_wins_over_node_specific_and_first_bgppeer_by_name_wins():
    inputs = fx.inputs(
        fx.node("me", ipv4="10.0.0.1/24"),
        fx.bgp_config(nodeToNodeMeshEnabled=False),
        fx.peer("a-global", peerIP="192.0.2.1", asNumber=65001),
        fx.peer("b-node", peerIP="192.0.2.1", asNumber=65002, node="me"),
        fx.peer("c-dup", peerIP="192.0.2.1", asNumber=65003),
        fx.peer("d-node-only", peerIP="192.0.2.2", asNumber=65004, node="me"),
        fx.peer("e-other-node", peerIP="192.0.2.3", asNumber=65005, node="someone-else"),
    )
    peers = _peers(inputs)
    assert set(peers) == {"Global_192_0_2_1", "Node_192_0_2_2"}
    assert peers["Global_192_0_2_1"].as_number == "65001"
    assert peers["Node_192_0_2_2"].as_number == "65004"


def test_selector_peers_reverse_peering_and_route_reflector_clients():
    inputs = fx.inputs(
        fx.bgp_config(nodeToNodeMeshEnabled=False),
        fx.node("me", ipv4="10.0.0.1/24", labels={"rr": "true"}, rr_cluster_id="9.9.9.9"),
        fx.node("client", ipv4="10.0.0.2/24"),
        fx.node("other-rr", ipv4="10.0.0.3/24", labels={"rr": "true"}, rr_cluster_id="9.9.9.9"),
        fx.peer("to-rrs", nodeSelector="!has(rr)", peerSelector="has(rr)"),
        fx.peer("rr-mesh", nodeSelector="has(rr)", peerSelector="has(rr)"),
    )
    peers = _peers(inputs)
    # "client" peers with us through to-rrs; we get the reverse peering automatically.
    assert peers["Node_10_0_0_2"].rr_cluster_id == "9.9.9.9"          # a client: rr client lines
    assert peers["Node_10_0_0_3"].rr_cluster_id == ""                 # same cluster: not a client
    manual = fx.inputs(*inputs.nodes.values(), *inputs.bgp_configs.values(),
                       fx.peer("to-rrs", nodeSelector="!has(rr)", peerSelector="has(rr)", reversePeering="Manual"))
    assert "Node_10_0_0_2" not in _peers(manual)


def test_peer_ip_with_port_names_the_protocol_and_calico_node_peers_get_the_passive_tie_break():
    inputs = fx.inputs(
        fx.node("me", ipv4="10.0.0.5/24"),
        fx.node("other", ipv4="10.0.0.7/24"),
        fx.bgp_config(nodeToNodeMeshEnabled=False, listenPort=1790),
        fx.peer("by-ip", peerIP="10.0.0.7", asNumber=64512),
        fx.peer("external", peerIP="[2001:db8::1]:1179", asNumber=65000),
        fx.peer("plain", peerIP="10.0.0.3:179", asNumber=65000, keepOriginalNextHop=True,
                ttlSecurity=2, maxRestartTime="90.5s", keepaliveTime="30s", numAllowedLocalASNumbers=1),
    )
    picture = build_picture(inputs, ME)
    v4 = {p.name: p for p in picture.v4.peers}
    calico = v4["Global_10_0_0_7_port_1790"]                           # a Calico node: its listen port
    assert calico.passive is True and calico.port == "1790"           # "10.0.0.7" > "10.0.0.5"
    plain = v4["Global_10_0_0_3_port_179"]
    assert (plain.ttl_security, plain.graceful_restart, plain.keepalive_time, plain.num_allow_local_as) == \
        ("2", "91", "30", "1")
    assert plain.next_hop_keep is True                                 # eBGP, legacy keepOriginalNextHop
    assert picture.v6.peers == []                                      # no IPv6 address on this node
    text = render(picture).files["bird6.cfg"]
    assert "protocol bgp" not in text and "router id 10.0.0.5;" in text
    assert "listen bgp port 1790;" in render(picture).files["bird.cfg"]


def test_bad_bgpfilter_fails_only_the_main_file_of_its_family(caplog):
    # A cidr without a matchOperator: Calico refuses it on write, so it is stored raw, as
    # another writer would leave it, for the renderer to deal with.
    bad = fx.stored("BGPFilter", "bad", importV6=[{"cidr": "fd00::/64", "action": "Accept"}])
    inputs = fx.inputs(fx.node("me", ipv4="10.0.0.1/24", ipv6="fd00::1/64"), bad)
    with pytest.raises(FilterError, match=r"BGPFilter\(bad\)\.spec\.importV6\[0\]\.matchOperator"):
        bird_filters(inputs.bgp_filters, 6)
    picture = build_picture(inputs, ME)
    assert render_family(picture.v4)["bird.cfg"]
    with pytest.raises(RenderError, match="bird6.cfg.*importV6"):
        render_family(picture.v6)


def test_filter_names_are_shortened_to_fit_bird_symbols():
    long_name = "a-very-long-bgp-filter-name-that-goes-on-and-on-forever"
    symbol = function_symbol(long_name, "export", 6)
    assert len(symbol.strip("'")) == 64
    assert symbol.startswith(f"'bgp_{long_name[:28]}_") and symbol.endswith("_exportFilterV6'")
    assert shorten_name("short", 45) == "short"
    assert shorten_name(long_name, 45) != shorten_name(long_name + "x", 45)


def test_this_nodes_node_missing_is_an_error_not_an_empty_config():
    with pytest.raises(RenderError, match="'me' does not exist"):
        build_picture(fx.inputs(fx.node("other", ipv4="10.0.0.2/24")), ME)
    with pytest.raises(RenderError, match="NODENAME"):
        build_picture(fx.inputs(), Settings(nodename=""))


def test_node_with_malformed_address_is_ignored_with_an_error(caplog):
    broken = fx.node("broken", ipv4="10.0.0.3/24")
    broken.spec["bgp"]["ipv4Address"] = "10.0.0.300/24"   # as a lenient datastore read could hold
    caplog.set_level(logging.ERROR)
    peers = _peers(fx.inputs(fx.node("me", ipv4="10.0.0.1/24"), fx.node("ok", ipv4="10.0.0.2/24"), broken))
    assert set(peers) == {"Mesh_10_0_0_2"}
    assert any("Node(broken).spec.bgp.ipv4Address = '10.0.0.300/24'" in r.getMessage() for r in caplog.records)


def test_wireguard_peers_are_kept_out_of_the_kernel_only_when_we_run_wireguard():
    nodes = [fx.node("a", ipv4="10.0.0.10/24", wireguard_v4="172.16.0.10"),
             fx.node("b", ipv4="10.0.0.9/24", wireguard_v4="172.16.0.9"),
             fx.node("c", ipv4="10.0.0.11/24")]
    with_wg = build_picture(fx.inputs(fx.node("me", ipv4="10.0.0.1/24", wireguard_v4="172.16.0.1"), *nodes), ME)
    assert with_wg.v4.wireguard_peer_ips == ["10.0.0.10", "10.0.0.9"]   # sorted as Calico sorts the lines
    assert "bgp_next_hop = 10.0.0.9) then { reject; }" in render(with_wg).files["bird_ipam.cfg"]
    without = build_picture(fx.inputs(fx.node("me", ipv4="10.0.0.1/24"), *nodes), ME)
    assert without.v4.wireguard_peer_ips == []


def test_service_ranges_and_the_exclude_from_load_balancers_label():
    config = fx.bgp_config(serviceClusterIPs=[{"cidr": "10.96.0.0/12"}],
                           serviceExternalIPs=[{"cidr": "192.0.2.0/24"}, {"cidr": "192.0.2.7/32"}],
                           serviceLoadBalancerIPs=[{"cidr": "198.51.100.0/24"}, {"cidr": "fd00:aa::/64"}])
    normal = build_picture(fx.inputs(config, fx.node("me", ipv4="10.0.0.1/24")), ME)
    assert normal.v4.static_routes == ["10.96.0.0/12", "192.0.2.0/24", "198.51.100.0/24"]
    assert normal.v4.reject_cidrs == normal.v4.static_routes
    assert normal.v6.static_routes == ["fd00:aa::/64"]
    excluded = build_picture(fx.inputs(config, fx.node(
        "me", ipv4="10.0.0.1/24", labels={"node.kubernetes.io/exclude-from-external-load-balancers": "true"})), ME)
    assert excluded.v4.static_routes == [] and excluded.v4.reject_cidrs == normal.v4.reject_cidrs
    env = build_picture(fx.inputs(config, fx.node("me", ipv4="10.0.0.1/24")),
                        Settings(nodename="me", advertise_cluster_ips="10.100.0.0/16"))
    assert "10.100.0.0/16" in env.v4.static_routes and "10.96.0.0/12" not in env.v4.static_routes


def test_block_states_and_host_routes():
    inputs = fx.inputs(fx.node("me", ipv4="10.0.0.1/24"),
                       fx.affinity("me", "10.244.0.0/26", "confirmed"),
                       fx.affinity("me", "10.244.0.64/26", "pending"),
                       fx.affinity("me", "10.244.0.128/26", "pendingDeletion"),
                       fx.affinity("me", "10.244.1.1/32", "confirmed"),
                       fx.affinity("someone", "10.244.2.0/26", "confirmed"))
    v4 = build_picture(inputs, ME).v4
    assert v4.blackhole_blocks == ["10.244.0.0/26", "10.244.0.128/26"]       # no /32, no pending
    assert [(b.cidr, b.aggregate) for b in v4.affine_blocks] == [
        ("10.244.0.0/26", True), ("10.244.0.128/26", False), ("10.244.1.1/32", True)]


def test_endpoint_status_files(tmp_path):
    status = tmp_path / "endpoint-status"
    status.mkdir()
    (status / "pod1").write_text('{"ipv4Nets":["192.168.1.5/32"],"ipv6Nets":["fd00::5/128"],"bgpPeerName":"p"}')
    (status / "pod2").write_text('{"ipv4Nets":["192.168.1.6/32"],"bgpPeerName":""}')   # no peer: ignored
    (status / "pod3").write_text('{"ipv4Nets":')                                       # being written
    assert read_endpoint_status_dir(status) == {"pod1": LocalWorkload("pod1", "p", "192.168.1.5", "fd00::5")}
    assert read_endpoint_status_dir(tmp_path / "missing") == {}
    assert parse_endpoint_status("x", '{"bgpPeerName":"p"}') is None
    inputs = fx.inputs(fx.node("me", ipv4="10.0.0.1/24"), fx.bgp_config(nodeToNodeMeshEnabled=False),
                       fx.peer("p", localWorkloadSelector="app == 'x'", asNumber=65001))
    inputs.local_workloads = read_endpoint_status_dir(status)
    peer = _peers(inputs)["Local_Workload_192_168_1_5"]
    assert (peer.type, peer.passive, peer.source_addr) == ("local_workload", True, "")


def test_from_file_rejects_unknown_kinds_and_reads_go_style_yaml(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text("apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata: {name: default}\n"
                    "spec:\n  prefixAdvertisements:\n  - cidr: 10.0.0.0/8\n    communities: [5663:12]\n")
    inputs = load_files([str(good)], ME)
    assert inputs.bgp_configs["default"].spec["prefixAdvertisements"][0]["communities"] == ["5663:12"]
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: projectcalico.org/v3\nkind: NetworkPolicy\nmetadata: {name: x, namespace: y}\n")
    with pytest.raises(ValidationError, match=r"bad.yaml \(document 1\).*NetworkPolicy.*not read by the BIRD"):
        load_files([str(bad)], ME)


def test_secrets_from_files_give_passwords(tmp_path):
    files = tmp_path / "in.yaml"
    files.write_text("""
apiVersion: projectcalico.org/v3
kind: Node
metadata: {name: me}
spec: {bgp: {ipv4Address: 10.0.0.1/24}}
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata: {name: tor}
spec: {peerIP: 10.0.0.254, asNumber: 65000, password: {secretKeyRef: {name: bgp, key: tor}}}
---
apiVersion: v1
kind: Secret
metadata: {name: bgp, namespace: kube-system}
data: {tor: c2VjcmV0}
""")
    peers = _peers(load_files([str(files)], ME))
    assert peers["Global_10_0_0_254"].password == "secret"


def test_a_host_sized_block_alone_still_gets_the_static_protocol():
    picture = build_picture(fx.inputs(fx.node("me", ipv4="10.0.0.1/24"), fx.affinity("me", "10.244.1.1/32")), ME)
    assert picture.v4.blackhole_blocks == []
    text = render(picture).files["bird_aggr.cfg"]
    assert "protocol static from static_template" in text and "route 10.244.1.1/32" not in text
    assert "if ( net = 10.244.1.1/32 ) then { accept; }" in text
