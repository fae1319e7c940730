"""Each local workload endpoint's live migration role (Felix's LiveMigrationCalculator,
felix/calc/live_migration_calculator.go, its tests and the live migration states of
states_for_test.go): first the calculation on its own, then through the whole policy
calculation, where every step is also checked against a fresh calculation over the same
resources and, for random worlds, against a brute-force reading of the rules."""
from __future__ import annotations

import logging

import pytest

from node.felix import types as t
from node.felix.calc import v1
from node.felix.calc.live_migration import LiveMigrations, vmi_name
from node.felix.calc.workload_selectors import LocalWorkloadSelectors
from node.selector import parse

from felix_calc_builders import LOCAL, REMOTE, hep, live_migration, ns_profile, wep, wep_name
from test_felix_calc_bgp_peers import Calc

SOURCE, TARGET = t.LIVE_MIGRATION_SOURCE, t.LIVE_MIGRATION_TARGET


def workload(workload_id: str, hostname: str = "host1", orchestrator: str = "k8s") -> dict:
    """A source naming every endpoint of a workload."""
    return {"workload": {"hostname": hostname, "orchestratorID": orchestrator, "workloadID": workload_id}}


def endpoint(workload_id: str, endpoint_id: str = "eth0", hostname: str = "host1", orchestrator: str = "k8s") -> dict:
    """A source or target naming one workload endpoint."""
    return {"workloadEndpoint": {"hostname": hostname, "orchestratorID": orchestrator, "workloadID": workload_id,
                                 "endpointID": endpoint_id}}


def selector(text: str) -> dict:
    return {"selector": text}


# ======================================================================================
# The calculation on its own, fed as the policy calculation feeds it.

class Env:
    """A LiveMigrations with its shared selector index; records every (key, role) change
    it reports."""

    def __init__(self) -> None:
        self.weps: dict = {}       # key -> (labels, profile ids)
        self.profiles: dict = {}   # name -> labels
        self.events: list = []
        self.selectors = LocalWorkloadSelectors(
            lambda: ([(k, labels, ids) for k, (labels, ids) in self.weps.items()], list(self.profiles.items())))
        self.lm = LiveMigrations(self._changed, self.selectors, lambda: list(self.weps))

    def _changed(self, key) -> None:
        self.events.append((key, self.lm.role_of.get(key, ("", ""))))

    def add_wep(self, key, labels=None, profiles=()) -> None:
        labels = dict(labels or {})
        self.weps[key] = (labels, tuple(profiles))
        if self.lm.active:
            self.lm.endpoint_updated(key)
        if self.selectors.active:
            self.selectors.endpoint_updated(key, labels, profiles)

    def remove_wep(self, key) -> None:
        del self.weps[key]
        if self.lm.active:
            self.lm.endpoint_removed(key)
        if self.selectors.active:
            self.selectors.endpoint_removed(key)

    def set_profile(self, name, labels) -> None:
        self.profiles[name] = dict(labels)
        if self.selectors.active:
            self.selectors.profile_labels(name, labels)

    def put(self, name: str, source=None, target=None, uid=None) -> None:
        self.lm.on_live_migration(live_migration(name, source, target, uid), False)

    def delete(self, name: str) -> None:
        self.lm.on_live_migration(live_migration(name), True)

    def role(self, key) -> str:
        return self.lm.role_of.get(key, ("", ""))[0]

    def uid(self, key) -> str:
        return self.lm.role_of.get(key, ("", ""))[1]

    def last_event(self, key):
        return next((role for k, role in reversed(self.events) if k == key), None)

    @property
    def filed_selectors(self) -> dict:
        return {text: len(users) for text, users in self.lm._by_selector.items()}


def key(pod: str, endpoint_id: str = "eth0", ns: str = "ns", hostname: str = "host1", orchestrator: str = "k8s"):
    return v1.WorkloadEndpointKey(hostname, orchestrator, f"{ns}/{pod}", endpoint_id)


# --- Calico's cases, endpoint-level names ----------------------------------------------

def test_live_migration_then_endpoints():
    env = Env()
    env.put("lm1", endpoint("ns/src-pod"), endpoint("ns/dst-pod"))
    assert env.events == []
    env.add_wep(key("src-pod"))
    assert env.events == [(key("src-pod"), (SOURCE, ""))]
    env.add_wep(key("dst-pod"))
    assert env.events[-1] == (key("dst-pod"), (TARGET, ""))


def test_endpoints_then_live_migration_then_its_deletion():
    env = Env()
    env.add_wep(key("src-pod"))
    env.add_wep(key("dst-pod"))
    assert env.events == [] and not env.lm.active
    env.put("lm1", endpoint("ns/src-pod"), endpoint("ns/dst-pod"))
    assert (env.role(key("src-pod")), env.role(key("dst-pod"))) == (SOURCE, TARGET)
    env.delete("lm1")
    assert env.lm.role_of == {}
    assert env.last_event(key("src-pod")) == env.last_event(key("dst-pod")) == ("", "")
    assert not env.lm.active


