"""Jinja filters of the xen_guests role: what the host offers, and the checked guest plan."""

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ansible_collections.xen_lab.dom0.plugins.module_utils.xen_guests_inventory import (
    guest_fact as xen_guests_fact,
)
from ansible_collections.xen_lab.dom0.plugins.module_utils.xen_guests_plan import (
    default_bridge,
    image_problems,
    plan_guests,
    validate_fleet,
    validate_guests,
)
from ansible_collections.xen_lab.dom0.plugins.module_utils.xen_xl import (
    parse_xl_info,
    parse_xl_list,
)


def xen_guests_host(
    xl_info: str,
    xl_list: str,
    ip_links: str,
    volume_groups: str = "",
    cpu_flags: list[str] | None = None,
) -> dict[str, Any]:
    """The host facts the guest validator needs, from `xl info`, `xl list`,
    `ip -j link show type bridge` and `vgs --noheadings -o vg_name`."""
    info = parse_xl_info(xl_info)
    links = json.loads(ip_links) if ip_links.strip() else []
    host: dict[str, Any] = {
        "total_memory_mib": int(info["total_memory"]),
        "free_memory_mib": int(info["free_memory"]),
        "nr_cpus": int(info["nr_cpus"]),
        "virt_caps": info.get("virt_caps", ""),
        "cpu_flags": list(cpu_flags or []),
        "bridges": sorted(str(link["ifname"]) for link in links if link.get("ifname")),
        "volume_groups": sorted(vg for vg in volume_groups.split()),
        "existing_domains": {
            str(row["name"]): int(row["mem"])
            for row in parse_xl_list(xl_list)
            if row["name"] != "Domain-0"
        },
    }
    return host


def xen_guests_plan(
    guests: Any, host: Mapping[str, Any], defaults: Mapping[str, Any]
) -> dict[str, Any]:
    """{"guests": [...], "errors": []}: the planned guests, or every problem found."""
    errors = validate_guests(guests, dict(host), dict(defaults))
    if errors:
        return {"guests": [], "errors": errors}
    return {"guests": plan_guests(guests, dict(host), dict(defaults)), "errors": []}


def xen_guests_fleet(
    guests: Any,
    dom0: str,
    settings: Mapping[str, Any],
    dom0s: list[str],
    hostvars: Mapping[str, Any],
    network_bridges: Any = None,
) -> list[str]:
    """This dom0's guests that clash with the guests of the other dom0s, one sentence each.

    This dom0 is planned as the role sees it (GUESTS, SETTINGS, NETWORK_BRIDGES); each
    other dom0 of DOM0S from HOSTVARS: its xen_guests_list, xen_network_bridges and the
    settings that decide its default bridge, as the inventory plugin reads them.
    """
    fleet: dict[str, dict[str, Any]] = {}
    for name in dict.fromkeys([*map(str, dom0s), str(dom0)]):
        if name == dom0:
            fleet[name] = {
                "guests": guests,
                "settings": dict(settings),
                "network_bridges": network_bridges,
            }
            continue
        other = hostvars[name]
        bridge = default_bridge(
            other.get("xen_guests_default_bridge") or "",
            other.get("xen_network_facts"),
            other.get("xen_network_default_bridge") or "",
            other.get("xen_network_bridges"),
        )
        fleet[name] = {
            "guests": other.get("xen_guests_list") or [],
            "settings": {"bridge": bridge},
            "network_bridges": other.get("xen_network_bridges"),
        }
    return validate_fleet(fleet).get(str(dom0), [])


def xen_guests_sources(guests: list[Mapping[str, Any]], image_dir: str) -> list[dict[str, Any]]:
    """User-supplied images the guests are copied from, once each, with where each is
    on the dom0. Their format is what qemu-img reads in them on the dom0, never their name."""
    sources: dict[str, dict[str, Any]] = {}
    for guest in guests:
        source = guest["os"]
        if source["source"] == "image":
            sources.setdefault(source["image"], image_source(source, image_dir))
    return list(sources.values())


