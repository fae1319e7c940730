"""libcalico-go v3.32.1's validator table, replayed against our model.

Each case is one ``Entry(...)`` of ``libcalico-go/lib/validator/v3/validator_test.go``
(DescribeTable "Validator"), its Go value written as the v3 JSON an operator's manifest
would hold, and whether Calico's validator accepts it. The case id starts with the
entry's number in that table (counting from 1) and carries its description, so a failure
can be found in the Go file.

A Go value is a whole resource (checked as calicoctl loads it: ``from_dict``), or one
struct (a spec, a rule, a port...: canonicalised as Go decodes it, then validated as the
model validates that struct inside a resource). A Go struct literal has no field that
JSON could not carry, except where noted.

Entries the model answers differently on purpose are listed in ``DELIBERATE`` (the
README's "Deliberate differences" or a Go value no manifest can express); they are
expected to differ (strict xfail), so a change in either direction is noticed.
"""
from __future__ import annotations

import pytest

from node.errors import ValidationError
from node.model import KINDS, from_dict
from node.model.schema import Collector, canonical_struct, validate_struct

# Values the Go table defines once and uses throughout.
IPV4_1, IPV4_2 = "1.2.3.4", "100.200.0.0"
IPV6_1, IPV6_2 = "aabb:aabb::ffff", "aabb::abcd"
NETV4_1, NETV4_2, NETV4_3, NETV4_4, NETV4_5 = "1.2.3.4/32", "1.2.0.0/32", "1.2.3.0/26", "1.0.0.0/10", "1.2.3.0/27"
NETV6_1, NETV6_2, NETV6_3, NETV6_4 = "aabb:aabb::ffff/128", "aabb:aabb::/128", "aabb:aabb::0000/122", "aa00:0000::0000/10"
PEERV4_1, PEERV6_1 = "9.9.9.9:4444", "[aabb::ffff]:4444"
BAD_IPV4_1, BAD_IPV6_1 = "999.999.999.999", "xyz:::"
VALUE63, VALUE64 = "x" * 63, "x" * 64
MAX_ANNOTATIONS = 256 * (1 << 10)
MAX_NAME = 253
SECRET = {"secretKeyRef": {"name": "test-secret", "key": "bgp-password"}}

CASES: list = []


def S(desc, struct, value, valid):
    """An entry whose Go value is one struct (not a whole resource)."""
    CASES.append((desc, ("struct", struct), value, valid))


def R(desc, kind, meta, spec, valid):
    """An entry whose Go value is a whole resource; ``meta`` is the name or the metadata."""
    if isinstance(meta, str):
        meta = {"name": meta}
    CASES.append((desc, ("resource", kind), {"metadata": meta, "spec": spec}, valid))


def rule(**kw):
    return dict(kw)


def allow(**kw):
    return dict(action="Allow", **kw)


def FC(desc, spec, valid):
    S(desc, "FelixConfigurationSpec", spec, valid)


# --------------------------------------------------------------------------------------
# (API) Actions.
S("should accept allow action", "Rule", {"action": "Allow"}, True)
S("should accept deny action", "Rule", {"action": "Deny"}, True)
S("should accept log action", "Rule", {"action": "Log"}, True)
S("should reject unknown action", "Rule", {"action": "unknown"}, False)
S("should reject unknown action", "Rule", {"action": "allowfoo"}, False)
S("should reject rule with no action", "Rule", {}, False)

# (API model) EndpointPorts (the WorkloadEndpoint's port type).
S("should accept EndpointPort with tcp protocol", "WorkloadEndpointPort",
  {"name": "a-valid-port", "protocol": "TCP", "port": 1234}, True)
S("should accept EndpointPort with udp protocol", "WorkloadEndpointPort",
  {"name": "a-valid-port", "protocol": "UDP", "port": 1234}, True)
S("should accept EndpointPort with sctp protocol", "WorkloadEndpointPort",
  {"name": "a-valid-port", "protocol": "SCTP", "port": 1234}, True)
S("should reject EndpointPort with empty name", "WorkloadEndpointPort",
  {"name": "", "protocol": "UDP", "port": 1234}, False)
S("should accept EndpointPort with empty name but HostPort specified", "WorkloadEndpointPort",
  {"name": "", "protocol": "UDP", "port": 1234, "hostPort": 2345}, True)
S("should reject EndpointPort with no protocol", "WorkloadEndpointPort",
  {"name": "a-valid-port", "port": 1234}, False)
S("should reject EndpointPort with numeric protocol", "WorkloadEndpointPort",
  {"name": "a-valid-port", "protocol": 123, "port": 1234}, False)
S("should reject EndpointPort with no port", "WorkloadEndpointPort",
  {"name": "a-valid-port", "protocol": "TCP"}, False)

# (API) WorkloadEndpointSpec.
WEP_PORT = {"name": "a-valid-port", "protocol": "TCP", "port": 1234}
S("should accept WorkloadEndpointSpec with a port (m)", "WorkloadEndpointSpec",
  {"interfaceName": "eth0", "ports": [WEP_PORT]}, True)
S("should reject WorkloadEndpointSpec with an unnamed port and no host mapping (m)", "WorkloadEndpointSpec",
  {"interfaceName": "eth0", "ports": [{"protocol": "TCP", "port": 1234}]}, False)
S("should accept WorkloadEndpointSpec with name-clashing ports (m)", "WorkloadEndpointSpec",
  {"interfaceName": "eth0", "ports": [WEP_PORT, {"name": "a-valid-port", "protocol": "UDP", "port": 5456}]}, True)
S("should accept WorkloadEndpointSpec with an unnamed port and a host port (m)", "WorkloadEndpointSpec",
  {"interfaceName": "eth0", "ports": [{"protocol": "TCP", "port": 1234, "hostPort": 2345}]}, True)
S("should reject WorkloadEndpointSpec with a port with an invalid host IP (m)", "WorkloadEndpointSpec",
  {"interfaceName": "eth0", "ports": [{"protocol": "TCP", "port": 1234, "hostPort": 2345, "hostIP": BAD_IPV4_1}]},
  False)
S("should reject WorkloadEndpointSpec with an invalid source spoofing config (m)", "WorkloadEndpointSpec",
  {"interfaceName": "eth0", "allowSpoofedSourcePrefixes": ["10.abcd"]}, False)
S("should accept WorkloadEndpointSpec with an ip or prefix in the source spoofing config (m)", "WorkloadEndpointSpec",
  {"interfaceName": "eth0", "allowSpoofedSourcePrefixes": ["10.0.0.1", "192.168.0.0/16"]}, True)

# (API) HostEndpointSpec.
HEP_PORT = {"name": "a-valid-port", "protocol": "TCP", "port": 1234}
S("should accept HostEndpointSpec with a port (m)", "HostEndpointSpec",
  {"interfaceName": "eth0", "ports": [HEP_PORT], "node": "node01"}, True)
S("should reject HostEndpointSpec with an unnamed port (m)", "HostEndpointSpec",
  {"interfaceName": "eth0", "ports": [{"protocol": "TCP", "port": 1234}], "node": "node01"}, False)
S("should reject HostEndpointSpec with a missing node", "HostEndpointSpec",
  {"interfaceName": "eth0", "ports": [HEP_PORT]}, False)
S("should accept HostEndpointSpec with name-clashing ports (m)", "HostEndpointSpec",
  {"interfaceName": "eth0", "ports": [HEP_PORT, {"name": "a-valid-port", "protocol": "UDP", "port": 5456}],
   "node": "node01"}, True)
S("should accept HostEndpointSpec with interfaceName *", "HostEndpointSpec",
  {"interfaceName": "*", "node": "node01"}, True)

# Network sets.
S("should accept GlobalNetworkSetSpec with CIDRs and IPs", "GlobalNetworkSetSpec",
  {"nets": ["10.0.0.1", "11.0.0.0/8", "dead:beef::", "dead:beef::/96"]}, True)
S("should reject GlobalNetworkSetSpec with bad CIDR", "GlobalNetworkSetSpec", {"nets": ["garbage"]}, False)
R("should accept GlobalNetworkSet with labels", "GlobalNetworkSet",
  {"name": "testset", "labels": {"a": "b"}}, {"nets": ["10.0.0.1"]}, True)
R("should reject GlobalNetworkSet with reserved labels", "GlobalNetworkSet",
  {"name": "testset", "labels": {"projectcalico.org/namespace": "foo"}}, {"nets": ["10.0.0.1"]}, False)
R("should reject GlobalNetworkSet with bad name", "GlobalNetworkSet", "test$set", {"nets": ["10.0.0.1"]}, False)
S("should accept NetworkSetSpec with CIDRs and IPs", "NetworkSetSpec",
  {"nets": ["10.0.0.1", "11.0.0.0/8", "dead:beef::", "dead:beef::/96"]}, True)
S("should reject NetworkSetSpec with bad CIDR", "NetworkSetSpec", {"nets": ["garbage"]}, False)
R("should accept NetworkSet with labels", "NetworkSet",
  {"name": "testset", "labels": {"a": "b"}}, {"nets": ["10.0.0.1"]}, True)
R("should reject NetworkSet with reserved labels", "NetworkSet",
  {"name": "testset", "labels": {"projectcalico.org/namespace": "foo"}}, {"nets": ["10.0.0.1"]}, False)
R("should reject NetworkSet with bad name", "NetworkSet", "test$set", {"nets": ["10.0.0.1"]}, False)

# BGPConfigurationSpec.
S("should accept a valid BGP logging level: Info", "BGPConfigurationSpec", {"logSeverityScreen": "Info"}, True)
S("should reject an invalid BGP logging level: info", "BGPConfigurationSpec", {"logSeverityScreen": "info"}, False)
S("should reject an invalid BGP logging level: INFO", "BGPConfigurationSpec", {"logSeverityScreen": "INFO"}, False)
S("should reject an invalid BGP logging level: invalidLvl", "BGPConfigurationSpec",
  {"logSeverityScreen": "invalidLvl"}, False)
S("should accept a valid BGP clusterIPs: 1.2.3.4", "BGPConfigurationSpec",
  {"serviceClusterIPs": [{"cidr": "1.2.3.4"}]}, True)
S("should accept a valid BGP externalIPs: 8.8.8.8", "BGPConfigurationSpec",
  {"serviceExternalIPs": [{"cidr": "8.8.8.8"}]}, True)
S("should reject invalid BGP clusterIPs: x.x.x.x", "BGPConfigurationSpec",
  {"serviceClusterIPs": [{"cidr": "x.x.x.x"}]}, False)
S("should reject invalid BGP externalIPs: x.x.x.x", "BGPConfigurationSpec",
  {"serviceExternalIPs": [{"cidr": "y.y.y.y"}]}, False)
S("should accept valid IPv6 BGP clusterIP", "BGPConfigurationSpec",
  {"serviceClusterIPs": [{"cidr": "fdf5:1234::102:304"}]}, True)
S("should accept valid IPv6 BGP externalIP", "BGPConfigurationSpec",
  {"serviceExternalIPs": [{"cidr": "fdf5:1234::808:808"}]}, True)
S("should accept a node mesh BGP password if node to node mesh is enabled", "BGPConfigurationSpec",
  {"nodeToNodeMeshEnabled": True, "nodeMeshPassword": SECRET}, True)
S("should reject a node mesh BGP password if node to node mesh is disabled", "BGPConfigurationSpec",
  {"nodeToNodeMeshEnabled": False, "nodeMeshPassword": SECRET}, False)
S("should accept a node mesh max restart time if node to node mesh is enabled", "BGPConfigurationSpec",
  {"nodeToNodeMeshEnabled": True, "nodeMeshMaxRestartTime": "3m20s"}, True)
S("should reject a node mesh max restart time if node to node mesh is disabled", "BGPConfigurationSpec",
  {"nodeToNodeMeshEnabled": False, "nodeMeshMaxRestartTime": "3m20s"}, False)
S("should accept valid interface names", "BGPConfigurationSpec",
  {"ignoredInterfaces": ["valid_iface*", "interface_name"]}, True)
S("should reject invalid interface name", "BGPConfigurationSpec", {"ignoredInterfaces": ["*"]}, False)

# (API) IP version.
S("should accept IP version 4", "Rule", allow(ipVersion=4), True)
S("should accept IP version 6", "Rule", allow(ipVersion=6), True)
S("should reject IP version 0", "Rule", allow(ipVersion=0), False)

# (API) ProtoPort.
S("should accept ProtoPort.Protocol: UDP", "ProtoPort", {"protocol": "UDP", "port": 0}, True)
S("should accept ProtoPort.Protocol: TCP", "ProtoPort", {"protocol": "TCP", "port": 20}, True)
S("should accept ProtoPort.Protocol: SCTP", "ProtoPort", {"protocol": "SCTP", "port": 20}, True)
S("should reject random ProtoPort.Protocol", "ProtoPort", {"protocol": "jolly-UDP", "port": 0}, False)

