"""The kernel's IP sets of one family, kept equal to the desired ``IPSets``.

Felix's ``ipsets.IPSets`` (felix/ipsets/ipsets.go), as a pure plan plus a thin applier:

* the kernel is read with ``ipset list -name`` and ``ipset list <name>`` for the names
  Felix owns (``^(cali4|felix-4|felix-masq-ipam-pools|felix-all-ipam-pools)``, or
  ``^(cali6|felix-6)``), and cached; the cache is what the next apply diffs against;
* ``plan_updates(desired, kernel)`` gives the ``ipset restore`` lines: ``create`` + ``add``
  for a new set, ``del --exist``/``add`` deltas for a set with the right metadata, and a
  temporary ``cali4t<n>`` set filled and ``swap``ped in when the maxelem changed, when the
  set could not be listed, or when rewriting is shorter than the delta. The kernel refuses to swap sets of different type
  or family, so such a set is destroyed and re-created instead, once nothing references
  it; ``plan_deletions`` names the owned sets that are no longer wanted (temp sets too);
* ``IPSetsDataplane`` runs ONE ``ipset restore`` per ``apply_updates()`` (before the
  iptables apply, so rules never reference a missing set) and destroys unwanted sets in
  ``apply_deletions()`` (after it, so references are gone first). A failed restore (or
  read) is retried after a fresh read, up to 10 attempts with a backoff from 1 ms
  doubling, as Felix's ApplyUpdates does. A destroy that fails (the set is still in use,
  say by another program's rule) is not tried again until the next read of the kernel
  (Felix's DeleteFailed, cleared by a resync), so a set that stays in use costs one
  ``ipset destroy`` per refresh interval, not one per apply. With nothing changed an
  apply runs no command at all; ``refresh()`` (or the refresh interval) re-reads the
  kernel and repairs drift with only the difference.
"""
from __future__ import annotations

import logging
import re
import subprocess
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping, Sequence

from node.felix import netaddr
from node.felix.dataplane.iptables import iter_lines
from node.felix.desired import IPSet, IPSets, canonical_member

log = logging.getLogger(__name__)

FAMILIES = {4: "inet", 6: "inet6"}
_OWNED = {
    4: re.compile(r"^(cali4|felix-4|felix-masq-ipam-pools|felix-all-ipam-pools)"),
    6: re.compile(r"^(cali6|felix-6)"),
}
# A delta shorter than this many lines is always written as a delta.
REWRITE_MIN_CHANGES = 1000
# Destroys are slow (tens of ms each, serialised in the kernel): a bounded number per call.
MAX_DELETIONS_PER_CALL = 20
# Attempts of one apply (each after a fresh read of the kernel) before giving up, and the
# first pause between two, doubled each time (Felix's MaxRetryAttempt and retryDelay).
MAX_APPLY_ATTEMPTS = 10
RETRY_DELAY = 0.001


class IPSetsError(RuntimeError):
    """The kernel's IP sets could not be read or brought in line."""


def owns(name: str, version: int) -> bool:
    """Whether Felix considers the set its own (so it may rewrite or destroy it)."""
    return bool(_OWNED[version].match(name))


def temp_name(version: int, index: int) -> str:
    return f"cali{version}t{index}"


def is_temp(name: str, version: int) -> bool:
    return name.startswith(f"cali{version}t")


# --------------------------------------------------------------------------------------
# Kernel state.

@dataclass(frozen=True)
class SetMeta:
    """What cannot change without re-creating a set (Felix's dataplaneMetadata)."""

    type: str
    family: str
    max_size: int


@dataclass
class KernelSet:
    """One set as listed. ``meta`` is None when the listing could not be understood
    (Felix's ListFailed): the set is then rewritten."""

    meta: SetMeta | None
    members: set[str] = field(default_factory=set)
    references: int = 0


