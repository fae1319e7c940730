"""Branches of Calico's BIRD templates and their data preparation that the golden corpus
does not exercise, each checked against the text Calico's confd writes for it.

Calico's side was worked out by hand from the confd sources of the commit the golden
corpus comes from (projectcalico/calico 87c15906, ``manifest.json`` -> ``source``; the
templates are ``node/filesystem/etc/calico/confd/templates/*.template``, the data
preparation ``confd/pkg/backends/calico/{bgp_processor,client,local_bgp_peer_watcher}.go``
and ``confd/pkg/resource/template/template_funcs.go``). Line numbers below refer to that
commit. Texts are compared with the corpus rule (``confd_golden.normalise``: comments,
indentation and blank lines do not count), so every expected text here is what Calico
would write, minus its comments.
"""
from __future__ import annotations

import json

import pytest

import confd_fixtures as fx
from confd_golden import normalise
from node.confd.inputs import Settings, parse_endpoint_status
from node.confd.peerings import split_peer_ip
from node.confd.picture import build_picture
from node.confd.render import render

ME = Settings(nodename="me")

IMPORT = """import filter {
if (defined(bgp_local_pref)&&(bgp_local_pref > 2147482623)) then
preference = 200;
accept;
};"""


def export(same_as: bool, calls: str = "") -> str:
    """The export filter Calico builds for every peer (bgp_processor.go:751-826)."""
    return f"""export filter {{
if (defined(source) && source = RTS_BGP && defined(bgp_local_pref)) then {{
krt_metric = 2147483647 - bgp_local_pref;
}} else {{
if (!defined(krt_metric)) then {{ krt_metric = 1024; }}
bgp_local_pref = 2147483647 - krt_metric;
}}
{calls}calico_export_to_bgp_peers({'true' if same_as else 'false'});
reject;
}};"""


def files(*resources, settings: Settings = ME) -> dict[str, str]:
    """The six files, normalised, one string each."""
    rendered = render(build_picture(fx.inputs(*resources), settings)).files
    return {name: "\n".join(normalise(text)) for name, text in rendered.items()}


def section(text: str, start: str, end: str | None = None) -> str:
    """From the line starting with ``start`` up to (not including) the line starting with
    ``end``, or to the end."""
    lines = text.split("\n")
    first = next(i for i, line in enumerate(lines) if line.startswith(start))
    last = len(lines)
    if end is not None:
        last = next((i for i in range(first + 1, len(lines)) if lines[i].startswith(end)), len(lines))
    return "\n".join(lines[first:last])


def peers(text: str) -> dict[str, str]:
    """Every ``protocol bgp`` block by name."""
    out = {}
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if line.startswith("protocol bgp "):
            name = line.split()[2]
            depth, j = 0, i
            while True:
                depth += lines[j].count("{") - lines[j].count("}")
                if depth == 0:
                    break
                j += 1
            out[name] = "\n".join(lines[i:j + 1])
    return out


def norm(text: str) -> str:
    return "\n".join(normalise(text))


# --------------------------------------------------------------------------------------
# bird.cfg: debug level and listen line.

def test_log_severity_other_than_debug_or_info_means_no_debug_lines():
    # client.go:1412-1428 maps Warning (anything but debug/info) to "none";
    # bgp_processor.go:179-190 then leaves DebugMode and PeerDebugMode empty, so the
    # `{{- if $config.DebugMode}}` (bird.cfg.template:22, 61) and PeerDebugMode (:74) lines vanish.
    f = files(fx.bgp_config(logSeverityScreen="Warning"), fx.node("me", ipv4="10.0.0.1/24"))
    assert section(f["bird.cfg"], "template direct", "include") == norm("""
        template direct direct_template {
          interface -"cali*", -"kube-ipvs*", "*";
        }""")
    assert section(f["bird.cfg"], "protocol device", "protocol direct") == norm("""
        protocol device {
          scan time 2;
        }""")
    assert section(f["bird.cfg"], "template bgp", "}") == norm("""
        template bgp bgp_template {
          description "Connection to BGP peer";
          local as 64512;
          gateway recursive;
          add paths on;
          graceful restart;
          connect delay time 2;
          connect retry time 5;
          error wait time 5,30;""")


def test_node_log_severity_overrides_the_global_one():
    # bgp_processor.go:173 reads the node's loglevel key before the global one.
    f = files(fx.bgp_config(logSeverityScreen="Warning"), fx.bgp_config("node.me", logSeverityScreen="Debug"),
              fx.node("me", ipv4="10.0.0.1/24"))
    assert "debug all;" in section(f["bird.cfg"], "template direct", "include").split("\n")
    assert section(f["bird.cfg"], "template bgp", "description").split("\n")[1] == "debug all;"


