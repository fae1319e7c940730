"""End-to-end pieces: what Calico's CNI plugin does for a pod (``pods``) and connectivity
probes between namespaces (``probes``); the multi-host cluster harness and the demo build
on them."""
