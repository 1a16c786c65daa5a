"""xl's view of running domains, the xen_domain module's decisions and its steps."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest
import yaml

from ansible_collections.xen_lab.dom0.plugins.module_utils import xen_domain_state as ds
from ansible_collections.xen_lab.dom0.plugins.module_utils import xen_guests_plan as gp

DATA = Path(__file__).parent / "data"
ROOT = Path(__file__).parents[2]


def test_the_lab_dom0_alone_lists_no_guests() -> None:
    assert ds.parse_xl_list_long((DATA / "xl-list-l-trixie.json").read_text()) == {}
    assert ds.parse_run_states((DATA / "xl-list-trixie.txt").read_text()) == {}
    assert ds.parse_run_states((DATA / "xl-list-bookworm.txt").read_text()) == {}


def test_the_pv_and_pvh_guests_of_the_bookworm_scenario() -> None:
    # Captured with `xl list -l` and `xl list` on the xen_guests scenario's dom0.
    domains = ds.current_domains(
        (DATA / "xl-list-l-guests-bookworm.json").read_text(),
        (DATA / "xl-list-guests-bookworm.txt").read_text(),
    )
    assert sorted(domains) == ["pv1", "pvh1"]
    for name, gtype, domid in (("pv1", "pv", 1), ("pvh1", "pvh", 2)):
        domain = domains[name]
        assert (domain["domid"], domain["type"], domain["vcpus"]) == (domid, gtype, 1)
        assert (domain["memory_mib"], domain["maxmem_mib"]) == (384, 384)
        assert domain["kernel"] == f"/var/lib/xen/boot/{name}/vmlinuz"
        assert domain["nics"] == [{"mac": gp.stable_mac(name, 0), "bridge": "xenbr0"}]
        assert [d["path"] for d in domain["disks"]] == [
            f"/var/lib/xen/images/{name}-root.img",
            f"/var/lib/xen/seeds/{name}/seed.iso",
        ]
        assert [d["readwrite"] for d in domain["disks"]] == [True, False]
        # `xl list` showed pv1 blocked (-b----) and pvh1 on a CPU (r-----).
        assert domain["run_state"] == "running"


def test_a_pv_and_a_pvh_guest() -> None:
    # Synthetic, in the shape of the captured file, until a capture with guests exists.
    domains = ds.parse_xl_list_long((DATA / "xl-list-l-guests-synthetic.json").read_text())
    assert sorted(domains) == ["db1", "web1"]
    web1, db1 = domains["web1"], domains["db1"]
    assert (web1["domid"], web1["type"], web1["vcpus"]) == (3, "pv", 2)
    assert (web1["memory_mib"], web1["maxmem_mib"]) == (1024, 2048)
    assert web1["kernel"] == "/usr/lib/grub-xen/grub-x86_64-xen.bin"
    assert web1["disks"][0] == {
        "path": "/var/lib/xen/images/web1-root.img",
        "vdev": "xvda",
        "readwrite": True,
        "cdrom": False,
    }
    assert web1["disks"][1]["readwrite"] is False
    assert web1["nics"] == [{"mac": "00:16:3e:6e:1d:7e", "bridge": "xenbr0"}]
    assert (web1["on_reboot"], web1["on_crash"]) == ("restart", "restart")
    assert (db1["type"], db1["memory_mib"], db1["maxmem_mib"], db1["vcpus"]) == ("pvh", 512, 512, 1)
    assert db1["kernel"] == "/usr/lib/grub-xen/grub-i386-xen_pvh.bin"


def test_two_pv_guests_captured_on_the_trixie_lab_dom0() -> None:
    # Captured with tests/unit/data/capture-xl-guests.sh on the `make lab` dom0
    # (Xen 4.20.5-pre): dom0's own kernel, no disk, so only xl's view matters.
    domains = ds.parse_xl_list_long((DATA / "xl-list-l-trixie-guests.json").read_text())
    assert sorted(domains) == ["db1", "web1"]
    web1, db1 = domains["web1"], domains["db1"]
    assert (web1["domid"], web1["type"], web1["vcpus"]) == (3, "pv", 1)
    assert (web1["memory_mib"], web1["maxmem_mib"]) == (256, 256)
    assert (db1["domid"], db1["type"], db1["vcpus"]) == (4, "pv", 2)
    assert (db1["memory_mib"], db1["maxmem_mib"]) == (320, 384)
    assert db1["kernel"] == "/vmlinuz"
    assert db1["disks"] == []
    assert db1["nics"] == [{"mac": "00:16:3e:12:34:02", "bridge": "xenbr0"}]
    assert (db1["on_reboot"], db1["on_crash"]) == ("restart", "preserve")
    plain = (DATA / "xl-list-trixie-guests.txt").read_text()
    # "-b----": blocked, waiting for an event; that is running.
    assert ds.parse_run_states(plain) == {"web1": "running", "db1": "running"}
    both = ds.current_domains((DATA / "xl-list-l-trixie-guests.json").read_text(), plain)
    assert {n: d["run_state"] for n, d in both.items()} == {"web1": "running", "db1": "running"}


def test_type_comes_from_b_info_when_c_info_leaves_it_out() -> None:
    text = (
        '[{"domid": 7, "config": {"c_info": {"name": "old"}, "b_info": {"max_memkb": 262144,'
        ' "target_memkb": 262144, "type.hvm": {"vga": {"kind": "std"}}}}}]'
    )
    assert ds.parse_xl_list_long(text)["old"]["type"] == "hvm"


def test_output_that_is_not_a_domain_list_is_refused() -> None:
    with pytest.raises(ValueError, match="not a JSON list of domains"):
        ds.parse_xl_list_long("libxl: error: cannot init xl context")
    with pytest.raises(ValueError, match="not a JSON list of domains"):
        ds.parse_xl_list_long('"text"')
    assert ds.parse_xl_list_long("") == {}


@pytest.mark.parametrize(
    ("flags", "state"),
    [
        ("r-----", "running"),
        ("-b----", "running"),
        ("------", "running"),
        ("--p---", "paused"),
        ("---s--", "shutdown"),
        ("----c-", "crashed"),
        ("-----d", "dying"),
        ("---s-d", "dying"),
    ],
)
def test_run_state_from_xl_list_flags(flags: str, state: str) -> None:
    assert ds.run_state(flags) == state


XL_LIST = """\
Name                                        ID   Mem VCPUs\tState\tTime(s)
Domain-0                                     0  1024     2     r-----     189.7
web1                                         3  1024     2     ------      12.0
db1                                          4   512     1     ---s--       3.1
"""


def test_both_listings_make_one_view() -> None:
    long_text = (DATA / "xl-list-l-guests-synthetic.json").read_text()
    plain = (
        XL_LIST
        + "gone                                         5   256     1     -----d       0.4\n"
    )
    domains = ds.current_domains(long_text, plain)
    assert {n: d["run_state"] for n, d in domains.items()} == {
        "web1": "running",
        "db1": "shutdown",
        "gone": "dying",
    }
    # A dying domain xl could not read the configuration of is still seen.
    assert domains["gone"]["type"] is None


CFG = """\
# comment = 1
name = "web1"
type = "pv"
memory = 1024
maxmem = 2048  # room to balloon
vcpus = 2
vif = [ "mac=00:16:3e:6e:1d:7e, bridge=xenbr0" ]
"""


def test_sizes_from_an_xl_cfg() -> None:
    cfg = ds.parse_xl_cfg(CFG)
    assert (cfg["name"], cfg["type"]) == ("web1", "pv")
    assert "comment" not in cfg
    assert ds.wanted_sizes(cfg) == {"memory_mib": 1024, "maxmem_mib": 2048, "vcpus": 2}
    assert ds.wanted_sizes(ds.parse_xl_cfg("memory = 512\nvcpus = 1\nmaxvcpus = 4\n")) == {
        "memory_mib": 512,
        "maxmem_mib": 512,
        "vcpus": 4,
    }


def current() -> dict[str, dict[str, Any]]:
    return ds.current_domains((DATA / "xl-list-l-guests-synthetic.json").read_text(), XL_LIST)


def want(name: str, state: str = "running", **kw: Any) -> dict[str, Any]:
    return {"name": name, "config": f"/etc/xen/{name}.cfg", "state": state, **kw}


SIZES = {"memory_mib": 1024, "maxmem_mib": 2048, "vcpus": 2}
DECISIONS = [
    ("new guest is created", want("new1"), False, "create", False),
    ("running guest as configured", want("web1", **SIZES), False, "none", False),
    (
        "running guest with more memory wanted",
        want("web1", **(SIZES | {"memory_mib": 1536})),
        False,
        "none",
        True,
    ),
    ("restart allowed", want("web1", **(SIZES | {"vcpus": 1})), True, "restart", False),
    ("restart asked but not allowed", want("web1", **SIZES, restart=True), False, "none", True),
    ("restart asked and allowed", want("web1", **SIZES, restart=True), True, "restart", False),
    ("running guest is stopped", want("web1", "stopped"), False, "shutdown", False),
    ("running guest is removed", want("web1", "absent"), False, "shutdown", False),
    ("shut down remains are destroyed", want("db1", "stopped"), False, "destroy", False),
    ("shut down remains are recreated", want("db1"), False, "recreate", False),
    ("stopped guest stays stopped", want("new1", "stopped"), False, "none", False),
    ("absent guest stays absent", want("new1", "absent"), False, "none", False),
    ("paused guest is unpaused", want("paused1"), False, "unpause", False),
    (
        "paused guest with more memory wanted is unpaused, restart reported",
        want("paused1", **(SIZES | {"memory_mib": 1536})),
        False,
        "unpause",
        True,
    ),
    ("paused guest to stop is shut down", want("paused1", "stopped"), False, "shutdown", False),
    ("unknown sizes do not ask for a restart", want("web1"), False, "none", False),
]


@pytest.mark.parametrize(
    ("wanted", "allow", "action", "restart_needed"),
    [d[1:] for d in DECISIONS],
    ids=[d[0] for d in DECISIONS],
)
def test_decisions(wanted: dict[str, Any], allow: bool, action: str, restart_needed: bool) -> None:
    domains = current()
    # web1 as it would be had a killed run made it and never unpaused it.
    domains["paused1"] = {**domains["web1"], "name": "paused1", "run_state": "paused"}
    (result,) = ds.plan_actions(domains, [wanted], allow)
    assert (result["action"], result["restart_needed"]) == (action, restart_needed)
    assert result["changed"] is (action != "none")


def test_differences_are_spelt_out() -> None:
    (result,) = ds.plan_actions(current(), [want("web1", memory_mib=1536, vcpus=1)], False)
    assert result["differences"] == ["memory 1024 MiB -> 1536 MiB", "vcpus 2 -> 1"]
    assert result["run_state"] == "running"


def test_a_guest_listed_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="domains lists web1 more than once"):
        ds.plan_actions(current(), [want("web1"), want("web1", "stopped")], False)


class FakeXl:
    """A host's domains as xl sees them, changed by the xl commands run against it."""

    def __init__(self, domains: dict[str, str], obeys_shutdown: bool = True) -> None:
        self.domains = domains
        self.obeys_shutdown = obeys_shutdown
        self.commands: list[list[str]] = []
        self.now = 0.0

    def run(self, args: list[str]) -> tuple[int, str, str]:
        self.commands.append(args)
        verb, target = args[1], args[-1]
        if verb == "list":
            if target not in self.domains:
                return 1, "", f"{target} is an invalid domain identifier (rc=-6)\n"
            row = f"{target}  3  512  1  {self.domains[target]}  1.0\n"
            return 0, "Name ID Mem VCPUs State Time(s)\n" + row, ""
        if verb == "shutdown":
            if self.obeys_shutdown:
                del self.domains[target]
            return 0, "", ""
        if verb == "destroy":
            self.domains.pop(target, None)
            return 0, "", ""
        if verb == "create":
            name = Path(target).stem
            if name in self.domains:
                return 1, "", f"libxl: error: domain with name {name} already exists\n"
            self.domains[name] = "--p---" if "-p" in args else "-b----"
            return 0, "", ""
        if verb == "unpause":
            if self.domains.get(target) != "--p---":
                return 1, "", f"libxl: error: unpausing domain {target}\n"
            self.domains[target] = "-b----"
            return 0, "", ""
        raise AssertionError(args)

    def sleep(self, seconds: float) -> None:
        self.now += seconds

    def clock(self) -> float:
        return self.now


