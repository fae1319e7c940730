"""The sample resources of Calico's documentation (open-source Calico 3.32: the resource
reference pages and the policy and networking how-tos) through our calicoctl: each one
real calicoctl v3.32.1 accepts validates offline, is created in a real etcd and reads
back as written (or as Calico normalises it); each one v3.32.1 refuses is refused.

Pages are under https://docs.tigera.io/calico/3.32/ (the tigera/docs repository,
calico_versioned_docs/version-3.32). Why the refused ones are refused:
calicoctl/calicoctl/resourcemgr/resourcemgr.go (documents read with sigs.k8s.io/yaml's
UnmarshalStrict: keys matched as encoding/json matches them, a repeated key an error),
libcalico-go/lib/validator/v3/validator.go and api/pkg/apis/projectcalico/v3.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import pytest
import yaml

DOCS = "https://docs.tigera.io/calico/3.32/"

TIERS = """\
apiVersion: projectcalico.org/v3
kind: Tier
metadata: {name: internal-access}
spec: {order: 100}
---
apiVersion: projectcalico.org/v3
kind: Tier
metadata: {name: devops}
spec: {order: 300}
"""


@dataclass
class Sample:
    page: str
    text: str
    # Spec fields Calico stores differently from how the sample writes them (durations
    # in Go's spelling, fields matched case-insensitively...): field -> stored value.
    stored: dict = field(default_factory=dict)
    needs_tiers: bool = False

    def __str__(self) -> str:
        return self.page


ACCEPTED = [
    # ---- reference/resources ----------------------------------------------------------
    Sample("reference/resources/bgpconfig", """
apiVersion: projectcalico.org/v3
kind: BGPConfiguration
metadata:
  name: default
spec:
  logSeverityScreen: Info
  nodeToNodeMeshEnabled: true
  nodeMeshMaxRestartTime: 120s
  asNumber: 63400
  serviceClusterIPs:
    - cidr: 10.96.0.0/12
  serviceExternalIPs:
    - cidr: 104.244.42.129/32
    - cidr: 172.217.3.0/24
  listenPort: 178
  bindMode: NodeIP
  communities:
    - name: bgp-large-community
      value: 63400:300:100
  prefixAdvertisements:
    - cidr: 172.218.4.0/26
      communities:
        - bgp-large-community
        - 63400:120
""", stored={"nodeMeshMaxRestartTime": "2m0s"}),
    Sample("reference/resources/bgpfilter", """
apiVersion: projectcalico.org/v3
kind: BGPFilter
metadata:
  name: my-filter
spec:
  exportV4:
    - action: Accept
      matchOperator: In
      cidr: 77.0.0.0/16
      source: RemotePeers
    - action: Reject
      interface: '*.calico'
  importV4:
    - action: Accept
      matchOperator: In
      cidr: 55.0.0.0/16
      prefixLength:
        min: 30
    - action: Reject
      matchOperator: NotIn
      cidr: 44.0.0.0/16
  exportV6:
    - action: Reject
      source: RemotePeers
    - action: Reject
      interface: '*.calico'
  importV6:
    - action: Accept
      matchOperator: Equal
      cidr: 5000::0/64
    - action: Reject
"""),
    Sample("reference/resources/bgppeer", """
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata:
  name: some.name
spec:
  node: rack1-host1
  peerIP: 192.168.1.1
  asNumber: 63400
"""),
    Sample("reference/resources/caliconodestatus", """
apiVersion: projectcalico.org/v3
kind: CalicoNodeStatus
metadata:
  name: my-caliconodestatus-1
spec:
  classes:
    - Agent
    - BGP
    - Routes
  node: my-kadm-node-0
  updatePeriodSeconds: 10
"""),
    Sample("reference/resources/felixconfig", """
apiVersion: projectcalico.org/v3
kind: FelixConfiguration
metadata:
  name: default
spec:
  ipv6Support: false
  ipipMTU: 1400
  chainInsertMode: Append
"""),
    Sample("reference/resources/felixconfig (node selector)", """
apiVersion: projectcalico.org/v3
kind: FelixConfiguration
metadata:
  name: gpu-nodes
