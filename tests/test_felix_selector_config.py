"""Selector-scoped FelixConfiguration (Felix v3.32): a FelixConfiguration of any name but
``default`` and ``node.<name>`` whose ``nodeSelector`` matches this host's Node labels
applies here, ranked between ``default`` and ``node.<host>``; of several matches the
oldest (by creationTimestamp, then name) wins.

The selection cases port Felix's ConfigBatcher/MergeSelectorConfigs tests
(felix/calc/config_batcher_test.go); the rest follow them through the calculation, the
pipeline, the agent, the dry run and the model's validation.
"""
from __future__ import annotations

import logging
from pathlib import Path

import pytest

from felix_calc_builders import LOCAL, REMOTE, delete, put, wep
from node.datastore.syncer import SyncStatus
from node.errors import ValidationError
from node.felix import types as t
from node.felix.calc import DataplaneView, PolicyCalculation
from node.felix.calc.config_track import SelectorConfig, creation_time, select_config
from node.felix.calc.offline import updates_from_resources
from node.felix.config import SOURCE_ENV, SOURCE_FILE, SOURCE_GLOBAL, SOURCE_HOST, SOURCE_SELECTOR, openstack_active
from node.felix.dryrun import dry_run, load_files
from node.felix.pipeline import Pipeline, resolve_config
from node.model import Resource, load_resources
from node.selector import parse

JAN = "2025-01-01T00:00:00Z"
JUN = "2025-06-01T00:00:00Z"


def fc(name: str, selector: str | None = None, created: str | None = None, annotations=None, **spec) -> Resource:
    meta: dict = {"name": name}
    if created:
        meta["creationTimestamp"] = created
    if annotations:
        meta["annotations"] = dict(annotations)
    body = dict(spec)
    if selector is not None:
        body["nodeSelector"] = selector
    return Resource("FelixConfiguration", meta, body)


def host(name: str = LOCAL, labels=None) -> Resource:
    meta: dict = {"name": name}
    if labels is not None:
        meta["labels"] = dict(labels)
    return Resource("Node", meta, {"bgp": {"ipv4Address": "10.0.0.1/24"}})


GPU = {"role": "gpu", "zone": "us-east-1a"}


# --------------------------------------------------------------------------------------
# The selection (Felix's MergeSelectorConfigs).

def entry(name: str, selector: str | None, created: str | None = None, **spec) -> SelectorConfig:
    return SelectorConfig(name, parse(selector) if selector else None, creation_time({"creationTimestamp": created}),
                          spec, {})


def test_a_matching_entry_is_selected_and_a_non_matching_one_is_not():
    assert select_config([entry("gpu-nodes", "role == 'gpu'", bpfEnabled=True)], GPU).spec == {"bpfEnabled": True}
    assert select_config([entry("storage-nodes", "role == 'storage'", bpfEnabled=True)], GPU) is None
    assert select_config([], GPU) is None


def test_no_node_labels_match_nothing_and_no_selector_matches_nowhere():
    """No Node (or one whose labels are Go's nil map) matches nothing, not even all();
    an entry without a nodeSelector never matches."""
    assert select_config([entry("all", "all()")], None) is None
    assert select_config([entry("all", "all()")], {}).name == "all"
    assert select_config([entry("none", None)], GPU) is None


def test_the_oldest_match_wins_with_a_warning(caplog):
    a = entry("a-config", "role == 'gpu'", JAN, bpfLogLevel="info")
    b = entry("b-config", "role == 'gpu'", JUN, bpfEnabled=True)
    other = entry("c-config", "role == 'storage'", "2020-01-01T00:00:00Z")
    with caplog.at_level(logging.WARNING):
        assert select_config([b, other, a], GPU) is a
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "a-config, b-config" in warnings[0] and "using a-config" in warnings[0]
    assert "c-config" not in warnings[0]


