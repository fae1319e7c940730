"""Bulk create/apply/replace/delete: what calicoctl says it did is what it did.

A lost datastore stops the run at once with the count of confirmed writes; other
errors are reported one per line; "the first N" is only said when it is true; skipped
resources are not counted as written or deleted.
"""
from __future__ import annotations

import threading
import time

import yaml

from etcd3 import etcdrpc
from etcd_server import calicoctl_config
from node.cli import calicoctl
from node.cli.calicoctl import Run, Stop, delete_report, write_report
from node.datastore.client import DatastoreClient
from node.model import Resource
from node.model.resource import V3_PREFIX, etcd_prefix

PROFILES = V3_PREFIX + "profiles/"


def profiles(names) -> str:
    return "".join(f"---\napiVersion: projectcalico.org/v3\nkind: Profile\nmetadata: {{name: {n}}}\n"
                   f"spec: {{labelsToApply: {{n: '{n}'}}}}\n" for n in names)


def pools(*specs) -> str:
    return "".join(f"---\napiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {{name: {n}}}\n"
                   f"spec: {{cidr: {c}}}\n" for n, c in specs)


def _count(client, prefix: str) -> int:
    end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
    resp = client.kvstub.Range(etcdrpc.RangeRequest(key=prefix.encode(), range_end=end.encode(), count_only=True),
                               timeout=5)
    return resp.count


def test_lost_datastore_stops_a_large_create_and_says_how_many_were_written(etcd, tmp_path, capsys, monkeypatch):
    total = 2000
    names = [f"pr-{i:04d}" for i in range(total)]
    source = tmp_path / "many.yaml"
    source.write_text(profiles(names))
    cfg = calicoctl_config(tmp_path / "calicoctl.cfg", etcd.endpoint)
    stopped = threading.Event()

    def stop_when_some_are_written():
        with etcd.client() as watcher:
            while _count(watcher, PROFILES) < 300:
                time.sleep(0.005)
        etcd.stop()
        stopped.set()

    stopper = threading.Thread(target=stop_when_some_are_written, daemon=True)
    stopper.start()
    code = calicoctl.main(["create", "-f", str(source), "-c", str(cfg)])
    stopper.join(30)
    out, err = capsys.readouterr()
    assert stopped.is_set() and code == 1

    prefix, _, rest = out.partition("Partial success: created the first ")
    assert prefix == ""
    written = int(rest.split(" ", 1)[0])
    assert out == f"Partial success: created the first {written} out of {total} 'Profile' resources:\n"
    assert 300 <= written < total
    lines = err.splitlines()
    assert lines[0].startswith("hit error: [cannot reach etcd at ") and lines[0].endswith("]")
    assert lines[1] == (f"stopped at Profile({names[written]}) (resource {written + 1} of {total}, which may or "
                        f"may not have been created); {total - written - 1} resource(s) not attempted")
    assert len(lines) == 2

    etcd.start()
    with etcd.client() as check:
        stored = sorted(m.key.decode().rsplit("/", 1)[1] for _, m in check.get_prefix(PROFILES))
    # The confirmed writes are there; the one in flight when etcd went may be too.
    assert stored in (names[:written], names[:written + 1])


def test_errors_are_reported_one_per_line(ctl):
    ctl("create", "-f", "-", stdin=profiles(["a", "c"]))
    code, out, err = ctl("create", "-f", "-", stdin=profiles(["a", "b", "c", "d"]))
    assert code == 1
    assert out == "Partial success: created 2 out of 4 'Profile' resources:\n"
    assert err.splitlines() == ["hit error: [resource already exists: Profile(a) with error: key exists",
                                "resource already exists: Profile(c) with error: key exists]"]
    code, out, err = ctl("create", "-f", "-", stdin=profiles(["a", "c"]))
    assert (code, out) == (1, "")
    assert err.splitlines() == ["failed to create any 'Profile' resources: [resource already exists: Profile(a) "
                                "with error: key exists", "resource already exists: Profile(c) with error: key exists]"]


def test_replace_stops_at_its_first_error(ctl, etcd_kv):
    ctl("create", "-f", "-", stdin=pools(("p1", "10.1.0.0/16"), ("p3", "10.3.0.0/16")))
    disabled = pools(("p1", "10.1.0.0/16"), ("p2", "10.2.0.0/16"), ("p3", "10.3.0.0/16")).replace(
        "cidr", "disabled: true, cidr")
    code, out, err = ctl("replace", "-f", "-", stdin=disabled)
    assert code == 1
    assert out == "Partial success: replaced the first 1 out of 3 'IPPool' resources:\n"
    assert err.startswith("hit error: resource does not exist: IPPool(p2)") and "[" not in err
    client = DatastoreClient(etcd_kv)
    assert client.get("IPPool", "p1").spec.get("disabled") is True
    assert not client.get("IPPool", "p3").spec.get("disabled")  # never attempted


