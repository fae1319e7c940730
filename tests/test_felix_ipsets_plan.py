"""IP set plans without the kernel (node/felix/dataplane/ipsets.py): parsing ``ipset list``,
ownership, and the restore lines for new sets, deltas, temp+swap and type changes.

Facts from Felix v3.32.1 felix/ipsets/ipsets.go (writeUpdates, resyncIPSet) and
ipset_defs.go (owned-name pattern, temp names), and spec §4.4.
"""
from __future__ import annotations

import subprocess

import pytest

from node.felix.dataplane.ipsets import (IPSetsDataplane, IPSetsError, KernelSet, SetMeta, is_temp, owns,
                                         parse_list, plan_deletions, plan_updates, temp_name)
from node.felix.desired import IPSet, IPSets
from node.felix.types import IPSetType

LISTING = """\
Name: cali40s:abc
Type: hash:net
Revision: 7
Header: family inet hashsize 1024 maxelem 1048576 bucketsize 12 initval 0xa8a3df77
Size in memory: 552
References: 2
Number of entries: 3
Members:
10.0.0.0/24
10.0.1.1
10.0.2.0/32

Name: cali40n:def
Type: hash:ip,port
Revision: 7
Header: family inet hashsize 1024 maxelem 65536 bucketsize 12 initval 0x62894054
Size in memory: 312
References: 0
Number of entries: 2
Members:
10.0.0.1,udp:53
10.0.0.1,tcp:80
"""

NET = SetMeta("hash:net", "inet", 1048576)


def desired(**sets: tuple[IPSetType, set[str]]) -> dict[str, IPSet]:
    return {name.replace("_", ":"): IPSet(t, set(m)) for name, (t, m) in sets.items()}


def test_parse_list_reads_metadata_references_and_canonical_members():
    parsed = parse_list(LISTING)
    assert parsed["cali40s:abc"].meta == NET
    assert parsed["cali40s:abc"].references == 2
    # /32 is canonicalised to a bare address, as the desired side writes it.
    assert parsed["cali40s:abc"].members == {"10.0.0.0/24", "10.0.1.1", "10.0.2.0"}
    assert parsed["cali40n:def"].meta == SetMeta("hash:ip,port", "inet", 65536)
    assert parsed["cali40n:def"].members == {"10.0.0.1,udp:53", "10.0.0.1,tcp:80"}


def test_parse_list_v6_members_and_bad_header():
    text = ("Name: cali60x\nType: hash:net\nHeader: family inet6 hashsize 1024 maxelem 10\nReferences: 0\n"
            "Members:\n2001:DB8:0:0::1\nfd00:1::/64\nnot-an-address\n\nName: cali60y\nType: hash:ip\n"
            "Header: family inet6 hashsize 1024\nMembers:\n")
    parsed = parse_list(text)
    assert parsed["cali60x"].members == {"2001:db8::1", "fd00:1::/64", "not-an-address"}
    assert parsed["cali60y"].meta is None  # no maxelem: not understood, so it gets rewritten


def test_ownership_and_temp_names():
    assert owns("cali40s:abc", 4) and owns("cali4t3", 4) and owns("felix-4-old", 4)
    assert owns("felix-masq-ipam-pools", 4) and owns("felix-all-ipam-pools", 4)
    assert not owns("cali60s:abc", 4) and not owns("KUBE-SVC", 4) and not owns("felix-masq-ipam-pools", 6)
    assert owns("cali60s:abc", 6) and owns("felix-6-x", 6)
    assert temp_name(4, 7) == "cali4t7" and is_temp("cali6t0", 6) and not is_temp("cali40t", 4)


def test_new_set_is_created_then_filled_in_address_order():
    plan = plan_updates(desired(cali40s_a=(IPSetType.NET, {"10.0.0.9", "10.0.0.0/24", "9.0.0.1"})), {},
                        version=4, max_size=1048576)
    assert plan.lines == ("create cali40s:a hash:net family inet maxelem 1048576",
                          "add cali40s:a 9.0.0.1", "add cali40s:a 10.0.0.0/24", "add cali40s:a 10.0.0.9")
    assert plan.after["cali40s:a"].members == {"10.0.0.9", "10.0.0.0/24", "9.0.0.1"}


