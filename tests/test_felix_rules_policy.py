"""Policy and profile rendering against Felix's policy_test.go vectors.

policy_test.go renders with marks accept 0x80, pass 0x100, scratch0 0x200, scratch1 0x400,
drop 0x800 and prints rules with ``RenderAppend(rule, "test", "")`` (no hash comment);
the vectors below are those strings.
"""
import pytest

from node.felix.rules import policy
from node.felix.rules.config import RulesConfig
from node.felix.rules.core import render_append
from node.felix.types import (
    KIND_GLOBAL_NETWORK_POLICY, KIND_KUBERNETES_NETWORK_POLICY, KIND_NETWORK_POLICY,
    KIND_STAGED_GLOBAL_NETWORK_POLICY, ICMPMatch, ParsedRule, Policy, PolicyID, PortRange, Profile)

CFG = RulesConfig(mark_accept=0x80, mark_pass=0x100, mark_scratch0=0x200, mark_scratch1=0x400,
                  mark_drop=0x800, mark_endpoint=0xFF000, ipip_enabled=True)
FOO = PolicyID("default.foo", kind=KIND_GLOBAL_NETWORK_POLICY)


def P(a, b=None):
    return PortRange(a, a if b is None else b)


def render(rules, chain="test"):
    return [render_append(r, chain) for r in rules]


def convert(rule, ipv=4, cfg=CFG, owner=FOO, tier="default"):
    return policy.rule_to_iptables_rules(cfg, rule, ipv, owner, tier)


RANGES8 = (P(1, 2), P(3, 4), P(5, 6), P(7, 8), P(9, 10), P(11, 12), P(13, 14), P(15, 16))

# (ip version, rule fields, expected match) — policy_test.go's ruleTestData.
RULE_MATCHES = [
    (4, {}, ""),
    (4, dict(protocol="tcp"), "-p tcp"),
    (4, dict(protocol=8), "-p 8"),
    (4, dict(src_net=("10.0.0.0/16",)), "--source 10.0.0.0/16"),
    (4, dict(src_ip_set_ids=("ipsetid1",)), "-m set --match-set cali40ipsetid1 src"),
    (4, dict(src_ip_set_ids=("ipsetid1", "ipsetid2")),
     "-m set --match-set cali40ipsetid1 src -m set --match-set cali40ipsetid2 src"),
    (4, dict(src_ports=(P(10, 12),)), "-m multiport --source-ports 10:12"),
    (4, dict(src_ports=(P(10, 12), P(20, 30), P(8080))), "-m multiport --source-ports 10:12,20:30,8080"),
    (4, dict(icmp=ICMPMatch(10)), "-m icmp --icmp-type 10"),
    (4, dict(icmp=ICMPMatch(10, 12)), "-m icmp --icmp-type 10/12"),
    (6, dict(icmp=ICMPMatch(10)), "-m icmp6 --icmpv6-type 10"),
    (6, dict(icmp=ICMPMatch(10, 12)), "-m icmp6 --icmpv6-type 10/12"),
    (4, dict(dst_net=("10.0.0.0/16",)), "--destination 10.0.0.0/16"),
    (4, dict(dst_ip_set_ids=("ipsetid1",)), "-m set --match-set cali40ipsetid1 dst"),
    (4, dict(dst_ip_set_ids=("ipsetid1", "ipsetid2")),
     "-m set --match-set cali40ipsetid1 dst -m set --match-set cali40ipsetid2 dst"),
    (4, dict(dst_ports=(P(10, 12),)), "-m multiport --destination-ports 10:12"),
    (4, dict(dst_ports=(P(10, 12), P(20, 30), P(8080))),
     "-m multiport --destination-ports 10:12,20:30,8080"),
    (4, dict(not_protocol="tcp"), "! -p tcp"),
    (4, dict(not_protocol=8), "! -p 8"),
    (4, dict(not_src_net=("10.0.0.0/16",)), "! --source 10.0.0.0/16"),
    (4, dict(not_src_ip_set_ids=("ipsetid1",)), "-m set ! --match-set cali40ipsetid1 src"),
    (6, dict(not_src_ip_set_ids=("ipsetid1",)), "-m set ! --match-set cali60ipsetid1 src"),
    (4, dict(not_src_ip_set_ids=("ipsetid1", "ipsetid2")),
     "-m set ! --match-set cali40ipsetid1 src -m set ! --match-set cali40ipsetid2 src"),
    (4, dict(not_src_ports=(P(10, 12),)), "-m multiport ! --source-ports 10:12"),
    (4, dict(not_src_ports=(P(10, 12), P(20, 30), P(8080))),
     "-m multiport ! --source-ports 10:12,20:30,8080"),
    (4, dict(not_src_ports=RANGES8),
     "-m multiport ! --source-ports 1:2,3:4,5:6,7:8,9:10,11:12,13:14 -m multiport ! --source-ports 15:16"),
    (4, dict(not_icmp=ICMPMatch(10)), "-m icmp ! --icmp-type 10"),
    (4, dict(not_icmp=ICMPMatch(10, 12)), "-m icmp ! --icmp-type 10/12"),
    (6, dict(not_icmp=ICMPMatch(10)), "-m icmp6 ! --icmpv6-type 10"),
    (6, dict(not_icmp=ICMPMatch(10, 12)), "-m icmp6 ! --icmpv6-type 10/12"),
    (4, dict(not_dst_net=("10.0.0.0/16",)), "! --destination 10.0.0.0/16"),
    (4, dict(not_dst_ip_set_ids=("ipsetid1",)), "-m set ! --match-set cali40ipsetid1 dst"),
    (6, dict(not_dst_ip_set_ids=("ipsetid1",)), "-m set ! --match-set cali60ipsetid1 dst"),
    (4, dict(not_dst_ip_set_ids=("ipsetid1", "ipsetid2")),
     "-m set ! --match-set cali40ipsetid1 dst -m set ! --match-set cali40ipsetid2 dst"),
    (4, dict(not_dst_ports=(P(10, 12),)), "-m multiport ! --destination-ports 10:12"),
    (4, dict(not_dst_ports=RANGES8),
     "-m multiport ! --destination-ports 1:2,3:4,5:6,7:8,9:10,11:12,13:14 "
     "-m multiport ! --destination-ports 15:16"),
    (4, dict(not_dst_ports=(P(10, 12), P(20, 30), P(8080))),
     "-m multiport ! --destination-ports 10:12,20:30,8080"),
]


