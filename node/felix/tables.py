"""The desired state of one iptables table for one IP version (Felix's ``iptables/table.go``,
without the kernel side).

Renderers hand chains to a Table freely; the Table decides which of them belong in the
kernel. A chain is *programmed* only while something reachable from a kernel chain jumps
or goes to it (or it is force-programmed for the ``AssumeNeededOnEveryNode`` hint), so a
policy chain appears when the first endpoint uses it and disappears with the last. The
refcounts are kept incrementally: updating a chain increfs the targets of its new rules
and decrefs those of its old ones, and a chain that becomes (un)referenced passes that on
to its own targets.

Each change marks chains dirty; ``take_changes()`` reports which programmed chains (and
which kernel-chain hooks) differ from the last report, with their rule-ID lists, which is
all the kernel sync needs to diff against ``iptables-save``. ``render_save()`` prints the
whole desired table the way the dry run shows it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

from node.felix.rules.core import Chain, Rule, render_append, rule_hashes
from node.felix.rules.static import KERNEL_CHAINS

APPENDS_SUFFIX = "*appends*"
INSERT_MODES = ("insert", "append")


@dataclass(frozen=True)
class ChainChange:
    """A chain whose programmed rule IDs changed; ``None`` means "not programmed"."""

    name: str
    old_ids: tuple[str, ...] | None
    new_ids: tuple[str, ...] | None

    @property
    def added(self) -> bool:
        return self.old_ids is None

    @property
    def removed(self) -> bool:
        return self.new_ids is None


@dataclass(frozen=True)
class KernelChainChange:
    """A kernel chain whose Calico rules changed: the IDs of our inserted and appended
    rules before and after."""

    name: str
    old_ids: tuple[tuple[str, ...], tuple[str, ...]]
    new_ids: tuple[tuple[str, ...], tuple[str, ...]]


@dataclass(frozen=True)
class TableChanges:
    chains: tuple[ChainChange, ...] = ()
    kernel_chains: tuple[KernelChainChange, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.chains or self.kernel_chains)

    @property
    def added(self) -> list[str]:
        return [c.name for c in self.chains if c.added]

    @property
    def removed(self) -> list[str]:
        return [c.name for c in self.chains if c.removed]

    @property
    def updated(self) -> list[str]:
        return [c.name for c in self.chains if not c.added and not c.removed]


class Table:
    """Desired chains, refcounts and kernel-chain hooks of one (table, IP version)."""

    def __init__(self, name: str, ip_version: int, insert_mode: str = "insert"):
        if name not in KERNEL_CHAINS:
            raise ValueError(f"unknown table {name!r}")
        if insert_mode not in INSERT_MODES:
            raise ValueError(f"ChainInsertMode must be insert or append, not {insert_mode!r}")
        self.name = name
        self.ip_version = ip_version
        self.insert_mode = insert_mode
        self.kernel_chains: tuple[str, ...] = KERNEL_CHAINS[name]
        self._kernel_set = frozenset(self.kernel_chains)
        self._chains: dict[str, Chain] = {}
        # Kernel chains are always referenced.
        self._refs: dict[str, int] = {k: 1 for k in self.kernel_chains}
        self._inserts: dict[str, tuple[Rule, ...]] = {k: () for k in self.kernel_chains}
        self._appends: dict[str, tuple[Rule, ...]] = {k: () for k in self.kernel_chains}
        self._dirty: set[str] = set()
        self._dirty_kernel: set[str] = set(self.kernel_chains)
        self._reported: dict[str, tuple[str, ...]] = {}
        self._reported_kernel: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {}

    # ----------------------------------------------------------------------------------
    # Refcounting.

    def is_referenced(self, name: str) -> bool:
        return self._refs.get(name, 0) > 0

    def _incref_targets(self, owner: str, rules: Iterable[Rule]) -> None:
        if not self.is_referenced(owner):
            return
        for r in rules:
            if r.action is not None and r.action.target is not None:
                self._incref(r.action.target)

    def _decref_targets(self, owner: str, rules: Iterable[Rule]) -> None:
        if not self.is_referenced(owner):
            return
        for r in rules:
            if r.action is not None and r.action.target is not None:
                self._decref(r.action.target)

    def _incref(self, name: str) -> None:
        count = self._refs.get(name, 0) + 1
        self._refs[name] = count
        if count == 1:
            self._dirty.add(name)
            chain = self._chains.get(name)
            if chain is not None:
                for target in chain.targets:  # (it is referenced now)
                    self._incref(target)

    def _decref(self, name: str) -> None:
        count = self._refs.get(name, 0)
        if count <= 0:
            raise RuntimeError(f"chain {name} decref'd below zero")
        if count == 1:
            chain = self._chains.get(name)
            if chain is not None:
                for target in chain.targets:  # (still referenced until just below)
                    self._decref(target)
            del self._refs[name]
            self._dirty.add(name)
            return
        self._refs[name] = count - 1

    def _decref_chain_targets(self, chain: Chain) -> None:
        if self._refs.get(chain.name, 0) > 0:
            for target in chain.targets:
                self._decref(target)

    # ----------------------------------------------------------------------------------
    # Desired state.

    def update_chain(self, chain: Chain) -> None:
        """Add or replace a chain. Incref first, then decref, so a chain still referenced
        by both versions never flaps. The old version's force flag is released only after
        the new version is stored, so a chain that loses its last reference that way
        releases its *new* rules' targets (Felix releases the old ones and leaks a ref)."""
        name = chain.name
        if name in self._kernel_set:
            raise ValueError(f"{name} is a kernel chain; use set_inserts/set_appends")
        refs = self._refs
        old = self._chains.get(name)
        if chain.force_programming:
            self._incref(name)
        if refs.get(name, 0) > 0:  # referenced: its targets are too
            for target in chain.targets:
                self._incref(target)
        if old is not None:
            self._decref_chain_targets(old)
        self._chains[name] = chain
        if old is not None and old.force_programming:
            self._decref(name)
        if refs.get(name, 0) > 0:  # (is_referenced)
            self._dirty.add(name)

    def update_chains(self, chains: Iterable[Chain]) -> None:
        for c in chains:
            self.update_chain(c)

    def remove_chain(self, name: str) -> None:
        old = self._chains.get(name)
        if old is None:
            return
        if old.force_programming:
            self._decref(name)
        self._decref_chain_targets(old)
        del self._chains[name]
        if self.is_referenced(name):
            self._dirty.add(name)

    def remove_chains(self, names: Iterable[str]) -> None:
        for n in names:
            self.remove_chain(n)

    def _check_kernel(self, name: str) -> None:
        if name not in self.kernel_chains:
            raise ValueError(f"{name} is not a kernel chain of the {self.name} table")

    def set_inserts(self, kernel_chain: str, rules: Sequence[Rule]) -> None:
        """Felix's InsertOrAppendRules: our rules at the top of a kernel chain in insert
        mode, at the bottom in append mode."""
        self._check_kernel(kernel_chain)
        old = self._inserts[kernel_chain]
        rules = tuple(rules)
        self._inserts[kernel_chain] = rules
        self._incref_targets(kernel_chain, rules)
        self._decref_targets(kernel_chain, old)
        self._dirty_kernel.add(kernel_chain)

    def set_appends(self, kernel_chain: str, rules: Sequence[Rule]) -> None:
        """Felix's AppendRules: always after everything else, in either mode."""
        self._check_kernel(kernel_chain)
        old = self._appends[kernel_chain]
        rules = tuple(rules)
        self._appends[kernel_chain] = rules
        self._incref_targets(kernel_chain, rules)
        self._decref_targets(kernel_chain, old)
        self._dirty_kernel.add(kernel_chain)

    def set_hooks(self, inserts: Mapping[str, Sequence[Rule]],
                  appends: Mapping[str, Sequence[Rule]]) -> None:
        """Set every kernel chain's inserts and appends (absent chains get none)."""
        for k in self.kernel_chains:
            self.set_inserts(k, inserts.get(k, ()))
            self.set_appends(k, appends.get(k, ()))

    # ----------------------------------------------------------------------------------
    # Queries.

    def chain(self, name: str) -> Chain | None:
        """The desired chain by name, programmed or not."""
        return self._chains.get(name)

    def is_programmed(self, name: str) -> bool:
        return name in self._chains and self.is_referenced(name)

    def programmed_chain_names(self) -> list[str]:
        """Non-kernel chains that are defined and referenced, in iptables-save order
        (byte order of the name)."""
        refs = self._refs
        return sorted([n for n in self._chains if refs.get(n, 0) > 0])

    def programmed_chains(self) -> list[Chain]:
        return [self._chains[n] for n in self.programmed_chain_names()]

    def missing_chains(self) -> list[str]:
        """Chains something programmed jumps to that nobody has defined (a restore would
        fail on them): a bug in whoever assembles the tables."""
        return sorted(n for n, c in self._refs.items()
                      if c > 0 and n not in self._chains and n not in self.kernel_chains)

    def chain_rule_ids(self, name: str) -> tuple[str, ...]:
        chain = self._chains.get(name)
        return chain.rule_ids if chain is not None else ()

    def inserted_rules(self, kernel_chain: str) -> tuple[Rule, ...]:
        return self._inserts[kernel_chain]

    def appended_rules(self, kernel_chain: str) -> tuple[Rule, ...]:
        return self._appends[kernel_chain]

    def inserted_rule_ids(self, kernel_chain: str) -> tuple[str, ...]:
        """Inserted rules hash under the kernel chain's own name."""
        return tuple(rule_hashes(kernel_chain, self._inserts[kernel_chain]))

    def appended_rule_ids(self, kernel_chain: str) -> tuple[str, ...]:
        """Appended rules hash under ``<chain>*appends*``, so an insert and an append of
        the same rule get different IDs."""
        return tuple(rule_hashes(kernel_chain + APPENDS_SUFFIX, self._appends[kernel_chain]))

    def expected_kernel_chain_ids(self, kernel_chain: str, num_non_calico: int = 0) -> list[str]:
        """The ID list a kernel chain should have with ``num_non_calico`` foreign rules
        (``""`` each): ours first in insert mode, after them in append mode; appends last."""
        ins = list(self.inserted_rule_ids(kernel_chain))
        app = list(self.appended_rule_ids(kernel_chain))
        foreign = [""] * num_non_calico
        if self.insert_mode == "insert":
            return ins + foreign + app
        return foreign + ins + app

    def kernel_chain_lines(self, kernel_chain: str) -> list[str]:
        """Our rules in a kernel chain as ``-A`` lines, in their final order (inserted, then
        appended; with no foreign rules both insert modes give this order)."""
        lines = [render_append(r, kernel_chain, i) for r, i in
                 zip(self._inserts[kernel_chain], self.inserted_rule_ids(kernel_chain))]
        lines += [render_append(r, kernel_chain, i) for r, i in
                  zip(self._appends[kernel_chain], self.appended_rule_ids(kernel_chain))]
        return lines

    # ----------------------------------------------------------------------------------
    # Change reports.

    def take_changes(self) -> TableChanges:
        """What differs from the previous report: programmed chains added, changed or gone
        (by rule-ID list), and kernel chains whose Calico rules changed."""
        changes = []
        for name in sorted(self._dirty):
            if name in self.kernel_chains:
                continue
            old = self._reported.get(name)
            new = self._chains[name].rule_ids if self.is_programmed(name) else None
            if old != new:
                changes.append(ChainChange(name, old, new))
                if new is None:
                    del self._reported[name]
                else:
                    self._reported[name] = new
        self._dirty.clear()
        kernel_changes = []
        for k in self.kernel_chains:
            if k not in self._dirty_kernel:
                continue
            new_k = (self.inserted_rule_ids(k), self.appended_rule_ids(k))
            old_k = self._reported_kernel.get(k, ((), ()))
            if old_k != new_k:
                kernel_changes.append(KernelChainChange(k, old_k, new_k))
                self._reported_kernel[k] = new_k
        self._dirty_kernel.clear()
        return TableChanges(tuple(changes), tuple(kernel_changes))

    # ----------------------------------------------------------------------------------
    # Rendering.

    def render_save(self, kernel_policies: Mapping[str, str] | None = None) -> str:
        """The table as ``iptables-save`` would list it after Felix programmed it into an
        otherwise empty table, but with Felix's own rule rendering:

        ``*<table>``; ``:<kernel chain> <policy> [0:0]`` for the kernel chains in kernel
        order (policy ACCEPT unless given); ``:<chain> - [0:0]`` for every programmed chain
        sorted by name (byte order, as iptables-legacy-save lists user chains); our rules
        in each kernel chain in final position order; every rule of every programmed chain
        in the same chain order, each with its ``cali:`` ID; ``COMMIT``.
        """
        policies = kernel_policies or {}
        out = [f"*{self.name}"]
        for k in self.kernel_chains:
            out.append(f":{k} {policies.get(k, 'ACCEPT')} [0:0]")
        programmed = self.programmed_chains()
        for c in programmed:
            out.append(f":{c.name} - [0:0]")
        for k in self.kernel_chains:
            out.extend(self.kernel_chain_lines(k))
        for c in programmed:
            out.extend(c.render())
        out.append("COMMIT")
        return "\n".join(out) + "\n"
