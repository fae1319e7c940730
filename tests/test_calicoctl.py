"""calicoctl resource commands against a real etcd: output lines and exit codes."""
import json

import pytest
import yaml

from node.cli import calicoctl

POOLS = """
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: p1}
spec: {cidr: 10.1.0.0/16, ipipMode: Always, natOutgoing: true}
---
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: p2}
spec: {cidr: 10.2.0.0/16}
---
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: p3}
spec: {cidr: 10.3.0.0/16, vxlanMode: CrossSubnet, nodeSelector: "zone == 'a'"}
"""


def test_apply_stream_prints_calicoctl_summary(ctl):
    code, out, err = ctl("apply", "-f", "@pools.yaml", files={"pools.yaml": POOLS})
    assert (code, out, err) == (0, "Successfully applied 3 'IPPool' resource(s)\n", "")
    code, out, _ = ctl("apply", "-f", "@pools.yaml")
    assert (code, out) == (0, "Successfully applied 3 'IPPool' resource(s)\n")


def test_create_existing_fails_with_exit_1(ctl):
    ctl("create", "-f", "-", stdin=POOLS)
    code, out, err = ctl("create", "-f", "-", stdin=POOLS)
    assert code == 1 and out == ""
    assert err.startswith("failed to create any 'IPPool' resources: [resource already exists: IPPool(p1)")


def test_partial_failure_reports_partial_success_and_exit_1(ctl):
    # p1 fails, p2 and p3 are created: they are not "the first 2", so that is not said.
    ctl("create", "-f", "-", stdin=POOLS.split("---")[0])
    code, out, err = ctl("create", "-f", "-", stdin=POOLS)
    assert code == 1
    assert out == "Partial success: created 2 out of 3 'IPPool' resources:\n"
    assert err.startswith("hit error: [resource already exists: IPPool(p1)")
    # p3 fails after p1 and p2 are created: now they are the first 2.
    ctl("delete", "ippool", "p1", "p2", "p3")
    ctl("create", "-f", "-", stdin=POOLS.split("---")[2])
    code, out, err = ctl("create", "-f", "-", stdin=POOLS)
    assert code == 1
    assert out == "Partial success: created the first 2 out of 3 'IPPool' resources:\n"
    assert err == "hit error: [resource already exists: IPPool(p3) with error: key exists]\n"


def test_skip_exists_counts_only_what_was_created(ctl):
    ctl("create", "-f", "-", stdin=POOLS.split("---")[0])
    code, out, _ = ctl("create", "--skip-exists", "-f", "-", stdin=POOLS)
    assert (code, out) == (0, "Successfully created 2 'IPPool' resource(s)\n"
                              "Skipped 1 'IPPool' resource(s) that already exist\n")
    code, out, _ = ctl("create", "--skip-exists", "-f", "-", stdin=POOLS)
    assert (code, out) == (0, "Skipped 3 'IPPool' resource(s) that already exist\n")


def test_mixed_kinds_summary_has_no_kind(ctl):
    text = POOLS.split("---")[0] + "---\napiVersion: projectcalico.org/v3\nkind: Profile\nmetadata: {name: pr}\n"
    code, out, _ = ctl("apply", "-f", "-", stdin=text)
    assert (code, out) == (0, "Successfully applied 2 resource(s)\n")


def test_invalid_file_fails_before_writing_anything(ctl):
    bad = POOLS + "---\napiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: p4}\nspec: {cidr: nope}\n"
    code, out, err = ctl("apply", "-f", "-", stdin=bad)
    assert code == 1 and out == ""
    assert "failed to execute command" in err and "IPPool(p4).spec.cidr = 'nope'" in err
    code, out, _ = ctl("get", "ippools")
    assert out.splitlines()[1:] == [""]  # header only, nothing was written


def test_get_table_wide_yaml_json(ctl):
    ctl("apply", "-f", "-", stdin=POOLS)
    code, out, _ = ctl("get", "ippools")
    assert code == 0
    assert out == ("NAME   CIDR          SELECTOR      \n"
                   "p1     10.1.0.0/16   all()         \n"
                   "p2     10.2.0.0/16   all()         \n"
                   "p3     10.3.0.0/16   zone == 'a'   \n"
                   "\n")
    code, out, _ = ctl("get", "ipp", "p1", "-o", "wide")
    header, row = out.splitlines()[:2]
    assert header.split() == ["NAME", "CIDR", "NAT", "IPIPMODE", "VXLANMODE", "DISABLED", "DISABLEBGPEXPORT",
                              "SELECTOR", "ASSIGNMENTMODE"]
    assert row.split() == ["p1", "10.1.0.0/16", "true", "Always", "Never", "false", "false", "all()", "Automatic"]
    code, out, _ = ctl("get", "IPPool", "p1", "-o", "yaml")
    doc = yaml.safe_load(out)
    assert doc["kind"] == "IPPool" and doc["spec"]["ipipMode"] == "Always"
    assert doc["metadata"]["resourceVersion"].isdigit()
    code, out, _ = ctl("get", "pools", "-o", "json")
    doc = json.loads(out)
    assert doc["kind"] == "IPPoolList" and [i["metadata"]["name"] for i in doc["items"]] == ["p1", "p2", "p3"]


