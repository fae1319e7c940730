"""The version startup writes as ClusterInformation's calicoVersion must not make real
calicoctl v3.32.1 refuse to work on the cluster.

calicoctl's CheckVersionMismatch (calicoctl/commands/common/version_mismatch.go, run by
its resource, ipam and datastore-migrate commands unless --allow-version-mismatch) drops
a leading "v" and everything from the first "-" on both the cluster's calicoVersion and
its own version, and fails with "version mismatch" when what is left differs."""
from __future__ import annotations

from node import __version__

CALICOCTL_VERSION = "v3.32.1"


def calicoctl_release(version: str) -> str:
    return version.removeprefix("v").split("-")[0]


def test_the_rule_as_calicoctl_applies_it():
    assert calicoctl_release("v3.32.1-12-g0123456789ab") == "3.32.1"  # a Calico development build
    assert calicoctl_release("v3.32.0-py0.1.0") != calicoctl_release(CALICOCTL_VERSION)  # what we used to write


def test_calicoctl_v3_32_1_accepts_our_cluster_version():
    assert calicoctl_release(__version__) == calicoctl_release(CALICOCTL_VERSION), __version__


def test_the_version_still_names_this_implementation():
    release, _, own = __version__.partition("-")
    assert release == CALICOCTL_VERSION and own.startswith("py") and own != "py", __version__
