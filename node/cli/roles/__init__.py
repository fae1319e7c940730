"""calico-node roles: each module here defines ``register(subparsers)``.

A role module adds its subcommand (``startup``, ``confd``, ``felix``...) with
``set_defaults(func=...)``; ``func(args)`` returns the exit code.
"""