# (API) Selectors.
S("should accept valid selector", "EntityRule", {"selector": 'foo == "bar"'}, True)
S("should accept valid selector with 'has' and a '/'", "EntityRule", {"selector": "has(calico/k8s_ns)"}, True)
S("should accept valid selector with 'has' and two '/'", "EntityRule", {"selector": "has(calico/k8s_ns/role)"}, True)
S("should accept valid selector with 'has' and two '/' and '-.'", "EntityRule",
  {"selector": "has(calico/k8s_NS-.1/role)"}, True)
S("should reject invalid selector", "EntityRule", {"selector": "thing=hello &"}, False)

# (API) Labels and Annotations.
S("should accept a valid labelsToApply", "ProfileSpec",
  {"labelsToApply": {"project.calico.org/my-valid-label": VALUE63}}, True)
S("should reject an excessively long value in labelsToApply", "ProfileSpec",
  {"labelsToApply": {"project.calico.org/my-valid-label": VALUE64}}, False)
S("should reject . at start of key in a labelsToApply", "ProfileSpec", {"labelsToApply": {".mylabel": "value"}}, False)
S("should reject ! in a labelsToApply", "ProfileSpec", {"labelsToApply": {"my!nvalid-label": "value"}}, False)
S("should reject $ in a labelsToApply", "ProfileSpec", {"labelsToApply": {"my-invalid-label$": "value"}}, False)
POOL = {"cidr": NETV4_3}
R("should accept valid labels in metadata", "IPPool",
  {"name": "pool.name", "labels": {"projectcalico.org/label": VALUE63}}, POOL, True)
R("should reject an excessively long value in labels in metadata", "IPPool",
  {"name": "pool.name", "labels": {"projectcalico.org/label": VALUE64}}, POOL, False)
R("should reject invalid labels in metadata (uppercase domain)", "IPPool",
  {"name": "pool.name", "labels": {"ProjectCalico.org/label": "value"}}, POOL, False)
R("should accept valid labels in metadata (uppercase name)", "IPPool",
  {"name": "pool.name", "labels": {"projectcalico.org/Label": "value"}}, POOL, True)
R("should reject invalid annotations in metadata", "IPPool",
  {"name": "pool.name", "annotations": {"projectcalico.org$label": "value"}}, POOL, False)
R("should accept valid annotations in metadata (uppercase domain and name)", "IPPool",
  {"name": "pool.name", "annotations": {"ProjectCalico.org/Label": "value"}}, POOL, True)
R("should reject invalid annotations in metadata", "IPPool",
  {"name": "pool.name", "annotations": {"projectcalico.org$label": "value"}}, POOL, False)
R("should allow annotations in metadata <= 256k", "IPPool",
  {"name": "pool.name", "annotations": {"key": "x" * (MAX_ANNOTATIONS - 3)}}, POOL, True)
R("should disallow annotations in metadata > 256k", "IPPool",
  {"name": "pool.name", "annotations": {"key": "x" * (MAX_ANNOTATIONS - 2)}}, POOL, False)
R("should allow a name of 253 chars", "IPPool", "x" * MAX_NAME, POOL, True)
R("should disallow a name of 254 chars", "IPPool", "x" * (MAX_NAME + 1), POOL, False)
R("should allow a valid nodeSelector", "IPPool", "pool.name", {"cidr": NETV4_3, "nodeSelector": 'foo == "bar"'}, True)
R("should disallow a invalid nodeSelector", "IPPool", "pool.name",
  {"cidr": NETV4_3, "nodeSelector": "this is not valid selector syntax"}, False)

# (API) Interface.
S("should accept a valid interface", "WorkloadEndpointSpec", {"interfaceName": "Valid_Iface.0-9"}, True)
S("should reject an interface that is too long", "WorkloadEndpointSpec", {"interfaceName": "interfaceTooLong"}, False)
S("should reject & in an interface", "WorkloadEndpointSpec", {"interfaceName": "Invalid&Intface"}, False)
S("should reject # in an interface", "WorkloadEndpointSpec", {"interfaceName": "Invalid#Intface"}, False)
S("should reject : in an interface", "WorkloadEndpointSpec", {"interfaceName": "Invalid:Intface"}, False)

# (API) FelixConfiguration.
FC("should accept a valid IptablesBackend value 'Legacy'", {"iptablesBackend": "Legacy"}, True)
FC("should accept a valid IptablesBackend value 'NFT'", {"iptablesBackend": "NFT"}, True)
FC("should accept a valid IptablesBackend value 'Auto'", {"iptablesBackend": "Auto"}, True)
FC("should reject an invalid IptablesBackend value 'badVal'", {"iptablesBackend": "badVal"}, False)
FC("should accept a valid DefaultEndpointToHostAction value", {"defaultEndpointToHostAction": "Drop"}, True)
FC("should reject an invalid DefaultEndpointToHostAction value 'drop' (lower case)",
   {"defaultEndpointToHostAction": "drop"}, False)
FC("should accept a valid IptablesFilterAllowAction value 'Accept'", {"iptablesFilterAllowAction": "Accept"}, True)
FC("should accept a valid IptablesMangleAllowAction value 'Return'", {"iptablesMangleAllowAction": "Return"}, True)
FC("should reject an invalid IptablesMangleAllowAction value 'Drop'", {"iptablesMangleAllowAction": "Drop"}, False)
FC("should accept a valid IptablesFilterDenyAction value 'Drop'", {"iptablesFilterDenyAction": "Drop"}, True)
FC("should accept a valid IptablesFilterDenyAction value 'Reject'", {"iptablesFilterDenyAction": "Reject"}, True)
FC("should accept a valid KubeNodePortRanges value",
   {"kubeNodePortRanges": ["3000:4000", "5000:6000", "7000:8000", "8000:9000", "10000:11000", "12000:13000", 15000]},
   True)
FC("should reject a too-long KubeNodePortRanges value",
   {"kubeNodePortRanges": ["3000:4000", "5000:6000", "7000:8000", "8000:9000", "10000:11000", "12000:13000",
                           "14000:15000", "16000:17000"]}, False)
FC("should reject a named port KubeNodePortRanges value", {"kubeNodePortRanges": ["testport"]}, False)
FC("should accept a valid list of ExternalNodesCIDRList", {"externalNodesList": ["1.1.1.1", "1.1.1.2/32", "1.1.3.0/23"]},
   True)
FC("should reject an invalid list of ExternalNodesCIDRList", {"externalNodesList": ["foobar", "1.1.1.1"]}, False)
FC("should reject IPv6 list of ExternalNodesCIDRList", {"externalNodesList": ["abcd::1", "abef::2/128"]}, False)
FC("should accept aan empty OpenStackRegion", {"openstackRegion": ""}, True)
FC("should accept a valid OpenStackRegion", {"openstackRegion": "foo"}, True)
FC("should reject an invalid OpenStackRegion", {"openstackRegion": "FOO"}, False)
FC("should reject an overlong OpenStackRegion",
   {"openstackRegion": "my-region-has-a-very-long-and-extremely-interesting-name"}, False)
FC("should reject an invalid LogSeverityScreen value 'badVal'", {"logSeverityScreen": "badVal"}, False)
FC("should reject an invalid LogSeverityFile value 'badVal'", {"logSeverityFile": "badVal"}, False)
FC("should reject an invalid LogSeveritySys value 'badVal'", {"logSeveritySys": "badVal"}, False)
FC("should reject an invalid LogSeveritySys value 'Critical'", {"logSeveritySys": "Critical"}, False)
FC("should accept a valid LogSeverityScreen value 'Fatal'", {"logSeverityScreen": "Fatal"}, True)
FC("should accept a valid LogSeverityScreen value 'Warning'", {"logSeverityScreen": "Warning"}, True)
FC("should accept a valid LogSeverityScreen value 'Trace'", {"logSeverityScreen": "Trace"}, True)
FC("should accept a valid LogSeverityFile value 'Debug'", {"logSeverityFile": "Debug"}, True)
FC("should accept a valid LogSeveritySys value 'Info'", {"logSeveritySys": "Info"}, True)
FC("should accept a valid LogSeveritySys value 'Trace'", {"logSeveritySys": "Trace"}, True)
FC("should accept a valid IptablesNATOutgoingInterfaceFilter value 'cali-123'",
   {"iptablesNATOutgoingInterfaceFilter": "cali-123"}, True)
FC("should reject an invalid IptablesNATOutgoingInterfaceFilter value 'cali@123'",
   {"iptablesNATOutgoingInterfaceFilter": "cali@123"}, False)
FC("should reject an invalid BPFLogLevel value 'badVal'", {"bpfLogLevel": "badVal"}, False)
FC("should accept a valid BPFLogLevel value 'Info'", {"bpfLogLevel": "Info"}, True)
FC("should accept a valid BPFLogLevel value 'Debug'", {"bpfLogLevel": "Debug"}, True)
FC("should accept a valid BPFLogLevel value 'Off'", {"bpfLogLevel": "Off"}, True)
FC("should reject a valid BPFExternalServiceMode value 'Foo'", {"bpfExternalServiceMode": "Foo"}, False)
FC("should accept a valid BPFExternalServiceMode value 'Tunnel'", {"bpfExternalServiceMode": "Tunnel"}, True)
FC("should accept a valid BPFExternalServiceMode value 'DSR'", {"bpfExternalServiceMode": "DSR"}, True)
FC("should reject a negative BPFExtToServiceConnmark value", {"bpfExtToServiceConnmark": -1}, False)
FC("should reject a gte 32bit BPFExtToServiceConnmark value", {"bpfExtToServiceConnmark": 0x100000000}, False)
FC("should accept a zero BPFExtToServiceConnmark value", {"bpfExtToServiceConnmark": 0}, True)
FC("should accept a 0xffffffff BPFExtToServiceConnmark value", {"bpfExtToServiceConnmark": 0xffffffff}, True)
FC("should reject an invalid BPFDataIfacePattern value '*'", {"bpfDataIfacePattern": "*"}, False)
FC("should accept a valid BPFDataIfacePattern value 'eth.*'", {"bpfDataIfacePattern": "eth.*"}, True)
FC("should accept valid route table range", {"routeTableRange": {"min": 1, "max": 250}}, True)
FC("should reject route table range min too small", {"routeTableRange": {"min": 0, "max": 250}}, False)
FC("should reject route table range min negative", {"routeTableRange": {"min": -5, "max": 250}}, False)
FC("should reject route table range max < min", {"routeTableRange": {"min": 50, "max": 45}}, False)
FC("should reject route table range max too large", {"routeTableRange": {"min": 1, "max": 253}}, False)
FC("should accept route table range with min == max", {"routeTableRange": {"min": 8, "max": 8}}, True)
FC("should accept valid route table ranges", {"routeTableRanges": [{"min": 1, "max": 10000}]}, True)
FC("should accept route table ranges with min == max", {"routeTableRanges": [{"min": 8, "max": 8}]}, True)
FC("should accept multiple route table ranges with min == max",
   {"routeTableRanges": [{"min": 8, "max": 8}, {"min": 7, "max": 7}]}, True)
FC("should reject route table ranges min too small", {"routeTableRanges": [{"min": 0, "max": 250}]}, False)
FC("should reject route table ranges min negative", {"routeTableRanges": [{"min": -5, "max": 250}]}, False)
FC("should reject route table ranges max < min", {"routeTableRanges": [{"min": 50, "max": 45}]}, False)
FC("should reject route table ranges max too large", {"routeTableRanges": [{"min": 1, "max": 0xf00000000}]}, False)
FC("should reject single route table ranges targeting too many tables",
   {"routeTableRanges": [{"min": 1, "max": 0x10000}]}, False)
FC("should reject multiple route table ranges targeting too many tables",
   {"routeTableRanges": [{"min": 1, "max": 2}, {"min": 3, "max": 4}, {"min": 5, "max": 0x10000}]}, False)
FC("should reject spec with both RouteTableRanges and RouteTableRange set",
   {"routeTableRanges": [{"min": 1, "max": 250}], "routeTableRange": {"min": 1, "max": 250}}, False)
FC("should reject an invalid MTUIfacePattern value '*'", {"mtuIfacePattern": "*"}, False)
FC("should accept a valid MTUIfacePattern value 'eth.*'", {"mtuIfacePattern": "eth.*"}, True)
FC("should allow HealthTimeoutOverride 0", {"healthTimeoutOverrides": [{"name": "Valid", "timeout": "0s"}]}, True)
FC("should reject HealthTimeoutOverride -1", {"healthTimeoutOverrides": [{"name": "Valid", "timeout": "-1ns"}]}, False)
FC("should reject HealthTimeoutOverride with bad name", {"healthTimeoutOverrides": [{"name": "%", "timeout": "10ns"}]},
   False)
