"""Static chains and kernel hooks against Felix's static_test.go expectations (rendered to
text) and the rule IDs in felix/fv/cali-iptables-dump.txt."""
import pytest

from node.felix.rules import static
from node.felix.rules.config import FailsafePort, RulesConfig
from node.felix.rules.core import find_chain
from node.felix.tables import Table

# static_test.go's marks: accept 0x10, pass 0x20, scratch0 0x40, scratch1 0x80, drop 0x200.
TEST_MARKS = dict(mark_accept=0x10, mark_pass=0x20, mark_scratch0=0x40, mark_scratch1=0x80,
                  mark_drop=0x200, mark_endpoint=0xFF000)


def make_cfg(**kw):
    base = dict(TEST_MARKS, endpoint_to_host_action="", masq_fully_random=False,
                failsafe_inbound_host_ports=(FailsafePort("tcp", 22, "0.0.0.0/0"),
                                             FailsafePort("tcp", 1022, "10.0.0.0/24"),
                                             FailsafePort("tcp", 1022, "::/0")),
                failsafe_outbound_host_ports=(FailsafePort("tcp", 23, "0.0.0.0/0"),
                                              FailsafePort("tcp", 1023, "0.0.0.0/0")))
    base.update(kw)
    return RulesConfig(**base)


def bodies(chains, name):
    chain = find_chain(chains, name)
    assert chain is not None, f"no chain {name}"
    return [r.body for r in chain.rules]


HEP_ACCEPTED = '-m comment --comment "Host endpoint policy accepted packet."'


@pytest.mark.parametrize("ipv", [4, 6])
def test_default_filter_chains(ipv):
    chains = static.filter_chains(make_cfg(), ipv)
    assert [c.name for c in chains] == ["cali-FORWARD", "cali-INPUT", "cali-wl-to-host",
                                        "cali-failsafe-in", "cali-OUTPUT", "cali-failsafe-out"]
    assert bodies(chains, "cali-FORWARD") == [
        "--jump MARK --set-mark 0/0xe0",
        "-m mark --mark 0/0x10 --jump cali-from-hep-forward",
        "--in-interface cali+ --jump cali-from-wl-dispatch",
        "--out-interface cali+ --jump cali-to-wl-dispatch",
        "--jump cali-to-hep-forward",
        "--jump cali-cidr-block",
    ]
    assert bodies(chains, "cali-INPUT") == [
        "--in-interface cali+ --goto cali-wl-to-host",
        "-m mark --mark 0x10/0x10 --jump ACCEPT",
        "--jump MARK --set-mark 0/0xf0",
        "--jump cali-from-host-endpoint",
        HEP_ACCEPTED + " -m mark --mark 0x10/0x10 --jump ACCEPT",
    ]
    assert bodies(chains, "cali-OUTPUT") == [
        "-m mark --mark 0x10/0x10 --jump ACCEPT",
        "--out-interface cali+ --jump RETURN",
        "--jump MARK --set-mark 0/0xf0",
        "-m conntrack ! --ctstate DNAT --jump cali-to-host-endpoint",
        HEP_ACCEPTED + " -m mark --mark 0x10/0x10 --jump ACCEPT",
    ]
    if ipv == 4:
        assert bodies(chains, "cali-failsafe-in") == [
            "-p tcp -m multiport --destination-ports 22 --source 0.0.0.0/0 --jump ACCEPT",
            "-p tcp -m multiport --destination-ports 1022 --source 10.0.0.0/24 --jump ACCEPT",
        ]
        assert bodies(chains, "cali-failsafe-out") == [
            "-p tcp -m multiport --destination-ports 23 --destination 0.0.0.0/0 --jump ACCEPT",
            "-p tcp -m multiport --destination-ports 1023 --destination 0.0.0.0/0 --jump ACCEPT",
        ]
        assert bodies(chains, "cali-wl-to-host") == [
            "--jump cali-from-wl-dispatch",
            '-m comment --comment "Configured DefaultEndpointToHostAction" --jump RETURN',
        ]
    else:
        assert bodies(chains, "cali-failsafe-in") == [
            "-p tcp -m multiport --destination-ports 1022 --source ::/0 --jump ACCEPT"]
        assert bodies(chains, "cali-failsafe-out") == []
        assert bodies(chains, "cali-wl-to-host") == [
            "-p 58 -m icmp6 --icmpv6-type 130 --jump ACCEPT",
            "-p 58 -m icmp6 --icmpv6-type 131 --jump ACCEPT",
            "-p 58 -m icmp6 --icmpv6-type 132 --jump ACCEPT",
            "-p 58 -m icmp6 --icmpv6-type 133 --jump ACCEPT",
            "-p 58 -m icmp6 --icmpv6-type 135 --jump ACCEPT",
            "-p 58 -m icmp6 --icmpv6-type 136 --jump ACCEPT",
            "--jump cali-from-wl-dispatch",
            '-m comment --comment "Configured DefaultEndpointToHostAction" --jump RETURN',
        ]


