"""Calico rules the model carries: Go's float spelling, log levels, host endpoint and
workload endpoint identity, and the network set, kube-controllers and node status kinds."""
import json

import pytest

from node.datastore.client import DatastoreClient
from node.errors import ValidationError
from node.model import KINDS, etcd_key, from_storage, kind_info, load_resources, parse_etcd_key
from node.model.defaults import kube_controllers_write_defaults
from node.model.names import (
    check_workload_endpoint_name, name_matches, name_segments, parse_workload_endpoint_name,
    workload_endpoint_name,
)
from node.model.schema import go_float, go_json
from resource_examples import STORED


def one(text):
    (res,) = load_resources("apiVersion: projectcalico.org/v3\n" + text)
    return res


def bad(text, *fragments):
    with pytest.raises(ValidationError) as info:
        load_resources("apiVersion: projectcalico.org/v3\n" + text)
    for frag in fragments:
        assert frag in str(info.value), str(info.value)


# ---------------------------------------------------------------------------------------
# Go's float spelling (encoding/json: 'f' for 1e-6 <= |f| < 1e21, else 'e' with e-0N -> e-N)

@pytest.mark.parametrize("value,text", [
    (0.0, "0"), (-0.0, "-0"), (1.0, "1"), (100.5, "100.5"), (-100.5, "-100.5"), (0.1, "0.1"),
    (0.00001, "0.00001"), (1e-6, "0.000001"), (-1e-6, "-0.000001"), (9.99e-7, "9.99e-7"),
    (1e-7, "1e-7"), (-1.5e-7, "-1.5e-7"), (1.23e-9, "1.23e-9"), (1e-10, "1e-10"), (1e-100, "1e-100"),
    (5e-324, "5e-324"), (123456789.5, "123456789.5"), (1e20, "100000000000000000000"),
    (1.2345678901234568e20, "123456789012345680000"), (999999999999999900000.0, "999999999999999900000"),
    (1e21, "1e+21"), (-1e21, "-1e+21"), (1.5e21, "1.5e+21"), (1e100, "1e+100"),
    (1.7976931348623157e308, "1.7976931348623157e+308"), (2.0 ** 60, "1152921504606847000"),
    (1000000.0, "1000000"), (0.3, "0.3"), (2.5e-5, "0.000025"), (1 / 3, "0.3333333333333333"),
])
def test_go_float_spelling(value, text):
    assert go_float(value) == text
    assert float(text) == value


def test_go_json_uses_go_floats_everywhere():
    assert go_json({"a": [0.00001, 1e21, 1e-7, 2.0], "b": {"c": -0.5}}) == \
        '{"a":[0.00001,1e+21,1e-7,2],"b":{"c":-0.5}}'
    with pytest.raises(ValueError):
        go_json({"a": float("nan")})


@pytest.mark.parametrize("order,stored", [
    ("100.5", "100.5"), ("0.00001", "0.00001"), ("1e-7", "1e-7"), ("1.0e+21", "1e+21"),
    ("123456789.5", "123456789.5"), ("-3.25", "-3.25"), ("1000000000000000000000000", "1e+24"),
    ("9007199254740993", "9007199254740992"), ("42", "42"),
])
def test_policy_order_is_stored_as_go_writes_it(order, stored):
    res = one(f"kind: GlobalNetworkPolicy\nmetadata: {{name: p}}\nspec: {{order: {order}}}")
    assert f'"spec":{{"order":{stored}}}' in res.storage_json()


def test_float_fields_reject_values_outside_float64():
    bad("kind: Tier\nmetadata: {name: t}\nspec: {order: .inf}", "Tier(t).spec.order = 'inf' (number out of range")
    bad("kind: Tier\nmetadata: {name: t}\nspec: {order: 1" + "0" * 400 + "}", "Tier(t).spec.order", "out of range")


# ---------------------------------------------------------------------------------------
# Log levels

