"""Kubernetes ClusterNetworkPolicy -> KubernetesClusterNetworkPolicy, checked against
libcalico-go's lib/backend/k8s/conversion/clusternetworkpolicy_test.go; each test names
the case it follows."""
from __future__ import annotations

import pytest

from kcnp_examples import API_VERSION, BASIC, NETWORKS, PEER_SELECTORS, PEERS_AND_PORTS, TCP80, TCP_RANGE
from node.datastore.kubernetes import conversion as conv
from node.model import from_dict

UID = "30316465-6365-4463-ad63-3564622d3638"
K8S = "projectcalico.org/orchestrator == 'k8s'"


def _cnp(spec: dict, name: str = "test.policy", **meta) -> dict:
    return {"apiVersion": API_VERSION, "kind": "ClusterNetworkPolicy",
            "metadata": {"name": name, "uid": UID, **meta}, "spec": spec}


def _ns(**labels) -> dict:
    return {"namespaces": {"matchLabels": labels}}


def _named(name: str) -> dict:
    return {"metadata": {"annotations": {"name": name}}}


def _convert(spec: dict) -> tuple[dict, list[str]]:
    policy, problems = conv.k8s_cluster_network_policy_to_calico(_cnp(spec))
    assert policy is not None
    # Every conversion has the shape of a KubernetesClusterNetworkPolicy. (Not the write
    # validator's approval: Calico's own conversion makes rules it would refuse on a write,
    # such as one "networks" peer listing both families; it is made on read, never written.)
    assert from_dict(policy, strict=False, validate=False).kind == "KubernetesClusterNetworkPolicy"
    return policy, problems


def test_basic_policy():
    # "should parse a basic k8s ClusterNetworkPolicy to a GlobalNetworkPolicy"
    policy, problems = _convert(BASIC)
    assert problems == []
    assert policy["kind"] == "KubernetesClusterNetworkPolicy"
    assert policy["metadata"] == {"name": "test.policy", "uid": "0c8c26a6-c6a6-44c6-adc6-ac2646b46c1c"}
    spec = policy["spec"]
    assert spec["tier"] == "kube-admin" and spec["order"] == 100
    assert spec["namespaceSelector"] == "label == 'value' && label2 == 'value2'"
    assert spec["selector"] == K8S
    assert spec["ingress"] == [{**_named("The first ingress rule"), "action": "Allow", "protocol": "TCP",
                                "source": {"namespaceSelector": "k == 'v' && k2 == 'v2'"},
                                "destination": {"ports": [80]}}]
    assert "egress" not in spec and spec["types"] == ["Ingress"]


def test_baseline_tier():
    # "Baseline tier: should parse a basic k8s ClusterNetworkPolicy to a GlobalNetworkPolicy"
    policy, _ = _convert({"priority": 7, "tier": "Baseline", "subject": {"namespaces": {}},
                          "egress": [{"action": "Deny", "to": [{"networks": ["10.0.0.0/8"]}]}]})
    assert policy["spec"]["tier"] == "kube-baseline" and policy["spec"]["order"] == 7
    assert policy["spec"]["egress"] == [{"action": "Deny", "destination": {"nets": ["10.0.0.0/8"]}}]


def test_invalid_actions_drop_the_rule():
    # "should drop rules with invalid action in a k8s ClusterNetworkPolicy": Log and Drop
    # are not ClusterNetworkPolicy actions; neither rule fails closed (only Deny and Pass do).
    protocols = [TCP80, TCP_RANGE]
    policy, problems = _convert({
        "priority": 300, "tier": "Admin", "subject": {"namespaces": {"matchLabels": {"label": "value"}}},
        "ingress": [{"name": "A random ingress rule", "action": "Log", "from": [_ns(k="v")]},
                    {"name": "A random ingress rule 2", "action": "Accept", "protocols": protocols,
                     "from": [_ns(k10="v10", k20="v20")]}],
        "egress": [{"name": "A random egress rule", "action": "Deny", "protocols": protocols,
                    "to": [_ns(k3="v3", k4="v4")]},
                   {"name": "A random egress rule 2", "action": "Drop", "to": [_ns(k30="v30")]}]})
    assert policy["spec"]["ingress"] == [
        {**_named("A random ingress rule 2"), "action": "Allow", "protocol": "TCP",
         "source": {"namespaceSelector": "k10 == 'v10' && k20 == 'v20'"},
         "destination": {"ports": [80, "2000:3000"]}}]
    assert policy["spec"]["egress"] == [
        {**_named("A random egress rule"), "action": "Deny", "protocol": "TCP",
         "destination": {"ports": [80, "2000:3000"], "namespaceSelector": "k3 == 'v3' && k4 == 'v4'"}}]
    assert problems == [
        "spec.ingress[0]: k8s rule couldn't be converted: unsupported cluster network policy action Log "
        "(rule dropped)",
        "spec.egress[1]: k8s rule couldn't be converted: unsupported cluster network policy action Drop "
        "(rule dropped)"]