def _with_match(match, rest):
    return f"-A test {match} {rest}" if match else f"-A test {rest}"


@pytest.mark.parametrize("ipv, fields, match", RULE_MATCHES)
def test_allow_pass_deny_log(ipv, fields, match):
    for action in ("", "allow"):
        assert render(convert(ParsedRule(action=action, **fields), ipv)) == [
            _with_match(match, "--jump MARK --set-mark 0x80/0x80"),
            "-A test -m mark --mark 0x80/0x80 --jump RETURN"]
    for action in ("next-tier", "pass"):
        assert render(convert(ParsedRule(action=action, **fields), ipv)) == [
            _with_match(match, "--jump MARK --set-mark 0x100/0x100"),
            "-A test -m mark --mark 0x100/0x100 --jump RETURN"]
    assert render(convert(ParsedRule(action="deny", **fields), ipv)) == [
        _with_match(match, "--jump MARK --set-mark 0x800/0x800"),
        "-A test -m mark --mark 0x800/0x800 --jump DROP"]
    assert render(convert(ParsedRule(action="deny", **fields), ipv, CFG.replace(filter_deny_action="REJECT"))) == [
        _with_match(match, "--jump MARK --set-mark 0x800/0x800"),
        "-A test -m mark --mark 0x800/0x800 --jump REJECT"]
    assert render(convert(ParsedRule(action="log", **fields), ipv)) == [
        _with_match(match, '--jump LOG --log-prefix "calico-packet: " --log-level 5')]
    assert render(convert(ParsedRule(action="log", **fields), ipv, CFG.replace(log_prefix="foobar"))) == [
        _with_match(match, '--jump LOG --log-prefix "foobar: " --log-level 5')]
    # The rate limit comes before the rule's own match.
    limited = CFG.replace(log_prefix="foobar", log_action_rate_limit="50/minute", log_action_rate_limit_burst=90)
    assert render(convert(ParsedRule(action="log", **fields), ipv, limited)) == [
        _with_match("-m limit --limit 50/minute --limit-burst 90" + (" " + match if match else ""),
                    '--jump LOG --log-prefix "foobar: " --log-level 5')]
    no_burst = limited.replace(log_action_rate_limit_burst=0)
    assert render(convert(ParsedRule(action="log", **fields), ipv, no_burst))[0].startswith(
        "-A test -m limit --limit 50/minute " if match else "-A test -m limit --limit 50/minute --jump LOG")


