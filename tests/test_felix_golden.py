"""Golden dry-run output for fixed scenarios: the four tables, the IP sets and the routes.

Each folder under ``felix_golden/`` holds ``resources.yaml`` (calicoctl format) and the
expected text of ``calico-node felix --dry-run`` for host ``node1`` with the interfaces
below (or those of the folder's ``interfaces.json``): ``tables-v4.txt``, ``ipsets-v4.txt``, ``routes-v4.txt`` and their v6 twins.

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

GOLDEN = Path(__file__).parent / "felix_golden"
SCENARIOS = sorted(p.name for p in GOLDEN.iterdir() if (p / "resources.yaml").is_file())
INTERFACES = {"eth0": ["10.0.0.1", "fd00::1"], "lo": ["127.0.0.1", "::1"], "cali1a2b3c4d5e6": [],
              "calia1b2c3d4e5f": [], "cali5d5d5d5d5d5": []}


def interfaces_for(scenario: str) -> dict:
    """The host's interfaces in a scenario: its own ``interfaces.json``, or the usual ones."""
    path = GOLDEN / scenario / "interfaces.json"
    return json.loads(path.read_text()) if path.is_file() else INTERFACES


OUTPUTS = [(what, v) for what in ("tables", "ipsets", "routes") for v in (4, 6)]


def test_every_scenario_is_here():
    assert SCENARIOS == ["host-endpoint", "kube-ipvs", "profile-only", "staged", "two-tiers", "vxlan"]


@pytest.mark.parametrize("what, version", OUTPUTS, ids=[f"{w}-v{v}" for w, v in OUTPUTS])
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_golden(scenario, what, version, caplog):
    folder = GOLDEN / scenario
    text = dry_run("node1", {}, files=[str(folder / "resources.yaml")], ip_version=version, what=what,
                   interfaces=interfaces_for(scenario))
    expected_file = folder / f"{what}-v{version}.txt"
    if os.environ.get("FELIX_GOLDEN_UPDATE"):
        expected_file.write_text(text)
    assert text == expected_file.read_text()
    # The scenarios are valid input: nothing was skipped or flagged.
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "WARNING")]
