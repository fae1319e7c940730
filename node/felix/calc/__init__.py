"""The policy agent's calculation: which policies, profiles and IP sets each local endpoint
needs, from Calico resources (Felix's calculation graph).  Pure and incremental, no kernel.

* ``PolicyCalculation`` -- feed it syncer updates, ``on_in_sync()``, then
  ``take_messages()`` for a coalesced batch of ``node.felix.types`` messages.
* ``calculate`` / ``updates_from_resources`` -- the same over a list of resources.
* ``DataplaneView`` -- the picture a stream of messages builds (strict about ordering).

Modules: ``v1`` (Felix's converted view), ``convert`` (v3 -> v1), ``validation``
(what Felix refuses), ``rule_scanner`` (rules -> IP-set IDs), ``ordering`` (tiers and
policy order), ``members`` (IP-set membership), ``bgp_peers`` (each local workload's
BGPPeer), ``live_migration`` (each local workload's live migration role),
``workload_selectors`` (the label index those two share), ``sequencer`` (coalescing),
``config_track``, ``graph`` (the wiring), ``view``, ``offline``.  Routes and VXLAN tunnel endpoints are computed in ``routes``.
"""
from node.felix.calc.graph import PolicyCalculation
from node.felix.calc.offline import calculate, updates_from_resources
from node.felix.calc.view import DataplaneView, ProtocolError

__all__ = ["DataplaneView", "PolicyCalculation", "ProtocolError", "calculate", "updates_from_resources"]
