"""The syncer over real resources: decoded values, chosen kinds, affinity filtering."""
import threading

from node.datastore.client import DatastoreClient
from node.datastore.etcd import EtcdKV
from node.datastore.sources import resource_sources
from node.datastore.syncer import Syncer, SyncStatus, UpdateType
from node.model import load_resources


class Recorder:
    def __init__(self):
        self.updates = []
        self.statuses = []
        self.cond = threading.Condition()

    def on_status(self, status):
        self.statuses.append(status)

    def on_updates(self, updates):
        with self.cond:
            self.updates.extend(updates)
            self.cond.notify_all()

    def wait_for(self, predicate, timeout=10):
        with self.cond:
            return self.cond.wait_for(lambda: predicate(self.updates), timeout)


def test_syncer_delivers_decoded_resources_of_the_chosen_kinds(etcd_clean_config):
    kv = EtcdKV(etcd_clean_config)
    client = DatastoreClient(kv)
    for res in load_resources("""
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: p1}
spec: {cidr: 10.1.0.0/16}
---
apiVersion: projectcalico.org/v3
kind: Profile
metadata: {name: not-followed}
---
apiVersion: projectcalico.org/v3
kind: BlockAffinity
metadata: {name: a1}
spec: {node: node1, cidr: 10.1.0.0/26, state: confirmed, deleted: "false"}
---
apiVersion: projectcalico.org/v3
kind: BlockAffinity
metadata: {name: a2}
spec: {node: node2, cidr: 10.1.0.64/26, state: confirmed, deleted: "false"}
"""):
        client.create(res)
    rec = Recorder()
    syncer = Syncer(lambda: EtcdKV(etcd_clean_config), resource_sources(["IPPool", "BlockAffinity"], "node1"), rec)
    syncer.start()
    try:
        assert syncer.wait_for_status(SyncStatus.IN_SYNC, 10)
        snapshot = {(u.value.kind, u.value.name) for u in rec.updates}
        assert snapshot == {("IPPool", "p1"), ("BlockAffinity", "node1-10-1-0-0-26")}
        pool = [u.value for u in rec.updates if u.value.kind == "IPPool"][0]
        assert pool.spec["blockSize"] == 26  # read defaults, as the client applies them
        client.delete("IPPool", "p1")
        assert rec.wait_for(lambda ups: any(u.type is UpdateType.DELETED for u in ups))
        deleted = [u for u in rec.updates if u.type is UpdateType.DELETED]
        assert deleted[-1].value.name == "p1"
    finally:
        syncer.stop()
        kv.close()
    assert rec.statuses[:3] == [SyncStatus.WAIT_FOR_DATASTORE, SyncStatus.RESYNC_IN_PROGRESS, SyncStatus.IN_SYNC]


def test_profiles_include_the_default_allow_profile(etcd_clean_config):
    """As libcalico-go's backends list it: every listing of profiles has the built-in
    default-allow profile (revision 1, never stored), so the policy agent gets its allow
    rules for endpoints that name it. Sent once, with the stored ones."""
    kv = EtcdKV(etcd_clean_config)
    client = DatastoreClient(kv)
    client.create(load_resources("apiVersion: projectcalico.org/v3\nkind: Profile\nmetadata: {name: stored}\n")[0])
    rec = Recorder()
    syncer = Syncer(lambda: EtcdKV(etcd_clean_config), resource_sources(["Profile"]), rec)
    syncer.start()
    try:
        assert syncer.wait_for_status(SyncStatus.IN_SYNC, 10)
        by_name = {u.value.name: u for u in rec.updates}
        assert set(by_name) == {"stored", "projectcalico-default-allow"}
        builtin = by_name["projectcalico-default-allow"]
        assert builtin.type is UpdateType.NEW and builtin.revision == 1
        assert builtin.value.spec == {"ingress": [{"action": "Allow"}], "egress": [{"action": "Allow"}]}
        # Changes to stored profiles still arrive; the built-in one is not sent again.
        client.delete("Profile", "stored")
        assert rec.wait_for(lambda ups: any(u.type is UpdateType.DELETED for u in ups))
        assert [u.value.name for u in rec.updates].count("projectcalico-default-allow") == 1
        stored, _ = kv.list("/calico/resources/v3/projectcalico.org/profiles/")
        assert stored == []  # nothing was written
    finally:
        syncer.stop()
        kv.close()
