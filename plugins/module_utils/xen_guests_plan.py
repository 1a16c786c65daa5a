"""The xen_guests role's plan: guests as written in ``xen_guests``, checked and normalised.

``validate_guests`` returns one sentence per problem, naming the guest and the
setting, for the whole list at once. ``plan_guests`` turns a valid list into the
values the role writes: sizes in MiB, MAC addresses, disk, config and seed paths.
Both walk the list with the same code, so what is checked is what is planned.

Host facts (all optional; a missing fact skips the checks that need it):

- ``total_memory_mib``, ``free_memory_mib``, ``dom0_memory_mib``: from ``xl info``;
  ``free_memory_mib`` is what Xen can still give guests.
- ``nr_cpus``: host CPUs from ``xl info``.
- ``virt_caps``: the ``xl info`` string, for example "pv hvm shadow gnttab-v1".
- ``cpu_flags``: CPU flags from before Xen booted (a PV dom0's /proc/cpuinfo hides
  vmx and svm); an empty list skips the check.
- ``bridges``, ``volume_groups``: names that exist on the host.
- ``existing_domains``: running domains, as a mapping of name to memory in MiB (or a
  list of names); memory held by a listed guest counts as available to it.

Settings (``DEFAULTS``; the role passes its ``xen_guests_*`` values) give what a guest
leaves out, and what every guest shares: a planned guest carries all its template
needs, so the templates read ``guest`` and nothing else of the planner's. A guest that
boots cloud-init needs an SSH key, its own or one of ``ssh_authorized_keys`` (the keys
every guest gets), unless it sets ``console_only``; with ``ssh_authorized_keys`` None
(unknown, as to the inventory plugin) that check is left out.

``validate_fleet`` compares the guest lists of several dom0s: names and MACs used on
two of them, and static addresses used twice on bridges of the same name.

``image_problems`` checks what the dom0 shows of the images users bring (os.image),
which only the dom0 knows once they are there: a download or a local image that does
not match os.checksum, a missing image, one qemu-img cannot read, reads another file or
is neither raw nor qcow2, and a virtual size larger than the guest's root disk.
"""

from __future__ import annotations

import difflib
import hashlib
import ipaddress
import re
from collections.abc import Mapping
from typing import Any

from ansible_collections.xen_lab.dom0.plugins.module_utils.xen_sizes import parse_size_mib
from ansible_collections.xen_lab.dom0.plugins.module_utils.xen_ssh_keys import key_problem

TYPES = ("pv", "pvh", "hvm")
STATES = ("running", "stopped", "absent")
RELEASES = ("trixie", "bookworm")
BACKENDS = ("file", "lvm")
# xl.cfg(5) event actions; soft-reset is left out: it serves only on_soft_reset.
ACTIONS = (
    "destroy",
    "restart",
    "rename-restart",
    "preserve",
    "coredump-destroy",
    "coredump-restart",
)
# xl.cfg(5) tsc_mode of HVM guests (native_paravirt was removed from Xen).
TSC_MODES = ("default", "always_emulate", "native")
# The device model HVM guests need on the dom0 (Debian installs it only as a Recommends).
DEVICE_MODEL = "qemu-system-xen"
# qemu-img, which reads the format and size of an os.image and converts qcow2.
IMAGE_TOOLS = "qemu-utils"
# The xen_network role's default bridges are one primary xenbr0.
NETWORK_DEFAULT_BRIDGE = "xenbr0"
MIN_MEMORY_MIB = 128
# Virtual disk names. HVM guests also see their first disks as emulated IDE
# disks by position, and the CD-ROMs sit at hdc and hdd, so HVM disks skip
# xvdc and xvdd. xvdz carries the cloud-init seed of PV and PVH guests.
_PV_LETTERS = "abcdefghijklmnopqrstuvwxy"
_HVM_LETTERS = "abefghijklmnopqrstuvwxy"
MAX_DISKS = len(_HVM_LETTERS)

GUEST_KEYS = (
    "name",
    "type",
    "vcpus",
    "memory",
    "maxmem",
    "disks",
    "interfaces",
    "os",
    "ssh_authorized_keys",
    "autostart",
    "state",
    "purge",
    "template",
    "on_reboot",
    "on_crash",
    "tsc_mode",
    "console_only",
)
DISK_KEYS = ("size", "backend", "vg", "name")
INTERFACE_KEYS = ("bridge", "mac", "ipv4", "ipv6")
ADDRESS_KEYS = ("address", "gateway")
OS_KEYS = ("release", "image", "checksum", "iso")

# Settings a guest may leave out; the role passes its xen_guests_* values.
DEFAULTS: dict[str, Any] = {
    "type": "pvh",
    "memory": "512M",
    "disk_size": "10G",
    "disk_backend": "file",
    "volume_group": None,
    "ssh_authorized_keys": [],
    "bridge": "xenbr0",
    "disk_dir": "/var/lib/xen/images",
    "seed_dir": "/var/lib/xen/seeds",
    "config_dir": "/etc/xen",
    "boot_dir": "/var/lib/xen/boot",
    "nameservers": [],
    "kernel_extra": "console=hvc0",
    "image_size_mib": 2048,
    "on_reboot": "restart",
    "on_crash": "restart",
    # Empty: xl.cfg gets no tsc_mode, and Xen uses its own default.
    "tsc_mode": "",
    # grub-xen-host's GRUB images, which boot PV and PVH guests made from os.image.
    "pv_kernel": "/usr/lib/grub-xen/grub-x86_64-xen.bin",
    "pvh_kernel": "/usr/lib/grub-xen/grub-i386-xen_pvh.bin",
}

# A guest's name becomes a file name, an LVM volume name and a host name (an RFC 1123
# label: it neither starts nor ends with '-').
_NAME_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
# The suffix of a disk's file or volume name, after "<guest>-".
_SUFFIX_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
# LVM volume group names: letters, digits and + _ . - ; never "." or "..".
_VG_RE = re.compile(r"[A-Za-z0-9+_][A-Za-z0-9+_.-]{0,126}")
_MAC_RE = re.compile(r"[0-9a-f]{2}(?::[0-9a-f]{2}){5}")
_CHECKSUM_RE = re.compile(r"sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128}")
_TEMPLATE_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")

