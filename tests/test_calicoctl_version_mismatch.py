"""calicoctl refuses to work with a cluster of another Calico release unless told
``--allow-version-mismatch`` (calicoctl/commands/common/version_mismatch.go): the
cluster's calicoVersion is ClusterInformation ``default``'s, written by calico/node."""
from __future__ import annotations

import os

import pytest

import node
from node.model import Resource

OURS = node.__version__                       # v3.32.1-py0.1.0: release 3.32.1
MISMATCH = ("version mismatch.\nClient Version:   " + OURS + "\nCluster Version:  3.31.2\n"
            "Use --allow-version-mismatch to override")


def _cluster(client, version: str) -> None:
    client.create(Resource("ClusterInformation", {"name": "default"},
                           {"calicoVersion": version, "clusterType": "bgp", "datastoreReady": True}))


def _pool(ctl) -> None:
    text = "kind: IPPool\napiVersion: projectcalico.org/v3\nmetadata: {name: p1}\nspec: {cidr: 10.9.0.0/16}\n"
    assert ctl("create", "-f", "@p.yaml", "--allow-version-mismatch", files={"p.yaml": text})[0] == 0


@pytest.mark.parametrize("version", [None, "", "v3.32.1", "3.32.1", "v3.32.1-12-gdeadbeef", OURS])
def test_the_same_release_or_nothing_to_compare_is_no_mismatch(ctl, client, version):
    if version is not None:
        _cluster(client, version)
    _pool(ctl)
    code, out, err = ctl("get", "ippools")
    assert (code, err) == (0, "") and "p1" in out


def test_every_datastore_command_refuses_another_release_and_says_how_to_override(ctl, client):
    _cluster(client, "v3.31.2-0.dev")
    _pool(ctl)
    text = "kind: IPPool\napiVersion: projectcalico.org/v3\nmetadata: {name: p2}\nspec: {cidr: 10.8.0.0/16}\n"
    cases = [
        (("get", "ippools"), "failed to get resources: " + MISMATCH),
        (("create", "-f", "@p2.yaml"), MISMATCH),
        (("apply", "-f", "@p2.yaml"), MISMATCH),
        (("replace", "-f", "@p2.yaml"), MISMATCH),
        (("delete", "ippool", "p1"), MISMATCH),
        (("patch", "ippool", "p1", "-p", '{"spec": {"disabled": true}}'), MISMATCH),
        (("label", "ippool", "p1", "a=b"), "failed to get ippool p1, error " + MISMATCH),
        (("ipam", "show"), MISMATCH),
        (("ipam", "check"), MISMATCH),
        (("ipam", "release", "--ip", "10.9.0.1"), MISMATCH),
        (("ipam", "configure", "--strictaffinity", "true"), MISMATCH),
        (("ipam", "split", "--cidr", "10.9.0.0/16", "2"), MISMATCH),
    ]
    for argv, said in cases:
        assert ctl(*argv, files={"p2.yaml": text}) == (1, "", said + "\n"), argv
    assert [p.name for p in client.list("IPPool")] == ["p1"]           # nothing was written
    assert not client.get("IPPool", "p1").spec.get("disabled")
    # Overridden, before or after the command; commands that do not check accept the flag too.
    assert ctl("--allow-version-mismatch", "get", "ippools")[0] == 0
    assert ctl("create", "-f", "@p2.yaml", "--allow-version-mismatch", files={"p2.yaml": text})[:2] == (
        0, "Successfully created 1 'IPPool' resource(s)\n")
    assert ctl("ipam", "show", "--allow-version-mismatch")[0] == 0
    assert ctl("version", "--allow-version-mismatch")[0] == 0


def test_a_cluster_information_that_cannot_be_read_is_an_error_naming_the_override(ctl, etcd_kv):
    etcd_kv.create("/calico/resources/v3/projectcalico.org/clusterinformations/default", b"{not json")
    code, out, err = ctl("get", "ippools")
    assert code == 1 and err.startswith("failed to get resources: unable to get Cluster Information to verify "
                                        "version mismatch: ")
    assert err.endswith("\nUse --allow-version-mismatch to override\n")
    assert ctl("get", "ippools", "--allow-version-mismatch")[0] == 0


def test_context_names_the_kubeconfig_context(ctl, monkeypatch):
    monkeypatch.delenv("K8S_CURRENT_CONTEXT", raising=False)
    assert ctl("--context", "staging", "version", "--client")[0] == 0
    assert os.environ.pop("K8S_CURRENT_CONTEXT") == "staging"
    assert ctl("version", "--client", "--context", "prod")[0] == 0
    assert os.environ.pop("K8S_CURRENT_CONTEXT") == "prod"
