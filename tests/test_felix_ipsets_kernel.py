"""IP sets against the real ``ipset`` in throwaway network namespaces.

The production code runs unmodified in a thread that joined the namespace
(``startup_netns.in_netns``): ipset's netlink socket, like any process it starts, then
belongs to the namespace, so the host's sets are never seen or touched. The checks read
the namespace back with ``ip netns exec <ns> ipset list``, independently of the code under
test; ``initval`` in the header tells whether a set was re-created.
"""
from __future__ import annotations

import logging
import subprocess

import pytest

from netns import Namespace
from node.felix.dataplane.ipsets import IPSetsDataplane, run_command
from node.felix.desired import IPSets
from node.felix.types import IPSetType
from startup_netns import in_netns

MAX = 1048576


class Recorder:
    """The real runner, with each command and its input kept for the assertions."""

    def __init__(self):
        self.calls: list[tuple[list[str], str | None]] = []

    def __call__(self, argv, stdin):
        self.calls.append((list(argv), stdin))
        return run_command(argv, stdin)

    def take(self) -> list[tuple[list[str], str | None]]:
        calls, self.calls = self.calls, []
        return calls


def listing(ns: Namespace, name: str) -> tuple[dict[str, str], set[str]] | None:
    """(header fields, members) of a set in the namespace, None when it does not exist."""
    result = ns.run("ipset", "list", name, check=False)
    if result.returncode != 0:
        return None
    header: dict[str, str] = {}
    members: set[str] = set()
    in_members = False
    for line in result.stdout.splitlines():
        if in_members and line.strip():
            members.add(line.strip())
        elif line.startswith("Type:"):
            header["type"] = line.split()[1]
        elif line.startswith("Header:"):
            words = line.split()[1:]
            header.update(zip(words[::2], words[1::2]))
        elif line.startswith("References:"):
            header["references"] = line.split()[1]
        elif line.startswith("Members:"):
            in_members = True
    return header, members


def names(ns: Namespace) -> set[str]:
    return set(ns.run("ipset", "list", "-name").stdout.split())


@pytest.fixture
def ns():
    with Namespace("cips") as ns:
        yield ns


def make(version: int = 4, max_size: int = MAX) -> tuple[IPSets, IPSetsDataplane, Recorder]:
    sets = IPSets(version, max_size)
    rec = Recorder()
    return sets, IPSetsDataplane(sets, runner=rec, refresh_interval=0), rec


def test_sets_created_with_exact_members_and_nothing_run_on_a_noop_apply(ns):
    ns.run("ipset", "create", "KUBE-FOREIGN", "hash:ip")  # not ours: never listed, never touched
    sets, dp, rec = make()
    sets.replace("s:abc", IPSetType.NET, ["10.0.0.0/24", "10.0.1.1/32", "fd00::1"])
    sets.replace("n:def", IPSetType.IP_AND_PORT, ["10.0.0.1,tcp:80", "10.0.0.2,udp:53"])
    sets.replace("this-host", IPSetType.IP, ["192.0.2.10"])

    in_netns(ns, dp.apply_updates)
    commands = rec.take()
    restores = [c for c in commands if c[0][1] == "restore"]
    assert len(restores) == 1 and restores[0][1].endswith("COMMIT\n")
    # Each ipset process's start time is kept for felix_exec_time_micros.
    assert len(dp.stats.exec_starts) == len(commands) and all(0 < t < 5 for t in dp.stats.exec_starts)
    assert "KUBE-FOREIGN" not in restores[0][1]

    header, members = listing(ns, "cali40s:abc")
    assert header["type"] == "hash:net" and header["family"] == "inet" and header["maxelem"] == str(MAX)
    assert members == {"10.0.0.0/24", "10.0.1.1"}  # the v6 member belongs to the v6 sets
    header, members = listing(ns, "cali40n:def")
    assert header["type"] == "hash:ip,port" and members == {"10.0.0.1,tcp:80", "10.0.0.2,udp:53"}
    assert listing(ns, "cali40this-host")[1] == {"192.0.2.10"}

    in_netns(ns, dp.apply_updates)
    in_netns(ns, dp.apply_deletions)
    assert rec.take() == []  # nothing changed: no ipset command at all
    assert listing(ns, "KUBE-FOREIGN") is not None


def test_v6_family(ns):
    sets, dp, rec = make(version=6)
    sets.replace("s:abc", IPSetType.NET, ["fd00:1::/64", "fd00::1/128", "10.0.0.1"])
    in_netns(ns, dp.apply_updates)
    header, members = listing(ns, "cali60s:abc")
    assert header["family"] == "inet6" and members == {"fd00:1::/64", "fd00::1"}


