"""Benchmark of the policy agent programming a real kernel (issue 11; not a test).

The workload of ``bench_felix`` (1,000 local endpoints, 5,000 remote, 500 policies) is
programmed from scratch into a fresh network namespace by the agent's own pipeline and
dataplanes (IP sets, then the four iptables tables), next to the floor measured in the
same run: one ``ipset restore`` plus one ``iptables-restore`` of the very same final state
into another fresh namespace. Then, with the 1,000 endpoints present, the median time for
one endpoint added and for one policy changed to be in the kernel (from the syncer
update to the end of the apply). Targets: full programming at most 1.5x the floor; each
change at most 50 ms median; the process's RSS at 1,000 endpoints at most 100 MB.

Run with ``.venv/bin/python -m bench.bench_felix_dataplane`` as root. The measurement runs
in a child process so its RSS is the agent's alone.
"""
from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time
import uuid

CHANGES = 40


def _netns(prefix: str) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    subprocess.run(["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"], check=True)
    return name


def _del_netns(name: str) -> None:
    for table in ("raw", "mangle", "nat", "filter"):
        subprocess.run(["ip", "netns", "exec", name, "iptables-legacy", "-t", table, "-F"], capture_output=True)
        subprocess.run(["ip", "netns", "exec", name, "iptables-legacy", "-t", table, "-X"], capture_output=True)
    subprocess.run(["ip", "netns", "exec", name, "ipset", "destroy"], capture_output=True)
    subprocess.run(["ip", "netns", "del", name], capture_output=True)


def child() -> dict:
    """Program the workload into a fresh namespace; time it and the changes."""
    from bench.bench_felix import HOST, endpoint, policy, resources
    from node.datastore.syncer import SyncStatus, Update, UpdateType
    from node.felix.calc.offline import resource_key, updates_from_resources
    from node.felix.dataplane.ipsets import IPSetsDataplane, run_command
    from node.felix.dataplane.iptables import IptablesDataplane, subprocess_runner
    from node.felix.pipeline import Pipeline, tune_gc

    tune_gc()
    res = resources()
    updates = updates_from_resources(res)
    ns = _netns("bench-prog")
    floor_ns = _netns("bench-floor")
    try:
        def in_ns(argv, stdin=None):
            return subprocess_runner(["ip", "netns", "exec", ns, *argv], stdin)

        def ipset_in_ns(argv, stdin=None):
            return run_command(["ip", "netns", "exec", ns, *argv], stdin)

        start = time.perf_counter()
        pipeline = Pipeline(HOST, {})
        pipeline.on_updates(updates)
        pipeline.on_status(SyncStatus.IN_SYNC)
        pipeline.complete()
        pipeline.set_interfaces({"eth0": ["10.0.0.1"], "lo": ["127.0.0.1"]})
        dp = pipeline.dataplanes[4]
        sets = IPSetsDataplane(dp.ipsets, refresh_interval=0, runner=ipset_in_ns)
        ipt = IptablesDataplane(4, dp.tables, backend="legacy", run=in_ns, post_write_interval=3600)
        sets.apply_updates()
        ipt.apply()
        sets.apply_deletions()
        full_s = time.perf_counter() - start

        # The floor: the same final state loaded whole into a fresh namespace.
        tables, ipsets = dp.render_save(), dp.render_ipsets()
        start = time.perf_counter()
        subprocess.run(["ip", "netns", "exec", floor_ns, "ipset", "restore"], input=ipsets, text=True, check=True)
        subprocess.run(["ip", "netns", "exec", floor_ns, "iptables-legacy-restore"], input=tables, text=True,
                       check=True)
        floor_s = time.perf_counter() - start

        def timed(update: Update) -> float:
            t0 = time.perf_counter()
            pipeline.on_updates([update])
            pipeline.complete()
            sets.apply_updates()
            ipt.apply()
            sets.apply_deletions()
            return time.perf_counter() - t0

        adds = [timed(Update(UpdateType.NEW, resource_key(e), e, 100_000 + k))
                for k, e in enumerate(endpoint(20_000 + k, local=True) for k in range(CHANGES))]
        pol_changes = [timed(Update(UpdateType.UPDATED, resource_key(p), p, 200_000 + k))
                       for k, p in enumerate(policy((k * 13) % 500, port_shift=k + 1) for k in range(CHANGES))]
        rules = sum(len(c.rules) for t in dp.tables.values() for c in t.programmed_chains())
        return {"full_s": full_s, "floor_s": floor_s, "adds": adds, "policies": pol_changes, "rules": rules,
                "sets": len(dp.ipsets.sets), "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    finally:
        _del_netns(ns)
        _del_netns(floor_ns)


def main() -> None:
    if os.geteuid() != 0:
        print("felix dataplane benchmark: needs root (network namespaces); skipped")
        return
    run = subprocess.run([sys.executable, "-m", "bench.bench_felix_dataplane", "--child"],
                         capture_output=True, text=True)
    if run.returncode != 0:
        print("felix dataplane benchmark failed:\n" + run.stderr[-3000:])
        return
    r = json.loads(run.stdout.strip().splitlines()[-1])
    print(f"felix dataplane benchmark: {r['rules']} rules and {r['sets']} IP sets programmed into a fresh namespace")
    target = 1.5 * r["floor_s"]
    print(f"full programming (calculation + ipset + iptables): {r['full_s'] * 1000:8.1f} ms   "
          f"target <= {target * 1000:.1f} ms (1.5x floor) -> {'meets' if r['full_s'] <= target else 'MISSES'}")
    print(f"floor: one ipset restore + one iptables-restore of the same state: {r['floor_s'] * 1000:8.1f} ms")
    for what, key in (("one endpoint added", "adds"), ("one policy changed", "policies")):
        median = statistics.median(r[key]) * 1000
        print(f"{what:20s} median {median:6.1f} ms   target <= 50 ms -> {'meets' if median <= 50 else 'MISSES'}")
    rss = r["rss_mb"]
    print(f"peak RSS with 1,000 endpoints: {rss:6.1f} MB   target <= 100 MB -> {'meets' if rss <= 100 else 'MISSES'}")


if __name__ == "__main__":
    if "--child" in sys.argv:
        print(json.dumps(child()))
    else:
        main()
