"""The iptables sync against the real binaries, inside throwaway network namespaces.

Every command runs through ``ip netns exec`` (the dataplane's injectable runner), so the
host's tables are never read or written. "Programmed exactly" is checked the way Felix
checks it, by the ``cali:`` rule-ID list of every chain read back with iptables-save, and,
for the golden scenarios, also by text: the tables the sync builds incrementally must save
exactly as the dry run's ``iptables-save`` text does when loaded wholesale into a second
namespace (both pass through the same normalisation).
"""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from netns import Namespace
from test_felix_golden import interfaces_for
from node.datastore.syncer import SyncStatus
from node.felix.calc.offline import updates_from_resources
from node.felix.dataplane.iptables import (
    IptablesDataplane, IptablesError, detect_backend, detect_features, find_binary, matchers_for,
    parse_save, subprocess_runner)
from node.felix.dryrun import block_updates, load_files
from node.felix.config import config_file_values
from node.felix.pipeline import Pipeline
from node.felix.rules.core import ACCEPT, DROP, REJECT, Chain, Match, Rule, jump
from node.felix.tables import Table

GOLDEN = Path(__file__).parent / "felix_golden"
TABLES = ("raw", "mangle", "nat", "filter")
BACKENDS = ("legacy", "nft")
FAMILIES = [(b, v) for b in BACKENDS for v in (4, 6)]
FAMILY_IDS = [f"{b}-v{v}" for b, v in FAMILIES]


@pytest.fixture
def ns():
    with Namespace("ipt") as namespace:
        yield namespace


def runner(ns: Namespace):
    def run(argv, stdin=None):
        return subprocess_runner(["ip", "netns", "exec", ns.name, *argv], stdin)
    return run


def desired(scenario: str, version: int, env: dict | None = None):
    """A golden scenario's desired dataplane, built by the dry run's pipeline."""
    env = {"CALICO_CONFIG_DIR": str(GOLDEN / scenario), **(env or {})}  # a felix.cfg there is the node's
    pipeline = Pipeline("node1", env, config_file_values(env))
    resources, problems = load_files([str(GOLDEN / scenario / "resources.yaml")])
    assert not problems
    pipeline.on_updates(updates_from_resources([r for r in resources if r.kind != "BlockAffinity"]))
    pipeline.on_updates(block_updates(resources))
    pipeline.on_status(SyncStatus.IN_SYNC)
    pipeline.complete()
    pipeline.set_interfaces(interfaces_for(scenario))
    return pipeline.dataplanes[version]


def load_ipsets(ns: Namespace, dd) -> None:
    ns.run("ipset", "restore", "-exist", input=dd.render_ipsets())


def dataplane(ns: Namespace, dd, backend: str, **kw) -> IptablesDataplane:
    kw.setdefault("post_write_interval", 3600)   # no timer-driven reads inside a test
    return IptablesDataplane(dd.ip_version, dd.tables, backend=backend, run=runner(ns), **kw)


def iptables(ns: Namespace, backend: str, version: int, *args: str) -> None:
    cmd = f"ip{'6' if version == 6 else ''}tables-{backend}"
    ns.run(cmd, "-w", *args)


def save(ns: Namespace, backend: str, version: int, table: str) -> str:
    return ns.run(find_binary(version, backend, "save"), "-t", table).stdout


def kernel(ns: Namespace, backend: str, version: int, table: str):
    return parse_save(save(ns, backend, version, table), matchers_for(table))


def foreign_lines(text: str) -> list[str]:
    """Other programs' rules and chains, in saved order."""
    return [line for line in text.splitlines()
            if line.startswith(("-A", ":")) and "cali" not in line]