spec:
  nodeSelector: "role == 'gpu'"
  logSeverityScreen: Debug
  bpfEnabled: true
"""),
    Sample("reference/resources/globalnetworkpolicy", """
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata:
  name: allow-tcp-6379
spec:
  selector: role == 'database'
  types:
    - Ingress
    - Egress
  ingress:
    - action: Allow
      metadata:
        annotations:
          from: frontend
          to: database
      protocol: TCP
      source:
        selector: role == 'frontend'
      destination:
        ports:
          - 6379
  egress:
    - action: Allow
"""),
    Sample("reference/resources/globalnetworkset", """
apiVersion: projectcalico.org/v3
kind: GlobalNetworkSet
metadata:
  name: a-name-for-the-set
  labels:
    role: external-database
spec:
  nets:
    - 198.51.100.0/28
    - 203.0.113.0/24
"""),
    Sample("reference/resources/hostendpoint", """
apiVersion: projectcalico.org/v3
kind: HostEndpoint
metadata:
  name: some.name
  labels:
    type: production
spec:
  interfaceName: eth0
  node: myhost
  expectedIPs:
    - 192.168.0.1
    - 192.168.0.2
  profiles:
    - profile1
    - profile2
  ports:
    - name: some-port
      port: 1234
      protocol: TCP
    - name: another-port
      port: 5432
      protocol: UDP
"""),
    Sample("reference/resources/ipamconfig", """
apiVersion: projectcalico.org/v3
kind: IPAMConfiguration
metadata:
  name: default
spec:
  strictAffinity: false
  maxBlocksPerHost: 4
  kubeVirtVMAddressPersistence: Enabled
"""),
    Sample("reference/resources/ippool", """
apiVersion: projectcalico.org/v3
kind: IPPool
metadata:
  name: my.ippool-1
spec:
  cidr: 10.1.0.0/16
  ipipMode: CrossSubnet
  natOutgoing: true
  disabled: false
  nodeSelector: all()
  allowedUses:
    - Workload
    - Tunnel
  assignmentMode: Automatic
""", stored={"disabled": None}),
    Sample("reference/resources/ipreservation", """
apiVersion: projectcalico.org/v3
kind: IPReservation
metadata:
  name: my-ipreservation-1
spec:
  reservedCIDRs:
    - 192.168.2.3
    - 10.0.2.3/32
    - cafe:f00d::/123
"""),
    # The page writes "loadbalancer"; encoding/json matches it to "loadBalancer".
    Sample("reference/resources/kubecontrollersconfig", """
apiVersion: projectcalico.org/v3
kind: KubeControllersConfiguration
metadata:
  name: default
spec:
  logSeverityScreen: Info
  healthChecks: Enabled
  etcdV3CompactionPeriod: 10m
  prometheusMetricsPort: 9094
  controllers:
    node:
      reconcilerPeriod: 5m
      leakGracePeriod: 15m
      syncLabels: Enabled
      hostEndpoint:
        autoCreate: Disabled
        createDefaultHostEndpoint: Enabled
        templates:
          - generateName: custom-host-endpoint
            interfaceCIDRs:
              - 1.2.3.0/24
            interfacePattern: "eth0|eth1"
            nodeSelector: "has(my-label)"
            labels:
              key: value
    policy:
      reconcilerPeriod: 5m
    workloadEndpoint:
      reconcilerPeriod: 5m
    serviceAccount:
      reconcilerPeriod: 5m
    namespace:
      reconcilerPeriod: 5m
    loadbalancer:
      assignIPs: AllServices
