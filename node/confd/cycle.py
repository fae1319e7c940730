"""One render cycle: inputs -> picture -> six files -> installed (or a logged reason why not).

Every mode goes through ``render_cycle``: the daemon after each batch of changes, the
one-shot from the datastore, and the one-shot from files (which the golden tests use).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

from node.confd.inputs import ConfdInputs, Settings
from node.confd.install import FamilyOutcome, Installer
from node.confd.picture import RenderError, build_picture
from node.confd.render import render_family

log = logging.getLogger(__name__)


@dataclass
class CycleResult:
    error: str = ""                                  # why nothing could be rendered
    families: list[FamilyOutcome] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.error and not any(f.failed for f in self.families)

    @property
    def changed(self) -> list[str]:
        return [name for f in self.families for name in f.changed if f.installed]


def render_cycle(inputs: ConfdInputs, settings: Settings, installer: Installer) -> CycleResult:
    """Render both families from ``inputs`` and install what changed.

    Render errors (this node's Node missing, a BGPFilter BIRD cannot express) are logged
    and leave the installed files alone; I/O errors propagate so the caller can retry.
    """
    result = CycleResult()
    try:
        picture = build_picture(inputs, settings)
    except RenderError as exc:
        result.error = str(exc)
        log.error("not rendering BIRD config: %s", exc)
        return result
    for version in (4, 6):
        family = picture.family(version)
        try:
            files = render_family(family)
        except RenderError as exc:
            result.families.append(FamilyOutcome(version, error=str(exc)))
            log.error("%s; keeping the installed IPv%d config", exc, version)
            continue
        result.families.append(installer.install_family(version, files, family.krt_tunnel_pools))
    return result
