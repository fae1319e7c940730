"""Writing the small files other programs read (BIRD's config, the CNI plugin's kubeconfig,
the MTU file, supervisord's config) so that a reader sees the old content or the new,
never half a file."""
from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path


def write_atomically(path: str | os.PathLike, content: str, mode: int = 0o644) -> None:
    """Write ``content`` to ``path`` through a temp file in the same directory renamed over
    it. The temp file is private until it has ``mode`` (it may hold a token), and is gone
    if anything fails. A destination that is a bind mount cannot be renamed over: it is
    then written in place."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(content)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        try:
            os.replace(tmp, path)
        except OSError as exc:
            if exc.errno != errno.EBUSY:
                raise
            with open(path, "w", encoding="utf-8") as fh:
                fh.write(content)
            os.unlink(tmp)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