""", stored={"etcdV3CompactionPeriod": "10m0s", "controllers": {
        "node": {"reconcilerPeriod": "5m0s", "leakGracePeriod": "15m0s", "syncLabels": "Enabled",
                 "hostEndpoint": {"autoCreate": "Disabled", "createDefaultHostEndpoint": "Enabled",
                                  "templates": [{"generateName": "custom-host-endpoint",
                                                 "interfaceCIDRs": ["1.2.3.0/24"], "interfacePattern": "eth0|eth1",
                                                 "nodeSelector": "has(my-label)", "labels": {"key": "value"}}]}},
        "policy": {"reconcilerPeriod": "5m0s"}, "workloadEndpoint": {"reconcilerPeriod": "5m0s"},
        "serviceAccount": {"reconcilerPeriod": "5m0s"}, "namespace": {"reconcilerPeriod": "5m0s"},
        "loadBalancer": {"assignIPs": "AllServices"}}}),
    Sample("reference/resources/networkpolicy", """
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata:
  name: allow-tcp-6379
  namespace: production
spec:
  selector: role == 'database'
  types:
    - Ingress
    - Egress
  ingress:
    - action: Allow
      metadata:
        annotations:
          from: frontend
          to: database
      protocol: TCP
      source:
        selector: role == 'frontend'
      destination:
        ports:
          - 6379
  egress:
    - action: Allow
"""),
    Sample("reference/resources/networkset", """
apiVersion: projectcalico.org/v3
kind: NetworkSet
metadata:
  name: external-database
  namespace: staging
  labels:
    role: db
spec:
  nets:
    - 198.51.100.0/28
    - 203.0.113.0/24
"""),
    Sample("reference/resources/node", """
apiVersion: projectcalico.org/v3
kind: Node
metadata:
  name: node-hostname
spec:
  bgp:
    asNumber: 64512
    ipv4Address: 10.244.0.1/24
    ipv6Address: 2001:db8:85a3::8a2e:370:7334/120
    ipv4IPIPTunnelAddr: 192.168.0.1
"""),
    Sample("reference/resources/profile", """
apiVersion: projectcalico.org/v3
kind: Profile
metadata:
  name: dev-apps
spec:
  labelsToApply:
    stage: development
"""),
    Sample("reference/resources/stagedglobalnetworkpolicy", """
apiVersion: projectcalico.org/v3
kind: StagedGlobalNetworkPolicy
metadata:
  name: internal-access.allow-tcp-6379
spec:
  tier: internal-access
  selector: role == 'database'
  types:
    - Ingress
    - Egress
  ingress:
    - action: Allow
      protocol: TCP
      source:
        selector: role == 'frontend'
      destination:
        ports:
          - 6379
  egress:
    - action: Allow
""", needs_tiers=True),
    Sample("reference/resources/stagednetworkpolicy", """
apiVersion: projectcalico.org/v3
kind: StagedNetworkPolicy
metadata:
  name: internal-access.allow-tcp-6379
  namespace: production
spec:
  tier: internal-access
  selector: role == 'database'
  types:
    - Ingress
  ingress:
    - action: Allow
      protocol: TCP
      source:
        selector: role == 'frontend'
      destination:
        ports:
          - 6379
""", needs_tiers=True),
    Sample("reference/resources/stagedkubernetesnetworkpolicy", """
apiVersion: projectcalico.org/v3
kind: StagedKubernetesNetworkPolicy
metadata:
  name: test-network-policy
  namespace: default
spec:
  podSelector:
    matchLabels:
      role: db
  policyTypes:
    - Ingress
    - Egress
  ingress:
    - from:
        - ipBlock:
            cidr: 172.17.0.0/16
            except:
              - 172.17.1.0/24
        - namespaceSelector:
            matchLabels:
              project: myproject
        - podSelector:
            matchLabels:
              role: frontend
      ports:
        - protocol: TCP
          port: 6379
  egress:
    - to:
        - ipBlock:
            cidr: 10.0.0.0/24
      ports:
        - protocol: TCP
          port: 5978
"""),
    Sample("reference/resources/tier", """
apiVersion: projectcalico.org/v3
kind: Tier
metadata:
  name: internal-access
spec:
  order: 100
  defaultAction: Deny
"""),
    # The page's sample with its repeated "endpoint" key once and its containerID quoted
    # (see REFUSED for the sample as printed).
    Sample("reference/resources/workloadendpoint", """
apiVersion: projectcalico.org/v3
kind: WorkloadEndpoint
metadata:
  name: node1-k8s-my--nginx--b1337a-eth0
  namespace: default
  labels:
    app: frontend
    projectcalico.org/namespace: default
    projectcalico.org/orchestrator: k8s
