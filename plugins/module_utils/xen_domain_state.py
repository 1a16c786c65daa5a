"""Running Xen domains as ``xl`` reports them, and what to do to reach the wanted state.

The xen_domain module reads the host once (``xl list -l`` for each domain's
configuration, ``xl list`` for its run state), asks ``plan_actions`` what each
guest needs, and runs the steps with ``apply_action``. Everything but
``apply_action`` is pure; ``apply_action`` gets its command runner, sleep and
clock from the caller. The module's runner gives each xl call the time
``xl_timeout`` says and fails naming the call when it runs out.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import Any

from ansible_collections.xen_lab.dom0.plugins.module_utils.xen_xl import parse_xl_list

NONE = "none"
CREATE = "create"
SHUTDOWN = "shutdown"
DESTROY = "destroy"
RESTART = "restart"
RECREATE = "recreate"
UNPAUSE = "unpause"
# Actions after which the domain runs: new domains are made paused (xl create
# -p) and all of them are unpaused together at the end (see apply_all).
_STARTS = (CREATE, RESTART, RECREATE, UNPAUSE)
# Run states from the flags of `xl list`.
RUNNING = "running"
PAUSED = "paused"
SHUTDOWN_STATE = "shutdown"
CRASHED = "crashed"
DYING = "dying"
# Domains that only hold resources: remove them with `xl destroy`.
_REMAINS = (SHUTDOWN_STATE, CRASHED, DYING)

MSG_BAD_JSON = "xl list -l printed something that is not a JSON list of domains: {error}"
MSG_XL_FAILED = "{command} failed with exit code {rc}: {stderr}"
# libxl gives a device's hotplug script (block, vif) a fixed time; on a dom0
# whose CPUs are busy booting other guests the script can run out of it.
HOTPLUG_TIMEOUT = "because of timeout"
# Seconds before the one retry of a create that ran out of hotplug time.
HOTPLUG_RETRY_PAUSE = 15
MSG_STILL_THERE = "Domain {name} is still listed {timeout} s after xl destroy."
# Seconds an xl call that reads or asks may take (list, shutdown without -w,
# unpause): well under a second on a dom0 whose toolstack answers.
XL_TIMEOUT = 60
# Seconds xl create may take, the module's default: a PV guest's create (disk and
# network hotplug scripts included) takes about 30 s on the lab's emulated dom0.
CREATE_TIMEOUT = 120
MSG_DUPLICATE = "domains lists {name} more than once."

Runner = Callable[[list[str]], tuple[int, str, str]]


def xl_timeout(argv: list[str], create_timeout: float, destroy_timeout: float) -> float:
    """Seconds one xl call may take: CREATE_TIMEOUT for ``xl create``, DESTROY_TIMEOUT
    for ``xl destroy`` (the module passes the time a guest has to shut down: tearing
    down a large guest's memory takes a while), XL_TIMEOUT for every other call."""
    verb = argv[1] if len(argv) > 1 else ""
    return {"create": create_timeout, "destroy": destroy_timeout}.get(verb, XL_TIMEOUT)


def _mib(kib: Any) -> int | None:
    """KiB to MiB, rounded up: dom0's target of 1048575 KiB is its 1024 MiB."""
    if isinstance(kib, int) and not isinstance(kib, bool):
        return -(-kib // 1024)
    return None


def _domain_type(c_info: dict[str, Any], b_info: dict[str, Any]) -> str:
    declared = c_info.get("type")
    if declared in ("pv", "pvh", "hvm"):
        return str(declared)
    for kind in ("hvm", "pvh", "pv"):
        if b_info.get(f"type.{kind}"):
            return kind
    return "pv"


def parse_xl_list_long(text: str) -> dict[str, dict[str, Any]]:
    """Guest domains from ``xl list -l`` by name; dom0 is left out.

    ``xl list -l`` prints a JSON list of ``{"domid": N, "config": {...}}``
    (libxl's domain configuration; fields at their default are omitted). A
    domain xl could not read the configuration of is missing from that list.
    """
    try:
        entries = json.loads(text) if text.strip() else []
    except ValueError as exc:
        raise ValueError(MSG_BAD_JSON.format(error=exc)) from exc
    if isinstance(entries, dict):
        entries = [entries]
    if not isinstance(entries, list):
        raise ValueError(MSG_BAD_JSON.format(error=type(entries).__name__))
    domains: dict[str, dict[str, Any]] = {}
    for entry in entries:
        if not isinstance(entry, dict):
            raise ValueError(MSG_BAD_JSON.format(error=f"entry {entry!r}"))
        config = entry.get("config") or {}
        c_info = config.get("c_info") or {}
        b_info = config.get("b_info") or {}
        domid = entry.get("domid")
        if domid == 0 or c_info.get("name") in (None, "Domain-0"):
            continue
        kind = _domain_type(c_info, b_info)
        type_info = b_info.get(f"type.{kind}") or {}
        domains[c_info["name"]] = {
            "name": c_info["name"],
            "domid": domid,
            "uuid": c_info.get("uuid"),
            "type": kind,
            "memory_mib": _mib(b_info.get("target_memkb")),
            "maxmem_mib": _mib(b_info.get("max_memkb")),
            "vcpus": b_info.get("max_vcpus"),
            "kernel": b_info.get("kernel") or type_info.get("kernel"),
            "disks": [
                {
                    "path": disk.get("pdev_path"),
                    "vdev": disk.get("vdev"),
                    "readwrite": bool(disk.get("readwrite", 0)),
                    "cdrom": bool(disk.get("is_cdrom", 0)),
                }
                for disk in config.get("disks") or []
            ],
            "nics": [
                {"mac": nic.get("mac"), "bridge": nic.get("bridge")}
                for nic in config.get("nics") or []
            ],
            "on_poweroff": config.get("on_poweroff"),
            "on_reboot": config.get("on_reboot"),
            "on_crash": config.get("on_crash"),
            "run_state": None,
        }
    return domains


def run_state(flags: str) -> str:
    """The state behind the six ``xl list`` flags ``rbpscd``.

    Only p, s, c and d mean paused, shut down, crashed and dying. A domain with
    neither r nor b (``------``) is runnable but waiting for a CPU, which is
    common under emulation: it is running.
    """
    if "d" in flags:
        return DYING
    if "c" in flags:
        return CRASHED
    if "s" in flags:
        return SHUTDOWN_STATE
    if "p" in flags:
        return PAUSED
    return RUNNING


def parse_run_states(text: str) -> dict[str, str]:
    """Run state of each guest in ``xl list`` output, by name; dom0 is left out."""
    return {
        str(row["name"]): run_state(str(row["state"]))
        for row in parse_xl_list(text)
        if row["id"] != 0
    }


def current_domains(list_long: str, list_plain: str) -> dict[str, dict[str, Any]]:
    """Both ``xl list`` outputs as one view; a domain only ``xl list`` shows is kept."""
    domains = parse_xl_list_long(list_long)
    for name, state in parse_run_states(list_plain).items():
        domain = domains.setdefault(name, {"name": name, "domid": None, "type": None})
        domain["run_state"] = state
    for domain in domains.values():
        if domain.get("run_state") is None:
            domain["run_state"] = RUNNING
    return domains


# One setting: a [list] (it may span lines), a quoted string, or a bare value.
_CFG_SETTING = re.compile(
    r"""^[ \t]*([A-Za-z_][A-Za-z0-9_]*)[ \t]*=[ \t]*(\[[^\]]*\]|"[^"]*"|'[^']*'|[^#\n]*)""",
    re.MULTILINE,
)
_CFG_ITEM = re.compile(r""""([^"]*)"|'([^']*)'""")


def parse_xl_cfg(text: str) -> dict[str, Any]:
    """The settings of an xl.cfg file: strings without their quotes, lists as
    lists of strings (a list may span lines), other values as written.
    Comment lines are left out."""
    kept = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    settings: dict[str, Any] = {}
    for match in _CFG_SETTING.finditer(kept):
        value = match[2].strip()
        if value.startswith("["):
            settings[match[1]] = [a if a else b for a, b in _CFG_ITEM.findall(value)]
        else:
            settings[match[1]] = value.strip("\"'")
    return settings


def wanted_sizes(cfg: dict[str, Any]) -> dict[str, int | None]:
    """memory_mib, maxmem_mib and vcpus as a domain built from this xl.cfg reports them."""

    def number(key: str) -> int | None:
        value = cfg.get(key, "")
        return int(value) if isinstance(value, str) and value.isdigit() else None

    memory = number("memory")
    vcpus = number("vcpus")
    return {
        "memory_mib": memory,
        "maxmem_mib": number("maxmem") or memory,
        "vcpus": number("maxvcpus") or vcpus,
    }


def _spec(text: str, last: str = "") -> dict[str, str]:
    """``key=value, key=value`` of a vif or disk spec; ``last`` (disk's target)
    takes the rest of the spec, commas included, as xl.cfg(5) says."""
    tail: dict[str, str] = {}
    if last and f"{last}=" in text:
        text, rest = text.split(f"{last}=", 1)
        tail[last] = rest.strip()
    pairs = (part.split("=", 1) for part in text.split(",") if "=" in part)
    return {**{key.strip(): value.strip() for key, value in pairs}, **tail}


def wanted_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """What a domain built from this xl.cfg shows in ``xl list -l``: its sizes,
    type, kernel, NICs (MAC and bridge) and disks (vdev and target), in order."""

    def items(key: str) -> list[str]:
        value = cfg.get(key)
        return value if isinstance(value, list) else []

    vifs = [_spec(item) for item in items("vif")]
    disks = [_spec(item, last="target") for item in items("disk")]
    kernel = cfg.get("kernel")
    return {
        **wanted_sizes(cfg),
        "type": cfg.get("type") or None,
        "kernel": kernel if isinstance(kernel, str) and kernel else None,
        "nics": [
            {"mac": vif.get("mac", "").lower() or None, "bridge": vif.get("bridge")} for vif in vifs
        ],
        "disks": [{"vdev": disk.get("vdev"), "path": disk.get("target")} for disk in disks],
    }


def _devices(
    label: str,
    have: list[tuple[Any, ...]],
    want: list[tuple[Any, ...]],
    show: Callable[[tuple[Any, ...]], str],
) -> list[str]:
    """One phrase per device that differs, is added or is gone, by position."""
    found = []
    for index in range(max(len(have), len(want))):
        old = have[index] if index < len(have) else None
        new = want[index] if index < len(want) else None
        if old == new:
            continue
        if old is None:
            found.append(f"{label} {index} added ({show(new)})")  # type: ignore[arg-type]
        elif new is None:
            found.append(f"{label} {index} removed ({show(old)})")
        else:
            found.append(f"{label} {index} {show(old)} -> {show(new)}")
    return found


def differences(current: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    """What differs between a running domain and its wanted config, one phrase
    each: sizes, type, kernel, NICs and disks. What either side does not know
    (a domain only ``xl list`` shows, a wanted config never read) is no
    difference."""
    found = []
    for key, label, unit in (
        ("memory_mib", "memory", " MiB"),
        ("maxmem_mib", "maxmem", " MiB"),
        ("vcpus", "vcpus", ""),
    ):
        have, want = current.get(key), wanted.get(key)
        if have is not None and want is not None and have != want:
            found.append(f"{label} {have}{unit} -> {want}{unit}")
    for key in ("type", "kernel"):
        have, want = current.get(key), wanted.get(key)
        if have and want and have != want:
            found.append(f"{key} {have} -> {want}")
    if current.get("nics") is not None and wanted.get("nics") is not None:
        found += _devices(
            "nic",
            [((nic.get("mac") or "").lower(), nic.get("bridge")) for nic in current["nics"]],
            [((nic.get("mac") or "").lower(), nic.get("bridge")) for nic in wanted["nics"]],
            lambda nic: f"mac={nic[0]} bridge={nic[1]}",
        )
    if current.get("disks") is not None and wanted.get("disks") is not None:
        found += _devices(
            "disk",
            [(disk.get("vdev"), disk.get("path")) for disk in current["disks"]],
            [(disk.get("vdev"), disk.get("path")) for disk in wanted["disks"]],
            lambda disk: f"{disk[0]}={disk[1]}",
        )
    return found


def plan_actions(
    current: dict[str, dict[str, Any]], wanted: list[dict[str, Any]], allow_restart: bool
) -> list[dict[str, Any]]:
    """One result per wanted guest: the action and whether a restart is due.

    ``wanted`` items hold name, config, state (running, stopped or absent),
    restart and, when known, what ``wanted_config`` reads from the config. A
    running domain whose config differs (``differences``), or one asked to
    restart, is restarted only with ``allow_restart``; otherwise
    ``restart_needed`` says so, at every run until the domain runs its config.
    """
    results = []
    seen: set[str] = set()
    for want in wanted:
        name = want["name"]
        if name in seen:
            raise ValueError(MSG_DUPLICATE.format(name=name))
        seen.add(name)
        domain = current.get(name)
        state = domain["run_state"] if domain else None
        diff = differences(domain, want) if domain and state not in _REMAINS else []
        restart_needed = False
        if want["state"] == "running":
            if domain is None:
                action = CREATE
            elif state in _REMAINS:
                action = RECREATE
            else:
                restart_needed = bool(diff) or bool(want.get("restart"))
                if restart_needed and allow_restart:
                    action = RESTART
                elif state == PAUSED:
                    # Paused by hand, or made by a run that was killed before its unpause.
                    action = UNPAUSE
                else:
                    action = NONE
        elif domain is None:
            action = NONE
        else:
            action = DESTROY if state in _REMAINS else SHUTDOWN
        results.append(
            {
                "name": name,
                "config": want.get("config"),
                "action": action,
                "changed": action != NONE,
                "restart_needed": restart_needed and action != RESTART,
                "differences": diff,
                "run_state": state or "absent",
            }
        )
    return results


def _check(command: list[str], result: tuple[int, str, str]) -> None:
    rc, _out, err = result
    if rc != 0:
        raise RuntimeError(
            MSG_XL_FAILED.format(command=" ".join(command), rc=rc, stderr=err.strip())
        )


def _listed_state(xl: str, name: str, run: Runner) -> str | None:
    """The run state of one domain now, or None once xl no longer lists it."""
    rc, out, _err = run([xl, "list", name])
    if rc != 0:
        return None
    return parse_run_states(out).get(name)


def _destroy(
    xl: str,
    name: str,
    run: Runner,
    timeout: int,
    sleep: Callable[[float], None],
    clock: Callable[[], float],
) -> None:
    command = [xl, "destroy", name]
    result = run(command)
    deadline = clock() + timeout
    while _listed_state(xl, name, run) is not None:
        if result[0] != 0:
            _check(command, result)
        if clock() >= deadline:
            raise RuntimeError(MSG_STILL_THERE.format(name=name, timeout=timeout))
        sleep(1)


def _shutdown(
    xl: str,
    name: str,
    run: Runner,
    timeout: int,
    sleep: Callable[[float], None],
    clock: Callable[[], float],
) -> bool:
    """Shut down gracefully; destroy after ``timeout`` seconds. True when destroyed."""
    deadline = clock() + timeout
    accepted = False
    while True:
        if not accepted:
            # -F: HVM guests without PV drivers get an ACPI power button press.
            # A guest still in its boot loader refuses; ask again until the deadline.
            accepted = run([xl, "shutdown", "-F", name])[0] == 0
        state = _listed_state(xl, name, run)
        if state is None:
            return False
        if state in _REMAINS:
            _destroy(xl, name, run, timeout, sleep, clock)
            return False
        if clock() >= deadline:
            _destroy(xl, name, run, timeout, sleep, clock)
            return True
        sleep(2)


def apply_action(
    result: dict[str, Any],
    xl: str,
    run: Runner,
    timeout: int,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    paused: bool = False,
) -> dict[str, Any]:
    """Run one planned action; RuntimeError carries the failing command's message.

    With ``paused``, a domain that is to run is left paused (``xl create -p``;
    an unpause action does nothing): the caller unpauses it. Returns the result
    with ``forced`` set: true when a shutdown ran out of time and the domain
    was destroyed.
    """
    name, action = result["name"], result["action"]
    forced = False
    if action in (SHUTDOWN, RESTART):
        if result.get("run_state") == PAUSED:
            # A paused guest cannot hear the shutdown request.
            _unpause(xl, name, run)
        forced = _shutdown(xl, name, run, timeout, sleep, clock)
    elif action in (DESTROY, RECREATE):
        _destroy(xl, name, run, timeout, sleep, clock)
    if action in (CREATE, RESTART, RECREATE):
        command = [xl, "create", *(["-p"] if paused else []), result["config"]]
        outcome = run(command)
        if outcome[0] != 0 and HOTPLUG_TIMEOUT in outcome[2]:
            # xl has destroyed the half-made domain; a busy dom0 gets one more try.
            sleep(HOTPLUG_RETRY_PAUSE)
            if _listed_state(xl, name, run) is not None:
                _destroy(xl, name, run, timeout, sleep, clock)
            outcome = run(command)
        _check(command, outcome)
    elif action == UNPAUSE and not paused:
        _unpause(xl, name, run)
    return {**result, "forced": forced}


class ApplyError(RuntimeError):
    """An action failed; ``done`` holds the results of the actions before it."""

    def __init__(self, message: str, done: list[dict[str, Any]]) -> None:
        super().__init__(message)
        self.done = done


def _unpause(xl: str, name: str, run: Runner) -> None:
    command = [xl, "unpause", name]
    _check(command, run(command))


def _unpause_all(xl: str, names: list[str], run: Runner) -> list[str]:
    """Unpause each domain; the messages of the unpauses that failed."""
    errors = []
    for name in names:
        try:
            _unpause(xl, name, run)
        except RuntimeError as exc:
            errors.append(f"Domain {name}: {exc}")
    return errors


def apply_all(
    results: list[dict[str, Any]],
    xl: str,
    run: Runner,
    timeout: int,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> list[dict[str, Any]]:
    """Run every planned action, in order; ApplyError on the first failure.

    Domains that are to run are created paused and unpaused together once all
    are made. Their device hotplug scripts then run on a dom0 that no booting
    guest competes with: on a slow host, guests booting while the next one is
    made let libxl's hotplug timeout kill its block script. Domains already
    made are unpaused even when a later action fails.
    """
    done: list[dict[str, Any]] = []
    starting: list[str] = []
    for result in results:
        if not result["changed"]:
            done.append({**result, "forced": False})
            continue
        try:
            done.append(apply_action(result, xl, run, timeout, sleep, clock, paused=True))
        except RuntimeError as exc:
            errors = [f"Domain {result['name']}: {exc}", *_unpause_all(xl, starting, run)]
            raise ApplyError("; ".join(errors), done) from exc
        if result["action"] in _STARTS:
            starting.append(result["name"])
    errors = _unpause_all(xl, starting, run)
    if errors:
        raise ApplyError("; ".join(errors), done)
    return done
