"""Corrupt, foreign and hostile input: the model reports it, naming the field, and never crashes.

Covers datastore values of the wrong shape, malformed calicoctl documents (nothing is
stored), documents nested past any sane depth, and a property test that feeds random
JSON-like values into every kind.
"""
import functools
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node.cli import calicoctl
from node.errors import ValidationError
from node.model import (
    API_VERSION, KINDS, Resource, UnknownKind, etcd_key, from_dict, from_storage, load_documents,
    load_resources, validate_resource,
)
from node.model.schema import MAX_NESTING, STRUCTS

POOL_KEY = "/calico/resources/v3/projectcalico.org/ippools/pool1"
V3_KINDS = sorted(k for k, info in KINDS.items() if info.v3_storage)


def stored_error(key, value):
    with pytest.raises(ValidationError) as info:
        from_storage(key, json.dumps(value), 7)
    return str(info.value)


# ---------------------------------------------------------------------------------------
# Datastore values of the wrong shape


@pytest.mark.parametrize("value,message", [
    ({"metadata": [1]}, "IPPool(pool1).metadata = '[1]' (expected an object)"),
    ({"spec": "x"}, "IPPool(pool1).spec = 'x' (expected an object)"),
    ({"status": 5}, "IPPool(pool1).status = '5' (expected an object)"),
    ({"spec": {"cidr": ["10.0.0.0/8"]}}, "IPPool(pool1).spec.cidr = '[10.0.0.0/8]' (expected a string)"),
    ({"spec": {"allowedUses": {"a": 1}}}, "IPPool(pool1).spec.allowedUses"),
    ({"spec": {"natOutgoing": "yes"}}, "IPPool(pool1).spec.natOutgoing = 'yes' (expected a boolean"),
    ({"spec": {"blockSize": 1e400}}, "IPPool(pool1).spec.blockSize = 'inf' (expected an integer)"),
    ({"spec": {"blockSize": 2 ** 70}}, "IPPool(pool1).spec.blockSize"),
    ({"metadata": {"labels": ["a"]}}, "IPPool(pool1).metadata.labels = '[a]' (expected a map of strings)"),
    ({"metadata": {"labels": {"a": {"b": 1}}}}, "IPPool(pool1).metadata.labels[a]"),
    ({"metadata": {"uid": 5}}, "IPPool(pool1).metadata.uid = '5' (expected a string"),
])
def test_stored_shape_problems_name_the_resource_and_field(value, message):
    assert message in stored_error(POOL_KEY, value)


def test_nested_stored_shapes_are_reported_at_their_path():
    key = "/calico/resources/v3/projectcalico.org/globalnetworkpolicies/p"
    msg = stored_error(key, {"spec": {"ingress": [{"action": "Allow", "source": [1]}, "rule"]}})
    assert "GlobalNetworkPolicy(p).spec.ingress[0].source = '[1]' (expected an object)" in msg
    assert "GlobalNetworkPolicy(p).spec.ingress[1] = 'rule' (expected an object)" in msg
    key = "/calico/resources/v3/projectcalico.org/networkpolicies/ns1/p"
    msg = stored_error(key, {"spec": {"egress": [{"destination": {"ports": [[80]]}}]}})
    assert "NetworkPolicy(ns1/p).spec.egress[0].destination.ports[0]" in msg


def test_undecodable_stored_values_are_value_errors_naming_the_key():
    for raw in (b"x", b"[1]", b'"s"', b"\xff\xfe", b"[" * 100000, b'{"a":' * 5000):
        with pytest.raises(ValueError) as info:
            from_storage(POOL_KEY, raw, 3)
        assert not isinstance(info.value, UnknownKind)
        assert POOL_KEY in str(info.value)


def test_the_key_decides_the_kind_whatever_the_value_says():
    res = from_storage(POOL_KEY, b'{"kind":["x"],"apiVersion":7,"spec":{"cidr":"10.0.0.0/8"}}', 3)
    assert (res.kind, res.name, res.spec["cidr"]) == ("IPPool", "pool1", "10.0.0.0/8")
    res = from_storage(POOL_KEY, b'{"kind":"Node","metadata":null,"spec":null}', 3)
    assert res.kind == "IPPool" and res.metadata == {"name": "pool1", "resourceVersion": "3"}