MSG_NOT_A_MAPPING = "xen_guests_list entry {index} is not a mapping of guest settings."
MSG_NO_NAME = "xen_guests_list entry {index} has no name."
MSG_NAME = (
    "Guest {name}: name must be 1 to 63 lowercase letters, digits or '-', starting and ending"
    " with a letter or digit (it names files, LVM volumes and the host)."
)
MSG_UNKNOWN_KEY = "Guest {name}: unknown key {key!r} in {field}{hint}."
MSG_DUPLICATE = "Guest {name}: {field} {value} is also used by guest {other}."
MSG_DUPLICATE_NAME = "Guest {name}: the name is used by more than one guest; names must be unique."
MSG_TYPE = "Guest {name}: type {value!r} is not one of pv, pvh, hvm."
MSG_TYPE_CAPS = (
    "Guest {name}: type {type} needs Xen's hvm capability, but xl info shows virt_caps '{caps}'."
)
MSG_TYPE_PAGING = (
    "Guest {name}: type {type} needs hardware-assisted (hap) or shadow paging, but xl info"
    " shows virt_caps '{caps}' with neither: this Xen has no paging mode for PVH/HVM guests"
    " on this CPU."
)
MSG_TYPE_CPU = (
    "Guest {name}: type {type} needs VT-x or AMD-V, but the CPU flags have neither vmx nor svm."
)
MSG_WHOLE_NUMBER = "Guest {name}: {field} {value!r} is not a whole number."
MSG_VCPUS_LOW = "Guest {name}: vcpus {value} is below 1."
MSG_VCPUS_HIGH = "Guest {name}: vcpus {value} is more than the host's {cpus} CPUs."
MSG_SIZE = "Guest {name}: {field}: {error}"
MSG_MEMORY_MIN = "Guest {name}: memory {mib} MiB is below the minimum of {min} MiB."
MSG_MAXMEM = "Guest {name}: maxmem {maxmem} MiB is below memory {mib} MiB."
MSG_MEMORY_TOTAL = (
    "xen_guests_list: the guests with state running need {need} MiB of memory, but Xen can give"
    " them only {have} MiB; lower their memory or stop some of them."
)
MSG_BOOL = "Guest {name}: {field} is {value!r}; use true or false."
MSG_STATE = "Guest {name}: state {value!r} is not one of running, stopped, absent."
MSG_PURGE = (
    "Guest {name}: purge is true but state is {state}; purge deletes the guest's disks and"
    " applies only with state absent."
)
MSG_NOT_A_LIST = "Guest {name}: {field} must be a list."
MSG_ENTRY_NOT_A_MAPPING = "Guest {name}: {field} must be a mapping."
MSG_NO_DISKS = "Guest {name}: disks is empty; the first disk is the root disk and is required."
MSG_TOO_MANY_DISKS = "Guest {name}: disks has {count} entries; at most {max} are supported."
MSG_DISK_NO_SIZE = "Guest {name}: {field} has no size."
MSG_DISK_BACKEND = "Guest {name}: {field}.backend {value!r} is not one of file, lvm."
MSG_DISK_NO_VG = "Guest {name}: {field} uses backend lvm but sets no vg."
MSG_DISK_VG_NAME = "Guest {name}: {field}.vg {value!r} is not a valid volume group name."
MSG_DISK_VG_MISSING = (
    "Guest {name}: {field}.vg {value!r} is not a volume group on the host (found: {found})."
)
MSG_DISK_SUFFIX = (
    "Guest {name}: {field}.name {value!r} must be lowercase letters, digits or '-', starting"
    " with a letter or digit."
)
MSG_BRIDGE_MISSING = (
    "Guest {name}: {field}.bridge {value!r} does not exist on the host (found: {found})."
)
MSG_MAC = (
    "Guest {name}: {field}.mac {value!r} is not a MAC address of six hex octets"
    " like 00:16:3e:12:34:56."
)
MSG_MAC_MULTICAST = (
    "Guest {name}: {field}.mac {value} is a multicast address; the first octet must be even."
)
MSG_IP_FORM = "Guest {name}: {field} must be 'dhcp' or a mapping with address and optional gateway."
MSG_IP_ADDRESS = (
    "Guest {name}: {field}.address {value!r} is not an {family} address with a prefix,"
    " like {example}."
)
MSG_IP_NOT_HOST = (
    "Guest {name}: {field}.address {value} is the network or broadcast address of {network}."
)
MSG_GATEWAY = "Guest {name}: {field}.gateway {value!r} is not an {family} address."
MSG_GATEWAY_OUTSIDE = "Guest {name}: {field}.gateway {value} is outside the subnet {network}."
MSG_GATEWAY_SELF = "Guest {name}: {field}.gateway {value} is the guest's own address."
MSG_OS_MISSING = (
    "Guest {name}: os is missing; set os.release (trixie or bookworm), os.image with"
    " os.checksum, or os.iso (hvm only)."
)
MSG_OS_MANY = "Guest {name}: os sets {keys}; set exactly one of release, image, iso."
MSG_OS_RELEASE = "Guest {name}: os.release {value!r} is not one of trixie, bookworm."
MSG_OS_ISO_TYPE = (
    "Guest {name}: os.iso needs type hvm, not {type}; PV and PVH guests cannot boot an"
    " installer ISO."
)
MSG_OS_CHECKSUM = (
    "Guest {name}: os.checksum {value!r} must be 'sha256:' and 64 hex digits"
    " (or 'sha512:' and 128)."
)
MSG_OS_CHECKSUM_MISSING = (
    "Guest {name}: os.image is a URL; set os.checksum ('sha256:...') so the download is verified."
)
MSG_OS_CHECKSUM_ALONE = "Guest {name}: os.checksum applies only to os.image."
MSG_OS_PATH = "Guest {name}: os.{key} must be a non-empty string."
# {key} names the key: "Guest <name>: ssh_authorized_keys[<i>]", or for a key every
# guest gets "xen_guests_ssh_authorized_keys[<i>]". {problem} comes from xen_ssh_keys.
MSG_SSH_KEY = "{key} is not a one-line public key."
MSG_SSH_KEY_BAD = "{key} {problem}."
MSG_NO_SSH_KEY = (
    "Guest {name}: no SSH key would let anyone log in; set ssh_authorized_keys or"
    " xen_guests_ssh_authorized_keys, or console_only: true for a guest reached only on its"
    " console."
)
MSG_CONSOLE_ONLY_KEYS = (
    "Guest {name}: console_only is true but ssh_authorized_keys lists keys; a console-only"
    " guest gets no SSH key, so leave out one or the other."
)
MSG_ROOT_SMALL = (
    "Guest {name}: disks[0].size is {mib} MiB, smaller than the {image} MiB image of"
    " os.release {release} it is copied from."
)
# What the dom0 shows of a user's image (image_problems), once it is there.
MSG_IMAGE_DOWNLOAD = "Guest {name}: os.image {image} could not be downloaded: {error}"
MSG_IMAGE_DOWNLOAD_CHECKSUM = (
    "Guest {name}: the download of os.image {image} has {actual}, not os.checksum {checksum};"
    " it was deleted, and no disk of the guest was written. Check that os.image and"
    " os.checksum name the same image."
)
MSG_IMAGE_MISSING = "Guest {name}: os.image {image} does not exist on the dom0."
MSG_IMAGE_CHECKSUM = (
    "Guest {name}: os.image {image} has {actual}, not os.checksum {checksum}; no disk of the"
    " guest was written."
)
MSG_IMAGE_UNREADABLE = "Guest {name}: qemu-img cannot read os.image {image}: {error}"
MSG_IMAGE_BACKING = (
    "Guest {name}: os.image {image} is a {format} image that reads another file ({other});"
    " give a standalone image (qemu-img convert -O qcow2 makes one)."
)
MSG_IMAGE_FORMAT = (
    "Guest {name}: os.image {image} is a {format} image; only raw and qcow2 images are"
    " copied (qemu-img convert -O qcow2 converts it)."
)
MSG_IMAGE_LARGE = (
    "Guest {name}: disks[0].size is {mib} MiB, smaller than the {image_mib} MiB (virtual"
    " size) of os.image {image}; no disk of the guest was written. Set disks[0].size to at"
    " least {image_mib} MiB."
)
IMAGE_FORMATS = ("raw", "qcow2")
MSG_ACTION = (
    "Guest {name}: {field} {value!r} is not one of destroy, restart, rename-restart, preserve,"
    " coredump-destroy, coredump-restart."
)
MSG_TSC_MODE = "Guest {name}: {field} {value!r} is not one of default, always_emulate, native."
MSG_TSC_MODE_TYPE = (
    "Guest {name}: tsc_mode applies only to type hvm, not {type}; leave it out for PV and PVH"
    " guests."
)
MSG_GRUB_PATH = "Guest {name}: {field} {value!r} is not an absolute path on the dom0."
MSG_FLEET_NAME = (
    "Guest {name} on {dom0}: dom0 {other} has a guest of that name too; a name is the guest's"
    " host name and inventory name, so it must be unique across the dom0s of the play."
)
MSG_FLEET_MAC = (
    "Guest {name} on {dom0}: MAC {value} is also used by guest {owner} on {other}; a MAC must"
    " be unique across the dom0s of the play."
)
MSG_FLEET_ADDRESS = (
    "Guest {name} on {dom0}: {family} address {value} on bridge {bridge} is also used by guest"
    " {owner} on {other}; bridges of the same name on two dom0s are taken to be one network."
)
MSG_TEMPLATE = (
    "Guest {name}: template {value!r} must be a file name under templates/ (letters, digits,"
    " '.', '_', '-'), without slashes or '..'."
)