def test_log_prefix_specifiers():
    cfg = CFG.replace(log_prefix="foobar %t %k %p %n - %n %p %k %t")
    assert policy.log_prefix(cfg, FOO, "default") == \
        "foobar default gnp default.foo default.foo - default.foo default.foo gnp default"
    cnp = PolicyID("foo", "app", KIND_NETWORK_POLICY)
    assert policy.log_prefix(CFG.replace(log_prefix="calico-packet %k:%p:%t:%n"), cnp, "admin") == \
        "calico-packet np:app/foo:admin:foo"
    assert policy.log_prefix(CFG.replace(log_prefix="calico-packet %p:%k:%%y%t%%n"), "profile1", "") == \
        "calico-packet profile1:pro:%%y%profile1"
    assert render(convert(ParsedRule(action="log"), 4, CFG.replace(log_prefix="%k %n"))) == [
        '-A test --jump LOG --log-prefix "gnp default.foo: " --log-level 5']


# CIDR split vectors.
CLEAR_BOTH = "-A test --jump MARK --set-mark 0x0/0x600"
PRESET_ALL = "-A test --jump MARK --set-mark 0x200/0x600"
ALLOW_IF_ALL = "-A test -m mark --mark 0x200/0x200 --jump MARK --set-mark 0x80/0x80"
ALLOW_IF_ALL_TCP = "-A test -p tcp -m mark --mark 0x200/0x200 --jump MARK --set-mark 0x80/0x80"
ALLOW_IF_ALL_UDP = "-A test -p udp -m mark --mark 0x200/0x200 --jump MARK --set-mark 0x80/0x80"
RET = "-A test -m mark --mark 0x80/0x80 --jump RETURN"
AND_THIS_BLOCK = "-A test -m mark --mark 0/0x400 --jump MARK --set-mark 0/0x200"


@pytest.mark.parametrize("n_src, n_not_src, n_dst, n_not_dst, expected", [
    (2, 0, 0, 0, [CLEAR_BOTH,
                  "-A test --source 10.0.0.0/24 --jump MARK --set-mark 0x200/0x200",
                  "-A test --source 10.0.1.0/24 --jump MARK --set-mark 0x200/0x200",
                  ALLOW_IF_ALL, RET]),
    (0, 2, 0, 0, [PRESET_ALL,
                  "-A test --source 11.0.0.0/24 --jump MARK --set-mark 0/0x200",
                  "-A test --source 11.0.1.0/24 --jump MARK --set-mark 0/0x200",
                  ALLOW_IF_ALL, RET]),
    (0, 0, 2, 0, [CLEAR_BOTH,
                  "-A test --destination 12.0.0.0/24 --jump MARK --set-mark 0x200/0x200",
                  "-A test --destination 12.0.1.0/24 --jump MARK --set-mark 0x200/0x200",
                  ALLOW_IF_ALL, RET]),
    (0, 0, 0, 2, [PRESET_ALL,
                  "-A test --destination 13.0.0.0/24 --jump MARK --set-mark 0/0x200",
                  "-A test --destination 13.0.1.0/24 --jump MARK --set-mark 0/0x200",
                  ALLOW_IF_ALL, RET]),
    (1, 1, 0, 0, [PRESET_ALL,
                  "-A test --source 11.0.0.0/24 --jump MARK --set-mark 0/0x200",
                  "-A test --source 10.0.0.0/24 -m mark --mark 0x200/0x200 --jump MARK --set-mark 0x80/0x80",
                  RET]),
    (2, 1, 0, 0, [CLEAR_BOTH,
                  "-A test --source 10.0.0.0/24 --jump MARK --set-mark 0x200/0x200",
                  "-A test --source 10.0.1.0/24 --jump MARK --set-mark 0x200/0x200",
                  "-A test ! --source 11.0.0.0/24 -m mark --mark 0x200/0x200 --jump MARK --set-mark 0x80/0x80",
                  RET]),
    (0, 0, 1, 1, [PRESET_ALL,
                  "-A test --destination 13.0.0.0/24 --jump MARK --set-mark 0/0x200",
                  "-A test --destination 12.0.0.0/24 -m mark --mark 0x200/0x200 --jump MARK --set-mark 0x80/0x80",
                  RET]),
    (0, 0, 2, 1, [CLEAR_BOTH,
                  "-A test --destination 12.0.0.0/24 --jump MARK --set-mark 0x200/0x200",
                  "-A test --destination 12.0.1.0/24 --jump MARK --set-mark 0x200/0x200",
                  "-A test ! --destination 13.0.0.0/24 -m mark --mark 0x200/0x200 --jump MARK --set-mark 0x80/0x80",
                  RET]),
    (1, 1, 1, 1, [PRESET_ALL,
                  "-A test --source 11.0.0.0/24 --jump MARK --set-mark 0/0x200",
                  "-A test --destination 13.0.0.0/24 --jump MARK --set-mark 0/0x200",
                  "-A test --source 10.0.0.0/24 --destination 12.0.0.0/24 -m mark --mark 0x200/0x200 "
                  "--jump MARK --set-mark 0x80/0x80",
                  RET]),
    (2, 2, 2, 2, [CLEAR_BOTH,
                  "-A test --source 10.0.0.0/24 --jump MARK --set-mark 0x200/0x200",
                  "-A test --source 10.0.1.0/24 --jump MARK --set-mark 0x200/0x200",
                  "-A test --destination 12.0.0.0/24 --jump MARK --set-mark 0x400/0x400",
                  "-A test --destination 12.0.1.0/24 --jump MARK --set-mark 0x400/0x400",
                  AND_THIS_BLOCK,
                  "-A test --source 11.0.0.0/24 --jump MARK --set-mark 0/0x200",
                  "-A test --source 11.0.1.0/24 --jump MARK --set-mark 0/0x200",
                  "-A test --destination 13.0.0.0/24 --jump MARK --set-mark 0/0x200",
                  "-A test --destination 13.0.1.0/24 --jump MARK --set-mark 0/0x200",
                  ALLOW_IF_ALL, RET]),
])
def test_cidr_splits(n_src, n_not_src, n_dst, n_not_dst, expected):
    rule = ParsedRule(action="allow",
                      src_net=("10.0.0.0/24", "10.0.1.0/24")[:n_src],
                      not_src_net=("11.0.0.0/24", "11.0.1.0/24")[:n_not_src],
                      dst_net=("12.0.0.0/24", "12.0.1.0/24")[:n_dst],
                      not_dst_net=("13.0.0.0/24", "13.0.1.0/24")[:n_not_dst])
    assert render(convert(rule)) == expected


