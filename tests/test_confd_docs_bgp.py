"""Calico 3.32's BGP how-tos and BGP resource references, followed as an operator would.

Each case builds the configuration a page documents (tigera/docs,
``calico_versioned_docs/version-3.32/...``, cited per test), renders it with
``calico-node confd --oneshot --from-file`` and checks three things: BIRD (``bird -p``,
1.6.8) accepts both families' files; the lines are those Calico's own confd writes for
the same input (worked out from projectcalico/calico v3.32.1:
``confd/pkg/backends/calico/{client,bgp_processor,routes}.go``,
``confd/pkg/resource/template/template_funcs.go`` and the templates, in the layout of the
golden corpus this renderer follows); and the behaviour the page promises is visible.
Texts are compared after ``confd_golden.normalise`` (comments, indentation and blank
lines do not count).
"""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from confd_golden import normalise
from node.cli.calico_node import main as calico_node

DOCS = "calico_versioned_docs/version-3.32/"

# Three hosts, as the pages' examples assume them (labels added per case).
NODES = [
    {"name": "node-1", "labels": {"rack": "rack-1", "filter-bgp": "yes"},
     "bgp": {"ipv4Address": "172.31.40.217/20", "ipv6Address": "fd00:10::1/64"}},
    {"name": "node-2", "labels": {"rack": "rack-2", "route-reflector": "true"},
     "bgp": {"ipv4Address": "172.31.40.30/20", "ipv6Address": "fd00:10::2/64"}},
    {"name": "node-3", "labels": {},
     "bgp": {"ipv4Address": "172.31.45.29/20"}},
]


def node_doc(name: str, labels: dict, bgp: dict) -> dict:
    return {"apiVersion": "projectcalico.org/v3", "kind": "Node",
            "metadata": {"name": name, "labels": labels}, "spec": {"bgp": bgp}}


def nodes(**changes) -> list[dict]:
    """The three Node documents; ``changes`` maps a node name to extra ``bgp`` fields or
    (key ``labels``) extra labels."""
    out = []
    for n in NODES:
        extra = dict(changes.get(n["name"].replace("-", "_"), {}))
        labels = dict(n["labels"], **extra.pop("labels", {}))
        out.append(node_doc(n["name"], labels, dict(n["bgp"], **extra)))
    return out


def render(tmp_path: Path, docs_yaml: str, *, nodename: str = "node-1", extra_docs: list | None = None,
           env: dict | None = None, monkeypatch) -> dict[str, list[str]]:
    """Render the page's YAML (plus the Nodes) for ``nodename``; both families must parse."""
    monkeypatch.setenv("NODENAME", nodename)
    monkeypatch.setenv("CALICO_RUN_DIR", str(tmp_path / "run"))
    for key, value in (env or {}).items():
        monkeypatch.setenv(key, value)
    tmp_path.mkdir(parents=True, exist_ok=True)
    inputs = tmp_path / "in.yaml"
    docs = list(yaml.safe_load_all(docs_yaml)) + (extra_docs if extra_docs is not None else nodes())
    inputs.write_text(yaml.safe_dump_all(docs))
    out = tmp_path / "out"
    assert calico_node(["confd", "--oneshot", "--no-check", "--from-file", str(inputs),
                        "--output-dir", str(out)]) == 0
    for name, binary in (("bird.cfg", "bird"), ("bird6.cfg", "bird6")):
        proc = subprocess.run([binary, "-p", "-c", name], cwd=out, capture_output=True, text=True, timeout=30)
        assert proc.returncode == 0, f"{binary} -p {name}: {proc.stderr}"
    return {p.name: normalise(p.read_text()) for p in out.glob("*.cfg")}


def protocols(lines: list[str]) -> dict[str, list[str]]:
    """Each ``protocol bgp`` block's lines (filters left out), by protocol name."""
    out: dict[str, list[str]] = {}
    current = None
    depth = 0
    for line in lines:
        if line.startswith("protocol bgp "):
            current = line.split()[2]
            out[current] = []
            continue
        if current is None:
            continue
        if line in ("import filter {", "export filter {"):
            depth = 1
            continue
        if depth:
            depth += line.count("{") - line.count("}")
            if line == "};":
                depth = 0
            continue
        if line == "}":
            current = None
            continue
        out[current].append(line)
    return out


def import_calls(lines: list[str], protocol: str) -> list[str]:
    """The BGPFilter calls in a protocol's import filter, in order."""
    body = between(lines, f"protocol bgp {protocol} from bgp_template {{",
                   "if (defined(bgp_local_pref)&&(bgp_local_pref > 2147482623)) then")
    return body[body.index("import filter {") + 1:]


def between(lines: list[str], start: str, end: str) -> list[str]:
    i = lines.index(start)
    return lines[i + 1:lines.index(end, i)]


