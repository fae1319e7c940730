"""The pure block logic, without a datastore: ordering rules and invariants."""
from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.errors import AlreadyExists, Conflict, NotFound
from node.ipam.block import Block, ReleaseOptions, Reservations, format_time, parse_time, validate_block
from node.ipam.errors import BadBlock, IPAMError, IPInCooldown
from node.ipam.pools import fnv1_32, random_blocks
from node.model import from_dict

T = 1_700_000_000_000_000_000
AFF = "host:n1"


def new(cidr="10.0.0.0/28"):
    return Block.new(cidr, AFF, T)


def test_new_block_hands_out_the_network_address_first_and_released_ones_last():
    b = new()
    assert b.auto_assign(2, "a", None, AFF, True) == ["10.0.0.0", "10.0.0.1"]
    b.release([ReleaseOptions("10.0.0.0")], 0, T)
    assert b.auto_assign(15, "b", None, AFF, True)[-1] == "10.0.0.0"
    assert b.unallocated == [] and b.num_free() == 0
    assert b.auto_assign(1, "c", None, AFF, True) == []


def test_affinity_checks():
    b = new()
    with pytest.raises(IPAMError, match=r"Block affinity \(host:n1\) does not match provided \(host:n2\)"):
        b.auto_assign(1, "a", None, "host:n2", True)
    assert b.auto_assign(1, "a", None, "host:n2", False) == ["10.0.0.0"]
    b.affinity = None
    with pytest.raises(IPAMError, match="with no affinity"):
        b.assign(ipaddress.ip_address("10.0.0.3"), "a", None, AFF, True)


def test_assign_specific_and_duplicates():
    b = new()
    b.assign(ipaddress.ip_address("10.0.0.9"), "h", {"pod": "p"}, AFF, True)
    with pytest.raises(AlreadyExists):
        b.assign(ipaddress.ip_address("10.0.0.9"), "h", None, AFF, True)
    with pytest.raises(IPAMError, match="not in block"):
        b.assign(ipaddress.ip_address("10.0.1.9"), "h", None, AFF, True)
    assert 9 not in b.unallocated
    assert b.attributes_for_ip(ipaddress.ip_address("10.0.0.9")).secondary == {"pod": "p"}
    with pytest.raises(NotFound):
        b.attributes_for_ip(ipaddress.ip_address("10.0.0.8"))


def test_identical_attributes_are_shared_and_unused_ones_dropped():
    b = new()
    b.auto_assign(2, "h", {"pod": "p"}, AFF, True)
    b.auto_assign(1, "h", {"pod": "p"}, AFF, True)
    b.auto_assign(1, "other", None, AFF, True)
    assert len(b.attributes) == 2 and b.allocations[:4] == [0, 0, 0, 1]
    assert b.release_by_handle("h", 0, T) == 3
    assert len(b.attributes) == 1 and b.allocations[3] == 0


def test_release_guards_and_cooldown():
    b = new()
    b.auto_assign(2, "h", None, AFF, True)
    with pytest.raises(Conflict):
        b.release([ReleaseOptions("10.0.0.0", handle="x")], 0, T)
    with pytest.raises(Conflict):
        b.release([ReleaseOptions("10.0.0.0", sequence_number=T + 99)], 0, T)
    not_alloc, per_handle = b.release([ReleaseOptions("10.0.0.1"), ReleaseOptions("10.0.0.5")], 60, T)
    assert (not_alloc, per_handle) == (["10.0.0.5"], {"h": 1})
    with pytest.raises(IPInCooldown):
        b.attributes_for_ip(ipaddress.ip_address("10.0.0.1"))
    assert b.num_free() == 14 and b.count_by_handle() == {"h": 1}
    assert not b.garbage_collect(60, T + 30 * 10**9)
    assert b.garbage_collect(60, T + 61 * 10**9)
    assert b.unallocated[-1] == 1 and b.num_free() == 15


def test_windows_reserved_addresses_do_not_make_a_block_non_empty():
    b = new()
    b.assign(ipaddress.ip_address("10.0.0.0"), "windows-reserved-ipam-handle", {"note": "x"}, AFF, True)
    assert b.empty()
    b.auto_assign(1, "pod", None, AFF, True)
    assert not b.empty()


def test_reservations():
    r = Reservations(["10.0.0.0/30", "10.0.0.8"])
    b = new()
    assert b.num_free(r) == 11
    assert b.auto_assign(6, "h", None, AFF, True, r) == [f"10.0.0.{i}" for i in (4, 5, 6, 7, 9, 10)]
    assert b.unallocated[:5] == [0, 1, 2, 3, 8]