def test_existing_set_gets_deltas_only_deletions_first():
    kernel = {"cali40s:a": KernelSet(NET, {"10.0.0.1", "10.0.0.2", "10.0.0.3"}, references=1)}
    plan = plan_updates(desired(cali40s_a=(IPSetType.NET, {"10.0.0.2", "10.0.0.3", "10.0.0.4"})), kernel,
                        version=4, max_size=1048576)
    assert plan.lines == ("del cali40s:a 10.0.0.1 --exist", "add cali40s:a 10.0.0.4")
    assert plan.after["cali40s:a"].references == 1


def test_equal_sets_give_no_lines():
    kernel = {"cali40s:a": KernelSet(NET, {"10.0.0.1"})}
    plan = plan_updates(desired(cali40s_a=(IPSetType.NET, {"10.0.0.1"})), kernel, version=4, max_size=1048576)
    assert plan.lines == () and plan.after == {}


def test_maxelem_change_goes_through_a_temp_set_and_swap():
    kernel = {"cali40s:a": KernelSet(SetMeta("hash:net", "inet", 65536), {"10.0.0.1"}),
              "cali4t0": KernelSet(NET)}  # a leftover temp: its name is skipped
    plan = plan_updates(desired(cali40s_a=(IPSetType.NET, {"10.0.0.1", "10.0.0.2"})), kernel,
                        version=4, max_size=1048576)
    assert plan.lines == ("create cali4t1 hash:net family inet maxelem 1048576",
                          "add cali4t1 10.0.0.1", "add cali4t1 10.0.0.2", "swap cali40s:a cali4t1")
    assert plan.next_temp == 2
    assert plan.after["cali4t1"].meta == SetMeta("hash:net", "inet", 65536)  # the old set, after the swap
    assert plan.after["cali40s:a"].meta == NET


def test_a_rewrite_shorter_than_the_delta_uses_a_temp_set():
    old = {f"10.1.{i // 250}.{i % 250}" for i in range(50)}
    kernel = {"cali40s:a": KernelSet(NET, old)}
    want = desired(cali40s_a=(IPSetType.NET, {"10.9.0.1"}))
    plan = plan_updates(want, kernel, version=4, max_size=1048576, rewrite_min=20)
    assert plan.lines == ("create cali4t0 hash:net family inet maxelem 1048576", "add cali4t0 10.9.0.1",
                          "swap cali40s:a cali4t0")
    # Below the threshold the same change stays a delta.
    plan = plan_updates(want, kernel, version=4, max_size=1048576, rewrite_min=100)
    assert len(plan.lines) == 51 and plan.lines[-1] == "add cali40s:a 10.9.0.1"


def test_type_change_recreates_unreferenced_set_last_and_blocks_a_referenced_one():
    kernel = {"cali40a": KernelSet(SetMeta("hash:ip", "inet", 1048576), {"10.0.0.1"}),
              "cali40b": KernelSet(SetMeta("hash:ip", "inet", 1048576), {"10.0.0.1"}, references=1),
              "cali40c": KernelSet(NET, set())}
    plan = plan_updates(desired(cali40a=(IPSetType.NET, {"10.0.0.0/8"}), cali40b=(IPSetType.NET, {"10.0.0.1"}),
                                cali40c=(IPSetType.NET, {"10.0.0.5"})),
                        kernel, version=4, max_size=1048576)
    assert plan.lines == ("add cali40c 10.0.0.5", "destroy cali40a",
                          "create cali40a hash:net family inet maxelem 1048576", "add cali40a 10.0.0.0/8")
    assert plan.blocked == ("cali40b",)
    assert "cali40b" not in plan.after