@pytest.mark.parametrize("ipv", [4, 6])
def test_default_raw_chains(ipv):
    chains = static.raw_chains(make_cfg(), ipv)
    assert len(chains) == 5
    assert bodies(chains, "cali-OUTPUT") == [
        "--jump MARK --set-mark 0/0xf0",
        "--jump cali-to-host-endpoint",
        "-m mark --mark 0x10/0x10 --jump ACCEPT",
    ]
    if ipv == 4:
        assert bodies(chains, "cali-failsafe-in") == [
            "-p tcp -m multiport --destination-ports 22 --source 0.0.0.0/0 --jump ACCEPT",
            "-p tcp -m multiport --destination-ports 1022 --source 10.0.0.0/24 --jump ACCEPT",
            "-p tcp -m multiport --source-ports 23 --source 0.0.0.0/0 --jump ACCEPT",
            "-p tcp -m multiport --source-ports 1023 --source 0.0.0.0/0 --jump ACCEPT",
        ]
        assert bodies(chains, "cali-failsafe-out") == [
            "-p tcp -m multiport --destination-ports 23 --destination 0.0.0.0/0 --jump ACCEPT",
            "-p tcp -m multiport --destination-ports 1023 --destination 0.0.0.0/0 --jump ACCEPT",
            "-p tcp -m multiport --source-ports 22 --destination 0.0.0.0/0 --jump ACCEPT",
            "-p tcp -m multiport --source-ports 1022 --destination 10.0.0.0/24 --jump ACCEPT",
        ]
    else:
        assert bodies(chains, "cali-failsafe-in") == [
            "-p tcp -m multiport --destination-ports 1022 --source ::/0 --jump ACCEPT"]
        assert bodies(chains, "cali-failsafe-out") == [
            "-p tcp -m multiport --source-ports 1022 --destination ::/0 --jump ACCEPT"]


@pytest.mark.parametrize("deny, verdict", [("DROP", "--jump DROP"), ("REJECT", "--jump REJECT")])
@pytest.mark.parametrize("ipv", [4, 6])
def test_raw_prerouting(deny, verdict, ipv):
    assert bodies(static.raw_chains(make_cfg(filter_deny_action=deny), ipv), "cali-PREROUTING") == [
        "--jump MARK --set-mark 0/0xf0",
        "--in-interface cali+ --jump MARK --set-mark 0x40/0x40",
        "-m mark --mark 0x40/0x40 --jump cali-rpf-skip",
        "-m mark --mark 0x40/0x40 -m rpfilter --invert --validmark " + verdict,
        "-m mark --mark 0/0x40 --jump cali-from-host-endpoint",
        "-m mark --mark 0x10/0x10 --jump ACCEPT",
    ]


def test_raw_prerouting_openstack_dhcp_special_case():
    cfg = make_cfg(openstack_special_cases=True, filter_deny_action="REJECT")
    assert bodies(static.raw_chains(cfg, 4), "cali-PREROUTING") == [
        "--jump MARK --set-mark 0/0xf0",
        "--in-interface cali+ --jump MARK --set-mark 0x40/0x40",
        "-m mark --mark 0x40/0x40 --jump cali-rpf-skip",
        "-p udp --source 0.0.0.0 -m multiport --source-ports 68 -m multiport --destination-ports 67 --jump ACCEPT",
        "-m mark --mark 0x40/0x40 -m rpfilter --invert --validmark --jump REJECT",
        "-m mark --mark 0/0x40 --jump cali-from-host-endpoint",
        "-m mark --mark 0x10/0x10 --jump ACCEPT",
    ]
    assert "-p udp --source 0.0.0.0" not in " ".join(bodies(static.raw_chains(cfg, 6), "cali-PREROUTING"))


def test_openstack_workload_to_host():
    cfg = make_cfg(workload_iface_prefixes=("tap",), openstack_special_cases=True,
                   openstack_metadata_ip="10.0.0.1", openstack_metadata_port=1234)
    assert bodies(static.filter_chains(cfg, 4), "cali-wl-to-host") == [
        "-p tcp --destination 10.0.0.1 -m multiport --destination-ports 1234 --jump ACCEPT",
        "-p udp -m multiport --source-ports 68 -m multiport --destination-ports 67 --jump ACCEPT",
        "-p udp -m multiport --destination-ports 53 --jump ACCEPT",
        "--jump cali-from-wl-dispatch",
        '-m comment --comment "Configured DefaultEndpointToHostAction" --jump RETURN',
    ]
    assert bodies(static.filter_chains(cfg, 6), "cali-wl-to-host")[6:] == [
        "-p udp -m multiport --source-ports 546 -m multiport --destination-ports 547 --jump ACCEPT",
        "-p udp -m multiport --destination-ports 53 --jump ACCEPT",
        "--jump cali-from-wl-dispatch",
        '-m comment --comment "Configured DefaultEndpointToHostAction" --jump RETURN',
    ]
    assert bodies(static.nat_chains(cfg, 4), "cali-PREROUTING") == [
        "--jump cali-fip-dnat",
        "-p tcp -m multiport --destination-ports 80 --destination 169.254.169.254/32 "
        "--jump DNAT --to-destination 10.0.0.1:1234",
    ]
    assert bodies(static.nat_chains(cfg, 6), "cali-PREROUTING") == ["--jump cali-fip-dnat"]


