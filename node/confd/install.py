"""Put rendered files in place: change detection, the ``bird -p`` gate, atomic writes, reload.

Per address family (``bird_aggr.cfg``, ``bird_ipam.cfg``, ``bird.cfg`` and their
``bird6`` siblings):

1. nothing happens unless some file's content differs from what is installed;
2. the family's new files are checked together with ``bird -p`` (or ``bird6 -p``) in a
   scratch directory, so the main file is checked against the new include files;
3. a config BIRD rejects is logged with BIRD's error and not installed, except on first
   start: when no main file is installed yet, Calico's confd installs it anyway ("check
   failed, but file does not yet exist - create anyway"), and so do we;
4. changed files are written to a temp file in the output directory and renamed over
   the old one, included files before the file that includes them;
5. BIRD is told to ``configure`` over its control socket, and its answer logged. If BIRD
   is not running the reload is skipped: it reads the files when it starts.

Stock BIRD 1.6.8 lacks Calico's ``krt_tunnel`` attribute, which the IPv4 file uses when
BIRD programs IPIP pools. That is detected once; such a config is then not offered to
BIRD at all, and one warning names the pools, instead of a failed check on every change.
"""
from __future__ import annotations

import logging
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from node import bird, files
from node.confd.render import FAMILY_FILES, MAIN_FILES

log = logging.getLogger(__name__)

FILE_MODE = 0o644
BIRD_BINARIES = {4: "bird", 6: "bird6"}
_PROBE_CONTROL = 'router id 192.0.2.1;\nprotocol device {}\nfilter probe {\n  accept;\n}\n'
_KRT_TUNNEL_PROBE = _PROBE_CONTROL.replace("  accept;", '  krt_tunnel = "tunl0";\n  accept;')


@dataclass
class FamilyOutcome:
    version: int
    changed: list[str] = field(default_factory=list)
    installed: bool = False
    error: str = ""          # why the family was not installed, or why the reload failed
    reloaded: bool = False

    @property
    def failed(self) -> bool:
        return bool(self.error)


def krt_tunnel_supported(binary: str = "bird") -> bool:
    """Does this BIRD accept the ``krt_tunnel`` route attribute (Calico's BIRD fork)?"""
    scratch = Path(tempfile.mkdtemp(prefix="calico-bird-probe-"))
    try:
        control = scratch / "control.cfg"
        control.write_text(_PROBE_CONTROL)
        if not bird.parse_config(control, binary).ok:
            log.warning("%s cannot parse a minimal config; assuming it lacks krt_tunnel", binary)
            return False
        probe = scratch / "probe.cfg"
        probe.write_text(_KRT_TUNNEL_PROBE)
        return bird.parse_config(probe, binary).ok
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def write_atomically(path: Path, content: str, mode: int = FILE_MODE) -> None:
    """Write ``content`` to ``path`` through a temp file renamed over it (same directory)."""
    files.write_atomically(path, content, mode)


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None


