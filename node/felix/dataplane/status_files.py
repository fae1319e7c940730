"""The endpoint status directory kept equal to the desired files (Felix's status file reporter).

The directory (``<EndpointStatusPathPrefix>/endpoint-status``, created when missing) is
read at the first apply, after any failure and every ``reapply_interval`` (Felix's 10 s);
in between, the agent's own picture of it is trusted. An apply writes the files whose
content differs (compared as JSON objects, so another writer's formatting does not
count) and removes those no endpoint wants, including ones an earlier run left behind.
A file that cannot be read counts as different; a write or removal that fails is logged
with the file's name, the rest goes on, and the next apply reads the directory again.
"""
from __future__ import annotations

import json
import logging
import os
import time
from typing import Callable, Mapping

from node.felix.endpoint_status import STATUS_DIR

log = logging.getLogger(__name__)

REAPPLY_INTERVAL = 10.0
_UNREADABLE = object()


class StatusFileWriter:
    def __init__(self, prefix: str, *, reapply_interval: float = REAPPLY_INTERVAL,
                 clock: Callable[[], float] = time.monotonic):
        self.directory = os.path.join(prefix, STATUS_DIR)
        self.reapply_interval = reapply_interval
        self._clock = clock
        self._known: dict[str, object] | None = None  # file name -> document (as last read/written)
        self._read_at = 0.0
        self.writes = 0
        self.removals = 0

    def refresh(self) -> None:
        """Read the directory again at the next apply."""
        self._known = None

    def _read(self) -> dict[str, object]:
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            os.makedirs(self.directory, mode=0o755, exist_ok=True)
            return {}
        known: dict[str, object] = {}
        for name in names:
            path = os.path.join(self.directory, name)
            if os.path.isdir(path):
                continue
            try:
                with open(path) as fh:
                    known[name] = json.loads(fh.read())
            except (OSError, ValueError) as exc:
                log.warning("endpoint status file %s is unreadable (%s); rewriting or removing it", path, exc)
                known[name] = _UNREADABLE
        return known

    def apply(self, desired: Mapping[str, dict]) -> list[str]:
        """Make the directory hold exactly ``desired`` (file name -> JSON object); the
        failures, each naming its file (empty when all went well)."""
        now = self._clock()
        failures: list[str] = []
        if self._known is None or now - self._read_at >= self.reapply_interval:
            try:
                self._known = self._read()
            except OSError as exc:
                self._known = None
                return [f"endpoint status directory {self.directory}: {exc}"]
            self._read_at = now
        known = self._known
        for name, doc in desired.items():
            if known.get(name, _UNREADABLE) == doc:
                continue
            path = os.path.join(self.directory, name)
            try:
                with open(path, "w") as fh:
                    fh.write(json.dumps(doc, separators=(",", ":")))
            except OSError as exc:
                failures.append(f"endpoint status file {path}: {exc}")
                continue
            known[name] = doc
            self.writes += 1
        for name in [n for n in known if n not in desired]:
            path = os.path.join(self.directory, name)
            try:
                os.remove(path)
            except FileNotFoundError:
                pass
            except OSError as exc:
                failures.append(f"endpoint status file {path}: {exc}")
                continue
            del known[name]
            self.removals += 1
        if failures:
            self._known = None  # read again next time
        return failures
