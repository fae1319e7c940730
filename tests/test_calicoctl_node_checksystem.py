"""``calicoctl node checksystem``: the kernel checks, against made-up hosts and this one.

The expected reports are calicoctl v3.32.1's (checksystem.go), rows sorted by module name."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from node.cli.calicoctl import main
from node.cli.ctl import _node_checksystem as cs
from node.cli.ctl._common import CommandFailed

RELEASE = "6.1.0-18-amd64"
FAILED = "system doesn't meet one or more minimum systems requirements to run Calico"
PASSED = "System meets minimum system requirements to run Calico!\n"
SORTED = ["ip6_tables", "ip_set", "ip_tables", "ipt_REJECT", "ipt_ipvs", "ipt_rpfilter", "ipt_set",
          "nf_conntrack_netlink", "vfio-pci", "xt_addrtype", "xt_bpf", "xt_conntrack", "xt_icmp", "xt_icmp6",
          "xt_mark", "xt_multiport", "xt_rpfilter", "xt_set", "xt_u32"]


def line(value: str, result: str) -> str:
    return f"\t\t{value:<20}\t\t\t\t\t{result}\n"


def missing(module: str) -> str:
    return f"WARNING: Unable to detect the {module} module as Loaded/Builtin module or lsmod\n" + line(module, "FAIL")


HEAD = "Checking kernel version...\n" + line(RELEASE, "OK") + "Checking kernel modules...\n"


def _host(tmp_path: Path, release: str = RELEASE, dep=(), builtin=(), lsmod: str = "",
          boot_config: str | None = None, matches: str | None = None) -> cs.HostView:
    lib_modules = tmp_path / "lib-modules"
    (lib_modules / release).mkdir(parents=True)
    (lib_modules / release / "modules.dep").write_text(
        "".join(f"kernel/net/netfilter/{m}: kernel/net/netfilter/x_tables.ko.xz\n" for m in dep))
    (lib_modules / release / "modules.builtin").write_text("".join(f"kernel/net/{m}\n" for m in builtin))
    if boot_config is not None:
        (tmp_path / "boot").mkdir()
        (tmp_path / "boot" / f"config-{release}").write_text(boot_config)
    matches_file = tmp_path / "ip_tables_matches"
    if matches is not None:
        matches_file.write_text(matches)
    return cs.HostView(release=lambda: release + "\n", lsmod=lambda: "Module                  Size  Used by\n" + lsmod,
                       lib_modules=lib_modules, root=tmp_path, ip_tables_matches=matches_file)


def _check(host: cs.HostView, kernel_config: str = "") -> tuple[str, str | None]:
    out: list[str] = []
    try:
        cs.checksystem(kernel_config, out.append, host)
        return "".join(out), None
    except CommandFailed as exc:
        return "".join(out), str(exc)


def _config(modules) -> str:
    return "".join(f"{cs.REQUIRED_MODULES[m]}=y\n" for m in modules)


def test_the_nineteen_modules_in_sorted_order():
    assert sorted(cs.REQUIRED_MODULES) == SORTED
    assert cs.REQUIRED_MODULES["xt_icmp"] == cs.REQUIRED_MODULES["xt_icmp6"] == "icmp"


def test_all_present(tmp_path):
    """modules.dep (compressed), modules.builtin, lsmod and the kernel config each count."""
    dep = ["ip_set.ko.zst", "ipt_REJECT.ko.xz", "xt_bpf.ko"]
    builtin = ["ip_tables.ko", "ip6_tables.ko", "xt_mark.ko", "vfio-pci.ko"]
    lsmod = "xt_conntrack          16384  1\nxt_multiport          16384  0\nxt_addrtype   16384  2\n"
    config = _config(["ipt_ipvs", "ipt_rpfilter", "ipt_set", "nf_conntrack_netlink", "xt_set", "xt_u32"])
    host = _host(tmp_path, dep=dep, builtin=builtin, lsmod=lsmod, boot_config=config, matches="icmp\nmark\n")
    text, error = _check(host)
    assert error is None
    assert text == HEAD + "".join(line(m, "OK") for m in SORTED) + PASSED


def test_only_ip6_tables_missing_warns_and_passes(tmp_path):
    host = _host(tmp_path, boot_config=_config(m for m in SORTED if m != "ip6_tables"))
    text, error = _check(host)
    assert error is None
    assert text == (HEAD + missing("ip6_tables") + "".join(line(m, "OK") for m in SORTED[1:])
                    + "WARNING: IPv6 will be unavailable as ip6_tables kernel module is not found\n" + PASSED)


@pytest.mark.parametrize("absent", [["xt_u32"], ["ip6_tables", "xt_bpf"]])
def test_another_module_missing_fails(tmp_path, absent):
    host = _host(tmp_path, boot_config=_config(m for m in SORTED if m not in absent))
    text, error = _check(host)
    assert error == FAILED
    assert text == HEAD + "".join(missing(m) if m in absent else line(m, "OK") for m in SORTED)


def test_lsmod_failing_stops_the_module_checks(tmp_path):
    def no_lsmod() -> str:
        raise subprocess.CalledProcessError(1, ["lsmod"])

    host = _host(tmp_path, boot_config=_config(SORTED))
    host.lsmod = no_lsmod
    text, error = _check(host)
    assert error == FAILED
    assert text == HEAD + "Error executing command: exit status 1\n"


def test_uname_failing(tmp_path):
    def no_uname() -> str:
        raise FileNotFoundError(2, "No such file or directory", "uname")

    host = _host(tmp_path, boot_config=_config(SORTED))
    host.release = no_uname
    text, error = _check(host)
    assert error == FAILED
    error_line = 'Error executing command: exec: "uname": executable file not found in $PATH\n'
    assert text == ("Checking kernel version...\n" + line("", "FAIL") + error_line
                    + "Checking kernel modules...\n" + error_line)


def test_kernel_config_any_value_counts(tmp_path):
    """``^OPTION=.``: ``=n`` (or any value) counts, an empty value or a comment does not."""
    config = tmp_path / "my.config"
    config.write_text("".join(f"{cs.REQUIRED_MODULES[m]}=n\n" for m in SORTED if m not in ("xt_set", "xt_u32"))
                      + "CONFIG_NETFILTER_XT_SET=\n# CONFIG_NETFILTER_XT_MATCH_U32 is not set\n")
    text, error = _check(_host(tmp_path), str(config))
    assert error == FAILED
    assert text == HEAD + "".join(missing(m) if m in ("xt_set", "xt_u32") else line(m, "OK") for m in SORTED)


def test_ip_tables_matches_fallback(tmp_path):
    """xt_icmp and xt_icmp6 ("icmp") are found by a line that is exactly ``icmp``."""
    config = _config(m for m in SORTED if m not in ("xt_icmp", "xt_icmp6"))
    text, error = _check(_host(tmp_path, boot_config=config, matches="icmp\n"))
    assert error is None
    assert text == HEAD + "".join(line(m, "OK") for m in SORTED) + PASSED
    text, error = _check(_host(tmp_path / "again", boot_config=config, matches="icmp6\nicmpx\n"))
    assert error == FAILED
    assert missing("xt_icmp") + missing("xt_icmp6") in text


def test_lsmod_match_is_unanchored(tmp_path):
    """A module name anywhere in lsmod's output counts (e.g. inside "Used by")."""
    config = _config(m for m in SORTED if m != "xt_set")
    host = _host(tmp_path, boot_config=config, lsmod="ip_set  57344  1 xt_set\n")
    assert _check(host)[1] is None


