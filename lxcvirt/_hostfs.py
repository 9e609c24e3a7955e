"""What the host checks read: mounts, cgroup controllers and layout, kernel config, the
daemon's process and socket, and the nested-cgroup probe.

Everything is read under a root (``/`` on a real host, a fixture tree in the tests); the
verdicts are :mod:`lxcvirt.checks`'.
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import os
import re
import secrets
import socket
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qs, urlsplit

# Controller names used when /proc/cgroups cannot be read (v2-only kernels still list them).
KNOWN_CONTROLLERS = frozenset((
    "cpuset", "cpu", "cpuacct", "blkio", "io", "memory", "devices", "freezer", "net_cls",
    "perf_event", "net_prio", "hugetlb", "pids", "rdma", "misc",
))
PROBE_PREFIX = "lxcvirt-probe-"
#: Where scripts/host-setup installs contrib/libvirt-hooks/lxcvirt-cgroup.
HOOK_PATH = "/etc/libvirt/hooks/lxc.d/lxcvirt-cgroup"
HOOK_MARKER = b"lxcvirt-cgroup:"


# --- reading the host ------------------------------------------------------------------


@dataclass(frozen=True)
class Mount:
    mount_point: str
    fstype: str
    #: mount options and super options together (controller names are super options)
    options: frozenset[str]


def _unescape(field_: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo.
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field_)




def parse_mountinfo(text: str) -> list[Mount]:
    """The mounts of a ``/proc/PID/mountinfo``, the visible one per mount point."""
    seen: dict[str, Mount] = {}
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        a, b = left.split(), right.split()
        if not sep or len(a) < 6 or len(b) < 2:
            continue
        opts = set(a[5].split(","))
        if len(b) >= 3:
            opts |= set(b[2].split(","))
        mp = _unescape(a[4])
        # A later mount on the same point hides the earlier one.
        seen.pop(mp, None)
        seen[mp] = Mount(mp, b[0], frozenset(opts))
    return list(seen.values())


@dataclass(frozen=True)
class Subsystem:
    name: str
    hierarchy: int
    enabled: bool


def parse_proc_cgroups(text: str) -> dict[str, Subsystem]:
    out: dict[str, Subsystem] = {}
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        f = line.split()
        if len(f) >= 4 and f[1].isdigit() and f[3].isdigit():
            out[f[0]] = Subsystem(f[0], int(f[1]), f[3] == "1")
    return out


@dataclass(frozen=True)
class Layout:
    """Where the cgroup controllers are, as one mount namespace sees them."""

    kind: Literal["v1", "v2", "hybrid", "none"]
    #: v1 controller -> mount point
    v1: dict[str, str] = field(default_factory=dict)
    #: the cgroup2 mount point, if any
    unified: str | None = None
    #: controllers the cgroup2 root offers (its cgroup.controllers)
    v2: frozenset[str] = frozenset()

    def where(self, controller: str) -> str | None:
        if controller in self.v1:
            return self.v1[controller]
        if self.unified is not None and controller in self.v2:
            return self.unified
        return None

    def describe(self) -> str:
        parts = []
        by_mount: dict[str, list[str]] = {}
        for ctl, mp in sorted(self.v1.items()):
            by_mount.setdefault(mp, []).append(ctl)
        if by_mount:
            parts.append("v1 " + ", ".join(f"{','.join(c)}" for c in by_mount.values()))
        if self.unified is not None:
            ctls = " ".join(sorted(self.v2)) or "no controllers"
            parts.append(f"cgroup2 at {self.unified} ({ctls})")
        return f"{self.kind}: " + ("; ".join(parts) if parts else "no cgroup mounts")


class Reader:
    """Reads host files under ``root`` (``/`` for the real host, a fixture tree in tests)."""

    def __init__(self, root: str | Path = "/") -> None:
        self.root = Path(root)

    def path(self, absolute: str) -> Path:
        return self.root / absolute.lstrip("/")

    def text(self, absolute: str) -> str | None:
        """A file's text; None when it is not there, or is a /proc file of a process
        that went away while it was read (the kernel then says EINVAL or ESRCH)."""
        try:
            return self.path(absolute).read_text()
        except (FileNotFoundError, NotADirectoryError, ProcessLookupError):
            return None
        except OSError as exc:
            if absolute.startswith("/proc/") and exc.errno in (errno.EINVAL, errno.ESRCH):
                return None
            raise

    def subsystems(self) -> dict[str, Subsystem]:
        return parse_proc_cgroups(self.text("/proc/cgroups") or "")

    def layout(self, mounts: Sequence[Mount], subsystems: dict[str, Subsystem]) -> Layout:
        names = set(subsystems) | KNOWN_CONTROLLERS
        v1: dict[str, str] = {}
        unified: str | None = None
        for m in mounts:
            if m.fstype == "cgroup":
                for ctl in m.options & names:
                    v1[ctl] = m.mount_point
            elif m.fstype == "cgroup2" and (
                # Prefer the conventional place when there are several.
                unified is None or m.mount_point == "/sys/fs/cgroup"
            ):
                unified = m.mount_point
        v2: frozenset[str] = frozenset()
        if unified is not None:
            v2 = frozenset((self.text(f"{unified}/cgroup.controllers") or "").split())
        kind: Literal["v1", "v2", "hybrid", "none"]
        if v1 and unified is not None:
            kind = "hybrid"
        elif v1:
            kind = "v1"
        elif unified is not None:
            kind = "v2"
        else:
            kind = "none"
        return Layout(kind, v1, unified, v2)

    def io_weight_file(self, lay: Layout) -> str | None:
        """A file through which a cgroup's block I/O weight is set (blkio.bfq.weight,
        blkio.weight; io.bfq.weight, io.weight on cgroup v2), in the blkio/io hierarchy
        or its first level of cgroups; None when there is none.

        The kernel makes them only with an I/O scheduler that has weights (BFQ; CFQ
        before Linux 5.0, and not on the root for BFQ). Without one, libvirt fails every
        start of a container that sets a weight, and reading the block I/O parameters
        of any running container.
        """
        v2 = lay.kind == "v2"
        where = lay.where("io" if v2 else "blkio")
        if where is None:
            return None
        names = ("io.bfq.weight", "io.weight") if v2 else ("blkio.bfq.weight", "blkio.weight")
        top = self.path(where)
        try:
            subs = sorted(e.name for e in os.scandir(top) if e.is_dir(follow_symlinks=False))
        except OSError:
            return None
        for rel in ["", *subs[:64]]:
            for n in names:
                if (top / rel / n).is_file():
                    return f"{where.rstrip('/')}/{rel + '/' if rel else ''}{n}"
        return None

    def kernel_config(self) -> dict[str, str] | None:
        """CONFIG_* values from /proc/config.gz or /boot/config-RELEASE, if readable."""
        raw: str | None = None
        try:
            raw = gzip.decompress(self.path("/proc/config.gz").read_bytes()).decode(
                errors="replace"
            )
        except (OSError, EOFError):
            release = (self.text("/proc/sys/kernel/osrelease") or "").strip()
            if release:
                raw = self.text(f"/boot/config-{release}")
        if raw is None:
            return None
        out = {}
        for line in raw.splitlines():
            m = re.match(r"(CONFIG_\w+)=(.*)", line)
            if m:
                out[m.group(1)] = m.group(2)
            else:
                m = re.match(r"# (CONFIG_\w+) is not set", line)
                if m:
                    out[m.group(1)] = "n"
        return out

    def daemon_pid(self) -> int | None:
        """The libvirtd process: its pid file, else the oldest process named libvirtd."""
        for pidfile in ("/run/libvirtd.pid", "/var/run/libvirtd.pid"):
            text = (self.text(pidfile) or "").strip()
            if text.isdigit() and self._comm(int(text)) == "libvirtd":
                return int(text)
        found: list[tuple[int, int]] = []
        try:
            entries = list(self.path("/proc").iterdir())
        except OSError:
            return None
        for entry in entries:
            if entry.name.isdigit() and self._comm(int(entry.name)) == "libvirtd":
                found.append((self._start_time(int(entry.name)), int(entry.name)))
        return min(found)[1] if found else None

    def started_at(self, pid: int) -> float | None:
        """When process ``pid`` started (seconds since the epoch), from /proc."""
        btime = re.search(r"^btime (\d+)$", self.text("/proc/stat") or "", re.MULTILINE)
        ticks = self._start_time(pid)
        if btime is None or ticks == 0:
            return None
        return int(btime.group(1)) + ticks / os.sysconf("SC_CLK_TCK")

    def _comm(self, pid: int) -> str:
        try:
            return (self.text(f"/proc/{pid}/comm") or "").strip()
        except OSError:
            return ""

    def _start_time(self, pid: int) -> int:
        try:
            stat = self.text(f"/proc/{pid}/stat") or ""
        except OSError:
            return 0
        # Field 22 (starttime) counts after the ")" that closes the command name.
        rest = stat.rpartition(")")[2].split()
        return int(rest[19]) if len(rest) > 19 and rest[19].isdigit() else 0


def io_weights_missing(root: str | Path = "/") -> str | None:
    """Where block I/O weights cannot be set on this host (the blkio or io hierarchy that
    has no weight file), or None when they can, or when that cannot be told."""
    reader = Reader(root)
    mountinfo = reader.text("/proc/self/mountinfo")
    if mountinfo is None:
        return None
    lay = reader.layout(parse_mountinfo(mountinfo), reader.subsystems())
    where = lay.where("io" if lay.kind == "v2" else "blkio")
    if where is None or reader.io_weight_file(lay) is not None:
        return None
    return where


def resolve_in(root: Path, path: str, hops: int = 40) -> str:
    """``path`` inside the tree ``root`` with its symlinks followed there, as the container
    will see it (an absolute link target starts again at ``root``, never at the host's /).
    """
    parts = [p for p in path.split("/") if p]
    done: list[str] = []
    while parts and hops > 0:
        part = parts.pop(0)
        if part == "..":
            if done:
                done.pop()
            continue
        if part == ".":
            continue
        here = root.joinpath(*done, part)
        if here.is_symlink():
            hops -= 1
            target = os.readlink(here)
            if target.startswith("/"):
                done = []
            parts = [p for p in target.split("/") if p] + parts
            continue
        done.append(part)
    return "/" + "/".join(done)


def find_hook(reader: Reader) -> Path | None:
    """lxcvirt's libvirt LXC hook, where libvirtd runs it (the main script, or lxc.d/)."""
    hooks = reader.path("/etc/libvirt/hooks")
    candidates = [hooks / "lxc"]
    with contextlib.suppress(OSError):
        candidates += sorted((hooks / "lxc.d").iterdir())
    for path in candidates:
        try:
            if os.access(path, os.X_OK) and path.is_file() and HOOK_MARKER in path.read_bytes():
                return path
        except OSError:
            continue
    return None


def daemon_socket(uri: str) -> str | None:
    """The unix socket a local URI connects to (its ``socket=`` parameter, or the default)."""
    parts = urlsplit(uri)
    transport = parts.scheme.partition("+")[2]
    if transport not in ("", "unix") or (parts.hostname or "") not in ("", "localhost"):
        return None
    given = parse_qs(parts.query).get("socket")
    if given:
        return given[0]
    # libvirt's client prefers the modular daemon's socket when it exists.
    for path in ("/run/libvirt/virtlxcd-sock", "/run/libvirt/libvirt-sock"):
        if os.path.exists(path):
            return path
    return None


def socket_owner(path: str) -> int | None:
    """The pid listening on the unix socket ``path`` (SO_PEERCRED), or None."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(2.0)
            sock.connect(path)
            creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except OSError:
        return None
    pid = int(struct.unpack("3i", creds)[0])
    return pid if pid > 0 else None


# --- the functional probe ---------------------------------------------------------------

DirOp = Callable[[Path], None]


def make_dir(path: Path) -> None:
    os.mkdir(path)


def remove_dir(path: Path) -> None:
    os.rmdir(path)


def probe_hierarchy(
    base: Path, *, mkdir: DirOp = make_dir, rmdir: DirOp = remove_dir
) -> str | None:
    """Create and remove ``base/lxcvirt-probe-PID-X/nested``; return what failed, or None.

    libvirt makes nested cgroups (machine/NAME.libvirt-lxc) in every mounted hierarchy, so a
    controller that refuses a nested directory (blkio on some kernels) breaks every start.
    Everything made here is removed again, also when a step fails.
    """
    _sweep_stale(base, rmdir)
    top = base / f"{PROBE_PREFIX}{os.getpid()}-{secrets.token_hex(3)}"
    made: list[Path] = []
    problem: str | None = None
    try:
        for d in (top, top / "nested"):
            try:
                mkdir(d)
            except OSError as exc:
                problem = f"cannot create {d.relative_to(base)}: {exc.strerror or exc}"
                break
            made.append(d)
    finally:
        for d in reversed(made):
            try:
                rmdir(d)
            except OSError as exc:
                problem = problem or f"cannot remove {d}: {exc.strerror or exc}"
    return problem


def _sweep_stale(base: Path, rmdir: DirOp) -> None:
    """Remove probe directories left by a process that was killed mid-probe."""
    try:
        entries = [e for e in base.iterdir() if e.name.startswith(PROBE_PREFIX)]
    except OSError:
        return
    for entry in entries:
        pid = entry.name[len(PROBE_PREFIX) :].partition("-")[0]
        if not pid.isdigit() or Path(f"/proc/{pid}").exists():
            continue
        for d in (entry / "nested", entry):
            with contextlib.suppress(OSError):
                rmdir(d)