def test_creation_time_wins_over_name_and_name_breaks_ties():
    newer_a = entry("a-config", "role == 'gpu'", JUN, bpfLogLevel="info")
    older_b = entry("b-config", "role == 'gpu'", JAN, bpfEnabled=True)
    assert select_config([newer_a, older_b], GPU) is older_b
    same_a = entry("a-config", "role == 'gpu'", JAN)
    assert select_config([older_b, same_a], GPU) is same_a
    # No creationTimestamp is Go's zero time: the oldest of all.
    assert select_config([older_b, entry("z-config", "has(role)")], GPU).name == "z-config"


def test_creation_time_reading():
    assert creation_time({"creationTimestamp": "2025-06-01T00:00:00Z"}) > creation_time({"creationTimestamp": JAN})
    assert creation_time({"creationTimestamp": "2025-01-01T01:00:00+01:00"}) == creation_time({"creationTimestamp": JAN})
    assert creation_time({}) == creation_time({"creationTimestamp": None}) == creation_time({"creationTimestamp": "x"})
    assert creation_time({}) < creation_time({"creationTimestamp": "0001-01-02T00:00:00Z"})


# --------------------------------------------------------------------------------------
# The calculation (Felix's ConfigBatcher): what the ConfigUpdate carries.

def _selector_slots(messages) -> list[dict]:
    return [m.config["selector"] for m in messages if isinstance(m, t.ConfigUpdate)]


def _graph(*resources: Resource) -> PolicyCalculation:
    graph = PolicyCalculation(LOCAL)
    graph.on_updates(put(*resources))
    graph.on_in_sync()
    return graph


def test_calculation_reports_the_matching_config():
    graph = _graph(host(labels=GPU), fc("gpu-nodes", "role == 'gpu'", bpfEnabled=True))
    assert _selector_slots(graph.take_messages()) == [{"bpfEnabled": True}]  # nodeSelector is not a parameter
    graph = _graph(host(labels=GPU), fc("storage-nodes", "role == 'storage'", bpfEnabled=True))
    assert _selector_slots(graph.take_messages()) == [{}]


def test_calculation_follows_label_changes_deletes_and_ignores_other_hosts():
    graph = _graph(host(labels=GPU), fc("gpu-nodes", "role == 'gpu'", bpfEnabled=True))
    graph.take_messages()
    graph.on_updates(put(host(REMOTE, labels={"role": "storage"})))
    assert _selector_slots(graph.take_messages()) == []  # another host's Node changes nothing
    graph.on_updates(put(host(labels={"role": "standard", "zone": "us-east-1a"})))
    assert _selector_slots(graph.take_messages()) == [{}]
    graph.on_updates(put(host(labels=GPU)))
    assert _selector_slots(graph.take_messages()) == [{"bpfEnabled": True}]
    graph.on_updates(delete(fc("gpu-nodes", "role == 'gpu'")))
    assert _selector_slots(graph.take_messages()) == [{}]
    graph.on_updates(put(fc("gpu-nodes", "role == 'gpu'", bpfEnabled=True)))
    assert _selector_slots(graph.take_messages()) == [{"bpfEnabled": True}]
    graph.on_updates(delete(host()))  # this host's Node gone: nothing matches
    assert _selector_slots(graph.take_messages()) == [{}]


def test_calculation_picks_the_oldest_of_overlapping_configs():
    graph = _graph(host(labels=GPU), fc("a-config", "role == 'gpu'", JUN, bpfLogLevel="Info"),
                   fc("b-config", "role == 'gpu'", JAN, bpfEnabled=True))
    assert _selector_slots(graph.take_messages()) == [{"bpfEnabled": True}]
    graph.on_updates(delete(fc("b-config")))  # the next oldest takes over
    assert _selector_slots(graph.take_messages()) == [{"bpfLogLevel": "Info"}]


