"""Calico 3.32's network-policy how-tos and host-endpoint reference, replayed against the
policy agent as an operator would follow them: the pages' resources (names and shapes as
the pages give them, adapted to this test's pods), real TCP/UDP/ICMP between network
namespaces where that is cheap, the dry run where the behaviour is the rules themselves.

Pages (tigera/docs, calico_versioned_docs/version-3.32/):
  network-policy/get-started/kubernetes-default-deny.mdx        default deny, DNS exception
  network-policy/policy-rules/namespace-policy.mdx              namespace selectors
  network-policy/policy-rules/service-accounts.mdx              service account rules
  network-policy/policy-rules/icmp-ping.mdx                     ICMP type/code
  network-policy/policy-rules/policy-rules-overview.mdx         named ports
  network-policy/policy-tiers/tiered-policy.mdx                 tiers, order, Pass
  network-policy/staged-network-policies.mdx                    staged policies
  network-policy/hosts/protect-hosts.mdx, kubernetes-nodes.mdx  host endpoints, auto HEPs
  network-policy/hosts/host-forwarded-traffic.mdx               applyOnForward, `*` HEPs
  network-policy/extreme-traffic/defend-dos-attack.mdx          doNotTrack deny list
  reference/host-endpoints/failsafe.mdx, pre-dnat.mdx, overview.mdx
  network-policy/services/services-cluster-ips.mdx (Services in rules: dry run with an
  EndpointSlice; the live case is tests/test_kdd_felix_services.py on the stand-in)

One node (tests/felix_node.py) serves the module; each test writes what it needs and
removes it afterwards.
"""
from __future__ import annotations

import pytest

from e2e.probes import eventually
from felix_node import EXTERNAL_IP, NODE_IP, _resource, felix_node_on_etcd
from node.felix.dryrun import dry_run
from node.felix.features import Features

WAIT = 15.0
POD = {"web": "10.65.0.20", "db": "10.65.0.21", "intern": "10.65.0.22", "dns": "10.65.0.30",
       "client": "10.65.1.40"}


def _profiles(node, namespace: str, labels: dict, accounts: dict[str, dict]) -> None:
    """The profiles the Kubernetes datastore derives from a namespace (its labels, with
    ``kubernetes.io/metadata.name`` as the API server sets it) and its service accounts."""
    node.namespace_profile(namespace, {"kubernetes.io/metadata.name": namespace, **labels})
    for sa, sa_labels in accounts.items():
        apply = {f"pcsa.{k}": v for k, v in sa_labels.items()}
        apply["pcsa.projectcalico.org/name"] = sa
        node.write(_resource("Profile", f"ksa.{namespace}.{sa}", {"labelsToApply": apply}))


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    with felix_node_on_etcd() as n:
        _profiles(n, "engineering", {"team": "eng"},
                  {"api-service": {"app": "web-frontend"}, "intern": {"role": "intern"}})
        _profiles(n, "kube-system", {}, {})
        _profiles(n, "other", {"team": "ops"}, {})
        n.write(_resource("IPPool", "pool", {"cidr": "10.65.0.0/16"}))
        for name, ns, labels, sa, ports in (
                ("web", "engineering", {"app": "web"}, "api-service", []),
                ("db", "engineering", {"app": "db"}, "default",
                 [{"name": "http", "protocol": "TCP", "port": 8080}]),
                ("intern", "engineering", {"app": "intern"}, "intern", []),
                ("dns", "kube-system", {"k8s-app": "kube-dns"}, "default", []),
                ("client", "other", {"app": "client"}, "default", [])):
            pod = n.add_pod(name, POD[name], namespace=ns, labels=labels, ports=ports, write=False)
            pod.service_account = sa
            n.write(pod.endpoint())
        for where in POD:
            for port in (80, 8080):
                n.listen(where, port)
        n.listen("dns", 53)
        for port in (22, 68, 80, 6443, 8080, 8081):
            n.listen("node", port)
        for port in (22, 53, 80, 2379):
            n.listen("external", port)
        n.start_agent(tmp_path_factory.mktemp("felix"))
        n.wait_ready(40)
        yield n


