"""Kubernetes <-> Calico conversions, checked against Calico's own conversion tests.

Expected values come from libcalico-go's unit tests (lib/backend/k8s/conversion/
conversion_test.go, resources/node_test.go, resources/customresource_test.go); each
test names the case it follows.
"""
from __future__ import annotations

import json
import uuid

import pytest

from node.datastore.kubernetes import conversion as conv
from node.model import from_dict
from node.model.names import parse_workload_endpoint_name

UID = "30316465-6365-4463-ad63-3564622d3638"


# -- UIDs and names ---------------------------------------------------------------------

def test_uid_conversion_matches_calico():
    # "should parse a UID to a Calico ID"
    assert conv.convert_uid(UID) == "0c8c26a6-c6a6-44c6-adc6-ac2646b46c1c"
    assert conv.convert_uid("0c8c26a6-c6a6-44c6-adc6-ac2646b46c1c") == UID
    # customresource_test.go's pair
    assert conv.convert_uid("41cb1fde-57e7-42c1-a73b-0acaf38c7737") == "82d3f87b-eae7-4283-a7dc-5053cf31eeec"


def test_uid_conversion_keeps_the_version_bits_and_inverts_itself():
    # "should always maintain the v4 version metadata bits, and convert back"
    for _ in range(2000):
        original = str(uuid.uuid4())
        converted = conv.convert_uid(original)
        assert uuid.UUID(converted).bytes[6] >> 4 == 4
        assert conv.convert_uid(converted) == original


def test_invalid_uid_is_an_error():
    with pytest.raises(conv.ConversionError, match="not-a-uid"):
        conv.convert_uid("not-a-uid")


def test_workload_endpoint_names():
    # "should parse WorkloadEndpoint name"
    ids = parse_workload_endpoint_name("node-k8s-pod--name-eth0")
    assert ids == {"node": "node", "orchestrator": "k8s", "pod": "pod-name", "endpoint": "eth0"}


def test_veth_names():
    # "generate a veth name with the right prefix" and the fixed name in the first pod test
    assert conv.veth_name("namespace", "podname", "eni,veth,foo") == "eni82111e10a96"
    assert conv.veth_name("namespace", "podname") == "cali82111e10a96"
    assert conv.veth_name("default", "podA") == "cali7f94ce7c295"


def test_profile_names():
    assert conv.profile_name_to_namespace("kns.default") == "default"
    with pytest.raises(conv.ConversionError):
        conv.profile_name_to_namespace("ns.projectcalico.org/default")
    assert conv.profile_name_to_service_account("ksa.default.test") == ("default", "test")
    assert conv.profile_name_to_service_account("ksa.default.test.foo") == ("default", "test.foo")
    with pytest.raises(conv.ConversionError):
        conv.profile_name_to_service_account("ns.projectcalico.org/default")


def test_ipam_names():
    assert conv.cidr_to_name("192.168.87.0/26") == "192-168-87-0-26"
    assert conv.cidr_to_name("fd5f:2b12:a3c4::/122") == "fd5f-2b12-a3c4---122"
    assert conv.affinity_name("node1", "10.0.0.0/26") == "node1-10-0-0-0-26"
    long_host = "h" * 260
    name = conv.affinity_name(long_host, "10.0.0.0/26")
    assert len(name) < 253 and name.startswith("h" * 200) and "-10-0-0-0-26-" in name
    assert conv.affinity_name(long_host, "10.0.0.0/26") == name
    assert conv.affinity_name(long_host + "x", "10.0.0.0/26") != name
    assert conv.handle_name("K8s-Pod-Network.ABC") == "k8s-pod-network.abc"
    # base32 of SHA3-256: 256 bits -> 52 characters, no padding
    digest = conv.hostname_hash("node1")
    assert len(digest) == 52 and digest == digest.upper() and "=" not in digest
    assert conv.affinity_labels("node1", "host", "fd00::/122") == {
        "projectcalico.org/hostname-hash": digest, "projectcalico.org/affinity-type": "host",
        "projectcalico.org/ip-version": "6"}


# -- pods ---------------------------------------------------------------------------------

def _pod(annotations=None, status=None, spec=None, **meta):
    return {"metadata": dict({"name": "podA", "namespace": "default", "annotations": annotations or {},
                              "labels": {"labelA": "valueA", "labelB": "valueB"}, "resourceVersion": "1234"}, **meta),
            "spec": dict({"nodeName": "nodeA", "containers": []}, **(spec or {})),
            "status": status or {}}


def test_pod_with_an_ip_to_workload_endpoint():
    # "should parse a Pod with an IP to a WorkloadEndpoint"
    pod = _pod(spec={
        "initContainers": [{"ports": [{"name": "init-port", "containerPort": 3000}]}],
        "containers": [
            {"ports": [{"containerPort": 5678}, {"name": "no-proto", "containerPort": 1234}]},
            {"ports": [
                {"name": "tcp-proto", "protocol": "TCP", "containerPort": 1024},
                {"name": "tcp-proto-with-host-port", "protocol": "TCP", "containerPort": 8080, "hostPort": 5678},
                {"name": "tcp-proto-with-host-port-and-ip", "protocol": "TCP", "containerPort": 8081,
                 "hostPort": 6789, "hostIP": "1.2.3.4"},
                {"protocol": "TCP", "containerPort": 500, "hostPort": 5000},
                {"name": "udp-proto", "protocol": "UDP", "containerPort": 432},
                {"name": "sctp-proto", "protocol": "SCTP", "containerPort": 891},
                {"name": "unkn-proto", "protocol": "unknown", "containerPort": 567},
            ]},
        ]}, status={"podIP": "192.168.0.1"})
    original = json.loads(json.dumps(pod))
    wep = conv.pod_to_workload_endpoint(pod)
    assert pod == original, "the pod must not be modified"
    assert wep["kind"] == "WorkloadEndpoint" and wep["apiVersion"] == "projectcalico.org/v3"
    meta, spec = wep["metadata"], wep["spec"]
    assert (meta["name"], meta["namespace"], meta["resourceVersion"]) == ("nodeA-k8s-podA-eth0", "default", "1234")
    assert (spec["pod"], spec["node"], spec["endpoint"], spec["orchestrator"]) == ("podA", "nodeA", "eth0", "k8s")
    assert spec["ipNetworks"] == ["192.168.0.1/32"]
    assert spec["profiles"] == ["kns.default"]
    assert meta["labels"] == {"labelA": "valueA", "labelB": "valueB", "projectcalico.org/namespace": "default",
                              "projectcalico.org/orchestrator": "k8s"}
    # numorstring.ProtocolFromString gives the canonical (upper) case.
    port = lambda name, proto, port, host_port=0, host_ip="": {  # noqa: E731
        "name": name, "protocol": proto, "port": port, "hostPort": host_port, "hostIP": host_ip}
    assert sorted(spec["ports"], key=lambda p: p["port"]) == sorted([
        port("no-proto", "TCP", 1234), port("tcp-proto", "TCP", 1024),
        port("tcp-proto-with-host-port", "TCP", 8080, 5678),
        port("tcp-proto-with-host-port-and-ip", "TCP", 8081, 6789, "1.2.3.4"), port("", "TCP", 500, 5000),
        port("udp-proto", "UDP", 432), port("sctp-proto", "SCTP", 891), port("init-port", "TCP", 3000),
    ], key=lambda p: p["port"])
    assert spec["interfaceName"] == "cali7f94ce7c295"
    # The result reads as a WorkloadEndpoint (as a stored value is read: not validated, since
    # Kubernetes names such as "podA" need not be Calico names).
    assert from_dict(wep, strict=False, validate=False).spec["ports"][0]["protocol"] == "TCP"