def test_target_wins_over_source():
    env = Env()
    env.add_wep(key("pod-a"))
    env.put("lm1", endpoint("ns/pod-a"))
    assert env.role(key("pod-a")) == SOURCE
    env.put("lm2", None, endpoint("ns/pod-a"))
    assert env.role(key("pod-a")) == TARGET
    env.delete("lm2")
    assert env.role(key("pod-a")) == SOURCE


def test_an_update_moving_the_source():
    env = Env()
    env.add_wep(key("pod-a"))
    env.add_wep(key("pod-b"))
    env.put("lm1", endpoint("ns/pod-a"))
    assert env.role(key("pod-a")) == SOURCE
    env.put("lm1", endpoint("ns/pod-b"))
    assert (env.role(key("pod-a")), env.role(key("pod-b"))) == ("", SOURCE)


# --- Calico's cases, target selectors --------------------------------------------------

def test_selector_target_and_the_endpoint_going():
    env = Env()
    env.put("lm1", None, selector("has(migrate)"))
    env.add_wep(key("dst-pod"), {"migrate": "true"})
    assert env.role(key("dst-pod")) == TARGET
    env.remove_wep(key("dst-pod"))
    assert env.lm.role_of == {}


def test_selector_match_then_live_migration_deleted():
    env = Env()
    env.add_wep(key("dst-pod"), {"migrate": "true"})
    env.put("lm1", None, selector("has(migrate)"))
    assert env.role(key("dst-pod")) == TARGET
    env.delete("lm1")
    assert env.last_event(key("dst-pod")) == ("", "")
    assert not env.selectors.active


def test_live_migrations_sharing_a_selector_file_it_once():
    env = Env()
    env.put("lm1", None, selector("has(migrate)"))
    env.put("lm2", None, selector("has(migrate)"))
    assert env.filed_selectors == {"has(migrate)": 2}
    env.add_wep(key("dst-pod"), {"migrate": "true"})
    assert env.role(key("dst-pod")) == TARGET
    before = len(env.events)
    env.delete("lm1")
    assert env.filed_selectors == {"has(migrate)": 1}
    assert len(env.events) == before  # (still the target: nothing to re-send)
    env.delete("lm2")
    assert env.filed_selectors == {} and not env.selectors.active
    assert env.role(key("dst-pod")) == ""


def test_an_update_changing_the_selector():
    env = Env()
    env.put("lm1", None, selector("has(selectorA)"))
    env.add_wep(key("pod-a"), {"selectorA": "yes", "selectorB": "yes"})
    assert env.role(key("pod-a")) == TARGET
    before = len(env.events)
    env.put("lm1", None, selector("has(selectorB)"))
    assert env.filed_selectors == {"has(selectorB)": 1}
    assert env.role(key("pod-a")) == TARGET
    assert len(env.events) == before  # (the role never went away within the update)


def test_endpoint_deletion_forgets_it_and_duplicate_updates_do_nothing():
    env = Env()
    env.add_wep(key("pod-a"))
    env.put("lm1", endpoint("ns/pod-a"))
    before = len(env.events)
    env.add_wep(key("pod-a"), {"new": "labels"})
    assert len(env.events) == before
    env.remove_wep(key("pod-a"))
    assert env.lm.role_of == {} and env.lm._workloads == {}


def test_no_source_or_target_and_an_empty_target():
    env = Env()
    env.add_wep(key("pod-a"))
    env.put("lm1")
    env.put("lm2", {}, {})
    env.put("lm3", {"workload": {}}, {"workloadEndpoint": {}, "selector": ""})
    assert env.lm.role_of == {} and env.events == []
    assert env.filed_selectors == {} and not env.selectors.active


def test_source_host_end_to_end():
    env = Env()
    env.add_wep(key("src-pod"))
    env.put("lm1", endpoint("ns/src-pod"), endpoint("ns/dst-pod"))
    assert env.role(key("src-pod")) == SOURCE
    env.delete("lm1")
    assert env.role(key("src-pod")) == ""


def test_transient_overlap_of_two_sources():
    env = Env()
    env.add_wep(key("pod-a"))
    env.put("lm1", endpoint("ns/pod-a"))
    env.put("lm2", endpoint("ns/pod-a"))
    assert env.role(key("pod-a")) == SOURCE
    before = len(env.events)
    env.delete("lm1")
    assert len(env.events) == before
    env.delete("lm2")
    assert env.role(key("pod-a")) == ""