@pytest.fixture
def written(node):
    """What a test wrote, (kind, name, namespace), deleted afterwards (tiers last)."""
    done: list[tuple[str, str, str]] = []
    yield done
    order = list(dict.fromkeys(reversed(done)))
    for kind, name, namespace in sorted(order, key=lambda w: w[0] == "Tier"):
        node.delete(kind, name, namespace)


def _apply(node, written, kind: str, name: str, spec: dict, namespace: str = "", labels: dict | None = None):
    res = _resource(kind, name, spec, namespace=namespace, labels=labels)
    node.write(res)
    written.append((kind, name, namespace))


def expect(node, src, proto, dst, port, ok: bool, timeout: float = WAIT):
    got = eventually(lambda: node.can(src, proto, dst, port) == ok, timeout)
    assert got, (f"{src} -> {dst} {proto}/{port}: expected {'allowed' if ok else 'blocked'}\n"
                 f"{node.log_text()[-3000:]}")


def expect_all(node, cases):
    for src, proto, dst, port, ok in cases:
        expect(node, src, proto, dst, port, ok)


# -- kubernetes-default-deny.mdx -----------------------------------------------------------

def test_namespaced_default_deny(node, written):
    """The page's NetworkPolicy ``default-deny`` (all(), Ingress and Egress) in one
    namespace: its pods neither send nor receive; other namespaces are untouched."""
    _apply(node, written, "NetworkPolicy", "default-deny", {"selector": "all()", "types": ["Ingress", "Egress"]},
           namespace="engineering")
    expect_all(node, [("web", "tcp", "db", 80, False), ("client", "tcp", "db", 80, False),
                      ("db", "udp", "client", 80, False), ("client", "tcp", "dns", 53, True),
                      ("dns", "icmp", "client", 0, True)])


def test_global_default_deny_keeps_dns_and_system_namespaces(node, written):
    """The page's ``deny-app-policy``: every namespace but the listed system ones is
    default-deny, except DNS (UDP and TCP 53) to the kube-dns pods."""
    _apply(node, written, "GlobalNetworkPolicy", "deny-app-policy", {
        "namespaceSelector": 'kubernetes.io/metadata.name not in {"calico-system", "kube-public", '
                             '"kube-system", "tigera-operator"}',
        "types": ["Ingress", "Egress"],
        "egress": [{"action": "Allow", "protocol": proto,
                    "destination": {"selector": 'k8s-app == "kube-dns"', "ports": [53]}}
                   for proto in ("UDP", "TCP")]})
    expect_all(node, [("web", "udp", "dns", 53, True), ("client", "tcp", "dns", 53, True),
                      ("web", "tcp", "dns", 80, False),      # only DNS
                      ("web", "tcp", "db", 80, False), ("client", "tcp", "web", 80, False),
                      ("dns", "tcp", "external", 80, True)])  # kube-system is left alone


# -- namespace-policy.mdx, service-accounts.mdx ------------------------------------------

def test_namespace_selector_rule(node, written):
    """Ingress to ``app == 'db'`` only from namespaces labelled ``team == 'ops'`` (the
    page's ``namespaceSelector`` rule), wherever the policy itself lives."""
    _apply(node, written, "NetworkPolicy", "allow-ops", {
        "selector": "app == 'db'", "ingress": [{"action": "Allow", "source": {"namespaceSelector": "team == 'ops'"}}]},
        namespace="engineering")
    expect_all(node, [("client", "tcp", "db", 80, True), ("web", "tcp", "db", 80, False)])


