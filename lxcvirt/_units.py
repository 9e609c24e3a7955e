"""Sizes with units, read the way libvirt reads them (docs: formatdomain "Memory Allocation").

libvirt's scaled integers: ``b``/``bytes``; ``KB``, ``MB``, ``GB``, ``TB`` are powers of 1000;
``k``/``KiB``, ``M``/``MiB``, ``G``/``GiB``, ``T``/``TiB`` are powers of 1024.  A bare number
is in KiB, the unit libvirt assumes for ``<memory>``.
"""

from __future__ import annotations

import re

_FACTORS: dict[str, int] = {
    "b": 1,
    "bytes": 1,
    "kb": 1000,
    "k": 1024,
    "kib": 1024,
    "mb": 1000**2,
    "m": 1024**2,
    "mib": 1024**2,
    "gb": 1000**3,
    "g": 1024**3,
    "gib": 1024**3,
    "tb": 1000**4,
    "t": 1024**4,
    "tib": 1024**4,
    "pb": 1000**5,
    "p": 1024**5,
    "pib": 1024**5,
    "eb": 1000**6,
    "e": 1024**6,
    "eib": 1024**6,
}
#: The largest size libvirt stores (in KiB): 2^53 - 1, just under 8 EiB; above it says
#: "numerical overflow: value too large".
MAX_KIB = 2**53 - 1

_SIZE = re.compile(r"^\s*(\d+)\s*([A-Za-z]*)\s*$")


class UnitError(ValueError):
    pass


def parse_kib(value: object) -> int:
    """Return ``value`` in KiB, rounding bytes up to whole KiB as libvirt does.

    Accepts an int (KiB) or a string such as ``"512M"``, ``"1GiB"``, ``"1000000 KB"``.
    """
    if isinstance(value, bool):
        raise UnitError("expected a size such as 512MiB or 1G, got a boolean")
    if isinstance(value, int):
        if value < 0:
            raise UnitError(f"size must not be negative, got {value}")
        return _bounded(value, str(value))
    if not isinstance(value, str):
        raise UnitError(f"expected a size such as 512MiB or 1G, got {type(value).__name__}")
    m = _SIZE.match(value)
    if not m:
        raise UnitError(f"not a size: {value!r} (write e.g. 512MiB, 1G or 262144 for KiB)")
    number, unit = int(m.group(1)), m.group(2)
    if unit == "":
        return _bounded(number, value)
    # "KB" vs "k": libvirt is case-insensitive, and so are we; only the spelling matters.
    factor = _FACTORS.get(unit.lower())
    if factor is None:
        known = "b, KB, k, KiB, MB, M, MiB, GB, G, GiB, TB, T, TiB, PB, P, PiB, EB, E, EiB"
        raise UnitError(f"unknown unit {unit!r} in {value!r} (known: {known})")
    total = number * factor
    return _bounded(-(-total // 1024), value)


def _bounded(kib: int, value: str) -> int:
    if kib > MAX_KIB:
        raise UnitError(f"{value!r} is larger than libvirt takes (at most {MAX_KIB} KiB, "
                        "just under 8 EiB)")
    return kib


def format_kib(kib: int) -> str:
    """``kib`` in the largest binary unit that shows it whole (``96 MiB``, ``1536 KiB``)."""
    for unit, size in (("TiB", 2**30), ("GiB", 2**20), ("MiB", 2**10)):
        if kib >= size and kib % size == 0:
            return f"{kib // size} {unit}"
    return f"{kib} KiB"


def human_kib(kib: int) -> str:
    """``kib`` in a binary unit with one decimal when it helps (``3.2 MiB``, ``64 MiB``)."""
    value, unit = float(kib), "KiB"
    for bigger in ("MiB", "GiB", "TiB"):
        if value < 1024:
            break
        value, unit = value / 1024, bigger
    text = f"{value:.1f}".removesuffix(".0")
    return f"{text} {unit}"