@pytest.mark.parametrize("pod, expected", [
    # "should parse a Pod with dual stack IPs to a WorkloadEndpoint"
    (_pod(status={"podIP": "192.168.0.1", "podIPs": [{"ip": "192.168.0.1"}, {"ip": "fd5f:8067::1"}]}),
     ["192.168.0.1/32", "fd5f:8067::1/128"]),
    # "should look in the calico annotation for the IP"
    (_pod({"cni.projectcalico.org/podIP": "192.168.0.1"}), ["192.168.0.1/32"]),
    # "should look in the dual stack calico annotation for the IPs"
    (_pod({"cni.projectcalico.org/podIP": "192.168.0.1", "cni.projectcalico.org/podIPs": "192.168.0.1,fd5f:8067::1"}),
     ["192.168.0.1/32", "fd5f:8067::1/128"]),
    # "should look for the AWS VPC CNI annotation for pod IPs"
    (_pod({"vpc.amazonaws.com/pod-ips": "192.168.0.1"}), ["192.168.0.1/32"]),
    # "should handle IP annotations with /32 and /128"
    (_pod({"cni.projectcalico.org/podIP": "192.168.0.1/32",
           "cni.projectcalico.org/podIPs": "192.168.0.1/32,fd5f:8067::1/128"}), ["192.168.0.1/32", "fd5f:8067::1/128"]),
    # "should prioritise PodIP over the calico annotation for the IP"
    (_pod({"cni.projectcalico.org/podIP": "192.168.0.1"}, {"podIP": "192.168.0.2"}), ["192.168.0.2/32"]),
    # "should return a value for a missing pod IP"
    (_pod(), []),
    # "should treat running pod with empty podIP annotation and no deletion timestamp as Running"
    (_pod({"cni.projectcalico.org/podIP": ""}, {"podIP": "192.168.0.1", "phase": "Running"}), ["192.168.0.1/32"]),
    # "should treat running pod with empty podIP with a deletion timestamp as finished"
    (_pod({"cni.projectcalico.org/podIP": ""}, {"podIP": "192.168.0.1", "phase": "Running"},
          deletionTimestamp="2025-01-01T00:00:00Z"), []),
    # "should treat running pod with no podIP annotation with a deletion timestamp as running"
    (_pod({}, {"podIP": "192.168.0.1", "phase": "Running"}, deletionTimestamp="2025-01-01T00:00:00Z"),
     ["192.168.0.1/32"]),
    # "should treat finished pod with no podIP annotation with a deletion timestamp as finished"
    (_pod({}, {"podIP": "192.168.0.1", "phase": "Succeeded"}, deletionTimestamp="2025-01-01T00:00:00Z"), []),
])
def test_pod_addresses(pod, expected):
    assert conv.pod_to_workload_endpoint(pod)["spec"]["ipNetworks"] == expected


@pytest.mark.parametrize("phase, keeps_ip", [
    ("Pending", True), ("Running", True), ("Unknown", True), ("Succeeded", False), ("Failed", False),
    ("Completed", False),
])
def test_pod_phases(phase, keeps_ip):
    # "PodToDefaultWorkloadEndpoint reject/accept phase tests"
    pod = _pod({"cni.projectcalico.org/podIP": "192.168.0.1"}, {"podIP": "192.168.0.1", "phase": phase})
    assert len(conv.pod_to_workload_endpoint(pod)["spec"]["ipNetworks"]) == (1 if keeps_ip else 0)


def test_floating_ips_and_source_prefixes():
    # "should look in the calico annotation for a floating IP"
    pod = _pod({"cni.projectcalico.org/podIP": "192.168.0.1", "cni.projectcalico.org/floatingIPs": '["1.1.1.1"]'})
    assert conv.pod_to_workload_endpoint(pod)["spec"]["ipNATs"] == [
        {"internalIP": "192.168.0.1", "externalIP": "1.1.1.1"}]
    # "should find the right address family target for dual stack floating IPs"
    pod = _pod({"cni.projectcalico.org/podIP": "192.168.0.1",
                "cni.projectcalico.org/podIPs": "192.168.0.1,fd5f:8067::1",
                "cni.projectcalico.org/floatingIPs": '["1.1.1.1","fd80:100:100::10"]'})
    assert conv.pod_to_workload_endpoint(pod)["spec"]["ipNATs"] == [
        {"internalIP": "192.168.0.1", "externalIP": "1.1.1.1"},
        {"internalIP": "fd5f:8067::1", "externalIP": "fd80:100:100::10"}]
    # "should look at the source spoofing disabling annotation" / "should normalize CIDRs"
    pod = _pod({"cni.projectcalico.org/podIP": "192.168.0.1",
                "cni.projectcalico.org/allowedSourcePrefixes": '["8.8.8.8/32","1.1.1.0/24"]'})
    assert sorted(conv.pod_to_workload_endpoint(pod)["spec"]["allowSpoofedSourcePrefixes"]) == [
        "1.1.1.0/24", "8.8.8.8/32"]
    pod = _pod({"cni.projectcalico.org/podIP": "192.168.0.1",
                "cni.projectcalico.org/allowedSourcePrefixes": '["1.1.1.1/16"]'})
    assert conv.pod_to_workload_endpoint(pod)["spec"]["allowSpoofedSourcePrefixes"] == ["1.1.0.0/16"]