@pytest.mark.parametrize("ipv", [4, 6])
def test_mangle_chains(ipv):
    chains = static.mangle_chains(make_cfg(), ipv)
    assert [c.name for c in chains] == ["cali-failsafe-in", "cali-failsafe-out", "cali-PREROUTING",
                                        "cali-POSTROUTING"]
    assert bodies(chains, "cali-PREROUTING") == [
        "-m conntrack --ctstate RELATED,ESTABLISHED --jump ACCEPT",
        "-m mark --mark 0x10/0x10 --jump ACCEPT",
        "--jump cali-from-host-endpoint",
        HEP_ACCEPTED + " -m mark --mark 0x10/0x10 --jump ACCEPT",
    ]
    assert bodies(chains, "cali-POSTROUTING") == [
        f'-m comment --comment "set dscp for traffic leaving cluster." '
        f"-m set --match-set cali{ipv}0dscp-src-net src -m set ! --match-set cali{ipv}0network-ip-pools dst "
        f"-m set ! --match-set cali{ipv}0this-host dst --jump cali-egress-dscp",
        "-m mark --mark 0x10/0x10 --jump RETURN",
        "--jump MARK --set-mark 0/0xf0",
        "-m conntrack --ctstate DNAT --jump cali-to-host-endpoint",
        HEP_ACCEPTED + " -m mark --mark 0x10/0x10 --jump RETURN",
    ]


def test_mangle_return_allow_action():
    chains = static.mangle_chains(make_cfg(mangle_allow_action="RETURN"), 4)
    assert bodies(chains, "cali-PREROUTING") == [
        "-m conntrack --ctstate RELATED,ESTABLISHED --jump RETURN",
        "-m mark --mark 0x10/0x10 --jump RETURN",
        "--jump cali-from-host-endpoint",
        HEP_ACCEPTED + " -m mark --mark 0x10/0x10 --jump RETURN",
    ]


@pytest.mark.parametrize("ipv", [4, 6])
def test_nat_chains(ipv):
    chains = static.nat_chains(make_cfg(), ipv)
    assert [c.name for c in chains] == ["cali-PREROUTING", "cali-POSTROUTING", "cali-OUTPUT"]
    assert bodies(chains, "cali-PREROUTING") == ["--jump cali-fip-dnat"]
    assert bodies(chains, "cali-POSTROUTING") == ["--jump cali-fip-snat", "--jump cali-nat-outgoing"]
    assert bodies(chains, "cali-OUTPUT") == ["--jump cali-fip-dnat"]


@pytest.mark.parametrize("deny, word, verdict", [("DROP", "Drop", "DROP"), ("REJECT", "Reject", "REJECT")])
def test_ipip_enabled(deny, word, verdict):
    cfg = make_cfg(ipip_enabled=True, ipip_tunnel_address="10.0.0.1", filter_deny_action=deny)
    v4 = static.filter_chains(cfg, 4)
    assert bodies(v4, "cali-INPUT") == [
        '-m comment --comment "Allow IPIP packets from Calico hosts" '
        "-p 4 -m set --match-set cali40all-hosts-net src -m addrtype --dst-type LOCAL --jump ACCEPT",
        f'-m comment --comment "{word} IPIP packets from non-Calico hosts" -p 4 --jump {verdict}',
        "--in-interface cali+ --goto cali-wl-to-host",
        "-m mark --mark 0x10/0x10 --jump ACCEPT",
        "--jump MARK --set-mark 0/0xf0",
        "--jump cali-from-host-endpoint",
        HEP_ACCEPTED + " -m mark --mark 0x10/0x10 --jump ACCEPT",
    ]
    assert bodies(v4, "cali-OUTPUT") == [
        "-m mark --mark 0x10/0x10 --jump ACCEPT",
        "--out-interface cali+ --jump RETURN",
        '-m comment --comment "Allow IPIP packets to other Calico hosts" '
        "-p 4 -m set --match-set cali40all-hosts-net dst -m addrtype --src-type LOCAL --jump ACCEPT",
        "--jump MARK --set-mark 0/0xf0",
        "-m conntrack ! --ctstate DNAT --jump cali-to-host-endpoint",
        HEP_ACCEPTED + " -m mark --mark 0x10/0x10 --jump ACCEPT",
    ]
    # IPv6 is unaffected.
    assert bodies(static.filter_chains(cfg, 6), "cali-INPUT")[0] == "--in-interface cali+ --goto cali-wl-to-host"
    assert bodies(static.nat_chains(cfg, 4), "cali-POSTROUTING") == [
        "--jump cali-fip-snat", "--jump cali-nat-outgoing",
        "--out-interface tunl0 -m addrtype ! --src-type LOCAL --limit-iface-out "
        "-m addrtype --src-type LOCAL --jump MASQUERADE",
    ]
    assert bodies(static.nat_chains(cfg, 6), "cali-POSTROUTING") == [
        "--jump cali-fip-snat", "--jump cali-nat-outgoing"]