SRC_RANGES = ("-A test -p tcp -m multiport --source-ports 1:2,3:4,5:6,7:8,9:10,11:12,13:14 "
              "--jump MARK --set-mark 0x200/0x200",
              "-A test -p tcp -m multiport --source-ports 15:16 --jump MARK --set-mark 0x200/0x200")


@pytest.mark.parametrize("fields, expected", [
    (dict(protocol="tcp", src_named_port_ip_set_ids=("ipset-1",)),
     ["-A test -p tcp -m set --match-set cali40ipset-1 src,src --jump MARK --set-mark 0x80/0x80", RET]),
    (dict(protocol="udp", src_named_port_ip_set_ids=("ipset-1", "ipset-2")),
     [CLEAR_BOTH,
      "-A test -m set --match-set cali40ipset-1 src,src --jump MARK --set-mark 0x200/0x200",
      "-A test -m set --match-set cali40ipset-2 src,src --jump MARK --set-mark 0x200/0x200",
      ALLOW_IF_ALL_UDP, RET]),
    (dict(protocol="tcp", src_ports=RANGES8, src_named_port_ip_set_ids=("ipset-1", "ipset-2", "ipset-3")),
     [CLEAR_BOTH, *SRC_RANGES,
      "-A test -m set --match-set cali40ipset-1 src,src --jump MARK --set-mark 0x200/0x200",
      "-A test -m set --match-set cali40ipset-2 src,src --jump MARK --set-mark 0x200/0x200",
      "-A test -m set --match-set cali40ipset-3 src,src --jump MARK --set-mark 0x200/0x200",
      ALLOW_IF_ALL_TCP, RET]),
    (dict(protocol="udp", src_ports=RANGES8),
     [CLEAR_BOTH,
      "-A test -p udp -m multiport --source-ports 1:2,3:4,5:6,7:8,9:10,11:12,13:14 --jump MARK --set-mark 0x200/0x200",
      "-A test -p udp -m multiport --source-ports 15:16 --jump MARK --set-mark 0x200/0x200",
      ALLOW_IF_ALL_UDP, RET]),
    (dict(protocol="tcp", src_ports=(P(1, 2),), src_named_port_ip_set_ids=("ipset-1",)),
     [CLEAR_BOTH,
      "-A test -p tcp -m multiport --source-ports 1:2 --jump MARK --set-mark 0x200/0x200",
      "-A test -m set --match-set cali40ipset-1 src,src --jump MARK --set-mark 0x200/0x200",
      ALLOW_IF_ALL_TCP, RET]),
    (dict(protocol="tcp", dst_named_port_ip_set_ids=("ipset-1",)),
     ["-A test -p tcp -m set --match-set cali40ipset-1 dst,dst --jump MARK --set-mark 0x80/0x80", RET]),
    (dict(protocol="tcp", dst_named_port_ip_set_ids=("ipset-1", "ipset-2")),
     [CLEAR_BOTH,
      "-A test -m set --match-set cali40ipset-1 dst,dst --jump MARK --set-mark 0x200/0x200",
      "-A test -m set --match-set cali40ipset-2 dst,dst --jump MARK --set-mark 0x200/0x200",
      ALLOW_IF_ALL_TCP, RET]),
    (dict(protocol="udp", src_ports=(P(1, 2),), src_named_port_ip_set_ids=("ipset-1",), dst_ports=(P(3, 4),)),
     [CLEAR_BOTH,
      "-A test -p udp -m multiport --source-ports 1:2 --jump MARK --set-mark 0x200/0x200",
      "-A test -m set --match-set cali40ipset-1 src,src --jump MARK --set-mark 0x200/0x200",
      "-A test -p udp -m multiport --destination-ports 3:4 -m mark --mark 0x200/0x200 --jump MARK --set-mark 0x80/0x80",
      RET]),
    (dict(protocol="tcp", src_ports=(P(1, 2),), dst_ports=(P(3, 4),), dst_named_port_ip_set_ids=("ipset-1",)),
     [CLEAR_BOTH,
      "-A test -p tcp -m multiport --destination-ports 3:4 --jump MARK --set-mark 0x200/0x200",
      "-A test -m set --match-set cali40ipset-1 dst,dst --jump MARK --set-mark 0x200/0x200",
      "-A test -p tcp -m multiport --source-ports 1:2 -m mark --mark 0x200/0x200 --jump MARK --set-mark 0x80/0x80",
      RET]),
    (dict(protocol="tcp", src_ports=(P(1, 2),), src_named_port_ip_set_ids=("ipset-1",),
          dst_ports=(P(3, 4),), dst_named_port_ip_set_ids=("ipset-2",)),
     [CLEAR_BOTH,
      "-A test -p tcp -m multiport --source-ports 1:2 --jump MARK --set-mark 0x200/0x200",
      "-A test -m set --match-set cali40ipset-1 src,src --jump MARK --set-mark 0x200/0x200",
      "-A test -p tcp -m multiport --destination-ports 3:4 --jump MARK --set-mark 0x400/0x400",
      "-A test -m set --match-set cali40ipset-2 dst,dst --jump MARK --set-mark 0x400/0x400",
      AND_THIS_BLOCK, ALLOW_IF_ALL_TCP, RET]),
    (dict(protocol="tcp", not_src_ports=(P(1, 2),), not_src_named_port_ip_set_ids=("ipset-1",)),
     ["-A test -p tcp -m multiport ! --source-ports 1:2 -m set ! --match-set cali40ipset-1 src,src "
      "--jump MARK --set-mark 0x80/0x80", RET]),
    (dict(protocol="udp", not_dst_ports=RANGES8, not_dst_named_port_ip_set_ids=("ipset-1", "ipset-2", "ipset-3")),
     ["-A test -p udp -m multiport ! --destination-ports 1:2,3:4,5:6,7:8,9:10,11:12,13:14 "
      "-m multiport ! --destination-ports 15:16 -m set ! --match-set cali40ipset-1 dst,dst "
      "-m set ! --match-set cali40ipset-2 dst,dst -m set ! --match-set cali40ipset-3 dst,dst "
      "--jump MARK --set-mark 0x80/0x80", RET]),
    (dict(protocol="tcp", src_ports=RANGES8, src_named_port_ip_set_ids=("ipset-1", "ipset-2", "ipset-3"),
          src_net=("10.1.0.0/16", "11.0.0.0/8")),
     [CLEAR_BOTH, *SRC_RANGES,
      "-A test -m set --match-set cali40ipset-1 src,src --jump MARK --set-mark 0x200/0x200",
      "-A test -m set --match-set cali40ipset-2 src,src --jump MARK --set-mark 0x200/0x200",
      "-A test -m set --match-set cali40ipset-3 src,src --jump MARK --set-mark 0x200/0x200",
      "-A test --source 10.1.0.0/16 --jump MARK --set-mark 0x400/0x400",
      "-A test --source 11.0.0.0/8 --jump MARK --set-mark 0x400/0x400",
      AND_THIS_BLOCK, ALLOW_IF_ALL_TCP, RET]),
    (dict(protocol="tcp", src_ports=RANGES8, src_named_port_ip_set_ids=("ipset-1",),
          src_net=("10.1.0.0/16", "11.0.0.0/8"), not_src_ports=(P(101),),
          not_src_named_port_ip_set_ids=("ipset-3",), not_src_net=("14.1.0.0/16", "15.0.0.0/8"),
          dst_ports=(P(2, 3),), dst_named_port_ip_set_ids=("ipset-2",), dst_net=("12.1.0.0/16", "13.0.0.0/8"),
          not_dst_ports=(P(201),), not_dst_named_port_ip_set_ids=("ipset-4",),
          not_dst_net=("16.1.0.0/16", "17.0.0.0/8")),
     [CLEAR_BOTH, *SRC_RANGES,
      "-A test -m set --match-set cali40ipset-1 src,src --jump MARK --set-mark 0x200/0x200",
      "-A test -p tcp -m multiport --destination-ports 2:3 --jump MARK --set-mark 0x400/0x400",
      "-A test -m set --match-set cali40ipset-2 dst,dst --jump MARK --set-mark 0x400/0x400",
      AND_THIS_BLOCK,
      "-A test --source 10.1.0.0/16 --jump MARK --set-mark 0x400/0x400",
      "-A test --source 11.0.0.0/8 --jump MARK --set-mark 0x400/0x400",
      AND_THIS_BLOCK,
      "-A test --destination 12.1.0.0/16 --jump MARK --set-mark 0x400/0x400",
      "-A test --destination 13.0.0.0/8 --jump MARK --set-mark 0x400/0x400",
      AND_THIS_BLOCK,
      "-A test --source 14.1.0.0/16 --jump MARK --set-mark 0/0x200",
      "-A test --source 15.0.0.0/8 --jump MARK --set-mark 0/0x200",
      "-A test --destination 16.1.0.0/16 --jump MARK --set-mark 0/0x200",
      "-A test --destination 17.0.0.0/8 --jump MARK --set-mark 0/0x200",
      "-A test -p tcp -m multiport ! --source-ports 101 -m set ! --match-set cali40ipset-3 src,src "
      "-m multiport ! --destination-ports 201 -m set ! --match-set cali40ipset-4 dst,dst "
      "-m mark --mark 0x200/0x200 --jump MARK --set-mark 0x80/0x80",
      RET]),
])
def test_named_ports(fields, expected):
    assert render(convert(ParsedRule(action="allow", **fields))) == expected