@pytest.mark.parametrize("kind,field", [
    ("BGPConfiguration", "logSeverityScreen"), ("FelixConfiguration", "logSeverityScreen"),
    ("FelixConfiguration", "logSeverityFile"), ("FelixConfiguration", "logSeveritySys"),
])
def test_log_severities_are_calicos_levels_exactly(kind, field):
    # libcalico-go's "logLevel" validator matches exactly (its table refuses "info" and
    # "INFO"); it runs on every write, whatever the CRD's case-insensitive pattern allows.
    for level in ("Trace", "Debug", "Info", "Warning", "Error", "Fatal"):
        assert one(f"kind: {kind}\nmetadata: {{name: default}}\nspec: {{{field}: {level}}}").spec[field] == level
    for level in ("info", "WARNING", "fatal", "Verbose", "Warn"):
        bad(f"kind: {kind}\nmetadata: {{name: default}}\nspec: {{{field}: {level}}}",
            f"{kind}(default).spec.{field} = '{level}' (invalid log level")


def test_bpf_and_kube_controllers_log_levels():
    one("kind: FelixConfiguration\nmetadata: {name: default}\nspec: {bpfLogLevel: 'Off', bpfConntrackLogLevel: Debug}")
    bad("kind: FelixConfiguration\nmetadata: {name: default}\nspec: {bpfLogLevel: 'off'}",
        "spec.bpfLogLevel = 'off' (invalid BPF log level")
    bad("kind: FelixConfiguration\nmetadata: {name: default}\nspec: {bpfLogLevel: Trace}",
        "spec.bpfLogLevel = 'Trace' (invalid BPF log level")
    bad("kind: FelixConfiguration\nmetadata: {name: default}\nspec: {bpfConntrackLogLevel: Info}",
        "spec.bpfConntrackLogLevel = 'Info' (must be one of Off, Debug)")
    one("kind: KubeControllersConfiguration\nmetadata: {name: default}\nspec: {logSeverityScreen: Panic}")
    bad("kind: KubeControllersConfiguration\nmetadata: {name: default}\nspec: {logSeverityScreen: info}",
        "KubeControllersConfiguration(default).spec.logSeverityScreen = 'info' (must be one of None, Debug")


# ---------------------------------------------------------------------------------------
# Host endpoints

def test_host_endpoint_needs_an_interface_or_expected_ips():
    bad("kind: HostEndpoint\nmetadata: {name: h}\nspec: {node: n1}",
        "HostEndpoint(h).spec.interfaceName = '' (at least one of interfaceName or expectedIPs must be specified)")
    res = one("kind: HostEndpoint\nmetadata: {name: h}\nspec: {node: n1, interfaceName: '*'}")
    assert res.spec["interfaceName"] == "*"
    assert one("kind: HostEndpoint\nmetadata: {name: h}\nspec: {node: n1, expectedIPs: [10.0.0.1]}")


# ---------------------------------------------------------------------------------------
# Workload endpoint names

K8S = {"node": "node1", "orchestrator": "k8s", "pod": "nginx-abc", "endpoint": "eth0"}


@pytest.mark.parametrize("ids,name", [
    (K8S, "node1-k8s-nginx--abc-eth0"),
    ({"node": "my-node", "orchestrator": "cni", "containerID": "3f2a", "endpoint": "eth0"}, "my--node-cni-3f2a-eth0"),
    ({"node": "n", "orchestrator": "libnetwork", "endpoint": "ep-1"}, "n-libnetwork-libnetwork-ep--1"),
    ({"node": "n", "orchestrator": "openstack", "workload": "vm-1", "endpoint": "tap"}, "n-openstack-vm--1-tap"),
    ({"node": "n", "orchestrator": "k8s", "workload": "ignored", "pod": "p", "endpoint": "e"}, "n-k8s-p-e"),
])
def test_workload_endpoint_name_from_identifiers(ids, name):
    assert workload_endpoint_name(ids) == name
    parsed = parse_workload_endpoint_name(name)
    for field, value in parsed.items():
        assert ids[field] == value
    assert name_matches(name, ids)


