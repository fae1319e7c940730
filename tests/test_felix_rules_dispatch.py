"""Dispatch trees against Felix's dispatch_test.go (interface prefixes cali and tap)."""
import pytest

from node.felix.rules import dispatch
from node.felix.rules.config import RulesConfig

CFG = RulesConfig(mark_accept=0x8, mark_pass=0x10, mark_scratch0=0x20, mark_scratch1=0x40, mark_drop=0x80,
                  mark_endpoint=0xFF00, workload_iface_prefixes=("cali", "tap"))
DROP = '-m comment --comment "Unknown interface" --jump DROP'


def chains_as_dict(chains):
    return [(c.name, [r.body for r in c.rules]) for c in chains]


def inb(iface, target):
    return f"--in-interface {iface} --goto {target}"


def outb(iface, target):
    return f"--out-interface {iface} --goto {target}"


@pytest.mark.parametrize("names, expected", [
    ([], [("cali-from-wl-dispatch", [DROP]), ("cali-to-wl-dispatch", [DROP])]),
    (["cali1234"], [("cali-from-wl-dispatch", [inb("cali1234", "cali-fw-cali1234"), DROP]),
                    ("cali-to-wl-dispatch", [outb("cali1234", "cali-tw-cali1234"), DROP])]),
    (["cali1234", "cali2333", "cali2444"], [
        ("cali-from-wl-dispatch-2", [inb("cali2333", "cali-fw-cali2333"), inb("cali2444", "cali-fw-cali2444"), DROP]),
        ("cali-from-wl-dispatch", [inb("cali1234", "cali-fw-cali1234"), inb("cali2+", "cali-from-wl-dispatch-2"),
                                   DROP]),
        ("cali-to-wl-dispatch-2", [outb("cali2333", "cali-tw-cali2333"), outb("cali2444", "cali-tw-cali2444"), DROP]),
        ("cali-to-wl-dispatch", [outb("cali1234", "cali-tw-cali1234"), outb("cali2+", "cali-to-wl-dispatch-2"),
                                 DROP]),
    ]),
    (["cali22", "cali11", "cali13", "cali21", "cali12"], [
        ("cali-from-wl-dispatch-1", [inb("cali11", "cali-fw-cali11"), inb("cali12", "cali-fw-cali12"),
                                     inb("cali13", "cali-fw-cali13"), DROP]),
        ("cali-from-wl-dispatch-2", [inb("cali21", "cali-fw-cali21"), inb("cali22", "cali-fw-cali22"), DROP]),
        ("cali-from-wl-dispatch", [inb("cali1+", "cali-from-wl-dispatch-1"), inb("cali2+", "cali-from-wl-dispatch-2"),
                                   DROP]),
        ("cali-to-wl-dispatch-1", [outb("cali11", "cali-tw-cali11"), outb("cali12", "cali-tw-cali12"),
                                   outb("cali13", "cali-tw-cali13"), DROP]),
        ("cali-to-wl-dispatch-2", [outb("cali21", "cali-tw-cali21"), outb("cali22", "cali-tw-cali22"), DROP]),
        ("cali-to-wl-dispatch", [outb("cali1+", "cali-to-wl-dispatch-1"), outb("cali2+", "cali-to-wl-dispatch-2"),
                                 DROP]),
    ]),
    (["cali1234", "cali1234"], [("cali-from-wl-dispatch", [inb("cali1234", "cali-fw-cali1234"), DROP]),
                                ("cali-to-wl-dispatch", [outb("cali1234", "cali-tw-cali1234"), DROP])]),
])
def test_workload_dispatch(names, expected):
    assert chains_as_dict(dispatch.workload_dispatch_chains(CFG, names)) == expected


def test_workload_dispatch_rejects_empty_name_and_uses_deny_action():
    with pytest.raises(ValueError):
        dispatch.workload_dispatch_chains(CFG, [""])
    reject = CFG.replace(filter_deny_action="REJECT")
    assert chains_as_dict(dispatch.workload_dispatch_chains(reject, []))[0] == (
        "cali-from-wl-dispatch", ['-m comment --comment "Unknown interface" --jump REJECT'])


def test_common_prefix_edge_cases():
    assert dispatch.common_prefix([]) == ""
    assert dispatch.common_prefix(["abc"]) == "abc"
    # A name that is the common prefix itself gets its own bin.
    assert dispatch.divide_names(["cali", "cali1", "cali2"]) == (
        "cali", ["cali", "cali1", "cali2"], {"cali": ["cali"], "cali1": ["cali1"], "cali2": ["cali2"]})


THREE = ["eth1234", "eth2333", "eth2444"]
FIVE = ["eth11", "eth12", "eth13", "eth21", "eth22"]