def apply(xl: FakeXl, name: str, action: str) -> dict[str, Any]:
    result = {"name": name, "config": f"/etc/xen/{name}.cfg", "action": action}
    return ds.apply_action(result, "xl", xl.run, 10, xl.sleep, xl.clock)


def test_create_runs_xl_create_without_a_console() -> None:
    xl = FakeXl({})
    assert apply(xl, "web1", "create")["forced"] is False
    assert xl.commands == [["xl", "create", "/etc/xen/web1.cfg"]]


def test_graceful_shutdown() -> None:
    xl = FakeXl({"web1": "-b----"})
    assert apply(xl, "web1", "shutdown")["forced"] is False
    assert xl.commands == [["xl", "shutdown", "-F", "web1"], ["xl", "list", "web1"]]


def test_shutdown_that_times_out_destroys() -> None:
    xl = FakeXl({"web1": "------"}, obeys_shutdown=False)
    assert apply(xl, "web1", "shutdown")["forced"] is True
    assert ["xl", "destroy", "web1"] in xl.commands
    assert xl.now >= 10
    assert xl.domains == {}


def test_restart_shuts_down_then_creates() -> None:
    xl = FakeXl({"web1": "r-----"})
    apply(xl, "web1", "restart")
    assert [c[1] for c in xl.commands] == ["shutdown", "list", "create"]
    assert xl.domains == {"web1": "-b----"}