def test_f_replaces_the_usual_places(tmp_path):
    host = _host(tmp_path, boot_config=_config(SORTED))
    assert _check(host)[1] is None  # found in /boot/config-<release>
    empty = tmp_path / "empty.config"
    empty.write_text("")
    assert _check(host, str(empty))[1] == FAILED  # -f wins, and it has nothing
    assert _check(host, str(tmp_path / "absent.config"))[1] == FAILED  # even when it does not exist


def test_old_kernel(tmp_path):
    host = _host(tmp_path, release="2.6.23-foo", boot_config=_config(SORTED))
    text, error = _check(host)
    assert error == FAILED
    assert text == ("Checking kernel version...\n" + line("2.6.23-foo", "FAIL")
                    + "Minimum kernel version to run Calico is 2.6.24. Detected kernel version: 2.6.23-foo\n"
                    + "Checking kernel modules...\n" + "".join(line(m, "OK") for m in SORTED))


@pytest.mark.parametrize("release,ok", [("2.6.24", True), ("2.6.24.1", True), ("3.10.0-1160.el7.x86_64", True),
                                        ("6.1.0-18-amd64", True), ("2.6.25-rc1", True), ("10.0", True),
                                        ("2.6.9", False), ("2.6", False), ("", False),
                                        # go-version: a suffix after an equal version makes it older
                                        ("2.6.24-foo", False), ("2.6.24-rc1", False), ("v3.0", False)])
def test_kernel_version_comparison(release, ok):
    assert cs.kernel_at_least(release) is ok


def test_this_host_with_a_complete_kernel_config(tmp_path, capsys):
    """The command line on the real host, with every option in -f: it passes, unless lsmod
    cannot run here (no /proc/modules), where calicoctl stops the module checks and fails."""
    config = tmp_path / "complete.config"
    config.write_text(_config(SORTED))
    lsmod_works = shutil.which("lsmod") is not None and subprocess.run(["lsmod"], capture_output=True).returncode == 0
    rc = main(["node", "checksystem", "-f", str(config)])
    captured = capsys.readouterr()
    assert captured.out.startswith("Checking kernel version...\n\t\t")
    if lsmod_works:
        assert rc == 0
        assert captured.out.endswith("Checking kernel modules...\n" + "".join(line(m, "OK") for m in SORTED)
                                     + PASSED)
    else:
        assert rc == 1 and captured.err == FAILED + "\n"
        assert captured.out.endswith("Checking kernel modules...\nError executing command: "
                                     + ("exit status 1\n" if shutil.which("lsmod") else
                                        'exec: "lsmod": executable file not found in $PATH\n'))
