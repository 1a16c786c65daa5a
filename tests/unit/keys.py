"""Real public keys by type, made by ssh-keygen (tests/unit/data/authorized_keys)."""

from __future__ import annotations

from pathlib import Path

KEYS: dict[str, str] = {
    line.split()[0]: line
    for line in (Path(__file__).parent / "data" / "authorized_keys").read_text().splitlines()
    if line and not line.startswith("#")
}
ED25519 = KEYS["ssh-ed25519"]