FC("should reject HealthTimeoutOverride with no name", {"healthTimeoutOverrides": [{"name": "", "timeout": "10ns"}]},
   False)
FC("invalid route priority 0", {"ipv4ElevatedRoutePriority": 0}, False)
FC("valid route priority 1", {"ipv4ElevatedRoutePriority": 1}, True)
FC("valid route priority 10000", {"ipv4ElevatedRoutePriority": 10000}, True)
FC("valid route priority 2147483646", {"ipv4ElevatedRoutePriority": 2147483646}, True)
FC("invalid route priority 2147483647", {"ipv4ElevatedRoutePriority": 2147483647}, False)

# (API) Protocol: a numorstring.Protocol on its own, here as a rule's protocol.
for _desc, _proto, _ok in [
    ("should accept protocol TCP", "TCP", True), ("should accept protocol UDP", "UDP", True),
    ("should accept protocol ICMP", "ICMP", True), ("should accept protocol ICMPv6", "ICMPv6", True),
    ("should accept protocol SCTP", "SCTP", True), ("should accept protocol UDPLite", "UDPLite", True),
    ("should accept protocol 1 as int", 1, True), ("should accept protocol 255 as int", 255, True),
    ("should accept protocol 255 as string", "255", True), ("should accept protocol 1 as string", "1", True),
    ("should reject protocol 0 as int", 0, False), ("should reject protocol 256 as string", "256", False),
    ("should reject protocol 0 as string", "0", False), ("should reject protocol tcpfoo", "tcpfoo", False),
    ("should reject protocol footcp", "footcp", False), ("should reject protocol tcp", "tcp", False),
]:
    S(_desc, "Rule", allow(protocol=_proto), _ok)

# (API) IPNAT
S("should accept valid IPNAT IPv4", "IPNAT", {"internalIP": IPV4_1, "externalIP": IPV4_2}, True)
S("should accept valid IPNAT IPv6", "IPNAT", {"internalIP": IPV6_1, "externalIP": IPV6_2}, True)
S("should reject IPNAT mixed IPv4 (int) and IPv6 (ext)", "IPNAT", {"internalIP": IPV4_1, "externalIP": IPV6_1}, False)
S("should reject IPNAT mixed IPv6 (int) and IPv4 (ext)", "IPNAT", {"internalIP": IPV6_1, "externalIP": IPV4_1}, False)

# (API) WorkloadEndpointSpec
IFACE = "cali012371237"
S("should accept workload endpoint with interface only", "WorkloadEndpointSpec", {"interfaceName": IFACE}, True)
S("should accept workload endpoint with networks and no nats", "WorkloadEndpointSpec",
  {"interfaceName": IFACE, "ipNetworks": [NETV4_1, NETV4_2, NETV6_1, NETV6_2]}, True)
S("should accept workload endpoint with IPv4 NAT covered by network", "WorkloadEndpointSpec",
  {"interfaceName": IFACE, "ipNetworks": [NETV4_1], "ipNATs": [{"internalIP": IPV4_1, "externalIP": IPV4_2}]}, True)
S("should accept workload endpoint with IPv6 NAT covered by network", "WorkloadEndpointSpec",
  {"interfaceName": IFACE, "ipNetworks": [NETV6_1], "ipNATs": [{"internalIP": IPV6_1, "externalIP": IPV6_2}]}, True)
S("should accept workload endpoint with IPv4 and IPv6 NAT covered by network", "WorkloadEndpointSpec",
  {"interfaceName": IFACE, "ipNetworks": [NETV4_1, NETV6_1],
   "ipNATs": [{"internalIP": IPV4_1, "externalIP": IPV4_2}, {"internalIP": IPV6_1, "externalIP": IPV6_2}]}, True)
S("should accept workload endpoint with mixed-case ContainerID", "WorkloadEndpointSpec",
  {"interfaceName": IFACE, "containerID": "Cath01234-G"}, True)
S("should reject workload endpoint with no config", "WorkloadEndpointSpec", {}, False)
S("should reject workload endpoint with IPv4 networks that contain >1 address", "WorkloadEndpointSpec",
  {"interfaceName": IFACE, "ipNetworks": [NETV4_3]}, False)
S("should reject workload endpoint with IPv6 networks that contain >1 address", "WorkloadEndpointSpec",
  {"interfaceName": IFACE, "ipNetworks": [NETV6_3]}, False)
S("should reject workload endpoint with nats and no networks", "WorkloadEndpointSpec",
  {"interfaceName": IFACE, "ipNATs": [{"internalIP": IPV4_2, "externalIP": IPV4_1}]}, False)
S("should reject workload endpoint with IPv4 NAT not covered by network", "WorkloadEndpointSpec",
  {"interfaceName": IFACE, "ipNetworks": [NETV4_1], "ipNATs": [{"internalIP": IPV4_2, "externalIP": IPV4_1}]}, False)
S("should reject workload endpoint with IPv6 NAT not covered by network", "WorkloadEndpointSpec",
  {"interfaceName": IFACE, "ipNetworks": [NETV6_1], "ipNATs": [{"internalIP": IPV6_2, "externalIP": IPV6_1}]}, False)
S("should reject workload endpoint containerID that starts with a dash", "WorkloadEndpointSpec",
  {"interfaceName": "cali0134", "containerID": "-abcdefg"}, False)
S("should reject workload endpoint containerID that ends with a dash", "WorkloadEndpointSpec",
  {"interfaceName": "cali0134", "containerID": "abcdeSg-"}, False)
S("should reject workload endpoint containerID that contains a period", "WorkloadEndpointSpec",
  {"interfaceName": "cali0134", "containerID": "abcde-j.g"}, False)

# (API) HostEndpointSpec
S("should accept host endpoint with interface and node", "HostEndpointSpec",
  {"interfaceName": "eth0", "node": "node01"}, True)
S("should accept host endpoint with expected IPs", "HostEndpointSpec",
  {"expectedIPs": [IPV4_1, IPV6_1], "node": "node01"}, True)
S("should accept host endpoint with interface and expected IPs", "HostEndpointSpec",
  {"interfaceName": "eth0", "expectedIPs": [IPV4_1, IPV6_1], "node": "node01"}, True)
S("should reject host endpoint with no config", "HostEndpointSpec", {}, False)
S("should reject host endpoint with blank interface an no IPs", "HostEndpointSpec",
  {"interfaceName": "", "expectedIPs": [], "node": "node01"}, False)
S("should accept host endpoint with prefixed profile name", "HostEndpointSpec",
  {"interfaceName": "eth0", "profiles": ["knp.default.fun", "knp.default.funner.11234-a"], "node": "node01"}, True)
S("should accept host endpoint without prefixed profile name", "HostEndpointSpec",
  {"interfaceName": "eth0", "profiles": ["fun-funner1234"], "node": "node01"}, True)
S("should reject host endpoint with no prefix and dots at the start of the name", "HostEndpointSpec",
  {"interfaceName": "eth0", "profiles": [".fun"], "node": "node01"}, False)

# (API) IPPool
R("should accept IP pool with IPv4 CIDR /26", "IPPool", "pool.name", {"cidr": NETV4_3}, True)
R("should accept IP pool with IPv4 CIDR /10", "IPPool", "pool.name", {"cidr": NETV4_4}, True)
R("should accept IP pool with IPv6 CIDR /122", "IPPool", "pool.name",
  {"cidr": NETV6_3, "ipipMode": "Never", "vxlanMode": "Never"}, True)
R("should accept IP pool with IPv6 CIDR /10", "IPPool", "pool.name",
  {"cidr": NETV6_4, "ipipMode": "Never", "vxlanMode": "Never"}, True)
R("should accept a disabled IP pool with IPv4 CIDR /27", "IPPool", "pool.name", {"cidr": NETV4_5, "disabled": True},
  True)
R("should accept a disabled IP pool with IPv6 CIDR /128", "IPPool", "pool.name",
  {"cidr": NETV6_1, "ipipMode": "Never", "vxlanMode": "Never", "disabled": True}, True)
R("should reject IP pool with IPv4 CIDR /27", "IPPool", "pool.name", {"cidr": NETV4_5}, False)
R("should reject IP pool with IPv6 CIDR /128", "IPPool", "pool.name", {"cidr": NETV6_1}, False)
R("should reject IP pool with IPv4 CIDR /33", "IPPool", "pool.name", {"cidr": "1.2.3.4/33"}, False)
R("should reject IP pool with IPv6 CIDR /129", "IPPool", "pool.name", {"cidr": "aa:bb::/129"}, False)
R("should reject IPIPMode 'Always' for IPv6 pool", "IPPool", "pool.name",
  {"cidr": NETV6_1, "ipipMode": "Always", "vxlanMode": "Never"}, False)
R("should reject VXLANMode 'Always' for IPv6 pool", "IPPool", "pool.name",
  {"cidr": NETV6_1, "vxlanMode": "Always", "ipipMode": "Never"}, False)
R("should reject IPv4 pool with a CIDR range overlapping with Link Local range", "IPPool", "pool.name",
  {"cidr": "169.254.5.0/24"}, False)
R("should reject IPv6 pool with a CIDR range overlapping with Link Local range", "IPPool", "pool.name",
  {"cidr": "fe80::/120"}, False)
R("should accept IP pool with valid allowed uses", "IPPool", "pool.name",
  {"cidr": NETV4_4, "allowedUses": ["Workload", "Tunnel"]}, True)
R("should reject IP pool with invalid allowed uses combination", "IPPool", "pool.name",
  {"cidr": NETV4_4, "allowedUses": ["LoadBalancer", "Tunnel"]}, False)
R("should reject IP pool with invalid allowed uses", "IPPool", "pool.name",
  {"cidr": NETV4_4, "allowedUses": ["Garbage"]}, False)
R("should accept IP pool with valid AssignmentMode", "IPPool", "pool.name",
  {"cidr": NETV4_4, "assignmentMode": "Automatic"}, True)
R("should reject IP pool with invalid assignment mode", "IPPool", "pool.name",
  {"cidr": NETV4_4, "assignmentMode": ""}, False)
R("should reject IP pool with LoadBlancer and disableBGPExport true", "IPPool", "pool.name",
  {"cidr": NETV4_4, "allowedUses": ["LoadBalancer"], "disableBGPExport": True}, False)
R("should reject IP pool with LoadBlancer and VXLAN mode enabled", "IPPool", "pool.name",
  {"cidr": NETV4_4, "allowedUses": ["LoadBalancer"], "vxlanMode": "Always"}, False)
R("should reject IP pool with LoadBlancer and IPIP mode enabled", "IPPool", "pool.name",
  {"cidr": NETV4_4, "allowedUses": ["LoadBalancer"], "ipipMode": "Always"}, False)
R("should reject IP pool with LoadBlancer and nodeSelector other than all()", "IPPool", "pool.name",
  {"cidr": NETV4_4, "allowedUses": ["LoadBalancer"], "nodeSelector": "!all()"}, False)
R("should reject IP pool with Tunnel allowedUse and namespaceSelector", "IPPool", "pool.name",
  {"cidr": NETV4_4, "allowedUses": ["Tunnel"], "namespaceSelector": 'region == "east"'}, False)
R("should reject IP pool with Tunnel and Workload allowedUses and namespaceSelector", "IPPool", "pool.name",
  {"cidr": NETV4_4, "allowedUses": ["Workload", "Tunnel"], "namespaceSelector": 'region == "east"'}, False)
R("should accept IP pool with Tunnel allowedUse and no namespaceSelector", "IPPool", "pool.name",
  {"cidr": NETV4_4, "allowedUses": ["Tunnel"]}, True)
R("should reject IP pool with invalid nodeSelector (global)", "IPPool", "pool.name",
  {"cidr": NETV4_4, "nodeSelector": "global()"}, False)
R("should accept IP pool with valid nodeSelector", "IPPool", "pool.name",
  {"cidr": NETV4_4, "nodeSelector": 'region == "east"'}, True)
R("should accept IP pool with complex nodeSelector", "IPPool", "pool.name",
  {"cidr": NETV4_4, "nodeSelector": 'region == "east" && environment == "production"'}, True)
R("should accept IP pool with set-based nodeSelector", "IPPool", "pool.name",
  {"cidr": NETV4_4, "nodeSelector": 'region in {"east", "west"}'}, True)
R("should accept IP pool with existence check nodeSelector", "IPPool", "pool.name",
  {"cidr": NETV4_4, "nodeSelector": "has(team)"}, True)
R("should accept IP pool with all() nodeSelector", "IPPool", "pool.name", {"cidr": NETV4_4, "nodeSelector": "all()"},
  True)
R("should reject IP pool with invalid namespaceSelector (global)", "IPPool", "pool.name",
  {"cidr": NETV4_4, "namespaceSelector": "global()"}, False)
R("should accept IP pool with valid namespaceSelector", "IPPool", "pool.name",
  {"cidr": NETV4_4, "namespaceSelector": 'region == "east"'}, True)
