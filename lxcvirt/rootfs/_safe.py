"""Writing inside a root filesystem without trusting it.

What a root contains is hostile input: a container that ran in it (or whoever made the
tree lxcvirt copied) can plant ``etc/hostname -> /etc/shadow``.  Every change lxcvirt
makes in a root goes through here: each folder on the way is opened relative to the one
before with ``O_NOFOLLOW | O_DIRECTORY`` (a symlinked folder is refused, not followed),
and a file is replaced by renaming a fresh file over its name, which replaces a planted
symlink itself and never writes through it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path

from ..errors import RootfsError

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _parts(rel: str) -> list[str]:
    parts = [p for p in rel.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise RootfsError(f"{rel!r}: not a plain path inside the root")
    return parts


@contextlib.contextmanager
def open_dir(root: Path, rel: str = "", *, create: bool = False) -> Iterator[int]:
    """A file descriptor of the folder ``rel`` inside ``root``; with ``create``, missing
    folders are made (0755, owned like ``root``)."""
    fd = os.open(root, _DIR_FLAGS)
    try:
        owner = os.fstat(fd)
        for part in [p for p in rel.split("/") if p not in ("", ".")]:
            if part == "..":
                raise RootfsError(f"{rel!r}: not a plain path inside the root")
            try:
                nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise
                os.mkdir(part, 0o755, dir_fd=fd)
                os.chown(part, owner.st_uid, owner.st_gid, dir_fd=fd, follow_symlinks=False)
                nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise RootfsError(
                        f"{root}/{rel}: {part} is a symlink or not a folder; refusing to "
                        "follow it out of the root"
                    ) from exc
                raise
            os.close(fd)
            fd = nxt
        yield fd
    finally:
        os.close(fd)


def _split(rel: str) -> tuple[str, str]:
    parts = _parts(rel)
    return "/".join(parts[:-1]), parts[-1]


def write_file(root: Path, rel: str, data: bytes | str, *, mode: int = 0o644) -> None:
    """Put ``data`` at ``rel`` inside ``root`` (replacing a file or a planted symlink),
    owned like the root folder itself (so a shifted root stays shifted)."""
    folder, name = _split(rel)
    raw = data.encode() if isinstance(data, str) else data
    with open_dir(root, folder, create=True) as dfd:
        owner = os.fstat(dfd)
        tmp = f".{name}.lxcvirt-{secrets.token_hex(4)}"
        fd = os.open(
            tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
            mode, dir_fd=dfd,
        )
        try:
            try:
                os.write(fd, raw)
                os.fchown(fd, owner.st_uid, owner.st_gid)
                os.fchmod(fd, mode)
            finally:
                os.close(fd)
            os.rename(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=dfd)
            raise


def symlink(root: Path, rel: str, target: str) -> None:
    """Make ``rel`` inside ``root`` a symlink to ``target`` (replacing what is there)."""
    folder, name = _split(rel)
    with open_dir(root, folder, create=True) as dfd:
        owner = os.fstat(dfd)
        tmp = f".{name}.lxcvirt-{secrets.token_hex(4)}"
        os.symlink(target, tmp, dir_fd=dfd)
        try:
            os.chown(tmp, owner.st_uid, owner.st_gid, dir_fd=dfd, follow_symlinks=False)
            os.rename(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=dfd)
            raise


def remove(root: Path, rel: str) -> None:
    """Remove the file or symlink ``rel`` inside ``root`` if it is there (unlink never
    follows a symlink)."""
    folder, name = _split(rel)
    try:
        with open_dir(root, folder) as dfd:
            os.unlink(name, dir_fd=dfd)
    except FileNotFoundError:
        pass


def read_text(root: Path, rel: str) -> str | None:
    """The text of the regular file ``rel`` inside ``root``; None when it is missing or
    not a regular file (a symlink is not read through)."""
    folder, name = _split(rel)
    try:
        with open_dir(root, folder) as dfd:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                         dir_fd=dfd)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return None
        raise
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return f.read(1024 * 1024).decode("utf-8", "replace")
