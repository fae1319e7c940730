"""The policy agent (Felix's job): from Calico resources to iptables chains, IP sets and routes.

``calc`` works out who applies to whom (pure, incremental) and speaks in the messages of
``types``; ``rules`` renders those into Felix's exact chains; ``tables`` holds the desired
tables and renders them in iptables-save form; the dataplane applies the result.
"""
