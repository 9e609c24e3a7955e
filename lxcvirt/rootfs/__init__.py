"""Root filesystems for containers: ``create(image, dest)`` makes a bootable root, from a
cache when it can, and ``shift(dest, idmap)`` hands an existing one to an idmap's ids.

Images: ``debian/RELEASE`` (built with Debian's mmdebstrap, customised to boot under
libvirt's LXC driver; see :mod:`._debian`) and ``busybox`` (the tiny test root of
:mod:`lxcvirt._busybox`).  Debian trees are cached pristine (:mod:`._cache`); what belongs
to one container (its hostname, the ownership an idmap needs) is applied after the copy,
through :mod:`._safe`, which never follows a symlink planted in the root.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .._busybox import make_rootfs
from .._images import DEBIAN_RELEASES, Image, parse_image
from ..errors import RootfsError
from ..spec import Container, IdMap, IdRange
from . import _cache, _debian, _safe
from ._debian import BASE_PACKAGES
from ._shift import ShiftResult, shift_tree

__all__ = [
    "BASE_PACKAGES",
    "CachedBuild",
    "ImageInfo",
    "RootfsResult",
    "ShiftResult",
    "create",
    "ensure_roots",
    "ensure_cached",
    "ensure_roots_for",
    "needs_root",
    "idmap_from_base",
    "images",
    "parse_image",
    "shift",
]

# RFC 1123 labels as systemd accepts them (it also allows '_'), at most 64 bytes in all
# (the kernel's limit for a hostname).
_LABEL = r"[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?"
_HOSTNAME = re.compile(rf"^{_LABEL}(\.{_LABEL})*$")

#: What ``--idmap-base N`` maps: container ids 0..65535 (what a Debian system uses,
#: nobody included), like lxc's and Incus's default maps.
IDMAP_COUNT = 65536


@dataclass(frozen=True)
class RootfsResult:
    """What :func:`create` made."""

    image: str
    dest: Path
    hostname: str
    cache_hit: bool
    seconds: float
    cache_key: str | None = None
    shifted: ShiftResult | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "image": self.image,
            "dest": str(self.dest),
            "hostname": self.hostname,
            "cache_hit": self.cache_hit,
            "cache_key": self.cache_key,
            "seconds": round(self.seconds, 2),
            "shifted": None if self.shifted is None else self.shifted.to_dict(),
        }


@dataclass(frozen=True)
class CachedBuild:
    """One tree in the cache: its key, when it was built, the packages beyond the base."""

    key: str
    built: str
    extra: tuple[str, ...]
    info: dict[str, object] = field(compare=False)

    def to_dict(self) -> dict[str, object]:
        return dict(self.info)


@dataclass(frozen=True)
class ImageInfo:
    """An image lxcvirt knows, and its cached builds."""

    name: str
    cached: tuple[CachedBuild, ...] = ()

    def to_dict(self) -> dict[str, object]:
        return {"image": self.name, "cached": [c.to_dict() for c in self.cached]}


def idmap_from_base(base: int) -> IdMap:
    """The common map: container ids 0..65535 are host ids base..base+65535."""
    if base < 1:
        raise RootfsError(f"an idmap base must be a positive host id, got {base}")
    r = (IdRange(start=0, target=base, count=IDMAP_COUNT),)
    return IdMap(uid=r, gid=r)


def check_hostname(name: str) -> str:
    if len(name.encode()) > 64 or not _HOSTNAME.match(name):
        raise RootfsError(
            f"{name!r} is not a usable hostname (letters, digits, '-', '_' and dots, at most "
            "64 characters); give one with --hostname"
        )
    return name


def _image(text: str) -> Image:
    try:
        return parse_image(text)
    except ValueError as exc:
        raise RootfsError(str(exc)) from exc


def _check_dest(dest: str | os.PathLike[str]) -> tuple[Path, bool]:
    """The absolute destination and whether it had to be made; refuses anything that
    holds data (lxcvirt never overwrites a user's folder)."""
    raw = os.fspath(dest)
    if not raw or "\0" in raw:
        raise RootfsError(f"{raw!r} is not a usable path")
    path = Path(os.path.abspath(raw))
    if path == Path("/"):
        raise RootfsError("refusing to make a root filesystem at /")
    cache = _cache.cache_root()
    if path == cache or cache in path.parents:
        raise RootfsError(f"{path} is inside lxcvirt's cache {cache}; choose another folder")
    if path.is_symlink():
        raise RootfsError(f"{path} is a symlink; give the real folder")
    if path.exists():
        if not path.is_dir():
            raise RootfsError(f"{path} exists and is not a folder")
        if any(path.iterdir()):
            raise RootfsError(
                f"{path} is not empty; a root filesystem is only made in a new or empty folder"
            )
        return path, False
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.mkdir(mode=0o755)
    except OSError as exc:
        raise RootfsError(f"cannot create {path}: {exc.strerror or exc}") from exc
    return path, True


def _empty(path: Path, made: bool) -> None:
    """Undo a failed create: remove what was put into ``path`` (and ``path`` if we made it)."""
    if made:
        shutil.rmtree(path, ignore_errors=True)
        return
    for child in path.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


def personalise(root: Path, hostname: str) -> None:
    """What belongs to one container: its hostname, in /etc/hostname (systemd sets it from
    there; libvirt 9.0 has no hostname setting for LXC) and /etc/hosts."""
    _safe.write_file(root, "etc/hostname", f"{hostname}\n")
    short = hostname.split(".", 1)[0]
    names = hostname if short == hostname else f"{hostname} {short}"
    _safe.write_file(
        root,
        "etc/hosts",
        f"127.0.0.1\tlocalhost\n127.0.1.1\t{names}\n\n"
        "::1\tlocalhost ip6-localhost ip6-loopback\nff02::1\tip6-allnodes\n"
        "ff02::2\tip6-allrouters\n",
    )


def _debian_build(
    image: Image, include: Sequence[str], on_build: Callable[[str], None] | None
) -> tuple[str, dict[str, object], Callable[[Path], None]]:
    """The cache key, the info and the builder of a Debian image with ``include``."""
    release = image.release or ""
    extra = _debian.check_packages(include)
    pkgs = _debian.packages(extra)
    key = _cache.key_for("debian", release, pkgs, _debian.CUSTOMISATION)
    info: dict[str, object] = {
        "image": image.name,
        "packages": list(pkgs),
        "customisation": _debian.CUSTOMISATION,
        "sources": _debian.sources(release),
    }

    def build(tree: Path) -> None:
        if on_build is not None:
            on_build(image.name)
        _debian.build(release, extra, tree)
        _debian.customise(tree)

    return key, info, build


def ensure_cached(
    image: str,
    *,
    include: Sequence[str] = (),
    refresh: bool = False,
    on_build: Callable[[str], None] | None = None,
) -> tuple[str, bool]:
    """Make sure the cache holds ``image`` with ``include`` (building it when missing, or
    with ``refresh``), without copying it anywhere.  Returns (cache key, was it there)."""
    img = _image(image)
    if img.distro != "debian":
        raise RootfsError(f"{img.name} roots are made directly, not cached")
    key, info, build = _debian_build(img, include, on_build)
    try:
        return key, _cache.ensure(key, build, info, refresh=refresh)
    except OSError as exc:
        raise RootfsError(f"building {img.name} into the cache: {exc}") from exc


def create(
    image: str,
    dest: str | os.PathLike[str],
    *,
    include: Sequence[str] = (),
    hostname: str | None = None,
    refresh: bool = False,
    idmap: IdMap | None = None,
    on_build: Callable[[str], None] | None = None,
) -> RootfsResult:
    """Make a bootable root filesystem of ``image`` at ``dest`` (a new or empty folder).

    ``include``: extra Debian packages; ``hostname``: the container's name (default: the
    folder's name); ``refresh``: rebuild the cached tree; ``idmap``: shift the ownership
    to the map's host ids (for an unprivileged container); ``on_build`` is told (with the
    image name) when a tree is about to be built rather than copied.  On failure ``dest``
    is left as it was found.
    """
    began = time.monotonic()
    img = _image(image)
    if include and img.distro != "debian":
        raise RootfsError(f"{img.name} takes no extra packages")
    extra = _debian.check_packages(include)
    # Checked before the folder is made: a refused create leaves no trace.
    name = check_hostname(hostname if hostname is not None else Path(os.path.abspath(dest)).name)
    path, made = _check_dest(dest)
    hit = False
    key: str | None = None
    moved: ShiftResult | None = None
    try:
        if img.distro == "busybox":
            make_rootfs(path)
        else:
            key, info, build = _debian_build(img, extra, on_build)
            hit = _cache.copy_into(key, path, build, info, refresh=refresh)
        personalise(path, name)
        if idmap is not None:
            moved = shift_tree(path, idmap)
    except BaseException as exc:  # Ctrl+C included: never leave a half-made root behind
        _empty(path, made)
        if isinstance(exc, OSError):
            raise RootfsError(f"making {img.name} at {path}: {exc}") from exc
        raise
    return RootfsResult(img.name, path, name, hit, time.monotonic() - began, key, moved)


def shift(dest: str | os.PathLike[str], idmap: IdMap) -> ShiftResult:
    """Shift the ownership of the existing root ``dest`` to ``idmap``'s host ids (ids no
    range covers, e.g. already shifted ones, are left alone)."""
    path = Path(os.path.abspath(os.fspath(dest)))
    if path.is_symlink() or not path.is_dir():
        raise RootfsError(f"{path} is not a folder")
    if path == Path("/"):
        raise RootfsError("refusing to shift the host's own root")
    cache = _cache.cache_root()
    if path == cache or cache in path.parents:
        raise RootfsError(f"{path} is inside lxcvirt's cache: shift a copy (rootfs create)")
    try:
        return shift_tree(path, idmap)
    except OSError as exc:
        raise RootfsError(f"shifting {path}: {exc}") from exc


def images() -> list[ImageInfo]:
    """The images lxcvirt knows (Debian releases, busybox) and the cached builds; a cached
    release outside the known list is listed too."""
    cached: dict[str, list[CachedBuild]] = {}
    for entry in _cache.entries():
        pkgs = entry.info.get("packages")
        extra = sorted(set(map(str, pkgs)) - set(BASE_PACKAGES)) if isinstance(pkgs, list) else []
        build = CachedBuild(entry.key, str(entry.info.get("built", "?")), tuple(extra), entry.info)
        cached.setdefault(str(entry.info.get("image", entry.key)), []).append(build)
    names = [f"debian/{r}" for r in DEBIAN_RELEASES]
    names += sorted(n for n in cached if n not in names)
    names.append("busybox")
    return [ImageInfo(n, tuple(cached.get(n, ()))) for n in names]


def ensure_roots(spec: Container, *, local: bool) -> list[RootfsResult]:
    """Build the root filesystem a spec names by image (``from``) when its folder does not
    exist yet: hostname = the container's name, ownership from the spec's idmap.

    Roots are built on this machine only: with a remote daemon (``local`` false) a missing
    root cannot be seen nor made, and that is an error saying where to build it.
    """
    built = []
    for fs in spec.filesystems:
        if fs.image is None or fs.source is None:
            continue
        if not local:
            raise RootfsError(
                f"{spec.name}: the root filesystem {fs.source} comes from {fs.image}, and "
                "lxcvirt builds roots on this machine only; build it on that host and drop "
                "`from` here",
                hint=f"`lxcvirt rootfs create {fs.image} {fs.source}` on that host",
            )
        if os.path.lexists(fs.source):
            continue
        built.append(create(fs.image, fs.source, hostname=spec.name, idmap=spec.idmap))
    return built


def needs_root(spec: Container, *, local: bool) -> bool:
    """True when ``spec`` names a root by image whose folder is missing (on a remote host
    lxcvirt cannot look, so any root by image counts)."""
    return any(
        fs.image is not None
        and fs.source is not None
        and (not local or not os.path.lexists(fs.source))
        for fs in spec.filesystems
    )


def ensure_roots_for(source: Container | str | Path, *, local: bool) -> list[RootfsResult]:
    """:func:`ensure_roots` for what ``lxcvirt create`` takes: a spec, a spec file (read
    here), or domain XML (which names no image: nothing to do)."""
    if isinstance(source, Container):
        return ensure_roots(source, local=local)
    if str(source).endswith(".toml"):  # XML text never ends so
        from ..load import load_spec

        return ensure_roots(load_spec(source), local=local)
    return []