def test_null_floating_ips_and_source_prefixes_are_empty():
    """Go reads JSON null into a []string as an empty list (and so does the CNI plugin,
    which networks such a pod): the pod keeps its endpoint, without NATs or prefixes."""
    pod = _pod({"cni.projectcalico.org/podIP": "192.168.0.1", "cni.projectcalico.org/floatingIPs": "null",
                "cni.projectcalico.org/allowedSourcePrefixes": "null"})
    spec = conv.pod_to_workload_endpoint(pod)["spec"]
    assert spec["ipNetworks"] == ["192.168.0.1/32"]
    assert "ipNATs" not in spec and "allowSpoofedSourcePrefixes" not in spec


@pytest.mark.parametrize("annotations, message", [
    # "should error on empty string in the source spoofing disabling annotation"
    ({"cni.projectcalico.org/podIP": "192.168.0.1", "cni.projectcalico.org/allowedSourcePrefixes": '[""]'},
     "allowedSourcePrefixes"),
    # "should error on invalid CIDR in the source spoofing disabling annotation"
    ({"cni.projectcalico.org/podIP": "192.168.0.1", "cni.projectcalico.org/allowedSourcePrefixes": '["gumbo"]'},
     "gumbo"),
    # "should return an error for a bad pod IP" / "... for a bad podIPs annotation"
    ({"cni.projectcalico.org/podIP": "foobar"}, "foobar"),
    ({"cni.projectcalico.org/podIPs": "foobar"}, "foobar"),
])
def test_bad_pod_annotations_are_errors_naming_the_pod(annotations, message):
    with pytest.raises(conv.ConversionError, match=message) as info:
        conv.pod_to_workload_endpoint(_pod(annotations))
    assert "default/podA" in str(info.value)


def test_service_accounts_and_other_metadata():
    # "should parse a Pod with serviceaccount"
    wep = conv.pod_to_workload_endpoint(_pod(spec={"serviceAccountName": "sa-test"}, status={"podIP": "192.168.0.1"}))
    assert wep["spec"]["profiles"] == ["kns.default", "ksa.default.sa-test"]
    assert wep["spec"]["serviceAccountName"] == "sa-test"
    assert wep["metadata"]["labels"]["projectcalico.org/serviceaccount"] == "sa-test"
    # "should parse a Pod with long serviceaccount": no label for names of 63 characters or more
    long_name = ("serviceaccount-name-that-is-too-long-to-be-used-as-a-kubernetes-label-because-it-exceeds-"
                 "the-character-limit")
    wep = conv.pod_to_workload_endpoint(_pod(spec={"serviceAccountName": long_name}))
    assert "projectcalico.org/serviceaccount" not in wep["metadata"]["labels"]
    assert wep["spec"]["profiles"][1] == f"ksa.default.{long_name}"
    # "should parse a Pod with GenerateName set in metadata"
    assert conv.pod_to_workload_endpoint(_pod(generateName="pod-"))["metadata"]["generateName"] == "pod-"
    # "should pass network-status annotations from pod to workloadendpoint"
    status = '[{"name": "k8s-pod-network", "ips": ["192.168.0.1"]}]'
    wep = conv.pod_to_workload_endpoint(_pod({"k8s.v1.cni.cncf.io/network-status": status, "other": "x"}))
    assert wep["metadata"]["annotations"] == {"k8s.v1.cni.cncf.io/network-status": status}


def test_pods_that_are_not_endpoints():
    # "should not parse a Pod with no NodeName"; host-networked pods are not endpoints either
    assert not conv.pod_is_workload({"metadata": {"name": "p"}, "spec": {}})
    assert not conv.pod_is_workload({"metadata": {"name": "p"}, "spec": {"nodeName": "n", "hostNetwork": True}})
    # "Pod without an IP should be valid but not ready"
    assert conv.pod_is_workload({"metadata": {"name": "p"}, "spec": {"nodeName": "n"}})


def test_qos_annotations():
    # "should parse valid QoSControl annotations"
    annotations = {
        "qos.projectcalico.org/ingressBandwidth": "1M", "qos.projectcalico.org/egressBandwidth": "2M",
        "qos.projectcalico.org/ingressBurst": "3M", "qos.projectcalico.org/egressBurst": "4M",
        "qos.projectcalico.org/ingressPeakrate": "5M", "qos.projectcalico.org/egressPeakrate": "6M",
        "qos.projectcalico.org/ingressMinburst": "7M", "qos.projectcalico.org/egressMinburst": "8M",
        "qos.projectcalico.org/ingressPacketRate": "2k", "qos.projectcalico.org/egressPacketRate": "9k",
        "qos.projectcalico.org/ingressPacketBurst": "1k", "qos.projectcalico.org/egressPacketBurst": "10k",
        "qos.projectcalico.org/ingressMaxConnections": "13M", "qos.projectcalico.org/egressMaxConnections": "14M",
        "qos.projectcalico.org/dscp": "cs5",
    }
    qos, problems = conv.qos_controls(annotations)
    assert problems == []
    assert qos == {"ingressBandwidth": 1000000, "ingressBurst": 3000000, "ingressPeakrate": 5000000,
                   "ingressMinburst": 7000000, "egressBandwidth": 2000000, "egressBurst": 4000000,
                   "egressPeakrate": 6000000, "egressMinburst": 8000000, "ingressPacketRate": 2000,
                   "ingressPacketBurst": 1000, "egressPacketRate": 9000, "egressPacketBurst": 10000,
                   "ingressMaxConnections": 13000000, "egressMaxConnections": 14000000, "dscp": "CS5"}
    # "should cap invalid QoSControl annotations to min/max values"
    qos, problems = conv.qos_controls({
        "qos.projectcalico.org/ingressBandwidth": "1", "qos.projectcalico.org/egressBandwidth": "20P",
        "qos.projectcalico.org/ingressBurst": "3", "qos.projectcalico.org/egressBurst": "40P",
        "qos.projectcalico.org/ingressPeakrate": "5", "qos.projectcalico.org/egressPeakrate": "50P",
        "qos.projectcalico.org/ingressMinburst": "7", "qos.projectcalico.org/egressMinburst": "8Gi",
        "qos.projectcalico.org/ingressPacketRate": "0", "qos.projectcalico.org/egressPacketRate": "60P",
        "qos.projectcalico.org/ingressPacketBurst": "0", "qos.projectcalico.org/egressPacketBurst": "70P",
        "qos.projectcalico.org/ingressMaxConnections": "0", "qos.projectcalico.org/egressMaxConnections": "80P",
    })
    assert qos == {"ingressBandwidth": 1000, "ingressBurst": 1000, "ingressPeakrate": 1010, "ingressMinburst": 1000,
                   "egressBandwidth": 1000000000000000, "egressBurst": 34359738360,
                   "egressPeakrate": 1010000000000000, "egressMinburst": 100000000, "ingressPacketRate": 1,
                   "ingressPacketBurst": 1, "egressPacketRate": 10000, "egressPacketBurst": 10000,
                   "ingressMaxConnections": 1, "egressMaxConnections": 4294967295}
    assert len(problems) == 14
    # "should ignore burst/peakrate/minburst/packet burst ... if ... is not present"
    for only in ({"qos.projectcalico.org/ingressBurst": "3M", "qos.projectcalico.org/egressBurst": "4M"},
                 {"qos.projectcalico.org/ingressPeakrate": "3M", "qos.projectcalico.org/egressPeakrate": "4M"},
                 {"qos.projectcalico.org/ingressMinburst": "3M", "qos.projectcalico.org/egressMinburst": "4M"},
                 {"qos.projectcalico.org/ingressPacketBurst": "3k"}):
        assert conv.qos_controls(only)[0] is None
    # Bandwidth alone gets the default 4Gi burst; the k8s annotation counts too.
    assert conv.qos_controls({"kubernetes.io/egress-bandwidth": "10M"})[0] == {
        "egressBandwidth": 10000000, "egressBurst": 4294967296}