def test_listen_line_with_bind_mode_and_a_node_listen_port_in_both_families():
    # bgp_processor.go:211-224: NodeIP bind mode listens on the family's own address; the
    # node's listenPort wins over the global one. bird.cfg.template:42-45.
    res = [fx.bgp_config(bindMode="NodeIP", listenPort=1790), fx.bgp_config("node.me", listenPort=1791),
           fx.node("me", ipv4="10.0.0.1/24", ipv6="fd00::1/64")]
    f = files(*res)
    assert "listen bgp address 10.0.0.1 port 1791;" in f["bird.cfg"].split("\n")
    assert "listen bgp address fd00::1 port 1791;" in f["bird6.cfg"].split("\n")


def test_listen_line_without_an_address_in_the_family():
    # No IPv6 address: ListenAddress stays empty (bgp_processor.go:213), but the port line
    # is still written, before the "IPv6 disabled" branch (bird6.cfg.template:42-45, 70).
    f = files(fx.bgp_config(bindMode="NodeIP", listenPort=1790), fx.node("me", ipv4="10.0.0.1/24"))
    assert "listen bgp address 10.0.0.1 port 1790;" in f["bird.cfg"].split("\n")
    assert "listen bgp port 1790;" in f["bird6.cfg"].split("\n")
    assert "template bgp bgp_template {" not in f["bird6.cfg"]
    # bindMode alone, no port anywhere.
    f = files(fx.bgp_config(bindMode="NodeIP"), fx.node("me", ipv4="10.0.0.1/24"))
    assert "listen bgp address 10.0.0.1;" in f["bird.cfg"].split("\n")


# --------------------------------------------------------------------------------------
# bird.cfg: one peer's options.

def test_address_peer_with_every_option():
    # client.go:595-667 (address peer: port from "[ip]:port", ttlSecurity, numAllowedLocalASNumbers),
    # client.go:1964-1978 (sourceAddress, maxRestartTime and keepaliveTime rounded with math.Round),
    # bgp_processor.go:536-610, bird.cfg.template:95-153.
    f = files(fx.node("me", ipv4="10.0.0.1/24", ipv6="fd00::1/64"),
              fx.peer("p", peerIP="[fd00::5]:1234", asNumber=65001, keepaliveTime="10s",
                      maxRestartTime="1m30.5s", numAllowedLocalASNumbers=2, sourceAddress="None", ttlSecurity=3))
    assert peers(f["bird6.cfg"]) == {"Global_fd00__5_port_1234": norm(f"""
        protocol bgp Global_fd00__5_port_1234 from bgp_template {{
          neighbor fd00::5 port 1234 as 65001;
          ttl security on;
          multihop 3;
          {IMPORT}
          {export(False)}
          graceful restart time 91;
          keepalive time 10;
          allow local as 2;
        }}""")}
    assert peers(f["bird.cfg"]) == {}


def test_zero_durations_are_still_written():
    # "0" is a non-empty string, so `{{- if .KeepaliveTime}}` / `.GracefulRestart` hold
    # (client.go:1970-1975, bgp_processor.go:56-62, bird.cfg.template:131-136).
    f = files(fx.bgp_config(nodeMeshMaxRestartTime="0s"), fx.node("me", ipv4="10.0.0.5/24"),
              fx.node("o", ipv4="10.0.0.6/24"),
              fx.peer("p", peerIP="10.1.1.1", asNumber=65000, keepaliveTime="0.4s", maxRestartTime="2.5s",
                      ttlSecurity=0, numAllowedLocalASNumbers=0, localASNumber=0))
    got = peers(f["bird.cfg"])
    assert got["Global_10_1_1_1"] == norm(f"""
        protocol bgp Global_10_1_1_1 from bgp_template {{
          neighbor 10.1.1.1 as 65000;
          source address 10.0.0.5;
          ttl security off;
          multihop;
          {IMPORT}
          {export(False)}
          graceful restart time 3;
          keepalive time 0;
        }}""")
    assert got["Mesh_10_0_0_6"].split("\n")[-3:] == ["passive on;", "graceful restart time 0;", "}"]