R("should accept IP pool with complex namespaceSelector", "IPPool", "pool.name",
  {"cidr": NETV4_4, "namespaceSelector": 'team == "backend" || team == "frontend"'}, True)
R("should accept IP pool with substring namespaceSelector", "IPPool", "pool.name",
  {"cidr": NETV4_4, "namespaceSelector": 'environment contains "prod"'}, True)

# (API) IPReservation
R("should accept IPReservation with an IP", "IPReservation", "ip-reservation.name", {"reservedCIDRs": ["10.0.0.1"]},
  True)
R("should accept IPReservation with a CIDR", "IPReservation", "ip-reservation.name",
  {"reservedCIDRs": ["10.0.1.0/24"]}, True)
R("should accept IPReservation IP and a CIDR", "IPReservation", "ip-reservation.name",
  {"reservedCIDRs": ["10.0.1.0/24", "192.168.0.34"]}, True)
R("should reject IPReservation with bad CIDR", "IPReservation", "ip-reservation.name",
  {"reservedCIDRs": ["garbage"]}, False)
R("should reject IPReservation with too-long CIDR", "IPReservation", "ip-reservation.name",
  {"reservedCIDRs": ["10.0.1.0/33"]}, False)
R("should accept IPReservation with an IPv6", "IPReservation", "ip-reservation.name",
  {"reservedCIDRs": ["10.0.0.1", "cafe::1", "cafe:f00d::/96"]}, True)

# (API) IPIPMode, VXLANMode
S("should accept IPPool with no IPIP mode specified", "IPPoolSpec", {"cidr": "1.2.3.0/24"}, True)
S("should accept IPIP mode Never (api)", "IPPoolSpec", {"cidr": "1.2.3.0/24", "ipipMode": "Never", "vxlanMode": "Never"},
  True)
S("should accept IPIP mode Never", "IPPoolSpec", {"cidr": "1.2.3.0/24", "ipipMode": "Never"}, True)
S("should accept IPIP mode Always", "IPPoolSpec", {"cidr": "1.2.3.0/24", "ipipMode": "Always"}, True)
S("should accept IPIP mode CrossSubnet", "IPPoolSpec", {"cidr": "1.2.3.0/24", "ipipMode": "CrossSubnet"}, True)
S("should reject IPIP mode badVal", "IPPoolSpec", {"cidr": "1.2.3.0/24", "ipipMode": "badVal"}, False)
S("should reject IPIP mode never (lower case)", "IPPoolSpec", {"cidr": "1.2.3.0/24", "ipipMode": "never"}, False)
S("should reject IPIP mode and VXLAN mode", "IPPoolSpec", {"cidr": "1.2.3.0/24", "ipipMode": "Always", "vxlanMode": "Always"},
  False)
S("should accept VXLAN mode Always", "IPPoolSpec", {"cidr": "1.2.3.0/24", "vxlanMode": "Always"}, True)
S("should accept VXLAN mode CrossSubnet", "IPPoolSpec", {"cidr": "1.2.3.0/24", "vxlanMode": "CrossSubnet"}, True)
S("should accept VXLAN mode Never ", "IPPoolSpec", {"cidr": "1.2.3.0/24", "vxlanMode": "Never"}, True)
S("should reject VXLAN mode never", "IPPoolSpec", {"cidr": "1.2.3.0/24", "vxlanMode": "never"}, False)
S("should reject VXLAN mode badVal", "IPPoolSpec", {"cidr": "1.2.3.0/24", "vxlanMode": "badVal"}, False)

# (API) ICMPFields
S("should accept ICMP with no config", "ICMPFields", {}, True)
S("should accept ICMP with type with min value", "ICMPFields", {"type": 0}, True)
S("should accept ICMP with type with max value", "ICMPFields", {"type": 254}, True)
S("should accept ICMP with type and code with min value", "ICMPFields", {"type": 128, "code": 0}, True)
S("should accept ICMP with type and code with min value", "ICMPFields", {"type": 128, "code": 255}, True)
S("should reject ICMP with code and no type", "ICMPFields", {"code": 0}, False)
S("should reject ICMP with type too high", "ICMPFields", {"type": 255}, False)
S("should reject ICMP with code too high", "ICMPFields", {"type": 128, "code": 256}, False)

# (API) Rule
S("should accept Rule with protocol SCTP and no other config", "Rule", allow(protocol="SCTP"), True)
S("should accept Rule with source ports and protocol type 6", "Rule", allow(protocol=6, source={"ports": [1]}), True)
S("should accept Rule with source named ports and protocol type 6", "Rule",
  allow(protocol=6, source={"ports": ["foo"]}), True)
S("should accept Rule with source named ports and protocol type tcp", "Rule",
  allow(protocol="TCP", source={"ports": ["foo"]}), True)
S("should accept Rule with source named ports and protocol type udp", "Rule",
  allow(protocol="UDP", source={"ports": ["foo"]}), True)
S("should accept Rule with empty source ports and protocol type 7", "Rule", allow(protocol=7, source={"ports": []}),
  True)
S("should accept Rule with source !ports and protocol type 17", "Rule", allow(protocol=17, source={"notPorts": [1]}),
  True)
S("should accept Rule with empty source !ports and protocol type 100", "Rule",
  allow(protocol=100, source={"notPorts": []}), True)
S("should accept Rule with dest ports and protocol type tcp", "Rule",
  allow(protocol="TCP", destination={"ports": [1]}), True)
S("should reject Rule with dest ports and no protocol", "Rule", allow(destination={"ports": [1]}), False)
S("should accept Rule with dest named ports and no protocol", "Rule", allow(destination={"ports": ["foo"]}), True)
S("should accept Rule with !source named ports and no protocol", "Rule", allow(source={"notPorts": ["foo"]}), True)
S("should reject Rule with invalid port (port 0)", "Rule", allow(protocol="TCP", destination={"notPorts": [0]}),
  False)
S("should reject Rule with invalid port (name + number)", "Rule", None, False)  # not expressible
S("should reject named port Rule with invalid protocol", "Rule",
  allow(protocol="unknown", destination={"notPorts": ["foo"]}), False)
S("should accept Rule with empty dest ports and protocol type SCTP", "Rule",
  allow(protocol="SCTP", destination={"ports": []}), True)
S("should accept Rule with empty dest !ports and protocol type ICMPv6", "Rule",
  allow(ipVersion=6, protocol="ICMPv6", destination={"notPorts": []}), True)
S("should reject Rule with icmp fields and no protocol", "Rule", allow(ipVersion=4, icmp={"type": 0}), False)
S("should not reject Rule with icmp fields and no ipversion", "Rule", allow(protocol="ICMP", icmp={"type": 0}), True)
S("should not reject Rule with icmpv6 fields and no ipversion", "Rule", allow(protocol="ICMPv6", icmp={"type": 0}),
  True)
S("should reject Rule with mismatched ipversion for icmp", "Rule", allow(protocol="ICMP", ipVersion=6), False)
S("should reject Rule with mismatched ipversion for icmpv6", "Rule", allow(protocol="ICMPv6", ipVersion=4), False)
S("should allow Rule with correct ipversion for icmp", "Rule", allow(ipVersion=4, protocol="ICMP", icmp={"type": 0}),
  True)
S("should allow Rule with correct ipversion for icmpv6", "Rule",
  allow(ipVersion=6, protocol="ICMPv6", icmp={"type": 0}), True)
S("should reject Rule with source ports and protocol type 7", "Rule", allow(protocol=7, source={"ports": [1]}), False)
S("should reject Rule with source !ports and protocol type 100", "Rule", allow(protocol=100, source={"notPorts": [1]}),
  False)
S("should allow Rule with dest ports and protocol type sctp", "Rule",
  allow(protocol="SCTP", destination={"ports": [1]}), True)
S("should reject Rule with dest !ports and protocol type udp", "Rule",
  allow(ipVersion=4, protocol="icmp", destination={"notPorts": [1]}), False)
S("should reject Rule with invalid source ports and protocol type tcp", "Rule",
  allow(protocol="TCP", source={"ports": ["200:100"]}), False)
S("should reject Rule with invalid source !ports and protocol type tcp", "Rule",
  allow(protocol="TCP", source={"notPorts": ["200:100"]}), False)
S("should reject Rule with invalid dest ports and protocol type tcp", "Rule",
  allow(protocol="TCP", destination={"ports": ["200:100"]}), False)
S("should reject Rule with invalid dest !ports and protocol type tcp", "Rule",
  allow(protocol="TCP", destination={"notPorts": ["200:100"]}), False)
S("should reject Rule with one invalid port in the port range (MinPort 0)", "Rule",
  allow(protocol="TCP", destination={"notPorts": ["0:100"]}), False)
for _prefix in ("", "net list: "):
    S(_prefix + "should reject rule mixed IPv4 (src) and IPv6 (dest)", "Rule",
      allow(protocol="TCP", source={"nets": [NETV4_3]}, destination={"nets": [NETV6_3]}), False)
    S(_prefix + "should reject rule mixed IPv6 (src) and IPv4 (dest)", "Rule",
      allow(protocol="TCP", source={"nets": [NETV6_2]}, destination={"nets": [NETV4_2]}), False)
    S(_prefix + "should reject rule mixed IPv6 version and IPv4 Net", "Rule",
      allow(protocol="TCP", ipVersion=6, source={"nets": [NETV4_4]}, destination={"nets": [NETV4_2]}), False)
    if _prefix:
        S(_prefix + "should reject rule mixed IPv6 version and IPv4 Net", "Rule",
          allow(protocol="TCP", ipVersion=6, source={"nets": [NETV4_4]}, destination={"notNets": [NETV4_2]}), False)
    S(_prefix + "should reject rule mixed IPVersion and Source Net IP version", "Rule",
      allow(protocol="TCP", ipVersion=6, source={"nets": [NETV4_1]}), False)
    S(_prefix + "should reject rule mixed IPVersion and Dest Net IP version", "Rule",
      allow(protocol="TCP", ipVersion=4, destination={"nets": [NETV6_1]}), False)
S("should reject rule with an IPv6 protocol and an IPVersion=4", "Rule", allow(protocol="ICMPv6", ipVersion=4), False)
S("should reject rule with an IPv4 protocol and an IPVersion=6", "Rule", allow(protocol="ICMP", ipVersion=6), False)
S("should accept Allow rule with HTTP clause", "Rule", allow(http={"methods": ["GET"]}), True)
S("should reject Deny rule with HTTP clause", "Rule", rule(action="Deny", http={"methods": ["GET"]}), False)
S("should reject non-TCP protocol with HTTP clause", "Rule", allow(protocol="UDP", http={"methods": ["GET"]}), False)
S("should accept TCP protocol with HTTP clause", "Rule", allow(protocol="TCP", http={"methods": ["GET"]}), True)
S("should accept missing protocol with HTTP clause", "Rule", allow(http={"methods": ["GET"]}), True)
S("should accept Rule with valid annotations", "Rule", allow(metadata={"annotations": {"foo": "bar"}}), True)
S("should reject Rule with invalid annotations", "Rule", allow(metadata={"annotations": {"...": "bar"}}), False)

# (API) BGPFilterSpec rules.
V4, V6 = "BGPFilterRuleV4", "BGPFilterRuleV6"
S("should reject invalid BGPFilter rule-v4 interface - 1", V4, {"interface": "eth&", "action": "Reject"}, False)
S("should reject invalid BGPFilter rule-v4 interface - 2", V4, {"interface": "%face", "action": "Reject"}, False)
S("should reject invalid BGPFilter rule-v4 interface - 3", V4, {"interface": '"ace', "action": "Reject"}, False)
S("should reject invalid BGPFilter rule-v6 interface - 1", V6, {"interface": "$cali", "action": "Reject"}, False)
S("should reject invalid BGPFilter rule-v6 interface - 2", V6, {"interface": "eth#", "action": "Reject"}, False)
S("should reject invalid BGPFilter rule-v6 interface - 3", V6, {"interface": '"face', "action": "Reject"}, False)
S("should accept valid BGPFilter rule-v4 interface - 1 ", V4,
  {"interface": "ethx", "source": "RemotePeers", "cidr": "192.168.0.0/26", "matchOperator": "In", "action": "Accept"},
  True)
S("should accept valid BGPFilter rule-v4 interface - 2", V4,
  {"interface": "*.calico", "cidr": "192.168.0.0/26", "matchOperator": "In", "action": "Accept"}, True)
S("should accept valid BGPFilter rule-v4 interface - 3", V4,
  {"interface": "eth*", "source": "RemotePeers", "action": "Accept"}, True)
S("should accept valid BGPFilter rule-v6 interface - 1", V6,
  {"interface": "ethx", "source": "RemotePeers", "cidr": "ffee::/64", "matchOperator": "In", "action": "Accept"}, True)
