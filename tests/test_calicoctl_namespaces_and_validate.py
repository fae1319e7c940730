"""calicoctl -f with namespaced resources that name no namespace (handleNamespace in
calicoctl/commands/common/resources.go: ``-n``, else ``default``), and ``calicoctl
validate`` (commands/validate.go: offline, resource by resource)."""
from __future__ import annotations

import json

import yaml

from etcd_server import calicoctl_config, free_port
from node.cli import calicoctl


def doc(kind, name, spec, namespace=None):
    md = {"name": name}
    if namespace:
        md["namespace"] = namespace
    return {"apiVersion": "projectcalico.org/v3", "kind": kind, "metadata": md, "spec": spec}


def stream(*docs) -> str:
    return yaml.safe_dump_all(docs)


NP = doc("NetworkPolicy", "allow-web", {"selector": "app == 'web'"})
NS = doc("NetworkSet", "ext", {"nets": ["192.0.2.0/24"]})
GNP = doc("GlobalNetworkPolicy", "deny-all", {"selector": "all()", "types": ["Ingress"]})


def test_a_namespaced_resource_without_a_namespace_goes_to_n_or_default(ctl, client):
    assert ctl("create", "-f", "@a.yaml", files={"a.yaml": stream(NP, NS)})[:2] == (
        0, "Successfully created 2 resource(s)\n")
    assert client.get("NetworkPolicy", "allow-web", "default").namespace == "default"
    # Written to a datastore nothing had initialized: calicoctl made the tiers first.
    assert {t.name for t in client.list("Tier")} == {"default", "kube-admin", "kube-baseline"}
    assert client.get("ClusterInformation", "default").spec["datastoreReady"] is True
    assert client.get("NetworkSet", "ext", "default").spec["nets"] == ["192.0.2.0/24"]
    assert ctl("apply", "-f", "@a.yaml", "-n", "team-a", files={"a.yaml": stream(NP)})[0] == 0
    assert client.get("NetworkPolicy", "allow-web", "team-a").namespace == "team-a"
    assert ctl("replace", "-f", "@a.yaml", "-n", "team-a", files={"a.yaml": stream(NP)})[0] == 0
    code, out, _ = ctl("get", "-f", "@a.yaml", "-n", "team-a", "-o", "yaml", files={"a.yaml": stream(NP)})
    assert code == 0 and yaml.safe_load(out)["metadata"]["namespace"] == "team-a"
    assert ctl("delete", "-f", "@a.yaml", files={"a.yaml": stream(NP, NS)})[:2] == (
        0, "Successfully deleted 2 resource(s)\n")
    assert [(p.namespace, p.name) for p in client.list("NetworkPolicy")] == [("team-a", "allow-web")]


def test_namespace_disagreements_are_errors_about_that_resource(ctl, client):
    placed = doc("NetworkPolicy", "p1", {"selector": "all()"}, namespace="a")
    code, out, err = ctl("create", "-f", "@a.yaml", "-n", "b", files={"a.yaml": stream(NP, placed)})
    assert (code, out) == (1, "Partial success: created the first 1 out of 2 'NetworkPolicy' resources:\n")
    assert err == "hit error: [resource namespace does not match client namespace. a != b]\n"
    assert client.get("NetworkPolicy", "allow-web", "b").namespace == "b"
    scoped = dict(GNP, metadata={"name": "deny-all", "namespace": "a"})
    assert ctl("create", "-f", "@g.yaml", files={"g.yaml": stream(scoped)}) == (
        1, "", "failed to create 'GlobalNetworkPolicy' resource: [namespace should not be specified for a "
               "non-namespaced resource. GlobalNetworkPolicy is not a namespaced resource]\n")


