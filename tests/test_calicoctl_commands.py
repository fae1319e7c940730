"""calicoctl version, label, patch, get -f, -f DIR [-R] and -o custom-columns against a
real etcd: output lines, stored results and exit codes."""
from __future__ import annotations

import json
import re

import pytest
import yaml

from etcd_server import calicoctl_config, free_port
from node.cli import calicoctl
from node.cli.ctl.patch import merge_patch, strategic_merge_patch
from node.cli.ctl.version import parse_duration, show_cluster_version
from node.model import Resource

NODE = "apiVersion: projectcalico.org/v3\nkind: Node\nmetadata: {name: n1, labels: {rack: r1}}\nspec: {}\n"
POOLS = """apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: p1}
spec: {cidr: 10.1.0.0/16, ipipMode: Always}
---
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: p2}
spec: {cidr: 10.2.0.0/16, natOutgoing: true}
"""
PROFILE = '{"apiVersion": "projectcalico.org/v3", "kind": "Profile", "metadata": {"name": "web"}}'


# --------------------------------------------------------------------------------------
# version

VERSION_LINES = re.compile(r"Client Version:    v\S+\nGit commit:        ([0-9a-f]{40}|<unknown>)\n")


def test_version_client_and_cluster(ctl, client):
    code, out, err = ctl("version", "--client")
    assert (code, err) == (0, "") and VERSION_LINES.fullmatch(out), out
    code, out, err = ctl("version")
    assert code == 1 and VERSION_LINES.fullmatch(out)
    assert err.startswith("unable to retrieve Cluster Version or Type: resource does not exist: "
                          "ClusterInformation(default)")
    client.create(Resource("ClusterInformation", {"name": "default"},
                           {"calicoVersion": "v3.30.2", "clusterType": "k8s,bgp,kdd", "datastoreReady": True}))
    code, out, err = ctl("version")
    assert (code, err) == (0, "")
    assert out.splitlines()[2:] == ["Cluster Version:   v3.30.2", "Cluster Type:      k8s,bgp,kdd"]


def test_version_without_a_datastore(tmp_path, capsys):
    cfg = calicoctl_config(tmp_path / "c.cfg", f"http://127.0.0.1:{free_port()}")
    assert calicoctl.main(["version", "-c", str(cfg)]) == 1
    out, err = capsys.readouterr()
    assert VERSION_LINES.fullmatch(out)
    assert err.startswith("unable to retrieve Cluster Version or Type: cannot reach etcd at http://127.0.0.1:")
    cfg.write_text("apiVersion: projectcalico.org/v3\nkind: CalicoAPIConfig\nspec: {datastoreType: kubernetes}\n")
    assert calicoctl.main(["version", "-c", str(cfg)]) == 0
    assert capsys.readouterr().out.splitlines()[2:] == ["Unable to detect installed Calico version"]


def test_version_poll_prints_changes_only(client, capsys):
    client.create(Resource("ClusterInformation", {"name": "default"}, {"calicoVersion": "v3.30.0"}))
    sleeps = []

    def sleep(seconds):
        sleeps.append(seconds)
        if len(sleeps) == 1:
            info = client.get("ClusterInformation", "default")
            info.spec["calicoVersion"] = "v3.31.0"
            client.update(info)
        elif len(sleeps) == 2:
            client.delete("ClusterInformation", "default")
        elif len(sleeps) == 3:
            client.create(Resource("ClusterInformation", {"name": "default"}, {"calicoVersion": "v3.31.0"}))
        else:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        show_cluster_version(client, 2.5, sleep)
    out, err = capsys.readouterr()
    assert out.splitlines() == ["Cluster Version:   v3.30.0", "Cluster Type:      unknown",
                                "Cluster Version:   v3.31.0",
                                "Cluster Version:   v3.31.0", "Cluster Type:      unknown"]
    assert err.startswith("unable to retrieve Cluster Version or Type: resource does not exist")
    assert sleeps == [2.5] * 4


def test_parse_go_duration():
    assert parse_duration("0") == 0
    assert parse_duration("1h10m") == 4200
    assert parse_duration("1.5s") == 1.5
    assert parse_duration("250ms") == pytest.approx(0.25)
    for bad in ("", "10", "ten", "-1s", "1d", "s"):
        with pytest.raises(ValueError):
            parse_duration(bad)


# --------------------------------------------------------------------------------------
# label

def test_label_set_update_overwrite_remove(ctl, client):
    ctl("apply", "-f", "-", stdin=NODE)
    assert ctl("label", "nodes", "n1", "zone=a") == (0, "Successfully set label zone on nodes n1\n", "")
    assert ctl("label", "nodes", "n1", "zone=a") == (0, "Successfully updated label zone on nodes n1\n", "")
    assert ctl("label", "nodes", "n1", "zone=b") == (
        1, "", "failed to update label of nodes n1, key zone is already present. "
               "please use '--overwrite' to set a new value\n")
    assert ctl("label", "--overwrite", "nodes", "n1", "zone=b")[1] == "Successfully updated label zone on nodes n1\n"
    assert client.get("Node", "n1").labels == {"rack": "r1", "zone": "b"}
    assert ctl("label", "node", "n1", "rack", "--remove") == (
        0, "Successfully removed label rack from node n1\n", "")
    assert ctl("label", "node", "n1", "rack", "--remove") == (
        1, "", "cannot remove label of node n1, key rack does not exist\n")
    assert client.get("Node", "n1").labels == {"zone": "b"}


