"""``calico-node felix --dry-run``: the same desired state from files and from a real etcd,
and clear messages for input it cannot use."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from node.datastore.client import DatastoreClient
from node.datastore.etcd import EtcdKV
from node.felix.dryrun import DryRunError, dry_run, load_files
from node.model import load_resources

GOLDEN = Path(__file__).parent / "felix_golden"
IFACES = {"eth0": ["10.0.0.1"], "lo": ["127.0.0.1"]}


def _env(**extra) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("CALICO_", "ETCD_", "DATASTORE", "FELIX_", "NODENAME"))}
    env.update(extra)
    return env


def _calico_node(*args, env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "node.cli.calico_node", *args], env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.etcd
def test_datastore_and_files_give_the_same_tables(etcd_clean_config, tmp_path):
    """The scenario stored through the client (the write path calicoctl uses) renders the
    same as the file: the dry run applies the same write defaults offline."""
    source = GOLDEN / "two-tiers" / "resources.yaml"
    kv = EtcdKV(etcd_clean_config)
    try:
        client = DatastoreClient(kv)
        resources = load_resources(source.read_text())
        for tier in ("default", "kube-admin", "kube-baseline"):
            client.create(load_resources(f"apiVersion: projectcalico.org/v3\nkind: Tier\nmetadata: {{name: {tier}}}\n"
                                         f"spec: {{order: {dict(default=1000000, **{'kube-admin': 1000, 'kube-baseline': 10000000})[tier]}, "
                                         f"defaultAction: {'Deny' if tier == 'default' else 'Pass'}}}\n")[0])
        for res in sorted(resources, key=lambda r: r.kind != "Tier"):
            client.create(res)
    finally:
        kv.close()
    env = {"ETCD_ENDPOINTS": etcd_clean_config.etcd_endpoints[0]}
    from_etcd = dry_run("node1", env, interfaces=IFACES, sync_timeout=20)
    from_file = dry_run("node1", {}, files=[str(source)], interfaces=IFACES)
    assert from_etcd == from_file
    for what in ("ipsets", "qos"):
        assert dry_run("node1", env, interfaces=IFACES, what=what) == \
            dry_run("node1", {}, files=[str(source)], interfaces=IFACES, what=what)

    # The command itself, reading this namespace's interfaces.
    run = _calico_node("felix", "--dry-run", env=_env(NODENAME="node1", ETCD_ENDPOINTS=env["ETCD_ENDPOINTS"]))
    assert run.returncode == 0, run.stderr
    assert "-A cali-pi-np/prod/web " in run.stdout and run.stdout.startswith("*raw\n")


@pytest.mark.etcd
def test_staged_policies_from_the_datastore(etcd_clean_config):
    """The agent follows the three staged kinds (the golden "staged" scenario, stored
    through the client, renders as from its file)."""
    source = GOLDEN / "staged" / "resources.yaml"
    kv = EtcdKV(etcd_clean_config)
    try:
        client = DatastoreClient(kv)
        for res in load_files([str(source)])[0]:
            client.create(res)
        assert {r.name for r in client.list("StagedGlobalNetworkPolicy")} == {"watch-all", "b-stage", "d-stage",
                                                                             "gone"}
    finally:
        kv.close()
    env = {"ETCD_ENDPOINTS": etcd_clean_config.etcd_endpoints[0]}
    for what in ("tables", "ipsets"):
        from_etcd = dry_run("node1", env, interfaces=IFACES, what=what, sync_timeout=20)
        assert from_etcd == dry_run("node1", {}, files=[str(source)], interfaces=IFACES, what=what)
    assert "cali40s:2p7peOXnRS9HTbs1L9ddCtm" in from_etcd  # role == 'scanner' (watch-all)
    assert "cali40s:j_2kaK9cmzDgzlO3b9oyFzD" in from_etcd  # web-k8s's peer, scoped to its namespace


def test_unreachable_datastore_is_one_clear_error():
    with pytest.raises(DryRunError, match=r"not in sync within 1s"):
        dry_run("node1", {"ETCD_ENDPOINTS": "http://127.0.0.1:1"}, interfaces=IFACES, sync_timeout=1)
    run = _calico_node("felix", "--dry-run", "--sync-timeout", "1",
                       env=_env(NODENAME="node1", ETCD_ENDPOINTS="http://127.0.0.1:1"))
    assert run.returncode == 1
    assert run.stderr.strip().splitlines()[-1].startswith("felix: the datastore was not in sync within 1s")
    assert "Traceback" not in run.stderr


def test_bad_documents_are_named_and_the_rest_rendered(tmp_path):
    path = tmp_path / "in.yaml"
    path.write_text("""\
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: bad-selector, namespace: ns1}
spec: {selector: "app =="}
---
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: no-tier, namespace: ns1}
spec: {tier: gold, selector: all(), ingress: [{action: Allow}]}
---
apiVersion: projectcalico.org/v3
kind: Frobnicator
metadata: {name: x}
---
apiVersion: projectcalico.org/v3
kind: IPReservation
metadata: {name: default}
spec: {reservedCIDRs: [10.65.0.0/30]}
---
apiVersion: projectcalico.org/v3
kind: WorkloadEndpoint
metadata: {name: node1-k8s-web-eth0, namespace: ns1}
spec: {orchestrator: k8s, node: node1, pod: web, endpoint: eth0, interfaceName: caliweb,
       ipNetworks: [10.65.0.5/32], profiles: [kns.ns1]}