def test_service_account_names_label_selector_and_policy_selector(node, written):
    """``demo-calico`` (by names), ``allow-web-frontend`` (by the account's labels) and
    ``restrict-intern-access`` (serviceAccountSelector on the policy itself)."""
    _apply(node, written, "NetworkPolicy", "demo-calico", {
        "selector": 'app == "db"',
        "ingress": [{"action": "Allow", "source": {"serviceAccounts": {"names": ["api-service", "user-auth-service"]}}}]},
        namespace="engineering")
    expect_all(node, [("web", "tcp", "db", 80, True), ("intern", "tcp", "db", 80, False)])
    _apply(node, written, "NetworkPolicy", "demo-calico", {
        "selector": 'app == "db"',
        "ingress": [{"action": "Allow", "source": {"serviceAccounts": {"selector": 'app == "web-frontend"'}}}]},
        namespace="engineering")
    expect_all(node, [("web", "tcp", "db", 80, True), ("intern", "tcp", "db", 80, False)])
    node.delete("NetworkPolicy", "demo-calico", "engineering")
    _apply(node, written, "NetworkPolicy", "restrict-intern-access", {
        "serviceAccountSelector": 'role == "intern"',
        "ingress": [{"action": "Allow", "source": {"serviceAccounts": {"selector": 'role == "intern"'}}}],
        "egress": [{"action": "Allow", "destination": {"serviceAccounts": {"selector": 'role == "intern"'}}}]},
        namespace="engineering")
    expect_all(node, [("web", "tcp", "intern", 80, False), ("intern", "tcp", "db", 80, False),
                      ("web", "tcp", "db", 80, True)])   # db's account is not selected


# -- icmp-ping.mdx ------------------------------------------------------------------------------

def test_icmp_type_and_code(node, written):
    """A ping is ICMP type 8 code 0: a rule for type 8 code 1 does not let it in, one for
    type 8 does; ``block-icmp`` (order 200, Deny ICMP/ICMPv6 both ways) stops it, but a
    policy with a lower order that allows it comes first."""
    _apply(node, written, "NetworkPolicy", "ping-code", {
        "selector": "app == 'db'", "types": ["Ingress"],
        "ingress": [{"action": "Allow", "protocol": "ICMP", "icmp": {"type": 8, "code": 1}}]}, namespace="engineering")
    expect(node, "web", "icmp", "db", 0, False)
    _apply(node, written, "NetworkPolicy", "ping-code", {
        "selector": "app == 'db'", "types": ["Ingress"],
        "ingress": [{"action": "Allow", "protocol": "ICMP", "icmp": {"type": 8}}]}, namespace="engineering")
    expect(node, "web", "icmp", "db", 0, True)
    node.delete("NetworkPolicy", "ping-code", "engineering")
    _apply(node, written, "GlobalNetworkPolicy", "block-icmp", {
        "order": 200, "selector": "all()", "types": ["Ingress", "Egress"],
        "ingress": [{"action": "Deny", "protocol": "ICMP"}, {"action": "Deny", "protocol": "ICMPv6"}],
        "egress": [{"action": "Deny", "protocol": "ICMP"}, {"action": "Deny", "protocol": "ICMPv6"}]})
    expect_all(node, [("web", "icmp", "db", 0, False), ("client", "icmp", "dns", 0, False)])
    _apply(node, written, "GlobalNetworkPolicy", "allow-ping-in-cluster", {
        "order": 100, "selector": "all()", "types": ["Ingress", "Egress"],
        "ingress": [{"action": "Allow", "protocol": "ICMP", "source": {"selector": "all()"}, "icmp": {"type": 8}}],
        "egress": [{"action": "Allow", "protocol": "ICMP", "icmp": {"type": 8}}]})
    expect(node, "web", "icmp", "db", 0, True)


# -- policy-rules-overview.mdx: named ports ---------------------------------------------

def test_named_port_in_an_egress_rule(node, written):
    """Egress from web only to the port its peers call ``http`` (db's 8080): the named
    port resolves per destination endpoint, so db:80 and client:8080 stay closed."""
    _apply(node, written, "NetworkPolicy", "web-to-http", {
        "selector": "app == 'web'", "types": ["Egress"],
        "egress": [{"action": "Allow", "protocol": "TCP", "destination": {"ports": ["http"]}}]},
        namespace="engineering")
    expect_all(node, [("web", "tcp", "db", 8080, True), ("web", "tcp", "db", 80, False),
                      ("web", "tcp", "client", 8080, False)])


# -- tiered-policy.mdx -------------------------------------------------------------------------