@pytest.mark.parametrize("ids,message", [
    ({"orchestrator": "k8s", "pod": "p", "endpoint": "e"},
     "WorkloadEndpoint.spec.node = '' (field should be assigned)"),
    ({"node": "n", "pod": "p", "endpoint": "e"}, "spec.orchestrator = '' (field should be assigned)"),
    ({"node": "n", "orchestrator": "k8s", "endpoint": "e"}, "spec.pod = '' (field should be assigned)"),
    ({"node": "n", "orchestrator": "cni", "pod": "p", "endpoint": "e"}, "spec.containerID = ''"),
    ({"node": "n", "orchestrator": "k8s", "pod": "-p", "endpoint": "e"},
     "spec.pod = '-p' (field must not begin with a '-')"),
    ({"node": "n-", "orchestrator": "k8s", "pod": "p", "endpoint": "e"},
     "spec.node = 'n-' (field must not end with a '-')"),
])
def test_workload_endpoint_name_problems_name_the_field(ids, message):
    with pytest.raises(ValidationError) as info:
        workload_endpoint_name(ids)
    assert message in str(info.value)


def test_prefixes_and_matching_by_partial_identifiers():
    assert workload_endpoint_name({"node": "node1", "orchestrator": "k8s"}, allow_prefix=True) == "node1-k8s-"
    assert workload_endpoint_name({"node": "node1", "orchestrator": "k8s", "pod": "nginx"},
                                  allow_prefix=True) == "node1-k8s-nginx-"
    partial = {"node": "node1", "orchestrator": "k8s", "pod": "nginx"}
    # The prefix "node1-k8s-nginx-" also lists pod "nginx-abc"; matching filters it out.
    assert not name_matches("node1-k8s-nginx--abc-eth0", partial)
    assert name_matches("node1-k8s-nginx-eth0", partial)
    assert not name_matches("node1-k8s-nginx", partial)
    assert name_segments("a--b-c", 2) == ["a-b", "c"] and name_segments("a-b", 3) is None
    with pytest.raises(ValueError):
        parse_workload_endpoint_name("n-k8s-pod-eth0-extra")


def test_workload_endpoint_writes_get_or_check_their_name():
    text, _ = STORED["WorkloadEndpoint"]
    res = one(text)
    assert check_workload_endpoint_name(res) == "node1-k8s-nginx--abc-eth0"
    res.metadata["name"] = ""
    assert check_workload_endpoint_name(res) == "node1-k8s-nginx--abc-eth0"
    res.metadata["name"] = "node1-k8s-nginx-eth0"
    with pytest.raises(ValidationError) as info:
        check_workload_endpoint_name(res)
    assert str(info.value) == (
        "error with field WorkloadEndpoint(default/node1-k8s-nginx-eth0).metadata.name = 'node1-k8s-nginx-eth0' "
        "(the WorkloadEndpoint name does not match the primary identifiers assigned in the Spec: "
        "expected name node1-k8s-nginx--abc-eth0)")


# ---------------------------------------------------------------------------------------
# New kinds: names, keys, columns, validation, status

@pytest.mark.parametrize("kind,plural,namespaced,aliases", [
    ("GlobalNetworkSet", "globalnetworksets", False, ("globalnetworkset", "globalnetworksets", "gnetsets")),
    ("NetworkSet", "networksets", True, ("networkset", "networksets", "netsets")),
    ("KubeControllersConfiguration", "kubecontrollersconfigurations", False,
     ("kubecontrollersconfiguration", "kubecontrollersconfigurations", "kubecontrollersconfig",
      "kubecontrollersconfigs")),
    ("CalicoNodeStatus", "caliconodestatuses", False,
     ("caliconodestatus", "caliconodestatuses", "nodestatus", "nodestatuses")),
])
def test_new_kinds_names_and_keys(kind, plural, namespaced, aliases):
    info = KINDS[kind]
    assert (info.plural, info.namespaced, info.aliases) == (plural, namespaced, aliases)
    for alias in aliases + (kind, kind.upper()):
        assert kind_info(alias).kind == kind
    key = etcd_key(kind, "x", "ns1" if namespaced else "")
    expected = f"/calico/resources/v3/projectcalico.org/{plural}/" + ("ns1/x" if namespaced else "x")
    assert key == expected and parse_etcd_key(key) == (kind, "ns1" if namespaced else "", "x")


