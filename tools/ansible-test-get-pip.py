"""Stand-in for the get-pip.py that ansible-test bootstraps pip with.

ansible-test makes each sanity test's virtual environment without pip, then
runs get-pip.py from https://ci-files.testing.ansible.com, which this
project's CI cannot reach (only PyPI is). tools/sanity.sh puts this file where
ansible-test caches that script (~/.ansible/test/cache/get_pip_<version>.py)
when it is not there yet. It does what get-pip.py does, with the pip wheel
that Python ships for ensurepip instead of the copy get-pip.py embeds:
``pip install --upgrade --force-reinstall`` of the arguments ansible-test
passes (its pinned ``pip==<version>``, from PyPI).
"""

from __future__ import annotations

import ensurepip
import sys
from pathlib import Path

# get-pip.py's own options: it adds setuptools and wheel unless told not to,
# and ansible-test always tells it not to.
GET_PIP_OPTIONS = ("--no-setuptools", "--no-wheel")


def bundled_pip() -> Path:
    """The pip wheel that comes with this Python (Debian keeps it in python-wheels)."""
    folders = [Path(ensurepip.__file__).parent / "_bundled", Path("/usr/share/python-wheels")]
    wheels = sorted(wheel for folder in folders for wheel in folder.glob("pip-*.whl"))
    if not wheels:
        sys.exit(f"no pip wheel for ensurepip in {' or '.join(map(str, folders))}")
    return wheels[-1]


def main() -> None:
    sys.path.insert(0, str(bundled_pip()))
    from pip._internal.cli.main import main as pip_main

    args = [arg for arg in sys.argv[1:] if arg not in GET_PIP_OPTIONS]
    sys.exit(pip_main(["install", "--upgrade", "--force-reinstall", *args]))


if __name__ == "__main__":
    main()