def test_ipip_without_tunnel_address_has_no_masquerade():
    cfg = make_cfg(ipip_enabled=True)
    assert bodies(static.nat_chains(cfg, 4), "cali-POSTROUTING") == [
        "--jump cali-fip-snat", "--jump cali-nat-outgoing"]


def test_vxlan_v4_enabled():
    cfg = make_cfg(ipip_enabled=True, ipip_tunnel_address="10.0.0.1", vxlan_enabled=True,
                   vxlan_tunnel_address="10.0.0.1")
    raw = static.raw_chains(cfg, 4)
    assert bodies(raw, "cali-PREROUTING")[:3] == [
        "--jump MARK --set-mark 0/0xf0",
        "-p udp --dport 4789 --jump NOTRACK",
        "--in-interface cali+ --jump MARK --set-mark 0x40/0x40",
    ]
    assert bodies(raw, "cali-OUTPUT") == [
        "--jump MARK --set-mark 0/0xf0",
        "--jump cali-to-host-endpoint",
        "-p udp --dport 4789 --jump NOTRACK",
        "-m mark --mark 0x10/0x10 --jump ACCEPT",
    ]
    # No NOTRACK for IPv6 when only v4 VXLAN is on.
    assert "-p udp --dport 4789 --jump NOTRACK" not in bodies(static.raw_chains(cfg, 6), "cali-OUTPUT")
    # Calico's "with IPv4 VXLAN enabled" NAT postrouting: each tunnel's UDP masquerade
    # keeps off the VXLAN port (issue 12244), then the catch-all.
    assert bodies(static.nat_chains(cfg, 4), "cali-POSTROUTING")[2:] == [
        "-p 17 --out-interface tunl0 -m addrtype ! --src-type LOCAL --limit-iface-out "
        "-m addrtype --src-type LOCAL --jump MASQUERADE --to-ports 4790-65535",
        "--out-interface tunl0 -m addrtype ! --src-type LOCAL --limit-iface-out "
        "-m addrtype --src-type LOCAL --jump MASQUERADE",
        "-p 17 --out-interface vxlan.calico -m addrtype ! --src-type LOCAL --limit-iface-out "
        "-m addrtype --src-type LOCAL --jump MASQUERADE --to-ports 4790-65535",
        "--out-interface vxlan.calico -m addrtype ! --src-type LOCAL --limit-iface-out "
        "-m addrtype --src-type LOCAL --jump MASQUERADE",
    ]
    # "with a high custom VXLAN port": the wider range below it.
    high = bodies(static.nat_chains(cfg.replace(vxlan_port=60000), 4), "cali-POSTROUTING")
    assert high[2].endswith("--jump MASQUERADE --to-ports 1024-59999") and high[3].endswith("--jump MASQUERADE")
    # IPv4 VXLAN does not touch the IPv6 chain.
    assert all("--to-ports" not in b for b in bodies(static.nat_chains(cfg, 6), "cali-POSTROUTING"))

    inp = bodies(static.filter_chains(cfg, 4), "cali-INPUT")
    assert inp[2:4] == [
        '-m comment --comment "Allow IPv4 VXLAN packets from allowed hosts" -p 17 '
        "-m multiport --destination-ports 4789 -m set --match-set cali40all-vxlan-net src "
        "-m addrtype --dst-type LOCAL --jump ACCEPT",
        '-m comment --comment "Drop IPv4 VXLAN packets from non-allowed hosts" -p 17 '
        "-m multiport --destination-ports 4789 -m addrtype --dst-type LOCAL --jump DROP",
    ]


def test_masquerade_port_range_excluding_the_vxlan_port():
    assert static.masq_port_range_excluding(4789) == "4790-65535"
    assert static.masq_port_range_excluding(60000) == "1024-59999"
    assert static.masq_port_range_excluding(34280) == "1024-34279"
    assert static.masq_port_range_excluding(1000) == "1001-65535"
    assert static.masq_port_range_excluding(0) == "" and static.masq_port_range_excluding(70000) == ""


