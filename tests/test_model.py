"""The resource model: parsing, canonical JSON, validation messages, kind names."""
import pytest

from node.errors import ValidationError
from node.model import UnknownKind, from_dict, kind_info, load_documents, load_resources
from node.model.schema import format_go_duration, go_json, parse_asn, parse_go_duration
from resource_examples import STORED


def one(text):
    (res,) = load_resources(text)
    return res


# ---------------------------------------------------------------------------------------
# Loading documents


def test_stream_list_and_json_documents_are_all_read():
    text = """
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: a}
spec: {cidr: 10.0.0.0/16}
---
kind: List
apiVersion: v1
items:
- apiVersion: projectcalico.org/v3
  kind: Profile
  metadata: {name: p1}
- apiVersion: projectcalico.org/v3
  kind: Tier
  metadata: {name: t1}
  spec: {order: 100}
---
{"apiVersion": "projectcalico.org/v3", "kind": "BGPPeer", "metadata": {"name": "x"}, "spec": {"peerIP": "10.0.0.1", "asNumber": 64512}}
"""
    kinds = [r.kind for r in load_resources(text)]
    assert kinds == ["IPPool", "Profile", "Tier", "BGPPeer"]


def test_yaml_11_scalars_become_strings_where_go_expects_strings():
    res = one("""
apiVersion: projectcalico.org/v3
kind: Node
metadata:
  name: n1
  labels: {enabled: yes, off-switch: off, num: 10, created: 2025-05-01}
""")
    assert res.labels == {"created": "2025-05-01", "enabled": "true", "num": "10", "off-switch": "false"}


def test_typed_kind_plurals_and_short_names_resolve_like_calicoctl():
    for name in ("ippool", "IPPools", "ipp", "pools", "IPPool"):
        assert kind_info(name).kind == "IPPool"
    assert kind_info("gnp").kind == "GlobalNetworkPolicy"
    assert kind_info("wep").kind == "WorkloadEndpoint"
    assert kind_info("bgpconfig").kind == "BGPConfiguration"
    with pytest.raises(UnknownKind, match="resource type 'frobnicator' is not supported"):
        kind_info("frobnicator")


def test_kind_in_a_file_must_be_exact_and_hint_at_the_right_spelling():
    with pytest.raises(UnknownKind, match="did you mean 'IPPool'"):
        from_dict({"apiVersion": "projectcalico.org/v3", "kind": "ippool", "metadata": {"name": "a"}})


# ---------------------------------------------------------------------------------------
# Canonical JSON (what libcalico-go would store), one full example per kind.

@pytest.mark.parametrize("kind", sorted(STORED))
def test_storage_json_is_byte_for_byte_calicos(kind):
    text, expected = STORED[kind]
    res = one("apiVersion: projectcalico.org/v3\n" + text)
    assert res.kind == kind
    assert res.storage_json() == expected


def test_resource_version_is_never_stored_and_unset_timestamp_is_null():
    res = one("""
apiVersion: projectcalico.org/v3
kind: Profile
metadata: {name: p, resourceVersion: "42"}
""")
    assert res.resource_version == "42"
    assert res.storage_json() == ('{"kind":"Profile","apiVersion":"projectcalico.org/v3","metadata":'
                                  '{"name":"p","creationTimestamp":null},"spec":{}}')


def test_go_json_escapes_html_characters_like_go():
    assert go_json({"s": "a<b>&c"}) == '{"s":"a\\u003cb\\u003e\\u0026c"}'


@pytest.mark.parametrize("text,ns,canon", [
    ("90s", 90_000_000_000, "1m30s"), ("1h", 3_600_000_000_000, "1h0m0s"), ("1.5s", 1_500_000_000, "1.5s"),
    ("300ms", 300_000_000, "300ms"), ("0", 0, "0s"), ("2m0.5s", 120_500_000_000, "2m0.5s"),
])
def test_go_durations(text, ns, canon):
    assert parse_go_duration(text) == ns
    assert format_go_duration(ns) == canon


def test_dotted_and_plain_as_numbers():
    assert parse_asn("1.10") == 65546
    assert parse_asn(64512) == 64512
    with pytest.raises(ValueError):
        parse_asn("1.70000")


# ---------------------------------------------------------------------------------------
# Validation: one test per error class, checking the message names resource and field.

def bad(text, *fragments):
    with pytest.raises(ValidationError) as info:
        load_resources("apiVersion: projectcalico.org/v3\n" + text)
    msg = str(info.value)
    for frag in fragments:
        assert frag in msg, msg
    return msg


def test_bad_cidr():
    bad("kind: IPPool\nmetadata: {name: p}\nspec: {cidr: 10.0.0.300/16}",
        "IPPool(p).spec.cidr = '10.0.0.300/16'", "invalid IP network")


