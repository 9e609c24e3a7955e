"""``lxcvirt console``: escape parsing and the lock as plain logic; sessions against the
real daemon, interactive ones in a real terminal (tmux on a private socket)."""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import busybox_spec

from lxcvirt.console import (
    ConsoleLock,
    Expect,
    Session,
    attach,
    decode_send,
    escape_name,
    parse_escape,
)
from lxcvirt.errors import ConsoleError, InvalidState, LockHeld, NotFound

LXCVIRT = [sys.executable, "-m", "lxcvirt"]

#: Init: the console is stdin/stdout; every line read is echoed back as "got: LINE".
ECHO_INIT = (
    "/bin/sh", "-c",
    'trap "exit 0" TERM; exec </dev/console >/dev/console 2>&1; echo booted; '
    'while read line; do echo "got: $line"; done; while :; do sleep 1 & wait; done',
)
#: Init: a shell on the console with it as controlling tty (so ^C interrupts a job);
#: respawned when it exits; a TERM stops the container at once.
SHELL_INIT = (
    "/bin/sh", "-c",
    'trap "exit 0" TERM; while :; do setsid -c sh </dev/console >/dev/console 2>&1 & wait; done',
)
#: The same in the foreground: jobs of a background shell start with SIGINT ignored.
CTTY_SHELL_INIT = (
    "/bin/sh", "-c", "while :; do setsid -c sh </dev/console >/dev/console 2>&1; done",
)
#: Init that closes the console and opens it again later (as a boot that hands the
#: console from an init to a getty does).
REOPEN_INIT = (
    "/bin/sh", "-c",
    'trap "exit 0" TERM; exec </dev/console >/dev/console 2>&1; echo phase1; read go; '
    "exec 0<&- 1>&- 2>&-; sleep 1; exec </dev/console >/dev/console 2>&1; echo phase2; "
    'while read line; do echo "got: $line"; done; while :; do sleep 1 & wait; done',
)
#: A getty loop: getty hangs the console up (vhangup) every time it starts.
GETTY_INIT = (
    "/bin/sh", "-c",
    'trap "exit 0" TERM; while :; do getty -n -l /bin/sh 0 console & wait; done',
)


@pytest.fixture
def start(host: Any, names: Callable[[str], str], busybox_root: Path) -> Callable[..., str]:
    def make(init: tuple[str, ...], label: str = "con") -> str:
        name = names(label)
        host.define(busybox_spec(name, busybox_root, init=init))
        host.start(name, check=False)
        return name

    return make


def lxcvirt(*args: str, input: str | None = None, timeout: float = 30) -> Any:
    return subprocess.run(
        [*LXCVIRT, *args], input=input, capture_output=True, text=True, timeout=timeout
    )


# --- plain logic -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "byte"),
    [("^]", 0x1D), ("^a", 0x01), ("^A", 0x01), ("^@", 0x00), ("^_", 0x1F), ("^?", 0x7F),
     ("~", ord("~")), ("q", ord("q"))],
    ids=["ctrl-bracket", "ctrl-a", "ctrl-A", "nul", "ctrl-underscore", "del", "tilde", "q"],
)
def test_parse_escape(text: str, byte: int) -> None:
    assert parse_escape(text) == byte


@pytest.mark.parametrize("text", ["", "^^^", "ab", "^1", "é"], ids=repr)
def test_parse_escape_refuses(text: str) -> None:
    with pytest.raises(ConsoleError, match="hat notation"):
        parse_escape(text)


def test_escape_names_and_send_text() -> None:
    assert escape_name(0x1D) == "^] (Ctrl+])"
    assert escape_name(0x01) == "^A (Ctrl+A)"
    assert decode_send(r"ls\n\tx\\y\x41\e") == b"ls\n\tx\\yA\x1b"
    assert decode_send("plain é") == "plain é".encode()


def test_expect_matches_in_order_across_chunks() -> None:
    e = Expect(["log", "in: ", "two"])
    assert not e.feed(b"two lo")  # "two" before the patterns ahead of it does not count
    assert not e.feed(b"gin")
    assert e.waiting_for == "in: "
    assert not e.feed(b": ")
    assert e.waiting_for == "two"
    assert e.feed(b"t" + b"wo")
    with pytest.raises(ConsoleError, match="bad regular expression"):
        Expect(["("])


