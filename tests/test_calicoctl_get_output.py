"""``calicoctl get`` output, kind by kind, against calicoctl v3.32.1.

Expected text comes from v3.32.1's sources (``git show v3.32.1:<path>`` in Calico's
repository):

* tables: calicoctl/calicoctl/resourcemgr/<kind>.go, the ``registerResource`` call (ps
  headings, wide headings and each heading's Go template), printed by
  calicoctl/calicoctl/commands/common/printer.go:142 (``tabwriter.NewWriter(os.Stdout, 5, 1,
  3, ' ', 0)`` over tab-terminated cells, so every cell is padded, the last one too) and a
  blank line after each table (printer.go:151). Go's text/template prints a nil pointer
  field as ``<nil>`` and a float64 as ``%v`` (1000000 -> ``1e+06``);
* ``-o yaml``/``-o json``: printer.go:55-90 (one resource as itself, none or several as an
  array, ``null`` for none; JSON through json.MarshalIndent with no newline after it, YAML
  through sigs.k8s.io/yaml, i.e. yaml.v2 over the JSON);
* kind names: resourcemgr.go ``GetResourcesFromArgs`` (the lower-cased KIND looked up
  among each kind's names).

The IPPool tables are Calico's own ST fixtures (calicoctl/tests/st/utils/data.py:40-65
and :186-206, checked by calicoctl/tests/st/calicoctl/test_crud.py:62-66 and :119-135;
that harness strips the output's trailing whitespace).
"""
from __future__ import annotations

import json
import re

import pytest
import yaml

from node.model import Resource
from node.cli.ctl._gofmt import go_float, go_json_float, marshal_yaml, yaml_needs_quotes

pytestmark = pytest.mark.etcd

TIER_DEFAULT = "apiVersion: projectcalico.org/v3\nkind: Tier\nmetadata: {name: default}\nspec: {order: 1000000}\n"


def doc(kind: str, name: str, spec: str, namespace: str = "") -> str:
    ns = f", namespace: {namespace}" if namespace else ""
    return f"apiVersion: projectcalico.org/v3\nkind: {kind}\nmetadata: {{name: {name}{ns}}}\nspec: {spec}\n"


def create(ctl, *docs: str) -> None:
    """calicoctl create, except the default tier, which calicoctl makes before it writes:
    that one is applied."""
    if TIER_DEFAULT in docs:
        code, _, err = ctl("apply", "-f", "-", stdin=TIER_DEFAULT)
        assert code == 0, err
        docs = tuple(d for d in docs if d != TIER_DEFAULT)
    code, out, err = ctl("create", "-f", "-", stdin="---\n".join(docs))
    assert code == 0, err


# -- IPPool: Calico's own ST fixtures ---------------------------------------------------

POOL1 = doc("IPPool", "ippool-name1", "{cidr: 10.0.1.0/24, ipipMode: Always, vxlanMode: Never, blockSize: 27, "
            "allowedUses: [Workload, Tunnel], assignmentMode: Automatic, nodeSelector: \"foo == 'bar'\"}")
POOL2 = doc("IPPool", "ippool-name2", "{cidr: 'fed0:8001::/64', ipipMode: Never, vxlanMode: Never, blockSize: 123, "
            "allowedUses: [Workload, Tunnel], assignmentMode: Automatic, nodeSelector: all()}")
# data.py:57-65 and :203-206
POOL1_TABLE = ("NAME           CIDR          SELECTOR       \n"
               "ippool-name1   10.0.1.0/24   foo == 'bar'")
POOL1_WIDE = ("NAME           CIDR          NAT     IPIPMODE   VXLANMODE   DISABLED   DISABLEBGPEXPORT   SELECTOR       "
              "ASSIGNMENTMODE   \n"
              "ippool-name1   10.0.1.0/24   false   Always     Never       false      false              foo == 'bar'   "
              "Automatic")
POOL2_TABLE = ("NAME           CIDR             SELECTOR   \n"
               "ippool-name2   fed0:8001::/64   all()")