def test_route_reflector_peers_next_hop_and_local_as():
    # client.go:505-777 (first pass: global then node-scoped; a node peering to an address
    # already peered globally is dropped; reverse pass), client.go:787-798 (nextHopMode
    # overrides keepOriginalNextHop), client.go:893-964 (peerSelector peers: no local AS),
    # bgp_processor.go:563-630 (effective AS = local AS if set; keep next hop only for eBGP;
    # RR client when iBGP and the peer is not in our cluster; passive for a global peer that
    # is a Calico node with a greater address, as strings).
    f = files(
        fx.bgp_config(nodeToNodeMeshEnabled=False),
        fx.node("me", ipv4="10.0.0.5/24", ipv6="fd00::5/64", rr_cluster_id="1.1.1.1", labels={"rr": "true"}),
        fx.node("a", ipv4="10.0.0.9/24", ipv6="fd00::9/64", labels={"role": "client"}),
        fx.node("b", ipv4="10.0.0.10/24", rr_cluster_id="1.1.1.1", labels={"rr": "true"}),
        fx.node("c", ipv4="10.0.0.3/24", asn=65003, labels={"role": "client"}),
        fx.peer("g-node", peerIP="10.0.0.9", asNumber=64512),
        fx.peer("to-clients", nodeSelector="rr == 'true'", peerSelector="role == 'client'", keepOriginalNextHop=True),
        fx.peer("ext", node="me", peerIP="10.9.9.9:179", asNumber=65100, keepOriginalNextHop=True, localASNumber=65100),
        # keepOriginalNextHop beside nextHopMode: libcalico-go's validator refuses it (since
        # v3.31, with nextHopMode), but the crd.projectcalico.org CRD has no rule against it,
        # so kubectl can store it, and confd handles it (getNextHopMode): stored raw here.
        fx.stored("BGPPeer", "ext2", node="me", peerIP="10.9.9.8", asNumber=65100, keepOriginalNextHop=True,
                  nextHopMode="Self"),
        fx.peer("rev", node="a", peerIP="10.0.0.5", asNumber=64512),
    )
    assert peers(f["bird.cfg"]) == {
        "Global_10_0_0_9": norm(f"""
            protocol bgp Global_10_0_0_9 from bgp_template {{
              neighbor 10.0.0.9 as 64512;
              source address 10.0.0.5;
              ttl security off;
              multihop;
              {IMPORT}
              {export(True)}
              passive on;
              rr client;
              rr cluster id 1.1.1.1;
            }}"""),
        "Node_10_0_0_3": norm(f"""
            protocol bgp Node_10_0_0_3 from bgp_template {{
              neighbor 10.0.0.3 as 65003;
              source address 10.0.0.5;
              ttl security off;
              multihop;
              {IMPORT}
              {export(False)}
              next hop keep;
            }}"""),
        "Node_10_9_9_8": norm(f"""
            protocol bgp Node_10_9_9_8 from bgp_template {{
              neighbor 10.9.9.8 as 65100;
              source address 10.0.0.5;
              ttl security off;
              multihop;
              {IMPORT}
              {export(False)}
              next hop self;
            }}"""),
        "Node_10_9_9_9_port_179": norm(f"""
            protocol bgp Node_10_9_9_9_port_179 from bgp_template {{
              local as 65100;
              neighbor 10.9.9.9 port 179 as 65100;
              source address 10.0.0.5;
              ttl security off;
              multihop;
              {IMPORT}
              {export(True)}
              rr client;
              rr cluster id 1.1.1.1;
            }}"""),
    }
    assert peers(f["bird6.cfg"]) == {"Node_fd00__9": norm(f"""
        protocol bgp Node_fd00__9 from bgp_template {{
          neighbor fd00::9 as 64512;
          source address fd00::5;
          ttl security off;
          multihop;
          {IMPORT}
          {export(True)}
          rr client;
          rr cluster id 1.1.1.1;
        }}""")}


def test_dotted_as_numbers_are_written_as_plain_numbers():
    # numorstring.ASNumber prints itself as a plain number (ASNumber.String()).
    f = files(fx.bgp_config(asNumber="1.10"), fx.node("me", ipv4="10.0.0.5/24"),
              fx.peer("p", peerIP="10.1.1.1", asNumber="1.10"))
    assert "local as 65546;" in f["bird.cfg"].split("\n")
    assert "neighbor 10.1.1.1 as 65546;" in f["bird.cfg"].split("\n")


# --------------------------------------------------------------------------------------
# peerIP ports, read as Calico's confd reads them.