def test_lock_refuses_a_second_session_and_names_the_holder(tmp_path: Path) -> None:
    first = ConsoleLock("web", tmp_path)
    first.acquire()
    try:
        with pytest.raises(LockHeld) as info:
            ConsoleLock("web", tmp_path).acquire()
        assert f"in use by lxcvirt pid {os.getpid()}" in str(info.value)
        assert "--force" in info.value.hint and "--force" not in str(info.value)
        ConsoleLock("other", tmp_path).acquire()  # another container: no conflict
    finally:
        first.release()
    again = ConsoleLock("web", tmp_path)
    again.acquire()  # released: free again
    again.release()


def test_force_asks_the_holder_and_waits(tmp_path: Path) -> None:
    holder = ConsoleLock("web", tmp_path)
    holder.acquire()
    asked: list[int | None] = []

    def let_go() -> None:  # what a session does when its takeover socket speaks
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            pid = holder.takeover_request()
            if pid is not None:
                asked.append(pid)
                holder.release()
                return
            time.sleep(0.01)

    t = threading.Thread(target=let_go)
    t.start()
    taker = ConsoleLock("web", tmp_path)
    taker.acquire(force=True)
    t.join()
    assert asked == [os.getpid()]
    assert taker.path.read_text().split()[0] == str(os.getpid())
    taker.release()


def test_force_gives_up_on_a_holder_that_stays(tmp_path: Path) -> None:
    holder = ConsoleLock("web", tmp_path)
    holder.acquire()
    try:
        with pytest.raises(LockHeld, match="did not let go"):
            ConsoleLock("web", tmp_path).acquire(force=True, wait=0.2)
    finally:
        holder.release()


# --- scripted sessions against the daemon ------------------------------------------------

def test_pipe_mode(start: Callable[..., str], tmp_path: Path) -> None:
    name = start(ECHO_INIT)
    r = lxcvirt("console", name, input="hello\nworld\n")
    assert r.returncode == 0, r.stderr
    assert "got: hello" in r.stdout and "got: world" in r.stdout
    assert r.stderr == ""


def test_send_and_expect(start: Callable[..., str]) -> None:
    name = start(ECHO_INIT)
    r = lxcvirt("console", name, "--send", r"one\n", "--send", r"two\n",
                "--expect", "got: one", "--expect", "got: two", "--timeout", "10")
    assert r.returncode == 0, r.stderr
    r = lxcvirt("console", name, "--send", r"three\n", "--expect", "got: nothing-like-it",
                "--timeout", "1")
    assert r.returncode == 1
    assert "got: three" in r.stdout
    assert r.stderr == "lxcvirt: timed out after 1 s waiting for 'got: nothing-like-it'\n"


def test_stopped_and_unknown_containers(host: Any, names: Callable[[str], str],
                                        busybox_root: Path) -> None:
    name = names("stopped")
    host.define(busybox_spec(name, busybox_root))
    r = lxcvirt("console", name)
    assert r.returncode == 1
    assert r.stderr == f"lxcvirt: error: {name} is not running; start it first\n"
    with pytest.raises(InvalidState):
        attach(host, name, expect=["x"])
    unknown = names("unknown")
    r = lxcvirt("console", unknown)
    assert r.returncode == 1 and "no container named" in r.stderr
    with pytest.raises(NotFound):
        attach(host, unknown, expect=["x"])
    r = lxcvirt("console", name, "-e", "^^^")
    assert r.returncode == 1 and "hat notation" in r.stderr and "Traceback" not in r.stderr


@contextlib.contextmanager
def _pipes() -> Iterator[tuple[int, int, Any]]:
    """(stdin read end, its write end, stdout file) for a session in this process."""
    r, w = os.pipe()
    with tempfile.TemporaryFile() as out:
        try:
            yield r, w, out
        finally:
            for fd in (r, w):
                with contextlib.suppress(OSError):
                    os.close(fd)


def _read(out: Any) -> str:
    out.seek(0)
    return str(out.read().decode(errors="replace"))


