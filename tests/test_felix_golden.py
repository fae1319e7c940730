"""Golden dry-run output for fixed scenarios: the four tables, the IP sets, the routes
and the bandwidth limits' qdiscs.

Each folder under ``felix_golden/`` holds ``resources.yaml`` (calicoctl format) and the
expected text of ``calico-node felix --dry-run`` for host ``node1`` with the interfaces
below (or those of the folder's ``interfaces.json``), workload interfaces with an MTU of
1450 and the others 1500: ``tables-v4.txt``, ``ipsets-v4.txt``, ``routes-v4.txt`` and their
v6 twins, and ``qos.txt`` (``--qos``, the same for both families; empty when no local
workload has bandwidth limits).

The static chains' rule IDs in these files are the ones Felix's own tests and fv dump
show (``test_felix_rules_static.py`` checks them against those vectors); the rest was
reviewed rule by rule against the spec's rendering rules. To regenerate after a deliberate
change, run with ``FELIX_GOLDEN_UPDATE=1`` and review the diff.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from node.felix.dryrun import dry_run
from node.felix.features import Features

GOLDEN = Path(__file__).parent / "felix_golden"
SCENARIOS = sorted(p.name for p in GOLDEN.iterdir() if (p / "resources.yaml").is_file())
INTERFACES = {"eth0": ["10.0.0.1", "fd00::1"], "lo": ["127.0.0.1", "::1"], "cali1a2b3c4d5e6": [],
              "calia1b2c3d4e5f": [], "cali5d5d5d5d5d5": []}


def interfaces_for(scenario: str) -> dict:
    """The host's interfaces in a scenario: its own ``interfaces.json``, or the usual ones."""
    path = GOLDEN / scenario / "interfaces.json"
    return json.loads(path.read_text()) if path.is_file() else INTERFACES


def mtus_for(scenario: str) -> dict:
    """The MTUs of a scenario's interfaces: 1450 for workload ones, 1500 for the rest."""
    return {name: 1450 if name.startswith(("cali", "tap")) else 1500 for name in interfaces_for(scenario)}


OUTPUTS = [(what, v) for what in ("tables", "ipsets", "routes") for v in (4, 6)] + [("qos", 4)]


def golden_name(what: str, version: int) -> str:
    return "qos.txt" if what == "qos" else f"{what}-v{version}.txt"


def test_every_scenario_is_here():
    assert SCENARIOS == ["host-endpoint", "istio-ambient", "kube-ipvs", "openstack", "profile-only", "staged", "two-tiers", "vxlan"]


@pytest.mark.parametrize("what, version", OUTPUTS, ids=[golden_name(w, v)[:-4] for w, v in OUTPUTS])
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_golden(scenario, what, version, caplog):
    folder = GOLDEN / scenario
    # The scenario's folder stands for CALICO_CONFIG_DIR: a felix.cfg there is the node's config file.
    text = dry_run("node1", {"CALICO_CONFIG_DIR": str(folder)}, files=[str(folder / "resources.yaml")],
                   ip_version=version, what=what,
                   interfaces=interfaces_for(scenario), interface_mtus=mtus_for(scenario),
                   features=Features())  # a modern host's, whatever runs the tests
    expected_file = folder / golden_name(what, version)
    if os.environ.get("FELIX_GOLDEN_UPDATE"):
        expected_file.write_text(text)
    assert text == expected_file.read_text()
    # The scenarios are valid input: nothing was skipped or flagged.
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "WARNING")]