def test_tiers_order_and_pass(node, written):
    """The tier with the lower order decides first; Pass hands the packet to the next tier;
    a policy in the default tier that never reaches a verdict ends in its deny."""
    _apply(node, written, "Tier", "security", {"order": 100})
    _apply(node, written, "Tier", "platform", {"order": 200})
    _apply(node, written, "GlobalNetworkPolicy", "security.quarantine", {
        "tier": "security", "selector": "app == 'db'", "types": ["Ingress"],
        "ingress": [{"action": "Deny", "source": {"selector": "app == 'intern'"}}, {"action": "Pass"}]})
    _apply(node, written, "GlobalNetworkPolicy", "platform.allow-eng", {
        "tier": "platform", "selector": "app == 'db'", "types": ["Ingress"],
        "ingress": [{"action": "Allow", "source": {"namespaceSelector": "team == 'eng'"}}]})
    expect_all(node, [("intern", "tcp", "db", 80, False),   # denied in security, before platform allows
                      ("web", "tcp", "db", 80, True),        # passed, then allowed in platform
                      ("client", "tcp", "db", 80, False)])   # nothing in platform decides: its end drops
    # Reordered, platform's allow comes first and the quarantine no longer bites.
    _apply(node, written, "Tier", "platform", {"order": 50})
    expect(node, "intern", "tcp", "db", 80, True)


# -- staged-network-policies.mdx ---------------------------------------------------------

def test_staged_policies_change_nothing(node, written):
    """Staged deny-everything policies of each kind leave traffic as it is, and the agent
    renders no chain for them."""
    _apply(node, written, "StagedGlobalNetworkPolicy", "default.deny-all",
           {"tier": "default", "selector": "all()", "types": ["Ingress", "Egress"]})
    _apply(node, written, "StagedNetworkPolicy", "default.deny-eng",
           {"tier": "default", "selector": "all()", "types": ["Ingress", "Egress"],
            "ingress": [{"action": "Deny"}], "egress": [{"action": "Deny"}]}, namespace="engineering")
    _apply(node, written, "StagedKubernetesNetworkPolicy", "deny-k8s",
           {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}, namespace="engineering")
    # A real policy written after them is in force: the agent has seen the staged ones.
    _apply(node, written, "NetworkPolicy", "marker", {
        "selector": "app == 'intern'", "types": ["Ingress"]}, namespace="engineering")
    expect(node, "web", "tcp", "intern", 80, False)
    expect_all(node, [("web", "tcp", "db", 80, True), ("db", "udp", "client", 80, True),
                      ("client", "icmp", "web", 0, True)])
    rules = node.iptables_save("filter")
    assert "deny-all" not in rules and "deny-eng" not in rules and "deny-k8s" not in rules


# -- host endpoints: failsafe.mdx, protect-hosts.mdx, host-forwarded-traffic.mdx -----------

def _hep(node, written, name="node1-eth0", iface="eth0", labels=None, profiles=None):
    spec = {"node": node.name, "interfaceName": iface, "expectedIPs": [NODE_IP]}
    if profiles:
        spec["profiles"] = profiles
    _apply(node, written, "HostEndpoint", name, spec, labels=labels or {"host": "node1"})


def test_host_endpoint_without_policy_failsafe_and_workloads(node, written):
    """A host endpoint with no policy: the host's own traffic through it is denied except
    the failsafe ports (inbound TCP 22, 6443, UDP 68; outbound TCP 2379, UDP 53), while
    workload traffic, forwarded through the same interface, is not touched."""
    _hep(node, written)
    expect_all(node, [("external", "tcp", "node", 8080, False), ("node", "tcp", "external", 80, False),
                      ("external", "tcp", "node", 22, True), ("external", "tcp", "node", 6443, True),
                      ("external", "udp", "node", 68, True),
                      ("node", "tcp", "external", 2379, True), ("node", "udp", "external", 53, True),
                      ("web", "tcp", "db", 80, True), ("external", "tcp", "db", 80, True),
                      ("db", "tcp", "external", 80, True), ("node", "tcp", "db", 80, True)])