def assert_programmed(ns: Namespace, backend: str, tables) -> None:
    """Every table holds exactly the desired chains with their rule IDs, and each kernel
    chain our hooks placed around the foreign rules it has."""
    for name, t in tables.items():
        actual = kernel(ns, backend, t.ip_version, name)
        ours = {c: ids for c, ids in actual.chains.items() if c.startswith("cali")}
        assert ours == {c.name: c.rule_ids for c in t.programmed_chains()}, name
        for k in t.kernel_chains:
            ids = actual.chains.get(k, ())
            assert list(ids) == t.expected_kernel_chain_ids(k, ids.count("")), (name, k)
        for chain, ids in actual.chains.items():
            if chain not in t.kernel_chains and not chain.startswith("cali"):
                assert not any(ids), (name, chain)


def normalised(text: str) -> list[str]:
    """iptables-save text without its timestamps and counters."""
    return [re.sub(r" \[\d+:\d+\]$", "", line) for line in text.splitlines() if not line.startswith("#")]


# --------------------------------------------------------------------------------------
# Golden scenarios.

@pytest.mark.parametrize("backend, version", FAMILIES, ids=FAMILY_IDS)
@pytest.mark.parametrize("scenario", ["host-endpoint", "two-tiers", "profile-only", "vxlan", "kube-ipvs", "openstack",
                                      "istio-ambient"])
def test_golden_scenario_is_programmed_exactly(scenario, backend, version, ns):
    dd = desired(scenario, version)
    load_ipsets(ns, dd)
    dp = dataplane(ns, dd, backend)
    stats = dp.apply()
    assert stats.tables_written == list(TABLES) and stats.restore_errors == 0
    assert_programmed(ns, backend, dd.tables)
    # The same text as the dry run's output loaded wholesale.
    with Namespace("iptref") as ref:
        load_ipsets(ref, dd)
        restore = ref.run(find_binary(version, backend, "restore"), input=dd.render_save(), check=False)
        assert restore.returncode == 0, restore.stderr
        for table in TABLES:
            assert normalised(save(ns, backend, version, table)) == normalised(save(ref, backend, version, table))
    # Unchanged desired state: nothing is read or written.
    stats = dp.apply()
    assert (stats.restore_calls, stats.lines, stats.save_calls) == (0, 0, 0)
    # Even after a fresh read there is nothing to do.
    dp.refresh()
    stats = dp.apply()
    assert (stats.restore_calls, stats.lines, stats.save_calls) == (0, 0, 4)


# --------------------------------------------------------------------------------------
# Drift.

DOCKER = {
    "filter": ["-N DOCKER", "-N DOCKER-USER", "-A DOCKER-USER -j RETURN", "-A FORWARD -j DOCKER-USER",
               "-A FORWARD -o docker0 -j DOCKER", "-A DOCKER -d 172.17.0.2/32 -p tcp --dport 80 -j ACCEPT",
               "-A INPUT -s 192.0.2.0/24 -p tcp --dport 22 -j ACCEPT", "-N OPERATOR",
               "-A OPERATOR -j LOG --log-prefix op"],
    "nat": ["-N DOCKER", "-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE",
            "-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER"],
}


def add_foreign(ns, backend, version):
    for table, commands in DOCKER.items():
        for command in commands:
            if version == 6:
                command = command.replace("192.0.2.0/24", "2001:db8::/64").replace(
                    "172.17.0.2/32", "fd17::2/128").replace("172.17.0.0/16", "fd17::/64")
            iptables(ns, backend, version, "-t", table, *command.split())


def references(t: Table) -> dict[str, list[str]]:
    refs: dict[str, list[str]] = {}
    for chain in t.programmed_chains():
        for target in chain.referenced_chains():
            refs.setdefault(target, []).append(chain.name)
    return refs