def test_label_errors(ctl, client):
    ctl("apply", "-f", "-", stdin=NODE)
    assert ctl("label", "nodes", "n9", "zone=a") == (1, "", "nodes n9 not found\n")
    assert ctl("label", "nodes", "n1", "zone") == (1, "", "invalid label zone\n")
    assert ctl("label", "frobs", "n1", "zone=a") == (
        1, "", "failed to get frobs n1, error resource type 'frobs' is not supported\n")
    assert ctl("label", "kubernetesclusternetworkpolicy", "n1", "zone=a") == (
        1, "", "failed to get kubernetesclusternetworkpolicy n1, error resource type "
               "'kubernetesclusternetworkpolicy' is not supported\n")
    code, _, err = ctl("label", "nodes", "n1", "bad key!=x")
    assert code == 1 and err.startswith("failed to update nodes n1, label not changed: ")
    assert "bad key!" in err
    assert client.get("Node", "n1").labels == {"rack": "r1"}


def test_label_namespaced_resource(ctl, client):
    ctl("create", "-f", "-", stdin="apiVersion: projectcalico.org/v3\nkind: Tier\nmetadata: {name: default}\n"
                                   "spec: {order: 1000000}\n")
    ctl("apply", "-f", "-", stdin="apiVersion: projectcalico.org/v3\nkind: NetworkPolicy\n"
                                  "metadata: {name: np1, namespace: prod}\nspec: {selector: all()}\n")
    assert ctl("label", "policy", "np1", "team=x")[2] == "policy np1 not found\n"  # looked up in "default"
    assert ctl("label", "policy", "np1", "team=x", "-n", "prod")[1] == "Successfully set label team on policy np1\n"
    assert client.get("NetworkPolicy", "np1", "prod").labels["team"] == "x"


# --------------------------------------------------------------------------------------
# patch

def test_patch_merges_validates_and_stores(ctl, client):
    ctl("apply", "-f", "-", stdin=POOLS)
    before = client.get("IPPool", "p1")
    code, out, err = ctl("patch", "ippool", "p1", "-p", '{"spec": {"natOutgoing": true, "ipipMode": null}}')
    assert (code, out, err) == (0, "Successfully patched 1 'IPPool' resource\n", "")
    after = client.get("IPPool", "p1")
    assert after.spec["natOutgoing"] is True and after.spec["ipipMode"] == "Never"  # null deletes; default back
    assert after.metadata["uid"] == before.metadata["uid"] and after.spec["cidr"] == "10.1.0.0/16"
    code, out, _ = ctl("patch", "ippool", "p1", "--type", "merge", "-p", "metadata: {labels: {tier: gold}}")
    assert code == 0 and client.get("IPPool", "p1").labels == {"tier": "gold"}
    code, _, _ = ctl("patch", "ippool", "p1", "-p", '{"metadata": {"labels": {"$patch": "replace", "a": "b"}}}')
    assert code == 0 and client.get("IPPool", "p1").labels == {"a": "b"}


def test_patch_errors_name_the_problem(ctl, client):
    ctl("apply", "-f", "-", stdin=POOLS)
    code, _, err = ctl("patch", "ippool", "p1", "-p", '{"spec": {"cidr": "nope"}}')
    assert code == 1 and err.startswith("hit error: ") and "IPPool(p1).spec.cidr = 'nope'" in err
    code, _, err = ctl("patch", "ippool", "p1", "-p", '{"spec": {"bogus": 1}}')
    assert code == 1 and err.startswith("hit error: creating resource from patched data: ") and "bogus" in err
    assert ctl("patch", "ippool", "nope", "-p", "{}")[2].startswith("hit error: resource does not exist: IPPool(nope)")
    code, _, err = ctl("patch", "ippool", "p1", "-p", '{"metadata": {"name": "p9"}}')
    assert err == ("hit error: creating resource from patched data: IPPool(p1): the patch may not change "
                   "metadata.name (from 'p1' to 'p9')\n")
    code, _, err = ctl("patch", "ippool", "p1", "-t", "json", "-p", '[{"op": "remove", "path": "/spec"}]')
    # calicoctl ignores --type: an RFC 6902 list fails as a strategic merge patch.
    assert code == 1 and err.startswith("hit error: performing strategic merge patch: the patch must be a JSON object")
    code, _, err = ctl("patch", "ippool", "p1")
    assert code == 1 and err.startswith("calicoctl patch: a patch is required")
    assert client.get("IPPool", "p1").spec["cidr"] == "10.1.0.0/16"


