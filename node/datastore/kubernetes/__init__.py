"""The Kubernetes datastore (KDD): Calico's data on the Kubernetes API.

``KubeKV`` (in ``kv``) is the backend with the etcd backend's interface; ``conversion``
holds libcalico-go's conversions between Kubernetes objects and Calico data;
``clientconfig`` how the client is configured and the CRD group chosen; ``api`` the
JSON layer over the official client; ``keys`` the keys of the Kubernetes-only kinds.
"""
