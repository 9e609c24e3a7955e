"""Running a command inside a running container, as ``virsh lxc-enter-namespace`` does.

libvirt hands out the container's namespace file descriptors (``lxcOpenNamespace``).  We
fork; the child joins the container's cgroups, ``setns``-es into each namespace (the user
namespace first) and forks again so the command is inside the PID namespace; the grandchild
takes the user, changes directory and execs.  The command's exit status becomes ours
(128+N when a signal N killed it).

Choices, and why:

* Our process runs libvirt's event-loop thread, so a forked child must not call into
  libvirt (a lock held by that thread at fork time would never be released in the child).
  Everything libvirt is asked happens before the fork; the children only make system
  calls.  That rules out ``lxcEnterCGroup`` in the child, so the cgroups are joined by
  hand: the controller's ``/proc/PID/cgroup`` names them, we write our pid into each
  one's ``cgroup.procs``.  That is what libvirt does too, except that seen here (libvirt
  9.0, cgroup v1) ``lxcEnterCGroup`` left the process in the host's ``devices`` and
  ``cpuacct`` cgroups, outside the container's device whitelist.
* A container with an ``<idmap>`` has a user namespace of its own, in which our uid (the
  host's root) is not mapped: after ``setns`` into it we keep every capability there but
  run as the overflow uid 65534 ("nobody").  So right after joining it the child becomes
  the container's root (setgroups/setgid/setuid to 0: uid 0 inside, the mapped uid, e.g.
  100000, on the host).  The kernel lets a process join a user namespace only while it is
  single-threaded and shares no filesystem attributes (our forked child, before it joins
  the mount namespace), and gives it every capability there; changing to the namespace's
  uid 0 keeps them, so the other ``setns`` calls and ``--user`` work as before.  Joining
  the user namespace first also makes files the command creates belong to the mapped ids.
* The user is looked up in the container's own ``/etc/passwd`` and ``/etc/group``, read
  as files: glibc's NSS would load the container's libnss modules into our process.
* Failures before the command runs travel back over a close-on-exec pipe, so the caller
  gets an :class:`ExecFailed` (exit 127 / 126 like a shell, 1 otherwise) rather than a
  guess from the exit status.
* Signals: SIGINT and SIGQUIT typed at the terminal reach the command directly (it is in
  our process group), so we ignore them; SIGTERM, SIGHUP, SIGUSR1 and SIGUSR2 sent to us
  are passed on to the command.

libvirt-python has no ``lxcEnterNamespace`` wrapper and Python 3.11 no ``os.setns``, so
setns is called through libc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import signal
import stat
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING, NoReturn

from . import _libvirt
from .errors import ExecFailed, InvalidState, LibvirtError

if TYPE_CHECKING:
    from .host import Host

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
EXIT_NOT_FOUND = 127
EXIT_NOT_EXECUTABLE = 126
_SETUP_FAILED = 1
#: Signals sent to lxcvirt that are passed on to the command.
FORWARDED = (signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2)
#: Signals the terminal sends to the whole foreground group: the command gets them itself.
IGNORED = (signal.SIGINT, signal.SIGQUIT)


# --- what is prepared before the fork (may call libvirt) --------------------------------


def _namespace_kind(fd: int) -> str:
    """``user``, ``mnt``, ... for a namespace file descriptor (its ``/proc`` link names it)."""
    return os.readlink(f"/proc/self/fd/{fd}").partition(":")[0]


def _user_first(fds: Sequence[int]) -> tuple[tuple[int, ...], int | None]:
    """``fds`` with the user namespace first, and that one (None when there is none)."""
    users = [fd for fd in fds if _namespace_kind(fd) == "user"]
    user = users[0] if users else None
    return tuple(users + [fd for fd in fds if fd not in users]), user


def _libc_setns() -> Callable[[int, int], int]:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    fn: Callable[[int, int], int] = libc.setns
    return fn


_MOUNT_OPTIONS = {"rw", "ro", "relatime", "noatime", "nosuid", "nodev", "noexec",
                  "clone_children", "noprefix", "xattr", "cpuset_v2_mode"}


def _cgroup_mounts(mountinfo: str) -> dict[frozenset[str], str]:
    """Mount points of cgroup hierarchies, keyed by their controller set.

    cgroup v1 hierarchies are keyed by their controllers (``name=X`` for named ones),
    the v2 hierarchy by the empty set.  Only mounts of a hierarchy's root count.
    """
    out: dict[frozenset[str], str] = {}
    for line in mountinfo.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        fields = left.split()
        rfields = right.split()
        if len(fields) < 5 or len(rfields) < 3 or fields[3] != "/":
            continue
        mountpoint = fields[4].replace("\\040", " ")
        if rfields[0] == "cgroup2":
            out.setdefault(frozenset(), mountpoint)
        elif rfields[0] == "cgroup":
            ctrls = frozenset(
                o for o in rfields[2].split(",")
                if o not in _MOUNT_OPTIONS and not o.startswith("release_agent=")
            )
            out.setdefault(ctrls, mountpoint)
    return out


def cgroup_procs_files(pid: int, *, mountinfo: str | None = None,
                       proc_cgroup: str | None = None) -> list[str]:
    """The ``cgroup.procs`` files that put a process where ``pid`` is, one per hierarchy.

    Hierarchies not mounted here are left out (nothing to join, nothing to escape).
    """
    if mountinfo is None:
        with open("/proc/self/mountinfo") as f:
            mountinfo = f.read()
    if proc_cgroup is None:
        with open(f"/proc/{pid}/cgroup") as f:
            proc_cgroup = f.read()
    mounts = _cgroup_mounts(mountinfo)
    files = []
    for line in proc_cgroup.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, ctrls, path = parts
        key = frozenset(c for c in ctrls.split(",") if c)
        mountpoint = mounts.get(key)
        if mountpoint is None:
            continue
        files.append(os.path.join(mountpoint, path.lstrip("/"), "cgroup.procs"))
    return files


# --- inside the container (after the fork: system calls only, no libvirt) ---------------


@dataclass(frozen=True)
class Account:
    name: str
    uid: int
    gid: int
    home: str
    groups: tuple[int, ...]


#: The container's /etc/passwd and /etc/group are hostile input: read at most this much.
MAX_TABLE_BYTES = 4 * 1024 * 1024


def _read_table(path: str) -> list[list[str]]:
    """The rows of a passwd-like file inside the container (read after entering its mount
    namespace and root): a regular file only (a FIFO there would hang us, a device never
    end) and size-bounded (a huge one would exhaust our memory)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise LookupError(f"cannot read the container's {path}: {exc.strerror}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise LookupError(f"the container's {path} is not a regular file")
    with os.fdopen(fd, "rb") as f:
        data = f.read(MAX_TABLE_BYTES + 1)
    if len(data) > MAX_TABLE_BYTES:
        raise LookupError(f"the container's {path} is larger than "
                          f"{MAX_TABLE_BYTES // (1024 * 1024)} MiB; not reading it")
    text = data.decode("utf-8", errors="replace")
    return [ln.split(":") for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]


def lookup_user(user: str, passwd: str = "/etc/passwd", group: str = "/etc/group") -> Account:
    """``user`` (a name or a uid) as the container's ``/etc/passwd`` knows it.

    A numeric uid without an entry is allowed (images often run as bare uids): its group
    is the same number and its home ``/``.
    """
    for row in _read_table(passwd):
        if len(row) < 7:
            continue
        if row[0] == user or (user.isdigit() and row[2] == user):
            name, uid, gid, home = row[0], int(row[2]), int(row[3]), row[5] or "/"
            break
    else:
        if not user.isdigit():
            raise LookupError(f"no user {user!r} in the container's /etc/passwd")
        name, uid, gid, home = user, int(user), int(user), "/"
    groups = {gid}
    for row in _read_table(group):
        if len(row) >= 4 and name in row[3].split(",") and row[2].isdigit():
            groups.add(int(row[2]))
    return Account(name, uid, gid, home, tuple(sorted(groups)))


def child_env(name: str, uuid: str, account: Account | None,
              env: Mapping[str, str]) -> dict[str, str]:
    out = {
        "PATH": DEFAULT_PATH,
        "TERM": os.environ.get("TERM", "dumb"),
        "container": "lxc-libvirt",
        "LIBVIRT_LXC_NAME": name,
        "LIBVIRT_LXC_UUID": uuid,
        "HOME": account.home if account else "/root",
        "USER": account.name if account else "root",
        "LOGNAME": account.name if account else "root",
    }
    out.update(env)
    return out


@dataclass(frozen=True)
class _Plan:
    name: str
    uuid: str
    argv: tuple[str, ...]
    user: str | None
    cwd: str | None
    env: Mapping[str, str]
    ns_fds: tuple[int, ...]
    #: The one of ``ns_fds`` that is a user namespace (joined first), if any.
    user_fd: int | None
    cgroup_files: tuple[str, ...]
    setns: Callable[[int, int], int]
    report_fd: int
    #: With a terminal: the socket the container's pty master goes back through (else -1).
    tty_sock: int = -1


def _fail(plan: _Plan, code: int, msg: str) -> NoReturn:
    try:
        os.write(plan.report_fd, f"{code}:{msg}".encode(errors="replace"))
    finally:
        os._exit(code)


def _intermediate(plan: _Plan) -> NoReturn:
    """The first child: join the container, fork the command, pass on its status."""
    try:
        for sig in IGNORED:
            signal.signal(sig, signal.SIG_IGN)
        me = str(os.getpid()).encode()
        for path in plan.cgroup_files:
            try:
                fd = os.open(path, os.O_WRONLY)
            except FileNotFoundError:
                continue  # a hierarchy libvirt made nothing in
            try:
                os.write(fd, me)
            finally:
                os.close(fd)
        for fd in plan.ns_fds:
            if plan.setns(fd, 0) != 0:
                err = ctypes.get_errno()
                # EINVAL: already in that namespace (the host user namespace of a
                # container without <idmap>); nothing to do.
                if err != errno.EINVAL:
                    raise OSError(err, os.strerror(err))
            elif fd == plan.user_fd:
                # The container's own user namespace: become its root before joining the
                # rest (the host's supplementary groups are unmapped there too).
                os.setgroups([])
                os.setgid(0)
                os.setuid(0)
            os.close(fd)
    except OSError as exc:
        _fail(plan, _SETUP_FAILED, f"cannot enter {plan.name}: {exc.strerror or exc}")
    except BaseException as exc:  # noqa: BLE001 - a forked child must never return
        _fail(plan, _SETUP_FAILED, f"cannot enter {plan.name}: {exc}")
    slave = None
    if plan.tty_sock >= 0:
        try:
            slave = _open_pty_inside(plan.tty_sock)
        except OSError as exc:
            _fail(plan, _SETUP_FAILED, f"cannot open a terminal in {plan.name}: "
                  f"{exc.strerror or exc}")
    try:
        pid = os.fork()
    except OSError as exc:
        _fail(plan, _SETUP_FAILED, f"cannot fork inside {plan.name}: {exc.strerror}")
    if pid == 0:
        if slave is not None:
            _take_terminal(plan, slave)
        _command(plan)
    os.close(plan.report_fd)
    try:
        for sig in FORWARDED:
            signal.signal(sig, lambda s, _f: _kill(pid, s))
        code = wait_status(pid)
    except BaseException:  # noqa: BLE001
        code = _SETUP_FAILED
    os._exit(code)


_TIOCGPTN = 0x80045430  # the pty's number
_TIOCSPTLCK = 0x40045431  # lock or unlock its slave
_TIOCSCTTY = 0x540E  # make it the controlling terminal


def _open_pty_inside(sock: int) -> str:
    """In the container's mount namespace: a new pty of the container's own devpts (so
    ``tty`` inside names it), its master sent back to the caller through ``sock``; returns
    the slave's path."""
    import fcntl
    import socket
    import struct

    master = os.open("/dev/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        fcntl.ioctl(master, _TIOCSPTLCK, struct.pack("i", 0))
        number = struct.unpack("i", fcntl.ioctl(master, _TIOCGPTN, struct.pack("i", 0)))[0]
        with socket.socket(fileno=os.dup(sock)) as s:
            socket.send_fds(s, [b"m"], [master])
    finally:
        os.close(master)
    os.close(sock)
    return f"/dev/pts/{number}"


def _take_terminal(plan: _Plan, slave: str) -> None:
    """The command's side: a session of its own with the pty as controlling terminal and
    as stdin, stdout and stderr (job control works inside)."""
    import fcntl

    try:
        os.setsid()
        fd = os.open(slave, os.O_RDWR)
        fcntl.ioctl(fd, _TIOCSCTTY, 0)
        for target in (0, 1, 2):
            os.dup2(fd, target)
        if fd > 2:
            os.close(fd)
    except OSError as exc:
        _fail(plan, _SETUP_FAILED, f"cannot use the terminal {slave} in {plan.name}: "
              f"{exc.strerror or exc}")


def _command(plan: _Plan) -> NoReturn:
    """The grandchild, inside the PID namespace: become the user, chdir, exec."""
    try:
        # Python ignores SIGPIPE and SIGXFSZ; the command must start with the defaults.
        for sig in (*IGNORED, *FORWARDED, signal.SIGPIPE, signal.SIGXFSZ):
            signal.signal(sig, signal.SIG_DFL)
        os.chdir("/")
        account = lookup_user(plan.user) if plan.user is not None else None
        if account is not None:
            os.setgroups(list(account.groups))
            os.setgid(account.gid)
            os.setuid(account.uid)
        target = plan.cwd or (account.home if account else "/")
        try:
            os.chdir(target)
        except OSError as exc:
            if plan.cwd is not None:
                _fail(plan, _SETUP_FAILED,
                      f"cannot change to {target} in {plan.name}: {exc.strerror}")
            os.chdir("/")
        os.closerange(3, plan.report_fd)
        os.closerange(plan.report_fd + 1, 65536)
        env = child_env(plan.name, plan.uuid, account, plan.env)
        os.execvpe(plan.argv[0], list(plan.argv), env)
    except LookupError as exc:
        _fail(plan, _SETUP_FAILED, str(exc))
    except OSError as exc:
        code = EXIT_NOT_FOUND if exc.errno == errno.ENOENT else EXIT_NOT_EXECUTABLE
        what = "command not found" if code == EXIT_NOT_FOUND else exc.strerror
        _fail(plan, code, f"cannot run {plan.argv[0]} in {plan.name}: {what}")
    except BaseException as exc:  # noqa: BLE001
        _fail(plan, _SETUP_FAILED, f"cannot run {plan.argv[0]} in {plan.name}: {exc}")


def _kill(pid: int, sig: int) -> None:
    with suppress(ProcessLookupError):
        os.kill(pid, sig)


def wait_status(pid: int) -> int:
    """Wait for ``pid``; its exit code, or 128+N when signal N killed it."""
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


# --- the caller's side --------------------------------------------------------------------


@contextmanager
def _signals_passed_to(pid: int) -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return
    saved = {}
    for sig in IGNORED:
        saved[sig] = signal.signal(sig, signal.SIG_IGN)
    for sig in FORWARDED:
        saved[sig] = signal.signal(sig, lambda s, _f: _kill(pid, s))
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def _read_report(fd: int) -> bytes:
    chunks: list[bytes] = []
    while True:
        chunk = os.read(fd, 4096)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def run(host: Host, name: str, argv: Sequence[str], *, user: str | None = None,
        cwd: str | None = None, env: Mapping[str, str] | None = None,
        tty: bool = False) -> int:
    """Run ``argv`` inside container ``name`` with our stdio; return its exit status.

    ``tty``: on a pseudo-terminal of the container's own (``tty`` inside names it; job
    control and window size work), relayed to ours, which is put in raw mode and
    restored on every way out.

    Raises :class:`InvalidState` for a container that is not running and
    :class:`ExecFailed` when the command could not be started.
    """
    if not argv:
        raise ExecFailed("exec needs a command to run")
    if not host.passes_fds:
        # The namespaces arrive as file descriptors, which only a unix socket carries
        # (over TCP libvirt also drops the connection); lxc+tcp://127.0.0.1/ is local, yet
        # cannot do it.
        raise ExecFailed(
            f"exec needs the daemon's unix socket (lxc:///), not {host.uri}: the container's "
            "namespaces travel as file descriptors"
        )
    for key in env or {}:
        if not key or "=" in key or "\0" in key:
            raise ExecFailed(f"bad environment variable name {key!r}")
    dom = host.domain(name)
    with _libvirt.converted(f"reading the state of {name}"):
        active = dom.isActive()
        ctl_pid = dom.ID() if active else -1
        uuid = dom.UUIDString()
    if not active:
        raise InvalidState(f"{name} is not running; start it first")
    import libvirt_lxc

    try:
        cgroup_files = cgroup_procs_files(ctl_pid)
    except OSError as exc:
        raise InvalidState(f"{name} stopped (its controller process is gone)") from exc
    try:
        fds = tuple(_libvirt.call(f"opening the namespaces of {name}",
                                  libvirt_lxc.lxcOpenNamespace, dom, 0) or ())
    except LibvirtError as exc:
        if not _libvirt.call(f"reading the state of {name}", dom.isActive):
            raise InvalidState(f"{name} is not running; start it first") from exc
        raise
    if not fds:
        raise LibvirtError(f"libvirt gave no namespaces for {name}")
    try:
        ordered, user_fd = _user_first(fds)
    except OSError:
        for fd in fds:
            os.close(fd)
        raise
    read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
    ours, theirs = _socketpair() if tty else (-1, -1)
    plan = _Plan(name, uuid, tuple(argv), user, cwd, dict(env or {}), ordered, user_fd,
                 tuple(cgroup_files), _libc_setns(), write_fd, theirs)
    try:
        pid = os.fork()
    except OSError:
        for fd in (*fds, read_fd, write_fd, ours, theirs):
            if fd >= 0:
                os.close(fd)
        raise
    if pid == 0:
        os.close(read_fd)
        if ours >= 0:
            os.close(ours)
        _intermediate(plan)
    os.close(write_fd)
    if theirs >= 0:
        os.close(theirs)
    for fd in fds:
        os.close(fd)
    master = -1
    try:
        with _signals_passed_to(pid):
            if ours >= 0:
                master = _receive_master(ours)
            report = _read_report(read_fd)
            if master >= 0 and not report:
                from ._terminal import relay_pty

                relay_pty(master)
            code = wait_status(pid)
    finally:
        os.close(read_fd)
        for fd in (ours, master):
            if fd >= 0:
                os.close(fd)
    if report:
        head, _, msg = report.decode(errors="replace").partition(":")
        raise ExecFailed(msg, exit_code=int(head) if head.isdigit() else _SETUP_FAILED)
    return code


def _socketpair() -> tuple[int, int]:
    import socket

    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    return a.detach(), b.detach()


def _receive_master(sock: int) -> int:
    """The pty master the container side sends, or -1 when it failed first (its report
    says why)."""
    import socket

    with socket.socket(fileno=os.dup(sock)) as s:
        try:
            _msg, fds, _flags, _addr = socket.recv_fds(s, 1, 1)
        except OSError:
            return -1
    return fds[0] if fds else -1