def test_selector_and_direct_target_together():
    env = Env()
    env.add_wep(key("pod-a"), {"migrate": "true"})
    env.put("lm1", None, endpoint("ns/pod-a"))
    assert env.role(key("pod-a")) == TARGET
    before = len(env.events)
    env.put("lm2", None, selector("has(migrate)"))
    assert len(env.events) == before
    env.delete("lm1")
    assert env.role(key("pod-a")) == TARGET
    env.delete("lm2")
    assert env.role(key("pod-a")) == ""


def test_endpoint_recreated_gets_its_role_again():
    env = Env()
    env.put("lm1", endpoint("ns/pod-a"))
    env.add_wep(key("pod-a"))
    env.remove_wep(key("pod-a"))
    env.add_wep(key("pod-a"))
    assert env.role(key("pod-a")) == SOURCE
    assert [role for _k, role in env.events] == [(SOURCE, ""), ("", ""), (SOURCE, "")]


def test_uid_goes_with_the_role():
    env = Env()
    env.add_wep(key("src-pod"))
    env.add_wep(key("dst-pod"))
    env.put("lm1", endpoint("ns/src-pod"), endpoint("ns/dst-pod"), uid="test-uid-12345")
    assert env.lm.role_of == {key("src-pod"): (SOURCE, "test-uid-12345"), key("dst-pod"): (TARGET, "test-uid-12345")}
    env.delete("lm1")
    assert env.last_event(key("src-pod")) == env.last_event(key("dst-pod")) == ("", "")


def test_uid_of_a_selector_target():
    env = Env()
    env.put("lm1", None, selector("has(migrate)"), uid="selector-uid-999")
    env.add_wep(key("dst-pod"), {"migrate": "true"})
    assert env.lm.role_of[key("dst-pod")] == (TARGET, "selector-uid-999")


# --- Calico's cases, workload-level names ----------------------------------------------

def test_workload_level_source_names_every_endpoint():
    env = Env()
    env.add_wep(key("src-pod", "eth0"))
    env.add_wep(key("src-pod", "eth1"))
    env.add_wep(key("other-pod", "eth0"))
    env.put("lm1", workload("ns/src-pod"))
    assert env.lm.role_of == {key("src-pod", "eth0"): (SOURCE, ""), key("src-pod", "eth1"): (SOURCE, "")}
    env.delete("lm1")
    assert env.lm.role_of == {}


def test_workload_level_source_before_its_endpoints():
    env = Env()
    env.put("lm1", workload("ns/src-pod"))
    assert env.events == []
    env.add_wep(key("src-pod", "eth0"))
    env.add_wep(key("src-pod", "eth1"))
    assert set(env.lm.role_of) == {key("src-pod", "eth0"), key("src-pod", "eth1")}


def test_workload_level_source_when_one_endpoint_goes():
    env = Env()
    env.add_wep(key("src-pod", "eth0"))
    env.add_wep(key("src-pod", "eth1"))
    env.put("lm1", workload("ns/src-pod"))
    env.remove_wep(key("src-pod", "eth0"))
    assert env.lm.role_of == {key("src-pod", "eth1"): (SOURCE, "")}


# --- Beyond Calico's unit cases ----------------------------------------------------------

def test_hostname_counts_only_for_other_orchestrators():
    env = Env()
    env.add_wep(key("a"))
    env.add_wep(key("vm1", orchestrator="openstack"))
    env.add_wep(key("vm2", orchestrator="openstack"))
    # k8s: namespace/pod is unique, whatever host the LiveMigration names.
    env.put("lm1", endpoint("ns/a", hostname="elsewhere"))
    env.put("lm2", endpoint("ns/vm1", hostname="elsewhere", orchestrator="openstack"))
    env.put("lm3", None, endpoint("ns/vm2", hostname="host1", orchestrator="openstack"))
    assert env.lm.role_of == {key("a"): (SOURCE, ""), key("vm2", orchestrator="openstack"): (TARGET, "")}


def test_a_workload_endpoint_name_without_endpoint_names_the_whole_workload():
    env = Env()
    env.add_wep(key("pod", "eth0"))
    env.add_wep(key("pod", "eth1"))
    env.put("lm1", None, endpoint("ns/pod", endpoint_id=""))
    assert set(env.lm.role_of) == {key("pod", "eth0"), key("pod", "eth1")}


def test_a_source_giving_both_uses_the_workload_and_a_target_giving_both_uses_both():
    env = Env()
    for pod in ("a", "b", "c", "d"):
        env.add_wep(key(pod), {"pod": pod})
    env.put("lm1", {**workload("ns/a"), **endpoint("ns/b")}, {**endpoint("ns/c"), **selector("pod == 'd'")})
    assert env.lm.role_of == {key("a"): (SOURCE, ""), key("c"): (TARGET, ""), key("d"): (TARGET, "")}