@pytest.mark.parametrize("backend, version", FAMILIES, ids=FAMILY_IDS)
def test_drift_is_repaired_by_one_apply_after_refresh(backend, version, ns):
    dd = desired("host-endpoint", version)
    load_ipsets(ns, dd)
    add_foreign(ns, backend, version)
    # A stale chain and an old Felix's unhashed hook from an earlier run.
    iptables(ns, backend, version, "-N", "cali-stale")
    iptables(ns, backend, version, "-A", "cali-stale", "-j", "DROP")
    iptables(ns, backend, version, "-A", "INPUT", "-j", "cali-stale")
    foreign_before = {t: foreign_lines(save(ns, backend, version, t)) for t in TABLES}
    dp = dataplane(ns, dd, backend)
    dp.apply()
    assert_programmed(ns, backend, dd.tables)
    assert "cali-stale" not in kernel(ns, backend, version, "filter").chains

    filt = dd.tables["filter"]
    # A leaf chain with one referrer can be deleted by an operator who flushes the referrer.
    leaf, (referrer,) = next((c, r) for c, r in sorted(references(filt).items())
                             if len(r) == 1 and r[0].startswith("cali-"))
    fwd_hook, = filt.inserted_rule_ids("FORWARD")
    cases = {
        "flushed cali-FORWARD": (["-F", "cali-FORWARD"], ["filter/cali-FORWARD"]),
        "deleted chain": (["-F", referrer, ";", "-X", leaf], [f"filter/{referrer}", f"filter/{leaf}"]),
        "removed hook": (["-D", "FORWARD", "1"], ["filter/FORWARD"]),
        "operator rule in cali-INPUT": (["-I", "cali-INPUT", "2", "-j", "ACCEPT"], ["filter/cali-INPUT"]),
        "stale chain": (["-N", "cali-pi-gone", ";", "-A", "cali-pi-gone", "-j", "ACCEPT"],
                        ["filter/cali-pi-gone"]),
        "removed nat append": (["-t", "nat", "-D", "POSTROUTING", "2"], ["nat/POSTROUTING"]),
        "hook below a new foreign rule": (["-I", "FORWARD", "1", "-j", "OPERATOR"], ["filter/FORWARD"]),
    }
    for case, (command, drifted) in cases.items():
        line = " ".join(command)
        for part in line.split(" ; "):
            iptables(ns, backend, version, *part.split())
        if case == "removed hook":
            assert fwd_hook not in kernel(ns, backend, version, "filter").chains["FORWARD"]
        if case == "hook below a new foreign rule":
            foreign_before["filter"] = foreign_lines(save(ns, backend, version, "filter"))
        # Not seen until the picture is refreshed.
        assert dp.apply().restore_calls == 0, case
        dp.refresh()
        stats = dp.apply()
        assert stats.drifted == drifted, case
        assert stats.restore_calls == 1 and stats.restore_errors == 0, case
        assert_programmed(ns, backend, dd.tables)
        for t in TABLES:
            assert foreign_lines(save(ns, backend, version, t)) == foreign_before[t], (case, t)
        dp.refresh()
        assert dp.apply().restore_calls == 0, case


# --------------------------------------------------------------------------------------
# Placement around other programs' rules.