def test_recreate_clears_the_remains_first() -> None:
    xl = FakeXl({"web1": "---s--"})
    apply(xl, "web1", "recreate")
    assert [c[1] for c in xl.commands] == ["destroy", "list", "create"]


def test_a_failed_create_carries_xl_s_message() -> None:
    xl = FakeXl({"web1": "-b----"})
    with pytest.raises(RuntimeError, match=r"xl create /etc/xen/web1\.cfg failed with exit code 1"):
        apply(xl, "web1", "create")


# What xl printed when the fourth of four new guests was created on the busy
# bench dom0 (bookworm, Xen 4.17).
HOTPLUG_FAILURE = (
    "Parsing config from /etc/xen/web1.cfg\n"
    "libxl: error: libxl_aoutils.c:539:async_exec_timeout: killing execution of"
    " /etc/xen/scripts/block add because of timeout\n"
    "libxl: error: libxl_create.c:1672:domcreate_launch_dm: Domain 5:unable to add disk devices\n"
)


class BusyXl(FakeXl):
    """A dom0 whose first `failures` creates run out of hotplug time."""

    def __init__(self, failures: int) -> None:
        super().__init__({})
        self.failures = failures

    def run(self, args: list[str]) -> tuple[int, str, str]:
        if args[1] == "create" and self.failures:
            self.commands.append(args)
            self.failures -= 1
            return 3, "", HOTPLUG_FAILURE
        return super().run(args)


