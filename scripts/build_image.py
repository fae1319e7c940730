"""``make image``: build the node image ``calico-node-py:latest`` on this machine.

1. A Docker daemon: the running one, or one started without touching the host's network
   (scripts/dockerd.py).
2. The base image. ``BASE_IMAGE`` (e.g. ``debian:bookworm-slim``) is used when given.
   Otherwise a local Debian bookworm base, ``calico-node-py-base:bookworm``, made once with
   ``debootstrap --variant=minbase bookworm`` and ``docker import`` (no registry is needed,
   only Debian's package archive), its tarball cached in ``$CALICO_IMAGE_CACHE``
   (default ``/var/cache/calico-node-py``) so a new Docker data directory re-imports it in
   seconds.
3. Wheels, built here with the project's own pip: ``build/wheels/deps`` holds the
   dependencies (rebuilt only when pyproject's dependency list changes, so Docker's layer
   cache keeps their install layer) and ``build/wheels/app`` this project.
4. ``docker build --network=host`` of the Dockerfile, through the Docker API.

Options: ``--wheels-only`` stops after step 3; ``--tag`` names the image.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dockerd import DockerdError, ensure_dockerd  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
WHEELS = REPO / "build" / "wheels"
DEFAULT_TAG = "calico-node-py:latest"
LOCAL_BASE = "calico-node-py-base:bookworm"
DEBIAN_MIRROR = "http://deb.debian.org/debian"


class BuildError(RuntimeError):
    pass


def say(text: str) -> None:
    print(f"image: {text}", flush=True)


def cache_dir() -> Path:
    return Path(os.environ.get("CALICO_IMAGE_CACHE") or "/var/cache/calico-node-py")


# -- base image -------------------------------------------------------------------------

def _image_exists(client, ref: str) -> bool:
    import docker

    try:
        client.images.get(ref)
        return True
    except docker.errors.ImageNotFound:
        return False


def debootstrap_tarball(target: Path) -> None:
    """A minbase bookworm root file system as a tarball at ``target`` (atomically)."""
    if not shutil.which("debootstrap"):
        raise BuildError("debootstrap is not installed (make setup installs it)")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="calico-base-", dir=target.parent) as tmp:
        root = Path(tmp) / "rootfs"
        say(f"debootstrap --variant=minbase bookworm (once; cached in {target})")
        started = time.monotonic()
        run = subprocess.run(["debootstrap", "--variant=minbase", "bookworm", str(root), DEBIAN_MIRROR],
                             capture_output=True, text=True)
        if run.returncode != 0:
            tail = "\n".join((run.stdout + run.stderr).splitlines()[-15:])
            raise BuildError(f"debootstrap failed (exit {run.returncode}):\n{tail}")
        # As Debian's slim images: no package lists or downloaded archives.
        for sub in ("var/lib/apt/lists", "var/cache/apt"):
            for child in (root / sub).glob("*"):
                if child.is_dir() and child.name != "partial":
                    shutil.rmtree(child)
                elif child.is_file():
                    child.unlink()
        partial = Path(tmp) / "base.tar"
        subprocess.run(["tar", "-C", str(root), "--numeric-owner", "-cf", str(partial), "."], check=True)
        os.replace(partial, target)
        say(f"base file system ready in {time.monotonic() - started:.0f}s")


def ensure_base(client) -> str:
    base = os.environ.get("BASE_IMAGE", "")
    if base:
        if not _image_exists(client, base):
            say(f"pulling {base}")
            client.images.pull(base)
        return base
    if _image_exists(client, LOCAL_BASE):
        return LOCAL_BASE
    tarball = cache_dir() / "debian-bookworm-minbase.tar"
    if not tarball.exists():
        debootstrap_tarball(tarball)
    say(f"docker import {tarball} as {LOCAL_BASE}")
    repo, tag = LOCAL_BASE.split(":")
    client.api.import_image_from_file(str(tarball), repository=repo, tag=tag)
    if not _image_exists(client, LOCAL_BASE):
        raise BuildError(f"docker import of {tarball} did not produce {LOCAL_BASE}")
    return LOCAL_BASE


# -- wheels -----------------------------------------------------------------------------

def dependencies() -> list[str]:
    with open(REPO / "pyproject.toml", "rb") as fh:
        return list(tomllib.load(fh)["project"]["dependencies"])


def _pip(*args: str) -> None:
    run = subprocess.run([sys.executable, "-m", "pip", *args], cwd=REPO, capture_output=True, text=True)
    if run.returncode != 0:
        tail = "\n".join((run.stdout + run.stderr).splitlines()[-20:])
        raise BuildError(f"pip {' '.join(args[:2])} failed (exit {run.returncode}):\n{tail}")


def build_wheels() -> None:
    deps_dir, app_dir = WHEELS / "deps", WHEELS / "app"
    requirements = "".join(f"{d}\n" for d in dependencies())
    stamp = deps_dir / "requirements.txt"
    if not (stamp.exists() and stamp.read_text() == requirements):
        say("building dependency wheels (the dependency list changed)")
        shutil.rmtree(deps_dir, ignore_errors=True)
        deps_dir.mkdir(parents=True)
        (deps_dir / "requirements.in").write_text(requirements)
        _pip("wheel", "--quiet", "--wheel-dir", str(deps_dir), "-r", str(deps_dir / "requirements.in"))
        (deps_dir / "requirements.in").unlink()
        stamp.write_text(requirements)  # written last: a half-built directory is rebuilt
    shutil.rmtree(app_dir, ignore_errors=True)
    app_dir.mkdir(parents=True)
    say("building the calico-node-py wheel")
    _pip("wheel", "--quiet", "--no-deps", "--wheel-dir", str(app_dir), ".")
    wheels = list(app_dir.glob("*.whl"))
    if len(wheels) != 1:
        raise BuildError(f"expected one project wheel in {app_dir}, found {[w.name for w in wheels]}")


# -- the image --------------------------------------------------------------------------

def git_version() -> str:
    run = subprocess.run(["git", "-C", str(REPO), "describe", "--always", "--dirty"], capture_output=True, text=True)
    return run.stdout.strip() if run.returncode == 0 and run.stdout.strip() else "unknown"


def build_image(client, base: str, tag: str) -> str:
    say(f"docker build --network=host -t {tag} (base {base})")
    previous = client.images.get(tag).id if _image_exists(client, tag) else ""
    last_lines: list[str] = []
    for chunk in client.api.build(path=str(REPO), dockerfile="Dockerfile", tag=tag, rm=True, forcerm=True,
                                  network_mode="host", decode=True,
                                  buildargs={"BASE_IMAGE": base, "GIT_VERSION": git_version()}):
        if "error" in chunk:
            detail = "\n".join(last_lines[-15:])
            raise BuildError(f"docker build failed: {chunk['error'].strip()}\n{detail}")
        text = chunk.get("stream", "")
        for line in text.splitlines():
            if line.strip():
                last_lines.append(line.rstrip())
                if line.startswith("Step ") or os.environ.get("IMAGE_BUILD_VERBOSE"):
                    print(f"  {line.rstrip()}", flush=True)
    if not _image_exists(client, tag):
        raise BuildError(f"docker build finished without producing {tag}:\n" + "\n".join(last_lines[-15:]))
    current = client.images.get(tag).id
    if previous and previous != current:
        _remove_if_unused(client, previous)
    return current


def _remove_if_unused(client, image_id: str) -> None:
    """Drop the image the tag pointed at before, unless a container still uses it."""
    import docker

    try:
        client.images.remove(image_id, noprune=False)
    except docker.errors.APIError:
        pass  # in use by a container (or already gone): leave it


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="build_image.py", description="Build the calico-node-py image.")
    parser.add_argument("--tag", default=DEFAULT_TAG)
    parser.add_argument("--wheels-only", action="store_true", help="only build build/wheels/")
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        build_wheels()
        if args.wheels_only:
            return 0
        import docker

        dockerd_log = Path("/var/log/calico-node-py/dockerd.log")
        if ensure_dockerd(dockerd_log) is not None:
            say(f"started dockerd (no iptables rules, bridge or forwarding changes; log {dockerd_log})")
        client = docker.from_env(timeout=600)
        try:
            base = ensure_base(client)
            image_id = build_image(client, base, args.tag)
        finally:
            client.close()
    except (BuildError, DockerdError) as exc:
        print(f"image: {exc}", file=sys.stderr)
        return 1
    say(f"built {args.tag} ({image_id[:19]}) in {time.monotonic() - started:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
