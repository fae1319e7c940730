"""Connecting startup to the datastore: config from the environment, the optional wait.

Config and client errors are printed to stdout with Calico's ``ERROR:`` prefix (that is
where calico/node prints them) and end the process with status 1.
"""
from __future__ import annotations

import logging
import time
from typing import Callable, Mapping

from node.config import DatastoreConfig, datastore_config_from_env
from node.datastore.client import DatastoreClient
from node.datastore.factory import client_for
from node.errors import CalicoError, DatastoreError, Unauthorized
from startup.logs import Fatal

log = logging.getLogger(__name__)

RETRY_INTERVAL = 1.0
# Any name will do: a Get that finds nothing still proves the datastore answers.
_PROBE_NODE = "foo"


class ExitNow(Exception):
    """Stop with status ``code`` after the message was printed (no ``Terminating`` line)."""

    def __init__(self, code: int):
        super().__init__(code)
        self.code = code


def load_config(env: Mapping[str, str]) -> DatastoreConfig:
    try:
        return datastore_config_from_env(env)
    except CalicoError as exc:
        print(f"ERROR: Error loading datastore config: {exc}", flush=True)
        raise ExitNow(1) from None


def make_client(config: DatastoreConfig) -> DatastoreClient:
    try:
        return client_for(config)
    except CalicoError as exc:
        print(f"ERROR: Error accessing the Calico datastore: {exc}", flush=True)
        raise ExitNow(1) from None


def wait_for_datastore(client: DatastoreClient, sleep: Callable[[float], None] = time.sleep) -> None:
    """Retry until the datastore answers; bad credentials are fatal, not retried."""
    log.info("Checking datastore connection")
    while True:
        try:
            client.get("Node", _PROBE_NODE)
        except Unauthorized as exc:
            log.warning("Connection to the datastore is unauthorized error=%s", exc)
            raise Fatal("") from None
        except DatastoreError as exc:
            log.info("Hit error connecting to datastore - retry error=%s", exc)
            sleep(RETRY_INTERVAL)
            continue
        except CalicoError:
            pass  # not found (or any other answer) means the datastore is there
        break
    log.info("Datastore connection verified")


def maybe_wait(env: Mapping[str, str], client: DatastoreClient) -> None:
    """Only an exact ``WAIT_FOR_DATASTORE=true`` turns the wait on."""
    if env.get("WAIT_FOR_DATASTORE") == "true":
        wait_for_datastore(client)
        log.info("Datastore is ready")
    else:
        log.info("Skipping datastore connection test")
