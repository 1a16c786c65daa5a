"""xen_preflight in a real trixie VM: its report matches the host; an
unsupported plan or release fails with the exact message and changes nothing;
and site.yml with wrong bridges and guests stops in its first play, with every
problem named, before any stage changed the host."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[5] / "tests" / "molecule"))
from helpers import REPO, playbook, scenario_file, tree_digest

from ansible_collections.xen_lab.dom0.plugins.module_utils import xen_guests_plan as gp
from ansible_collections.xen_lab.dom0.plugins.module_utils import xen_hypervisor_plan as hp
from ansible_collections.xen_lab.dom0.plugins.module_utils import xen_network_plan as np
from ansible_collections.xen_lab.dom0.plugins.module_utils import xen_preflight
from ansible_collections.xen_lab.dom0.plugins.module_utils.xen_sizes import SIZE_ERROR

WATCHED = ("/etc", "/boot", "/var/lib/dpkg/status")


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("preflight") / "report.json"
    proc = playbook(scenario_file("report.yml"), env={"XEN_PREFLIGHT_REPORT": str(out)})
    assert proc.returncode == 0
    return json.loads(out.read_text())


def test_release_and_arch_match_the_host(host, report) -> None:  # noqa: ANN001
    os_release = host.file("/etc/os-release").content_string
    assert "VERSION_CODENAME=trixie" in os_release
    assert report["codename"] == "trixie"
    assert report["release"] == "13"
    assert report["arch"] == host.check_output("uname -m") == "x86_64"


def test_memory_matches_proc_meminfo(host, report) -> None:  # noqa: ANN001
    kib = int(host.check_output("awk '/^MemTotal:/ {print $2}' /proc/meminfo"))
    assert abs(report["mem_total_mib"] - kib // 1024) <= 1
    assert report["dom0_mem_mib"] == 1024


def test_firmware_and_secure_boot_match_the_host(host, report) -> None:  # noqa: ANN001
    assert not host.file("/sys/firmware/efi").exists
    assert report["firmware"] == "bios"
    assert report["secure_boot"] is False


def test_cpu_virtualization_matches_cpuinfo(host, report) -> None:  # noqa: ANN001
    flags = host.check_output("grep -m1 '^flags' /proc/cpuinfo").split()
    expected = "vmx" if "vmx" in flags else "svm" if "svm" in flags else "none"
    assert report["virt_ext"] == expected
    assert report["hvm_capable"] is (expected != "none")


def test_kernel_dom0_support_matches_kernel_config(host, report) -> None:  # noqa: ANN001
    config = host.file(f"/boot/config-{host.check_output('uname -r')}").content_string
    assert ("CONFIG_XEN_DOM0=y" in config.splitlines()) is report["kernel_xen_dom0"] is True
    assert report["xen_running"] is False
    assert report["errors"] == []


def test_grub_environment_block_matches_grub_probe(host, report) -> None:  # noqa: ANN001
    # The lab's /boot/grub is on a plain ext4 partition.
    assert host.check_output("grub-probe --target=abstraction /boot/grub") == ""
    assert host.check_output("grub-probe --target=fs /boot/grub") == "ext2"
    assert report["grubenv_writable"] is True
    assert report["grubenv"] == "writable by GRUB at boot (/boot/grub on ext2)"


def test_too_large_memory_plan_fails_with_the_exact_message(host, report) -> None:  # noqa: ANN001
    # The hypervisor's own memory plan, run by the preflight before any stage.
    before = tree_digest(host, *WATCHED)
    proc = playbook(scenario_file("converge.yml"), "-e", "xen_hypervisor_dom0_mem=64G")
    assert proc.returncode != 0
    expected = hp.MSG_MEM_ABOVE_RAM.format(mem=65536, ram=report["mem_total_mib"])
    assert expected in proc.stdout + proc.stderr
    assert tree_digest(host, *WATCHED) == before


# site.yml's settings for the next test: a bridge list and a guest list that are
# wrong, with consent to reboot into Xen. The run must stop in its first play,
# before any stage changed the host, naming every problem.
BAD_SETTINGS = {
    "xen_hypervisor_dom0_mem": "1G",
    "xen_hypervisor_guest_mem_min": "1G",
    "xen_hypervisor_reboot_ok": True,
    "xen_network_bridges": [
        {"name": "xenbr0", "primary": True},
        # No such NIC on the VM.
        {"name": "xenbr1", "ports": ["eth9"]},
    ],
    "xen_guests_ssh_authorized_keys": [
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDoCExampleKeyReplaceMeWithYours000000000000"
        " a@example.org"
    ],
    "xen_guests_list": [
        # Not a host name.
        {"name": "Web_1", "os": {"release": "trixie"}},
        # Not a size, and a bridge nobody builds.
        {
            "name": "db1",
            "memory": "lots",
            "interfaces": [{"bridge": "xenbr7"}],
            "os": {"release": "trixie"},
        },
    ],
}


def test_site_with_wrong_bridges_and_guests_stops_before_any_change(host) -> None:  # noqa: ANN001
    before = tree_digest(host, "/etc", "/boot")
    proc = playbook(REPO / "site.yml", "-e", json.dumps(BAD_SETTINGS))
    after = tree_digest(host, "/etc", "/boot")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    # Every problem of both stages, in one message of the first play.
    nics = ", ".join(sorted(link for link in host.interface.names() if link != "lo"))
    expected = [
        np.MSG_PORT_MISSING.format(bridge="xenbr1", port="eth9", existing=nics),
        gp.MSG_NAME.format(name="Web_1"),
        gp.MSG_SIZE.format(name="db1", field="memory", error=SIZE_ERROR.format(value="lots")),
        gp.MSG_BRIDGE_MISSING.format(
            name="db1", field="interfaces[0]", value="xenbr7", found="xenbr0, xenbr1"
        ),
    ]
    missing = [message for message in expected if message not in out]
    assert not missing, missing
    assert "TASK [xen_lab.dom0.xen_preflight : Host can become a Xen dom0 and every stage" in out
    assert "PLAY [Each host runs Xen as a dom0" not in out
    # Nothing installed, nothing written under /etc or /boot.
    xen = host.run("dpkg-query -W -f='${Status}' xen-system-amd64")
    assert "install ok installed" not in xen.stdout
    assert not host.file("/proc/xen").exists
    assert after == before


def test_unsupported_release_fails_with_the_exact_message(host) -> None:  # noqa: ANN001
    original = host.file("/etc/debian_version").content_string
    faked = ("/etc/debian_version", "/usr/lib/os-release")
    for path in faked:
        host.run_expect([0], f"cp -a {path} {path}.preflight-test")
    try:
        # Make the VM look like Debian 11 to Ansible's fact gathering.
        host.run_expect([0], "echo 11.11 > /etc/debian_version")
        host.run_expect(
            [0],
            "sed -i -e 's/^VERSION_ID=.*/VERSION_ID=\"11\"/'"
            " -e 's/^VERSION=.*/VERSION=\"11 (bullseye)\"/'"
            " -e 's/^VERSION_CODENAME=.*/VERSION_CODENAME=bullseye/' /usr/lib/os-release",
        )
        before = tree_digest(host, *WATCHED)
        proc = playbook(scenario_file("converge.yml"))
        after = tree_digest(host, *WATCHED)
    finally:
        for path in faked:
            host.run(f"mv {path}.preflight-test {path}")
    assert proc.returncode != 0
    assert xen_preflight.UNSUPPORTED_RELEASE.format(release="11") in proc.stdout + proc.stderr
    assert after == before
    assert host.file("/etc/debian_version").content_string == original


def test_zz_boot_on_md_raid1_refuses_boot_once_before_any_change(host) -> None:  # noqa: ANN001
    """Last: /boot moves onto md RAID1 over the VM's two blank disks (vdb, vdc).

    GRUB reads its environment block there but cannot write it, so boot-once
    could never clear itself. site.yml with reboot consent must stop in its
    first play with the message that names the opt-in, and change nothing.
    """
    # mdadm as an admin installs it, without rebuilding the initramfs (over
    # ten minutes under emulation; /boot on RAID needs no initramfs change
    # while the host runs).
    host.run_expect([0], "sed -i 's/^update_initramfs=.*/update_initramfs=no/'"
                    " /etc/initramfs-tools/update-initramfs.conf")  # fmt: skip
    install = host.run(
        "DEBIAN_FRONTEND=noninteractive apt-get -q update"
        " && DEBIAN_FRONTEND=noninteractive apt-get -q install -y --no-install-recommends mdadm"
    )
    assert install.rc == 0, install.stderr
    host.run_expect(
        [0],
        "mdadm --create /dev/md0 --run --level=1 --raid-devices=2 --metadata=1.0"
        " /dev/vdb /dev/vdc"
        " && mkfs.ext4 -q /dev/md0 && mkdir -p /mnt/raid && mount /dev/md0 /mnt/raid"
        " && cp -a /boot/. /mnt/raid/ && umount /mnt/raid && mount /dev/md0 /boot",
    )
    assert "raid1" in host.file("/proc/mdstat").content_string
    assert host.check_output("findmnt -n -o SOURCE /boot") == "/dev/md0"
    probe = host.check_output("grub-probe --target=abstraction /boot/grub").split()
    assert probe[0] == "diskfilter"

    before = tree_digest(host, "/etc", "/boot")
    settings = {"xen_hypervisor_reboot_ok": True, "xen_guests_list": []}
    proc = playbook(REPO / "site.yml", "-e", json.dumps(settings))
    after = tree_digest(host, "/etc", "/boot")
    out = " ".join((proc.stdout + proc.stderr).split())
    assert proc.returncode != 0
    expected = hp.MSG_GRUBENV_READ_ONLY.format(
        layer="md RAID", target="abstraction", word="diskfilter"
    )
    assert expected in out
    assert "TASK [xen_lab.dom0.xen_preflight : Host can become a Xen dom0 and every stage" in out
    assert "PLAY [Each host runs Xen as a dom0" not in out
    xen = host.run("dpkg-query -W -f='${Status}' xen-system-amd64")
    assert "install ok installed" not in xen.stdout
    assert after == before
    # The preflight's report, printed before the failure, says why.
    assert (
        "GRUB environment block (boot-once): not writable by GRUB at boot: /boot/grub is on"
        " md RAID (grub-probe --target=abstraction: diskfilter)"
    ) in out