def test_match_order_of_everything():
    rule = ParsedRule(action="allow", protocol="tcp", src_net=("10.0.0.0/8",), src_ip_set_ids=("s:a",),
                      src_ports=(P(1),), dst_net=("11.0.0.0/8",), dst_ip_set_ids=("s:b",),
                      dst_ip_port_set_ids=("svc:c",), dst_ports=(P(2),), icmp=None, not_protocol="udp",
                      not_src_net=(), not_src_ip_set_ids=("s:d",), not_dst_ip_set_ids=("s:e",))
    assert render(convert(rule))[0] == (
        "-A test -p tcp --source 10.0.0.0/8 -m set --match-set cali40s:a src -m multiport --source-ports 1 "
        "--destination 11.0.0.0/8 -m set --match-set cali40s:b dst -m set --match-set cali40svc:c dst,dst "
        "-m multiport --destination-ports 2 ! -p udp -m set ! --match-set cali40s:d src "
        "-m set ! --match-set cali40s:e dst --jump MARK --set-mark 0x80/0x80")


@pytest.mark.parametrize("ipv, fields", [
    (4, dict(not_src_net=("0.0.0.0/0",))),
    (6, dict(not_src_net=("::/0",))),
    (4, dict(not_dst_net=("0.0.0.0/0",))),
    (6, dict(not_dst_net=("::/0",))),
    (6, dict(ip_version=4)),
    (4, dict(ip_version=6)),
    (6, dict(protocol="icmp")),
    (4, dict(protocol="icmpv6")),
    (6, dict(src_net=("10.0.0.1/32",))),
    (4, dict(src_net=("feed::beef/128",))),
    (6, dict(dst_net=("10.0.0.1/32",))),
    (4, dict(dst_net=("feed::beef/128",))),
    (6, dict(not_src_net=("10.0.0.1/32",))),
    (4, dict(not_src_net=("feed::beef/128",))),
    (6, dict(not_dst_net=("10.0.0.1/32",))),
    (4, dict(not_dst_net=("feed::beef/128",))),
])
def test_rules_skipped_for_ip_version(ipv, fields):
    assert convert(ParsedRule(action="allow", **fields), ipv) == []