spec:
  node: node1
  orchestrator: k8s
  containerID: "1337495556942031415926535"
  pod: my-nginx-b1337a
  endpoint: eth0
  interfaceName: cali0ef24ba
  mac: ca:fe:1d:52:bb:e9
  ipNetworks:
  - 192.168.0.0/32
  profiles:
  - profile1
  ports:
  - name: some-port
    port: 1234
    protocol: TCP
""", stored={"ports": [{"name": "some-port", "protocol": "TCP", "port": 1234, "hostPort": 0, "hostIP": ""}]}),
    # ---- how-tos ----------------------------------------------------------------------
    Sample("networking/kubevirt/live-migration-bgp", """
apiVersion: projectcalico.org/v3
kind: BGPFilter
metadata:
  name: kubevirt-live-migration
spec:
  exportV4:
    - action: Accept
      peerType: eBGP
      priority: 512
      operations:
        - addCommunity:
            value: "65000:100"
  importV4:
    - action: Accept
      communities:
        values: ["65000:100"]
      operations:
        - setPriority:
            value: 512
"""),
    Sample("network-policy/comms/secure-bgp", """
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata:
  name: bgppeer-global-3040
spec:
  peerIP: 192.20.30.40
  asNumber: 64567
  password:
    secretKeyRef:
      name: bgp-secrets
      key: rr-password
"""),
    Sample("networking/ipam/service-loadbalancer", """
apiVersion: projectcalico.org/v3
kind: IPPool
metadata:
 name: loadbalancer-ip-pool
spec:
 cidr: 192.210.0.0/20
 blockSize: 24
 natOutgoing: true
 disabled: false
 assignmentMode: Automatic
 allowedUses:
  - LoadBalancer
""", stored={"disabled": None}),
    Sample("network-policy/hosts/kubernetes-nodes", """
apiVersion: projectcalico.org/v3
kind: KubeControllersConfiguration
metadata:
  name: default
spec:
  controllers:
    node:
      hostEndpoint:
        autoCreate: Enabled
        createDefaultHostEndpoint: Enabled
        templates:
        - generateName: custom-host-endpoint
          interfaceCIDRs:
          - 192.168.0.0/16
          labels:
            custom-label: template-host-endpoint
""", stored={"controllers": {"node": {"leakGracePeriod": "15m0s", "hostEndpoint": {
        "autoCreate": "Enabled", "createDefaultHostEndpoint": "Enabled",
        "templates": [{"generateName": "custom-host-endpoint", "interfaceCIDRs": ["192.168.0.0/16"],
                       "labels": {"custom-label": "template-host-endpoint"}}]}}}}),
    Sample("network-policy/hosts/protect-hosts", """
apiVersion: projectcalico.org/v3
kind: FelixConfiguration
metadata:
  name: default
spec:
  ipipEnabled: true
  logSeverityScreen: Info
  reportingInterval: 0s
  defaultEndpointToHostAction: Accept
"""),
    Sample("network-policy/extreme-traffic/defend-dos-attack", """
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata:
  name: dos-mitigation
spec:
  selector: apply-dos-mitigation == 'true'
  doNotTrack: true
  applyOnForward: true
  types:
    - Ingress
  ingress:
    - action: Deny
      source:
        selector: dos-deny-list == 'true'
"""),
    Sample("network-policy/policy-rules/service-policy", """
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata:
  name: allow-api-access
  namespace: my-app
spec:
  selector: all()
  egress:
    - action: Allow
      destination:
        services:
          name: kubernetes
          namespace: default
""", stored={"types": ["Egress"]}),
    Sample("network-policy/policy-rules/service-accounts", """
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata:
  name: restrict-intern-access
  namespace: prod-engineering
spec:
  serviceAccountSelector: 'role == "intern"'
  ingress:
    - action: Allow
      source:
        serviceAccounts:
          selector: 'role == "intern"'
  egress:
    - action: Allow
      destination:
        serviceAccounts:
          selector: 'role == "intern"'
