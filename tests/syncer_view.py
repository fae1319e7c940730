"""A syncer consumer for tests: every status and update kept, and the view a real
consumer would hold (key -> value, deletions removed). Callbacks may come from the
syncer's thread while a test reads, hence the lock."""
from __future__ import annotations

import threading

from node.datastore.syncer import UpdateType


class SyncerView:
    def __init__(self):
        self.lock = threading.Lock()
        self.updates: list = []
        self.statuses: list = []
        self.state: dict = {}

    def on_status(self, status):
        with self.lock:
            self.statuses.append(status)

    def on_updates(self, updates):
        with self.lock:
            for u in updates:
                self.updates.append(u)
                if u.type is UpdateType.DELETED:
                    self.state.pop(u.key, None)
                else:
                    self.state[u.key] = u.value

    def of_kind(self, kind: str) -> dict:
        """name -> value of the resources of ``kind`` in the view."""
        with self.lock:
            return {v.name: v for v in self.state.values() if getattr(v, "kind", None) == kind}

    def names(self, kind: str) -> list[str]:
        return sorted(self.of_kind(kind))

    def types(self, key: str) -> list[UpdateType]:
        """The update types ``key`` has had, in order."""
        with self.lock:
            return [u.type for u in self.updates if u.key == key]