def canonical_listed(member: str) -> str:
    """A member as ``ipset list`` prints it, in the desired side's canonical text; text we
    cannot parse is kept raw so that it is deleted as it was printed. (Not through
    canonical_member's cache: a read comes once a refresh interval, and caching the
    kernel's spellings would hold a second entry per member for nothing.)"""
    try:
        return canonical_member.__wrapped__(member)
    except ValueError:
        return member


def parse_list(text: str) -> dict[str, KernelSet]:
    """``ipset list [name]`` output (one or more ``Name:`` blocks) by set name."""
    out: dict[str, KernelSet] = {}
    name = ""
    set_type = ""
    current: KernelSet | None = None
    in_members = False
    for line in iter_lines(text):
        if in_members:
            if line.strip():
                current.members.add(canonical_listed(line.strip()))
                continue
            in_members = False
        if line.startswith("Name:"):
            name = line.split(":", 1)[1].strip()
            set_type = ""
            current = out[name] = KernelSet(meta=None)
        elif current is None:
            continue
        elif line.startswith("Type:"):
            set_type = line.split(":", 1)[1].strip()
        elif line.startswith("Header:"):
            current.meta = _parse_header(set_type, line.split(":", 1)[1].split())
        elif line.startswith("References:"):
            value = line.split(":", 1)[1].strip()
            current.references = int(value) if value.isdigit() else 0
        elif line.startswith("Members:"):
            in_members = True
    return out


def _parse_header(set_type: str, words: list[str]) -> SetMeta | None:
    """``family inet hashsize 1024 maxelem 1048576 ...`` -> metadata (None if incomplete).
    Each value is the word after its keyword, as Felix reads ``maxelem``: flags without a
    value (``counters``, ``comment``, ``forceadd``...) may stand anywhere in the header."""
    def after(keyword: str) -> str:
        try:
            return words[words.index(keyword) + 1]
        except (ValueError, IndexError):
            return ""

    family = after("family")
    max_size = after("maxelem")
    if not set_type or not family or not max_size.isdigit():
        return None
    return SetMeta(set_type, family, int(max_size))


# --------------------------------------------------------------------------------------
# Plans (pure).

@dataclass(frozen=True)
class UpdatePlan:
    """``lines`` for one ``ipset restore`` (without COMMIT); ``after`` what the touched sets
    hold once it ran (temp sets included); ``blocked`` sets whose type must change but are
    referenced, which the kernel does not allow; ``next_temp`` the next temp index."""

    lines: tuple[str, ...]
    after: dict[str, KernelSet]
    blocked: tuple[str, ...] = ()
    next_temp: int = 0


def _sorted(members: Iterable[str]) -> list[str]:
    return sorted(members, key=netaddr.sort_key)


def plan_updates(desired: Mapping[str, IPSet], kernel: Mapping[str, KernelSet], *, version: int,
                 max_size: int, next_temp: int = 0,
                 rewrite_min: int = REWRITE_MIN_CHANGES) -> UpdatePlan:
    """The restore lines that make every desired set equal in the kernel, touching only
    what differs (sets in name order, deletions before additions, as Felix writes them)."""
    family = FAMILIES[version]
    lines: list[str] = []
    recreate: list[str] = []
    after: dict[str, KernelSet] = {}
    blocked: list[str] = []
    taken = set(kernel)

    def create_line(name: str, meta: SetMeta) -> str:
        return f"create {name} {meta.type} family {meta.family} maxelem {meta.max_size}"

    for name in sorted(desired):
        want = desired[name]
        meta = SetMeta(want.type.value, family, max_size)
        have = kernel.get(name)
        if have is None:
            lines.append(create_line(name, meta))
            lines.extend(f"add {name} {m}" for m in _sorted(want.members))
            after[name] = KernelSet(meta, set(want.members))
            continue
        # swap needs equal type and family: a set listed with another one is destroyed and
        # re-created, if nothing uses it. One whose listing failed (Felix's ListFailed: a
        # revision this ipset cannot read, say) has unknown references; as Felix, it is
        # rewritten through a temp set and swap below, never destroyed.
        type_changed = have.meta is not None and (have.meta.type != meta.type or have.meta.family != meta.family)
        if type_changed:
            if have.references:
                blocked.append(name)
                continue
            recreate.append(f"destroy {name}")
            recreate.append(create_line(name, meta))
            recreate.extend(f"add {name} {m}" for m in _sorted(want.members))
            after[name] = KernelSet(meta, set(want.members))
            continue
        to_del = have.members - want.members
        to_add = want.members - have.members
        rewrite = have.meta != meta or (
            len(to_del) + len(to_add) >= rewrite_min and len(to_del) + len(to_add) > len(want.members) + 2)
        if rewrite:
            while temp_name(version, next_temp) in taken:
                next_temp += 1
            temp = temp_name(version, next_temp)
            next_temp += 1
            taken.add(temp)
            lines.append(create_line(temp, meta))
            lines.extend(f"add {temp} {m}" for m in _sorted(want.members))
            lines.append(f"swap {name} {temp}")
            after[name] = KernelSet(meta, set(want.members), have.references)
            after[temp] = KernelSet(have.meta, set(), 0)
            continue
        if not to_del and not to_add:
            continue
        lines.extend(f"del {name} {m} --exist" for m in _sorted(to_del))
        lines.extend(f"add {name} {m}" for m in _sorted(to_add))
        after[name] = KernelSet(meta, set(want.members), have.references)
    return UpdatePlan(tuple(lines + recreate), after, tuple(blocked), next_temp)