def test_pre_dnat_dispatch():
    assert chains_as_dict(dispatch.from_host_dispatch_chains(CFG, [])) == [("cali-from-host-endpoint", [])]
    assert chains_as_dict(dispatch.from_host_dispatch_chains(CFG, ["eth1234"])) == [
        ("cali-from-host-endpoint", [inb("eth1234", "cali-fh-eth1234")])]
    assert chains_as_dict(dispatch.from_host_dispatch_chains(CFG, THREE)) == [
        ("cali-from-host-endpoint-2", [inb("eth2333", "cali-fh-eth2333"), inb("eth2444", "cali-fh-eth2444")]),
        ("cali-from-host-endpoint", [inb("eth1234", "cali-fh-eth1234"), inb("eth2+", "cali-from-host-endpoint-2")]),
    ]


def test_untracked_dispatch():
    assert chains_as_dict(dispatch.host_dispatch_chains(CFG, [], "", False)) == [
        ("cali-from-host-endpoint", []), ("cali-to-host-endpoint", [])]
    assert chains_as_dict(dispatch.host_dispatch_chains(CFG, FIVE, "", False)) == [
        ("cali-from-host-endpoint-1", [inb("eth11", "cali-fh-eth11"), inb("eth12", "cali-fh-eth12"),
                                       inb("eth13", "cali-fh-eth13")]),
        ("cali-from-host-endpoint-2", [inb("eth21", "cali-fh-eth21"), inb("eth22", "cali-fh-eth22")]),
        ("cali-from-host-endpoint", [inb("eth1+", "cali-from-host-endpoint-1"),
                                     inb("eth2+", "cali-from-host-endpoint-2")]),
        ("cali-to-host-endpoint-1", [outb("eth11", "cali-th-eth11"), outb("eth12", "cali-th-eth12"),
                                     outb("eth13", "cali-th-eth13")]),
        ("cali-to-host-endpoint-2", [outb("eth21", "cali-th-eth21"), outb("eth22", "cali-th-eth22")]),
        ("cali-to-host-endpoint", [outb("eth1+", "cali-to-host-endpoint-1"),
                                   outb("eth2+", "cali-to-host-endpoint-2")]),
    ]


def test_apply_on_forward_dispatch():
    assert chains_as_dict(dispatch.host_dispatch_chains(CFG, [], "", True)) == [
        ("cali-from-host-endpoint", []), ("cali-to-host-endpoint", []),
        ("cali-from-hep-forward", []), ("cali-to-hep-forward", [])]
    assert chains_as_dict(dispatch.host_dispatch_chains(CFG, ["eth1234"], "", True)) == [
        ("cali-from-host-endpoint", [inb("eth1234", "cali-fh-eth1234")]),
        ("cali-to-host-endpoint", [outb("eth1234", "cali-th-eth1234")]),
        ("cali-from-hep-forward", [inb("eth1234", "cali-fhfw-eth1234")]),
        ("cali-to-hep-forward", [outb("eth1234", "cali-thfw-eth1234")]),
    ]
    assert chains_as_dict(dispatch.host_dispatch_chains(CFG, THREE, "", True))[4:] == [
        ("cali-from-hep-forward-2", [inb("eth2333", "cali-fhfw-eth2333"), inb("eth2444", "cali-fhfw-eth2444")]),
        ("cali-from-hep-forward", [inb("eth1234", "cali-fhfw-eth1234"), inb("eth2+", "cali-from-hep-forward-2")]),
        ("cali-to-hep-forward-2", [outb("eth2333", "cali-thfw-eth2333"), outb("eth2444", "cali-thfw-eth2444")]),
        ("cali-to-hep-forward", [outb("eth1234", "cali-thfw-eth1234"), outb("eth2+", "cali-to-hep-forward-2")]),
    ]


