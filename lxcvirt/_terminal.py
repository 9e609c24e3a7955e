"""The terminal side of a console session: escape keys in hat notation, ``--send``
texts, raw mode that is always undone, and passing the window size on to the container's
console pty."""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import select
import termios
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ._proc import init_pid
from .errors import ConsoleError

# --- escape characters -----------------------------------------------------------------


def parse_escape(text: str) -> int:
    """``^]`` / ``^a`` (hat notation, as virsh takes it) or a single character -> byte."""
    if len(text) == 2 and text[0] == "^":
        c = text[1].upper()
        if c == "?":
            return 0x7F
        if "@" <= c <= "_":
            return ord(c) ^ 0x40
    elif len(text) == 1 and ord(text) < 0x80:
        return ord(text)
    raise ConsoleError(
        f"escape {text!r}: write it in hat notation (^] or ^a) or as one ASCII character"
    )


def escape_name(byte: int) -> str:
    """The hat notation of a byte, with a hint for control characters: ``^] (Ctrl+])``."""
    if byte == 0x7F:
        return "^?"
    if byte < 0x20:
        c = chr(byte ^ 0x40)
        return f"^{c} (Ctrl+{c})"
    return chr(byte)


def decode_send(text: str) -> bytes:
    r"""``--send`` text: ``\n \r \t \e \\ \xHH`` are understood, the rest is sent as UTF-8."""
    out = bytearray()
    simple = {"n": b"\n", "r": b"\r", "t": b"\t", "e": b"\x1b", "\\": b"\\", "0": b"\0"}
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            if nxt in simple:
                out += simple[nxt]
                i += 2
                continue
            if nxt == "x" and re.fullmatch(r"[0-9a-fA-F]{2}", text[i + 2 : i + 4]):
                out.append(int(text[i + 2 : i + 4], 16))
                i += 4
                continue
        out += ch.encode()
        i += 1
    return bytes(out)


# --- the terminal ----------------------------------------------------------------------



def _raw(attrs: list[Any]) -> list[Any]:
    """What cfmakeraw(3) makes of ``attrs`` (virsh uses cfmakeraw too)."""
    new = list(attrs)
    new[6] = list(attrs[6])
    new[0] &= ~(termios.IGNBRK | termios.BRKINT | termios.PARMRK | termios.ISTRIP
                | termios.INLCR | termios.IGNCR | termios.ICRNL | termios.IXON)
    new[1] &= ~termios.OPOST
    new[2] = (new[2] & ~(termios.CSIZE | termios.PARENB)) | termios.CS8
    new[3] &= ~(termios.ECHO | termios.ECHONL | termios.ICANON | termios.ISIG | termios.IEXTEN)
    new[6][termios.VMIN] = 1
    new[6][termios.VTIME] = 0
    return new


@contextlib.contextmanager
def raw_terminal(fd: int) -> Iterator[None]:
    """Put the terminal on ``fd`` in raw mode; put it back as it was, whatever happens."""
    saved = termios.tcgetattr(fd)
    termios.tcsetattr(fd, termios.TCSAFLUSH, _raw(saved))
    try:
        yield
    finally:
        with contextlib.suppress(termios.error, OSError):  # the terminal may be gone (HUP)
            termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except BlockingIOError:  # someone left the fd non-blocking: wait for room
            select.select([], [fd], [], 1.0)
            continue
        view = view[n:]


# --- window size -----------------------------------------------------------------------
# libvirt has no call to resize a console.  On a local daemon the container's console is
# a pty of the container's own devpts, which we can reach through its init's root
# (/proc/PID/root) and resize with TIOCSWINSZ; the kernel then sends SIGWINCH to the
# container's foreground job.  ``/dev/console`` itself is a bind mount of that pty which
# refused to open from outside here (ENODEV), so the devpts path is found in mountinfo.


def console_pty_path(controller_pid: int) -> str | None:
    """A host path to the container's console pty, or None when there is none to find."""
    init = init_pid(controller_pid)
    if init is None:
        return None
    try:
        mountinfo = Path(f"/proc/{init}/mountinfo").read_text()
    except OSError:
        return None
    mounts = []
    for line in mountinfo.splitlines():
        left, sep, right = line.partition(" - ")
        fields, rfields = left.split(), right.split()
        if sep and len(fields) >= 5 and rfields and rfields[0] == "devpts":
            mounts.append((fields[2], fields[3], fields[4]))  # dev, root, mount point
    for dev, root, point in mounts:
        if point == "/dev/console":
            for dev2, root2, point2 in mounts:
                if dev2 == dev and root2 == "/":
                    return f"/proc/{init}/root{point2.rstrip('/')}{root}"
    return None


def copy_window_size(from_fd: int, pty_path: str) -> bool:
    """Give the pty at ``pty_path`` the window size of the terminal on ``from_fd``."""
    try:
        size = fcntl.ioctl(from_fd, termios.TIOCGWINSZ, b"\0" * 8)
        fd = os.open(pty_path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.ioctl(fd, termios.TIOCSWINSZ, size)
    except OSError:
        return False
    finally:
        os.close(fd)
    return True


# --- a pty of exec -t ------------------------------------------------------------------


def relay_pty(master: int, stdin: int = 0, stdout: int = 1) -> None:
    """Relay our terminal and a pty master until the command on its slave has ended.

    Our terminal is raw meanwhile (the container's line discipline does the editing,
    ^C and ^Z), restored however this ends; its window size is copied at the start and on
    every SIGWINCH.  When our stdin is not a terminal and ends, the pty gets an end of
    file (^D), as a user typing it would send.
    """
    import signal
    import threading

    interactive = os.isatty(stdin)

    def resize(*_args: object) -> None:
        with contextlib.suppress(OSError):
            size = fcntl.ioctl(stdin, termios.TIOCGWINSZ, b"\0" * 8)
            fcntl.ioctl(master, termios.TIOCSWINSZ, size)

    if interactive:
        resize()
    saved = None
    if interactive and threading.current_thread() is threading.main_thread():
        saved = signal.signal(signal.SIGWINCH, resize)
    watch_in = True
    try:
        with raw_terminal(stdin) if interactive else contextlib.nullcontext():
            while True:
                ready, _, _ = select.select([master, *([stdin] if watch_in else [])], [], [])
                if master in ready:
                    try:
                        data = os.read(master, 65536)
                    except OSError:  # EIO: every slave descriptor is closed
                        data = b""
                    if not data:
                        return
                    write_all(stdout, data)
                if watch_in and stdin in ready:
                    data = os.read(stdin, 65536)
                    if data:
                        write_all(master, data)
                    else:
                        watch_in = False
                        if not interactive:
                            write_all(master, b"\x04")
    finally:
        if saved is not None:
            signal.signal(signal.SIGWINCH, saved)