def test_member_changes_are_written_as_deltas_to_the_same_set(ns):
    sets, dp, rec = make()
    sets.replace("s:abc", IPSetType.NET, ["10.0.0.1", "10.0.0.2", "10.0.0.3"])
    in_netns(ns, dp.apply_updates)
    initval = listing(ns, "cali40s:abc")[0]["initval"]
    rec.take()

    sets.replace("s:abc", IPSetType.NET, ["10.0.0.2", "10.0.0.3", "10.0.0.4"])
    in_netns(ns, dp.apply_updates)
    (argv, stdin), = rec.take()
    assert argv[1:] == ["restore"]
    assert stdin == "del cali40s:abc 10.0.0.1 --exist\nadd cali40s:abc 10.0.0.4\nCOMMIT\n"
    header, members = listing(ns, "cali40s:abc")
    assert members == {"10.0.0.2", "10.0.0.3", "10.0.0.4"} and header["initval"] == initval


def test_maxelem_change_goes_through_temp_set_swap_keeping_references(ns):
    sets, dp, rec = make(max_size=65536)
    sets.replace("s:abc", IPSetType.NET, ["10.0.0.1", "10.0.0.2"])
    in_netns(ns, dp.apply_updates)
    ns.run("iptables", "-A", "INPUT", "-m", "set", "--match-set", "cali40s:abc", "src", "-j", "ACCEPT")
    rec.take()

    sets.max_size = MAX
    sets.replace("s:abc", IPSetType.NET, ["10.0.0.2", "10.0.0.3"])
    in_netns(ns, dp.apply_updates)
    (argv, stdin), = rec.take()
    assert stdin.splitlines() == ["create cali4t0 hash:net family inet maxelem 1048576", "add cali4t0 10.0.0.2",
                                  "add cali4t0 10.0.0.3", "swap cali40s:abc cali4t0", "COMMIT"]
    header, members = listing(ns, "cali40s:abc")
    assert header["maxelem"] == str(MAX) and members == {"10.0.0.2", "10.0.0.3"}
    assert header["references"] == "1"  # the iptables rule follows the name through the swap
    assert listing(ns, "cali4t0")[0]["maxelem"] == "65536"  # the old set, destroyed later

    in_netns(ns, dp.apply_deletions)
    assert names(ns) == {"cali40s:abc"}


def test_large_rewrite_goes_through_temp_set(ns):
    sets = IPSets(4, MAX)
    rec = Recorder()
    dp = IPSetsDataplane(sets, runner=rec, refresh_interval=0, rewrite_min=10)
    sets.replace("s:abc", IPSetType.NET, [f"10.0.{i}.1" for i in range(30)])
    in_netns(ns, dp.apply_updates)
    rec.take()
    sets.replace("s:abc", IPSetType.NET, ["10.9.9.9"])
    in_netns(ns, dp.apply_updates)
    (argv, stdin), = rec.take()
    assert "swap cali40s:abc cali4t0" in stdin and "del " not in stdin
    assert listing(ns, "cali40s:abc")[1] == {"10.9.9.9"}


def test_destroyed_set_and_changed_member_repaired_on_refresh_with_only_the_difference(ns):
    sets, dp, rec = make()
    sets.replace("s:one", IPSetType.NET, ["10.0.0.1", "10.0.0.2"])
    sets.replace("s:two", IPSetType.NET, ["10.1.0.1", "10.1.0.2"])
    in_netns(ns, dp.apply_updates)
    rec.take()

    ns.run("ipset", "destroy", "cali40s:one")
    ns.run("ipset", "del", "cali40s:two", "10.1.0.2")
    ns.run("ipset", "add", "cali40s:two", "10.1.0.99")
    in_netns(ns, dp.apply_updates)
    assert rec.take() == []  # between refreshes the cache is trusted

    in_netns(ns, dp.refresh)
    restores = [stdin for argv, stdin in rec.take() if argv[1] == "restore"]
    assert restores == ["create cali40s:one hash:net family inet maxelem 1048576\nadd cali40s:one 10.0.0.1\n"
                        "add cali40s:one 10.0.0.2\ndel cali40s:two 10.1.0.99 --exist\nadd cali40s:two 10.1.0.2\n"
                        "COMMIT\n"]
    assert listing(ns, "cali40s:one")[1] == {"10.0.0.1", "10.0.0.2"}
    assert listing(ns, "cali40s:two")[1] == {"10.1.0.1", "10.1.0.2"}


def test_a_set_read_back_as_desired_holds_the_desired_member_strings(ns):
    """A refresh that finds a set as desired keeps no second copy of its members' text."""
    sets, dp, rec = make()
    sets.replace("s:one", IPSetType.NET, [f"10.0.{i}.1" for i in range(50)])
    sets.replace("s:two", IPSetType.NET, ["10.1.0.1", "10.1.0.2"])
    in_netns(ns, dp.apply_updates)
    ns.run("ipset", "add", "cali40s:two", "10.1.0.99")  # drift in one set only
    kernel = in_netns(ns, dp.read_kernel)
    want = {m: m for m in sets.sets["cali40s:one"].members}
    assert kernel["cali40s:one"].members == set(want)
    assert all(m is want[m] for m in kernel["cali40s:one"].members)
    assert kernel["cali40s:one"].members is not sets.sets["cali40s:one"].members  # a copy: the desired side changes
    assert kernel["cali40s:two"].members == {"10.1.0.1", "10.1.0.2", "10.1.0.99"}  # as listed
    rec.take()
    in_netns(ns, dp.apply_updates)
    assert [stdin for argv, stdin in rec.take() if argv[1] == "restore"] == ["del cali40s:two 10.1.0.99 --exist\nCOMMIT\n"]