def test_apply_on_forward_egress_to_maintenance_network(node, written):
    """host-forwarded-traffic.mdx's ``allow-ssh-maintenance``: an applyOnForward egress
    policy on the HEP lets only SSH out through it, forwarded or local; ingress, which no
    applyOnForward policy covers, still forwards."""
    _apply(node, written, "GlobalNetworkPolicy", "allow-ssh-maintenance", {
        "selector": "network == 'maintenance'", "applyOnForward": True, "types": ["Egress"],
        "egress": [{"action": "Allow", "protocol": "TCP", "destination": {"ports": [22]}}]})
    _hep(node, written, labels={"network": "maintenance"})
    expect_all(node, [("db", "tcp", "external", 22, True), ("db", "tcp", "external", 80, False),
                      ("node", "tcp", "external", 80, False), ("external", "tcp", "db", 80, True)])


def test_pre_dnat_sees_the_original_destination_and_has_no_default_drop(node, written):
    """pre-dnat.mdx: a preDNAT policy matches the address and port before DNAT (here a
    DNAT of node:9090 to db:80, as kube-proxy does for a NodePort), applies to traffic
    going on to a local workload, and what it does not decide carries on."""
    rule = ["PREROUTING", "-p", "tcp", "--dport", "9090", "-j", "DNAT", "--to-destination", f"{POD['db']}:80"]
    node.ns.run("iptables-legacy", "-t", "nat", "-A", *rule)
    try:
        _hep(node, written)
        expect(node, "external", "tcp", "node", 9090, True)   # the NodePort forwards
        _apply(node, written, "GlobalNetworkPolicy", "deny-nodeport", {
            "selector": "has(host)", "preDNAT": True, "applyOnForward": True, "types": ["Ingress"],
            "ingress": [{"action": "Deny", "protocol": "TCP", "destination": {"ports": [9090]}}]})
        expect_all(node, [("external", "tcp", "node", 9090, False),
                          ("external", "tcp", "db", 80, True),       # same backend, no DNAT: not matched
                          ("external", "tcp", "node", 22, True),
                          ("web", "tcp", "node", 9090, True)])       # a pod's does not come in on eth0...
        # ... but host-forwarded-traffic.mdx: a `*` host endpoint's preDNAT policy also
        # polices what local workloads send to the node's DNATed ports.
        node.delete("HostEndpoint", "node1-eth0")
        _hep(node, written, name="node1-all", iface="*")
        expect_all(node, [("web", "tcp", "node", 9090, False), ("external", "tcp", "node", 9090, False),
                          ("web", "tcp", "db", 80, True)])
    finally:
        node.ns.run("iptables-legacy", "-t", "nat", "-D", *rule, check=False)


def test_do_not_track_needs_both_directions(node, written):
    """An untracked allow skips conntrack, so the reply needs its own untracked rule; the
    defend-dos page's untracked deny list drops a source's packets, local or forwarded,
    before conntrack; only the failsafe ports, checked first in raw too (v3.32.1's
    endpoint chains), still answer it."""
    _hep(node, written)
    _apply(node, written, "GlobalNetworkPolicy", "untracked-8081", {
        "selector": "has(host)", "doNotTrack": True, "applyOnForward": True, "types": ["Ingress"],
        "ingress": [{"action": "Allow", "protocol": "TCP", "destination": {"ports": [8081]}}]})
    expect(node, "external", "tcp", "node", 8081, False)
    _apply(node, written, "GlobalNetworkPolicy", "untracked-8081", {
        "selector": "has(host)", "doNotTrack": True, "applyOnForward": True, "types": ["Ingress", "Egress"],
        "ingress": [{"action": "Allow", "protocol": "TCP", "destination": {"ports": [8081]}}],
        "egress": [{"action": "Allow", "protocol": "TCP", "source": {"ports": [8081]}}]})
    expect(node, "external", "tcp", "node", 8081, True)
    _apply(node, written, "GlobalNetworkSet", "dos-mitigation", {"nets": [f"{EXTERNAL_IP}/32"]},
           labels={"dos-deny-list": "true"})
    _apply(node, written, "GlobalNetworkPolicy", "dos-mitigation", {
        "selector": "has(host)", "doNotTrack": True, "applyOnForward": True, "types": ["Ingress"],
        "ingress": [{"action": "Deny", "source": {"selector": "dos-deny-list == 'true'"}}]})
    expect_all(node, [("external", "tcp", "node", 8081, False),
                      ("external", "tcp", "db", 80, False),     # forwarded traffic too
                      ("external", "tcp", "node", 22, True)])   # the failsafe rules come first, even in raw