@pytest.mark.parametrize("peer_ip, expected", [
    ("10.1.1.1", ("10.1.1.1", 0)),
    ("10.1.1.1:1790", ("10.1.1.1", 1790)),
    ("[fd00::1]:179", ("fd00::1", 179)),
    ("fd00::1", ("fd00::1", 0)),                 # SplitHostPort: too many colons
    ("[fd00::1]", ("[fd00::1]", 0)),             # missing port: kept whole, then not an address
    ("10.1.1.1:010", ("10.1.1.1", 8)),           # ParseUint(port, 0, 16): leading 0 is octal
    ("10.1.1.1:09", ("10.1.1.1:09", 0)),         # ... and 9 is no octal digit
    ("10.1.1.1:0x10", ("10.1.1.1", 16)),
    ("10.1.1.1:65536", ("10.1.1.1:65536", 0)),   # out of range for 16 bits
    ("10.1.1.1:", ("10.1.1.1:", 0)),
    ("10.1.1.1:1_0", ("10.1.1.1:1_0", 0)),
])
def test_split_peer_ip_follows_go(peer_ip, expected):
    # client.go:800-812: net.SplitHostPort, then strconv.ParseUint(port, 0, 16); on any
    # error the whole string is kept with port 0 (and cnet.ParseIP then rejects it, 595-600).
    assert split_peer_ip(peer_ip) == expected


def test_peer_ip_port_with_a_leading_zero():
    # calicoctl validates the port in base 10 (validator.go processIPPort), so both are
    # accepted; confd then reads "010" as octal 8 and drops "09" as malformed.
    me = fx.node("me", ipv4="10.0.0.5/24", ipv6="fd00::5/64")
    f = files(me, fx.peer("p", peerIP="10.1.1.1:010", asNumber=65000))
    assert list(peers(f["bird.cfg"])) == ["Global_10_1_1_1_port_8"]
    assert "neighbor 10.1.1.1 port 8 as 65000;" in f["bird.cfg"].split("\n")
    f = files(me, fx.peer("p", peerIP="10.1.1.1:09", asNumber=65000),
              fx.peer("q", peerIP="[fd00::1]:0179", asNumber=65000))
    assert peers(f["bird.cfg"]) == {} and peers(f["bird6.cfg"]) == {}


# --------------------------------------------------------------------------------------
# BGPFilter functions and calls.

def test_bgpfilter_prefix_lengths_operators_operations_and_peer_types():
    # template_funcs.go:77-152 (conditions joined with &&, operations before the action),
    # :168-212 (prefixLength: [ cidr{max(mask,min),min(32|128,max)} ]), :292-327
    # (prepend in reverse, large community, setPriority), :411-500 (a direction with a
    # peerType rule takes `bool is_same_as`); bgp_processor.go:701-826 (calls in spec order,
    # a missing filter is skipped, the argument is peer AS == our AS).
    f = files(
        fx.node("me", ipv4="10.0.0.5/24", ipv6="fd00::5/64"),
        fx.bgp_filter("f1", exportV4=[
            {"action": "Accept", "cidr": "10.10.0.0/16", "matchOperator": "In", "prefixLength": {"min": 24}},
            {"action": "Reject", "cidr": "10.11.0.0/16", "matchOperator": "NotIn", "prefixLength": {"max": 20}},
            {"action": "Accept", "cidr": "10.12.0.0/16", "matchOperator": "Equal", "prefixLength": {"min": 8, "max": 30}},
            {"action": "Accept", "interface": "eth*", "peerType": "eBGP",
             "operations": [{"prependASPath": {"prefix": [65001, 65002]}}, {"addCommunity": {"value": "1:2:3"}},
                            {"setPriority": {"value": 100}}]},
            {"action": "Reject"}],
            importV6=[
                {"action": "Accept", "cidr": "fd00:10::/32", "matchOperator": "NotEqual", "prefixLength": {"min": 64}},
                {"action": "Reject", "source": "RemotePeers", "communities": {"values": ["65000:100"]},
                 "peerType": "iBGP"}]),
        fx.peer("p", peerIP="10.1.1.1", asNumber=64512, filters=["f1", "missing"]),
        fx.peer("p6", peerIP="fd00:1::1", asNumber=65000, filters=["f1"]),
    )
    assert section(f["bird.cfg"], "function 'bgp_f1", "protocol bgp") == norm("""
        function 'bgp_f1_exportFilterV4'(bool is_same_as) {
          if ((net ~ [ 10.10.0.0/16{24,32} ])) then { accept; }
          if ((net !~ [ 10.11.0.0/16{16,20} ])) then { reject; }
          if ((net = [ 10.12.0.0/16{16,30} ])) then { accept; }
          if (!is_same_as) then { if (((defined(ifname))&&(ifname ~ "eth*"))) then { bgp_path.prepend(65002); bgp_path.prepend(65001); bgp_large_community.add((1, 2, 3)); bgp_local_pref = 2147483547; accept; } }
          reject;
        }""")
    assert peers(f["bird.cfg"])["Global_10_1_1_1"] == norm(f"""
        protocol bgp Global_10_1_1_1 from bgp_template {{
          neighbor 10.1.1.1 as 64512;
          source address 10.0.0.5;
          ttl security off;
          multihop;
          {IMPORT}
          {export(True, "'bgp_f1_exportFilterV4'(true);" + chr(10))}
        }}""")
    assert section(f["bird6.cfg"], "function 'bgp_f1", "protocol bgp") == norm("""
        function 'bgp_f1_importFilterV6'(bool is_same_as) {
          if ((net != [ fd00:10::/32{64,128} ])) then { accept; }
          if (is_same_as) then { if (((defined(source))&&(source ~ [ RTS_BGP ]))&&((65000, 100) ~ bgp_community)) then { reject; } }
        }""")
    assert peers(f["bird6.cfg"])["Global_fd00_1__1"].split("\n")[5:7] == [
        "import filter {", "'bgp_f1_importFilterV6'(false);"]