def test_no_ports_means_any_protocol():
    # "should parse a k8s ClusterNetworkPolicy with no ports"
    policy, problems = _convert({
        "priority": 200, "tier": "Admin", "subject": {"namespaces": {"matchLabels": {"label": "value"}}},
        "ingress": [{"name": "in", "action": "Pass", "from": [_ns(k="v")]}],
        "egress": [{"name": "out", "action": "Deny", "to": [_ns(k3="v3")]}]})
    assert problems == []
    assert policy["spec"]["ingress"] == [{**_named("in"), "action": "Pass",
                                          "source": {"namespaceSelector": "k == 'v'"}}]
    assert policy["spec"]["egress"] == [{**_named("out"), "action": "Deny",
                                         "destination": {"namespaceSelector": "k3 == 'v3'"}}]
    assert policy["spec"]["types"] == ["Ingress", "Egress"]


def test_invalid_ports_drop_accept_rules():
    # "should drop rules with invalid ports in a k8s ClusterNetworkPolicy"
    bad = [TCP80, {"tcp": {"destinationPort": {"range": {"start": 1000, "end": 10}}}}]
    policy, problems = _convert({
        "priority": 300, "tier": "Admin", "subject": {"namespaces": {"matchLabels": {"label": "value"}}},
        "ingress": [{"action": "Accept", "protocols": bad, "from": [_ns(k="v")]},
                    {"action": "Pass", "protocols": [TCP80, TCP_RANGE], "from": [_ns(k10="v10")]}],
        "egress": [{"action": "Deny", "protocols": [TCP80, TCP_RANGE], "to": [_ns(k3="v3")]},
                   {"action": "Accept", "protocols": bad, "to": [_ns(k30="v30")]}]})
    assert policy["spec"]["ingress"] == [{"action": "Pass", "protocol": "TCP",
                                          "source": {"namespaceSelector": "k10 == 'v10'"},
                                          "destination": {"ports": [80, "2000:3000"]}}]
    assert policy["spec"]["egress"] == [{"action": "Deny", "protocol": "TCP",
                                         "destination": {"ports": [80, "2000:3000"],
                                                         "namespaceSelector": "k3 == 'v3'"}}]
    reason = ("k8s rule couldn't be converted: failed to parse k8s protocol: minimum port number (1000) "
              "is greater than maximum port number (10) in port range (rule dropped)")
    assert problems == [f"spec.ingress[0]: {reason}", f"spec.egress[1]: {reason}"]


def test_no_rules_and_empty_subjects():
    # "should parse an ClusterNetworkPolicy with no rules" / "with empty namespaces in
    # Subject" / "with empty podSelector in Subject"
    for subject in ({"namespaces": {}}, {"pods": {"podSelector": {}}}):
        policy, problems = _convert({"priority": 500, "tier": "Admin", "subject": subject})
        assert problems == []
        assert policy["spec"] == {"tier": "kube-admin", "order": 500, "selector": K8S,
                                  "namespaceSelector": "all()"}
    # "with a Subject with MatchExpressions"
    policy, _ = _convert({"priority": 500, "tier": "Admin", "subject": {"namespaces": {"matchExpressions": [
        {"key": "k", "operator": "In", "values": ["v1", "v2"]}]}}})
    assert policy["spec"]["namespaceSelector"] == "k in { 'v1', 'v2' }" and policy["spec"]["selector"] == K8S