def test_vxlan_v6_enabled():
    cfg = make_cfg(vxlan_enabled_v6=True, filter_deny_action="REJECT")
    assert bodies(static.raw_chains(cfg, 6), "cali-PREROUTING")[1] == "-p udp --dport 4789 --jump NOTRACK"
    assert bodies(static.nat_chains(cfg, 6), "cali-POSTROUTING") == [
        "--jump cali-fip-snat", "--jump cali-nat-outgoing"]
    cfg = cfg.replace(vxlan_tunnel_address_v6="dead:beef::1")
    assert bodies(static.nat_chains(cfg, 6), "cali-POSTROUTING")[2:] == [
        "-p 17 --out-interface vxlan-v6.calico -m addrtype ! --src-type LOCAL --limit-iface-out "
        "-m addrtype --src-type LOCAL --jump MASQUERADE --to-ports 4790-65535",
        "--out-interface vxlan-v6.calico -m addrtype ! --src-type LOCAL --limit-iface-out "
        "-m addrtype --src-type LOCAL --jump MASQUERADE"]
    assert bodies(static.filter_chains(cfg, 6), "cali-INPUT")[:2] == [
        '-m comment --comment "Allow IPv6 VXLAN packets from allowed hosts" -p 17 '
        "-m multiport --destination-ports 4789 -m set --match-set cali60all-vxlan-net src "
        "-m addrtype --dst-type LOCAL --jump ACCEPT",
        '-m comment --comment "Reject IPv6 VXLAN packets from non-allowed hosts" -p 17 '
        "-m multiport --destination-ports 4789 -m addrtype --dst-type LOCAL --jump REJECT",
    ]
    assert bodies(static.filter_chains(cfg, 6), "cali-OUTPUT")[2] == (
        '-m comment --comment "Allow IPv6 VXLAN packets to other allowed hosts" -p 17 '
        "-m multiport --destination-ports 4789 -m addrtype --src-type LOCAL "
        "-m set --match-set cali60all-vxlan-net dst --jump ACCEPT")


@pytest.mark.parametrize("ipv", [4, 6])
def test_return_allow_action(ipv):
    chains = static.filter_chains(make_cfg(filter_allow_action="RETURN", mangle_allow_action="RETURN"), ipv)
    assert bodies(chains, "cali-INPUT") == [
        "--in-interface cali+ --goto cali-wl-to-host",
        "-m mark --mark 0x10/0x10 --jump RETURN",
        "--jump MARK --set-mark 0/0xf0",
        "--jump cali-from-host-endpoint",
        HEP_ACCEPTED + " -m mark --mark 0x10/0x10 --jump RETURN",
    ]
    assert bodies(chains, "cali-OUTPUT") == [
        "-m mark --mark 0x10/0x10 --jump RETURN",
        "--out-interface cali+ --jump RETURN",
        "--jump MARK --set-mark 0/0xf0",
        "-m conntrack ! --ctstate DNAT --jump cali-to-host-endpoint",
        HEP_ACCEPTED + " -m mark --mark 0x10/0x10 --jump RETURN",
    ]
    assert [r.body for r in static.filter_forward_append_rules(
        make_cfg(filter_allow_action="RETURN"))][0].endswith("--jump RETURN")


@pytest.mark.parametrize("action, verdict", [("DROP", "DROP"), ("RETURN", "RETURN"),
                                             ("ACCEPT", "ACCEPT"), ("REJECT", "REJECT")])
def test_default_endpoint_to_host_action(action, verdict):
    assert bodies(static.filter_chains(make_cfg(endpoint_to_host_action=action), 4), "cali-wl-to-host")[-1] == \
        f'-m comment --comment "Configured DefaultEndpointToHostAction" --jump {verdict}'


@pytest.mark.parametrize("v4, v6, ipv", [(True, False, 4), (True, False, 6), (False, True, 4),
                                         (False, True, 6), (True, True, 4), (True, True, 6)])
def test_wireguard(v4, v6, ipv):
    cfg = make_cfg(wireguard_enabled=v4, wireguard_enabled_v6=v6, mark_wireguard=0x100000,
                   wireguard_encrypt_host_traffic=True)
    inp = bodies(static.filter_chains(cfg, ipv), "cali-INPUT")
    wg = []
    if ipv == 4 and v4:
        wg = ['-m comment --comment "Allow incoming IPv4 Wireguard packets" -p 17 '
              "-m multiport --destination-ports 51820 -m addrtype --dst-type LOCAL --jump ACCEPT"]
    if ipv == 6 and v6:
        wg = ['-m comment --comment "Allow incoming IPv6 Wireguard packets" -p 17 '
              "-m multiport --destination-ports 51821 -m addrtype --dst-type LOCAL --jump ACCEPT"]
    assert inp[:len(wg) + 1] == wg + ["--in-interface cali+ --goto cali-wl-to-host"]
    raw = static.raw_chains(cfg, ipv)
    assert bodies(raw, "cali-PREROUTING") == [
        "--jump MARK --set-mark 0/0xf0",
        "--jump cali-wireguard-incoming-mark",
        "--in-interface cali+ --jump MARK --set-mark 0x40/0x40",
        "-m mark --mark 0x40/0x40 --jump cali-rpf-skip",
        "-m mark --mark 0x40/0x40 -m rpfilter --invert --validmark --jump DROP",
        "-m mark --mark 0/0x40 --jump cali-from-host-endpoint",
        "-m mark --mark 0x10/0x10 --jump ACCEPT",
    ]
    assert bodies(raw, "cali-wireguard-incoming-mark") == [
        "--in-interface lo --jump RETURN",
        "--in-interface wireguard.cali --jump RETURN",
        "--in-interface wg-v6.cali --jump RETURN",
        "--in-interface cali+ --jump RETURN",
        "--jump MARK --set-mark 0x100000/0x100000",
    ]
    nat_post = bodies(static.nat_chains(cfg, ipv), "cali-POSTROUTING")
    dev = "wireguard.cali" if ipv == 4 else "wg-v6.cali"
    if (ipv == 4 and v4) or (ipv == 6 and v6):
        assert nat_post[2] == (f"--out-interface {dev} -m addrtype ! --src-type LOCAL --limit-iface-out "
                               "-m addrtype --src-type LOCAL --jump MASQUERADE")
    else:
        assert len(nat_post) == 2


