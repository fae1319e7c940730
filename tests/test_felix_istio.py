"""Istio ambient mode in iptables mode (Felix v3.32): IstioAmbientMode/IstioDSCPMark, the
calculation's "all-istio-weps" set (istio_calculator.go) and the DSCP rule that starts
mangle cali-POSTROUTING (StaticManglePostroutingChain, static_test.go)."""
from __future__ import annotations

import pytest

from felix_calc_builders import REMOTE, delete, felix_config, hep, netset, ns_profile, put, wep
from node.datastore.syncer import SyncStatus
from node.felix import types as t
from node.felix.calc import PolicyCalculation
from node.felix.config import FelixConfig, v1_config_from_spec
from node.felix.pipeline import Pipeline
from node.felix.rules.config import RulesConfig
from node.felix.rules.static import mangle_postrouting_chain

SET = "all-istio-weps"
AMBIENT = {"istio.io/dataplane-mode": "ambient"}
NONE = {"istio.io/dataplane-mode": "none"}


# -- configuration ------------------------------------------------------------------------

def test_defaults():
    c = FelixConfig.resolve({})
    assert (c.IstioAmbientMode, c.IstioDSCPMark) == ("Disabled", 23)


@pytest.mark.parametrize("raw, value", [("10", 10), ("0", 0), ("63", 63), ("007", 7), ("EF", 46),
                                        ("af21", 18), (" cs6 ", 48)])
def test_dscp_mark_parses_as_felix_dscp_param(raw, value):
    c = FelixConfig.resolve({"FELIX_ISTIODSCPMARK": raw})
    assert c.IstioDSCPMark == value and not c.problems


@pytest.mark.parametrize("raw", ["64", "-1", "+5", "AF99", "0x10"])
def test_bad_dscp_mark_keeps_the_default(raw):
    c = FelixConfig.resolve({"FELIX_ISTIODSCPMARK": raw})
    assert c.IstioDSCPMark == 23
    assert len(c.problems) == 1 and "IstioDSCPMark" in c.problems[0]


def test_mode_from_env_and_felix_configuration():
    assert FelixConfig.resolve({"FELIX_ISTIOAMBIENTMODE": "enabled"}).IstioAmbientMode == "Enabled"
    bad = FelixConfig.resolve({"FELIX_ISTIOAMBIENTMODE": "on"})
    assert bad.IstioAmbientMode == "Disabled" and bad.problems
    spec = v1_config_from_spec({"istioAmbientMode": "Enabled", "istioDSCPMark": "AF11"})
    c = FelixConfig.resolve({}, global_config=spec)
    assert (c.IstioAmbientMode, c.IstioDSCPMark) == ("Enabled", 10)
    c = FelixConfig.resolve({}, global_config=v1_config_from_spec({"istioDSCPMark": 40}))
    assert c.IstioDSCPMark == 40


# -- rules --------------------------------------------------------------------------------

def _istio_rule(prefix: str, version: int, mark: int) -> str:
    mesh = f"cali{version}0all-istio-weps"
    return (f"-p tcp -m conntrack --ctstate NEW --out-interface {prefix}+ -m set --match-set {mesh} dst "
            f"-m set --match-set {mesh} src --jump DSCP --set-dscp {mark}")


@pytest.mark.parametrize("version", [4, 6])
def test_mangle_postrouting_starts_with_the_istio_rule(version):
    off = mangle_postrouting_chain(RulesConfig(), version)
    on = mangle_postrouting_chain(RulesConfig(istio_ambient_mode_enabled=True, istio_dscp_mark=10), version)
    assert on.name == "cali-POSTROUTING"
    assert [r.body for r in on.rules] == [_istio_rule("cali", version, 10)] + [r.body for r in off.rules]
    assert not any("DSCP --set-dscp" in r.body for r in off.rules)


def test_one_istio_rule_per_workload_prefix():
    cfg = RulesConfig(istio_ambient_mode_enabled=True, workload_iface_prefixes=("cali", "tap"))
    bodies = [r.body for r in mangle_postrouting_chain(cfg, 4).rules[:3]]
    assert bodies[:2] == [_istio_rule("cali", 4, 23), _istio_rule("tap", 4, 23)]
    assert "istio" not in bodies[2]


# -- calculation --------------------------------------------------------------------------

def _endpoints():
    return [
        ns_profile("ns1"), ns_profile("mesh", AMBIENT),
        wep("by-label", ips=("10.65.0.1/32", "fd00:65::1/128"), labels=AMBIENT),
        wep("remote", node=REMOTE, ips=("10.65.1.1/32",), labels=AMBIENT),
        wep("in-mesh-ns", ns="mesh", ips=("10.65.0.2/32",)),
        wep("remote-in-mesh-ns", ns="mesh", node=REMOTE, ips=("10.65.1.2/32",)),
        wep("opted-out", ns="mesh", ips=("10.65.0.3/32",), labels=NONE),
        wep("plain", ips=("10.65.0.4/32",)),
        wep("other-mode", ips=("10.65.0.5/32",), labels={"istio.io/dataplane-mode": "sidecar"}),
    ]


def _sets(calc: PolicyCalculation) -> dict:
    out: dict = {}
    for msg in calc.take_messages():
        if isinstance(msg, t.IPSetUpdate):
            out[msg.id] = (msg.type, set(msg.members))
        elif isinstance(msg, t.IPSetDeltaUpdate):
            out[msg.id][1].update(msg.added)
            out[msg.id][1].difference_update(msg.removed)
        elif isinstance(msg, t.IPSetRemove):
            out.pop(msg.id, None)
    return out