def test_all_interfaces_host_endpoint_with_default_allow_profile(node, written):
    """kubernetes-nodes.mdx: kube-controllers' automatic HEP (``*``, profile
    ``projectcalico-default-allow``) allows everything until a policy selects it; then
    the policy's default deny holds for the host's own ingress (failsafe ports aside),
    egress stays with the profile, and pods and forwarded traffic are not affected."""
    _hep(node, written, name="node1-auto-hep", iface="*", profiles=["projectcalico-default-allow"],
         labels={"projectcalico.org/created-by": "calico-kube-controllers", "kubernetes-worker": ""})
    expect_all(node, [("external", "tcp", "node", 8080, True), ("node", "tcp", "external", 80, True)])
    _apply(node, written, "GlobalNetworkPolicy", "ingress-k8s-workers", {
        "selector": "has(kubernetes-worker)",
        "ingress": [{"action": "Allow", "destination": {"nets": ["127.0.0.0/8"]}},
                    {"action": "Allow", "protocol": "TCP",
                     "source": {"selector": "has(node-role.kubernetes.io/control-plane)"},
                     "destination": {"ports": [10250]}}]})
    expect_all(node, [("external", "tcp", "node", 8080, False), ("external", "tcp", "node", 22, True),
                      ("node", "tcp", "external", 80, True), ("web", "tcp", "db", 80, True),
                      ("external", "tcp", "db", 80, True), ("node", "tcp", "db", 80, True)])


# -- dry run: the documented defaults and the Services rule ------------------------------

DOC_FAILSAFE_IN = {("tcp", 22), ("udp", 68), ("tcp", 179), ("tcp", 2379), ("tcp", 2380), ("tcp", 5473),
                   ("tcp", 6443), ("tcp", 6666), ("tcp", 6667)}
DOC_FAILSAFE_OUT = {("udp", 53), ("udp", 67), ("tcp", 179), ("tcp", 2379), ("tcp", 2380), ("tcp", 5473),
                    ("tcp", 6443), ("tcp", 6666), ("tcp", 6667)}


def _dry(tmp_path, docs: list[dict], what: str = "tables") -> str:
    import yaml

    path = tmp_path / "resources.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    return dry_run("node1", {"CALICO_CONFIG_DIR": str(tmp_path)}, files=[str(path)], ip_version=4, what=what,
                   interfaces={"eth0": ["10.0.0.1"], "lo": ["127.0.0.1"]}, interface_mtus={"eth0": 1500},
                   features=Features())


def _failsafe(text: str, table: str, chain: str) -> set[tuple[str, int, str]]:
    """(protocol, port, direction flag) of one table's failsafe chain's rules."""
    body = text.split(f"*{table}", 1)[1].split("COMMIT", 1)[0]
    out = set()
    for line in body.splitlines():
        if line.startswith(f"-A {chain} "):
            words = line.split()
            flag = next(w for w in words if w.endswith("-ports"))
            out.add((words[words.index("-p") + 1], int(words[words.index(flag) + 1]), flag))
    return out


HEP = {"apiVersion": "projectcalico.org/v3", "kind": "HostEndpoint",
       "metadata": {"name": "node1-eth0"}, "spec": {"node": "node1", "interfaceName": "eth0"}}
DST, SRC = "--destination-ports", "--source-ports"


def _only(rules, flag):
    return {(proto, port) for proto, port, f in rules if f == flag}


