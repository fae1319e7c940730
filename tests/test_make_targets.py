"""Make targets that are not built yet must fail clearly, never succeed doing nothing."""
from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_demo_placeholder_fails_with_a_clear_message():
    run = subprocess.run(["make", "-s", "demo"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert run.returncode != 0
    assert "not built yet" in run.stderr
