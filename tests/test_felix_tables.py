"""The desired-table model: refcounting, kernel hooks, change reports, render_save."""
import pytest

from node.felix.rules import dispatch, endpoints, static
from node.felix.rules.config import RulesConfig
from node.felix.rules.core import ACCEPT, DROP, Chain, Rule, goto, jump
from node.felix.tables import Table


def j(target, *match):
    return Rule(match, jump(target))


def test_only_chains_reachable_from_kernel_chains_are_programmed():
    t = Table("filter", 4)
    t.update_chain(Chain("cali-a", (j("cali-b"),)))
    t.update_chain(Chain("cali-b", (Rule((), ACCEPT),)))
    assert t.programmed_chain_names() == []
    assert "cali-a" not in t.render_save()
    t.set_inserts("INPUT", [j("cali-a")])
    assert t.programmed_chain_names() == ["cali-a", "cali-b"]
    # Dropping the last reference drops the chain and its now-unreferenced children.
    t.set_inserts("INPUT", [])
    assert t.programmed_chain_names() == []
    assert not t.is_referenced("cali-b")


def test_refcounts_through_updates_and_shared_children():
    t = Table("filter", 4)
    t.set_inserts("FORWARD", [j("cali-root")])
    t.update_chain(Chain("cali-root", (j("cali-x"), j("cali-y"))))
    t.update_chain(Chain("cali-x", (j("cali-shared"),)))
    t.update_chain(Chain("cali-y", (j("cali-shared"),)))
    t.update_chain(Chain("cali-shared", (Rule((), DROP),)))
    assert t.programmed_chain_names() == ["cali-root", "cali-shared", "cali-x", "cali-y"]
    # The root stops referencing x: x goes, shared stays (y still uses it).
    t.update_chain(Chain("cali-root", (j("cali-y"),)))
    assert t.programmed_chain_names() == ["cali-root", "cali-shared", "cali-y"]
    # y stops referencing shared.
    t.update_chain(Chain("cali-y", (Rule((), ACCEPT),)))
    assert t.programmed_chain_names() == ["cali-root", "cali-y"]
    # A chain defined after it became referenced is programmed, with its children.
    t.update_chain(Chain("cali-root", (j("cali-y"), j("cali-late"))))
    assert t.missing_chains() == ["cali-late"]
    t.update_chain(Chain("cali-late", (Rule((), goto("cali-x")),)))
    assert t.missing_chains() == []
    assert t.programmed_chain_names() == ["cali-late", "cali-root", "cali-shared", "cali-x", "cali-y"]
    # Removing a referenced chain leaves the reference (a missing chain) and drops its children.
    t.remove_chain("cali-late")
    assert t.missing_chains() == ["cali-late"]
    assert "cali-x" not in t.programmed_chain_names()
    assert t.is_referenced("cali-late") and not t.is_programmed("cali-late")


def test_force_programmed_chains():
    t = Table("filter", 4)
    t.update_chain(Chain("cali-pi-gnp/policy-1", (j("cali-child"),), force_programming=True))
    t.update_chain(Chain("cali-child", ()))
    assert t.programmed_chain_names() == ["cali-child", "cali-pi-gnp/policy-1"]
    # Replacing it without the flag unprograms it (nothing else references it).
    t.update_chain(Chain("cali-pi-gnp/policy-1", (j("cali-child"),)))
    assert t.programmed_chain_names() == []
    assert not t.is_referenced("cali-child")
    t.update_chain(Chain("cali-pi-gnp/policy-1", (j("cali-child"),), force_programming=True))
    t.remove_chain("cali-pi-gnp/policy-1")
    assert t.programmed_chain_names() == [] and not t.is_referenced("cali-child")
    # Forced and referenced: losing the flag keeps it while the reference lasts.
    t.update_chain(Chain("cali-pi-gnp/policy-1", (j("cali-child"),), force_programming=True))
    t.set_inserts("INPUT", [j("cali-pi-gnp/policy-1")])
    t.update_chain(Chain("cali-pi-gnp/policy-1", (j("cali-child"),)))
    assert t.programmed_chain_names() == ["cali-child", "cali-pi-gnp/policy-1"]
    t.set_inserts("INPUT", [])
    assert t.programmed_chain_names() == [] and not t.is_referenced("cali-child")