def test_get_missing_resource_exits_1(ctl):
    code, out, err = ctl("get", "ippool", "nope")
    assert code == 1
    assert "resource does not exist: IPPool(nope)" in err


def test_get_unknown_kind(ctl):
    code, _, err = ctl("get", "frobs")
    assert code == 1 and "resource type 'frobs' is not supported" in err


@pytest.mark.parametrize("name", ["kubernetesclusternetworkpolicy", "KubernetesClusterNetworkPolicy"])
def test_no_calicoctl_command_for_cluster_network_policies(ctl, name):
    # The policy agent knows the kind, but Calico's calicoctl has no resource for it.
    code, _, err = ctl("get", name)
    assert code == 1 and f"resource type '{name}' is not supported" in err


TIER_DEFAULT = "apiVersion: projectcalico.org/v3\nkind: Tier\nmetadata: {name: default}\nspec: {order: 1000000}\n"


def test_namespaced_get_and_all_namespaces(ctl):
    ctl("create", "-f", "-", stdin=TIER_DEFAULT)  # policies need their tier
    policy = ("apiVersion: projectcalico.org/v3\nkind: NetworkPolicy\nmetadata: {{name: np1, namespace: {ns}}}\n"
              "spec: {{selector: all(), order: 10}}\n")
    ctl("apply", "-f", "-", stdin=policy.format(ns="prod") + "---\n" + policy.format(ns="dev"))
    code, out, _ = ctl("get", "networkpolicy", "-n", "prod")  # -n adds the NAMESPACE column, as -A does
    assert [line.split() for line in out.splitlines()] == [["NAMESPACE", "NAME", "TIER"],
                                                           ["prod", "np1", "default"], []]
    code, out, _ = ctl("get", "policy", "-A")
    assert [line.split()[0] for line in out.splitlines()[1:3]] == ["dev", "prod"]
    code, out, _ = ctl("get", "networkpolicy")  # the default namespace has none
    assert out.splitlines()[1:] == [""]


def test_replace_with_stale_resource_version_is_a_conflict(ctl):
    ctl("apply", "-f", "-", stdin=POOLS.split("---")[0])
    code, out, _ = ctl("get", "ippool", "p1", "-o", "yaml")
    stale = yaml.safe_load(out)
    ctl("apply", "-f", "-", stdin=POOLS.split("---")[0].replace("natOutgoing: true", "natOutgoing: false"))
    code, out, err = ctl("replace", "-f", "-", stdin=yaml.safe_dump(stale))
    assert code == 1
    assert "update conflict: IPPool(p1)" in err and "is out of date" in err


def test_replace_missing_fails(ctl):
    code, _, err = ctl("replace", "-f", "-", stdin=POOLS.split("---")[0])
    assert code == 1 and "failed to replace 'IPPool' resource" in err and "does not exist" in err


def test_delete_by_name_and_by_file(ctl):
    ctl("apply", "-f", "-", stdin=POOLS)
    code, out, _ = ctl("delete", "ippool", "p1")
    assert (code, out) == (0, "Successfully deleted 1 'IPPool' resource(s)\n")
    code, out, _ = ctl("delete", "-f", "-", stdin=POOLS.split("---", 1)[1])
    assert (code, out) == (0, "Successfully deleted 2 'IPPool' resource(s)\n")
    code, out, err = ctl("delete", "ippool", "p1")
    assert code == 1 and "resource does not exist: IPPool(p1)" in err
    code, out, err = ctl("delete", "--skip-not-exists", "ippool", "p1")
    assert code == 0


def test_kubernetes_datastore_without_a_cluster_is_a_clear_error(tmp_path, capsys, monkeypatch):
    # No kubeconfig (HOME has none), no service account, no K8S_API_ENDPOINT.
    monkeypatch.setenv("HOME", str(tmp_path))
    for name in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST", "K8S_API_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    cfg = tmp_path / "k.cfg"
    cfg.write_text("apiVersion: projectcalico.org/v3\nkind: CalicoAPIConfig\nspec: {datastoreType: kubernetes}\n")
    assert calicoctl.main(["-c", str(cfg), "get", "nodes"]) == 1
    assert "no Kubernetes API configuration: set KUBECONFIG" in capsys.readouterr().err


def test_bad_config_file_kind(tmp_path, capsys):
    cfg = tmp_path / "bad.cfg"
    cfg.write_text("apiVersion: projectcalico.org/v3\nkind: Nope\n")
    assert calicoctl.main(["-c", str(cfg), "get", "nodes"]) == 1
    assert "expected kind 'CalicoAPIConfig', got 'Nope'" in capsys.readouterr().err
