"""Calico's confd golden corpus, replayed through our renderer.

One-shot cases go through ``calico-node confd --oneshot --from-file`` (inputs plus the
harness's standard block affinities as BlockAffinity documents); ``daemon/*`` cases run
step by step against one long-running renderer per case, fed through the syncer, once
per backend the corpus lists for them: by a real etcd, and by the Kubernetes datastore
on a stand-in API server (where Nodes, Secrets, Services and EndpointSlices are
Kubernetes objects). Each rendered ``bird.cfg``/``bird6.cfg`` is also parsed by the
real BIRD.
"""
from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

import confd_golden as golden
from confd_fixtures import RunningRenderer
from node.cli.calico_node import main as calico_node
from node.confd.inputs import Settings
from kdd_fixtures import kube, kube_config  # noqa: F401  (fixtures)
from node.confd.daemon import Renderer
from node.confd.install import Installer
from node.confd.kubeside import kube_api_factory
from node.datastore.client import DatastoreClient
from node.datastore.etcd import EtcdKV
from node.datastore.kubernetes.kv import KubeKV
from node.datastore.kubernetes.clientconfig import client_configuration
from node.model import from_dict



def test_corpus_is_present():
    """Without the corpus the cases below parametrize to nothing; fail loudly instead of
    letting a CI run without it look green."""
    assert golden.corpus_present(), (
        f"Calico's confd golden corpus is missing: expected {golden.CORPUS}/manifest.json "
        "(the steering repository's shared/confd-golden, checked out beside this one)")
    assert len(golden.cases("oneshot")) == 47 and len(golden.cases("daemon")) == 11

POLL_TIMEOUT = 10.0   # the upstream harness polls for up to 10 s
ENV_VARS = ("NODENAME", "CALICO_ROUTER_ID", "CALICO_ENDPOINT_STATUS_PATH_PREFIX", "CALICO_ADVERTISE_CLUSTER_IPS",
            "NAMESPACE")


def _ids(cases):
    return [c["name"] for c in cases]


def _daemon_cases(backend: str) -> list[dict]:
    """The daemon cases the corpus runs on ``backend`` ("etcd" or "kdd"); the ones that
    need Kubernetes objects (Secrets, Services, EndpointSlices) are KDD-only."""
    return [c for c in golden.cases("daemon") if backend in c["backends"]
            and (backend == "kdd" or not golden.kubernetes_kinds(c))]


def _check_bird_parses(directory: Path, label: str) -> None:
    for version in (4, 6):
        proc = golden.bird_parse(directory, version)
        if version == 4 and label in golden.KRT_TUNNEL_EXPECTED:
            assert proc.returncode != 0 and "You may set only variables" in proc.stderr, (
                f"{label}: stock BIRD was expected to reject krt_tunnel: {proc.stderr}")
            continue
        assert proc.returncode == 0, f"{label}: bird{'' if version == 4 else '6'} -p rejects the output: {proc.stderr}"


def _set_env(monkeypatch, case: dict) -> dict[str, str]:
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    env = golden.case_env(case)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


# --------------------------------------------------------------------------------------
# One-shot cases.

@pytest.mark.parametrize("case", golden.cases("oneshot"), ids=_ids(golden.cases("oneshot")))
def test_oneshot_case(case, tmp_path, monkeypatch):
    # Every one-shot case runs, KDD-only ones included: --from-file also reads the
    # Kubernetes Services, EndpointSlices and Secrets a Kubernetes datastore would supply.
    _set_env(monkeypatch, case)
    monkeypatch.setenv("CALICO_RUN_DIR", str(tmp_path / "run"))  # no BIRD socket here
    argv = ["confd", "--oneshot", "--output-dir", str(tmp_path / "out")]
    if case["block_affinities"]:
        argv += ["--from-file", str(golden.write_standard_affinities(tmp_path / "affinities.yaml"))]
    (step,) = case["steps"]
    for op in step["ops"]:
        assert op["op"] == "apply"
        argv += ["--from-file", str(golden.CASES / op["file"])]
    status = calico_node(argv)
    out = tmp_path / "out"
    diffs = golden.differences(out, golden.CASES / step["expect"])
    assert not diffs, "\n\n".join(f"== {name}\n{diff}" for name, diff in diffs.items())
    # On first start even a config BIRD rejects is installed (as Calico does): status 0.
    assert status == 0
    _check_bird_parses(out, case["name"])


# --------------------------------------------------------------------------------------
# Daemon cases.


def _poll(predicate, timeout: float = POLL_TIMEOUT) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