@pytest.mark.parametrize("text, stored", [("cs5", "CS5"), ("18", 18), ("063", 63), (" af21", " af21")])
def test_dscp_annotation_as_calico_stores_it(text, stored):
    """numorstring.DSCPFromString then Go's JSON: names canonical, digits a number, a
    padded name as given (valid: Validate trims it)."""
    qos, problems = conv.qos_controls({"qos.projectcalico.org/dscp": text})
    assert qos == {"dscp": stored} and problems == []


@pytest.mark.parametrize("text", ["64", " 18", "AF99", "", "-1"])
def test_bad_dscp_annotation(text):
    qos, problems = conv.qos_controls({"qos.projectcalico.org/dscp": text})
    assert qos is None and "qos.projectcalico.org/dscp" in problems[0]


# -- selectors, policies --------------------------------------------------------------------

@pytest.mark.parametrize("selector, pod, expected", [
    ({}, True, "projectcalico.org/orchestrator == 'k8s'"),
    ({}, False, "all()"),
    ({"matchExpressions": [{"key": "toast", "operator": "DoesNotExist"}]}, False, "! has(toast)"),
    ({"matchExpressions": [{"key": "toast", "operator": "Exists"}]}, False, "has(toast)"),
    ({"matchExpressions": [{"key": "toast", "operator": "In", "values": ["butter", "jam"]}]}, False,
     "toast in { 'butter', 'jam' }"),
    ({"matchExpressions": [{"key": "toast", "operator": "NotIn", "values": ["marmite", "milk"]}]}, False,
     "toast not in { 'marmite', 'milk' }"),
    ({"matchExpressions": [{"key": "toast", "operator": "DoesNotExist"}]}, True,
     "projectcalico.org/orchestrator == 'k8s' && ! has(toast)"),
    (None, True, "projectcalico.org/orchestrator == 'k8s'"),
    (None, False, ""),
])
def test_selector_conversion(selector, pod, expected):
    # "selector conversion table"
    assert conv.k8s_selector_to_calico(selector, pod) == expected


def _np(spec, name="test.policy"):
    return {"metadata": {"name": name, "namespace": "default", "uid": UID}, "spec": spec}


K8S = "projectcalico.org/orchestrator == 'k8s'"


def test_basic_network_policy():
    # "should parse a basic k8s NetworkPolicy to a NetworkPolicy"
    policy, problems = conv.k8s_network_policy_to_calico(_np({
        "podSelector": {"matchLabels": {"label": "value", "label2": "value2"}},
        "ingress": [{"ports": [{"port": 80}, {"port": "foo"}],
                     "from": [{"podSelector": {"matchLabels": {"k": "v", "k2": "v2"}}}]}],
        "policyTypes": ["Ingress"]}))
    assert problems == []
    assert policy["kind"] == "KubernetesNetworkPolicy" and policy["metadata"]["name"] == "test.policy"
    assert policy["metadata"]["uid"] == "0c8c26a6-c6a6-44c6-adc6-ac2646b46c1c"
    spec = policy["spec"]
    assert spec["order"] == 1000 and spec["tier"] == "default"
    assert spec["selector"] == f"{K8S} && label == 'value' && label2 == 'value2'"
    assert spec["ingress"] == [{"action": "Allow", "protocol": "TCP",
                                "source": {"selector": f"{K8S} && k == 'v' && k2 == 'v2'"},
                                "destination": {"ports": [80, "foo"]}}]
    assert spec["types"] == ["Ingress"] and "egress" not in spec
    res = from_dict(policy, strict=False)
    assert res.kind == "KubernetesNetworkPolicy" and res.spec["ingress"][0]["destination"]["ports"] == [80, "foo"]


def test_network_policy_without_ports_or_rules():
    # "should parse a k8s NetworkPolicy with no ports"
    policy, _ = conv.k8s_network_policy_to_calico(_np({
        "podSelector": {"matchLabels": {"label": "value"}},
        "ingress": [{"from": [{"podSelector": {"matchLabels": {"k": "v"}}}]}], "policyTypes": ["Ingress"]}))
    assert policy["spec"]["ingress"] == [{"action": "Allow", "source": {"selector": f"{K8S} && k == 'v'"}}]
    # "should parse a NetworkPolicy with no rules"; "(k8s <= 1.7, no policyTypes)": ingress only
    policy, _ = conv.k8s_network_policy_to_calico(_np({"podSelector": {"matchLabels": {"label": "value"}}}))
    assert policy["spec"]["types"] == ["Ingress"] and "ingress" not in policy["spec"]
    # "should parse a default-deny egress NetworkPolicy"
    policy, _ = conv.k8s_network_policy_to_calico(_np({"podSelector": {}, "policyTypes": ["Egress"]}))
    assert policy["spec"]["types"] == ["Egress"] and policy["spec"]["selector"] == K8S