def test_ippool_tables_match_calicos_st_fixtures(ctl):
    create(ctl, POOL2, POOL1)
    code, out, _ = ctl("get", "ippool", "ippool-name1")
    assert (code, out.rstrip()) == (0, POOL1_TABLE)
    assert out == POOL1_TABLE + "   \n\n"  # the last cell padded, then the gap line
    code, out, _ = ctl("get", "ippool", "ippool-name1", "-o", "wide")
    assert (code, out.rstrip()) == (0, POOL1_WIDE)
    # test_crud.py:119-124: each named resource is its own table.
    code, out, _ = ctl("get", "ippool", "ippool-name1", "ippool-name2", "--export")
    assert (code, out.rstrip()) == (0, POOL1_TABLE + "   \n\n" + POOL2_TABLE)
    # test_crud.py:128-135: the one that does not exist is reported after the tables.
    code, out, err = ctl("get", "ippool", "ippool-name1", "blah", "ippool-name2", "--export")
    assert code == 1
    assert out == POOL1_TABLE + "   \n\n" + POOL2_TABLE + "      \n\n"
    assert err.startswith("resource does not exist: IPPool(blah) with error: ")
    # A list is one table, sorted by name.
    code, out, _ = ctl("get", "IPPools")
    assert out == ("NAME           CIDR             SELECTOR       \n"
                   "ippool-name1   10.0.1.0/24      foo == 'bar'   \n"
                   "ippool-name2   fed0:8001::/64   all()          \n"
                   "\n")


def test_ippool_wide_defaults(ctl):
    # ippool.go:38-44: NAT, DISABLED and DISABLEBGPEXPORT are bools (false when unset),
    # IPIPMODE and VXLANMODE "Never" when empty.
    create(ctl, doc("IPPool", "p", "{cidr: 10.9.0.0/16, disabled: true, disableBGPExport: true}"))
    code, out, _ = ctl("get", "ipp", "-o", "wide")
    assert out.splitlines()[1].split() == ["p", "10.9.0.0/16", "false", "Never", "Never", "true", "true", "all()",
                                           "Automatic"]


# -- Node -------------------------------------------------------------------------------

NODES = (doc("Node", "n1", "{bgp: {ipv4Address: 10.0.0.1/24}}"),
         doc("Node", "n2", "{bgp: {ipv4Address: 10.0.0.2/24, asNumber: 65001, ipv6Address: 'fd00::2/64'}}"),
         doc("Node", "n3", "{}"))


def test_node_tables_and_the_default_as_number(ctl):
    create(ctl, *NODES)
    code, out, _ = ctl("get", "nodes")
    assert out == "NAME   \nn1     \nn2     \nn3     \n\n"
    # node.go:35-37: ASN is the node's, else "(" + {{config "asnumber"}} + ")", and nothing
    # without spec.bgp; printer.go:251-280: the default BGPConfiguration's asNumber, 64512
    # when there is none.
    code, out, _ = ctl("get", "no", "-o", "wide")
    assert out == ("NAME   ASN       IPV4          IPV6         \n"
                   "n1     (64512)   10.0.0.1/24                \n"
                   "n2     65001     10.0.0.2/24   fd00::2/64   \n"
                   "n3                                          \n"
                   "\n")
    create(ctl, doc("BGPConfiguration", "default", "{asNumber: 65000}"))
    code, out, _ = ctl("get", "node", "n1", "-o", "wide")
    assert out.splitlines()[1].split() == ["n1", "(65000)", "10.0.0.1/24"]


# -- policies and tiers: ORDER is a *float64 ------------------------------------------