def test_overlapping_live_migrations_report_the_greatest_uid_of_the_winning_role():
    env = Env()
    env.add_wep(key("a"), {"m": "1"})
    env.put("lm1", endpoint("ns/a"), uid="uid-b")
    env.put("lm2", endpoint("ns/a"), uid="uid-a")
    assert env.lm.role_of[key("a")] == (SOURCE, "uid-b")
    env.put("lm3", endpoint("ns/a"), uid="uid-c")
    # (Felix keeps the uid it first sent until the role changes; here the endpoint is
    # sent again with the uid the current LiveMigrations give.)
    assert env.events[-1] == (key("a"), (SOURCE, "uid-c"))
    env.put("lm4", None, endpoint("ns/a"), uid="uid-0")
    assert env.lm.role_of[key("a")] == (TARGET, "uid-0")
    env.put("lm5", None, selector("has(m)"), uid="uid-00")
    assert env.lm.role_of[key("a")] == (TARGET, "uid-00")
    env.delete("lm5")
    env.delete("lm4")
    env.delete("lm3")
    assert env.lm.role_of[key("a")] == (SOURCE, "uid-b")


def test_an_endpoint_stays_a_target_while_any_selector_matches_it():
    env = Env()
    env.add_wep(key("a"), {"x": "1", "y": "1"})
    env.put("lm1", None, selector("has(x)"), uid="u1")
    env.put("lm2", None, selector("has(y)"), uid="u2")
    assert env.lm.role_of[key("a")] == (TARGET, "u2")
    env.delete("lm2")
    assert env.lm.role_of[key("a")] == (TARGET, "u1")


def test_profile_labels_count_for_target_selectors():
    env = Env()
    env.set_profile("kns.ns", {"pcns.env": "prod"})
    env.add_wep(key("a"), {}, ["kns.ns"])
    env.add_wep(key("b"), {"pcns.env": "dev"}, ["kns.ns"])  # (own labels win)
    env.put("lm1", None, selector("pcns.env == 'prod'"))
    assert set(env.lm.role_of) == {key("a")}
    env.set_profile("kns.ns", {"pcns.env": "test"})
    assert env.lm.role_of == {}


def test_invalid_live_migrations_are_logged_and_count_as_absent(caplog):
    env = Env()
    env.add_wep(key("a"), {"m": "1"})
    env.put("lm1", None, selector("has(m)"))
    assert env.role(key("a")) == TARGET
    with caplog.at_level(logging.ERROR):
        env.put("lm1", None, selector("has(m"))
        env.put("lm2", {"workload": {"workloadID": 7}})
        env.put("lm3", None, {"selector": ["has(m)"]})
        env.put("lm4", "ns/a")
    assert env.lm.role_of == {} and not env.lm.active and not env.selectors.active
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any("LiveMigration default/lm1" in e and "spec.target.selector" in e for e in errors), errors
    assert any("LiveMigration default/lm2" in e and "spec.source.workload.workloadID" in e for e in errors), errors
    assert any("LiveMigration default/lm3" in e and "spec.target.selector" in e for e in errors), errors
    assert any("LiveMigration default/lm4" in e and "spec.source" in e for e in errors), errors
    env.put("lm1", None, selector("has(m)"))
    assert env.role(key("a")) == TARGET


def test_a_live_migration_update_works_on_the_endpoints_it_concerns_only(monkeypatch):
    env = Env()
    for i in range(300):
        env.add_wep(key(f"p{i}", "eth0"), {"vm": f"v{i}"})
        env.add_wep(key(f"p{i}", "eth1"), {"vm": f"v{i}"})
    env.put("other", workload("ns/p200"), selector("vm == 'v201'"))
    looked_at = []
    role = LiveMigrations._role
    monkeypatch.setattr(LiveMigrations, "_role", lambda self, k: looked_at.append(k) or role(self, k))
    env.put("lm1", workload("ns/p1"), selector("vm == 'v2'"), uid="u")
    assert sorted(looked_at) == sorted({key("p1", "eth0"), key("p1", "eth1"), key("p2", "eth0"), key("p2", "eth1")})
    looked_at.clear()
    env.put("lm1", workload("ns/p1"), selector("vm == 'v2'"), uid="u2")  # (the uid alone)
    assert len(set(looked_at)) == 4
    looked_at.clear()
    env.delete("lm1")
    assert len(set(looked_at)) == 4
    assert set(env.lm.role_of) == {key("p200", "eth0"), key("p200", "eth1"), key("p201", "eth0"),
                                   key("p201", "eth1")}


def test_vmi_name_from_the_pods_labels():
    assert vmi_name(()) == ""
    assert vmi_name((("app", "x"),)) == ""
    assert vmi_name((("vm.kubevirt.io/name", "host-name"),)) == "host-name"
    assert vmi_name((("vm.kubevirt.io/name", "host-name"), ("vmi.kubevirt.io/id", "vmi-1"))) == "vmi-1"
    assert vmi_name((("vmi.kubevirt.io/id", "vmi-1"), ("vm.kubevirt.io/name", "host-name"))) == "vmi-1"


