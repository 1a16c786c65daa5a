#!/usr/bin/env python3
"""Guest-provisioning benchmark: the xen_guests role against xen-create-image.

Boots one bookworm lab VM with a blank data disk, makes it a dom0 with the
project's playbooks (tests/bench/dom0.yml), then measures on the dom0's own
clock how long new PV guests take until they answer ping: through
playbooks/guests.yml, and the old manual way (xen-create-image, then xl
create). It also times no-op re-runs of playbooks/guests.yml with 1 and with
20 guests defined, which must report changed=0. Each number is printed as it
is taken; the table goes to tests/bench/RESULTS.md. Run it with `make bench`.
It prints numbers; it is not a test.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "lab"))

from xenlab import cli, config, image, vm  # noqa: E402

BENCH = REPO / "tests" / "bench"
INVENTORY = BENCH / "inventory"
RESULTS = BENCH / "RESULTS.md"
HARNESS = REPO / "lab" / "xen-lab"
GUESTS = "playbooks/guests.yml"
VM_NAME = "bench"
DATA_DISK_GIB = 40
GATEWAY = "10.0.2.2"
GOLDEN_DIR = "/var/lib/xen/golden"
# A folder on the data disk, which is mounted at xen_guests_disk_dir.
MANUAL_DIR = "/var/lib/xen/images/xen-tools"
PING_OUT = "/run/xen-bench-ping.txt"
# How long guests may take to answer after the command that made them ended.
ANSWER_TIMEOUT = 900.0
# The manual way takes about 20 minutes a guest under emulation: by default
# only its 1-guest row runs.
MANUAL_COUNTS = {int(n) for n in os.environ.get("XEN_BENCH_MANUAL_COUNTS", "1").split(",")}

Guest = dict[str, object]


class BenchError(RuntimeError):
    """A step of the bench failed; the message says which and where to look."""


@dataclass
class Row:
    what: str
    value: str
    method: str


def guest(name: str, address: str | None = None, state: str = "running") -> Guest:
    """A PV guest from the trixie golden image, as in the xen_guests scenario."""
    entry: Guest = {
        "name": name,
        "type": "pv",
        "memory": "256M",
        "disks": [{"size": "2G"}],
        "os": {"release": "trixie"},
        "state": state,
    }
    if address is not None:
        entry["interfaces"] = [{"ipv4": {"address": f"{address}/24", "gateway": GATEWAY}}]
    return entry


def purged(guests: list[Guest]) -> list[Guest]:
    return [{**g, "state": "absent", "purge": True} for g in guests]


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'s' * (count != 1)}"


def until_ping(count: int) -> str:
    if count == 1:
        return "1 new guest, until it answers ping"
    return f"{count} new guests, until all answer ping"


def changed_count(output: str) -> int:
    """The sum of changed= over the PLAY RECAP of an ansible-playbook run."""
    counts = re.findall(r"^\S+\s+:\s+ok=\d+\s+changed=(\d+)", output, re.MULTILINE)
    if not counts:
        raise BenchError("no PLAY RECAP in the ansible-playbook output")
    return sum(int(c) for c in counts)


def host_cpu() -> tuple[str, int]:
    """The CPU model and the number of logical CPUs of this machine."""
    text = Path("/proc/cpuinfo").read_text()
    models = re.findall(r"^model name\s*:\s*(.+)$", text, re.MULTILINE)
    cpus = len(re.findall(r"^processor\s*:", text, re.MULTILINE))
    return (models[0].strip() if models else "unknown"), cpus


def first_line(argv: list[str]) -> str:
    out = subprocess.run(argv, capture_output=True, text=True, check=False).stdout
    return out.splitlines()[0].strip() if out else "unknown"


class Bench:
    def __init__(self) -> None:
        self.cache = config.cache_root()
        self.logs = self.cache / "bench" / datetime.now().strftime("%Y%m%d-%H%M%S")
        self.logs.mkdir(parents=True, exist_ok=True)
        self.rows: list[Row] = []
        self.facts: dict[str, str] = {}
        self.failed: list[str] = []
        self.vm: dict[str, Any] = {}
        self.steps = 0

    # -- plumbing ---------------------------------------------------------

    def record(self, what: str, value: float | str, method: str) -> None:
        shown = f"{value:.1f}" if isinstance(value, float) else value
        self.rows.append(Row(what, shown, method))
        unit = " s" if isinstance(value, float) else ""
        print(f"bench: {what}: {shown}{unit}", flush=True)
        # Rewritten after every row: a bench that stops early keeps what it measured.
        RESULTS.write_text(self.report(done=False))

    def run(self, name: str, argv: list[str]) -> tuple[float, str]:
        """Run a command with its output in a log file; seconds and output."""
        self.steps += 1
        log = self.logs / f"{self.steps:02d}-{name}.log"
        print(f"bench: {name} (log: {log})", flush=True)
        start = time.monotonic()
        with log.open("w") as out:
            code = subprocess.call(
                argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd=REPO
            )
        elapsed = time.monotonic() - start
        output = log.read_text(errors="replace")
        if code != 0:
            tail = "\n".join(output.splitlines()[-30:])
            raise BenchError(f"{name} failed with exit {code}; the end of {log}:\n{tail}")
        return elapsed, output

    def ssh_argv(self, command: str) -> list[str]:
        return vm.ssh_command(int(self.vm["ssh_port"]), Path(self.vm["key"]), command)

    def ssh(self, command: str) -> str:
        proc = subprocess.run(
            self.ssh_argv(command),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if proc.returncode != 0:
            raise BenchError(f"on the dom0, `{command}` failed: {proc.stderr.strip()}")
        return proc.stdout.strip()

    def playbook_argv(self, name: str, playbook: str, guests: list[Guest] | None) -> list[str]:
        argv = ["ansible-playbook", "-i", str(INVENTORY), playbook]
        if guests is not None:
            extra = self.logs / f"{name}.json"
            extra.write_text(json.dumps({"xen_guests_list": guests}, indent=1))
            argv += ["-e", f"@{extra}"]
        return argv

    def playbook(
        self, name: str, playbook: str, guests: list[Guest] | None = None
    ) -> tuple[float, int]:
        elapsed, output = self.run(name, self.playbook_argv(name, playbook, guests))
        return elapsed, changed_count(output)

    def time_to_ping(
        self, name: str, addresses: list[str], argv: list[str]
    ) -> tuple[dict[str, float], float]:
        """Seconds from just before `argv` starts until each address first answers.

        The pinger runs on the dom0 and stamps its start before the command
        starts, so both ends are read from the dom0's clock.
        """
        self.ssh(
            f"systemctl stop xen-bench-ping 2>/dev/null; rm -f {PING_OUT}; "
            "systemd-run --quiet --collect --unit=xen-bench-ping "
            f"/usr/local/sbin/xen-bench-ping {PING_OUT} {' '.join(addresses)} && "
            f"until [ -s {PING_OUT} ]; do sleep 0.05; done"
        )
        try:
            elapsed, _ = self.run(name, argv)
            deadline = time.monotonic() + ANSWER_TIMEOUT
            while True:
                stamps = dict(
                    line.split()
                    for line in self.ssh(f"cat {PING_OUT}").splitlines()
                    if len(line.split()) == 2
                )
                missing = [a for a in addresses if a not in stamps]
                if not missing:
                    start = float(stamps["start"])
                    return {a: float(stamps[a]) - start for a in addresses}, elapsed
                if time.monotonic() > deadline:
                    raise BenchError(
                        f"{name}: no ping answer from {', '.join(missing)} within "
                        f"{ANSWER_TIMEOUT:.0f} s after the command ended, which ran {elapsed:.0f} s"
                    )
                time.sleep(2)
        finally:
            self.ssh("systemctl stop xen-bench-ping 2>/dev/null || true")

    # -- the steps --------------------------------------------------------

    def boot(self) -> None:
        running = vm.load_state(self.cache, VM_NAME)
        if running is not None and vm.running(running):
            # `up` would reuse it, and the bench needs a fresh dom0.
            raise BenchError(f"a VM named {VM_NAME} is running; stop it first (xen-lab down)")
        argv = [
            sys.executable, str(HARNESS), "up", "--name", VM_NAME, "--release", "bookworm",
            "--data-disk-gib", str(DATA_DISK_GIB), "--inventory", str(INVENTORY / "hosts.yml"),
        ]  # fmt: skip
        proc = subprocess.run(argv, stdout=subprocess.PIPE, text=True, check=False)
        if proc.returncode != 0:
            raise BenchError("the bench VM did not come up (see the harness's messages above)")
        # The JSON is the last line; a base image build may print before it.
        self.vm = json.loads(proc.stdout.strip().splitlines()[-1])
        self.record(
            "Lab VM boots until SSH answers",
            float(self.vm["boot_seconds"]),
            "`xen-lab up --release bookworm --data-disk-gib "
            f"{DATA_DISK_GIB}`: overlay of the cached base image; the harness's own timer.",
        )

    def dom0(self) -> None:
        elapsed, _ = self.playbook("dom0", "tests/bench/dom0.yml")
        self.record(
            "dom0 converge: preflight, hypervisor (with its reboot), network, bench setup",
            elapsed,
            "`tests/bench/dom0.yml`: the stage playbooks, then ext4 on /dev/vdb mounted at "
            "the guests' disk folder, the cached golden images copied in; wall time.",
        )
        versions = "cat /etc/debian_version; uname -r; xl info | sed -n 's/^xen_version *: //p'"
        info = [*self.ssh(versions).splitlines(), "unknown", "unknown", "unknown"]
        self.facts.update(debian=info[0], kernel=info[1], xen=info[2])

    def first_guests_run(self) -> None:
        before = set(self.ssh(f"ls -1 {GOLDEN_DIR}").split())
        warmup = [guest("warmup", state="stopped")]
        elapsed, _ = self.playbook("guests-first-run", GUESTS, warmup)
        self.record(
            "First guests run on the fresh dom0 (one stopped guest)",
            elapsed,
            f"`{GUESTS}` with one stopped guest: the role's tools, the golden image and "
            "one disk copy, so the rows below time guests only; wall time.",
        )
        images = self.ssh(f"grep -H '^seconds=' {GOLDEN_DIR}/*/recipe || true").splitlines()
        built = {Path(p).parent.name: s for p, _, s in (i.partition(":seconds=") for i in images)}
        new = sorted(set(built) - before)
        if new:
            self.facts["golden"] = f"built in the VM by the role: {new[0]} in {built[new[0]]} s"
        else:
            self.facts["golden"] = f"taken from the lab cache: {', '.join(sorted(before))}"
        self.record(
            "Golden image",
            self.facts["golden"],
            f"what {GOLDEN_DIR} held before and after the first guests run; build time "
            "from the image's recipe file.",
        )
        self.playbook("guests-remove-warmup", GUESTS, purged(warmup))

    def role_guests(self, pairs: list[tuple[str, str]], noop: bool = False) -> None:
        guests = [guest(n, a) for n, a in pairs]
        addresses = [a for _, a in pairs]
        count = len(guests)
        name = f"guests-role-{count}"
        answers, elapsed = self.time_to_ping(
            name, addresses, self.playbook_argv(name, GUESTS, guests)
        )
        self.record(
            f"xen_guests role: {until_ping(count)}",
            max(answers.values()),
            f"pinger on the dom0 started just before `ansible-playbook {GUESTS}`, until the "
            f"last first reply ({self.answers(answers)}); the run itself ended after "
            f"{elapsed:.0f} s, once SSH answered.",
        )
        if noop:
            self.noop(guests, plural(count, "running guest"))
        self.playbook(f"{name}-purge", GUESTS, purged(guests))

    def noop(self, guests: list[Guest], what: str) -> None:
        name = f"guests-noop-{len(guests)}"
        elapsed, changed = self.playbook(name, GUESTS, guests)
        if changed:
            raise BenchError(
                f"the re-run of {GUESTS} with {what} reported changed={changed}, "
                f"expected 0; see {self.logs}"
            )
        self.record(
            f"No-op re-run of {GUESTS}, {plural(len(guests), 'guest')} defined",
            elapsed,
            f"the same list again ({what}); changed=0 asserted; wall time.",
        )

    def manual(self) -> None:
        elapsed, _ = self.playbook("xen-tools", "tests/bench/manual.yml")
        self.facts["xen-tools"] = self.ssh("dpkg-query -W -f='${Version}' xen-tools")
        self.record(
            "apt-get install xen-tools (not part of the rows below)",
            elapsed,
            "`tests/bench/manual.yml`: apt with recommends, as apt-get installs it, with "
            "the dom0's initramfs update put off (it takes over 10 minutes here); wall time.",
        )
        sets = {1: [("manual1", "10.0.2.65")]}
        sets[4] = [(f"manual4-{i}", f"10.0.2.{65 + i}") for i in (1, 2, 3, 4)]
        for count in sorted(sets):
            if count not in MANUAL_COUNTS:
                self.record(
                    f"xen-create-image + xl create: {until_ping(count)}",
                    "not run",
                    f"one guest after another, so about {count} times the row above; "
                    f"`XEN_BENCH_MANUAL_COUNTS=1,{count} make bench` measures it.",
                )
                continue
            guests = sets[count]
            loop = ["/usr/local/sbin/xen-bench-manual", image.mirror(), MANUAL_DIR]
            command = shlex.join(loop + [f"{n}={a}" for n, a in guests])
            what = f"xen-create-image + xl create: {until_ping(count)}"
            try:
                answers, elapsed = self.time_to_ping(
                    f"manual-{count}", [a for _, a in guests], self.ssh_argv(command)
                )
            except BenchError as exc:
                print(f"bench: {exc}", file=sys.stderr, flush=True)
                self.failed.append(what)
                self.record(
                    what, "failed", f"{exc}; see the logs in the lab cache, bench/{self.logs.name}"
                )
                continue
            finally:
                self.ssh("; ".join(f"xl destroy {n} 2>/dev/null" for n, _ in guests) + "; true")
            self.record(
                what,
                max(answers.values()),
                "pinger started just before the admin's loop on the dom0 (xen-create-image "
                "--install-method=debootstrap --dist=bookworm --size=2G --memory=256M --ip "
                "--gateway --netmask --bridge=xenbr0 --dir --mirror --role=bench-enx0, then "
                f"`xl create`, {'one guest after another' if count > 1 else 'once'}; "
                "xen-tools 4.9.2 boots bookworm guests with pygrub, so it installs "
                "linux-image-amd64 and grub-legacy in each), until "
                f"the last first reply ({self.answers(answers)}); the loop ended after "
                f"{elapsed:.0f} s; guests destroyed afterwards.",
            )

    def twenty(self) -> None:
        guests = [guest("noop01", "10.0.2.60")]
        guests += [guest(f"noop{i:02d}", state="stopped") for i in range(2, 21)]
        elapsed, _ = self.playbook("guests-20-first", GUESTS, guests)
        self.record(
            f"First run of {GUESTS}, 20 guests defined (1 running, 19 stopped)",
            elapsed,
            "20 new guests: 20 disk copies and seeds, one guest started and waited for; wall time.",
        )
        self.noop(guests, "1 running and 19 stopped guests")

    @staticmethod
    def answers(answers: dict[str, float]) -> str:
        return ", ".join(f"{a} at {s:.0f} s" for a, s in answers.items())

    # -- results ----------------------------------------------------------

    def report(self, done: bool = True) -> str:
        model, cpus = host_cpu()
        lines = [
            "# Guest provisioning benchmark",
            "",
            "Written by `make bench` (`tests/bench/guests.py`), which overwrites it.",
            "Each guest is PV, 1 vCPU, 256 MiB, a 2 GiB root disk and a static IPv4",
            "address on xenbr0 (10.0.2.60-69), on a dom0 that runs inside QEMU.",
            "",
            f"- Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
            f"- Machine: {model}, {cpus} CPUs",
            f"- Lab VM: {first_line(['qemu-system-x86_64', '--version'])}, accelerator "
            f"{self.vm.get('accel')} (CPU `{self.vm.get('cpu')}`), 2 vCPUs, 3072 MiB",
            f"- dom0: Debian {self.facts.get('debian')}, kernel {self.facts.get('kernel')}, "
            f"Xen {self.facts.get('xen')}, dom0_mem 1 GiB; xen-tools "
            f"{self.facts.get('xen-tools')}",
            f"- Controller: {first_line(['ansible-playbook', '--version'])}, "
            f"Python {sys.version.split()[0]}",
            "",
            "| measurement | seconds | method |",
            "|---|---|---|",
        ]
        lines += [f"| {r.what} | {r.value} | {r.method} |" for r in self.rows]
        if not done:
            lines += ["", "The run was still going, or stopped, after the last row above."]
        return "\n".join(lines) + "\n"

    def run_all(self) -> None:
        self.boot()
        self.dom0()
        self.first_guests_run()
        self.role_guests([("role1", "10.0.2.60")], noop=True)
        self.role_guests([(f"role4-{i}", f"10.0.2.{60 + i}") for i in (1, 2, 3, 4)])
        self.twenty()
        self.manual()


def main() -> int:
    if cli.OWNER_ENV not in os.environ:
        # Under the harness's supervisor the VM dies with the bench, however it ends.
        here = str(Path(__file__).resolve())
        os.execv(sys.executable, [sys.executable, str(HARNESS), "run", "--", sys.executable, here])
    os.environ["ANSIBLE_CONFIG"] = str(REPO / "ansible.cfg")
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    bench = Bench()
    try:
        bench.run_all()
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr, flush=True)
        return 1  # the supervisor shows the VM's console and stops it
    subprocess.run([sys.executable, str(HARNESS), "down", "--name", VM_NAME], check=False)
    table = bench.report()
    RESULTS.write_text(table)
    print(table, flush=True)
    if bench.failed:
        print(f"bench: failed: {'; '.join(bench.failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