def test_failsafe_defaults_are_the_documented_list(tmp_path):
    """failsafe.mdx's table: the host accepts new connections to the inbound ports and
    opens them to the outbound ports. In raw (before conntrack, where untracked policy
    runs, so there only with an untracked policy) the replies of each are let through
    too, as Felix does."""
    untracked = {"apiVersion": "projectcalico.org/v3", "kind": "GlobalNetworkPolicy", "metadata": {"name": "u"},
                 "spec": {"selector": "all()", "doNotTrack": True, "applyOnForward": True, "types": ["Ingress"],
                          "ingress": [{"action": "Deny", "source": {"nets": ["192.0.2.0/24"]}}]}}
    text = _dry(tmp_path, [HEP, untracked])
    assert _failsafe(text, "filter", "cali-failsafe-in") == {(p, n, DST) for p, n in DOC_FAILSAFE_IN}
    assert _failsafe(text, "filter", "cali-failsafe-out") == {(p, n, DST) for p, n in DOC_FAILSAFE_OUT}
    raw_in, raw_out = _failsafe(text, "raw", "cali-failsafe-in"), _failsafe(text, "raw", "cali-failsafe-out")
    assert (_only(raw_in, DST), _only(raw_in, SRC)) == (DOC_FAILSAFE_IN, DOC_FAILSAFE_OUT)
    assert (_only(raw_out, DST), _only(raw_out, SRC)) == (DOC_FAILSAFE_OUT, DOC_FAILSAFE_IN)


def test_failsafe_lists_set_to_empty_remove_them(tmp_path):
    """failsafe.mdx: each list set to [] in FelixConfiguration disables it."""
    config = {"apiVersion": "projectcalico.org/v3", "kind": "FelixConfiguration", "metadata": {"name": "default"},
              "spec": {"failsafeInboundHostPorts": [], "failsafeOutboundHostPorts": []}}
    text = _dry(tmp_path, [HEP, config])
    for table in ("raw", "filter"):
        assert _failsafe(text, table, "cali-failsafe-in") == set() == _failsafe(text, table, "cali-failsafe-out")
    assert "--jump cali-failsafe-in" in text    # the chains stay, empty, as in Felix


def test_services_rule_matches_the_services_endpoints(tmp_path):
    """services-cluster-ips.mdx: a rule naming a Service matches its endpoints' addresses
    (and, as a destination, their ports) from the Service's EndpointSlices."""
    slice_ = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
              "metadata": {"name": "kube-dns-abcde", "namespace": "kube-system",
                           "labels": {"kubernetes.io/service-name": "kube-dns"}},
              "addressType": "IPv4", "endpoints": [{"addresses": ["10.65.0.30"]}, {"addresses": ["10.65.0.31"]}],
              "ports": [{"name": "dns", "port": 53, "protocol": "UDP"}]}
    wep = _resource("WorkloadEndpoint", "node1-k8s-web-eth0", {
        "orchestrator": "k8s", "node": "node1", "pod": "web", "endpoint": "eth0", "interfaceName": "cali1a2b3c4d5e6",
        "ipNetworks": ["10.65.0.20/32"], "profiles": ["kns.engineering"]}, namespace="engineering",
        labels={"projectcalico.org/namespace": "engineering", "projectcalico.org/orchestrator": "k8s"})
    policy = {"apiVersion": "projectcalico.org/v3", "kind": "NetworkPolicy",
              "metadata": {"name": "allow-kube-dns", "namespace": "engineering"},
              "spec": {"selector": "all()", "types": ["Egress"],
                       "egress": [{"action": "Allow", "destination": {"services": {"name": "kube-dns",
                                                                                   "namespace": "kube-system"}}}]}}
    docs = [slice_, policy, wep.to_dict()]
    sets = _dry(tmp_path, docs, what="ipsets")
    members = {line.split()[2] for line in sets.splitlines() if line.startswith("add ") and "this-host" not in line}
    assert members == {"10.65.0.30,udp:53", "10.65.0.31,udp:53"}, sets
    tables = _dry(tmp_path, docs)
    assert "dst,dst" in tables.split("*filter", 1)[1]   # matched on address and port together


# -- the dry run reads Kubernetes' own policy kinds (kubernetes-default-deny.mdx) ----------