S("should accept valid BGPFilter rule-v6 interface - 2", V6,
  {"interface": "*.calico", "cidr": "ee2::dddd/128", "matchOperator": "In", "action": "Accept"}, True)
S("should accept valid BGPFilter rule-v6 interface - 3", V6,
  {"interface": "*.calico", "source": "RemotePeers", "action": "Accept"}, True)
S("should accept BGPFilter with only rule-v4 interface - 1 ", V4, {"interface": "ethx", "action": "Accept"}, True)
S("should accept BGPFilter with only rule-v4 interface - 2", V4, {"interface": "eth*", "action": "Accept"}, True)
S("should accept BGPFilter with only rule-v6 interface - 1", V6, {"interface": "ethx.", "action": "Accept"}, True)
S("should accept BGPFilter with only rule-v6 interface - 2", V6, {"interface": "*.calico", "action": "Accept"}, True)
S("should reject invalid BGPFilter rule-v4 source", V4, {"source": "xyz", "action": "Reject"}, False)
S("should reject invalid BGPFilter rule-v6 source", V6, {"source": "xyz", "action": "Reject"}, False)
S("should accept valid BGPFilter rule-v4 source", V4,
  {"source": "RemotePeers", "cidr": "192.168.0.0/26", "matchOperator": "In", "action": "Reject"}, True)
S("should accept valid BGPFilter rule-v6 source", V6,
  {"source": "RemotePeers", "cidr": "ffee::/64", "matchOperator": "In", "action": "Reject"}, True)
S("should accept BGPFilter rule with only source set - 1", V4, {"source": "RemotePeers", "action": "Reject"}, True)
S("should accept BGPFilter rule with only source set - 2", V6, {"source": "RemotePeers", "action": "Reject"}, True)
S("should accept BGPFilter rule with valid IPv4 CIDR", V4,
  {"cidr": "192.168.0.0/26", "matchOperator": "In", "action": "Accept"}, True)
S("should accept BGPFilter rule with valid IPv6 CIDR", V6,
  {"cidr": "ffee::/64", "matchOperator": "In", "action": "Accept"}, True)
S("should reject BGPFilter rule with invalid IPv4 CIDR - 1 ", V4,
  {"cidr": "x.x.x.x/26", "matchOperator": "In", "action": "Accept"}, False)
S("should reject BGPFilter rule with invalid IPv4 CIDR - 2", V4,
  {"cidr": "ffee::/64", "matchOperator": "In", "action": "Accept"}, False)
S("should reject BGPFilter rule with invalid IPv6 CIDR - 1", V6,
  {"cidr": "xxxx::/64", "matchOperator": "In", "action": "Accept"}, False)
S("should reject BGPFilter rule with invalid IPv6 CIDR - 2", V6,
  {"cidr": "10.0.10.0/32", "matchOperator": "In", "action": "Accept"}, False)
S("should reject BGPFilter rule with invalid operator - 1", V4,
  {"cidr": "10.0.10.0/32", "matchOperator": "fancyOperator", "action": "Accept"}, False)
S("should reject BGPFilter rule with invalid operator - 2", V6,
  {"cidr": "ffff::/128", "matchOperator": "fancyOperator", "action": "Accept"}, False)
for _op in ("In", "NotIn", "Equal", "NotEqual"):
    S(f"should accept BGPFilter rule with {_op} operator - 1", V4,
      {"cidr": "10.0.10.0/32", "matchOperator": _op, "action": "Accept"}, True)
    S(f"should accept BGPFilter rule with {_op} operator - 2", V6,
      {"cidr": "ffff::/128", "matchOperator": _op, "action": "Accept"}, True)
S("should reject BGPFilter rule with no CIDR when MatchOperator is set - 1", V4,
  {"matchOperator": "NotEqual", "action": "Reject"}, False)
S("should reject BGPFilter rule with no CIDR when MatchOperator is set - 2", V6,
  {"matchOperator": "NotEqual", "action": "Reject"}, False)
S("should reject BGPFilter rule with no MatchOperator when CIDR is set - 1", V4,
  {"cidr": "10.0.10.0/32", "action": "Reject"}, False)
S("should reject BGPFilter rule with no MatchOperator when CIDR is set - 2", V6,
  {"cidr": "ffff::/128", "action": "Reject"}, False)
S("should reject BGPFilter rule with invalid Action - 1", V4,
  {"cidr": "10.0.10.0/32", "matchOperator": "NotEqual", "action": "ActionX"}, False)
S("should reject BGPFilter rule with invalid action - 2", V6,
  {"cidr": "ffff::/128", "matchOperator": "NotEqual", "action": "ActionX"}, False)
for _act in ("Accept", "Reject"):
    S(f"should accept BGPFilter rule with {_act} action - 1", V4,
      {"cidr": "10.0.10.0/32", "matchOperator": "NotEqual", "action": _act}, True)
    S(f"should accept BGPFilter rule with {_act} action - 2", V6,
      {"cidr": "ffff::/128", "matchOperator": "NotEqual", "action": _act}, True)
S("should reject BGPFilter rule with no action - 1", V4, {"matchOperator": "NotEqual", "cidr": "10.0.10.0/32"}, False)
S("should reject BGPFilter rule with no action - 2", V6, {"matchOperator": "NotEqual", "cidr": "ffff::/128"}, False)
S("should accept BGPFilter rule with just an action - 1", V4, {"action": "Reject"}, True)
S("should accept BGPFilter rule with just an action - 2", V6, {"action": "Reject"}, True)
S("should accept BGPFilterV4 rule with PrefixLength Min set", V4,
  {"cidr": "10.0.10.0/24", "matchOperator": "In", "action": "Reject", "prefixLength": {"min": 25}}, True)
S("should accept BGPFilterV4 rule with PrefixLength Max set", V4,
  {"cidr": "10.0.10.0/24", "matchOperator": "In", "action": "Reject", "prefixLength": {"max": 30}}, True)
S("should reject BGPFilterV4 rule with PrefixLength Max is out-of-bounds", V4,
  {"cidr": "10.0.10.0/24", "matchOperator": "In", "action": "Reject", "prefixLength": {"max": 64}}, False)
S("should reject BGPFilterV4 rule with PrefixLength populated and CIDR missing", V4,
  {"interface": "ethx.", "action": "Reject", "prefixLength": {"min": 16}}, False)
S("should accept BGPFilterV6 rule with PrefixLength Min set", V6,
  {"cidr": "ffff::/128", "matchOperator": "In", "action": "Reject", "prefixLength": {"min": 65}}, True)
S("should accept BGPFilterV6 rule with PrefixLength Max set", V6,
  {"cidr": "ffff::/128", "matchOperator": "In", "action": "Reject", "prefixLength": {"max": 96}}, True)
S("should reject BGPFilterV6 rule with PrefixLength Min is negative", V6,
  {"cidr": "ffff::/128", "matchOperator": "In", "action": "Reject", "prefixLength": {"min": -16}}, False)
S("should reject BGPFilterV6 rule with PrefixLength populated and CIDR missing", V6,
  {"interface": "*.calico", "action": "Reject", "prefixLength": {"min": 120}}, False)

# (API) BGPFilterOperation
ADD = {"addCommunity": {"value": "65000:100"}}
PREPEND = {"prependASPath": {"prefix": [65000]}}
PRIO = {"setPriority": {"value": 256}}
S("should accept BGPFilterOperation with AddCommunity set", "BGPFilterOperation", ADD, True)
S("should accept BGPFilterOperation with PrependASPath set", "BGPFilterOperation", PREPEND, True)
S("should accept BGPFilterOperation with SetPriority set", "BGPFilterOperation", PRIO, True)
S("should reject BGPFilterOperation with no fields set", "BGPFilterOperation", {}, False)
S("should reject BGPFilterOperation with two fields set", "BGPFilterOperation", {**ADD, **PRIO}, False)
S("should reject BGPFilterOperation with all fields set", "BGPFilterOperation", {**ADD, **PREPEND, **PRIO}, False)
S("should accept BGPFilterRuleV4 with single operation", V4, {"action": "Accept", "operations": [PRIO]}, True)
S("should accept BGPFilterRuleV4 with multiple operations", V4, {"action": "Accept", "operations": [ADD, PREPEND]},
  True)
S("should reject BGPFilterRuleV4 with empty operation", V4, {"action": "Accept", "operations": [{}]}, False)

# (API) BGPPeerSpec
P = "BGPPeerSpec"
S("should accept valid BGPPeerSpec", P, {"peerIP": IPV4_1}, True)
S("should reject invalid BGPPeerSpec (IPv4)", P, {"peerIP": BAD_IPV4_1}, False)
S("should reject invalid BGPPeerSpec (IPv6)", P, {"peerIP": BAD_IPV6_1}, False)
S("should reject BGPPeerSpec with both Node and NodeSelector", P, {"node": "my-node", "nodeSelector": "has(mylabel)"},
  False)
S("should reject BGPPeerSpec with both PeerIP and PeerSelector", P, {"peerIP": IPV4_1, "peerSelector": "has(mylabel)"},
  False)
S("should reject BGPPeerSpec with both ASNumber and PeerSelector", P, {"asNumber": 61234, "peerSelector": "has(mylabel)"},
  False)
S("should accept BGPPeerSpec with NodeSelector and PeerSelector", P,
  {"nodeSelector": "has(mylabel)", "peerSelector": "has(mylabel)"}, True)
S("should reject BGPPeerSpec with LocalWorkloadSelector and empty ASNumber", P,
  {"localWorkloadSelector": "has(labelone)"}, False)
S("should reject BGPPeerSpec with both LocalWorkloadSelector and PeerSelector", P,
  {"localWorkloadSelector": "has(labelone)", "peerSelector": "has(labeltwo)", "asNumber": 61234}, False)
S("should reject BGPPeerSpec with both LocalWorkloadSelector and PeerIP", P,
  {"localWorkloadSelector": "has(labelone)", "peerIP": IPV4_1, "asNumber": 61234}, False)
S("should reject BGPPeerSpec with both positive KeepOriginalNextHop and non-empty NextHopMode", P,
  {"keepOriginalNextHop": True, "nextHopMode": "Auto"}, False)
S("should reject BGPPeer with ReachableBy but without PeerIP", P, {"reachableBy": IPV4_2}, False)
S("should reject BGPPeer with ReachableBy (IPv6) but without PeerIP", P, {"reachableBy": IPV6_2}, False)
S("should accept BGPPeer with ReachableBy and PeerIP", P, {"peerIP": PEERV4_1, "reachableBy": IPV4_1}, True)
S("should accept BGPPeer with ReachableBy (IPv6) and PeerIP (IPv6)", P, {"peerIP": PEERV6_1, "reachableBy": IPV6_1},
  True)
S("should reject BGPPeer with invalid ReachableBy", P, {"peerIP": PEERV4_1, "reachableBy": BAD_IPV4_1}, False)
S("should reject BGPPeer with invalid ReachableBy (IPv6)", P, {"peerIP": PEERV6_1, "reachableBy": BAD_IPV6_1}, False)
S("should reject BGPPeer with mismatched family address of ReachableBy and PeerIP", P,
  {"peerIP": IPV4_1, "reachableBy": IPV6_1}, False)
S("should reject BGPPeer with mismatched family address of ReachableBy and PeerIP:Port", P,
  {"peerIP": PEERV4_1, "reachableBy": IPV6_1}, False)
S("should reject BGPPeer with mismatched family address of ReachableBy and PeerIP (IPv6)", P,
  {"peerIP": IPV6_1, "reachableBy": IPV4_1}, False)
S("should reject BGPPeer with mismatched family address of ReachableBy and PeerIP:Port (IPv6)", P,
  {"peerIP": PEERV6_1, "reachableBy": IPV4_1}, False)
S("should accept BGPPeerSpec with Password", P,
  {"peerIP": IPV4_1, "password": {"secretKeyRef": {"name": "tigera-bgp-passwords", "key": "my-peering"}}}, True)
S("should reject invalid BGPPeerSpec (selector)", P,
  {"nodeSelector": "kubernetes.io/hostname: == 'casey-crc-kadm-node-4'"}, False)