def test_deletions_wait_to_be_asked_and_in_use_is_retried_after_the_next_read(ns, caplog):
    """As Felix's DeleteFailed: a set that cannot be destroyed (another program's rule
    uses it) is not tried again on every apply, only once the kernel was read again."""
    sets, dp, rec = make()
    sets.replace("s:keep", IPSetType.NET, ["10.0.0.1"])
    sets.replace("s:gone", IPSetType.NET, ["10.0.0.2"])
    in_netns(ns, dp.apply_updates)
    ns.run("ipset", "create", "cali40stale", "hash:ip")  # left by an earlier run
    ns.run("iptables", "-A", "INPUT", "-m", "set", "--match-set", "cali40s:gone", "src", "-j", "ACCEPT")

    sets.remove("s:gone")
    in_netns(ns, dp.refresh)
    assert {"cali40s:gone", "cali40stale"} <= names(ns)  # updates never destroy

    rec.take()
    with caplog.at_level(logging.WARNING, logger="node.felix.dataplane.ipsets"):
        assert in_netns(ns, dp.apply_deletions) is False
        assert in_netns(ns, dp.apply_deletions) is False
    assert names(ns) == {"cali40s:keep", "cali40s:gone"}  # stale one gone, the in-use one kept
    assert sorted(argv[2] for argv, _ in rec.take()) == ["cali40s:gone", "cali40stale"]  # tried once
    warnings = [r for r in caplog.records if "cali40s:gone" in r.getMessage()]
    assert len(warnings) == 1 and "in use" in warnings[0].getMessage()
    assert dp.stats.errors == 1

    ns.run("iptables", "-D", "INPUT", "-m", "set", "--match-set", "cali40s:gone", "src", "-j", "ACCEPT")
    in_netns(ns, dp.apply_deletions)
    assert rec.take() == [] and "cali40s:gone" in names(ns)  # not before the next read
    dp.queue_resync()  # (the refresh interval, or a failure, does this in the agent)
    in_netns(ns, dp.apply_updates)
    in_netns(ns, dp.apply_deletions)
    assert names(ns) == {"cali40s:keep"}
    assert [argv[1:] for argv, _ in rec.take() if argv[1] != "list"] == [["destroy", "cali40s:gone"]]


def test_type_change_recreates_the_set(ns):
    ns.run("ipset", "create", "cali40this-host", "hash:net", "family", "inet")
    ns.run("ipset", "add", "cali40this-host", "10.0.0.0/24")
    sets, dp, rec = make()
    sets.replace("this-host", IPSetType.IP, ["192.0.2.10"])
    in_netns(ns, dp.apply_updates)
    header, members = listing(ns, "cali40this-host")
    assert header["type"] == "hash:ip" and members == {"192.0.2.10"}


def test_an_in_use_set_that_cannot_be_listed_is_swapped_not_destroyed(ns):
    """A set this ipset cannot list (as with a set revision newer than it knows) is
    rewritten through a temp set and swap, as Felix's ListFailed path does: destroying it
    would fail while an iptables rule uses it, and the whole restore with it."""
    ns.run("ipset", "create", "cali40s:abc", "hash:net", "family", "inet", "maxelem", str(MAX))
    ns.run("ipset", "add", "cali40s:abc", "10.0.0.9")
    ns.run("iptables", "-A", "INPUT", "-m", "set", "--match-set", "cali40s:abc", "src", "-j", "ACCEPT")
    sets = IPSets(4, MAX)
    sets.replace("s:abc", IPSetType.NET, ["10.0.0.1"])

    def runner(argv, stdin):
        if list(argv[1:]) == ["list", "cali40s:abc"]:  # the listing this ipset cannot read
            return subprocess.CompletedProcess(argv, 1, "", "ipset v7.17: Kernel and userspace incompatible: "
                                               "settype hash:net with revision 9 not supported by userspace.")
        return run_command(argv, stdin)

    dp = IPSetsDataplane(sets, runner=runner, refresh_interval=0, sleep=lambda s: None)
    in_netns(ns, dp.apply_updates)
    assert dp.stats.errors == 0 and dp.stats.restore_calls == 1
    header, members = listing(ns, "cali40s:abc")
    assert members == {"10.0.0.1"} and header["references"] == "1"
    in_netns(ns, dp.apply_deletions)
    assert names(ns) == {"cali40s:abc"}  # the temp set holding the old contents is gone