def test_overlap_is_warned_once_in_sync_and_again_when_it_changes(caplog):
    graph = PolicyCalculation(LOCAL)
    with caplog.at_level(logging.WARNING):
        graph.on_updates(put(host(labels=GPU), *(fc(f"c{i}", "has(role)", JAN, logPrefix=f"c{i}") for i in range(3))))
        graph.take_messages()
        assert not caplog.records  # not before the datastore is in sync
        graph.on_in_sync()
        graph.take_messages()
        assert [r.getMessage() for r in caplog.records] == [
            "FelixConfigurations c0, c1, c2 all select this node by nodeSelector; using c0, the oldest by "
            "creationTimestamp (then name). This is likely a misconfiguration."]
        graph.on_updates(put(host(labels=GPU)))  # nothing changed: nothing said
        graph.take_messages()
        graph.on_updates(put(fc("c3", "has(role)", JUN, logPrefix="c0")))
        graph.take_messages()
    assert len(caplog.records) == 2 and "c0, c1, c2, c3" in caplog.records[1].getMessage()


def test_calculation_ignores_a_selector_that_does_not_parse(caplog):
    with caplog.at_level(logging.WARNING):
        graph = _graph(host(labels=GPU), fc("bad-selector", "invalid @@@ selector", bpfEnabled=True))
        assert _selector_slots(graph.take_messages()) == [{}]
    assert any("bad-selector" in r.getMessage() and "does not parse" in r.getMessage() for r in caplog.records)
    # As in Felix, an update with a bad selector is ignored: the previous version stays.
    graph = _graph(host(labels=GPU), fc("gpu-nodes", "role == 'gpu'", bpfEnabled=True))
    graph.take_messages()
    graph.on_updates(put(fc("gpu-nodes", "role ==", bpfEnabled=False)))
    assert _selector_slots(graph.take_messages()) == []


def test_calculation_treats_an_invalid_selector_config_as_missing(caplog):
    """Felix's validation filter drops a selector-scoped resource that fails validation."""
    with caplog.at_level(logging.WARNING):
        graph = _graph(host(labels=GPU), fc("gpu-nodes", "role == 'gpu'", bpfLogLevel="Loud"))
        assert _selector_slots(graph.take_messages()) == [{}]
    assert any("FelixConfiguration(gpu-nodes)" in r.getMessage() and "treating it as missing" in r.getMessage()
               for r in caplog.records)


def test_default_and_per_node_configs_are_never_selector_scoped():
    """A nodeSelector on ``default`` or ``node.<host>`` (which Calico's CRD refuses) is not
    a parameter and does not scope them; another host's ``node.*`` is not selector-scoped."""
    graph = _graph(host(labels=GPU), fc("default", "role == 'storage'", logPrefix="global"),
                   fc(f"node.{LOCAL}", "role == 'storage'", vxlanPort=4790),
                   fc(f"node.{REMOTE}", "role == 'gpu'", chainInsertMode="Append"))
    (update,) = [m for m in graph.take_messages() if isinstance(m, t.ConfigUpdate)]
    assert update.config["selector"] == {}
    cfg = resolve_config({}, update.config, host(labels=GPU))
    assert cfg.LogPrefix == "global" and cfg.VXLANPort == 4790 and cfg.ChainInsertMode == "insert"


def test_selector_config_annotations_override_its_fields():
    graph = _graph(host(labels=GPU),
                   fc("gpu-nodes", "role == 'gpu'", logPrefix="spec",
                      annotations={"config.projectcalico.org/LogPrefix": "annotated", "other/x": "y"}))
    (update,) = [m for m in graph.take_messages() if isinstance(m, t.ConfigUpdate)]
    assert update.config["annotations"] == {"selector": {"config.projectcalico.org/LogPrefix": "annotated"}}
    assert resolve_config({}, update.config, None).LogPrefix == "annotated"


