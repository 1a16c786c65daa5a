"""Tests for the shared size parser the planners use."""

import pytest

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
