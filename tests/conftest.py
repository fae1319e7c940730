"""Shared fixtures.

etcd fixtures start a real ``/usr/bin/etcd`` (see ``etcd_server.py``):

* ``etcd`` - a private server for one test; use it when the test stops, restarts,
  compacts heavily or enables auth. ``etcd_config`` is its DatastoreConfig.
* ``etcd_clean`` - the session-wide server with every key deleted before the test;
  cheaper, for tests that only read and write keys. ``etcd_clean_config`` and
  ``etcd_kv`` (an EtcdKV on it, closed afterwards) and ``client`` (a DatastoreClient
  on that EtcdKV) go with it.
"""
from __future__ import annotations

import io
import logging
import warnings

import pytest

with warnings.catch_warnings():
    # python-etcd3's generated protobuf modules use descriptor calls that protobuf 3.20
    # flags as deprecated on import; they are not ours to fix.
    warnings.simplefilter("ignore", DeprecationWarning)
    from etcd3 import etcdrpc

from etcd_server import EtcdServer, calicoctl_config
from node.cli import calicoctl
from node.config import DatastoreConfig
from node.datastore.client import DatastoreClient
from node.datastore.etcd import EtcdKV


def _running_etcd():
    server = EtcdServer()
    try:
        server.start()
        yield server
    finally:
        server.close()


@pytest.fixture
def etcd():
    yield from _running_etcd()


@pytest.fixture
def etcd_config(etcd) -> DatastoreConfig:
    return DatastoreConfig(etcd_endpoints=(etcd.endpoint,))


@pytest.fixture(scope="session")
def etcd_session():
    yield from _running_etcd()


@pytest.fixture
def etcd_clean(etcd_session):
    with etcd_session.client() as client:
        # The range [\x00, \x00) means every key.
        client.kvstub.DeleteRange(etcdrpc.DeleteRangeRequest(key=b"\x00", range_end=b"\x00"), timeout=5)
    return etcd_session


@pytest.fixture
def etcd_clean_config(etcd_clean) -> DatastoreConfig:
    return DatastoreConfig(etcd_endpoints=(etcd_clean.endpoint,))


@pytest.fixture
def etcd_kv(etcd_clean_config):
    kv = EtcdKV(etcd_clean_config)
    try:
        yield kv
    finally:
        kv.close()


@pytest.fixture
def client(etcd_kv) -> DatastoreClient:
    return DatastoreClient(etcd_kv)


@pytest.fixture
def ctl(etcd_clean_config, tmp_path, capsys, monkeypatch):
    """calicoctl in-process against a clean etcd: ``ctl(*args, stdin=, files=)`` returns
    (exit code, stdout, stderr); ``files`` are written to tmp_path first, and an argument's
    ``@`` stands for tmp_path."""
    cfg = calicoctl_config(tmp_path / "calicoctl.cfg", etcd_clean_config.etcd_endpoints[0])

    def run(*args, stdin=None, files=None):
        for name, text in (files or {}).items():
            (tmp_path / name).write_text(text)
        if stdin is not None:
            monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        code = calicoctl.main(["-c", str(cfg), *(a.replace("@", str(tmp_path) + "/") for a in args)])
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


@pytest.fixture(autouse=True)
def _stop_felix_status_reporters(monkeypatch):
    """Agents a test builds in-process (driven by ``_step``, never ``run``) start Felix's
    status reporter thread at their first in-sync and never stop it: stop each one with
    its test, so its retries do not log into the tests after it."""
    from node.felix.status_reporter import StatusReporter

    started = []
    real_start = StatusReporter.start

    def start(self):
        started.append(self)
        return real_start(self)

    monkeypatch.setattr(StatusReporter, "start", start)
    yield
    for reporter in started:
        reporter.stop()


@pytest.fixture(autouse=True)
def _restore_root_logging():
    """Roles run in-process set the root logger's level (a role's log level variable,
    confd's BGPConfiguration level, the agent's logSeverityScreen) and Felix's debug-file
    filter on its handlers: put both back after each test, so no test sees another's."""
    root = logging.getLogger()
    level = root.level
    filters = {handler: list(handler.filters) for handler in root.handlers}
    yield
    root.setLevel(level)
    for handler, kept in filters.items():
        handler.filters[:] = kept


@pytest.fixture
def tls_etcd():
    """A real etcd that serves TLS and asks for a client certificate (etcd_server.py)."""
    server = EtcdServer(tls=True)
    try:
        server.start()
        yield server
    finally:
        server.close()