def test_bgpfilter_as_numbers_in_dotted_form():
    # template_funcs.go:253-264 and :316-320 print each ASNumber with String().
    f = files(fx.node("me", ipv4="10.0.0.5/24"),
              fx.bgp_filter("f", exportV4=[{"action": "Accept", "asPathPrefix": ["1.10", 65000],
                                            "operations": [{"prependASPath": {"prefix": ["1.10", 65001]}}]}]))
    assert section(f["bird.cfg"], "function 'bgp_f", "}") == norm("""
        function 'bgp_f_exportFilterV4'() {
          if ((bgp_path ~ [= 65546 65000 * =])) then { bgp_path.prepend(65001); bgp_path.prepend(65546); accept; }""")


# --------------------------------------------------------------------------------------
# Communities.

def test_prefix_advertisement_communities():
    # client.go:1264-1319: a name resolves to the first community of that name, literal
    # values are kept, the set is sorted as strings ("100:200" < "1:2:3"), v4 and v6 go
    # to separate keys; bgp_processor.go:839-908 writes one add statement per value.
    res = [fx.node("me", ipv4="10.0.0.5/24", ipv6="fd00::5/64"),
           fx.bgp_config(communities=[{"name": "c1", "value": "100:200"}, {"name": "c1", "value": "300:400"},
                                      {"name": "big", "value": "1:2:3"}],
                         prefixAdvertisements=[{"cidr": "10.0.0.0/8", "communities": ["c1", "big", "50:50", "100:200"]},
                                               {"cidr": "fd00::/8", "communities": ["c1"]}])]
    f = files(*res)
    assert section(f["bird.cfg"], "function apply_communities", "template kernel") == norm("""
        function apply_communities ()
        {
          if ( net ~ 10.0.0.0/8 ) then {
            bgp_community.add((100, 200));
            bgp_large_community.add((1, 2, 3));
            bgp_community.add((50, 50));
          }
        }""")
    assert section(f["bird6.cfg"], "function apply_communities", "template kernel") == norm("""
        function apply_communities ()
        {
          if ( net ~ fd00::/8 ) then {
            bgp_community.add((100, 200));
          }
        }""")
    # The node's own advertisements replace the global ones family by family only in
    # appearance: a node list with only IPv6 prefixes still writes the (empty) IPv4 key.
    f = files(*res, fx.bgp_config("node.me", prefixAdvertisements=[{"cidr": "fd00::/16", "communities": ["1:1"]}]))
    assert section(f["bird.cfg"], "function apply_communities", "template kernel") == norm(
        "function apply_communities ()\n{\n}")
    assert "bgp_community.add((1, 1));" in f["bird6.cfg"].split("\n")


# --------------------------------------------------------------------------------------
# bird_aggr.cfg and bird_ipam.cfg.