# --------------------------------------------------------------------------------------
# networking/configuring/bgp.mdx

HOWTO = """
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata: {name: my-global-peer}
spec: {peerIP: 192.20.30.40, asNumber: 64567}
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata: {name: rack1-tor}
spec: {peerIP: 192.20.30.41, asNumber: 64567, nodeSelector: "rack == 'rack-1'"}
---
kind: BGPPeer
apiVersion: projectcalico.org/v3
metadata: {name: peer-with-route-reflectors}
spec: {nodeSelector: all(), peerSelector: "route-reflector == 'true'"}
---
apiVersion: projectcalico.org/v3
kind: BGPConfiguration
metadata: {name: default}
spec: {nodeToNodeMeshEnabled: false, asNumber: "64513"}
"""


def test_bgp_howto_peers_route_reflector_and_as_numbers(tmp_path, monkeypatch):
    # networking/configuring/bgp.mdx: a global peer, a per-node (rack) peer, node-2 made
    # a route reflector (cluster ID 244.0.0.1, label route-reflector=true) with the
    # selector BGPPeer, the mesh off, the global AS patched to "64513" (a string, as the
    # page's calicoctl patch writes it) and node-3 given AS "64514".
    changed = nodes(node_2={"routeReflectorClusterID": "244.0.0.1"}, node_3={"asNumber": "64514"})
    files = render(tmp_path, HOWTO, extra_docs=changed, monkeypatch=monkeypatch)
    assert "local as 64513;" in between(files["bird.cfg"], "template bgp bgp_template {", "}")
    peers = protocols(files["bird.cfg"])
    # node-1 peers with the global peer, its rack's ToR and the reflector, nobody else
    # (no mesh: node-3 is not a peer).
    assert peers == {
        "Global_192_20_30_40": ["neighbor 192.20.30.40 as 64567;", "source address 172.31.40.217;",
                                "ttl security off;", "multihop;"],
        "Node_172_31_40_30": ["neighbor 172.31.40.30 as 64513;", "source address 172.31.40.217;",
                              "ttl security off;", "multihop;"],
        "Node_192_20_30_41": ["neighbor 192.20.30.41 as 64567;", "source address 172.31.40.217;",
                              "ttl security off;", "multihop;"],
    }
    assert list(protocols(files["bird6.cfg"])) == ["Node_fd00_10__2"]

    # The reflector: every iBGP node is its client (reverse peering); node-3, now in
    # another AS, is an eBGP peer and no client; the rack peer is not for node-2.
    files = render(tmp_path / "rr", HOWTO, nodename="node-2", extra_docs=changed, monkeypatch=monkeypatch)
    peers = protocols(files["bird.cfg"])
    assert sorted(peers) == ["Global_192_20_30_40", "Node_172_31_40_217", "Node_172_31_45_29"]
    assert peers["Node_172_31_40_217"][-2:] == ["rr client;", "rr cluster id 244.0.0.1;"]
    assert peers["Node_172_31_45_29"] == ["neighbor 172.31.45.29 as 64514;", "source address 172.31.40.30;",
                                          "ttl security off;", "multihop;"]


def test_bgp_howto_local_as_for_one_peer(tmp_path, monkeypatch):
    # networking/configuring/bgp.mdx, "Set a local AS number for a specific BGP peer".
    docs = HOWTO.replace("nodeSelector: \"rack == 'rack-1'\"", "nodeSelector: \"rack == 'rack-1'\", localASNumber: 64577")
    files = render(tmp_path, docs, monkeypatch=monkeypatch)
    tor = protocols(files["bird.cfg"])["Node_192_20_30_41"]
    assert tor[:2] == ["local as 64577;", "neighbor 192.20.30.41 as 64567;"]
    assert "local as" not in " ".join(protocols(files["bird.cfg"])["Global_192_20_30_40"])