def test_workload_source_spoofing_from_a_selector_config():
    """The selector-scoped layer sits between default and node.<host> for the calculation's
    own use of WorkloadSourceSpoofing too (a spoofing endpoint is invalid without it)."""
    spoofer = wep("s", profiles=[], allowSpoofedSourcePrefixes=["8.8.8.0/24"], ips=["10.0.0.7/32"])
    graph = _graph(host(labels=GPU), fc("gpu-nodes", "role == 'gpu'", workloadSourceSpoofing="Any"), spoofer)
    view = DataplaneView().apply(graph.take_messages())
    (ep,) = view.workload_endpoints.values()
    assert ep.allow_spoofed_source_prefixes == ("8.8.8.0/24",)
    graph.on_updates(put(host(labels={"role": "standard"})))
    view.apply(graph.take_messages())
    assert view.workload_endpoints == {}
    graph = _graph(host(labels=GPU), fc("gpu-nodes", "role == 'gpu'", workloadSourceSpoofing="Any"),
                   fc(f"node.{LOCAL}", workloadSourceSpoofing="Disabled"), spoofer)
    assert DataplaneView().apply(graph.take_messages()).workload_endpoints == {}


# --------------------------------------------------------------------------------------
# The pipeline: the effective configuration and restarts.

def _pipeline(resources, env=None, file_config=None) -> Pipeline:
    p = Pipeline(LOCAL, env or {}, file_config)
    p.on_updates(updates_from_resources(resources))
    p.on_status(SyncStatus.IN_SYNC)
    p.complete()
    p.set_interfaces({"eth0": ["10.0.0.1"], "lo": ["127.0.0.1"]})
    return p


BASE = [fc("default", logPrefix="global", chainInsertMode="Append"),
        fc("gpu-nodes", "role == 'gpu'", JUN, logPrefix="gpu", defaultEndpointToHostAction="Accept")]


def test_pipeline_applies_a_selector_config_only_when_the_labels_match():
    on = _pipeline(BASE + [host(labels=GPU)])
    assert on.config.LogPrefix == "gpu" and on.config.sources["LogPrefix"] == SOURCE_SELECTOR
    assert on.config.DefaultEndpointToHostAction == "ACCEPT" and on.config.ChainInsertMode == "append"
    off = _pipeline(BASE + [host(labels={"role": "standard"})])
    assert off.config.LogPrefix == "global" and off.config.sources["LogPrefix"] == SOURCE_GLOBAL
    assert off.config.DefaultEndpointToHostAction == "DROP"
    assert _pipeline(BASE).config.LogPrefix == "global"  # no Node for this host


def test_pipeline_precedence_around_the_selector_layer(tmp_path):
    resources = BASE + [host(labels=GPU), fc(f"node.{LOCAL}", logSeverityScreen="Warning", chainInsertMode="Insert")]
    p = _pipeline(resources, env={"FELIX_DEFAULTENDPOINTTOHOSTACTION": "RETURN"},
                  file_config={"LogSeverityScreen": "Error"})
    cfg = p.config
    assert (cfg.LogPrefix, cfg.sources["LogPrefix"]) == ("gpu", SOURCE_SELECTOR)  # over default
    assert (cfg.ChainInsertMode, cfg.sources["ChainInsertMode"]) == ("insert", SOURCE_HOST)  # node.<host> over both
    assert (cfg.LogSeverityScreen, cfg.sources["LogSeverityScreen"]) == ("ERROR", SOURCE_FILE)
    assert (cfg.DefaultEndpointToHostAction, cfg.sources["DefaultEndpointToHostAction"]) == ("RETURN", SOURCE_ENV)


def test_selector_layer_values_are_checked_like_the_others():
    """A bad value is reported with the selector layer as its source and, as Felix does,
    the default takes its place at that layer; local parameters never come from the
    datastore."""
    from node.felix.config import FelixConfig

    cfg = FelixConfig.resolve({}, global_config={"VXLANPort": "4790"},
                              selector_config={"VXLANPort": "not-a-port", "DatastoreType": "kubernetes"})
    assert cfg.VXLANPort == 4789 and cfg.sources["VXLANPort"] == SOURCE_SELECTOR
    assert cfg.problems[0].startswith(SOURCE_SELECTOR) and "VXLANPort" in cfg.problems[0]
    assert cfg.DatastoreType == "etcdv3" and "DatastoreType" not in cfg.sources