def test_network_policy_peers_and_ports():
    # "should parse a NetworkPolicy with multiple peers and ports"
    policy, _ = conv.k8s_network_policy_to_calico(_np({
        "podSelector": {"matchLabels": {"label": "value"}},
        "ingress": [{"ports": [{"port": 80}, {"protocol": "UDP", "port": 53}],
                     "from": [{"podSelector": {"matchLabels": {"k": "v"}}},
                              {"podSelector": {"matchLabels": {"k2": "v2"}}}]}],
        "policyTypes": ["Ingress"]}))
    assert policy["spec"]["ingress"] == [
        {"action": "Allow", "protocol": "TCP", "source": {"selector": f"{K8S} && k == 'v'"},
         "destination": {"ports": [80]}},
        {"action": "Allow", "protocol": "TCP", "source": {"selector": f"{K8S} && k2 == 'v2'"},
         "destination": {"ports": [80]}},
        {"action": "Allow", "protocol": "UDP", "source": {"selector": f"{K8S} && k == 'v'"},
         "destination": {"ports": [53]}},
        {"action": "Allow", "protocol": "UDP", "source": {"selector": f"{K8S} && k2 == 'v2'"},
         "destination": {"ports": [53]}},
    ]
    # "should parse a NetworkPolicy with a namespaceSelector" / "an empty namespaceSelector"
    policy, _ = conv.k8s_network_policy_to_calico(_np({
        "podSelector": {}, "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"team": "a"}}},
                                                 {"namespaceSelector": {}}]}]}))
    assert [r["source"] for r in policy["spec"]["ingress"]] == [
        {"selector": K8S, "namespaceSelector": "team == 'a'"}, {"selector": K8S, "namespaceSelector": "all()"}]
    # "should parse a NetworkPolicy with Port Range only" (endPort)
    policy, _ = conv.k8s_network_policy_to_calico(_np({
        "podSelector": {}, "ingress": [{"ports": [{"protocol": "TCP", "port": 32000, "endPort": 32768}]}]}))
    assert policy["spec"]["ingress"] == [{"action": "Allow", "protocol": "TCP",
                                          "destination": {"ports": ["32000:32768"]}}]
    # "should parse a NetworkPolicy with an Egress rule with an IPBlock Peer" (with except)
    policy, _ = conv.k8s_network_policy_to_calico(_np({
        "podSelector": {}, "policyTypes": ["Egress"],
        "egress": [{"to": [{"ipBlock": {"cidr": "192.168.0.0/16", "except": ["192.168.3.0/24", "192.168.4.0/24"]}}],
                    "ports": [{"port": 80}]}]}))
    assert policy["spec"]["egress"] == [{"action": "Allow", "protocol": "TCP", "destination": {
        "ports": [80], "nets": ["192.168.0.0/16"], "notNets": ["192.168.3.0/24", "192.168.4.0/24"]}}]


def test_ip_block_with_a_bad_exception_keeps_the_ones_before_it():
    """k8sPeerToCalicoFields stops at an exception it cannot parse but keeps those read
    before it, so the rule still excludes them (dropping them all would allow more)."""
    policy, _ = conv.k8s_network_policy_to_calico(_np({
        "podSelector": {}, "ingress": [{"from": [{"ipBlock": {
            "cidr": "10.0.0.0/8", "except": ["10.1.0.0/16", "bogus", "10.2.0.0/16"]}}]}]}))
    assert policy["spec"]["ingress"] == [{"action": "Allow", "source": {"nets": ["10.0.0.0/8"],
                                                                        "notNets": ["10.1.0.0/16"]}}]


def test_port_range_of_one_port_is_that_port():
    """A port whose endPort equals it is numorstring's range of one, which Calico's JSON
    writes as the plain number."""
    policy, _ = conv.k8s_network_policy_to_calico(_np({
        "podSelector": {}, "ingress": [{"ports": [{"protocol": "TCP", "port": 8080, "endPort": 8080}]}]}))
    assert policy["spec"]["ingress"] == [{"action": "Allow", "protocol": "TCP", "destination": {"ports": [8080]}}]


def test_rules_with_invalid_ports_are_dropped():
    # "should drop rules with invalid ports in a k8s NetworkPolicy"
    peer = [{"podSelector": {"matchLabels": {"k": "v", "k2": "v2"}}}]
    policy, problems = conv.k8s_network_policy_to_calico(_np({
        "podSelector": {"matchLabels": {"label": "value", "label2": "value2"}},
        "ingress": [{"ports": [{"port": 80}, {"port": "foo"}], "from": peer},
                    {"ports": [{"port": 80}, {"port": "-50:-1"}], "from": peer}],
        "policyTypes": ["Ingress"]}))
    assert len(policy["spec"]["ingress"]) == 1
    assert len(problems) == 1 and problems[0].startswith("spec.ingress[1]")


@pytest.mark.parametrize("given, expected", [
    ("", ""), ("0", "0"), ("1", "1"), ("65535", "65535"), ("0:65535", "0:65535"), ("1,2", "1:2"), ("2,1", "1:2"),
    ("1,2,4", "1:2,4"), ("1,2,3,4,80:81,81:90,9090", "1:4,80:90,9090"), ("81:90,4,2,80:81,3,1,9090", "1:4,80:90,9090"),
    ("81:90,4,2,foo,80:81,3,1,9090,http", "foo,http,1:4,80:90,9090"), ("foo", "foo"),
])
def test_simplify_ports(given, expected):
    # SimplifyPorts table
    ports = [conv._parse_port(p) for p in given.split(",")] if given else []
    out = conv.simplify_ports(ports)
    assert ",".join(str(conv._port_json(p)) for p in out) == expected


# -- namespaces, service accounts ---------------------------------------------------------------