def plan_deletions(desired: Iterable[str], kernel: Mapping[str, KernelSet], version: int) -> list[str]:
    """Owned sets in the kernel that are not desired: stale sets and used temp sets,
    temp sets first (they never have references)."""
    wanted = set(desired)
    stale = [n for n in kernel if n not in wanted and owns(n, version)]
    return sorted(stale, key=lambda n: (not is_temp(n, version), n))


# --------------------------------------------------------------------------------------
# The applier.

@dataclass
class IPSetStats:
    """Counters for metrics (Felix: felix_ipset_calls, felix_ipset_lines_executed,
    felix_ipset_errors, felix_ipsets_calico, felix_ipsets_total). ``commands`` counts
    every ipset process; ``sets`` is the owned sets in the kernel as last known,
    ``sets_after_updates`` the same at the end of the last ``apply_updates``."""

    restore_calls: int = 0
    lines: int = 0
    errors: int = 0
    commands: int = 0
    sets: int = 0
    sets_after_updates: int = 0
    # Seconds each ipset process took to start, until the metrics take them.
    exec_starts: list[float] = field(default_factory=list)


Runner = Callable[[Sequence[str], str | None], subprocess.CompletedProcess]


class TimedProcess(subprocess.CompletedProcess):
    """A finished command with the seconds its process took to start (fork and exec):
    Felix's felix_exec_time_micros."""

    def __init__(self, args, returncode, stdout, stderr, start_seconds: float):
        super().__init__(args, returncode, stdout, stderr)
        self.start_seconds = start_seconds