def test_kernel_hooks():
    cfg = RulesConfig()
    raw = static.kernel_hooks(cfg, "raw")
    assert {k: [r.body for r in v] for k, v in raw.inserts.items()} == {
        "PREROUTING": ["--jump cali-PREROUTING"], "OUTPUT": ["--jump cali-OUTPUT"]}
    assert raw.appends == {}
    nat = static.kernel_hooks(cfg, "nat")
    assert set(nat.inserts) == {"PREROUTING", "OUTPUT"}
    assert [r.body for r in nat.appends["POSTROUTING"]] == ["--jump cali-POSTROUTING"]
    filt = static.kernel_hooks(cfg, "filter")
    assert [r.body for r in filt.appends["FORWARD"]] == [
        '-m comment --comment "Policy explicitly accepted packet." -m mark --mark 0x10000/0x10000 --jump ACCEPT',
        "--jump MARK --set-mark 0x10000/0x10000",
    ]
    assert set(static.kernel_hooks(cfg, "mangle").inserts) == {"PREROUTING", "POSTROUTING"}


# --------------------------------------------------------------------------------------
# Rule IDs of the default-marks static chains, from felix/fv/cali-iptables-dump.txt.
# That node ran with VXLAN on (tunnel address set), DefaultEndpointToHostAction=ACCEPT and
# --random-fully support. Its dump omits the two "Allow ... VXLAN" rules of cali-INPUT and
# cali-OUTPUT, but every rule after them carries the dump's ID, which (as IDs chain)
# also pins the omitted rules' text. Mangle cali-POSTROUTING is skipped: v3.32 added the
# DSCP rule at its top, so all its IDs differ from the older dump (see test_felix_rules_core).

DUMP_CFG = RulesConfig(vxlan_enabled=True, vxlan_tunnel_address="10.65.0.1",
                       endpoint_to_host_action="ACCEPT")


def ids(chains, name):
    return list(find_chain(chains, name).rule_ids)


def test_dump_raw_ids():
    raw = static.raw_chains(DUMP_CFG, 4)
    assert ids(raw, "cali-OUTPUT") == ["clI8WObfCl4yhr60", "ZbkN6P8OdRcBRPpU", "ry5_UEpt1OaPPCxO",
                                       "MGhICIksKDnYMIkW"]
    assert ids(raw, "cali-PREROUTING") == ["DQ6LK2guiBRMyrLK", "sIsu2aAqNN6K3YYn", "W0qKAga6QivxLxL1",
                                           "QOYCZUivPyJL6Dp1", "uvipz_NmQPrGYnTB", "pj4jqF0K2OCNLmzX",
                                           "Jefg6QI5khJcHnVl"]


def test_dump_nat_ids():
    nat = static.nat_chains(DUMP_CFG, 4)
    assert ids(nat, "cali-OUTPUT") == ["GBTAv2p5CwevEyJm"]
    assert ids(nat, "cali-PREROUTING") == ["r6XmIziWUJsdOK6Z"]
    # The dump's Felix predates the UDP masquerade that keeps off the VXLAN port: without
    # it (no VXLAN port to exclude) the IDs are the dump's; with it, the catch-all's ID
    # moves, as rule IDs chain on the rules before them.
    old = ids(static.nat_chains(DUMP_CFG.replace(vxlan_port=0), 4), "cali-POSTROUTING")
    assert old == ["Z-c7XtVd2Bq7s_hA", "nYKhEzDlr11Jccal", "e9dnSgSVNmIcpVhP"]
    assert ids(nat, "cali-POSTROUTING") == ["Z-c7XtVd2Bq7s_hA", "nYKhEzDlr11Jccal", "k5tPXc7Lt1qvBU9K",
                                            "ZUy_r64wRDl4JBc4"]


