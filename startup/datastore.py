"""Connecting startup to the datastore: config from the environment, the optional wait.

Config and client errors are printed to stdout with Calico's ``ERROR:`` prefix (that is
where calico/node prints them) and end the process with status 1.
"""
from __future__ import annotations

import logging
import time
from typing import Callable, Mapping

from node.config import DatastoreConfig, EnvValueError, datastore_config_from_env
from node.datastore.client import DatastoreClient
from node.datastore.factory import client_for
from node.errors import CalicoError, DatastoreError, Unauthorized
from startup.logs import Fatal

log = logging.getLogger(__name__)

RETRY_INTERVAL = 1.0
UPGRADE_DEADLINE = 90.0  # seconds, as calico/node gives IPAM's UpgradeHost
UPGRADE_FIRST_DELAY = 0.1  # then doubling
# Any name will do: a Get that finds nothing still proves the datastore answers.
_PROBE_NODE = "foo"


class ExitNow(Exception):
    """Stop with status ``code`` after the message was printed (no ``Terminating`` line)."""

    def __init__(self, code: int):
        super().__init__(code)
        self.code = code


def load_config(env: Mapping[str, str]) -> DatastoreConfig:
    """As calico/node's CreateClient: only a value that does not parse fails the loading
    of the configuration; any other problem with it (an unknown DATASTORE_TYPE, both
    ETCD_ENDPOINTS and ETCD_DISCOVERY_SRV, a TLS file that will not load) is found when
    libcalico-go builds the client, so it is reported as ``make_client``'s errors are."""
    try:
        return datastore_config_from_env(env)
    except EnvValueError as exc:
        print(f"ERROR: Error loading datastore config: {exc}", flush=True)
        raise ExitNow(1) from None
    except CalicoError as exc:
        print(f"ERROR: Error accessing the Calico datastore: {exc}", flush=True)
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


def upgrade_host_ipam(client: DatastoreClient, node: str, deadline: float = UPGRADE_DEADLINE,
                      sleep: Callable[[float], None] = time.sleep,
                      clock: Callable[[], float] = time.monotonic) -> None:
    """IPAM's UpgradeHost: label this node's block affinities written by an older Calico
    (Kubernetes datastore; etcd has nothing to label). Retried with a doubling delay from
    100 ms; still failing after ``deadline`` seconds is fatal, as in calico/node."""
    log.info("Upgrading any IPAM affinities from older versions....")
    give_up_at = clock() + deadline
    delay = UPGRADE_FIRST_DELAY
    while True:
        try:
            upgraded = client.kv.upgrade_host_affinities(node)
        except DatastoreError as exc:
            log.error("Failed to upgrade IPAM blocks of this host. error=%s", exc)
            remaining = give_up_at - clock()
            if delay >= remaining:  # the deadline passes during this wait
                sleep(max(remaining, 0.0))
                raise Fatal(f"Unable to upgrade host's IPAM resources. error={exc}") from None
            sleep(delay)
            delay *= 2
            log.error("Retrying...")
            continue
        if upgraded:
            log.info("Upgraded %d block affinities belonging to this host.", upgraded)
        else:
            log.info("No affinities needed to be upgraded.")
        return