def run_command(argv: Sequence[str], stdin: str | None) -> subprocess.CompletedProcess:
    started = time.perf_counter()
    with subprocess.Popen(list(argv), stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        start_seconds = time.perf_counter() - started
        out, err = proc.communicate(stdin)
    return TimedProcess(list(argv), proc.returncode, out, err, start_seconds)


class IPSetsDataplane:
    """Keeps the kernel's IP sets of ``desired.ip_version`` equal to ``desired.sets``.

    The desired side is read whole at each apply (a set comparison per set, cheap next to
    any ipset call), so the journal of ``IPSets.take_changes`` stays with its other readers.
    ``refresh_interval`` (Felix's IpsetsRefreshInterval, 0 disables) makes an apply re-read
    the kernel first when that long has passed since the last read.
    """

    def __init__(self, desired: IPSets, *, refresh_interval: float = 90.0,
                 rewrite_min: int = REWRITE_MIN_CHANGES, max_deletions: int = MAX_DELETIONS_PER_CALL,
                 ipset: str = "ipset", runner: Runner = run_command,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep):
        self.desired = desired
        self.version = desired.ip_version
        self.refresh_interval = refresh_interval
        self.rewrite_min = rewrite_min
        self.max_deletions = max_deletions
        self.ipset = ipset
        self.stats = IPSetStats()
        self._run_command = runner
        self._clock = clock
        self._sleep = sleep
        self._kernel: dict[str, KernelSet] | None = None
        # Sets whose destroy failed since the kernel was last read (Felix's DeleteFailed).
        self._delete_failed: set[str] = set()
        self._read_at = 0.0
        self._next_temp = 0
        self._warned_blocked: set[str] = set()
        self._warned_in_use: set[str] = set()

    # -- commands --------------------------------------------------------------------------

    def _run(self, args: Sequence[str], stdin: str | None = None) -> subprocess.CompletedProcess:
        self.stats.commands += 1
        try:
            proc = self._run_command([self.ipset, *args], stdin)
        except OSError as exc:  # no ipset binary, or it cannot be started
            self.stats.errors += 1
            raise IPSetsError(f"cannot run {self.ipset}: {exc}") from exc
        started = getattr(proc, "start_seconds", None)
        if started is not None and len(self.stats.exec_starts) < 1000:  # bounded if nobody takes them
            self.stats.exec_starts.append(started)
        return proc

    def read_kernel(self, only: Iterable[str] | None = None) -> dict[str, KernelSet]:
        """Every owned set of this family with its members (and cache it). With ``only``
        (and a picture to keep), Felix's partial resync after a failed restore: every
        name is listed, but only those sets (and any the picture lacks) are re-read."""
        names = self._run(["list", "-name"])
        if names.returncode != 0:
            self.stats.errors += 1
            raise IPSetsError(f"ipset list -name failed: {names.stderr.strip()}")
        partial = only is not None and self._kernel is not None
        reread = set(only) if partial else set()
        previous = self._kernel if partial else {}
        kernel: dict[str, KernelSet] = {}
        for name in names.stdout.split():
            if not owns(name, self.version):
                continue
            if partial and name not in reread and name in previous:
                kernel[name] = previous[name]
                continue
            listed = self._run(["list", name])
            if listed.returncode != 0:
                if "does not exist" in listed.stderr:
                    continue  # destroyed between the two commands
                log.warning("ipset list %s failed (%s); it will be rewritten", name, listed.stderr.strip())
                kernel[name] = KernelSet(meta=None)
                continue
            parsed = parse_list(listed.stdout).get(name)
            want = self.desired.sets.get(name)
            if parsed is not None and want is not None and parsed.members == want.members:
                # As desired: hold the desired side's member strings rather than the
                # listing's, so a re-read adds no memory (about 0.5 MB at 6,000 members).
                parsed.members = set(want.members)
            kernel[name] = parsed if parsed is not None else KernelSet(meta=None)
        self._kernel = kernel
        if not partial:
            self._read_at = self._clock()
            self._delete_failed.clear()  # a resync gives failed destroys another try
        self.stats.sets = len(kernel)
        return kernel

    def queue_resync(self) -> None:
        """Re-read the kernel before the next apply (after something else touched it)."""
        self._kernel = None

    def _kernel_view(self) -> dict[str, KernelSet]:
        due = self.refresh_interval > 0 and self._clock() - self._read_at >= self.refresh_interval
        if self._kernel is None or due:
            return self.read_kernel()
        return self._kernel

    # -- applying --------------------------------------------------------------------------

    def apply_updates(self) -> None:
        """Create and update sets (before the iptables apply), in one ``ipset restore``.
        A failed read or restore is retried after a fresh read (of the sets the failed
        restore touched for the first five attempts, of all of them after), with a growing
        pause."""
        delay = RETRY_DELAY
        problem = ""
        resync: set[str] | None = None  # the sets a failed restore touched
        for attempt in range(1, MAX_APPLY_ATTEMPTS + 1):
            if attempt > 1:
                self._sleep(delay)
                delay *= 2
            try:
                if resync is not None:
                    kernel = self.read_kernel(only=resync)
                    resync = None
                else:
                    kernel = self._kernel_view()
            except IPSetsError as exc:
                self._kernel = None
                problem = str(exc)
                log.warning("reading the IPv%d IP sets failed (attempt %d of %d): %s", self.version, attempt,
                            MAX_APPLY_ATTEMPTS, problem)
                continue
            plan = plan_updates(self.desired.sets, kernel, version=self.version, max_size=self.desired.max_size,
                                next_temp=self._next_temp, rewrite_min=self.rewrite_min)
            self._warn_blocked(plan.blocked)
            if not plan.lines:
                self.stats.sets_after_updates = len(kernel)
                return
            result = self._run(["restore"], "\n".join(plan.lines) + "\nCOMMIT\n")
            self.stats.restore_calls += 1
            self.stats.lines += len(plan.lines)
            if result.returncode == 0:
                kernel.update(plan.after)
                for line in plan.lines:
                    if line.startswith("destroy "):
                        log.info("IP set %s re-created with a new type", line.split()[1])
                self._next_temp = plan.next_temp
                self.stats.sets = self.stats.sets_after_updates = len(kernel)
                return
            self.stats.errors += 1
            # As Felix: the first half of the attempts re-read only the sets the restore
            # touched (ipset restore is not atomic: those may be half done), the rest all.
            if attempt <= MAX_APPLY_ATTEMPTS // 2:
                resync = set(plan.after)
            else:
                self._kernel = None
            problem = result.stderr.strip()
            first = plan.lines[:3]
            log.warning("ipset restore failed (attempt %d of %d): %s; input began %s (%d lines)", attempt,
                        MAX_APPLY_ATTEMPTS, problem, first, len(plan.lines))
        raise IPSetsError(f"IPv{self.version} IP sets could not be updated after {MAX_APPLY_ATTEMPTS} attempts: "
                          f"{problem}")

    def _warn_blocked(self, blocked: Iterable[str]) -> None:
        for name in blocked:
            if name not in self._warned_blocked:
                self._warned_blocked.add(name)
                log.warning("IP set %s exists with another type and is in use; it is re-created once "
                            "nothing references it", name)

    def apply_deletions(self) -> bool:
        """Destroy owned sets no longer desired (after the iptables apply). Returns True
        when some were destroyed and more remain than one call destroys, so the caller
        calls again soon (never for sets that only failed: as Felix, a set whose destroy
        failed waits for the next read of the kernel, so a set another program still
        uses is not retried on every apply)."""
        kernel = self._kernel_view()
        pending = [n for n in plan_deletions(self.desired.sets, kernel, self.version)
                   if n not in self._delete_failed]
        destroyed = 0
        for name in pending[:self.max_deletions]:
            result = self._run(["destroy", name])
            if result.returncode == 0 or "does not exist" in result.stderr:
                kernel.pop(name, None)
                self._warned_in_use.discard(name)
                destroyed += 1
                log.info("Deleted IP set %s", name)
                continue
            self.stats.errors += 1
            self._delete_failed.add(name)
            if name not in self._warned_in_use:
                self._warned_in_use.add(name)
                log.warning("Failed to delete IP set %s (%s); will retry after the next resync", name,
                            result.stderr.strip())
            else:
                log.debug("IP set %s still cannot be deleted: %s", name, result.stderr.strip())
        self.stats.sets = len(kernel)
        return destroyed > 0 and len(pending) > self.max_deletions

    def refresh(self) -> None:
        """Re-read every owned set now and repair any drift (creates and updates only;
        stale sets go at the next ``apply_deletions``), with ``apply_updates``' retries."""
        self._kernel = None
        self.apply_updates()


__all__ = ["IPSetStats", "IPSetsDataplane", "IPSetsError", "KernelSet", "SetMeta", "UpdatePlan", "is_temp",
           "owns", "parse_list", "plan_deletions", "plan_updates", "temp_name"]
