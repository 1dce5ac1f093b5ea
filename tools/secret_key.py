"""The embedded default's SECRET_KEY: generated once by `make run` and kept in var/, readable
by its owner only, so that console sessions survive a restart. Production sets SECRET_KEY."""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def embedded_secret_key(path: Path) -> tuple[str, bool]:
    """The key kept at `path`, made there first if there is none; and whether it was made now."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip(), False
    key = secrets.token_urlsafe(48)
    with os.fdopen(descriptor, "w") as kept:
        kept.write(key + "\n")
    return key, True
