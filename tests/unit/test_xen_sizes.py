"""Tests for the shared size parser and its Jinja filter xen_size_mib."""

import re

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.xen_lab.dom0.plugins.filter.xen_sizes import FilterModule
from ansible_collections.xen_lab.dom0.plugins.module_utils.xen_sizes import (
    SIZE_ERROR,
    parse_size_mib,
)


@pytest.mark.parametrize(
    ("value", "mib"),
    [
        (512, 512),
        (1, 1),
        ("1024", 1024),
        ("512M", 512),
        ("512m", 512),
        ("512MiB", 512),
        ("512mib", 512),
        ("4G", 4096),
        ("4g", 4096),
        ("4GiB", 4096),
        ("4GIB", 4096),
        ("1T", 1024 * 1024),
        ("1TiB", 1024 * 1024),
        ("1.5G", 1536),
        ("0.5G", 512),
        (" 2G ", 2048),
        ("2 GiB", 2048),
    ],
)
def test_accepted_sizes(value: str | int, mib: int) -> None:
    assert parse_size_mib(value) == mib


@pytest.mark.parametrize(
    "value",
    [
        0,
        -1,
        "0",
        "0M",
        "-512M",
        "1.1G",  # 1126.4 MiB
        "0.5M",
        "1.5",
        "",
        "  ",
        "junk",
        "G",
        "4GB",  # decimal units are ambiguous, not guessed
        "4K",
        "1e3",
        "4G4",
        True,
        1.5,
        None,
    ],
)
def test_rejected_sizes_name_the_value_and_the_forms(value: object) -> None:
    with pytest.raises(ValueError) as excinfo:
        parse_size_mib(value)  # type: ignore[arg-type]
    assert str(excinfo.value) == SIZE_ERROR.format(value=value)


def test_error_message_wording() -> None:
    with pytest.raises(ValueError) as excinfo:
        parse_size_mib("4GB")
    assert str(excinfo.value) == (
        "Invalid size '4GB': use a whole number of MiB (1024) or a number with a unit"
        " M, MiB, G, GiB, T or TiB (512M, 4G, 1.5GiB) that comes to a positive whole number"
        " of MiB."
    )


def test_filter_returns_mib() -> None:
    xen_size_mib = FilterModule().filters()["xen_size_mib"]
    assert xen_size_mib("2G") == 2048


def test_filter_raises_filter_error_with_the_same_message() -> None:
    xen_size_mib = FilterModule().filters()["xen_size_mib"]
    with pytest.raises(AnsibleFilterError, match=re.escape(SIZE_ERROR.format(value="0G"))):
        xen_size_mib("0G")


def test_filter_error_names_the_variable() -> None:
    xen_size_mib = FilterModule().filters()["xen_size_mib"]
    message = "xen_preflight_dom0_mem: " + SIZE_ERROR.format(value="4GB")
    with pytest.raises(AnsibleFilterError, match=re.escape(message)):
        xen_size_mib("4GB", "xen_preflight_dom0_mem")