def image_source(source: Mapping[str, Any], image_dir: str) -> dict[str, Any]:
    """Paths of one os.image on the dom0: a URL is downloaded, a path used as it is."""
    location = str(source["image"])
    remote = bool(re.match(r"(?i)(https?|ftp)://", location))
    # The file name, without a URL's query or fragment.
    name = re.split(r"[?#]", location)[0].rstrip("/").rsplit("/", 1)[-1] or "image"
    digest = hashlib.sha256(location.encode()).hexdigest()[:12]
    fetched = f"{image_dir.rstrip('/')}/downloads/{digest}-{name}" if remote else location
    return {
        "location": location,
        "url": location if remote else None,
        "checksum": source.get("checksum"),
        "fetched": fetched,
        # How the role reads its format and virtual size on the dom0.
        "qemu_img_info": ["qemu-img", "info", "--output=json", fetched],
    }


# How ansible.builtin.get_url says a download does not match its checksum.
_GET_URL_MISMATCH = re.compile(r"did not match (?P<expected>\w+); it was (?P<actual>\w+)\.")


def xen_guests_image_problems(
    guests: list[Mapping[str, Any]],
    image_dir: str,
    downloads: Mapping[str, Any] | None = None,
    checksums: Mapping[str, Any] | None = None,
    read: Mapping[str, Any] | None = None,
) -> list[str]:
    """The user-supplied images' problems, one sentence per guest (``image_problems``),
    from what the role's tasks found on the dom0: DOWNLOADS, the result of the
    ansible.builtin.get_url loop over the sources with a URL (or, in a rescue, its
    failed result); CHECKSUMS, the ansible.builtin.stat loop (with checksum_algorithm)
    over the local sources with a checksum; READ, xen_lab.dom0.xen_read's answer with
    each source's ``fetched`` path in ``paths`` and ``qemu-img info --output=json``
    of it as the command of that name."""
    sources = xen_guests_sources(guests, image_dir)
    facts: dict[str, dict[str, Any]] = {source["location"]: {} for source in sources}
    for result in (downloads or {}).get("results", []):
        if not result.get("failed"):
            continue
        item = result["item"]
        fact = facts.setdefault(item["location"], {})
        fact["download_error"] = str(result.get("msg", "")).strip()
        mismatch = _GET_URL_MISMATCH.search(fact["download_error"])
        if mismatch and item.get("checksum"):
            fact["download_digest"] = f"{item['checksum'].split(':')[0]}:{mismatch['actual']}"
    for result in (checksums or {}).get("results", []):
        stat = result.get("stat") or {}
        item = result["item"]
        if stat.get("exists") and stat.get("checksum"):
            algorithm = item["checksum"].split(":")[0]
            facts.setdefault(item["location"], {})["digest"] = f"{algorithm}:{stat['checksum']}"
    for source in sources:
        fact = facts[source["location"]]
        path = ((read or {}).get("paths") or {}).get(source["fetched"])
        if path is None:
            continue
        # A download that is not there: check mode, which downloads nothing.
        if not path.get("exists"):
            fact["exists"] = None if source["url"] else False
            continue
        fact["exists"] = True
        command = ((read or {}).get("commands") or {}).get(source["fetched"])
        # 127: qemu-img is not installed yet (check mode), so the image cannot be read.
        if not command or command["rc"] == 127:
            continue
        if command["rc"] == 0:
            fact["info"] = json.loads(command["stdout"])
        else:
            fact["info_error"] = str(command["stderr"]).strip()
    return image_problems(guests, facts)


def xen_guests_disk_steps(
    guests: list[Mapping[str, Any]], images: Mapping[str, str], image_dir: str
) -> list[dict[str, Any]]:
    """How each disk of the guests that stay comes to exist, one step per disk.

    ``clone``: a root disk copied from a golden image (``images``: release to its
    folder); ``import``: a root disk copied from a user-supplied image, raw or
    qcow2; ``blank``: an empty file disk (data disks, and the disk an installer
    ISO installs to). ``args`` are the disk
    script's arguments. ``creates`` is the file that exists once a step on a file
    disk is done; a copy onto an LVM volume is recorded by the volume's tag
    instead (``xen_guests_complete_volumes``), so its ``creates`` is None.
    """
    steps = []
    for guest in guests:
        source = guest["os"]
        for disk in guest["disks"]:
            image, action = None, "blank"
            if disk["root"] and source["source"] == "release":
                image, action = f"{images[source['release']]}/disk.img", "clone"
            elif disk["root"] and source["source"] == "image":
                image, action = image_source(source, image_dir)["fetched"], "import"
            lvm = disk["backend"] == "lvm"
            if lvm and not image:
                continue  # an empty LVM volume is made by community.general.lvol alone
            size = str(disk["size_mib"])
            if lvm:
                args = [f"{action}-lv", image, disk["vg"], disk["lv"], size, disk["legacy_marker"]]
            elif image:
                args = [action, image, disk["path"], size]
            else:
                args = [action, disk["path"], size]
            steps.append(
                {
                    "guest": guest["name"],
                    "path": disk["path"],
                    "backend": disk["backend"],
                    "size_mib": disk["size_mib"],
                    "action": action,
                    "image": image,
                    "args": args,
                    "creates": None if lvm else disk["path"],
                }
            )
    return steps