def test_malformed_blocks_are_named():
    with pytest.raises(BadBlock, match="10.0.0.0/28 has 3 allocation slots, expected 16"):
        Block.from_record({"cidr": "10.0.0.0/28", "allocations": [None] * 3})
    with pytest.raises(BadBlock, match="allocation 0 indexes a nonexistent attribute 2"):
        Block.from_record({"cidr": "10.0.0.0/30", "allocations": [2, None, None, None], "attributes": []})
    b = new("10.0.0.0/30")
    b.unallocated = [0, 1, 1]
    assert validate_block(b, T) == "ordinal 1 appears more than once in Unallocated array"


def test_times_and_hash():
    assert format_time(T + 999_999_999) == "2023-11-14T22:13:20Z"
    assert parse_time("2023-11-14T22:13:20Z") == T
    assert parse_time("2023-11-14T23:13:20.5+01:00") == T + 500_000_000
    assert fnv1_32(b"") == 0x811C9DC5 and fnv1_32(b"a") == 0x050C5D7E


def test_block_walk_covers_every_block_once_starting_per_host():
    pool = from_dict({"apiVersion": "projectcalico.org/v3", "kind": "IPPool", "metadata": {"name": "p"},
                      "spec": {"cidr": "10.0.0.0/24", "blockSize": 28}})
    walk = list(random_blocks(pool, "node-a"))
    assert sorted(walk) == list(ipaddress.ip_network("10.0.0.0/24").subnets(new_prefix=28))
    assert walk == list(random_blocks(pool, "node-a"))
    starts = {next(random_blocks(pool, f"node-{i}")) for i in range(40)}
    assert len(starts) > 4
    idx = [int(n.network_address) for n in walk]
    assert all((b - a) % 256 == 16 for a, b in zip(idx, idx[1:]))


ops = st.lists(st.one_of(
    st.tuples(st.just("auto"), st.integers(1, 5), st.sampled_from(["h1", "h2", "h3"])),
    st.tuples(st.just("assign"), st.integers(0, 15), st.sampled_from(["h1", "h2", "h3"])),
    st.tuples(st.just("release"), st.lists(st.integers(0, 15), max_size=4), st.booleans()),
    st.tuples(st.just("by_handle"), st.sampled_from(["h1", "h2", "h3"]), st.booleans()),
    st.tuples(st.just("tick"), st.integers(0, 90), st.just(None)),
), max_size=40)


@settings(max_examples=150, deadline=None)
@given(ops, st.sampled_from([0, 30]))
def test_random_operations_keep_the_block_consistent(steps, cooldown):
    b = new()
    now = T
    live: dict[int, str] = {}
    cooling: set[int] = set()
    for op, arg, extra in steps:
        if op == "auto":
            for ip in b.auto_assign(arg, extra, {"h": extra}, AFF, True):
                o = int(ipaddress.ip_address(ip)) - int(b.cidr.network_address)
                assert o not in live and o not in cooling
                live[o] = extra
        elif op == "assign":
            try:
                b.assign(b.ordinal_to_ip(arg), extra, {"h": extra}, AFF, True)
            except AlreadyExists:
                assert arg in live or arg in cooling
            else:
                live[arg] = extra
        elif op == "release":
            opts = [ReleaseOptions(str(b.ordinal_to_ip(o)), handle=live.get(o, "") if extra else "") for o in arg]
            not_alloc, _ = b.release(opts, cooldown, now)
            assert {int(ipaddress.ip_address(i)) - int(b.cidr.network_address) for i in not_alloc} == \
                {o for o in arg if o not in live}
            for o in set(arg) & set(live):
                del live[o]
                if cooldown:
                    cooling.add(o)
        elif op == "by_handle":
            mine = {o for o, h in live.items() if h == arg}
            assert b.release_by_handle(arg, cooldown, now) == len(mine)
            for o in mine:
                del live[o]
                if cooldown:
                    cooling.add(o)
        else:
            now += arg * 10**9
            b.garbage_collect(cooldown, now)
            cooling = {o for o in cooling if b.allocations[o] is not None}
        assert validate_block(b, now) is None
        assert {o for o in range(16) if b.allocations[o] is not None} == set(live) | cooling
        assert b.count_by_handle() == {h: list(live.values()).count(h) for h in set(live.values())}
        assert Block.decode(b.encode()) == b