def test_non_finite_and_non_json_values_are_reported():
    key = "/calico/resources/v3/projectcalico.org/tiers/t1"
    assert "Tier(t1).spec.order = 'nan'" in stored_error(key, {"spec": {"order": float("nan")}})
    msg = stored_error(key, {"spec": {"order": 1e400}})
    assert "Tier(t1).spec.order = 'inf' (number out of range" in msg
    with pytest.raises(ValidationError, match=r"metadata.creationTimestamp = 'inf' \(expected a finite number\)"):
        from_dict({"kind": "Tier", "apiVersion": API_VERSION,
                   "metadata": {"name": "t", "creationTimestamp": float("inf")}})
    with pytest.raises(ValidationError, match=r"metadata.ownerReferences\[0\].*not set"):
        from_dict({"kind": "Tier", "apiVersion": API_VERSION,
                   "metadata": {"name": "t", "ownerReferences": [{1, 2}]}})


def test_hand_built_resources_are_validated_without_crashing():
    for spec in ({"cidr": 5}, {"cidr": "10.0.0.0/8", "blockSize": "big"}, {"allowedUses": "Workload"}):
        with pytest.raises(ValidationError, match=r"IPPool\(p\)\.spec\."):
            validate_resource(Resource("IPPool", {"name": "p"}, spec))
    with pytest.raises(ValidationError, match=r"IPPool\.metadata = '\[1\]' \(expected an object\)"):
        validate_resource(Resource("IPPool", [1], {"cidr": "10.0.0.0/8"}))


# ---------------------------------------------------------------------------------------
# Malformed calicoctl input: a clear error naming the field, and nothing stored


def doc(body):
    return "apiVersion: projectcalico.org/v3\nkind: IPPool\n" + body


@pytest.mark.parametrize("body,message", [
    ("metadata: [1]\nspec: {cidr: 10.0.0.0/8}", "IPPool.metadata = '[1]' (expected an object)"),
    ("metadata: {name: p}\nspec: hello", "IPPool(p).spec = 'hello' (expected an object)"),
    ("metadata: {name: 12}\nspec: {cidr: 10.0.0.0/8}",
     "IPPool.metadata.name = '12' (expected a string; quote the value to use it as text)"),
    ("metadata: {name: p, namespace: yes}\nspec: {cidr: 10.0.0.0/8}", "IPPool(p).metadata.namespace = 'true'"),
    ("metadata: {name: p}\nspec: {cidr: 10.0.0.0/8, ipipMode: [Always]}", "IPPool(p).spec.ipipMode = '[Always]'"),
    ("metadata: {name: p}\nspec: {cidr: 10.0.0.0/8, blockSize: !!int abc}", "cannot read 'abc' as !!int"),
    ("metadata: {name: p}\nspec: {cidr: !!timestamp not-a-date}", "cannot read 'not-a-date' as !!timestamp"),
])
def test_malformed_documents_name_the_field(body, message):
    with pytest.raises(ValidationError) as info:
        load_resources(doc(body), "pools.yaml")
    assert message in str(info.value)


def test_quoted_numbers_are_names_and_spec_scalars_still_convert():
    (res,) = load_resources('apiVersion: projectcalico.org/v3\nkind: ClusterInformation\n'
                            'metadata: {name: "12"}\nspec: {calicoVersion: 3.31, clusterType: 7, variant: yes}')
    assert res.name == "12"
    assert res.spec == {"clusterType": "7", "calicoVersion": "3.31", "variant": "true"}


@pytest.fixture
def ctl(etcd_clean_config, etcd_kv, tmp_path, capsys):
    cfg = tmp_path / "calicoctl.cfg"
    cfg.write_text("apiVersion: projectcalico.org/v3\nkind: CalicoAPIConfig\nmetadata: {}\n"
                   f"spec:\n  datastoreType: etcdv3\n  etcdEndpoints: {etcd_clean_config.etcd_endpoints[0]}\n")

    def run(text):
        path = tmp_path / "in.yaml"
        path.write_text(text)
        code = calicoctl.main(["-c", str(cfg), "apply", "-f", str(path)])
        out = capsys.readouterr()
        return code, out.out + out.err

    return run