def test_dump_filter_ids():
    f = static.filter_chains(DUMP_CFG, 4)
    assert ids(f, "cali-FORWARD") == ["W_vvds1Nw3n9QE2f", "ZfgmjuiLaA8Pg0kp", "tAzwBLPaV-j53OOZ",
                                      "4Z0Pf0byo05NFe-P", "hQ7Oc16wmUtLuneJ", "rnKNH2WxGcRQcIlD"]
    assert ids(f, "cali-INPUT")[1:] == ["EDCNTTxYfggApx8C", "H03xYXARh4e8pwd4", "MN6K3isIWBigb1Va",
                                        "aKDQAoV0P_FFAIwV", "vIx3xkWzuvLW9fr4", "5W9XghKma9wuz47x"]
    out = ids(f, "cali-OUTPUT")
    assert out[:2] + out[3:] == ["Mq1_rAdXXH3YkrzW", "69FkRTJDvD5Vu6Vl", "6T0hFtymUtXMOfEV",
                                 "IpTGXsDHURPUaLjJ", "wgnULo2gucg1umsA"]
    assert ids(f, "cali-wl-to-host") == ["Ee9Sbo10IpVujdIY", "nSZbcOoG1xPONxb8"]
    # The IDs after the omitted rules only match because those rules are there.
    plain = static.filter_chains(DUMP_CFG.replace(vxlan_enabled=False), 4)
    assert ids(plain, "cali-OUTPUT")[2] != "6T0hFtymUtXMOfEV"


def test_dump_mangle_prerouting_ids():
    assert ids(static.mangle_chains(DUMP_CFG, 4), "cali-PREROUTING") == [
        "6BJqBjBC7crtA-7-", "KX7AGNd6rMcDUai6", "wNH7KsA3ILKJBsY9", "Cg96MgVuoPm7UMRo"]


@pytest.mark.parametrize("mode", ["insert", "append"])
def test_dump_hook_ids_in_tables(mode):
    expected = {
        "raw": {"PREROUTING": ["6gwbT8clXdHdC1b1"], "OUTPUT": ["tVnHkvAo15HuiPy0"]},
        "nat": {"PREROUTING": ["6gwbT8clXdHdC1b1"], "OUTPUT": ["tVnHkvAo15HuiPy0"],
                "POSTROUTING": ["0i8pjzKKPyA34aQD"]},
        "filter": {"INPUT": ["Cz_u1IQiXIMmKD4c"], "OUTPUT": ["tVnHkvAo15HuiPy0"],
                   "FORWARD": ["wUHhoiAYhphO9Mso", "S93hcgKJrXEqnTfs", "mp77cMpurHhyjLrM"]},
        "mangle": {"PREROUTING": ["6gwbT8clXdHdC1b1"], "POSTROUTING": ["O3lYWMrLQYEMJtB5"]},
    }
    for table, per_chain in expected.items():
        t = Table(table, 4, insert_mode=mode)
        hooks = static.kernel_hooks(DUMP_CFG, table)
        t.set_hooks(hooks.inserts, hooks.appends)
        for kernel_chain, want in per_chain.items():
            assert t.expected_kernel_chain_ids(kernel_chain) == want


# kube-proxy IPVS mode, as static_test.go configures it: endpoint mark 0xff000, the
# non-Calico endpoint mark 0x1000, NodePorts 30030-30040.
def ipvs_cfg(**kw):
    return make_cfg(kube_ipvs_support=True, mark_non_cali_endpoint=0x1000,
                    kube_node_port_ranges=((30030, 30040),), **kw)


@pytest.mark.parametrize("ipv", [4, 6])
def test_ipvs_forward_check_and_forward_endpoint_mark_chains(ipv):
    chains = static.filter_chains(ipvs_cfg(), ipv)
    assert [c.name for c in chains] == ["cali-FORWARD", "cali-INPUT", "cali-wl-to-host", "cali-failsafe-in",
                                        "cali-forward-check", "cali-OUTPUT", "cali-failsafe-out",
                                        "cali-forward-endpoint-mark"]
    this_host = f"cali{ipv}0this-host"
    nodeport = '-m comment --comment "To kubernetes NodePort service" '
    assert bodies(chains, "cali-forward-check") == [
        "-m conntrack --ctstate RELATED,ESTABLISHED --jump RETURN",
        nodeport + f"-p tcp -m multiport --destination-ports 30030:30040 -m set --match-set {this_host} dst "
                   "--goto cali-set-endpoint-mark",
        nodeport + f"-p udp -m multiport --destination-ports 30030:30040 -m set --match-set {this_host} dst "
                   "--goto cali-set-endpoint-mark",
        f'-m comment --comment "To kubernetes service" -m set ! --match-set {this_host} dst '
        "--jump cali-set-endpoint-mark",
    ]
    assert bodies(chains, "cali-forward-endpoint-mark") == [
        "-m mark ! --mark 0x1000/0xff000 --jump cali-from-endpoint-mark",
        "--out-interface cali+ --jump cali-to-wl-dispatch",
        "--jump cali-to-hep-forward",
        "--jump MARK --set-mark 0/0xff000",
        '-m comment --comment "Policy explicitly accepted packet." -m mark --mark 0x10/0x10 --jump ACCEPT',
    ]
    # Without IPVS neither chain exists.
    plain = [c.name for c in static.filter_chains(make_cfg(), ipv)]
    assert "cali-forward-check" not in plain and "cali-forward-endpoint-mark" not in plain