def test_patch_algorithms():
    doc = {"a": {"b": 1, "c": [1, 2, 3]}, "d": "x"}
    assert merge_patch(doc, {"a": {"b": None, "e": {"f": None, "g": 1}}}) == {"a": {"c": [1, 2, 3], "e": {"g": 1}},
                                                                             "d": "x"}
    assert merge_patch(doc, {"a": {"c": [9]}}) == {"a": {"b": 1, "c": [9]}, "d": "x"}
    assert strategic_merge_patch(doc, {"a": {"$patch": "delete"}}) == {"d": "x"}
    assert strategic_merge_patch(doc, {"a": {"$deleteFromPrimitiveList/c": [2]}}) == {"a": {"b": 1, "c": [1, 3]},
                                                                                      "d": "x"}
    assert doc == {"a": {"b": 1, "c": [1, 2, 3]}, "d": "x"}  # the input is never changed


# --------------------------------------------------------------------------------------
# -f FILE / DIR, and get -f

def test_get_by_file_gets_the_resources_it_names(ctl, tmp_path):
    ctl("apply", "-f", "-", stdin=POOLS.split("---")[0])
    (tmp_path / "want.yaml").write_text(POOLS)
    code, out, err = ctl("get", "-f", "@want.yaml", "-o", "yaml")
    assert code == 1 and err == "resource does not exist: IPPool(p2) with error: <nil>\n"
    assert yaml.safe_load(out)["metadata"]["name"] == "p1"


def test_directory_input_and_recursion(ctl, tmp_path):
    top = tmp_path / "manifests"
    (top / "sub").mkdir(parents=True)
    (top / "a.yaml").write_text(POOLS.split("---")[0])
    (top / "b.JSON").write_text(PROFILE)
    (top / "notes.txt").write_text("not a manifest")
    (top / "sub" / "c.yml").write_text(POOLS.split("---")[1])
    assert ctl("apply", "-f", "@manifests") == (0, "Successfully applied 2 resource(s)\n", "")
    assert ctl("get", "ippool", "p2")[0] == 1
    assert ctl("apply", "-R", "-f", "@manifests") == (0, "Successfully applied 3 resource(s)\n", "")
    code, out, _ = ctl("get", "-o", "json", "-R", "-f", "@manifests")
    assert [d["metadata"]["name"] for d in json.loads(out)] == ["p1", "web", "p2"]
    assert ctl("delete", "-f", "@manifests", "--recursive") == (0, "Successfully deleted 3 resource(s)\n", "")


def test_directory_errors_name_the_file(ctl, tmp_path):
    top = tmp_path / "m"
    top.mkdir()
    (top / "a.yaml").write_text(POOLS.split("---")[0])
    (top / "b.yaml").write_text(POOLS.split("---")[1].replace("10.2.0.0/16", "10.2.0.0/99"))
    code, out, err = ctl("create", "-f", "@m")
    assert (code, out) == (1, "")
    assert err.startswith(f"failed to execute command: {top / 'b.yaml'}: ") and "10.2.0.0/99" in err
    assert ctl("get", "ippools")[1].splitlines()[1:] == [""]  # nothing was written
    (top / "b.yaml").write_text("")
    assert ctl("create", "-f", "@m") == (1, "", f"no resources specified in file {top / 'b.yaml'}\n")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert ctl("apply", "-f", "@empty") == (1, "", f"no resources specified in directory {empty}\n")
    assert ctl("apply", "-f", "@empty", "--skip-empty") == (0, "No resources specified\n", "")


# --------------------------------------------------------------------------------------
# -o

def test_custom_columns_and_output_errors(ctl):
    ctl("apply", "-f", "-", stdin=POOLS)
    code, out, err = ctl("get", "ippools", "-o", "custom-columns=NAME,NAT,CIDR")
    assert (code, err) == (0, "")
    assert out == ("NAME   NAT     CIDR          \n"
                   "p1     false   10.1.0.0/16   \n"
                   "p2     true    10.2.0.0/16   \n"
                   "\n")
    code, _, err = ctl("get", "ippools", "-o", "custom-columns=NAME,name")
    assert (code, err) == (1, "unknown heading name, valid values are: ASSIGNMENTMODE, CIDR, DISABLEBGPEXPORT, "
                              "DISABLED, IPIPMODE, NAME, NAT, SELECTOR, VXLANMODE\n")
    assert ctl("get", "ippools", "-o", "go-template={{.}}")[2].startswith(
        "output format 'go-template' is not supported by this calicoctl")
    assert ctl("get", "ippools", "-o", "xml") == (1, "", "unrecognized output format 'xml'\n")


def test_named_resources_print_one_table_each(ctl):
    ctl("apply", "-f", "-", stdin=POOLS)
    code, out, _ = ctl("get", "ippool", "p1", "p2")
    assert out == ("NAME   CIDR          SELECTOR   \n"
                   "p1     10.1.0.0/16   all()      \n"
                   "\n"
                   "NAME   CIDR          SELECTOR   \n"
                   "p2     10.2.0.0/16   all()      \n"
                   "\n")
