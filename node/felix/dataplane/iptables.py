"""The kernel side of the policy agent's iptables tables (Felix's ``iptables/table.go``).

The desired state of each (table, IP version) lives in a ``node.felix.tables.Table``; this
module makes the kernel's table equal to it, touching only what differs and never the
rules of other programs. It follows Felix's model (spec §3.8):

* **Reading** is ``ip(6)tables[-legacy|-nft]-save -t <table>`` parsed into the list of rule
  IDs of every chain (the ``cali:<id>`` of the first hash comment, ``""`` for a foreign
  rule), plus, for chains that are not ours, the saved text of our rules so they can be
  deleted by value. Rules older Felixes wrote without IDs get a dummy ID so they are
  cleaned up. Felix never parses more than that: rules do not round-trip through the
  kernel textually, the IDs do.
* **Planning** (pure: ``plan_table``) compares the desired ID lists with the read ones and
  produces one ``iptables-restore`` transaction per table: ``:chain - -`` for chains to
  create (or flush before deletion), a position-by-position diff per changed chain
  (``-R``/``-D``/``-A``; the nft backend flushes and rewrites instead, Felix's workaround
  for an iptables-nft ``-R`` bug), our rules in kernel chains deleted by value and put
  back around the foreign ones when their placement is wrong, and ``--delete-chain`` for
  our chains nobody wants, last (with nft, in a second transaction of the same input).
* **Writing** runs ``ip(6)tables-restore --noflush --verbose [--wait 10 --wait-interval
  <µs>]``. A failure is logged with iptables' error text, the table is re-read and the
  write re-planned and retried, 10 times with backoff from 1 ms doubling, before
  ``IptablesError`` is raised.

A read happens at the first apply, before a write that follows an earlier write (our
picture of the kernel is then only what we believe we wrote), after ``refresh()``, after a
failure, and on Felix's timers (``refresh_interval``; after each write at 5 s, 10 s, 20
s... until an hour). An apply whose desired state matches the picture writes nothing.

The processes run in the caller's network namespace through an injectable ``run``.
"""
from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator, Mapping, Sequence

from node.felix.features import (Features, detect_features, features_for, iptables_version, kernel_version,
                                 parse_version)
from node.felix.rules.core import RULE_HASH_PREFIX, render_append, render_insert, render_replace
from node.felix.rules.names import HISTORIC_CHAIN_PREFIXES
from node.felix.tables import Table

log = logging.getLogger(__name__)

BACKENDS = ("legacy", "nft")
SAVE_RETRIES = 3
SAVE_RETRY_DELAY = 0.1
RESTORE_RETRIES = 10
RESTORE_RETRY_DELAY = 0.001
LOCK_TIMEOUT_SECONDS = 10
MIN_POST_WRITE_INTERVAL = 0.05
MAX_POST_WRITE_INTERVAL = 3600.0
OLD_INSERT_ID = "OLD INSERT RULE"
FOREIGN_RULE_TEXT = "-"

# Rules Python-era Felix put in nat POSTROUTING (rules/rule_defs.go HistoricInsertedNATRuleRegex).
HISTORIC_INSERTED_NAT_RULE_REGEX = (
    r"-A POSTROUTING .* felix-masq-ipam-pools .*|"
    r"-A POSTROUTING -o tunl0 -m addrtype ! --src-type LOCAL --limit-iface-out "
    r"-m addrtype --src-type LOCAL -j MASQUERADE")
KUBERNETES_CHAIN_MARKERS = ("KUBE-IPTABLES-HINT", "KUBE-KUBELET-CANARY")
_NFT_INCOMPATIBLE = re.compile(r"^# Table .* is incompatible, use 'nft' tool\.")


class IptablesError(Exception):
    """iptables could not be read or programmed; the message carries iptables' own words."""


class IptablesApplyError(IptablesError):
    """Some tables could not be programmed after the retries; the others were. ``stats``
    is what the apply did anyway (for the metrics), ``failed_tables`` which ones failed."""

    def __init__(self, message: str, failed_tables: Sequence[str], stats: "ApplyStats"):
        super().__init__(message)
        self.failed_tables = tuple(failed_tables)
        self.stats = stats


# --------------------------------------------------------------------------------------
# Versions and features (environment/feature_detect_linux.go, versionparse.go).

# --------------------------------------------------------------------------------------
# Running commands.