def test_pool_cidr_must_be_strictly_masked():
    bad("kind: IPPool\nmetadata: {name: p}\nspec: {cidr: 10.0.0.1/16}", "IP pool CIDR is not strictly masked")


def test_port_out_of_range():
    bad("kind: GlobalNetworkPolicy\nmetadata: {name: p}\nspec:\n  ingress:\n"
        "  - {action: Allow, protocol: TCP, destination: {ports: [70000]}}",
        "spec.ingress[0].destination.ports[0] = '70000'", "out of range")


def test_unknown_protocol():
    bad("kind: GlobalNetworkPolicy\nmetadata: {name: p}\nspec:\n  ingress:\n  - {action: Allow, protocol: TCPP}",
        "spec.ingress[0].protocol = 'TCPP'", "protocol name invalid")


def test_invalid_name():
    bad("kind: IPPool\nmetadata: {name: Bad_Name}\nspec: {cidr: 10.0.0.0/16}",
        "metadata.name = 'Bad_Name'", "lower case alphanumeric")


def test_bad_enum_value():
    bad("kind: IPPool\nmetadata: {name: p}\nspec: {cidr: 10.0.0.0/16, ipipMode: Sometimes}",
        "IPPool(p).spec.ipipMode = 'Sometimes'", "must be one of Never, Always, CrossSubnet")


def test_invalid_selector():
    bad("kind: IPPool\nmetadata: {name: p}\nspec: {cidr: 10.0.0.0/16, nodeSelector: \"a ==\"}",
        "IPPool(p).spec.nodeSelector", "invalid selector")


def test_unknown_field_is_rejected_with_its_name_not_a_crash():
    bad("kind: IPPool\nmetadata: {name: p}\nspec: {cidr: 10.0.0.0/16, cidrr: 1}", 'unknown field "cidrr"')


def test_wrong_type_is_reported_not_raised():
    bad("kind: IPPool\nmetadata: {name: p}\nspec: {cidr: 10.0.0.0/16, blockSize: big}",
        "spec.blockSize = 'big'", "expected an integer")


def test_ipip_and_vxlan_together_and_ipv6_ipip_are_rejected():
    bad("kind: IPPool\nmetadata: {name: p}\nspec: {cidr: 10.0.0.0/16, ipipMode: Always, vxlanMode: Always}",
        "IPIP and VXLAN cannot both be enabled")
    bad("kind: IPPool\nmetadata: {name: p}\nspec: {cidr: 'fd00::/48', ipipMode: Always}", "IPIP is not supported on an IPv6 pool")


def test_block_size_range():
    bad("kind: IPPool\nmetadata: {name: p}\nspec: {cidr: 10.0.0.0/16, blockSize: 33}", "block size must be between 20 and 32")


def test_namespaced_kinds_need_a_namespace_and_others_reject_one():
    bad("kind: NetworkPolicy\nmetadata: {name: p}\nspec: {}", "namespace must be specified")
    bad("kind: IPPool\nmetadata: {name: p, namespace: x}\nspec: {cidr: 10.0.0.0/16}", "IPPool is not namespaced")


def test_several_problems_are_listed_together():
    msg = bad("kind: IPPool\nmetadata: {name: p}\nspec: {cidr: 10.0.0.0/16, ipipMode: X, vxlanMode: Y}",
              "error with the following fields")
    assert "ipipMode" in msg and "vxlanMode" in msg


def test_label_value_validation():
    bad("kind: Node\nmetadata: {name: n, labels: {a: 'not valid!'}}", "metadata.labels", "invalid value for label 'a'")


def test_datastore_reads_tolerate_unknown_fields():
    from node.model import from_storage
    res = from_storage("/calico/resources/v3/projectcalico.org/felixconfigurations/default",
                       b'{"kind":"FelixConfiguration","apiVersion":"projectcalico.org/v3","metadata":{"name":"default"},'
                       b'"spec":{"nftablesMode":"Auto","someFutureField":1}}', 17)
    assert res.spec["nftablesMode"] == "Auto"
    assert res.resource_version == "17"


def test_load_documents_reports_yaml_syntax_errors_clearly():
    with pytest.raises(ValidationError, match="cannot parse YAML/JSON"):
        load_documents("kind: [unclosed", "pools.yaml")


def test_ip_reservation_kind():
    res = load_resources("apiVersion: projectcalico.org/v3\nkind: IPReservation\nmetadata: {name: r1}\n"
                         "spec: {reservedCIDRs: [10.0.0.0/30, 10.0.0.9]}\n")[0]
    assert res.storage_json() == ('{"kind":"IPReservation","apiVersion":"projectcalico.org/v3","metadata":'
                                  '{"name":"r1","creationTimestamp":null},"spec":{"reservedCIDRs":'
                                  '["10.0.0.0/30","10.0.0.9"]}}')
    assert kind_info("reservations").kind == "IPReservation"