FILTERS = """
apiVersion: projectcalico.org/v3
kind: BGPFilter
metadata: {name: my-filter}
spec:
  exportV4:
    - {action: Accept, matchOperator: In, cidr: 77.0.0.0/16, source: RemotePeers}
    - {action: Reject, interface: '*.calico'}
  importV4:
    - {action: Accept, matchOperator: In, cidr: 55.0.0.0/16, prefixLength: {min: 30}}
    - {action: Reject, matchOperator: NotIn, cidr: 44.0.0.0/16}
  exportV6:
    - {action: Reject, source: RemotePeers}
    - {action: Reject, interface: '*.calico'}
  importV6:
    - {action: Accept, matchOperator: Equal, cidr: '5000::0/64'}
    - {action: Reject}
---
kind: BGPFilter
apiVersion: projectcalico.org/v3
metadata: {name: first-bgp-filter}
spec:
  exportV4: [{action: Accept, matchOperator: In, cidr: 77.0.0.0/16, source: RemotePeers}]
  importV4: [{action: Reject, matchOperator: NotIn, cidr: 44.0.0.0/16}]
  exportV6: [{action: Reject, interface: '*.calico'}]
  importV6: [{action: Accept, matchOperator: Equal, cidr: '5000::0/64'}]
---
kind: BGPFilter
apiVersion: projectcalico.org/v3
metadata: {name: second-bgp-filter}
spec:
  exportV4: [{action: Accept, matchOperator: In, cidr: 77.0.0.0/16, interface: '*.calico'}]
  importV4: [{action: Reject, matchOperator: NotIn, cidr: 44.0.0.0/16}]
  exportV6: [{action: Reject, source: RemotePeers}]
  importV6: [{action: Reject}]
---
kind: BGPPeer
apiVersion: projectcalico.org/v3
metadata: {name: peer-with-filter}
spec:
  peerSelector: has(filter-bgp)
  filters: [first-bgp-filter, second-bgp-filter]
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata: {name: tor-with-my-filter}
spec: {peerIP: 10.10.10.1, asNumber: 65001, filters: [my-filter]}
"""


def test_bgp_filters_from_the_howto_and_the_reference(tmp_path, monkeypatch):
    # networking/configuring/bgp.mdx ("Configure a BGP filter", "... a BGP peer with a
    # BGP filter") and reference/resources/bgpfilter.mdx (its sample, with prefixLength).
    files = render(tmp_path, FILTERS, nodename="node-2", monkeypatch=monkeypatch)
    v4, v6 = files["bird.cfg"], files["bird6.cfg"]
    assert between(v4, "function 'bgp_my-filter_importFilterV4'() {", "}") == [
        "if ((net ~ [ 55.0.0.0/16{30,32} ])) then { accept; }",
        "if ((net !~ 44.0.0.0/16)) then { reject; }"]
    assert between(v4, "function 'bgp_my-filter_exportFilterV4'() {", "}") == [
        "if ((net ~ 77.0.0.0/16)&&((defined(source))&&(source ~ [ RTS_BGP ]))) then { accept; }",
        'if (((defined(ifname))&&(ifname ~ "*.calico"))) then { reject; }']
    assert between(v4, "function 'bgp_second-bgp-filter_exportFilterV4'() {", "}") == [
        'if ((net ~ 77.0.0.0/16)&&((defined(ifname))&&(ifname ~ "*.calico"))) then { accept; }']
    # The CIDR is written as given (Calico does not canonicalise 5000::0/64); a rule with
    # no condition is its bare action.
    assert between(v6, "function 'bgp_my-filter_importFilterV6'() {", "}") == [
        "if ((net = 5000::0/64)) then { accept; }", "reject;"]
    assert between(v6, "function 'bgp_second-bgp-filter_importFilterV6'() {", "}") == ["reject;"]
    # "BGPFilters are applied in the order listed on a BGPPeer": node-1 (has(filter-bgp))
    # calls first-bgp-filter, then second-bgp-filter, before Calico's own export policy.
    assert import_calls(v4, "Global_172_31_40_217") == ["'bgp_first-bgp-filter_importFilterV4'();",
                                                        "'bgp_second-bgp-filter_importFilterV4'();"]
    assert import_calls(v6, "Global_fd00_10__1") == ["'bgp_first-bgp-filter_importFilterV6'();",
                                                     "'bgp_second-bgp-filter_importFilterV6'();"]
    export = between(v4, "protocol bgp Global_172_31_40_217 from bgp_template {", "reject;")
    assert export[-3:] == ["'bgp_first-bgp-filter_exportFilterV4'();",
                           "'bgp_second-bgp-filter_exportFilterV4'();", "calico_export_to_bgp_peers(true);"]
    export = between(v4, "protocol bgp Global_10_10_10_1 from bgp_template {", "reject;")
    assert export[-2:] == ["'bgp_my-filter_exportFilterV4'();", "calico_export_to_bgp_peers(false);"]