WANT = {"10.65.0.1/32", "fd00:65::1/128", "10.65.1.1/32", "10.65.0.2/32", "10.65.1.2/32"}


@pytest.mark.parametrize("late", [False, True])
def test_set_holds_local_and_remote_ambient_endpoints(late):
    calc = PolicyCalculation("node1", istio_ambient=not late)
    calc.on_updates(put(*_endpoints()))
    calc.on_in_sync()
    if late:  # enabled once the configuration is known, after the endpoints arrived
        calc.enable_istio_ambient()
    assert _sets(calc) == {SET: (t.IPSetType.IP, WANT)}


def test_set_follows_label_changes():
    calc = PolicyCalculation("node1", istio_ambient=True)
    calc.on_updates(put(*_endpoints()))
    calc.on_in_sync()
    sets = _sets(calc)
    calc.on_updates(put(wep("by-label", ips=("10.65.0.1/32", "fd00:65::1/128"), labels=NONE),
                        wep("opted-out", ns="mesh", ips=("10.65.0.3/32",)),
                        ns_profile("ns1", AMBIENT)))
    calc.on_updates(delete(wep("remote", node=REMOTE)))
    for msg in calc.take_messages():
        if isinstance(msg, t.IPSetDeltaUpdate):
            assert msg.id == SET
            sets[SET][1].update(msg.added)
            sets[SET][1].difference_update(msg.removed)
    # by-label now says "none" (its namespace is ambient now, but "none" wins); plain and
    # other-mode join with their namespace; opted-out lost its "none".
    assert sets[SET][1] == {"10.65.0.2/32", "10.65.1.2/32", "10.65.0.3/32", "10.65.0.4/32", "10.65.0.5/32"}


def test_host_endpoints_with_the_label_count_too():
    calc = PolicyCalculation("node1", istio_ambient=True)
    calc.on_updates(put(hep("h1", ips=("10.0.0.1",), labels=AMBIENT)))
    calc.on_in_sync()
    assert _sets(calc) == {SET: (t.IPSetType.IP, {"10.0.0.1/32"})}


def test_no_set_when_disabled():
    calc = PolicyCalculation("node1")
    calc.on_updates(put(*_endpoints()))
    calc.on_in_sync()
    assert SET not in _sets(calc)


# -- the agent's pipeline -----------------------------------------------------------------

def _pipeline(env=None, *extra) -> Pipeline:
    p = Pipeline("node1", env or {})
    p.on_updates(put(*_endpoints(), *extra))
    p.on_status(SyncStatus.IN_SYNC)
    p.complete()
    p.set_interfaces({"eth0": ["10.0.0.1", "fd00::1"]})
    return p


def _members(p: Pipeline, version: int):
    dp = p.dataplanes[version]
    ipset = dp.ipsets.sets.get(dp.ipsets.name(SET))
    return None if ipset is None else (ipset.type, set(ipset.members))


def _first_mangle_rule(p: Pipeline, version: int) -> str:
    return p.dataplanes[version].tables["mangle"].chain("cali-POSTROUTING").rules[0].body


@pytest.mark.parametrize("how", ["env", "felixconfiguration"])
def test_pipeline_programs_the_set_and_rule_per_family(how):
    if how == "env":
        p = _pipeline({"FELIX_ISTIOAMBIENTMODE": "Enabled", "FELIX_ISTIODSCPMARK": "EF"})
    else:
        p = _pipeline({}, felix_config("default", istioAmbientMode="Enabled", istioDSCPMark="EF"))
    assert _members(p, 4) == (t.IPSetType.IP, {"10.65.0.1", "10.65.1.1", "10.65.0.2", "10.65.1.2"})
    assert _members(p, 6) == (t.IPSetType.IP, {"fd00:65::1"})
    assert _first_mangle_rule(p, 4) == _istio_rule("cali", 4, 46)
    assert _first_mangle_rule(p, 6) == _istio_rule("cali", 6, 46)
    # Members keep following the endpoints.
    p.on_updates(put(wep("plain", ips=("10.65.0.4/32",), labels=AMBIENT)))
    p.complete()
    assert "10.65.0.4" in _members(p, 4)[1]


def test_pipeline_without_the_mode_has_neither():
    p = _pipeline()
    assert _members(p, 4) is None and _members(p, 6) is None
    assert "istio" not in _first_mangle_rule(p, 4)


def test_turning_the_mode_on_later_restarts_the_agent():
    p = _pipeline()
    assert not p.config_changed
    p.on_updates(put(felix_config("default", istioAmbientMode="Enabled")))
    p.complete()
    assert p.config_changed


def test_a_network_set_in_the_mesh_adds_only_its_address_as_felix_does():
    """Network sets feed the set through the shared member index; Felix's hash:ip
    canonicalisation keeps only a CIDR's address (10.70.0.0/24 is 10.70.0.0, not 256)."""
    p = _pipeline({"FELIX_ISTIOAMBIENTMODE": "Enabled"},
                  netset("mesh-peers", "ns1", ["10.70.0.0/24", "10.71.0.9/32", "fd00:70::/64"], labels=AMBIENT))
    assert {"10.70.0.0", "10.71.0.9"} <= _members(p, 4)[1] and not any("/" in m for m in _members(p, 4)[1])
    assert "fd00:70::" in _members(p, 6)[1]
    p.on_updates(delete(netset("mesh-peers", "ns1", [], labels=AMBIENT)))
    p.complete()
    assert "10.70.0.0" not in _members(p, 4)[1] and "fd00:70::" not in _members(p, 6)[1]