def test_config_annotations_of_default_and_per_node_configs_are_applied_too():
    p = _pipeline(BASE + [fc("default", annotations={"config.projectcalico.org/LogPrefix": "ann-global"}),
                          fc(f"node.{LOCAL}", annotations={"config.projectcalico.org/ChainInsertMode": "Append"})])
    assert p.config.LogPrefix == "ann-global" and p.config.ChainInsertMode == "append"


def test_pipeline_oldest_selector_config_wins():
    p = _pipeline([host(labels=GPU), fc("a-config", "role == 'gpu'", JUN, logPrefix="newer"),
                   fc("b-config", "has(zone)", JAN, logPrefix="older")])
    assert p.config.LogPrefix == "older"


def test_a_label_change_that_changes_the_match_is_a_config_change():
    p = _pipeline(BASE + [host(labels={"role": "standard"})])
    assert p.config.LogPrefix == "global" and not p.config_changed
    p.on_updates(put(host(labels={"role": "standard", "zone": "b"})))  # still no match: no change
    p.complete()
    assert not p.config_changed
    p.on_updates(put(host(labels=GPU)))
    p.complete()
    assert p.config_changed


def test_a_new_matching_selector_config_is_a_config_change_and_a_non_matching_one_is_not():
    p = _pipeline(BASE + [host(labels=GPU)])
    p.on_updates(put(fc("storage", "role == 'storage'", JAN, logPrefix="storage")))
    p.complete()
    assert not p.config_changed
    # Same values from another (older) matching resource: the configuration is the same.
    p.on_updates(put(fc("also-gpu", "has(role)", JAN, logPrefix="gpu", defaultEndpointToHostAction="Accept")))
    p.complete()
    assert not p.config_changed
    p.on_updates(put(fc("older-gpu", "has(zone)", "2024-01-01T00:00:00Z", logPrefix="older")))
    p.complete()
    assert p.config_changed


def test_pipeline_logs_and_ignores_a_bad_selector(caplog):
    with caplog.at_level(logging.WARNING):
        p = _pipeline([fc("default", logPrefix="global"), host(labels=GPU),
                       fc("broken", "role = 'gpu'", logPrefix="broken")])
    assert p.config.LogPrefix == "global"
    assert any("FelixConfiguration broken: nodeSelector" in r.getMessage() for r in caplog.records)


def test_agent_restarts_when_a_label_change_changes_the_selected_config():
    """Exit 129 (config changed) as for any other configuration change. An unusable mark
    mask keeps the agent from programming the kernel here."""
    from node.felix.agent import CONFIG_CHANGED_RC, Agent
    from test_felix_desired import _agent_status, _agent_updates

    agent = Agent(LOCAL, {"FELIX_IPTABLESMARKMASK": "0x1f0000"}, kv_factory=lambda: None, default_rp_filter="1")
    agent._interfaces = {}
    agent._handle(_agent_updates(BASE + [host(labels={"role": "standard"})]))
    agent._handle(_agent_status(SyncStatus.IN_SYNC))
    agent._step()
    assert agent.pipeline.config.LogPrefix == "global" and agent.exit_code is None
    agent._handle(_agent_updates([host(labels={"role": "standard", "rack": "r1"})]))
    agent._step()
    assert agent.exit_code is None
    agent._handle(_agent_updates([host(labels=GPU)]))
    agent._step()
    assert agent.exit_code == CONFIG_CHANGED_RC


# --------------------------------------------------------------------------------------
# The dry run: a real effect in the rendered tables.

IFACES = {"eth0": ["10.0.0.1"], "lo": ["127.0.0.1"]}

