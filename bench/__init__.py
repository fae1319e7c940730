"""Benchmarks (``make bench``): each bench_*.py module's main() prints its figures."""
from __future__ import annotations

import os
import subprocess
import sys

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def loaded_rss_mib(module: str) -> float:
    """Peak RSS (MiB) of a fresh interpreter that has imported ``module`` and holds no data:
    the memory floor beside a benchmark's own peak."""
    code = f"import resource, {module}; print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, (_REPO, os.environ.get("PYTHONPATH")))))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return int(out.stdout.split()[-1]) / 1024