def _expect_step(out, step: dict, label: str) -> None:
    """Wait for the daemon's output to show what a golden step expects: a count of BGP
    protocols, or the expected files (which must also parse with bird -p)."""
    if "expect_protocol_bgp_count" in step:
        want = step["expect_protocol_bgp_count"]
        assert _poll(lambda: _bgp_count(out) == want), \
            f"{label}: bird.cfg has {_bgp_count(out)} 'protocol bgp', expected {want}"
        return
    expected = golden.CASES / step["expect"]
    matched = _poll(lambda: not golden.differences(out, expected))
    diffs = golden.differences(out, expected)
    assert matched and not diffs, f"{label}:\n" + "\n\n".join(
        f"== {name}\n{diff}" for name, diff in diffs.items())
    _check_bird_parses(out, label)


def _bgp_count(out: Path) -> int:
    path = out / "bird.cfg"
    return path.read_text().count("protocol bgp") if path.exists() else -1


def test_every_daemon_case_runs_on_some_backend():
    names = {c["name"] for c in _daemon_cases("etcd")} | {c["name"] for c in _daemon_cases("kdd")}
    assert names == {c["name"] for c in golden.cases("daemon")}


@pytest.mark.etcd
@pytest.mark.parametrize("case", _daemon_cases("etcd"), ids=_ids(_daemon_cases("etcd")))
def test_daemon_case(case, tmp_path, monkeypatch, etcd_clean_config):
    env = _set_env(monkeypatch, case)
    settings = Settings.from_env(env)
    kv = EtcdKV(etcd_clean_config)
    client = DatastoreClient(kv)
    out = tmp_path / "out"
    if case["block_affinities"]:
        for doc in golden.standard_affinity_docs():
            client.create(from_dict(doc))
    try:
        with RunningRenderer(etcd_clean_config, settings, out, check=True, check_exit=True,
                             endpoint_status_poll=0.2) as running:
            for index, step in enumerate(case["steps"]):
                label = f"{case['name']} step {index + 1}"
                for op in step["ops"]:
                    if op["op"] == "touch":
                        for _ in range(op["repeat"]):
                            golden.apply_op(client, dict(op, repeat=1, interval_s=0))
                            time.sleep(op["interval_s"])
                            assert _bgp_count(out) == step["expect_protocol_bgp_count"], label
                    else:
                        golden.apply_op(client, op)
                _expect_step(out, step, label)
            assert running.renderer.last_result is not None
    finally:
        kv.close()


@pytest.mark.parametrize("case", _daemon_cases("kdd"), ids=_ids(_daemon_cases("kdd")))
def test_daemon_case_kdd(case, tmp_path, monkeypatch, kube, kube_config):
    env = _set_env(monkeypatch, case)
    settings = Settings.from_env(env)
    kv = KubeKV(kube_config, env={})
    client = DatastoreClient(kv)
    client.create(from_dict({"apiVersion": "projectcalico.org/v3", "kind": "Tier", "metadata": {"name": "default"},
                             "spec": {}}))
    out = tmp_path / "out"
    if case["block_affinities"]:
        for doc in golden.standard_affinity_docs():
            client.create(from_dict(doc))

    def apply_steps(steps, check: bool) -> None:
        for index, step in enumerate(steps):
            label = f"{case['name']} step {index + 1} (kdd)"
            for op in step["ops"]:
                if op["op"] == "touch":
                    for _ in range(op["repeat"]):
                        golden.apply_op_kdd(client, kube, dict(op, repeat=1, interval_s=0))
                        time.sleep(op["interval_s"])
                        assert _bgp_count(out) == step["expect_protocol_bgp_count"], label
                else:
                    golden.apply_op_kdd(client, kube, op)
            if not check:
                continue
            _expect_step(out, step, label)

    steps = case["steps"]
    try:
        if case["inputs_before_confd_start"]:
            apply_steps(steps[:1], check=False)
        # Secrets and Services through the renderer's own client, as KUBECONFIG gives it.
        renderer = Renderer(settings, Installer(out, check=True, reload=False),
                            lambda: KubeKV(kube_config, env={}), endpoint_status_poll=0.2,
                            kube_api=kube_api_factory(client_configuration(kube_config, {})))
        status: list[int] = []
        thread = threading.Thread(target=lambda: status.append(renderer.run()), daemon=True)
        thread.start()
        try:
            if case["inputs_before_confd_start"]:
                apply_steps([dict(s, ops=[]) for s in steps[:1]], check=True)
                apply_steps(steps[1:], check=True)
            else:
                apply_steps(steps, check=True)
            assert renderer.last_result is not None
        finally:
            renderer.stop()
            thread.join(timeout=15)
        assert not thread.is_alive() and status == [0]
    finally:
        kv.close()
