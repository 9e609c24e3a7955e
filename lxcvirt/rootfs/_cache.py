"""The cache of pristine customised trees, one entry per (distribution, release, package
set, customisation version), so the second root of a kind is a copy, not a build.

Layout under ``$LXCVIRT_CACHE_DIR/rootfs`` (default ``/var/cache/lxcvirt/rootfs``)::

    KEY.lock          fcntl lock of the entry: shared to copy, exclusive to build
    KEY/tree/         the tree
    KEY/info.json     what it is (image, packages, when and how long it took)
    .tmp-KEY-*/       a build in progress (removed when a later build finds it)

An entry appears only by renaming a finished build folder to ``KEY``, so a half-built
tree is never used; a build interrupted at any point leaves a ``.tmp-`` folder that the
next build of that key removes under its lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .. import _run

ENV = "LXCVIRT_CACHE_DIR"
DEFAULT_DIR = "/var/cache/lxcvirt"


def cache_root() -> Path:
    """The folder holding cached trees (``rootfs/`` under lxcvirt's cache folder)."""
    return Path(os.environ.get(ENV) or DEFAULT_DIR) / "rootfs"


def key_for(distro: str, release: str, packages: tuple[str, ...], version: int) -> str:
    """A readable, stable key: ``debian-bookworm-<hash of everything that shapes it>``."""
    what = {
        "distro": distro,
        "release": release,
        "packages": sorted(packages),
        "customisation": version,
        "arch": platform.machine(),
    }
    digest = hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:12]
    return f"{distro}-{release}-{digest}"


@dataclass(frozen=True)
class Entry:
    """A finished cache entry."""

    key: str
    path: Path
    info: dict[str, object]

    @property
    def tree(self) -> Path:
        return self.path / "tree"


def _folder() -> Path:
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    # The trees hold setuid programs owned by root: nobody else needs to reach them.
    root.chmod(0o700)
    return root


@contextlib.contextmanager
def _lock(key: str, exclusive: bool) -> Iterator[None]:
    path = _folder() / f"{key}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)  # releases the lock


def lookup(key: str) -> Entry | None:
    path = cache_root() / key
    try:
        info = json.loads((path / "info.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(info, dict) or not (path / "tree").is_dir():
        return None
    return Entry(key, path, info)


def entries() -> list[Entry]:
    root = cache_root()
    if not root.is_dir():
        return []
    found = (lookup(p.name) for p in sorted(root.iterdir()) if not p.name.startswith("."))
    return [e for e in found if e is not None]


def copy_tree(src: Path, dest: Path) -> None:
    """Copy a tree with everything kept (owners, modes, hard links, xattrs such as file
    capabilities); ``dest`` exists and is empty.  cp -a is ~1 s for a 217 MB root here."""
    _run.run(["cp", "-a", "--reflink=auto", "--", f"{src}/.", str(dest)],
             what=f"copying the cached root into {dest}")


def _remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def _install(key: str, build: Callable[[Path], None], info: dict[str, object]) -> Entry:
    """Build into a folder beside the cache and rename it into place (called locked)."""
    folder = _folder()
    for stale in folder.glob(f".tmp-{key}-*"):
        _remove(stale)  # a build of this key that died: we hold its lock
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{key}-", dir=folder))
    try:
        began = time.monotonic()
        build(tmp / "tree")
        info = {**info, "key": key, "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "build_seconds": round(time.monotonic() - began, 1)}
        (tmp / "info.json").write_text(json.dumps(info, indent=2) + "\n")
        final = folder / key
        if final.exists():
            # refresh: move the old entry aside first; rename cannot replace a folder
            old = Path(tempfile.mkdtemp(prefix=f".tmp-{key}-old-", dir=folder))
            final.rename(old / "entry")
            tmp.rename(final)
            _remove(old)
        else:
            tmp.rename(final)
    except BaseException:
        _remove(tmp)
        raise
    return Entry(key, final, info)


def ensure(
    key: str, build: Callable[[Path], None], info: dict[str, object], *, refresh: bool = False
) -> bool:
    """Make sure the entry ``key`` exists, building it when missing (or with ``refresh``);
    True when it was already there."""
    if not refresh:
        with _lock(key, exclusive=False):
            if lookup(key) is not None:
                return True
    with _lock(key, exclusive=True):
        if not refresh and lookup(key) is not None:
            return True
        _install(key, build, info)
    return False


def copy_into(
    key: str,
    dest: Path,
    build: Callable[[Path], None],
    info: dict[str, object],
    *,
    refresh: bool = False,
) -> bool:
    """Copy the entry ``key`` into ``dest``, building it first when missing (or with
    ``refresh``).  Returns True on a cache hit.  Concurrent calls for one key build once:
    a builder holds the key's lock exclusively, copiers hold it shared."""
    if not refresh:
        with _lock(key, exclusive=False):
            entry = lookup(key)
            if entry is not None:
                copy_tree(entry.tree, dest)
                return True
    with _lock(key, exclusive=True):
        entry = None if refresh else lookup(key)  # someone may have built it meanwhile
        hit = entry is not None
        if entry is None:
            entry = _install(key, build, info)
        copy_tree(entry.tree, dest)
    return hit