def test_policy_and_tier_order_print_as_go_floats(ctl):
    create(ctl, TIER_DEFAULT, doc("Tier", "security", "{order: 100}"),
           doc("GlobalNetworkPolicy", "g1", "{selector: all()}"),
           doc("GlobalNetworkPolicy", "security.g2", "{tier: security, order: 1500000, selector: \"a == 'b'\"}"),
           doc("NetworkPolicy", "np1", "{order: 10.5, selector: has(app)}", "ns1"))
    # tier.go:21-26
    code, out, _ = ctl("get", "tiers")
    assert out == ("NAME            ORDER   \n"
                   "default         1e+06   \n"
                   "kube-admin      1000    \n"
                   "kube-baseline   1e+07   \n"
                   "security        100     \n"
                   "\n")
    # globalnetworkpolicy.go:33-39: no order is a nil pointer, "<nil>".
    code, out, _ = ctl("get", "gnp")
    assert out == ("NAME          TIER       \n"
                   "g1            default    \n"
                   "security.g2   security   \n"
                   "\n")
    code, out, _ = ctl("get", "globalnetworkpolicies", "-o", "wide")
    assert out == ("NAME          TIER       ORDER     SELECTOR   \n"
                   "g1            default    <nil>     all()      \n"
                   "security.g2   security   1.5e+06   a == 'b'   \n"
                   "\n")
    # networkpolicy.go:36-44: NAMESPACE leads with -A or -n.
    code, out, _ = ctl("get", "policy", "-A", "-o", "wide")
    assert out == ("NAMESPACE   NAME   TIER      ORDER   SELECTOR   \n"
                   "ns1         np1    default   10.5    has(app)   \n"
                   "\n")
    code, out, _ = ctl("get", "networkpolicies")  # the default namespace: header only
    assert out == "NAME   TIER   \n\n"


# -- WorkloadEndpoint -------------------------------------------------------------------

WEP = doc("WorkloadEndpoint", "n1-k8s-pod1-eth0",
          "{node: n1, orchestrator: k8s, pod: pod1, endpoint: eth0, interfaceName: cali1, "
          "ipNetworks: [10.1.0.5/32, 'fd00::5/128'], profiles: [kns.ns1, ksa.ns1.default], "
          "ipNATs: [{internalIP: 10.1.0.5, externalIP: 172.16.0.5}]}", "ns1")


def test_workloadendpoint_tables(ctl):
    create(ctl, WEP)
    # workloadendpoint.go:31: no NAME in the ps columns.
    code, out, _ = ctl("get", "wep", "-n", "ns1")
    assert out == ("NAMESPACE   WORKLOAD   NODE   NETWORKS                  INTERFACE   \n"
                   "ns1         pod1       n1     10.1.0.5/32,fd00::5/128   cali1       \n"
                   "\n")
    code, out, _ = ctl("get", "workloadendpoints")  # default namespace, no NAMESPACE column
    assert out == "WORKLOAD   NODE   NETWORKS   INTERFACE   \n\n"
    # workloadendpoint.go:32-43: NATS joins IPNAT structs, which fmt prints as {internal external}.
    code, out, _ = ctl("get", "weps", "-A", "-o", "wide")
    assert out == ("NAMESPACE   NAME               WORKLOAD   NODE   NETWORKS                  INTERFACE   "
                   "PROFILES                  NATS                    \n"
                   "ns1         n1-k8s-pod1-eth0   pod1       n1     10.1.0.5/32,fd00::5/128   cali1       "
                   "kns.ns1,ksa.ns1.default   {10.1.0.5 172.16.0.5}   \n"
                   "\n")
    # custom-columns: any heading of the map (ORCHESTRATOR is in no default set), and no
    # NAMESPACE column added for -A (get.go: custom-columns sets no PrintNamespace).
    code, out, _ = ctl("get", "wep", "-A", "-o", "custom-columns=ORCHESTRATOR,NAMESPACE,NAME")
    assert out == ("ORCHESTRATOR   NAMESPACE   NAME               \n"
                   "k8s            ns1         n1-k8s-pod1-eth0   \n"
                   "\n")
    code, out, err = ctl("get", "wep", "n1-k8s-pod1-eth0", "-A")
    assert (code, out, err) == (1, "", "cannot use --all-namespace flag for getting a single resource\n")


# -- BGPPeer, BGPConfiguration, BGPFilter ------------------------------------------------

