"""A Python re-implementation of Calico's calico/node image."""
# Calico's release, then "-py" and this implementation's own version. Startup writes it
# as ClusterInformation's calicoVersion; real calicoctl compares only the part before the
# first "-" (as it does for Calico's own "v3.32.1-<n>-g<commit>" builds) with its own
# version, and refuses resource, ipam and datastore-migrate commands on a mismatch (unless
# --allow-version-mismatch), so the release part must
# be the Calico release this image matches: v3.32.1.
__version__ = "v3.32.1-py0.1.0"
