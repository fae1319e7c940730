"""NAT outgoing (nat_test.go), floating IPs, CIDR blocks, DSCP and failsafe chains."""
from node.felix.rules import nat
from node.felix.rules.config import DEFAULT_FAILSAFE_INBOUND, FailsafePort, RulesConfig

CFG = RulesConfig(mark_accept=0x8, mark_pass=0x10, mark_scratch0=0x20, mark_scratch1=0x40, mark_drop=0x80,
                  mark_endpoint=0xFF00, ipip_enabled=True, masq_fully_random=False, snat_fully_random=False)
SETS = "-m set --match-set cali40masq-ipam-pools src -m set ! --match-set cali40network-ip-pools dst"


def bodies(chain):
    return [r.body for r in chain.rules]


def test_active_masquerade():
    chain = nat.nat_outgoing_chain(CFG, True, 4)
    assert chain.name == "cali-nat-outgoing"
    assert bodies(chain) == [f"{SETS} --jump MASQUERADE"]
    assert bodies(nat.nat_outgoing_chain(CFG.replace(masq_fully_random=True), True, 4)) == [
        f"{SETS} --jump MASQUERADE --random-fully"]
    assert bodies(nat.nat_outgoing_chain(CFG, True, 6)) == [
        "-m set --match-set cali60masq-ipam-pools src -m set ! --match-set cali60network-ip-pools dst "
        "--jump MASQUERADE"]


def test_all_hosts_exclusion():
    cfg = CFG.replace(nat_outgoing_exclusions="IPPoolsAndHostIPs")
    assert bodies(nat.nat_outgoing_chain(cfg, True, 4)) == [
        f"{SETS} -m set ! --match-set cali40all-hosts-net dst --jump MASQUERADE"]


def test_explicit_snat_address():
    assert bodies(nat.nat_outgoing_chain(CFG.replace(nat_outgoing_address="192.168.0.1"), True, 4)) == [
        f"{SETS} --jump SNAT --to-source 192.168.0.1"]
    assert bodies(nat.nat_outgoing_chain(
        CFG.replace(nat_outgoing_address="192.168.0.1", snat_fully_random=True), True, 4)) == [
        f"{SETS} --jump SNAT --to-source 192.168.0.1 --random-fully"]


def test_port_range():
    assert bodies(nat.nat_outgoing_chain(CFG.replace(nat_port_range=(99, 100)), True, 4)) == [
        f"{SETS} -p tcp --jump MASQUERADE --to-ports 99-100",
        f"{SETS} -p tcp --jump RETURN",
        f"{SETS} -p udp --jump MASQUERADE --to-ports 99-100",
        f"{SETS} -p udp --jump RETURN",
        f"{SETS} --jump MASQUERADE",
    ]


def test_port_range_with_interface_filter():
    cfg = CFG.replace(nat_port_range=(99, 100), nat_outgoing_interface_filter="cali-123")
    assert bodies(nat.nat_outgoing_chain(cfg, True, 4)) == [
        f"{SETS} -p tcp --out-interface cali-123 --jump MASQUERADE --to-ports 99-100",
        f"{SETS} -p tcp --out-interface cali-123 --jump RETURN",
        f"{SETS} -p udp --out-interface cali-123 --jump MASQUERADE --to-ports 99-100",
        f"{SETS} -p udp --out-interface cali-123 --jump RETURN",
        f"{SETS} --out-interface cali-123 --jump MASQUERADE",
    ]


def test_port_range_with_snat_address():
    cfg = CFG.replace(nat_port_range=(99, 100), nat_outgoing_address="192.168.0.1")
    assert bodies(nat.nat_outgoing_chain(cfg, True, 4)) == [
        f"{SETS} -p tcp --jump SNAT --to-source 192.168.0.1:99-100",
        f"{SETS} -p tcp --jump RETURN",
        f"{SETS} -p udp --jump SNAT --to-source 192.168.0.1:99-100",
        f"{SETS} -p udp --jump RETURN",
        f"{SETS} --jump SNAT --to-source 192.168.0.1",
    ]
    v6 = CFG.replace(nat_port_range=(99, 100), nat_outgoing_address="fd00::1")
    assert bodies(nat.nat_outgoing_chain(v6, True, 6))[0].endswith("--jump SNAT --to-source [fd00::1]:99-100")


def test_inactive_is_empty():
    assert bodies(nat.nat_outgoing_chain(CFG, False, 4)) == []


def test_floating_ips():
    dnats, snats = nat.floating_ip_maps([("172.16.0.1", "10.65.0.9"), ("172.16.0.1", "10.65.0.5"),
                                         ("172.16.0.2", "10.65.0.5")])
    assert dnats == {"172.16.0.1": "10.65.0.5", "172.16.0.2": "10.65.0.5"}
    assert snats == {"10.65.0.5": "172.16.0.1"}
    assert bodies(nat.fip_dnat_chain(dnats)) == [
        "--destination 172.16.0.1 --jump DNAT --to-destination 10.65.0.5",
        "--destination 172.16.0.2 --jump DNAT --to-destination 10.65.0.5",
    ]
    assert nat.fip_snat_chain(CFG, snats).name == "cali-fip-snat"
    assert bodies(nat.fip_snat_chain(CFG, snats)) == [
        "--destination 10.65.0.5 --source 10.65.0.5 --jump SNAT --to-source 172.16.0.1"]
    assert bodies(nat.fip_dnat_chain({})) == [] and nat.fip_dnat_chain({}).name == "cali-fip-dnat"