def test_bgp_tables(ctl):
    create(ctl, doc("BGPPeer", "global", "{peerIP: 192.0.2.1, asNumber: 64600}"),
           doc("BGPPeer", "onnode", "{node: n1, peerIP: 192.0.2.2, asNumber: 64601}"),
           doc("BGPPeer", "rr", "{nodeSelector: has(rr), peerSelector: has(rr)}"),
           doc("BGPConfiguration", "default", "{logSeverityScreen: Info, nodeToNodeMeshEnabled: false, "
                                              "asNumber: 64999}"),
           # (only the default one may set asNumber or nodeToNodeMeshEnabled: bgpconfig.go)
           doc("BGPConfiguration", "node.n1", "{logSeverityScreen: Debug}"),
           doc("BGPFilter", "f", "{exportV4: [{action: Accept, matchOperator: In, cidr: 10.0.0.0/8}], "
                                 "importV6: [{action: Reject, matchOperator: In, cidr: 'fd00::/8'}, "
                                 "{action: Accept, matchOperator: In, cidr: 'fd01::/16'}]}"))
    # bgppeer.go:33-39: NODE is the node, else the selector, else (global); ASN 0 when unset.
    code, out, _ = ctl("get", "bgpp", "-o", "wide")
    assert out == ("NAME     PEERIP      NODE       ASN     \n"
                   "global   192.0.2.1   (global)   64600   \n"
                   "onnode   192.0.2.2   n1         64601   \n"
                   "rr                   has(rr)    0       \n"
                   "\n")
    # bgpconfig.go:33-39: MESHENABLED and ASNUMBER are pointers: "-" when unset.
    code, out, _ = ctl("get", "bgpconfigs")
    assert out == ("NAME      LOGSEVERITY   MESHENABLED   ASNUMBER   \n"
                   "default   Info          false         64999      \n"
                   "node.n1   Debug         -             -          \n"
                   "\n")
    # bgpfilter.go:33-40
    code, out, _ = ctl("get", "bf")
    assert out == ("NAME   NUMEXPORTV4   NUMIMPORTV4   NUMEXPORTV6   NUMIMPORTV6   \n"
                   "f      1             0             0             2             \n"
                   "\n")


# -- the other kinds ----------------------------------------------------------------------

def test_other_kinds_tables(ctl, client):
    nets = ", ".join(f"10.0.{i}.0/28" for i in range(8))
    create(ctl, doc("Profile", "pr1", "{labelsToApply: {zz: '1', a.b: '3', a: '2'}}"),
           doc("IPReservation", "r1", f"{{reservedCIDRs: [{nets}]}}"),
           doc("GlobalNetworkSet", "gns", f"{{nets: [{nets}]}}"),
           doc("NetworkSet", "ns", "{nets: [10.1.0.0/16]}", "ns1"),
           doc("HostEndpoint", "h1", "{node: n1, interfaceName: eth0, expectedIPs: [10.0.0.1, 10.0.0.2], "
                                     "profiles: [p1, p2]}"),
           doc("FelixConfiguration", "default", "{}"),
           doc("KubeControllersConfiguration", "default", "{}"))
    # calicoctl refuses to write a ClusterInformation (calico/node's; its create above made
    # one, as calicoctl does before it writes): rewrite it directly.
    info = client.get("ClusterInformation", "default")
    info.spec = {"clusterGUID": "abc", "clusterType": "k8s,bgp", "calicoVersion": "v3.32.1"}
    client.update(info)
    # profile.go:33-37: join over a map is its k=v pairs, sorted as strings.
    code, out, _ = ctl("get", "profiles", "-o", "wide")
    assert out == ("NAME                          LABELS           \n"
                   "pr1                           a.b=3,a=2,zz=1   \n"
                   "projectcalico-default-allow                    \n"
                   "\n")
    truncated = "10.0.0.0/28,10.0.1.0/28,10.0.2.0/28,10.0.3.0/28,10.0.4.0/28,10.0.5.0/28,10.0...."
    assert len(truncated) == 80
    # ipreservation.go:37 and globalnetworkset.go:37: joinAndTruncate at 80.
    for kind in ("ipreservations", "gnetsets"):
        code, out, _ = ctl("get", kind, "-o", "wide")
        assert out.splitlines()[1].split()[1] == truncated, kind
    code, out, _ = ctl("get", "netsets", "-A", "-o", "wide")
    assert out == "NAMESPACE   NAME   NETS          \nns1         ns     10.1.0.0/16   \n\n"
    # hostendpoint.go:33-40
    code, out, _ = ctl("get", "heps", "-o", "wide")
    assert out == ("NAME   NODE   INTERFACE   IPS                 PROFILES   \n"
                   "h1     n1     eth0        10.0.0.1,10.0.0.2   p1,p2      \n"
                   "\n")
    # clusterinfo.go:34-41: DATASTOREREADY is a *bool, "<nil>" when unset.
    code, out, _ = ctl("get", "clusterinfo")
    assert out == ("NAME      CLUSTERGUID   CLUSTERTYPE   CALICOVERSION   DATASTOREREADY   \n"
                   "default   abc           k8s,bgp       v3.32.1         <nil>            \n"
                   "\n")
    for kind in ("felixconfig", "kubecontrollersconfigurations"):
        code, out, _ = ctl("get", kind, "-o", "wide")
        assert out == "NAME      \ndefault   \n\n", kind