""")
    resources, problems = load_files([str(path)])
    assert [r.identifier() for r in resources if r.kind != "Tier"] == [
        "NetworkPolicy(ns1/no-tier)", "WorkloadEndpoint(ns1/node1-k8s-web-eth0)"]
    assert problems[0].startswith(f"{path} (document 1): skipped: error with field "
                                  "NetworkPolicy(ns1/bad-selector).spec.selector = 'app =='")
    assert problems[1] == f"{path} (document 3): skipped: resource kind 'Frobnicator' is not supported"
    assert problems[2] == (f"{path} (document 4): skipped IPReservation(default): the policy agent does "
                           "not use IPReservation resources")
    assert problems[3] == ("NetworkPolicy(ns1/no-tier).spec.tier: tier 'gold' does not exist "
                           "(calicoctl would refuse it; the policy agent sorts it last)")
    # The policy with a missing tier is still enforced, with an end-of-tier drop.
    text = dry_run("node1", {}, files=[str(path)], interfaces=IFACES)
    assert "--jump cali-pi-np/ns1/no-tier" in text
    assert '"End of tier gold. Drop if no policies passed packet"' in text

    run = _calico_node("felix", "--dry-run", "--from-file", str(path), env=_env(NODENAME="node1"))
    assert run.returncode == 0
    assert "bad-selector" in run.stderr and "Frobnicator" in run.stderr and "Traceback" not in run.stderr


def test_unreadable_file_and_disabled_ipv6(tmp_path):
    with pytest.raises(DryRunError, match="cannot read /nonexistent.yaml"):
        dry_run("node1", {}, files=["/nonexistent.yaml"], interfaces=IFACES)
    source = str(GOLDEN / "profile-only" / "resources.yaml")
    with pytest.raises(DryRunError, match="IPv6 is disabled"):
        dry_run("node1", {"FELIX_IPV6SUPPORT": "false"}, files=[source], ip_version=6, interfaces=IFACES)


def test_bandwidth_limits_of_this_hosts_active_workloads():
    """``--qos``: the qdiscs of the workloads the agent hands its QoS dataplane, whichever
    IP family is asked for; another host's workloads are its own business."""
    source = str(GOLDEN / "two-tiers" / "resources.yaml")
    mtus = {"calia1b2c3d4e5f": 1450, "cali0f0f0f0f0f0": 1500}
    text = dry_run("node1", {}, files=[source], what="qos", interfaces=IFACES, interface_mtus=mtus)
    assert text == (GOLDEN / "two-tiers" / "qos.txt").read_text()
    assert "cali0f0f0f0f0f0" not in text
    assert dry_run("node1", {"FELIX_IPV6SUPPORT": "false"}, files=[source], what="qos", ip_version=6,
                   interfaces=IFACES, interface_mtus=mtus) == text
    # node2's client: 5 Mbit/s with the default 4 Gi bit burst, whose buffer (859 s) and
    # limit saturate at 32 bits.
    assert dry_run("node2", {}, files=[source], what="qos", interfaces=IFACES, interface_mtus=mtus) == (
        "qdisc tbf 1: dev cali0f0f0f0f0f0 root rate 625000 B/s buffer 4294967295 ticks limit 4294967295 B\n")
    assert dry_run("node1", {}, files=[str(GOLDEN / "profile-only" / "resources.yaml")], what="qos",
                   interfaces=IFACES) == ""

    # The command, reading this namespace's interfaces (the workload's is not here).
    run = _calico_node("felix", "--dry-run", "--qos", "--from-file", source, env=_env(NODENAME="node1"))
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines()[1] == "link bwcali6f69afdc9 type ifb mtu of calia1b2c3d4e5f up"
    assert run.stdout.count("(at least the MTU of calia1b2c3d4e5f + 14)") == 1
    run = _calico_node("felix", "--qos", env=_env(NODENAME="node1"))
    assert run.returncode == 1 and "--qos go with --dry-run" in run.stderr


def test_felix_environment_changes_the_rendering():
    source = str(GOLDEN / "profile-only" / "resources.yaml")
    default = dry_run("node1", {}, files=[source], interfaces=IFACES)
    changed = dry_run("node1", {"FELIX_DEFAULTENDPOINTTOHOSTACTION": "ACCEPT", "FELIX_IPTABLESMARKMASK": "0xff000000",
                                "FELIX_CHAININSERTMODE": "append"},
                      files=[source], interfaces=IFACES)
    assert '"Configured DefaultEndpointToHostAction" --jump DROP' in default
    assert '"Configured DefaultEndpointToHostAction" --jump ACCEPT' in changed
    assert "--set-mark 0/0x1b0000" in default and "--set-mark 0/0x1b000000" in changed