def test_namespace_to_profile():
    # "should parse a Namespace to a Profile", "... with no labels", deterministic UID
    profile = conv.namespace_to_profile({"metadata": {"name": "default", "labels": {"foo": "bar", "roger": "rabbit"},
                                                      "annotations": {}, "uid": UID}})
    assert profile["metadata"]["name"] == "kns.default"
    assert profile["spec"]["ingress"] == [{"action": "Allow"}] and profile["spec"]["egress"] == [{"action": "Allow"}]
    assert profile["spec"]["labelsToApply"] == {"pcns.projectcalico.org/name": "default", "pcns.foo": "bar",
                                               "pcns.roger": "rabbit"}
    assert profile["metadata"]["uid"] == conv.convert_uid(UID) != UID
    bare = conv.namespace_to_profile({"metadata": {"name": "default", "uid": UID,
                                                   "annotations": {"net.beta.kubernetes.io/network-policy": "junk"}}})
    assert bare["spec"]["labelsToApply"] == {"pcns.projectcalico.org/name": "default"}
    assert bare["spec"]["ingress"] == [{"action": "Allow"}]


def test_service_account_to_profile():
    # "should parse a ServiceAccount in default namespace to a Profile" (no namespace -> default)
    profile = conv.service_account_to_profile({"metadata": {"name": "sa-test", "uid": UID,
                                                            "labels": {"foo": "bar", "roger": "rabbit"}}})
    assert profile["metadata"]["name"] == "ksa.default.sa-test"
    assert "ingress" not in profile["spec"] and "egress" not in profile["spec"]
    assert profile["spec"]["labelsToApply"] == {"pcsa.projectcalico.org/name": "sa-test", "pcsa.foo": "bar",
                                               "pcsa.roger": "rabbit"}
    assert profile["metadata"]["uid"] == conv.convert_uid(UID)
    # "should parse a ServiceAccount in Namespace to a Profile"
    assert conv.service_account_to_profile({"metadata": {"name": "sa-test", "namespace": "test", "uid": UID}})[
        "metadata"]["name"] == "ksa.test.sa-test"


# -- nodes ----------------------------------------------------------------------------------------

def _node(annotations, addresses=(), pod_cidr="10.0.0.1/24", labels=None):
    return {"metadata": {"name": "TestNode", "resourceVersion": "1234", "annotations": annotations,
                         **({"labels": labels} if labels is not None else {})},
            "spec": {"podCIDR": pod_cidr} if pod_cidr else {},
            "status": {"addresses": [{"type": t, "address": a} for t, a in addresses]}}


ADDRESSES = (("InternalIP", "172.17.17.10"), ("ExternalIP", "192.168.1.100"), ("Hostname", "172-17-17-10"))


def test_k8s_node_to_calico():
    # "should parse a k8s Node to a Calico Node"
    node = conv.k8s_node_to_calico(_node({
        "projectcalico.org/IPv4Address": "172.17.17.10", "projectcalico.org/ASNumber": "2546",
        "projectcalico.org/Interfaces": '[{"name":"eth1","addresses":["172.31.11.4"]},'
                                        '{"name":"eth0","addresses":["172.17.17.10","172.17.17.11"]}]'}, ADDRESSES))
    bgp = node["spec"]["bgp"]
    assert bgp == {"asNumber": 2546, "ipv4Address": "172.17.17.10"}
    assert node["spec"]["interfaces"] == [{"name": "eth1", "addresses": ["172.31.11.4"]},
                                          {"name": "eth0", "addresses": ["172.17.17.10", "172.17.17.11"]}]
    assert node["spec"]["orchRefs"] == [{"nodeName": "TestNode", "orchestrator": "k8s"}]
    # "should ignore RR cluster ID if its an invalid IPv4 address" / "... an IPv6 address"; and a valid one
    for value, expected in (("288.0.4.5", None), ("fd10::10", None), ("248.0.4.5", "248.0.4.5")):
        node = conv.k8s_node_to_calico(_node({"projectcalico.org/IPv4Address": "172.17.17.10",
                                              "projectcalico.org/RouteReflectorClusterID": value}, ADDRESSES))
        assert node["spec"]["bgp"].get("routeReflectorClusterID") == expected
    # "should parse addresses of all types into Calico Node"
    node = conv.k8s_node_to_calico(_node({
        "projectcalico.org/IPv6Address": "fd10::10", "projectcalico.org/IPv4Address": "172.17.17.10",
        "projectcalico.org/ASNumber": "2546", "projectcalico.org/IPv4VXLANTunnelAddr": "1.2.3.4",
        "projectcalico.org/VXLANTunnelMACAddr": "00:11:22:33:44:55",
        "projectcalico.org/IPv6VXLANTunnelAddr": "fd10::11",
        "projectcalico.org/VXLANTunnelMACAddrV6": "55:44:33:22:11:00",
        "projectcalico.org/IPv4IPIPTunnelAddr": "5.4.5.4"}, ADDRESSES, pod_cidr=""))
    assert sorted(node["spec"]["addresses"], key=json.dumps) == sorted([
        {"address": "fd10::10", "type": "CalicoNodeIP"}, {"address": "172.17.17.10", "type": "CalicoNodeIP"},
        {"address": "172.17.17.10", "type": "InternalIP"}, {"address": "192.168.1.100", "type": "ExternalIP"}],
        key=json.dumps)
    assert (node["spec"]["ipv4VXLANTunnelAddr"], node["spec"]["vxlanTunnelMACAddr"],
            node["spec"]["ipv6VXLANTunnelAddr"], node["spec"]["vxlanTunnelMACAddrV6"],
            node["spec"]["bgp"]["ipv4IPIPTunnelAddr"]) == ("1.2.3.4", "00:11:22:33:44:55", "fd10::11",
                                                           "55:44:33:22:11:00", "5.4.5.4")


@pytest.mark.parametrize("text, asn", [
    ("64512", 64512), ("1.10", 65546), ("4294967295", 4294967295),
    # What Go's ParseUint refuses is an invalid annotation, ignored: no asNumber, so the
    # node takes the cluster's default AS, as with Calico.
    (" 64512", None), ("+64512", None), ("64_512", None), ("64512\n", None), ("4294967296", None),
    ("65536.1", None), ("1.2.3", None), ("", None),
])
def test_node_as_number_annotation(text, asn):
    node = conv.k8s_node_to_calico(_node({"projectcalico.org/IPv4Address": "172.17.17.10",
                                          "projectcalico.org/ASNumber": text}))
    assert node["spec"]["bgp"].get("asNumber") == asn