# -- YAML and JSON --------------------------------------------------------------------------

def _stable(text: str) -> str:
    text = re.sub(r'uid: [0-9a-f-]+', "uid: UID", text)
    text = re.sub(r'creationTimestamp: "[^"]+"', 'creationTimestamp: "TIME"', text)
    return re.sub(r'resourceVersion: "\d+"', 'resourceVersion: "RV"', text)


def test_yaml_is_yaml_v2s(ctl):
    create(ctl, POOL1)
    code, out, _ = ctl("get", "ippool", "ippool-name1", "-o", "yaml")
    # sigs.k8s.io/yaml: keys sorted, strings yaml.v2 would read as something else in
    # double quotes (printer.go:84; calicoctl's ST harness matches 'resourceVersion: ".*?"').
    assert _stable(out) == ("apiVersion: projectcalico.org/v3\n"
                            "kind: IPPool\n"
                            "metadata:\n"
                            '  creationTimestamp: "TIME"\n'
                            "  name: ippool-name1\n"
                            '  resourceVersion: "RV"\n'
                            "  uid: UID\n"
                            "spec:\n"
                            "  allowedUses:\n"
                            "  - Workload\n"
                            "  - Tunnel\n"
                            "  assignmentMode: Automatic\n"
                            "  blockSize: 27\n"
                            "  cidr: 10.0.1.0/24\n"
                            "  ipipMode: Always\n"
                            "  nodeSelector: foo == 'bar'\n"
                            "  vxlanMode: Never\n")
    code, out, _ = ctl("get", "bgppeers", "-o", "yaml")
    assert out.startswith("apiVersion: projectcalico.org/v3\nitems: []\nkind: BGPPeerList\nmetadata:")
    # Nothing found: the empty result marshals as null (printer.go:79-84), the error follows.
    code, out, err = ctl("get", "ippool", "nope", "-o", "yaml")
    assert (code, out) == (1, "null\n") and "IPPool(nope)" in err
    code, out, err = ctl("get", "ippool", "-n", "x", "-o", "yaml")
    assert (code, out, err) == (1, "null\n", "IPPool is not namespaced\n")


