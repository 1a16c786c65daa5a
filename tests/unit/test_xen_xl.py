"""Parsers fed with real output captured from the trixie lab dom0 (Xen 4.20)."""

from __future__ import annotations

import json
from pathlib import Path

from ansible_collections.xen_lab.dom0.plugins.module_utils import xen_hypervisor_plan as hp
from ansible_collections.xen_lab.dom0.plugins.module_utils.xen_xl import (
    parse_xl_info,
    parse_xl_list,
)

DATA = Path(__file__).parent / "data"


def test_xl_info_from_the_lab_dom0() -> None:
    info = parse_xl_info((DATA / "xl-info-trixie.txt").read_text())
    assert info["xen_version"] == "4.20.5-pre"
    assert info["virt_caps"].split()[:2] == ["pv", "hvm"]
    assert info["total_memory"] == "3071"
    assert info["nr_cpus"] == "2"
    assert info["xen_commandline"] == (
        "placeholder dom0_mem=1024M,max:1024M dom0_max_vcpus=2 console=com1 com1=115200,8n1"
    )
    # a value that itself holds colons survives
    assert info["hw_caps"].count(":") == 7
    assert info["cc_compile_date"] == "Tue Nov  3 20:11:50 UTC 2026"


def test_xl_list_from_the_lab_dom0() -> None:
    rows = parse_xl_list((DATA / "xl-list-trixie.txt").read_text())
    assert rows == [
        {"name": "Domain-0", "id": 0, "mem": 1024, "vcpus": 2, "state": "r-----", "time": 189.7}
    ]


def test_xl_list_long_agrees_with_xl_list() -> None:
    domains = json.loads((DATA / "xl-list-l-trixie.json").read_text())
    dom0 = domains[0]
    assert dom0["domid"] == 0
    assert dom0["config"]["b_info"]["max_memkb"] // 1024 == 1024


def test_grub_cfg_of_the_lab_dom0() -> None:
    grub_cfg = (DATA / "grub-trixie-xen.cfg").read_text()
    uuid = "fcd30ff9-c69e-453d-ab4a-40c3c0f1fe39"
    assert hp.xen_entry_id(grub_cfg) == f"xen-gnulinux-simple-{uuid}"
    assert hp.linux_entry_id(grub_cfg) == f"gnulinux-simple-{uuid}"
    planned = "dom0_mem=1024M,max:1024M dom0_max_vcpus=2 console=com1 com1=115200,8n1"
    assert hp.xen_entry_has_cmdline(grub_cfg, planned, "console=hvc0")
    assert not hp.xen_entry_has_cmdline(
        grub_cfg, planned.replace("dom0_max_vcpus=2", "dom0_max_vcpus=1"), "console=hvc0"
    )


def test_xl_info_and_list_from_the_bookworm_lab_dom0() -> None:
    info = parse_xl_info((DATA / "xl-info-bookworm.txt").read_text())
    assert info["xen_version"] == "4.17.5"
    assert info["virt_caps"].split() == ["pv", "hvm", "shadow", "gnttab-v1", "gnttab-v2"]
    assert info["total_memory"] == "3071"
    rows = parse_xl_list((DATA / "xl-list-bookworm.txt").read_text())
    assert [(r["name"], r["id"], r["mem"], r["vcpus"]) for r in rows] == [("Domain-0", 0, 1024, 2)]