def test_pod_cidr_tunnel_addresses():
    # "should parse a k8s Node to a Calico Node with an IPv4IPIPTunnelAddr" (USE_POD_CIDR)
    node = conv.k8s_node_to_calico(_node({"projectcalico.org/ASNumber": "2546"}, pod_cidr="10.0.0.0/24"), True)
    assert node["spec"]["bgp"]["ipv4IPIPTunnelAddr"] == "10.0.0.1" and "wireguard" not in node["spec"]
    key = "jlkVyQYooZYzI2wFfNhSZez5eWh44yfq1wKVjLvSXgY="
    annotations = {"projectcalico.org/ASNumber": "2546", "projectcalico.org/WireguardPublicKey": key}
    node = conv.k8s_node_to_calico(_node(annotations, pod_cidr="10.0.0.0/24"), True)
    assert node["spec"]["wireguard"] == {"interfaceIPv4Address": "10.0.0.1"}
    # "should handle an empty pod CIDR"
    node = conv.k8s_node_to_calico(_node({}, pod_cidr=""), True)
    assert "bgp" not in node["spec"]
    # Without USE_POD_CIDR the annotation counts (the 10.0.0.24 case).
    node = conv.k8s_node_to_calico(_node({"projectcalico.org/IPv4IPIPTunnelAddr": "10.0.0.24"}), False)
    assert node["spec"]["bgp"]["ipv4IPIPTunnelAddr"] == "10.0.0.24"


def test_merge_calico_node_into_k8s_node_and_back():
    # "Should merge Calico Nodes into K8s Nodes"
    k8s = {"metadata": {"name": "TestNode", "labels": {"net.beta.kubernetes.io/role": "control-plane"},
                        "resourceVersion": "1234", "annotations": {}}, "spec": {}}
    calico = {"metadata": {"name": "TestNode", "resourceVersion": "1234", "labels": {"label1": "foo", "label2": "bar"},
                           "annotations": {"anno1": "foo", "anno2": "bar"}},
              "spec": {"bgp": {"ipv4Address": "172.17.17.10/24", "ipv6Address": "aa:bb:cc::ffff/120",
                               "asNumber": 2456, "routeReflectorClusterID": "245.0.0.3"},
                       "orchRefs": [{"nodeName": "TestNode", "orchestrator": "k8s"}],
                       "interfaces": [{"name": "eth1", "addresses": ["172.31.11.4"]},
                                      {"name": "eth0", "addresses": ["172.17.17.10", "172.17.17.11"]}]}}
    merged = conv.merge_calico_node_into_k8s(calico, k8s)
    annotations = merged["metadata"]["annotations"]
    assert annotations["projectcalico.org/IPv4Address"] == "172.17.17.10/24"
    assert annotations["projectcalico.org/IPv6Address"] == "aa:bb:cc::ffff/120"
    assert annotations["projectcalico.org/ASNumber"] == "2456"
    assert annotations["projectcalico.org/RouteReflectorClusterID"] == "245.0.0.3"
    assert annotations["projectcalico.org/Interfaces"] == (
        '[{"name":"eth1","addresses":["172.31.11.4"]},{"name":"eth0","addresses":["172.17.17.10","172.17.17.11"]}]')
    assert "anno1" not in annotations and "label1" not in merged["metadata"]["labels"]
    merged["spec"]["podCIDR"] = "172.100.0.0/24"
    back = conv.k8s_node_to_calico(merged)
    assert back["metadata"]["labels"] == {"label1": "foo", "label2": "bar",
                                          "net.beta.kubernetes.io/role": "control-plane"}
    assert back["metadata"]["annotations"] == {"anno1": "foo", "anno2": "bar",
                                               "projectcalico.org/kube-labels":
                                                   '{"net.beta.kubernetes.io/role":"control-plane"}'}
    assert back["spec"]["bgp"] == calico["spec"]["bgp"]
    assert back["spec"]["addresses"] == [{"address": "172.17.17.10/24", "type": "CalicoNodeIP"},
                                         {"address": "aa:bb:cc::ffff/120", "type": "CalicoNodeIP"}]


def test_node_labels_shadowed_by_kubernetes():
    # "Should shadow labels correctly"
    kube_labels = {"net.beta.kubernetes.io/role": "control-plane", "shadowed": "k8s-value"}
    k8s = {"metadata": {"name": "TestNode", "labels": kube_labels, "annotations": {}}, "spec": {}}
    calico_labels = {"label1": "foo", "label2": "bar", "shadowed": "calico-value"}
    calico = {"metadata": {"name": "TestNode", "labels": calico_labels},
              "spec": {"orchRefs": [{"nodeName": "TestNode", "orchestrator": "k8s"}]}}
    merged = conv.merge_calico_node_into_k8s(calico, k8s)
    assert merged["metadata"]["annotations"] == {
        "projectcalico.org/labels": '{"label1":"foo","label2":"bar","shadowed":"calico-value"}'}
    assert merged["metadata"]["labels"] == kube_labels
    back = conv.k8s_node_to_calico(merged)
    assert back["metadata"]["annotations"] == {
        "projectcalico.org/kube-labels": '{"net.beta.kubernetes.io/role":"control-plane","shadowed":"k8s-value"}'}
    assert back["metadata"]["labels"] == {"label1": "foo", "label2": "bar", "shadowed": "k8s-value",
                                          "net.beta.kubernetes.io/role": "control-plane"}
    # Writing it back restores the Calico labels without the Kubernetes ones (the
    # shadowed value is lost, as in Calico).
    again = conv.merge_calico_node_into_k8s(back, merged)
    assert json.loads(again["metadata"]["annotations"]["projectcalico.org/labels"]) == {"label1": "foo",
                                                                                       "label2": "bar"}
    # "restoreCalicoLabels should error if annotations are malformed"
    with pytest.raises(conv.ConversionError, match="kube-labels"):
        conv.merge_calico_node_into_k8s({"metadata": {"name": "n", "annotations": {
            "projectcalico.org/kube-labels": "Garbage"}}, "spec": {}}, k8s)


# -- custom resources ------------------------------------------------------------------------------