def test_console_reopened_by_the_container(start: Callable[..., str], host: Any,
                                           tmp_path: Path) -> None:
    name = start(REOPEN_INIT)
    proc = subprocess.Popen([*LXCVIRT, "console", name], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdin is not None
        out = _ReadUntil(proc.stdout)
        out.wait_for(b"phase1")
        proc.stdin.write(b"go\n")
        proc.stdin.flush()
        out.wait_for(b"phase2")  # the init closed the console, then opened it again
        proc.stdin.write(b"still there\n")
        proc.stdin.flush()
        out.wait_for(b"got: still there")
        proc.stdin.close()
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_getty_hangups_keep_the_session(start: Callable[..., str]) -> None:
    name = start(GETTY_INIT)
    proc = subprocess.Popen([*LXCVIRT, "console", name], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdin is not None
        out = _ReadUntil(proc.stdout)
        for i in range(3):  # each exit makes a new getty, which hangs the console up
            out.wait_for(b"built-in shell")
            out.wait_for(b"/ # ")
            proc.stdin.write(f"echo round-$(({i}+100))\n".encode())
            proc.stdin.flush()
            out.wait_for(f"round-{i + 100}".encode())
            proc.stdin.write(b"exit\n")
            proc.stdin.flush()
        proc.stdin.close()
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


class _ReadUntil:
    """Reads a pipe in a thread; ``wait_for`` waits (bounded) for bytes to show up."""

    def __init__(self, pipe: Any) -> None:
        self.data = b""
        self.cond = threading.Condition()
        self.pipe = pipe
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        while chunk := os.read(self.pipe.fileno(), 65536):
            with self.cond:
                self.data += chunk
                self.cond.notify_all()

    def wait_for(self, wanted: bytes, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        with self.cond:
            while wanted not in self.data:
                left = deadline - time.monotonic()
                assert left > 0, f"{wanted!r} not seen in {self.data[-2000:]!r}"
                self.cond.wait(left)
            self.data = self.data[self.data.index(wanted) + len(wanted):]


def test_reattach_after_a_stream_error(start: Callable[..., str], host: Any,
                                       tmp_path: Path) -> None:
    """Break the live libvirt stream under a session: it says so, reattaches, works on."""
    name = start(ECHO_INIT)
    said: list[str] = []
    with _pipes() as (rfd, wfd, out):
        session = Session(host, name, interactive=False, stdin=rfd, stdout=out.fileno(),
                          notify=said.append)
        done: list[Any] = []
        t = threading.Thread(target=lambda: done.append(session.run()))
        t.start()
        try:
            _wait(lambda: session._stream is not None)
            os.write(wfd, b"before\n")
            _wait(lambda: "got: before" in _read(out))
            session._stream.abort()  # an I/O error on the stream, as a dying peer gives
            os.write(wfd, b"lost\n")  # this send fails: the session notices
            _wait(lambda: "reattached" in said)
            os.write(wfd, b"after\n")
            _wait(lambda: "got: after" in _read(out))
        finally:
            os.close(wfd)
            t.join(timeout=15)
    assert not t.is_alive()
    assert done and done[0].code == 0 and done[0].reason == "eof"
    assert any("reattaching" in s for s in said)


def _wait(cond: Callable[[], bool], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def test_daemon_gone(start: Callable[..., str], tmp_path: Path) -> None:
    """A session over a TCP relay whose connections are cut: "lost the connection", 1."""
    from relay import Relay

    from lxcvirt.host import Host

    name = start(ECHO_INIT)
    relay = Relay()
    said: list[str] = []
    done: list[Any] = []

    try:
        with Host(f"lxc+tcp://127.0.0.1:{relay.port}/", preflight=lambda _h: None) as remote, \
                _pipes() as (rfd, wfd, out):
            t = threading.Thread(target=lambda: done.append(attach(
                remote, name, stdin=rfd, stdout=out.fileno(), notify=said.append,
                lock_dir=tmp_path)))
            t.start()
            os.write(wfd, b"ping\n")
            _wait(lambda: "got: ping" in _read(out))
            relay.close()  # the daemon, as far as the client can tell, is gone
            t.join(timeout=15)
            assert not t.is_alive()
    finally:
        relay.close()
    assert done[0].code == 1 and done[0].reason == "daemon-gone", done
    assert said[-1].startswith("lost the connection to libvirtd"), said
    assert not any("reattach" in s for s in said), said


def test_container_stopped_in_pipe_mode(start: Callable[..., str], host: Any) -> None:
    name = start(ECHO_INIT)
    proc = subprocess.Popen([*LXCVIRT, "console", name], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out = _ReadUntil(proc.stdout)
        assert proc.stdin is not None
        proc.stdin.write(b"ping\n")
        proc.stdin.flush()
        out.wait_for(b"got: ping")
        host.stop(name, timeout=10)
        assert proc.wait(timeout=10) == 0
        assert proc.stderr is not None
        assert proc.stderr.read().decode() == f"lxcvirt: {name} stopped\n"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_open_close_cycles_leak_no_descriptors(start: Callable[..., str], host: Any,
                                              tmp_path: Path) -> None:
    name = start(ECHO_INIT)

    def cycle(i: int) -> None:
        r, w = os.pipe()
        os.close(w)  # stdin at its end: --send, then wait for the echo
        with open(os.devnull, "wb") as null:
            result = attach(host, name, send=[f"c{i}\\n"], expect=[f"got: c{i}"], timeout=10,
                            stdin=r, stdout=null.fileno(), notify=lambda _m: None,
                            lock_dir=tmp_path)
        os.close(r)
        assert result.code == 0, result

    def fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    cycle(0)  # first use opens the connection and the event loop's descriptors
    before = fds()
    for i in range(1, 101):
        cycle(i)
    assert fds() == before


# --- interactive sessions in a real terminal ----------------------------------------------

_tmux_ids = itertools.count(1)


class Tmux:
    """A tmux server on a private socket with one window running bash."""

    def __init__(self, width: int = 120, height: int = 30) -> None:
        self.socket = f"lxcvirt-test-{os.getpid()}-{next(_tmux_ids)}"
        self.run("new-session", "-d", "-s", "t", "-x", str(width), "-y", str(height),
                 "env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin TERM=screen PS1='$ ' "
                 "bash --norc --noprofile")
        self.path = self.run("display-message", "-p", "#{socket_path}").strip()

    def run(self, *args: str) -> str:
        r = subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True,
                           timeout=10, check=True)
        return r.stdout

    def type(self, text: str) -> None:
        self.run("send-keys", "-t", "t", "-l", text)
        self.run("send-keys", "-t", "t", "Enter")

    def keys(self, *keys: str) -> None:
        self.run("send-keys", "-t", "t", *keys)

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-J", "-t", "t", "-S", "-200")

    def wait_for(self, pattern: str, timeout: float = 15) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while True:
            m = re.search(pattern, self.screen())
            if m:
                return m
            if time.monotonic() > deadline:
                pytest.fail(f"{pattern!r} not on the screen:\n{self.screen()}")
            time.sleep(0.05)

    def kill(self) -> None:
        with contextlib.suppress(subprocess.SubprocessError):
            subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True,
                           timeout=10)
        with contextlib.suppress(OSError):
            os.unlink(self.path)  # the server leaves its socket file behind


@pytest.fixture
def tmux() -> Iterator[Tmux]:
    if shutil.which("tmux") is None:
        pytest.fail("tmux is needed for the interactive console tests (scripts/host-setup)")
    t = Tmux()
    yield t
    t.kill()


def _console_line(tmp_path: Path, *args: str) -> str:
    """A shell line: note stty, run the console, note the exit code and stty again."""
    cmd = " ".join([*LXCVIRT, "console", *args])
    return (f"stty -a > {tmp_path}/before; {cmd}; echo \"rc=$?\"; "
            f"stty -a > {tmp_path}/after; echo ended")


def _same_terminal(tmp_path: Path) -> None:
    # rows and columns follow the window (a test resizes it); everything else must match
    def settings(name: str) -> str:
        return re.sub(r"rows \d+; columns \d+;", "", (tmp_path / name).read_text())

    before, after = settings("before"), settings("after")
    assert "icanon" in before.split() and "echo" in before.split()
    assert after == before


@pytest.mark.parametrize("escape", [None, "^a"], ids=["default-escape", "escape-ctrl-a"])
def test_interactive_session(start: Callable[..., str], tmux: Tmux, tmp_path: Path,
                             escape: str | None) -> None:
    name = start(SHELL_INIT)
    args = [name] if escape is None else ["-e", escape, name]
    tmux.type(_console_line(tmp_path, *args))
    hint = r"\^\] \(Ctrl\+\]\)" if escape is None else r"\^A \(Ctrl\+A\)"
    tmux.wait_for(f"connected to {name}; detach with {hint}")
    tmux.type("echo answer-$((6*7))")
    tmux.wait_for("answer-42")
    tmux.type("stty size")
    tmux.wait_for(r"\n30 120")  # the window size reached the container's console
    tmux.run("resize-window", "-t", "t", "-x", "100", "-y", "40")
    tmux.type("stty size")
    tmux.wait_for(r"\n40 100")
    tmux.keys("C-]" if escape is None else "C-a")
    tmux.wait_for(f"detached from {name}")
    tmux.wait_for(r"rc=0\s+(\$ )?ended")
    _same_terminal(tmp_path)


def _pids_running(argv: list[str]) -> list[int]:
    """Pids, as the host sees them, of the processes whose command line is ``argv``."""
    want = b"".join(a.encode() + b"\0" for a in argv)
    pids = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if Path(entry.path, "cmdline").read_bytes() == want:
                    pids.append(int(entry.name))
    return pids


def _wait_until(cond: Callable[[], Any], what: str, timeout: float = 15) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := cond()):
        if time.monotonic() > deadline:
            pytest.fail(what)
        time.sleep(0.05)
    return value


def test_ctrl_c_goes_to_the_container(start: Callable[..., str], tmux: Tmux,
                                      tmp_path: Path) -> None:
    name = start(CTTY_SHELL_INIT, "ctty")
    tmux.type(_console_line(tmp_path, name))
    tmux.wait_for(f"connected to {name}")
    # A duration no other process uses (other tests sleep too), so the container's sleep is
    # found among the host's processes: ^C goes only once it really runs, since a ^C that
    # came first would be taken by the shell and leave nothing to interrupt.
    sleep = ["sleep", str(100_000 + os.getpid())]
    tmux.type(" ".join(sleep) + "; echo slept")
    _wait_until(lambda: _pids_running(sleep), f"{sleep} never ran in the container")
    tmux.keys("C-c")
    _wait_until(lambda: not _pids_running(sleep), f"^C did not end {sleep}", timeout=5)
    tmux.type("echo alive-$((40+2)) after-$?")
    tmux.wait_for("alive-42 after-130")  # 128 + SIGINT: the sleep died of the ^C
    assert not re.search(r"^slept$", tmux.screen(), re.M)  # and the line was abandoned
    tmux.keys("C-]")
    tmux.wait_for(r"rc=0\s+(\$ )?ended")
    _same_terminal(tmp_path)


def test_container_stopped_during_a_session(start: Callable[..., str], host: Any, tmux: Tmux,
                                            tmp_path: Path) -> None:
    name = start(SHELL_INIT)
    tmux.type(_console_line(tmp_path, name))
    tmux.wait_for(f"connected to {name}")
    tmux.type("echo up-$((1+1))")
    tmux.wait_for("up-2")
    r = lxcvirt("stop", name, "--timeout", "10")
    assert r.returncode == 0, r.stderr
    tmux.wait_for(f"lxcvirt: {name} stopped")
    tmux.wait_for(r"rc=0\s+(\$ )?ended")
    _same_terminal(tmp_path)


def test_sigterm_restores_the_terminal(start: Callable[..., str], tmux: Tmux,
                                       tmp_path: Path) -> None:
    name = start(SHELL_INIT)
    tmux.type(_console_line(tmp_path, name))
    tmux.wait_for(f"connected to {name}")
    holder = ConsoleLock(name).holder()
    pid = int(re.search(r"pid (\d+)", holder).group(1))  # type: ignore[union-attr]
    os.kill(pid, signal.SIGTERM)
    tmux.wait_for(rf"rc={128 + signal.SIGTERM}\s+(\$ )?ended")
    _same_terminal(tmp_path)


def test_lock_and_force(start: Callable[..., str], tmux: Tmux, tmp_path: Path) -> None:
    name = start(SHELL_INIT)
    tmux.type(_console_line(tmp_path, name))
    tmux.wait_for(f"connected to {name}")
    r = lxcvirt("console", name, input="")
    assert r.returncode == 1
    assert re.fullmatch(
        rf"lxcvirt: error: the console of {name} is in use by lxcvirt pid \d+ on /dev/pts/\d+ "
        rf"\(`lxcvirt console --force {name}` takes it over\)\n", r.stderr), r.stderr
    r = lxcvirt("console", "--force", name, "--send", r"echo forced-$((3*3))\n",
                "--expect", "forced-9", "--timeout", "10")
    assert r.returncode == 0, r.stderr
    tmux.wait_for(rf"the console of {name} was taken over by lxcvirt pid \d+ \(--force\)")
    tmux.wait_for(r"rc=1\s+(\$ )?ended")
    _same_terminal(tmp_path)