# ======================================================================================
# Through the whole policy calculation.

def pod(name: str, i: int, node: str = LOCAL, orchestrator: str = "k8s", endpoint_id: str = "eth0", **kw):
    """A workload endpoint (of any orchestrator, with any endpoint id)."""
    res = wep(name, node=node, ips=(f"10.65.0.{i}/32",), orchestrator=orchestrator, endpoint=endpoint_id,
              iface=f"cali{name}{endpoint_id}{orchestrator}"[:15], **kw)
    res.metadata["name"] = wep_name(node, name, orchestrator, endpoint_id)
    return res


def lm(name: str, source=None, target=None, uid=None):
    return live_migration(name, source, target, uid, ns="ns1")


def roles(calc: Calc) -> dict[str, tuple[str, str, str]]:
    """Pod name -> (role, uid, VMI name) its message carries, for every local workload."""
    return {k.workload.split("/", 1)[1]: (ep.live_migration_role, ep.live_migration_uid, ep.live_migration_vmi_name)
            for k, ep in calc.view.workload_endpoints.items()}


def updated(msgs: list) -> dict[str, tuple[str, str]]:
    return {m.id.workload.split("/", 1)[1]: (m.endpoint.live_migration_role, m.endpoint.live_migration_uid)
            for m in msgs if isinstance(m, t.WorkloadEndpointUpdate)}


def kubevirt_target(vmi: str, job: str) -> dict:
    """The target selector the Kubernetes datastore gives a VirtualMachineInstanceMigration."""
    return selector(f"(vmi.kubevirt.io/id == '{vmi}' || vm.kubevirt.io/name == '{vmi}') && "
                    f"kubevirt.io/migrationJobUID == '{job}'")


def launcher(name: str, i: int, vmi: str, job: str = "", old_label: bool = False, **kw):
    labels = {"kubevirt.io": "virt-launcher", ("vm.kubevirt.io/name" if old_label else "vmi.kubevirt.io/id"): vmi}
    if job:
        labels["kubevirt.io/migrationJobUID"] = job
    return pod(name, i, labels=labels, **kw)


def test_kubevirt_migration_through_the_calculation():
    calc = Calc(ns_profile("ns1"), launcher("virt-launcher-vm1-src", 1, "vm1"), pod("other", 2))
    assert roles(calc) == {"virt-launcher-vm1-src": ("", "", "vm1"), "other": ("", "", "")}
    # The migration is scheduled: only its target selector is known.
    msgs = calc.put(lm("mig1", None, kubevirt_target("vm1", "job-1"), uid="job-1"))
    assert msgs == []
    # The target pod appears on this host.
    msgs = calc.put(launcher("virt-launcher-vm1-dst", 3, "vm1", job="job-1", old_label=True))
    assert updated(msgs) == {"virt-launcher-vm1-dst": (TARGET, "job-1")}
    assert roles(calc)["virt-launcher-vm1-dst"] == (TARGET, "job-1", "vm1")
    # The source pod becomes known.
    msgs = calc.put(lm("mig1", workload("ns1/virt-launcher-vm1-src", hostname=""), kubevirt_target("vm1", "job-1"),
                       uid="job-1"))
    assert updated(msgs) == {"virt-launcher-vm1-src": (SOURCE, "job-1")}
    # Done: the LiveMigration goes, and so do the roles.
    msgs = calc.delete(lm("mig1"))
    assert updated(msgs) == {"virt-launcher-vm1-src": ("", ""), "virt-launcher-vm1-dst": ("", "")}
    assert {name: r[:2] for name, r in roles(calc).items()} == {n: ("", "") for n in roles(calc)}
    assert not calc.graph._lm.active and not calc.graph._workload_selectors.active


def test_calico_states_source_target_and_workload_level():
    """states_for_test.go's three live migration states (orchestrator "orch": the host counts)."""
    local = pod("wl1", 1, orchestrator="orch", labels={"a": "1"})
    base = (ns_profile("ns1"), local)
    wl1 = ("ns1/wl1",)
    calc = Calc(*base, lm("lm-1", endpoint(*wl1, endpoint_id="eth0", hostname=LOCAL, orchestrator="orch"),
                          endpoint("ns1/remote-wep", hostname="remote-host", orchestrator="orch")))
    assert roles(calc) == {"wl1": (SOURCE, "", "")}
    calc = Calc(*base, lm("lm-1", endpoint("ns1/remote-wep", hostname="remote-host", orchestrator="orch"),
                          endpoint(*wl1, endpoint_id="eth0", hostname=LOCAL, orchestrator="orch")))
    assert roles(calc) == {"wl1": (TARGET, "", "")}
    calc = Calc(*base, lm("lm-1", workload(*wl1, hostname=LOCAL, orchestrator="orch"),
                          selector("has(migration-target)")))
    assert roles(calc) == {"wl1": (SOURCE, "", "")}
    # Named on another host, an "orch" endpoint is not this one.
    calc = Calc(*base, lm("lm-1", workload(*wl1, hostname=REMOTE, orchestrator="orch")))
    assert roles(calc) == {"wl1": ("", "", "")}


