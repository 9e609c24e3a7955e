"""What /proc tells about a running container on this machine (a local daemon only).

libvirt's domain id for an LXC container is the pid of its ``libvirt_lxc`` controller;
the container's init is that controller's child.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from ._hostfs import resolve_in
from ._initsignals import listened_mask


def init_pid(controller_pid: int) -> int | None:
    """The host pid of the container's init, or None when it cannot be found."""
    try:
        children = Path(f"/proc/{controller_pid}/task/{controller_pid}/children").read_text()
        return int(children.split()[0])
    except (OSError, ValueError, IndexError):
        return None


def init_file(controller_pid: int, name: str) -> str | None:
    """The text of ``/proc/INIT/NAME`` for the container's init; None when there is no
    init to find or the file cannot be read (the init went away)."""
    pid = init_pid(controller_pid)
    if pid is None:
        return None
    try:
        return Path(f"/proc/{pid}/{name}").read_text()
    except OSError:
        return None


def init_listens(controller_pid: int) -> int | None:
    """The signals the container's init blocks or catches (bit N-1 for signal N).

    systemd takes its signals through a signalfd, so they show as blocked, not caught;
    both count.  None when /proc cannot tell (no such process, not readable).
    """
    status = init_file(controller_pid, "status")
    return None if status is None else listened_mask(status)


def init_execd(controller_pid: int) -> bool | None:
    """Whether the container's init runs its own program yet: until its exec, the
    controller's child is a copy of ``libvirt_lxc``.  None when /proc cannot tell."""
    comm = init_file(controller_pid, "comm")
    return None if comm is None else comm.strip() != "libvirt_lxc"


def init_exited(controller_pid: int) -> bool:
    """Whether the container's init has exited (the controller has no child, or only a
    zombie one), whatever libvirt says yet."""
    stat_text = init_file(controller_pid, "stat")
    return stat_text is None or stat_text.rpartition(")")[2].split()[:1] in (["Z"], ["X"])


#: Where sysvinit keeps its request pipe (what libvirt's initctl shutdown writes to).
INITCTL_PIPES = ("/run/initctl", "/dev/initctl")


def has_initctl_pipe(root: str | Path) -> bool:
    """Whether the tree ``root`` has a FIFO at one of :data:`INITCTL_PIPES`, its links
    followed inside it (:func:`resolve_in`); only looked at, never opened: a container's
    root is hostile input."""
    for pipe in INITCTL_PIPES:
        inside = resolve_in(Path(root), pipe)
        try:
            if stat.S_ISFIFO(os.lstat(Path(root, inside.lstrip("/"))).st_mode):
                return True
        except OSError:
            continue
    return False


def init_has_initctl(controller_pid: int) -> bool | None:
    """Whether the container's root has a sysvinit request pipe; None when its root
    cannot be read."""
    pid = init_pid(controller_pid)
    root = f"/proc/{pid}/root"
    if pid is None or not os.path.isdir(root):
        return None
    return has_initctl_pipe(root)


def local_ipv4(fib_trie: str) -> set[str]:
    """The IPv4 addresses configured on a network namespace's interfaces, from the text of
    /proc/PID/net/fib_trie (an address followed by a ``host LOCAL`` route)."""
    found: set[str] = set()
    last = ""
    for line in fib_trie.splitlines():
        text = line.strip()
        if text.startswith("|-- "):
            last = text[4:]
        elif text.endswith("host LOCAL") and text.startswith("/32") and last:
            found.add(last)
    return found


def init_ipv4(controller_pid: int) -> set[str] | None:
    """The IPv4 addresses the container's network namespace has (loopback included), or
    None when /proc cannot tell."""
    pid = init_pid(controller_pid)
    if pid is None:
        return None
    try:
        return local_ipv4(Path(f"/proc/{pid}/net/fib_trie").read_text())
    except OSError:
        return None