def columns(res, wide=False):
    info = res.info
    cols = info.wide_columns if wide and info.wide_columns else info.columns
    return [[title for title, _ in cols], [fn(res.to_dict()) for _, fn in cols]]


def test_new_kinds_get_columns_like_calicoctl():
    gns = one(STORED["GlobalNetworkSet"][0])
    assert columns(gns) == [["NAME"], ["public-dns"]]
    assert columns(gns, wide=True) == [["NAME", "NETS"],
                                       ["public-dns", "8.8.8.8/32,2001:4860:4860::8888/128,1.1.1.0/24"]]
    many = one("kind: NetworkSet\nmetadata: {name: big, namespace: ns}\nspec:\n  nets: ["
               + ", ".join(f"10.0.{i}.0/24" for i in range(20)) + "]")
    nets = columns(many, wide=True)[1][1]
    assert len(nets) == 80 and nets.endswith("...") and nets.startswith("10.0.0.0/24,10.0.1.0/24,")
    assert columns(one(STORED["KubeControllersConfiguration"][0])) == [["NAME"], ["default"]]
    status = one(STORED["CalicoNodeStatus"][0])
    assert columns(status) == [["NAME", "NODE"], ["node1-status", "node1"]]
    assert columns(status, wide=True) == [["NAME", "NODE", "CLASSES"], ["node1-status", "node1", "Agent,BGP,Routes"]]


def test_network_sets_validate_nets_and_the_namespace_label():
    bad("kind: GlobalNetworkSet\nmetadata: {name: g}\nspec: {nets: [10.0.0.0/8, not-a-net]}",
        "GlobalNetworkSet(g).spec.nets[1] = 'not-a-net' (invalid CIDR)")
    bad("kind: NetworkSet\nmetadata: {name: s, namespace: ns, labels: {projectcalico.org/namespace: ns}}\nspec: {}",
        "NetworkSet(ns/s).metadata.labels = 'projectcalico.org/namespace' "
        "(projectcalico.org/namespace is not a valid label name)")
    bad("kind: NetworkSet\nmetadata: {name: s}\nspec: {nets: [10.0.0.1]}", "namespace must be specified")
    bad("kind: GlobalNetworkSet\nmetadata: {name: g, labels: {projectcalico.org/namespace: x}}",
        "projectcalico.org/namespace is not a valid label name")
    # Not strictly masked and bare addresses are fine, as Calico's "cidr" check allows.
    assert one("kind: GlobalNetworkSet\nmetadata: {name: g}\nspec: {nets: [10.0.0.1/8, 10.0.0.1]}")


def test_kube_controllers_configuration_validation():
    bad("kind: KubeControllersConfiguration\nmetadata: {name: default}\nspec: {healthChecks: On}",
        "spec.healthChecks = 'true' (must be one of Enabled, Disabled)")
    bad("kind: KubeControllersConfiguration\nmetadata: {name: default}\nspec: {prometheusMetricsPort: 70000}",
        "spec.prometheusMetricsPort = '70000' (must be at most 65535)")
    bad("kind: KubeControllersConfiguration\nmetadata: {name: default}\nspec:\n  controllers:\n"
        "    node: {hostEndpoint: {templates: [{generateName: Bad_Name, interfaceCIDRs: [nope]}]}}",
        "spec.controllers.node.hostEndpoint.templates[0].generateName = 'Bad_Name'",
        "spec.controllers.node.hostEndpoint.templates[0].interfaceCIDRs")
    bad("kind: KubeControllersConfiguration\nmetadata: {name: default}\nspec: {controllers: {loadBalancer: "
        "{assignIPs: Some}}}", "spec.controllers.loadBalancer.assignIPs = 'Some'")
    # Empty controllers stay as written: {} enables a controller, absence disables it.
    res = one("kind: KubeControllersConfiguration\nmetadata: {name: default}\nspec: {controllers: {namespace: {}}}")
    assert res.spec == {"controllers": {"namespace": {}}}
    assert '"spec":{"controllers":{"namespace":{}}},"status":{}}' in res.storage_json()


