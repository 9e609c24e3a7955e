"""A console session: the main thread's loop (stdin, the escape key, the timeout,
reattaching a stream that ended while the container runs) and how it ends."""

from __future__ import annotations

import contextlib
import errno
import os
import select
import signal
import termios
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import libvirt

from .. import _libvirt
from .._terminal import (
    console_pty_path,
    copy_window_size,
    decode_send,
    escape_name,
    parse_escape,
    raw_terminal,
    write_all,
)
from ..errors import (
    ConsoleError,
    DaemonUnreachable,
    InvalidState,
    LibvirtError,
    NotFound,
)
from ..host import LifecycleWatch
from ._expect import Expect
from ._lock import ConsoleLock
from ._stream import CHUNK, close_stream, open_stream, send_all

if TYPE_CHECKING:
    from ..host import Host

DEFAULT_ESCAPE = "^]"
#: Pauses between reattach attempts; their number bounds the retries.
REATTACH_BACKOFF = (0.05, 0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0)
#: Pipe mode without --expect ends when stdin has ended and the console was quiet this long.
QUIET_AFTER = 0.5

Notify = Callable[[str], None]


@dataclass(frozen=True)
class Result:
    """How a session ended: ``reason`` is a word for scripts, ``code`` the exit status."""

    code: int
    reason: str
    message: str = ""


class _Ended(Exception):
    def __init__(self, result: Result) -> None:
        super().__init__(result.reason)
        self.result = result


class _Shared:
    """What libvirt's event-loop thread (the stream, lifecycle and close callbacks) tells
    the main thread: one Event per fact, and the output's figures under a lock."""

    def __init__(self) -> None:
        self.stream_closed = threading.Event()
        self.stopped = threading.Event()
        self.daemon_gone = threading.Event()
        self.matched = threading.Event()
        self._lock = threading.Lock()
        self._failed: OSError | None = None
        self._last_output = time.monotonic()
        self._writing = False
        self.bytes_out = 0

    def wrote(self, count: int, *, writing: bool) -> None:
        with self._lock:
            self.bytes_out += count
            self._writing = writing
            self._last_output = time.monotonic()

    def output_state(self) -> tuple[float, bool]:
        """When output last came, and whether a write to stdout is under way."""
        with self._lock:
            return self._last_output, self._writing

    def fail_output(self, exc: OSError) -> None:
        with self._lock:
            self._failed = exc

    def output_failed(self) -> OSError | None:
        with self._lock:
            return self._failed