SERVICES_AND_RR = [
    fx.bgp_config(serviceExternalIPs=[{"cidr": "192.168.50.0/24"}, {"cidr": "fd00:50::/64"}, {"cidr": "192.168.51.1/32"}],
                  serviceLoadBalancerIPs=[{"cidr": "192.168.60.0/24"}, {"cidr": "fd00:60::/64"}],
                  serviceClusterIPs=[{"cidr": "10.96.0.0/12"}, {"cidr": "fd00:96::/112"}]),
    fx.node("me", ipv4="10.0.0.1/24", ipv6="fd00::1/64", rr_cluster_id="1.2.3.4", wireguard_v4="10.200.0.1"),
    fx.node("wg2", ipv4="10.0.0.2/24", wireguard_v4="10.200.0.2"),
    fx.node("wg3", ipv4="10.0.0.10/24", wireguard_v4="10.200.0.3"),
    fx.node("nowg", ipv4="10.0.0.3/24"),
    fx.pool("v4", "10.244.0.0/16", ipipMode="CrossSubnet"),
    fx.pool("v4b", "10.245.0.0/16", vxlanMode="CrossSubnet"),
    fx.pool("v6", "fd00:244::/48", vxlanMode="Always", disableBGPExport=True),
    fx.pool("v6b", "fd00:245::/48"),
    fx.affinity("me", "10.244.1.0/26", state="pendingDeletion"),
    fx.affinity("me", "10.244.2.0/26", state=""),
    fx.affinity("me", "fd00:244::/122"),
    fx.affinity("me", "fd00:244::1/128"),
    fx.peer("np", node="me", peerIP="10.1.1.1", asNumber=64512, reachableBy="10.0.0.254"),
    fx.peer("np6", node="me", peerIP="fd00:1::1", asNumber=64512, reachableBy="fd00::fe"),
]


def test_aggr_with_block_states_service_ranges_and_node_peer_routes():
    # bird_aggr.cfg.template:6-17 (a blackhole per block but /32 and /128), :18-27 (service
    # ranges from client.go:1454-1500; single addresses are left out, :1987-1999), :42-55
    # (node peers with reachable_by), :69-86 (calico_aggr: rules for confirmed and
    # implicitly confirmed blocks only, /128 blocks included).
    f = files(*SERVICES_AND_RR)
    assert f["bird_aggr.cfg"] == norm("""
        template static static_template {
          route 10.244.1.0/26 blackhole;
          route 10.244.2.0/26 blackhole;
          route 10.96.0.0/12 blackhole;
          route 192.168.50.0/24 blackhole;
          route 192.168.60.0/24 blackhole;
          route 10.1.1.1/32 via 10.0.0.254;
        }
        protocol static from static_template {
        }
        function calico_aggr ()
        {
          if ( net = 10.244.2.0/26 ) then { accept; }
          if ( net ~ 10.244.2.0/26 && krt_metric < 1024 ) then { accept; }
          if ( net ~ 10.244.2.0/26 ) then { reject; }
        }""")
    assert f["bird6_aggr.cfg"] == norm("""
        template static static_template {
          route fd00:244::/122 blackhole;
          route fd00:50::/64 blackhole;
          route fd00:60::/64 blackhole;
          route fd00:96::/112 blackhole;
          route fd00:1::1/128 via fd00::fe;
        }
        protocol static from static_template {
        }
        function calico_aggr ()
        {
          if ( net = fd00:244::/122 ) then { accept; }
          if ( net ~ fd00:244::/122 && krt_metric < 1024 ) then { accept; }
          if ( net ~ fd00:244::/122 ) then { reject; }
          if ( net = fd00:244::1/128 ) then { accept; }
          if ( net ~ fd00:244::1/128 && krt_metric < 1024 ) then { accept; }
          if ( net ~ fd00:244::1/128 ) then { reject; }
        }""")


BPF_FUNCTION = """
    function reject_local_routes () {
      if (defined(ifname)) then {
        if (ifname ~ "bpf*.cali") then {
          reject;
        }
      }
    }"""

TUNNELS = """
      if (internal_peer) then {
        if (defined(ifname)) then {
          if ((ifname ~ "*.cali") || (ifname ~ "*.calico") || (ifname ~ "tunl0")) then {
            reject;
          }
        }
      }
      reject_local_routes();
      apply_communities();
      calico_aggr();"""

METRIC = """
      if (defined(source) && (source = RTS_BGP) && !defined(krt_metric)) then {
        krt_metric = 1024;
        if (defined(bgp_local_pref)) then {
          krt_metric = 2147483647 - bgp_local_pref;
        }
        if (krt_metric < 1024) then {
          preference = 200;
        }
      }"""