SELECTOR_FILE = """\
apiVersion: projectcalico.org/v3
kind: Node
metadata: {name: node1, labels: {role: gpu}}
spec: {bgp: {ipv4Address: 10.0.0.1/24}}
---
apiVersion: projectcalico.org/v3
kind: Node
metadata: {name: node2, labels: {role: storage}}
spec: {bgp: {ipv4Address: 10.0.0.2/24}}
---
apiVersion: projectcalico.org/v3
kind: FelixConfiguration
metadata: {name: default}
spec: {defaultEndpointToHostAction: Drop}
---
apiVersion: projectcalico.org/v3
kind: FelixConfiguration
metadata: {name: gpu-nodes, creationTimestamp: "2025-01-01T00:00:00Z"}
spec: {nodeSelector: "role == 'gpu'", defaultEndpointToHostAction: Accept}
---
apiVersion: projectcalico.org/v3
kind: FelixConfiguration
metadata: {name: also-gpu, creationTimestamp: "2025-06-01T00:00:00Z"}
spec: {nodeSelector: "has(role) && role != 'storage'", defaultEndpointToHostAction: Return}
---
apiVersion: projectcalico.org/v3
kind: FelixConfiguration
metadata: {name: node.node2}
spec: {nodeSelector: "role == 'storage'", defaultEndpointToHostAction: Accept}
"""


def test_dry_run_renders_the_selected_config(tmp_path):
    path = tmp_path / "selector.yaml"
    path.write_text(SELECTOR_FILE)
    resources, problems = load_files([str(path)])
    # Calico's CRD refuses a nodeSelector on node.*: the dry run skips it, naming the field.
    assert len(problems) == 1 and "FelixConfiguration(node.node2).spec.nodeSelector" in problems[0]
    files = [str(Path(__file__).parent / "felix_golden" / "profile-only" / "resources.yaml"), str(path)]
    node1 = dry_run("node1", {}, files=files, interfaces=IFACES)
    assert '"Configured DefaultEndpointToHostAction" --jump ACCEPT' in node1  # gpu-nodes, the oldest match
    node2 = dry_run("node2", {}, files=files, interfaces=IFACES)
    assert '"Configured DefaultEndpointToHostAction" --jump DROP' in node2  # no match: default
    env = dry_run("node1", {"FELIX_DEFAULTENDPOINTTOHOSTACTION": "RETURN"}, files=files, interfaces=IFACES)
    assert '"Configured DefaultEndpointToHostAction" --jump RETURN' in env


# --------------------------------------------------------------------------------------
# The model: Calico's CRD rules for nodeSelector.

def _load(text: str) -> Resource:
    (res,) = load_resources("apiVersion: projectcalico.org/v3\nkind: FelixConfiguration\n" + text)
    return res


@pytest.mark.parametrize("name", ["default", "node.node1", "node.x"])
@pytest.mark.parametrize("selector", ["role == 'gpu'", ""])
def test_node_selector_is_refused_on_default_and_per_node_configs(name, selector):
    with pytest.raises(ValidationError) as info:
        _load(f"metadata: {{name: {name}}}\nspec: {{nodeSelector: \"{selector}\"}}")
    message = str(info.value)
    assert f"FelixConfiguration({name}).spec.nodeSelector" in message
    assert "must not be set on the 'default' or per-node ('node.*') FelixConfiguration" in message


def test_node_selector_on_other_configs_is_accepted_up_to_1024_characters():
    assert _load("metadata: {name: gpu-nodes}\nspec: {nodeSelector: \"role == 'gpu'\", bpfEnabled: true}")
    assert _load("metadata: {name: nodes}\nspec: {}")  # a name of its own, no selector: valid, applies nowhere
    # libcalico-go does not parse it (the CRD cannot): the policy agent logs and ignores it.
    assert _load("metadata: {name: odd}\nspec: {nodeSelector: \"invalid @@@ selector\"}")
    long_ok = "a == '" + "x" * 1017 + "'"
    assert len(long_ok) == 1024 and _load(f'metadata: {{name: big}}\nspec: {{nodeSelector: "{long_ok}"}}')
    with pytest.raises(ValidationError, match=r"FelixConfiguration\(big\)\.spec\.nodeSelector .*no more than "
                                               r"1024 characters \(it has 1025\)"):
        _load(f'metadata: {{name: big}}\nspec: {{nodeSelector: "{long_ok} "}}')