def test_icmp_protocols_render_in_their_family():
    assert render(convert(ParsedRule(action="allow", protocol="icmp", icmp=ICMPMatch(8)), 4))[0] == (
        "-A test -p icmp -m icmp --icmp-type 8 --jump MARK --set-mark 0x80/0x80")
    assert render(convert(ParsedRule(action="allow", protocol="icmpv6", icmp=ICMPMatch(128, 0)), 6))[0] == (
        "-A test -p icmpv6 -m icmp6 --icmpv6-type 128/0 --jump MARK --set-mark 0x80/0x80")


def test_mixed_nets_filtered_per_version():
    rule = ParsedRule(action="allow", src_net=("10.0.0.1/32", "feed::beef/128"))
    assert render(convert(rule, 4))[0] == "-A test --source 10.0.0.1/32 --jump MARK --set-mark 0x80/0x80"
    assert render(convert(rule, 6))[0] == "-A test --source feed::beef/128 --jump MARK --set-mark 0x80/0x80"
    # Felix treats a negated field like a positive one here: emptied by version filtering,
    # it removes the rule for that version.
    assert convert(ParsedRule(action="allow", not_src_net=("::/0",)), 4) == []
    assert render(convert(ParsedRule(action="allow", not_src_net=("10.0.0.0/8", "fd00::/8")), 4)) == [
        "-A test ! --source 10.0.0.0/8 --jump MARK --set-mark 0x80/0x80", RET]