def test_live_migration_filter_priority_and_communities(tmp_path, monkeypatch):
    # networking/kubevirt/live-migration-bgp.mdx: peerType, priority, communities and
    # operations (addCommunity, setPriority) on a ToR peer.
    docs = """
apiVersion: projectcalico.org/v3
kind: BGPFilter
metadata: {name: kubevirt-live-migration}
spec:
  exportV4:
    - {action: Accept, peerType: eBGP, priority: 512, operations: [{addCommunity: {value: "65000:100"}}]}
  importV4:
    - {action: Accept, communities: {values: ["65000:100"]}, operations: [{setPriority: {value: 512}}]}
  exportV6:
    - {action: Accept, peerType: eBGP, priority: 512, operations: [{addCommunity: {value: "65000:100"}}]}
  importV6:
    - {action: Accept, communities: {values: ["65000:100"]}, operations: [{setPriority: {value: 512}}]}
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata: {name: node-tor-peer}
spec: {peerIP: 10.10.10.1, asNumber: 65001, filters: [kubevirt-live-migration]}
"""
    files = render(tmp_path, docs, monkeypatch=monkeypatch)
    v4 = files["bird.cfg"]
    # 2147483647 - 512 = 2147483135
    assert between(v4, "function 'bgp_kubevirt-live-migration_importFilterV4'() {", "}") == [
        "if (((65000, 100) ~ bgp_community)) then { bgp_local_pref = 2147483135; accept; }"]
    assert between(v4, "function 'bgp_kubevirt-live-migration_exportFilterV4'(bool is_same_as) {", "}") == [
        "if (!is_same_as) then { if ((defined(bgp_local_pref)&&(bgp_local_pref = 2147483135))) then "
        "{ bgp_community.add((65000, 100)); accept; } }"]
    # The ToR is eBGP (65001 against 64512): the peerType argument is false.
    assert "'bgp_kubevirt-live-migration_exportFilterV4'(false);" in v4
    assert between(files["bird6.cfg"], "function 'bgp_kubevirt-live-migration_importFilterV6'() {", "}") == [
        "if (((65000, 100) ~ bgp_community)) then { bgp_local_pref = 2147483135; accept; }"]


# --------------------------------------------------------------------------------------
# reference/resources/bgpconfig.mdx

BGPCONFIG_SAMPLE = """
apiVersion: projectcalico.org/v3
kind: BGPConfiguration
metadata: {name: default}
spec:
  logSeverityScreen: Info
  nodeToNodeMeshEnabled: true
  nodeMeshMaxRestartTime: 120s
  asNumber: 63400
  serviceClusterIPs: [{cidr: 10.96.0.0/12}]
  serviceExternalIPs: [{cidr: 104.244.42.129/32}, {cidr: 172.217.3.0/24}]
  listenPort: 178
  bindMode: NodeIP
  communities: [{name: bgp-large-community, value: "63400:300:100"}]
  prefixAdvertisements:
    - cidr: 172.218.4.0/26
      communities: [bgp-large-community, "63400:120"]
"""


def test_bgpconfiguration_sample(tmp_path, monkeypatch):
    files = render(tmp_path, BGPCONFIG_SAMPLE, monkeypatch=monkeypatch)
    v4 = files["bird.cfg"]
    # Communities: the named large one and the literal one, sorted as strings.
    assert between(v4, "function apply_communities ()", "template kernel kernel_template {") == [
        "{", "if ( net ~ 172.218.4.0/26 ) then {", "bgp_community.add((63400, 120));",
        "bgp_large_community.add((63400, 300, 100));", "}", "}"]
    # bindMode NodeIP and listenPort 178: listen on the node's own address only.
    assert "listen bgp address 172.31.40.217 port 178;" in v4
    assert "listen bgp address fd00:10::1 port 178;" in files["bird6.cfg"]
    assert "local as 63400;" in v4
    # The mesh: every other node, on its listen port, with the mesh restart time.
    mesh = protocols(v4)
    assert sorted(mesh) == ["Mesh_172_31_40_30", "Mesh_172_31_45_29"]
    assert mesh["Mesh_172_31_45_29"] == ["neighbor 172.31.45.29 port 178 as 63400;",
                                         "source address 172.31.40.217;", "ttl security off;", "multihop;",
                                         "passive on;", "graceful restart time 120;"]
    # Service ranges: the cluster range and the external range are advertised and kept
    # out of the kernel; the single external address is left to its Services.
    assert between(files["bird_aggr.cfg"], "template static static_template {", "}") == [
        "route 10.96.0.0/12 blackhole;", "route 172.217.3.0/24 blackhole;"]
    ipam = files["bird_ipam.cfg"]
    assert between(ipam, "calico_aggr();", "}") == [
        "if ( net ~ 10.96.0.0/12 ) then { accept; }", "if ( net ~ 172.217.3.0/24 ) then { accept; }"]
    assert between(ipam, "filter calico_kernel_programming {", "if (defined(source) && (source = RTS_BGP) "
                   "&& !defined(krt_metric)) then {") == [
        "if ( net ~ 10.96.0.0/12 ) then { reject; }", "if ( net ~ 172.217.3.0/24 ) then { reject; }"]


