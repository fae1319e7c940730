"""Felix's feature detection and FeatureDetectOverride, and what depends on them: the
NAT rules' ``--random-fully``, the VXLAN device's TX checksum offload and
iptables-restore's lock arguments.

Vectors from Felix v3.32.1's felix/environment/feature_detect_test.go
(TestFeatureDetectionOverride) and felix/stringutils (ParseKeyValueList).
"""
from __future__ import annotations

import logging

import pytest

from felix_calc_builders import LOCAL, felix_config, node, pool
from node.datastore.syncer import SyncStatus
from node.felix.calc.offline import updates_from_resources
from node.felix.config import FelixConfig
from node.felix.dataplane.iptables import from_config
from node.felix.features import Features, detect_features, features_for, kernel_version, with_overrides
from node.felix.pipeline import Pipeline

MODERN = Features()


def _detect(iptables: str, kernel: str) -> Features:
    class Res:
        returncode, stdout = 0, iptables

    return detect_features(lambda argv, stdin=None: Res, proc_version=kernel)


@pytest.mark.parametrize("ipt, kernel, overrides, want", [
    ("iptables v1.6.2", "Linux version 3.14.0", {},
     Features(restore_supports_lock=True, snat_fully_random=True, masq_fully_random=True,
              checksum_offload_broken=True)),
    ("iptables v1.6.1", "Linux version 3.14.0", {"RestoreSupportsLock": "true"},
     Features(restore_supports_lock=True, snat_fully_random=True, masq_fully_random=False,
              checksum_offload_broken=True)),
    ("error", "error", {"RestoreSupportsLock": "true", "SNATFullyRandom": "true", "MASQFullyRandom": "false",
                        "ChecksumOffloadBroken": "true", "NFLogSize": "true"},
     Features(restore_supports_lock=True, snat_fully_random=True, masq_fully_random=False,
              checksum_offload_broken=True)),
])
def test_felix_override_vectors(ipt, kernel, overrides, want):
    assert with_overrides(_detect(ipt, kernel), overrides) == want


def test_checksum_offload_is_broken_up_to_kernel_5_7():
    assert features_for((1, 8, 9), kernel_version("Linux version 5.7.0 (x)")).checksum_offload_broken
    assert features_for((1, 8, 9), kernel_version("Linux version 4.18.0-553.el8 (x)")).checksum_offload_broken
    assert not features_for((1, 8, 9), kernel_version("Linux version 5.8.0 (x)")).checksum_offload_broken
    assert not features_for((1, 8, 9), kernel_version("Linux version 6.18.44-fc (x)")).checksum_offload_broken


def test_override_values_read_as_go_booleans_and_bad_ones_are_ignored(caplog):
    caplog.set_level(logging.INFO)
    assert with_overrides(MODERN, {"MASQFullyRandom": "F", "SNATFullyRandom": "0"}) == \
        Features(snat_fully_random=False, masq_fully_random=False)
    assert with_overrides(MODERN, {"ChecksumOffloadBroken": "TRUE"}).checksum_offload_broken
    # Empty means "detect it" (quietly); junk and unknown flags are warned about and skipped.
    caplog.clear()
    assert with_overrides(MODERN, {"MASQFullyRandom": ""}) == MODERN
    assert "MASQFullyRandom" not in caplog.text
    assert with_overrides(MODERN, {"MASQFullyRandom": "yes", "Turbo": "true"}) == MODERN
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("MASQFullyRandom" in w and "'yes'" in w for w in warnings)
    assert any("'Turbo'" in w for w in warnings)
    # Felix's flags that change nothing here are accepted (no warning).
    caplog.clear()
    assert with_overrides(MODERN, {"NFLogSize": "true", "KernelSideRouteFiltering": "false"}) == MODERN
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]


@pytest.mark.parametrize("raw, want", [
    ("", ()),
    ("   ", ()),
    ("MASQFullyRandom=false", (("MASQFullyRandom", "false"),)),
    ("A=true,B=,", (("A", "true"), ("B", ""))),               # trailing comma, empty value
    (" A=x y,B=z", (("A", "x y"), ("B", "z"))),                # leading space dropped, inner kept
    ("A=1,A=0", (("A", "0"),)),                               # a later key wins
])
def test_feature_detect_override_parses_as_felix_keyvaluelist(raw, want):
    cfg = FelixConfig.resolve({"FELIX_FEATUREDETECTOVERRIDE": raw})
    assert cfg.FeatureDetectOverride == want and not cfg.problems