@pytest.mark.parametrize("subject,ns_selector,selector", [
    # "with Namespaces subject and multiple peers"
    ({"namespaces": {"matchLabels": {"label": "value"}}}, "label == 'value'", K8S),
    # "with Pods subject and multiple peers"
    ({"pods": {"podSelector": {"matchLabels": {"label2": "value2"}}}}, "all()", f"{K8S} && label2 == 'value2'"),
])
def test_subjects_and_multiple_peers(subject, ns_selector, selector):
    pods_peer = {"pods": {"podSelector": {"matchLabels": {"k2": "v2"}}}}
    egress_pods = {"pods": {"namespaceSelector": {"matchLabels": {"k4": "v4"}},
                            "podSelector": {"matchLabels": {"k5": "v5"}}}}
    policy, problems = _convert({
        "priority": 600, "tier": "Admin", "subject": subject,
        "ingress": [{"action": "Pass", "from": [_ns(k="v"), pods_peer]}],
        "egress": [{"action": "Deny", "to": [_ns(k3="v3"), egress_pods]}]})
    assert problems == []
    spec = policy["spec"]
    assert (spec["namespaceSelector"], spec["selector"]) == (ns_selector, selector)
    assert [r["source"] for r in spec["ingress"]] == [
        {"namespaceSelector": "k == 'v'"}, {"namespaceSelector": "all()", "selector": f"{K8S} && k2 == 'v2'"}]
    assert [r["destination"] for r in spec["egress"]] == [
        {"namespaceSelector": "k3 == 'v3'"}, {"namespaceSelector": "k4 == 'v4'", "selector": f"{K8S} && k5 == 'v5'"}]
    assert spec["types"] == ["Ingress", "Egress"]


def test_does_not_exist_expression():
    # "should parse a k8s ClusterNetworkPolicy with a DoesNotExist expression"
    policy, _ = _convert({
        "priority": 600, "tier": "Admin",
        "subject": {"pods": {"podSelector": {"matchLabels": {"label2": "value2", "label": "value"}}}},
        "ingress": [{"action": "Accept", "protocols": [TCP80], "from": [{"pods": {"podSelector": {
            "matchExpressions": [{"key": "toast", "operator": "DoesNotExist"}]}}}]}]})
    assert policy["spec"]["selector"] == f"{K8S} && label == 'value' && label2 == 'value2'"
    assert policy["spec"]["ingress"] == [{"action": "Allow", "protocol": "TCP",
                                          "source": {"namespaceSelector": "all()", "selector": f"{K8S} && ! has(toast)"},
                                          "destination": {"ports": [80]}}]
    assert policy["spec"]["types"] == ["Ingress"]


def test_multiple_peers_and_ports():
    # "should parse an ClusterNetworkPolicy with multiple peers and ports": one rule per
    # protocol (named ports, without one, first) and peer. Calico keeps "8080" as a port
    # name that can match nothing; here it is left out, with a note.
    policy, problems = _convert(PEERS_AND_PORTS)
    note = "named port(s) 8080 can never match a Kubernetes port name; left out"
    assert problems == [f"spec.ingress[0]: {note}", f"spec.egress[0]: {note}"]
    ingress = policy["spec"]["ingress"]
    assert [(r.get("protocol"), r["destination"]["ports"], r["source"]["namespaceSelector"]) for r in ingress] == [
        (None, ["http-port"], "k == 'v'"), (None, ["http-port"], "all()"),
        ("TCP", [80], "k == 'v'"), ("TCP", [80], "all()"),
        ("UDP", ["20:30"], "k == 'v'"), ("UDP", ["20:30"], "all()")]
    assert ingress[1]["source"]["selector"] == f"{K8S} && k2 == 'v2'"
    assert [(r.get("protocol"), r["destination"]["ports"]) for r in policy["spec"]["egress"]] == [
        (None, ["http-port"]), ("TCP", [80]), ("UDP", ["20:30"])]
    # Only such names: that protocol gets no rule (it could match nothing).
    policy, _ = _convert({"priority": 1, "tier": "Admin", "subject": {"namespaces": {}}, "ingress": [
        {"action": "Accept", "protocols": [{"destinationNamedPort": "8080"}, TCP80], "from": [_ns(k="v")]}]})
    assert [r.get("protocol") for r in policy["spec"]["ingress"]] == ["TCP"]


