"""The collection as a repository of a user's own gets it, without a VM.

tools/install-collection.sh builds the collection from the checkout and installs it
into an empty folder. Ansible then runs from examples/iac-repo, whose ansible.cfg
knows nothing of this checkout, with ANSIBLE_COLLECTIONS_PATH naming only that
folder: syntax checks of the user's site.yml and of the collection's playbooks by
FQCN, the inventory with the guests of the collection's inventory plugin, and
ansible-doc of every module, filter and inventory plugin the installed collection
holds (so a new plugin without documentation fails here).

The Ansible commands are independent and each costs about a second of Python start-up,
so they all start at once when the collection is installed, and one ansible-playbook
run checks all of the collection's playbooks; the file takes about 7 s on two CPUs.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
IAC_REPO = ROOT / "examples" / "iac-repo"
FQCN = "xen_lab.dom0"
# Ansible's tools, from the Python that runs the tests (the project's .venv).
BIN = Path(sys.executable).parent
# Playbooks the README names as stages a user may run alone, by FQCN.
STAGES = ("preflight", "hypervisor", "network", "guests", "summary")
# Every playbook of the collection, as a user names it.
PLAYBOOKS = sorted(path.stem for path in (ROOT / "playbooks").glob("*.yml"))
# Plugin folders and the ansible-doc type of their plugins; module_utils hold no plugin.
DOC_TYPES = {"modules": "module", "inventory": "inventory", "filter": "filter", "test": "test"}
# Plugin types whose files may each hold several plugins, named in a class's dict.
JINJA_CLASSES = {"filter": ("FilterModule", "filters"), "test": ("TestModule", "tests")}
# Checkout paths that galaxy.yml's build_ignore keeps out of the collection.
NOT_SHIPPED = (
    "tests",
    ".venv",
    "collections",
    "tools",
    "examples",
    "extensions/molecule",
    "requirements.txt",
)


def jinja_plugin_names(path: Path, class_name: str, method: str) -> list[str]:
    """The names a filter or test plugin file returns from its class's method, read from
    the source as Ansible's loader would get them (a literal dict)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == class_name:
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and item.name == method:
                    returned = [n.value for n in ast.walk(item) if isinstance(n, ast.Return)]
                    if len(returned) == 1 and isinstance(returned[0], ast.Dict):
                        return [ast.literal_eval(key) for key in returned[0].keys if key]
    raise AssertionError(f"{path}: no {class_name}.{method}() returning a literal dict")


def collection_plugins(collection: Path) -> dict[str, list[str]]:
    """ansible-doc type -> FQCNs of every plugin in the installed collection's files."""
    found: dict[str, list[str]] = {}
    for folder in sorted(p for p in (collection / "plugins").iterdir() if p.is_dir()):
        if folder.name in ("module_utils", "__pycache__"):
            continue
        assert folder.name in DOC_TYPES, f"plugins/{folder.name}: teach this test its doc type"
        names: list[str] = []
        for path in sorted(folder.glob("*.py")):
            if path.name == "__init__.py":
                continue
            if folder.name in JINJA_CLASSES:
                names += jinja_plugin_names(path, *JINJA_CLASSES[folder.name])
            else:
                names.append(path.stem)
        found[DOC_TYPES[folder.name]] = sorted(f"{FQCN}.{name}" for name in names)
    return found


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The collections folder the collection was installed into, and nothing else."""
    assert not (IAC_REPO / "collections" / "ansible_collections" / "xen_lab").exists(), (
        "examples/iac-repo/collections holds xen_lab: the tests would not use the build"
    )
    dest = tmp_path_factory.mktemp("collections")
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    subprocess.run(
        [str(ROOT / "tools" / "install-collection.sh"), str(dest)],
        env=env,
        check=True,
        capture_output=True,
    )
    return dest


@pytest.fixture(scope="module")
def collection(installed: Path) -> Path:
    return installed / "ansible_collections" / "xen_lab" / "dom0"


@pytest.fixture(scope="module")
def plugins(collection: Path) -> dict[str, list[str]]:
    return collection_plugins(collection)


@pytest.fixture(scope="module")
def ansible(installed: Path, plugins: dict[str, list[str]]) -> dict[str, Future]:
    """Every Ansible command of this file, started at once from the user's repository."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("ANSIBLE_")}
    env.update(
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        ANSIBLE_CONFIG=str(IAC_REPO / "ansible.cfg"),
        ANSIBLE_COLLECTIONS_PATH=str(installed),
        ANSIBLE_NOCOLOR="1",
        PYTHONWARNINGS="ignore",
    )
    commands = {
        "site.yml": ["ansible-playbook", "--syntax-check", "site.yml"],
        "inventory": ["ansible-inventory", "--list"],
        # One run checks them all and prints "playbook: <path>" for each one that passed.
        "playbooks": ["ansible-playbook", "--syntax-check", *(f"{FQCN}.{n}" for n in PLAYBOOKS)],
        **{
            f"doc {doc_type}": ["ansible-doc", "--json", "-t", doc_type, *names]
            for doc_type, names in plugins.items()
        },
    }

    def run(argv: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BIN / argv[0]), *argv[1:]],
            cwd=IAC_REPO,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )

    with ThreadPoolExecutor(max_workers=len(commands)) as pool:
        return {key: pool.submit(run, argv) for key, argv in commands.items()}