def test_cidr_block():
    cidrs = ["10.96.0.0/12", "fd00:96::/112", "10.0.0.0/24"]
    chain = nat.cidr_block_chain(CFG, cidrs, 4)
    assert chain.name == "cali-cidr-block"
    assert bodies(chain) == ["--destination 10.0.0.0/24 --jump DROP", "--destination 10.96.0.0/12 --jump DROP"]
    assert bodies(nat.cidr_block_chain(CFG.replace(service_loop_prevention="Reject"), cidrs, 6)) == [
        "--destination fd00:96::/112 --jump REJECT"]
    assert bodies(nat.cidr_block_chain(CFG.replace(service_loop_prevention="Disabled"), cidrs, 4)) == []


def test_egress_dscp():
    chain = nat.egress_dscp_chain([("10.65.0.9", 40), ("10.65.0.5,10.65.0.6", 10)])
    assert chain.name == "cali-egress-dscp"
    # Felix's order (by the joined sources); an endpoint's several addresses get a rule
    # each, since iptables would store one "--source a,b" rule as two with the same ID.
    assert bodies(chain) == ["--source 10.65.0.5 --jump DSCP --set-dscp 10",
                             "--source 10.65.0.6 --jump DSCP --set-dscp 10",
                             "--source 10.65.0.9 --jump DSCP --set-dscp 40"]
    assert bodies(nat.egress_dscp_chain()) == []


def test_default_failsafe_chains():
    cfg = RulesConfig()
    assert cfg.failsafe_inbound_host_ports == DEFAULT_FAILSAFE_INBOUND
    assert bodies(nat.failsafe_in_chain(cfg, "filter", 4)) == [
        "-p tcp -m multiport --destination-ports 22 --jump ACCEPT",
        "-p udp -m multiport --destination-ports 68 --jump ACCEPT",
        "-p tcp -m multiport --destination-ports 179 --jump ACCEPT",
        "-p tcp -m multiport --destination-ports 2379 --jump ACCEPT",
        "-p tcp -m multiport --destination-ports 2380 --jump ACCEPT",
        "-p tcp -m multiport --destination-ports 5473 --jump ACCEPT",
        "-p tcp -m multiport --destination-ports 6443 --jump ACCEPT",
        "-p tcp -m multiport --destination-ports 6666 --jump ACCEPT",
        "-p tcp -m multiport --destination-ports 6667 --jump ACCEPT",
    ]
    assert bodies(nat.failsafe_out_chain(cfg, "filter", 6)) == [
        "-p udp -m multiport --destination-ports 53 --jump ACCEPT",
        "-p udp -m multiport --destination-ports 67 --jump ACCEPT",
        "-p tcp -m multiport --destination-ports 179 --jump ACCEPT",
        "-p tcp -m multiport --destination-ports 2379 --jump ACCEPT",
        "-p tcp -m multiport --destination-ports 2380 --jump ACCEPT",
        "-p tcp -m multiport --destination-ports 5473 --jump ACCEPT",
        "-p tcp -m multiport --destination-ports 6443 --jump ACCEPT",
        "-p tcp -m multiport --destination-ports 6666 --jump ACCEPT",
        "-p tcp -m multiport --destination-ports 6667 --jump ACCEPT",
    ]
    raw_in = bodies(nat.failsafe_in_chain(cfg, "raw", 4))
    assert len(raw_in) == 18
    assert raw_in[9:11] == ["-p udp -m multiport --source-ports 53 --jump ACCEPT",
                            "-p udp -m multiport --source-ports 67 --jump ACCEPT"]


def test_failsafe_entries_with_nets():
    cfg = RulesConfig(failsafe_inbound_host_ports=(FailsafePort("tcp", 22, "10.0.0.0/8"),
                                                   FailsafePort("udp", 53, "fd00::/8"),
                                                   FailsafePort("tcp", 23, "not-a-net")),
                      failsafe_outbound_host_ports=(FailsafePort("udp", 123, "192.168.1.0/24"),))
    assert bodies(nat.failsafe_in_chain(cfg, "raw", 4)) == [
        "-p tcp -m multiport --destination-ports 22 --source 10.0.0.0/8 --jump ACCEPT",
        "-p udp -m multiport --source-ports 123 --source 192.168.1.0/24 --jump ACCEPT",
    ]
    assert bodies(nat.failsafe_in_chain(cfg, "mangle", 6)) == [
        "-p udp -m multiport --destination-ports 53 --source fd00::/8 --jump ACCEPT"]
    assert bodies(nat.failsafe_out_chain(cfg, "raw", 4)) == [
        "-p udp -m multiport --destination-ports 123 --destination 192.168.1.0/24 --jump ACCEPT",
        "-p tcp -m multiport --source-ports 22 --destination 10.0.0.0/8 --jump ACCEPT",
    ]
