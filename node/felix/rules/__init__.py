"""Felix's iptables rendering, byte for byte (v3.32): pure functions from configuration and
the calculation's messages to chains of rules with their ``cali:`` IDs.

- ``core``: Rule, Chain, the match builder, actions, rendering, rule IDs.
- ``config``: RulesConfig (Felix's rules.Config) and the mark-bit allocation.
- ``names``: chain and IP-set names.
- ``static``: the static chains of raw/mangle/nat/filter and the kernel-chain hooks.
- ``nat``: failsafe, NAT-outgoing, floating-IP, CIDR-block and DSCP chains.
- ``policy``: policy and profile chains.
- ``endpoints``: workload and host endpoint chains, policy groups, the RPF-skip chain.
- ``dispatch``: the interface-name dispatch trees.

``node.felix.tables.Table`` holds a table's desired chains and decides, by refcounting
from the kernel chains, which of them are programmed.
"""