@pytest.mark.parametrize("backend", BACKENDS)
def test_insert_and_append_modes_around_foreign_rules(backend, ns):
    dd = desired("two-tiers", 4)
    load_ipsets(ns, dd)
    add_foreign(ns, backend, 4)
    foreign_before = {t: foreign_lines(save(ns, backend, 4, t)) for t in TABLES}
    dp = dataplane(ns, dd, backend)
    dp.apply()
    assert_programmed(ns, backend, dd.tables)
    fwd = kernel(ns, backend, 4, "filter").chains["FORWARD"]
    hook, = dd.tables["filter"].inserted_rule_ids("FORWARD")
    appends = dd.tables["filter"].appended_rule_ids("FORWARD")
    assert fwd == (hook, "", "", *appends)
    nat_post = kernel(ns, backend, 4, "nat").chains["POSTROUTING"]
    assert nat_post == ("", *dd.tables["nat"].appended_rule_ids("POSTROUTING"))
    assert {t: foreign_lines(save(ns, backend, 4, t)) for t in TABLES} == foreign_before

    # Restarted in append mode: our hooks move after the foreign rules, appends stay last.
    dd_append = desired("two-tiers", 4, {"FELIX_CHAININSERTMODE": "append"})
    dp = dataplane(ns, dd_append, backend)
    stats = dp.apply()
    assert "filter" in stats.tables_written
    assert kernel(ns, backend, 4, "filter").chains["FORWARD"] == ("", "", hook, *appends)
    inp = kernel(ns, backend, 4, "filter").chains["INPUT"]
    assert inp == ("", *dd_append.tables["filter"].inserted_rule_ids("INPUT"))
    assert_programmed(ns, backend, dd_append.tables)
    assert {t: foreign_lines(save(ns, backend, 4, t)) for t in TABLES} == foreign_before
    # A foreign rule appended after ours is drift in append mode (ours go last again).
    iptables(ns, backend, 4, "-A", "INPUT", "-j", "OPERATOR")
    dp.refresh()
    assert dp.apply().drifted == ["filter/INPUT"]
    assert kernel(ns, backend, 4, "filter").chains["INPUT"] == ("", "", *dd_append.tables[
        "filter"].inserted_rule_ids("INPUT"))


# --------------------------------------------------------------------------------------
# Incremental updates and earlier runs.

def small(mode: str = "insert", version: int = 4) -> Table:
    t = Table("filter", version, mode)
    t.set_inserts("FORWARD", [Rule((), jump("cali-FORWARD"))])
    t.update_chain(Chain("cali-FORWARD", (Rule(Match().in_interface("cali+"), jump("cali-x")),
                                          Rule(Match().protocol("udp"), DROP), Rule((), ACCEPT))))
    t.update_chain(Chain("cali-x", (Rule(Match().protocol("tcp").dest_ports(80), ACCEPT),)))
    return t


@pytest.mark.parametrize("backend", BACKENDS)
def test_updates_touch_only_what_changed(backend, ns):
    t = small()
    dp = IptablesDataplane(4, {"filter": t}, backend=backend, run=runner(ns), post_write_interval=3600)
    dp.apply()
    assert_programmed(ns, backend, {"filter": t})
    # Right after our own write a change rewrites the chain whole (positions are only
    # addressed in a chain just read) ...
    t.update_chain(Chain("cali-FORWARD", (Rule(Match().in_interface("cali+"), jump("cali-x")),
                                          Rule(Match().protocol("udp"), DROP), Rule((), DROP))))
    stats = dp.apply()
    assert_programmed(ns, backend, {"filter": t})
    assert stats.save_calls == 0 and stats.lines == 2 + 1 + 3
    # ... and after a read the last rule changing is one -R (IDs chain, so a change
    # mid-chain would re-ID the rest too); nft always flushes and rewrites the chain.
    dp.refresh()
    dp.apply()
    t.update_chain(Chain("cali-FORWARD", (Rule(Match().in_interface("cali+"), jump("cali-x")),
                                          Rule(Match().protocol("udp"), DROP), Rule((), REJECT))))
    stats = dp.apply()
    assert_programmed(ns, backend, {"filter": t})
    if backend == "legacy":
        assert stats.lines == 3          # *filter, one -R, COMMIT
    else:
        assert stats.lines == 2 + 1 + 3  # the nft backend flushes and rewrites the chain
    # The chain shrinks and cali-x loses its last reference: it is flushed and deleted.
    dp.refresh()
    dp.apply()
    t.update_chain(Chain("cali-FORWARD", (Rule((), ACCEPT),)))
    stats = dp.apply()
    assert_programmed(ns, backend, {"filter": t})
    assert "cali-x" not in kernel(ns, backend, 4, "filter").chains
    assert stats.lines == (2 + 5 if backend == "legacy" else 2 + 3 + 2 + 2)
    # Unhooking removes our rule from FORWARD by value, leaving a foreign one.
    iptables(ns, backend, 4, "-A", "FORWARD", "-j", "ACCEPT")
    t.set_inserts("FORWARD", [])
    dp.apply()
    assert_programmed(ns, backend, {"filter": t})
    assert kernel(ns, backend, 4, "filter").chains == {"INPUT": (), "FORWARD": ("",), "OUTPUT": ()}