def test_a_bad_override_list_is_reported_and_ignored():
    cfg = FelixConfig.resolve({"FELIX_FEATUREDETECTOVERRIDE": "MASQFullyRandom=false,nonsense"})
    assert cfg.FeatureDetectOverride == ()
    assert any("FeatureDetectOverride" in p and "nonsense" in p for p in cfg.problems)


# --------------------------------------------------------------------------------------
# What the flags change.

CLUSTER = [node(LOCAL, "192.0.2.10/24", ipv4VXLANTunnelAddr="10.244.0.1", vxlanTunnelMACAddr="66:00:00:00:00:01"),
           pool("pool1", "10.244.0.0/16", vxlanMode="Always", natOutgoing=True)]


def _pipeline(extra=(), detected: Features | None = None, env=None) -> Pipeline:
    p = Pipeline(LOCAL, env or {}, None, detected)
    p.on_updates(updates_from_resources(CLUSTER + list(extra)))
    p.on_status(SyncStatus.IN_SYNC)
    p.complete()
    p.set_interfaces({"eth0": ["192.0.2.10"], "lo": ["127.0.0.1"]})
    return p


def _nat_outgoing(p: Pipeline) -> list[str]:
    return [line for line in p.dataplanes[4].render_save().splitlines() if line.startswith("-A cali-nat-outgoing")]


def _vxlan_offload(p: Pipeline) -> bool:
    dev, = p.desired_routes().vxlan_devices
    return dev.tx_checksum_offload


def test_detected_features_shape_the_rules_and_the_vxlan_device():
    modern = _pipeline()
    assert all("--random-fully" in line for line in _nat_outgoing(modern)) and _nat_outgoing(modern)
    assert _vxlan_offload(modern)
    old = _pipeline(detected=features_for((1, 6, 1), (4, 18, 0)))
    assert not any("--random-fully" in line for line in _nat_outgoing(old)) and _nat_outgoing(old)
    assert not _vxlan_offload(old)


@pytest.mark.parametrize("where", ["datastore", "env"])
def test_overrides_from_the_configuration_win_over_detection(where):
    raw = "MASQFullyRandom=false,ChecksumOffloadBroken=true"
    extra = [felix_config("default", featureDetectOverride=raw)] if where == "datastore" else []
    env = {"FELIX_FEATUREDETECTOVERRIDE": raw} if where == "env" else {}
    p = _pipeline(extra, env=env)
    assert p.features == Features(masq_fully_random=False, checksum_offload_broken=True)
    assert not any("--random-fully" in line for line in _nat_outgoing(p))
    assert not _vxlan_offload(p)
    # Forced back on over an old host's detection.
    p = _pipeline([felix_config("default", featureDetectOverride="MASQFullyRandom=true,ChecksumOffloadBroken=false")],
                  detected=features_for((1, 6, 1), (4, 18, 0)))
    assert all("--random-fully" in line for line in _nat_outgoing(p)) and not p.features.checksum_offload_broken


def test_restore_lock_arguments_follow_the_features():
    p = _pipeline([felix_config("default", featureDetectOverride="RestoreSupportsLock=false")])
    dp = from_config(4, p.dataplanes[4].tables, p.config, backend="legacy", exists=lambda name: True,
                     features=p.features)
    assert dp.restore_args == ["--noflush", "--verbose"]
    dp = from_config(4, p.dataplanes[4].tables, p.config, backend="legacy", exists=lambda name: True,
                     features=MODERN)
    assert "--wait" in dp.restore_args


def test_sctp_conntrack_module_load_is_best_effort(caplog):
    import subprocess

    from node.felix.agent import load_conntrack_sctp
    calls = []

    def ok(argv):
        calls.append(argv)
        return subprocess.CompletedProcess(argv, 0, "", "")

    def builtin(argv):
        return subprocess.CompletedProcess(argv, 1, "", "modprobe: FATAL: Module nf_conntrack_proto_sctp not found")

    def missing(argv):
        raise FileNotFoundError("modprobe")
    with caplog.at_level(logging.INFO, logger="node.felix.agent"):
        assert load_conntrack_sctp(ok) and calls == [["modprobe", "nf_conntrack_proto_sctp"]]
        assert not load_conntrack_sctp(builtin) and not load_conntrack_sctp(missing)
    assert "Module nf_conntrack_proto_sctp not found" in caplog.text