def test_kernel_chain_validation():
    t = Table("nat", 6)
    with pytest.raises(ValueError):
        t.set_inserts("FORWARD", [])
    with pytest.raises(ValueError):
        t.update_chain(Chain("POSTROUTING", ()))
    with pytest.raises(ValueError):
        Table("security", 4)
    with pytest.raises(ValueError):
        Table("filter", 4, insert_mode="prepend")


def test_insert_and_append_placement():
    cfg = RulesConfig()
    hooks = static.kernel_hooks(cfg, "filter")
    ins = Table("filter", 4, insert_mode="insert")
    ins.set_hooks(hooks.inserts, hooks.appends)
    app = Table("filter", 4, insert_mode="append")
    app.set_hooks(hooks.inserts, hooks.appends)
    # Two foreign rules in FORWARD: ours go first (insert) or after them (append); the
    # always-append rules go last either way and hash under FORWARD*appends*.
    assert ins.expected_kernel_chain_ids("FORWARD", 2) == [
        "wUHhoiAYhphO9Mso", "", "", "S93hcgKJrXEqnTfs", "mp77cMpurHhyjLrM"]
    assert app.expected_kernel_chain_ids("FORWARD", 2) == [
        "", "", "wUHhoiAYhphO9Mso", "S93hcgKJrXEqnTfs", "mp77cMpurHhyjLrM"]
    assert ins.inserted_rule_ids("INPUT") == ("Cz_u1IQiXIMmKD4c",)
    assert ins.appended_rule_ids("INPUT") == ()
    assert ins.kernel_chain_lines("FORWARD") == app.kernel_chain_lines("FORWARD") == [
        '-A FORWARD -m comment --comment "cali:wUHhoiAYhphO9Mso" --jump cali-FORWARD',
        '-A FORWARD -m comment --comment "cali:S93hcgKJrXEqnTfs" -m comment --comment '
        '"Policy explicitly accepted packet." -m mark --mark 0x10000/0x10000 --jump ACCEPT',
        '-A FORWARD -m comment --comment "cali:mp77cMpurHhyjLrM" --jump MARK --set-mark 0x10000/0x10000',
    ]
    nat = Table("nat", 4, insert_mode="insert")
    h = static.kernel_hooks(cfg, "nat")
    nat.set_hooks(h.inserts, h.appends)
    # The nat POSTROUTING jump is appended even in insert mode.
    assert nat.expected_kernel_chain_ids("POSTROUTING", 1) == ["", "0i8pjzKKPyA34aQD"]
    assert nat.expected_kernel_chain_ids("PREROUTING", 1) == ["6gwbT8clXdHdC1b1", ""]


def test_take_changes():
    t = Table("filter", 4)
    first = t.take_changes()
    assert first.chains == () and first.kernel_chains == ()  # empty kernel chains: nothing new
    t.set_inserts("INPUT", [j("cali-INPUT")])
    t.update_chain(Chain("cali-INPUT", (j("cali-a"),)))
    t.update_chain(Chain("cali-a", (Rule((), ACCEPT),)))
    t.update_chain(Chain("cali-unused", (Rule((), ACCEPT),)))
    changes = t.take_changes()
    assert changes.added == ["cali-INPUT", "cali-a"]
    assert [(k.name, k.old_ids, k.new_ids) for k in changes.kernel_chains] == [
        ("INPUT", ((), ()), (("Cz_u1IQiXIMmKD4c",), ()))]
    assert not t.take_changes()
    # Same content again: no change reported.
    t.update_chain(Chain("cali-a", (Rule((), ACCEPT),)))
    assert not t.take_changes()
    t.update_chain(Chain("cali-a", (Rule((), DROP),)))
    changes = t.take_changes()
    assert changes.updated == ["cali-a"]
    (change,) = changes.chains
    assert change.old_ids != change.new_ids and len(change.new_ids) == 1
    t.update_chain(Chain("cali-INPUT", ()))
    changes = t.take_changes()
    assert changes.removed == ["cali-a"] and changes.updated == ["cali-INPUT"]
    assert changes.chains[0].new_ids == ()
    # A chain that appears and disappears between reports is not reported.
    t.update_chain(Chain("cali-INPUT", (j("cali-a"),)))
    t.update_chain(Chain("cali-INPUT", ()))
    assert not t.take_changes()