def test_ipvs_node_port_ranges_split_over_multiport_limits():
    """Each multiport match holds at most 15 slots (a range takes two), one tcp and one
    udp rule per split, as Felix's SplitPortList does (static_test.go's nine ranges)."""
    ranges = tuple((30030 + 100 * i, 30040 + 100 * i) for i in range(9))
    rules = bodies(static.filter_chains(ipvs_cfg().replace(kube_node_port_ranges=ranges), 4),
                   "cali-forward-check")
    first = ",".join(f"{30030 + 100 * i}:{30040 + 100 * i}" for i in range(7))
    second = "30730:30740,30830:30840"
    assert [r.split("--destination-ports ")[1].split()[0] for r in rules[1:5]] == [first, first, second, second]
    assert [" -p tcp " in r for r in rules[1:5]] == [True, False, True, False]


@pytest.mark.parametrize("deny, word, verdict", [("DROP", "Drop", "DROP"), ("REJECT", "Reject", "REJECT")])
def test_ipvs_input_and_output_chains_with_ipip(deny, word, verdict):
    """static_test.go's expInputChainIPIPV4IPVS / expOutputChainIPIPV4IPVS (and v6)."""
    cfg = ipvs_cfg(ipip_enabled=True, ipip_tunnel_address="10.0.0.1", filter_deny_action=deny)
    ipvs_input = ["--jump MARK --set-mark 0/0xff000", "--jump cali-forward-check",
                  "-m mark ! --mark 0/0xff000 --jump RETURN"]
    host_input = ["--in-interface cali+ --goto cali-wl-to-host",
                  "-m mark --mark 0x10/0x10 --jump ACCEPT",
                  "--jump MARK --set-mark 0/0xf0",
                  "--jump cali-from-host-endpoint",
                  HEP_ACCEPTED + " -m mark --mark 0x10/0x10 --jump ACCEPT"]
    assert bodies(static.filter_chains(cfg, 4), "cali-INPUT") == [
        '-m comment --comment "Allow IPIP packets from Calico hosts" '
        "-p 4 -m set --match-set cali40all-hosts-net src -m addrtype --dst-type LOCAL --jump ACCEPT",
        f'-m comment --comment "{word} IPIP packets from non-Calico hosts" -p 4 --jump {verdict}',
        *ipvs_input, *host_input]
    assert bodies(static.filter_chains(cfg, 6), "cali-INPUT") == [*ipvs_input, *host_input]
    host_output = ["--jump MARK --set-mark 0/0xf0",
                   "-m conntrack ! --ctstate DNAT --jump cali-to-host-endpoint",
                   HEP_ACCEPTED + " -m mark --mark 0x10/0x10 --jump ACCEPT"]
    head = ["-m mark --mark 0x10/0x10 --jump ACCEPT",
            "-m mark ! --mark 0/0xff000 --goto cali-forward-endpoint-mark",
            "--out-interface cali+ --jump RETURN"]
    assert bodies(static.filter_chains(cfg, 4), "cali-OUTPUT") == [
        *head,
        '-m comment --comment "Allow IPIP packets to other Calico hosts" '
        "-p 4 -m set --match-set cali40all-hosts-net dst -m addrtype --src-type LOCAL --jump ACCEPT",
        *host_output]
    assert bodies(static.filter_chains(cfg, 6), "cali-OUTPUT") == [*head, *host_output]


@pytest.mark.parametrize("ipvs", [True, False])
def test_mangle_postrouting_skips_ipvs_forwarded_traffic(ipvs):
    """static_test.go's checkManglePostrouting: with IPVS, a packet carrying an endpoint
    mark is forwarded traffic, not the host's."""
    cfg = ipvs_cfg() if ipvs else make_cfg()
    rules = bodies(static.mangle_chains(cfg, 4), "cali-POSTROUTING")
    assert rules[1:] == [
        "-m mark --mark 0x10/0x10 --jump RETURN",
        *(["-m mark ! --mark 0/0xff000 --jump RETURN"] if ipvs else []),
        "--jump MARK --set-mark 0/0xf0",
        "-m conntrack --ctstate DNAT --jump cali-to-host-endpoint",
        HEP_ACCEPTED + " -m mark --mark 0x10/0x10 --jump RETURN",
    ]


def test_ipvs_marks_from_the_mark_mask():
    """Felix takes the non-Calico endpoint mark from the lowest endpoint bit."""
    cfg = RulesConfig.from_mark_mask(0xFFFF0000, kube_ipvs_support=True)
    assert (cfg.mark_endpoint, cfg.mark_non_cali_endpoint) == (0xFFE00000, 0x200000)
    assert RulesConfig.from_mark_mask(0xFFFF0000).mark_non_cali_endpoint == 0
    one_bit = RulesConfig.from_mark_mask(0x3F, kube_ipvs_support=True)
    assert (one_bit.mark_endpoint, one_bit.mark_non_cali_endpoint) == (0x20, 0x20)