def test_ipam_for_a_route_reflector_with_service_ranges_wireguard_and_pools():
    # bird_ipam.cfg.template:37-59 (a route reflector accepts the configured LB ranges, then
    # the external ranges, single addresses included, of its own family); :65-76 (service
    # ranges never go to the kernel); bgp_processor.go:1013-1068 (WireGuard peers' next hops
    # rejected, sorted as whole statements: 10.0.0.10 before 10.0.0.2); :910-1007 and
    # :1100-1141 (pools: IPIP under the default policy and VXLAN are Felix's; an IPv6
    # kernel filter keeps rejects only; BGP export disabled rejects first).
    f = files(*SERVICES_AND_RR)
    assert f["bird_ipam.cfg"] == norm(BPF_FUNCTION + """
        function calico_export_to_bgp_peers(bool internal_peer) {""" + TUNNELS + """
          if ( net ~ 10.96.0.0/12 ) then { accept; }
          if ( net ~ 192.168.50.0/24 ) then { accept; }
          if ( net ~ 192.168.60.0/24 ) then { accept; }
          if ( net ~ 192.168.60.0/24 ) then { accept; }
          if ( net ~ 192.168.50.0/24 ) then { accept; }
          if ( net ~ 192.168.51.1/32 ) then { accept; }
          if (net ~ 10.244.0.0/16) then { accept; }
          if (net ~ 10.245.0.0/16) then { accept; }
        }
        filter calico_kernel_programming {
          if ( net ~ 10.96.0.0/12 ) then { reject; }
          if ( net ~ 192.168.50.0/24 ) then { reject; }
          if ( net ~ 192.168.60.0/24 ) then { reject; }""" + METRIC + """
          if (defined(bgp_next_hop) && bgp_next_hop = 10.0.0.10) then { reject; }
          if (defined(bgp_next_hop) && bgp_next_hop = 10.0.0.2) then { reject; }
          if (net ~ 10.244.0.0/16) then { reject; }
          if (net ~ 10.245.0.0/16) then { reject; }
          accept;
        }""")
    assert f["bird6_ipam.cfg"] == norm(BPF_FUNCTION + """
        function calico_export_to_bgp_peers(bool internal_peer) {
          if (net ~ fd00:244::/48) then { reject; }""" + TUNNELS + """
          if ( net ~ fd00:50::/64 ) then { accept; }
          if ( net ~ fd00:60::/64 ) then { accept; }
          if ( net ~ fd00:96::/112 ) then { accept; }
          if ( net ~ fd00:60::/64 ) then { accept; }
          if ( net ~ fd00:50::/64 ) then { accept; }
          if (net ~ fd00:245::/48) then { accept; }
        }
        filter calico_kernel_programming {
          if ( net ~ fd00:50::/64 ) then { reject; }
          if ( net ~ fd00:60::/64 ) then { reject; }
          if ( net ~ fd00:96::/112 ) then { reject; }""" + METRIC + """
          if (net ~ fd00:244::/48) then { reject; }
          accept;
        }""")


def test_load_balancer_ranges_without_aggregation():
    # client.go:1477-1502: with serviceLoadBalancerAggregation Disabled no LB range is a
    # global route (nor a kernel reject); a route reflector still accepts the configured
    # ranges (bird_ipam.cfg.template:39-48 reads $config.LoadBalancerIPs, bgp_processor.go:88).
    f = files(fx.bgp_config(serviceLoadBalancerIPs=[{"cidr": "192.168.60.0/24"}],
                            serviceLoadBalancerAggregation="Disabled"),
              fx.node("me", ipv4="10.0.0.1/24", rr_cluster_id="1.2.3.4"))
    assert "192.168.60.0/24" not in f["bird_aggr.cfg"]
    assert section(f["bird_ipam.cfg"], "calico_aggr();", "}") == norm("""
        calico_aggr();
        if ( net ~ 192.168.60.0/24 ) then { accept; }""")
    assert "192.168.60.0/24" not in section(f["bird_ipam.cfg"], "filter calico_kernel_programming")


# --------------------------------------------------------------------------------------
# Local-workload peers read from endpoint status files.

def test_endpoint_status_addresses_must_be_cidrs():
    # local_bgp_peer_watcher.go:152-176: net.ParseCIDR on the first entry of each list; a
    # bare address (or any unparsable entry) makes the whole workload wait.
    good = {"bgpPeerName": "p", "ipv4Nets": ["10.65.0.2/32"], "ipv6Nets": ["fd00:65::2/128"]}
    workload = parse_endpoint_status("w", json.dumps(good))
    assert (workload.ipv4, workload.ipv6) == ("10.65.0.2", "fd00:65::2")
    for bad in (["10.65.0.2"], ["10.65.0.2/255.255.255.255"], ["10.65.0.2/33"]):
        with pytest.raises(ValueError):
            parse_endpoint_status("w", json.dumps(dict(good, ipv4Nets=bad)))