""", stored={"types": ["Ingress", "Egress"]}),
    Sample("network-policy/istio/http-methods", """
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata:
  name: customer
spec:
  selector: app == 'tradingapp'
  ingress:
    - action: Allow
      http:
        methods: ['GET']
        paths:
          - exact: '/projects/calico'
          - prefix: '/users'
  egress:
    - action: Allow
""", stored={"types": ["Ingress", "Egress"]}),
    Sample("network-policy/policy-tiers/tiered-policy", """
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata:
  name: devops.stage-env
spec:
  tier: devops
  order: 255
  selector: env == "stage"
  ingress:
    - action: Deny
      source:
        selector: env != "stage"
    - action: Pass
  egress:
    - action: Deny
      destination:
        selector: env != "stage"
    - action: Pass
  types:
    - Ingress
    - Egress
""", needs_tiers=True),
    # A quoted port number is stored as a number.
    Sample("networking/configuring/node-local-dns-cache", """
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata:
  name: default.local-dns-to-core-dns
  namespace: kube-system
spec:
  tier: default
  selector: k8s-app == "kube-dns"
  ingress:
    - action: Allow
      protocol: TCP
      destination:
        selector: k8s-app == "kube-dns"
        ports:
          - '53'
  types:
    - Ingress
""", stored={"ingress": [{"action": "Allow", "protocol": "TCP",
                          "destination": {"selector": 'k8s-app == "kube-dns"', "ports": [53]}}]}),
    # A document that is a YAML sequence stands for its items.
    Sample("reference/host-endpoints/selector", """
- apiVersion: projectcalico.org/v3
  kind: GlobalNetworkPolicy
  metadata:
    name: webserver
  spec:
    selector: "role==\\"webserver\\""
    order: 100
    ingress:
    - action: Allow
      protocol: TCP
      destination:
        ports: [80]
    egress:
    - action: Allow
""", stored={"types": ["Ingress", "Egress"]}),
]

# Samples calicoctl v3.32.1 refuses as printed, and the reason.
REFUSED = [
    # The same key twice: go-yaml's strict mode (UnmarshalStrict) refuses it.
    ("reference/resources/workloadendpoint", """
apiVersion: projectcalico.org/v3
kind: WorkloadEndpoint
metadata:
  name: node1-k8s-my--nginx--b1337a-eth0
  namespace: default
spec:
  node: node1
  orchestrator: k8s
  endpoint: eth0
  pod: my-nginx-b1337a
  endpoint: eth0
  interfaceName: cali0ef24ba
""", 'key "endpoint" already set in map'),
    # Without the repeated key it still fails: its unquoted containerID is too big for 64
    # bits, so go-yaml reads a float64 and sigs.k8s.io/yaml makes the string
    # "1.3374956e+24" of it (FormatFloat(f, 'g', -1, 32)), which is no container ID.
    ("reference/resources/workloadendpoint (endpoint once)", """
apiVersion: projectcalico.org/v3
kind: WorkloadEndpoint
metadata:
  name: node1-k8s-my--nginx--b1337a-eth0
  namespace: default
spec:
  node: node1
  orchestrator: k8s
  endpoint: eth0
  containerID: 1337495556942031415926535
  pod: my-nginx-b1337a
  interfaceName: cali0ef24ba
""", "containerID = '1.3374956e+24' (invalid container ID)"),
    # HostEndpointSpec has interfaceName, not interface.
    ("reference/resources/overview", """
- apiVersion: projectcalico.org/v3
  kind: HostEndpoint
  metadata:
    name: endpoint1
  spec:
    interface: eth0
    node: host1
    expectedIPs:
      - 1.2.3.4
""", 'unknown field "interface"'),
    # A numeric port needs a protocol that has ports.
    ("network-policy/get-started/calico-policy/calico-labels", """
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata:
  name: foo-and-bar
spec:
  namespaceSelector: projectcalico.org/name in {"foo", "bar"}
  selector: color == "red"
  types:
  - Ingress
  ingress:
  - action: Allow
    source:
      namespaceSelector: projectcalico.org/name == "baz"
    destination:
      ports:
      - 8080