def test_json_is_marshalindents(ctl):
    create(ctl, TIER_DEFAULT, "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\n"
                              "metadata: {name: g, annotations: {note: '<b>'}}\n"
                              "spec: {selector: \"a == 'b' && c == 'd'\", order: 1500000.5}\n")
    code, out, _ = ctl("get", "gnp", "g", "-o", "json")
    assert code == 0 and not out.endswith("\n")  # printer.go:60-64 writes no newline
    # encoding/json escapes <, > and & (HTML-safe) and writes floats in full.
    assert '"selector": "a == \'b\' \\u0026\\u0026 c == \'d\'"' in out
    assert '"note": "\\u003cb\\u003e"' in out
    assert '"order": 1500000.5' in out
    assert json.loads(out)["spec"]["selector"] == "a == 'b' && c == 'd'"
    code, out, _ = ctl("get", "tier", "-o", "json")
    assert json.loads(out)["kind"] == "TierList" and out.startswith('{\n  "kind": "TierList",\n'
                                                                      '  "apiVersion": "projectcalico.org/v3",\n')
    code, out, _ = ctl("get", "gnp", "g", "-o", "yaml")
    assert "  order: 1.5000005e+06\n" in out  # yaml.v2 writes the float as 'g' -1
    code, out, _ = ctl("get", "gnp", "nope", "-o", "json")
    assert (code, out) == (1, "null")


# -- kind names -------------------------------------------------------------------------------

# Each kind's names in resourcemgr/<kind>.go's registerResource call.
NAMES = {
    "BGPConfiguration": ["bgpconfiguration", "bgpconfigurations", "bgpconfig", "bgpconfigs"],
    "BGPFilter": ["bgpfilter", "bgpfilters", "bgpf", "bgpfs", "bf", "bfs"],
    "BGPPeer": ["bgppeer", "bgppeers", "bgpp", "bgpps", "bp", "bps"],
    "ClusterInformation": ["clusterinformation", "clusterinformations", "clusterinfo", "clusterinfos"],
    "FelixConfiguration": ["felixconfiguration", "felixconfigurations", "felixconfig", "felixconfigs"],
    "GlobalNetworkPolicy": ["globalnetworkpolicy", "globalnetworkpolicies", "gnp", "gnps"],
    "GlobalNetworkSet": ["globalnetworkset", "globalnetworksets", "gnetsets"],
    "HostEndpoint": ["hostendpoint", "hostendpoints", "hep", "heps"],
    "IPPool": ["ippool", "ippools", "ipp", "ipps", "pool", "pools"],
    "IPReservation": ["ipreservation", "ipreservations", "reservation", "reservations"],
    "KubeControllersConfiguration": ["kubecontrollersconfiguration", "kubecontrollersconfigurations",
                                     "kubecontrollersconfig", "kubecontrollersconfigs"],
    "NetworkPolicy": ["networkpolicy", "networkpolicies", "policy", "np", "policies", "pol", "pols"],
    "NetworkSet": ["networkset", "networksets", "netsets"],
    "Node": ["node", "nodes", "no", "nos"],
    "Profile": ["profile", "profiles", "pro", "pros"],
    "StagedGlobalNetworkPolicy": ["stagedglobalnetworkpolicy", "stagedglobalnetworkpolicies", "sgnp", "sgnps"],
    "StagedKubernetesNetworkPolicy": ["stagedkubernetesnetworkpolicy", "stagedkubernetesnetworkpolicies",
                                      "stagedkubernetespolicy", "sknp", "stagedkubernetespolicies", "skpol", "skpols"],
    "StagedNetworkPolicy": ["stagednetworkpolicy", "stagednetworkpolicies", "stagedpolicy", "snp",
                            "stagedpolicies", "spol", "spols"],
    "Tier": ["tier", "tiers"],
    "WorkloadEndpoint": ["workloadendpoint", "workloadendpoints", "wep", "weps"],
}


def test_every_name_of_every_kind_in_any_case(ctl):
    for kind, names in NAMES.items():
        for name in names + [names[0].upper(), kind, names[1].title()]:
            code, out, err = ctl("get", name, "-o", "yaml")
            assert code == 0, (name, err)
            assert yaml.safe_load(out)["kind"] == kind + "List", name
    code, _, err = ctl("get", "ippoolz")
    assert (code, err) == (1, "failed to get resources: resource type 'ippoolz' is not supported\n")


