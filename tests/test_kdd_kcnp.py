"""Kubernetes ClusterNetworkPolicies on the Kubernetes datastore, against the stand-in API
server: read as KubernetesClusterNetworkPolicy, followed by the syncer (a malformed one
withdrawn, a cluster without the CRD in sync and empty), and enforced by the policy
agent in the kube-admin and kube-baseline tiers."""
from __future__ import annotations

import logging

import pytest

from kcnp_examples import ADMIN, BASELINE
from kdd_fixtures import kube, kube_config, kube_kv  # noqa: F401  (fixtures)
from kdd_fixtures import k8s_node, kube_env, namespace, pod, wait_for
from node.datastore.client import DatastoreClient, OperationNotSupported
from node.datastore.kubernetes import conversion as conv
from node.datastore.kubernetes import kv as kube_kv_module
from node.datastore.kubernetes.kv import KubeKV
from node.datastore.sources import resource_sources
from node.datastore.syncer import Syncer, SyncStatus
from node.felix import types as t
from node.felix.dryrun import dry_run
from node.felix.rules.names import policy_chain_name
from node.model import from_dict
from syncer_view import SyncerView

CNP = ("policy.networking.k8s.io/v1alpha2", "clusternetworkpolicies")
KIND = "KubernetesClusterNetworkPolicy"


def _cnp(name: str, spec: dict) -> dict:
    return {"apiVersion": CNP[0], "kind": "ClusterNetworkPolicy", "metadata": {"name": name}, "spec": spec}


def _chain(prefix: str, name: str) -> str:
    return policy_chain_name(prefix, t.PolicyID(name, "", t.KIND_KUBERNETES_CLUSTER_NETWORK_POLICY))


def _lines(text: str, chain: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(f"-A {chain} ")]


def _syncer(config, recorder) -> Syncer:
    return Syncer(lambda: KubeKV(config, env={}), resource_sources([KIND]), recorder,
                  initial_backoff=0.05, max_backoff=0.2)


def test_policy_agent_enforces_cluster_network_policies(kube, kube_config, kube_kv, caplog):
    client = DatastoreClient(kube_kv)
    for name, order in (("default", 1000000), ("kube-admin", 1000), ("kube-baseline", 10000000)):
        client.create(from_dict({"apiVersion": "projectcalico.org/v3", "kind": "Tier", "metadata": {"name": name},
                                 "spec": {"order": order, "defaultAction": "Deny" if name == "default" else "Pass"}}))
    k8s_node(kube, "node1", internal_ip="10.0.0.11")
    namespace(kube, "shop", labels={"team": "retail"})
    pod(kube, "shop", "web-0", "node1", ip="192.168.10.5", labels={"app": "web"})
    kube.create(*CNP, _cnp("admin-web", ADMIN))
    kube.create(*CNP, _cnp("baseline-retail", BASELINE))
    kube.create(*CNP, _cnp("bad-tier", dict(BASELINE, tier="Frontline")))
    kube.create(*CNP, _cnp("no-subject", {"tier": "Admin", "priority": 1, "subject": {}}))
    env = kube_env(kube_config, NODENAME="node1", FELIX_IPV6SUPPORT="false")
    with caplog.at_level(logging.WARNING):
        text = dry_run("node1", env, interfaces={"eth0": ["10.0.0.11"]})
    web = conv.veth_name("shop", "web-0")
    admin_in, admin_out = _chain("cali-pi-", "admin-web"), _chain("cali-po-", "admin-web")
    baseline_in = _chain("cali-pi-", "baseline-retail")
    assert admin_in == "cali-pi-kcnp/admin-web" and baseline_in == "cali-pi-kcnp/baseline-retail"
    # Ingress to web-0: the admin tier, then the baseline tier, then the profiles; both
    # tiers default to Pass, so neither ends in a drop.
    to_web = _lines(text, f"cali-tw-{web}")
    order = [i for i, line in enumerate(to_web) for needle in (
        "Start of tier kube-admin", f"--jump {admin_in}", "Start of tier kube-baseline", f"--jump {baseline_in}",
        "--jump cali-pri-kns.shop") if needle in line]
    assert len(order) == 5 and order == sorted(order), "\n".join(to_web)
    assert not any("End of tier" in line for line in to_web), "\n".join(to_web)
    # The admin rule denies SSH from any namespace; the baseline one accepts db pods.
    admin_rules = _lines(text, admin_in)
    assert any("-p tcp" in line and "--destination-ports 22" in line and '"name=no-ssh"' in line
               and "--set-mark 0x40000/0x40000" in line for line in admin_rules), "\n".join(admin_rules)
    assert any("--mark 0x40000/0x40000 --jump DROP" in line for line in admin_rules), "\n".join(admin_rules)
    assert any("--set-mark 0x10000/0x10000" in line for line in _lines(text, baseline_in))
    # Egress from web-0: the admin policy's Pass rule to 10.0.0.0/8, no end-of-tier drop.
    from_web = _lines(text, f"cali-fw-{web}")
    assert any(f"--jump {admin_out}" in line for line in from_web), "\n".join(from_web)
    assert not any("End of tier" in line for line in from_web)
    assert any("10.0.0.0/8" in line for line in _lines(text, admin_out))
    # The malformed policies enforce nothing and are named in a warning.
    assert "kcnp/bad-tier" not in text and "kcnp/no-subject" not in text
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("ClusterNetworkPolicy bad-tier" in w and "spec.tier" in w for w in warnings), warnings
    assert any("ClusterNetworkPolicy no-subject" in w and "spec.subject" in w for w in warnings), warnings