S("should accept BGPPeerSpec with port in PeerIP (IPv4)", P, {"peerIP": "192.168.1.1:500"}, True)
S("should accept BGPPeerSpec with port in PeerIP (IPv6)", P, {"peerIP": "[9000::]:500"}, True)
for _desc, _peer in [
    ("should reject BGPPeerSpec with invalid port in PeerIP (IPv4)", "[192.168.0.0]:98956"),
    ("should reject BGPPeerSpec with invalid port in PeerIP (IPv4)", "192.168.0.0:65536"),
    ("should reject BGPPeerSpec with invalid port in PeerIP (IPv4)", "192.168.0.0:0"),
    ("should reject BGPPeerSpec with invalid IP in PeerIP (IPv4)", "192.168.0.330:170"),
    ("should reject BGPPeerSpec with invalid port in PeerIP (IPv6)", "[9000::]:98956"),
    ("should reject invalid BGPPeerSpec without port set in PeerIP (IPv4)", "192.168.0.0:"),
    ("should reject invalid BGPPeerSpec without port set in PeerIP (IPv6)", "[9000::]:"),
    ("should reject BGPPeerSpec with invalid port in PeerIP (IPv6)", "[9000::]:65536"),
    ("should reject BGPPeerSpec with invalid port in PeerIP (IPv6)", "[9000::]:0"),
    ("should reject BGPPeerSpec with invalid IP in PeerIP (IPv6)", "[9000::FFFFF]:170"),
    ("should reject invalid BGPPeerSpec when port is set with empty IP in PeerIP (IPv4)", ":8552"),
    ("should reject invalid BGPPeerSpec when port is set with empty IP in PeerIP (IPv6)", "[]:8552"),
]:
    S(_desc, P, {"peerIP": _peer}, False)
S("BGPPeer with valid SourceAddress UseNodeIP", P, {"sourceAddress": "UseNodeIP"}, True)
S("BGPPeer with valid SourceAddress None", P, {"sourceAddress": "None"}, True)
S("BGPPeer with invalid SourceAddress", P, {"sourceAddress": "rubbish"}, False)
S("BGPPeer with valid MaxRestartTime", P, {"maxRestartTime": "10s"}, True)

# (API) NodeSpec
N = "NodeSpec"
S("should accept node with IPv4 BGP", N, {"bgp": {"ipv4Address": NETV4_1}}, True)
S("should accept node with IPv6 BGP", N, {"bgp": {"ipv6Address": NETV6_1}}, True)
S("should accept node with tunnel IP in BGP", N, {"bgp": {"ipv4IPIPTunnelAddr": "10.0.0.1"}}, True)
S("should accept node with no BGP", N, {}, True)
S("should reject node with an empty BGP", N, {"bgp": {}}, False)
S("should reject node with IPv6 address in IPv4 field", N, {"bgp": {"ipv4Address": NETV6_1}}, False)
S("should reject node with IPv4 address in IPv6 field", N, {"bgp": {"ipv6Address": NETV4_1}}, False)
S("should reject node with bad RR cluster ID #1", N,
  {"bgp": {"ipv4Address": NETV4_1, "routeReflectorClusterID": "abcdef"}}, False)
S("should reject node with bad RR cluster ID #2", N,
  {"bgp": {"ipv4Address": NETV4_1, "routeReflectorClusterID": "300.34.3.1"}}, False)
S("should accept node with good RR cluster ID", N,
  {"bgp": {"ipv4Address": NETV4_1, "routeReflectorClusterID": "245.0.0.1"}}, True)

# Wireguard config fields.
S("should allow valid Wireguard public-key", "NodeStatus",
  {"wireguardPublicKey": "jlkVyQYooZYzI2wFfNhSZez5eWh44yfq1wKVjLvSXgY="}, True)
S("should allow valid IP address on Wireguard config", N, {"wireguard": {"interfaceIPv4Address": IPV4_1}}, True)
S("should reject invalid IP address on Wireguard config", N, {"wireguard": {"interfaceIPv4Address": "foo.bar"}}, False)
S("should reject invalid Wireguard public-key", "NodeStatus", {"wireguardPublicKey": "foobar"}, False)

# AWS source-destination-check, BPF CTLB.
FC("should accept a valid AWSSrcDstCheck value 'DoNothing'", {"awsSrcDstCheck": "DoNothing"}, True)
FC("should accept a valid AWSSrcDstCheck value 'Enable'", {"awsSrcDstCheck": "Enable"}, True)
FC("should accept a valid AWSSrcDstCheck value 'Disable'", {"awsSrcDstCheck": "Disable"}, True)
FC("should reject an invalid AWSSrcDstCheck value 'enable'", {"awsSrcDstCheck": "enable"}, False)
FC("should reject an invalid AWSSrcDstCheck value 'badVal'", {"awsSrcDstCheck": "badVal"}, False)
FC("should accept a valid BPFHostNetworkedNATWithoutCTLB value 'Disabled'", {"bpfHostNetworkedNATWithoutCTLB": "Disabled"},
   True)
FC("should accept a valid BPFHostNetworkedNATWithoutCTLB value 'Enabled'", {"bpfHostNetworkedNATWithoutCTLB": "Enabled"},
   True)
FC("should accept a valid BPFConnectTimeLoadBalancing value 'Enabled'", {"bpfConnectTimeLoadBalancing": "Enabled"}, True)
FC("should accept a valid BPFConnectTimeLoadBalancing value 'Disabled'", {"bpfConnectTimeLoadBalancing": "Disabled"},
   True)
FC("should accept a valid BPFConnectTimeLoadBalancing value 'TCP'", {"bpfConnectTimeLoadBalancing": "TCP"}, True)
FC("should reject an invalid BPFHostNetworkedNATWithoutCTLB value 'enabled'", {"bpfHostNetworkedNATWithoutCTLB": "enabled"},
   False)
FC("should reject an invalid BPFHostNetworkedNATWithoutCTLB value 'BadVal'", {"bpfHostNetworkedNATWithoutCTLB": "badVal"},
   False)
FC("should reject an invalid BPFConnectTimeLoadBalancing value 'BadVal'", {"bpfConnectTimeLoadBalancing": "badVal"},
   False)

# GlobalNetworkPolicy validation.
G = "GlobalNetworkPolicy"
R("disallow name with invalid character", G, "t~!s.h.i.ng", {}, False)
R("disallow name with mixed case characters", G, "tHiNg", {}, False)
R("allow valid name", G, "thing", {}, True)
R("disallow k8s policy name", G, "knp.default.thing", {}, False)
R("disallow name with dot", G, "t.h.i.ng", {}, False)
R("should reject GlobalNetworkPolicy with both PreDNAT and DoNotTrack", G, "thing",
  {"preDNAT": True, "doNotTrack": True, "applyOnForward": True}, False)
R("should accept GlobalNetworkPolicy PreDNAT but not DoNotTrack", G, "thing",
  {"preDNAT": True, "applyOnForward": True}, True)
R("should accept GlobalNetworkPolicy DoNotTrack but not PreDNAT", G, "thing",
  {"preDNAT": False, "doNotTrack": True, "applyOnForward": True}, True)
R("should reject pre-DNAT GlobalNetworkPolicy egress rules", G, "thing",
  {"preDNAT": True, "applyOnForward": True, "egress": [allow()]}, False)
R("should accept pre-DNAT GlobalNetworkPolicy ingress rules", G, "thing",
  {"preDNAT": True, "applyOnForward": True, "ingress": [allow()]}, True)
R("should accept GlobalNetworkPolicy ApplyOnForward but not PreDNAT", G, "thing",
  {"preDNAT": False, "applyOnForward": True}, True)
R("should accept GlobalNetworkPolicy ApplyOnForward but not DoNotTrack", G, "thing",
  {"doNotTrack": False, "applyOnForward": True}, True)
R("should accept GlobalNetworkPolicy ApplyOnForward and PreDNAT", G, "thing", {"preDNAT": True, "applyOnForward": True},
  True)
R("should accept GlobalNetworkPolicy ApplyOnForward and DoNotTrack", G, "thing",
  {"doNotTrack": True, "applyOnForward": True}, True)
R("should accept GlobalNetworkPolicy no ApplyOnForward DoNotTrack PreDNAT", G, "thing",
  {"preDNAT": False, "doNotTrack": False, "applyOnForward": False}, True)
R("should reject GlobalNetworkPolicy PreDNAT but not ApplyOnForward", G, "thing",
  {"preDNAT": True, "applyOnForward": False}, False)
R("should reject GlobalNetworkPolicy DoNotTrack but not ApplyOnForward", G, "thing",
  {"doNotTrack": True, "applyOnForward": False}, False)
R("allow missing Types", G, "thing", {}, True)
R("allow empty Types", G, "thing", {"types": []}, True)
R("allow ingress Types", G, "thing", {"types": ["Ingress"]}, True)
R("allow egress Types", G, "thing", {"types": ["Egress"]}, True)
R("allow ingress+egress Types", G, "thing", {"types": ["Ingress", "Egress"]}, True)
R("disallow repeated egress Types", G, "thing", {"types": ["Egress", "Egress"]}, False)
R("disallow unexpected value", G, "thing", {"types": ["unexpected"]}, False)
R("allow Types without ingress when Ingress present (gnp)", G, "thing", {"ingress": [allow()], "types": ["Egress"]},
  True)
R("allow Types without egress when Egress present (gnp)", G, "thing", {"egress": [allow()], "types": ["Ingress"]}, True)
R("allow Types with ingress when Ingress present (gnp)", G, "thing", {"ingress": [allow()], "types": ["Ingress"]}, True)
R("allow Types with ingress+egress when Ingress present (gnp)", G, "thing",
  {"ingress": [allow()], "types": ["Ingress", "Egress"]}, True)
R("allow Types with egress when Egress present (gnp)", G, "thing", {"egress": [allow()], "types": ["Egress"]}, True)
R("allow Types with ingress+egress when Egress present (gnp)", G, "thing",
  {"egress": [allow()], "types": ["Ingress", "Egress"]}, True)
R("allow ingress Types with pre-DNAT (gnp)", G, "thing",
  {"preDNAT": True, "applyOnForward": True, "types": ["Ingress"]}, True)
R("disallow egress Types with pre-DNAT (gnp)", G, "thing",
  {"preDNAT": True, "applyOnForward": True, "types": ["Egress"]}, False)
R("disallow ingress+egress Types with pre-DNAT (gnp)", G, "thing",
  {"preDNAT": True, "applyOnForward": True, "types": ["Ingress", "Egress"]}, False)
R("disallow HTTP in egress rule", G, "thing",
  {"egress": [allow(http={"methods": ["GET"]})], "types": ["Ingress", "Egress"]}, False)
R("disallow global() in namespaceSelector field", G, "thing", {"namespaceSelector": "global()"}, False)
R("disallow global() in selector field", G, "thing", {"selector": "global()"}, False)
R("disallow global() in serviceAccountSelector field", G, "thing", {"serviceAccountSelector": "global()"}, False)
R("disallow global() in EntityRule selector field", G, "thing", {"ingress": [allow(source={"selector": "global()"})]},
  False)
R("allow global() and projectcalico.org/name in EntityRule namespaceSelector field", G, "thing",
  {"ingress": [allow(source={"namespaceSelector": "global()"},
                     destination={"namespaceSelector": "projectcalico.org/name == 'test'"})]}, True)

# StagedGlobalNetworkPolicy.
SG = "StagedGlobalNetworkPolicy"
FOO = 'foo == "bar"'
R("disallow name with invalid character", SG, "t~!s.h.i.ng", {"stagedAction": "Set", "selector": FOO}, False)
R("disallow name with mixed case characters", SG, "tHiNg", {"stagedAction": "Set", "selector": FOO}, False)
R("allow valid name", SG, "thing", {"stagedAction": "Set", "selector": FOO}, True)
R("disallow k8s policy name", SG, "knp.default.thing", {"stagedAction": "Set", "selector": FOO}, False)
R("disallow name with dot", SG, "t.h.i.ng", {"stagedAction": "Set", "selector": FOO}, False)
R("should accept a valid StagedAction value 'Set'", SG, "thing", {"stagedAction": "Set", "selector": FOO}, True)
R("should accept an unset StagedAction", SG, "thing", {"selector": FOO}, True)
R("should accept a valid StagedAction value 'Delete'", SG, "eng.thing", {"stagedAction": "Delete", "tier": "eng"}, True)
R("should reject a valid StagedAction value 'Delete' if any other Spec field is set", SG, "thing",
  {"stagedAction": "Delete", "selector": FOO}, False)
R("should reject a StagedAction value 'Warning'", SG, "thing", {"stagedAction": "Warning", "selector": FOO}, False)
R("should accept an empty StagedAction value", SG, "thing", {"stagedAction": "", "selector": FOO}, True)
R("should accept an empty selector value when StagedAction is Delete", SG, "thing", {"stagedAction": "Delete"}, True)

# Tiers.
T = "Tier"
R("Tier: valid name", T, "foo", {"order": 100.0}, True)
R("Tier: valid name with dash", T, "fo-o", {"order": 100.0}, True)
R("Tier: disallow dot in name", T, "fo.o", {"order": 100.0}, False)
R("Tier: allow valid name of 63 chars", T, VALUE63, {"order": 100.0}, True)
R("Tier: disallow a name of 64 chars", T, VALUE64, {"order": 100.0}, False)
R("Tier: disallow other chars", T, "t~!s.h.i.ng", {"order": 100.0}, False)
R("Tier: disallow default tier with an invalid order", T, "default", {"order": 10.0, "defaultAction": "Deny"}, False)
R("Tier: disallow default tier with an invalid default action", T, "default",
  {"order": 1_000_000.0, "defaultAction": "Pass"}, False)