@dataclass(frozen=True)
class RunResult:
    returncode: int
    stdout: str
    stderr: str


Runner = Callable[[Sequence[str], "str | None"], RunResult]


def subprocess_runner(argv: Sequence[str], stdin: str | None = None) -> RunResult:
    """Run a binary in this process's network namespace; a missing binary is exit 127."""
    try:
        res = subprocess.run(list(argv), input=stdin, capture_output=True, text=True, check=False)
    except OSError as exc:
        return RunResult(127, "", f"{argv[0]}: {exc.strerror or exc}")
    return RunResult(res.returncode, res.stdout, res.stderr)


def find_binary(ip_version: int, backend: str, kind: str,
                exists: Callable[[str], object] = shutil.which) -> str:
    """``ip[6]tables-<backend>-<save|restore>`` if present, else ``ip[6]tables-<kind>``."""
    infix = "6" if ip_version == 6 else ""
    candidates = (f"ip{infix}tables-{backend}-{kind}", f"ip{infix}tables-{kind}")
    for name in candidates:
        if exists(name):
            return name
    raise IptablesError(f"no iptables command found (looked for {' and '.join(candidates)})")


# --------------------------------------------------------------------------------------
# Backend detection.

def has_kubernetes_chains(save_output: str) -> bool:
    return any(marker in save_output for marker in KUBERNETES_CHAIN_MARKERS)


def count_rules(save_output: str) -> int:
    return sum(1 for line in iter_lines(save_output) if line.startswith("-"))


SaveFn = Callable[[int, str, "str | None"], str]


def choose_backend(specified: str, save: SaveFn) -> str:
    """Felix's DetectBackend: Kubernetes' marker chains in ``mangle`` of nft, then of legacy,
    decide; otherwise the backend with more rules (all tables, both families) wins, legacy
    on a tie. An explicit ``legacy``/``nft`` overrides the detection (with a warning when
    they disagree). ``save(ip_version, backend, table_or_None)`` returns save's output."""
    specified = (specified or "auto").lower()
    if specified not in ("auto", *BACKENDS):
        raise ValueError(f"IptablesBackend must be auto, legacy or nft, not {specified!r}")
    if any(has_kubernetes_chains(save(v, "nft", "mangle")) for v in (6, 4)):
        detected = "nft"
    elif any(has_kubernetes_chains(save(v, "legacy", "mangle")) for v in (6, 4)):
        detected = "legacy"
    else:
        legacy = sum(count_rules(save(v, "legacy", None)) for v in (6, 4))
        nft = sum(count_rules(save(v, "nft", None)) for v in (6, 4))
        detected = "legacy" if legacy >= nft else "nft"
    if specified == "auto":
        log.info("detected iptables backend: %s", detected)
        return detected
    if specified != detected:
        log.warning("IptablesBackend is %s but the %s backend looks in use; using %s",
                    specified, detected, specified)
    return specified


def legacy_modules_loaded(ip_version: int) -> bool:
    """Felix's LegacyIPTablesModulesLoaded: whether the kernel has the legacy xtables
    tables, told by the file they add under /proc (looking loads nothing, whereas
    ``iptables-legacy-save`` would load the modules on a host that runs nftables only)."""
    path = "/proc/net/ip6_tables_names" if ip_version == 6 else "/proc/net/ip_tables_names"
    if os.path.exists(path):
        return True
    log.info("iptables-legacy not loaded on this host (no %s)", path)
    return False


def detect_backend(specified: str = "auto", run: Runner = subprocess_runner,
                   exists: Callable[[str], object] = shutil.which,
                   legacy_loaded: Callable[[int], bool] = legacy_modules_loaded) -> str:
    """``choose_backend`` with the real save commands (their output is used even when they
    fail, as Felix does). As Felix, the legacy backend is not probed while its modules are
    not loaded: it holds nothing then, and probing would load them."""
    def save(version: int, backend: str, table: str | None) -> str:
        if backend == "legacy" and not legacy_loaded(version):
            return ""
        argv = [find_binary(version, backend, "save", exists)]
        if table:
            argv += ["-t", table]
        return run(argv, None).stdout

    return choose_backend(specified, save)


# --------------------------------------------------------------------------------------
# Reading: iptables-save output -> rule IDs per chain.

