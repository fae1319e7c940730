"""The tests' own namespace helper leaves nothing behind, even a process still inside."""
from __future__ import annotations

import subprocess
import time

from netns import Namespace


def test_close_kills_what_still_runs_inside_and_deletes_the_namespace():
    ns = Namespace("nsclose")
    ns.__enter__()
    proc = ns.popen("sleep", "60")
    try:
        time.sleep(0.2)
        ns.close()
        proc.wait(timeout=5)
        listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split()
        assert ns.name not in listed
    finally:
        if proc.poll() is None:
            proc.kill()
        ns.close()