@pytest.mark.parametrize("body,field", [
    ("metadata: [1]\nspec: {cidr: 10.0.0.0/8}", "IPPool.metadata"),
    ("metadata: {name: p}\nspec: hello", "IPPool(p).spec"),
    ("metadata: {name: 12}\nspec: {cidr: 10.0.0.0/8}", "IPPool.metadata.name"),
])
def test_calicoctl_rejects_malformed_input_and_stores_nothing(ctl, etcd_kv, body, field):
    good = doc("metadata: {name: good}\nspec: {cidr: 10.9.0.0/16}")
    code, out = ctl(good + "\n---\n" + doc(body))
    assert code == 1 and field in out
    assert "Traceback" not in out
    items, _ = etcd_kv.list("/calico/resources/v3/")
    assert items == []


# ---------------------------------------------------------------------------------------
# Nesting


@pytest.mark.parametrize("text", ["[" * 100000, "[" * 100000 + "]" * 100000, "a:\n" + "- " * 5000 + "x\n",
                                  "&loop [*loop]"])
def test_deep_yaml_is_a_clear_error_naming_the_source(text):
    with pytest.raises(ValidationError) as info:
        load_documents(text, "deep.yaml")
    msg = str(info.value)
    assert msg.startswith("error with field deep.yaml = ''") and "document nested too deeply" in msg


def test_nesting_up_to_the_limit_is_fine_and_one_more_is_not():
    ok = "a: " + "[" * (MAX_NESTING - 1) + "]" * (MAX_NESTING - 1)
    assert load_documents(ok, "ok.yaml")
    with pytest.raises(ValidationError, match="nested too deeply"):
        load_documents("a: " + "[" * MAX_NESTING + "]" * MAX_NESTING, "deep.yaml")


def test_stored_values_nesting_past_the_limit_are_refused_and_shallow_ones_decoded():
    key = etcd_key("Tier", "t")
    at_limit = {"metadata": {"ownerReferences": [[]]}, "spec": {}}
    # The object, metadata, the list and its list are 4 levels; one more than the limit:
    for _ in range(MAX_NESTING - 3):
        at_limit["metadata"]["ownerReferences"] = [at_limit["metadata"]["ownerReferences"]]
    with pytest.raises(ValidationError, match="nested too deeply"):
        from_storage(key, json.dumps(at_limit), 3)
    at_limit["metadata"]["ownerReferences"] = at_limit["metadata"]["ownerReferences"][0]  # at the limit
    text = json.dumps(at_limit)
    assert text.count("[") + text.count("{") >= MAX_NESTING  # the bracket count cannot clear it
    try:
        from_storage(key, text, 3)
    except ValidationError as exc:
        assert "nested too deeply" not in str(exc)
    # Brackets inside strings only make the count more cautious.
    assert from_storage(key, json.dumps({"metadata": {"annotations": {"a": "[" * 500}}, "spec": {}}), 3).name == "t"


def test_deep_python_values_are_refused_by_from_dict():
    deep = []
    for _ in range(100000):
        deep = [deep]
    obj = {"kind": "Tier", "apiVersion": API_VERSION, "metadata": {"name": "t", "ownerReferences": deep}}
    with pytest.raises(ValidationError, match=r"resource = '' \(document nested too deeply"):
        from_dict(obj)
    loop = []
    loop.append(loop)
    obj["metadata"]["ownerReferences"] = loop
    with pytest.raises(ValidationError, match="nested too deeply"):
        from_dict(obj)


# ---------------------------------------------------------------------------------------
# Property: random JSON-like values into every kind


SAMPLES = st.sampled_from(["", "10.0.0.0/8", "fd00::/64", "Always", "all()", "TCP", "80:90", "1m30s", "64512",
                           "1.10", "a == 'b'", "eth0", "k8s", "Enabled"])
SCALARS = (st.none() | st.booleans() | st.integers(min_value=-(2 ** 70), max_value=2 ** 70)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=8) | SAMPLES)


@functools.lru_cache(maxsize=None)
def json_values(max_leaves=12):
    return st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3)
                        | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=max_leaves)