def test_list_level_checks_judge_the_whole_list():
    ok = load_resources("apiVersion: projectcalico.org/v3\nkind: FelixConfiguration\nmetadata: {name: default}\n"
                        "spec: {bpfExcludeCIDRsFromNAT: [10.0.0.0/8, 192.168.1.1]}\n")[0]
    assert ok.spec["bpfExcludeCIDRsFromNAT"] == ["10.0.0.0/8", "192.168.1.1"]
    bad("kind: FelixConfiguration\nmetadata: {name: default}\nspec: {bpfExcludeCIDRsFromNAT: [10.0.0.0/8, nope]}",
        "spec.bpfExcludeCIDRsFromNAT", "invalid CIDR in list")


def test_colon_numbers_stay_strings_as_in_go_yaml():
    (doc,) = load_documents("a: 5663:12\nb: 0x10\nc: 1_000\n")
    assert doc == {"a": "5663:12", "b": 16, "c": 1000}


V3 = "apiVersion: projectcalico.org/v3\n"


def test_field_names_match_case_insensitively_as_encoding_json_does():
    # encoding/json sets a struct field from a key that equals its name but for case;
    # when two keys set one field, the later in sorted key order (the order
    # sigs.k8s.io/yaml hands the keys on in) wins, and objects are merged.
    res = one(V3 + "kind: IPPool\nMetadata: {name: p, Labels: {a: b}}\n"
              "Spec: {CIDR: 10.0.0.0/16, NatOutgoing: true, IPIPMode: Never, ipipMode: Always}\n"
              "spec: {blocksize: 28}\n")
    assert res.name == "p" and res.metadata["labels"] == {"a": "b"}
    assert res.spec == {"cidr": "10.0.0.0/16", "ipipMode": "Always", "natOutgoing": True, "blockSize": 28}
    kcc = one(V3 + "kind: KubeControllersConfiguration\nmetadata: {name: default}\n"
              "spec: {controllers: {loadbalancer: {assignIPs: AllServices}}}\n")
    assert kcc.spec["controllers"]["loadBalancer"] == {"assignIPs": "AllServices"}
    # Go folds the long s and the Kelvin sign onto ASCII letters, and no other letter.
    peer = one(V3 + "kind: BGPPeer\nmetadata: {name: p}\n"
               "spec: {peerIP: 10.0.0.1, asNumber: 64512, \u212aeepOriginalNextHop: true, \u017fourceAddress: None}\n")
    assert peer.spec["keepOriginalNextHop"] is True and peer.spec["sourceAddress"] == "None"
    bad("kind: Profile\nmetadata: {name: p}\nspec: {labelsToApplí: {a: b}}", 'unknown field "labelsToApplí"')


def test_numbers_where_strings_belong_read_as_sigs_yaml_converts_them():
    # Integers go-yaml holds in 64 bits stay exact; floats, and integers too big for 64 bits
    # (go-yaml reads them as float64s), are written with FormatFloat(f, 'g', -1, 32).
    notes = one(V3 + "kind: Profile\nmetadata: {name: p, annotations: {"
                "a: 18446744073709551615, b: 18446744073709551616, c: 0.1, d: 123456789.0, "
                "e: 1e21, f: 3.14159265358979, g: 100000.0, h: 1000000.0, i: -2.5e-7}}").metadata["annotations"]
    assert notes == {"a": "18446744073709551615", "b": "1.8446744e+19", "c": "0.1", "d": "1.2345679e+08",
                     "e": "1e+21", "f": "3.1415927", "g": "100000", "h": "1e+06", "i": "-2.5e-07"}


def test_calicoctl_input_refuses_a_key_given_twice():
    text = "kind: Tier\nmetadata: {name: t}\nspec:\n  order: 1\n  order: 2\n"
    with pytest.raises(ValidationError, match=r'key "order" already set in map'):
        load_documents(text, unique_keys=True)
    with pytest.raises(ValidationError, match=r'key "order" already set in map'):
        load_resources("apiVersion: projectcalico.org/v3\n" + text)
    # go-yaml's strict mode also refuses a key that overrides one a merge brought in.
    with pytest.raises(ValidationError, match=r'key "b" already set in map'):
        load_documents("base: &b {a: 1, b: 2}\nx:\n  <<: *b\n  b: 3\n", unique_keys=True)
    # Distinct keys of different types are not duplicates; lenient reading keeps the last.
    assert load_documents("{1: a, '1': b}", unique_keys=True) == [{"1": "b"}]
    assert load_documents(text) == [{"kind": "Tier", "metadata": {"name": "t"}, "spec": {"order": 2}}]