ENGINEERING_WEP = _resource("WorkloadEndpoint", "node1-k8s-web-eth0", {
    "orchestrator": "k8s", "node": "node1", "pod": "web", "endpoint": "eth0", "interfaceName": "cali1a2b3c4d5e6",
    "ipNetworks": ["10.65.0.20/32"], "profiles": ["kns.engineering"]}, namespace="engineering",
    labels={"projectcalico.org/namespace": "engineering", "projectcalico.org/orchestrator": "k8s", "app": "web"})
ENGINEERING_PROFILE = _resource("Profile", "kns.engineering", {
    "ingress": [{"action": "Allow"}], "egress": [{"action": "Allow"}],
    "labelsToApply": {"pcns.projectcalico.org/name": "engineering"}})


def _policy_rules(text: str) -> list[str]:
    """The filter table's rules in policy chains and the workload's jumps to them, with
    the rule IDs, chain names and comments taken out (kinds differ, verdicts must not)."""
    import re

    out = []
    for line in text.split("*filter", 1)[1].splitlines():
        if line.startswith(("-A cali-pi-", "-A cali-po-")) or (
                line.startswith(("-A cali-tw-", "-A cali-fw-")) and ("cali-pi-" in line or "cali-po-" in line)):
            line = re.sub(r'-m comment --comment "[^"]*" ?', "", line)
            out.append(re.sub(r"cali-p([io])-\S+", r"cali-p\1-X", line))
    return out


def test_dry_run_takes_the_kubernetes_default_deny(tmp_path):
    """The page's Kubernetes NetworkPolicy ``default-deny`` (podSelector {}, both types)
    in a file gives the policy the Kubernetes datastore would (KubernetesNetworkPolicy,
    order 1000) and the same verdicts as the page's Calico NetworkPolicy."""
    base = [ENGINEERING_WEP.to_dict(), ENGINEERING_PROFILE.to_dict()]
    k8s = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
           "metadata": {"name": "default-deny", "namespace": "engineering"},
           "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}}
    calico = {"apiVersion": "projectcalico.org/v3", "kind": "NetworkPolicy",
              "metadata": {"name": "default-deny", "namespace": "engineering"},
              "spec": {"selector": "all()", "types": ["Ingress", "Egress"]}}
    from_k8s = _dry(tmp_path, base + [k8s])
    assert '"KubernetesNetworkPolicy engineering/default-deny ingress"' in from_k8s
    assert '"KubernetesNetworkPolicy engineering/default-deny egress"' in from_k8s
    rules = _policy_rules(from_k8s)
    assert len(rules) == 4 and rules == _policy_rules(_dry(tmp_path, base + [calico]))
    # Without a namespace it is in "default", as kubectl would put it: not this pod's.
    del k8s["metadata"]["namespace"]
    assert _policy_rules(_dry(tmp_path, base + [k8s])) == []


def test_dry_run_takes_a_cluster_network_policy(tmp_path, caplog):
    """A ClusterNetworkPolicy (the kube-admin tier of tiered-policy.mdx) in a file is
    enforced in its tier; a malformed one is reported and left out."""
    cnp = {"apiVersion": "policy.networking.k8s.io/v1alpha2", "kind": "ClusterNetworkPolicy",
           "metadata": {"name": "no-ssh"},
           "spec": {"tier": "Admin", "priority": 10, "subject": {"namespaces": {}},
                    "ingress": [{"name": "ssh", "action": "Deny", "from": [{"namespaces": {}}],
                                 "protocols": [{"tcp": {"destinationPort": {"number": 22}}}]}]}}
    text = _dry(tmp_path, [ENGINEERING_WEP.to_dict(), ENGINEERING_PROFILE.to_dict(), cnp])
    assert "Start of tier kube-admin" in text and "KubernetesClusterNetworkPolicy no-ssh ingress" in text
    bad = {**cnp, "metadata": {"name": "broken"}, "spec": {**cnp["spec"], "tier": "Gold"}}
    text = _dry(tmp_path, [ENGINEERING_WEP.to_dict(), ENGINEERING_PROFILE.to_dict(), bad])
    assert "kube-admin" not in text.split("*filter", 1)[1]
    assert any("skipped malformed ClusterNetworkPolicy broken" in r.getMessage() for r in caplog.records)
