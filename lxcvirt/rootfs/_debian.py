"""Debian roots: built by Debian's own ``mmdebstrap`` from Debian's packages, then made
to boot as a libvirt LXC container (networkd on the container's interfaces by DHCP, the
resolver's stub, no host leftovers).

Everything here works on the pristine tree that goes into the cache; what belongs to one
container (hostname, ownership) is set after the copy, in :mod:`lxcvirt.rootfs`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

from .. import _run
from .._images import DEBIAN_ROLLING
from ..errors import RootfsError
from . import _safe

#: What makes a minbase tree a bootable container: systemd as /sbin/init, ``ip`` and
#: ``ps`` for people, D-Bus for systemctl and hostnamectl, and systemd-resolved for a
#: resolver that takes its DNS servers from networkd's DHCP lease (bookworm splits it
#: out of the systemd package).
BASE_PACKAGES = ("systemd-sysv", "iproute2", "procps", "dbus", "systemd-resolved")
#: The version of :func:`customise`; part of the cache key, so a change rebuilds.
CUSTOMISATION = 1
DEFAULT_MIRROR = "http://deb.debian.org/debian"
BUILD_TIMEOUT = 30 * 60

_PACKAGE = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")
#: Matches the interfaces libvirt gives a container (eth0, eth1... or a spec's own
#: ``guest`` name in the en* style); DHCP on each.
NETWORK_FILE = """\
# Written by lxcvirt: DHCP on the interfaces libvirt gives the container.
[Match]
Name=eth* en*

[Network]
DHCP=yes
"""
#: Units enabled in the tree (with what their [Install] sections bring along).
ENABLE = ("systemd-networkd.service", "systemd-resolved.service")
UNIT_DIRS = ("usr/lib/systemd/system", "lib/systemd/system")


def check_packages(names: Iterable[str]) -> tuple[str, ...]:
    """The extra packages, checked as Debian package names (they end up in an argv)."""
    out = []
    for name in names:
        if not isinstance(name, str) or not _PACKAGE.match(name):
            raise RootfsError(f"{name!r} is not a Debian package name")
        out.append(name)
    return tuple(out)


def packages(extra: Iterable[str]) -> tuple[str, ...]:
    """The sorted package set of a build: the base ones and ``extra``."""
    return tuple(sorted(set(BASE_PACKAGES) | set(check_packages(extra))))


def _host_uris(apt: Path = Path("/etc/apt")) -> list[str]:
    """The http(s) URIs of the host's apt sources (one-line and deb822 styles)."""
    uris: list[str] = []
    files = [apt / "sources.list"]
    d = apt / "sources.list.d"
    if d.is_dir():
        files += sorted(d.glob("*.list")) + sorted(d.glob("*.sources"))
    for f in files:
        try:
            text = f.read_text(errors="replace")
        except OSError:
            continue
        for line in text.splitlines():
            line = line.split("#", 1)[0].strip()
            if f.suffix == ".sources":
                if line.lower().startswith("uris:"):
                    uris += line.split(":", 1)[1].split()
            elif line.startswith("deb "):
                words = [w for w in line.split()[1:] if not w.startswith("[")]
                words = [w for w in words if "=" not in w and not w.endswith("]")]
                if words:
                    uris.append(words[0])
    return [u.rstrip("/") for u in uris if u.startswith(("http://", "https://"))]


def mirrors(apt: Path = Path("/etc/apt")) -> tuple[str, str]:
    """(main, security) mirror URIs: ``$LXCVIRT_DEBIAN_MIRROR``, else the Debian mirror the
    host's apt already uses (it is known to be reachable from here), else deb.debian.org."""
    main = os.environ.get("LXCVIRT_DEBIAN_MIRROR", "").rstrip("/")
    security = ""
    if not main:
        for uri in _host_uris(apt):
            last = uri.rsplit("/", 1)[-1]
            if last == "debian" and not main:
                main = uri
            elif last == "debian-security" and not security:
                security = uri
    main = main or DEFAULT_MIRROR
    if not security:
        security = main + "-security" if main.endswith("/debian") else ""
    return main, security


def sources(release: str) -> list[str]:
    """The one-line apt sources for ``release`` (also what the root keeps for apt)."""
    main, security = mirrors()
    lines = [f"deb {main} {release} main"]
    if release not in DEBIAN_ROLLING:
        lines.append(f"deb {main} {release}-updates main")
        if security:
            lines.append(f"deb {security} {release}-security main")
    return lines


def build(release: str, extra: Iterable[str], dest: Path) -> None:
    """Build a minbase tree for ``release`` with the base and ``extra`` packages."""
    argv = [
        "mmdebstrap",
        "--variant=minbase",
        "--include=" + ",".join(packages(extra)),
        release,
        str(dest),
        *sources(release),
    ]
    _run.run(argv, what=f"building debian/{release}", timeout=BUILD_TIMEOUT)


def _install_section(text: str) -> dict[str, list[str]]:
    keys: dict[str, list[str]] = {}
    section = ""
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line
        elif section == "[Install]" and "=" in line and not line.startswith(("#", ";")):
            key, _, value = line.partition("=")
            keys.setdefault(key.strip(), []).extend(value.split())
    return keys


def enable(tree: Path, unit: str, _seen: set[str] | None = None) -> None:
    """Enable ``unit`` the way ``systemctl enable`` would, by making the symlinks its
    [Install] section names (WantedBy, RequiredBy, Alias, Also).  No systemctl, no chroot:
    the host may have no systemd at all."""
    seen = set() if _seen is None else _seen
    if unit in seen:
        return
    seen.add(unit)
    for folder in UNIT_DIRS:
        text = _safe.read_text(tree, f"{folder}/{unit}")
        if text is not None:
            break
    else:
        raise RootfsError(f"cannot enable {unit}: no unit file in the built tree")
    target = f"/lib/systemd/system/{unit}"  # what Debian's own helper links to
    install = _install_section(text)
    for wanted in install.get("WantedBy", []):
        _safe.symlink(tree, f"etc/systemd/system/{wanted}.wants/{unit}", target)
    for required in install.get("RequiredBy", []):
        _safe.symlink(tree, f"etc/systemd/system/{required}.requires/{unit}", target)
    for alias in install.get("Alias", []):
        _safe.symlink(tree, f"etc/systemd/system/{alias}", target)
    for also in install.get("Also", []):
        enable(tree, also, seen)


def customise(tree: Path) -> None:
    """Make a fresh mmdebstrap tree boot as a libvirt LXC container."""
    # mmdebstrap copies the host's /etc/hostname and /etc/resolv.conf in for the build;
    # they are this machine's, not the container's.
    _safe.write_file(tree, "etc/hostname", "localhost\n")
    _safe.symlink(tree, "etc/resolv.conf", "../run/systemd/resolve/stub-resolv.conf")
    # Empty, not missing: systemd then makes each container its own id at boot (from
    # libvirt's container uuid) instead of sharing the one of the cached tree.
    _safe.write_file(tree, "etc/machine-id", "", mode=0o444)
    _safe.remove(tree, "var/lib/dbus/machine-id")
    _safe.write_file(tree, "etc/systemd/network/80-lxcvirt.network", NETWORK_FILE)
    for unit in ENABLE:
        enable(tree, unit)
    # The console getty needs nothing here: in a container, systemd-getty-generator adds
    # console-getty.service on /dev/console by itself (and getty@tty1 skips itself, as
    # there is no /dev/tty0).
