"""The CalicoNodeStatus reporter and ``calico-node show-status`` (Calico's node/pkg/status).

``birdtext`` turns BIRD's replies into records and ``status`` folds them into a
CalicoNodeStatus ``status`` (both pure); ``tables`` draws what ``show-status`` prints;
``birdquery`` asks the running BIRD and BIRD6; ``reporter`` follows the datastore and keeps
one reporting thread per CalicoNodeStatus of this node.
"""
