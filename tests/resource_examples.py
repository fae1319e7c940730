"""One full example per kind: YAML input and the exact JSON libcalico-go stores for it."""

STORED = {
    "Node": (
        """
kind: Node
metadata: {name: node1, uid: 6f0c1a2b-0000-4000-8000-000000000001, creationTimestamp: "2025-05-01T10:00:00Z",
           labels: {kubernetes.io/hostname: node1}}
spec:
  bgp: {ipv4Address: 10.0.0.11/24, asNumber: 64513, ipv4IPIPTunnelAddr: 192.168.87.0}
  orchRefs: [{orchestrator: k8s, nodeName: node1}]
  interfaces: [{name: eth0, addresses: [10.0.0.11]}]
""",
        '{"kind":"Node","apiVersion":"projectcalico.org/v3","metadata":{"name":"node1",'
        '"uid":"6f0c1a2b-0000-4000-8000-000000000001","creationTimestamp":"2025-05-01T10:00:00Z",'
        '"labels":{"kubernetes.io/hostname":"node1"}},"spec":{"bgp":{"asNumber":64513,'
        '"ipv4Address":"10.0.0.11/24","ipv4IPIPTunnelAddr":"192.168.87.0"},"orchRefs":[{"nodeName":"node1",'
        '"orchestrator":"k8s"}],"interfaces":[{"name":"eth0","addresses":["10.0.0.11"]}]},"status":{}}',
    ),
    "IPPool": (
        """
kind: IPPool
metadata: {name: default-ipv4-ippool, uid: u1, creationTimestamp: "2025-05-01T10:00:00Z"}
spec: {assignmentMode: Automatic, allowedUses: [Workload, Tunnel], nodeSelector: all(), blockSize: 26,
       natOutgoing: true, ipipMode: Always, vxlanMode: Never, cidr: 192.168.0.0/16}
""",
        '{"kind":"IPPool","apiVersion":"projectcalico.org/v3","metadata":{"name":"default-ipv4-ippool",'
        '"uid":"u1","creationTimestamp":"2025-05-01T10:00:00Z"},"spec":{"cidr":"192.168.0.0/16",'
        '"vxlanMode":"Never","ipipMode":"Always","natOutgoing":true,"blockSize":26,"nodeSelector":"all()",'
        '"allowedUses":["Workload","Tunnel"],"assignmentMode":"Automatic"}}',
    ),
    "BGPConfiguration": (
        """
kind: BGPConfiguration
metadata: {name: default, uid: u2, creationTimestamp: "2025-05-01T10:00:00Z"}
spec: {asNumber: "1.10", nodeToNodeMeshEnabled: true, logSeverityScreen: Info,
       serviceClusterIPs: [{cidr: 10.96.0.0/12}], listenPort: 179, nodeMeshMaxRestartTime: 120s}
""",
        '{"kind":"BGPConfiguration","apiVersion":"projectcalico.org/v3","metadata":{"name":"default","uid":"u2",'
        '"creationTimestamp":"2025-05-01T10:00:00Z"},"spec":{"logSeverityScreen":"Info",'
        '"nodeToNodeMeshEnabled":true,"asNumber":65546,"serviceClusterIPs":[{"cidr":"10.96.0.0/12"}],'
        '"listenPort":179,"nodeMeshMaxRestartTime":"2m0s"}}',
    ),
    "BGPPeer": (
        """
kind: BGPPeer
metadata: {name: rr1, uid: u3, creationTimestamp: "2025-05-01T10:00:00Z"}
spec: {peerIP: "10.0.0.1:1790", asNumber: 64512, nodeSelector: "rack == 'a'", keepOriginalNextHop: true,
       password: {secretKeyRef: {name: bgp, key: pw}}, ttlSecurity: 1, filters: [f1]}
""",
        '{"kind":"BGPPeer","apiVersion":"projectcalico.org/v3","metadata":{"name":"rr1","uid":"u3",'
        '"creationTimestamp":"2025-05-01T10:00:00Z"},"spec":{"nodeSelector":"rack == \'a\'",'
        '"peerIP":"10.0.0.1:1790","asNumber":64512,"keepOriginalNextHop":true,'
        '"password":{"secretKeyRef":{"name":"bgp","key":"pw"}},"ttlSecurity":1,"filters":["f1"]}}',
    ),
    "BGPFilter": (
        """
kind: BGPFilter
metadata: {name: f1, uid: u4, creationTimestamp: "2025-05-01T10:00:00Z"}
spec:
  exportV4:
  - {action: Accept, matchOperator: In, cidr: 10.0.0.0/8, prefixLength: {max: 24}}
  importV6:
  - {action: Reject, interface: "eth*"}
""",
        '{"kind":"BGPFilter","apiVersion":"projectcalico.org/v3","metadata":{"name":"f1","uid":"u4",'
        '"creationTimestamp":"2025-05-01T10:00:00Z"},"spec":{"exportV4":[{"cidr":"10.0.0.0/8",'
        '"prefixLength":{"max":24},"matchOperator":"In","action":"Accept"}],"importV6":[{"interface":"eth*",'
        '"action":"Reject"}]}}',
    ),
    "FelixConfiguration": (
        """
kind: FelixConfiguration
metadata: {name: default, uid: u5, creationTimestamp: "2025-05-01T10:00:00Z"}
spec: {reportingInterval: 0s, logSeverityScreen: Info}
""",
        '{"kind":"FelixConfiguration","apiVersion":"projectcalico.org/v3","metadata":{"name":"default",'
        '"uid":"u5","creationTimestamp":"2025-05-01T10:00:00Z"},"spec":{"logSeverityScreen":"Info",'
        '"reportingInterval":"0s","bpfLogLevel":""}}',
    ),
    "ClusterInformation": (
        """
kind: ClusterInformation
metadata: {name: default, uid: u6, creationTimestamp: "2025-05-01T10:00:00Z"}
spec: {datastoreReady: true, calicoVersion: v3.31.0, clusterType: "k8s,bgp,kubeadm,kdd",
       clusterGUID: 9c1e5d7a0b2f4c3e8d6a1f0e2b3c4d5e}
""",
        '{"kind":"ClusterInformation","apiVersion":"projectcalico.org/v3","metadata":{"name":"default",'
        '"uid":"u6","creationTimestamp":"2025-05-01T10:00:00Z"},"spec":{"clusterGUID":'
        '"9c1e5d7a0b2f4c3e8d6a1f0e2b3c4d5e","clusterType":"k8s,bgp,kubeadm,kdd","calicoVersion":"v3.31.0",'
        '"datastoreReady":true}}',
    ),
    "WorkloadEndpoint": (
        """
kind: WorkloadEndpoint
metadata:
  name: node1-k8s-nginx--abc-eth0
  namespace: default
  uid: u7
  creationTimestamp: "2025-05-01T10:00:00Z"
  labels: {app: nginx, projectcalico.org/namespace: default, projectcalico.org/orchestrator: k8s}
spec:
  orchestrator: k8s
  node: node1
  containerID: 3f2a
  pod: nginx-abc
  endpoint: eth0
  ipNetworks: [192.168.87.1/32]
  profiles: [kns.default]
  interfaceName: cali1a2b3c4d5e6
  ports: [{name: http, protocol: TCP, port: 80}]
""",
        '{"kind":"WorkloadEndpoint","apiVersion":"projectcalico.org/v3","metadata":{"name":'
        '"node1-k8s-nginx--abc-eth0","namespace":"default","uid":"u7","creationTimestamp":"2025-05-01T10:00:00Z",'
        '"labels":{"app":"nginx","projectcalico.org/namespace":"default","projectcalico.org/orchestrator":"k8s"}},'
        '"spec":{"orchestrator":"k8s","node":"node1","containerID":"3f2a","pod":"nginx-abc","endpoint":"eth0",'
        '"ipNetworks":["192.168.87.1/32"],"profiles":["kns.default"],"interfaceName":"cali1a2b3c4d5e6",'
        '"ports":[{"name":"http","protocol":"TCP","port":80,"hostPort":0,"hostIP":""}]}}',
    ),
    "HostEndpoint": (
        """
kind: HostEndpoint
metadata: {name: node1-eth0, uid: u8, creationTimestamp: "2025-05-01T10:00:00Z", labels: {role: host}}
spec: {node: node1, interfaceName: eth0, expectedIPs: [10.0.0.11], profiles: [host]}
""",
        '{"kind":"HostEndpoint","apiVersion":"projectcalico.org/v3","metadata":{"name":"node1-eth0","uid":"u8",'
        '"creationTimestamp":"2025-05-01T10:00:00Z","labels":{"role":"host"}},"spec":{"node":"node1",'
        '"interfaceName":"eth0","expectedIPs":["10.0.0.11"],"profiles":["host"]}}',
    ),
    "NetworkPolicy": (
        """
kind: NetworkPolicy
metadata: {name: allow-web, namespace: prod, uid: u9, creationTimestamp: "2025-05-01T10:00:00Z"}
spec:
  order: 100.5
  selector: app == 'web'
  types: [Ingress]
  ingress:
  - action: Allow
    protocol: TCP
    source: {selector: role == 'lb', nets: [10.0.0.0/8]}
    destination: {ports: [80, "8000:8080", "http"]}
""",
        '{"kind":"NetworkPolicy","apiVersion":"projectcalico.org/v3","metadata":{"name":"allow-web",'
        '"namespace":"prod","uid":"u9","creationTimestamp":"2025-05-01T10:00:00Z"},"spec":{"order":100.5,'
        '"ingress":[{"action":"Allow","protocol":"TCP","source":{"nets":["10.0.0.0/8"],"selector":"role == \'lb\'"},'
        '"destination":{"ports":[80,"8000:8080","http"]}}],"selector":"app == \'web\'","types":["Ingress"]}}',
    ),
    "GlobalNetworkPolicy": (
        """
kind: GlobalNetworkPolicy
metadata: {name: deny-icmp, uid: u10, creationTimestamp: "2025-05-01T10:00:00Z"}
spec:
  order: 10
  selector: all()
  applyOnForward: true
  egress:
  - {action: Deny, protocol: ICMP, icmp: {type: 8}}
  - {action: Allow}
""",
        '{"kind":"GlobalNetworkPolicy","apiVersion":"projectcalico.org/v3","metadata":{"name":"deny-icmp",'
        '"uid":"u10","creationTimestamp":"2025-05-01T10:00:00Z"},"spec":{"order":10,"egress":[{"action":"Deny",'
        '"protocol":"ICMP","icmp":{"type":8}},{"action":"Allow"}],"selector":"all()","applyOnForward":true}}',
    ),
    "Profile": (
        """
kind: Profile
metadata: {name: kns.default, uid: u11, creationTimestamp: "2025-05-01T10:00:00Z"}
spec:
  ingress: [{action: Allow}]
  egress: [{action: Allow}]
  labelsToApply: {pcns.projectcalico.org/name: default}
""",
        '{"kind":"Profile","apiVersion":"projectcalico.org/v3","metadata":{"name":"kns.default","uid":"u11",'
        '"creationTimestamp":"2025-05-01T10:00:00Z"},"spec":{"ingress":[{"action":"Allow"}],'
        '"egress":[{"action":"Allow"}],"labelsToApply":{"pcns.projectcalico.org/name":"default"}}}',
    ),
    "Tier": (
        """
kind: Tier
metadata: {name: default, uid: u12, creationTimestamp: "2025-05-01T10:00:00Z"}
spec: {order: 1000000, defaultAction: Deny}
""",
        '{"kind":"Tier","apiVersion":"projectcalico.org/v3","metadata":{"name":"default","uid":"u12",'
        '"creationTimestamp":"2025-05-01T10:00:00Z"},"spec":{"order":1000000,"defaultAction":"Deny"},'
        '"status":{}}',
    ),
    "GlobalNetworkSet": (
        """
kind: GlobalNetworkSet
metadata: {name: public-dns, uid: u13, creationTimestamp: "2025-05-01T10:00:00Z", labels: {role: dns}}
spec: {nets: [8.8.8.8/32, "2001:4860:4860::8888/128", 1.1.1.0/24]}
""",
        '{"kind":"GlobalNetworkSet","apiVersion":"projectcalico.org/v3","metadata":{"name":"public-dns","uid":"u13",'
        '"creationTimestamp":"2025-05-01T10:00:00Z","labels":{"role":"dns"}},"spec":{"nets":["8.8.8.8/32",'
        '"2001:4860:4860::8888/128","1.1.1.0/24"]}}',
    ),
    "NetworkSet": (
        """
kind: NetworkSet
metadata: {name: office, namespace: prod, uid: u14, creationTimestamp: "2025-05-01T10:00:00Z"}
spec: {nets: [198.51.100.0/24]}
""",
        '{"kind":"NetworkSet","apiVersion":"projectcalico.org/v3","metadata":{"name":"office","namespace":"prod",'
        '"uid":"u14","creationTimestamp":"2025-05-01T10:00:00Z"},"spec":{"nets":["198.51.100.0/24"]}}',
    ),
    "KubeControllersConfiguration": (
        """
kind: KubeControllersConfiguration
metadata: {name: default, uid: u15, creationTimestamp: "2025-05-01T10:00:00Z"}
spec:
  controllers:
    loadBalancer: {assignIPs: AllServices}
    workloadEndpoint: {}
    policy: {reconcilerPeriod: 300s}
    node: {leakGracePeriod: 15m, hostEndpoint: {autoCreate: Disabled}, syncLabels: Enabled, reconcilerPeriod: 5m}
  prometheusMetricsPort: 9094
  etcdV3CompactionPeriod: 10m
  healthChecks: Enabled
  logSeverityScreen: Info
""",
        '{"kind":"KubeControllersConfiguration","apiVersion":"projectcalico.org/v3","metadata":{"name":"default",'
        '"uid":"u15","creationTimestamp":"2025-05-01T10:00:00Z"},"spec":{"logSeverityScreen":"Info",'
        '"healthChecks":"Enabled","etcdV3CompactionPeriod":"10m0s","prometheusMetricsPort":9094,"controllers":'
        '{"node":{"reconcilerPeriod":"5m0s","syncLabels":"Enabled","hostEndpoint":{"autoCreate":"Disabled"},'
        '"leakGracePeriod":"15m0s"},"policy":{"reconcilerPeriod":"5m0s"},"workloadEndpoint":{},'
        '"loadBalancer":{"assignIPs":"AllServices"}}},"status":{}}',
    ),
    "CalicoNodeStatus": (
        """
kind: CalicoNodeStatus
metadata: {name: node1-status, uid: u16, creationTimestamp: "2025-05-01T10:00:00Z"}
spec: {updatePeriodSeconds: 10, classes: [Agent, BGP, Routes], node: node1}
""",
        '{"kind":"CalicoNodeStatus","apiVersion":"projectcalico.org/v3","metadata":{"name":"node1-status",'
        '"uid":"u16","creationTimestamp":"2025-05-01T10:00:00Z"},"spec":{"node":"node1","classes":["Agent","BGP",'
        '"Routes"],"updatePeriodSeconds":10},"status":{"lastUpdated":null,"agent":{"birdV4":{},"birdV6":{}},'
        '"bgp":{"numberEstablishedV4":0,"numberNotEstablishedV4":0,"numberEstablishedV6":0,'
        '"numberNotEstablishedV6":0},"routes":{}}}',
    ),
}