@pytest.mark.parametrize("level, device, template", [
    ("Debug", "debug all;", "debug all;"),
    ("Info", "debug { states };", "debug { states, routes, filters, events };"),
    ("Warning", None, None),
    ("Fatal", None, None),
])
def test_log_severity_screen_values(tmp_path, monkeypatch, level, device, template):
    # reference/resources/bgpconfig.mdx: logSeverityScreen Debug, Info, Warning, Error,
    # Fatal. BIRD has only debug/info/none: Calico lower-cases the value and maps
    # anything but debug and info to none (no debug lines at all).
    docs = f"apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata: {{name: default}}\n" \
           f"spec: {{logSeverityScreen: {level}}}\n"
    v4 = render(tmp_path, docs, monkeypatch=monkeypatch)["bird.cfg"]
    device_lines = between(v4, "protocol device {", "}")
    template_lines = between(v4, "template bgp bgp_template {", "}")
    if device is None:
        assert not any(line.startswith("debug") for line in device_lines + template_lines)
    else:
        assert device_lines[0] == device and template_lines[0] == template


def test_node_specific_bgpconfiguration_overrides(tmp_path, monkeypatch):
    # reference/resources/bgpconfig.mdx: "node.<nodename>" overrides prefixAdvertisements,
    # listenPort and logSeverityScreen for that node only. The node's own
    # prefixAdvertisements replace the global ones (never merged), per family; the other
    # nodes peer with it on its port.
    docs = """
apiVersion: projectcalico.org/v3
kind: BGPConfiguration
metadata: {name: default}
spec:
  logSeverityScreen: Warning
  listenPort: 178
  prefixAdvertisements: [{cidr: 172.31.32.0/20, communities: ["65000:1"]}]
---
apiVersion: projectcalico.org/v3
kind: BGPConfiguration
metadata: {name: node.node-1}
spec:
  logSeverityScreen: Debug
  listenPort: 1790
  communities: [{name: big, value: "65000:1:2"}]
  prefixAdvertisements: [{cidr: "fd00:10::/64", communities: [big]}]
"""
    files = render(tmp_path, docs, monkeypatch=monkeypatch)
    v4, v6 = files["bird.cfg"], files["bird6.cfg"]
    assert "listen bgp port 1790;" in v4 and "debug all;" in v4
    assert between(v4, "function apply_communities ()", "template kernel kernel_template {") == ["{", "}"]
    assert between(v6, "function apply_communities ()", "template kernel kernel_template {") == [
        "{", "if ( net ~ fd00:10::/64 ) then {", "bgp_large_community.add((65000, 1, 2));", "}", "}"]
    assert protocols(v4)["Mesh_172_31_45_29"][0] == "neighbor 172.31.45.29 port 178 as 64512;"

    files = render(tmp_path / "n3", docs, nodename="node-3", monkeypatch=monkeypatch)
    v4 = files["bird.cfg"]
    assert "listen bgp port 178;" in v4 and not any(line.startswith("debug") for line in v4)
    assert "bgp_community.add((65000, 1));" in v4
    assert protocols(v4)["Mesh_172_31_40_217"][0] == "neighbor 172.31.40.217 port 1790 as 64512;"


def test_ignored_interfaces_with_wildcards(tmp_path, monkeypatch):
    # reference/resources/bgpconfig.mdx: ignoredInterfaces, names with "*" wildcards.
    docs = """
apiVersion: projectcalico.org/v3
kind: BGPConfiguration
metadata: {name: default}
spec: {ignoredInterfaces: [iface-1, "veth-*"]}
"""
    for name in ("bird.cfg", "bird6.cfg"):
        lines = render(tmp_path / name, docs, monkeypatch=monkeypatch)[name]
        assert 'interface -"iface-1", -"veth-*", -"cali*", -"kube-ipvs*", "*";' in lines


# --------------------------------------------------------------------------------------
# networking/configuring/advertise-service-ips.mdx

def test_service_cluster_ip_ranges_both_families(tmp_path, monkeypatch):
    # "Advertise service cluster IP addresses": an IPv4 and an IPv6 range.
    docs = """
apiVersion: projectcalico.org/v3
kind: BGPConfiguration
metadata: {name: default}
spec:
  serviceClusterIPs: [{cidr: 10.96.0.0/16}, {cidr: "fd00:1234::/112"}]
"""
    files = render(tmp_path, docs, monkeypatch=monkeypatch)
    assert "route 10.96.0.0/16 blackhole;" in files["bird_aggr.cfg"]
    assert "route fd00:1234::/112 blackhole;" in files["bird6_aggr.cfg"]
    assert "if ( net ~ fd00:1234::/112 ) then { accept; }" in files["bird6_ipam.cfg"]
    assert "if ( net ~ fd00:1234::/112 ) then { reject; }" in files["bird6_ipam.cfg"]
    # The deprecated CALICO_ADVERTISE_CLUSTER_IPS takes precedence.
    files = render(tmp_path / "env", docs, env={"CALICO_ADVERTISE_CLUSTER_IPS": "10.100.0.0/16"},
                   monkeypatch=monkeypatch)
    assert between(files["bird_aggr.cfg"], "template static static_template {", "}") == [
        "route 10.100.0.0/16 blackhole;"]
    assert not any("fd00:1234" in line for line in files["bird6_aggr.cfg"])


