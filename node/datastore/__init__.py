"""Datastore access: a thin etcd v3 key/value layer and the list-then-watch syncer.

``node.datastore.etcd`` speaks to etcd; ``node.datastore.syncer`` turns that into an
ordered stream of decoded updates that every consumer (confd, allocators, calicoctl
watches) shares, so reconnect and compaction handling exists exactly once.
"""