def test_annotations_on_every_rule():
    rule = ParsedRule(action="allow", protocol="tcp",
                      annotations=(("testkey00", "testvalue00"), ("testkey01", "testvalue01")))
    assert render(convert(rule)) == [
        '-A test -m comment --comment "testkey00=testvalue00" -m comment --comment "testkey01=testvalue01" '
        "-p tcp --jump MARK --set-mark 0x80/0x80",
        '-A test -m comment --comment "testkey00=testvalue00" -m comment --comment "testkey01=testvalue01" '
        "-m mark --mark 0x80/0x80 --jump RETURN",
    ]


@pytest.mark.parametrize("ports, splits", [
    ((), []),
    ((P(1),), [[P(1)]]),
    ((P(1, 10),), [[P(1, 10)]]),
    (tuple(P(i) for i in range(1, 16)), [[P(i) for i in range(1, 16)]]),
    (tuple(P(i) for i in range(1, 17)), [[P(i) for i in range(1, 16)], [P(16)]]),
    ((P(1, 2), P(3, 4), P(5, 6), P(7, 8), P(9, 10), P(11, 12), P(13, 14), P(15)),
     [[P(1, 2), P(3, 4), P(5, 6), P(7, 8), P(9, 10), P(11, 12), P(13, 14), P(15)]]),
    (RANGES8, [list(RANGES8[:7]), [P(15, 16)]]),
    ((*RANGES8, P(21, 22), P(23, 24), P(23, 26), P(27, 28), P(29, 210), P(211, 212), P(213, 214), P(215, 216)),
     [list(RANGES8[:7]),
      [P(15, 16), P(21, 22), P(23, 24), P(23, 26), P(27, 28), P(29, 210), P(211, 212)],
      [P(213, 214), P(215, 216)]]),
])
def test_split_port_list(ports, splits):
    assert policy.split_port_list(ports) == splits