def test_service_external_ip_given_as_a_bare_address(tmp_path, monkeypatch):
    # "Advertise service external IP addresses" patches serviceExternalIPs with bare
    # addresses ({"cidr": "x.x.x.x"}), which Calico's validation accepts (as a /32). But
    # Calico's confd checks each range type with Go's net.ParseCIDR: a bare address fails
    # the external-IP type, which is then not advertised (an error is logged), while the
    # other types still are. Writing it as a range (route 104.244.42.129 blackhole;)
    # would be a config BIRD refuses.
    docs = """
apiVersion: projectcalico.org/v3
kind: BGPConfiguration
metadata: {name: default}
spec:
  serviceClusterIPs: [{cidr: 10.96.0.0/16}]
  serviceExternalIPs: [{cidr: 104.244.42.129}, {cidr: 172.217.3.0/24}]
"""
    files = render(tmp_path, docs, monkeypatch=monkeypatch)
    assert between(files["bird_aggr.cfg"], "template static static_template {", "}") == [
        "route 10.96.0.0/16 blackhole;"]
    assert not any("104.244.42.129" in line or "172.217.3.0" in line for line in files["bird_ipam.cfg"])


def test_service_external_ip_bare_address_and_services(monkeypatch):
    # The same failed type advertises no Service's external IPs either (Calico keeps its
    # previous, here empty, list of external ranges); a bare load-balancer address with
    # aggregation off is merely skipped (Calico's parseIPNets), the ranges still count.
    from node.confd.inputs import ConfdInputs, Settings
    from node.confd.picture import service_routes
    from node.confd.cluster import build_cluster
    from node.confd.services import EndpointSlice, Service
    import confd_fixtures as fx

    def routes(**spec):
        inputs = ConfdInputs()
        inputs.put(fx.node("node-1", "10.0.0.1/24"))
        inputs.put(fx.bgp_config(**spec))
        svc = Service(namespace="ns", name="web", type="LoadBalancer", cluster_ip="10.96.0.10",
                      cluster_ips=("10.96.0.10",), external_ips=("172.217.3.7",),
                      external_traffic_policy="Cluster", ip_families=("IPv4",), load_balancer_ip="",
                      ingress_ips=("198.51.100.7",))
        inputs.services[svc.key] = svc
        eps = EndpointSlice(namespace="ns", name="web-1", service="web", address_type="IPv4",
                            endpoints=((True, "node-2"),))
        return service_routes(build_cluster(inputs), Settings(nodename="node-1"), inputs.services,
                              {("ns", "web-1"): eps})[0]

    assert routes(serviceExternalIPs=[{"cidr": "172.217.3.0/24"}, {"cidr": "172.217.3.7/32"}]) == {
        "172.217.3.0/24", "172.217.3.7/32"}
    assert routes(serviceExternalIPs=[{"cidr": "172.217.3.0/24"}, {"cidr": "172.217.3.7"}]) == set()
    assert routes(serviceLoadBalancerAggregation="Disabled",
                  serviceLoadBalancerIPs=[{"cidr": "198.51.100.0/24"}, {"cidr": "198.51.100.9"}]) == {
        "198.51.100.7/32"}


def test_exclude_node_from_service_advertisement(tmp_path, monkeypatch):
    # "Exclude certain nodes from advertisement": the label keeps the ranges out of the
    # kernel but no longer advertises them.
    docs = """
apiVersion: projectcalico.org/v3
kind: BGPConfiguration
metadata: {name: default}
spec:
  serviceClusterIPs: [{cidr: 10.96.0.0/16}]
  serviceLoadBalancerIPs: [{cidr: 192.210.0.0/20}]
"""
    excluded = nodes(node_1={"labels": {"node.kubernetes.io/exclude-from-external-load-balancers": "true"}})
    files = render(tmp_path, docs, extra_docs=excluded, monkeypatch=monkeypatch)
    assert not any(line.startswith("route ") for line in files["bird_aggr.cfg"])
    assert "if ( net ~ 10.96.0.0/16 ) then { reject; }" in files["bird_ipam.cfg"]
    assert "if ( net ~ 192.210.0.0/20 ) then { reject; }" in files["bird_ipam.cfg"]
    assert "if ( net ~ 192.210.0.0/20 ) then { accept; }" not in files["bird_ipam.cfg"]


# --------------------------------------------------------------------------------------
# reference/resources/bgppeer.mdx