def test_calico_node_status_validation():
    bad("kind: CalicoNodeStatus\nmetadata: {name: s}\nspec: {}",
        "CalicoNodeStatus(s).spec.node = '' (must be specified)",
        "spec.classes = '' (must be specified)", "spec.updatePeriodSeconds = '' (must be specified)")
    bad("kind: CalicoNodeStatus\nmetadata: {name: s}\nspec: {node: n, classes: [BGP, BGP, Disks], "
        "updatePeriodSeconds: 86401}", "spec.classes[2] = 'Disks' (must be one of Agent, BGP, Routes)",
        "spec.classes = '[BGP BGP Disks]' (values must be unique)", "spec.updatePeriodSeconds = '86401'")
    zero = one("kind: CalicoNodeStatus\nmetadata: {name: s}\nspec: {node: n, classes: [Agent], updatePeriodSeconds: 0}")
    assert '"updatePeriodSeconds":0}' in zero.storage_json()


def test_calico_node_status_with_a_reported_status_round_trips_byte_for_byte():
    stored = (
        '{"kind":"CalicoNodeStatus","apiVersion":"projectcalico.org/v3","metadata":{"name":"s1",'
        '"creationTimestamp":null},"spec":{"node":"node1","classes":["BGP","Routes"],"updatePeriodSeconds":30},'
        '"status":{"lastUpdated":"2025-05-01T10:00:00Z","agent":{"birdV4":{"state":"Ready","version":"v0.3.3",'
        '"routerID":"10.0.0.11","lastBootTime":"2025-05-01 09:59:00","lastReconfigurationTime":'
        '"2025-05-01 10:00:00"},"birdV6":{}},"bgp":{"numberEstablishedV4":1,"numberNotEstablishedV4":0,'
        '"numberEstablishedV6":0,"numberNotEstablishedV6":0,"peersV4":[{"peerIP":"10.0.0.12","type":"NodeMesh",'
        '"state":"Established","since":"09:59:30"}]},"routes":{"routesV4":[{"type":"FIB","destination":'
        '"192.168.1.0/26","gateway":"10.0.0.12","interface":"eth0","learnedFrom":{"sourceType":"NodeMesh",'
        '"peerIP":"10.0.0.12"}},{"type":"RIB","destination":"0.0.0.0/0","learnedFrom":{}}]}}}'
    )
    res = from_storage("/calico/resources/v3/projectcalico.org/caliconodestatuses/s1", stored, 4)
    assert res.status["bgp"]["peersV4"][0]["state"] == "Established"
    assert res.storage_json() == stored
    # A route without learnedFrom still gets it: Go never omits a struct.
    loose = json.loads(stored)
    del loose["status"]["routes"]["routesV4"][1]["learnedFrom"]
    res = from_storage("/calico/resources/v3/projectcalico.org/caliconodestatuses/s1", json.dumps(loose), 4)
    assert res.storage_json() == stored


def test_kube_controllers_status_round_trips():
    stored = ('{"kind":"KubeControllersConfiguration","apiVersion":"projectcalico.org/v3","metadata":{"name":'
              '"default","creationTimestamp":null},"spec":{"controllers":{}},"status":{"runningConfig":'
              '{"logSeverityScreen":"Info","controllers":{"node":{"syncLabels":"Enabled"}}},'
              '"environmentVars":{"DATASTORE_TYPE":"etcdv3","ENABLED_CONTROLLERS":"node"}}}')
    key = "/calico/resources/v3/projectcalico.org/kubecontrollersconfigurations/default"
    assert from_storage(key, stored, 2).storage_json() == stored