@dataclass(frozen=True)
class Matchers:
    """Felix's per-table regexes: our chains (any historic prefix), the hash comment, and
    rules of older Felixes (jumps to historic prefixes; Python-era nat rules in nat)."""

    ours: re.Pattern
    hash_comment: re.Pattern
    old_insert: re.Pattern

    def is_ours(self, chain: str) -> bool:
        return self.ours.match(chain) is not None


def matchers_for(table: str, prefixes: Sequence[str] = HISTORIC_CHAIN_PREFIXES,
                 extra_cleanup: str = "") -> Matchers:
    old = [f"(?:-j|--jump) {re.escape(p)}" for p in prefixes]
    if table == "nat":
        old.append(HISTORIC_INSERTED_NAT_RULE_REGEX)
    if extra_cleanup:
        old.append(extra_cleanup)
    return Matchers(
        ours=re.compile("^(?:" + "|".join(re.escape(p) for p in prefixes) + ")"),
        hash_comment=re.compile(r'--comment "?' + re.escape(RULE_HASH_PREFIX) + r'([a-zA-Z0-9_-]+)"?'),
        old_insert=re.compile("|".join(old)))


@dataclass(frozen=True)
class TableState:
    """What one table holds, as far as the sync cares: the rule IDs of every chain (``""``
    for a foreign rule), and for chains that are not ours but hold some of our rules, each
    rule's saved text (``"-"`` for foreign ones) for deleting ours by value."""

    chains: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    full_rules: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


class SaveOutputError(IptablesError):
    """iptables-save printed something the sync must not act on."""


def iter_lines(text: str) -> Iterator[str]:
    """``text.split("\\n")``, one line at a time: reading a large listing that way leaves
    no allocator pages pinned by its thousands of short-lived line strings."""
    start, end = 0, len(text)
    while start <= end:
        stop = text.find("\n", start)
        if stop < 0:
            stop = end
        yield text[start:stop]
        start = stop + 1


def parse_save(text: str, matchers: Matchers, desired: Table | None = None) -> TableState:
    """Parse ``iptables-save -t <table>`` output. The first ``cali:`` comment of a rule is
    its ID (Felix writes it first; iptables-save may move ``-p`` before it).

    With ``desired``, each chain whose IDs read back as desired gets the desired ID
    tuple itself, as soon as its rules have been read: the picture of a programmed
    table then costs no memory for IDs beyond the desired state's (some 1.5 MB at
    20,000 rules), and a periodic re-read never holds more than one chain's worth of
    fresh ID strings at a time (a re-read holding them all pinned about 5 MB of
    allocator pages in a long-running agent)."""
    chains: dict[str, list[str] | tuple[str, ...]] = {}
    full: dict[str, list[str]] = {}
    with_ours: set[str] = set()
    hash_re, old_re = matchers.hash_comment, matchers.old_insert
    open_name, open_ids = "", None  # the chain whose rules are being read

    def close() -> None:
        if open_ids is not None and desired is not None:
            want = desired.chain_rule_ids(open_name)
            if want and len(want) == len(open_ids) and tuple(open_ids) == want:
                chains[open_name] = want

    for line in iter_lines(text):
        if line.startswith(":"):
            name = line[1:].split(None, 1)[0] if len(line) > 1 and not line[1].isspace() else ""
            if name:
                chains[name] = []
            continue
        if line.startswith("# Table") and _NFT_INCOMPATIBLE.match(line):
            raise SaveOutputError("iptables-save failed because there are incompatible nft rules in the "
                                  "table; remove the nft rules to continue")
        if not line.startswith("-A "):
            continue
        parts = line.split(None, 2)
        if len(parts) < 2:
            continue
        name = parts[1]
        m = hash_re.search(line)
        if m is not None:
            rule_id = m.group(1)
        elif old_re.search(line) is not None:
            log.info("found a rule from an earlier Felix in %s, marking it for cleanup: %s", name, line)
            rule_id = OLD_INSERT_ID
        else:
            rule_id = ""
        if name != open_name or open_ids is None:
            close()
            ids = chains.get(name)
            if type(ids) is not list:  # new, or a chain already closed (its rules not contiguous)
                ids = chains[name] = list(ids or ())
            open_name, open_ids = name, ids
        open_ids.append(rule_id)
        if not matchers.is_ours(name):
            full.setdefault(name, []).append(line if rule_id else FOREIGN_RULE_TEXT)
            if rule_id:
                with_ours.add(name)
    close()
    return TableState({n: ids if type(ids) is tuple else tuple(ids) for n, ids in chains.items()},
                      {n: tuple(rules) for n, rules in full.items() if n in with_ours})