def test_remote_and_host_endpoints_are_never_given_a_role():
    calc = Calc(ns_profile("ns1"), pod("a", 1, labels={"m": "1"}), pod("r", 2, node=REMOTE, labels={"m": "1"}),
                pod("s", 3, node=REMOTE), hep("h", labels={"m": "1"}, ips=["10.0.0.5"]))
    msgs = calc.put(lm("lm1", workload("ns1/s"), selector("has(m)"), uid="u"),
                    lm("lm2", endpoint("ns1/r"), uid="v"))
    assert updated(msgs) == {"a": (TARGET, "u")}
    assert not [m for m in msgs if not isinstance(m, t.WorkloadEndpointUpdate)]
    assert set(calc.graph._lm.role_of) == {k for k in calc.graph._local if getattr(k, "workload", "") == "ns1/a"}


def test_label_and_profile_changes_move_endpoints_in_and_out_of_the_target_selector():
    calc = Calc(ns_profile("ns1"), pod("a", 1, labels={"app": "x"}), pod("b", 2, labels={"app": "y"}),
                lm("lm1", None, selector("app == 'x' || pcns.env == 'prod'"), uid="u"))
    assert {n: r[0] for n, r in roles(calc).items()} == {"a": TARGET, "b": ""}
    msgs = calc.put(pod("a", 1, labels={"app": "z"}))
    assert updated(msgs) == {"a": ("", "")}
    msgs = calc.put(pod("b", 2, labels={"app": "x"}))
    assert updated(msgs) == {"b": (TARGET, "u")}
    # A label change that moves nothing sends nothing.
    assert calc.put(pod("b", 2, labels={"app": "x", "extra": "1"})) == []
    msgs = calc.put(ns_profile("ns1", {"env": "prod"}))
    assert updated(msgs) == {"a": (TARGET, "u")}
    calc.put(ns_profile("ns1"))
    assert {n: r[0] for n, r in roles(calc).items()} == {"a": "", "b": TARGET}


def test_a_new_endpoint_has_its_role_in_its_first_message():
    calc = Calc(ns_profile("ns1"), lm("lm1", workload("ns1/a"), uid="u"))
    msgs = calc.put(pod("a", 1))
    assert updated(msgs) == {"a": (SOURCE, "u")}
    calc.delete(pod("a", 1))
    assert calc.graph._lm.role_of == {}


def test_a_deletion_by_key_alone_clears_the_role():
    from node.datastore.syncer import Update, UpdateType
    from node.felix.calc.offline import resource_key

    calc = Calc(ns_profile("ns1"), pod("a", 1), lm("lm1", workload("ns1/a"), uid="u"))
    assert roles(calc)["a"][:2] == (SOURCE, "u")
    res = lm("lm1")
    calc.graph.on_updates([Update(UpdateType.DELETED, resource_key(res), None, 9)])
    calc.state.pop(resource_key(res))
    msgs = calc._flush()
    assert updated(msgs) == {"a": ("", "")}


def test_an_invalid_live_migration_counts_as_absent_in_the_calculation(caplog):
    calc = Calc(ns_profile("ns1"), pod("a", 1, labels={"m": "1"}), lm("lm1", None, selector("has(m)"), uid="u"))
    with caplog.at_level(logging.ERROR):
        msgs = calc.put(lm("lm1", None, selector("has(m) &&"), uid="u"))
    assert updated(msgs) == {"a": ("", "")}
    assert any("LiveMigration ns1/lm1" in r.getMessage() and "spec.target.selector" in r.getMessage()
               for r in caplog.records)


def test_shared_index_serves_bgp_peers_and_live_migrations():
    from felix_calc_builders import bgp_peer

    calc = Calc(ns_profile("ns1"), pod("a", 1, labels={"app": "x"}), pod("b", 2, labels={"app": "y"}),
                bgp_peer("p", "app == 'x'"), lm("lm1", None, selector("app == 'y'"), uid="u"))
    peers = {k.workload.split("/", 1)[1]: ep.local_bgp_peer for k, ep in calc.view.workload_endpoints.items()}
    assert peers == {"a": "p", "b": ""}
    assert {n: r[0] for n, r in roles(calc).items()} == {"a": "", "b": TARGET}
    calc.delete(bgp_peer("p"))
    assert calc.graph._workload_selectors.active  # (the live migration still uses it)
    assert roles(calc)["b"][0] == TARGET
    calc.put(bgp_peer("p", "app == 'y'"))
    calc.delete(lm("lm1"))
    assert calc.view.workload_endpoints[next(k for k in calc.view.workload_endpoints
                                             if k.workload == "ns1/b")].local_bgp_peer == "p"
    calc.delete(bgp_peer("p"))
    assert not calc.graph._workload_selectors.active