# --------------------------------------------------------------------------------------
# BIRD accepts what these scenarios render.

@pytest.mark.parametrize("resources", [
    SERVICES_AND_RR,
    [fx.bgp_config(logSeverityScreen="Warning", bindMode="NodeIP", listenPort=1790,
                   nodeMeshMaxRestartTime="0s"),
     fx.node("me", ipv4="10.0.0.5/24", ipv6="fd00::5/64"), fx.node("o", ipv4="10.0.0.6/24", ipv6="fd00::6/64"),
     fx.peer("p", peerIP="[fd00::9]:1234", asNumber=65001, keepaliveTime="0s", maxRestartTime="2m",
             numAllowedLocalASNumbers=2, ttlSecurity=3, localASNumber=65002),
     fx.bgp_filter("f1", exportV4=[{"action": "Accept", "cidr": "10.10.0.0/16", "matchOperator": "In",
                                    "prefixLength": {"min": 24}, "peerType": "eBGP"}]),
     fx.peer("q", peerIP="10.1.1.1:010", asNumber=64512, filters=["f1"], nextHopMode="Keep")],
], ids=["services-rr-wireguard", "peer-options"])
def test_bird_parses_the_rendered_files(tmp_path, resources):
    from confd_golden import bird_parse

    for name, text in render(build_picture(fx.inputs(*resources), ME)).files.items():
        (tmp_path / name).write_text(text)
    for version in (4, 6):
        result = bird_parse(tmp_path, version)
        assert result.returncode == 0, result.stderr


def test_per_service_routes_without_load_balancer_aggregation():
    # routes.go:475-560: with aggregation off a Cluster-policy Service with any ready
    # endpoint is advertised from every node, a Local one only with a ready endpoint here,
    # one without EndpointSlices not at all (routes.go:201-245); routes.go:264-299 picks
    # the allowed external IPs and LB ingress IPs (not the cluster IPs: no serviceClusterIPs).
    from node.confd.services import endpoint_slice_from_doc, service_from_doc

    inp = fx.inputs(fx.bgp_config(serviceLoadBalancerIPs=[{"cidr": "192.168.60.0/24"}],
                                  serviceExternalIPs=[{"cidr": "192.168.70.0/24"}],
                                  serviceLoadBalancerAggregation="Disabled"),
                    fx.node("me", ipv4="10.0.0.1/24"))
    services = [
        {"metadata": {"name": "lb", "namespace": "default"},
         "spec": {"type": "LoadBalancer", "clusterIP": "10.96.0.10", "externalIPs": ["192.168.70.5", "8.8.8.8"]},
         "status": {"loadBalancer": {"ingress": [{"ip": "192.168.60.7"}, {"ip": "9.9.9.9"}]}}},
        {"metadata": {"name": "local", "namespace": "default"},
         "spec": {"type": "LoadBalancer", "clusterIP": "10.96.0.11", "externalTrafficPolicy": "Local"},
         "status": {"loadBalancer": {"ingress": [{"ip": "192.168.60.8"}]}}},
        {"metadata": {"name": "noep", "namespace": "default"},
         "spec": {"type": "LoadBalancer", "clusterIP": "10.96.0.12"},
         "status": {"loadBalancer": {"ingress": [{"ip": "192.168.60.9"}]}}},
    ]
    slices = [
        {"metadata": {"name": "lb-1", "namespace": "default", "labels": {"kubernetes.io/service-name": "lb"}},
         "addressType": "IPv4", "endpoints": [{"nodeName": "other"}]},
        {"metadata": {"name": "local-1", "namespace": "default", "labels": {"kubernetes.io/service-name": "local"}},
         "addressType": "IPv4", "endpoints": [{"nodeName": "other"}, {"nodeName": "me", "conditions": {"ready": False}}]},
    ]
    for doc in services:
        svc = service_from_doc(doc)
        inp.services[svc.key] = svc
    for doc in slices:
        eps = endpoint_slice_from_doc(doc)
        inp.endpoint_slices[(eps.namespace, eps.name)] = eps
    aggr = "\n".join(normalise(render(build_picture(inp, ME)).files["bird_aggr.cfg"]))
    assert section(aggr, "template static", "protocol static") == norm("""
        template static static_template {
          route 192.168.60.7/32 blackhole;
          route 192.168.70.0/24 blackhole;
          route 192.168.70.5/32 blackhole;
        }""")