R("Tier: allow default tier with the predefined order and default action", T, "default",
  {"order": 1_000_000.0, "defaultAction": "Deny"}, True)
R("Tier: disallow kube-admin tier with an invalid order", T, "kube-admin", {"order": 10.0, "defaultAction": "Pass"},
  False)
R("Tier: disallow kube-admin tier with an invalid default action", T, "kube-admin",
  {"order": 1_000.0, "defaultAction": "Deny"}, False)
R("Tier: allow kube-admin tier with the predefined order and default action", T, "kube-admin",
  {"order": 1_000.0, "defaultAction": "Pass"}, True)
R("Tier: disallow kube-baseline tier with an invalid order", T, "kube-baseline",
  {"order": 10.0, "defaultAction": "Pass"}, False)
R("Tier: disallow kube-baseline tier with an invalid default action", T, "kube-baseline",
  {"order": 10_000_000.0, "defaultAction": "Deny"}, False)
R("Tier: allow kube-baseline tier with the predefined order and default action", T, "kube-baseline",
  {"order": 10_000_000.0, "defaultAction": "Pass"}, True)
R("Tier: allow a tier with a valid order", T, "platform", {"order": 100.0}, True)

# NetworkPolicy.
NP = "NetworkPolicy"
R("allow valid name", NP, "thing", {}, True)
R("disallow name with dot", NP, "t.h.i.ng", {}, False)
R("disallow name with mixed case", NP, "tHiNg", {}, False)
R("allow valid name of 253 chars", NP, "x" * MAX_NAME, {}, True)
R("disallow a name of 254 chars", NP, "x" * (MAX_NAME + 1), {}, False)
R("allow k8s policy name", NP, "knp.default.thing", {}, True)
R("allow missing Types", NP, "thing", {}, True)
R("allow empty Types", NP, "thing", {"types": []}, True)
R("allow ingress Types", NP, "thing", {"types": ["Ingress"]}, True)
R("allow egress Types", NP, "thing", {"types": ["Egress"]}, True)
R("allow ingress+egress Types", NP, "thing", {"types": ["Ingress", "Egress"]}, True)
R("disallow repeated egress Types", NP, "thing", {"types": ["Egress", "Egress"]}, False)
R("disallow unexpected value", NP, "thing", {"types": ["unexpected"]}, False)

# StagedNetworkPolicy.
SN = "StagedNetworkPolicy"
R("allow valid name", SN, "thing", {"stagedAction": "Delete"}, True)
R("disallow name with dot", SN, "t.h.i.ng", {"stagedAction": "Delete"}, False)
R("disallow name with mixed case", SN, "tHiNg", {"stagedAction": "Delete"}, False)
R("allow valid name of 253 chars", SN, "x" * MAX_NAME, {"stagedAction": "Delete"}, True)
R("disallow a name of 254 chars", SN, "x" * (MAX_NAME + 1), {"stagedAction": "Delete"}, False)
R("allow k8s policy name", SN, "knp.default.thing", {"stagedAction": "Delete"}, True)
R("allow missing Types", SN, "eng.thing", {"stagedAction": "Delete", "tier": "eng"}, True)
R("should accept a valid StagedAction value 'Set'", SN, "thing", {"stagedAction": "Set", "selector": FOO}, True)
R("should accept a StagedAction not set", SN, "thing", {"selector": FOO}, True)
R("should accept a valid StagedAction value 'Delete'", SN, "eng.thing", {"stagedAction": "Delete", "tier": "eng"}, True)
R("should reject a valid StagedAction value 'Delete' if any other Spec field is set", SN, "thing",
  {"stagedAction": "Delete", "selector": FOO}, False)
R("should reject a StagedAction value 'Warning'", SN, "thing", {"stagedAction": "Warning", "selector": FOO}, False)
R("should accept an empty StagedAction value", SN, "thing", {"stagedAction": "", "selector": FOO}, True)
R("should accept an empty Selector when StagedAction is Delete", SN, "eng.thing",
  {"stagedAction": "Delete", "tier": "eng"}, True)

# NetworkPolicy object metadata.
R("allow valid name", NP, "thing", {}, True)
R("allow name with single dot - tier", NP, "th.ing", {}, True)
R("disallow name with multiple dot", NP, "t.h.i.ng", {}, False)
R("allow valid name of 253 chars", NP, "x" * MAX_NAME, {}, True)
R("disallow a name of 254 chars", NP, "x" * (MAX_NAME + 1), {}, False)
R("disallow name with invalid character", G, "t~!s.h.i.ng", {}, False)
R("allow Types without ingress when Ingress present", NP, "thing", {"ingress": [allow()], "types": ["Egress"]}, True)
R("allow Types without egress when Egress present", NP, "thing", {"egress": [allow()], "types": ["Ingress"]}, True)
R("allow Types with ingress when Ingress present", NP, "thing", {"ingress": [allow()], "types": ["Ingress"]}, True)
R("allow Types with ingress+egress when Ingress present", NP, "thing",
  {"ingress": [allow()], "types": ["Ingress", "Egress"]}, True)
R("allow Types with egress when Egress present", NP, "thing", {"egress": [allow()], "types": ["Egress"]}, True)
R("allow Types with ingress+egress when Egress present", NP, "thing",
  {"egress": [allow()], "types": ["Ingress", "Egress"]}, True)
R("disallow HTTP in egress rule", NP, "thing",
  {"egress": [allow(http={"methods": ["GET"]})], "types": ["Ingress", "Egress"]}, False)
R("disallow global() in selector field", NP, "thing", {"selector": "global()"}, False)
R("disallow global() in serviceAccountSelector field", NP, "thing", {"serviceAccountSelector": "global()"}, False)
R("NetworkPolicy: disallow junk in PerformanceHints field", NP, "thing", {"performanceHints": ["junk"]}, False)
R("NetworkPolicy: allow PerfHintAssumeNeededOnEveryNode in PerformanceHints field", NP, "thing",
  {"performanceHints": ["AssumeNeededOnEveryNode"]}, True)
R("NetworkPolicy: disallow dupes in PerformanceHints field", NP, "thing",
  {"performanceHints": ["AssumeNeededOnEveryNode", "AssumeNeededOnEveryNode"]}, False)
R("GlobalNetworkPolicy: disallow junk in PerformanceHints field", G, "thing", {"performanceHints": ["junk"]}, False)
R("GlobalNetworkPolicy: allow PerfHintAssumeNeededOnEveryNode in PerformanceHints field", G, "thing",
  {"performanceHints": ["AssumeNeededOnEveryNode"]}, True)
R("GlobalNetworkPolicy: disallow dupes in PerformanceHints field", G, "thing",
  {"performanceHints": ["AssumeNeededOnEveryNode", "AssumeNeededOnEveryNode"]}, False)
R("allow global() and projectcalico.org/name in EntityRule namespaceSelector field", NP, "thing",
  {"ingress": [allow(source={"namespaceSelector": "global()"},
                     destination={"namespaceSelector": "projectcalico.org/name == 'test'"})]}, True)

# Service matches.
SVC = {"name": "service1", "namespace": "default"}
R("allow a Service match in an egress rule destination", NP, "thing", {"egress": [allow(destination={"services": SVC})]},
  True)
R("disallow a Service match in an egress rule source", NP, "thing", {"egress": [allow(source={"services": SVC})]}, False)
R("allow a Service match in an ingress rule source", NP, "thing", {"ingress": [allow(source={"services": SVC})]}, True)
R("disallow a Service match in an ingress rule destination", NP, "thing",
  {"egress": [allow(destination={"services": SVC})]}, True)
R("disallow a Service match AND a ServiceAccount match", NP, "thing",
  {"ingress": [allow(destination={"serviceAccounts": {"names": ["serviceaccount"]}, "services": SVC})]}, False)
R("disallow a Service match AND a Ports match on an egress destination rule", NP, "thing",
  {"egress": [allow(destination={"ports": [80], "services": SVC})]}, False)
R("disallow a Service match AND a NotPorts match on an egress destination rule", NP, "thing",
  {"egress": [allow(destination={"notPorts": [80], "services": SVC})]}, False)
R("allow a Service match AND a Ports match specified on the source on an ingress source rule", NP, "thing",
  {"ingress": [allow(protocol="TCP", source={"ports": [80], "services": SVC})]}, True)
R("allow a Service match AND a NotPorts match on an ingress source rule", NP, "thing",
  {"ingress": [allow(protocol="TCP", source={"notPorts": [80], "services": SVC})]}, True)
R("disallow a Service match AND a Nets match", NP, "thing",
  {"ingress": [allow(destination={"nets": ["10.0.0.0/8"], "services": SVC})]}, False)
R("disallow a Service match AND a NotNets match", NP, "thing",
  {"ingress": [allow(destination={"notNets": ["10.0.0.0/8"], "services": SVC})]}, False)
R("disallow a Service match AND a Selector match", NP, "thing",
  {"ingress": [allow(destination={"selector": "x == 'y'", "services": SVC})]}, False)
R("disallow a Service match AND a NotSelector match", NP, "thing",
  {"ingress": [allow(destination={"notSelector": "x == 'y'", "services": SVC})]}, False)
R("disallow a Service match AND a NamespaceSelector match", NP, "thing",
  {"ingress": [allow(destination={"namespaceSelector": "x == 'y'", "services": SVC})]}, False)
R("allow a Service match on a GNP", G, "thing", {"ingress": [allow(destination={"services": SVC})]}, False)
R("disallow a Service match without a namespace on a GNP", G, "thing",
  {"egress": [allow(destination={"services": {"name": "service1"}})]}, False)
R("disallow a Service match AND a NamespaceSelector match on a GNP", G, "thing",
  {"ingress": [allow(destination={"namespaceSelector": "x == 'y'", "services": SVC})]}, False)

# EntityRule and the special selector global().
S("disallow global() in EntityRule selector field", "EntityRule", {"selector": "  global()  "}, False)
S("allow global() in EntityRule namespaceSelector field", "EntityRule", {"namespaceSelector": "  global()  "}, True)
S("disallow global() in EntityRule namespaceSelector field AND'd with other expressions", "EntityRule",
  {"namespaceSelector": " global() && all()"}, False)
S("disallow global() in EntityRule namespaceSelector field OR'd other expressions", "EntityRule",
  {"namespaceSelector": "global()||all()"}, False)
S("disallow bad selectors in EntityRule selector field", "EntityRule", {"selector": "global() && bad"}, False)

# HTTP match.
H = "HTTPMatch"
S("allow HTTP Path with permitted match clauses", H, {"paths": [{"exact": "/foo"}, {"prefix": "/bar"}]}, True)
S("disallow HTTP Path with invalid match clauses", H, {"paths": [{"exact": "/foo", "prefix": "/bar"}, {"prefix": "/bar"}]},
  False)
S("disallow HTTP Path with invalid match clauses", H, {"paths": [{"exact": "/fo?o"}]}, False)
S("disallow HTTP Path with invalid match clauses", H, {"paths": [{"exact": "/fo o"}]}, False)
S("disallow HTTP Path with invalid match clauses", H, {"paths": [{"exact": "/f#oo"}]}, False)
S("disallow HTTP Path with invalid match clauses", H, {"paths": [{"exact": "/fo#!?o"}]}, False)
S("disallow HTTP Path with empty match clauses", H, {"paths": [{}]}, False)
S("disallow HTTP Method with duplicate match clause", H, {"methods": ["GET", "GET", "Foo"]}, False)

# FelixConfiguration addresses, ports and modes.
FC("should not accept an invalid IP address", {"natOutgoingAddress": BAD_IPV4_1}, False)
FC("should not accept a masked IP", {"natOutgoingAddress": NETV4_1}, False)
FC("should not accept an IPV6 address", {"natOutgoingAddress": IPV6_1}, False)
FC("should accept a valid IP address", {"natOutgoingAddress": IPV4_1}, True)
FC("should accept a valid prometheusMetricsHost value 'localhost'", {"prometheusMetricsHost": "localhost"}, True)
FC("should accept a valid prometheusMetricsHost value '10.0.0.1'", {"prometheusMetricsHost": "10.0.0.1"}, True)
FC("should accept a valid prometheusMetricsHost value 'fe80::ea7a:70fa:cf74:25d5'",
   {"prometheusMetricsHost": "fe80::ea7a:70fa:cf74:25d5"}, True)