class Installer:
    """Installs rendered families into ``output_dir``; keeps state across calls (the
    krt_tunnel capability and which warnings were already given)."""

    def __init__(self, output_dir: Path, *, check: bool = True, reload: bool = True,
                 sockets: dict[int, Path] | None = None, binaries: dict[int, str] | None = None,
                 krt_tunnel: bool | None = None):
        self.output_dir = Path(output_dir)
        self.check = check
        self.reload = reload
        self.sockets = sockets or {}
        self.binaries = dict(BIRD_BINARIES, **(binaries or {}))
        self._krt_tunnel = krt_tunnel
        self._krt_warned: tuple[str, ...] = ()

    @property
    def krt_tunnel(self) -> bool:
        if self._krt_tunnel is None:
            self._krt_tunnel = krt_tunnel_supported(self.binaries[4])
            log.info("installed %s %s the krt_tunnel attribute", self.binaries[4],
                     "supports" if self._krt_tunnel else "does not support")
        return self._krt_tunnel

    def _check(self, version: int, files: dict[str, str]) -> bird.ParseResult:
        scratch = Path(tempfile.mkdtemp(prefix="calico-confd-check-"))
        try:
            for name, content in files.items():
                (scratch / name).write_text(content, encoding="utf-8")
            return bird.parse_config(scratch / MAIN_FILES[version], self.binaries[version])
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def _krt_tunnel_blocked(self, version: int, krt_tunnel_pools: list[str]) -> bool:
        """True when the IPv4 config needs krt_tunnel and this BIRD lacks it. Warns once
        per set of affected pools rather than on every render."""
        if version != 4:
            return False
        pools = tuple(sorted(krt_tunnel_pools))
        if not pools:
            self._krt_warned = ()
            return False
        supported = self.krt_tunnel
        if pools != self._krt_warned:
            self._krt_warned = pools
            if supported:
                log.warning("BIRD programs the cluster routes of IPIP pool(s) %s (BGPConfiguration "
                            "programClusterRoutes). That is deprecated since Calico v3.33 and goes away in v3.35: "
                            "set programClusterRoutes to EnabledNoEncapOnly or Disabled and let Felix program them.",
                            ", ".join(pools))
            else:
                log.warning(
                    "BIRD is asked to program the routes of IPIP pool(s) %s through tunl0 (BGPConfiguration "
                    "programClusterRoutes), which needs the krt_tunnel attribute of Calico's BIRD; the installed "
                    "%s does not have it, so the IPv4 BIRD config is not installed while this lasts. Set "
                    "programClusterRoutes to EnabledNoEncapOnly or Disabled (Felix then programs those routes, "
                    "and BIRD-programmed IPIP routes are deprecated anyway), or install Calico's BIRD.",
                    ", ".join(pools), self.binaries[4])
        return not supported

    def install_family(self, version: int, files: dict[str, str],
                       krt_tunnel_pools: list[str] | None = None) -> FamilyOutcome:
        """Install one family's rendered files (``files`` holds all three)."""
        outcome = FamilyOutcome(version)
        names = FAMILY_FILES[version]
        self.output_dir.mkdir(parents=True, exist_ok=True)
        outcome.changed = [n for n in names if _read(self.output_dir / n) != files[n]]
        blocked = (self.check or self.reload) and self._krt_tunnel_blocked(version, krt_tunnel_pools or [])
        if not outcome.changed:
            return outcome
        main = MAIN_FILES[version]
        main_installed = (self.output_dir / main).exists()
        if self.check or blocked:
            if blocked:
                result = bird.ParseResult(False, "the config sets krt_tunnel, which this BIRD lacks")
            else:
                result = self._check(version, {n: files[n] for n in names})
            if not result.ok:
                if main_installed:
                    outcome.error = f"{self.binaries[version]} rejects the new {main}: {result.message}"
                    if not blocked:
                        log.error("%s; keeping the installed config", outcome.error)
                    return outcome
                log.warning("%s rejects the new %s (%s), but no %s is installed yet: installing it anyway, "
                            "as Calico's confd does on first start", self.binaries[version], main,
                            result.message, main)
        for name in names:  # included files first, the main file last
            if name in outcome.changed:
                write_atomically(self.output_dir / name, files[name])
                log.info("Target config %s has been updated", self.output_dir / name)
        outcome.installed = True
        if self.reload and not blocked:
            self._reload(version, outcome)
        return outcome

    def _reload(self, version: int, outcome: FamilyOutcome) -> None:
        socket_path = self.sockets.get(version)
        if socket_path is None:
            return
        try:
            reply = bird.configure(socket_path)
        except bird.BirdNotRunning:
            log.debug("BIRD (IPv%d) is not running at %s; it reads the new config when it starts",
                      version, socket_path)
            return
        except bird.BirdError as exc:
            outcome.error = str(exc)
            log.error("reloading BIRD (IPv%d) failed: %s", version, exc)
            return
        outcome.reloaded = True
        log.info("BIRD (IPv%d) reloaded: %s", version, reply.text.replace("\n", "; "))
