"""The xen_hypervisor role's validation and planning, one case per message."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ansible_collections.xen_lab.dom0.plugins.filter.xen_hypervisor import FilterModule
from ansible_collections.xen_lab.dom0.plugins.module_utils import xen_hypervisor_plan as hp
from ansible_collections.xen_lab.dom0.plugins.module_utils.xen_xl import parse_xl_info

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


# Command lines: exact on the role's words, in order.

# grub.cfg of a trixie lab VM after the role ran with a 1 GiB dom0 and 2 vCPUs.
LAB_GRUB_CFG = (DATA / "grub-trixie-xen.cfg").read_text()
LAB_XEN = "dom0_mem=1024M,max:1024M dom0_max_vcpus=2 console=com1 com1=115200,8n1"
LAB_DOM0 = "console=hvc0"
LAB_XEN_LINE = "/boot/xen-4.20-amd64.gz placeholder  " + LAB_XEN + " ${xen_rm_opts}"
LAB_DOM0_LINE = (
    "/boot/vmlinuz-6.12.117+deb13-amd64 placeholder"
    " root=UUID=fcd30ff9-c69e-453d-ab4a-40c3c0f1fe39 ro  console=hvc0"
)


def serial(boot: str, what: str) -> str:
    """A command line from data/serial-cmdlines.txt: ``what`` is xen or dom0."""
    marker = "(XEN) Command line: " if what == "xen" else "Kernel command line: "
    for line in (DATA / "serial-cmdlines.txt").read_text().splitlines():
        if line.startswith(boot + " ") and marker in line:
            return line.split(marker, 1)[1]
    raise AssertionError(f"no {what} command line for {boot}")


def lab_menu(xen_line: str = LAB_XEN_LINE, dom0_line: str = LAB_DOM0_LINE) -> str:
    """The lab's grub.cfg with the Xen entry's two lines replaced (only that entry's)."""
    assert LAB_GRUB_CFG.count(LAB_XEN_LINE) == 2  # the plain entry's, then the advanced one's
    menu = LAB_GRUB_CFG.replace(LAB_XEN_LINE, xen_line, 1)
    return menu.replace(LAB_DOM0_LINE, dom0_line, 1)


def test_the_xen_entry_lines_are_read_from_the_lab_grub_cfg() -> None:
    assert hp.xen_entry_cmdlines(LAB_GRUB_CFG) == (
        ["placeholder", *LAB_XEN.split(), "${xen_rm_opts}"],
        ["placeholder", "root=UUID=fcd30ff9-c69e-453d-ab4a-40c3c0f1fe39", "ro", "console=hvc0"],
    )
    assert hp.xen_entry_cmdlines(GRUB_CFG) is not None
    assert hp.xen_entry_cmdlines("menuentry 'Debian' {\n linux /vmlinuz\n}\n") is None


def test_the_lab_menu_and_boots_carry_the_planned_options() -> None:
    out = hp.plan(settings(), RAM, CPUS, PLAIN)
    assert (out["xen_cmdline"], out["dom0_cmdline"]) == (LAB_XEN, LAB_DOM0)
    assert hp.xen_entry_has_cmdline(LAB_GRUB_CFG, LAB_XEN, LAB_DOM0)
    assert hp.xen_entry_has_cmdline(GRUB_CFG, LAB_XEN, LAB_DOM0)
    for boot in ("bookworm", "trixie-init-false"):
        assert hp.xen_runs_cmdline(serial(boot, "xen"), LAB_XEN)
    xen = serial("bookworm", "xen")
    assert hp.dom0_runs_cmdline(serial("bookworm", "dom0"), LAB_DOM0, xen)
    assert hp.dom0_runs_cmdline(serial("trixie-extra", "dom0"), LAB_DOM0, xen)


def test_xl_info_of_the_lab_dom0_carries_the_planned_options() -> None:
    for release in ("trixie", "bookworm"):
        info = parse_xl_info((DATA / f"xl-info-{release}.txt").read_text())
        assert hp.xen_runs_cmdline(info["xen_commandline"], LAB_XEN)


def test_an_extra_option_is_seen_added_and_removed() -> None:
    extra = hp.plan(settings(cmdline_extra="hap_1gb=false hap_2mb=false"), RAM, CPUS, PLAIN)
    running = serial("trixie-extra", "xen")
    assert hp.xen_runs_cmdline(running, extra["xen_cmdline"])
    # Added: Xen runs without the new options.
    assert not hp.xen_runs_cmdline(serial("bookworm", "xen"), extra["xen_cmdline"])
    # Removed: Xen runs with options the role no longer plans.
    assert not hp.xen_runs_cmdline(running, LAB_XEN)
    # One of the two removed.
    one = hp.plan(settings(cmdline_extra="hap_1gb=false"), RAM, CPUS, PLAIN)["xen_cmdline"]
    assert not hp.xen_runs_cmdline(running, one)
    # The same in the menu.
    menu = lab_menu(xen_line=LAB_XEN_LINE.replace(LAB_XEN, extra["xen_cmdline"]))
    assert hp.xen_entry_has_cmdline(menu, extra["xen_cmdline"], LAB_DOM0)
    assert not hp.xen_entry_has_cmdline(menu, LAB_XEN, LAB_DOM0)
    assert not hp.xen_entry_has_cmdline(LAB_GRUB_CFG, extra["xen_cmdline"], LAB_DOM0)


def test_a_dom0_option_is_seen_added_and_removed() -> None:
    xen = serial("trixie-init-false", "xen")
    running = serial("trixie-init-false", "dom0")
    assert hp.dom0_runs_cmdline(running, "console=hvc0 init=/bin/false", xen)
    assert not hp.dom0_runs_cmdline(running, LAB_DOM0, xen)
    assert not hp.dom0_runs_cmdline(serial("trixie-extra", "dom0"), "console=hvc0 quiet", xen)
    menu = lab_menu(dom0_line=LAB_DOM0_LINE + " init=/bin/false")
    assert hp.xen_entry_has_cmdline(menu, LAB_XEN, "console=hvc0 init=/bin/false")
    assert not hp.xen_entry_has_cmdline(menu, LAB_XEN, LAB_DOM0)
    assert not hp.xen_entry_has_cmdline(LAB_GRUB_CFG, LAB_XEN, "console=hvc0 init=/bin/false")


def test_a_changed_value_or_order_is_a_change() -> None:
    running = serial("bookworm", "xen")
    assert not hp.xen_runs_cmdline(running, LAB_XEN.replace("1024M", "2048M"))
    swapped = "dom0_mem=1024M,max:1024M dom0_max_vcpus=2 com1=115200,8n1 console=com1"
    assert not hp.xen_runs_cmdline(running, swapped)
    assert not hp.xen_entry_has_cmdline(LAB_GRUB_CFG, swapped, LAB_DOM0)
    assert not hp.xen_entry_has_cmdline(LAB_GRUB_CFG, LAB_XEN, "console=tty0")


def test_grub_and_host_words_before_ours_are_left_alone() -> None:
    # The host's own GRUB_CMDLINE_XEN and GRUB_CMDLINE_LINUX come before the
    # role's words, after GRUB's placeholder, root= and ro.
    menu = lab_menu(
        xen_line=LAB_XEN_LINE.replace("placeholder ", "placeholder iommu=verbose "),
        dom0_line=LAB_DOM0_LINE.replace(" ro ", " ro net.ifnames=0 "),
    )
    assert hp.xen_entry_has_cmdline(menu, LAB_XEN, LAB_DOM0)
    running = serial("bookworm", "xen").replace("placeholder ", "placeholder iommu=verbose ")
    assert hp.xen_runs_cmdline(running, LAB_XEN)
    dom0 = serial("bookworm", "dom0").replace(" ro ", " ro net.ifnames=0 ")
    assert hp.dom0_runs_cmdline(dom0, LAB_DOM0, running)


def test_only_the_plain_xen_entry_counts() -> None:
    # The advanced entries of the same menu carry the options too; a plain
    # entry without them is stale however the others look.
    menu = lab_menu(xen_line=LAB_XEN_LINE.replace("dom0_max_vcpus=2 ", ""))
    assert not hp.xen_entry_has_cmdline(menu, LAB_XEN, LAB_DOM0)
    assert not hp.xen_entry_has_cmdline("", LAB_XEN, LAB_DOM0)


def test_what_grub_and_xen_add_after_ours_is_theirs() -> None:
    # GRUB's xen_rm_opts on UEFI.
    uefi = serial("bookworm", "xen") + " no-real-mode edd=off"
    assert hp.xen_runs_cmdline(uefi, LAB_XEN)
    assert not hp.xen_runs_cmdline(uefi + " x", LAB_XEN)
    # Xen passes its own acpi= and noapic on to dom0.
    xen = serial("bookworm", "xen") + " noapic acpi=off"
    dom0 = serial("bookworm", "dom0")
    assert hp.dom0_runs_cmdline(dom0 + " noapic acpi=off", LAB_DOM0, xen)
    assert hp.dom0_runs_cmdline(dom0 + " noapic acpi=off", LAB_DOM0 + " noapic", xen)
    assert hp.dom0_runs_cmdline(
        dom0 + " acpi=off", LAB_DOM0, serial("bookworm", "xen") + " acpi=off"
    )
    # Without them in Xen's options, they were dom0's own: removing one is a change.
    assert not hp.dom0_runs_cmdline(dom0 + " acpi=off", LAB_DOM0, serial("bookworm", "xen"))
    assert not hp.dom0_runs_cmdline(dom0 + " noapic", LAB_DOM0, serial("bookworm", "xen"))


def test_without_dom0_options_any_dom0_line_is_ours() -> None:
    # console none and no extra: GRUB writes the host's GRUB_CMDLINE_LINUX_DEFAULT.
    none = hp.plan(settings(console="none"), RAM, CPUS, PLAIN)
    assert none["dom0_cmdline"] == ""
    menu = lab_menu(dom0_line=LAB_DOM0_LINE.replace("console=hvc0", "quiet"))
    xen_line = LAB_XEN_LINE.replace(LAB_XEN, none["xen_cmdline"])
    assert hp.xen_entry_has_cmdline(lab_menu(xen_line, LAB_DOM0_LINE), none["xen_cmdline"], "")
    assert hp.xen_entry_has_cmdline(menu, LAB_XEN, "")
    assert hp.dom0_runs_cmdline(serial("bookworm", "dom0"), "", serial("bookworm", "xen"))


def test_the_filters_compare_as_the_role_calls_them() -> None:
    filters = FilterModule().filters()
    assert filters["xen_grub_entry_has_cmdline"](LAB_GRUB_CFG, LAB_XEN, LAB_DOM0)
    assert filters["xen_hypervisor_runs_cmdline"](serial("bookworm", "xen"), LAB_XEN)
    assert not filters["xen_dom0_runs_cmdline"](
        serial("trixie-init-false", "dom0"), LAB_DOM0, serial("bookworm", "xen")
    )