def test_a_set_that_could_not_be_listed_is_rewritten_through_a_swap_never_destroyed():
    """Felix's ListFailed (e.g. a set revision this ipset cannot read): its references are
    unknown, and an in-use set cannot be destroyed, so it is swapped like a maxelem change."""
    kernel = {"cali40a": KernelSet(meta=None)}
    plan = plan_updates(desired(cali40a=(IPSetType.NET, {"10.0.0.1"})), kernel, version=4, max_size=1048576)
    assert plan.lines == ("create cali4t0 hash:net family inet maxelem 1048576", "add cali4t0 10.0.0.1",
                          "swap cali40a cali4t0")
    assert plan.blocked == () and plan.after["cali40a"].meta == NET


def test_deletions_are_owned_undesired_sets_temp_first():
    kernel = {"cali40old": KernelSet(NET), "cali4t3": KernelSet(NET), "cali40keep": KernelSet(NET),
              "KUBE-X": KernelSet(NET), "cali60other": KernelSet(NET)}
    assert plan_deletions({"cali40keep"}, kernel, 4) == ["cali4t3", "cali40old"]


class FakeIpset:
    """Scripted ``ipset`` for the applier's control flow (the kernel tests cover real ipset)."""

    def __init__(self, listing: dict[str, str], fail_restores: int = 0, fail_lists: int = 0,
                 in_use: frozenset[str] = frozenset()):
        self.listing = listing
        self.fail_restores = fail_restores
        self.fail_lists = fail_lists
        self.in_use = in_use
        self.calls: list[tuple[tuple[str, ...], str | None]] = []

    def __call__(self, argv, stdin):
        args = tuple(argv[1:])
        self.calls.append((args, stdin))
        if args == ("list", "-name"):
            if self.fail_lists:
                self.fail_lists -= 1
                return subprocess.CompletedProcess(argv, 1, "", "ipset v7.17: Kernel error received: busy")
            return subprocess.CompletedProcess(argv, 0, "\n".join(self.listing) + "\n", "")
        if args[0] == "destroy":
            if args[1] in self.in_use:
                return subprocess.CompletedProcess(
                    argv, 1, "", "ipset v7.17: Set cannot be destroyed: it is in use by a kernel component")
            self.listing.pop(args[1], None)
            return subprocess.CompletedProcess(argv, 0, "", "")
        if args[0] == "list":
            return subprocess.CompletedProcess(argv, 0, self.listing[args[1]], "")
        if args[0] == "restore" and self.fail_restores:
            self.fail_restores -= 1
            return subprocess.CompletedProcess(argv, 1, "", "Error in line 1: boom")
        return subprocess.CompletedProcess(argv, 0, "", "")


def test_failed_restore_rereads_and_retries_then_gives_up():
    """Felix's ApplyUpdates: up to 10 attempts, each after a fresh read, with a pause
    from 1 ms doubling between them; a failing read is retried the same way."""
    sets = IPSets(4, 1048576)
    sets.replace("s:a", IPSetType.NET, ["10.0.0.1"])
    fake = FakeIpset({}, fail_restores=1)
    pauses: list[float] = []
    dp = IPSetsDataplane(sets, runner=fake, sleep=pauses.append)
    dp.apply_updates()
    assert [c[0][0] for c in fake.calls] == ["list", "restore", "list", "restore"]
    assert dp.stats.errors == 1 and dp.stats.restore_calls == 2 and pauses == [0.001]

    fake = FakeIpset({}, fail_restores=9)
    pauses.clear()
    IPSetsDataplane(sets, runner=fake, sleep=pauses.append).apply_updates()  # the 10th attempt succeeds
    assert pauses == [0.001 * 2 ** i for i in range(9)]

    fake = FakeIpset({}, fail_restores=99)
    pauses.clear()
    with pytest.raises(IPSetsError, match="after 10 attempts: Error in line 1: boom"):
        IPSetsDataplane(sets, runner=fake, sleep=pauses.append).apply_updates()
    assert sum(1 for c in fake.calls if c[0][0] == "restore") == 10 and len(pauses) == 9

    fake = FakeIpset({}, fail_lists=2)
    dp = IPSetsDataplane(sets, runner=fake, sleep=lambda s: None)
    dp.apply_updates()  # two failed reads, then the read and restore
    assert [c[0][0] for c in fake.calls] == ["list", "list", "list", "restore"]
    fake = FakeIpset({}, fail_lists=99)
    with pytest.raises(IPSetsError, match="list -name failed"):
        IPSetsDataplane(sets, runner=fake, sleep=lambda s: None).apply_updates()