# --------------------------------------------------------------------------------------
# Planning: (desired Table, kernel TableState) -> restore transactions.

@dataclass(frozen=True)
class TablePlan:
    """The restore transactions that turn ``old`` into the desired table, and the state the
    kernel will be in once they succeed. Empty when nothing differs."""

    table: str
    transactions: tuple[tuple[str, ...], ...]
    new_state: TableState
    written_chains: tuple[str, ...] = ()
    deleted_chains: tuple[str, ...] = ()
    fixed_kernel_chains: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return any(self.transactions)

    def restore_input(self) -> str:
        """``*<table>`` ... ``COMMIT`` per non-empty transaction (Felix's RestoreInputBuilder
        drops empty ones)."""
        out = []
        for txn in self.transactions:
            if txn:
                out.append(f"*{self.table}")
                out.extend(txn)
                out.append("COMMIT")
        return "\n".join(out) + "\n" if out else ""

    @property
    def line_count(self) -> int:
        """Lines fed to iptables-restore, ``*table`` and ``COMMIT`` included (Felix's
        felix_iptables_lines_executed counts those too)."""
        return sum(len(t) + 2 for t in self.transactions if t)


def _collapse_foreign(ids: Sequence[str]) -> tuple[str, ...]:
    """Rule IDs with each run of foreign rules folded into one ``""``: the placement of our
    rules relative to the foreign ones, whatever their number."""
    out: list[str] = []
    for rule_id in ids:
        if rule_id or not out or out[-1]:
            out.append(rule_id)
    return tuple(out)


def drifted_chains(expected: TableState, actual: TableState, matchers: Matchers) -> list[str]:
    """Chains where a fresh read differs from our picture (Felix logs these as out of sync):
    our chains whose IDs differ or that appeared/vanished, and foreign chains where our
    rules or their placement around the foreign ones changed (other programs adding or
    removing their own rules is not drift)."""
    out = []
    for name in sorted(set(expected.chains) | set(actual.chains)):
        old, new = expected.chains.get(name), actual.chains.get(name)
        if old == new:
            continue
        if matchers.is_ours(name):
            out.append(name)
        elif any(old or ()) or any(new or ()):
            if _collapse_foreign(old or ()) != _collapse_foreign(new or ()):
                out.append(name)
    return out


