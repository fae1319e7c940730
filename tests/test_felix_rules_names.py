"""Chain, IP-set and policy-group names; mark-bit allocation."""
import pytest

from node.felix.rules import names
from node.felix.rules.config import RulesConfig, allocate_marks
from node.felix.rules.endpoints import DIRECTION_INBOUND, DIRECTION_OUTBOUND, PolicyGroup
from node.felix.types import (
    KIND_GLOBAL_NETWORK_POLICY, KIND_KUBERNETES_NETWORK_POLICY, KIND_NETWORK_POLICY,
    KIND_STAGED_GLOBAL_NETWORK_POLICY, PolicyID)


def test_length_limited_id_vectors():
    # libcalico-go hash.GetLengthLimitedID unit-test vectors.
    assert names.length_limited_id("felix", "1234", 10) == "felix1234"
    assert names.length_limited_id("felix", "123456", 11) == "felix123456"
    assert names.length_limited_id("felix", "_2345", 10) == "felix_kMQI"
    assert names.length_limited_id("felix", "12345678910", 13) == "felix_Y2QCZIS"
    assert names.length_limited_id("felix", "", 10) == "felix_"
    with pytest.raises(ValueError):
        names.length_limited_id("felix", "toolong", 6)


def test_spec_chain_name_examples():
    knp = KIND_KUBERNETES_NETWORK_POLICY
    assert names.policy_chain_name("cali-pi-", PolicyID("allow-from-a", "ns1", knp)) == \
        "cali-pi-knp/ns1/allow-from-a"
    assert names.policy_chain_name("cali-pi-", PolicyID("allow-web", "default", knp)) == \
        "cali-pi-_l7X9Omtz7dibbh9L3Lp"
    assert names.profile_chain_name("cali-pri-", "ksa.default.default") == "cali-pri-ksa.default.default"
    assert names.endpoint_chain_name("cali-thfw-", names.ALL_INTERFACES) == "cali-thfw-_Nqh4HyA73udmyanQI"
    assert names.endpoint_chain_name("cali-th-", names.ALL_INTERFACES) == "cali-th-any-interface-at-all"


def test_policy_test_chain_name_vectors():
    gnp = PolicyID("long-policy-name-that-gets-hashed", kind=KIND_GLOBAL_NETWORK_POLICY)
    assert names.policy_chain_name("cali-pi-", gnp) == "cali-pi-_PymyFHQQg3808jiz1OJ"
    assert names.policy_chain_name("cali-po-", gnp) == "cali-po-_PymyFHQQg3808jiz1OJ"
    assert names.profile_chain_name("cali-pri-", "long-policy-name-that-gets-hashed") == \
        "cali-pri-_ffOMcf6pikpiZ6hgKc"
    assert names.profile_chain_name("cali-pro-", "long-policy-name-that-gets-hashed") == \
        "cali-pro-_ffOMcf6pikpiZ6hgKc"
    assert names.policy_chain_name("cali-pi-", PolicyID("default.foo", kind=KIND_GLOBAL_NETWORK_POLICY)) == \
        "cali-pi-gnp/default.foo"
    assert names.policy_chain_name("cali-po-", PolicyID("p", "ns", KIND_NETWORK_POLICY)) == "cali-po-np/ns/p"


def test_ip_set_names():
    assert names.ip_set_name("network-ip-pools", 4) == "cali40network-ip-pools"
    assert names.ip_set_name("this-host", 6) == "cali60this-host"
    # Selector set IDs are cut to 31 characters: cali40s: + 23 hash characters.
    assert names.ip_set_name("s:Rz2tLuROzxUubxYL2oDTxjKxxxxxxxxxxxxxx", 4) == "cali40s:Rz2tLuROzxUubxYL2oDTxjK"
    assert names.ip_set_name("n:abcdefghijklmnopqrstuvwxyz", 6) == "cali60n:abcdefghijklmnopqrstuvw"
    with pytest.raises(ValueError):
        names.ip_set_name("x", 5)


def test_policy_group_uid_and_chain_name():
    g = PolicyGroup(DIRECTION_INBOUND, (PolicyID("a", kind=KIND_GLOBAL_NETWORK_POLICY),
                                        PolicyID("b", kind=KIND_GLOBAL_NETWORK_POLICY)), "all()")
    # SHA3-224 of "all()\ninbound\n2\n{Name: a, Namespace: , Kind: GlobalNetworkPolicy}\n{Name: b, ...}\n".
    assert g.unique_id == "js-B7zioflPRrAki3OCu"
    assert g.chain_name == "cali-gi-js-B7zioflPRrAki3OCu"
    assert len(g.chain_name) == 28
    out = PolicyGroup(DIRECTION_OUTBOUND, g.policies, "all()")
    assert out.chain_name.startswith("cali-go-") and out.unique_id != g.unique_id
    # Policies are delimited in the hash: aaa+bbb differs from aaab+bb.
    g1 = PolicyGroup(DIRECTION_INBOUND, (PolicyID("aaa"), PolicyID("bbb")), "all()")
    g2 = PolicyGroup(DIRECTION_INBOUND, (PolicyID("aaab"), PolicyID("bb")), "all()")
    assert g1.unique_id != g2.unique_id
    assert PolicyGroup(DIRECTION_INBOUND, (), "all()").unique_id != \
        PolicyGroup(DIRECTION_INBOUND, (), "a == 'b'").unique_id


def test_policy_group_staged_detection():
    staged = PolicyID("foo", "namespace", KIND_STAGED_GLOBAL_NETWORK_POLICY)
    real = PolicyID("bar", "namespace", KIND_GLOBAL_NETWORK_POLICY)
    assert not PolicyGroup(DIRECTION_INBOUND, (staged,), "all()").has_non_staged_policies()
    assert PolicyGroup(DIRECTION_INBOUND, (staged, real), "all()").has_non_staged_policies()
    assert PolicyGroup(DIRECTION_INBOUND, (staged, real), "all()").should_be_inlined()
    assert not PolicyGroup(DIRECTION_INBOUND, (real, real), "all()").should_be_inlined()


def test_mark_allocation():
    m = allocate_marks(0xFFFF0000)
    assert (m.accept, m.pass_, m.drop, m.scratch0, m.scratch1, m.wireguard, m.endpoint) == (
        0x10000, 0x20000, 0x40000, 0x80000, 0x100000, 0, 0xFFE00000)
    wg = allocate_marks(0xFFFF0000, wireguard=True)
    assert (wg.wireguard, wg.endpoint) == (0x200000, 0xFFC00000)
    sparse = allocate_marks(0x1F00F)
    assert (sparse.accept, sparse.pass_, sparse.drop, sparse.scratch0, sparse.scratch1, sparse.endpoint) == (
        0x1, 0x2, 0x4, 0x8, 0x1000, 0x1E000)
    # Felix's renderer needs every mark, the endpoint mark included: six bits at least.
    with pytest.raises(ValueError, match="at least 6"):
        allocate_marks(0x1F)
    assert allocate_marks(0x3F).endpoint == 0x20
    with pytest.raises(ValueError, match="at least 7"):
        allocate_marks(0x3F, wireguard=True)
    cfg = RulesConfig()
    assert cfg.all_calico_mark_bits == 0x1B0000
    assert cfg.all_calico_mark_bits & ~cfg.mark_accept == 0x1A0000
    assert RulesConfig.from_mark_mask(0xFF00, vxlan_enabled=True).mark_accept == 0x100
    assert RulesConfig.from_mark_mask(wireguard_enabled=True).mark_wireguard == 0x200000