# --------------------------------------------------------------------------------------
# Cost: without LiveMigrations nothing of this runs.

def test_without_live_migrations_the_calculation_does_no_extra_work(monkeypatch):
    def fail(*_args, **_kw):
        raise AssertionError("live migration work without a LiveMigration")

    for name in ("endpoint_updated", "endpoint_removed", "_refresh", "_role"):
        monkeypatch.setattr(LiveMigrations, name, fail)
    for name in ("endpoint_updated", "endpoint_removed", "profile_labels"):
        monkeypatch.setattr(LocalWorkloadSelectors, name, fail)
    pods = [pod(f"p{i}", i + 1, labels={"app": f"a{i % 5}"}) for i in range(50)]
    calc = Calc(ns_profile("ns1"), *pods)
    calc.put(pod("p1", 2, labels={"app": "other"}), ns_profile("ns1", {"env": "prod"}))
    calc.delete(pod("p2", 3))
    assert not calc.graph._lm.active and not calc.graph._workload_selectors.active
    assert calc.graph._lm.role_of == {} and calc.graph._lm._workloads is None


def test_only_endpoints_whose_role_changes_are_sent_again():
    pods = [pod(f"p{i}", i + 1, labels={"app": f"a{i % 5}"}) for i in range(50)]
    calc = Calc(ns_profile("ns1"), *pods)
    msgs = calc.put(lm("lm1", workload("ns1/p7"), selector("app == 'a3'"), uid="u"))
    assert updated(msgs) == {"p7": (SOURCE, "u"), **{f"p{i}": (TARGET, "u") for i in range(3, 50, 5)}}
    assert calc.put(lm("lm2", workload("ns1/p8"), selector("app == 'a3'"))) == []  # (p8: already a target)
    assert updated(calc.put(lm("lm1", workload("ns1/p7"), selector("app == 'a3'"), uid="v"))) == {
        "p7": (SOURCE, "v"), **{f"p{i}": (TARGET, "v") for i in range(3, 50, 5)}}


def test_live_migration_is_a_kind_the_agent_follows(tmp_path):
    from node.felix.dryrun import load_files
    from node.felix.pipeline import FELIX_KINDS, Pipeline
    from node.felix.calc.offline import updates_from_resources
    from node.datastore.syncer import SyncStatus

    assert "LiveMigration" in FELIX_KINDS
    path = tmp_path / "lm.yaml"
    path.write_text(
        "apiVersion: projectcalico.org/v3\nkind: LiveMigration\n"
        "metadata: {name: mig1, namespace: ns1, uid: job-1}\n"
        "spec:\n  source: {workload: {orchestratorID: k8s, workloadID: ns1/a}}\n"
        "  target: {selector: \"kubevirt.io/migrationJobUID == 'job-1'\"}\n")
    resources, problems = load_files([str(path)])
    assert problems == []
    assert [r.identifier() for r in resources if r.kind == "LiveMigration"] == ["LiveMigration(ns1/mig1)"]
    pipeline = Pipeline(LOCAL, {})
    pipeline.on_updates(updates_from_resources(resources + [ns_profile("ns1"), pod("a", 1)]))
    pipeline.on_status(SyncStatus.IN_SYNC)
    weps = [m for m in pipeline.complete() if isinstance(m, t.WorkloadEndpointUpdate)]
    assert [(m.endpoint.live_migration_role, m.endpoint.live_migration_uid) for m in weps] == [(SOURCE, "job-1")]


# --------------------------------------------------------------------------------------
# Incremental = from scratch = brute force, over random LiveMigrations, endpoints and
# profiles.

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_LM_SELECTORS = ["has(m)", "m == 'a'", "pcns.env == 'prod'", "!has(m)", "all()", "m == 'a' || n == 'b'", "has(m"]
_PODS = ["w0", "w1", "w2"]


@st.composite
def _name_st(draw, with_endpoint: bool):
    fields = {"orchestratorID": draw(st.sampled_from(["k8s", "k8s", "orch"])),
              "workloadID": "ns1/" + draw(st.sampled_from(_PODS)),
              "hostname": draw(st.sampled_from([LOCAL, LOCAL, REMOTE, ""]))}
    if with_endpoint:
        fields["endpointID"] = draw(st.sampled_from(["eth0", "eth1", ""]))
    return fields