def restore_error_text(stderr: str, restore_input: str) -> str:
    """iptables-restore's complaint on one line, with the input line it names quoted (the
    usage hint and the deprecation notice for --wait-interval left out)."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()
             and not line.startswith(("Ignoring deprecated --wait-interval", "Try `"))]
    text = " ".join(lines)
    m = re.search(r"Error occurred at line: (\d+)", text)
    if m:
        number = int(m.group(1))
        input_lines = restore_input.splitlines()
        if 1 <= number <= len(input_lines):
            text += f" ({input_lines[number - 1]})"
    return text


def delete_by_value(saved_rule: str) -> str:
    """A saved ``-A <chain> ...`` rule as the ``-D`` that removes it."""
    return "-D" + saved_rule[2:] if saved_rule.startswith("-A") else saved_rule.replace("-A", "-D", 1)


def chain_diff(chain_name: str, rules: Sequence, old_ids: Sequence[str], new_ids: Sequence[str]) -> list[str]:
    """Felix's minimal per-chain update: ``-R`` where the IDs differ, ``-D <len(new)+1>`` per
    surplus rule, ``-A`` for extra ones."""
    lines = []
    common = min(len(old_ids), len(new_ids))
    for i in range(common):
        if old_ids[i] != new_ids[i]:
            lines.append(render_replace(rules[i], chain_name, i + 1, new_ids[i]))
    lines.extend(f"-D {chain_name} {len(new_ids) + 1}" for _ in range(len(old_ids) - len(new_ids)))
    for i in range(len(old_ids), len(new_ids)):
        lines.append(render_append(rules[i], chain_name, new_ids[i]))
    return lines


def _kernel_chain_order(desired: Table, actual: TableState, matchers: Matchers) -> list[str]:
    """The chains whose Calico rules we place or clean: the kernel chains in kernel order,
    then any other foreign chain (an older Felix may have hooked it)."""
    others = sorted(n for n in actual.chains if n not in desired.kernel_chains and not matchers.is_ours(n))
    return list(desired.kernel_chains) + others


def plan_table(desired: Table, actual: TableState, *, nft: bool = False,
               matchers: Matchers | None = None, whole_chains: bool = False) -> TablePlan:
    """What to write so that the kernel's table (``actual``) matches ``desired``.

    ``whole_chains`` rewrites each changed chain from scratch (flush, then append) instead
    of patching it by rule position: always with nft (as Felix does), and with legacy
    whenever ``actual`` is our own prediction rather than a fresh read, since positions
    are only safe to address in a chain we have just seen.

    Our chains must match their desired rule IDs exactly; our chains that are not
    programmed are flushed and deleted; a foreign chain must hold exactly our inserts
    (first in insert mode, after the foreign rules in append mode) and appends (last) of
    it, else all our rules in it are deleted by value and re-added. Foreign rules are never
    addressed, except by position inside our own chains (where they are drift).
    """
    matchers = matchers or matchers_for(desired.name)
    table = desired.name
    chains = dict(actual.chains)
    full_rules = dict(actual.full_rules)
    programmed = desired.programmed_chains()
    wanted = {c.name for c in programmed}
    to_delete = sorted(n for n in actual.chains if matchers.is_ours(n) and n not in wanted)

    forward_refs: list[str] = []
    body: list[str] = []
    written: list[str] = []
    for chain in programmed:
        new_ids = chain.rule_ids
        old_ids = actual.chains.get(chain.name)
        if old_ids == new_ids:
            continue
        written.append(chain.name)
        if nft or whole_chains or old_ids is None:
            # Create (or, with nft, flush) and write whole.
            forward_refs.append(f":{chain.name} - -")
            old_ids = ()
        body.extend(chain_diff(chain.name, chain.rules, old_ids, new_ids))
        chains[chain.name] = new_ids
    forward_refs.extend(f":{name} - -" for name in to_delete)

    fixed: list[str] = []
    for k in _kernel_chain_order(desired, actual, matchers):
        old_ids = actual.chains.get(k, ())
        n_foreign = old_ids.count("")
        is_kernel = k in desired.kernel_chains
        if is_kernel:
            expected = tuple(desired.expected_kernel_chain_ids(k, n_foreign))
        else:
            expected = ("",) * n_foreign
        if expected == old_ids:
            continue
        fixed.append(k)
        saved = actual.full_rules.get(k, ())
        for i, rule_id in enumerate(old_ids):
            if rule_id:
                if i >= len(saved) or saved[i] == FOREIGN_RULE_TEXT:
                    raise IptablesError(f"internal error: no saved text for rule {i + 1} of {table} {k}")
                body.append(delete_by_value(saved[i]))
        if not is_kernel:
            chains[k] = expected
            full_rules.pop(k, None)
            continue
        inserts, appends = desired.inserted_rules(k), desired.appended_rules(k)
        ins_ids, app_ids = desired.inserted_rule_ids(k), desired.appended_rule_ids(k)
        ins_text = [render_append(r, k, i) for r, i in zip(inserts, ins_ids)]
        app_text = [render_append(r, k, i) for r, i in zip(appends, app_ids)]
        foreign = [FOREIGN_RULE_TEXT] * n_foreign
        if desired.insert_mode == "insert":
            # Each -I goes on top, so reverse order leaves them in order.
            body.extend(render_insert(r, k, i) for r, i in reversed(list(zip(inserts, ins_ids))))
            new_full = ins_text + foreign + app_text
        else:
            body.extend(ins_text)
            new_full = foreign + ins_text + app_text
        body.extend(app_text)
        chains[k] = expected
        if inserts or appends:
            full_rules[k] = tuple(new_full)
        else:
            full_rules.pop(k, None)

    deletes = [f"--delete-chain {name}" for name in to_delete]
    for name in to_delete:
        chains.pop(name, None)
    if nft:
        # iptables-nft only lets a chain go once it was unreferenced at the start of a
        # transaction: delete in a second one (flushing again, as Felix does).
        transactions = (tuple(forward_refs + body), tuple([f":{n} - -" for n in to_delete] + deletes))
    else:
        transactions = (tuple(forward_refs + body + deletes),)
    return TablePlan(table, transactions, TableState(chains, full_rules), tuple(written),
                     tuple(to_delete), tuple(fixed))


# --------------------------------------------------------------------------------------
# The runner.

@dataclass
class Counters:
    """Cumulative figures for Felix's metrics (felix_iptables_restore_calls,
    _restore_errors, _save_calls, _save_errors, _lines_executed{table})."""

    restore_calls: int = 0
    restore_errors: int = 0
    save_calls: int = 0
    save_errors: int = 0
    lines_executed: dict[str, int] = field(default_factory=dict)


@dataclass
class ApplyStats:
    """What one ``apply()`` did: restore calls and lines, failed attempts, save calls,
    the tables written, and when Felix would want the next apply (seconds, or None)."""

    restore_calls: int = 0
    lines: int = 0
    restore_errors: int = 0
    save_calls: int = 0
    tables_written: list[str] = field(default_factory=list)
    drifted: list[str] = field(default_factory=list)
    reschedule_after: float | None = None


class _TableSync:
    """The kernel picture and timers of one table (the kernel half of Felix's Table)."""

    def __init__(self, desired: Table, post_write_interval: float, now: float):
        self.desired = desired
        self.matchers = matchers_for(desired.name)
        self.state = TableState()
        self.has_picture = False    # state holds a read or a write, not the empty start
        self.needs_read = True      # the picture may not match the kernel: read first
        self.verified = False       # the picture came from a read, not from our own write
        self.last_read = float("-inf")
        self.last_write = now       # as Felix: post-write checks also run after startup
        self.initial_post_write = max(post_write_interval, MIN_POST_WRITE_INTERVAL)
        self.post_write = self.initial_post_write
        self.peak_save = 0.0
        self.peak_restore = 0.0


class IptablesDataplane:
    """Programs the four tables of one IP family and keeps them programmed.

    ``tables`` maps table name -> desired ``Table`` (``DesiredDataplane.tables``); they are
    read at each ``apply()``, so the caller keeps mutating them and calls ``apply()`` after
    each batch. ``backend`` is ``auto``/``legacy``/``nft`` (auto runs Felix's detection;
    pass a resolved value to share one detection between families). The insert mode is
    each Table's own. ``run`` executes a command in the current network namespace.
    """

    def __init__(self, ip_version: int, tables: Mapping[str, Table], *, backend: str = "auto",
                 lock_probe_interval: float = 0.05, refresh_interval: float = 0.0,
                 post_write_interval: float = 5.0, run: Runner = subprocess_runner,
                 exists: Callable[[str], object] = shutil.which, features: Features | None = None,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic,
                 on_still_alive: Callable[[], None] | None = None):
        if ip_version not in (4, 6):
            raise ValueError(f"IP version must be 4 or 6, not {ip_version}")
        for name, table in tables.items():
            if table.name != name or table.ip_version != ip_version:
                raise ValueError(f"table {name!r} is {table.name} for IPv{table.ip_version}")
        self.ip_version = ip_version
        self.tables = dict(tables)
        self._run = run
        self._sleep = sleep
        self._clock = clock
        self._still_alive = on_still_alive or (lambda: None)
        self.backend = detect_backend(backend, run, exists) if backend.lower() == "auto" else backend.lower()
        if self.backend not in BACKENDS:
            raise ValueError(f"IptablesBackend must be auto, legacy or nft, not {backend!r}")
        self.nft = self.backend == "nft"
        self.save_cmd = find_binary(ip_version, self.backend, "save", exists)
        self.restore_cmd = find_binary(ip_version, self.backend, "restore", exists)
        self.features = features if features is not None else detect_features(run)
        self.restore_args = ["--noflush", "--verbose"]
        if self.features.restore_supports_lock:
            self.restore_args += ["--wait", str(LOCK_TIMEOUT_SECONDS),
                                  "--wait-interval", str(int(round(lock_probe_interval * 1_000_000)))]
        self.refresh_interval = refresh_interval
        self.counters = Counters(lines_executed={n: 0 for n in self.tables})
        now = clock()
        self._syncs = {n: _TableSync(t, post_write_interval, now) for n, t in self.tables.items()}
        log.info("iptables IPv%d: %s backend (%s, %s)", ip_version, self.backend, self.save_cmd, self.restore_cmd)

    # -- public -------------------------------------------------------------------------

    def refresh(self) -> None:
        """Distrust the picture of the kernel: the next ``apply()`` reads every table and
        repairs whatever drifted (the agent calls this every IptablesRefreshInterval)."""
        for s in self._syncs.values():
            s.needs_read = True

    def apply(self) -> ApplyStats:
        """Bring every table in line with its desired state. Tables are independent: a
        table that still fails after the retries does not stop the others; the error,
        with iptables' text, is raised once all were tried."""
        stats = ApplyStats()
        errors: dict[str, str] = {}
        now = self._clock()
        for name, s in self._syncs.items():
            self._check_timers(s, now)
            try:
                self._apply_table(s, stats)
            except IptablesError as exc:
                errors[name] = str(exc)
        stats.reschedule_after = self._reschedule_after(now)
        if errors:
            raise IptablesApplyError("; ".join(errors.values()), list(errors), stats)
        return stats

    def kernel_state(self, table: str) -> TableState:
        """The current picture of a table's kernel state (as last read or written)."""
        return self._syncs[table].state

    def table_sizes(self) -> dict[str, tuple[int, int]]:
        """Per table: (chains, rules) programmed, kernel chains included (Felix's
        felix_iptables_chains / felix_iptables_rules gauges)."""
        out = {}
        for name, t in self.tables.items():
            programmed = t.programmed_chains()
            rules = sum(len(c.rules) for c in programmed)
            rules += sum(len(t.inserted_rules(k)) + len(t.appended_rules(k)) for k in t.kernel_chains)
            out[name] = (len(programmed) + len(t.kernel_chains), rules)
        return out

    # -- timers ---------------------------------------------------------------------------

    def _check_timers(self, s: _TableSync, now: float) -> None:
        if self.refresh_interval > 0 and now - s.last_read > self.refresh_interval:
            s.needs_read = True
        while s.post_write < MAX_POST_WRITE_INTERVAL and now >= s.last_write + s.post_write:
            s.post_write *= 2
            s.needs_read = True

    def _reschedule_after(self, now: float) -> float | None:
        """Felix's answer to "when should Apply run again": the refresh interval since the
        last read, or sooner for a pending post-write check."""
        best = None
        for s in self._syncs.values():
            after = None
            if self.refresh_interval > 0:
                after = max(0.0, self.refresh_interval - (now - s.last_read))
            if s.post_write < MAX_POST_WRITE_INTERVAL:
                due = s.last_write + s.post_write - now
                due = 0.001 if due <= 0 else due
                after = due if after is None or due < after else after
            if after is not None:
                best = after if best is None else min(best, after)
        return best

    # -- one table ------------------------------------------------------------------------

    def _apply_table(self, s: _TableSync, stats: ApplyStats) -> None:
        retries = RESTORE_RETRIES
        backoff = RESTORE_RETRY_DELAY
        failed_before = False
        while True:
            self._still_alive()
            if s.needs_read:
                self._read(s, stats)
            # Felix re-reads before every write that follows a change. Reading a large
            # table costs far more than the change (200 ms for 24k rules), so when our
            # picture is our own last write we trust it and write whole chains, which is
            # safe whatever happened to them since; the post-write checks and the refresh
            # interval still read the kernel and repair anything else.
            plan = plan_table(s.desired, s.state, nft=self.nft, matchers=s.matchers,
                              whole_chains=not s.verified)
            if not plan:
                return
            log.debug("iptables %s v%d: writing %s, deleting %s, fixing hooks in %s", s.desired.name,
                      self.ip_version, plan.written_chains, plan.deleted_chains, plan.fixed_kernel_chains)
            error = self._restore(s, plan, stats, first=not failed_before)
            if error is None:
                if failed_before:
                    log.warning("iptables %s v%d: succeeded after retry", s.desired.name, self.ip_version)
                s.state = plan.new_state
                s.verified = False
                s.last_write = self._clock()
                s.post_write = max(s.initial_post_write, 2 * (s.peak_save + s.peak_restore))
                stats.tables_written.append(s.desired.name)
                return
            s.needs_read = True
            if retries == 0:
                dump = self._save_text(s)
                log.error("iptables %s v%d: giving up; current state:\n%s", s.desired.name,
                          self.ip_version, dump)
                raise IptablesError(f"{self.restore_cmd} failed for table {s.desired.name} after "
                                    f"{RESTORE_RETRIES} retries: {error}")
            retries -= 1
            failed_before = True
            log.warning("iptables %s v%d: restore failed, retrying in %gs: %s", s.desired.name,
                        self.ip_version, backoff, error)
            self._sleep(backoff)
            backoff *= 2

    def _restore(self, s: _TableSync, plan: TablePlan, stats: ApplyStats, first: bool) -> str | None:
        """Run one restore; None on success, else iptables' error text. The input is logged
        with the first failure of an apply (it can be long; the retries say less)."""
        text = plan.restore_input()
        started = self._clock()
        self.counters.restore_calls += 1
        stats.restore_calls += 1
        self.counters.lines_executed[s.desired.name] = \
            self.counters.lines_executed.get(s.desired.name, 0) + plan.line_count
        stats.lines += plan.line_count
        res = self._run([self.restore_cmd, *self.restore_args], text)
        s.peak_restore = max(s.peak_restore * 0.99, self._clock() - started)
        if res.returncode == 0:
            return None
        self.counters.restore_errors += 1
        stats.restore_errors += 1
        detail = restore_error_text(res.stderr, text) or f"exit status {res.returncode}"
        if first:
            log.warning("%s failed for table %s v%d: %s\ninput:\n%s", self.restore_cmd, s.desired.name,
                        self.ip_version, detail, text)
        return detail

    def _save_text(self, s: _TableSync) -> str:
        res = self._run([self.save_cmd, "-t", s.desired.name], None)
        return res.stdout if res.returncode == 0 else res.stderr

    def _read(self, s: _TableSync, stats: ApplyStats) -> None:
        """iptables-save the table (3 retries, 100 ms doubling) and adopt it as the picture."""
        delay = SAVE_RETRY_DELAY
        retries = SAVE_RETRIES
        while True:
            self._still_alive()
            started = self._clock()
            self.counters.save_calls += 1
            stats.save_calls += 1
            res = self._run([self.save_cmd, "-t", s.desired.name], None)
            s.peak_save = max(s.peak_save * 0.99, self._clock() - started)
            problem = None
            if res.returncode != 0:
                problem = res.stderr.strip() or f"exit status {res.returncode}"
            else:
                try:
                    state = parse_save(res.stdout, s.matchers, s.desired)
                except SaveOutputError as exc:
                    problem = str(exc)
            if problem is None:
                if s.has_picture:
                    drifted = drifted_chains(s.state, state, s.matchers)
                    if drifted:
                        log.warning("iptables %s v%d: the kernel no longer holds what we wrote in %s; "
                                    "repairing", s.desired.name, self.ip_version, ", ".join(drifted))
                        stats.drifted.extend(f"{s.desired.name}/{c}" for c in drifted)
                s.state = state
                s.has_picture = True
                s.needs_read = False
                s.verified = True
                s.last_read = started
                return
            self.counters.save_errors += 1
            log.warning("%s -t %s failed: %s", self.save_cmd, s.desired.name, problem)
            if retries == 0:
                raise IptablesError(f"{self.save_cmd} -t {s.desired.name} failed after "
                                    f"{SAVE_RETRIES} retries: {problem}")
            retries -= 1
            self._sleep(delay)
            delay *= 2


def from_config(ip_version: int, tables: Mapping[str, Table], config, **kwargs) -> IptablesDataplane:
    """An IptablesDataplane with Felix's parameters taken from a FelixConfig."""
    return IptablesDataplane(
        ip_version, tables, backend=kwargs.pop("backend", config.IptablesBackend),
        lock_probe_interval=config.IptablesLockProbeIntervalMillis,
        refresh_interval=config.table_refresh_interval(),
        post_write_interval=config.IptablesPostWriteCheckIntervalSecs, **kwargs)


__all__ = [
    "ApplyStats", "Counters", "Features", "IptablesApplyError", "IptablesDataplane", "IptablesError",
    "Matchers", "RunResult",
    "TablePlan", "TableState", "chain_diff", "choose_backend", "count_rules", "delete_by_value",
    "detect_backend", "detect_features", "drifted_chains", "features_for", "find_binary", "from_config",
    "has_kubernetes_chains", "iptables_version", "iter_lines", "kernel_version", "legacy_modules_loaded",
    "matchers_for", "parse_save", "parse_version", "plan_table", "restore_error_text", "subprocess_runner",
]