def test_policy_chains_with_comments():
    deny = ParsedRule(action="deny", protocol="tcp")
    chains = policy.policy_chains(CFG, FOO, Policy(inbound_rules=(deny,), tier="default"), 4)
    assert [c.name for c in chains] == ["cali-pi-gnp/default.foo", "cali-po-gnp/default.foo"]
    assert render(chains[0].rules, chains[0].name) == [
        '-A cali-pi-gnp/default.foo -m comment --comment "GlobalNetworkPolicy default.foo ingress" '
        "-p tcp --jump MARK --set-mark 0x800/0x800",
        "-A cali-pi-gnp/default.foo -m mark --mark 0x800/0x800 --jump DROP",
    ]
    assert render(chains[1].rules, chains[1].name) == [
        '-A cali-po-gnp/default.foo -m comment --comment "GlobalNetworkPolicy default.foo egress"']


def test_long_policy_and_profile_names_hashed_with_trailing_return_stripped():
    pid = PolicyID("long-policy-name-that-gets-hashed", kind=KIND_GLOBAL_NETWORK_POLICY)
    chains = policy.policy_chains(CFG, pid, Policy(inbound_rules=(ParsedRule(action="allow"),), tier="default"), 4)
    assert [(c.name, [r.body for r in c.rules]) for c in chains] == [
        ("cali-pi-_PymyFHQQg3808jiz1OJ",
         ['-m comment --comment "GlobalNetworkPolicy long-policy-name-that-gets-hashed ingress" '
          "--jump MARK --set-mark 0x80/0x80"]),
        ("cali-po-_PymyFHQQg3808jiz1OJ",
         ['-m comment --comment "GlobalNetworkPolicy long-policy-name-that-gets-hashed egress"']),
    ]
    inbound, outbound = policy.profile_chains(
        CFG, "long-policy-name-that-gets-hashed", Profile(inbound_rules=(ParsedRule(action="allow"),)), 4)
    assert (inbound.name, [r.body for r in inbound.rules]) == (
        "cali-pri-_ffOMcf6pikpiZ6hgKc",
        ['-m comment --comment "Profile long-policy-name-that-gets-hashed ingress" --jump MARK --set-mark 0x80/0x80'])
    assert (outbound.name, [r.body for r in outbound.rules]) == (
        "cali-pro-_ffOMcf6pikpiZ6hgKc",
        ['-m comment --comment "Profile long-policy-name-that-gets-hashed egress"'])


def test_namespaced_policy_comment_and_staged_skipped():
    pid = PolicyID("allow-from-a", "ns1", KIND_KUBERNETES_NETWORK_POLICY)
    chains = policy.policy_chains(CFG, pid, Policy(tier="default"), 4)
    assert chains[0].rules[0].body == '-m comment --comment "KubernetesNetworkPolicy ns1/allow-from-a ingress"'
    staged = PolicyID("staged:default.foo", kind=KIND_STAGED_GLOBAL_NETWORK_POLICY)
    assert policy.policy_chains(CFG, staged, Policy(inbound_rules=(ParsedRule(action="deny"),)), 4) == []


def test_only_trailing_returns_are_stripped():
    chain = policy.policy_chains(CFG, FOO, Policy(inbound_rules=(
        ParsedRule(action="allow", protocol="tcp"), ParsedRule(action="deny"),
        ParsedRule(action="pass", protocol="udp")), tier="t"), 4)[0]
    assert [r.body for r in chain.rules] == [
        '-m comment --comment "GlobalNetworkPolicy default.foo ingress" -p tcp --jump MARK --set-mark 0x80/0x80',
        "-m mark --mark 0x80/0x80 --jump RETURN",
        "--jump MARK --set-mark 0x800/0x800",
        "-m mark --mark 0x800/0x800 --jump DROP",
        "-p udp --jump MARK --set-mark 0x100/0x100",
    ]


def test_chains_by_table_and_force_programming():
    hinted = Policy(tier="default", perf_hints=("AssumeNeededOnEveryNode",))
    by_table = policy.policy_chains_by_table(CFG, FOO, hinted, 4)
    assert [c.force_programming for c in by_table["filter"]] == [True, True]
    assert [c.force_programming for c in by_table["raw"]] == [False, False]
    assert [c.name for c in by_table["mangle"]] == ["cali-pi-gnp/default.foo", "cali-po-gnp/default.foo"]
    plain = policy.policy_chains_by_table(CFG, FOO, Policy(tier="default"), 4)
    assert [c.force_programming for c in plain["filter"]] == [False, False]
    prof = policy.profile_chains_by_table(CFG, "kns.ns1", Profile(), 4)
    assert [c.name for c in prof["filter"]] == ["cali-pri-kns.ns1", "cali-pro-kns.ns1"]
    assert [c.name for c in prof["mangle"]] == ["cali-pro-kns.ns1"]
