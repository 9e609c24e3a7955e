"""A pid-file lock: an ``flock`` on a file that also says who holds it.

The kernel drops an flock when its holder dies, so there are no stale locks to clean up;
the file's text (the holder's pid and a note, e.g. its terminal) is only for the message
another process shows.  Used by the console (one session per container) and by
``start --all`` / ``stop --all`` (one run at a time).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
from pathlib import Path


class PidLock:
    """``try_acquire()`` takes the lock or says it is held; ``release()`` lets it go.

    ``remove=True`` deletes the file on release (while still holding it); a process that
    then wins the flock on the deleted file notices (the path names another inode) and
    tries the new file instead, so a removed lock file never lets two holders in.
    """

    def __init__(self, path: str | os.PathLike[str], *, mode: int = 0o600,
                 dir_mode: int = 0o755, remove: bool = False) -> None:
        self.path = Path(path)
        self.mode = mode
        self.dir_mode = dir_mode
        self.remove = remove
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def try_acquire(self, note: str = "") -> bool:
        """Take the lock (writing our pid and ``note`` into the file); False when another
        process holds it.  OSError when the file cannot be made."""
        for _ in range(100):
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=self.dir_mode)
            _check_folder(self.path.parent)
            # O_NOFOLLOW: a symlink planted at the path is refused, never followed to
            # truncate or write the file it points at; O_NONBLOCK: a FIFO cannot hang us.
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
                             | os.O_NONBLOCK | os.O_NOCTTY, self.mode)
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    raise UnsafeLock(f"{self.path} is a symbolic link; remove it (it is not "
                                     "lxcvirt's lock)") from None
                raise
            try:
                _check_lock_file(fd, self.path)
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return False
            except BaseException:
                os.close(fd)
                raise
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"{os.getpid()} {note}".rstrip().encode() + b"\n", 0)
                self._fd = fd
                return True
            os.close(fd)  # won on a file its holder removed: try the new one
        raise OSError(f"the lock file {self.path} keeps changing")

    def holder(self) -> tuple[str, str]:
        """(pid, note) of the holder, as its file says ("?", "") when unreadable).  The
        kernel's own list (/proc/locks) is preferred for the pid."""
        try:
            text = self.path.read_text().split(maxsplit=1)
            inode = self.path.stat().st_ino
        except OSError:
            return "?", ""
        written = text[0] if text else "?"
        note = text[1].strip() if len(text) > 1 else ""
        pids = _lock_holders(inode)
        if pids and str(pids[0]) != written:
            return str(pids[0]), ""
        return written, note

    def release(self) -> None:
        if self._fd is None:
            return
        if self.remove:
            with contextlib.suppress(OSError):
                self.path.unlink()  # while still held: see try_acquire()
        else:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
        os.close(self._fd)  # drops the flock
        self._fd = None


class UnsafeLock(OSError):
    """The lock path is not a file lxcvirt may use as its lock."""


def _check_lock_file(fd: int, path: Path) -> None:
    """The opened lock must be a regular file of ours with one name: anything else (a
    device, a FIFO, another user's file, a hard link to a file elsewhere) was put there
    by someone else, and is neither written nor truncated."""
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        raise UnsafeLock(f"{path} is not a regular file; remove it (it is not lxcvirt's lock)")
    if st.st_uid != os.geteuid():
        raise UnsafeLock(f"{path} belongs to uid {st.st_uid}, not to this user; remove it "
                         "(it is not lxcvirt's lock)")
    if st.st_nlink != 1:
        raise UnsafeLock(f"{path} has {st.st_nlink} names (a hard link); remove it")


def _check_folder(folder: Path) -> None:
    """A folder anyone may write to without the sticky bit lets them swap the lock file
    under us: refused."""
    st = os.stat(folder)
    if st.st_mode & stat.S_IWOTH and not st.st_mode & stat.S_ISVTX:
        raise UnsafeLock(f"{folder} is writable by anyone and not sticky: the lock cannot "
                         "be kept safely there; use a folder of root's")


def _lock_holders(inode: int) -> list[int]:
    """Pids the kernel names as holding an flock on ``inode`` (``/proc/locks``)."""
    try:
        text = Path("/proc/locks").read_text()
    except OSError:
        return []
    pids = []
    for line in text.splitlines():
        f = line.split()
        # "1: FLOCK  ADVISORY  WRITE 1234 00:1a:5678 0 EOF" ("->" marks waiters)
        if len(f) >= 6 and f[1] == "FLOCK" and f[5].rsplit(":", 1)[-1] == str(inode):
            with contextlib.suppress(ValueError):
                pids.append(int(f[4]))
    return pids