@pytest.mark.parametrize("backend", BACKENDS)
def test_earlier_runs_state_is_replaced_in_one_apply(backend, ns):
    old = desired("two-tiers", 6)
    load_ipsets(ns, old)
    dataplane(ns, old, backend).apply()
    iptables(ns, backend, 6, "-t", "filter", "-A", "INPUT", "-j", "cali-INPUT")   # an old unhashed hook
    new = desired("profile-only", 6)
    load_ipsets(ns, new)
    dp = dataplane(ns, new, backend)
    stats = dp.apply()
    assert stats.restore_errors == 0
    assert_programmed(ns, backend, new.tables)
    assert dp.apply().lines == 0


# --------------------------------------------------------------------------------------
# Failures, backends, features.

@pytest.mark.parametrize("backend", BACKENDS)
def test_failing_transaction_is_retried_and_reported(backend, ns):
    dd = desired("two-tiers", 4)   # its IP sets are not created: the restore must fail
    sleeps: list[float] = []
    dp = dataplane(ns, dd, backend, sleep=sleeps.append)
    with pytest.raises(IptablesError) as err:
        dp.apply()
    message = str(err.value)
    assert re.search(r"Set cali40\S+ doesn't exist", message), message
    assert "failed for table filter after 10 retries" in message
    # Each failing table: 11 attempts, each after a fresh read (the diagnostic dump at the
    # end is not counted, as in Felix).
    failing = err.value.failed_tables
    assert "filter" in failing and "raw" not in failing
    assert dp.counters.restore_errors == err.value.stats.restore_errors == 11 * len(failing)
    assert dp.counters.save_calls == 4 + 10 * len(failing)
    assert sleeps == [0.001 * 2 ** i for i in range(10)] * len(failing)
    # Tables that need no IP set were programmed anyway.
    assert "raw" in err.value.stats.tables_written
    assert "cali-PREROUTING" in kernel(ns, backend, 4, "raw").chains
    # Once the sets exist, the next apply succeeds.
    load_ipsets(ns, dd)
    assert dp.apply().restore_errors == 0
    assert_programmed(ns, backend, dd.tables)


def test_backend_detection_and_features(ns):
    run = runner(ns)
    assert detect_backend("auto", run) == "legacy"   # nothing anywhere: legacy wins the tie
    ns.run("ip6tables-nft", "-t", "filter", "-A", "INPUT", "-j", "ACCEPT")
    assert detect_backend("auto", run) == "nft"      # more nft rules
    ns.run("iptables-legacy", "-t", "mangle", "-N", "KUBE-KUBELET-CANARY")
    assert detect_backend("auto", run) == "legacy"   # Kubernetes' chains in legacy mangle
    ns.run("iptables-nft", "-t", "mangle", "-N", "KUBE-IPTABLES-HINT")
    assert detect_backend("auto", run) == "nft"      # ... but nft's are looked at first
    assert detect_backend("legacy", run) == "legacy"
    version = subprocess.run(["iptables", "--version"], capture_output=True, text=True).stdout
    features = detect_features(run)
    assert features.restore_supports_lock == (tuple(int(x) for x in re.search(
        r"v(\d+)\.(\d+)\.(\d+)", version).groups()) >= (1, 6, 2))
    dp = IptablesDataplane(4, {"filter": small()}, backend="auto", run=run, lock_probe_interval=0.02)
    assert dp.backend == "nft" and dp.restore_cmd == "iptables-nft-restore"
    if features.restore_supports_lock:
        assert dp.restore_args[-4:] == ["--wait", "10", "--wait-interval", "20000"]