def stable_mac(name: str, index: int) -> str:
    """A MAC in Xen's 00:16:3e range that depends only on the guest name and NIC index.

    The first octet 00 is unicast and globally administered (Xen's own OUI); like
    libxl's random MACs, the fourth octet keeps its top bit clear.
    """
    digest = hashlib.sha256(f"{name}/{index}".encode()).digest()
    tail = [digest[0] & 0x7F, digest[1], digest[2]]
    return "00:16:3e:" + ":".join(f"{b:02x}" for b in tail)


def instance_id(name: str) -> str:
    """cloud-init's instance-id: stable for a name, so a re-run never re-provisions."""
    return "iid-" + hashlib.sha256(f"xen-guest/{name}".encode()).hexdigest()[:16]


def default_bridge(
    bridge: Any = "",
    network_facts: Any = None,
    network_default_bridge: Any = "",
    network_bridges: Any = None,
) -> str:
    """The bridge of a dom0's guest interfaces that name none (``xen_guests_default_bridge``).

    ``bridge`` set: that bridge. Empty: the xen_network role's default bridge - its
    ``xen_network_facts.default_bridge`` when that role ran earlier in the same run, else
    as its settings give it (``xen_network_default_bridge``, else the primary bridge of
    ``xen_network_bridges``, else the first), else xenbr0, the bridge of that role's
    defaults. The role and the inventory plugin both ask this, so a DHCP guest's
    link-local address names the bridge the guest is really on.
    """
    if bridge:
        return str(bridge)
    if isinstance(network_facts, Mapping) and network_facts.get("default_bridge"):
        return str(network_facts["default_bridge"])
    if network_default_bridge:
        return str(network_default_bridge)
    if not isinstance(network_bridges, list):
        return NETWORK_DEFAULT_BRIDGE
    named = [b for b in network_bridges if isinstance(b, Mapping) and b.get("name")]
    primary = [b for b in named if b.get("primary") is True]
    return str((primary + named)[0]["name"]) if named else NETWORK_DEFAULT_BRIDGE


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _hint(key: str, known: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(key, known, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _ssh_keys(field: str, keys: list[Any], errors: list[str]) -> None:
    """One problem for each key of KEYS (the setting FIELD) sshd could not use."""
    for index, key in enumerate(keys):
        label = f"{field}[{index}]"
        if not isinstance(key, str) or not key.strip() or "\n" in key.strip():
            errors.append(MSG_SSH_KEY.format(key=label))
            continue
        problem = key_problem(key.strip())
        if problem:
            errors.append(MSG_SSH_KEY_BAD.format(key=label, problem=problem))


def _unknown_keys(
    name: str, value: dict[str, Any], known: tuple[str, ...], field: str, errors: list[str]
) -> None:
    for key in value:
        if key not in known:
            errors.append(
                MSG_UNKNOWN_KEY.format(name=name, key=key, field=field, hint=_hint(str(key), known))
            )


def _size(name: str, field: str, value: Any, errors: list[str]) -> int | None:
    try:
        return parse_size_mib(value)
    except ValueError as exc:
        errors.append(MSG_SIZE.format(name=name, field=field, error=exc))
        return None


def _bool(name: str, field: str, value: Any, errors: list[str]) -> bool:
    if not isinstance(value, bool):
        errors.append(MSG_BOOL.format(name=name, field=field, value=value))
        return False
    return value


def _setting(raw: dict[str, Any], key: str, defaults: dict[str, Any]) -> tuple[Any, str]:
    """The guest's own KEY, else the role's default, with the name a problem names it by."""
    if raw.get(key) is not None:
        return raw[key], key
    return defaults[key], f"xen_guests_default_{key}"


def _disk(
    name: str,
    gtype: str | None,
    index: int,
    raw: Any,
    host: dict[str, Any],
    defaults: dict[str, Any],
    errors: list[str],
) -> dict[str, Any] | None:
    field = f"disks[{index}]"
    if not isinstance(raw, dict):
        errors.append(MSG_ENTRY_NOT_A_MAPPING.format(name=name, field=field))
        return None
    _unknown_keys(name, raw, DISK_KEYS, field, errors)
    size = None
    if "size" not in raw:
        errors.append(MSG_DISK_NO_SIZE.format(name=name, field=field))
    else:
        size = _size(name, f"{field}.size", raw["size"], errors)
    backend = raw.get("backend", defaults["disk_backend"])
    vg = raw.get("vg", defaults["volume_group"])
    if backend not in BACKENDS:
        errors.append(MSG_DISK_BACKEND.format(name=name, field=field, value=backend))
        return None
    if backend == "lvm":
        if not vg:
            errors.append(MSG_DISK_NO_VG.format(name=name, field=field))
            return None
        if not isinstance(vg, str) or not _VG_RE.fullmatch(vg) or vg in (".", ".."):
            errors.append(MSG_DISK_VG_NAME.format(name=name, field=field, value=vg))
            return None
        found = host.get("volume_groups")
        if found is not None and vg not in found:
            errors.append(
                MSG_DISK_VG_MISSING.format(
                    name=name, field=field, value=vg, found=", ".join(found) or "none"
                )
            )
    suffix = raw.get("name")
    if suffix is None:
        suffix = "root" if index == 0 else f"disk{index}"
    elif not isinstance(suffix, str) or not _SUFFIX_RE.fullmatch(suffix):
        errors.append(MSG_DISK_SUFFIX.format(name=name, field=field, value=suffix))
        return None
    if backend == "lvm":
        path = f"/dev/{vg}/{name}-{suffix}"
    else:
        path = f"{defaults['disk_dir'].rstrip('/')}/{name}-{suffix}.img"
    return {
        "index": index,
        "root": index == 0,
        "size_mib": size,
        "backend": backend,
        "vg": vg if backend == "lvm" else None,
        "lv": f"{name}-{suffix}" if backend == "lvm" else None,
        "path": path,
        # Where version 1.0.0 recorded a completed copy onto an LVM volume; the volume's
        # tag records it now, and the disk script moves such a record onto the tag.
        "legacy_marker": f"{defaults['disk_dir'].rstrip('/')}/{name}-{suffix}.copied"
        if backend == "lvm"
        else None,
        "vdev": "xvd" + (_HVM_LETTERS if gtype == "hvm" else _PV_LETTERS)[index],
    }


def _address(
    name: str, field: str, family: int, raw: Any, errors: list[str]
) -> dict[str, Any] | None:
    label = f"IPv{family}"
    example = "192.0.2.10/24" if family == 4 else "2001:db8::10/64"
    if raw == "dhcp":
        return {"dhcp": True}
    if not isinstance(raw, dict) or "address" not in raw:
        errors.append(MSG_IP_FORM.format(name=name, field=field))
        return None
    _unknown_keys(name, raw, ADDRESS_KEYS, field, errors)
    value = raw["address"]
    try:
        if not isinstance(value, str) or "/" not in value:
            raise ValueError(value)
        iface = ipaddress.ip_interface(value)
        if iface.version != family:
            raise ValueError(value)
    except ValueError:
        errors.append(
            MSG_IP_ADDRESS.format(
                name=name, field=field, value=value, family=label, example=example
            )
        )
        return None
    network = iface.network
    if (
        family == 4
        and network.prefixlen < 31
        and iface.ip in (network.network_address, network.broadcast_address)
    ):
        errors.append(MSG_IP_NOT_HOST.format(name=name, field=field, value=value, network=network))
        return None
    gateway = raw.get("gateway")
    if gateway is not None:
        try:
            gw = ipaddress.ip_address(str(gateway))
            if gw.version != family:
                raise ValueError(gateway)
        except ValueError:
            errors.append(MSG_GATEWAY.format(name=name, field=field, value=gateway, family=label))
            return None
        if gw == iface.ip:
            errors.append(MSG_GATEWAY_SELF.format(name=name, field=field, value=gateway))
            return None
        if gw not in network and not (family == 6 and gw.is_link_local):
            errors.append(
                MSG_GATEWAY_OUTSIDE.format(name=name, field=field, value=gateway, network=network)
            )
            return None
        gateway = str(gw)
    return {
        "dhcp": False,
        "address": str(iface.ip),
        "prefix": network.prefixlen,
        "cidr": f"{iface.ip}/{network.prefixlen}",
        "gateway": gateway,
    }


def _interface(
    name: str,
    index: int,
    raw: Any,
    host: dict[str, Any],
    defaults: dict[str, Any],
    errors: list[str],
) -> dict[str, Any] | None:
    field = f"interfaces[{index}]"
    if not isinstance(raw, dict):
        errors.append(MSG_ENTRY_NOT_A_MAPPING.format(name=name, field=field))
        return None
    _unknown_keys(name, raw, INTERFACE_KEYS, field, errors)
    bridge = raw.get("bridge", defaults["bridge"])
    found = host.get("bridges")
    if found is not None and bridge not in found:
        errors.append(
            MSG_BRIDGE_MISSING.format(
                name=name, field=field, value=bridge, found=", ".join(found) or "none"
            )
        )
    mac = raw.get("mac")
    if mac is None:
        mac = stable_mac(name, index)
    else:
        mac = str(mac).lower()
        if not _MAC_RE.fullmatch(mac):
            errors.append(MSG_MAC.format(name=name, field=field, value=raw["mac"]))
            mac = None
        elif int(mac[:2], 16) & 1:
            errors.append(MSG_MAC_MULTICAST.format(name=name, field=field, value=mac))
            mac = None
    ipv4: dict[str, Any] | None = {"dhcp": True}
    ipv6 = None
    if raw.get("ipv4") is not None or raw.get("ipv6") is not None:
        # Without either, the interface asks for an IPv4 lease.
        ipv4 = None
    if raw.get("ipv4") is not None:
        ipv4 = _address(name, f"{field}.ipv4", 4, raw["ipv4"], errors)
    if raw.get("ipv6") is not None:
        ipv6 = _address(name, f"{field}.ipv6", 6, raw["ipv6"], errors)
    return {
        "index": index,
        "device": f"eth{index}",
        "bridge": bridge,
        "mac": mac,
        "ipv4": ipv4,
        "ipv6": ipv6,
    }


def _os(name: str, gtype: str | None, raw: Any, errors: list[str]) -> dict[str, Any] | None:
    if raw is None:
        errors.append(MSG_OS_MISSING.format(name=name))
        return None
    if not isinstance(raw, dict):
        errors.append(MSG_ENTRY_NOT_A_MAPPING.format(name=name, field="os"))
        return None
    _unknown_keys(name, raw, OS_KEYS, "os", errors)
    sources = [key for key in ("release", "image", "iso") if key in raw]
    if not sources:
        errors.append(MSG_OS_MISSING.format(name=name))
        return None
    if len(sources) > 1:
        errors.append(MSG_OS_MANY.format(name=name, keys=" and ".join(sources)))
        return None
    source = sources[0]
    value = raw[source]
    checksum = raw.get("checksum")
    if source == "release":
        if value not in RELEASES:
            errors.append(MSG_OS_RELEASE.format(name=name, value=value))
            return None
    elif not isinstance(value, str) or not value.strip():
        errors.append(MSG_OS_PATH.format(name=name, key=source))
        return None
    if source == "iso" and gtype is not None and gtype != "hvm":
        errors.append(MSG_OS_ISO_TYPE.format(name=name, type=gtype))
        return None
    if checksum is not None:
        if source != "image":
            errors.append(MSG_OS_CHECKSUM_ALONE.format(name=name))
            return None
        if not isinstance(checksum, str) or not _CHECKSUM_RE.fullmatch(checksum):
            errors.append(MSG_OS_CHECKSUM.format(name=name, value=checksum))
            return None
    elif source == "image" and re.match(r"(?i)(https?|ftp)://", value):
        errors.append(MSG_OS_CHECKSUM_MISSING.format(name=name))
        return None
    return {
        "source": source,
        "release": value if source == "release" else None,
        "image": value if source == "image" else None,
        "checksum": checksum,
        "iso": value if source == "iso" else None,
    }


def _guest(
    index: int,
    raw: dict[str, Any],
    host: dict[str, Any],
    defaults: dict[str, Any],
    errors: list[str],
) -> dict[str, Any]:
    name = str(raw["name"])
    if not _NAME_RE.fullmatch(name):
        errors.append(MSG_NAME.format(name=name))
    _unknown_keys(name, raw, GUEST_KEYS, "the guest", errors)

    gtype: str | None = raw.get("type", defaults["type"])
    if gtype not in TYPES:
        errors.append(MSG_TYPE.format(name=name, value=gtype))
        gtype = None
    elif gtype in ("pvh", "hvm"):
        caps = host.get("virt_caps")
        flags = host.get("cpu_flags") or []
        if caps is not None and "hvm" not in str(caps).split():
            errors.append(MSG_TYPE_CAPS.format(name=name, type=gtype, caps=caps))
        elif caps is not None and not {"hap", "shadow"} & set(str(caps).split()):
            # Seen on trixie's Xen 4.20 under a CPU without NPT/EPT: it is built
            # without shadow paging, so xl create fails "neither hap nor shadow".
            errors.append(MSG_TYPE_PAGING.format(name=name, type=gtype, caps=caps))
        elif flags and not {"vmx", "svm"} & set(flags):
            errors.append(MSG_TYPE_CPU.format(name=name, type=gtype))

    vcpus = raw.get("vcpus", 1)
    cpus = host.get("nr_cpus")
    if not _is_int(vcpus):
        errors.append(MSG_WHOLE_NUMBER.format(name=name, field="vcpus", value=vcpus))
    elif vcpus < 1:
        errors.append(MSG_VCPUS_LOW.format(name=name, value=vcpus))
    elif cpus is not None and vcpus > int(cpus):
        errors.append(MSG_VCPUS_HIGH.format(name=name, value=vcpus, cpus=cpus))

    memory = _size(name, "memory", raw.get("memory", defaults["memory"]), errors)
    if memory is not None and memory < MIN_MEMORY_MIB:
        errors.append(MSG_MEMORY_MIN.format(name=name, mib=memory, min=MIN_MEMORY_MIB))
    maxmem = memory
    if raw.get("maxmem") is not None:
        maxmem = _size(name, "maxmem", raw["maxmem"], errors)
        if maxmem is not None and memory is not None and maxmem < memory:
            errors.append(MSG_MAXMEM.format(name=name, maxmem=maxmem, mib=memory))

    state = raw.get("state", "running")
    if state not in STATES:
        errors.append(MSG_STATE.format(name=name, value=state))
    autostart = _bool(name, "autostart", raw.get("autostart", True), errors)
    purge = _bool(name, "purge", raw.get("purge", False), errors)
    if purge and state in STATES and state != "absent":
        errors.append(MSG_PURGE.format(name=name, state=state))

    disks: list[dict[str, Any]] = []
    raw_disks = raw.get("disks", [{"size": defaults["disk_size"]}])
    if not isinstance(raw_disks, list):
        errors.append(MSG_NOT_A_LIST.format(name=name, field="disks"))
    elif not raw_disks:
        errors.append(MSG_NO_DISKS.format(name=name))
    elif len(raw_disks) > MAX_DISKS:
        errors.append(MSG_TOO_MANY_DISKS.format(name=name, count=len(raw_disks), max=MAX_DISKS))
    else:
        for i, item in enumerate(raw_disks):
            disk = _disk(name, gtype, i, item, host, defaults, errors)
            if disk is not None:
                disks.append(disk)

    interfaces: list[dict[str, Any]] = []
    raw_ifaces = raw.get("interfaces", [{}])
    if not isinstance(raw_ifaces, list):
        errors.append(MSG_NOT_A_LIST.format(name=name, field="interfaces"))
    else:
        for i, item in enumerate(raw_ifaces):
            iface = _interface(name, i, item, host, defaults, errors)
            if iface is not None:
                interfaces.append(iface)

    # A guest that is to be gone needs no image to come from.
    os_source = (
        None
        if state == "absent" and raw.get("os") is None
        else _os(name, gtype, raw.get("os"), errors)
    )
    image_mib = int(defaults["image_size_mib"])
    if (
        os_source is not None
        and os_source["source"] == "release"
        and disks
        and disks[0]["size_mib"] is not None
        and disks[0]["size_mib"] < image_mib
    ):
        errors.append(
            MSG_ROOT_SMALL.format(
                name=name, mib=disks[0]["size_mib"], image=image_mib, release=os_source["release"]
            )
        )

    # None: not a bool, so whether the guest needs a key is not known.
    console_only = raw.get("console_only", False)
    if not isinstance(console_only, bool):
        errors.append(MSG_BOOL.format(name=name, field="console_only", value=console_only))
        console_only = None
    own = raw.get("ssh_authorized_keys")
    if own is None:
        own = []
    elif not isinstance(own, list):
        errors.append(MSG_NOT_A_LIST.format(name=name, field="ssh_authorized_keys"))
        own = []
    _ssh_keys(f"Guest {name}: ssh_authorized_keys", own, errors)
    # None: the caller does not know the keys every guest gets (the inventory plugin).
    every = defaults["ssh_authorized_keys"]
    cloud_init = os_source is not None and os_source["source"] != "iso"
    if console_only:
        if own:
            errors.append(MSG_CONSOLE_ONLY_KEYS.format(name=name))
        keys: list[str] = []
    else:
        # The keys every guest gets come first, then the guest's own; each once.
        keys = list(
            dict.fromkeys(key.strip() for key in [*(every or []), *own] if isinstance(key, str))
        )
        # Only cloud-init installs keys; a guest that is to be gone needs none.
        needs_key = console_only is False and cloud_init and state != "absent"
        if needs_key and every is not None and not (every or own):
            errors.append(MSG_NO_SSH_KEY.format(name=name))

    template = raw.get("template")
    if template is not None and (
        not isinstance(template, str) or not _TEMPLATE_RE.fullmatch(template) or ".." in template
    ):
        errors.append(MSG_TEMPLATE.format(name=name, value=template))
        template = None

    actions: dict[str, Any] = {}
    for key in ("on_reboot", "on_crash"):
        value, field = _setting(raw, key, defaults)
        if value not in ACTIONS:
            errors.append(MSG_ACTION.format(name=name, field=field, value=value))
        actions[key] = value
    tsc_mode = None
    if gtype == "hvm":
        value, field = _setting(raw, "tsc_mode", defaults)
        if value not in (None, "") and value not in TSC_MODES:
            errors.append(MSG_TSC_MODE.format(name=name, field=field, value=value))
        tsc_mode = value or None
    elif gtype is not None and raw.get("tsc_mode") not in (None, ""):
        errors.append(MSG_TSC_MODE_TYPE.format(name=name, type=gtype))

    config_dir = defaults["config_dir"].rstrip("/")
    seed_dir = f"{defaults['seed_dir'].rstrip('/')}/{name}"
    boot_dir = f"{defaults['boot_dir'].rstrip('/')}/{name}"
    # PV and PVH guests from a release boot its kernel directly: Debian's kernels
    # are zstd-compressed, which grub-xen cannot load but Xen's own loader can.
    direct_boot = (
        gtype in ("pv", "pvh") and os_source is not None and os_source["source"] == "release"
    )
    root_vdev = disks[0]["vdev"] if disks else "xvda"
    cmdline = f"root=/dev/{root_vdev}1 ro {defaults['kernel_extra']}".strip()
    # What xl boots: the release's own kernel, or for a PV or PVH guest from os.image
    # grub-xen-host's GRUB, which reads the guest's /boot/grub/grub.cfg.
    kernel = f"{boot_dir}/vmlinuz" if direct_boot else None
    if not direct_boot and gtype in ("pv", "pvh") and os_source is not None:
        kernel = defaults[f"{gtype}_kernel"]
        if not isinstance(kernel, str) or not kernel.startswith("/"):
            field = f"xen_guests_{gtype}_kernel"
            errors.append(MSG_GRUB_PATH.format(name=name, field=field, value=kernel))
    return {
        "name": name,
        "type": gtype,
        "vcpus": vcpus,
        "memory_mib": memory,
        "maxmem_mib": maxmem,
        "state": state,
        "autostart": autostart,
        "purge": purge,
        "os": os_source,
        "disks": disks,
        "interfaces": interfaces,
        "macs": [iface["mac"] for iface in interfaces],
        "ssh_authorized_keys": keys,
        "console_only": bool(console_only),
        "nameservers": list(defaults["nameservers"]),
        "template": template or f"xl/{gtype}.cfg.j2",
        "config_path": f"{config_dir}/{name}.cfg",
        "autostart_path": f"{config_dir}/auto/{name}.cfg",
        # An installer ISO brings its own setup; images and releases boot cloud-init.
        "cloud_init": cloud_init,
        "seed_dir": seed_dir,
        "seed_files": {
            "user-data": f"{seed_dir}/user-data",
            "meta-data": f"{seed_dir}/meta-data",
            "network-config": f"{seed_dir}/network-config",
        },
        "seed_image": f"{seed_dir}/seed.iso",
        "direct_boot": direct_boot,
        "boot_dir": boot_dir,
        "kernel": kernel,
        "ramdisk": f"{boot_dir}/initrd.img" if direct_boot else None,
        "cmdline": cmdline if direct_boot else None,
        # HVM guests read the seed and an installer ISO from emulated CD-ROMs.
        "seed_vdev": "hdd" if gtype == "hvm" else "xvdz",
        "iso_vdev": "hdc",
        "on_reboot": actions["on_reboot"],
        "on_crash": actions["on_crash"],
        "tsc_mode": tsc_mode,
        # Packages the dom0 needs to run the guest.
        "dom0_packages": [
            package
            for package, needed in (
                (DEVICE_MODEL, gtype == "hvm"),
                (IMAGE_TOOLS, os_source is not None and os_source["source"] == "image"),
            )
            if needed and state != "absent"
        ],
        "instance_id": instance_id(name),
        "index": index,
    }


def _walk(
    guests: Any, host: dict[str, Any], defaults: dict[str, Any] | None
) -> tuple[list[dict[str, Any]], list[str]]:
    settings = {**DEFAULTS, **(defaults or {})}
    errors: list[str] = []
    planned: list[dict[str, Any]] = []
    if not isinstance(guests, list):
        return [], ["xen_guests_list must be a list of guests."]
    # The keys every guest gets: checked once, not once per guest.
    if settings["ssh_authorized_keys"] is not None:
        _ssh_keys("xen_guests_ssh_authorized_keys", list(settings["ssh_authorized_keys"]), errors)
    # Who first used each name, MAC, address and disk path: any second use is an error.
    owners: dict[tuple[str, str], str] = {}

    def claim(name: str, field: str, value: str) -> None:
        other = owners.get((field, value))
        if other is None:
            owners[(field, value)] = name
        else:
            errors.append(MSG_DUPLICATE.format(name=name, field=field, value=value, other=other))

    for index, raw in enumerate(guests):
        if not isinstance(raw, dict):
            errors.append(MSG_NOT_A_MAPPING.format(index=index))
            continue
        if not raw.get("name"):
            errors.append(MSG_NO_NAME.format(index=index))
            continue
        guest = _guest(index, raw, host, settings, errors)
        name = guest["name"]
        if ("name", name) in owners:
            # Its MACs and disk paths clash too; the name is the one thing to fix.
            errors.append(MSG_DUPLICATE_NAME.format(name=name))
            continue
        owners[("name", name)] = name
        for mac in guest["macs"]:
            if mac:
                claim(name, "MAC", mac)
        for iface in guest["interfaces"]:
            for family in ("ipv4", "ipv6"):
                address = iface[family]
                if address and not address["dhcp"]:
                    claim(name, f"{family} address", address["address"])
        for disk in guest["disks"]:
            claim(name, "disk path", disk["path"])
        planned.append(guest)

    existing = host.get("existing_domains") or {}
    free = host.get("free_memory_mib")
    if free is not None:
        running = [g for g in planned if g["state"] == "running" and g["memory_mib"]]
        need = sum(g["memory_mib"] for g in running)
        held = sum(
            int(existing.get(g["name"], 0)) if isinstance(existing, dict) else 0 for g in running
        )
        if need > int(free) + held:
            errors.append(MSG_MEMORY_TOTAL.format(need=need, have=int(free) + held))
    return planned, errors


def host_only_bridges(network_bridges: Any) -> set[str]:
    """Bridges of the xen_network role's settings without an uplink (no ports, not primary).

    Such a bridge joins only the guests of its own dom0, whatever it is called.
    """
    if not isinstance(network_bridges, list):
        return set()
    return {
        str(bridge["name"])
        for bridge in network_bridges
        if isinstance(bridge, Mapping)
        and bridge.get("name")
        and not bridge.get("ports")
        and not bridge.get("primary")
    }


def _fleet_claims(entry: Mapping[str, Any]) -> list[tuple[tuple[str, ...], str]]:
    """What one dom0's guests claim across the fleet: (name, MAC or address key, guest)."""
    # Keys are each dom0's own matter: the settings that name addresses are enough.
    settings = {**(entry.get("settings") or {}), "ssh_authorized_keys": None}
    local = host_only_bridges(entry.get("network_bridges"))
    claims: list[tuple[tuple[str, ...], str]] = []
    for guest in _walk(entry.get("guests") or [], {}, settings)[0]:
        name = guest["name"]
        if guest["state"] == "absent":
            continue
        claims.append((("name", name), name))
        claims += [(("MAC", mac), name) for mac in guest["macs"] if mac]
        for iface in guest["interfaces"]:
            if iface["bridge"] in local:
                continue
            for family in ("ipv4", "ipv6"):
                address = iface[family]
                if address and not address["dhcp"]:
                    claims.append(((family, iface["bridge"], address["address"]), name))
    return claims


def validate_fleet(fleet: Mapping[str, Mapping[str, Any]]) -> dict[str, list[str]]:
    """Guests of different dom0s that clash, one sentence each, by the dom0 of the guest.

    FLEET maps each dom0's name, in play order, to ``guests`` (its xen_guests_list),
    ``settings`` (its planner settings; ``bridge`` decides the bridge of an interface
    that names none) and ``network_bridges`` (its xen_network_bridges, when known).
    Each dom0 is told of its own guests that clash, naming the guest and the first
    other dom0 in FLEET's order that has the same:

    - name: it is the guest's host name and its inventory name (the guest's MACs and
      addresses are then left alone: the name is the one thing to fix);
    - MAC: which bridges share a link layer is not known here, and DHCP reservations
      and switches know a NIC by it;
    - static address on a bridge of the same name, unless that bridge is host-only on
      either dom0 (``host_only_bridges``).

    A guest with state absent claims nothing, so a guest can move from one dom0 to
    another in one run. Problems within one dom0's list are ``validate_guests``'.
    """
    claims = {dom0: _fleet_claims(entry) for dom0, entry in fleet.items()}
    holders: dict[tuple[str, ...], list[tuple[str, str]]] = {}
    for dom0, owned in claims.items():
        for key, name in owned:
            holders.setdefault(key, [])
            if all(holder != dom0 for holder, _name in holders[key]):
                holders[key].append((dom0, name))
    problems: dict[str, list[str]] = {}
    for dom0, owned in claims.items():
        errors: list[str] = []
        clashing: set[str] = set()
        for key, name in owned:
            other = next(((d, g) for d, g in holders[key] if d != dom0), None)
            if other is None or name in clashing:
                continue
            if key[0] == "name":
                clashing.add(name)
                errors.append(MSG_FLEET_NAME.format(name=name, dom0=dom0, other=other[0]))
            elif key[0] == "MAC":
                errors.append(
                    MSG_FLEET_MAC.format(
                        name=name, dom0=dom0, value=key[1], owner=other[1], other=other[0]
                    )
                )
            else:
                errors.append(
                    MSG_FLEET_ADDRESS.format(
                        name=name,
                        dom0=dom0,
                        family=key[0],
                        value=key[2],
                        bridge=key[1],
                        owner=other[1],
                        other=other[0],
                    )
                )
        if errors:
            problems[dom0] = errors
    return problems


def _reads_another_file(info: Mapping[str, Any]) -> str | None:
    """The backing file or external data file a qemu-img info answer names, if any."""
    if info.get("backing-filename"):
        return f"backing file {info['backing-filename']}"
    data = (info.get("format-specific") or {}).get("data") or {}
    if data.get("data-file"):
        return f"external data file {data['data-file']}"
    return None


def _image_problem(
    guest: Mapping[str, Any], facts: Mapping[str, Any], checksum: str | None
) -> str | None:
    name, image = guest["name"], guest["os"]["image"]
    if facts.get("download_error"):
        if facts.get("download_digest"):
            return MSG_IMAGE_DOWNLOAD_CHECKSUM.format(
                name=name, image=image, actual=facts["download_digest"], checksum=checksum
            )
        return MSG_IMAGE_DOWNLOAD.format(name=name, image=image, error=facts["download_error"])
    if facts.get("exists") is False:
        return MSG_IMAGE_MISSING.format(name=name, image=image)
    digest = facts.get("digest")
    if checksum and digest and digest != checksum:
        return MSG_IMAGE_CHECKSUM.format(name=name, image=image, actual=digest, checksum=checksum)
    if facts.get("info_error"):
        return MSG_IMAGE_UNREADABLE.format(name=name, image=image, error=facts["info_error"])
    info = facts.get("info")
    if not info:
        return None
    image_format = info.get("format")
    other = _reads_another_file(info)
    if other:
        return MSG_IMAGE_BACKING.format(name=name, image=image, format=image_format, other=other)
    if image_format not in IMAGE_FORMATS:
        return MSG_IMAGE_FORMAT.format(name=name, image=image, format=image_format)
    mib = guest["disks"][0]["size_mib"] if guest["disks"] else None
    image_mib = -(-int(info.get("virtual-size", 0)) // (1024 * 1024))
    if mib is not None and image_mib > mib:
        return MSG_IMAGE_LARGE.format(name=name, mib=mib, image_mib=image_mib, image=image)
    return None


def image_problems(
    guests: list[Mapping[str, Any]], images: Mapping[str, Mapping[str, Any]]
) -> list[str]:
    """Problems of the user-supplied images of planned GUESTS, one sentence per guest.

    The size and format of an os.image are known only on the dom0, once it is there:
    IMAGES maps each os.image, as written, to what the dom0 showed of it, each fact
    optional (a missing one is not known, and skips the checks that need it):

    - ``download_error``: why its download failed; ``download_digest``, the digest
      (``sha256:...``) the download had instead of os.checksum;
    - ``exists``: whether the image is on the dom0;
    - ``digest``: its digest, in os.checksum's algorithm;
    - ``info``: what ``qemu-img info --output=json`` printed, parsed; ``info_error``,
      what qemu-img said when it could not read the image.

    A guest's image must be a standalone raw or qcow2 image (no backing file, no
    external data file) whose virtual size fits the guest's root disk.
    """
    errors = []
    for guest in guests:
        source = guest["os"]
        if source is None or source["source"] != "image" or guest["state"] == "absent":
            continue
        problem = _image_problem(guest, images.get(source["image"]) or {}, source["checksum"])
        if problem:
            errors.append(problem)
    return errors


def validate_guests(
    guests: Any, host: dict[str, Any], defaults: dict[str, Any] | None = None
) -> list[str]:
    """Every problem in ``guests`` on this host, one sentence each; empty when valid."""
    return _walk(guests, host, defaults)[1]


def plan_guests(
    guests: Any, host: dict[str, Any], defaults: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """The normalised guests with computed fields; ValueError lists every problem."""
    planned, errors = _walk(guests, host, defaults)
    if errors:
        raise ValueError("\n".join(errors))
    return planned
