"""Shifting a root's ownership to an idmap's host ids (what an unprivileged container needs:
its root, uid 0 inside, is uid ``target`` on the host, and must own the root's files).

Every entry is changed with ``fchownat(AT_SYMLINK_NOFOLLOW)`` from a walk that never
follows symlinks (``os.fwalk``).  The kernel clears setuid/setgid bits and the file
capability xattr on a chown; both are put back on regular files, through a descriptor
opened with ``O_NOFOLLOW`` and checked to be the same file.  A version 2 capability (valid
for the host's root only) is rewritten as version 3 naming the mapped root, the form the
kernel honours inside the user namespace.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..spec import IdMap, IdRange

CAP_XATTR = "security.capability"
_V2, _V3 = 0x02000000, 0x03000000
_VERSION_MASK = 0xFF000000


def map_id(ranges: Sequence[IdRange], value: int) -> int | None:
    """The host id of ``value`` under ``ranges``; None when no range covers it."""
    for r in ranges:
        if r.start <= value < r.start + r.count:
            return r.target + value - r.start
    return None


@dataclass(frozen=True)
class ShiftResult:
    """What a shift changed: entries, unmapped ids left as they were, capabilities kept
    (rewritten) and dropped (the idmap does not map uid 0)."""

    entries: int
    unmapped: int
    caps_kept: int
    caps_dropped: int

    def to_dict(self) -> dict[str, int]:
        return {
            "entries": self.entries,
            "unmapped": self.unmapped,
            "caps_kept": self.caps_kept,
            "caps_dropped": self.caps_dropped,
        }


def _namespaced_cap(raw: bytes, root_uid: int | None, idmap: IdMap) -> bytes | None:
    """The capability xattr for the shifted file, or None when it cannot be expressed."""
    if len(raw) < 4:
        return None
    (magic,) = struct.unpack_from("<I", raw)
    version = magic & _VERSION_MASK
    if version == _V2 and len(raw) >= 20 and root_uid is not None:
        return struct.pack("<I", _V3 | (magic & ~_VERSION_MASK)) + raw[4:20] + struct.pack(
            "<I", root_uid
        )
    if version == _V3 and len(raw) >= 24:
        (rootid,) = struct.unpack_from("<I", raw, 20)
        mapped = map_id(idmap.uid, rootid)
        if mapped is None:
            return raw  # already namespaced for some other root: keep it as it was
        return raw[:20] + struct.pack("<I", mapped)
    return None


def _restore(dirfd: int, name: str, before: os.stat_result, mode_bits: int,
             cap: bytes | None) -> None:
    """Put back setuid/setgid bits and the capability on the regular file ``name``."""
    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC,
                 dir_fd=dirfd)
    try:
        now = os.fstat(fd)
        if (now.st_dev, now.st_ino) != (before.st_dev, before.st_ino):
            return  # swapped under us: leave the new entry alone
        if mode_bits:
            os.fchmod(fd, stat.S_IMODE(before.st_mode))
        if cap is not None:
            os.setxattr(fd, CAP_XATTR, cap)
    finally:
        os.close(fd)


def _read_cap(dirfd: int, name: str) -> bytes | None:
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY
                     | os.O_CLOEXEC, dir_fd=dirfd)
    except OSError:
        return None
    try:
        return os.getxattr(fd, CAP_XATTR)
    except OSError as exc:
        if exc.errno in (errno.ENODATA, errno.ENOTSUP, errno.EOPNOTSUPP):
            return None
        raise
    finally:
        os.close(fd)


def shift_tree(root: Path, idmap: IdMap) -> ShiftResult:
    """Change the owner of every entry under ``root`` (``root`` included) to its mapped
    host id.  Ids no range covers are left as they are, so shifting twice is harmless."""
    root_uid = map_id(idmap.uid, 0)
    entries = unmapped = kept = dropped = 0
    # A file with several hard links is met once per link: shift it once (a range whose
    # target overlaps its start would otherwise move it twice).
    seen: set[tuple[int, int]] = set()

    def one(dirfd: int, name: str) -> None:
        nonlocal entries, unmapped, kept, dropped
        st = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
        if st.st_nlink > 1 and not stat.S_ISDIR(st.st_mode):
            if (st.st_dev, st.st_ino) in seen:
                return
            seen.add((st.st_dev, st.st_ino))
        uid = map_id(idmap.uid, st.st_uid)
        gid = map_id(idmap.gid, st.st_gid)
        if uid is None or gid is None:
            unmapped += 1
        new_uid = st.st_uid if uid is None else uid
        new_gid = st.st_gid if gid is None else gid
        if (new_uid, new_gid) == (st.st_uid, st.st_gid):
            return
        regular = stat.S_ISREG(st.st_mode)
        cap = _read_cap(dirfd, name) if regular else None
        os.chown(name, new_uid, new_gid, dir_fd=dirfd, follow_symlinks=False)
        entries += 1
        if not regular:
            return
        new_cap = None
        if cap is not None:
            new_cap = _namespaced_cap(cap, root_uid, idmap)
            if new_cap is None:
                dropped += 1
            else:
                kept += 1
        bits = st.st_mode & (stat.S_ISUID | stat.S_ISGID)
        if bits or new_cap is not None:
            _restore(dirfd, name, st, bits, new_cap)

    top = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        one(top, ".")
    finally:
        os.close(top)
    for _path, dirs, files, dirfd in os.fwalk(root, follow_symlinks=False):
        for name in (*dirs, *files):
            with contextlib.suppress(FileNotFoundError):
                one(dirfd, name)
    return ShiftResult(entries, unmapped, kept, dropped)