def test_workload_source_spoofing_is_resolved_as_felix_parses_it():
    """The calculation's WorkloadSourceSpoofing comes from the environment over the config
    file over the datastore, parsed as Felix parses it (any case; None turns it off)."""
    spoofer = wep("s", profiles=[], allowSpoofedSourcePrefixes=["8.8.8.0/24"], ips=["10.0.0.7/32"])

    def spoofing_allowed(resources, env=None, file_config=None) -> bool:
        return bool(_pipeline([*resources, spoofer], env, file_config).dataplanes[4].active_workload_endpoints())

    assert not spoofing_allowed([])
    assert spoofing_allowed([], file_config={"WorkloadSourceSpoofing": "any"})
    assert spoofing_allowed([], env={"FELIX_WORKLOADSOURCESPOOFING": "ANY"})
    assert not spoofing_allowed([], env={"FELIX_WORKLOADSOURCESPOOFING": "None"},
                                file_config={"WorkloadSourceSpoofing": "Any"})
    assert spoofing_allowed([fc("default", workloadSourceSpoofing="any")])
    assert spoofing_allowed([fc("default", annotations={"config.projectcalico.org/WorkloadSourceSpoofing": "any"})])
    # A value that does not parse counts as unset: the next source down decides.
    assert spoofing_allowed([fc("default", workloadSourceSpoofing="Any")],
                            env={"FELIX_WORKLOADSOURCESPOOFING": "sometimes"})


def test_cluster_information_feeds_the_global_layer():
    """ClusterInformation default's clusterType reaches Felix as a global parameter (so an
    OpenStack cluster type turns the OpenStack special cases on); FELIX_CLUSTERTYPE wins."""
    ci = Resource("ClusterInformation", {"name": "default"},
                  {"clusterType": "openstack,bgp", "clusterGUID": "0a1b", "datastoreReady": True})
    config = _pipeline([ci]).config
    assert (config.ClusterType, config.sources["ClusterType"]) == ("openstack,bgp", SOURCE_GLOBAL)
    assert openstack_active(config)
    assert _pipeline([ci], env={"FELIX_CLUSTERTYPE": "k8s"}).config.ClusterType == "k8s"


def test_a_value_felix_cannot_run_with_programs_nothing_until_it_changes():
    """A die-on-fail parameter that does not parse (here from the default
    FelixConfiguration's annotation) stops the agent as it stops Felix: no dataplane, and
    fixing the value is a configuration change (the agent restarts)."""
    bad = fc("default", annotations={"config.projectcalico.org/ChainInsertMode": "middle"})
    p = _pipeline([bad])
    assert p.config_error and "ChainInsertMode" in p.config_error and p.dataplanes == {}
    p.on_updates(put(fc("default", annotations={"config.projectcalico.org/ChainInsertMode": "append"})))
    p.complete()
    assert p.config_changed


def test_parameters_felix_applies_live_do_not_restart():
    """Felix's handledConfigChanges: ClusterType (from ClusterInformation) and
    HealthTimeoutOverrides change without a restart; anything else restarts."""
    p = _pipeline(BASE + [host()])
    assert p.config_generation == 0
    p.on_updates(put(Resource("ClusterInformation", {"name": "default"}, {"clusterType": "k8s,bgp,kubeadm"})))
    p.complete()
    assert not p.config_changed and p.config.ClusterType == "k8s,bgp,kubeadm" and p.config_generation == 1
    p.on_updates(put(fc("default", logPrefix="global", chainInsertMode="Append",
                        healthTimeoutOverrides=[{"name": "InternalDataplaneMainLoop", "timeout": "2m"}])))
    p.complete()
    assert not p.config_changed and p.config.HealthTimeoutOverrides == (("InternalDataplaneMainLoop", 120.0),)
    assert p.config_generation == 2
    p.on_updates(put(fc("default", logPrefix="changed", chainInsertMode="Append")))
    p.complete()
    assert p.config_changed