def test_render_save_golden_raw_table():
    # The raw table of felix/fv/cali-iptables-dump.txt (VXLAN on), in Felix's rendering.
    cfg = RulesConfig(vxlan_enabled=True, vxlan_tunnel_address="10.65.0.1")
    t = Table("raw", 4)
    t.update_chains(static.static_chains(cfg, "raw", 4))
    hooks = static.kernel_hooks(cfg, "raw")
    t.set_hooks(hooks.inserts, hooks.appends)
    t.update_chains(dispatch.host_dispatch_chains_by_table(cfg, [])["raw"])
    t.update_chain(endpoints.rpf_skip_chain(4, {}))
    assert t.missing_chains() == []
    assert t.render_save() == """\
*raw
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:cali-OUTPUT - [0:0]
:cali-PREROUTING - [0:0]
:cali-from-host-endpoint - [0:0]
:cali-rpf-skip - [0:0]
:cali-to-host-endpoint - [0:0]
-A PREROUTING -m comment --comment "cali:6gwbT8clXdHdC1b1" --jump cali-PREROUTING
-A OUTPUT -m comment --comment "cali:tVnHkvAo15HuiPy0" --jump cali-OUTPUT
-A cali-OUTPUT -m comment --comment "cali:clI8WObfCl4yhr60" --jump MARK --set-mark 0/0x1b0000
-A cali-OUTPUT -m comment --comment "cali:ZbkN6P8OdRcBRPpU" --jump cali-to-host-endpoint
-A cali-OUTPUT -m comment --comment "cali:ry5_UEpt1OaPPCxO" -p udp --dport 4789 --jump NOTRACK
-A cali-OUTPUT -m comment --comment "cali:MGhICIksKDnYMIkW" -m mark --mark 0x10000/0x10000 --jump ACCEPT
-A cali-PREROUTING -m comment --comment "cali:DQ6LK2guiBRMyrLK" --jump MARK --set-mark 0/0x1b0000
-A cali-PREROUTING -m comment --comment "cali:sIsu2aAqNN6K3YYn" -p udp --dport 4789 --jump NOTRACK
-A cali-PREROUTING -m comment --comment "cali:W0qKAga6QivxLxL1" --in-interface cali+ --jump MARK --set-mark 0x80000/0x80000
-A cali-PREROUTING -m comment --comment "cali:QOYCZUivPyJL6Dp1" -m mark --mark 0x80000/0x80000 --jump cali-rpf-skip
-A cali-PREROUTING -m comment --comment "cali:uvipz_NmQPrGYnTB" -m mark --mark 0x80000/0x80000 -m rpfilter --invert --validmark --jump DROP
-A cali-PREROUTING -m comment --comment "cali:pj4jqF0K2OCNLmzX" -m mark --mark 0/0x80000 --jump cali-from-host-endpoint
-A cali-PREROUTING -m comment --comment "cali:Jefg6QI5khJcHnVl" -m mark --mark 0x10000/0x10000 --jump ACCEPT
COMMIT
"""
    # The WireGuard mark chain and the failsafe chains exist but nothing jumps to them.
    assert t.chain("cali-wireguard-incoming-mark") is not None
    assert not t.is_programmed("cali-failsafe-in")


def test_render_save_kernel_policies_and_workload():
    cfg = RulesConfig()
    t = Table("filter", 4)
    t.set_inserts("FORWARD", [j("cali-to-wl-dispatch", "--out-interface cali+")])
    t.update_chains(dispatch.workload_dispatch_chains(cfg, ["cali1"]))
    t.update_chains(endpoints.workload_endpoint_chains(cfg, "cali1", False, [], []))
    out = t.render_save({"FORWARD": "DROP"})
    lines = out.splitlines()
    # Only the chains reachable from FORWARD: the "to" dispatch chain and the tw chain.
    assert lines[:6] == ["*filter", ":INPUT ACCEPT [0:0]", ":FORWARD DROP [0:0]", ":OUTPUT ACCEPT [0:0]",
                         ":cali-to-wl-dispatch - [0:0]", ":cali-tw-cali1 - [0:0]"]
    assert lines[6].startswith("-A FORWARD -m comment --comment \"cali:") and \
        lines[6].endswith(" --out-interface cali+ --jump cali-to-wl-dispatch")
    assert [ln.split(" ", 2)[1] for ln in lines[7:-1]] == ["cali-to-wl-dispatch", "cali-to-wl-dispatch",
                                                           "cali-tw-cali1"]
    assert lines[-1] == "COMMIT"
    assert t.chain_rule_ids("cali-tw-cali1") == t.chain("cali-tw-cali1").rule_ids
    assert len(t.chain_rule_ids("cali-tw-cali1")) == 1
