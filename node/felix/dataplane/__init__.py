"""The policy agent's kernel side: reading and programming interfaces, iptables, IP sets
and routes. The desired state comes from ``node.felix.desired`` and ``node.felix.routes``."""