def oom_kills(controller_pid: int) -> int | None:
    """How many processes the OOM killer has killed in the container's memory cgroup
    (cgroup v1 ``memory.oom_control``, v2 ``memory.events``: ``oom_kill N``), or None
    when the host cannot tell (no such counter, not readable)."""
    pid = init_pid(controller_pid)
    f = None if pid is None else _cgroup_file(pid, "memory", "memory.oom_control",
                                              "memory.events")
    try:
        text = "" if f is None else f.read_text()
    except OSError:
        return None
    for row in text.splitlines():
        key, _, value = row.partition(" ")
        if key == "oom_kill" and value.strip().isdigit():
            return int(value)
    return None


def _cgroup_file(pid: int, controller: str, v1_name: str, v2_name: str) -> Path | None:
    """The path of a cgroup file of process ``pid`` for ``controller`` (v1 hierarchy
    file ``v1_name``, else the unified hierarchy's ``v2_name``), or None."""
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        rel = path.lstrip("/")
        if ".." in rel.split("/"):
            continue
        candidates = []
        if controller in controllers.split(","):
            candidates.append(Path("/sys/fs/cgroup", controller, rel, v1_name))
        elif controllers == "":
            candidates += [Path("/sys/fs/cgroup", rel, v2_name),
                           Path("/sys/fs/cgroup/unified", rel, v2_name)]
        for c in candidates:
            if c.is_file():
                return c
    return None


def memory_peak_kib(controller_pid: int) -> int | None:
    """The most memory the container's cgroup has used since it started, in KiB."""
    pid = init_pid(controller_pid)
    f = None if pid is None else _cgroup_file(pid, "memory", "memory.max_usage_in_bytes",
                                              "memory.peak")
    try:
        return None if f is None else int(f.read_text().strip()) // 1024
    except (OSError, ValueError):
        return None


def controller_gone(controller_pid: int) -> bool:
    """True when no ``libvirt_lxc`` process has this pid any more: the container's
    controller has exited (its init did) although libvirt still calls it running, which
    happens only when libvirtd has lost its monitor connection to it."""
    try:
        return Path(f"/proc/{controller_pid}/comm").read_text().strip() != "libvirt_lxc"
    except FileNotFoundError:
        return True
    except OSError:
        return False  # not ours to read: cannot tell


def uptime_seconds(controller_pid: int) -> float | None:
    """Seconds since the container's init started."""
    pid = init_pid(controller_pid)
    return None if pid is None else process_age(pid)


def process_age(pid: int) -> float | None:
    """Seconds since process ``pid`` started; None when /proc cannot tell."""
    import os

    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        since_boot = float(Path("/proc/uptime").read_text().split()[0])
        # the fields after the command (which may hold spaces) in parentheses
        start_ticks = int(stat.rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None
    return max(0.0, since_boot - start_ticks / os.sysconf("SC_CLK_TCK"))


def block_io_bytes(controller_pid: int) -> tuple[int, int] | None:
    """Bytes the container's cgroup has read and written on block devices (cgroup v1
    ``blkio.throttle.io_service_bytes``, v2 ``io.stat``), or None."""
    pid = init_pid(controller_pid)
    f = None if pid is None else _cgroup_file(pid, "blkio", "blkio.throttle.io_service_bytes",
                                              "io.stat")
    if f is None:
        return None
    try:
        text = f.read_text()
    except OSError:
        return None
    read = written = 0
    for line in text.splitlines():
        parts = line.split()
        if f.name == "io.stat":
            for kv in parts[1:]:
                key, _, value = kv.partition("=")
                if key == "rbytes" and value.isdigit():
                    read += int(value)
                elif key == "wbytes" and value.isdigit():
                    written += int(value)
        elif len(parts) == 3 and parts[2].isdigit():
            if parts[1] == "Read":
                read += int(parts[2])
            elif parts[1] == "Write":
                written += int(parts[2])
    return read, written