def test_custom_columns_errors(ctl):
    create(ctl, POOL1)
    code, out, err = ctl("get", "ippool", "-o", "custom-columns=NAME,FOO")
    assert code == 1 and out == "" and err.startswith("unknown heading FOO, valid values are: ")
    code, _, err = ctl("get", "ippool", "-o", "custom-columns=")
    assert (code, err) == (1, "need to specify at least one column\n")
    code, _, err = ctl("get", "ippool", "-o", "table")
    assert (code, err) == (1, "unrecognized output format 'table'\n")
    code, out, _ = ctl("get", "ippool", "-o", "custom-columns=SELECTOR,NAME")
    assert out == "SELECTOR       NAME           \nfoo == 'bar'   ippool-name1   \n\n"


# -- the Go formatting helpers ----------------------------------------------------------------

@pytest.mark.parametrize("value,table,json_text", [
    (1000000.0, "1e+06", "1000000"), (1500000.0, "1.5e+06", "1500000"), (100.0, "100", "100"),
    (10.5, "10.5", "10.5"), (123456.0, "123456", "123456"), (0.0001, "0.0001", "0.0001"),
    (0.00001, "1e-05", "0.00001"), (1e21, "1e+21", "1e+21"), (1e-7, "1e-07", "1e-7"), (-2.5, "-2.5", "-2.5"),
])
def test_go_float_formats(value, table, json_text):
    assert (go_float(value), go_json_float(value)) == (table, json_text)


@pytest.mark.parametrize("text,quoted", [
    ("5", True), ("0x1F", True), ("1e3", True), ("08", True), (".5", True), ("1:20", True), ("+1", True),
    ("2026-11-30T23:32:52Z", True), ("2026-1-2", True), ("y", True), ("No", True), ("off", True), ("", True),
    ("~", True), ("null", True), (".inf", True),
    ("all()", False), ("10.0.1.0/24", False), ("fd00::2/64", False), ("v3.32.1", False), ("2026-13-40", False),
    ("abc", False), ("=", False), ("1.2.3", False), ("64512a", False),
])
def test_yaml_quoting_follows_yaml_v2s_resolver(text, quoted):
    assert yaml_needs_quotes(text) == quoted
    out = marshal_yaml({"k": text})
    assert out.startswith('k: "') == quoted, out
    if text not in ("2026-13-40", "="):  # PyYAML's reader types these; yaml.v2's does not
        assert yaml.safe_load(out) == {"k": text}


def test_yaml_key_order_is_yaml_v2s():
    # Runs of digits compare as numbers; a non-letter sorts before a letter.
    out = marshal_yaml({"k10": 1, "k9": 2, "aB": 3, "a_b": 4, "a": 5})
    assert out == "a: 5\na_b: 4\naB: 3\nk9: 2\nk10: 1\n"
    assert marshal_yaml({"s": "a\nb\n"}) == "s: |\n  a\n  b\n"


def test_a_lists_resource_version_is_the_datastore_revision_it_was_listed_at(ctl, etcd_kv):
    # libcalico-go's List answers with the revision of the read (etcd's header revision),
    # not with the newest item's: a write to another kind moves it on, and an empty list
    # has one too.
    create(ctl, POOL1)
    pool_rv = yaml.safe_load(ctl("get", "ippool", "ippool-name1", "-o", "yaml")[1])["metadata"]["resourceVersion"]
    assert ctl("create", "-f", "@p.yaml", files={"p.yaml": "kind: Profile\napiVersion: projectcalico.org/v3\n"
                                                            "metadata: {name: other}\n"})[0] == 0
    _, now = etcd_kv.list("/calico/resources/v3/projectcalico.org/ippools/")
    for fmt in ("yaml", "json"):
        listed = (yaml.safe_load if fmt == "yaml" else json.loads)(ctl("get", "ippools", "-o", fmt)[1])
        assert listed["metadata"] == {"resourceVersion": str(now)} and int(pool_rv) < now
        assert [i["metadata"]["resourceVersion"] for i in listed["items"]] == [pool_rv]
    empty = yaml.safe_load(ctl("get", "bgppeers", "-o", "yaml")[1])
    assert empty["items"] == [] and empty["metadata"] == {"resourceVersion": str(now)}
