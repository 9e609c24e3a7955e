"""Running a command inside a running container, as ``virsh lxc-enter-namespace`` does.

libvirt hands out the container's namespace file descriptors (``lxcOpenNamespace``); we
fork, join the container's cgroups (``lxcEnterCGroup`` — before entering the mount
namespace, where it would find no cgroup backend), ``setns`` into each namespace, fork
again so the command is inside the PID namespace, and exec it with the container's root
as its root.  The command's exit status becomes ours.

libvirt-python has no ``lxcEnterNamespace`` wrapper and Python 3.11 no ``os.setns``, so
setns is called through libc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import pwd
import grp
import signal
from collections.abc import Mapping, Sequence
from typing import Any

import libvirt

from . import _libvirt
from .errors import InvalidState, LibvirtError

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_EXEC_FAILED = 127


def _setns(fd: int) -> None:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    if libc.setns(fd, 0) != 0:
        err = ctypes.get_errno()
        # EINVAL: already in that namespace (e.g. the host user namespace of a container
        # without <idmap>); nothing to do.
        if err != 22:
            raise OSError(err, os.strerror(err))


def _child_env(user: pwd.struct_passwd | None, env: Mapping[str, str]) -> dict[str, str]:
    out = {"PATH": DEFAULT_PATH, "TERM": os.environ.get("TERM", "dumb"), "container": "lxc-libvirt"}
    out["HOME"] = user.pw_dir if user else "/root"
    out["USER"] = out["LOGNAME"] = user.pw_name if user else "root"
    out.update(env)
    return out


def _become(user: str | None) -> pwd.struct_passwd | None:
    """Switch to ``user`` (name or uid) as the container's /etc/passwd knows it."""
    if user is None:
        return None
    try:
        entry = pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
    except KeyError as exc:
        raise OSError(f"no user {user!r} in the container") from exc
    groups = [g.gr_gid for g in grp.getgrall() if entry.pw_name in g.gr_mem]
    os.setgroups(groups)
    os.setgid(entry.pw_gid)
    os.setuid(entry.pw_uid)
    return entry


def _report(msg: str) -> None:
    os.write(2, f"lxcvirt: error: {msg}\n".encode())


def _inside(dom: Any, fds: Sequence[int], argv: Sequence[str], user: str | None,
            cwd: str | None, env: Mapping[str, str]) -> int:
    """Runs in the forked child: join the container, run the command, return its status."""
    import libvirt_lxc

    libvirt_lxc.lxcEnterCGroup(dom, 0)
    for fd in fds:
        _setns(fd)
        os.close(fd)
    pid = os.fork()
    if pid == 0:
        try:
            os.chdir("/")
            entry = _become(user)
            target = cwd or (entry.pw_dir if entry else "/")
            try:
                os.chdir(target)
            except OSError as exc:
                _report(f"cannot change to {target} in the container: {exc.strerror}")
                os._exit(_EXEC_FAILED)
            os.execvpe(argv[0], list(argv), _child_env(entry, env))
        except OSError as exc:
            _report(f"cannot run {argv[0]} in the container: {exc.strerror or exc}")
        os._exit(_EXEC_FAILED)
    return _wait(pid)


def _wait(pid: int) -> int:
    while True:
        try:
            _, status = os.waitpid(pid, 0)
        except InterruptedError:
            continue
        if os.WIFSIGNALED(status):
            return 128 + os.WTERMSIG(status)
        return os.WEXITSTATUS(status)


def run(host: Any, name: str, argv: Sequence[str], *, user: str | None = None,
        cwd: str | None = None, env: Mapping[str, str] | None = None) -> int:
    """Run ``argv`` inside container ``name`` with our stdio; return its exit status."""
    if not argv:
        raise InvalidState("exec needs a command to run")
    dom = host.domain(name)
    if not dom.isActive():
        raise InvalidState(f"{name} is not running; start it first")
    import libvirt_lxc

    try:
        fds = libvirt_lxc.lxcOpenNamespace(dom, 0)
    except libvirt.libvirtError as exc:
        raise _libvirt.convert(exc, f"opening the namespaces of {name}") from exc
    if not fds:
        raise LibvirtError(f"libvirt gave no namespaces for {name}")
    # Signals typed at the terminal reach the command (same process group); we only wait.
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        pid = os.fork()
        if pid == 0:
            code = _EXEC_FAILED
            try:
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                code = _inside(dom, fds, argv, user, cwd, env or {})
            except BaseException as exc:  # noqa: BLE001 - the child must never return
                _report(f"cannot enter {name}: {exc}")
            finally:
                os._exit(code)
        for fd in fds:
            os.close(fd)
        return _wait(pid)
    finally:
        signal.signal(signal.SIGINT, old)