def test_crd_v1_encoding_of_labels_annotations_and_uid():
    # "should handle converting labels and annotations from v3 -> v1"
    v3 = {"kind": "BGPPeer", "apiVersion": "projectcalico.org/v3",
          "metadata": {"name": "1-2-3-4", "resourceVersion": "rv", "uid": "82d3f87b-eae7-4283-a7dc-5053cf31eeec",
                       "labels": {"foo": "bar", "projectcalico.org/foo": "bar", "operator.tigera.io/foo": "bar"},
                       "annotations": {"foo": "bar", "projectcalico.org/foo": "bar", "operator.tigera.io/foo": "bar"}},
          "spec": {}}
    cr = conv.v3_to_cr(v3, "BGPPeer", conv.GROUP_V1)
    assert cr["apiVersion"] == "crd.projectcalico.org/v1"
    assert cr["metadata"]["uid"] == "41cb1fde-57e7-42c1-a73b-0acaf38c7737"
    assert cr["metadata"]["labels"] == {"projectcalico.org/foo": "bar", "operator.tigera.io/foo": "bar"}
    annotations = cr["metadata"]["annotations"]
    assert annotations["projectcalico.org/foo"] == "bar" and annotations["operator.tigera.io/foo"] == "bar"
    assert "foo" not in annotations
    stored = json.loads(annotations["projectcalico.org/metadata"])
    assert "name" not in stored and "uid" not in stored and "resourceVersion" not in stored
    assert stored["creationTimestamp"] is None
    # Labels and annotations added on the CR itself survive the way back, merged.
    cr["metadata"]["labels"].update({"foo2": "bar2", "operator.tigera.io/foo2": "bar2"})
    cr["metadata"]["annotations"].update({"foo2": "bar2", "projectcalico.org/foo2": "bar2"})
    back = conv.cr_to_v3(cr, "BGPPeer", conv.GROUP_V1)
    assert back["metadata"]["uid"] == "82d3f87b-eae7-4283-a7dc-5053cf31eeec"
    assert back["metadata"]["name"] == "1-2-3-4" and back["metadata"]["resourceVersion"] == "rv"
    assert back["metadata"]["annotations"] == {"foo": "bar", "projectcalico.org/foo": "bar",
                                               "operator.tigera.io/foo": "bar", "projectcalico.org/foo2": "bar2",
                                               "foo2": "bar2"}
    assert back["metadata"]["labels"] == {"foo": "bar", "projectcalico.org/foo": "bar", "operator.tigera.io/foo": "bar",
                                          "foo2": "bar2", "operator.tigera.io/foo2": "bar2"}
    # ... and converting again sanitises them.
    again = conv.v3_to_cr(back, "BGPPeer", conv.GROUP_V1)
    assert set(again["metadata"]["labels"]) == {"projectcalico.org/foo", "operator.tigera.io/foo",
                                                "operator.tigera.io/foo2"}
    assert "foo2" not in again["metadata"]["annotations"]


def test_crd_encoding_of_policy_names_and_the_v3_group():
    # Policies keep their name in the metadata annotation; a CR without one loses a
    # default-tier "default." prefix (determinePolicyName).
    v3 = {"kind": "NetworkPolicy", "metadata": {"name": "allow", "namespace": "ns1"}, "spec": {"tier": "default"}}
    cr = conv.v3_to_cr(v3, "NetworkPolicy", conv.GROUP_V1)
    assert json.loads(cr["metadata"]["annotations"]["projectcalico.org/metadata"])["name"] == "allow"
    bare = {"metadata": {"name": "default.old", "namespace": "ns1"}, "spec": {"tier": "default"}}
    assert conv.cr_to_v3(bare, "NetworkPolicy", conv.GROUP_V1)["metadata"]["name"] == "default.old"
    bare["metadata"]["annotations"] = {"projectcalico.org/metadata": "{}"}
    assert conv.cr_to_v3(bare, "NetworkPolicy", conv.GROUP_V1)["metadata"]["name"] == "old"
    # The v3 group stores objects as they are: no annotation, no UID change.
    v3 = {"kind": "IPPool", "metadata": {"name": "p", "uid": UID, "labels": {"a": "b"}}, "spec": {"cidr": "10.0.0.0/8"}}
    cr = conv.v3_to_cr(v3, "IPPool", conv.GROUP_V3)
    assert cr["apiVersion"] == "projectcalico.org/v3" and cr["metadata"] == v3["metadata"]
    assert conv.cr_to_v3(cr, "IPPool", conv.GROUP_V3)["metadata"]["uid"] == UID
    with pytest.raises(conv.ConversionError, match="IPPool\\(p\\)"):
        conv.cr_to_v3({"kind": "IPPool", "metadata": {"name": "p", "annotations": {
            "projectcalico.org/metadata": "{oops"}}}, "IPPool", conv.GROUP_V1)


def test_ipam_records_as_crs():
    block = {"cidr": "10.0.0.0/30", "affinity": "host:n1", "allocations": [0, None, None, None],
             "unallocated": [1, 2, 3], "attributes": [{"handle_id": "h", "secondary": {"node": "n1"}}],
             "sequenceNumber": 7, "sequenceNumberForAllocation": {"0": 6}, "deleted": False}
    spec = conv.block_to_cr_spec(block)
    assert list(spec) == ["cidr", "affinity", "allocations", "unallocated", "attributes", "sequenceNumber",
                          "sequenceNumberForAllocation", "deleted", "strictAffinity"]
    assert conv.cr_spec_to_block(spec) == block
    cr = conv.affinity_cr("n1", "host", "10.0.0.0/30", "confirmed", False, conv.GROUP_V1)
    assert cr["spec"] == {"state": "confirmed", "node": "n1", "type": "host", "cidr": "10.0.0.0/30",
                          "deleted": "false"}
    assert conv.affinity_from_cr(cr) == ("n1", "host", "10.0.0.0/30", "confirmed", False)
    v3 = conv.affinity_cr("n1", "host", "10.0.0.0/30", "pending", True, conv.GROUP_V3)
    assert v3["spec"]["deleted"] is True and conv.affinity_from_cr(v3)[3:] == ("pending", True)
    config = {"strict_affinity": True, "auto_allocate_blocks": True, "maxBlocksPerHost": 4}
    assert conv.ipam_config_to_cr_spec(config) == {"strictAffinity": True, "autoAllocateBlocks": True,
                                                   "maxBlocksPerHost": 4}
    assert conv.cr_spec_to_ipam_config(conv.ipam_config_to_cr_spec(config)) == config
