"""The Makefile's entry points run what the README says they run."""
from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _dry(target: str, *args: str) -> str:
    run = subprocess.run(["make", "-n", target, *args], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    return run.stdout


def test_demo_runs_the_demo_after_setup():
    out = _dry("demo", "KEEP=1")
    assert "install-system-packages.sh" in out          # make demo runs the setup itself
    assert "KEEP=1 .venv/bin/python -m e2e.demo" in out


def test_test_runs_pytest_after_setup():
    out = _dry("test")
    assert "install-system-packages.sh" in out and "-m pytest" in out