""", "must set protocol to TCP or UDP or SCTP"),
    # The comment marks of these samples are lost: the text is part of the value.
    ("network-policy/services/services-cluster-ips", """
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata:
  name: allow-to-pods
spec:
  selector: k8s-role == 'node'
  types:
  - Ingress
  applyOnForward: true
  preDNAT: true
  ingress:
  - action: Allow
    destination:
      nets:
      - 192.168.0.0/16  Pod CIDR
""", "192.168.0.0/16  Pod CIDR"),
    ("network-policy/policy-rules/icmp-ping", """
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata:
  name: allow-ping-in-cluster
spec:
  selector: all()
  types:
    - Ingress
  ingress:
    - action: Allow
      protocol: ICMP
      source:
        selector: all()
      icmp:
        type: 8  Ping request
""", "icmp.type"),
    # The "ingress:" key is missing: the rules land in the types list.
    ("network-policy/services/services-cluster-ips (host endpoints)", """
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata:
  name: allow-traffic-hostendpoints
spec:
  selector: k8s-role == 'node'
  types:
  - Ingress
  - action: Allow
    protocol: TCP
    destination:
      selector: k8s-role == 'node'
      notPorts: ["30000:32767"]
""", "spec.types[1]"),
    # calicoctl get -o yaml's list, printed without its "kind: IPPoolList".
    ("networking/ipam/migrate-pools", """
apiVersion: projectcalico.org/v3
items:
  - apiVersion: projectcalico.org/v3
    kind: IPPool
    metadata:
      name: default-ipv4-ippool
    spec:
      cidr: 192.0.0.0/16
      ipipMode: Always
      natOutgoing: true
""", "kind"),
]


NAMESPACED = ("NetworkPolicy", "NetworkSet", "WorkloadEndpoint", "StagedNetworkPolicy",
              "StagedKubernetesNetworkPolicy")


def _items(text: str) -> list[dict]:
    out = []
    for doc in yaml.safe_load_all(text):
        out.extend(doc if isinstance(doc, list) else [doc])
    return out


@pytest.mark.parametrize("sample", ACCEPTED, ids=str)
def test_doc_sample_validates_creates_and_reads_back(sample, ctl):
    code, out, err = ctl("validate", "-f", "@sample.yaml", files={"sample.yaml": sample.text})
    assert code == 0 and "Successfully validated" in out, (out, err)
    if sample.needs_tiers:
        assert ctl("create", "-f", "@tiers.yaml", files={"tiers.yaml": TIERS})[0] == 0
    code, out, err = ctl("create", "-f", "@sample.yaml")
    assert code == 0 and "Successfully created" in out, (out, err)
    for item in _items(sample.text):
        meta = item["metadata"]
        args = ["get", item["kind"], meta["name"], "-o", "yaml"]
        if item["kind"] in NAMESPACED:
            args += ["-n", meta.get("namespace", "default")]
        code, out, err = ctl(*args)
        assert code == 0, err
        got = yaml.safe_load(out)
        assert got["metadata"]["name"] == meta["name"]
        for key, value in (meta.get("labels") or {}).items():
            assert got["metadata"]["labels"][key] == value
        expected = dict(item.get("spec") or {}, **sample.stored)
        for key, value in expected.items():
            assert got["spec"].get(key) == value, (key, got["spec"])


@pytest.mark.parametrize("page,text,reason", REFUSED, ids=[r[0] for r in REFUSED])
def test_doc_sample_wrong_for_calico_3_32_is_refused(page, text, reason, ctl):
    code, out, err = ctl("validate", "-f", "@sample.yaml", files={"sample.yaml": text})
    assert code != 0 and reason in out + err, (out, err)
    code, out, err = ctl("create", "-f", "@sample.yaml")
    assert code != 0 and reason in out + err, (out, err)
    kind = _items(text)[0].get("kind") or "IPPool"
    code, out, err = ctl("get", kind, "-o", "yaml", *(["-A"] if kind in NAMESPACED else []))
    assert code == 0 and yaml.safe_load(out)["items"] == [], (out, err)