def test_peer_selectors():
    # "with a rule with namespaceSelector", "... with podSelector", "... with empty
    # namespaceSelector", "... with empty podSelector", "... with both Namespaces and Pods"
    policy, _ = _convert(PEER_SELECTORS)
    spec = policy["spec"]
    assert spec["selector"] == f"{K8S} && label == 'value'" and spec["namespaceSelector"] == "all()"
    assert [r["source"] for r in spec["ingress"]] == [
        {"namespaceSelector": "namespaceFoo == 'bar' && namespaceRole == 'dev'"},
        {"namespaceSelector": "all()"},
        {"namespaceSelector": "namespaceRole == 'dev'", "selector": f"{K8S} && podA == 'B' && podC == 'D'"}]
    assert [r["destination"] for r in spec["egress"]] == [
        {"namespaceSelector": "all()", "selector": f"{K8S} && namespaceRole == 'dev'"},
        {"namespaceSelector": "all()", "selector": K8S}]


def test_peer_without_supported_fields_fails_closed_for_deny_and_pass():
    # "should faild parsing an ClusterNetworkPolicy with a rule with neither namespaces or
    # pods set": the Accept rule goes, the Pass rule becomes a bare Deny.
    policy, problems = _convert({
        "priority": 600, "tier": "Admin", "subject": {"pods": {"podSelector": {"matchLabels": {"label": "value"}}}},
        "ingress": [{"name": "A random ingress rule", "action": "Accept", "from": [{}]}],
        "egress": [{"name": "A random egress rule", "action": "Pass", "to": [{"nodes": {}}]}]})
    assert "ingress" not in policy["spec"]
    assert policy["spec"]["egress"] == [{"action": "Deny"}]
    assert policy["spec"]["types"] == ["Egress"]
    assert problems == [
        "spec.ingress[0]: k8s rule couldn't be converted: none of supported fields in 'From' is set. (rule dropped)",
        "spec.egress[0]: k8s rule couldn't be converted: none of supported fields in 'To' is set. "
        "(replaced by a deny-all rule)"]


def test_unconvertible_deny_and_pass_rules_become_deny_all():
    # "should replace an unsupported ClusterNetworkPolicy rule with Deny action with a deny-all one"
    bad = [{"udp": {"destinationPort": {"range": {"start": 40, "end": 20}}}}]
    policy, problems = _convert({
        "priority": 600, "tier": "Admin", "subject": {"namespaces": {"matchLabels": {"label": "value"}}},
        "ingress": [{"action": "Pass", "protocols": bad, "from": [_ns(k="v")]},
                    {"action": "Accept", "protocols": bad, "from": [_ns(k="v")]}],
        "egress": [{"action": "Deny", "protocols": bad, "to": [_ns(k3="v3")]},
                   {"action": "Deny", "protocols": [TCP80], "to": [_ns(k4="v4")]}]})
    assert policy["spec"]["ingress"] == [{"action": "Deny"}]
    assert policy["spec"]["egress"] == [{"action": "Deny"}, {"action": "Deny", "protocol": "TCP", "destination": {
        "ports": [80], "namespaceSelector": "k4 == 'v4'"}}]
    assert policy["spec"]["types"] == ["Ingress", "Egress"]
    assert len(problems) == 3


def test_networks_peers():
    # "with a Networks peer", "with an any address Network peer", "with a Networks peer and ports"
    policy, problems = _convert(NETWORKS)
    assert problems == []
    assert policy["spec"]["egress"] == [
        {"action": "Allow", "destination": {"nets": ["10.10.10.0/24", "0.0.0.0/0", "::/0"]}},
        {"action": "Deny", "protocol": "TCP", "destination": {"ports": [80], "nets": ["fd00::/64"]}}]


@pytest.mark.parametrize("tier", ["Admin", "Baseline"])
def test_invalid_networks_peer_fails_closed(tier):
    # "with an invalid networks peer" (both tiers)
    policy, problems = _convert({
        "priority": 100, "tier": tier, "subject": {"namespaces": {}},
        "ingress": [{"action": "Pass", "protocols": [TCP80], "from": [_ns(k="v")]}],
        "egress": [{"action": "Deny", "protocols": [TCP80], "to": [{"networks": ["10.10.10.0/24", "1.1.1.1/66"]}]},
                   {"action": "Accept", "to": [{"networks": ["10.0.0.1"]}]}]})
    assert policy["spec"]["ingress"][0]["action"] == "Pass"
    assert policy["spec"]["egress"] == [{"action": "Deny"}]
    assert problems == [
        "spec.egress[0]: k8s rule couldn't be converted: invalid CIDR in ANP rule: invalid CIDR address: "
        "1.1.1.1/66 (replaced by a deny-all rule)",
        "spec.egress[1]: k8s rule couldn't be converted: invalid CIDR in ANP rule: invalid CIDR address: "
        "10.0.0.1 (rule dropped)"]


