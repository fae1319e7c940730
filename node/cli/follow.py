"""A long-running role that follows the datastore: start its syncer, run the role's loop,
and exit 1 if the syncer stops for good (the supervisor then restarts the role)."""
from __future__ import annotations

import logging
from typing import Callable, Sequence

from node.config import DatastoreConfig
from node.datastore.factory import kv_for
from node.datastore.sources import resource_sources
from node.datastore.syncer import Syncer


def follow_datastore(config: DatastoreConfig, kinds: Sequence[str], consumer, run: Callable[[], None],
                     stop: Callable[[], None], kv, log: logging.Logger) -> int:
    """Feed ``kinds`` to ``consumer`` while ``run()`` runs; ``stop()`` ends ``run`` (also
    called when the syncer fails). ``kv`` (the role's own client) is closed at the end."""
    fatal: list[BaseException] = []

    def on_fatal(exc: BaseException) -> None:
        fatal.append(exc)
        stop()

    syncer = Syncer(lambda: kv_for(config), resource_sources(list(kinds)), consumer, on_fatal=on_fatal)
    syncer.start()
    try:
        run()
    finally:
        syncer.stop(10)
        kv.close()
    if fatal:
        log.error("datastore syncer stopped (%s); exiting", fatal[0])
        return 1
    return 0