def test_apply_on_forward_with_default_interface():
    assert chains_as_dict(dispatch.host_dispatch_chains(CFG, [], "eth-default", True)) == [
        ("cali-from-host-endpoint", ["--goto cali-fh-eth-default"]),
        ("cali-to-host-endpoint", ["--goto cali-th-eth-default"]),
        ("cali-from-hep-forward", ["--goto cali-fhfw-eth-default"]),
        ("cali-to-hep-forward", ["--goto cali-thfw-eth-default"]),
    ]
    assert chains_as_dict(dispatch.host_dispatch_chains(CFG, THREE, "eth-default", True)) == [
        ("cali-from-host-endpoint-2", [inb("eth2333", "cali-fh-eth2333"), inb("eth2444", "cali-fh-eth2444"),
                                       "--goto cali-fh-eth-default"]),
        ("cali-from-host-endpoint", [inb("eth1234", "cali-fh-eth1234"), inb("eth2+", "cali-from-host-endpoint-2"),
                                     "--goto cali-fh-eth-default"]),
        ("cali-to-host-endpoint-2", [outb("eth2333", "cali-th-eth2333"), outb("eth2444", "cali-th-eth2444"),
                                     "--goto cali-th-eth-default"]),
        ("cali-to-host-endpoint", [outb("eth1234", "cali-th-eth1234"), outb("eth2+", "cali-to-host-endpoint-2"),
                                   "--goto cali-th-eth-default"]),
        ("cali-from-hep-forward-2", [inb("eth2333", "cali-fhfw-eth2333"), inb("eth2444", "cali-fhfw-eth2444"),
                                     "--goto cali-fhfw-eth-default"]),
        ("cali-from-hep-forward", [inb("eth1234", "cali-fhfw-eth1234"), inb("eth2+", "cali-from-hep-forward-2"),
                                   "--goto cali-fhfw-eth-default"]),
        ("cali-to-hep-forward-2", [outb("eth2333", "cali-thfw-eth2333"), outb("eth2444", "cali-thfw-eth2444"),
                                   "--goto cali-thfw-eth-default"]),
        ("cali-to-hep-forward", [outb("eth1234", "cali-thfw-eth1234"), outb("eth2+", "cali-to-hep-forward-2"),
                                 "--goto cali-thfw-eth-default"]),
    ]


SKIP = '-m comment --comment "Skip egress WHEP policy for traffic to local workload"'


def test_star_hep_dispatch_by_table():
    by_table = dispatch.host_dispatch_chains_by_table(
        CFG, normal_ifaces=["eth0", "any-interface-at-all"], untracked_ifaces=["eth0", "any-interface-at-all"],
        pre_dnat_ifaces=["any-interface-at-all"])
    assert chains_as_dict(by_table["raw"]) == [
        ("cali-from-host-endpoint", [inb("eth0", "cali-fh-eth0")]),
        ("cali-to-host-endpoint", [outb("eth0", "cali-th-eth0")]),
    ]
    assert chains_as_dict(by_table["filter"]) == [
        ("cali-from-host-endpoint", [inb("eth0", "cali-fh-eth0"), "--goto cali-fh-any-interface-at-all"]),
        ("cali-to-host-endpoint", [outb("eth0", "cali-th-eth0"), "--goto cali-th-any-interface-at-all"]),
        ("cali-from-hep-forward", [inb("eth0", "cali-fhfw-eth0"), "--goto cali-fhfw-_Nqh4HyA73udmyanQI"]),
        ("cali-to-hep-forward", [outb("eth0", "cali-thfw-eth0"), "--goto cali-thfw-_Nqh4HyA73udmyanQI"]),
    ]
    # Mangle: "from" only for pre-DNAT interfaces; "to" skips traffic to local workloads
    # (one rule per workload prefix) before the "*" default.
    assert chains_as_dict(by_table["mangle"]) == [
        ("cali-from-host-endpoint", ["--goto cali-fh-any-interface-at-all"]),
        ("cali-to-host-endpoint", [outb("eth0", "cali-th-eth0"),
                                   f"{SKIP} --out-interface cali+ --jump RETURN",
                                   f"{SKIP} --out-interface tap+ --jump RETURN",
                                   "--goto cali-th-any-interface-at-all"]),
    ]
    empty = dispatch.host_dispatch_chains_by_table(CFG, [])
    assert [len(c.rules) for t in ("raw", "filter", "mangle") for c in empty[t]] == [0] * 8


# kube-proxy IPVS mode: the endpoint-mark dispatch chains, against dispatch_test.go (endpoint
# mark 0xff00, non-Calico endpoint mark 0x100, marks from Felix's FNV-1 mapper).
IPVS_CFG = CFG.replace(kube_ipvs_support=True, mark_non_cali_endpoint=0x100)
SM_TAIL = ['-m comment --comment "Unknown endpoint" --in-interface cali+ --jump DROP',
           '-m comment --comment "Unknown endpoint" --in-interface tap+ --jump DROP',
           '-m comment --comment "Non-Cali endpoint mark" --jump MARK --set-mark 0x100/0xff00']


def from_mark(mark, target):
    return f"-m mark --mark {mark:#x}/0xff00 --goto {target}"


def mark_dispatch(wl, hep=()):
    from node.felix.rules.epmark import EndpointMarkMapper
    mapper = EndpointMarkMapper(0xFF00, 0x100)
    marks = {n: mapper.mark(n) for n in list(wl) + list(hep)}
    return chains_as_dict(dispatch.endpoint_mark_dispatch_chains(IPVS_CFG, wl, hep, marks))