def test_endpoint_slices_from_files_fill_the_service_sets(tmp_path):
    """A dry run from files takes Kubernetes EndpointSlices (as the agent's syncer does on
    the Kubernetes datastore), so the IP sets of rules naming a Service can be seen
    offline; a slice the agent could not use is reported and skipped."""
    from node.selector import make_unique_id
    from node.felix.rules.names import ip_set_name

    path = tmp_path / "svc.yaml"
    path.write_text("""\
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: to-api, namespace: ns1}
spec:
  selector: all()
  types: [Egress]
  egress: [{action: Allow, destination: {services: {name: api, namespace: default}}}]
---
apiVersion: projectcalico.org/v3
kind: WorkloadEndpoint
metadata: {name: node1-k8s-web-eth0, namespace: ns1}
spec: {orchestrator: k8s, node: node1, pod: web, endpoint: eth0, interfaceName: caliweb,
       ipNetworks: [10.65.0.5/32], profiles: [kns.ns1]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: api-x1
  labels: {kubernetes.io/service-name: api}
addressType: IPv4
endpoints: [{addresses: [10.0.0.11]}, {addresses: [10.0.0.12], conditions: {ready: false}}]
ports: [{port: 8443, protocol: TCP}]
---
apiVersion: discovery.k8s.io/v1beta1
kind: EndpointSlice
metadata: {name: old-api, namespace: default}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {namespace: default}
""")
    name = ip_set_name(make_unique_id("svc", "default/api"), 4)
    ipsets = dry_run("node1", {}, files=[str(path)], interfaces=IFACES, what="ipsets")
    assert f"create {name} hash:ip,port" in ipsets
    assert f"add {name} 10.0.0.11,tcp:8443" in ipsets and f"add {name} 10.0.0.12,tcp:8443" in ipsets, ipsets
    assert f"--match-set {name} dst,dst" in dry_run("node1", {}, files=[str(path)], interfaces=IFACES)

    from node.felix.dryrun import load_inputs
    inputs = load_inputs([str(path)])
    assert [(s.namespace, s.name, s.service) for s in inputs.endpoint_slices] == [("default", "api-x1", "default/api")]
    assert inputs.problems == [
        f"{path} (document 4): skipped: EndpointSlice old-api: apiVersion must be discovery.k8s.io/v1",
        f"{path} (document 5): skipped: EndpointSlice without metadata.name"]
    run = _calico_node("felix", "--dry-run", "--ipsets", "--from-file", str(path), env=_env(NODENAME="node1"))
    assert run.returncode == 0 and f"add {name} 10.0.0.11,tcp:8443" in run.stdout, run.stderr


def test_settings_the_agent_refuses_are_one_line_and_exit_1(tmp_path):
    """An unparsable USE_POD_CIDR stops the dry run and the agent as it stops Calico, with
    one line naming it rather than a traceback."""
    env = {**os.environ, "NODENAME": "node1", "USE_POD_CIDR": "yes"}
    source = Path(__file__).parent / "felix_golden" / "vxlan" / "resources.yaml"
    for args in (("felix", "--dry-run", "--from-file", str(source)), ("felix",)):
        res = _calico_node(*args, env={**env, "ETCD_ENDPOINTS": "http://127.0.0.1:1",
                                       "CALICO_LIB_DIR": str(tmp_path), "CALICO_RUN_DIR": str(tmp_path)})
        assert res.returncode == 1, res.stderr
        assert res.stderr.strip().splitlines()[-1] == "felix: USE_POD_CIDR='yes' is not a boolean (use true or false)"
        assert "Traceback" not in res.stderr


HEP_WITH_DEFAULT_ALLOW = """apiVersion: projectcalico.org/v3
kind: HostEndpoint
metadata: {name: node1-eth0, labels: {host-endpoint: ingress}}
spec: {node: node1, interfaceName: eth0, expectedIPs: [10.0.0.1], profiles: [projectcalico-default-allow]}
"""


@pytest.mark.etcd
def test_the_default_allow_profile_allows(etcd_clean_config, tmp_path):
    """A host endpoint naming the built-in default-allow profile (as kube-controllers' auto
    host endpoints do) gets its allow rules, from the datastore (which never stores it)
    and from files alike."""
    path = tmp_path / "hep.yaml"
    path.write_text(HEP_WITH_DEFAULT_ALLOW)
    kv = EtcdKV(etcd_clean_config)
    try:
        DatastoreClient(kv).create(load_resources(HEP_WITH_DEFAULT_ALLOW)[0])
    finally:
        kv.close()
    from_etcd = dry_run("node1", {"ETCD_ENDPOINTS": etcd_clean_config.etcd_endpoints[0]}, interfaces=IFACES,
                        sync_timeout=20)
    assert from_etcd == dry_run("node1", {}, files=[str(path)], interfaces=IFACES)
    for direction in ("ingress", "egress"):  # (the chains' names are hashed: too long for iptables)
        assert re.search(rf'--comment "Profile projectcalico-default-allow {direction}" '
                         r"--jump MARK --set-mark 0x10000/0x10000", from_etcd), from_etcd
