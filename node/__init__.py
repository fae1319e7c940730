"""A Python re-implementation of Calico's calico/node image."""
__version__ = "v3.32.0-py0.1.0"
