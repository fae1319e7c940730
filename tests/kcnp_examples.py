"""Kubernetes ClusterNetworkPolicy (network-policy-api, policy.networking.k8s.io/v1alpha2)
specs shared by the tests: the ones the Kubernetes datastore tests create in the stand-in
API server (test_kdd_kcnp.py) and well-formed ones the conversion tests convert
(test_kcnp_conversion.py). test_manifests.py checks that each is a spec the CRD shipped in
manifests/crds.yaml admits, as a real API server would require."""
from __future__ import annotations

API_VERSION = "policy.networking.k8s.io/v1alpha2"

TCP80 = {"tcp": {"destinationPort": {"number": 80}}}
TCP_RANGE = {"tcp": {"destinationPort": {"range": {"start": 2000, "end": 3000}}}}

# test_kdd_kcnp.py: one policy per tier, enforced by the policy agent.
ADMIN = {"tier": "Admin", "priority": 10, "subject": {"pods": {"podSelector": {"matchLabels": {"app": "web"}}}},
         "ingress": [{"name": "no-ssh", "action": "Deny", "protocols": [{"tcp": {"destinationPort": {"number": 22}}}],
                      "from": [{"namespaces": {}}]}],
         "egress": [{"name": "defer-internal", "action": "Pass", "to": [{"networks": ["10.0.0.0/8"]}]}]}
BASELINE = {"tier": "Baseline", "priority": 5, "subject": {"namespaces": {"matchLabels": {"team": "retail"}}},
            "ingress": [{"action": "Accept", "from": [{"pods": {"namespaceSelector": {},
                                                               "podSelector": {"matchLabels": {"app": "db"}}}}]}]}

# test_kcnp_conversion.py, after the libcalico-go cases each test names.
# "should parse a basic k8s ClusterNetworkPolicy to a GlobalNetworkPolicy"
BASIC = {"priority": 100, "tier": "Admin",
         "subject": {"namespaces": {"matchLabels": {"label2": "value2", "label": "value"}}},
         "ingress": [{"name": "The first ingress rule", "action": "Accept", "protocols": [TCP80],
                      "from": [{"namespaces": {"matchLabels": {"k2": "v2", "k": "v"}}}]}]}
# "should parse an ClusterNetworkPolicy with multiple peers and ports"
MIXED_PROTOCOLS = [TCP80, {"udp": {"destinationPort": {"range": {"start": 20, "end": 30}}}},
                   {"destinationNamedPort": "http-port"}, {"destinationNamedPort": "8080"}]
PEERS_AND_PORTS = {"priority": 600, "tier": "Admin", "subject": {"namespaces": {"matchLabels": {"label": "value"}}},
                   "ingress": [{"action": "Pass", "protocols": MIXED_PROTOCOLS,
                                "from": [{"namespaces": {"matchLabels": {"k": "v"}}},
                                         {"pods": {"podSelector": {"matchLabels": {"k2": "v2"}}}}]}],
                   "egress": [{"action": "Deny", "protocols": MIXED_PROTOCOLS,
                               "to": [{"namespaces": {"matchLabels": {"k3": "v3"}}}]}]}
# "with a rule with namespaceSelector", "... with podSelector", "... with empty
# namespaceSelector", "... with empty podSelector", "... with both Namespaces and Pods"
PEER_SELECTORS = {
    "priority": 600, "tier": "Admin", "subject": {"pods": {"podSelector": {"matchLabels": {"label": "value"}}}},
    "ingress": [
        {"action": "Accept", "from": [{"namespaces": {"matchLabels": {"namespaceRole": "dev", "namespaceFoo": "bar"}}}]},
        {"action": "Accept", "from": [{"namespaces": {"matchLabels": {}}}]},
        {"action": "Deny", "from": [{"pods": {"namespaceSelector": {"matchLabels": {"namespaceRole": "dev"}},
                                              "podSelector": {"matchLabels": {"podC": "D", "podA": "B"}}}}]}],
    "egress": [
        {"action": "Accept", "to": [{"pods": {"podSelector": {"matchLabels": {"namespaceRole": "dev"}}}}]},
        {"action": "Pass", "to": [{"pods": {"namespaceSelector": {"matchLabels": {}},
                                            "podSelector": {"matchLabels": {}}}}]}]}
# "with a Networks peer", "with an any address Network peer", "with a Networks peer and ports"
NETWORKS = {"priority": 100, "tier": "Admin", "subject": {"namespaces": {}},
            "egress": [{"action": "Accept", "to": [{"networks": ["10.10.10.1/24", "0.0.0.0/0", "::/0"]}]},
                       {"action": "Deny", "protocols": [TCP80], "to": [{"networks": ["fd00::1/64"]}]}]}

# Every well-formed spec above, by where it is used.
WELL_FORMED = {
    "kdd-admin-web": ADMIN,
    "kdd-baseline-retail": BASELINE,
    "conversion-basic": BASIC,
    "conversion-peers-and-ports": PEERS_AND_PORTS,
    "conversion-peer-selectors": PEER_SELECTORS,
    "conversion-networks": NETWORKS,
}
