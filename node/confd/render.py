"""Lay the BGP picture out as the six BIRD files, with the Jinja2 templates.

The templates live in ``templates/bird`` at the repository root; ``CALICO_TEMPLATES_DIR``
points elsewhere (an installed image, a test). Three templates serve both families:
the family picture carries everything that differs.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import jinja2

from node.confd.picture import FamilyPicture, Picture, RenderError

TEMPLATES_ENV = "CALICO_TEMPLATES_DIR"
DEFAULT_TEMPLATES_DIR = Path(__file__).resolve().parents[2] / "templates" / "bird"

# Output file -> (template, family). Included files come first: a file is always
# written after the files it includes.
OUTPUTS: dict[str, tuple[str, int]] = {
    "bird_aggr.cfg": ("bird_aggr.cfg.j2", 4),
    "bird_ipam.cfg": ("bird_ipam.cfg.j2", 4),
    "bird.cfg": ("bird.cfg.j2", 4),
    "bird6_aggr.cfg": ("bird_aggr.cfg.j2", 6),
    "bird6_ipam.cfg": ("bird_ipam.cfg.j2", 6),
    "bird6.cfg": ("bird.cfg.j2", 6),
}
MAIN_FILES = {4: "bird.cfg", 6: "bird6.cfg"}
FAMILY_FILES = {v: [name for name, (_, fam) in OUTPUTS.items() if fam == v] for v in (4, 6)}


def templates_dir() -> Path:
    return Path(os.environ.get(TEMPLATES_ENV) or DEFAULT_TEMPLATES_DIR)


def _bird_bool(value: bool) -> str:
    return "true" if value else "false"


@lru_cache(maxsize=4)
def environment(directory: str) -> jinja2.Environment:
    if not Path(directory, "bird.cfg.j2").is_file():
        raise FileNotFoundError(f"BIRD templates not found in {directory} (set {TEMPLATES_ENV})")
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(directory),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters["bird_bool"] = _bird_bool
    return env


@dataclass(frozen=True)
class Rendered:
    """The six files, in write order (included files before the file including them)."""

    files: dict[str, str]


def render_family(picture: FamilyPicture, directory: Path | None = None) -> dict[str, str]:
    """The three files of one family; RenderError if the family cannot be rendered."""
    if picture.filter_error:
        raise RenderError(f"cannot render {MAIN_FILES[picture.version]}: {picture.filter_error}")
    env = environment(str(directory or templates_dir()))
    out = {}
    for name in FAMILY_FILES[picture.version]:
        template, _ = OUTPUTS[name]
        out[name] = env.get_template(template).render(p=picture)
    return out


def render(picture: Picture, directory: Path | None = None) -> Rendered:
    files = {}
    files.update(render_family(picture.v4, directory))
    files.update(render_family(picture.v6, directory))
    return Rendered({name: files[name] for name in OUTPUTS})