def finished(ansible: dict[str, Future], key: str) -> subprocess.CompletedProcess[str]:
    done = ansible[key].result()
    assert done.returncode == 0, f"{' '.join(done.args)}:\n{done.stdout}\n{done.stderr}"
    return done


@pytest.mark.parametrize("path", NOT_SHIPPED)
def test_checkout_files_are_not_in_the_collection(collection: Path, path: str) -> None:
    assert (collection / "MANIFEST.json").is_file()
    assert not (collection / path).exists(), f"{path} is in the built collection"
    assert not (collection / path).is_symlink(), f"{path} is in the built collection"


def test_no_molecule_scenario_is_in_the_collection(collection: Path) -> None:
    assert list(collection.glob("roles/*/molecule")) == []


def test_collection_carries_its_ee_system_packages(collection: Path) -> None:
    """ansible-builder installs what the installed collection's bindep.txt lists."""
    assert "openssh-client" in (collection / "bindep.txt").read_text(encoding="utf-8")


def test_stages_are_playbooks_of_the_collection() -> None:
    assert set(STAGES) | {"site"} <= set(PLAYBOOKS)


def test_users_site_yml_passes_syntax_check(ansible: dict[str, Future]) -> None:
    finished(ansible, "site.yml")


def test_collection_playbooks_pass_syntax_check_by_fqcn(
    ansible: dict[str, Future], collection: Path
) -> None:
    """One ansible-playbook run: a playbook that fails stops it, and its error names the file."""
    done = finished(ansible, "playbooks")
    for name in PLAYBOOKS:
        assert f"playbook: {collection / 'playbooks' / name}.yml" in done.stdout, done.stdout


def test_inventory_plugin_lists_the_guests_of_the_users_dom0s(ansible: dict[str, Future]) -> None:
    inventory = json.loads(finished(ansible, "inventory").stdout)
    hosts = yaml.safe_load((IAC_REPO / "inventory" / "hosts.yml").read_text(encoding="utf-8"))
    dom0s = hosts["all"]["children"]["xen_dom0s"]["hosts"]
    settings = (IAC_REPO / "inventory" / "group_vars" / "xen_dom0s" / "guests.yml").read_text(
        encoding="utf-8"
    )
    running = [
        guest["name"]
        for guest in yaml.safe_load(settings)["xen_guests_list"]
        if guest.get("state", "running") == "running"
    ]
    assert running, "examples/iac-repo has no running guest to look for"
    assert sorted(inventory["xen_guests"]["hosts"]) == sorted(running)
    for name in running:
        # Values from an inventory plugin are untrusted: {"__ansible_unsafe": value}.
        guest = {
            key: value.get("__ansible_unsafe", value) if isinstance(value, dict) else value
            for key, value in inventory["_meta"]["hostvars"][name].items()
        }
        dom0 = guest["xen_guest_dom0"]
        assert dom0 in dom0s
        assert "ProxyCommand" in guest["ansible_ssh_common_args"]
        assert f"@{dom0s[dom0]['ansible_host']}" in guest["ansible_ssh_common_args"]


@pytest.mark.parametrize("doc_type", sorted(set(DOC_TYPES.values()) - {"test"}))
def test_every_plugin_has_docs(
    ansible: dict[str, Future], plugins: dict[str, list[str]], installed: Path, doc_type: str
) -> None:
    names = plugins.get(doc_type)
    assert names, f"the collection has no {doc_type} plugin"
    docs = json.loads(finished(ansible, f"doc {doc_type}").stdout)
    assert sorted(docs) == names
    for name in names:
        doc = docs[name]["doc"]
        assert doc["short_description"] and doc["description"], name
        assert docs[name]["examples"], f"{name} has no EXAMPLES"
        assert Path(doc["filename"]).is_relative_to(installed), doc["filename"]