def test_cluster_network_policies_are_read_only_and_listed(kube, kube_kv):
    kube.create(*CNP, _cnp("admin-web", ADMIN))
    client = DatastoreClient(kube_kv)
    (policy,) = client.list(KIND)
    assert policy.name == "admin-web" and policy.spec["tier"] == "kube-admin" and policy.spec["order"] == 10
    assert client.get(KIND, "admin-web").spec["types"] == ["Ingress", "Egress"]
    with pytest.raises(OperationNotSupported):
        client.delete(KIND, "admin-web")


def test_syncer_follows_and_withdraws_malformed_policies(kube, kube_config, caplog):
    kube.create(*CNP, _cnp("admin-web", ADMIN))
    recorder = SyncerView()
    syncer = _syncer(kube_config, recorder)
    syncer.start()
    try:
        assert syncer.wait_for_status(SyncStatus.IN_SYNC, 10)
        assert list(recorder.of_kind(KIND)) == ["admin-web"]
        kube.create(*CNP, _cnp("baseline-retail", BASELINE))
        wait_for(lambda: sorted(recorder.of_kind(KIND)) == ["admin-web", "baseline-retail"], what="the new policy")
        # An edit that breaks it withdraws the version enforced before.
        with caplog.at_level(logging.WARNING):
            kube.patch(*CNP, "admin-web", {"spec": {"tier": "Frontline"}})
            wait_for(lambda: sorted(recorder.of_kind(KIND)) == ["baseline-retail"], what="the withdrawal")
        assert any("ClusterNetworkPolicy admin-web" in r.getMessage() for r in caplog.records)
        kube.patch(*CNP, "admin-web", {"spec": {"tier": "Admin"}})
        wait_for(lambda: "admin-web" in recorder.of_kind(KIND), what="the repaired policy")
        kube.delete(*CNP, "baseline-retail")
        wait_for(lambda: list(recorder.of_kind(KIND)) == ["admin-web"], what="the delete")
    finally:
        syncer.stop(timeout=10)


def test_cluster_without_the_crd_is_in_sync_and_picks_it_up_later(kube, kube_config, monkeypatch):
    monkeypatch.setattr(kube_kv_module, "MISSING_API_RETRY_SECONDS", 0.2)
    res = kube.resources.pop(CNP)
    recorder = SyncerView()
    syncer = _syncer(kube_config, recorder)
    syncer.start()
    try:
        assert syncer.wait_for_status(SyncStatus.IN_SYNC, 10)
        assert recorder.of_kind(KIND) == {}
        # The CRD is installed and a policy created: it arrives without a resync.
        kube.resources[CNP] = res
        kube.create(*CNP, _cnp("admin-web", ADMIN))
        wait_for(lambda: list(recorder.of_kind(KIND)) == ["admin-web"], what="the policy after the CRD came")
        assert recorder.statuses.count(SyncStatus.IN_SYNC) == 1
        # The CRD is removed: a re-list withdraws its policies, and the syncer is in sync again.
        kube.resources.pop(CNP)
        kube.drop_watches()
        wait_for(lambda: recorder.of_kind(KIND) == {}, what="the withdrawal after the CRD went")
        wait_for(lambda: syncer.status is SyncStatus.IN_SYNC, what="in sync without the CRD")
    finally:
        syncer.stop(timeout=10)
