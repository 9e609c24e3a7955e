"""Names of root filesystem images (``debian/bookworm``, ``busybox``): parsing only.

A leaf, so that the spec can check a ``from = "..."`` value without importing the
builders in :mod:`lxcvirt.rootfs`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: Debian releases listed by ``lxcvirt rootfs images``; other release names are passed
#: to mmdebstrap as they are (it knows what the mirror has).
DEBIAN_RELEASES = ("bullseye", "bookworm", "trixie", "forky", "sid")
#: Version numbers people type for the same releases.
DEBIAN_NUMBERS = {"11": "bullseye", "12": "bookworm", "13": "trixie", "14": "forky"}
#: Suites without -updates and -security repositories.
DEBIAN_ROLLING = ("sid", "unstable", "experimental", "rc-buggy")

_RELEASE = re.compile(r"^[a-z][a-z0-9-]{1,30}$")


@dataclass(frozen=True)
class Image:
    """A parsed image name: ``distro`` is ``debian`` or ``busybox``."""

    distro: str
    release: str | None = None

    @property
    def name(self) -> str:
        return self.distro if self.release is None else f"{self.distro}/{self.release}"

    def __str__(self) -> str:
        return self.name


def parse_image(text: str) -> Image:
    """``debian/RELEASE`` (a name like bookworm, or its number 12) or ``busybox``.

    Raises ValueError with a sentence saying what is accepted.
    """
    if not isinstance(text, str):
        raise ValueError(f"an image name is a string, got {type(text).__name__}")
    value = text.strip().lower()
    if value == "busybox":
        return Image("busybox")
    distro, sep, release = value.partition("/")
    if distro == "debian" and sep:
        release = DEBIAN_NUMBERS.get(release, release)
        if _RELEASE.match(release):
            return Image("debian", release)
    raise ValueError(
        f"unknown image {text!r}: write debian/RELEASE (e.g. debian/bookworm, "
        "debian/trixie) or busybox"
    )