def test_malformed_policies_are_withdrawn():
    # "should return a tombstone KVPair for an invalid tier" / "... when no subject selector
    # is specified": no policy, and the reason names the field.
    assert conv.k8s_cluster_network_policy_to_calico(_cnp(
        {"priority": 100, "tier": "InvalidTier", "subject": {"namespaces": {}}}, resourceVersion="1234")) == (
        None, ["spec.tier: invalid cluster network policy tier InvalidTier"])
    assert conv.k8s_cluster_network_policy_to_calico(_cnp({"priority": 100, "tier": "Admin", "subject": {}})) == (
        None, ["spec.subject: no subject selector specified"])
    # Not in Calico's tests: a UID that is not a UUID withdraws the policy rather than
    # failing the whole list.
    policy, problems = conv.k8s_cluster_network_policy_to_calico(_cnp(
        {"priority": 1, "tier": "Admin", "subject": {"namespaces": {}}}, uid="not-a-uuid"))
    assert policy is None and problems[0].startswith("metadata.uid: ")


def test_fields_of_the_wrong_shape():
    # Not in Calico's tests (the CRD schema refuses these): a rule of the wrong shape
    # fails like any unconvertible rule, a subject of the wrong shape withdraws the policy.
    policy, problems = _convert({"priority": 1, "tier": "Admin", "subject": {"namespaces": {}},
                                 "ingress": [{"action": "Deny", "from": [{"pods": "web"}]},
                                             {"action": "Accept", "protocols": ["tcp"], "from": [_ns(k="v")]}]})
    assert policy["spec"]["ingress"] == [{"action": "Deny"}] and len(problems) == 2
    for subject in ({"pods": "web"}, {"namespaces": {"matchLabels": ["a"]}}):
        assert conv.k8s_cluster_network_policy_to_calico(_cnp({"tier": "Admin", "subject": subject})) == (
            None, ["spec.subject: a selector of the wrong shape"])


@pytest.mark.parametrize("bad", ["has space", "1:2", "x" * 129, 80])
def test_invalid_named_ports_fail_the_rule(bad):
    # numorstring.NamedPort refuses them, so the rule fails to convert: a Deny rule becomes
    # a deny-all (not a rule that can never match), an Accept rule goes.
    policy, problems = _convert({
        "priority": 10, "tier": "Admin", "subject": {"namespaces": {}},
        "ingress": [{"action": "Deny", "protocols": [{"destinationNamedPort": bad}], "from": [_ns(k="v")]},
                    {"action": "Accept", "protocols": [{"destinationNamedPort": bad}], "from": [_ns(k="v")]}]})
    assert policy["spec"]["ingress"] == [{"action": "Deny"}]
    assert problems == [
        f"spec.ingress[0]: k8s rule couldn't be converted: failed to parse k8s protocol: invalid name for named "
        f"port ({bad}) (replaced by a deny-all rule)",
        f"spec.ingress[1]: k8s rule couldn't be converted: failed to parse k8s protocol: invalid name for named "
        f"port ({bad}) (rule dropped)"]


def test_a_rule_of_unmatchable_named_ports_still_fails_on_a_bad_peer():
    # Calico keeps "80" as a name and fails on the nodes peer: a deny-all.
    policy, problems = _convert({
        "priority": 10, "tier": "Admin", "subject": {"namespaces": {}},
        "egress": [{"action": "Deny", "protocols": [{"destinationNamedPort": "80"}], "to": [{"nodes": {}}]}]})
    assert policy["spec"]["egress"] == [{"action": "Deny"}]
    assert problems[-1].endswith("none of supported fields in 'To' is set. (replaced by a deny-all rule)")


def test_networks_as_go_parses_them():
    policy, problems = _convert({
        "priority": 10, "tier": "Admin", "subject": {"namespaces": {}},
        "egress": [{"action": "Accept", "to": [{"networks": ["::ffff:1.2.3.4/120", "10.1.2.3/0008",
                                                             "::ffff:1.2.3.4/64"]}]}]})
    assert problems == []
    assert policy["spec"]["egress"][0]["destination"]["nets"] == ["1.2.3.0/24", "10.0.0.0/8", "::/64"]
