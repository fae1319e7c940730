"""``calicoctl node checksystem``: the kernel checks, against made-up hosts and this one."""
from __future__ import annotations

from pathlib import Path

import pytest

from node.cli.calicoctl import main
from node.cli.ctl import _node_checksystem as cs
from node.cli.ctl._common import CommandFailed

RELEASE = "6.1.0-18-amd64"
ALL_OPTIONS = "".join(f"{opt}=m\n" for check in cs.MODULES for opt in check.config_options[:1])


def _host(tmp_path: Path, release: str = RELEASE, loaded=(), dep=(), builtin=(), lsmod: str = "",
          boot_config: str | None = None) -> cs.HostView:
    sys_module, lib_modules = tmp_path / "sys-module", tmp_path / "lib-modules"
    (lib_modules / release).mkdir(parents=True)
    sys_module.mkdir()
    for name in loaded:
        (sys_module / name).mkdir()
    (lib_modules / release / "modules.dep").write_text(
        "".join(f"kernel/net/netfilter/{m}: kernel/net/netfilter/x_tables.ko.xz\n" for m in dep))
    (lib_modules / release / "modules.builtin").write_text("".join(f"kernel/net/{m}\n" for m in builtin))
    if boot_config is not None:
        (tmp_path / "boot").mkdir()
        (tmp_path / "boot" / f"config-{release}").write_text(boot_config)
    return cs.HostView(release=lambda: release, lsmod=lambda: "Module Size Used by\n" + lsmod,
                       sys_module=sys_module, lib_modules=lib_modules, root=tmp_path)


def _check(host: cs.HostView, kernel_config: str = "") -> tuple[str, str | None]:
    out: list[str] = []
    try:
        cs.checksystem(kernel_config, out.append, host)
        return "".join(out), None
    except CommandFailed as exc:
        return "".join(out), str(exc)


def line(value: str, result: str) -> str:
    return f"\t\t{value:<20}\t\t\t\t\t{result}\n"


def test_every_detection_path(tmp_path):
    """sysfs (hyphen as underscore), modules.dep (compressed), modules.builtin, lsmod,
    alternative names and kernel config options each satisfy a check."""
    host = _host(tmp_path, loaded=["ip_set", "vfio_pci"], dep=["xt_set.ko.zst", "ipt_REJECT.ko.xz", "xt_bpf.ko"],
                 builtin=["ip_tables.ko", "ip6_tables.ko", "xt_mark.ko"],
                 lsmod="xt_conntrack 16384 1\nxt-multiport 16384 0\nxt_addrtype 16384 2\n",
                 boot_config="CONFIG_NETFILTER_XT_MATCH_IPVS=m\nCONFIG_IP6_NF_MATCH_RPFILTER=y\n"
                             "CONFIG_NF_CT_NETLINK=m\n# CONFIG_NETFILTER_XT_MATCH_U32 is not set\n")
    text, error = _check(host)
    assert error is None
    expected = "Checking kernel version...\n" + line(RELEASE, "OK") + "Checking kernel modules...\n"
    for check in cs.MODULES:
        if check.name == "xt_u32":
            expected += "WARNING: Unable to detect optional module/feature xt_u32; continuing\n" + line("xt_u32", "SKIP")
        else:
            expected += line(check.name, "OK")
    assert text == expected + "System meets minimum system requirements to run Calico!\n"


def test_missing_modules_fail_and_optional_ones_warn(tmp_path):
    host = _host(tmp_path, loaded=["ip_set", "ip_tables", "xt_set"])
    text, error = _check(host)
    assert error == "system doesn't meet one or more minimum systems requirements to run Calico"
    assert line("ip_set", "OK") in text and line("xt_set", "OK") in text
    assert ("WARNING: Unable to detect the nf_conntrack_netlink module as Loaded/Builtin module or lsmod\n"
            + line("nf_conntrack_netlink", "FAIL")) in text
    assert "WARNING: Unable to detect optional module/feature ip6_tables; continuing\n" + line("ip6_tables", "SKIP") \
        in text
    assert "System meets" not in text


def test_kernel_config_file_given_with_f(tmp_path):
    host = _host(tmp_path)
    config = tmp_path / "my.config"
    config.write_text(ALL_OPTIONS)
    text, error = _check(host, str(config))
    assert error is None and text.count("\tOK\n") == len(cs.MODULES) + 1


def test_f_replaces_the_usual_places(tmp_path):
    host = _host(tmp_path, boot_config=ALL_OPTIONS)
    assert _check(host)[1] is None  # found in /boot/config-<release>
    empty = tmp_path / "empty.config"
    empty.write_text("")
    assert _check(host, str(empty))[1] is not None  # -f wins, and it has nothing


def test_old_kernel(tmp_path):
    host = _host(tmp_path, release="2.6.23-foo", boot_config=ALL_OPTIONS)
    text, error = _check(host)
    assert error is not None
    assert text.startswith("Checking kernel version...\n" + line("2.6.23-foo", "FAIL")
                           + "Minimum kernel version to run Calico is 2.6.24. Detected kernel version: 2.6.23-foo\n")


@pytest.mark.parametrize("release,ok", [("2.6.24", True), ("2.6.24.1", True), ("3.10.0-1160.el7.x86_64", True),
                                        ("2.6.9", False), ("2.6", False), ("", False)])
def test_kernel_version_comparison(release, ok):
    assert cs.kernel_at_least(release) is ok


def test_this_host_with_a_complete_kernel_config(tmp_path, capsys):
    """The command line on the real host: with every option in -f the report must pass."""
    config = tmp_path / "complete.config"
    config.write_text(ALL_OPTIONS)
    assert main(["node", "checksystem", "-f", str(config)]) == 0
    out = capsys.readouterr().out
    # (a host without loadable-module support, like some CI machines, adds the lsmod warning)
    out = "".join(x for x in out.splitlines(keepends=True) if not x.startswith("WARNING: lsmod failed"))
    assert out.startswith("Checking kernel version...\n\t\t")
    assert out.endswith("Checking kernel modules...\n" + "".join(line(c.name, "OK") for c in cs.MODULES)
                        + "System meets minimum system requirements to run Calico!\n")


def test_lsmod_failure_is_a_warning(tmp_path):
    """A kernel without loadable modules has no lsmod; the other sources still count."""
    import subprocess

    def no_lsmod() -> str:
        raise subprocess.CalledProcessError(1, ["lsmod"])

    host = _host(tmp_path, boot_config=ALL_OPTIONS)
    host.lsmod = no_lsmod
    text, error = _check(host)
    assert error is None
    assert "Checking kernel modules...\nWARNING: lsmod failed (exit status 1); checking without it\n" in text