FC("should reject an invalid prometheusMetricsHost value 'localhost#'", {"prometheusMetricsHost": "localhost#"}, False)
FC("should reject an invalid prometheusMetricsHost value '0: 1::1'", {"prometheusMetricsHost": "0: 1::1"}, False)
FC("should accept a valid IPv4 address", {"deviceRouteSourceAddress": IPV4_1}, True)
FC("should not accept a valid IPv6 address", {"deviceRouteSourceAddress": IPV6_1}, False)
FC("should not accept an invalid IP address", {"deviceRouteSourceAddress": BAD_IPV4_1}, False)
FC("should not accept a masked IP address", {"deviceRouteSourceAddress": NETV4_1}, False)
FC("should accept a valid IPv6 address", {"deviceRouteSourceAddressIPv6": IPV6_1}, True)
FC("should not accept a valid IPv4 address", {"deviceRouteSourceAddressIPv6": IPV4_1}, False)
FC("should not accept an invalid IPv4 address", {"deviceRouteSourceAddressIPv6": BAD_IPV6_1}, False)
FC("should not accept a masked IPv6 address", {"deviceRouteSourceAddressIPv6": NETV6_1}, False)
FC("should accept a valid listening port", {"wireguardListeningPort": 12345}, True)
FC("should reject a valid listening port", {"wireguardListeningPort": 99999}, False)
FC("should accept a valid routing rule priority", {"wireguardRoutingRulePriority": 12345}, True)
FC("should reject a valid routing rule priority", {"wireguardRoutingRulePriority": 99999}, False)
FC("should accept valid Wireguard interface", {"wireguardInterfaceName": "wg0"}, True)
FC("should reject valid Wireguard interface", {"wireguardInterfaceName": "wg&0"}, False)
FC("should accept ServiceLoopPrevention Drop", {"serviceLoopPrevention": "Drop"}, True)
FC("should accept ServiceLoopPrevention Reject", {"serviceLoopPrevention": "Reject"}, True)
FC("should accept ServiceLoopPrevention Disabled", {"serviceLoopPrevention": "Disabled"}, True)
FC("should reject ServiceLoopPrevention Wibbly", {"serviceLoopPrevention": "Wibbly"}, False)
FC("should accept WindowsManageFirewallRules value Disabled", {"windowsManageFirewallRules": "Disabled"}, True)
FC("should accept WindowsManageFirewallRules value Enabled", {"windowsManageFirewallRules": "Enabled"}, True)
FC("should reject WindowsManageFirewallRules value blah", {"windowsManageFirewallRules": "blah"}, False)

# KubeControllersConfiguration.
K = "KubeControllersConfigurationSpec"
S("should not accept invalid HealthChecks", K, {"healthChecks": "invalid"}, False)
S("should accept valid HealthChecks", K, {"healthChecks": "Enabled"}, True)
S("should not accept invalid log severity", K, {"logSeverityScreen": "invalid"}, False)
S("should accept valid log severity", K, {"logSeverityScreen": "Error"}, True)
S("should accept valid compaction period", K, {"etcdV3CompactionPeriod": "12m0s"}, True)
S("should accept ControllersConfig with no values", K, {"controllers": {}}, True)
S("should accept ControllersConfig with empty values", K,
  {"controllers": {"node": {}, "policy": {}, "workloadEndpoint": {}, "serviceAccount": {}, "namespace": {},
                   "loadBalancer": {}}}, True)
NC = "NodeControllerConfig"
S("should accept valid reconciliation period on node", NC, {"reconcilerPeriod": "5m0s"}, True)
S("should not accept invalid sync labels", NC, {"syncLabels": "yes"}, False)
S("should accept valid sync labels", NC, {"syncLabels": "Disabled"}, True)
S("should not accept invalid host endpoint auto create", NC, {"hostEndpoint": {"autoCreate": "Totally"}}, False)
S("should accept valid host endpoint auto create", NC, {"hostEndpoint": {"autoCreate": "Enabled"}}, True)
S("should not accept invalid host endpoint createDefaultAutoHostEndpoint", NC,
  {"hostEndpoint": {"createDefaultHostEndpoint": "Totally"}}, False)
S("should accept valid host endpoint createDefaultAutoHostEndpoint", NC,
  {"hostEndpoint": {"createDefaultHostEndpoint": "Enabled"}}, True)
S("should accept empty host endpoint auto create", NC, {"hostEndpoint": {}}, True)
for _what in ("policy", "workload endpoint", "service account", "namespace"):
    S(f"should accept valid reconciliation period on {_what}", "ReconcilerConfig", {"reconcilerPeriod": "5m30s"}, True)
S("should accept valid assignIPs value for LoadBalancer config", "LoadBalancerControllerConfig",
  {"assignIPs": "AllServices"}, True)
S("should accept valid assignIPs value for LoadBalancer config", "LoadBalancerControllerConfig",
  {"assignIPs": "RequestedServicesOnly"}, True)
S("should not accept invalid assignIPs value for LoadBalancer config", "LoadBalancerControllerConfig",
  {"assignIPs": "incorrect-value"}, False)
S("should not accept template with incorrect name", "Template", {"generateName": "test$set"}, False)
S("should accept template with valid name", "Template", {"generateName": "validname"}, True)
S("should allow a valid nodeSelector", "Template", {"nodeSelector": 'foo == "bar"'}, True)
S("should disallow a invalid nodeSelector", "Template", {"nodeSelector": "this is not valid selector syntax"}, False)
S("should allow a valid CIDR", "Template", {"interfaceCIDRs": ["10.0.1.0/24", "10.0.10.0/32"]}, True)
S("should reject empty CIDR", "Template", {"interfaceCIDRs": []}, True)
S("should reject invalid CIDR", "Template", {"interfaceCIDRs": ["not a real cidr"]}, False)

# BGP communities in BGPConfigurationSpec.
B = "BGPConfigurationSpec"
PA = [{"cidr": "192.168.10.0/28", "communities": ["100:100"]}]
S("should not accept community when PrefixAdvertisement is empty", B,
  {"communities": [{"name": "community-test", "value": "101:5695"}]}, False)
S("should not accept communities with value and without name", B,
  {"communities": [{"value": "536:785"}], "prefixAdvertisements": PA}, False)
S("should not accept communities with name and without value", B,
  {"communities": [{"name": "community-test"}], "prefixAdvertisements": PA}, False)
S("should accept communities with name and standard BGP community value", B,
  {"communities": [{"name": "community-test", "value": "100:520"}], "prefixAdvertisements": PA}, True)
S("should accept communities with name and large BGP community value", B,
  {"communities": [{"name": "community-test", "value": "100:520:56"}], "prefixAdvertisements": PA}, True)
for _value in ("100", "ab-n"):
    S("should not accept communities with name and invalid community value/format", B,
      {"communities": [{"name": "community-test", "value": _value}], "prefixAdvertisements": PA}, False)
S("should not accept communities with name and invalid standard community value(> 16 bit)", B,
  {"communities": [{"name": "community-test", "value": "65536:999999"}], "prefixAdvertisements": PA}, False)
S("should not accept communities with name and invalid large community value(> 32 bit)", B,
  {"communities": [{"name": "community-test", "value": "4147483647:999999"}], "prefixAdvertisements": PA}, False)
S("should not accept communities without CIDR in PrefixAdvertisement", B,
  {"prefixAdvertisements": [{"communities": ["100:5964"]}]}, False)
S("should not accept CIDR without communities in PrefixAdvertisement", B,
  {"prefixAdvertisements": [{"cidr": "192.168.10.0/28"}]}, False)
S("should accept IPv4 CIDR in PrefixAdvertisement", B,
  {"prefixAdvertisements": [{"cidr": "192.168.10.0/28", "communities": ["100:5964:50"]}]}, True)
S("should accept IPv6 CIDR in PrefixAdvertisement", B,
  {"prefixAdvertisements": [{"cidr": "2001:4860::/128", "communities": ["100:5964:50"]}]}, True)
S("should accept standard BGP community value in PrefixAdvertisement", B,
  {"prefixAdvertisements": [{"cidr": "2001:4860::/128", "communities": ["100:5964", "200:594"]}]}, True)
S("should accept large BGP community value in PrefixAdvertisement", B,
  {"prefixAdvertisements": [{"cidr": "2001:4860::/128", "communities": ["100:5964:1147483647"]}]}, True)
S("should not accept invalid standard community value(> 16 bit) in PrefixAdvertisement", B,
  {"prefixAdvertisements": [{"cidr": "2001:4860::/128", "communities": ["100:1147483647"]}]}, False)
S("should not accept invalid large community value(> 32 bit) in PrefixAdvertisement", B,
  {"prefixAdvertisements": [{"cidr": "2001:4860::/128", "communities": ["100:100:5147483647"]}]}, False)
S("should accept combination of large and standard BGP community value in PrefixAdvertisement", B,
  {"prefixAdvertisements": [{"cidr": "2001:4860::/128", "communities": ["100:5964:1147483647", "100:5223"]}]}, True)
S("should not accept community name that is not defined", B,
  {"prefixAdvertisements": [{"cidr": "2001:4860::/128", "communities": ["nonexistent-community"]}]}, False)
S("should accept community name whose values are defined", B,
  {"communities": [{"name": "community-test", "value": "101:5695"}],
   "prefixAdvertisements": [{"cidr": "2001:4860::/128", "communities": ["community-test", "8988:202"]}]}, True)
S("should accept IPv4 and IPv6 in LocalWorkloadPeeringIPV4 and LocalWorkloadPeeringIPV6", B,
  {"localWorkloadPeeringIPV4": IPV4_1, "localWorkloadPeeringIPV6": IPV6_1}, True)
S("should not accept an invalid IPv4 in LocalWorkloadPeeringIPV4", B, {"localWorkloadPeeringIPV4": BAD_IPV4_1}, False)
S("should not accept an invalid IPv6 in LocalWorkloadPeeringIPV6", B, {"localWorkloadPeeringIPV6": BAD_IPV6_1}, False)

# Block affinities.
S("should accept non-deleted block affinities", "BlockAffinitySpec",
  {"deleted": "false", "state": "confirmed", "cidr": "10.0.0.0/24", "node": "node-1", "type": "host"}, True)
S("should not accept deleted block affinities", "BlockAffinitySpec",
  {"deleted": "true", "state": "confirmed", "cidr": "10.0.0.0/24", "node": "node-1", "type": "host"}, False)

FC("should accept a valid BPFForceTrackPacketsFromIfaces value 'docker+'", {"bpfForceTrackPacketsFromIfaces": ["docker+"]},
   True)
FC("should accept a valid BPFForceTrackPacketsFromIfaces value 'docker0,docker1'",
   {"bpfForceTrackPacketsFromIfaces": ["docker0", "docker1"]}, True)
FC("should reject invalid BPFForceTrackPacketsFromIfaces value 'cali-123,cali@456'",
   {"bpfForceTrackPacketsFromIfaces": ["cali-123", "cali@456"]}, False)

R("disallow a NotNets catch-all IPv4 CIDR match", NP, "thing", {"ingress": [allow(destination={"notNets": ["0.0.0.0/0"]})]},
  False)
R("disallow a NotNets catch-all IPv6 CIDR match", NP, "thing", {"ingress": [allow(source={"notNets": ["::0/0"]})]}, False)
R("disallow a NotNets catch-all IPv6 CIDR match - non-standard representation", NP, "thing",
  {"ingress": [allow(source={"notNets": ["0:0:0::/0"]})]}, False)


# --------------------------------------------------------------------------------------
# Entries where the model differs from the Go table on purpose, by case number.
DELIBERATE: dict[int, str] = {}

UNEXPRESSIBLE = {i for i, (_, _, value, _) in enumerate(CASES, 1) if value is None}


def _accepts(target, value):
    how, name = target
    if how == "resource":
        meta = dict(value["metadata"])
        if KINDS[name].namespaced:
            meta.setdefault("namespace", "default")
        try:
            from_dict({"apiVersion": "projectcalico.org/v3", "kind": name, "metadata": meta, "spec": value["spec"]})
        except ValidationError as exc:
            return False, str(exc)
        return True, ""
    errs = Collector()
    canon = canonical_struct(value, name, name, errs, True)
    if not errs.problems:
        validate_struct(canon, name, name, errs)
    return not errs.problems, "; ".join(f"{p}={v!r}: {r}" for p, v, r in errs.problems)


def _params():
    for i, (desc, target, value, valid) in enumerate(CASES, 1):
        marks = []
        if i in UNEXPRESSIBLE:
            marks.append(pytest.mark.skip(reason="the Go value has no JSON/YAML form (a port with a name and numbers)"))
        elif i in DELIBERATE:
            marks.append(pytest.mark.xfail(strict=True, reason=DELIBERATE[i]))
        yield pytest.param(target, value, valid, id=f"{i:03d} {desc.strip()}", marks=marks)


@pytest.mark.parametrize("target,value,valid", list(_params()))
def test_go_validator_entry(target, value, valid):
    accepted, why = _accepts(target, value)
    if valid:
        assert accepted, f"Calico accepts this; we refuse it: {why}"
    else:
        assert not accepted, "Calico refuses this; we accept it"


def test_table_size():
    # Several hundred of the table's 698 entries are replayed here.
    assert len(CASES) >= 450