@st.composite
def shaped(draw, struct_name, depth=0):
    """A mapping that uses a few of the struct's real field names, so deep paths get exercised."""
    fields = STRUCTS[struct_name].fields
    chosen = draw(st.lists(st.sampled_from(fields), max_size=4, unique_by=lambda f: f.name))
    out = {}
    for f in chosen:
        t = f.type.elem if f.type.kind == "list" else f.type
        if t.kind == "struct" and depth < 3 and draw(st.booleans()):
            inner = shaped(t.struct, depth + 1)
            out[f.name] = draw(st.lists(inner, max_size=2) if f.type.kind == "list" else inner)
        elif t.kind in ("string", "strictstring", "enum") and draw(st.booleans()):
            out[f.name] = draw(st.sampled_from(t.values) if t.values else SAMPLES)
        else:
            out[f.name] = draw(json_values(4))
    return out


def part(struct_name):
    return shaped(struct_name) | json_values()


@st.composite
def documents(draw, kind):
    info = KINDS[kind]
    obj = {"kind": draw(st.sampled_from([kind, kind, kind, "Nope", 5, None])),
           "apiVersion": draw(st.sampled_from([API_VERSION, API_VERSION, "v1", None]))}
    for key, struct_name in (("metadata", "ObjectMeta"), ("spec", info.spec), ("status", info.status)):
        if draw(st.booleans()):
            obj[key] = draw(part(struct_name or "ObjectMeta"))
    if draw(st.booleans()):
        obj[draw(st.text(max_size=5))] = draw(json_values(3))
    return obj


ALLOWED = (ValidationError, UnknownKind)


@pytest.mark.parametrize("kind", sorted(KINDS))
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_documents_never_crash_and_what_loads_round_trips(kind, data):
    obj = data.draw(documents(kind))
    strict, validate = data.draw(st.booleans()), data.draw(st.booleans())
    try:
        res = from_dict(obj, strict=strict, validate=validate)
    except ALLOWED:
        return
    info = res.info
    for _, column in info.columns + info.wide_columns:
        assert isinstance(column(res.to_dict()), str)
    stored = res.storage_json()
    if not info.v3_storage or not res.name or "/" in res.name or (info.namespaced and not res.namespace):
        return
    if "/" in res.namespace:
        return
    key = etcd_key(res.kind, res.name, res.namespace)
    back = from_storage(key, stored, 9)
    assert back.storage_json() == stored


@pytest.mark.parametrize("kind", V3_KINDS)
@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_stored_values_raise_only_value_or_validation_errors(kind, data):
    info = KINDS[kind]
    key = etcd_key(kind, "n1", "ns1" if info.namespaced else "")
    value = data.draw(documents(kind) | json_values())
    try:
        raw = json.dumps(value)
    except (TypeError, ValueError):
        return
    try:
        res = from_storage(key, raw, 5)
    except (ValueError, ValidationError):
        return
    assert res.kind == kind and res.name == "n1"
    assert isinstance(res.storage_json(), str)


@pytest.mark.parametrize("kind", sorted(KINDS))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_columns_accept_any_shape(kind, data):
    info = KINDS[kind]
    obj = data.draw(json_values() | documents(kind))
    for _, column in info.columns + info.wide_columns:
        assert isinstance(column(obj), str)


YAMLISH = st.lists(st.sampled_from(["[", "]", "{", "}", ":", ", ", "- ", "\n", "  ", "&a ", "*a", "!!int ", "!!str ",
                                    "!!timestamp ", "!!binary ", "!!float ", "? ", "|\n", "'", '"', "#", "kind",
                                    "IPPool", "metadata", "name", "spec", "cidr", "apiVersion", "projectcalico.org/v3",
                                    "12", "1e-7", "yes", "x", "\t", "%YAML 1.1\n", "---\n", "...\n", "\x07"]),
                   max_size=40).map("".join)


@settings(max_examples=400, deadline=None)
@given(text=YAMLISH | st.text(max_size=60))
def test_random_text_gives_only_validation_errors(text):
    try:
        load_resources(text, "fuzz.yaml")
    except ALLOWED:
        pass
