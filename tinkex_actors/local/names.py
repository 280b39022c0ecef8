"""The one gate between a name in a request and the server's data directory.

Every id or name that becomes part of a path (training run ids, checkpoint names) passes
`check_component`, and every path built from them passes `inside` after resolution, so neither
`..`, `.`, a separator, an encoded separator decoded twice, nor a symlink planted in the data
directory can make the server read, write or delete anything outside it.
"""

from __future__ import annotations

import re
from pathlib import Path

__all__ = ["COMPONENT_RULE", "OutsideDataDirError", "check_component", "inside"]

_COMPONENT_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
COMPONENT_RULE = (
    "1-128 letters, digits, '.', '_', ':' or '-', starting with a letter or digit, without '..'"
)


class OutsideDataDirError(ValueError):
    """A path resolved outside the data directory (a symlink, or a name that slipped through)."""


def check_component(field: str, value: object) -> str:
    """`value` if it is safe as one path component; ValueError naming the field otherwise."""
    if not isinstance(value, str) or not _COMPONENT_RE.fullmatch(value) or ".." in value:
        raise ValueError(f"{field} must be {COMPONENT_RULE}; got {value!r}")
    return value


def inside(root: Path, path: Path) -> Path:
    """`path` if it resolves (symlinks followed) to `root` or below; OutsideDataDirError else."""
    resolved_root = root.resolve()
    if not path.resolve().is_relative_to(resolved_root):
        raise OutsideDataDirError(
            f"{path.relative_to(root) if path.is_relative_to(root) else path.name} "
            "resolves outside the server's data directory; refusing it"
        )
    return path