class Session:
    """One console session.  Build it, then :meth:`run` it (once)."""

    def __init__(
        self,
        host: Host,
        name: str,
        *,
        escape: int = 0x1D,
        interactive: bool,
        send: Sequence[bytes] = (),
        expect: Sequence[str] = (),
        timeout: float | None = None,
        read_stdin: bool = True,
        stdin: int = 0,
        stdout: int = 1,
        notify: Notify | None = None,
        lock: ConsoleLock | None = None,
    ) -> None:
        self.host = host
        self.name = name
        self.escape = escape
        self.interactive = interactive
        self.send_first = list(send)
        self.expect = Expect(expect) if expect else None
        self.timeout = timeout
        self.stdin = stdin
        self.stdin_open = read_stdin
        self.stdout = stdout
        self._notify = notify or _stderr_notify
        self.lock = lock
        self.dom: Any = None
        self.conn: Any = None
        # What libvirt's event-loop thread tells the main thread: Events, and the output
        # facts under a lock (see _Shared).  Signal handlers run in the main thread
        # itself, so what they set (_signal, _winch) is plain.
        self._gen = 0
        self._stream: Any = None
        self._shared = _Shared()
        self._signal: int | None = None
        self._winch = False
        self._pty_path: str | None = None
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._lifecycle: LifecycleWatch | None = None
        self._close_cb = False

    @property
    def bytes_out(self) -> int:
        return self._shared.bytes_out

    # --- callbacks (event-loop thread) ------------------------------------------------

    def _wake(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._wake_w, b"x")

    def _on_data(self, data: bytes | None) -> bool:
        """A chunk the console printed, or None once the stream has ended."""
        if data is None:
            self._shared.stream_closed.set()
            self._wake()
            return False
        self._shared.wrote(len(data), writing=True)  # a slow reader is not a quiet console
        try:
            write_all(self.stdout, data)
        except OSError as exc:  # stdout closed (a pipe reader went away)
            self._shared.fail_output(exc)
            self._wake()
            return False
        finally:
            self._shared.wrote(0, writing=False)
        if self.expect is not None and self.expect.feed(data):
            self._shared.matched.set()
            self._wake()
        return True

    def _on_lifecycle(self, event: int) -> None:
        if event in (libvirt.VIR_DOMAIN_EVENT_STOPPED, libvirt.VIR_DOMAIN_EVENT_CRASHED):
            self._shared.stopped.set()
            self._wake()

    def _on_close(self, _conn: Any, _reason: int, _opaque: Any) -> None:
        self._shared.daemon_gone.set()
        self._wake()

    def _on_winch(self, _signum: int, _frame: Any) -> None:
        self._winch = True
        self._wake()

    def _pass_window_size(self) -> None:
        self._winch = False
        if self._pty_path is None and self.host.is_local:
            with _libvirt.ignored():
                self._pty_path = console_pty_path(int(self.dom.ID()))
        if self._pty_path is not None and not copy_window_size(self.stdin, self._pty_path):
            self._pty_path = None  # the container restarted its console; look again next time

    def _on_signal(self, signum: int, _frame: Any) -> None:
        self._signal = signum
        self._wake()

    # --- the main thread --------------------------------------------------------------

    def say(self, message: str) -> None:
        self._notify(message)

    def _open_stream(self) -> None:
        self._gen += 1
        gen = self._gen
        me = weakref.ref(self)

        def handler(data: bytes | None) -> bool:
            # Held by libvirt for as long as it likes: the session only weakly.
            session = me()
            if session is None or session._gen != gen:
                return False  # a stream we already let go of
            return session._on_data(data)

        st = open_stream(self.conn, self.dom, self.name, handler)
        self._shared.stream_closed.clear()
        self._stream = st

    def _close_stream(self) -> None:
        st, self._stream = self._stream, None
        self._gen += 1
        if st is not None:
            close_stream(st)

    def _send(self, data: bytes) -> None:
        st = self._stream
        if st is None:
            return  # between streams: keystrokes typed now are dropped
        if not send_all(st, data):
            self._shared.stream_closed.set()
            self._wake()

    def _check(self) -> None:
        """Act on what the callbacks and signal handlers said; raise _Ended to finish."""
        if self._signal is not None:
            raise _Ended(Result(128 + self._signal, "signal"))
        failed = self._shared.output_failed()
        if failed is not None:
            raise _Ended(Result(1, "stdout-closed", f"cannot write the console output: "
                                f"{failed.strerror}"))
        if self._shared.matched.is_set():
            raise _Ended(Result(0, "matched"))
        if self._shared.daemon_gone.is_set():
            raise self._gone_end()
        if self._shared.stopped.is_set():
            raise self._stopped_end()
        if self.lock is not None:
            taker = self.lock.takeover_request()
            if taker is not None:
                raise _Ended(Result(1, "taken-over", f"the console of {self.name} was taken over "
                                    f"by lxcvirt pid {taker} (--force)"))

    def _gone_end(self) -> _Ended:
        msg = f"lost the connection to libvirtd ({self.host.uri})"
        return _Ended(Result(1, "daemon-gone", msg))

    def _stopped_end(self) -> _Ended:
        if self.expect is not None:
            return _Ended(Result(1, "stopped", f"{self.name} stopped before "
                                 f"{self.expect.waiting_for!r} was seen"))
        return _Ended(Result(0, "stopped", f"{self.name} stopped"))

    def _still_running(self) -> bool:
        try:
            with _libvirt.converted(f"reading the state of {self.name}"):
                return bool(self.dom.isActive())
        except NotFound:
            return False
        except DaemonUnreachable as exc:
            raise self._gone_end() from exc
        except LibvirtError as exc:
            if self._shared.daemon_gone.is_set() or not self._conn_alive():
                raise self._gone_end() from exc
            raise

    def _conn_alive(self) -> bool:
        with _libvirt.ignored():
            return bool(self.conn.isAlive())
        return False

    def _pause(self, seconds: float) -> None:
        """Sleep, but wake for a signal, a stop event or the daemon going away."""
        deadline = time.monotonic() + seconds
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            r, _, _ = select.select([self._wake_r], [], [], left)
            if r:
                self._drain_wake()
                self._check()

    def _drain_wake(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while os.read(self._wake_r, 4096):
                pass

    def _reattach(self) -> None:
        """The stream ended: reattach while the container runs, else end the session."""
        self._close_stream()
        # A stream that ends because the container stopped is followed at once by the
        # lifecycle event; give it a moment so a stop is not reported as a reattach.
        self._pause(0.15)
        attempt = 0
        while True:
            if not self._still_running():
                raise self._stopped_end()
            if attempt >= len(REATTACH_BACKOFF):
                raise _Ended(Result(1, "gave-up", f"the console of {self.name} keeps closing; "
                                    f"gave up after {attempt} attempts to reattach"))
            self.say(f"the console of {self.name} closed while it runs; reattaching")
            self._pause(REATTACH_BACKOFF[attempt])
            attempt += 1
            try:
                self._open_stream()
            except LibvirtError as exc:
                if self._shared.daemon_gone.is_set() or not self._conn_alive():
                    raise self._gone_end() from exc
                continue
            self.say("reattached")
            return

    def _deadline_left(self, deadline: float | None) -> float | None:
        return None if deadline is None else deadline - time.monotonic()

    def _loop(self) -> None:
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        stdin_closed_at: float | None = None if self.stdin_open else time.monotonic()
        for chunk in self.send_first:
            self._send(chunk)
        while True:
            self._check()
            if self._shared.stream_closed.is_set():
                self._reattach()
                continue
            if self._winch:
                self._pass_window_size()
            waits: list[float] = []
            left = self._deadline_left(deadline)
            if left is not None:
                if left <= 0:
                    if self.expect is not None and not self.expect.done:
                        raise _Ended(Result(1, "timeout", f"timed out after {self.timeout:g} s "
                                            f"waiting for {self.expect.waiting_for!r}"))
                    raise _Ended(Result(0, "timeout"))
                waits.append(left)
            if not self.interactive and stdin_closed_at is not None and self.expect is None:
                last_output, writing = self._shared.output_state()
                quiet_for = time.monotonic() - max(last_output, stdin_closed_at)
                if quiet_for >= QUIET_AFTER and not writing:
                    raise _Ended(Result(0, "eof"))
                waits.append(max(QUIET_AFTER - quiet_for, 0.05))
            rlist = [self._wake_r]
            if self.stdin_open:
                rlist.append(self.stdin)
            if self.lock is not None and self.lock.sock is not None:
                rlist.append(self.lock.sock.fileno())
            r, _, _ = select.select(rlist, [], [], min(waits) if waits else None)
            if self._wake_r in r:
                self._drain_wake()
            if self.stdin_open and self.stdin in r:
                try:
                    data = os.read(self.stdin, CHUNK)
                except OSError as exc:
                    if exc.errno != errno.EIO:  # EIO: our terminal hung up
                        raise
                    data = b""
                if not data:
                    if self.interactive:
                        raise _Ended(Result(0, "detached", "detached (end of input)"))
                    self.stdin_open = False
                    stdin_closed_at = time.monotonic()
                    continue
                if self.interactive:
                    at = data.find(self.escape)
                    if at >= 0:
                        self._send(data[:at])
                        raise _Ended(Result(0, "detached", f"detached from {self.name}"))
                self._send(data)

    @contextlib.contextmanager
    def _signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        sigs = [signal.SIGTERM, signal.SIGHUP, signal.SIGINT]
        saved = {s: signal.signal(s, self._on_signal) for s in sigs}
        if self.interactive:
            saved[signal.SIGWINCH] = signal.signal(signal.SIGWINCH, self._on_winch)
        try:
            yield
        finally:
            for s, handler in saved.items():
                signal.signal(s, handler)

    def _register(self) -> None:
        self._lifecycle = LifecycleWatch(self.conn, self.dom, on_event=self._on_lifecycle)
        with _libvirt.ignored():
            # libvirt allows one close callback per connection; when someone else has it,
            # a dead daemon is still noticed through the stream and the state checks.
            self.conn.registerCloseCallback(self._on_close, None)
            self._close_cb = True

    def _unregister(self) -> None:
        if self._lifecycle is not None:
            self._lifecycle.close()
            self._lifecycle = None
        if self._close_cb:
            with _libvirt.ignored():
                self.conn.unregisterCloseCallback()
            self._close_cb = False

    def run(self) -> Result:
        """Attach, copy until the session ends, clean up; the :class:`Result`."""
        try:
            self.dom = self.host.domain(self.name)
            self.conn = self.host.conn
            if not self._still_running():
                raise InvalidState(f"{self.name} is not running; start it first")
            self._register()
            try:
                self._open_stream()
            except LibvirtError as exc:
                if not self._still_running():
                    raise InvalidState(f"{self.name} is not running; start it first") from exc
                raise ConsoleError(str(exc)) from exc
            with self._signals():
                if self.interactive:
                    self.say(f"connected to {self.name}; detach with {escape_name(self.escape)}")
                    with raw_terminal(self.stdin):
                        self._winch = True  # the container starts with our size
                        result = self._guarded_loop()
                        if result.message:  # still raw: starts on a line of its own
                            self.say(result.message)
                else:
                    result = self._guarded_loop()
                    if result.message:
                        self.say(result.message)
        finally:
            self._close_stream()
            self._unregister()
            os.close(self._wake_r)
            os.close(self._wake_w)
        return result

    def _guarded_loop(self) -> Result:
        try:
            self._loop()
        except _Ended as end:
            return end.result
        raise AssertionError("the session loop only ends by _Ended")


def _stderr_notify(message: str) -> None:
    # In raw mode "\n" does not return the carriage; "\r\n" is right in both modes.
    with contextlib.suppress(OSError):
        write_all(2, f"\r\nlxcvirt: {message}\r\n".encode() if _stderr_raw()
                   else f"lxcvirt: {message}\n".encode())


def _stderr_raw() -> bool:
    try:
        return not (termios.tcgetattr(2)[1] & termios.OPOST)
    except (termios.error, OSError):
        return False


def attach(
    host: Host,
    name: str,
    *,
    escape: str = DEFAULT_ESCAPE,
    force: bool = False,
    send: Sequence[str] = (),
    expect: Sequence[str] = (),
    timeout: float | None = None,
    stdin: int | None = None,
    stdout: int | None = None,
    notify: Notify | None = None,
    lock_dir: str | os.PathLike[str] | None = None,
) -> Result:
    """Attach to container ``name``'s console; return how the session ended.

    Interactive (raw terminal, escape key) when stdin is a terminal and neither ``send``
    nor ``expect`` is given; otherwise scripted: ``send`` strings (``\\n`` etc. understood)
    go first, stdin (when not a terminal) follows, and with ``expect`` the session ends
    once every pattern has been seen in order (exit 0) or ``timeout`` passed (exit 1).

    Raises :class:`InvalidState` for a stopped container, :class:`NotFound` for an
    unknown one, :class:`LockHeld` when another session has the console.
    """
    esc = parse_escape(escape)
    if timeout is not None and timeout < 0:
        raise ConsoleError("--timeout must not be negative")
    in_fd = 0 if stdin is None else stdin
    out_fd = 1 if stdout is None else stdout
    stdin_tty = os.isatty(in_fd)
    interactive = stdin_tty and not send and not expect
    payload = [decode_send(s) for s in send]
    if expect:
        Expect(expect)  # bad patterns are refused before anything is opened
    dom = host.domain(name)
    with _libvirt.converted(f"reading the state of {name}"):
        if not dom.isActive():
            raise InvalidState(f"{name} is not running; start it first")
    lock = ConsoleLock(name, lock_dir)
    lock.acquire(force=force)
    try:
        if interactive and not stdin_tty:
            raise ConsoleError("an interactive console needs a terminal")
        session = Session(
            host, name, escape=esc, interactive=interactive, send=payload, expect=expect,
            timeout=timeout, read_stdin=not stdin_tty or interactive, stdin=in_fd,
            stdout=out_fd, notify=notify, lock=lock,
        )
        return session.run()
    finally:
        lock.release()
