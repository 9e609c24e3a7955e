"""The per-container console lock: one ``lxcvirt console`` session per container.

libvirt's LXC driver has no safe/force console flags (``openConsole`` takes flags 0
only), and two readers of one pty would each get part of the output.  So a session holds
an ``flock`` on ``/run/lxcvirt/console/NAME.lock`` (the kernel drops it when the holder
dies: no stale locks) and listens on a datagram socket beside it, where ``--force`` asks
it to leave.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import socket
import time
from pathlib import Path

from .._pidlock import PidLock
from ..errors import ConsoleError, LockHeld, PermissionDenied

RUN_DIR = Path("/run/lxcvirt/console")
#: How long --force waits for the holder to let go.
TAKEOVER_WAIT = 5.0


def _key(name: str) -> str:
    if re.fullmatch(r"[A-Za-z0-9_.+-]{1,64}", name) and not name.startswith("."):
        return name
    return "x-" + hashlib.sha256(name.encode()).hexdigest()[:32]


class ConsoleLock:
    """One console session per container, across processes.

    The lock is an ``flock`` (the kernel drops it when the holder dies, so there are no
    stale locks); the file holds the holder's pid and terminal for the message a second
    session gets.  The holder listens on a datagram socket beside it: ``--force`` sends
    its pid there and waits for the lock.
    """

    def __init__(self, name: str, directory: str | os.PathLike[str] | None = None) -> None:
        self.name = name
        self.dir = Path(directory) if directory is not None else RUN_DIR
        key = _key(name)
        self.path = self.dir / f"{key}.lock"
        self.sock_path = self.dir / f"{key}.sock"
        self._lock = PidLock(self.path, mode=0o600, dir_mode=0o700, remove=True)
        self.sock: socket.socket | None = None

    def holder(self) -> str:
        """Who holds the lock, for a message: ``pid 123 on /dev/pts/4``."""
        pid, tty = self._lock.holder()
        if pid == "?":
            return "another session"
        return f"lxcvirt pid {pid}" + (f" on {tty}" if tty else "")

    def _try(self) -> bool:
        try:
            return self._lock.try_acquire(_tty_name())
        except PermissionError as exc:
            raise PermissionDenied(
                f"cannot create the console lock {self.path}: permission denied",
                hint="run as root (the console of a libvirt LXC container is root's)",
            ) from exc
        except OSError as exc:
            raise ConsoleError(
                f"cannot create the console lock {self.path}: {exc.strerror or exc}"
            ) from exc

    def acquire(self, *, force: bool = False, wait: float = TAKEOVER_WAIT) -> None:
        if not self._try():
            holder = self.holder()
            if not force:
                raise LockHeld(
                    f"the console of {self.name} is in use by {holder}",
                    hint=f"`lxcvirt console --force {self.name}` takes it over",
                )
            self._ask_to_leave()
            deadline = time.monotonic() + wait
            while not self._try():
                if time.monotonic() > deadline:
                    raise LockHeld(
                        f"the console of {self.name} is in use by {holder}, "
                        f"which did not let go within {wait:g} s"
                    )
                time.sleep(0.02)
        try:
            with contextlib.suppress(FileNotFoundError):
                self.sock_path.unlink()  # a holder that died left it
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            try:
                sock.bind(str(self.sock_path))
                sock.setblocking(False)
            except OSError as exc:
                sock.close()
                raise ConsoleError(f"cannot listen on {self.sock_path}: {exc.strerror}") from exc
        except BaseException:
            self._lock.release()
            raise
        self.sock = sock

    def _ask_to_leave(self) -> None:
        # No listener (it is not reading yet): we just wait for the lock.
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s, contextlib.suppress(OSError):
            s.sendto(f"takeover {os.getpid()}".encode(), str(self.sock_path))

    def takeover_request(self) -> int | None:
        """The pid of a session asking us to leave, if one did."""
        if self.sock is None:
            return None
        try:
            msg = self.sock.recv(256).decode(errors="replace").split()
        except (BlockingIOError, InterruptedError):
            return None
        if len(msg) == 2 and msg[0] == "takeover" and msg[1].isdigit():
            return int(msg[1])
        return None

    def release(self) -> None:
        if self.sock is not None:
            with contextlib.suppress(OSError):
                self.sock_path.unlink()
            self.sock.close()
            self.sock = None
        self._lock.release()

    def __enter__(self) -> ConsoleLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _tty_name() -> str:
    for fd in (0, 1, 2):
        with contextlib.suppress(OSError):
            if os.isatty(fd):
                return os.ttyname(fd)
    return "-"
