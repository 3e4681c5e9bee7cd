"""Index names in a cluster follow the service's rule (they become folder names on every shard)."""

from __future__ import annotations

import re

NAME_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"


def check_index_name(name: str) -> None:
    if not isinstance(name, str) or not re.match(NAME_PATTERN, name):
        raise ValueError(f"index names must match {NAME_PATTERN}, got {name!r}")
