"""calicoctl command groups beyond the resource commands (``ipam``, ``node``...).

Each module here defines ``register(subparsers)`` like the calico-node roles do.
"""
