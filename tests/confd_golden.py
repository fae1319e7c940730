"""Helpers for replaying Calico's confd golden corpus (``../shared/confd-golden``).

The corpus is data only: YAML inputs, expected BIRD files and ``manifest.json`` (see its
README). This module finds it, applies the project's comparison rule, writes the
harness's standard block affinities, and replays manifest operations against a
datastore client.
"""
from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

from node.model import load_documents
from node.errors import NotFound
from node.model import from_dict
from node.cli.ctl.patch import merge_patch  # RFC 7386

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "confd-golden"
CASES = CORPUS / "cases"
FILES = ("bird.cfg", "bird6.cfg", "bird_ipam.cfg", "bird6_ipam.cfg", "bird_aggr.cfg", "bird6_aggr.cfg")

# The two cases whose bird.cfg sets krt_tunnel, an attribute only Calico's BIRD fork has:
# stock BIRD 1.6.8 rejects them (the manifest's bird_parse_check records this), so
# `bird -p` is expected to fail on their IPv4 config, and only on theirs.
KRT_TUNNEL_EXPECTED = {"cluster_routes/enabled", "cluster_routes/ipip-only"}

# Kubernetes kinds in the corpus: (apiVersion, plural) on the API server.
KUBERNETES_RESOURCES = {"Secret": ("v1", "secrets"), "Service": ("v1", "services"),
                        "EndpointSlice": ("discovery.k8s.io/v1", "endpointslices")}


def manifest() -> dict:
    return json.loads((CORPUS / "manifest.json").read_text())


def corpus_present() -> bool:
    return (CORPUS / "manifest.json").is_file()


def cases(mode: str) -> list[dict]:
    if not corpus_present():
        return []
    return [c for c in manifest()["cases"] if c["mode"] == mode]


def kubernetes_kinds(case: dict) -> set[str]:
    """Kubernetes kinds (Service, EndpointSlice, Secret) the case's inputs need."""
    kinds = set()
    for step in case["steps"]:
        for op in step["ops"]:
            if op.get("file"):
                for doc in load_documents((CASES / op["file"]).read_text(), op["file"]):
                    if doc.get("apiVersion", "").startswith(("v1", "discovery.k8s.io")):
                        kinds.add(doc["kind"])
            elif op.get("apiVersion") == "v1":
                kinds.add(op["kind"])
    return kinds


def case_env(case: dict) -> dict[str, str]:
    return {k: v.replace("${CASES_DIR}", str(CASES)) for k, v in case["env"].items()}


# --------------------------------------------------------------------------------------
# Comparison (the project's rule from the corpus README).

def _strip_comment(line: str) -> str:
    quoted = False
    for i, ch in enumerate(line):
        if ch == '"':
            quoted = not quoted
        elif ch == "#" and not quoted:
            return line[:i]
    return line


def normalise(text: str) -> list[str]:
    out = []
    for line in text.split("\n"):
        line = re.sub(r"[ \t]+", " ", _strip_comment(line).strip())
        if line:
            out.append(line)
    return out


def differences(output_dir: Path, expected_dir: Path) -> dict[str, str]:
    """File name -> unified diff, for each of the six files that does not match."""
    import difflib

    out = {}
    for name in FILES:
        got_path = output_dir / name
        got = normalise(got_path.read_text()) if got_path.exists() else ["<missing>"]
        want = normalise((expected_dir / name).read_text())
        if got != want:
            out[name] = "\n".join(difflib.unified_diff(want, got, "expected", "rendered", lineterm="", n=2))
    return out


def bird_parse(directory: Path, version: int) -> subprocess.CompletedProcess:
    name = "bird.cfg" if version == 4 else "bird6.cfg"
    binary = "bird" if version == 4 else "bird6"
    return subprocess.run([binary, "-p", "-c", name], cwd=directory, capture_output=True, text=True, timeout=30)


# --------------------------------------------------------------------------------------
# Inputs.