def test_bgppeer_fields(tmp_path, monkeypatch):
    # Every BGPPeer field the reference lists that changes a session: a port in peerIP,
    # keepOriginalNextHop (eBGP), maxRestartTime, keepaliveTime,
    # numAllowedLocalASNumbers, ttlSecurity, reachableBy, sourceAddress None; and
    # nextHopMode Self / Keep ([IPv6]:port form too).
    docs = """
apiVersion: projectcalico.org/v3
kind: BGPConfiguration
metadata: {name: default}
spec: {nodeToNodeMeshEnabled: false}
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata: {name: some.name}
spec:
  node: node-1
  peerIP: 172.31.32.1:1790
  asNumber: 65001
  keepOriginalNextHop: true
  maxRestartTime: 95s
  keepaliveTime: 10s
  numAllowedLocalASNumbers: 2
  ttlSecurity: 1
  reachableBy: 172.31.32.254
  sourceAddress: None
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata: {name: rack-v6}
spec:
  nodeSelector: rack == 'rack-1'
  peerIP: "[fd00:1::1]:1790"
  asNumber: 64512
  nextHopMode: Self
  reachableBy: "fd00:10::fe"
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata: {name: keep-all}
spec: {peerIP: 10.20.0.1, asNumber: 64512, nextHopMode: Keep}
"""
    files = render(tmp_path, docs, monkeypatch=monkeypatch)
    v4 = protocols(files["bird.cfg"])
    assert v4["Node_172_31_32_1_port_1790"] == [
        "neighbor 172.31.32.1 port 1790 as 65001;", "ttl security on;", "multihop 1;",
        "graceful restart time 95;", "keepalive time 10;", "next hop keep;", "allow local as 2;"]
    assert v4["Global_10_20_0_1"][-1] == "next hop keep;"
    assert protocols(files["bird6.cfg"])["Node_fd00_1__1_port_1790"] == [
        "neighbor fd00:1::1 port 1790 as 64512;", "source address fd00:10::1;", "ttl security off;",
        "multihop;", "next hop self;"]
    assert between(files["bird_aggr.cfg"], "template static static_template {", "}") == [
        "route 172.31.32.1/32 via 172.31.32.254;"]
    assert between(files["bird6_aggr.cfg"], "template static static_template {", "}") == [
        "route fd00:1::1/128 via fd00:10::fe;"]
    # keepOriginalNextHop only matters for eBGP: an iBGP peer with it has no next hop line.
    ibgp = docs.replace("asNumber: 65001", "asNumber: 64512")
    v4 = protocols(render(tmp_path / "ibgp", ibgp, monkeypatch=monkeypatch)["bird.cfg"])
    assert "next hop keep;" not in v4["Node_172_31_32_1_port_1790"]


def test_bgp_passwords_from_secrets(tmp_path, monkeypatch):
    # reference/resources/bgppeer.mdx (BGPPassword) and network-policy/comms/secure-bgp.mdx:
    # a Secret in calico-system (NAMESPACE of the calico-node pod) holds the password for
    # a global peer and for the whole mesh (nodeMeshPassword).
    docs = """
apiVersion: v1
kind: Secret
metadata: {name: bgp-secrets, namespace: calico-system}
type: Opaque
stringData: {rr-password: very-secret}
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata: {name: bgppeer-global-3040}
spec:
  peerIP: 192.20.30.40
  asNumber: 64567
  password: {secretKeyRef: {name: bgp-secrets, key: rr-password}}
---
kind: BGPConfiguration
apiVersion: projectcalico.org/v3
metadata: {name: default}
spec:
  logSeverityScreen: Info
  nodeToNodeMeshEnabled: true
  nodeMeshPassword: {secretKeyRef: {name: bgp-secrets, key: rr-password}}
"""
    files = render(tmp_path, docs, env={"NAMESPACE": "calico-system"}, monkeypatch=monkeypatch)
    peers = protocols(files["bird.cfg"])
    assert sorted(peers) == ["Global_192_20_30_40", "Mesh_172_31_40_30", "Mesh_172_31_45_29"]
    assert all(lines[-1] == 'password "very-secret";' for lines in peers.values())
    assert protocols(files["bird6.cfg"])["Mesh_fd00_10__2"][-1] == 'password "very-secret";'
    # The Secret in another namespace than calico-node's: no password, sessions still configured.
    files = render(tmp_path / "other", docs, env={"NAMESPACE": "kube-system"}, monkeypatch=monkeypatch)
    assert not any(line.startswith("password") for line in files["bird.cfg"])
    assert len(protocols(files["bird.cfg"])) == 3


