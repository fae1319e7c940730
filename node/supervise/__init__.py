"""Supervision for ``calico-node start``: the image's boot sequence, the programs it runs
under supervisord, supervisord's configuration, and the node health checks.

* ``layout``   where supervisord's files go (all under ``CALICO_*_DIR``)
* ``programs`` which programs run for ``CALICO_NETWORKING_BACKEND``/``CALICO_DISABLE_FELIX``,
               and their command lines
* ``config``   supervisord.conf from ``rootfs/etc/calico/supervisord.conf.j2``
* ``rpc``      supervisord's XML-RPC interface over its unix socket
* ``restarter`` the event listener that restarts a program supervisord gave up on
* ``boot``     the boot sequence (Calico's start_runit + rc.local)
* ``health``   ``calico-node health``'s checks (node/pkg/health in Calico)
"""