def test_delete_counts_only_what_it_deleted(ctl):
    ctl("create", "-f", "-", stdin=profiles(["b"]))
    code, out, err = ctl("delete", "profile", "a", "b", "c", "--skip-not-exists")
    assert (code, out, err) == (0, "Successfully deleted 1 'Profile' resource(s)\n"
                                   "Skipped 2 'Profile' resource(s) that did not exist\n", "")
    code, out, err = ctl("delete", "-s", "profile", "a", "b")
    assert (code, out, err) == (0, "Skipped 2 'Profile' resource(s) that did not exist\n", "")
    code, out, err = ctl("delete", "profile", "a", "b")
    assert (code, out) == (1, "")
    assert err.splitlines() == ["Failed to delete 'Profile' resource: resource does not exist: Profile(a) with error: "
                                "<nil>",
                                "Failed to delete 'Profile' resource: resource does not exist: Profile(b) with error: "
                                "<nil>"]


def test_unexpected_failure_mid_run_still_reports_the_progress(ctl, monkeypatch):
    real_create = DatastoreClient.create
    calls = []

    def create(self, res):
        if res.kind != "Profile":  # calicoctl's initialization of the datastore
            return real_create(self, res)
        calls.append(res.name)
        if len(calls) == 2:
            raise RuntimeError("disk on fire")
        return real_create(self, res)

    monkeypatch.setattr(DatastoreClient, "create", create)
    code, out, err = ctl("create", "-f", "-", stdin=profiles(["a", "b", "c"]))
    assert code == 1 and calls == ["a", "b"]
    assert out == "Partial success: created the first 1 out of 3 'Profile' resources:\n"
    assert err.splitlines() == [
        "hit error: [unexpected RuntimeError: disk on fire]",
        "stopped at Profile(b) (resource 2 of 3, which may or may not have been created); 1 resource(s) not attempted",
        "Rerun with --log-level=debug to log the details.",
    ]


# --------------------------------------------------------------------------------------
# The reports as pure functions.

def _run(n: int, **fields) -> Run:
    return Run([Resource("Profile", {"name": f"r{i}"}) for i in range(n)], **fields)


def test_write_report_says_the_first_only_when_true():
    assert write_report("apply", _run(3, done=[0, 1], errors=["e"])) == (
        ["Partial success: applied the first 2 out of 3 'Profile' resources:"], "hit error: [e]")
    assert write_report("apply", _run(3, done=[0, 2], errors=["e"])) == (
        ["Partial success: applied 2 out of 3 'Profile' resources:"], "hit error: [e]")
    assert write_report("create", _run(1, errors=["e"])) == ([], "failed to create 'Profile' resource: [e]")
    assert write_report("create", _run(2, done=[0, 1])) == (["Successfully created 2 'Profile' resource(s)"], None)
    mixed = Run([Resource("Profile", {"name": "a"}), Resource("Tier", {"name": "t"})], done=[0, 1])
    assert write_report("apply", mixed) == (["Successfully applied 2 resource(s)"], None)


def test_write_report_after_a_lost_datastore():
    run = _run(5, done=[0, 1], errors=["cannot reach etcd"], stop=Stop(2, "datastore"))
    assert write_report("apply", run) == (
        ["Partial success: applied the first 2 out of 5 'Profile' resources:"],
        "hit error: [cannot reach etcd]\nstopped at Profile(r2) (resource 3 of 5, which may or may not have been "
        "applied); 2 resource(s) not attempted")
    assert delete_report(_run(2, skipped=[0], errors=["down"], stop=Stop(1, "datastore"))) == (
        ["Skipped 1 'Profile' resource(s) that did not exist"],
        "Failed to delete 'Profile' resource: down\nstopped at Profile(r1) (resource 2 of 2, which may or may not "
        "have been deleted); 0 resource(s) not attempted")


def test_get_after_a_bulk_apply_sees_every_document(ctl):
    names = [f"x{i:03d}" for i in range(150)]
    code, out, _ = ctl("apply", "-f", "-", stdin=profiles(names))
    assert (code, out) == (0, "Successfully applied 150 'Profile' resource(s)\n")
    code, out, _ = ctl("get", "profiles", "-o", "yaml")
    listed = [i["metadata"]["name"] for i in yaml.safe_load(out)["items"]]
    assert listed == sorted(names + ["projectcalico-default-allow"])
    assert etcd_prefix("Profile") == PROFILES
