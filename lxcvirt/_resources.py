"""Where the shipped ``templates/`` and ``schemas/`` folders are (cheap to import)."""

from __future__ import annotations

from pathlib import Path


def resource_dir(name: str) -> Path:
    """``templates`` or ``schemas``: inside the installed package, or the source tree's."""
    here = Path(__file__).resolve().parent
    for candidate in (here / name, here.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"lxcvirt is installed without its {name}/ folder")
