"""The xen_hypervisor role's validation and planning, one case per message."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ansible_collections.xen_lab.dom0.plugins.filter.xen_hypervisor import FilterModule
from ansible_collections.xen_lab.dom0.plugins.module_utils import xen_hypervisor_plan as hp

DATA = Path(__file__).parent / "data"
RAM = 2978  # MiB the 3 GiB lab VM reports
CPUS = 2
# grub-probe's answers for /boot/grub (see test_xen_grubenv.py); the lab's is plain ext4.
GRUB_PROBE: dict[str, dict[str, Any]] = json.loads((DATA / "grub-probe.json").read_text())
PLAIN = GRUB_PROBE["plain-ext4"]


def settings(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "dom0_mem": "1G",
        "guest_mem_min": "512M",
        "dom0_vcpus": 0,
        "dom0_vcpus_pin": False,
        "console": "com1",
        "serial_baud": 115200,
        "cmdline_extra": "",
        "dom0_cmdline_extra": "",
        "boot_once": True,
    }
    base.update(kw)
    return base


def test_good_settings_give_the_xen_and_dom0_command_lines() -> None:
    out = hp.plan(settings(), RAM, CPUS, PLAIN)
    assert out["errors"] == []
    assert out["dom0_mem_mib"] == 1024
    assert out["dom0_vcpus"] == 2
    assert out["xen_cmdline"] == (
        "dom0_mem=1024M,max:1024M dom0_max_vcpus=2 console=com1 com1=115200,8n1"
    )
    assert out["dom0_cmdline"] == "console=hvc0"


def test_auto_memory_grows_with_ram_and_is_capped() -> None:
    assert hp.auto_dom0_mem_mib(2978) == 1024 + 64 * 2
    assert hp.auto_dom0_mem_mib(65536) == 1024 + 64 * 64
    assert hp.auto_dom0_mem_mib(1024 * 1024) == 8192
    assert hp.plan(settings(dom0_mem="auto"), 16384, 8, PLAIN)["dom0_mem_mib"] == 2048


def test_auto_vcpus_take_at_most_four() -> None:
    assert hp.plan(settings(), 64000, 32, PLAIN)["dom0_vcpus"] == 4
    assert hp.plan(settings(), RAM, 1, PLAIN)["dom0_vcpus"] == 1


def test_vga_and_none_consoles_and_extras() -> None:
    vga = hp.plan(settings(console="vga", dom0_cmdline_extra="loglevel=4"), RAM, CPUS, PLAIN)
    assert vga["xen_cmdline"].endswith("console=vga")
    assert vga["dom0_cmdline"] == "console=tty0 loglevel=4"
    none = hp.plan(settings(console="none", cmdline_extra="ucode=scan"), RAM, CPUS, PLAIN)
    assert none["xen_cmdline"].endswith("console=none ucode=scan")
    assert none["dom0_cmdline"] == ""
    pinned = hp.plan(settings(dom0_vcpus_pin=True, dom0_vcpus=1), RAM, CPUS, PLAIN)
    assert "dom0_max_vcpus=1 dom0_vcpus_pin" in pinned["xen_cmdline"]


BAD = [
    (
        {"dom0_mem": "4X"},
        "xen_hypervisor_dom0_mem: Invalid size '4X'",
    ),
    (
        {"dom0_mem": "1.3M"},
        "xen_hypervisor_dom0_mem: Invalid size '1.3M'",
    ),
    (
        {"dom0_mem": "256M"},
        "xen_hypervisor_dom0_mem is 256 MiB: a dom0 needs at least 512 MiB; raise it.",
    ),
    (
        {"dom0_mem": "8G"},
        "xen_hypervisor_dom0_mem is 8192 MiB but the host has only 2978 MiB of RAM; lower it.",
    ),
    (
        {"dom0_mem": "2560M"},
        "xen_hypervisor_dom0_mem is 2560 MiB: with 2978 MiB of RAM that leaves 418 MiB for guests,"
        " less than xen_hypervisor_guest_mem_min (512 MiB); lower dom0_mem or the minimum.",
    ),
    (
        {"guest_mem_min": "lots"},
        "xen_hypervisor_guest_mem_min: Invalid size 'lots'",
    ),
    (
        {"dom0_vcpus": 3},
        "xen_hypervisor_dom0_vcpus is 3 but the host has only 2 CPUs; use at most 2.",
    ),
    (
        {"dom0_vcpus": -1},
        "xen_hypervisor_dom0_vcpus is -1: use 0 for automatic or a positive count.",
    ),
    (
        {"serial_baud": 12345},
        "xen_hypervisor_serial_baud is 12345: use one of 9600, 19200, 38400, 57600, 115200.",
    ),
    (
        {"cmdline_extra": 'loglvl=all"; reboot'},
        "xen_hypervisor_cmdline_extra is 'loglvl=all\"; reboot': use blank-separated options",
    ),
    (
        {"dom0_cmdline_extra": "quiet $(id)"},
        "xen_hypervisor_dom0_cmdline_extra is 'quiet $(id)': use blank-separated options",
    ),
    (
        {"cmdline_extra": "dom0_mem=4G"},
        "xen_hypervisor_cmdline_extra sets dom0_mem=, which the role manages: use the matching"
        " xen_hypervisor_* setting instead.",
    ),
]


@pytest.mark.parametrize(("change", "message"), BAD, ids=[str(c) for c, _ in BAD])
def test_bad_settings_give_one_clear_error(change: dict[str, Any], message: str) -> None:
    errors = hp.plan(settings(**change), RAM, CPUS, PLAIN)["errors"]
    assert len(errors) == 1, errors
    assert errors[0].startswith(message), errors[0]


def test_every_problem_is_reported_at_once() -> None:
    errors = hp.plan(settings(dom0_mem="9G", dom0_vcpus=9, serial_baud=1), RAM, CPUS, PLAIN)[
        "errors"
    ]
    assert len(errors) == 3


# GRUB's environment block: boot-once is refused where GRUB cannot write it.


def test_boot_once_on_plain_ext4_is_planned() -> None:
    out = hp.plan(settings(), RAM, CPUS, PLAIN)
    assert out["errors"] == []
    assert out["grubenv"]["writable"] is True


@pytest.mark.parametrize(
    ("host", "message"),
    [
        (
            "md-raid1",
            "GRUB cannot write its environment block on md RAID (grub-probe --target=abstraction"
            " /boot/grub: diskfilter), so it would never clear the boot-once entry (grub-reboot's"
            " next_entry) and a Xen that fails would boot again and again: set"
            " xen_hypervisor_boot_once: false to make the Xen entry GRUB's default directly,"
            " without a trial boot.",
        ),
        (
            "lvm",
            "GRUB cannot write its environment block on LVM (grub-probe --target=abstraction"
            " /boot/grub: lvm), so it would never clear the boot-once entry (grub-reboot's"
            " next_entry) and a Xen that fails would boot again and again: set"
            " xen_hypervisor_boot_once: false to make the Xen entry GRUB's default directly,"
            " without a trial boot.",
        ),
        (
            "zfs",
            "GRUB cannot write its environment block on ZFS (grub-probe --target=fs"
            " /boot/grub: zfs), so it would never clear the boot-once entry (grub-reboot's"
            " next_entry) and a Xen that fails would boot again and again: set"
            " xen_hypervisor_boot_once: false to make the Xen entry GRUB's default directly,"
            " without a trial boot.",
        ),
    ],
)
def test_boot_once_where_grub_cannot_write_its_environment_is_refused(
    host: str, message: str
) -> None:
    errors = hp.plan(settings(), RAM, CPUS, GRUB_PROBE[host])["errors"]
    assert errors == [message]


def test_boot_once_where_grub_probe_fails_is_refused() -> None:
    errors = hp.plan(settings(), RAM, CPUS, GRUB_PROBE["no-boot-grub"])["errors"]
    assert errors == [
        "Whether GRUB can write its environment block is unknown (grub-probe"
        " --target=abstraction /boot/grub failed: grub-probe: error: failed to get canonical"
        " path of `/boot/grub'.); if it cannot, it never clears the boot-once entry"
        " (grub-reboot's next_entry) and a Xen that fails boots again and again: run the role as"
        " root on a host that boots with GRUB, or set xen_hypervisor_boot_once: false to make"
        " the Xen entry GRUB's default directly, without a trial boot."
    ]


@pytest.mark.parametrize("host", ["md-raid1", "lvm", "no-boot-grub"])
def test_without_boot_once_the_storage_is_no_error(host: str) -> None:
    out = hp.plan(settings(boot_once=False), RAM, CPUS, GRUB_PROBE[host])
    assert out["errors"] == []
    assert out["grubenv"]["writable"] is not True


def test_the_filter_plans_as_the_role_calls_it() -> None:
    plan = FilterModule().filters()["xen_hypervisor_plan"]
    out = plan(settings(), "2978", "2", GRUB_PROBE["md-raid1"])
    assert out["dom0_vcpus"] == 2
    assert len(out["errors"]) == 1
    assert out["errors"][0].startswith("GRUB cannot write its environment block on md RAID")


GRUB_CFG = """\
menuentry 'Debian GNU/Linux' --class debian --class gnu-linux --class gnu --class os \
$menuentry_id_option 'gnulinux-simple-38632a8e-4e31-4130-9c98-6bd27e4ca1a7' {
	linux	/boot/vmlinuz-6.12.57+deb13-amd64 root=UUID=38632a8e ro  console=ttyS0,115200n8
}
menuentry 'Debian GNU/Linux GNU/Linux, with Xen hypervisor' --class debian --class gnu-linux \
--class gnu --class os --class xen $menuentry_id_option \
'xen-gnulinux-simple-38632a8e-4e31-4130-9c98-6bd27e4ca1a7' {
	multiboot2	/boot/xen-4.20-amd64.gz placeholder  dom0_mem=1024M,max:1024M \
dom0_max_vcpus=2 console=com1 com1=115200,8n1 ${xen_rm_opts}
	module2	/boot/vmlinuz-6.12.57+deb13-amd64 placeholder root=UUID=38632a8e ro  console=hvc0
}
"""


def test_entry_ids_are_read_from_grub_cfg() -> None:
    uuid = "38632a8e-4e31-4130-9c98-6bd27e4ca1a7"
    assert hp.xen_entry_id(GRUB_CFG) == f"xen-gnulinux-simple-{uuid}"
    assert hp.linux_entry_id(GRUB_CFG) == f"gnulinux-simple-{uuid}"
    assert hp.xen_entry_id("menuentry 'Debian' { linux /vmlinuz }") is None


def test_menu_command_line_check_is_exact() -> None:
    line = "dom0_mem=1024M,max:1024M dom0_max_vcpus=2 console=com1 com1=115200,8n1"
    assert hp.xen_entry_has_cmdline(GRUB_CFG, line)
    assert not hp.xen_entry_has_cmdline(GRUB_CFG, line.replace("1024M", "2048M"))
    assert not hp.xen_entry_has_cmdline("", line)