def standard_affinity_docs() -> list[dict]:
    """The harness's six block affinities (for host kube-master) as BlockAffinity documents."""
    out = []
    for entry in manifest()["standard_block_affinities"]["entries"]:
        name = entry["host"] + "-" + re.sub(r"[./:]", "-", entry["cidr"])
        out.append({"apiVersion": "projectcalico.org/v3", "kind": "BlockAffinity",
                    "metadata": {"name": name},
                    "spec": {"node": entry["host"], "cidr": entry["cidr"], "state": entry["state"],
                             "deleted": "false"}})
    return out


def write_standard_affinities(path: Path) -> Path:
    import yaml

    path.write_text(yaml.safe_dump_all(standard_affinity_docs()))
    return path


def load_op_file(name: str) -> list:
    """A step's input file as resources (Kubernetes documents are the caller's business)."""
    docs = load_documents((CASES / name).read_text(), name)
    return [from_dict(d) for d in docs if d.get("apiVersion") == "projectcalico.org/v3"]


def _write(client, res, upsert: bool) -> None:
    """``apply`` creates (the case expects the resource to be new); ``upsert`` creates or
    replaces."""
    if upsert:
        try:
            client.get(res.kind, res.name)
        except NotFound:
            pass
        else:
            client.replace(res)
            return
    client.create(res)


def apply_op(client, op: dict) -> None:
    """Replay one manifest operation against a DatastoreClient (etcd semantics)."""
    kind = op["op"]
    if kind in ("apply", "upsert"):
        for res in load_op_file(op["file"]):
            _write(client, res, upsert=kind == "upsert")
    elif kind == "patch":
        current = client.get(op["kind"], op["name"])
        patched = merge_patch(current.to_dict(), op["merge_patch"])
        client.update(from_dict(patched, strict=False))
    elif kind == "delete":
        client.delete(op["kind"], op["name"])
    elif kind == "touch":
        for _ in range(op["repeat"]):
            client.update(client.get(op["kind"], op["name"]))
            time.sleep(op["interval_s"])
    else:
        raise ValueError(f"unknown manifest op {kind!r}")


# --------------------------------------------------------------------------------------
# Replaying operations against the Kubernetes datastore.

def _kube_upsert(kube, doc: dict) -> None:
    """kubectl apply of one Kubernetes object (create, else replace)."""
    api_version, plural = KUBERNETES_RESOURCES[doc["kind"]]
    meta = doc.get("metadata") or {}
    namespace = meta.get("namespace") or "default"
    body = dict(doc, metadata=dict(meta, namespace=namespace))
    if kube.get(api_version, plural, meta["name"], namespace) is None:
        kube.create(api_version, plural, body, namespace=namespace)
    else:
        kube.update(api_version, plural, body)


def _kdd_node(client, kube, res) -> None:
    """A Calico Node document in the Kubernetes datastore: the Kubernetes Node is created
    (with the document's labels, as kubectl would label it) if it does not exist, then
    the Calico fields are written through the datastore client, as calicoctl apply does."""
    if kube.get("v1", "nodes", res.name) is None:
        kube.create("v1", "nodes", {"metadata": {"name": res.name, **({"labels": res.labels} if res.labels else {})}})
    current = client.get("Node", res.name)
    current.spec = dict(current.spec, **res.spec)
    current.metadata["labels"] = dict(current.labels, **res.labels)
    client.update(current)


def apply_op_kdd(client, kube, op: dict) -> None:
    """Replay one manifest operation against the Kubernetes datastore: Calico resources
    through the DatastoreClient, Kubernetes objects (and Nodes) through the API."""
    kind = op["op"]
    if kind in ("apply", "upsert"):
        for doc in load_documents((CASES / op["file"]).read_text(), op["file"]):
            if doc.get("apiVersion") != "projectcalico.org/v3":
                _kube_upsert(kube, doc)
                continue
            res = from_dict(doc)
            if res.kind == "Node":
                _kdd_node(client, kube, res)
            else:
                _write(client, res, upsert=kind == "upsert")
    elif kind == "delete" and op.get("apiVersion") == "v1":
        api_version, plural = KUBERNETES_RESOURCES[op["kind"]]
        kube.delete(api_version, plural, op["name"], op.get("namespace") or "default")
    elif kind == "delete" and op["kind"] == "Node":
        kube.delete("v1", "nodes", op["name"])  # the Kubernetes Node goes; Calico follows
    else:
        apply_op(client, op)