NEW_KINDS = ("GlobalNetworkSet", "NetworkSet", "KubeControllersConfiguration", "CalicoNodeStatus")


@pytest.mark.parametrize("kind", NEW_KINDS)
def test_new_kinds_round_trip_through_etcd_with_calicos_key_and_bytes(etcd_kv, kind):
    client = DatastoreClient(etcd_kv)
    text, expected = STORED[kind]
    created = client.create(one(text))
    key = etcd_key(kind, created.name, created.namespace)
    assert etcd_kv.get(key).value.decode() == expected
    assert client.get(kind, created.name, created.namespace) == created


def test_kube_controllers_writes_get_calicos_defaults():
    res = one("kind: KubeControllersConfiguration\nmetadata: {name: default}\n"
              "spec: {controllers: {policyMigration: {}, loadBalancer: {}, node: {}}}")
    kube_controllers_write_defaults(res, creating=True)
    assert res.storage_json() == (
        '{"kind":"KubeControllersConfiguration","apiVersion":"projectcalico.org/v3","metadata":{"name":"default",'
        '"creationTimestamp":null},"spec":{"healthChecks":"Enabled","prometheusMetricsPort":9094,"controllers":'
        '{"node":{"leakGracePeriod":"15m0s"},"loadBalancer":{"assignIPs":"AllServices"},'
        '"policyMigration":{"enabled":"Enabled"}}},"status":{}}')
    # Set values are kept, including a zero port; absent controllers stay absent.
    res = one("kind: KubeControllersConfiguration\nmetadata: {name: default}\n"
              "spec: {prometheusMetricsPort: 0, healthChecks: Disabled, controllers: {node: {leakGracePeriod: 0s}}}")
    kube_controllers_write_defaults(res, creating=False)
    assert res.spec == {"healthChecks": "Disabled", "prometheusMetricsPort": 0,
                        "controllers": {"node": {"leakGracePeriod": "0s"}}}


def test_kube_controllers_write_rules():
    with pytest.raises(ValidationError) as info:
        kube_controllers_write_defaults(one("kind: KubeControllersConfiguration\nmetadata: {name: other}\n"), True)
    assert "KubeControllersConfiguration(other).metadata.name = 'other' (Cannot create a Kube Controllers " \
           "Configuration resource with a name other than \"default\")" in str(info.value)
    kube_controllers_write_defaults(one("kind: KubeControllersConfiguration\nmetadata: {name: other}\n"), False)
    res = one("kind: KubeControllersConfiguration\nmetadata: {name: default}\nspec:\n  controllers:\n    node:\n"
              "      hostEndpoint:\n        templates:\n        - {generateName: a, interfacePattern: eth.*}\n"
              "        - {generateName: a, interfaceCIDRs: [10.0.0.0/8]}\n        - {nodeSelector: all()}\n")
    with pytest.raises(ValidationError) as info:
        kube_controllers_write_defaults(res, True)
    msg = str(info.value)
    base = "KubeControllersConfiguration(default).spec.controllers.node.hostEndpoint.templates"
    assert f"{base}[1].generateName = 'a' (Template name must be unique)" in msg
    assert f"{base}[2].generateName = '' (Template name must be specified)" in msg
    assert f"{base}[2] = '' (InterfaceCIDRs or InterfacePattern must be specified)" in msg
    assert f"{base}[0]" not in msg


def test_yaml_exponent_numbers_are_floats_as_in_go_yaml():
    from node.model import load_documents
    (doc,) = load_documents("a: [1e-7, 2E3, -1.5e+2, .5, 12, 0x1F, 1e, 5663:12]")
    assert doc["a"] == [1e-7, 2000.0, -150.0, 0.5, 12, 31, "1e", "5663:12"]