def test_a_file_is_validated_whole_in_the_namespaces_its_resources_will_get(ctl, client):
    bad = doc("NetworkPolicy", "p2", {"selector": "app =="})
    code, out, err = ctl("create", "-f", "@a.yaml", "-n", "team-b", files={"a.yaml": stream(NS, bad)})
    assert (code, out) == (1, "")
    assert err.startswith("failed to execute command: ") and "NetworkPolicy(team-b/p2).spec.selector" in err
    assert client.list("NetworkSet") == []                 # nothing was written


# -- calicoctl validate ------------------------------------------------------------------

def _offline(tmp_path, capsys, *args, files=None):
    """calicoctl validate with a configuration whose datastore is not there: it never asks."""
    cfg = calicoctl_config(tmp_path / "c.cfg", f"http://127.0.0.1:{free_port()}")
    for name, text in (files or {}).items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    code = calicoctl.main(["validate", "-c", str(cfg), *(a.replace("@", str(tmp_path) + "/") for a in args)])
    out = capsys.readouterr()
    return code, out.out, out.err


BAD_NP = doc("NetworkPolicy", "p2", {"selector": "app =="})
BAD_GNP = doc("GlobalNetworkPolicy", "g2", {"selector": "all()", "types": ["Sideways"]})


def test_validate_reports_as_calicoctl_does(tmp_path, capsys):
    ok = _offline(tmp_path, capsys, "-f", "@a.yaml", files={"a.yaml": stream(NP, NS, GNP)})
    assert ok == (0, "Successfully validated 3 resource(s)\n", "")
    assert _offline(tmp_path, capsys, "-f", "@a.json", files={"a.json": json.dumps(NP)}) == (
        0, "Successfully validated 1 'NetworkPolicy' resource(s)\n", "")
    code, out, err = _offline(tmp_path, capsys, "-f", "@b.yaml", files={"b.yaml": stream(BAD_NP)})
    assert (code, out) == (1, "")
    assert err.startswith("failed to validate 'NetworkPolicy' resource: [error with field "
                          "NetworkPolicy(default/p2).spec.selector = 'app ==' (invalid selector")
    code, out, err = _offline(tmp_path, capsys, "-f", "@c.yaml", files={"c.yaml": stream(NP, BAD_NP, GNP, BAD_GNP)})
    assert (code, out) == (1, "Partial success: validated 2 out of 4 resources:\n")
    assert err.startswith("hit error(s): [error with field NetworkPolicy(default/p2).spec.selector")
    assert "GlobalNetworkPolicy(g2).spec.types" in err
    code, out, err = _offline(tmp_path, capsys, "-f", "@d.yaml", files={"d.yaml": stream(BAD_NP, BAD_NP)})
    assert (code, out) == (1, "") and err.startswith("failed to validate any 'NetworkPolicy' resources: [")


def test_validate_reads_directories_and_stdin_and_says_when_there_is_nothing(tmp_path, capsys, monkeypatch):
    files = {"d/a.yaml": stream(NP), "d/sub/b.yaml": stream(GNP), "d/notes.txt": "not a manifest"}
    assert _offline(tmp_path, capsys, "-f", "@d", files=files)[:2] == (
        0, "Successfully validated 1 'NetworkPolicy' resource(s)\n")
    assert _offline(tmp_path, capsys, "-f", "@d", "-R")[:2] == (0, "Successfully validated 2 resource(s)\n")
    code, _, err = _offline(tmp_path, capsys, "-f", "@e.yaml", files={"e.yaml": ""})
    assert code == 1 and "no resources specified in file" in err
    assert _offline(tmp_path, capsys, "-f", "@e.yaml", "--skip-empty")[:2] == (0, "No resources specified\n")
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps(GNP)))
    assert _offline(tmp_path, capsys, "-f", "-")[:2] == (0, "Successfully validated 1 'GlobalNetworkPolicy' "
                                                            "resource(s)\n")
    code, _, err = _offline(tmp_path, capsys, "-f", "@f.yaml", files={"f.yaml": "kind: IPPool\nbogus: 1\n"})
    assert code == 1 and err.startswith("failed to execute command: ")