@pytest.mark.parametrize("names, expected", [
    ([], [("cali-set-endpoint-mark", SM_TAIL), ("cali-from-endpoint-mark", [DROP])]),
    (["cali1234"], [("cali-set-endpoint-mark", [inb("cali1234", "cali-sm-cali1234"), *SM_TAIL]),
                    ("cali-from-endpoint-mark", [from_mark(0xD400, "cali-fw-cali1234"), DROP])]),
    (["cali1234", "cali2333", "cali2444"], [
        ("cali-set-endpoint-mark-wep-2", [inb("cali2333", "cali-sm-cali2333"), inb("cali2444", "cali-sm-cali2444")]),
        ("cali-set-endpoint-mark", [inb("cali1234", "cali-sm-cali1234"),
                                    inb("cali2+", "cali-set-endpoint-mark-wep-2"), *SM_TAIL]),
        ("cali-from-endpoint-mark", [from_mark(0xD400, "cali-fw-cali1234"), from_mark(0xA700, "cali-fw-cali2333"),
                                     from_mark(0x5200, "cali-fw-cali2444"), DROP]),
    ]),
    (["cali11", "cali12", "cali13", "cali21", "cali22"], [
        ("cali-set-endpoint-mark-wep-1", [inb("cali11", "cali-sm-cali11"), inb("cali12", "cali-sm-cali12"),
                                          inb("cali13", "cali-sm-cali13")]),
        ("cali-set-endpoint-mark-wep-2", [inb("cali21", "cali-sm-cali21"), inb("cali22", "cali-sm-cali22")]),
        ("cali-set-endpoint-mark", [inb("cali1+", "cali-set-endpoint-mark-wep-1"),
                                    inb("cali2+", "cali-set-endpoint-mark-wep-2"), *SM_TAIL]),
        ("cali-from-endpoint-mark", [from_mark(0x200, "cali-fw-cali11"), from_mark(0x300, "cali-fw-cali12"),
                                     from_mark(0x400, "cali-fw-cali13"), from_mark(0xF700, "cali-fw-cali21"),
                                     from_mark(0xF400, "cali-fw-cali22"), DROP]),
    ]),
    (["cali1234", "cali1234"], [("cali-set-endpoint-mark", [inb("cali1234", "cali-sm-cali1234"), *SM_TAIL]),
                                ("cali-from-endpoint-mark", [from_mark(0xD400, "cali-fw-cali1234"), DROP])]),
])
def test_endpoint_mark_dispatch(names, expected):
    assert mark_dispatch(names) == expected


def test_endpoint_mark_dispatch_with_host_endpoints():
    """Host endpoints share the root chains after the workloads: their children carry
    ``-hep`` (so a workload bin and a host bin with the same character cannot clash) and
    their marks lead to the forward-ingress ``cali-fhfw-`` chains."""
    got = dict(mark_dispatch(["cali11", "cali12", "cali21"], ["eth1", "eth12", "eth2"]))
    assert got["cali-set-endpoint-mark"] == [inb("cali1+", "cali-set-endpoint-mark-wep-1"),
                                             inb("cali21", "cali-sm-cali21"),
                                             inb("eth1+", "cali-set-endpoint-mark-hep-1"),
                                             inb("eth2", "cali-sm-eth2"), *SM_TAIL]
    assert got["cali-set-endpoint-mark-wep-1"] == [inb("cali11", "cali-sm-cali11"), inb("cali12", "cali-sm-cali12")]
    assert got["cali-set-endpoint-mark-hep-1"] == [inb("eth1", "cali-sm-eth1"), inb("eth12", "cali-sm-eth12")]
    targets = [r.split("--goto ")[1] for r in got["cali-from-endpoint-mark"][:-1]]
    assert targets == ["cali-fw-cali11", "cali-fw-cali12", "cali-fw-cali21", "cali-fhfw-eth1", "cali-fhfw-eth12",
                       "cali-fhfw-eth2"]


def test_endpoint_mark_dispatch_skips_interfaces_without_a_mark_and_uses_deny_action():
    chains = dict(chains_as_dict(dispatch.endpoint_mark_dispatch_chains(
        IPVS_CFG.replace(filter_deny_action="REJECT"), ["cali1", "cali2"], [], {"cali1": 0x200, "cali2": None})))
    assert chains["cali-from-endpoint-mark"] == [
        from_mark(0x200, "cali-fw-cali1"), '-m comment --comment "Unknown interface" --jump REJECT']
    assert chains["cali-set-endpoint-mark"][-3] == (
        '-m comment --comment "Unknown endpoint" --in-interface cali+ --jump REJECT')