@st.composite
def _world_st(draw):
    which = draw(st.sampled_from(["wep", "wep", "lm", "lm", "lm", "profile"]))
    if which == "wep":
        name = draw(st.sampled_from(_PODS))
        labels = draw(st.dictionaries(st.sampled_from(["m", "n"]), st.sampled_from(["a", "b"]), max_size=2))
        return pod(name, _PODS.index(name) + 1, node=draw(st.sampled_from([LOCAL, LOCAL, REMOTE])), labels=labels,
                   orchestrator=draw(st.sampled_from(["k8s", "orch"])),
                   endpoint_id=draw(st.sampled_from(["eth0", "eth1"])))
    if which == "profile":
        return ns_profile("ns1", {"env": draw(st.sampled_from(["prod", "dev"]))})
    source = target = None
    kind = draw(st.sampled_from(["workload", "workloadEndpoint", "none"]))
    if kind != "none":
        source = {kind: draw(_name_st(kind == "workloadEndpoint"))}
    if draw(st.booleans()):
        target = {"workloadEndpoint": draw(_name_st(True))}
    if draw(st.integers(0, 2)) == 0:
        target = dict(target or {}, selector=draw(st.sampled_from(_LM_SELECTORS)))
    return lm(draw(st.sampled_from(["lm0", "lm1", "lm2"])), source, target,
              uid=draw(st.sampled_from([None, "u1", "u2", "u3"])))


def _brute_force_roles(resources) -> dict[str, tuple[str, str]]:
    """Local workload endpoint ("pod/endpoint") -> (role, uid), from the rules as stated."""
    from node.felix.calc import convert as cv

    env_labels = {}
    for res in resources:
        if res.kind == "Profile":
            env_labels = {k: v for k, v in (res.spec.get("labelsToApply") or {}).items()}
    lms = []
    for res in resources:
        if res.kind != "LiveMigration":
            continue
        text = (res.spec.get("target") or {}).get("selector") or ""
        try:
            sel = parse(text) if text else None
        except Exception:
            continue  # (invalid: absent)
        lms.append((res.metadata.get("uid") or "", res.spec, sel))

    def names(ident, key, with_endpoint) -> bool:
        if not ident or not any(ident.values()):
            return False
        if ident.get("orchestratorID", "") != key.orchestrator or ident.get("workloadID", "") != key.workload:
            return False
        if key.orchestrator != "k8s" and ident.get("hostname", "") != key.hostname:
            return False
        return not with_endpoint or ident.get("endpointID", "") in ("", key.endpoint)

    out = {}
    for res in resources:
        if res.kind != "WorkloadEndpoint" or res.spec["node"] != LOCAL:
            continue
        key = cv.workload_endpoint_key(res)
        labels = dict(env_labels, **res.labels)
        by_selector = [uid for uid, _spec, sel in lms if sel is not None and sel.evaluate(labels)]
        targets = [uid for uid, spec, _sel in lms
                   if names((spec.get("target") or {}).get("workloadEndpoint"), key, True)]
        sources = []
        for uid, spec, _sel in lms:
            src = spec.get("source") or {}
            if src.get("workload") is not None:
                hit = names(src["workload"], key, False)
            else:
                hit = names(src.get("workloadEndpoint"), key, True)
            if hit:
                sources.append(uid)
        name = f"{key.workload.split('/', 1)[1]}/{key.orchestrator}/{key.endpoint}"
        for role, uids in ((TARGET, by_selector), (TARGET, targets), (SOURCE, sources)):
            if uids:
                out[name] = (role, max(uids))
                break
        else:
            out[name] = ("", "")
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches=st.lists(st.lists(st.tuples(st.sampled_from(["put", "put", "put", "delete"]), _world_st()),
                                 min_size=1, max_size=5), min_size=1, max_size=8))
def test_incremental_roles_equal_from_scratch_and_brute_force(batches):
    logging.disable(logging.ERROR)  # (bad selectors are drawn on purpose)
    try:
        calc = Calc(ns_profile("ns1"))
        for batch in batches:
            calc.batch(batch)  # (checked against a fresh calculation too)
            got = {f"{k.workload.split('/', 1)[1]}/{k.orchestrator}/{k.endpoint}":
                   (ep.live_migration_role, ep.live_migration_uid) for k, ep in calc.view.workload_endpoints.items()}
            assert got == _brute_force_roles(list(calc.state.values()))
        if not calc.graph._lm._lms:
            assert not calc.graph._lm.active and calc.graph._lm.role_of == {}
    finally:
        logging.disable(logging.NOTSET)


@pytest.mark.parametrize("labels,expected", [({}, ""), ({"vm.kubevirt.io/name": "h"}, "h"),
                                             ({"vm.kubevirt.io/name": "h", "vmi.kubevirt.io/id": "i"}, "i")])
def test_every_local_workload_carries_its_vmi_name(labels, expected):
    calc = Calc(ns_profile("ns1"), pod("a", 1, labels=labels))
    assert roles(calc) == {"a": ("", "", expected)}