def test_hardway_route_reflectors_by_label_presence(tmp_path, monkeypatch):
    # getting-started/kubernetes/hardway/configure-bgp-peering.mdx: node-2 labelled
    # calico-route-reflector: '' with cluster ID 224.0.0.1; peer-to-rrs and rrs-to-rrs;
    # the mesh off. Clients peer with the reflector only.
    docs = """
kind: BGPPeer
apiVersion: projectcalico.org/v3
metadata: {name: peer-to-rrs}
spec: {nodeSelector: "!has(calico-route-reflector)", peerSelector: has(calico-route-reflector)}
---
kind: BGPPeer
apiVersion: projectcalico.org/v3
metadata: {name: rrs-to-rrs}
spec: {nodeSelector: has(calico-route-reflector), peerSelector: has(calico-route-reflector)}
---
apiVersion: projectcalico.org/v3
kind: BGPConfiguration
metadata: {name: default}
spec: {nodeToNodeMeshEnabled: false, asNumber: 64512}
"""
    rr = nodes(node_2={"routeReflectorClusterID": "224.0.0.1", "labels": {"calico-route-reflector": ""}})
    files = render(tmp_path, docs, extra_docs=rr, monkeypatch=monkeypatch)
    assert list(protocols(files["bird.cfg"])) == ["Node_172_31_40_30"]
    files = render(tmp_path / "rr", docs, nodename="node-2", extra_docs=rr, monkeypatch=monkeypatch)
    peers = protocols(files["bird.cfg"])
    assert sorted(peers) == ["Node_172_31_40_217", "Node_172_31_45_29"]
    assert all(lines[-2:] == ["rr client;", "rr cluster id 224.0.0.1;"] for lines in peers.values())


# --------------------------------------------------------------------------------------
# networking/configuring/bgp-to-workload.mdx

def test_bgp_to_local_workloads_offline(tmp_path, monkeypatch):
    # The host side: localWorkloadPeeringIPV4/6, the no-export and accept-nested-ip-pools
    # filters and a localWorkloadSelector BGPPeer. Felix's endpoint status file for a
    # matching pod names the BGPPeer; the node then has a passive session to the pod's
    # addresses, no source address, the filters in order. The offline form reads the
    # status files as Calico's one-shot run does.
    status = tmp_path / "status" / "endpoint-status"
    status.mkdir(parents=True)
    (status / "pod1").write_text(json.dumps({"ifaceName": "cali1", "ipv4Nets": ["10.65.0.5/32"],
                                             "ipv6Nets": ["fd10::5/128"], "bgpPeerName": "peer-to-workloads"}))
    docs = """
apiVersion: projectcalico.org/v3
kind: BGPConfiguration
metadata: {name: default}
spec: {localWorkloadPeeringIPV4: 169.254.0.179, localWorkloadPeeringIPV6: "fdc9:9723:09bc::1"}
---
apiVersion: projectcalico.org/v3
kind: BGPFilter
metadata: {name: no-export}
spec: {exportV4: [{action: Reject}], exportV6: [{action: Reject}]}
---
apiVersion: projectcalico.org/v3
kind: BGPFilter
metadata: {name: accept-nested-ip-pools}
spec:
  importV4: [{action: Accept, matchOperator: In, cidr: 10.123.0.0/16}]
  importV6: [{action: Accept, matchOperator: In, cidr: "ca11:c0::/48"}]
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata: {name: peer-to-workloads}
spec:
  localWorkloadSelector: color == 'red'
  asNumber: 65100
  filters: [no-export, accept-nested-ip-pools]
"""
    files = render(tmp_path, docs, env={"CALICO_ENDPOINT_STATUS_PATH_PREFIX": str(tmp_path / "status")},
                   monkeypatch=monkeypatch)
    v4, v6 = files["bird.cfg"], files["bird6.cfg"]
    assert protocols(v4)["Local_Workload_10_65_0_5"] == [
        "neighbor 10.65.0.5 as 65100;", "ttl security off;", "multihop;", "passive on;"]
    assert protocols(v6)["Local_Workload_fd10__5"] == [
        "neighbor fd10::5 as 65100;", "ttl security off;", "multihop;", "passive on;"]
    assert import_calls(v4, "Local_Workload_10_65_0_5") == ["'bgp_accept-nested-ip-pools_importFilterV4'();"]
    assert between(v4, "function 'bgp_no-export_exportFilterV4'() {", "}") == ["reject;"]
    assert "'bgp_no-export_exportFilterV6'();" in v6

    # The workload cluster's side: the mesh off, peers at the virtual addresses.
    workload = """
apiVersion: projectcalico.org/v3
kind: BGPConfiguration
metadata: {name: default}
spec: {nodeToNodeMeshEnabled: false, asNumber: 65100}
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata: {name: peer-to-parent-cluster}
spec: {peerIP: 169.254.0.179, asNumber: 64512}
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata: {name: peer-to-parent-cluster-v6}
spec: {peerIP: "fdc9:9723:09bc::1", asNumber: 64512}
"""
    files = render(tmp_path / "nested", workload, monkeypatch=monkeypatch)
    assert protocols(files["bird.cfg"])["Global_169_254_0_179"][0] == "neighbor 169.254.0.179 as 64512;"
    assert protocols(files["bird6.cfg"])["Global_fdc9_9723_9bc__1"][0] == "neighbor fdc9:9723:9bc::1 as 64512;"