def test_a_create_that_ran_out_of_hotplug_time_is_tried_once_more() -> None:
    xl = BusyXl(failures=1)
    apply(xl, "web1", "create")
    creates = [c for c in xl.commands if c[1] == "create"]
    assert creates == [["xl", "create", "/etc/xen/web1.cfg"]] * 2
    assert xl.domains == {"web1": "-b----"}
    assert xl.now == ds.HOTPLUG_RETRY_PAUSE


def test_a_second_hotplug_timeout_fails_with_xl_s_message() -> None:
    xl = BusyXl(failures=2)
    with pytest.raises(RuntimeError, match="block add because of timeout"):
        apply(xl, "web1", "create")
    assert [c[1] for c in xl.commands].count("create") == 2
    assert xl.domains == {}


def test_other_create_failures_are_not_retried() -> None:
    xl = FakeXl({"web1": "-b----"})
    with pytest.raises(RuntimeError):
        apply(xl, "web1", "create")
    assert [c[1] for c in xl.commands].count("create") == 1


def load_module() -> Any:
    spec = importlib.util.spec_from_file_location(
        "xen_domain", ROOT / "plugins" / "modules" / "xen_domain.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_module_documentation_matches_its_argument_spec() -> None:
    module = load_module()
    doc = yaml.safe_load(module.DOCUMENTATION)
    spec = module.ARGUMENT_SPEC
    assert set(doc["options"]) == set(spec)
    for name, option in doc["options"].items():
        assert option["type"] == spec[name]["type"]
        assert option.get("default") == spec[name].get("default")
    suboptions = doc["options"]["domains"]["suboptions"]
    assert set(suboptions) == set(spec["domains"]["options"])
    for name, option in suboptions.items():
        assert option.get("default") == spec["domains"]["options"][name].get("default")
        assert option.get("choices") == spec["domains"]["options"][name].get("choices")
    yaml.safe_load(module.EXAMPLES)
    assert set(yaml.safe_load(module.RETURN)) == {"changed", "domains"}


def results(xl: FakeXl, *planned: tuple[str, str]) -> list[dict[str, Any]]:
    return [
        {
            "name": name,
            "config": f"/etc/xen/{name}.cfg",
            "action": action,
            "changed": action != "none",
            "run_state": "paused" if xl.domains.get(name) == "--p---" else "running",
        }
        for name, action in planned
    ]


def test_new_guests_are_made_paused_and_unpaused_together() -> None:
    xl = FakeXl({"db1": "-b----"})
    planned = results(xl, ("web1", "create"), ("db1", "none"), ("web2", "create"))
    done = ds.apply_all(planned, "xl", xl.run, 10, xl.sleep, xl.clock)
    assert xl.commands == [
        ["xl", "create", "-p", "/etc/xen/web1.cfg"],
        ["xl", "create", "-p", "/etc/xen/web2.cfg"],
        ["xl", "unpause", "web1"],
        ["xl", "unpause", "web2"],
    ]
    assert [r["name"] for r in done] == ["web1", "db1", "web2"]
    assert xl.domains == {"db1": "-b----", "web1": "-b----", "web2": "-b----"}


def test_a_guest_left_paused_is_unpaused_once() -> None:
    xl = FakeXl({"web1": "--p---"})
    ds.apply_all(results(xl, ("web1", "unpause")), "xl", xl.run, 10, xl.sleep, xl.clock)
    assert xl.commands == [["xl", "unpause", "web1"]]
    assert xl.domains == {"web1": "-b----"}


def test_a_paused_guest_is_unpaused_before_its_shutdown() -> None:
    xl = FakeXl({"web1": "--p---"})
    ds.apply_all(results(xl, ("web1", "shutdown")), "xl", xl.run, 10, xl.sleep, xl.clock)
    assert xl.commands[:2] == [["xl", "unpause", "web1"], ["xl", "shutdown", "-F", "web1"]]
    assert xl.domains == {}


def test_guests_made_before_a_failure_are_still_unpaused() -> None:
    xl = FakeXl({"web2": "-b----"})
    planned = results(xl, ("web1", "create"), ("web2", "create"), ("web3", "create"))
    message = r"^Domain web2: xl create -p /etc/xen/web2\.cfg"
    with pytest.raises(ds.ApplyError, match=message) as err:
        ds.apply_all(planned, "xl", xl.run, 10, xl.sleep, xl.clock)
    assert ["xl", "unpause", "web1"] in xl.commands
    assert ["xl", "create", "-p", "/etc/xen/web3.cfg"] not in xl.commands
    assert xl.domains == {"web1": "-b----", "web2": "-b----"}
    assert [r["name"] for r in err.value.done] == ["web1"]


def test_a_failed_unpause_is_reported() -> None:
    xl = FakeXl({"web1": "-b----"})
    message = r"Domain web1: xl unpause web1 failed with exit code 1"
    with pytest.raises(ds.ApplyError, match=message):
        ds.apply_all(results(xl, ("web1", "unpause")), "xl", xl.run, 10, xl.sleep, xl.clock)


MULTI_LINE_CFG = """\
name = "web1"
type = "pv"
kernel = "/var/lib/xen/boot/web1/vmlinuz"
memory = 1024
vcpus = 2
vif = [
    "mac=00:16:3E:6E:1D:7E, bridge=xenbr0",
    "mac=00:16:3e:6e:1d:7f, bridge=xenbr1"
]
disk = [
    "format=raw, vdev=xvda, access=rw, target=/var/lib/xen/images/web1,root.img",
    # a comment inside the list
    "format=raw, vdev=xvdz, access=ro, target=/var/lib/xen/seeds/web1/seed.iso"
]
"""


def test_a_config_reads_as_the_domain_xl_would_make() -> None:
    wanted = ds.wanted_config(ds.parse_xl_cfg(MULTI_LINE_CFG))
    assert wanted == {
        "memory_mib": 1024,
        "maxmem_mib": 1024,
        "vcpus": 2,
        "type": "pv",
        "kernel": "/var/lib/xen/boot/web1/vmlinuz",
        "nics": [
            {"mac": "00:16:3e:6e:1d:7e", "bridge": "xenbr0"},
            {"mac": "00:16:3e:6e:1d:7f", "bridge": "xenbr1"},
        ],
        "disks": [
            {"vdev": "xvda", "path": "/var/lib/xen/images/web1,root.img"},
            {"vdev": "xvdz", "path": "/var/lib/xen/seeds/web1/seed.iso"},
        ],
    }


def test_nics_disks_type_and_kernel_differences_are_spelt_out() -> None:
    running = current()["web1"]
    wanted = {
        "type": "pvh",
        "kernel": "/usr/lib/grub-xen/grub-i386-xen_pvh.bin",
        "nics": [
            {"mac": "00:16:3e:6e:1d:7e", "bridge": "xenbr1"},
            {"mac": "00:16:3e:00:00:01", "bridge": "xenbr0"},
        ],
        "disks": [{"vdev": "xvda", "path": "/var/lib/xen/images/web1-root.img"}],
    }
    assert ds.differences(running, wanted) == [
        "type pv -> pvh",
        "kernel /usr/lib/grub-xen/grub-x86_64-xen.bin -> /usr/lib/grub-xen/grub-i386-xen_pvh.bin",
        "nic 0 mac=00:16:3e:6e:1d:7e bridge=xenbr0 -> mac=00:16:3e:6e:1d:7e bridge=xenbr1",
        "nic 1 added (mac=00:16:3e:00:00:01 bridge=xenbr0)",
        "disk 1 removed (xvdz=/var/lib/xen/seeds/web1/seed.iso)",
    ]
    # Reported at every run, not only the one that wrote the config.
    for _run in range(2):
        (result,) = ds.plan_actions(current(), [want("web1", **wanted)], False)
        assert (result["action"], result["restart_needed"]) == ("none", True)
    (result,) = ds.plan_actions(current(), [want("web1", **wanted)], True)
    assert (result["action"], result["restart_needed"]) == ("restart", False)


def test_a_domain_only_xl_list_shows_has_no_differences() -> None:
    domains = ds.current_domains("[]", XL_LIST)
    wanted = ds.wanted_config(ds.parse_xl_cfg(MULTI_LINE_CFG))
    assert ds.differences(domains["web1"], wanted) == []
