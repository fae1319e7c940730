"""The BIRD config renderer (Calico's confd, for BIRD only).

Layers, from pure to effectful:

* ``inputs``     - what the renderer knows (resources, Secrets, Services, endpoint status).
* ``cluster``    - per-node BGP facts and BGPConfiguration values, derived once.
* ``peerings``   - BGPPeer resources expanded into this node's peerings.
* ``filters``    - BGPFilter resources as BIRD functions.
* ``services``   - which Kubernetes Service addresses this node announces.
* ``picture``    - the complete per-family BGP picture the templates lay out.
* ``render``     - the Jinja2 templates in ``templates/bird`` turned into the six files.
* ``install``    - change detection, ``bird -p`` gate, atomic writes, BIRD reload.
* ``cycle``      - one render cycle, shared by every mode.
* ``daemon``     - the long-running, syncer-fed renderer (also ``--oneshot``).
"""
