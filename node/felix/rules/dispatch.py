"""Dispatch chains: from an interface name to its endpoint chain (Felix's ``rules/dispatch.go``).

With hundreds of endpoints a flat list would make the last one pay for every comparison
before it, so Felix builds a shallow tree: names are sorted, grouped by the character
after their common prefix, and each group of more than one gets a child chain reached by
a wildcard match (``--in-interface cali1+ --goto cali-from-wl-dispatch-1``). The root
chains always exist, possibly empty, because the static chains jump to them.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Callable, Iterable, Mapping, Sequence

from node.felix.rules import names
from node.felix.rules.config import RulesConfig
from node.felix.rules.core import RETURN, Chain, Match, Rule, goto, set_masked_mark

W = "+"


def common_prefix(words: Sequence[str]) -> str:
    if not words:
        return ""
    first, last = min(words), max(words)
    i = 0
    while i < len(first) and i < len(last) and first[i] == last[i]:
        i += 1
    return first[:i]


def divide_names(iface_names: Iterable[str]) -> tuple[str, list[str], dict[str, list[str]]]:
    """Sorted, de-duplicated names split into bins by the character after the common
    prefix: (common prefix, bin keys in order, bin key -> names)."""
    ordered = sorted(iface_names)
    prefix = common_prefix(ordered)
    keys: list[str] = []
    bins: dict[str, list[str]] = {}
    last = None
    for name in ordered:
        if not name:
            raise ValueError("cannot dispatch to an endpoint with an empty interface name")
        if name == last:
            continue  # Two endpoints on one interface: the first (smallest ID) wins upstream.
        key = name[:len(prefix) + 1] if len(name) > len(prefix) else prefix
        if key not in bins:
            keys.append(key)
            bins[key] = []
        bins[key].append(name)
        last = name
    return prefix, keys, bins


def _dispatch_tree(root: str, iface_names: Iterable[str], endpoint_prefix: str,
                   match_fn: Callable[[str], Match], end_rules: Sequence[Rule]) -> list[Chain]:
    """Child chains (in bin order) followed by the root chain."""
    children, root_rules = _dispatch_rules(root, iface_names, endpoint_prefix, match_fn, end_rules)
    return children + [Chain(root, tuple(root_rules) + tuple(end_rules))]


def _dispatch_rules(root: str, iface_names: Iterable[str], endpoint_prefix: str,
                    match_fn: Callable[[str], Match], end_rules: Sequence[Rule],
                    infix: str = "") -> tuple[list[Chain], list[Rule]]:
    """The child chains and the root chain's per-interface rules (without its end rules).
    ``infix`` goes into child chain names, so that two trees sharing a root chain (the
    endpoint-mark one has workloads and host endpoints) cannot clash."""
    prefix, keys, bins = divide_names(iface_names)
    children: list[Chain] = []
    root_rules: list[Rule] = []
    for key in keys:
        members = bins[key]
        if len(members) > 1:
            child = f"{root}{infix}-{key[len(prefix):]}"
            root_rules.append(Rule(match_fn(key + W), goto(child)))
            child_rules = [Rule(match_fn(n), goto(names.endpoint_chain_name(endpoint_prefix, n)))
                           for n in members]
            children.append(Chain(child, tuple(child_rules) + tuple(end_rules)))
        else:
            n = members[0]
            root_rules.append(Rule(match_fn(n), goto(names.endpoint_chain_name(endpoint_prefix, n))))
    return children, root_rules


_NO_MATCH = Match()


def _in(name: str) -> Match:
    return _NO_MATCH.in_interface(name)


def _out(name: str) -> Match:
    return _NO_MATCH.out_interface(name)


def workload_dispatch_chains(cfg: RulesConfig, iface_names: Iterable[str]) -> list[Chain]:
    """``cali-from-wl-dispatch`` (goto ``cali-fw-``) and ``cali-to-wl-dispatch`` (goto
    ``cali-tw-``), each with its children first; traffic of an unknown ``cali*`` interface
    is dropped ("Unknown interface")."""
    return list(_workload_dispatch_chains(cfg, tuple(iface_names)))


@lru_cache(maxsize=4)
def _workload_dispatch_chains(cfg: RulesConfig, names_list: tuple[str, ...]) -> tuple[Chain, ...]:
    """A pure function of immutable inputs (chains are immutable): both IP families'
    dataplanes, which dispatch to the same interfaces, share one rendering."""
    end = (Rule((), cfg.deny_action, ("Unknown interface",)),)
    return tuple(_dispatch_tree(names.CHAIN_FROM_WORKLOAD_DISPATCH, names_list,
                                names.WORKLOAD_FROM_ENDPOINT_PREFIX, _in, end)
                 + _dispatch_tree(names.CHAIN_TO_WORKLOAD_DISPATCH, names_list,
                                  names.WORKLOAD_TO_ENDPOINT_PREFIX, _out, end))


def _host_end_rules(cfg: RulesConfig, default_iface: str, apply_on_forward: bool):
    """The rules after the per-interface gotos: nothing without a ``*`` HEP (the packet
    falls out of the chain); with one, goto its chains, and in the non-forward "to"
    chains first skip traffic to local workloads."""
    if not default_iface:
        return (), (), (), ()
    from_end = (Rule((), goto(names.endpoint_chain_name(names.HOST_FROM_ENDPOINT_PREFIX, default_iface))),)
    from_fwd_end = (Rule((), goto(names.endpoint_chain_name(
        names.HOST_FROM_ENDPOINT_FORWARD_PREFIX, default_iface))),)
    to_end: tuple[Rule, ...] = ()
    if not apply_on_forward:
        to_end = tuple(Rule(Match().out_interface(p + W), RETURN,
                            ("Skip egress WHEP policy for traffic to local workload",))
                       for p in cfg.workload_iface_prefixes)
    to_end += (Rule((), goto(names.endpoint_chain_name(names.HOST_TO_ENDPOINT_PREFIX, default_iface))),)
    to_fwd_end = (Rule((), goto(names.endpoint_chain_name(
        names.HOST_TO_ENDPOINT_FORWARD_PREFIX, default_iface))),)
    return from_end, to_end, from_fwd_end, to_fwd_end


def host_dispatch_chains(cfg: RulesConfig, iface_names: Iterable[str], default_iface: str = "",
                         apply_on_forward: bool = False) -> list[Chain]:
    """``cali-from-host-endpoint`` and ``cali-to-host-endpoint``, plus (``apply_on_forward``)
    ``cali-from-hep-forward``/``cali-to-hep-forward``. ``default_iface`` is
    ``names.ALL_INTERFACES`` when a ``*`` HEP is active (and must not be in
    ``iface_names``)."""
    names_list = list(iface_names)
    from_end, to_end, from_fwd_end, to_fwd_end = _host_end_rules(cfg, default_iface, apply_on_forward)
    chains = (_dispatch_tree(names.CHAIN_FROM_HOST_ENDPOINT, names_list,
                             names.HOST_FROM_ENDPOINT_PREFIX, _in, from_end)
              + _dispatch_tree(names.CHAIN_TO_HOST_ENDPOINT, names_list,
                               names.HOST_TO_ENDPOINT_PREFIX, _out, to_end))
    if apply_on_forward:
        chains += (_dispatch_tree(names.CHAIN_FROM_HEP_FORWARD, names_list,
                                  names.HOST_FROM_ENDPOINT_FORWARD_PREFIX, _in, from_fwd_end)
                   + _dispatch_tree(names.CHAIN_TO_HEP_FORWARD, names_list,
                                    names.HOST_TO_ENDPOINT_FORWARD_PREFIX, _out, to_fwd_end))
    return chains


def from_host_dispatch_chains(cfg: RulesConfig, iface_names: Iterable[str],
                              default_iface: str = "") -> list[Chain]:
    """Only ``cali-from-host-endpoint`` (pre-DNAT policy is ingress only)."""
    from_end, _, _, _ = _host_end_rules(cfg, default_iface, False)
    return _dispatch_tree(names.CHAIN_FROM_HOST_ENDPOINT, list(iface_names),
                          names.HOST_FROM_ENDPOINT_PREFIX, _in, from_end)


def to_host_dispatch_chains(cfg: RulesConfig, iface_names: Iterable[str],
                            default_iface: str = "") -> list[Chain]:
    """Only ``cali-to-host-endpoint``, with the "Skip egress WHEP" rule before a ``*``
    default (mangle: HEP egress for DNAT'd host traffic)."""
    _, to_end, _, _ = _host_end_rules(cfg, default_iface, False)
    return _dispatch_tree(names.CHAIN_TO_HOST_ENDPOINT, list(iface_names),
                          names.HOST_TO_ENDPOINT_PREFIX, _out, to_end)


def host_dispatch_chains_by_table(cfg: RulesConfig, normal_ifaces: Iterable[str],
                                  untracked_ifaces: Iterable[str] = (),
                                  pre_dnat_ifaces: Iterable[str] = ()) -> dict[str, list[Chain]]:
    """The host dispatch chains of every table, as Felix's endpoint manager lays them out.

    ``normal_ifaces``: every interface with an active HEP (``names.ALL_INTERFACES`` for a
    ``*`` HEP); ``untracked_ifaces``/``pre_dnat_ifaces``: those whose HEP has untracked /
    pre-DNAT tiers. Raw lists only untracked interfaces (never ``*``), with no default;
    filter has all four chains; mangle has ``from`` for pre-DNAT interfaces and ``to``
    for all.
    """
    allif = names.ALL_INTERFACES
    normal = set(normal_ifaces)
    untracked = set(untracked_ifaces) - {allif}
    pre_dnat = set(pre_dnat_ifaces)
    default = allif if allif in normal else ""
    pre_dnat_default = allif if allif in pre_dnat else ""
    return {
        "raw": host_dispatch_chains(cfg, untracked, "", False),
        "filter": host_dispatch_chains(cfg, normal - {allif}, default, True),
        "mangle": (from_host_dispatch_chains(cfg, pre_dnat - {allif}, pre_dnat_default)
                   + to_host_dispatch_chains(cfg, normal - {allif}, default)),
    }


def endpoint_mark_dispatch_chains(cfg: RulesConfig, workload_ifaces: Iterable[str], host_ifaces: Iterable[str],
                                  marks: Mapping[str, int | None]) -> list[Chain]:
    """IPVS mode: ``cali-set-endpoint-mark`` (in INPUT, by incoming interface, goto the
    interface's ``cali-sm-`` chain; an unknown ``cali*`` interface is dropped, anything else
    gets the non-Calico mark) and ``cali-from-endpoint-mark`` (in OUTPUT, by mark, goto the
    workload's ``cali-fw-`` or the host endpoint's ``cali-fhfw-`` chain). Children of the
    workload tree carry ``-wep`` in their names, those of host endpoints ``-hep``.
    ``marks`` gives each interface's mark (None: none was left, so no rule)."""
    wl, hep = sorted(set(workload_ifaces)), sorted(set(host_ifaces))
    chains: list[Chain] = []
    set_rules: list[Rule] = []
    for ifaces, infix in ((wl, "-wep"), (hep, "-hep")):
        if ifaces:
            children, rules = _dispatch_rules(names.CHAIN_SET_ENDPOINT_MARK, ifaces,
                                              names.SET_ENDPOINT_MARK_PREFIX, _in, (), infix)
            chains += children
            set_rules += rules
    deny = cfg.deny_action
    set_rules += [Rule(_in(p + W), deny, ("Unknown endpoint",)) for p in cfg.workload_iface_prefixes]
    set_rules.append(Rule((), set_masked_mark(cfg.mark_non_cali_endpoint, cfg.mark_endpoint),
                          ("Non-Cali endpoint mark",)))
    from_rules = [Rule(_NO_MATCH.mark_matches_with_mask(marks[n], cfg.mark_endpoint),
                       goto(names.endpoint_chain_name(prefix, n)))
                  for ifaces, prefix in ((wl, names.WORKLOAD_FROM_ENDPOINT_PREFIX),
                                         (hep, names.HOST_FROM_ENDPOINT_FORWARD_PREFIX))
                  for n in ifaces if marks.get(n) is not None]
    from_rules.append(Rule((), deny, ("Unknown interface",)))
    return chains + [Chain(names.CHAIN_SET_ENDPOINT_MARK, tuple(set_rules)),
                     Chain(names.CHAIN_FROM_ENDPOINT_MARK, tuple(from_rules))]