# The LVM tag the disk script (roles/xen_guests/files/xen-guests-disk) puts on a
# volume once an image is completely copied onto it.
COMPLETE_TAG = "xen_lab_complete"


def xen_guests_complete_volumes(lvs: str) -> list[str]:
    """Paths of the LVM volumes an image was completely copied onto, from
    `lvs --noheadings --separator '|' -o lv_path,lv_tags`."""
    volumes = []
    for line in lvs.splitlines():
        path, _sep, tags = line.strip().partition("|")
        if COMPLETE_TAG in tags.split(","):
            volumes.append(path)
    return volumes


def xen_guests_domains(
    guests: list[Mapping[str, Any]], changed_configs: list[str]
) -> list[dict[str, Any]]:
    """The xen_domain module's domains: a changed config asks for a restart."""
    return [
        {
            "name": guest["name"],
            "config": guest["config_path"],
            "state": guest["state"],
            "restart": guest["name"] in changed_configs,
        }
        for guest in guests
    ]


SEED_FILES = ("user-data", "meta-data", "network-config")


def xen_guests_files(
    guests: list[Mapping[str, Any]],
    rendered: Mapping[str, Mapping[str, str]],
    images: Mapping[str, str],
) -> dict[str, list[dict[str, Any]]]:
    """The xen_files module's steps for the guests that stay.

    RENDERED holds each guest's rendered templates by name: ``config`` and the
    cloud-init seed files. user-data goes to ``secret_files``: a user's own
    template may put secrets there.
    """
    seeds = [guest for guest in guests if guest["cloud_init"]]
    direct = [guest for guest in guests if guest["direct_boot"]]
    autostart = [g for g in guests if g["autostart"] and g["state"] == "running"]

    def seed_files(names: tuple[str, ...]) -> list[dict[str, Any]]:
        return [
            {"path": g["seed_files"][n], "content": rendered[g["name"]][n], "mode": "0600"}
            for g in seeds
            for n in names
        ]

    return {
        "kernels": [
            {
                "src": f"{images[g['os']['release']]}/{name}",
                "dest": f"{g['boot_dir']}/{name}",
                "mode": "0600",
            }
            for g in direct
            for name in ("vmlinuz", "initrd.img")
        ],
        "seed_files": seed_files(SEED_FILES[1:]),
        "secret_files": seed_files(SEED_FILES[:1]),
        "configs": [
            {
                "path": g["config_path"],
                "content": rendered[g["name"]]["config"],
                "mode": "0644",
                "validate": "xl -N create %s",
            }
            for g in guests
        ],
        "links": [{"src": g["config_path"], "dest": g["autostart_path"]} for g in autostart],
        "unlinked": [g["autostart_path"] for g in guests if g not in autostart],
    }


# The collection's own guest templates: plugins/filter/ is two levels below its root.
COLLECTION_TEMPLATES = Path(__file__).resolve().parents[2] / "templates"


def xen_guests_template(name: str, user_dir: str = "") -> str:
    """Path of the guest template `name`: from `user_dir` when that folder has it,
    else from the collection's own `templates/`."""
    if user_dir and (Path(user_dir) / name).is_file():
        return str(Path(user_dir) / name)
    return str(COLLECTION_TEMPLATES / name)


class FilterModule:
    """xen_guests filters."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {
            "xen_guests_host": xen_guests_host,
            "xen_guests_plan": xen_guests_plan,
            "xen_guests_fleet": xen_guests_fleet,
            "xen_guests_sources": xen_guests_sources,
            "xen_guests_image_problems": xen_guests_image_problems,
            "xen_guests_disk_steps": xen_guests_disk_steps,
            "xen_guests_complete_volumes": xen_guests_complete_volumes,
            "xen_guests_domains": xen_guests_domains,
            "xen_guests_fact": xen_guests_fact,
            "xen_guests_files": xen_guests_files,
            "xen_guests_template": xen_guests_template,
            "xen_guests_default_bridge": default_bridge,
        }
