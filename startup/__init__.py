"""The startup stage of calico/node: everything that runs before the daemons start.

``calico-node startup`` runs ``startup.run.main`` once: node name, datastore connection,
the Node resource (addresses, AS number, orchestrator reference), default IP pools,
cluster-wide defaults and the nodename file. Like Calico's it leaves the kernel alone
(no modules, no sysctls) unless given ``--kernel-prep`` (``startup.kernel``). ``calico-node
monitor-addresses`` runs ``startup.monitor`` to keep the Node's addresses current.

Decisions are pure functions over plain data (environment mappings, interface lists,
resources); the modules that touch the kernel, the filesystem or the datastore are thin.
"""