def test_after_a_failed_restore_only_the_sets_it_touched_are_reread_then_all():
    """Felix's partial resync: the first five attempts re-list only the sets the failed
    restore wrote to (every name is still listed), the later ones every set."""
    sets = IPSets(4, 1048576)
    sets.replace("s:a", IPSetType.NET, ["10.0.0.1"])
    sets.replace("s:b", IPSetType.NET, ["10.0.0.2"])
    listing = {"cali40s:a": _listed("cali40s:a"),
               "cali40s:b": _listed("cali40s:b").replace("Members:\n", "Members:\n10.0.0.2\n")}
    fake = FakeIpset(listing, fail_restores=7)
    IPSetsDataplane(sets, runner=fake, sleep=lambda s: None).apply_updates()
    lists = [c[0][1] for c in fake.calls if c[0][0] == "list"]
    attempts = "/".join(lists).split("/-name")
    assert attempts[0] == "-name/cali40s:a/cali40s:b"            # the first read: everything
    assert attempts[1:6] == ["/cali40s:a"] * 5                    # s:a alone was written
    assert attempts[6:] == ["/cali40s:a/cali40s:b"] * 2           # then full reads again
    assert sum(1 for c in fake.calls if c[0][0] == "restore") == 8


def _listed(name: str) -> str:
    return (f"Name: {name}\nType: hash:net\nHeader: family inet hashsize 1024 maxelem 1048576\n"
            "References: 1\nMembers:\n")


def test_a_set_that_cannot_be_destroyed_waits_for_the_next_read_and_never_asks_for_a_rerun():
    """Felix's ApplyDeletions: a failed destroy is marked and skipped until the next resync,
    and a call that destroyed nothing asks for no rerun, so sets another program keeps in
    use (more of them than one call destroys) cannot make the agent loop on them."""
    stale = [f"cali40s:{i:02d}" for i in range(5)]
    fake = FakeIpset({n: _listed(n) for n in stale}, in_use=frozenset(stale[:3]))
    dp = IPSetsDataplane(IPSets(4, 1048576), runner=fake, max_deletions=2)
    assert dp.apply_deletions() is False  # two tried, both in use
    assert dp.apply_deletions() is True   # the next two: one gone, one left
    assert dp.apply_deletions() is False  # the last one gone
    destroys = [c[0][1] for c in fake.calls if c[0][0] == "destroy"]
    assert destroys == stale and dp.stats.errors == 3
    fake.calls.clear()
    assert dp.apply_deletions() is False and fake.calls == []  # nothing retried without a read
    dp.queue_resync()
    fake.in_use = frozenset()
    dp.apply_deletions()
    dp.apply_deletions()
    assert [c[0][1] for c in fake.calls if c[0][0] == "destroy"] == stale[:3] and fake.listing == {}


def test_header_values_are_found_by_keyword_whatever_flags_come_before():
    text = ("Name: cali40s:x\nType: hash:net\nHeader: family inet counters hashsize 1024 maxelem 65536 "
            "comment bucketsize 12\nReferences: 0\nMembers:\n10.0.0.1 packets 0 bytes 0\n")
    assert parse_list(text)["cali40s:x"].meta == SetMeta("hash:net", "inet", 65536)


def test_refresh_interval_rereads_before_applying():
    now = [0.0]
    sets = IPSets(4, 1048576)
    fake = FakeIpset({})
    dp = IPSetsDataplane(sets, runner=fake, refresh_interval=90, clock=lambda: now[0])
    dp.apply_updates()
    dp.apply_updates()
    assert len(fake.calls) == 1  # one read, then nothing to do
    now[0] = 91.0
    dp.apply_updates()
    assert len(fake.calls) == 2 and fake.calls[-1][0] == ("list", "-name")
